"""Exercise 7.1: poly_lr(step, total_steps, base_lr, power=0.9) -> lr."""

import math

from corpus import expect

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
