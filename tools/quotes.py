"""The numbers that README.md and the solution notebooks quote from recorded results, checked
against the recorded JSON files and rewritten from them.

A quoted number carries a marker right after it, an HTML comment that Markdown does not show:

    RefineNet leads FCN-8s by 11.4<!-- quote: lead("FCN-8s") --> points
    in your run, FCN-8s reached 45.0<!-- quote comparison: value("FCN-8s", "mIoU") -->

It names the recorded file (``SOURCES``: ``reference``, the default, is
rnlib/results/reference.json; ``quick`` is rnlib/results/quick.json, the course's regime with
three seeds, and ``quick_fp32`` benchmarks/quick_fp32.json, the same in float32;
``comparison`` benchmarks/comparison.json, ``rnlib compare``'s defaults, and ``quick_batch4``
a cheaper course regime that was tried and did not decide) and an expression
over its rows: numbers, ``+ - * /``, ``max``, ``min`` and the functions of :class:`Recorded`
(metrics in points). A benchmark's per-seed records are sources too, named by file stem: any
benchmarks/NAME.json of the layout that benchmarks/coarse_paths.py and benchmarks/probes.py
write, with the functions of :class:`SeedRecords` (numbers as recorded):

    the layer3 path costs N.N<!-- quote coarse_paths: drop("dropout 0", "path layer3 off") -->

The number (``N.N`` here) keeps the decimals and the sign (a leading ``+``) that the text
gives it. A whole table stands between ``<!-- begin quote SOURCE table -->`` and
``<!-- end quote -->``: the columns ``TABLES[SOURCE]``, one row per recorded model.

    python tools/quotes.py           # check: one line per quote that disagrees, exit 1
    python tools/quotes.py --write   # rewrite every quote from the recorded files

After re-recording (``python benchmarks/reference.py``, ``rnlib compare``, a benchmark),
``--write`` updates README.md and solutions/, and regenerates notebooks/
(tools/make_exercises.py); the words around the numbers are still the author's to read again.
tests/test_quotes.py runs the check.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import operator
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import make_exercises
import nbformat

from rnlib.compare import Row, per_seed, seed_margins
from rnlib.results import QUICK, REFERENCE, load_rows
from rnlib.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"reference": REFERENCE, "quick": QUICK,
           "comparison": ROOT / "benchmarks" / "comparison.json",
           "quick_fp32": ROOT / "benchmarks" / "quick_fp32.json",
           "quick_batch4": ROOT / "benchmarks" / "quick_batch4.json"}
RECORDS = ROOT / "benchmarks"  # RECORDS/NAME.json of per-seed records: the source NAME
RAW = ("gflops", "params_m", "latency_ms", "train_peak_mib", "train_s", "steps", "lr")
REFINENET = "RefineNet (4-cascade)"  # what margins are measured against
AS_TRAINED = "as trained"  # the key of a per-seed record that drop() measures from
QUOTE = re.compile(r"(?P<number>[+-]?\d+(?:\.\d+)?)?<!-- quote(?: (?P<source>\w+))?: "
                   r"(?P<expr>.+?) -->")
DEFAULT = "reference"  # the source of a quote that names none
TABLE = re.compile(r"<!-- begin quote (?P<source>\w+) table -->\n(?P<table>.*?)"
                   r"<!-- end quote -->", re.S)
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
             ast.Div: operator.truediv}


class QuoteError(ValueError):
    """A quote that cannot be read: its sentence names the place and the fix."""


class Source:
    """One recorded file that quotes may name: its rows by name (``KIND``: models, variants),
    and the functions (``FUNCTIONS``, its methods) that a quote's expression may call."""

    KIND = "row"
    FUNCTIONS: tuple[str, ...] = ()

    def __init__(self, source: str, rows: dict[str, Any]):
        self.source, self.rows = source, rows

    def row(self, name: str) -> Any:
        if name not in self.rows:
            raise QuoteError(f"{self.source} has no {self.KIND} {name!r} (it has "
                             f"{list(self.rows)})")
        return self.rows[name]

    def functions(self) -> dict[str, Callable]:
        return {name: getattr(self, name) for name in self.FUNCTIONS}


