"""The numbers that README.md and the solution notebooks quote from recorded results, checked
against the recorded JSON files and rewritten from them.

A quoted number carries a marker right after it, an HTML comment that Markdown does not show:

    RefineNet leads FCN-8s by 11.4<!-- quote: lead("FCN-8s") --> points
    in your run, FCN-8s reached 45.0<!-- quote comparison: value("FCN-8s", "mIoU") -->

It names the recorded file (``SOURCES``: ``reference``, the default, is
rnlib/results/reference.json; ``comparison`` is benchmarks/comparison.json) and an expression
over its rows: numbers, ``+ - * /``, ``max``, ``min`` and the functions of :class:`Recorded`
(metrics in points). The number keeps the decimals and the sign (a leading ``+``) that the text
gives it. A whole table stands between ``<!-- begin quote SOURCE table -->`` and
``<!-- end quote -->``: the columns ``TABLES[SOURCE]``, one row per recorded model.

    python tools/quotes.py           # check: one line per quote that disagrees, exit 1
    python tools/quotes.py --write   # rewrite every quote from the recorded files

After re-recording (``python benchmarks/reference.py``, ``rnlib compare``), ``--write`` updates
README.md and solutions/, and regenerates notebooks/ (tools/make_exercises.py); the words
around the numbers are still the author's to read again. tests/test_quotes.py runs the check.
"""

from __future__ import annotations

import argparse
import ast
import operator
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import make_exercises
import nbformat

from rnlib.compare import Row, per_seed, seed_margins
from rnlib.results import REFERENCE, load_rows
from rnlib.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"reference": REFERENCE, "comparison": ROOT / "benchmarks" / "comparison.json"}
RAW = ("gflops", "params_m", "latency_ms", "train_peak_mib", "train_s", "steps", "lr")
REFINENET = "RefineNet (4-cascade)"  # what margins are measured against
QUOTE = re.compile(r"(?P<number>[+-]?\d+(?:\.\d+)?)?<!-- quote(?: (?P<source>\w+))?: "
                   r"(?P<expr>.+?) -->")
DEFAULT = "reference"  # the source of a quote that names none
TABLE = re.compile(r"<!-- begin quote (?P<source>\w+) table -->\n(?P<table>.*?)"
                   r"<!-- end quote -->", re.S)
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
             ast.Div: operator.truediv}


class QuoteError(ValueError):
    """A quote that cannot be read: its sentence names the place and the fix."""


class Recorded:
    """The rows of one recorded file and what a quote may take from them. Metrics ("mIoU",
    "boundary F" or a class's name) are in points: means, spreads (standard deviation) and
    margins over the seeds."""

    def __init__(self, source: str, rows: list[Row]):
        self.source, self.rows = source, {r.name: r for r in rows}

    def row(self, name: str) -> Row:
        if name not in self.rows:
            raise QuoteError(f"{self.source} has no model {name!r} (it has {list(self.rows)})")
        return self.rows[name]

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


COLUMNS: dict[str, Callable[[Recorded, str], str]] = {
    "test mIoU": lambda q, n: q.mean_spread(n, "mIoU"),
    "boundary F": lambda q, n: q.mean_spread(n, "boundary F"),
    "line IoU": lambda q, n: q.mean_spread(n, "line"),
    "dot IoU": lambda q, n: q.mean_spread(n, "dot"),
    "GFLOPs @128": lambda q, n: f"{q.value(n, 'gflops'):.2f}",
    "train memory (MiB)": lambda q, n: f"{q.value(n, 'train_peak_mib'):.0f}",
    "last 20%": lambda q, n: f"{q.value(n, 'plateau'):+.1f}",
    "swing": lambda q, n: f"{q.value(n, 'swing'):.1f}",
    "training (s)": lambda q, n: f"{q.value(n, 'train_s'):.0f}",
}
TABLES = {
    "reference": ["test mIoU", "boundary F", "line IoU", "dot IoU", "GFLOPs @128",
                  "train memory (MiB)", "last 20%", "swing"],
    "comparison": ["test mIoU", "boundary F", "line IoU", "dot IoU", "GFLOPs @128",
                   "training (s)"],
}


def load_sources() -> dict[str, Recorded]:
    """Every recorded file that quotes may name."""
    return {name: Recorded(name, load_rows(path)) for name, path in SOURCES.items()}


def evaluate(expr: str, recorded: Recorded) -> float:
    """The value of a quote's expression (numbers, + - * /, and :class:`Recorded`'s
    functions, ``max`` and ``min``, called with such expressions)."""
    functions = {name: getattr(recorded, name) for name in (
        "value", "spread", "margin", "lead", "curve", "overtakes", "highest", "lowest")}
    functions |= {"max": max, "min": min}

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


def requote(text: str, sources: dict[str, Recorded], where: str) -> tuple[str, list[str]]:
    """``text`` with every quote written from ``sources``, and one line for each quote that
    disagreed (``where``: the document, for those lines)."""
    problems = []

    def place(match: re.Match) -> str:
        return f"{where}, line {text.count(chr(10), 0, match.start()) + 1}"

    def source(match: re.Match) -> Recorded:
        name = match["source"] or DEFAULT
        if name not in sources:
            raise QuoteError(f"{place(match)}: no recorded file {name!r}; choose one of "
                             f"{list(sources)}")
        return sources[name]

    def table(match: re.Match) -> str:
        recorded = source(match)
        columns = TABLES[recorded.source]
        new = "\n" + markdown_table(["model", *columns], [
            [n, *(COLUMNS[c](recorded, n) for c in columns)] for n in recorded.rows]) + "\n\n"
        if new != match["table"]:
            problems.append(f"{place(match)}: the {recorded.source} table differs from "
                            f"{recorded.source}'s record")
        return match[0].replace(match["table"], new)

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
