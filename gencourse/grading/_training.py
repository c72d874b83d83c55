"""Shared contract of the "train and reach a target" exercises' public checks.

A training exercise leaves a list ``losses`` (one float per step) and a trained model; its check
verifies that training ran and the loss went down, then measures the outcome and compares it with
the target, except under the ``smoke`` profile, where training is only a few steps long.
"""

from __future__ import annotations

import math

from .checks import expect


def profile() -> str:
    """The active gencourse profile, read like :func:`gencourse.config.profile` does."""
    from gencourse import config

    return config.profile()


def expect_losses_went_down(losses, *, min_steps: int = 10) -> list[float]:
    """``losses`` must be a list (or tuple) of at least ``min_steps`` finite floats whose last tenth
    averages below its first tenth. Returns the values as floats."""
    expect(isinstance(losses, (list, tuple)), f"losses must be a list of floats, one per step, got {type(losses).__name__}")
    values = []
    for i, v in enumerate(losses):
        expect(isinstance(v, (int, float)) and not isinstance(v, bool),
               f"losses[{i}] is a {type(v).__name__}: append loss.item() (a float), not the tensor")
        values.append(float(v))
    expect(len(values) >= min_steps, f"losses has {len(values)} entries: append the loss of every step (at least {min_steps} steps)")
    expect(all(math.isfinite(v) for v in values), "some losses are not finite (nan or inf): lower the learning rate or check the loss")
    k = max(1, len(values) // 10)
    first, last = sum(values[:k]) / k, sum(values[-k:]) / k
    expect(last < first, f"the loss did not go down: mean of the first tenth {first:.4g}, of the last tenth {last:.4g}")
    return values


def expect_target(value: float, target: float, *, what: str, below: bool = True, hint: str = "") -> None:
    """Compare an outcome with its target, except under the smoke profile (then only report it)."""
    if profile() == "smoke":
        print(f"  {what} = {value:.4g} (target {'<' if below else '>'} {target:g} is checked under the cpu profile)")
        expect(math.isfinite(value), f"{what} is not finite: {value}")
        return
    ok = value < target if below else value > target
    expect(ok, f"{what} = {value:.4g}, target {'<' if below else '>'} {target:g}" + (f" ({hint})" if hint else ""))


__all__ = ["profile", "expect_losses_went_down", "expect_target"]