class Recorded(Source):
    """The rows of one recorded file and what a quote may take from them. Metrics ("mIoU",
    "boundary F" or a class's name) are in points: means, spreads (standard deviation) and
    margins over the seeds."""

    KIND = "model"
    FUNCTIONS = ("value", "seed", "spread", "margin", "lead", "curve", "overtakes", "highest",
                 "lowest")

    def __init__(self, source: str, rows: list[Row]):
        super().__init__(source, {r.name: r for r in rows})

    def _seeds(self, name: str, metric: str) -> list[float]:
        try:
            return per_seed(self.row(name), metric)
        except ValueError as err:
            raise QuoteError(str(err)) from err

    def value(self, name: str, key: str) -> float:
        """A metric's mean; ``plateau`` or ``swing`` in points; or one of the fields ``RAW``
        as recorded (``gflops``, ``train_peak_mib``, ``train_s``, ``steps``...)."""
        row = self.row(name)
        if key in ("plateau", "swing"):
            return 100 * getattr(row, key)
        if key in RAW:
            return getattr(row, key)
        return 100 * statistics.fmean(self._seeds(name, key))

    def seed(self, name: str, metric: str, seed: int) -> float:
        """A metric of one seed's run (as :meth:`SeedRecords.seed` for per-seed records)."""
        row = self.row(name)
        if seed not in row.seeds:
            raise QuoteError(f"{self.source}: {name} has no seed {seed} (seeds {row.seeds})")
        return 100 * self._seeds(name, metric)[row.seeds.index(seed)]

    def spread(self, name: str, metric: str) -> float:
        """A metric's standard deviation over the seeds."""
        return 100 * statistics.pstdev(self._seeds(name, metric))

    def margin(self, name: str, metric: str = "mIoU", of: str = "mean") -> float:
        """``name``'s metric minus RefineNet's, seed by seed: their mean, "min" or "max"."""
        self._seeds(name, metric)  # a clear error for an unknown metric
        margins = seed_margins(self.row(name), self.row(REFINENET), metric)
        return {"mean": statistics.fmean, "min": min, "max": max}[of](margins)

    def lead(self, name: str, metric: str = "mIoU", of: str = "mean") -> float:
        """RefineNet's metric minus ``name``'s (:meth:`margin` the other way round)."""
        return -self.margin(name, metric, {"min": "max", "max": "min"}.get(of, of))

    def curve(self, name: str, step: int, key: str = "miou") -> float:
        """The validation curve at ``step``, the mean of the seeds: mIoU in points, or
        ``key="seconds"`` of training by then."""
        curves = self.row(name).curves
        if any(step not in c["step"] for c in curves):
            raise QuoteError(f"{self.source}: {name} has no evaluation at step {step}")
        mean = statistics.fmean(c[key][c["step"].index(step)] for c in curves)
        return 100 * mean if key == "miou" else mean

    def overtakes(self, name: str, other: str, every_seed: bool = False) -> int:
        """The first evaluation step from which ``name``'s validation mIoU stays above
        ``other``'s to the end: on the mean of the seeds, or in every seed."""
        mine, theirs = self.row(name).curves, self.row(other).curves
        steps = mine[0]["step"]
        gaps = [[a["miou"][i] - b["miou"][i] for a, b in zip(mine, theirs)]
                for i in range(len(steps))]
        lead = [min(gap) > 0 if every_seed else sum(gap) > 0 for gap in gaps]
        if not lead[-1]:
            raise QuoteError(f"{self.source}: {name} does not end above {other}")
        behind = [i for i, leads in enumerate(lead) if not leads]
        return steps[behind[-1] + 1 if behind else 0]

    def highest(self, key: str, *names: str) -> float:
        """The largest :meth:`value` of ``key`` among ``names`` (default: every model)."""
        return max(self.value(n, key) for n in names or self.rows)

    def lowest(self, key: str, *names: str) -> float:
        """The smallest :meth:`value` of ``key`` among ``names`` (default: every model)."""
        return min(self.value(n, key) for n in names or self.rows)

    def mean_spread(self, name: str, metric: str) -> str:
        """A table's cell: the mean, with its spread when there are several seeds."""
        seeds = len(self._seeds(name, metric))
        spread = f" ± {self.spread(name, metric):.1f}" if seeds > 1 else ""
        return f"{self.value(name, metric):.1f}{spread}"


