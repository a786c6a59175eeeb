"""Time every solution notebook, run top to bottom in a fresh kernel, slowest first.

    .venv/bin/python benchmarks/course_time.py                      # full budgets
    RNLIB_BUDGET_SCALE=0.2 .venv/bin/python benchmarks/course_time.py   # as the tests run them

Writes benchmarks/course_time.md (or --out).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "course_time.md"))
    args = parser.parse_args()
    times = {}
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        times[path.stem] = time.perf_counter() - start
        print(f"{path.stem}: {times[path.stem]:.0f} s", flush=True)
    scale = os.environ.get("RNLIB_BUDGET_SCALE", "1")
    lines = [f"# Time of each solution notebook (RNLIB_BUDGET_SCALE={scale})", "",
             f"{os.cpu_count()} cores; fresh kernel per notebook; `benchmarks/course_time.py`.",
             "", "| notebook | seconds |", "|---|---|"]
    lines += [f"| {name} | {t:.0f} |" for name, t in sorted(times.items(), key=lambda kv: -kv[1])]
    lines.append(f"| **total** | **{sum(times.values()):.0f}** |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
