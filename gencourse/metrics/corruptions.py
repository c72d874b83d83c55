r"""Corruptions of real images for the sanity experiments of chapter 14: blur and noise."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import config

__all__ = ["blur", "add_noise"]

# ----------------------------------------------------------------------------------------------
# corruptions for the sanity experiments
# ----------------------------------------------------------------------------------------------


@config.threads(1)
def blur(x, sigma: float) -> torch.Tensor:
    r"""Gaussian blur of images ``x`` ``(B, C, H, W)`` with standard deviation ``sigma`` pixels: a
    separable kernel :math:`\propto e^{-t^2/2\sigma^2}`, :math:`|t| \le \lceil 4\sigma \rceil`, normalised
    to sum 1, zero padding (MNIST's background is 0). ``sigma = 0`` returns ``x`` unchanged."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a tensor of shape (B, C, H, W), got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return x.clone()
    radius = math.ceil(4 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    w = torch.exp(-t.square() / (2 * sigma**2))
    w = w / w.sum()
    B, C, H, W = x.shape
    y = x.reshape(B * C, 1, H, W)
    y = F.conv2d(y, w.view(1, 1, 1, -1), padding=(0, radius))  # along rows
    y = F.conv2d(y, w.view(1, 1, -1, 1), padding=(radius, 0))  # along columns
    return y.reshape(B, C, H, W)


def add_noise(x, std: float, *, generator: torch.Generator | None = None, value_range: str = "01") -> torch.Tensor:
    r"""Add Gaussian noise :math:`x + \sigma\varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`, and clip
    to the value range (``"01"`` or ``"pm1"``) so the result is still an image."""
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    low, high = (0.0, 1.0) if value_range == "01" else (-1.0, 1.0)
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (x + std * eps).clamp(low, high)
