"""Markdown tables, and the line that says how and where a table was made: every table that
rnlib and its benchmark scripts (benchmarks/*.py) write goes through here."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Sequence

import torch

__all__ = ["markdown_table", "machine", "made_by"]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table: ``header``, its separator, then one line per row (cells as str)."""
    def line(cells: Iterable[object]) -> str:
        return "|" + "|".join(f" {cell} " if cell != "" else " " for cell in cells) + "|"

    return "\n".join([line(header), "|---" * len(header) + "|", *map(line, rows)])


def machine() -> str:
    """This machine as a table's provenance names it: the CPU, its cores, the GPU, torch and
    its threads (timings depend on all of them)."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def made_by(command: str) -> str:
    """The sentence under a table's title: ``Made by `command` on <machine>.``"""
    return f"Made by `{command}` on {machine()}."
