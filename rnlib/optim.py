"""The optimizer, its parameter groups and the learning-rate schedule.

RefineNet's recipe (Lin et al., §4): SGD with momentum, a lower learning rate for the pretrained
backbone than for the new decoder, and a poly schedule; AdamW is the quick alternative. A model
says which of its parameters are which through ``parameter_groups()``; the Trainer never
guesses from attribute names.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .config import TrainConfig

__all__ = ["Schedule", "poly_lr", "parameter_groups", "build_optimizer", "build_scheduler",
           "freeze_batchnorm"]

Schedule = Callable[[int, int, float, float], float]  # (step, total_steps, base_lr, power) -> lr


def poly_lr(step: int, total_steps: int, base_lr: float, power: float = 0.9) -> float:
    """The poly schedule of DeepLab and RefineNet: ``base_lr * (1 - step / total) ** power``."""
    return base_lr * max(0.0, 1 - step / total_steps) ** power


def freeze_batchnorm(model: nn.Module) -> None:
    """Keep every batch norm's statistics and affine weights as they are (small batches)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            m.requires_grad_(False)


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """The optimizer's groups: the backbone at ``lr * backbone_lr_mult``, the rest at ``lr``.

    The model declares its groups with ``parameter_groups() -> {"backbone": [...], "head":
    [...]}``; a model that declares none trains as one group, and asking it for a separate
    backbone learning rate is an error rather than a silent no-op.
    """
    declared = getattr(model, "parameter_groups", None)
    if declared is None:
        if config.backbone_lr_mult != 1:
            raise ValueError(f"{type(model).__name__} does not say which parameters are its "
                             f"backbone (no parameter_groups() method), so backbone_lr_mult="
                             f"{config.backbone_lr_mult} cannot apply; set it to 1 or add the "
                             f"method")
        groups = {"head": list(model.parameters())}
    else:
        groups = declared()
    lr = {"backbone": config.lr * config.backbone_lr_mult, "head": config.lr}
    return [{"params": [p for p in params if p.requires_grad], "lr": lr[role], "name": role}
            for role, params in groups.items() if any(p.requires_grad for p in params)]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    # one fused kernel for all parameters: the fastest on CUDA; on the 2-core CPU within the
    # noise of for-each for the quick preset (benchmarks/cpu_recipe.md)
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: Callable[[], int],
                    schedule: Schedule = poly_lr, power: float = 0.9, warmup_steps: int = 0
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Each group's learning rate follows ``schedule`` (called with base_lr 1: the factor on
    the group's own rate) over ``total_steps()``, which a time budget may re-plan; over the
    first ``warmup_steps`` steps it is also scaled by a linear rise from 1/warmup_steps to 1."""

    def factor(step: int) -> float:
        rise = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        return rise * float(schedule(min(step, total_steps()), total_steps(), 1.0, power))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

