r"""Explicit density models fitted by maximum likelihood.

Maximum likelihood minimises the negative log-likelihood of the data,

.. math:: \hat\theta = \arg\min_\theta -\frac1N \sum_{i=1}^N \log p_\theta(x_i),

which is the KL divergence from the empirical distribution to :math:`p_\theta` up to a constant
(chapter 01). Also here: the Gaussian kernel density estimator, its rule-of-thumb bandwidth and
its leave-one-out likelihood for choosing the bandwidth by cross-validation (chapter 01).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import as_points

__all__ = [
    "gaussian_mle",
    "GaussianMixtureModel",
    "kde_log_prob",
    "kde_loo_log_likelihood",
    "bandwidth_rule_of_thumb",
    "select_bandwidth",
]


def gaussian_mle(x: torch.Tensor):
    r"""Closed-form maximum-likelihood Gaussian: :math:`\hat\mu = \frac1N\sum_i x_i`,
    :math:`\hat\Sigma = \frac1N \sum_i (x_i - \hat\mu)(x_i - \hat\mu)^\top` (the biased, 1/N, estimate).

    ``x`` of shape ``(N, D)``; returns ``(mu (D,), Sigma (D, D))``.
    """
    x = as_points(x, "x", dim=x.shape[-1] if isinstance(x, torch.Tensor) and x.ndim == 2 else 2)
    mu = x.mean(0)
    xc = x - mu  # (N, D)
    return mu, xc.T @ xc / x.shape[0]


class GaussianMixtureModel(nn.Module):
    r"""A mixture of ``K`` diagonal Gaussians in ``D`` dimensions with learnable parameters.

    .. math:: p_\theta(x) = \sum_{k=1}^K \pi_k\, \mathcal N\!\left(x;\, \mu_k,
              \operatorname{diag}(\sigma_k^2)\right), \qquad \pi = \operatorname{softmax}(\text{logits})

    Parameters are unconstrained (logits, means, log standard deviations), so any optimiser can
    fit it by gradient descent on the negative log-likelihood.
    """

    def __init__(self, K: int, D: int = 2, init_std: float = 1.0, generator: torch.Generator | None = None):
        super().__init__()
        if K < 1 or D < 1:
            raise ValueError(f"K and D must be positive, got K={K}, D={D}")
        self.logits = nn.Parameter(torch.zeros(K))
        self.means = nn.Parameter(init_std * torch.randn(K, D, generator=generator))
        self.log_stds = nn.Parameter(torch.zeros(K, D))

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, generator: torch.Generator | None = None) -> GaussianMixtureModel:
        r"""Place the means on ``K`` data points chosen by k-means++ seeding (Arthur & Vassilvitskii,
        2007): each next point is drawn with probability proportional to :math:`D(x)^2`, its squared
        distance to the nearest mean already chosen. Spread-out starting means keep gradient
        descent on the NLL out of the local optimum where two components share one mode.
        Scales start at the data's standard deviation divided by ``K``.
        """
        K, D = self.means.shape
        x = as_points(x, "x", dim=D)
        if x.shape[0] < K:
            raise ValueError(f"need at least K={K} points to initialise from, got {x.shape[0]}")
        idx = [int(torch.randint(x.shape[0], (1,), generator=generator))]
        for _ in range(1, K):
            d2 = torch.cdist(x, x[idx]).min(dim=1).values ** 2  # (N,)
            idx.append(int(torch.multinomial(d2 / d2.sum(), 1, generator=generator)))
        self.means.copy_(x[idx])
        self.log_stds.fill_(torch.log(x.std(0).mean() / K).item())
        self.logits.zero_()
        return self

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of ``x`` of shape ``(N, D)``; returns ``(N,)``."""
        K, D = self.means.shape
        x = as_points(x, "x", dim=D)
        z = (x[:, None, :] - self.means) / self.log_stds.exp()  # (N, K, D)
        log_normal = -0.5 * (z**2).sum(-1) - self.log_stds.sum(-1) - 0.5 * D * math.log(2 * math.pi)  # (N, K)
        return torch.logsumexp(torch.log_softmax(self.logits, 0) + log_normal, dim=1)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood in nats per sample."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling: pick a component :math:`k \\sim \\pi`, then :math:`x = \\mu_k + \\sigma_k \\odot \\varepsilon`."""
        k = torch.multinomial(torch.softmax(self.logits, 0), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator)
        return self.means[k] + self.log_stds[k].exp() * eps


# ------------------------------------------------------------------------------ kernel density


def _check_bandwidth(h) -> float:
    h = float(h)
    if not (h > 0 and math.isfinite(h)):
        raise ValueError(f"bandwidth must be a positive number, got {h!r}")
    return h


def _kde_sq_dists(x: torch.Tensor, data: torch.Tensor, chunk: int):
    for start in range(0, x.shape[0], chunk):
        yield start, torch.cdist(x[start : start + chunk], data) ** 2  # (m, N)


