"""The authors' forward pass, written independently with torch.nn.functional (eval mode): the
yardstick that :mod:`rnlib.convert` and rnlib's models are checked against.

It does not trust rnlib's conversion table: it reads a state dict with the authors' key names
(Light-Weight RefineNet, Nekrasov et al. 2018; RefineNet, Lin et al. 2017, as their PyTorch code
lays them out) and computes their network's logits at 1/4 resolution, from the facts of their
layer order (their code itself is not copied here):

- ResNet: conv1 7x7/2, bn1, ReLU, max pooling 3x3/2; bottleneck blocks (1x1, 3x3 with the
  stage's stride, 1x1, each followed by batch norm; ReLU after the first two and after the sum
  with the shortcut, a strided 1x1 conv + batch norm on each stage's first block).
- Four RefineNet blocks g = 1..4, from layer4 to layer1: ``p_ims1d2_outl{g}_dimred`` adapts the
  width; RefineNet then applies 2 RCUs (``adapt_stage{g}_b``); for g > 1,
  ``adapt_stage{g}_b2_joint_varout_dimred`` and the previous block's upsampled
  ``mflow_conv_g{g-1}_b3_joint_varout_dimred`` are summed; ReLU; chained residual pooling
  (``mflow_conv_g{g}_pool``: 4 x [max pool 5x5/1, conv], each fed by the previous, all summed
  onto the input); RefineNet then applies 3 RCUs (``mflow_conv_g{g}_b``); the path to the next
  block is a conv followed by a bilinear resize (align_corners=True) to the next stage's size.
- An RCU (``{i}_conv`` with bias, ``{i}_conv_relu_varout_dimred`` without) is
  ``x + conv2(relu(conv1(relu(x))))``; ``clf_conv`` (3x3, bias) gives the classes.
Dropout (on layer3, layer4 and, in RefineNet, before the classifier) is off in eval mode.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

__all__ = ["authors_forward", "random_authors_state"]

Tensor = torch.Tensor


def _conv(x: Tensor, sd: Mapping[str, Tensor], name: str, stride: int = 1) -> Tensor:
    w = sd[f"{name}.weight"]
    return F.conv2d(x, w, sd.get(f"{name}.bias"), stride=stride, padding=w.shape[-1] // 2)


def _bn(x: Tensor, sd: Mapping[str, Tensor], name: str) -> Tensor:
    return F.batch_norm(x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"],
                        sd[f"{name}.weight"], sd[f"{name}.bias"], training=False, eps=1e-5)


def _bottleneck(x: Tensor, sd: Mapping[str, Tensor], name: str, stride: int) -> Tensor:
    out = F.relu(_bn(_conv(x, sd, f"{name}.conv1"), sd, f"{name}.bn1"))
    out = F.relu(_bn(_conv(out, sd, f"{name}.conv2", stride), sd, f"{name}.bn2"))
    out = _bn(_conv(out, sd, f"{name}.conv3"), sd, f"{name}.bn3")
    if f"{name}.downsample.0.weight" in sd:
        x = _bn(_conv(x, sd, f"{name}.downsample.0", stride), sd, f"{name}.downsample.1")
    return F.relu(out + x)


def _resnet(x: Tensor, sd: Mapping[str, Tensor]) -> list[Tensor]:
    x = F.relu(_bn(_conv(x, sd, "conv1", stride=2), sd, "bn1"))
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    features = []
    for stage in range(1, 5):
        depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith(f"layer{stage}."))
        for b in range(depth):
            x = _bottleneck(x, sd, f"layer{stage}.{b}", 2 if b == 0 and stage > 1 else 1)
        features.append(x)
    return features  # 1/4, 1/8, 1/16, 1/32


def _rcus(x: Tensor, sd: Mapping[str, Tensor], name: str, count: int) -> Tensor:
    for i in range(1, count + 1):
        out = _conv(F.relu(x), sd, f"{name}.0.{i}_conv")
        x = x + _conv(F.relu(out), sd, f"{name}.0.{i}_conv_relu_varout_dimred")
    return x


def _crp(x: Tensor, sd: Mapping[str, Tensor], name: str, blocks: int = 4) -> Tensor:
    path = x
    for j in range(1, blocks + 1):
        path = _conv(F.max_pool2d(path, 5, stride=1, padding=2), sd, f"{name}.0.{j}_outvar_dimred")
        x = x + path
    return x


def authors_forward(sd: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Logits (N, K, H/4, W/4) of the authors' network whose weights ``sd`` holds."""
    light = "adapt_stage1_b.0.1_conv.weight" not in sd
    l1, l2, l3, l4 = _resnet(x, sd)
    features = {1: l4, 2: l3, 3: l2, 4: l1}  # block g takes this stage
    previous = None
    for g in range(1, 5):
        y = _conv(features[g], sd, f"p_ims1d2_outl{g}_dimred")
        if not light:
            y = _rcus(y, sd, f"adapt_stage{g}_b", 2)
        if previous is not None:
            y = _conv(y, sd, f"adapt_stage{g}_b2_joint_varout_dimred") + previous
        y = _crp(F.relu(y), sd, f"mflow_conv_g{g}_pool")
        if not light:
            y = _rcus(y, sd, f"mflow_conv_g{g}_b", 3)
        if g < 4:
            previous = F.interpolate(_conv(y, sd, f"mflow_conv_g{g}_b3_joint_varout_dimred"),
                                     size=features[g + 1].shape[-2:], mode="bilinear",
                                     align_corners=True)
    return _conv(y, sd, "clf_conv")


def random_authors_state(shapes: Mapping[str, tuple[int, ...]], seed: int = 0
                         ) -> dict[str, Tensor]:
    """Random weights for the authors' keys and shapes ``shapes``: He-initialised convolutions,
    batch norms with random scale, shift and running statistics (uniform draws: a ResNet-101's
    worth is drawn several times faster than with normal ones)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        leaf = key.rsplit(".", 1)[1]
        if leaf == "num_batches_tracked":
            state[key] = torch.zeros((), dtype=torch.long)
        elif len(shape) == 4:  # a convolution: He et al.'s variance 2 / fan_in, uniform
            bound = (6.0 / (shape[1] * shape[2] * shape[3])) ** 0.5
            state[key] = (torch.rand(shape, generator=g) * 2 - 1) * bound
        elif leaf == "running_var":
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif leaf == "weight":  # batch norm scale; small, so that deep residual sums stay finite
            state[key] = torch.rand(shape, generator=g) * 0.4 + 0.2
        else:  # biases, batch norm shifts, running means
            state[key] = (torch.rand(shape, generator=g) - 0.5) * 0.3
    return state
