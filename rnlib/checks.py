"""Exercise checkers: each takes the student's class or function, runs it against rnlib's
reference with the same weights, and raises AssertionError with a message that says what is
wrong and gives a hint. Each also recognises the classic mistakes for its component.

>>> from rnlib import checks
>>> checks.check_rcu(MyRCU)          # prints "RCU: all checks passed." or raises
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import blocks
from .metrics import ConfusionMatrix

__all__ = ["ExerciseError", "check_pixel_accuracy", "check_mean_iou", "check_stage_sizes",
           "check_segmentation_loss", "check_rcu", "check_fusion", "check_crp",
           "check_refinenet_block", "check_decoder", "check_poly_lr", "check_relative_cost",
           "check_crp_receptive_field", "check_fuse_conv_bn"]


class ExerciseError(AssertionError):
    """A check failed; the message says what is wrong and how to fix it."""


def _fail(component: str, what: str, hint: str) -> None:
    raise ExerciseError(f"{component}: {what}\nHint: {hint}")


def _passed(component: str) -> None:
    print(f"{component}: all checks passed.")


def _build(cls: Callable, component: str, *args, **kwargs):
    try:
        return cls(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as err:
        _fail(component, f"constructing it as {cls.__name__}{args} raised {type(err).__name__}: "
                         f"{err}", "it must take the same arguments as rnlib's version")


def _run(module: Callable, component: str, *inputs):
    try:
        return module(*inputs)
    except NotImplementedError:
        raise
    except Exception as err:
        _fail(component, f"calling it raised {type(err).__name__}: {err}",
              "run the cell above on a small input and read the traceback")


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def _copy_weights(reference: nn.Module, student: nn.Module, component: str) -> None:
    """Give the student's convolutions the reference's weights, in order of creation.

    A bias that only one side has is set to zero on that side, so that both compute the same.
    """
    ref, mine = _convs(reference), _convs(student)
    if len(ref) != len(mine):
        _fail(component, f"it has {len(mine)} nn.Conv2d layers, the reference has {len(ref)}",
              "check how many convolutions the paper's figure shows, and create them as "
              "nn.Conv2d modules in __init__ (not new ones inside forward)")
    with torch.no_grad():
        for i, (r, m) in enumerate(zip(ref, mine)):
            if r.weight.shape != m.weight.shape:
                _fail(component, f"convolution {i} has weight shape {tuple(m.weight.shape)}, "
                                 f"expected {tuple(r.weight.shape)}",
                      "check in/out channels and the kernel size (3x3 with padding 1)")
            if (m.stride, m.padding, m.dilation) != (r.stride, r.padding, r.dilation):
                _fail(component, f"convolution {i} has stride {m.stride}, padding {m.padding}, "
                                 f"dilation {m.dilation}; expected {r.stride}, {r.padding}, "
                                 f"{r.dilation}", "inside a block every convolution keeps the "
                                                  "size: stride 1 and padding kernel_size // 2")
            m.weight.copy_(r.weight)
            for a, b in ((m, r), (r, m)):
                if a.bias is not None:
                    a.bias.copy_(b.bias) if b.bias is not None else a.bias.zero_()


def _check_gradients(student: nn.Module, out: torch.Tensor, inputs: Sequence[torch.Tensor],
                     component: str) -> None:
    out.square().mean().backward()
    for x in inputs:
        if x.grad is None or not torch.isfinite(x.grad).all() or x.grad.abs().sum() == 0:
            _fail(component, "no gradient reaches the input",
                  "do not detach tensors, convert to numpy, or wrap forward in torch.no_grad()")
    for name, p in student.named_parameters():
        if p.grad is None:
            _fail(component, f"parameter {name!r} gets no gradient: it is not used in forward",
                  "use every layer you create in __init__")


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4)


# -- 01 data and metrics ----------------------------------------------------------------------
def _label_pairs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 4, (2, 12, 10), generator=g)
    target[torch.rand(target.shape, generator=g) < 0.15] = 255
    target[target == 3] = 2  # class 3 absent from the target...
    pred = torch.randint(0, 3, (2, 12, 10), generator=g)  # ...and from the prediction
    return pred, target


def check_pixel_accuracy(fn: Callable) -> None:
    """Exercise 1.1: ``fn(pred, target, ignore_index=255) -> float``."""
    name = "pixel_accuracy"
    pred, target = _label_pairs()
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    got = float(_run(fn, name, pred, target, 255))
    if abs(got - cm.pixel_accuracy()) > 1e-6:
        naive = float((pred == target).float().mean())
        if abs(got - naive) < 1e-6:
            _fail(name, "pixels under the ignore index (255) are counted",
                  "keep only target != ignore_index before comparing")
        _fail(name, f"got {got:.4f}, expected {cm.pixel_accuracy():.4f}",
              "correct pixels / valid pixels")
    _passed(name)


def check_mean_iou(fn: Callable) -> None:
    """Exercise 1.2: ``fn(pred, target, num_classes, ignore_index=255) -> float``."""
    name = "mean_iou"
    pred, target = _label_pairs()
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    got = float(_run(fn, name, pred, target, 4, 255))
    expected = cm.miou()
    if abs(got - expected) < 1e-6:
        return _passed(name)
    iou = cm.iou()
    if abs(got - float(torch.nan_to_num(iou).mean())) < 1e-6:
        _fail(name, "a class absent from both prediction and target counts as IoU 0",
              "average only over classes whose union is not empty")
    everything = ConfusionMatrix(256, ignore_index=-1)
    everything.update(pred, target)
    with_ignored = (everything.miou(), float(everything.iou()[:4].nanmean()))
    if any(abs(got - v) < 1e-6 for v in with_ignored):
        _fail(name, "pixels under the ignore index (255) are counted",
              "drop them first: keep = target != ignore_index")
    _fail(name, f"got {got:.4f}, expected {expected:.4f}",
          "IoU_c = TP / (TP + FP + FN); mIoU is their mean over the classes present")


# -- 02 why downsampling hurts ----------------------------------------------------------------
def check_stage_sizes(fn: Callable) -> None:
    """Exercise 2.1: ``fn(height, width) -> [(h, w) of layer1, layer2, layer3, layer4]``."""
    from .backbones import ResNetBackbone

    name = "stage_sizes"
    net = ResNetBackbone("resnet18").eval()
    for h, w in [(128, 128), (97, 130), (33, 65), (512, 375)]:
        with torch.no_grad():
            expected = [tuple(f.shape[-2:]) for f in net(torch.zeros(1, 3, h, w))]
        got = [tuple(int(v) for v in s) for s in _run(fn, name, h, w)]
        if got != expected:
            if h % 32 == 0 and w % 32 == 0:
                hint = "each stride-2 layer gives floor((n + 2 * pad - k) / 2) + 1"
            else:
                hint = ("for sides that are not multiples of 32 a plain division is wrong: a "
                        "stride-2 layer gives floor((n + 2 * pad - k) / 2) + 1, i.e. ceil(n / 2)")
            _fail(name, f"for a {h}x{w} input you give {got}, the network gives {expected}", hint)
    _passed(name)


def check_segmentation_loss(fn: Callable) -> None:
    """Exercise 2.2: ``fn(logits (N, K, h, w), target (N, H, W)) -> loss`` upsampling first."""
    name = "segmentation_loss"
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 7, generator=g) * 4
    target = torch.randint(0, 3, (2, 20, 28), generator=g)
    target[:, :3] = 255
    expected = F.cross_entropy(blocks.resize(logits, (20, 28)), target, ignore_index=255)
    got = _run(fn, name, logits, target)
    if not isinstance(got, torch.Tensor) or got.ndim != 0:
        _fail(name, "it must return a scalar tensor", "F.cross_entropy(...) returns one")
    if not torch.allclose(got, expected, atol=1e-5):
        softmax_first = F.nll_loss(torch.log(blocks.resize(logits.softmax(1), (20, 28))), target,
                                   ignore_index=255)
        if torch.allclose(got, softmax_first, atol=1e-4):
            _fail(name, "it applies softmax before upsampling (then log): unstable, and not the "
                        "loss on the upsampled logits", "upsample the logits, then "
                        "F.cross_entropy, which applies log-softmax itself")
        _fail(name, f"got {float(got):.4f}, expected {float(expected):.4f}",
              "resize the logits to the target's size (bilinear), then F.cross_entropy with "
              "ignore_index=255")
    huge = logits * 1e4
    if not torch.isfinite(_run(fn, name, huge, target)):
        _fail(name, "it is not finite for large logits", "let F.cross_entropy take the log-softmax")
    _passed(name)


# -- 03 Residual Conv Unit --------------------------------------------------------------------
def check_rcu(cls: type[nn.Module]) -> None:
    """Exercise 3.1: ``cls(channels)``, forward(x) -> x + conv2(relu(conv1(relu(x))))."""
    name = "RCU"
    torch.manual_seed(0)
    ref, student = blocks.RCU(8), _build(cls, name, 8)
    _copy_weights(ref, student, name)
    x = torch.randn(2, 8, 11, 13, requires_grad=True)
    before = x.detach().clone()
    out = _run(student, name, x)
    if not torch.equal(x.detach(), before):
        _fail(name, "it changes its input in place",
              "an in-place ReLU (nn.ReLU(inplace=True) or F.relu_) on x turns the shortcut into "
              "relu(x) + F(x); use F.relu(x)")
    if out.shape != x.shape:
        _fail(name, f"output shape {tuple(out.shape)} differs from input {tuple(x.shape)}",
              "use padding=1 with the 3x3 convolutions and keep the channel count")
    expected = ref(x)
    if not _close(out, expected):
        xd = x.detach()
        branch = ref.conv2(F.relu(ref.conv1(F.relu(xd))))
        if _close(out, branch):
            _fail(name, "the residual connection is missing: it returns only the convolutions",
                  "return x + out (paper Fig. 3b)")
        if _close(out, F.relu(xd) + branch):
            _fail(name, "the shortcut carries relu(x) instead of x",
                  "keep the original x for the sum; apply ReLU to a new variable")
        if _close(out, xd + ref.conv2(F.relu(ref.conv1(xd)))):
            _fail(name, "the first ReLU is missing", "the unit begins with ReLU (pre-activation)")
        _fail(name, "its output differs from the reference with the same weights",
              "order: ReLU, conv1, ReLU, conv2, then add the input")
    _check_gradients(student, out, [x], name)
    _passed(name)


# -- 04 Multi-Resolution Fusion ---------------------------------------------------------------
def check_fusion(cls: type[nn.Module]) -> None:
    """Exercise 4.1: ``cls(in_channels, out_channels)``, forward(list of maps) -> one map."""
    name = "MultiResolutionFusion"
    torch.manual_seed(0)
    in_channels, out_channels = [16, 32, 8], 8
    ref, student = blocks.MultiResolutionFusion(in_channels, out_channels), None
    student = _build(cls, name, in_channels, out_channels)
    _copy_weights(ref, student, name)
    # sizes as a ResNet gives them for a 60x68 input: not halvings of each other
    xs = [torch.randn(2, c, *hw, requires_grad=True)
          for c, hw in zip(in_channels, [(15, 17), (8, 9), (4, 5)])]
    out = _run(student, name, xs)
    if out.shape[1] != out_channels:
        _fail(name, f"the output has {out.shape[1]} channels, expected {out_channels}",
              "each path's 3x3 convolution maps its width to out_channels (the smallest width)")
    if tuple(out.shape[-2:]) != (15, 17):
        if tuple(out.shape[-2:]) in [(16, 18), (16, 20)]:
            _fail(name, f"the output is {tuple(out.shape[-2:])}, not the largest input's 15x17: "
                        f"it resizes by a fixed factor", "resize to the target size: "
                        "F.interpolate(x, size=largest.shape[-2:], mode='bilinear')")
        _fail(name, f"the output is {tuple(out.shape[-2:])}, expected (15, 17), the largest input",
              "upsample every path to the largest resolution among the inputs")
    if not _close(out, ref(xs)):
        _fail(name, "the output differs from the reference with the same weights",
              "convolve each path first, then resize it (bilinear, align_corners=False), then sum")
    _check_gradients(student, out, xs, name)
    single = _build(cls, name, [8], 8)
    x = torch.randn(1, 8, 6, 7)
    if not torch.equal(_run(single, name, [x]), x):
        _fail(name, "with one input of width out_channels it should pass the input through",
              "the top RefineNet block has a single path: no convolution, no resize")
    _passed(name)


# -- 05 Chained Residual Pooling --------------------------------------------------------------
def check_crp(cls: type[nn.Module]) -> None:
    """Exercise 5.1: ``cls(channels, num_blocks)``, forward(x) -> same shape."""
    name = "ChainedResidualPooling"
    torch.manual_seed(0)
    ref, student = blocks.ChainedResidualPooling(6, 3), _build(cls, name, 6, 3)
    _copy_weights(ref, student, name)
    x = torch.randn(2, 6, 14, 11, requires_grad=True)
    out = _run(student, name, x)
    if out.shape != x.shape:
        _fail(name, f"output shape {tuple(out.shape)} differs from input {tuple(x.shape)}",
              "5x5 max pooling with stride 1 and padding 2 keeps the size")
    if _close(out, ref(x)):
        _check_gradients(student, out, [x], name)
        return _passed(name)
    xd = F.relu(x.detach())

    def pool(t):
        return F.max_pool2d(t, 5, 1, 2)

    convs = ref.convs
    parallel = xd + sum(c(pool(xd)) for c in convs)
    path, paths = xd, []
    for c in convs:
        path = c(pool(path))
        paths.append(path)
    if _close(out, parallel):
        _fail(name, "the pooling blocks run in parallel on the input; CRP is a CHAIN",
              "feed each block the previous block's output: path = conv(pool(path))")
    if _close(out, paths[-1]) or _close(out, xd + paths[-1]):
        _fail(name, "only the last block's output is used",
              "add every block's output to the running sum (out = out + path)")
    if _close(out, sum(paths)):
        _fail(name, "the input itself is missing from the sum", "start the sum with relu(x)")
    if _close(out, x.detach() + sum(paths)) or _close(out, ref.convs[0](pool(x.detach()))):
        _fail(name, "the leading ReLU is missing", "CRP starts with x = relu(x)")
    _fail(name, "its output differs from the reference with the same weights",
          "x = relu(x); out = path = x; for each block: path = conv(maxpool5x5(path)); "
          "out = out + path")


# -- 06 the RefineNet block and cascade -------------------------------------------------------
def check_refinenet_block(cls: type[nn.Module]) -> None:
    """Exercise 6.1: ``cls(in_channels, out_channels)`` with the reference's defaults."""
    name = "RefineNetBlock"
    torch.manual_seed(0)
    ref = blocks.RefineNetBlock([16, 32], 16, rcus_per_path=[2, 0])
    student = _build(cls, name, [16, 32], 16, rcus_per_path=[2, 0])
    _copy_weights(ref, student, name)
    xs = [torch.randn(2, 16, 12, 14, requires_grad=True), torch.randn(2, 32, 6, 7,
                                                                       requires_grad=True)]
    out = _run(student, name, xs)
    if out.shape != (2, 16, 12, 14):
        _fail(name, f"output shape {tuple(out.shape)}, expected (2, 16, 12, 14)",
              "fusion brings every path to out_channels at the largest resolution")
    if not _close(out, ref(xs)):
        _fail(name, "its output differs from the reference with the same weights",
              "create the parts in the order adapt (RCUs per path), fuse, pool, out, so that the "
              "weights line up, and apply them in that order (paper Fig. 3a)")
    _check_gradients(student, out, xs, name)
    _passed(name)


