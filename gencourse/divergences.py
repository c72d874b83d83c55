r"""Divergences between probability distributions (chapter 01).

The Kullback–Leibler divergence of :math:`Q` from :math:`P` (in nats, natural logarithm),

.. math:: \mathrm{KL}(P \,\|\, Q) = \mathbb E_{x \sim P}\big[\log p(x) - \log q(x)\big] \;\ge\; 0,

with closed forms between Gaussians, a Monte-Carlo estimate with its standard error, and the
discrete sum; the Jensen–Shannon divergence; the family of :math:`f`-divergences
:math:`D_f(P\|Q) = \sum_x q(x)\, f\big(p(x)/q(x)\big)` that holds KL, reverse KL, JS, total
variation and :math:`\chi^2`; and the optimal GAN discriminator :math:`D^* = p/(p+q)`, at which
the GAN game is worth :math:`2\,\mathrm{JS}(P, Q) - \log 4` (Goodfellow et al., 2014; chapter 06).

Every value is in **nats**; divide by :math:`\log 2` for bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

__all__ = [
    "kl_normal",
    "kl_gaussians",
    "kl_mvn",
    "kl_monte_carlo",
    "kl_discrete",
    "js_discrete",
    "FGenerator",
    "F_GENERATORS",
    "f_divergence",
    "optimal_discriminator",
]

LOG2 = math.log(2.0)


def _tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x, dtype=torch.get_default_dtype())
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{name} must be a tensor or a number, got {type(x).__name__}") from err
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return x


# ------------------------------------------------------------------------------------ Gaussians


def kl_normal(mu_p, sigma_p, mu_q, sigma_q) -> torch.Tensor:
    r"""KL divergence between two univariate normal distributions, elementwise (broadcasting).

    .. math:: \mathrm{KL}\big(\mathcal N(\mu_p, \sigma_p^2) \,\|\, \mathcal N(\mu_q, \sigma_q^2)\big)
              = \log\frac{\sigma_q}{\sigma_p} + \frac{\sigma_p^2 + (\mu_p - \mu_q)^2}{2\sigma_q^2} - \frac12

    Arguments are tensors (or numbers) of broadcastable shapes; ``sigma_*`` are standard
    deviations (not variances), > 0. Source: chapter 01.

    >>> round(kl_normal(0.0, 1.0, 1.0, 1.0).item(), 6)  # (mu_p - mu_q)^2 / 2
    0.5
    """
    mu_p, sigma_p, mu_q, sigma_q = (_tensor(v, n) for v, n in
                                    ((mu_p, "mu_p"), (sigma_p, "sigma_p"), (mu_q, "mu_q"), (sigma_q, "sigma_q")))
    for s, name in ((sigma_p, "sigma_p"), (sigma_q, "sigma_q")):
        if s.numel() and not bool((s > 0).all()):
            raise ValueError(f"{name} must be > 0 (a standard deviation), got min {s.min().item():.4g}")
    return torch.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5


def kl_gaussians(mu, logvar, mu_q=None, logvar_q=None) -> torch.Tensor:
    r"""KL divergence between diagonal Gaussians in :math:`D` dimensions, summed over the last axis.

    .. math:: \mathrm{KL}\big(\mathcal N(\mu, \operatorname{diag} e^{v}) \,\|\,
              \mathcal N(\mu_q, \operatorname{diag} e^{v_q})\big)
              = \frac12 \sum_{k=1}^{D} \Big[v_{q,k} - v_k + \frac{e^{v_k} + (\mu_k - \mu_{q,k})^2}{e^{v_{q,k}}} - 1\Big]

    with log-variances :math:`v = \log\sigma^2` (``logvar``), the parametrisation a VAE encoder
    outputs. Without ``mu_q``/``logvar_q`` the second Gaussian is :math:`\mathcal N(0, I)`, and
    this is the VAE's KL term :math:`\frac12\sum_k(\mu_k^2 + \sigma_k^2 - \log\sigma_k^2 - 1)`
    (Kingma & Welling, 2014, appendix B).

    ``mu``, ``logvar`` of shape ``(..., D)``; ``mu_q``, ``logvar_q`` broadcastable to it (or
    ``None`` for 0). Returns shape ``(...)``: one KL per sample, summed over the ``D`` dimensions.
    """
    mu, logvar = _tensor(mu, "mu"), _tensor(logvar, "logvar")
    if mu.ndim == 0 or mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape (..., D), got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    mu_q = torch.zeros_like(mu) if mu_q is None else _tensor(mu_q, "mu_q")
    logvar_q = torch.zeros_like(logvar) if logvar_q is None else _tensor(logvar_q, "logvar_q")
    # 1/2 [ log s_q^2 - log s^2 + (s^2 + (mu - mu_q)^2) / s_q^2 - 1 ] per dimension
    per_dim = 0.5 * (logvar_q - logvar + (logvar.exp() + (mu - mu_q) ** 2) / logvar_q.exp() - 1.0)
    return per_dim.sum(-1)


def kl_mvn(mu_p, Sigma_p, mu_q, Sigma_q) -> torch.Tensor:
    r"""KL divergence between multivariate Gaussians with full covariance matrices.

    .. math:: \mathrm{KL}\big(\mathcal N(\mu_p, \Sigma_p) \,\|\, \mathcal N(\mu_q, \Sigma_q)\big)
              = \frac12\Big[\operatorname{tr}(\Sigma_q^{-1}\Sigma_p)
              + (\mu_q - \mu_p)^\top \Sigma_q^{-1} (\mu_q - \mu_p) - D
              + \log\frac{\det\Sigma_q}{\det\Sigma_p}\Big]

    ``mu_*`` of shape ``(D,)``, ``Sigma_*`` of shape ``(D, D)``, symmetric positive definite
    (a leading batch axis ``(B, ...)`` is allowed on all four). Computed with Cholesky factors
    :math:`\Sigma = LL^\top`. Returns a scalar tensor (or ``(B,)``). Source: chapter 01.
    """
    mu_p, Sigma_p, mu_q, Sigma_q = (_tensor(v, n) for v, n in
                                    ((mu_p, "mu_p"), (Sigma_p, "Sigma_p"), (mu_q, "mu_q"), (Sigma_q, "Sigma_q")))
    D = mu_p.shape[-1] if mu_p.ndim else 0
    for S, name in ((Sigma_p, "Sigma_p"), (Sigma_q, "Sigma_q")):
        if S.ndim < 2 or S.shape[-2:] != (D, D):
            raise ValueError(f"{name} must have shape (D, D) = ({D}, {D}) to match mu_p, got {tuple(S.shape)}")
    if mu_q.shape[-1:] != (D,):
        raise ValueError(f"mu_q must have shape (D,) = ({D},), got {tuple(mu_q.shape)}")
    L_p, info_p = torch.linalg.cholesky_ex(Sigma_p)
    L_q, info_q = torch.linalg.cholesky_ex(Sigma_q)
    if bool((info_p != 0).any()) or bool((info_q != 0).any()):
        raise ValueError("Sigma_p and Sigma_q must be symmetric positive definite (the Cholesky factorisation failed)")
    A = torch.linalg.solve_triangular(L_q, L_p, upper=False)  # L_q^{-1} L_p: tr(Sigma_q^-1 Sigma_p) = ||A||_F^2
    diff = (mu_q - mu_p).unsqueeze(-1)  # (..., D, 1)
    w = torch.linalg.solve_triangular(L_q, diff, upper=False)  # L_q^{-1}(mu_q - mu_p)
    trace = (A**2).sum((-2, -1))
    mahalanobis = (w**2).sum((-2, -1))
    logdet_q = 2 * torch.log(torch.diagonal(L_q, dim1=-2, dim2=-1)).sum(-1)
    logdet_p = 2 * torch.log(torch.diagonal(L_p, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (trace + mahalanobis - D + logdet_q - logdet_p)


# ---------------------------------------------------------------------------------- Monte Carlo


def kl_monte_carlo(log_p: Callable, log_q: Callable, x: torch.Tensor):
    r"""Monte-Carlo estimate of :math:`\mathrm{KL}(P\|Q)` from samples :math:`x_i \sim P`, and its
    standard error.

    .. math:: \widehat{\mathrm{KL}} = \frac1n \sum_{i=1}^n \big[\log p(x_i) - \log q(x_i)\big],
              \qquad \mathrm{se} = \frac{\operatorname{sd}_i\big[\log p(x_i) - \log q(x_i)\big]}{\sqrt n}

    ``log_p``, ``log_q``: functions mapping ``x`` (shape ``(n, ...)``) to log-densities ``(n,)``;
    ``x``: ``n >= 2`` samples **from P** (the randomness comes in with ``x``). The estimate is
    unbiased and differentiable (reparameterised samples give gradients; chapter 01, reverse KL).
    Returns ``(estimate, standard_error)``, two scalar tensors.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of n >= 2 samples from P, shape (n, ...), got {shape}")
    r = log_p(x) - log_q(x)  # (n,)
    if r.shape != (x.shape[0],):
        raise ValueError(f"log_p(x) - log_q(x) must have shape (n,) = ({x.shape[0]},), got {tuple(r.shape)}")
    return r.mean(), r.detach().std() / math.sqrt(x.shape[0])


