"""The RefineNet blocks (paper §3.2) against hand-written formulas and the classic mistakes."""

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnlib.blocks import (
    RCU,
    ChainedResidualPooling,
    MultiResolutionFusion,
    RefineNetBlock,
    max_pool5,
)


def test_rcu_is_x_plus_two_relu_convs():
    rcu = RCU(8)
    x = torch.randn(2, 8, 9, 11)  # has negative values: an in-place ReLU would change the shortcut
    expected = x + rcu.conv2(F.relu(rcu.conv1(F.relu(x))))
    before = x.clone()
    assert torch.allclose(rcu(x), expected, atol=1e-6)
    assert torch.equal(x, before), "RCU must not modify its input in place"


def test_rcu_with_zero_convs_is_identity():
    rcu = RCU(4)
    for p in rcu.parameters():
        nn.init.zeros_(p)
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(rcu(x), x)


@pytest.mark.parametrize("align_corners", [True, False])
def test_fusion_resizes_to_the_largest_input_by_size(align_corners):
    mrf = MultiResolutionFusion([16, 32, 8], 8, align_corners=align_corners)
    xs = [torch.randn(2, 16, 15, 17), torch.randn(2, 32, 8, 9), torch.randn(2, 8, 4, 5)]
    out = mrf(xs)
    assert out.shape == (2, 8, 15, 17)  # 8x9 -> 15x17 is not a factor of 2
    expected = sum(F.interpolate(c(x), size=(15, 17), mode="bilinear",
                                 align_corners=align_corners)
                   if x.shape[-2:] != (15, 17) else c(x) for c, x in zip(mrf.convs, xs))
    assert torch.allclose(out, expected, atol=1e-5)


def test_fusion_single_input_passes_through():
    mrf = MultiResolutionFusion([8], 8)
    x = torch.randn(1, 8, 6, 7)
    assert mrf([x]) is x
    assert sum(p.numel() for p in mrf.parameters()) == 0


def test_fusion_rejects_paths_that_do_not_match():
    mrf = MultiResolutionFusion([16, 32], 16)
    with pytest.raises(ValueError, match="path 1 expects"):
        mrf([torch.randn(1, 16, 8, 8), torch.randn(1, 16, 4, 4)])
    with pytest.raises(ValueError, match="built for 2 paths"):
        mrf([torch.randn(1, 16, 8, 8)])


@pytest.mark.parametrize("channels_last", [False, True])
def test_index_free_pooling_equals_5x5_max_pool(channels_last):
    x = torch.randn(2, 3, 13, 10)
    x[:, :, 4:9, 2:7] = 0.0  # ties, as after a ReLU
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = F.max_pool2d(x, 5, stride=1, padding=2)
    assert torch.equal(max_pool5(x), expected)
    assert max_pool5(x).is_contiguous(memory_format=torch.channels_last) == channels_last
    with torch.inference_mode():
        assert torch.equal(ChainedResidualPooling.pool(x), expected)


def test_pooling_with_gradients_sends_each_to_one_maximum():
    x = torch.zeros(1, 1, 5, 5, requires_grad=True)  # every window is all ties
    ChainedResidualPooling.pool(x).sum().backward()
    reference = torch.zeros(1, 1, 5, 5, requires_grad=True)
    F.max_pool2d(reference, 5, 1, 2).sum().backward()
    assert torch.equal(x.grad, reference.grad)


def _chain(crp, x):
    x = F.relu(x)
    out, path = x, x
    for c in crp.convs:
        path = c(F.max_pool2d(path, 5, 1, 2))
        out = out + path
    return out


def _parallel(crp, x):
    """The classic mistake: every block pools the input instead of the previous block."""
    x = F.relu(x)
    return x + sum(c(F.max_pool2d(x, 5, 1, 2)) for c in crp.convs)


@pytest.mark.parametrize("blocks", [2, 4])
def test_crp_is_a_chain_not_parallel(blocks):
    crp = ChainedResidualPooling(6, num_blocks=blocks)
    x = torch.randn(2, 6, 12, 12)
    out = crp(x)
    assert torch.allclose(out, _chain(crp, x), atol=1e-5)
    assert not torch.allclose(out, _parallel(crp, x), atol=1e-3)


def test_crp_improved_order_is_a_different_model():
    plain = ChainedResidualPooling(6, 2, order="pool-conv")
    improved = ChainedResidualPooling(6, 2, order="conv-pool")
    improved.load_state_dict(plain.state_dict())
    x = torch.randn(1, 6, 10, 10)
    assert not torch.allclose(plain(x), improved(x), atol=1e-3)
    relu = F.relu(x)
    p1 = F.max_pool2d(improved.convs[0](relu), 5, 1, 2)
    p2 = F.max_pool2d(improved.convs[1](p1), 5, 1, 2)
    assert torch.allclose(improved(x), relu + p1 + p2, atol=1e-5)


def test_crp_rejects_unknown_order():
    with pytest.raises(ValueError, match="order must be one of"):
        ChainedResidualPooling(4, order="parallel")