def check_decoder(fn: Callable, decoder: nn.Module) -> None:
    """Exercise 6.2: ``fn(decoder, features) -> logits`` runs rnlib's RefineNetDecoder by hand."""
    name = "cascade forward"
    torch.manual_seed(0)
    decoder = decoder.eval()
    sizes = [(16, 18), (8, 9), (4, 5), (2, 3)]
    features = [torch.randn(1, c, *hw) for c, hw in zip((64, 128, 256, 512), sizes)]
    expected = decoder(features)
    got = _run(fn, name, decoder, features)
    if got.shape != expected.shape:
        _fail(name, f"output shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
              "the last block works at the finest resolution (1/4) and the classifier gives "
              "num_classes channels")
    if not _close(got, expected):
        _fail(name, "the logits differ from the decoder's own forward",
              "go coarse to fine: block k takes the adapted stage features plus the previous "
              "block's output, appended last")
    _passed(name)


# -- 07 training ------------------------------------------------------------------------------
def check_poly_lr(fn: Callable) -> None:
    """Exercise 7.1: ``fn(step, total_steps, base_lr, power=0.9) -> lr``."""
    name = "poly_lr"
    for step, total in [(0, 100), (50, 100), (99, 100), (100, 100), (7, 13)]:
        expected = 0.01 * (1 - step / total) ** 0.9
        got = float(_run(fn, name, step, total, 0.01, 0.9))
        if abs(got - expected) > 1e-9:
            _fail(name, f"at step {step} of {total} you give {got:.6f}, expected {expected:.6f}",
                  "lr = base_lr * (1 - step / total_steps) ** power")
    _passed(name)


