r"""Explicit density models fitted by maximum likelihood.

Maximum likelihood minimises the negative log-likelihood of the data,

.. math:: \hat\theta = \arg\min_\theta -\frac1N \sum_{i=1}^N \log p_\theta(x_i),

which is the KL divergence from the empirical distribution to :math:`p_\theta` up to a constant
(chapter 01).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import as_points

__all__ = ["gaussian_mle", "GaussianMixtureModel"]


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
    def init_from_data(self, x: torch.Tensor, generator: torch.Generator | None = None) -> "GaussianMixtureModel":
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
