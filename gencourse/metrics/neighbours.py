r"""Nearest neighbours, k-NN manifolds (precision and recall), memorisation and mode coverage."""

from __future__ import annotations

import math

import torch

from .. import checks, config, data
from .features import _check_same_dim, check_features, check_images

__all__ = [
    "nearest_neighbours",
    "nearest_distances",
    "knn_radii",
    "manifold_coverage",
    "precision_recall",
    "nn_train_ratio",
    "mode_coverage",
]

# ----------------------------------------------------------------------------------------------
# precision and recall (Kynkäänniemi et al., 2019)
# ----------------------------------------------------------------------------------------------


def _exact_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Euclidean distances ``|a_i - b_i|`` of two ``(M, D)`` float64 tensors, in the
    difference form: 0.0 exactly for identical rows, whatever the BLAS library or thread count."""
    return (a - b).norm(dim=1)


def _approx_sq_distances(a: torch.Tensor, b: torch.Tensor, a_sq: torch.Tensor, b_sq: torch.Tensor):
    r"""Squared distances ``(N_a, N_b)`` by one matrix product, :math:`|a|^2 + |b|^2 - 2 a b^\top`
    (fast, but its rounding depends on the BLAS path), and a bound on their rounding error."""
    d2 = (a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)).clamp_min(0)
    return d2, 1e-10 * (a_sq[:, None] + b_sq[None, :]) + 1e-300


def _as_rows(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] < 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor (N, ...) with N >= 1 (one row or image per point), got {got}")
    return x.detach().flatten(1).double()


@torch.no_grad()
@config.threads(1)
def nearest_neighbours(query, support, k: int = 1, *, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The ``k`` rows of ``support`` closest to each row of ``query``, in Euclidean distance:

    .. math:: \mathrm{nn}_1(q) = \arg\min_j \|q - s_j\|_2, \quad \ldots, \quad \mathrm{nn}_k(q)

    over all pixels for images. The memorisation check of chapters 06 and 14: a generator that
    memorises returns near-copies of training images (distance ≈ 0), one that generalises digits
    whose nearest neighbours are similar but not identical.

    ``query`` ``(n, ...)`` and ``support`` ``(N, ...)`` with equal trailing shapes (images are
    flattened), ``1 <= k <= N``. Returns ``(distances, indices)``, both ``(n, k)``, sorted by distance
    (ties by index); distances in float64 on the CPU. Exact for duplicates: an identical row is at
    distance 0.0. Candidates come from one float64 matrix product per chunk of ``chunk`` queries
    (fast: 2,000 × 4,000 images of 784 pixels take seconds); the distances returned are recomputed
    in the difference form :math:`\|q - s\|`, so they do not depend on the BLAS path, the thread
    count or the chunk size. Runs on :func:`gencourse.config.device`.
    """
    q, s = _as_rows(query, "query"), _as_rows(support, "support")
    if q.shape[1] != s.shape[1]:
        raise ValueError(f"query and support must have the same trailing shape, got {tuple(query.shape)} and {tuple(support.shape)}")
    k = checks.positive_int(k, "k")
    if k > len(s):
        raise ValueError(f"k must be at most the number of support points N = {len(s)}, got {k}")
    chunk = checks.positive_int(chunk, "chunk")
    dev = config.device()
    s = s.to(dev)
    s_sq = s.square().sum(1)
    m = min(len(s), k + 8)  # a few spare candidates against rounding in the matrix product
    dists, idx = [], []
    for qb in q.split(chunk):
        qb = qb.to(dev)
        d2, _ = _approx_sq_distances(qb, s, qb.square().sum(1), s_sq)
        cand = d2.topk(m, dim=1, largest=False).indices.sort(dim=1).values  # (c, m), by index
        exact = _exact_distances(qb.repeat_interleave(m, dim=0), s[cand.reshape(-1)]).reshape(len(qb), m)
        v, order = exact.sort(dim=1, stable=True)  # by distance, ties by index
        dists.append(v[:, :k].cpu())
        idx.append(cand.gather(1, order[:, :k]).cpu())
    return torch.cat(dists), torch.cat(idx)


