"""Pretrain the course's ResNet-18 on Glyphs classification (rnlib.data.glyphs).

RefineNet fine-tunes an ImageNet-pretrained backbone (Lin et al., §4); offline, the course
fine-tunes this one instead, so every model of a comparison starts from the same pretrained
backbone on every machine. The weights are written in half precision as a plain state dict
(tensors only: ``torch.load(..., weights_only=True)`` reads them without running code), next
to a JSON file with their provenance: this command, its time, the validation accuracy, the
versions and a SHA-256 of the weights.

    .venv/bin/python tools/pretrain_backbone.py              # about 40 minutes on one CPU core
    .venv/bin/python tools/pretrain_backbone.py --steps 20 --out /tmp/try.pt   # a smoke test

Training data is an endless stream: step ``k`` draws images ``k * batch .. (k+1) * batch - 1``
of seed 0, so the run is reproducible and never sees an image twice; validation uses seed 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from rnlib.data.glyphs import GLYPHS, make_glyphs
from rnlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "rnlib" / "weights" / "glyphs-resnet18.pt"


def batch(seed: int, start: int, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``start .. start + count - 1`` of ``seed``, normalised as for ImageNet, in
    channels_last."""
    images, labels = make_glyphs(seed, count, size, start=start)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(labels)


@torch.inference_mode()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum())
                  for x, y in zip(images.split(250), labels.split(250)))
    model.train()
    return correct / len(labels)


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then a cosine decay to zero."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--lr", type=float, default=0.05, help="peak learning rate (SGD)")
    parser.add_argument("--seed", type=int, default=0, help="the weights' initial seed")
    parser.add_argument("--val-count", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200, help="steps of linear warm-up")
    parser.add_argument("--log-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads; the weights depend on it only by float rounding, "
                             "and 1 gives the same weights on every machine")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = torchvision.models.resnet18(num_classes=len(GLYPHS))
    model = model.to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": 1e-4},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=args.lr, momentum=0.9, nesterov=True)
    val_images, val_labels = batch(1, 0, args.val_count, args.size)
    started = time.perf_counter()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr,
                                        warmup=min(args.warmup, args.steps))
        x, y = batch(0, step * args.batch_size, args.batch_size, args.size)
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            print(f"step {step + 1}/{args.steps}  loss {loss.item():.3f}  "
                  f"val accuracy {accuracy(model, val_images, val_labels):.3f}  "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
    seconds = time.perf_counter() - started
    val = accuracy(model, val_images, val_labels)

    state = {k: v.half() if v.is_floating_point() else v
             for k, v in model.state_dict().items() if not k.startswith("fc.")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    provenance = {
        "backbone": "resnet18", "task": f"Glyphs classification, {len(GLYPHS)} classes",
        "classes": list(GLYPHS), "image_size": args.size, "steps": args.steps,
        "batch_size": args.batch_size, "images_seen": args.steps * args.batch_size,
        "optimizer": f"SGD nesterov momentum 0.9, peak lr {args.lr}, warm-up then cosine, "
                     f"weight decay 1e-4, label smoothing 0.1",
        "seed": args.seed, "val_accuracy": round(val, 4), "val_images": args.val_count,
        "train_seconds": round(seconds), "dtype": "float16",
        "command": "python tools/pretrain_backbone.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "sha256": digest, "bytes": args.out.stat().st_size,
    }
    args.out.with_suffix(".json").write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB): validation accuracy "
          f"{val:.3f} after {args.steps} steps in {seconds / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
