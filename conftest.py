"""Settings for the whole test run, notebooks included (their kernels inherit the environment).

RNLIB_BUDGET_SCALE shortens every training time budget to a fifth under test: the notebooks'
committed outputs come from full-budget runs, the tests check that everything runs and checks.
"""

import os

os.environ.setdefault("RNLIB_BUDGET_SCALE", "0.2")
os.environ.setdefault("MPLBACKEND", "Agg")
