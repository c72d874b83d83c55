"""Input checks shared by the library (positive integers, batches of images, point clouds), and
``check_close`` for "from scratch" notebook cells."""

from __future__ import annotations

import numbers

import torch

__all__ = ["check_close", "as_points", "positive_int", "image_batch", "one_of"]


def check_close(mine, reference, *args, rtol: float = 1e-5, atol: float = 1e-6, name: str | None = None, **kwargs):
    """Check a from-scratch result against the library's, and say so.

    ``mine`` is a value (tensor, array, number) or a callable; ``reference`` is a value or a
    callable. Callables are called with ``*args, **kwargs``. Raises ``AssertionError`` with the
    largest difference when they differ, prints one line when they agree::

        gc.check_close(my_kl, gc.divergences.kl_gaussians, mu, logvar)
    """
    a = mine(*args, **kwargs) if callable(mine) else mine
    b = reference(*args, **kwargs) if callable(reference) else reference
    a_t = torch.as_tensor(a, dtype=torch.float64)
    b_t = torch.as_tensor(b, dtype=torch.float64)
    label = name or getattr(reference, "__name__", "reference")
    if a_t.shape != b_t.shape:
        raise AssertionError(f"{label}: shape {tuple(a_t.shape)} differs from the reference's {tuple(b_t.shape)}")
    if not torch.allclose(a_t, b_t, rtol=rtol, atol=atol):
        diff = (a_t - b_t).abs().max().item()
        raise AssertionError(f"{label}: values differ from the reference by up to {diff:.3g} (rtol={rtol}, atol={atol})")
    print(f"✔ matches {label} (max abs diff {(a_t - b_t).abs().max().item() if a_t.numel() else 0.0:.1e})")
    return True


def as_points(x, name: str = "x", dim: int = 2) -> torch.Tensor:
    """Check that ``x`` is a float tensor of shape ``(N, dim)`` and return it."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, {dim}), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def positive_int(value, name: str = "n", low: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= low`` (1 by default; ``bool`` is not
    an integer here), else raise a ``ValueError`` that names the argument and shows what came."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        what = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    return int(value)


def image_batch(x, shape, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a tensor of shape ``(B, *shape)`` with ``B >= 1`` (e.g. ``shape=(1, 28, 28)``)
    and return it; else raise a ``ValueError`` naming ``name``, the shape expected and the one received."""
    shape = tuple(shape)
    if not isinstance(x, torch.Tensor) or x.ndim != 1 + len(shape) or tuple(x.shape[1:]) != shape or x.shape[0] < 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (B, {', '.join(map(str, shape))}) with B >= 1, got {got}")
    return x


def one_of(value, choices, name: str):
    """Return ``value`` if it is one of ``choices`` (strings), else raise a ``ValueError`` naming
    ``name`` and listing the choices."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value
