r"""Fréchet distance (FID) and kernel distance (KID) between feature sets, and the bias of FID with
the sample size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .. import config, transport
from .features import _check_same_dim, check_features

__all__ = [
    "gaussian_stats",
    "sqrtm_psd",
    "frechet_distance_gaussians",
    "frechet_distance",
    "polynomial_kernel",
    "mmd2_unbiased",
    "kid",
    "fid_vs_n",
    "fid_infinity",
]

# ----------------------------------------------------------------------------------------------
# Fréchet distance
# ----------------------------------------------------------------------------------------------


@config.threads(1)
def gaussian_stats(f) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and covariance of features ``f`` of shape ``(N, d)``, in float64:
    :math:`\mu = \frac1N\sum_i f_i`, :math:`\Sigma = \frac{1}{N-1}\sum_i (f_i - \mu)(f_i - \mu)^\top`
    (the unbiased covariance, as ``numpy.cov`` and the reference FID code use)."""
    f = check_features(f, "f")
    mu = f.mean(0)
    fc = f - mu  # (N, d)
    return mu, fc.T @ fc / (f.shape[0] - 1)


sqrtm_psd = transport.sqrtm_psd  # one PSD square root, in chapter 02's module


@config.threads(1)
def frechet_distance_gaussians(mu1, sigma1, mu2, sigma2) -> float:
    r"""Squared Fréchet (Wasserstein-2) distance between :math:`\mathcal N(\mu_1, \Sigma_1)` and
    :math:`\mathcal N(\mu_2, \Sigma_2)` (Dowson & Landau, 1982):

    .. math:: d^2 = \|\mu_1 - \mu_2\|^2 + \operatorname{tr}\Big(\Sigma_1 + \Sigma_2
              - 2\big(\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}\big)^{1/2}\Big),

    :func:`gencourse.transport.wasserstein2_gaussians_squared` (see there for how the trace of the
    square root is computed stably) in float64.

    Args: ``mu1``, ``mu2`` of shape ``(d,)``; ``sigma1``, ``sigma2`` of shape ``(d, d)``, symmetric PSD.
    Returns: a Python float.
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64) for m in (mu1, mu2))
    sigma1, sigma2 = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma1, sigma2))
    return transport.wasserstein2_gaussians_squared(mu1, sigma1, mu2, sigma2).item()


@config.threads(1)
def frechet_distance(features_a, features_b) -> float:
    r"""FID: the Fréchet distance between Gaussians fitted (:func:`gaussian_stats`) to two feature
    sets ``(N_a, d)`` and ``(N_b, d)`` (one row per image). Symmetric, 0 for identical sets, and
    biased upwards for finite :math:`N` (the bias falls like :math:`1/N`; see :func:`fid_vs_n`).
    """
    a = check_features(features_a, "features_a")
    b = check_features(features_b, "features_b")
    _check_same_dim(a, b)
    return frechet_distance_gaussians(*gaussian_stats(a), *gaussian_stats(b))


# ----------------------------------------------------------------------------------------------
# KID: unbiased MMD² with a polynomial kernel
# ----------------------------------------------------------------------------------------------


def polynomial_kernel(a, b, degree: int = 3, coef0: float = 1.0) -> torch.Tensor:
    r"""The kernel matrix :math:`k(a_i, b_j) = (a_i \cdot b_j / d + c)^{p}` of KID, ``(N_a, N_b)``,
    with :math:`d` the feature dimension, :math:`p` = ``degree`` = 3 and :math:`c` = ``coef0`` = 1."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return (a @ b.T / a.shape[1] + coef0) ** degree


def _kernel_sums(a: torch.Tensor, b: torch.Tensor, kernel, chunk: int = 2048) -> float:
    """:math:`\\sum_{i,j} k(a_i, b_j)` computed in row blocks (memory ``chunk × N_b``)."""
    return sum(kernel(a[i : i + chunk], b).sum().item() for i in range(0, len(a), chunk))


