"""The one helper behind every markdown table that rnlib and its benchmarks write."""

import torch

from rnlib.tables import command_line, made_by, markdown_table


def test_a_markdown_table_has_its_header_separator_and_rows():
    assert markdown_table(["model", "ms"], [["FCN-8s", 12], ["**all**", ""]]) == (
        "| model | ms |\n|---|---|\n| FCN-8s | 12 |\n| **all** | |")


def test_made_by_names_the_command_and_the_machine():
    line = made_by("python benchmarks/speed.py --mode recipe")
    assert line.startswith("Made by `python benchmarks/speed.py --mode recipe` on ")
    assert f"torch {torch.__version__}" in line and f"{torch.get_num_threads()} threads" in line


def test_a_command_line_quotes_the_arguments_that_need_it(monkeypatch):
    import shlex

    args = ["--models", "RefineNet-101", "tv fcn_resnet50", "--repeats", "7"]
    line = command_line("python benchmarks/speed.py", args)
    assert line == "python benchmarks/speed.py --models RefineNet-101 'tv fcn_resnet50' --repeats 7"
    assert shlex.split(line)[2:] == args  # a shell gives the script the same arguments back
    monkeypatch.setattr("sys.argv", ["speed.py"])
    assert command_line("python benchmarks/speed.py") == "python benchmarks/speed.py"
