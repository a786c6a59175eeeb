"""Student-style solutions of every exercise, checked by tests/test_checker_corpus.py.

One module per exercise (``ex03_rcu``: exercise 3.1, named in its ``EXERCISE``) holds
``correct_*`` solutions, which its checker must accept, and ``wrong_*`` ones, each with
``EXPECTED``: a regular expression that the checker's message must match. They are written as
different students would: other names, another order of creation, ``nn.Sequential``,
functional ReLUs, ``padding="same"``, in-place updates of the input list, and the classic
mistakes of each component.
"""


def expect(pattern: str):
    """Mark a wrong solution (a function) with the message its checker must give."""

    def mark(obj):
        obj.EXPECTED = pattern
        return obj

    return mark
