"""The one helper behind every markdown table that rnlib and its benchmarks write."""

import torch

from rnlib.tables import made_by, markdown_table


def test_a_markdown_table_has_its_header_separator_and_rows():
    assert markdown_table(["model", "ms"], [["FCN-8s", 12], ["**all**", ""]]) == (
        "| model | ms |\n|---|---|\n| FCN-8s | 12 |\n| **all** | |")


def test_made_by_names_the_command_and_the_machine():
    line = made_by("python benchmarks/speed.py --mode recipe")
    assert line.startswith("Made by `python benchmarks/speed.py --mode recipe` on ")
    assert f"torch {torch.__version__}" in line and f"{torch.get_num_threads()} threads" in line
