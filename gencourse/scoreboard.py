r"""The scoreboard of chapter 14: every image model of the course, scored the same way.

Each entry is a function ``factory(n, generator)`` that gets a trained model (from the checkpoint
its chapter cached, or by training it under the active profile) and returns ``n`` samples with
the training time: a :class:`Samples`. :func:`run` scores every entry with
:func:`gencourse.metrics.evaluate` on the same number of samples (:func:`gencourse.metrics.n_samples`)
against the same held-out images, and :func:`format_table` prints one table.

The baselines below exist from the start: uniform noise (the ceiling), a full-covariance Gaussian
fitted by maximum likelihood to the training pixels, one such Gaussian per class (a mixture with
the class frequencies as weights), and "memorised" training images (perfect-looking samples that
are copies: only ``nn_train_ratio`` notices).

Adding a model (for the chapter that trains it)
------------------------------------------------
1. Keep the training recipe in the library, as a function that calls
   :func:`gencourse.train.load_or_train` with the chapter's settings, so that the chapter and the
   scoreboard share one checkpoint (same name, same settings, same profile → same file)::

       def train_dcgan_mnist():                       # in gencourse/models/gan.py
           G, D = DCGenerator(), DCDiscriminator()
           history = gc.train.load_or_train("dcgan_mnist", {"G": G, "D": D}, lambda: _fit(G, D),
                                            settings=DCGAN_SETTINGS)
           return G, history

2. Register an entry in that module (the factory runs only when the scoreboard is run)::

       from gencourse import scoreboard

       @scoreboard.register("DCGAN", chapter="07", value_range="pm1")
       def _dcgan_entry(n, generator):
           G, history = train_dcgan_mnist()
           with torch.no_grad():
               x = G(torch.randn(n, G.z_dim, generator=generator).to(gc.config.device()))
           return scoreboard.Samples(x.cpu(), history.seconds)   # labels=y for a conditional model

3. Add the module's name to :data:`ENTRY_MODULES` below, so that :func:`entries` imports it.

Training time is ``History.seconds`` (wall-clock) as recorded when the model was trained, also
when it is loaded from a checkpoint.
"""

from __future__ import annotations

import importlib
import math
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import torch

from . import config, data, density, metrics

__all__ = [
    "ENTRY_MODULES",
    "Samples",
    "Entry",
    "register",
    "entries",
    "run",
    "format_table",
    "PixelGaussian",
    "ClassGaussians",
]

#: Library modules that register scoreboard entries, imported by :func:`entries` (add yours).
ENTRY_MODULES: list[str] = ["gencourse.models.autoencoder", "gencourse.models.gan", "gencourse.models.diffusion"]


class Samples(NamedTuple):
    """What an entry's factory returns: images ``x`` ``(n, 1, 28, 28)``, the model's training time
    in seconds, and for a class-conditional model the requested ``labels`` ``(n,)``."""

    x: torch.Tensor
    train_seconds: float
    labels: torch.Tensor | None = None


@dataclass
class Entry:
    name: str
    factory: Callable[[int, torch.Generator], Samples]
    chapter: str
    value_range: str
    description: str = ""


_ENTRIES: dict[str, Entry] = {}


