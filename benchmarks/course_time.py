"""Time every solution notebook, run top to bottom in a fresh kernel, slowest first.

The notebooks run in order in an empty scratch folder, as a student's first pass through the
course does: notebooks 08 and 09 reuse the RefineNet that 07 trained, and nothing else from
earlier runs.

    .venv/bin/python benchmarks/course_time.py                  # full budgets
    .venv/bin/python benchmarks/course_time.py --write-outputs  # and store the outputs
    RNLIB_BUDGET_SCALE=0.2 .venv/bin/python benchmarks/course_time.py --out "$(mktemp)"  # as tested

Writes benchmarks/course_time.md (or --out). ``--write-outputs`` saves each executed notebook
back into solutions/: the committed outputs are those of this full-budget run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from rnlib.tables import command_line, made_by, markdown_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from notebook_client import SteppingNotebookClient  # noqa: E402  (nbclient#312)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "course_time.md"))
    parser.add_argument("--write-outputs", action="store_true",
                        help="save the executed notebooks (with outputs) into solutions/")
    args = parser.parse_args()
    scale = os.environ.get("RNLIB_BUDGET_SCALE", "1")
    if args.write_outputs and float(scale) != 1:
        parser.error(f"--write-outputs stores the course's outputs: run it at full budget, not "
                     f"with RNLIB_BUDGET_SCALE={scale}")
    times = {}
    with tempfile.TemporaryDirectory(prefix="rnlib-course-") as scratch:
        for path in sorted((ROOT / "solutions").glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            start = time.perf_counter()

            def log(cell, cell_index, name=path.stem, t0=start, **_):  # where a run is
                print(f"  {name} cell {cell_index} at {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)

            SteppingNotebookClient(nb, timeout=900, kernel_name="python3", on_cell_execute=log,
                                   resources={"metadata": {"path": scratch}}).execute()
            times[path.stem] = time.perf_counter() - start
            print(f"{path.stem}: {times[path.stem]:.0f} s", flush=True)
            if args.write_outputs:
                nbformat.write(nb, path)
    total = sum(times.values())
    rows = [[name, f"{t:.0f}"] for name, t in sorted(times.items(), key=lambda kv: -kv[1])]
    rows.append(["**total**", f"**{total:.0f}** ({total // 60:.0f} min {total % 60:.0f} s)"])
    command = command_line("python benchmarks/course_time.py")
    lines = [f"# Time of each solution notebook (RNLIB_BUDGET_SCALE={scale})", "",
             f"{made_by(command)} A fresh kernel per notebook, in order, in an empty folder.",
             "", markdown_table(["notebook", "seconds"], rows)]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
