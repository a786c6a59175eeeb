"""The machinery of ``rnlib grade`` (:mod:`rnlib.grade` has the public functions and says how
grading works): :mod:`.submission` identifies a submission and the cells that define its
exercises, :mod:`.kernel` runs cells under time limits, :mod:`.runner` grades one submission in
a kernel, and :mod:`.guard` is the grader's code inside that kernel."""
