r"""Evaluating generative models of MNIST, offline (chapter 14).

Inception-based scores need ImageNet weights (a download) and measure ImageNet features, not
digits. This module trains its own **feature network**, a small CNN classifier of MNIST, and
computes the usual metrics in its penultimate layer (128 features):

==========================  ===========================================================  ==========
metric                      definition                                                    better
==========================  ===========================================================  ==========
``fid``                     Fréchet distance of Gaussians fitted to the two feature sets  lower
``kid``                     unbiased MMD² with the kernel :math:`(x\cdot y/d + 1)^3`       lower
``precision``               fraction of samples inside the k-NN manifold of real images   higher
``recall``                  fraction of real images inside the k-NN manifold of samples   higher
``class_entropy``           entropy (nats) of the predicted-class histogram; max ln 10    higher
``class_kl_uniform``        :math:`\ln 10 -` ``class_entropy``: KL(histogram ‖ uniform)   lower
``inception_score``         :math:`\exp \mathbb E_x \mathrm{KL}(p(y|x) \,\|\, p(y))`, max 10 higher
``conditional_accuracy``    classifier agrees with the requested label (with ``labels``)  higher
``nn_train_ratio``          median distance to the nearest training image, samples over   ≈ 1
                            held-out images (≈ 0: the model copies its training set)
==========================  ===========================================================  ==========

One line evaluates a batch of samples against held-out real images, on the number of samples
that the profile fixes (:func:`n_samples`: smoke 200, cpu 2,000, gpu 10,000)::

    scores = gc.metrics.evaluate(samples, value_range="pm1")          # samples (N, 1, 28, 28)
    scores = gc.metrics.evaluate(samples, value_range="01", labels=y)  # class-conditional model

Images are given in :math:`[0, 1]` (``value_range="01"``) or :math:`[-1, 1]` (``"pm1"``): an
explicit argument, never guessed. Values outside the range raise a ``ValueError`` unless
``clamp=True`` (model samples that overshoot slightly).

The feature network is always trained on the training split of the embedded 4,000-image subset
(the same under every profile, so numbers are comparable everywhere), deterministically, on the
CPU, in well under a minute, and cached under ``$GENCOURSE_DATA/checkpoints`` with a hash of its
configuration in the file name (a changed configuration never loads a stale file). The reference
features of the held-out images are cached too.

Also here: the corruptions of the sanity experiments (:func:`blur`, :func:`add_noise`),
the bias of FID with the sample size (:func:`fid_vs_n`, :func:`fid_infinity`), and the
conversions between nats and bits per dimension (:func:`bits_per_dim`).

References: Heusel et al. (2017), *GANs trained by a two time-scale update rule converge to a local
Nash equilibrium* (FID); Dowson & Landau (1982), *The Fréchet distance between multivariate normal
distributions*; Bińkowski et al. (2018), *Demystifying MMD GANs* (KID); Gretton et al. (2012), *A
kernel two-sample test* (unbiased MMD²); Kynkäänniemi et al. (2019), *Improved precision and recall
metric for assessing generative models*; Salimans et al. (2016), *Improved techniques for training
GANs* (Inception Score); Chong & Forsyth (2020), *Effectively unbiased FID and Inception Score and
where to find them* (FID bias, :math:`\mathrm{FID}_\infty`); Theis, van den Oord & Bethge (2016),
*A note on the evaluation of generative models* (likelihood vs samples, dequantisation).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import config, data

__all__ = [
    "VALUE_RANGES",
    "FEATURE_NET_SETTINGS",
    "single_thread",
    "check_images",
    "check_features",
    "FeatureNet",
    "feature_net_path",
    "train_feature_net",
    "feature_net",
    "random_feature_net",
    "embed",
    "reference_embedding",
    "n_samples",
    "gaussian_stats",
    "sqrtm_psd",
    "frechet_distance_gaussians",
    "frechet_distance",
    "polynomial_kernel",
    "mmd2_unbiased",
    "kid",
    "knn_radii",
    "manifold_coverage",
    "precision_recall",
    "class_coverage",
    "inception_score",
    "conditional_accuracy",
    "nearest_distances",
    "nn_train_ratio",
    "evaluate",
    "fid_vs_n",
    "fid_infinity",
    "blur",
    "add_noise",
    "dequantize",
    "discretisation_correction",
    "bits_per_dim",
    "nats_from_bits_per_dim",
]

VALUE_RANGES = ("01", "pm1")
RANGE_TOL = 1e-6
N_CLASSES = 10

#: Everything that determines the feature network's weights; hashed into the cache file name.
FEATURE_NET_SETTINGS = {
    "arch": "conv16-conv32-fc128",
    "data": "embedded-train",
    "epochs": 10,
    "batch_size": 128,
    "lr": 3e-3,
    "shift": 2,
    "seed": 0,
    "version": 1,
}


def single_thread(func):
    """Run ``func`` on one CPU thread (the previous setting is restored afterwards).

    The matrices of the metrics are small (at most a few thousand rows of 128 features): one thread
    computes them in milliseconds, while multi-threaded BLAS/LAPACK on a busy or oversubscribed CPU
    (several notebooks or test workers on 2 cores) can be a hundred times slower.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        if threads == 1:
            return func(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return func(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------


def check_images(x, value_range: str, *, name: str = "x", clamp: bool = False) -> torch.Tensor:
    r"""Check a batch of MNIST images and return it as float32 in :math:`[0, 1]`, shape ``(B, 1, 28, 28)``.

    Args:
        x: tensor ``(B, 1, 28, 28)`` (a batch of ``(B, 784)`` is not accepted: reshape it).
        value_range: ``"01"`` for :math:`[0, 1]`, ``"pm1"`` for :math:`[-1, 1]` (mapped by
            :math:`(x + 1)/2`). Required: a range is never guessed from the values.
        name: the argument's name, used in error messages.
        clamp: clip values outside the range instead of raising (for model samples that overshoot).

    Raises:
        ValueError: naming ``name``, what was expected and what came.
    """
    if not isinstance(value_range, str) or value_range not in VALUE_RANGES:
        raise ValueError(f"value_range must be '01' ([0, 1]) or 'pm1' ([-1, 1]), got {value_range!r}")
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, 1, 28, 28), got {type(x).__name__}")
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28) or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (B, 1, 28, 28) with B >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor with values in the range {value_range!r}, got dtype {x.dtype}")
    x = x.detach().float()
    low, high = (0.0, 1.0) if value_range == "01" else (-1.0, 1.0)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    lo, hi = x.min().item(), x.max().item()
    if clamp:
        x = x.clamp(low, high)
    elif lo < low - RANGE_TOL or hi > high + RANGE_TOL:
        other = ""
        if value_range == "01" and lo >= -1 - RANGE_TOL and lo < -RANGE_TOL:
            other = "; the values look like [-1, 1]: pass value_range='pm1'"
        raise ValueError(
            f"{name} must have values in [{low:g}, {high:g}] (value_range={value_range!r}), got min {lo:.4g} "
            f"and max {hi:.4g}{other}; pass clamp=True to clip model samples that overshoot"
        )
    return (x + 1.0) / 2.0 if value_range == "pm1" else x


