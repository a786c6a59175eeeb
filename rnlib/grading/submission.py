"""A submission: which course notebook it is, and which of its cells define each exercise.

The exercises come from the course's list for the notebook, never from the student's cells: the
notebook is named by the teacher (``--notebook``), or by the id that ``tools/make_exercises.py``
writes into each course notebook's metadata (``metadata["rnlib"]["notebook"]``), or by the
file's name (which contains the course notebook's, e.g. ``alice_03_residual_conv_unit.ipynb``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def one_line(err: BaseException) -> str:
    """An exception as one line (its first), or its type's name when it has no message."""
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__


def read(data: bytes) -> Any:
    """The notebook in ``data``; ValueError saying why when it is not one."""
    import nbformat

    if not data:
        raise ValueError("the file is empty")
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
        nbformat.validate(notebook)
    except Exception as err:
        raise ValueError(f"not a Jupyter notebook ({one_line(err)})") from None
    return notebook


def identify(notebook: Any, path: Path, known: list[str]) -> str:
    """The course notebook (one of ``known``) that a submission is: the id in its metadata,
    else the one whose name its file name contains. ValueError when none is found."""
    meta = notebook.get("metadata", {}).get("rnlib", {})
    stated = meta.get("notebook") if isinstance(meta, dict) else None
    if stated in known:
        return stated
    for candidate in known:
        if candidate in path.stem:
            return candidate
    raise ValueError("not a course notebook with exercises (its file name contains none of "
                     "the course's, such as 03_residual_conv_unit, and its metadata names "
                     "none); name it with --notebook")


def _python(source: str) -> ast.Module | None:
    """A cell's code as Python (IPython's magics translated), or None if it is not valid."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError):
        return None


def _bound(tree: ast.AST) -> set[str]:
    """The names a cell binds at the notebook's top level: definitions, imports, assignments
    (also inside if, for, with and try blocks, not inside functions or classes)."""
    names: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif not isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                                   ast.GeneratorExp)):
            names |= _bound(node)
    return names


def defining_cells(sources: list[str], names: Iterable[str]) -> dict[str, int | None]:
    """For each name, the index (in ``sources``) of the last cell that binds it, or None."""
    bound = [_bound(tree) if (tree := _python(s)) is not None else set() for s in sources]
    return {name: max((i for i, b in enumerate(bound) if name in b), default=None)
            for name in names}