# -- 08 baselines -----------------------------------------------------------------------------
def check_relative_cost(fn: Callable) -> None:
    """Exercise 8.1: ``fn(costs, field, model, reference) -> costs[model][field] / ...``."""
    name = "relative_cost"
    costs = {"refinenet": {"gmacs": 2.9, "latency_ms": 37.0},
             "dilated-os8": {"gmacs": 6.3, "latency_ms": 40.0},
             "fcn8s": {"gmacs": 1.2, "latency_ms": 14.0}}
    for field, model, ref in [("gmacs", "dilated-os8", "refinenet"),
                              ("latency_ms", "refinenet", "fcn8s")]:
        expected = costs[model][field] / costs[ref][field]
        got = float(_run(fn, name, costs, field, model, ref))
        if abs(got - expected) > 1e-9:
            if abs(got - 1 / expected) < 1e-9:
                _fail(name, "the ratio is upside down", "model's value / reference's value")
            _fail(name, f"{field} of {model} relative to {ref}: got {got}, expected {expected}",
                  "costs[model][field] / costs[reference][field]")
    _passed(name)


# -- 09 ablations -----------------------------------------------------------------------------
def check_crp_receptive_field(fn: Callable) -> None:
    """Exercise 9.1: ``fn(num_blocks) -> side of the receptive field of CRP's output``."""
    name = "crp_receptive_field"
    for n in (1, 2, 4):
        crp = blocks.ChainedResidualPooling(1, n)
        for c in crp.convs:
            nn.init.constant_(c.weight, 1.0)
        # a max pooling passes gradient to one pixel per window; an average pooling has the
        # same window and passes it to all, so the gradient's support is the receptive field
        crp.pool = lambda t: F.avg_pool2d(t, 5, 1, 2)
        x = torch.zeros(1, 1, 61, 61, requires_grad=True)
        crp(x + 1.0)[0, 0, 30, 30].backward()
        reach = torch.nonzero(x.grad[0, 0]).float()
        expected = int(reach[:, 0].max() - reach[:, 0].min()) + 1
        got = int(_run(fn, name, n))
        if got != expected:
            _fail(name, f"for {n} blocks you give {got}, measured {expected}",
                  "each block adds a 5x5 pooling and a 3x3 convolution: (5 - 1) + (3 - 1) pixels")
    _passed(name)


# -- 10 deployment ----------------------------------------------------------------------------
def check_fuse_conv_bn(fn: Callable) -> None:
    """Exercise 10.1: ``fn(conv, bn) -> one nn.Conv2d`` equal to bn(conv(x)) in eval mode."""
    name = "fuse_conv_bn"
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    nn.init.uniform_(bn.weight, 0.5, 1.5)
    nn.init.uniform_(bn.bias, -0.5, 0.5)
    bn.eval()
    fused = _run(fn, name, conv, bn)
    if not isinstance(fused, nn.Conv2d):
        _fail(name, f"it returns {type(fused).__name__}, not an nn.Conv2d", "build a new nn.Conv2d "
              "with bias=True and copy the folded weight and bias into it")
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        expected, got = bn(conv(x)), fused(x)
    if not _close(got, expected):
        _fail(name, "the fused convolution does not equal conv then batch norm",
              "scale = bn.weight / sqrt(running_var + eps); weight = conv.weight * "
              "scale[:, None, None, None]; bias = bn.bias - running_mean * scale")
    _passed(name)
