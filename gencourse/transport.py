r"""Optimal transport (chapter 02).

Kantorovich's problem between discrete measures :math:`a \in \Delta_n`, :math:`b \in \Delta_m`
with a cost matrix :math:`M_{ij} = c(x_i, y_j)`:

.. math:: \mathrm{OT}(a, b) = \min_{P \ge 0,\; P\mathbf 1 = a,\; P^\top \mathbf 1 = b} \langle P, M\rangle
          = \max_{f_i + g_j \le M_{ij}} \langle f, a\rangle + \langle g, b\rangle ,

solved exactly (POT's network simplex, :func:`exact_ot`), with an entropic penalty
(:func:`sinkhorn`, log-domain), or in its dual form (:func:`kantorovich_dual`, :func:`c_transform`).
Closed forms: in one dimension the optimal plan matches sorted samples,

.. math:: W_p(\mu, \nu)^p = \int_0^1 |F_\mu^{-1}(u) - F_\nu^{-1}(u)|^p\, du
          = \frac1n \sum_{i=1}^n |x_{(i)} - y_{(i)}|^p \quad\text{(n samples each)},

and between Gaussians :func:`wasserstein2_gaussians`. For :math:`W_1` the Kantorovich–Rubinstein
duality :math:`W_1(P, Q) = \sup_{\|f\|_L \le 1} \mathbb E_P f - \mathbb E_Q f` is estimated with a
neural critic (:func:`critic_objective`) kept Lipschitz by weight clipping (:func:`clip_weights_`)
or a gradient penalty (:func:`gradient_penalty`): the WGAN critic of chapter 08. These three live in
:mod:`gencourse.losses` and are re-exported here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

# The Wasserstein critic's objective, gradient penalty and weight clipping live in losses (chapter 08
# trains with them); chapter 02 meets them here first.
from .losses import clip_weights_, critic_objective, gradient_penalty

__all__ = [
    "wasserstein_1d",
    "wasserstein_1d_quantile",
    "cost_matrix",
    "exact_ot",
    "wasserstein",
    "SinkhornResult",
    "sinkhorn",
    "sqrtm_psd",
    "wasserstein2_gaussians_squared",
    "wasserstein2_gaussians",
    "kantorovich_dual",
    "c_transform",
    "critic_objective",
    "gradient_penalty",
    "clip_weights_",
]


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    r"""Wasserstein-:math:`p` distance between two empirical measures on the line with the same
    number of samples, by sorting (differentiable in ``x`` and ``y``).

    ``x`` and ``y`` of shape ``(n,)``; returns a scalar tensor
    :math:`\left(\frac1n\sum_i |x_{(i)} - y_{(i)}|^p\right)^{1/p}` (:math:`W_p`, not :math:`W_p^p`).
    For samples of different sizes use :func:`wasserstein_1d_quantile`.
    """
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D with the same length, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    cost = (x.sort().values - y.sort().values).abs().pow(p).mean()
    return cost.pow(1.0 / p)


def wasserstein_1d_quantile(x: torch.Tensor, y: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    r"""Wasserstein-:math:`p` distance between empirical measures on the line of any sizes
    :math:`n` and :math:`m`, through their quantile functions (differentiable in ``x`` and ``y``).

    The quantile functions are step functions with steps at :math:`i/n` and :math:`j/m`; between
    two consecutive steps :math:`u_{k-1} < u \le u_k` both are constant, so

    .. math:: W_p^p = \int_0^1 |F_x^{-1}(u) - F_y^{-1}(u)|^p du
              = \sum_k (u_k - u_{k-1})\, \big|x_{(\lceil u_k n\rceil)} - y_{(\lceil u_k m\rceil)}\big|^p .

    ``x`` of shape ``(n,)``, ``y`` of shape ``(m,)``; returns a scalar tensor :math:`W_p`. With
    :math:`n = m` it equals :func:`wasserstein_1d`.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.ndim != 1 or y.ndim != 1 or not x.numel() or not y.numel():
        shapes = tuple(getattr(x, "shape", ())), tuple(getattr(y, "shape", ()))
        raise ValueError(f"x and y must be non-empty 1-D tensors, got shapes {shapes[0]} and {shapes[1]}")
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    xs, ys = x.sort().values, y.sort().values
    n, m = xs.numel(), ys.numel()
    # quantile levels u_k = levels / (n m), exact in integers
    levels = torch.cat([torch.arange(1, n + 1) * m, torch.arange(1, m + 1) * n]).unique(sorted=True).to(xs.device)
    widths = torch.diff(levels, prepend=levels.new_zeros(1)).to(xs.dtype) / (n * m)
    ix = (levels + m - 1) // m - 1  # ceil(u_k n) - 1: x's quantile on (u_{k-1}, u_k]
    iy = (levels + n - 1) // n - 1
    cost = (widths * (xs[ix] - ys[iy]).abs().pow(p)).sum()
    return cost.pow(1.0 / p)


