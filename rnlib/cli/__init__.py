"""The command line: ``rnlib train | eval | compare | bench | data | models | grade | export |
convert`` (also ``python -m rnlib``). Each subcommand mirrors a module and has ``--help``; its
flags and its handler live in the module of this package named for it.

``train``, ``eval`` and ``compare`` build their TrainConfig in one way
(:func:`rnlib.cli.options.run_config`): a preset (or, for ``eval``, the checkpoint's own
config), then ``--config FILE`` (TOML or YAML), then the flags. The config is checked whole
before any data is read or any step is trained.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .bench import add_bench_command
from .compare import add_compare_command
from .convert import add_convert_command
from .data import add_data_command, add_models_command
from .export import add_export_command
from .grade import add_grade_command
from .signals import exit_status, sigterm_interrupts
from .train import add_eval_command, add_train_command

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnlib",
        description="RefineNet and its baselines: train, evaluate, compare, benchmark, export.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_models_command, add_train_command, add_eval_command, add_compare_command,
                add_data_command, add_bench_command, add_grade_command, add_export_command,
                add_convert_command):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    from ..data import DataError
    from ..train import TrainingInterrupted

    args = build_parser().parse_args(argv)
    try:
        with sigterm_interrupts():
            args.run(args)
    except TrainingInterrupted as err:  # 130 for SIGINT, 143 for SIGTERM
        print(f"rnlib {args.command}: {err}", file=sys.stderr)
        raise SystemExit(exit_status(err)) from None
    except KeyboardInterrupt as err:  # outside training: temporary files are removed as it ends
        print(f"rnlib {args.command}: interrupted; nothing half-written was kept: run the "
              f"command again", file=sys.stderr)
        raise SystemExit(exit_status(err)) from None
    except (ValueError, FileNotFoundError, OSError, FloatingPointError, DataError,
            MemoryError) as err:
        raise SystemExit(f"rnlib {args.command}: {err or type(err).__name__}") from err