def kde_log_prob(x: torch.Tensor, data: torch.Tensor, bandwidth: float, chunk: int = 2048) -> torch.Tensor:
    r"""Log-density of the Gaussian kernel density estimate built on ``data``, at the points ``x``.

    .. math:: \hat p_h(x) = \frac1N \sum_{i=1}^N \mathcal N(x;\, x_i,\, h^2 I_D), \qquad
              \log \hat p_h(x) = \operatorname{logsumexp}_i\Big[-\frac{\|x - x_i\|^2}{2h^2}\Big]
              - \log N - \frac D2 \log(2\pi h^2)

    ``x`` of shape ``(M, D)``, ``data`` of shape ``(N, D)``, ``bandwidth`` :math:`h > 0` (the
    kernel's standard deviation). Returns ``(M,)``, in nats; computed in blocks of ``chunk`` rows
    of ``x`` so that memory stays at ``chunk * N`` numbers. Source: chapter 01 (Parzen, 1962).
    """
    if not isinstance(data, torch.Tensor) or data.ndim != 2:
        raise ValueError(f"data must be a tensor of shape (N, D), got {tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__}")
    N, D = data.shape
    x = as_points(x, "x", dim=D)
    h = _check_bandwidth(bandwidth)
    const = -math.log(N) - 0.5 * D * math.log(2 * math.pi * h * h)
    out = torch.empty(x.shape[0], dtype=torch.promote_types(x.dtype, data.dtype), device=x.device)
    for start, sq in _kde_sq_dists(x, data, chunk):
        out[start : start + sq.shape[0]] = torch.logsumexp(-0.5 * sq / h**2, dim=1) + const
    return out


def kde_loo_log_likelihood(data: torch.Tensor, bandwidth: float, chunk: int = 2048) -> torch.Tensor:
    r"""Leave-one-out log-likelihood of a Gaussian KDE, the score of likelihood cross-validation.

    .. math:: \mathrm{CV}(h) = \frac1N \sum_{i=1}^N \log \hat p_{h,-i}(x_i), \qquad
              \hat p_{h,-i}(x) = \frac1{N-1}\sum_{j \ne i} \mathcal N(x;\, x_j,\, h^2 I_D)

    Leaving :math:`x_i` out of its own estimate matters: with it, the score grows without bound
    as :math:`h \to 0`. ``data`` of shape ``(N, D)`` with ``N >= 2``; returns a scalar tensor
    (nats per point). Source: chapter 01 (Duin, 1976).
    """
    if not isinstance(data, torch.Tensor) or data.ndim != 2 or data.shape[0] < 2:
        got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"data must be a tensor of shape (N, D) with N >= 2, got {got}")
    N, D = data.shape
    h = _check_bandwidth(bandwidth)
    const = -math.log(N - 1) - 0.5 * D * math.log(2 * math.pi * h * h)
    total = torch.zeros((), dtype=data.dtype, device=data.device)
    for start, sq in _kde_sq_dists(data, data, chunk):
        rows = torch.arange(sq.shape[0], device=data.device)
        logk = -0.5 * sq / h**2
        logk[rows, start + rows] = -math.inf  # leave x_i out of its own estimate
        total = total + (torch.logsumexp(logk, dim=1) + const).sum()
    return total / N


def bandwidth_rule_of_thumb(data: torch.Tensor) -> float:
    r"""Silverman's rule-of-thumb bandwidth for a Gaussian KDE with kernel :math:`\mathcal N(0, h^2 I_D)`.

    .. math:: h = \Big(\frac{4}{D + 2}\Big)^{1/(D+4)} N^{-1/(D+4)}\, \bar\sigma,

    the bandwidth that minimises the asymptotic mean integrated squared error when the data are
    Gaussian with standard deviation :math:`\bar\sigma` in every direction (here the mean of the
    per-coordinate standard deviations). In one dimension it is :math:`1.06\,\sigma N^{-1/5}`.
    ``data`` of shape ``(N, D)``. Source: Silverman (1986), eq. (4.14); chapter 01.
    """
    if not isinstance(data, torch.Tensor) or data.ndim != 2 or data.shape[0] < 2:
        got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"data must be a tensor of shape (N, D) with N >= 2, got {got}")
    N, D = data.shape
    sigma = data.std(0).mean().item()
    return (4.0 / (D + 2)) ** (1.0 / (D + 4)) * N ** (-1.0 / (D + 4)) * sigma


def select_bandwidth(data: torch.Tensor, bandwidths) -> tuple[float, torch.Tensor]:
    r"""Likelihood cross-validation: the bandwidth in ``bandwidths`` with the largest
    :func:`kde_loo_log_likelihood`. Returns ``(best_h, scores)`` with ``scores`` of shape ``(len(bandwidths),)``."""
    hs = [float(h) for h in bandwidths]
    if not hs:
        raise ValueError("bandwidths must hold at least one candidate bandwidth")
    scores = torch.stack([kde_loo_log_likelihood(data, h) for h in hs])
    return hs[int(scores.argmax())], scores