# ------------------------------------------------------------------------------------- discrete


def _check_probs(p, name: str, dim: int = -1) -> torch.Tensor:
    p = _tensor(p, name)
    if p.ndim == 0:
        raise ValueError(f"{name} must be a probability vector of shape (..., K), got a scalar")
    if p.numel() and (bool((p < 0).any()) or not bool(torch.isfinite(p).all())):
        raise ValueError(f"{name} must have finite, non-negative entries, got min {p.min().item():.4g}")
    total = p.sum(dim)
    if not torch.allclose(total, torch.ones_like(total), atol=1e-4):
        raise ValueError(f"{name} must sum to 1 along dim {dim}, got sums in [{total.min().item():.6g}, {total.max().item():.6g}]")
    return p


def kl_discrete(p, q, dim: int = -1) -> torch.Tensor:
    r"""KL divergence between discrete distributions, in nats.

    .. math:: \mathrm{KL}(p\|q) = \sum_k p_k \log\frac{p_k}{q_k}

    with :math:`0 \log \frac{0}{q} = 0`, and :math:`+\infty` when some :math:`q_k = 0 < p_k`
    (P is not absolutely continuous with respect to Q). ``p``, ``q`` of shape ``(..., K)``
    summing to 1 along ``dim``; returns shape ``(...)``.

    >>> round(kl_discrete(torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])).item(), 6)
    0.143841
    """
    p, q = _check_probs(p, "p", dim), _check_probs(q, "q", dim)
    terms = torch.xlogy(p, p) - torch.xlogy(p, q)  # p log p - p log q, with 0 log 0 = 0
    terms = torch.where(p > 0, terms, torch.zeros_like(terms))
    return terms.sum(dim)