def _stated(pattern: str) -> int:
    """A number that ChainedResidualPooling's docstring states: the one place for it."""
    found = re.search(pattern, ChainedResidualPooling.__doc__.replace("\n", " "))
    assert found, f"ChainedResidualPooling's docstring no longer says {pattern!r}"
    return int(found[1])


RECEPTIVE_FIELD = r"3x3 convolutions \(the default\) reach (\d+)x\1 positions"


def _reach(num_blocks: int, kernel_size: int) -> int:
    """Side of CRP's receptive field, measured on the module itself: one positive input position,
    every weight positive, so each max pooling and convolution carries it to every output whose
    window holds it; the windows are symmetric, so the square it reaches is the receptive field."""
    crp = ChainedResidualPooling(1, num_blocks, kernel_size)
    for c in crp.convs:
        nn.init.constant_(c.weight, 1.0)
    x = torch.zeros(1, 1, 61, 61)
    x[..., 30, 30] = 1.0
    with torch.no_grad():
        rows = torch.nonzero(crp(x)[0, 0].any(dim=1))
    return int(rows.max() - rows.min()) + 1


def test_crp_receptive_field_is_the_one_its_docstring_states():
    assert _reach(4, 3) == _stated(RECEPTIVE_FIELD)
    assert _reach(4, 1) == _stated(r"1x1 convolutions \(Light-Weight RefineNet\), (\d+)x\1")
    assert _reach(0, 3) == 1 and _reach(2, 3) == 13  # each block adds (5 - 1) + (3 - 1)


def test_crp_receptive_field_in_input_pixels_is_positions_times_stride():
    side = _stated(RECEPTIVE_FIELD)
    doc = ChainedResidualPooling.__doc__.replace("\n", " ")
    pixels = {int(stride): int(px) for px, stride in re.findall(r"(\d+) at 1/(\d+)", doc)}
    assert pixels == {s: side * s for s in (4, 8, 16, 32)}


def test_the_prose_gives_crp_the_receptive_field_its_docstring_states():
    root = Path(__file__).resolve().parents[1]
    texts = [root / "README.md", *(root / "docs").glob("*.md"), *(root / "benchmarks").glob("*.*"),
             *(root / "solutions").glob("*.ipynb"), *(root / "rnlib").rglob("*.py")]
    stated = {p.relative_to(root).as_posix(): {int(n) for n in re.findall(
        r"(\d+)x\1 positions", p.read_text())} for p in texts if p.suffix in (".md", ".py", ".ipynb")}
    assert {"README.md", "benchmarks/crp_probe.py", "rnlib/blocks.py"} <= {
        name for name, sides in stated.items() if sides}
    assert all(s <= {_stated(RECEPTIVE_FIELD)} for s in stated.values()), stated


def test_refinenet_block_shapes_and_layout():
    block = RefineNetBlock([32, 64], 32, rcus_per_path=[2, 0], crp_blocks=4, out_rcus=3)
    out = block([torch.randn(2, 32, 16, 20), torch.randn(2, 64, 8, 10)])
    assert out.shape == (2, 32, 16, 20)
    assert [len(a) for a in block.adapt] == [2, 0]
    assert len(block.pool.convs) == 4 and len(block.out) == 3


def test_light_weight_block_has_only_1x1_convs_and_no_rcu():
    block = RefineNetBlock([16, 16], 16, rcus_per_path=0, out_rcus=0, kernel_size=1)
    kernels = {m.kernel_size for m in block.modules() if isinstance(m, nn.Conv2d)}
    assert kernels == {(1, 1)}
    assert not any(isinstance(m, RCU) for m in block.modules())


@pytest.mark.parametrize("make", [lambda: RCU(6), lambda: ChainedResidualPooling(6, 3),
                                  lambda: MultiResolutionFusion([6, 4], 6)],
                         ids=["RCU", "CRP", "fusion"])
def test_in_place_sums_give_the_gradients_of_the_formulas(make):
    """The blocks add in place on their convolutions' new outputs: autograd must agree with
    the out-of-place formula, for the weights and for the input."""
    torch.manual_seed(0)
    block = make()
    shapes = [(2, 6, 9, 7)] if not isinstance(block, MultiResolutionFusion) else [
        (2, 6, 9, 7), (2, 4, 5, 4)]
    xs = [torch.randn(s, requires_grad=True) for s in shapes]

    def formula(inputs):
        if isinstance(block, RCU):
            x = inputs[0]
            return x + block.conv2(F.relu(block.conv1(F.relu(x))))
        if isinstance(block, ChainedResidualPooling):
            return _chain(block, inputs[0])
        return sum(F.interpolate(c(x), size=(9, 7), mode="bilinear", align_corners=True)
                   if x.shape[-2:] != (9, 7) else c(x) for c, x in zip(block.convs, inputs))

    got = block(xs[0]) if len(xs) == 1 else block(xs)
    grads = torch.autograd.grad(got.square().sum(), [*xs, *block.parameters()])
    expected = formula(xs)
    want = torch.autograd.grad(expected.square().sum(), [*xs, *block.parameters()])
    assert torch.allclose(got, expected, atol=1e-5)
    for g, w in zip(grads, want):
        assert torch.allclose(g, w, atol=1e-4, rtol=1e-4)