def check_features(f, name: str = "features", min_rows: int = 2) -> torch.Tensor:
    """Check that ``f`` is a finite float tensor of shape ``(N, d)`` with ``N >= min_rows``; return it in float64."""
    if not isinstance(f, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, d), got {type(f).__name__}")
    if f.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d) (one row per image), got {tuple(f.shape)}")
    if f.shape[0] < min_rows or f.shape[1] < 1:
        raise ValueError(f"{name} must have at least {min_rows} rows and 1 column, got shape {tuple(f.shape)}")
    if not f.is_floating_point() or not torch.isfinite(f).all():
        raise ValueError(f"{name} must be finite floating-point values, got dtype {f.dtype}")
    return f.detach().double()


def _check_same_dim(a: torch.Tensor, b: torch.Tensor, names=("features_a", "features_b")) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of columns (feature dimension d), got "
            f"shapes {tuple(a.shape)} and {tuple(b.shape)}; is one of them transposed?"
        )


def _check_logits(logits, name: str = "logits") -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] < 1:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"{name} must be a tensor of shape (N, K) of class logits, got {shape}")
    return logits.detach().double()


# ----------------------------------------------------------------------------------------------
# the feature network
# ----------------------------------------------------------------------------------------------


class FeatureNet(nn.Module):
    r"""A small CNN classifier of MNIST whose penultimate layer is the feature space of the metrics.

    ``conv 3×3 (16) → ReLU → max-pool → conv 3×3 (32) → ReLU → max-pool → linear (128) → ReLU``
    gives the features :math:`\phi(x) \in \mathbb R^{128}_{\ge 0}`; a last linear layer gives the
    10 class logits. Input: images ``(B, 1, 28, 28)`` in :math:`[0, 1]` (standardised inside).
    """

    MEAN, STD = 0.1307, 0.3081  # pixel mean and standard deviation of MNIST

    def __init__(self, c1: int = 16, c2: int = 32, dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c1, 14, 14)
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c2, 7, 7)
            nn.Flatten(), nn.Linear(c2 * 49, dim), nn.ReLU(),  # (B, dim)
        )
        self.head = nn.Linear(dim, N_CLASSES)
        self.dim = dim
        self.info: dict = {}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features ``(B, dim)`` of images ``(B, 1, 28, 28)`` in [0, 1]."""
        return self.body((x - self.MEAN) / self.STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, 10)``."""
        return self.head(self.features(x))