class SeedRecords(Source):
    """A benchmark's per-seed records, ``{"command": ..., "results": {variant: [{key: number,
    ..., "seed": s}, ...]}}`` (benchmarks/coarse_paths.py, benchmarks/probes.py), and what a
    quote may take from them: numbers as recorded, over the seeds."""

    KIND = "variant"
    FUNCTIONS = ("mean", "std", "seed", "lowest_seed", "highest_seed", "drop", "diff", "count")

    def by_seed(self, variant: str, key: str) -> dict[int, float]:
        """``key`` of ``variant``, seed by seed: numbers, each seed having one."""
        records = self.row(variant)
        lacking = [r["seed"] for r in records if key not in r]
        if lacking:
            keys = sorted({k for r in records for k in r} - {"seed"})
            raise QuoteError(f"{self.source}: {variant!r} has no {key!r} in seeds {lacking} "
                             f"(it has {keys})")
        values = {r["seed"]: r[key] for r in records}
        odd = [s for s, v in values.items() if not isinstance(v, (int, float)) or math.isnan(v)]
        if odd:
            raise QuoteError(f"{self.source}: {variant!r} has no number for {key!r} in seeds "
                             f"{odd} (NaN: nothing was measured there)")
        return values

    def mean(self, variant: str, key: str) -> float:
        return statistics.fmean(self.by_seed(variant, key).values())

    def std(self, variant: str, key: str) -> float:
        """The sample standard deviation over the seeds."""
        values = list(self.by_seed(variant, key).values())
        if len(values) < 2:
            raise QuoteError(f"{self.source}: std({variant!r}, {key!r}) needs two seeds or "
                             f"more, and {variant!r} has {len(values)}")
        return statistics.stdev(values)

    def seed(self, variant: str, key: str, seed: int) -> float:
        """``key`` of ``variant`` in one seed."""
        values = self.by_seed(variant, key)
        if seed not in values:
            raise QuoteError(f"{self.source}: {variant!r} has no seed {seed} (it has "
                             f"{sorted(values)})")
        return values[seed]

    def lowest_seed(self, variant: str, key: str) -> float:
        return min(self.by_seed(variant, key).values())

    def highest_seed(self, variant: str, key: str) -> float:
        return max(self.by_seed(variant, key).values())

    def drop(self, variant: str, key: str) -> float:
        """What switching a part off costs: the mean of ``"as trained"`` minus that of ``key``
        (``"path layer3 off"``, ``"CRP of layer2's block off"``)."""
        return self.mean(variant, AS_TRAINED) - self.mean(variant, key)

    def diff(self, variant: str, other: str, key: str) -> float:
        """``variant``'s ``key`` minus ``other``'s, seed by seed (the same seed): their mean."""
        mine, theirs = self.by_seed(variant, key), self.by_seed(other, key)
        if sorted(mine) != sorted(theirs):
            raise QuoteError(f"{self.source}: {variant!r} has seeds {sorted(mine)} and "
                             f"{other!r} {sorted(theirs)}: diff pairs the same seeds")
        return statistics.fmean(mine[s] - theirs[s] for s in mine)

    def count(self, variant: str) -> int:
        """The number of seeds."""
        return len(self.row(variant))


def _gflops(q: Recorded, n: str) -> str:
    return f"{q.value(n, 'gflops'):.2f}"


COLUMNS: dict[str, Callable[[Recorded, str], str]] = {
    "test mIoU": lambda q, n: q.mean_spread(n, "mIoU"),
    "boundary F": lambda q, n: q.mean_spread(n, "boundary F"),
    "line IoU": lambda q, n: q.mean_spread(n, "line"),
    "dot IoU": lambda q, n: q.mean_spread(n, "dot"),
    "GFLOPs @128": _gflops,  # GFLOPs are counted at the recording's crop: the reference's
    "GFLOPs @96": _gflops,  # and the course's (cpu-quick)
    "train memory (MiB)": lambda q, n: f"{q.value(n, 'train_peak_mib'):.0f}",
    "last 20%": lambda q, n: f"{q.value(n, 'plateau'):+.1f}",
    "swing": lambda q, n: f"{q.value(n, 'swing'):.1f}",
    "training (s)": lambda q, n: f"{q.value(n, 'train_s'):.0f}",
}
TABLES = {
    "reference": ["test mIoU", "boundary F", "line IoU", "dot IoU", "GFLOPs @128",
                  "train memory (MiB)", "last 20%", "swing"],
    "quick": ["test mIoU", "boundary F", "line IoU", "dot IoU"],
    "comparison": ["test mIoU", "boundary F", "line IoU", "dot IoU", "GFLOPs @96",
                   "training (s)"],
}


