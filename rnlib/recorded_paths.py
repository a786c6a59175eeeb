"""How recorded files (``rnlib compare``'s JSON, the reference that ships in the package) name
the runs they come from: by paths that hold on any machine, never by absolute ones.

A run inside the repository that holds the recorded file is named from the repository's root
(``benchmarks/reference-runs/refinenet/lr0.001-seed0/record.json``); any other run from the
recorded file's folder, with a leading ``./`` or ``../`` (``../runs/comparison/...``), so that a
reader tells the two apart.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

__all__ = ["repository_root", "recorded_path", "resolve_recorded"]

MARKERS = (".git", "pyproject.toml")  # what a repository's root folder holds


def repository_root(path: str | Path) -> Path | None:
    """The root of the repository that holds ``path`` (the nearest folder above it with a
    ``.git`` or a ``pyproject.toml``), or None when it is in none."""
    folder = Path(path).resolve().parent
    return next((f for f in (folder, *folder.parents)
                 if any((f / marker).exists() for marker in MARKERS)), None)


def recorded_path(path: str | Path, record: str | Path) -> str:
    """``path`` as the file ``record`` names it: from the root of ``record``'s repository when
    ``path`` is inside it, else from ``record``'s folder with a leading ``./`` or ``../``."""
    target, root = Path(path).resolve(), repository_root(record)
    if root is not None and target.is_relative_to(root):
        return target.relative_to(root).as_posix()
    relative = PurePosixPath(Path(os.path.relpath(target, Path(record).resolve().parent))
                             .as_posix())
    return str(relative) if relative.parts[0] == ".." else f"./{relative}"


def resolve_recorded(text: str, record: str | Path) -> Path:
    """The path that the file ``record`` names ``text`` (:func:`recorded_path`'s inverse); an
    absolute path, as older records hold, is taken as it is."""
    base = None if text.startswith(("./", "../")) else repository_root(record)
    return Path(os.path.normpath((base or Path(record).resolve().parent) / text))
