"""Every citation of the RefineNet paper (Lin et al., CVPR 2017, arXiv 1611.06612) in the
repository's prose names a section or figure that the paper has (and not its conclusion)."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The paper's numbered sections and its figures with their panels, as its text has them:
# 1 Introduction (1.1 Related Work), 2 Background, 3 Proposed Method (3.1 Multi-Path Refinement,
# Fig. 2a-c; 3.2 RefineNet, Fig. 3a-d; 3.3 Identity Mappings in RefineNet), 4 Experiments
# (4.1 Object Parsing, 4.2 Semantic Segmentation, 4.3 Variants of cascaded RefineNet, Fig. 7a-c),
# 5 Conclusion. Figures 1 and 4-6 show results; their panels are not cited here. §5 is left out
# on purpose: the conclusion only restates, so a citation cites the section that shows the fact.
SECTIONS = {"1", "1.1", "2", "3", "3.1", "3.2", "3.3", "4", "4.1", "4.2", "4.3"}
FIGURES = {"1": "", "2": "abc", "3": "abcd", "4": "", "5": "", "6": "", "7": "abc"}

NUMBER = r"(\d+(?:\.\d+)?)"
SECTION = re.compile(rf"(?:§|\bSec\.|\bSection)\s?{NUMBER}(?:\s?[-–]\s?{NUMBER})?")
FIGURE = re.compile(r"\bFig(?:ure)?s?\.?\s?(\d+)([a-z]?)\b")
# A citation whose parenthesis (or line) names another paper is that paper's, not RefineNet's
OTHER_PAPER = re.compile(r"\b(?!Lin\b)[A-Z][\w-]* et al\.|Light-Weight RefineNet|DeepLab")

TEXTS = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "rnlib").rglob("*.py"),
         *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "benchmarks").glob("*.md"),
         *(ROOT / "tools").glob("*.py"), *(ROOT / "solutions").glob("*.ipynb")]


def _context(text: str, at: int) -> str:
    """The parenthesis around position ``at`` of ``text``, or else its line."""
    depth = 0
    for i in range(at - 1, max(at - 400, -1), -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth < 0:
            close = text.find(")", at)
            return text[i:close + 1 if close >= 0 else len(text)]
    end = text.find("\n", at)
    return text[text.rfind("\n", 0, at) + 1:end if end >= 0 else len(text)]


def wrong_citations(text: str) -> list[str]:
    """The citations of RefineNet's sections and figures in ``text`` that the paper lacks."""
    wrong = []
    for match in SECTION.finditer(text):
        if not OTHER_PAPER.search(_context(text, match.start())) and any(
                number and number not in SECTIONS for number in match.groups()):
            wrong.append(match[0])
    for match in FIGURE.finditer(text):
        figure, panel = match.groups()
        if not OTHER_PAPER.search(_context(text, match.start())) and (
                figure not in FIGURES or panel not in FIGURES[figure]):
            wrong.append(match[0])
    return wrong


def _prose(path: Path) -> str:
    """What a reader of ``path`` sees: a notebook's cell sources (not its outputs), or the file."""
    if path.suffix == ".ipynb":
        return "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
    return path.read_text()


@pytest.mark.parametrize("text, wrong", [
    ("the cascades (Lin et al., §5.3, Fig. 7b)", ["§5.3"]),
    ("multi-scale evaluation (§5)", ["§5"]),
    ("RefineNet's variants (§4.3, Fig. 7d)", ["Fig. 7d"]),
    ("as Section 6 says; see §3.1-3.4", ["Section 6", "§3.1-3.4"]),
    ("the block (§3.2, Fig. 3a) and its ReLU (§3.3)", []),
    ("Light-Weight RefineNet (Nekrasov et al., BMVC 2018, §5.3)", []),
    ("FCN-8s (Long et al., 2015, Fig. 9) against RefineNet (Lin et al., §4)", []),
])
def test_a_citation_the_paper_lacks_is_found(text, wrong):
    assert wrong_citations(text) == wrong


def test_every_citation_of_the_paper_names_a_section_or_figure_it_has():
    texts = {path.relative_to(ROOT).as_posix(): _prose(path) for path in TEXTS}
    cited = sum(len(SECTION.findall(t)) + len(FIGURE.findall(t)) for t in texts.values())
    assert cited > 50, f"only {cited} citations found: is the scan still reading the repository?"
    wrong = {name: w for name, text in texts.items() if (w := wrong_citations(text))}
    assert not wrong, f"citations of sections or figures that Lin et al. (2017) lacks, or of its conclusion: {wrong}"
