"""Evaluation: mIoU, pixel accuracy, per-class IoU, boundary F-score and the confusion matrix,
with single-scale, multi-scale and flip inference (Lin et al., §4: RefineNet's best numbers
average the scores of several input scales).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .blocks import resize
from .constants import IGNORE_INDEX
from .metrics import BoundaryFScore, ConfusionMatrix
from .runtime import inference_model

__all__ = ["EvalResult", "predict", "evaluate"]


@dataclass
class EvalResult:
    miou: float
    pixel_accuracy: float
    boundary_f: float
    iou: list[float] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"mIoU {100 * self.miou:.1f}  pixel acc {100 * self.pixel_accuracy:.1f}  "
                f"boundary F {100 * self.boundary_f:.1f}")


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, scales: Sequence[float] = (1.0,),
            flip: bool = False) -> torch.Tensor:
    """Class probabilities (N, K, H, W), averaged over ``scales`` and, with ``flip``, over the
    horizontally flipped input."""
    size = images.shape[-2:]
    total = None
    for scale in scales:
        x = images if scale == 1 else resize(images, [max(1, round(s * scale)) for s in size])
        views = [x, x.flip(-1)] if flip else [x]
        for i, view in enumerate(views):
            probs = resize(model(view).float(), size).softmax(1)
            probs = probs.flip(-1) if i == 1 else probs
            total = probs if total is None else total + probs
    return total / (len(scales) * (2 if flip else 1))


def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             num_classes: int, *, scales: Sequence[float] = (1.0,), flip: bool = False,
             device: torch.device | str | None = None, ignore_index: int = IGNORE_INDEX,
             progress: bool = False, channels_last: bool = False,
             reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
             stop: Callable[[], bool] | None = None,
             amp_dtype: torch.dtype | None = None) -> EvalResult:
    """Evaluate ``model`` on (images, masks) batches, e.g. a DataLoader (images of mixed sizes:
    ``collate_fn=rnlib.data.pad_collate``, whose padding the ignore index keeps out of every
    metric). ``reduce`` sums the counts of the processes that shared the data; ``amp_dtype``
    (:func:`rnlib.runtime.amp_dtype`) runs :func:`rnlib.runtime.inference_model`: a bf16 copy
    of the model on the CPU, autocast on CUDA. When ``stop()`` turns true (a stop signal),
    evaluation ends before the next batch with KeyboardInterrupt."""
    device = torch.device(device) if device else next(model.parameters()).device
    was_training = model.training
    model.eval()
    net = inference_model(model, amp_dtype)
    cm = ConfusionMatrix(num_classes, ignore_index)
    bf = BoundaryFScore(num_classes, ignore_index=ignore_index)
    for images, masks in tqdm(batches, desc="eval", disable=None if progress else True,
                                 leave=False):
        if stop is not None and stop():
            model.train(was_training)
            raise KeyboardInterrupt("evaluation stopped by a signal")
        images = images.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        pred = predict(net, images, scales, flip).argmax(1).cpu()
        cm.update(pred, masks)
        bf.update(pred, masks)
    model.train(was_training)
    if reduce is not None:
        reduce(cm.matrix)
        reduce(bf.counts)
    return EvalResult(cm.miou(), cm.pixel_accuracy(), bf.score(), cm.iou().tolist(),
                      cm.matrix.tolist())
