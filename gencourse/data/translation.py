r"""Image-to-image translation data that ships offline (chapter 10).

Paired sets (pix2pix): :func:`paired` returns a ``TensorDataset(source, target, label)``, the API of
a downloaded paired set (the *A* and *B* photographs of Isola et al.'s ``facades`` or ``edges2shoes``
side by side), built at run time from images already on disk:

=================  =============================================  ===========================================
``task``           source → target                                images
=================  =============================================  ===========================================
``"edges2digits"``  the digit's edge map → the MNIST digit         :func:`gencourse.data.mnist_tensors`
                    (1 × 28 × 28 → 1 × 28 × 28)                    (embedded subset; full MNIST under ``gpu``);
                                                                   ``label`` is the digit
``"grey2colour"``   a grey crop → the colour crop                  five colour photographs inside scikit-image's
                    (1 × 32 × 32 → 3 × 32 × 32)                    wheel, halved, cut in 32 × 32 crops; ``label``
                                                                   is the photograph's index in :data:`PHOTOS`
=================  =============================================  ===========================================

Unpaired sets (CycleGAN): :func:`unpaired` returns two ``TensorDataset(x, y)``: domain *A*, the
1,797 handwritten digits of the UCI / scikit-learn set (8 × 8, 17 grey levels, written by other
people, brought to 28 × 28 by :func:`uci_to_28`), and domain *B*, MNIST. Labels are for measuring
only; CycleGAN never sees them, nor which image of *A* goes with which of *B*.

Nothing is downloaded: the photographs are files of the ``scikit-image`` wheel, read directly with
Pillow; the UCI digits are a file of the ``scikit-learn`` wheel. Splits are fixed (seeded
permutations, or for the photographs a held-out strip of each picture) and every function returns
new tensors (the callers may modify them).

References: Isola, Zhu, Zhou & Efros (2017), *Image-to-image translation with conditional adversarial
networks* (pix2pix); Zhu, Park, Isola & Efros (2017), *Unpaired image-to-image translation using
cycle-consistent adversarial networks* (CycleGAN); Alpaydin & Kaynak (1998), *Optical recognition of
handwritten digits*, UCI Machine Learning Repository (the 8 × 8 digits); Zhang, Isola & Efros
(2016), *Colorful image colorization*.
"""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from .. import checks
from .images import SPLITS, VALUE_RANGES, mnist_tensors, to_pm1

__all__ = ["PAIRED_TASKS", "PHOTOS", "EDGE_THRESHOLD", "UCI_SPLIT_SEED", "UCI_TEST_PER_CLASS", "PHOTO_CROP", "PHOTO_HELD_OUT",
           "edge_map", "to_grey", "uci_to_28", "uci_digits", "photo_crops", "paired", "unpaired"]

PAIRED_TASKS = ("edges2digits", "grey2colour")
#: The colour photographs of scikit-image's wheel used for ``grey2colour``: natural scenes only
#: (no microscopy, retina or logo; not the Hubble field, mostly black sky that would flatter any
#: L1; not the right view of the motorcycle's stereo pair, a twin of the left one).
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")
#: A pixel is an edge when the Sobel gradient magnitude of the [0, 1] digit exceeds this.
EDGE_THRESHOLD = 1.0
UCI_SPLIT_SEED = 20_261_202
UCI_TEST_PER_CLASS = 30  # 300 held-out digits, the remaining 1,497 for training
PHOTO_CROP = 32
#: The right-most fraction of each (halved) photograph held out: no training crop overlaps it.
PHOTO_HELD_OUT = 0.25
_PHOTO_STRIDE = {"train": 8, "test": 16}  # overlapping crops, in both splits
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


def _check_images01(x, name: str, channels: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor of images (B, C, H, W), got a {got}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s), got shape {tuple(x.shape)}")
    if x.numel() and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(f"{name} must be in [0, 1], got values in [{x.min().item():.3g}, {x.max().item():.3g}]"
                         " (images in [-1, 1]? convert with gencourse.data.from_pm1)")
    return x