@config.threads(1)
def mmd2_unbiased(x, y, kernel=polynomial_kernel) -> float:
    r"""The unbiased estimate of the squared maximum mean discrepancy (Gretton et al., 2012, Lemma 6):

    .. math:: \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)}\sum_{i \ne j} k(x_i, x_j)
              + \frac{1}{n(n-1)}\sum_{i \ne j} k(y_i, y_j) - \frac{2}{mn}\sum_{i, j} k(x_i, y_j)

    for ``x`` ``(m, d)`` and ``y`` ``(n, d)``, :math:`m, n \ge 2`. The diagonal terms :math:`k(x_i, x_i)`
    are left out (including them gives the biased V-statistic, always :math:`\ge 0`); the unbiased
    estimate can be slightly negative when the two distributions are equal. Returns a float.
    """
    x = check_features(x, "x")
    y = check_features(y, "y")
    _check_same_dim(x, y, ("x", "y"))
    m, n = len(x), len(y)
    kxx = _kernel_sums(x, x, kernel) - _diag_sum(x, kernel)
    kyy = _kernel_sums(y, y, kernel) - _diag_sum(y, kernel)
    kxy = _kernel_sums(x, y, kernel)
    return kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - 2 * kxy / (m * n)


def _diag_sum(x: torch.Tensor, kernel, chunk: int = 2048) -> float:
    """:math:`\\sum_i k(x_i, x_i)`, without forming the full kernel matrix."""
    total = 0.0
    for i in range(0, len(x), chunk):
        block = x[i : i + chunk]
        total += kernel(block, block).diagonal().sum().item()
    return total


def kid(features_a, features_b) -> float:
    r"""Kernel Inception Distance (Bińkowski et al., 2018): :func:`mmd2_unbiased` with the cubic
    polynomial kernel :math:`k(x, y) = (x \cdot y / d + 1)^3`, on all pairs of the two sets
    ``(N_a, d)`` and ``(N_b, d)``. Unbiased: its expectation does not depend on the sample sizes.
    (Bińkowski et al. average over subsets of 1,000 to get an error bar; here all pairs are used.)"""
    return mmd2_unbiased(features_a, features_b, polynomial_kernel)


# ----------------------------------------------------------------------------------------------
# FID and the sample size
# ----------------------------------------------------------------------------------------------


@config.threads(1)
def fid_vs_n(features, reference, ns: Sequence[int], *, repeats: int = 3, generator: torch.Generator | None = None):
    """FID between ``n`` rows drawn without replacement from ``features`` ``(N, d)`` and all of
    ``reference``, for each ``n`` in ``ns``, ``repeats`` times. Returns ``(ns, mean, std)`` as
    NumPy arrays: the bias of FID with the sample size (chapter 14)."""
    f = check_features(features, "features")
    ref = check_features(reference, "reference")
    ns = [int(v) for v in ns]
    if not ns or min(ns) < 2 or max(ns) > len(f):
        raise ValueError(f"ns must be sample sizes between 2 and N = {len(f)}, got {ns}")
    means, stds = [], []
    for n in ns:
        vals = [frechet_distance(f[torch.randperm(len(f), generator=generator)[:n]], ref) for _ in range(repeats)]
        means.append(np.mean(vals))
        stds.append(np.std(vals))
    return np.array(ns), np.array(means), np.array(stds)


def fid_infinity(ns, fids) -> tuple[float, float]:
    r""":math:`\mathrm{FID}_\infty` (Chong & Forsyth, 2020): FID is nearly linear in :math:`1/N`,
    :math:`\mathrm{FID}_N \approx \mathrm{FID}_\infty + c/N`; a least-squares line through
    ``(1/ns, fids)`` extrapolated to :math:`1/N = 0`. Returns ``(fid_infinity, slope c)``."""
    ns = np.asarray(ns, dtype=float)
    fids = np.asarray(fids, dtype=float)
    if ns.shape != fids.shape or ns.ndim != 1 or len(ns) < 2:
        raise ValueError(f"ns and fids must be 1-D of equal length >= 2, got shapes {ns.shape} and {fids.shape}")
    slope, intercept = np.polyfit(1.0 / ns, fids, 1)
    return float(intercept), float(slope)