def cost_matrix(x: torch.Tensor, y: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    r"""Ground cost :math:`M_{ij} = \|x_i - y_j\|_2^p` between point clouds.

    ``x`` of shape ``(n, D)``, ``y`` of shape ``(m, D)``; returns ``(n, m)`` (differentiable).
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        shapes = tuple(getattr(x, "shape", ())), tuple(getattr(y, "shape", ()))
        raise ValueError(f"x and y must have shapes (n, D) and (m, D) with the same D, got {shapes[0]} and {shapes[1]}")
    if p <= 0:
        raise ValueError(f"p must be > 0, got {p}")
    diff = x[:, None, :] - y[None, :, :]  # (n, m, D)
    sq = (diff**2).sum(-1)
    return sq if p == 2 else sq.clamp_min(0).pow(p / 2)


def _weights(a, n: int, like: torch.Tensor, name: str) -> torch.Tensor:
    if a is None:
        return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)
    a = torch.as_tensor(a, dtype=like.dtype, device=like.device)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the cost matrix, got {tuple(a.shape)}")
    if bool((a < 0).any()) or abs(a.sum().item() - 1) > 1e-6:
        raise ValueError(f"{name} must be a probability vector (non-negative, summing to 1), got sum {a.sum().item():.6g}")
    return a


def _check_cost(M) -> torch.Tensor:
    if not isinstance(M, torch.Tensor) or M.ndim != 2 or not M.is_floating_point():
        raise ValueError(f"M must be a floating-point tensor of shape (n, m), got {tuple(getattr(M, 'shape', ())) or type(M).__name__}")
    return M


def exact_ot(a, b, M: torch.Tensor):
    r"""Exact optimal transport by the network simplex (``ot.emd`` of POT, Bonneel et al., 2011).

    .. math:: P^* = \arg\min_{P \in U(a, b)} \langle P, M\rangle, \qquad
              U(a, b) = \{P \ge 0 : P\mathbf 1_m = a,\ P^\top \mathbf 1_n = b\}

    ``a`` of shape ``(n,)``, ``b`` of shape ``(m,)`` (probability vectors; ``None`` for uniform),
    ``M`` of shape ``(n, m)``. Returns ``(plan, cost)``: the plan ``(n, m)`` (row ``i`` = where the
    mass of :math:`x_i` goes) and :math:`\langle P^*, M\rangle`, differentiable in ``M`` (the
    gradient of the optimal cost with respect to :math:`M` is :math:`P^*`).
    """
    import ot

    M = _check_cost(M)
    a, b = _weights(a, M.shape[0], M, "a"), _weights(b, M.shape[1], M, "b")
    plan = ot.emd(a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy(), M.detach().cpu().double().numpy())
    plan = torch.from_numpy(plan).to(dtype=M.dtype, device=M.device)
    return plan, (plan * M).sum()


def wasserstein(x: torch.Tensor, y: torch.Tensor, p: float = 1.0, a=None, b=None) -> torch.Tensor:
    r"""Exact :math:`W_p` between point clouds: :math:`\big(\min_{P \in U(a,b)} \sum_{ij} P_{ij}\|x_i - y_j\|^p\big)^{1/p}`.

    ``x`` ``(n, D)``, ``y`` ``(m, D)``, weights ``a`` ``(n,)``, ``b`` ``(m,)`` (default uniform).
    Returns a scalar tensor, differentiable in ``x`` and ``y``.
    """
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    _, cost = exact_ot(a, b, cost_matrix(x, y, p))
    return cost.clamp_min(0).pow(1.0 / p)


class SinkhornResult(NamedTuple):
    """What :func:`sinkhorn` returns: the plan ``(n, m)``, the dual potentials ``f`` ``(n,)`` and
    ``g`` ``(m,)``, the number of iterations run and the final marginal error :math:`\\|P\\mathbf 1 - a\\|_1`."""

    plan: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    n_iters: int
    error: float


def sinkhorn(a, b, M: torch.Tensor, eps: float, n_iters: int = 1000, tol: float = 1e-9) -> SinkhornResult:
    r"""Entropic optimal transport by Sinkhorn's iterations in the log domain (Cuturi, 2013;
    Peyré & Cuturi, 2019, Remark 4.23).

    Solves :math:`\min_{P \in U(a, b)} \langle P, M\rangle - \varepsilon H(P)`,
    :math:`H(P) = -\sum_{ij} P_{ij}(\log P_{ij} - 1)`, whose solution is
    :math:`P_{ij} = \exp\big((f_i + g_j - M_{ij})/\varepsilon\big)`. Alternately making each
    marginal exact:

    .. math:: f_i \leftarrow \varepsilon\log a_i - \varepsilon \operatorname{logsumexp}_j \frac{g_j - M_{ij}}{\varepsilon},
              \qquad g_j \leftarrow \varepsilon\log b_j - \varepsilon \operatorname{logsumexp}_i \frac{f_i - M_{ij}}{\varepsilon}

    Working with the potentials :math:`f, g` instead of :math:`u = e^{f/\varepsilon}` keeps small
    :math:`\varepsilon` from underflowing. Stops when :math:`\|P\mathbf 1 - a\|_1 <` ``tol``
    (checked every 10 iterations) or after ``n_iters``. ``a`` ``(n,)``, ``b`` ``(m,)`` probability
    vectors with positive entries (``None``: uniform), ``M`` ``(n, m)``; ``eps`` > 0.
    Differentiable (by unrolling). Same plan as ``ot.sinkhorn(a, b, M, reg=eps)``.
    """
    M = _check_cost(M)
    if not float(eps) > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if not isinstance(n_iters, int) or n_iters < 1:
        raise ValueError(f"n_iters must be a positive int, got {n_iters!r}")
    a, b = _weights(a, M.shape[0], M, "a"), _weights(b, M.shape[1], M, "b")
    if bool((a <= 0).any()) or bool((b <= 0).any()):
        raise ValueError("a and b must be strictly positive for the log-domain iterations (drop the points of zero mass)")
    log_a, log_b = a.log(), b.log()
    f, g = torch.zeros_like(a), torch.zeros_like(b)
    error, it = float("inf"), 0
    for it in range(1, n_iters + 1):
        f = eps * log_a - eps * torch.logsumexp((g[None, :] - M) / eps, dim=1)  # rows sum to a
        g = eps * log_b - eps * torch.logsumexp((f[:, None] - M) / eps, dim=0)  # columns sum to b
        if it % 10 == 0 or it == n_iters:
            plan = torch.exp((f[:, None] + g[None, :] - M) / eps)
            error = (plan.sum(1) - a).abs().sum().item()
            if error < tol:
                break
    plan = torch.exp((f[:, None] + g[None, :] - M) / eps)  # (n, m)
    return SinkhornResult(plan, f, g, it, error)


def sqrtm_psd(A) -> torch.Tensor:
    r"""Square root of a symmetric positive semi-definite matrix, :math:`A^{1/2} = U \Lambda_+^{1/2} U^\top`.

    ``A`` ``(d, d)`` is symmetrised, :math:`(A + A^\top)/2`, to remove rounding asymmetry, then
    diagonalised with ``eigh`` (real eigenvalues, orthonormal :math:`U`); eigenvalues that rounding
    made slightly negative are set to 0. Returns a symmetric PSD ``(d, d)`` matrix, in the dtype of a
    floating-point tensor ``A``, else in float64.
    """
    A = A if isinstance(A, torch.Tensor) and A.is_floating_point() else torch.as_tensor(A, dtype=torch.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix (d, d), got shape {tuple(A.shape)}")
    A = (A + A.T) / 2
    lam, U = torch.linalg.eigh(A)
    return (U * lam.clamp(min=0).sqrt()) @ U.T


def wasserstein2_gaussians_squared(mu1, Sigma1, mu2, Sigma2) -> torch.Tensor:
    r"""Closed-form :math:`W_2^2` between Gaussians (Dowson & Landau, 1982; Olkin & Pukelsheim, 1982),
    the squared Fréchet distance that FID uses:

    .. math:: W_2^2\big(\mathcal N(\mu_1, \Sigma_1), \mathcal N(\mu_2, \Sigma_2)\big) = \|\mu_1 - \mu_2\|^2
              + \operatorname{tr}\Big(\Sigma_1 + \Sigma_2 - 2\big(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\big)^{1/2}\Big)

    (the second term is the squared Bures distance; in one dimension :math:`(\sigma_1 - \sigma_2)^2`).
    The trace of the matrix square root is computed stably: :math:`\Sigma_1 \Sigma_2` is similar to
    the *symmetric* PSD matrix :math:`M = \Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}`, so
    :math:`\operatorname{tr}(\Sigma_1\Sigma_2)^{1/2} = \sum_i \sqrt{\lambda_i(M)}`, with real
    eigenvalues from ``eigvalsh`` of the symmetrised :math:`M`, the ones that rounding made negative
    set to 0. (``scipy.linalg.sqrtm(S1 @ S2)``, used by the reference FID code, works on a
    non-symmetric product and can return a complex result whose imaginary part must be discarded.)

    ``mu*`` of shape ``(D,)``, ``Sigma*`` ``(D, D)`` symmetric PSD, tensors of one floating dtype
    (other inputs are converted to the default dtype). Returns a scalar tensor, clipped at 0
    (rounding can give ``-1e-12`` for identical inputs). Source: chapters 02 and 14.
    """
    mu1, Sigma1, mu2, Sigma2 = (torch.as_tensor(v, dtype=torch.get_default_dtype()) if not isinstance(v, torch.Tensor) else v
                                for v in (mu1, Sigma1, mu2, Sigma2))
    D = mu1.shape[-1] if mu1.ndim == 1 else -1
    if mu1.ndim != 1 or mu2.shape != (D,) or Sigma1.shape != (D, D) or Sigma2.shape != (D, D):
        raise ValueError(f"expected mu1, mu2 of shape (D,) and Sigma1, Sigma2 of shape (D, D), got "
                         f"{tuple(mu1.shape)}, {tuple(mu2.shape)}, {tuple(Sigma1.shape)}, {tuple(Sigma2.shape)}")
    root1 = sqrtm_psd(Sigma1)
    M = root1 @ Sigma2 @ root1
    lam = torch.linalg.eigvalsh((M + M.T) / 2).clamp(min=0)
    return ((mu1 - mu2).square().sum() + Sigma1.trace() + Sigma2.trace() - 2 * lam.sqrt().sum()).clamp_min(0)


def wasserstein2_gaussians(mu1, Sigma1, mu2, Sigma2) -> torch.Tensor:
    r""":math:`W_2` (not squared) between :math:`\mathcal N(\mu_1, \Sigma_1)` and
    :math:`\mathcal N(\mu_2, \Sigma_2)`: the square root of :func:`wasserstein2_gaussians_squared`
    (same arguments). Returns a scalar tensor. Source: chapter 02."""
    return wasserstein2_gaussians_squared(mu1, Sigma1, mu2, Sigma2).sqrt()


def kantorovich_dual(a, b, M: torch.Tensor):
    r"""Solve the dual of the discrete Kantorovich problem as a linear program (``scipy.optimize.linprog``, HiGHS).

    .. math:: \max_{f \in \mathbb R^n,\, g \in \mathbb R^m} \sum_i a_i f_i + \sum_j b_j g_j
              \quad\text{subject to}\quad f_i + g_j \le M_{ij} \ \ \forall i, j

    Its value equals the primal :math:`\min_P \langle P, M\rangle` (strong duality); the potentials
    are defined up to :math:`(f + c, g - c)`. ``a`` ``(n,)``, ``b`` ``(m,)`` (``None``: uniform),
    ``M`` ``(n, m)``, with :math:`n m` constraints: for small problems. Returns ``(f, g, value)``
    (tensors ``(n,)``, ``(m,)``, a float).
    """
    import scipy.optimize
    import scipy.sparse

    M = _check_cost(M)
    n, m = M.shape
    a, b = _weights(a, n, M, "a"), _weights(b, m, M, "b")
    rows = np.arange(n * m)
    i, j = np.divmod(rows, m)  # constraint (i, j) is row i*m + j
    A = scipy.sparse.coo_matrix((np.ones(2 * n * m), (np.concatenate([rows, rows]), np.concatenate([i, n + j]))), shape=(n * m, n + m))
    c = -np.concatenate([a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()])  # maximise = minimise -value
    res = scipy.optimize.linprog(c, A_ub=A.tocsr(), b_ub=M.detach().cpu().double().numpy().reshape(-1), bounds=(None, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"linprog failed on the Kantorovich dual: {res.message}")
    f = torch.from_numpy(res.x[:n]).to(M.dtype)
    g = torch.from_numpy(res.x[n:]).to(M.dtype)
    return f, g, float(-res.fun)


def c_transform(f: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    r"""The :math:`c`-transform of a potential on the source points:

    .. math:: f^c_j = \min_i \big(M_{ij} - f_i\big),

    the largest :math:`g` with :math:`f_i + g_j \le M_{ij}`; replacing :math:`g` by :math:`f^c`
    never lowers the dual value. ``f`` of shape ``(n,)``, ``M`` ``(n, m)``; returns ``(m,)``.
    (The transform of a potential on the target points is ``c_transform(g, M.T)``.)
    """
    M = _check_cost(M)
    if not isinstance(f, torch.Tensor) or f.shape != (M.shape[0],):
        raise ValueError(f"f must have shape (n,) = ({M.shape[0]},) to match M of shape {tuple(M.shape)}, got {tuple(getattr(f, 'shape', ()))}")
    return (M - f[:, None]).min(dim=0).values
