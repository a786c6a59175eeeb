"""What every checker promises, whatever the solution: rnlib's own components pass, stubs
pass through, the student's random state is left alone, seeds give hidden variants. The
solutions students write, right and wrong, are in tests/corpus (tests/test_checker_corpus.py)."""

import inspect
import re
import sys

import pytest
import torch
from corpus import ex03_rcu
from torch import nn

from rnlib import blocks, checks, grade
from rnlib.checks.scalar import Mistake, diagnose
from rnlib.checks.tolerance import agrees
from rnlib.models.refinenet import RefineNetDecoder

CHECKERS = [getattr(checks, name) for name in checks.__all__ if name.startswith("check_")]


@pytest.mark.parametrize("check,component", [
    (checks.check_rcu, blocks.RCU),
    (checks.check_fusion, blocks.MultiResolutionFusion),
    (checks.check_crp, blocks.ChainedResidualPooling),
    (checks.check_refinenet_block, blocks.RefineNetBlock),
])
def test_rnlib_blocks_pass_when_the_library_is_allowed(check, component, capsys):
    check(component, allow_library=True)
    assert capsys.readouterr().out.endswith("all checks passed.\n")


@pytest.mark.parametrize("check,component", [
    (checks.check_rcu, blocks.RCU),
    (checks.check_fusion, blocks.MultiResolutionFusion),
    (checks.check_crp, blocks.ChainedResidualPooling),
    (checks.check_refinenet_block, blocks.RefineNetBlock),
])
def test_rnlib_blocks_are_refused_as_a_solution(check, component):
    with pytest.raises(checks.UsesLibraryError, match=rf"uses rnlib's implementation "
                                                      rf"\(rnlib.blocks.{component.__name__}\)"):
        check(component)


def test_the_decoders_own_forward_is_refused_as_a_solution():
    with pytest.raises(checks.UsesLibraryError, match=r"RefineNetDecoder.forward"):
        checks.check_decoder(lambda decoder, features: decoder(features),
                             RefineNetDecoder((64, 128, 256, 512), 3, widths=(32, 16)))


