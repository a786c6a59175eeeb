"""Every checker against the corpus of student-style solutions in tests/corpus: each correct
one passes (on the visible checks and on a hidden variant), each wrong one is rejected with the
message of its own mistake."""

import importlib
import pkgutil
import re
from collections import Counter

import corpus
import pytest

from rnlib import checks, grade

MODULES = [importlib.import_module(f"corpus.{m.name}") for m in pkgutil.iter_modules(corpus.__path__)]
HIDDEN_SEED = 11
BLOCKS = {"3.1", "4.1", "5.1", "6.1"}  # the block exercises need more: 8 wrong, 4 correct


def _solutions(kind):
    return [pytest.param(m, obj, id=f"{m.EXERCISE}-{name}") for m in MODULES
            for name, obj in vars(m).items() if name.startswith(f"{kind}_")]


def _message(module, obj, seed=None):
    with pytest.raises(checks.ExerciseError) as error:
        grade.EXERCISES[module.EXERCISE].check(obj, seed=seed)
    return str(error.value)


@pytest.mark.parametrize("seed", [None, HIDDEN_SEED])
@pytest.mark.parametrize("module,obj", _solutions("correct"))
def test_correct_solution_passes(module, obj, seed, capsys):
    grade.EXERCISES[module.EXERCISE].check(obj, seed=seed)
    out = capsys.readouterr().out
    assert out.strip().endswith("all checks passed.")
    note = getattr(obj, "NOTE", None)
    assert (note is None and "note:" not in out) or re.search(note, out)


@pytest.mark.parametrize("module,obj", _solutions("wrong"))
def test_wrong_solution_is_rejected_with_its_own_message(module, obj):
    message = _message(module, obj)
    assert re.search(obj.EXPECTED, message), message
    assert "\nHint: " in message


@pytest.mark.parametrize("module,obj", [p for p in _solutions("wrong")
                                        if p.values[0].EXERCISE in BLOCKS])
def test_a_hidden_variant_rejects_it_for_the_same_reason(module, obj):
    message = _message(module, obj, seed=HIDDEN_SEED)
    assert re.search(obj.EXPECTED, message), message


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.EXERCISE)
def test_each_mistake_gets_a_message_of_its_own(module):
    wrong = [obj for name, obj in vars(module).items() if name.startswith("wrong_")]
    messages = [_message(module, obj).split("\n")[0] for obj in wrong]
    assert len(set(messages)) == len(messages), Counter(messages).most_common(2)


def test_the_corpus_covers_every_exercise():
    wrong = Counter(m.EXERCISE for m in MODULES for n in vars(m) if n.startswith("wrong_"))
    correct = Counter(m.EXERCISE for m in MODULES for n in vars(m) if n.startswith("correct_"))
    assert set(wrong) == set(correct) == set(grade.EXERCISES)
    for exercise in grade.EXERCISES:
        least = (8, 4) if exercise in BLOCKS else (3, 2)
        assert wrong[exercise] >= least[0] and correct[exercise] >= least[1], exercise
