"""Every checker against the corpus of student-style solutions in tests/corpus: each correct
one passes, each wrong one is rejected with the message of its own mistake, and each that
uses the library's implementation of its exercise gets that verdict, on the visible checks
and on five hidden variants."""

import importlib
import pkgutil
import re
from collections import Counter

import corpus
import pytest

from rnlib import checks, grade

MODULES = [importlib.import_module(f"corpus.{m.name}") for m in pkgutil.iter_modules(corpus.__path__)]
SEEDS = [None, 11, 23, 37, 101, 2027]  # the visible checks, then five hidden variants
BLOCKS = {"3.1", "4.1", "5.1", "6.1"}  # the block exercises need more: 8 wrong, 4 correct


def _solutions(kind):
    return [pytest.param(m, obj, id=f"{m.EXERCISE}-{name}") for m in MODULES
            for name, obj in vars(m).items() if name.startswith(f"{kind}_")]


def _error(module, obj, seed=None):
    with pytest.raises(checks.ExerciseError) as error:
        grade.EXERCISES[module.EXERCISE].check(obj, seed=seed)
    return error.value


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("module,obj", _solutions("correct"))
def test_correct_solution_passes(module, obj, seed, capsys):
    grade.EXERCISES[module.EXERCISE].check(obj, seed=seed)
    out = capsys.readouterr().out
    assert out.strip().endswith("all checks passed.")
    note = getattr(obj, "NOTE", None)
    assert (note is None and "note:" not in out) or re.search(note, out)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("module,obj", _solutions("wrong"))
def test_wrong_solution_is_rejected_with_its_own_message(module, obj, seed):
    error = _error(module, obj, seed)
    assert re.search(obj.EXPECTED, str(error)), str(error)
    assert "\nHint: " in str(error) and not isinstance(error, checks.UsesLibraryError)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("module,obj", _solutions("library"))
def test_the_librarys_implementation_gets_a_verdict_of_its_own(module, obj, seed):
    error = _error(module, obj, seed)
    assert isinstance(error, checks.UsesLibraryError), str(error)
    assert re.search(r"^[\w ]+: it uses (rnlib|torch)'s implementation \([\w.]+\)", str(error))


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.EXERCISE)
def test_each_mistake_gets_a_message_of_its_own(module):
    wrong = [obj for name, obj in vars(module).items() if name.startswith("wrong_")]
    messages = [str(_error(module, obj)).split("\n")[0] for obj in wrong]
    assert len(set(messages)) == len(messages), Counter(messages).most_common(2)


def test_the_corpus_covers_every_exercise():
    def count(kind):
        return Counter(m.EXERCISE for m in MODULES for n in vars(m) if n.startswith(f"{kind}_"))

    wrong, correct, library = count("wrong"), count("correct"), count("library")
    assert set(wrong) == set(correct) == set(grade.EXERCISES)
    assert {"1.1", "1.2", "3.1", "4.1", "5.1", "6.1", "6.2", "7.1", "10.1"} <= set(library)
    for exercise in grade.EXERCISES:
        least = (8, 4) if exercise in BLOCKS else (3, 2)
        assert wrong[exercise] >= least[0] and correct[exercise] >= least[1], exercise