def _settings_key(settings: Mapping) -> str:
    text = json.dumps(dict(settings), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def feature_net_path(settings: Mapping | None = None):
    """The cache file of the feature network: ``checkpoints/mnist_features-<hash of settings>.pt``.

    The same under every profile (the network is always trained on the embedded subset).
    """
    settings = FEATURE_NET_SETTINGS if settings is None else settings
    return config.cache_dir("checkpoints") / f"mnist_features-{_settings_key(settings)}.pt"


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += (net(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item()
    return correct / len(x)


@single_thread
def train_feature_net(settings: Mapping | None = None, *, verbose: bool = True) -> FeatureNet:
    r"""Train the feature network on the embedded training split (4,000 images), on the CPU.

    Deterministic: the initialisation uses ``torch.manual_seed(settings["seed"])`` inside a forked
    RNG state (the caller's global RNG is untouched) and batches and shifts come from a seeded
    ``torch.Generator``. Cross-entropy, Adam with a one-cycle learning rate, ``epochs`` passes of
    batches of ``batch_size``; each batch is shifted by a random ``(dx, dy)`` of at most ``shift``
    pixels (data augmentation). The held-out accuracy on the embedded test split (1,000 images)
    and the training time (wall-clock and CPU seconds) are stored in ``net.info``. Runs on one CPU
    thread (restored afterwards): with batches this small, more threads gain little and, on a
    busy machine, lose a lot to oversubscription.
    """
    return _train_feature_net(dict(FEATURE_NET_SETTINGS if settings is None else settings), verbose)


def _train_feature_net(s: dict, verbose: bool) -> FeatureNet:
    x, y = data.mnist_tensors("train", source="embedded")
    x_test, y_test = data.mnist_tensors("test", source="embedded")
    g = torch.Generator().manual_seed(int(s["seed"]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(s["seed"]))
        net = FeatureNet()
    opt = torch.optim.Adam(net.parameters(), lr=s["lr"])
    steps = max(1, int(s["epochs"]) * len(x) // int(s["batch_size"]))
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s["lr"], total_steps=steps)
    wall, cpu = time.perf_counter(), time.process_time()
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (int(s["batch_size"]),), generator=g)
        xb = x[idx]
        if s["shift"]:
            dx, dy = torch.randint(-int(s["shift"]), int(s["shift"]) + 1, (2,), generator=g).tolist()
            xb = torch.roll(xb, (dx, dy), dims=(2, 3))
        loss = F.cross_entropy(net(xb), y[idx])  # forward
        opt.zero_grad()
        loss.backward()  # backward
        opt.step()  # update
        schedule.step()
    net.info = {
        "accuracy": _accuracy(net, x_test, y_test),
        "train_seconds": time.perf_counter() - wall,
        "train_cpu_seconds": time.process_time() - cpu,
        "steps": steps,
        "key": _settings_key(s),
    }
    if verbose:
        print(
            f"feature network: trained in {net.info['train_seconds']:.1f} s ({steps} steps), "
            f"held-out accuracy {net.info['accuracy']:.2%} on {len(x_test)} test images"
        )
    return net.eval().requires_grad_(False)


_NETS: dict = {}


def feature_net(*, retrain: bool = False, verbose: bool = True, settings: Mapping | None = None) -> FeatureNet:
    """The feature network: from memory, else from the cache file, else trained and cached.

    Returns a :class:`FeatureNet` in evaluation mode on :func:`gencourse.config.device`, with
    ``net.info = {"accuracy", "train_seconds", "train_cpu_seconds", "steps", "key", "path"}``.
    ``retrain=True`` trains again and overwrites the cache file.
    """
    settings = dict(FEATURE_NET_SETTINGS if settings is None else settings)
    path = feature_net_path(settings)
    key = str(path)
    if key in _NETS and not retrain:
        return _NETS[key]
    if path.exists() and not retrain:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net = FeatureNet()
            net.load_state_dict(state["state"])
            net.info = dict(state["info"])
        except Exception as err:
            raise RuntimeError(
                f"could not load the feature network {str(path)!r} ({type(err).__name__}: {err}); delete that file to train it again"
            ) from err
        net.eval().requires_grad_(False)
        if verbose:
            print(
                f"feature network: loaded from {path.name} (trained in {net.info['train_seconds']:.1f} s, "
                f"held-out accuracy {net.info['accuracy']:.2%})"
            )
    else:
        net = train_feature_net(settings, verbose=verbose)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"state": net.state_dict(), "info": net.info}, tmp)
        os.replace(tmp, path)
    net.info["path"] = str(path)
    net = net.to(config.device())
    _NETS[key] = net
    return net


def random_feature_net(seed: int = 0) -> FeatureNet:
    """The same architecture with random (untrained) weights: to see what the training of the
    feature network contributes to a metric (chapter 14). Not cached."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet()
    net.info = {"accuracy": None, "key": None}
    return net.eval().requires_grad_(False).to(config.device())


@single_thread
def embed(x, *, value_range: str, net: FeatureNet | None = None, clamp: bool = False, batch_size: int = 1000):
    """Features ``(N, d)`` and class logits ``(N, 10)`` (float32, on the CPU) of images ``x``.

    ``x``: ``(N, 1, 28, 28)`` in the range ``value_range`` (``"01"`` or ``"pm1"``, see
    :func:`check_images`); ``net``: a :class:`FeatureNet` (default :func:`feature_net`).
    """
    x = check_images(x, value_range, clamp=clamp)
    net = feature_net(verbose=False) if net is None else net
    dev = next(net.parameters()).device
    feats, logits = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            f = net.features(x[i : i + batch_size].to(dev))
            feats.append(f.cpu())
            logits.append(net.head(f).cpu())
    return torch.cat(feats), torch.cat(logits)


_REFERENCE: dict = {}


@single_thread
def reference_embedding(*, net: FeatureNet | None = None, split: str = "test"):
    """Features and logits of the real images of ``split`` under the active profile (held-out
    ``"test"`` by default: 1,000 embedded images under smoke/cpu, 10,000 under gpu).

    Cached in memory and on disk (keyed by the network's configuration and a hash of the images),
    except for networks without a key (e.g. :func:`random_feature_net`).
    """
    x, _ = data.mnist_tensors(split, verbose=False)
    net = feature_net(verbose=False) if net is None else net
    key = net.info.get("key")
    if key is None:
        return embed(x, value_range="01", net=net)
    digest = hashlib.sha256((x * 255).round().to(torch.uint8).numpy().tobytes()).hexdigest()[:12]
    mem_key = (key, split, digest)
    if mem_key in _REFERENCE:
        return _REFERENCE[mem_key]
    path = config.cache_dir("checkpoints") / f"mnist_reference-{key}-{split}-{digest}.pt"
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        out = (state["features"], state["logits"])
    else:
        out = embed(x, value_range="01", net=net)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"features": out[0], "logits": out[1]}, tmp)
        os.replace(tmp, path)
    _REFERENCE[mem_key] = out
    return out


def n_samples(profile: str | None = None) -> int:
    """The number of samples every model is evaluated on: smoke 200, cpu 2,000, gpu 10,000."""
    return config.budget(smoke=200, cpu=2_000, gpu=10_000, profile=profile)


# ----------------------------------------------------------------------------------------------
# Fréchet distance
# ----------------------------------------------------------------------------------------------


@single_thread
def gaussian_stats(f) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and covariance of features ``f`` of shape ``(N, d)``, in float64:
    :math:`\mu = \frac1N\sum_i f_i`, :math:`\Sigma = \frac{1}{N-1}\sum_i (f_i - \mu)(f_i - \mu)^\top`
    (the unbiased covariance, as ``numpy.cov`` and the reference FID code use)."""
    f = check_features(f, "f")
    mu = f.mean(0)
    fc = f - mu  # (N, d)
    return mu, fc.T @ fc / (f.shape[0] - 1)


@single_thread
def sqrtm_psd(A) -> torch.Tensor:
    r"""Square root of a symmetric positive semi-definite matrix, :math:`A^{1/2} = U \Lambda_+^{1/2} U^\top`.

    ``A`` ``(d, d)`` is symmetrised, :math:`(A + A^\top)/2`, to remove rounding asymmetry, then
    diagonalised with ``eigh`` (real eigenvalues, orthonormal :math:`U`); eigenvalues that rounding
    made slightly negative are set to 0. Returns a float64 ``(d, d)`` symmetric PSD matrix.
    """
    A = torch.as_tensor(A, dtype=torch.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix (d, d), got shape {tuple(A.shape)}")
    A = (A + A.T) / 2
    lam, U = torch.linalg.eigh(A)
    return (U * lam.clamp(min=0).sqrt()) @ U.T


@single_thread
def frechet_distance_gaussians(mu1, sigma1, mu2, sigma2) -> float:
    r"""Squared Fréchet (Wasserstein-2) distance between :math:`\mathcal N(\mu_1, \Sigma_1)` and
    :math:`\mathcal N(\mu_2, \Sigma_2)` (Dowson & Landau, 1982):

    .. math:: d^2 = \|\mu_1 - \mu_2\|^2 + \operatorname{tr}\Big(\Sigma_1 + \Sigma_2
              - 2\big(\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}\big)^{1/2}\Big).

    The trace of the matrix square root is computed stably: :math:`\Sigma_1 \Sigma_2` is similar to
    the *symmetric* PSD matrix :math:`M = \Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}`, so
    :math:`\operatorname{tr}(\Sigma_1\Sigma_2)^{1/2} = \sum_i \sqrt{\lambda_i(M)}`, with real
    eigenvalues from ``eigvalsh`` of the symmetrised :math:`M` and the ones that rounding made
    negative set to 0. (``scipy.linalg.sqrtm(S1 @ S2)``, used by the reference FID code, works on a
    non-symmetric product and can return a complex result whose imaginary part must be discarded.)
    The result is clipped at 0 (rounding can give ``-1e-12`` for identical inputs).

    Args: ``mu1``, ``mu2`` of shape ``(d,)``; ``sigma1``, ``sigma2`` of shape ``(d, d)``, symmetric PSD.
    Returns: a Python float.
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64) for m in (mu1, mu2))
    sigma1, sigma2 = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma1, sigma2))
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    for name, m in (("mu1", mu1), ("mu2", mu2)):
        if m.ndim != 1 or m.shape[0] != d:
            raise ValueError(f"{name} must have shape (d,) with d = {d}, got {tuple(m.shape)}")
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must have shape (d, d) = ({d}, {d}), got {tuple(s.shape)}")
    root1 = sqrtm_psd(sigma1)
    M = root1 @ sigma2 @ root1
    lam = torch.linalg.eigvalsh((M + M.T) / 2).clamp(min=0)
    value = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * lam.sqrt().sum()
    return max(0.0, value.item())


@single_thread
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


@single_thread
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
# precision and recall (Kynkäänniemi et al., 2019)
# ----------------------------------------------------------------------------------------------


def _pairwise_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a.double(), b.double())  # (N_a, N_b), Euclidean


@single_thread
def knn_radii(features, k: int = 3, chunk: int = 2048) -> torch.Tensor:
    r"""Distance from each point to its ``k``-th nearest neighbour in the same set, itself excluded:
    the radius :math:`r_k(\phi_i)` of the ball of the k-NN manifold. ``features`` ``(N, d)``, ``N > k``;
    returns ``(N,)`` float64. Duplicates count as neighbours at distance 0."""
    f = check_features(features, "features")
    if not isinstance(k, int) or k < 1 or k >= len(f):
        raise ValueError(f"k must be an int with 1 <= k < N = {len(f)}, got {k!r}")
    radii = []
    for i in range(0, len(f), chunk):
        dist = _pairwise_distances(f[i : i + chunk], f)  # (chunk, N)
        # the k+1 smallest distances include the point itself (0): the k-th neighbour is the last
        radii.append(dist.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


@single_thread
def manifold_coverage(query, support, radii, chunk: int = 2048) -> float:
    r"""Fraction of ``query`` points inside the union of balls :math:`B(s_j, r_j)` around ``support``:

    .. math:: \frac{1}{|Q|}\sum_{q \in Q} \mathbb 1\big[\exists j: \|q - s_j\| \le r_j\big].

    ``query`` ``(N_q, d)``, ``support`` ``(N_s, d)``, ``radii`` ``(N_s,)``."""
    q = check_features(query, "query", min_rows=1)
    s = check_features(support, "support", min_rows=1)
    _check_same_dim(q, s, ("query", "support"))
    radii = torch.as_tensor(radii, dtype=torch.float64)
    if radii.shape != (len(s),):
        raise ValueError(f"radii must have shape (N_s,) = ({len(s)},), got {tuple(radii.shape)}")
    inside = 0
    for i in range(0, len(q), chunk):
        inside += (_pairwise_distances(q[i : i + chunk], s) <= radii).any(dim=1).sum().item()
    return inside / len(q)


@single_thread
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
# classifier-based scores
# ----------------------------------------------------------------------------------------------


def class_coverage(logits, n_classes: int = N_CLASSES) -> dict:
    r"""How evenly the samples cover the classes, from the classifier's predictions ``argmax`` of
    ``logits`` ``(N, K)``. With :math:`h_c` the fraction of samples predicted as class :math:`c`:

    .. math:: H(h) = -\sum_c h_c \ln h_c \;\; (\text{nats}, \le \ln K), \qquad
              \mathrm{KL}(h \,\|\, \mathcal U_K) = \ln K - H(h).

    Returns ``{"class_entropy", "class_kl_uniform", "class_histogram"}`` (histogram a list of K floats).
    """
    logits = _check_logits(logits)
    if logits.shape[1] != n_classes:
        raise ValueError(f"logits must have {n_classes} columns (one per class), got shape {tuple(logits.shape)}")
    h = torch.bincount(logits.argmax(1), minlength=n_classes).double() / len(logits)
    entropy = max(0.0, -(h[h > 0] * h[h > 0].log()).sum().item())
    return {"class_entropy": entropy, "class_kl_uniform": math.log(n_classes) - entropy, "class_histogram": h.tolist()}


def inception_score(logits) -> float:
    r"""The Inception Score (Salimans et al., 2016) with the MNIST classifier, on all samples at once:

    .. math:: \mathrm{IS} = \exp\Big(\frac1N\sum_i \mathrm{KL}\big(p(y|x_i) \,\big\|\, \hat p(y)\big)\Big),
              \qquad \hat p(y) = \frac1N\sum_i p(y|x_i).

    Between 1 and K = 10: high when each sample is classified confidently (fidelity) and the classes
    are balanced (diversity). It never looks at real images. ``logits`` ``(N, K)``; returns a float.
    (The original averages over 10 splits of the samples; one split is used here.)
    """
    logits = _check_logits(logits)
    log_p = logits.log_softmax(1)  # (N, K) log p(y|x_i)
    log_marginal = log_p.exp().mean(0).log()  # (K,) log p(y)
    kl = (log_p.exp() * (log_p - log_marginal)).sum(1)  # (N,)
    return kl.mean().exp().item()


def conditional_accuracy(logits, labels) -> float:
    """Fraction of samples of a class-conditional model that the classifier assigns to the class
    they were asked for: ``mean(argmax(logits) == labels)``; ``logits`` ``(N, K)``, ``labels`` ``(N,)`` int."""
    logits = _check_logits(logits)
    labels = torch.as_tensor(labels)
    if labels.shape != (len(logits),) or labels.is_floating_point():
        raise ValueError(f"labels must be integers of shape (N,) = ({len(logits)},), got {labels.dtype} {tuple(labels.shape)}")
    return (logits.argmax(1).cpu() == labels.cpu()).double().mean().item()


# ----------------------------------------------------------------------------------------------
# memorisation
# ----------------------------------------------------------------------------------------------


@single_thread
def nearest_distances(query, support, chunk: int = 1024) -> torch.Tensor:
    r"""Euclidean distance from each row of ``query`` ``(N_q, D)`` to its nearest row of ``support``
    ``(N_s, D)``: :math:`\min_j \|q_i - s_j\|`, shape ``(N_q,)`` float64. Images may be passed as
    ``(N, 1, 28, 28)`` (flattened here)."""
    q = torch.as_tensor(query).flatten(1).double()
    s = torch.as_tensor(support).flatten(1).double()
    _check_same_dim(q, s, ("query", "support"))
    dev = config.device()
    s = s.to(dev)
    out = [_pairwise_distances(q[i : i + chunk].to(dev), s).min(1).values.cpu() for i in range(0, len(q), chunk)]
    return torch.cat(out)


_HELDOUT_NN: dict = {}


@single_thread
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
# one line for the chapters
# ----------------------------------------------------------------------------------------------


@single_thread
def evaluate(
    samples,
    *,
    value_range: str,
    labels=None,
    n: int | None = None,
    clamp: bool = False,
    net: FeatureNet | None = None,
    k: int = 3,
    memorisation: bool = True,
) -> dict:
    r"""Evaluate ``n`` samples of a model against held-out real MNIST images, with every metric.

    Args:
        samples: images ``(N, 1, 28, 28)``; the first ``n`` are used (``N >= n`` required).
        value_range: ``"01"`` or ``"pm1"``: the range of ``samples`` (required, never guessed).
        labels: for a class-conditional model, the classes the samples were asked for ``(N,)``;
            adds ``conditional_accuracy``.
        n: number of samples; default :func:`n_samples` of the profile (smoke 200, cpu 2,000,
            gpu 10,000). Compare models only at equal ``n``: FID falls as ``n`` grows.
        clamp: clip samples that overshoot the range instead of raising.
        net: the feature network (default :func:`feature_net`).
        k: neighbours of the k-NN manifolds of precision and recall.
        memorisation: also compute ``nn_train_ratio`` (distances to the training set in pixel space).

    Returns:
        ``{"fid", "kid", "precision", "recall", "class_entropy", "class_kl_uniform",
        "inception_score", "conditional_accuracy" (with labels), "nn_train_ratio" (with
        memorisation), "n", "n_reference"}``. The reference is the profile's held-out test split
        (1,000 images under smoke/cpu, 10,000 under gpu). FID and KID use all ``n`` samples and all
        reference images; precision and recall use the first :math:`\min(n, n_\text{ref})` of each,
        so that both k-NN manifolds are built from equally many points.
    """
    n = n_samples() if n is None else n
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    x = check_images(samples, value_range, name="samples", clamp=clamp)
    if len(x) < n:
        raise ValueError(
            f"samples must hold at least n = {n} images (the number the {config.profile()!r} profile fixes, so that "
            f"scores are comparable), got {len(x)}; generate more, or pass n={len(x)} and compare only at that n"
        )
    x = x[:n]
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.ndim != 1 or len(labels) < n:
            raise ValueError(f"labels must have shape (N,) with N >= n = {n}, got {tuple(labels.shape)}")
        labels = labels[:n]
    net = feature_net(verbose=False) if net is None else net
    f_ref, _ = reference_embedding(net=net)
    f_gen, logits = embed(x, value_range="01", net=net)
    m = min(n, len(f_ref))
    precision, recall = precision_recall(f_ref[:m], f_gen[:m], k=k)
    coverage = class_coverage(logits)
    out = {
        "fid": frechet_distance(f_gen, f_ref),
        "kid": kid(f_gen, f_ref),
        "precision": precision,
        "recall": recall,
        "class_entropy": coverage["class_entropy"],
        "class_kl_uniform": coverage["class_kl_uniform"],
        "inception_score": inception_score(logits),
    }
    if labels is not None:
        out["conditional_accuracy"] = conditional_accuracy(logits, labels)
    if memorisation:
        out["nn_train_ratio"] = nn_train_ratio(x)
    out["n"], out["n_reference"] = n, len(f_ref)
    return out


# ----------------------------------------------------------------------------------------------
# FID and the sample size
# ----------------------------------------------------------------------------------------------


@single_thread
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


# ----------------------------------------------------------------------------------------------
# corruptions for the sanity experiments
# ----------------------------------------------------------------------------------------------


@single_thread
def blur(x, sigma: float) -> torch.Tensor:
    r"""Gaussian blur of images ``x`` ``(B, C, H, W)`` with standard deviation ``sigma`` pixels: a
    separable kernel :math:`\propto e^{-t^2/2\sigma^2}`, :math:`|t| \le \lceil 4\sigma \rceil`, normalised
    to sum 1, zero padding (MNIST's background is 0). ``sigma = 0`` returns ``x`` unchanged."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a tensor of shape (B, C, H, W), got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return x.clone()
    radius = math.ceil(4 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    w = torch.exp(-t.square() / (2 * sigma**2))
    w = w / w.sum()
    B, C, H, W = x.shape
    y = x.reshape(B * C, 1, H, W)
    y = F.conv2d(y, w.view(1, 1, 1, -1), padding=(0, radius))  # along rows
    y = F.conv2d(y, w.view(1, 1, -1, 1), padding=(radius, 0))  # along columns
    return y.reshape(B, C, H, W)


def add_noise(x, std: float, *, generator: torch.Generator | None = None, value_range: str = "01") -> torch.Tensor:
    r"""Add Gaussian noise :math:`x + \sigma\varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`, and clip
    to the value range (``"01"`` or ``"pm1"``) so the result is still an image."""
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    low, high = (0.0, 1.0) if value_range == "01" else (-1.0, 1.0)
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (x + std * eps).clamp(low, high)


# ----------------------------------------------------------------------------------------------
# likelihoods: nats and bits per dimension
# ----------------------------------------------------------------------------------------------


def dequantize(x01, *, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Uniform dequantisation of 8-bit images (Theis et al., 2016): pixels :math:`x = b/255` with
    :math:`b \in \{0..255\}` become :math:`(b + u)/256`, :math:`u \sim \mathcal U[0, 1)`. A continuous
    density :math:`p` of the result then gives a lower bound on the discrete likelihood,
    :math:`\log P(b) \ge \mathbb E_u[\log p((b+u)/256)] - D \log 256` (Jensen)."""
    x = check_images(x01, "01", name="x01")
    b = (x * 255).round()
    u = torch.rand(x.shape, generator=generator)
    return (b + u) / 256


def discretisation_correction(dims: int = 784, value_range: str | None = "01") -> float:
    r"""Nats to add to a continuous negative log-density to obtain a discrete 8-bit one:
    :math:`D \log 256` for pixels scaled to :math:`[0, 1]` (bins of width 1/256), :math:`D \log 128`
    for :math:`[-1, 1]` (bins of width 2/256), 0 for ``value_range=None`` (already discrete, e.g. a
    PixelCNN's softmax over 256 values)."""
    if value_range is None:
        return 0.0
    if value_range not in VALUE_RANGES:
        raise ValueError(f"value_range must be '01', 'pm1' or None, got {value_range!r}")
    return dims * math.log(256 if value_range == "01" else 128)


def bits_per_dim(nll_nats, dims: int = 784, value_range: str | None = None):
    r"""Bits per dimension of a negative log-likelihood per image in nats:

    .. math:: \text{bpd} = \frac{\mathrm{NLL} + C}{D \ln 2},

    with :math:`D` = ``dims`` (784 for MNIST) and the discretisation correction :math:`C`
    (:func:`discretisation_correction`): ``value_range="01"`` when ``nll_nats`` is a continuous
    density of pixels in :math:`[0, 1]` (:math:`C = D\ln 256`), ``"pm1"`` for :math:`[-1, 1]`
    (:math:`C = D \ln 128`), ``None`` when it is already a discrete likelihood (:math:`C = 0`).
    ``nll_nats`` is a float or a tensor (per image, not per pixel)."""
    if not isinstance(dims, int) or dims < 1:
        raise ValueError(f"dims must be a positive int, got {dims!r}")
    return (nll_nats + discretisation_correction(dims, value_range)) / (dims * math.log(2))


def nats_from_bits_per_dim(bpd, dims: int = 784, value_range: str | None = None):
    r"""The inverse of :func:`bits_per_dim`: :math:`\mathrm{NLL} = \text{bpd}\cdot D \ln 2 - C` nats per image."""
    if not isinstance(dims, int) or dims < 1:
        raise ValueError(f"dims must be a positive int, got {dims!r}")
    return bpd * dims * math.log(2) - discretisation_correction(dims, value_range)
