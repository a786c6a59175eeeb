"""The architecture drawings name rnlib classes that exist, and light the part asked for
(headless: the root conftest selects matplotlib's Agg backend)."""

import importlib
import re
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Text

from rnlib import figures

DRAWINGS = [(figures.figure2, figures.FIGURE2_PARTS), (figures.figure3, figures.FIGURE3_PARTS),
            (figures.figure_decoders, ())]


def texts(fig: plt.Figure) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


def boxes(fig: plt.Figure) -> list[FancyBboxPatch]:
    return [p for ax in fig.axes for p in ax.patches if isinstance(p, FancyBboxPatch)]


def lit(fig: plt.Figure) -> set[str]:
    return {p.get_gid() for p in boxes(fig) if to_hex(p.get_facecolor()) == figures.HIGHLIGHT}


def resolve(dotted: str) -> object:
    """rnlib.blocks.RCU -> the class; a dotted name that does not resolve raises."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("draw, parts", DRAWINGS, ids=["figure2", "figure3", "decoders"])
def test_every_rnlib_name_in_a_drawing_exists(draw, parts):
    fig = draw()
    names = set(re.findall(r"rnlib(?:\.\w+)+", texts(fig)))
    assert names, "the drawing names no rnlib class"
    for name in names:
        resolve(name)
    assert not lit(fig)  # nothing is lit unless asked
    plt.close(fig)


def test_figure2_labels_the_cascade():
    fig = figures.figure2()
    text = texts(fig)
    for label in ["layer1 · 1/4", "layer4 · 1/32", "RefineNet-1", "RefineNet-4", "RefineNetBlock",
                  "rnlib.backbones.ResNetBackbone", "rnlib.models.refinenet.RefineNetDecoder",
                  "rnlib.models.SegmentationModel", "classifier · 1/4"]:
        assert label in text, label
    plt.close(fig)


def test_figure3_labels_the_block_and_its_parts():
    fig = figures.figure3()
    text = texts(fig)
    for label in ["rnlib.blocks.RefineNetBlock", "rnlib.blocks.RCU", "MultiResolutionFusion",
                  "ChainedResidualPooling", "5x5 max pool", "identity\nshortcut", "RCU x2",
                  "output: RCU x3"]:
        assert label in text, label
    plt.close(fig)


@pytest.mark.parametrize("draw, parts", DRAWINGS[:2], ids=["figure2", "figure3"])
def test_highlight_lights_exactly_the_boxes_of_its_part(draw, parts):
    for part in parts:
        fig = draw(highlight=part)
        on = lit(fig)
        assert on, f"highlight={part!r} lit nothing"
        assert all(part in gid.split(",") for gid in on)
        unlit = {p.get_gid() for p in boxes(fig)} - on
        assert all(part not in gid.split(",") for gid in unlit)
        plt.close(fig)


def test_figure3_lights_the_close_up_of_the_part():
    fig = figures.figure3(highlight="CRP")
    lit_axes = [ax.get_title(loc="left") for ax in fig.axes
                if any(to_hex(p.get_facecolor()) == figures.HIGHLIGHT for p in ax.patches)]
    assert lit_axes == ["(a) RefineNet block (Fig. 3a)", "(d) CRP: ChainedResidualPooling"]
    plt.close(fig)


@pytest.mark.parametrize("draw", [figures.figure2, figures.figure3])
def test_an_unknown_part_names_the_valid_ones(draw):
    with pytest.raises(ValueError, match="unknown part 'RCUs'.*choose one of"):
        draw(highlight="RCUs")


def test_the_readme_shows_the_drawings_that_the_script_writes():
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tools"))
    import make_figures

    shown = set(re.findall(r"\]\(docs/([\w.-]+\.png)\)", (root / "README.md").read_text()))
    assert shown and shown <= set(make_figures.DRAWINGS)
    assert all((root / "docs" / name).is_file() for name in make_figures.DRAWINGS)
