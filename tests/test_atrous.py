"""AtrousConv2d: its stacked taps give the same sums as nn.Conv2d in bfloat16 on the CPU, in
every regime of the rate against the map (taps inside, partly outside, only the centre left),
forward and backward; and it takes them only in bfloat16 on a CPU with AMX."""

import pytest
import torch
from torch import nn

import rnlib
from rnlib.models.atrous import AtrousConv2d, atrous_convs, taps_are_faster


def _integer_pair(kernel, dilation, bias, seed=0):
    """An nn.Conv2d and its AtrousConv2d twin with small integer weights: every product and sum
    is exact in bfloat16, so the two must agree to the last bit."""
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(4, 3, kernel, padding=tuple(d * (k // 2) for d, k in zip(dilation, kernel)),
                     dilation=dilation, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(torch.randint(-2, 3, conv.weight.shape, generator=g).float())
        if bias:
            conv.bias.copy_(torch.randint(-3, 4, conv.bias.shape, generator=g).float())
    return conv, atrous_convs(nn.Sequential(conv))[0]


@pytest.mark.parametrize("kernel,dilation,size", [
    ((3, 3), (2, 2), (9, 11)),  # every tap on the map
    ((3, 3), (6, 6), (9, 7)),   # the corner taps reach only part of it
    ((3, 3), (12, 12), (9, 12)),  # rate beyond the map: the centre tap alone
    ((3, 3), (4, 12), (9, 10)),   # rows keep their taps, columns lose them
    ((5, 3), (3, 2), (10, 8)),    # a non-square kernel
])
@pytest.mark.parametrize("bias", [True, False])
def test_bf16_sums_equal_the_convolution(kernel, dilation, size, bias):
    conv, atrous = _integer_pair(kernel, dilation, bias)
    assert type(atrous) is AtrousConv2d
    x = torch.randint(-2, 3, (2, 4, *size)).float()
    expected = conv(x)
    assert torch.equal(atrous(x), expected)  # float32: nn.Conv2d's own kernel
    for layout in (torch.contiguous_format, torch.channels_last):
        got = atrous.to(torch.bfloat16).taps(x.to(torch.bfloat16).contiguous(
            memory_format=layout))
        assert got.dtype == torch.bfloat16 and got.shape == expected.shape
        assert torch.equal(got.float(), expected), f"{layout}: taps shifted the wrong way"
        atrous.float()


def test_gradients_under_autocast_equal_the_convolution():
    conv, _ = _integer_pair((3, 3), (6, 6), True)
    twin = AtrousConv2d(4, 3, 3, padding=6, dilation=6)
    twin.load_state_dict(conv.state_dict())
    x = torch.randint(-2, 3, (2, 4, 9, 7)).float()
    grads = []
    for module, forward in ((conv, conv), (twin, twin.taps)):
        inputs = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(inputs)
        assert out.dtype == torch.bfloat16
        out.float().sum().backward()
        grads.append((inputs.grad, module.weight.grad, module.bias.grad))
    for reference, got in zip(*grads):
        assert torch.equal(reference, got)


@pytest.mark.parametrize("amx", [True, False])
def test_the_taps_run_in_bf16_on_a_cpu_with_amx_only(monkeypatch, amx):
    """Where the CPU has AMX (oneDNN's bf16 kernel slows down with the rate) the taps; with
    AVX512-BF16 alone (its kernel keeps 0.5x fp32's time) and in float32, nn.Conv2d."""
    capabilities = {**torch.cpu.get_capabilities(), "amx_bf16": amx}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    taps_are_faster.cache_clear()
    try:
        assert taps_are_faster() is amx
        _, atrous = _integer_pair((3, 3), (6, 6), True)
        calls = []
        monkeypatch.setattr(AtrousConv2d, "taps", lambda self, x: calls.append(x.dtype) or x)
        x = torch.randint(-2, 3, (1, 4, 9, 7)).float()
        atrous(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            atrous(x)
        atrous.to(torch.bfloat16)(x.to(torch.bfloat16))
        assert calls == ([torch.float32, torch.bfloat16] if amx else [])
    finally:
        taps_are_faster.cache_clear()


def test_swapping_keeps_weights_and_draws_no_random_numbers():
    torch.manual_seed(0)
    plain = rnlib.build_model("deeplab-os8", num_classes=3, backbone="resnet18")
    after = torch.rand(3)
    assert any(isinstance(m, AtrousConv2d) for m in plain.modules())  # the ASPP's three rates
    torch.manual_seed(0)
    again = rnlib.build_model("deeplab-os8", num_classes=3, backbone="resnet18")
    assert torch.equal(torch.rand(3), after)
    state = plain.state_dict()
    assert state.keys() == again.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in again.state_dict().items())
    # the swap draws nothing: the same seed gives torchvision's ASPP the same weights
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead
    torch.manual_seed(1)
    head = DeepLabHead(512, 3, atrous_rates=(12, 24, 36))
    torch.manual_seed(1)
    swapped = atrous_convs(DeepLabHead(512, 3, atrous_rates=(12, 24, 36)))
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(),
                                                 swapped.state_dict().values()))


def test_only_dilated_same_convolutions_are_swapped():
    model = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=2, dilation=2),
                          nn.Conv2d(2, 2, 3, stride=2, padding=2, dilation=2),
                          nn.Conv2d(2, 2, 3, padding=0, dilation=2))
    kinds = [type(m) for m in atrous_convs(model)]
    assert kinds == [nn.Conv2d, AtrousConv2d, nn.Conv2d, nn.Conv2d]


def test_a_bf16_deeplab_exports_for_every_side(tmp_path):
    """torch.export keeps the plain convolution (the taps that reach a map depend on its size,
    which an exported program leaves open): rnlib export --amp works for DeepLab too."""
    from rnlib.export import export_model
    from rnlib.runtime import BF16Inference

    model = rnlib.build_model("deeplab-os8", num_classes=3, backbone="resnet18").eval()
    exported = export_model(BF16Inference(model), tmp_path / "deeplab.pt2", fmt="pt2")
    assert exported.min_side == 33