def nearest_distances(query, support, chunk: int = 512) -> torch.Tensor:
    r"""Euclidean distance from each row of ``query`` ``(N_q, D)`` to its nearest row of ``support``
    ``(N_s, D)``: :math:`\min_j \|q_i - s_j\|`, shape ``(N_q,)`` float64 (:func:`nearest_neighbours`
    with ``k = 1``). Images may be passed as ``(N, 1, 28, 28)`` (flattened)."""
    return nearest_neighbours(query, support, 1, chunk=chunk)[0][:, 0]


def knn_radii(features, k: int = 3, chunk: int = 512) -> torch.Tensor:
    r"""Distance from each point to its ``k``-th nearest neighbour in the same set, itself excluded:
    the radius :math:`r_k(\phi_i)` of the ball of the k-NN manifold. ``features`` ``(N, d)``, ``N > k``;
    returns ``(N,)`` float64. Duplicates count as neighbours at distance 0."""
    f = check_features(features, "features")
    if not isinstance(k, int) or k < 1 or k >= len(f):
        raise ValueError(f"k must be an int with 1 <= k < N = {len(f)}, got {k!r}")
    # the k+1 nearest include the point itself (at distance 0.0): the k-th neighbour is the last
    return nearest_neighbours(f, f, k + 1, chunk=chunk)[0][:, k]


@torch.no_grad()
@config.threads(1)
def manifold_coverage(query, support, radii, chunk: int = 2048) -> float:
    r"""Fraction of ``query`` points inside the union of balls :math:`B(s_j, r_j)` around ``support``:

    .. math:: \frac{1}{|Q|}\sum_{q \in Q} \mathbb 1\big[\exists j: \|q - s_j\| \le r_j\big].

    ``query`` ``(N_q, d)``, ``support`` ``(N_s, d)``, ``radii`` ``(N_s,)``. Pairs that the fast
    matrix-product distances cannot decide (within their rounding bound of a radius) are decided
    with exact distances, as :func:`knn_radii` computes them: a point at exactly a radius is inside,
    on every machine."""
    q = check_features(query, "query", min_rows=1)
    s = check_features(support, "support", min_rows=1)
    _check_same_dim(q, s, ("query", "support"))
    radii = torch.as_tensor(radii, dtype=torch.float64)
    if radii.shape != (len(s),):
        raise ValueError(f"radii must have shape (N_s,) = ({len(s)},), got {tuple(radii.shape)}")
    r2, s_sq = radii.square(), s.square().sum(1)
    inside = 0
    for qb in q.split(chunk):
        d2, tol = _approx_sq_distances(qb, s, qb.square().sum(1), s_sq)
        sure = (d2 <= r2 - tol).any(dim=1)  # (c,)
        rows, cols = (((d2 - r2).abs() <= tol) & ~sure[:, None]).nonzero(as_tuple=True)
        if len(rows):
            close = _exact_distances(qb[rows], s[cols]) <= radii[cols]
            sure[rows[close]] = True
        inside += sure.sum().item()
    return inside / len(q)


@config.threads(1)
def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    r"""Improved precision and recall (Kynkäänniemi et al., 2019) with ``k``-NN manifolds (k = 3):

    .. math:: \text{precision} = \frac{1}{M}\sum_{j} \mathbb 1[\phi_g^{(j)} \in \text{manifold}(\Phi_r)],\qquad
              \text{recall} = \frac{1}{N}\sum_{i} \mathbb 1[\phi_r^{(i)} \in \text{manifold}(\Phi_g)],

    where :math:`\text{manifold}(\Phi) = \bigcup_{\phi \in \Phi} B(\phi, r_k(\phi))`. Precision asks
    "do samples look real?" (fidelity), recall "is every kind of real image produced?" (diversity).
    ``real`` ``(N, d)`` and ``fake`` ``(M, d)``; use the same number of each (radii shrink with N).
    """
    r = check_features(real, "real")
    g = check_features(fake, "fake")
    _check_same_dim(r, g, ("real", "fake"))
    precision = manifold_coverage(g, r, knn_radii(r, k))
    recall = manifold_coverage(r, g, knn_radii(g, k))
    return precision, recall


# ----------------------------------------------------------------------------------------------
# memorisation
# ----------------------------------------------------------------------------------------------


_HELDOUT_NN: dict = {}