def js_discrete(p, q, dim: int = -1) -> torch.Tensor:
    r"""Jensen–Shannon divergence between discrete distributions, in nats.

    .. math:: \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p\|m) + \tfrac12 \mathrm{KL}(q\|m),
              \qquad m = \tfrac12(p + q), \qquad 0 \le \mathrm{JS} \le \log 2

    Symmetric and always finite: it equals :math:`\log 2` exactly when the supports are disjoint.
    ``p``, ``q`` of shape ``(..., K)``; returns ``(...)``. Source: chapter 01.
    """
    p, q = _check_probs(p, "p", dim), _check_probs(q, "q", dim)
    m = 0.5 * (p + q)
    return 0.5 * kl_discrete(p, m, dim) + 0.5 * kl_discrete(q, m, dim)


class FGenerator(NamedTuple):
    r"""A generator :math:`f` of an :math:`f`-divergence, with what :func:`f_divergence` needs at the
    edges of the supports: ``f_inf`` :math:`= \lim_{t\to\infty} f(t)/t` (mass of P where Q has none),
    ``f_zero`` :math:`= f(0)` (mass of Q where P has none), and ``perspective(p, q)``
    :math:`= q f(p/q)` written without the ratio, so that tiny :math:`q` neither overflows nor breaks
    gradients."""

    f: Callable
    f_inf: float
    f_zero: float
    perspective: Callable