def seed_results(path: Path) -> dict[str, list[dict]] | None:
    """The ``results`` of ``path`` if it holds per-seed records (:class:`SeedRecords`), else
    None (a recorded file of another layout)."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise QuoteError(f"{path} is not JSON ({err}): record it again") from err
    results = data.get("results") if isinstance(data, dict) else None
    if isinstance(results, dict) and all(
            isinstance(records, list) and all(isinstance(r, dict) and "seed" in r
                                              for r in records)
            for records in results.values()):
        return results
    return None


def load_sources() -> dict[str, Source]:
    """Every recorded file that quotes may name: ``SOURCES``, and the per-seed records in
    ``RECORDS`` by file stem."""
    sources: dict[str, Source] = {name: Recorded(name, load_rows(path))
                                  for name, path in SOURCES.items()}
    for path in sorted(RECORDS.glob("*.json")):
        if path.stem not in sources and (results := seed_results(path)) is not None:
            sources[path.stem] = SeedRecords(path.stem, results)
    return sources


def evaluate(expr: str, recorded: Source) -> float:
    """The value of a quote's expression (numbers, + - * /, and the functions of its source,
    ``max`` and ``min``, called with such expressions)."""
    functions = recorded.functions() | {"max": max, "min": min}

    def value(node: ast.AST) -> object:
        match node:
            case ast.Constant(value=int() | float() | str() as constant):
                return constant
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                return -value(operand)
            case ast.BinOp(left=left, op=op, right=right) if type(op) in OPERATORS:
                return OPERATORS[type(op)](value(left), value(right))
            case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords) if (
                    name in functions):
                try:
                    return functions[name](*map(value, args),
                                           **{k.arg: value(k.value) for k in keywords})
                except (TypeError, KeyError) as err:
                    raise QuoteError(f"{name}(...) cannot take these arguments ({err})") from err
        raise QuoteError(f"{ast.unparse(node)!r} is not allowed: use numbers, + - * / and "
                         f"{', '.join(functions)}")

    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as err:
        raise QuoteError(f"{expr!r} is not an expression ({err.msg})") from err
    result = value(tree.body)
    if not isinstance(result, (int, float)):
        raise QuoteError(f"{expr!r} gives {result!r}, not a number")
    return result


def formatted(value: float, like: str) -> str:
    """``value`` written as ``like`` is: its decimals, and a ``+`` if it has one."""
    decimals = len(like.partition(".")[2])
    return f"{value:{'+' if like.startswith('+') else ''}.{decimals}f}"


def requote(text: str, sources: dict[str, Source], where: str) -> tuple[str, list[str]]:
    """``text`` with every quote written from ``sources``, and one line for each quote that
    disagreed (``where``: the document, for those lines)."""
    problems = []

    def place(match: re.Match) -> str:
        return f"{where}, line {text.count(chr(10), 0, match.start()) + 1}"

    def source(match: re.Match) -> Source:
        name = match["source"] or DEFAULT
        if name not in sources:
            raise QuoteError(f"{place(match)}: no recorded file {name!r} (nor per-seed records "
                             f"benchmarks/{name}.json); choose one of {list(sources)}")
        return sources[name]

    def table(match: re.Match) -> str:
        recorded = source(match)
        if recorded.source not in TABLES:
            raise QuoteError(f"{place(match)}: {recorded.source} has no table; tables quote "
                             f"{list(TABLES)}")
        columns = TABLES[recorded.source]
        new = "\n" + markdown_table(["model", *columns], [
            [n, *(COLUMNS[c](recorded, n) for c in columns)] for n in recorded.rows]) + "\n\n"
        if new != match["table"]:
            problems.append(f"{place(match)}: the {recorded.source} table differs from "
                            f"{recorded.source}'s record")
        start, end = (i - match.start() for i in match.span("table"))
        return match[0][:start] + new + match[0][end:]  # str.replace would fill an empty table

    def number(match: re.Match) -> str:
        recorded, old = source(match), match["number"]
        if old is None:
            raise QuoteError(f"{place(match)}: a quote marker with no number right before it")
        try:
            new = formatted(evaluate(match["expr"], recorded), old)
        except QuoteError as err:
            raise QuoteError(f"{place(match)}: {err}") from err
        if new != old:
            problems.append(f"{place(match)}: {old}, but {recorded.source} gives {new} "
                            f"({match['expr']})")
        return new + match[0][len(old):]

    return QUOTE.sub(number, TABLE.sub(table, text)), problems


def run(write: bool) -> list[str]:
    """Check (or, with ``write``, rewrite) every quote in README.md and solutions/; the lines
    of the quotes that disagreed."""
    sources, problems = load_sources(), []
    readme = ROOT / "README.md"
    text, found = requote(readme.read_text(), sources, "README.md")
    problems += found
    if write and found:
        readme.write_text(text)
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        changed = []
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown":
                cell.source, found = requote(cell.source, sources,
                                             f"solutions/{path.name}, cell {i}")
                changed += found
        problems += changed
        if write and changed:
            path.write_text(make_exercises._text(nb))
            make_exercises.main([path.name])  # notebooks/ follows
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true",
                        help="rewrite every quoted number and table from the recorded files")
    args = parser.parse_args(argv)
    try:
        problems = run(args.write)
    except QuoteError as err:
        print(f"quotes: {err}", file=sys.stderr)
        return 2
    for line in problems:
        print(("rewrote " if args.write else "") + line)
    if problems and not args.write:
        print("the quotes disagree with the recorded results: run python tools/quotes.py "
              "--write, then read the sentences around them again")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
