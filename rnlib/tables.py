"""Markdown tables, and the line that says how and where a table was made: every table that
rnlib and its benchmark scripts (benchmarks/*.py) write goes through here."""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from .runtime import BF16_CAPABILITIES

__all__ = ["markdown_table", "machine", "command_line", "made_by"]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table: ``header``, its separator, then one line per row (cells as str)."""
    def line(cells: Iterable[object]) -> str:
        return "|" + "|".join(f" {cell} " if cell != "" else " " for cell in cells) + "|"

    return "\n".join([line(header), "|---" * len(header) + "|", *map(line, rows)])


def _processor() -> str:
    """The processor's name (Linux: /proc/cpuinfo; else what platform knows)."""
    info = Path("/proc/cpuinfo")
    names = re.findall(r"model name\s*:\s*(.+)", info.read_text()) if info.exists() else []
    return names[0].strip() if names else platform.processor() or platform.machine()


def machine() -> str:
    """This machine as a table's provenance names it: the CPU, its cores and what it computes
    natively in bfloat16 (as torch sees it), the GPU, torch and its threads (timings depend on
    all of them)."""
    capabilities = torch.cpu.get_capabilities()
    bf16 = ", ".join(k for k in BF16_CAPABILITIES if capabilities.get(k)) or "none"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{_processor()} ({platform.machine()}, {os.cpu_count()} cores, native bfloat16: "
            f"{bf16}), {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")


def command_line(program: str, args: Sequence[str] | None = None) -> str:
    """``program`` and its arguments (default: this process's) as a shell would take them back:
    an argument with a space, such as a model named "tv fcn_resnet50", keeps its quotes."""
    args = sys.argv[1:] if args is None else args
    return " ".join([program, shlex.join(args)]) if args else program


def made_by(command: str) -> str:
    """The sentence under a table's title: ``Made by `command` on <machine>.``"""
    return f"Made by `{command}` on {machine()}."
