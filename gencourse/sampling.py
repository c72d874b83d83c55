r"""Sampling by push-forward (chapter 00): inverse-CDF sampling, linear maps of Gaussians, and
the Kolmogorov–Smirnov statistic to check a sampler.

A generator :math:`G` turns simple noise into data: if :math:`z \sim p_z` then
:math:`x = G(z) \sim G_\# p_z`, the *push-forward* of :math:`p_z` by :math:`G`.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["inverse_cdf_sample", "exponential_icdf", "exponential_cdf", "ks_statistic", "pushforward_gaussian"]


def _check_rate(rate) -> None:
    if not float(rate) > 0:
        raise ValueError(f"rate must be > 0, got {rate}")


def exponential_cdf(x: torch.Tensor, rate: float = 1.0) -> torch.Tensor:
    r"""CDF of the exponential distribution: :math:`F(x) = 1 - e^{-\lambda x}` for :math:`x \ge 0`, else 0."""
    _check_rate(rate)
    x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    return torch.where(x >= 0, -torch.expm1(-rate * x.clamp(min=0)), torch.zeros_like(x))


def exponential_icdf(u: torch.Tensor, rate: float = 1.0) -> torch.Tensor:
    r"""Inverse CDF (quantile function) of the exponential distribution.

    .. math:: F^{-1}(u) = -\frac{\log(1 - u)}{\lambda}, \qquad u \in [0, 1)

    ``u`` of any shape with values in [0, 1); ``rate`` is :math:`\lambda > 0`.
    """
    _check_rate(rate)
    u = torch.as_tensor(u, dtype=torch.get_default_dtype())
    if u.numel() and (u.min() < 0 or u.max() >= 1):
        raise ValueError(f"u must lie in [0, 1), got values in [{u.min().item():.3g}, {u.max().item():.3g}]")
    return -torch.log1p(-u) / rate


def inverse_cdf_sample(icdf: Callable[[torch.Tensor], torch.Tensor], n: int, generator: torch.Generator | None = None):
    r"""Draw ``n`` samples :math:`x = F^{-1}(u)`, :math:`u \sim \mathcal U[0, 1)`: the push-forward
    of the uniform distribution by the quantile function has CDF :math:`F`.

    >>> g = torch.Generator().manual_seed(0)
    >>> inverse_cdf_sample(exponential_icdf, 3, generator=g).shape
    torch.Size([3])
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    u = torch.rand(n, generator=generator)
    return icdf(u)


def ks_statistic(samples: torch.Tensor, cdf: Callable[[torch.Tensor], torch.Tensor]) -> float:
    r"""One-sample Kolmogorov–Smirnov statistic :math:`D_n = \sup_x |F_n(x) - F(x)|`.

    With the sorted samples :math:`x_{(1)} \le \dots \le x_{(n)}` the supremum is attained at a
    sample point, from the left or from the right of the jump of the empirical CDF :math:`F_n`:

    .. math:: D_n = \max_i \max\left(\frac{i}{n} - F(x_{(i)}),\; F(x_{(i)}) - \frac{i-1}{n}\right)

    Under the null hypothesis :math:`\sqrt n D_n` is approximately Kolmogorov distributed; its
    95 % quantile is 1.358, so :math:`D_n < 1.358/\sqrt n` passes the test at the 5 % level.
    """
    x = torch.as_tensor(samples, dtype=torch.float64).flatten()
    if x.numel() == 0:
        raise ValueError("samples must not be empty")
    n = x.numel()
    F = torch.as_tensor(cdf(x.sort().values), dtype=torch.float64)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return torch.maximum(i / n - F, F - (i - 1) / n).max().item()


def pushforward_gaussian(A: torch.Tensor, b: torch.Tensor):
    r"""Mean and covariance of :math:`x = A z + b` for :math:`z \sim \mathcal N(0, I_k)`.

    .. math:: x \sim \mathcal N\left(b,\; A A^\top\right)

    ``A`` of shape ``(d, k)``, ``b`` of shape ``(d,)``; returns ``(mean (d,), cov (d, d))``.
    """
    A = torch.as_tensor(A)
    b = torch.as_tensor(b)
    if A.ndim != 2 or b.ndim != 1 or b.shape[0] != A.shape[0]:
        raise ValueError(f"expected A of shape (d, k) and b of shape (d,), got {tuple(A.shape)} and {tuple(b.shape)}")
    return b.clone(), A @ A.T
