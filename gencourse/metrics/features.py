"""The feature network of the metrics (a small MNIST classifier) and the checks of their inputs.

Everything the other metric modules measure lives in this network's penultimate layer.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks, config, data, train

__all__ = [
    "VALUE_RANGES",
    "FEATURE_NET_SETTINGS",
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
    checks.image_batch(x, (1, 28, 28), name)
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
    return data.from_pm1(x, strict=False) if value_range == "pm1" else x


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


def feature_net_path(settings: Mapping | None = None):
    """The cache file of the feature network: ``checkpoints/mnist_features-<hash of settings>.pt``.

    The same under every profile (the network is always trained on the embedded subset).
    """
    settings = FEATURE_NET_SETTINGS if settings is None else settings
    return train.checkpoint_path("mnist_features", settings, per_profile=False)


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += (net(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item()
    return correct / len(x)


def _build_feature_net(s: Mapping) -> FeatureNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(s["seed"]))
        return FeatureNet()


def _fit_feature_net(net: FeatureNet, s: Mapping, verbose: bool) -> train.History:
    x, y = data.mnist_tensors("train", source="embedded")
    x_test, y_test = data.mnist_tensors("test", source="embedded")
    g = torch.Generator().manual_seed(int(s["seed"]))
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
        "key": train._fingerprint(dict(s)),
    }
    if verbose:
        print(
            f"feature network: trained in {net.info['train_seconds']:.1f} s ({steps} steps), "
            f"held-out accuracy {net.info['accuracy']:.2%} on {len(x_test)} test images"
        )
    net.eval().requires_grad_(False)
    return train.History(seconds=net.info["train_seconds"], info=dict(net.info))


def train_feature_net(settings: Mapping | None = None, *, verbose: bool = True) -> FeatureNet:
    r"""Train the feature network on the embedded training split (4,000 images), on the CPU.

    Deterministic: the initialisation uses ``torch.manual_seed(settings["seed"])`` inside a forked
    RNG state (the caller's global RNG is untouched) and batches and shifts come from a seeded
    ``torch.Generator``. Cross-entropy, Adam with a one-cycle learning rate, ``epochs`` passes of
    batches of ``batch_size``; each batch is shifted by a random ``(dx, dy)`` of at most ``shift``
    pixels (data augmentation). The held-out accuracy on the embedded test split (1,000 images)
    and the training time (wall-clock and CPU seconds) are stored in ``net.info``. Runs on one CPU
    thread (:class:`gencourse.config.threads`, restored afterwards): with batches this small, more
    threads gain little and, on a busy machine, lose a lot to oversubscription.
    """
    s = dict(FEATURE_NET_SETTINGS if settings is None else settings)
    net = _build_feature_net(s)
    with config.threads(1):
        _fit_feature_net(net, s, verbose)
    return net


_NETS: dict = {}


def feature_net(*, retrain: bool = False, verbose: bool = True, settings: Mapping | None = None) -> FeatureNet:
    """The feature network: from memory, else from the cache file, else trained and cached
    (:func:`gencourse.train.load_or_train` under the name ``"mnist_features"``, one file for every profile).

    Returns a :class:`FeatureNet` in evaluation mode on :func:`gencourse.config.device`, with
    ``net.info = {"accuracy", "train_seconds", "train_cpu_seconds", "steps", "key", "path"}``.
    ``retrain=True`` trains again and overwrites the cache file.
    """
    settings = dict(FEATURE_NET_SETTINGS if settings is None else settings)
    path = feature_net_path(settings)
    key = str(path)
    if key in _NETS and not retrain:
        return _NETS[key]
    net = _build_feature_net(settings)
    with config.threads(1):
        history = train.load_or_train("mnist_features", net, lambda: _fit_feature_net(net, settings, verbose),
                                      settings=settings, retrain=retrain, per_profile=False, verbose=False)
    net.info = {**history.info, "path": str(path)}
    net.eval().requires_grad_(False)
    if verbose and not history.run["trained"]:
        print(
            f"feature network: loaded from {path.name} (trained in {net.info['train_seconds']:.1f} s, "
            f"held-out accuracy {net.info['accuracy']:.2%})"
        )
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


@config.threads(1)
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


@config.threads(1)
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
