"""The checkers accept rnlib's reference and reject every classic mistake with its own message."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnlib import blocks, checks
from rnlib.metrics import ConfusionMatrix
from rnlib.models.refinenet import RefineNetDecoder


def _rejects(check, candidate, words):
    with pytest.raises(checks.ExerciseError, match=words):
        check(candidate)


# -- references pass -------------------------------------------------------------------------
def _pixel_accuracy(pred, target, ignore_index=255):
    keep = target != ignore_index
    return (pred[keep] == target[keep]).float().mean().item()


def _mean_iou(pred, target, num_classes, ignore_index=255):
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(pred, target)
    return cm.miou()


def _stage_sizes(h, w):
    sizes = []
    h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1  # conv1: 7x7, stride 2, padding 3
    h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1  # max pool: 3x3, stride 2, padding 1
    sizes.append((h, w))
    for _ in range(3):
        h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        sizes.append((h, w))
    return sizes


def _loss(logits, target):
    return F.cross_entropy(blocks.resize(logits, target.shape[-2:]), target, ignore_index=255)


def _decoder_forward(decoder, features):
    return decoder(features)


def _poly(step, total, base_lr, power=0.9):
    return base_lr * (1 - step / total) ** power


def _relative(costs, field, model, reference):
    return costs[model][field] / costs[reference][field]


def _fuse(conv, bn):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding, bias=True)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
    return fused


@pytest.mark.parametrize("check,reference", [
    (checks.check_pixel_accuracy, _pixel_accuracy),
    (checks.check_mean_iou, _mean_iou),
    (checks.check_stage_sizes, _stage_sizes),
    (checks.check_segmentation_loss, _loss),
    (checks.check_rcu, blocks.RCU),
    (checks.check_fusion, blocks.MultiResolutionFusion),
    (checks.check_crp, blocks.ChainedResidualPooling),
    (checks.check_refinenet_block, blocks.RefineNetBlock),
    (checks.check_poly_lr, _poly),
    (checks.check_relative_cost, _relative),
    (checks.check_crp_receptive_field, lambda n: 1 + 6 * n),
    (checks.check_fuse_conv_bn, _fuse),
])
def test_reference_passes(check, reference, capsys):
    check(reference)
    assert "all checks passed" in capsys.readouterr().out


def test_decoder_reference_passes(capsys):
    checks.check_decoder(_decoder_forward, RefineNetDecoder((64, 128, 256, 512), 3, widths=(32, 16)))
    assert "all checks passed" in capsys.readouterr().out


def test_stub_raises_not_implemented_untouched():
    class Stub(nn.Module):
        def __init__(self, channels):
            super().__init__()
            raise NotImplementedError("Exercise 3.1: build the RCU")

    with pytest.raises(NotImplementedError, match="Exercise 3.1"):
        checks.check_rcu(Stub)


# -- metrics mistakes ------------------------------------------------------------------------
def test_pixel_accuracy_counting_ignored_pixels():
    _rejects(checks.check_pixel_accuracy, lambda p, t, i=255: (p == t).float().mean().item(),
             "ignore index .* counted")


def test_mean_iou_mistakes():
    def absent_as_zero(pred, target, k, ignore_index=255):
        cm = ConfusionMatrix(k, ignore_index)
        cm.update(pred, target)
        return torch.nan_to_num(cm.iou()).mean().item()

    def counts_ignored(pred, target, k, ignore_index=255):
        cm = ConfusionMatrix(256, ignore_index=-1)
        cm.update(pred, target)
        return cm.iou()[:k].nanmean().item()

    _rejects(checks.check_mean_iou, absent_as_zero, "absent from both .* IoU 0")
    _rejects(checks.check_mean_iou, counts_ignored, "ignore index .* counted")


def test_stage_sizes_by_plain_division():
    _rejects(checks.check_stage_sizes, lambda h, w: [(h // r, w // r) for r in (4, 8, 16, 32)],
             "not multiples of 32")


def test_softmax_before_upsampling():
    def softmax_first(logits, target):
        probs = blocks.resize(logits.softmax(1), target.shape[-2:])
        return F.nll_loss(torch.log(probs), target, ignore_index=255)

    _rejects(checks.check_segmentation_loss, softmax_first, "softmax before upsampling")


# -- RCU mistakes ----------------------------------------------------------------------------
class _RCUBase(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)


class NoResidual(_RCUBase):
    def forward(self, x):
        return self.conv2(F.relu(self.conv1(F.relu(x))))


class ReluShortcut(_RCUBase):
    def forward(self, x):
        x = F.relu(x)
        return x + self.conv2(F.relu(self.conv1(x)))


class NoFirstRelu(_RCUBase):
    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class NoPadding(_RCUBase):
    def __init__(self, channels):
        super().__init__(channels)
        self.conv1.padding = (0, 0)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(F.relu(x))))


@pytest.mark.parametrize("cls,words", [
    (NoResidual, "residual connection is missing"),
    (ReluShortcut, "shortcut carries relu"),
    (NoFirstRelu, "first ReLU is missing"),
    (NoPadding, "stride 1 and padding"),
])
def test_rcu_mistakes(cls, words):
    _rejects(checks.check_rcu, cls, words)


def test_rcu_inplace_relu():
    # the input needs no grad for F.relu_ to run in place on it
    class Inplace(_RCUBase):
        def forward(self, x):
            x = x.detach()
            return x + self.conv2(F.relu(self.conv1(F.relu_(x))))

    _rejects(checks.check_rcu, Inplace, "changes its input in place")


# -- fusion mistakes -------------------------------------------------------------------------
class _FusionBase(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.single = len(in_channels) == 1 and in_channels[0] == out_channels
        self.convs = nn.ModuleList(nn.Conv2d(c, out_channels, 3, padding=1, bias=False)
                                   for c in in_channels) if not self.single else None


class FixedFactor(_FusionBase):
    def forward(self, xs):
        if self.single:
            return xs[0]
        out = self.convs[0](xs[0])
        for i, (c, x) in enumerate(zip(self.convs[1:], xs[1:]), 1):
            out = F.interpolate(out, scale_factor=1, mode="bilinear") if i > 1 else out
            up = F.interpolate(c(x), scale_factor=2 ** i, mode="bilinear")
            out = F.interpolate(out, size=up.shape[-2:], mode="bilinear") + up
        return out


class WrongWidth(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, max(in_channels), 3, padding=1, bias=False)
                                   for c in in_channels)

    def forward(self, xs):
        size = xs[0].shape[-2:]
        return sum(blocks.resize(c(x), size) for c, x in zip(self.convs, xs))


class ResizeBeforeConv(_FusionBase):
    def forward(self, xs):
        if self.single:
            return xs[0]
        size = xs[0].shape[-2:]
        return sum(c(blocks.resize(x, size)) for c, x in zip(self.convs, xs))


class SmallestResolution(_FusionBase):
    def forward(self, xs):
        if self.single:
            return xs[0]
        size = xs[-1].shape[-2:]
        return sum(blocks.resize(c(x), size) for c, x in zip(self.convs, xs))


@pytest.mark.parametrize("cls,words", [
    (FixedFactor, "fixed factor"),
    (WrongWidth, "weight shape"),
    (ResizeBeforeConv, "convolve each path first"),
    (SmallestResolution, "expected \\(15, 17\\), the largest"),
])
def test_fusion_mistakes(cls, words):
    _rejects(checks.check_fusion, cls, words)


# -- CRP mistakes ----------------------------------------------------------------------------
class _CRPBase(nn.Module):
    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False)
                                   for _ in range(num_blocks))

    @staticmethod
    def pool(x):
        return F.max_pool2d(x, 5, 1, 2)


class Parallel(_CRPBase):
    def forward(self, x):
        x = F.relu(x)
        return x + sum(c(self.pool(x)) for c in self.convs)


class LastOnly(_CRPBase):
    def forward(self, x):
        x = F.relu(x)
        path = x
        for c in self.convs:
            path = c(self.pool(path))
        return x + path


class NoInput(_CRPBase):
    def forward(self, x):
        path, out = F.relu(x), 0
        for c in self.convs:
            path = c(self.pool(path))
            out = out + path
        return out


class NoRelu(_CRPBase):
    def forward(self, x):
        out = path = x
        for c in self.convs:
            path = c(self.pool(path))
            out = out + path
        return out


@pytest.mark.parametrize("cls,words", [
    (Parallel, "in parallel .* CHAIN"),
    (LastOnly, "only the last block"),
    (NoInput, "input itself is missing"),
    (NoRelu, "leading ReLU is missing"),
])
def test_crp_mistakes(cls, words):
    _rejects(checks.check_crp, cls, words)


# -- the rest --------------------------------------------------------------------------------
def test_refinenet_block_in_the_wrong_order():
    class PoolFirst(blocks.RefineNetBlock):
        def forward(self, xs):
            xs = [a(x) for a, x in zip(self.adapt, xs)]
            return self.out(self.fuse([self.pool(x) if x.shape[1] == 16 else x for x in xs]))

    _rejects(checks.check_refinenet_block, PoolFirst, "differs from the reference")


def test_decoder_without_the_previous_block():
    def no_previous(decoder, features):
        x = None
        for block, group in zip(decoder.blocks, decoder.groups):
            paths = [decoder.adapt[str(i)](features[i]) for i in group]
            x = block(paths + ([x] if x is not None else []))
        return decoder.classifier(x)

    def only_stages(decoder, features):
        return decoder.classifier(decoder.adapt["0"](features[0])[:, :16])

    checks.check_decoder(no_previous, RefineNetDecoder((64, 128, 256, 512), 3, widths=(32, 16)))
    _rejects(lambda f: checks.check_decoder(f, RefineNetDecoder((64, 128, 256, 512), 3,
                                                                widths=(32, 16))),
             only_stages, "differ from the decoder")


def test_poly_lr_linear_decay():
    _rejects(checks.check_poly_lr, lambda s, t, lr, p=0.9: lr * (1 - s / t), "at step 50")


def test_relative_cost_upside_down():
    _rejects(checks.check_relative_cost, lambda c, f, m, r: c[r][f] / c[m][f], "upside down")


def test_receptive_field_without_the_convolutions():
    _rejects(checks.check_crp_receptive_field, lambda n: 1 + 4 * n, "measured 7")


def test_fuse_conv_bn_without_the_mean():
    def no_mean(conv, bn):
        fused = _fuse(conv, bn)
        with torch.no_grad():
            fused.bias.copy_(bn.bias)
        return fused

    _rejects(checks.check_fuse_conv_bn, no_mean, "does not equal")