@config.threads(1)
def nn_train_ratio(samples01, train01=None, heldout01=None) -> float:
    r"""A data-copying score in pixel space: the median distance from a sample to its nearest
    training image, divided by the same median for held-out real images,

    .. math:: \rho = \frac{\operatorname{median}_i \min_j \|x^{(g)}_i - x^{(\text{train})}_j\|}
                          {\operatorname{median}_k \min_j \|x^{(\text{test})}_k - x^{(\text{train})}_j\|}.

    :math:`\rho \approx 1`: samples are as far from the training set as new real images are;
    :math:`\rho \approx 0`: the model reproduces training images. FID, KID, precision and recall
    against held-out images cannot see copying (cf. Meehan et al., 2020, *A non-parametric test to
    detect data-copying in generative models*). Images ``(N, 1, 28, 28)`` in [0, 1]; ``train01`` and
    ``heldout01`` default to the active profile's MNIST train and test splits.
    """
    x = check_images(samples01, "01", name="samples01")
    if train01 is None and heldout01 is None:
        train01, _ = data.mnist_tensors("train", verbose=False)
        heldout01, _ = data.mnist_tensors("test", verbose=False)
        key = (len(train01), len(heldout01), config.profile())
        if key not in _HELDOUT_NN:
            _HELDOUT_NN[key] = nearest_distances(heldout01, train01).median().item()
        denominator = _HELDOUT_NN[key]
    else:
        train01 = check_images(train01, "01", name="train01")
        heldout01 = check_images(heldout01, "01", name="heldout01")
        denominator = nearest_distances(heldout01, train01).median().item()
    return nearest_distances(x, train01).median().item() / denominator


# ----------------------------------------------------------------------------------------------
# Mode coverage on a Gaussian mixture (chapter 06)
# ----------------------------------------------------------------------------------------------


def mode_coverage(x: torch.Tensor, means: torch.Tensor, std: float, n_std: float = 3.0, min_count: int | None = None) -> dict:
    r"""How many modes of a Gaussian mixture the samples ``x`` cover, and how many samples are good.

    Each sample goes to its nearest mode :math:`k(x) = \arg\min_k \|x - \mu_k\|`; it is
    **high quality** when :math:`\|x - \mu_{k(x)}\| \le` ``n_std`` :math:`\cdot\,\sigma` (VEEGAN,
    Srivastava et al., 2017, section 5.1: three standard deviations). A mode is **captured** when
    it receives at least ``min_count`` high-quality samples; the default,
    :math:`\max(1, \lceil n / (10 K) \rceil)`, a tenth of a fair share, keeps a few stray points
    from counting as a mode.

    Args:
        x: samples ``(n, 2)`` (any ``(n, D)``).
        means: the mixture's means :math:`\mu` ``(K, D)``.
        std: the mixture's standard deviation :math:`\sigma` (one for all modes).

    Returns a dict: ``modes`` (number captured, int), ``n_modes`` (:math:`K`), ``high_quality``
    (fraction of samples within ``n_std`` σ of a mode), ``counts`` (high-quality samples per mode,
    ``(K,)`` int64) and ``kl_uniform`` (:math:`\mathrm{KL}(\hat\pi \,\|\, \mathcal U_K)` in nats of
    the distribution :math:`\hat\pi` of high-quality samples over the modes: 0 when they are
    spread evenly, :math:`\log K` when all sit on one mode; ``nan`` without any).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (n, D) with n >= 1, got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    means = torch.as_tensor(means, dtype=torch.float64)
    if means.ndim != 2 or means.shape[1] != x.shape[1]:
        raise ValueError(f"means must have shape (K, D) = (K, {x.shape[1]}), got {tuple(means.shape)}")
    if not isinstance(std, (int, float)) or not std > 0:
        raise ValueError(f"std must be a number > 0, got {std!r}")
    n, K = x.shape[0], means.shape[0]
    if min_count is None:
        min_count = max(1, math.ceil(n / (10 * K)))
    dist = torch.cdist(x.detach().double().cpu(), means, compute_mode="donot_use_mm_for_euclid_dist")  # (n, K)
    d_min, k = dist.min(dim=1)
    good = d_min <= n_std * std
    counts = torch.bincount(k[good], minlength=K)
    total = counts.sum().item()
    if total:
        pi = counts.double() / total
        kl = float((torch.xlogy(pi, pi).sum() + math.log(K)).item())  # sum pi log(pi K)
    else:
        kl = float("nan")
    return {
        "modes": int((counts >= min_count).sum().item()),
        "n_modes": K,
        "high_quality": good.double().mean().item(),
        "counts": counts,
        "kl_uniform": kl,
    }
