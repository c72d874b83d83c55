r"""Optimal transport (chapter 02). In one dimension the optimal plan matches sorted samples:

.. math:: W_p(\mu, \nu)^p = \int_0^1 |F_\mu^{-1}(u) - F_\nu^{-1}(u)|^p\, du
          = \frac1n \sum_{i=1}^n |x_{(i)} - y_{(i)}|^p \quad\text{(n samples each)}
"""

from __future__ import annotations

import torch

__all__ = ["wasserstein_1d"]


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    r"""Wasserstein-:math:`p` distance between two empirical measures on the line with the same
    number of samples, by sorting (differentiable in ``x`` and ``y``).

    ``x`` and ``y`` of shape ``(n,)``; returns a scalar tensor
    :math:`\left(\frac1n\sum_i |x_{(i)} - y_{(i)}|^p\right)^{1/p}`.
    """
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D with the same length, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    cost = (x.sort().values - y.sort().values).abs().pow(p).mean()
    return cost.pow(1.0 / p)