#: name -> :class:`FGenerator`: the convex functions with :math:`f(1) = 0` of the usual divergences.
F_GENERATORS: dict[str, FGenerator] = {
    # t log t;  q f(p/q) = p log p - p log q
    "kl": FGenerator(lambda t: torch.xlogy(t, t), math.inf, 0.0,
                     lambda p, q: torch.xlogy(p, p) - torch.xlogy(p, q)),
    # -log t;  q f(p/q) = q log q - q log p
    "reverse_kl": FGenerator(lambda t: -torch.log(t), 0.0, math.inf,
                             lambda p, q: torch.xlogy(q, q) - torch.xlogy(q, p)),
    # 1/2 [t log t - (1 + t) log((1 + t)/2)];  q f(p/q) = 1/2 [p log p + q log q - (p + q) log((p + q)/2)]
    "js": FGenerator(lambda t: 0.5 * (torch.xlogy(t, t) - torch.xlogy(1 + t, (1 + t) / 2)), 0.5 * LOG2, 0.5 * LOG2,
                     lambda p, q: 0.5 * (torch.xlogy(p, p) + torch.xlogy(q, q) - torch.xlogy(p + q, (p + q) / 2))),
    # 1/2 |t - 1|;  q f(p/q) = 1/2 |p - q|
    "tv": FGenerator(lambda t: 0.5 * (t - 1).abs(), 0.5, 0.5, lambda p, q: 0.5 * (p - q).abs()),
    # (t - 1)^2 (Pearson);  q f(p/q) = (p - q)^2 / q
    "chi2": FGenerator(lambda t: (t - 1) ** 2, math.inf, 1.0, lambda p, q: (p - q) ** 2 / q),
}


