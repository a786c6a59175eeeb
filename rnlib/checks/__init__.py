"""Exercise checkers: each takes the student's class or function, runs it against rnlib's
reference and raises :class:`ExerciseError` (an AssertionError) with a message that says what
is wrong and gives a hint; on success it prints "<component>: all checks passed.".

>>> from rnlib import checks
>>> checks.check_rcu(MyRCU)           # prints "RCU: all checks passed." or raises
>>> checks.check_rcu(MyRCU, seed=7)   # a hidden variant: other sizes, settings, weights, inputs

A solution that is, subclasses or runs rnlib's implementation of its exercise (or torch's, where
a torch helper does it: ``fuse_conv_bn_eval``, ``PolynomialLR``) raises
:class:`UsesLibraryError`, an ExerciseError of its own; ``allow_library=True`` lets rnlib's
tests check rnlib's own classes. Every check runs with torch's global settings reset (grad mode
on, float32, no deterministic-only algorithms) and its own seed, and restores both afterwards.

The layout: :mod:`.protocol` (the block exercises' protocol, with :mod:`.recorder`,
:mod:`.matching` and :mod:`.causes`), :mod:`.scalar` (the checkers whose answer is a value,
their mistakes as data), :mod:`.tolerance` (the one tolerance policy), :mod:`.student` (running
the student's code), and one module per notebook's exercises.
"""

from .block_exercises import check_crp, check_fusion, check_rcu, check_refinenet_block
from .cascade import check_decoder
from .data_and_metrics import check_mean_iou, check_pixel_accuracy
from .deployment import check_fuse_conv_bn
from .downsampling import check_segmentation_loss, check_stage_sizes
from .experiments import check_crp_receptive_field, check_poly_lr, check_relative_cost
from .report import ExerciseError, UsesLibraryError
from .state import DEFAULT_SEED

__all__ = ["ExerciseError", "UsesLibraryError", "DEFAULT_SEED", "check_pixel_accuracy",
           "check_mean_iou", "check_stage_sizes", "check_segmentation_loss", "check_rcu",
           "check_fusion", "check_crp", "check_refinenet_block", "check_decoder",
           "check_poly_lr", "check_relative_cost", "check_crp_receptive_field",
           "check_fuse_conv_bn"]
