"""Exercise 7.1: poly_lr(step, total_steps, base_lr, power=0.9) -> lr."""

import math

import torch

from corpus import expect
from rnlib.optim import poly_lr

EXERCISE = "7.1"


def correct_formula(step, total_steps, base_lr, power=0.9):
    return base_lr * (1 - step / total_steps) ** power


def correct_math_pow_with_a_floor(step, total_steps, base_lr, power=0.9):
    return base_lr * math.pow(max(0.0, 1.0 - step / total_steps), power)


@expect(r"decays linearly")
def wrong_linear(step, total_steps, base_lr, power=0.9):
    return base_lr * (1 - step / total_steps)


@expect(r"ignores its power argument")
def wrong_hard_coded_power(step, total_steps, base_lr, power=0.9):
    return base_lr * (1 - step / total_steps) ** 0.9


@expect(r"only total_steps is raised to the power")
def wrong_precedence(step, total_steps, base_lr, power=0.9):
    return base_lr * (1 - step / total_steps ** power)


@expect(r"divides with //")
def wrong_integer_division(step, total_steps, base_lr, power=0.9):
    return base_lr * (1 - step // total_steps) ** power


@expect(r"counts steps from 1")
def wrong_off_by_one(step, total_steps, base_lr, power=0.9):
    return base_lr * max(0.0, 1 - (step + 1) / total_steps) ** power


def correct_in_float32(step, total_steps, base_lr, power=0.9):
    fraction = torch.tensor(1 - step / total_steps, dtype=torch.float32)
    return float(torch.tensor(base_lr, dtype=torch.float32) * fraction.clamp(min=0) ** power)


@expect(r"called without power it gives \d\S*, expected \d\S*: its default power is not 0.9")
def wrong_default_power(step, total_steps, base_lr, power=1.0):
    return base_lr * (1 - step / total_steps) ** power


def library_rnlib_optim(step, total_steps, base_lr, power=0.9):
    return poly_lr(step, total_steps, base_lr, power)


def library_torch_scheduler(step, total_steps, base_lr, power=0.9):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    schedule = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps,
                                                     power=power)
    for _ in range(step):
        optimizer.step()
        schedule.step()
    return optimizer.param_groups[0]["lr"]