def test_rnlib_decoder_passes_its_own_forward(capsys):
    checks.check_decoder(lambda decoder, features: decoder(features),
                         RefineNetDecoder((64, 128, 256, 512), 3, widths=(32, 16)),
                         allow_library=True)
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("check", CHECKERS, ids=lambda c: c.__name__)
def test_every_checker_takes_a_seed_and_an_allow_library_keyword(check):
    parameters = inspect.signature(check).parameters
    assert parameters["seed"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["seed"].default is None and parameters["allow_library"].default is False


def test_a_stub_raises_its_not_implemented_error_untouched():
    class Stub(nn.Module):
        def __init__(self, channels):
            super().__init__()
            raise NotImplementedError("Exercise 3.1: build the RCU")

    def stub(pred, target, ignore_index=255):
        raise NotImplementedError("Exercise 1.1: pixel accuracy")

    with pytest.raises(NotImplementedError, match="Exercise 3.1"):
        checks.check_rcu(Stub)
    with pytest.raises(NotImplementedError, match="Exercise 1.1"):
        checks.check_pixel_accuracy(stub)


def test_a_failure_is_an_assertion_error_with_a_hint():
    class NoResidual(blocks.RCU):
        def forward(self, x):
            return self.conv2(torch.relu(self.conv1(torch.relu(x))))

    with pytest.raises(AssertionError, match=r"^RCU: .*\n  \(built as NoResidual\(\d+\).*\)\nHint: "):
        checks.check_rcu(NoResidual, allow_library=True)


def test_checking_leaves_the_notebooks_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    checks.check_refinenet_block(blocks.RefineNetBlock, allow_library=True)
    assert torch.equal(torch.rand(3), expected)


def test_the_visible_checks_are_deterministic_and_a_seed_changes_them():
    class Parallel(blocks.ChainedResidualPooling):
        def forward(self, x):
            x = torch.relu(x)
            return x + sum(conv(self.pool(x)) for conv in self.convs)

    def message(seed):
        with pytest.raises(checks.ExerciseError) as error:
            checks.check_crp(Parallel, seed=seed, allow_library=True)
        return str(error.value)

    assert message(None) == message(None) == message(checks.DEFAULT_SEED)
    assert message(5) != message(None) and "in parallel" in message(5)


def test_the_block_checker_tries_several_settings(monkeypatch):
    seen = []
    real = blocks.RefineNetBlock.__init__

    def spy(self, *args, **kwargs):
        seen.append((args, kwargs))
        real(self, *args, **kwargs)

    monkeypatch.setattr(blocks.RefineNetBlock, "__init__", spy)
    checks.check_refinenet_block(blocks.RefineNetBlock, allow_library=True)
    settings = {repr(s) for s in seen}
    assert len(settings) >= 4
    assert any(kw.get("crp_blocks", 4) != 4 and kw.get("out_rcus", 3) != 3 for _, kw in seen)
    assert any(out not in channels for (channels, out), _ in seen)


def test_every_exercise_of_the_registry_names_a_checker():
    assert list(grade.EXERCISES) == ["1.1", "1.2", "2.1", "2.2", "3.1", "4.1", "5.1", "6.1",
                                     "6.2", "7.1", "8.1", "9.1", "10.1"]


def test_a_notebooks_global_settings_reach_neither_the_verdict_nor_back(capsys):
    torch.set_grad_enabled(False)
    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        checks.check_rcu(ex03_rcu.correct_as_in_the_paper)
        assert not torch.is_grad_enabled() and torch.get_default_dtype() == torch.float64
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_grad_enabled(True)
        torch.set_default_dtype(torch.float32)
        torch.use_deterministic_algorithms(False)
    assert capsys.readouterr().out.endswith("all checks passed.\n")


def test_the_library_watch_leaves_a_profiler_in_place(capsys):
    def profiler(frame, event, arg):
        pass

    sys.setprofile(profiler)
    try:
        checks.check_rcu(ex03_rcu.correct_as_in_the_paper)
        assert sys.getprofile() is profiler
    finally:
        sys.setprofile(None)


def test_the_tolerance_is_relative_to_the_value_or_a_stated_scale():
    assert agrees(0.1, 0.1 * (1 + 1.5e-8)) and agrees(3e-9, 3e-9 * (1 + 1e-6))
    assert not agrees(0.1, 0.1 * (1 + 1e-4)) and not agrees(3e-9, 3.1e-9)
    assert not agrees(1e-12, 0.0) and agrees(1e-12, 0.0, scale=0.1)
    assert agrees(torch.tensor([100.0, 1.0]), torch.tensor([100.0, 1.0005]))
    assert not agrees(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 1.0]))


def test_a_near_miss_prints_the_digits_that_tell_the_values_apart():
    def poly_lr(step, total_steps, base_lr, power=0.9):
        return base_lr * (1 - step / total_steps) ** power * (1 + 2e-5)

    with pytest.raises(checks.ExerciseError) as error:
        checks.check_poly_lr(poly_lr)
    got, expected = re.search(r"you give (\S+), expected (\S+)", str(error.value)).groups()
    assert got != expected and float(expected) == pytest.approx(float(got), rel=1e-4)


def test_the_nearest_of_two_agreeing_mistakes_names_the_cause():
    near, exact = Mistake(0.1318854, "near", "hint"), Mistake(lambda: 0.131885, "exact", "hint")
    with pytest.raises(checks.ExerciseError, match=r"^x: exact\n"):
        diagnose("x", 0.131885, 0.2, "the rule", mistakes=[near, exact])
    with pytest.raises(checks.ExerciseError, match=r"^x: you give 0.1319, expected 0.2\n.*the rule"):
        diagnose("x", 0.1319, 0.2, "the rule", mistakes=[near, exact])
