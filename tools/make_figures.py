"""Draw the architecture figures that the README shows (rnlib.figures) into docs/.

    python tools/make_figures.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from rnlib import figures  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
DRAWINGS = {"figure2.png": figures.figure2, "figure3.png": figures.figure3,
            "decoders.png": figures.figure_decoders}


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    for name, draw in DRAWINGS.items():
        draw().savefig(DOCS / name, dpi=90, metadata={"Software": None})
        print(f"docs/{name}")


if __name__ == "__main__":
    main()
