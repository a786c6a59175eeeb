"""Settings for the whole test run, notebooks included (their kernels inherit the environment).

RNLIB_BUDGET_SCALE shortens every training time budget to a fifth under test: the notebooks'
committed outputs come from full-budget runs, the tests check that everything runs and checks.
"""

import os
import shutil
from pathlib import Path

os.environ.setdefault("RNLIB_BUDGET_SCALE", "0.2")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_sessionstart(session):
    """The solution notebooks share solutions/runs in order (08 and 09 reuse the RefineNet of
    07): start each test session without earlier runs, so that every notebook trains what it
    shows and no run of another session's budget is reused."""
    shutil.rmtree(Path(__file__).parent / "solutions" / "runs", ignore_errors=True)