def register(name: str, *, chapter: str, value_range: str, description: str = ""):
    """Decorator: register ``factory(n, generator) -> Samples`` under ``name`` (registering a name
    again replaces the entry). ``value_range`` (``"01"`` or ``"pm1"``) is the range of its samples."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if value_range not in metrics.VALUE_RANGES:
        raise ValueError(f"value_range must be '01' or 'pm1', got {value_range!r}")

    def decorator(factory):
        if not callable(factory):
            raise ValueError(f"register({name!r}) must decorate a function, got {type(factory).__name__}")
        _ENTRIES[name] = Entry(name, factory, str(chapter), value_range, description)
        return factory

    return decorator


def entries() -> list[Entry]:
    """All registered entries, in registration order (the modules of :data:`ENTRY_MODULES` first imported)."""
    for module in ENTRY_MODULES:
        importlib.import_module(module)
    return list(_ENTRIES.values())


def run(names: Sequence[str] | None = None, *, n: int | None = None, seed: int = 0, verbose: bool = True) -> list[dict]:
    """Score the entries ``names`` (default: all) on ``n`` samples each (default: the profile's
    :func:`gencourse.metrics.n_samples`). Each factory gets a fresh ``torch.Generator`` seeded with
    ``seed``. Returns one dict per entry: ``name``, ``chapter``, ``train_seconds``,
    ``sample_seconds`` (wall-clock, getting the model and sampling) and the metrics of
    :func:`gencourse.metrics.evaluate`."""
    n = metrics.n_samples() if n is None else n
    known = {e.name: e for e in entries()}
    names = list(known) if names is None else list(names)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown scoreboard entries {unknown}; registered: {list(known)}")
    rows = []
    for name in names:
        entry = known[name]
        start = time.perf_counter()
        out = entry.factory(n, torch.Generator().manual_seed(seed))
        out = Samples(*out) if not isinstance(out, Samples) else out
        sample_seconds = time.perf_counter() - start
        scores = metrics.evaluate(out.x, value_range=entry.value_range, labels=out.labels, n=n)
        rows.append({"name": name, "chapter": entry.chapter, "train_seconds": float(out.train_seconds),
                     "sample_seconds": sample_seconds, **scores})
        if verbose:
            print(f"{name}: FID {scores['fid']:.2f} (trained in {out.train_seconds:.1f} s)")
    return rows


COLUMNS = (
    ("name", "model", "{}"),
    ("chapter", "ch.", "{}"),
    ("fid", "FID ↓", "{:.1f}"),
    ("kid", "KID ↓", "{:.2f}"),
    ("precision", "precision ↑", "{:.2f}"),
    ("recall", "recall ↑", "{:.2f}"),
    ("class_entropy", "class entropy ↑", "{:.2f}"),
    ("inception_score", "IS ↑", "{:.2f}"),
    ("conditional_accuracy", "cond. acc. ↑", "{:.2f}"),
    ("nn_train_ratio", "NN-train ratio (≈1)", "{:.2f}"),
    ("train_seconds", "training (s)", "{:.1f}"),
)


def format_table(rows: Sequence[dict], columns=COLUMNS) -> str:
    """A Markdown table of :func:`run`'s rows (missing values shown as "–"), sorted as given."""
    head = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    lines = [head, rule]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            cells.append("–" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# baselines
# ----------------------------------------------------------------------------------------------


class PixelGaussian:
    r"""A Gaussian on the 784 pixels fitted by maximum likelihood (:func:`gencourse.density.gaussian_mle`):
    :math:`\hat\mu = \frac1N\sum_i x_i`, :math:`\hat\Sigma = \frac1N\sum_i (x_i - \hat\mu)(x_i - \hat\mu)^\top`.

    :math:`\hat\Sigma = X_c^\top X_c / N` (centred data :math:`X_c`, ``(N, 784)``) is singular on raw
    MNIST (border pixels are always 0; :math:`N` may be below 784), so samples avoid factorising it:
    :math:`x = \hat\mu + X_c^\top w/\sqrt N + \sqrt{\text{ridge}}\,\varepsilon`,
    :math:`w \sim \mathcal N(0, I_N)`, :math:`\varepsilon \sim \mathcal N(0, I_{784})`, has covariance
    exactly :math:`\hat\Sigma + \text{ridge}\cdot I`; samples are clipped to :math:`[0, 1]`.
    ``log_prob`` evaluates :math:`\mathcal N(\hat\mu, \hat\Sigma + \text{ridge}\cdot I)`, which needs a
    non-singular covariance (``ridge > 0``, or dequantised data with :math:`N > 784`).
    """

    @metrics.single_thread
    def __init__(self, x01: torch.Tensor, ridge: float = 0.0):
        x = metrics.check_images(x01, "01", name="x01").flatten(1).double()  # (N, 784)
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        self.mu, self.sigma = density.gaussian_mle(x)
        self.ridge = float(ridge)
        self._xc = x - self.mu  # (N, 784)

    @metrics.single_thread
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        N, D = self._xc.shape
        w = torch.randn(n, N, generator=generator, dtype=torch.float64)
        x = self.mu + w @ self._xc / math.sqrt(N)  # (n, 784), covariance Xc^T Xc / N
        if self.ridge:
            x = x + math.sqrt(self.ridge) * torch.randn(n, D, generator=generator, dtype=torch.float64)
        return x.clamp(0, 1).float().reshape(n, 1, 28, 28)  # (n, 1, 28, 28)

    @metrics.single_thread
    def log_prob(self, x01: torch.Tensor) -> torch.Tensor:
        """Log-density (nats per image) of images ``(B, 1, 28, 28)`` under the Gaussian."""
        cov = self.sigma + self.ridge * torch.eye(len(self.mu), dtype=torch.float64)
        L, info = torch.linalg.cholesky_ex(cov)
        if info.item() != 0:
            raise ValueError("the maximum-likelihood covariance is singular: pass ridge > 0 (or fit dequantised data with N > 784)")
        return torch.distributions.MultivariateNormal(self.mu, scale_tril=L).log_prob(x01.flatten(1).double())


class ClassGaussians:
    r"""A mixture of one :class:`PixelGaussian` per class, with the class frequencies as weights:
    :math:`p(x) = \sum_c \pi_c\, \mathcal N(x; \hat\mu_c, \hat\Sigma_c)`. ``sample`` also returns the
    class of each sample (so it can be scored as a class-conditional model)."""

    def __init__(self, x01: torch.Tensor, y: torch.Tensor, ridge: float = 0.0):
        y = torch.as_tensor(y)
        self.classes = sorted(y.unique().tolist())
        self.weights = torch.tensor([(y == c).double().mean().item() for c in self.classes])
        self.parts = [PixelGaussian(x01[y == c], ridge=ridge) for c in self.classes]

    def sample(self, n: int, generator: torch.Generator | None = None):
        idx = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        x = torch.empty(n, 1, 28, 28)
        for i, part in enumerate(self.parts):
            mask = idx == i
            if mask.any():
                x[mask] = part.sample(int(mask.sum()), generator)
        return x, torch.tensor(self.classes)[idx]

    def log_prob(self, x01: torch.Tensor) -> torch.Tensor:
        parts = torch.stack([p.log_prob(x01) for p in self.parts], dim=1)  # (B, K)
        return torch.logsumexp(parts + self.weights.log(), dim=1)


def _timed(fit):
    start = time.perf_counter()
    model = fit()
    return model, time.perf_counter() - start


@register("uniform noise", chapter="12", value_range="01", description="independent U[0, 1] pixels: the ceiling")
def _noise(n, generator):
    return Samples(torch.rand(n, 1, 28, 28, generator=generator), 0.0)


@register("Gaussian (MLE)", chapter="12", value_range="01", description="full-covariance Gaussian on the pixels")
def _gaussian(n, generator):
    x, _ = data.mnist_tensors("train", verbose=False)
    model, seconds = _timed(lambda: PixelGaussian(x))
    return Samples(model.sample(n, generator), seconds)


@register("Gaussian per class", chapter="12", value_range="01", description="one full-covariance Gaussian per class")
def _class_gaussians(n, generator):
    x, y = data.mnist_tensors("train", verbose=False)
    model, seconds = _timed(lambda: ClassGaussians(x, y))
    samples, labels = model.sample(n, generator)
    return Samples(samples, seconds, labels)


@register("memorised training images", chapter="12", value_range="01", description="copies of training images")
def _memorised(n, generator):
    x, _ = data.mnist_tensors("train", verbose=False)
    if n > len(x):
        raise ValueError(f"n = {n} is more than the {len(x)} training images of the {config.profile()!r} profile")
    return Samples(x[torch.randperm(len(x), generator=generator)[:n]], 0.0)