def edge_map(x01: torch.Tensor, threshold: float = EDGE_THRESHOLD) -> torch.Tensor:
    r"""The binary edge map of grey images ``(B, 1, H, W)`` in :math:`[0, 1]`: 1 where the Sobel
    gradient magnitude :math:`\sqrt{(S_x * x)^2 + (S_y * x)^2}` exceeds ``threshold``, else 0.

    :math:`S_x = \begin{pmatrix}-1&0&1\\-2&0&2\\-1&0&1\end{pmatrix}`, :math:`S_y = S_x^\top`, with
    zero padding (a digit's border is background). A fixed filter, not learned: the same input
    always gives the same map, as a photograph's edge detector would.
    """
    x01 = _check_images01(x01, "x01", channels=1)
    sx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x01.dtype)
    kernel = torch.stack([sx, sx.T]).unsqueeze(1)  # (2, 1, 3, 3)
    grad = F.conv2d(x01, kernel.to(x01.device), padding=1)
    return (grad.pow(2).sum(1, keepdim=True).sqrt() > threshold).to(x01.dtype)


def to_grey(rgb01: torch.Tensor) -> torch.Tensor:
    r"""Luminance :math:`Y = 0.299 R + 0.587 G + 0.114 B` (ITU-R BT.601) of colour images
    ``(B, 3, H, W)`` in :math:`[0, 1]`, as ``(B, 1, H, W)``."""
    rgb01 = _check_images01(rgb01, "rgb01", channels=3)
    w = torch.tensor(_LUMA, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
    return (rgb01 * w).sum(1, keepdim=True)


def uci_to_28(x8: torch.Tensor) -> torch.Tensor:
    r"""The fixed rule that brings UCI digits ``(B, 1, 8, 8)`` in :math:`[0, 1]` to MNIST's frame:
    bilinear upsampling to 20 × 20 (MNIST's digits fit a 20 × 20 box) and 4 pixels of background on
    every side, giving ``(B, 1, 28, 28)`` in :math:`[0, 1]`. The digits stay blurred and
    thick-stroked: the domain shift that CycleGAN learns to undo."""
    x8 = _check_images01(x8, "x8", channels=1)
    if x8.shape[-2:] != (8, 8):
        raise ValueError(f"x8 must be 8 x 8 UCI digits (B, 1, 8, 8), got shape {tuple(x8.shape)}")
    up = F.interpolate(x8, size=(20, 20), mode="bilinear", align_corners=False)
    return F.pad(up, (4, 4, 4, 4)).clamp(0, 1)


@functools.lru_cache(maxsize=1)
def _uci_all() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # a file of the scikit-learn wheel: nothing is fetched

    digits = load_digits()
    x8 = torch.from_numpy(np.asarray(digits.images, dtype=np.float32) / 16.0).unsqueeze(1)
    return uci_to_28(x8), torch.from_numpy(np.asarray(digits.target, dtype=np.int64))


def uci_digits(split: str = "train", *, value_range: str = "01") -> tuple[torch.Tensor, torch.Tensor]:
    r"""The UCI handwritten digits at 28 × 28 (:func:`uci_to_28`): ``(x, y)``, ``x`` float32
    ``(N, 1, 28, 28)``, ``y`` int64. A fixed split (seed :data:`UCI_SPLIT_SEED`): ``"test"`` has
    :data:`UCI_TEST_PER_CLASS` digits of each class (300), ``"train"`` the other 1,497."""
    checks.one_of(split, SPLITS, "split")
    checks.one_of(value_range, VALUE_RANGES, "value_range")
    x, y = _uci_all()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(UCI_SPLIT_SEED))
    test = torch.cat([perm[y[perm] == c][:UCI_TEST_PER_CLASS] for c in range(10)])
    mask = torch.zeros(len(y), dtype=torch.bool)
    mask[test] = True
    idx = torch.sort(test).values if split == "test" else torch.nonzero(~mask).flatten()
    out = x[idx].clone()
    return (to_pm1(out) if value_range == "pm1" else out), y[idx].clone()