def f_divergence(p, q, f: str | Callable = "kl", f_inf: float | None = None, dim: int = -1) -> torch.Tensor:
    r"""The :math:`f`-divergence between discrete distributions (Csiszár, 1967; Ali & Silvey, 1966).

    .. math:: D_f(p\|q) = \sum_{k:\, q_k > 0} q_k\, f\!\Big(\frac{p_k}{q_k}\Big)
              + f'(\infty) \sum_{k:\, q_k = 0} p_k, \qquad f'(\infty) = \lim_{t\to\infty} \frac{f(t)}{t}

    for a convex :math:`f` with :math:`f(1) = 0`. ``f`` is a name from :data:`F_GENERATORS`:

    ============== ===================================================== ====================
    name           :math:`f(t)`                                          divergence
    ============== ===================================================== ====================
    ``kl``         :math:`t\log t`                                       :math:`\mathrm{KL}(p\|q)`
    ``reverse_kl`` :math:`-\log t`                                       :math:`\mathrm{KL}(q\|p)`
    ``js``         :math:`\frac12[t\log t - (1+t)\log\frac{1+t}{2}]`     JS, :math:`\le \log 2`
    ``tv``         :math:`\frac12|t - 1|`                                total variation, :math:`\le 1`
    ``chi2``       :math:`(t-1)^2`                                       Pearson :math:`\chi^2`
    ============== ===================================================== ====================

    or a callable ``f(t)`` acting elementwise on a tensor, with ``f_inf`` its slope at infinity
    (needed only when some :math:`q_k = 0 < p_k`). ``p``, ``q`` of shape ``(..., K)`` summing to 1;
    returns ``(...)``, in nats. Differentiable in ``p`` and ``q``, with finite gradients also where
    one of them underflows to 0 (the named generators are evaluated in the ratio-free form
    :math:`q f(p/q)`). Source: chapter 01.
    """
    if isinstance(f, str):
        if f not in F_GENERATORS:
            raise ValueError(f"f must be one of {sorted(F_GENERATORS)} or a callable, got {f!r}")
        gen = F_GENERATORS[f]
        gen = gen._replace(f_inf=gen.f_inf if f_inf is None else f_inf)
    elif callable(f):
        func = f
        f_zero = float(func(torch.zeros((), dtype=torch.float64)))
        gen = FGenerator(func, f_inf, f_zero, lambda p, q: q * func(p / q))
    else:
        raise ValueError(f"f must be a name in {sorted(F_GENERATORS)} or a callable, got {type(f).__name__}")
    p, q = _check_probs(p, "p", dim), _check_probs(q, "q", dim)
    p, q = torch.broadcast_tensors(p, q)
    pos_p, pos_q = p > 0, q > 0
    both = pos_p & pos_q
    # safe stand-ins where a probability is 0, so that no branch makes inf or nan gradients
    p_s, q_s = torch.where(both, p, torch.ones_like(p)), torch.where(both, q, torch.ones_like(q))
    terms = torch.where(both, gen.perspective(p_s, q_s), torch.zeros_like(p))
    only_q = pos_q & ~pos_p  # q f(0) for the mass of Q where P has none
    if bool(only_q.any()):
        if math.isinf(gen.f_zero):
            terms = torch.where(only_q, torch.full_like(terms, gen.f_zero), terms)
        else:
            terms = terms + torch.where(only_q, q, torch.zeros_like(q)) * gen.f_zero
    only_p = pos_p & ~pos_q  # f'(inf) p for the mass of P where Q has none
    if bool(only_p.any()):
        if gen.f_inf is None:
            raise ValueError("p puts mass where q = 0: pass f_inf = lim f(t)/t for a callable f")
        if math.isinf(gen.f_inf):
            terms = torch.where(only_p, torch.full_like(terms, gen.f_inf), terms)
        else:
            terms = terms + torch.where(only_p, p, torch.zeros_like(p)) * gen.f_inf
    return terms.sum(dim)


# ------------------------------------------------------------------------------------------ GAN


def optimal_discriminator(log_p_data, log_p_model, log: bool = False) -> torch.Tensor:
    r"""The discriminator that maximises the GAN objective for a fixed generator.

    .. math:: D^*(x) = \frac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)}
              = \sigma\big(\log p_\text{data}(x) - \log p_g(x)\big)

    It maximises :math:`V(D) = \mathbb E_{p_\text{data}}[\log D] + \mathbb E_{p_g}[\log(1 - D)]`
    pointwise (:math:`a \log D + b \log(1-D)` peaks at :math:`D = a/(a+b)`), and there
    :math:`V(D^*) = 2\,\mathrm{JS}(p_\text{data}, p_g) - \log 4` (Goodfellow et al., 2014,
    Proposition 1 and Theorem 1; chapters 01 and 06).

    Takes log-densities (any equal shapes; ``-inf`` allowed for zero density, not both) for
    numerical stability; returns :math:`D^*` of the same shape, in [0, 1], or with ``log=True``
    :math:`\log D^* = \log\sigma(\log p_\text{data} - \log p_g)`, which stays finite where
    :math:`D^*` rounds to 0 or 1 (and :math:`\log(1 - D^*)` is ``optimal_discriminator(log_p_model,
    log_p_data, log=True)``).
    """
    log_p_data, log_p_model = _tensor(log_p_data, "log_p_data"), _tensor(log_p_model, "log_p_model")
    if log_p_data.shape != log_p_model.shape:
        raise ValueError(f"log_p_data and log_p_model must have the same shape, got {tuple(log_p_data.shape)} and {tuple(log_p_model.shape)}")
    both = torch.isneginf(log_p_data) & torch.isneginf(log_p_model)
    if bool(both.any()):
        raise ValueError("D* is undefined where both densities are 0 (log_p_data = log_p_model = -inf)")
    if log:
        return torch.nn.functional.logsigmoid(log_p_data - log_p_model)
    return torch.sigmoid(log_p_data - log_p_model)
