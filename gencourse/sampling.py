r"""Sampling by push-forward (chapter 00): inverse-CDF sampling, linear maps of Gaussians, and
the Kolmogorov–Smirnov statistic to check a sampler.

A generator :math:`G` turns simple noise into data: if :math:`z \sim p_z` then
:math:`x = G(z) \sim G_\# p_z`, the *push-forward* of :math:`p_z` by :math:`G`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = [
    "inverse_cdf_sample",
    "exponential_icdf",
    "exponential_cdf",
    "ks_statistic",
    "pushforward_gaussian",
    "rejection_sample",
    "langevin",
]


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


# ------------------------------------------------------------- sampling from a formula (chapter 01)


def _gen_device(generator, like: torch.Tensor):
    return generator.device if generator is not None else like.device


def rejection_sample(
    log_p_tilde: Callable[[torch.Tensor], torch.Tensor],
    proposal_sample: Callable[..., torch.Tensor],
    proposal_log_prob: Callable[[torch.Tensor], torch.Tensor],
    log_M: float,
    n: int,
    generator: torch.Generator | None = None,
    max_rounds: int = 1000,
):
    r"""Rejection sampling from a density known up to a constant, :math:`p = \tilde p / Z`.

    Draw :math:`x \sim q` and :math:`u \sim \mathcal U[0, 1]`; keep :math:`x` when
    :math:`u \le \tilde p(x) / (M q(x))`. Kept points follow :math:`p` exactly provided
    :math:`\tilde p \le M q` everywhere; the acceptance rate is :math:`Z / M`.

    ``log_p_tilde(x)`` and ``proposal_log_prob(x)`` map ``(N, D)`` (or ``(N,)``) to ``(N,)``;
    ``proposal_sample(N, generator)`` draws ``N`` proposals. Returns ``(samples, acceptance_rate)``
    with ``n`` samples. Raises ``ValueError`` when a proposal breaks the bound
    :math:`\tilde p \le Mq`. Source: chapter 01 (von Neumann, 1951).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    kept, proposed, total = [], 0, 0
    batch = max(n, 256)
    for _ in range(max_rounds):
        x = proposal_sample(batch, generator)
        log_ratio = log_p_tilde(x) - proposal_log_prob(x) - log_M  # log(p~ / (M q)) <= 0
        if bool((log_ratio > 1e-6).any()):
            raise ValueError(f"log_M = {log_M:.4g} is too small: p~(x) > M q(x) at some proposals "
                             f"(max log ratio {log_ratio.max().item():.4g}); rejection sampling would be biased")
        u = torch.rand(batch, generator=generator, dtype=log_ratio.dtype, device=_gen_device(generator, log_ratio)).to(log_ratio.device)
        accept = torch.log(u) <= log_ratio
        kept.append(x[accept])
        proposed += batch
        total += int(accept.sum())
        if total >= n:
            return torch.cat(kept)[:n], total / proposed
    raise RuntimeError(f"only {total} of {n} samples accepted after {proposed} proposals (acceptance rate {total / proposed:.2e})")


def langevin(
    score: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    step_size: float,
    n_steps: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Unadjusted Langevin dynamics: a Markov chain that needs only the score
    :math:`\nabla_x \log p(x)`, so :math:`p` may be unnormalised.

    .. math:: x_{k+1} = x_k + \tau\, \nabla_x \log p(x_k) + \sqrt{2\tau}\, \xi_k, \qquad
              \xi_k \sim \mathcal N(0, I)

    As :math:`\tau \to 0` and :math:`k \to \infty` the chain's distribution tends to :math:`p`; at
    a finite step it is slightly off (for :math:`p = \mathcal N(0, 1)` its stationary variance is
    :math:`1/(1 - \tau/2)`). ``score`` maps ``(N, ...)`` to the same shape; ``x0`` ``(N, ...)``
    holds ``N`` independent chains. Returns their final states. Source: chapter 01 (Roberts &
    Tweedie, 1996); the sampler of score-based models (chapter 12).
    """
    if not float(step_size) > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    if not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative int, got {n_steps!r}")
    x = x0.detach().clone()
    for _ in range(n_steps):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=_gen_device(generator, x)).to(x.device)
        x = x + step_size * score(x) + math.sqrt(2 * step_size) * noise
    return x