def _photo_path(name: str):
    try:
        folder = importlib.resources.files("skimage") / "data"
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError("the grey2colour task reads photographs shipped with scikit-image: "
                                  "pip install scikit-image") from err
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} is not in this scikit-image installation ({folder}); reinstall scikit-image")
    return path


@functools.lru_cache(maxsize=2)
def _photo_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    crops, ids = [], []
    c = PHOTO_CROP
    for k, name in enumerate(PHOTOS):
        with Image.open(_photo_path(name)) as im:
            im = im.convert("RGB")
            im = im.resize((im.width // 2, im.height // 2), Image.BOX)  # halved: more of a scene in a crop
            pic = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
        H, W = pic.shape[1:]
        cut = int(round(W * (1 - PHOTO_HELD_OUT)))
        lo, hi = (0, cut) if split == "train" else (cut, W)
        stride = _PHOTO_STRIDE[split]
        for top in range(0, H - c + 1, stride):
            for left in range(lo, hi - c + 1, stride):
                crops.append(pic[:, top:top + c, left:left + c])
                ids.append(k)
    return torch.stack(crops), torch.tensor(ids)


def photo_crops(split: str = "train", *, value_range: str = "01") -> tuple[torch.Tensor, torch.Tensor]:
    r"""32 × 32 colour crops of the photographs :data:`PHOTOS`: ``(x, photo)``, ``x`` float32
    ``(N, 3, 32, 32)``, ``photo`` int64 (index in :data:`PHOTOS`).

    Each photograph is halved (2 × 2 box average) and split by columns: the right-most
    :data:`PHOTO_HELD_OUT` of it gives the ``"test"`` crops (stride 16), the rest the ``"train"``
    crops (stride 8). No training crop shares a pixel with a held-out
    one, and each split contains every scene: with five photographs, holding out whole pictures
    would test colourisation on one scene the model never saw the likes of.
    """
    checks.one_of(split, SPLITS, "split")
    checks.one_of(value_range, VALUE_RANGES, "value_range")
    x, ids = _photo_split(split)
    x = x.clone()
    return (to_pm1(x) if value_range == "pm1" else x), ids.clone()


def paired(task: str = "edges2digits", split: str = "train", *, value_range: str = "pm1") -> TensorDataset:
    r"""A paired translation set (see :mod:`gencourse.data.translation`): ``TensorDataset(source,
    target, label)`` with ``source`` and ``target`` float32 images in ``value_range`` (default
    :math:`[-1, 1]`, the range of a ``tanh`` generator) and ``label`` int64.

    >>> ds = paired("edges2digits", "test")
    >>> [tuple(t.shape) for t in ds.tensors]
    [(1000, 1, 28, 28), (1000, 1, 28, 28), (1000,)]
    """
    checks.one_of(task, PAIRED_TASKS, "task")
    checks.one_of(split, SPLITS, "split")
    checks.one_of(value_range, VALUE_RANGES, "value_range")
    if task == "edges2digits":
        target, label = mnist_tensors(split, verbose=False)
        source = edge_map(target)
    else:
        target, label = photo_crops(split)
        source = to_grey(target)
    if value_range == "pm1":
        source, target = to_pm1(source), to_pm1(target)
    return TensorDataset(source, target, label)


def unpaired(split: str = "train", *, value_range: str = "pm1") -> tuple[TensorDataset, TensorDataset]:
    r"""The unpaired digit domains of CycleGAN: ``(A, B)``, each a ``TensorDataset(x, y)`` of
    ``(N, 1, 28, 28)`` images in ``value_range`` and their labels. *A*: UCI digits
    (:func:`uci_digits`; 1,497 train / 300 test); *B*: MNIST (:func:`gencourse.data.mnist_tensors`,
    the embedded subset, or full MNIST under ``gpu``)."""
    checks.one_of(split, SPLITS, "split")
    checks.one_of(value_range, VALUE_RANGES, "value_range")
    a = uci_digits(split, value_range=value_range)
    b = mnist_tensors(split, value_range=value_range, verbose=False)
    return TensorDataset(*a), TensorDataset(*b)
