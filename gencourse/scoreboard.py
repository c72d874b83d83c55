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

The models of the chapters are registered at the end of this module, from their recipes in
:mod:`gencourse.recipes` (the chapter and the scoreboard share one checkpoint: same name, same
settings, same profile → same file).

Adding a model (for the chapter that trains it)
------------------------------------------------
1. Write the chapter's recipe as a module of :mod:`gencourse.recipes`: its settings, a build and a
   train function, and a function that calls :func:`gencourse.train.load_or_train` with them::

       def dcgan_mnist(name="dcgan", **overrides):      # in gencourse/recipes/dcgan.py
           settings = dcgan_settings(**overrides)
           modules = build_dcgan(settings)
           history = gc.train.load_or_train(name, modules, lambda: train_dcgan(modules, settings),
                                            settings=settings)
           return modules, history

2. Register an entry at the end of this module (the factory runs only when the scoreboard is run)::

       @register("DCGAN", chapter="07", value_range="pm1")
       def _dcgan_entry(n, generator):
           modules, history = dcgan.dcgan_mnist("dcgan", progress=False)
           x = gan.generate(modules["G_ema"], n, generator=generator)
           return Samples(x, history.seconds)   # labels=y for a conditional model

Training time is ``History.seconds`` (wall-clock) as recorded when the model was trained, also
when it is loaded from a checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from . import config, data, density, metrics
from .models import autoregressive as ar
from .models import gan
from .recipes import autoregressive, conditional, dcgan, style, vae, wgan
from .recipes import diffusion as ddpm
from .recipes import flow as fm

__all__ = [
    "Samples",
    "Entry",
    "register",
    "entries",
    "landing_figure",
    "run",
    "format_table",
    "PixelGaussian",
    "ClassGaussians",
]

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
    """All registered entries, in registration order."""
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

    @config.threads(1)
    def __init__(self, x01: torch.Tensor, ridge: float = 0.0):
        x = metrics.check_images(x01, "01", name="x01").flatten(1).double()  # (N, 784)
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        self.mu, self.sigma = density.gaussian_mle(x)
        self.ridge = float(ridge)
        self._xc = x - self.mu  # (N, 784)

    @config.threads(1)
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        N, D = self._xc.shape
        w = torch.randn(n, N, generator=generator, dtype=torch.float64)
        x = self.mu + w @ self._xc / math.sqrt(N)  # (n, 784), covariance Xc^T Xc / N
        if self.ridge:
            x = x + math.sqrt(self.ridge) * torch.randn(n, D, generator=generator, dtype=torch.float64)
        return x.clamp(0, 1).float().reshape(n, 1, 28, 28)  # (n, 1, 28, 28)

    @config.threads(1)
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


@register("uniform noise", chapter="14", value_range="01", description="independent U[0, 1] pixels: the ceiling")
def _noise(n, generator):
    return Samples(torch.rand(n, 1, 28, 28, generator=generator), 0.0)


@register("Gaussian (MLE)", chapter="14", value_range="01", description="full-covariance Gaussian on the pixels")
def _gaussian(n, generator):
    x, _ = data.mnist_tensors("train", verbose=False)
    model, seconds = _timed(lambda: PixelGaussian(x))
    return Samples(model.sample(n, generator), seconds)


@register("Gaussian per class", chapter="14", value_range="01", description="one full-covariance Gaussian per class")
def _class_gaussians(n, generator):
    x, y = data.mnist_tensors("train", verbose=False)
    model, seconds = _timed(lambda: ClassGaussians(x, y))
    samples, labels = model.sample(n, generator)
    return Samples(samples, seconds, labels)


@register("memorised training images", chapter="14", value_range="01", description="copies of training images")
def _memorised(n, generator):
    x, _ = data.mnist_tensors("train", verbose=False)
    if n > len(x):
        raise ValueError(f"n = {n} is more than the {len(x)} training images of the {config.profile()!r} profile")
    return Samples(x[torch.randperm(len(x), generator=generator)[:n]], 0.0)


# ----------------------------------------------------------------------------------------------
# the models of the chapters, from their recipes
# ----------------------------------------------------------------------------------------------


@register("VAE", chapter="04", value_range="01",
          description=(f"convolutional VAE, d = 16, Bernoulli decoder means, codes from a {vae.PRIOR_COMPONENTS['vae']}-Gaussian "
                       "mixture fitted to the training codes"))
def _vae_entry(n: int, generator: torch.Generator) -> Samples:
    model, history = vae.vae_mnist("vae", progress=False)
    prior = vae.fit_prior(model)
    x = torch.cat([model.sample(min(1000, n - i), generator=generator, prior=prior).cpu() for i in range(0, n, 1000)])
    return Samples(x, history.seconds)


@register("CVAE", chapter="04", value_range="01",
          description="conditional VAE, d = 16, 10 classes, codes from a Gaussian per class fitted to the training codes")
def _cvae_entry(n: int, generator: torch.Generator) -> Samples:
    model, history = vae.vae_mnist("cvae", progress=False)
    prior = vae.fit_prior(model)
    labels = torch.arange(n) % 10
    device = next(model.parameters()).device
    x = torch.cat([model.sample(len(yb), yb.to(device), generator=generator, prior=prior).cpu() for yb in labels.split(1000)])
    return Samples(x, history.seconds, labels)


@register("gated PixelCNN", chapter="05", value_range="01",
          description="conditional gated PixelCNN (4 layers, h = 16, class map), binary pixels, cached sampler")
def _pixelcnn_entry(n: int, generator: torch.Generator) -> Samples:
    net, history = autoregressive.autoregressive_mnist("cpixelcnn", progress=False)
    labels = torch.arange(n) % 10
    with config.threads(config.workers()):
        x = torch.cat([ar.sample(net, len(yb), y=yb, generator=generator) for yb in labels.split(500)])
    return Samples(x.float(), history.seconds, labels)


@register("DCGAN", chapter="07", value_range="pm1", description="DCGAN for 28x28, ngf = ndf = 16, EMA of G")
def _dcgan_entry(n: int, generator: torch.Generator) -> Samples:
    modules, history = dcgan.dcgan_mnist("dcgan", progress=False)
    x = gan.generate(modules["G_ema"], n, generator=generator).clamp(-1, 1)
    return Samples(x, history.seconds)


@register("WGAN-GP", chapter="08", value_range="pm1", description="DCGAN generator + critic without batch norm, ngf = ndf = 16, EMA of G")
def _wgan_entry(n: int, generator: torch.Generator) -> Samples:
    modules, history = wgan.wgan_mnist("wgan", progress=False)
    x = gan.generate(modules["G_ema"], n, generator=generator).clamp(-1, 1)
    return Samples(x, history.seconds)


def _conditional_entry(model: str):
    def factory(n: int, generator: torch.Generator) -> Samples:
        modules, history = conditional.conditional_mnist(model, progress=False)
        labels = torch.arange(n) % 10
        if model == "infogan":  # no labels: the categorical code is not a class
            return Samples(conditional.sample_infogan(modules["G_ema"], labels, generator=generator), history.seconds)
        return Samples(conditional.sample_conditional(modules["G_ema"], labels, generator=generator), history.seconds, labels)

    return factory


for _name, _model, _what in (
    ("cGAN", "cgan", "one-hot label joined to z and to D's input"),
    ("cGAN, projection D", "projection", "projection discriminator"),
    ("ACGAN", "acgan", "auxiliary classifier in D"),
    ("InfoGAN", "infogan", "10-way categorical + 2 continuous codes, no labels"),
):
    register(_name, chapter="09", value_range="pm1", description=f"{_what}; DCGAN networks, ngf = ndf = 16, EMA of G")(
        _conditional_entry(_model))


@register("StyleGAN", chapter="11", value_range="pm1",
          description="style-based G (mapping network, AdaIN, noise; 32x32 cropped to 28), R1, EMA of G")
def _style_entry(n: int, generator: torch.Generator) -> Samples:
    modules, history = style.style_mnist("stylegan", progress=False)
    return Samples(style.sample28(modules["G_ema"], n, generator=generator), history.seconds)


@register(
    "DDPM + CFG", chapter="12", value_range="pm1",
    description=(f"class-conditional U-Net (label dropout 0.2, v-prediction, logit-normal steps), DDIM {ddpm.SAMPLER['n_steps']} steps with x_0 "
                 f"clamped, guidance w = {ddpm.SAMPLER['w']:g}"),
)
def _ddpm_entry(n: int, generator: torch.Generator) -> Samples:
    model, sched, history = ddpm.ddpm_mnist("ddpm_cfg", progress=False)
    labels = torch.arange(n) % 10
    x = ddpm.sample_mnist(model, sched, labels, generator=generator, **ddpm.SAMPLER)
    return Samples(x, history.seconds, labels)


_FM_SAMPLER = f"{fm.SAMPLER['method'].capitalize()} {fm.SAMPLER['n_steps']} steps, guidance w = {fm.SAMPLER['w']:g}"


@register("flow matching", chapter="13", value_range="pm1",
          description=("chapter 12's class-conditional U-Net trained by conditional flow matching, logit-normal "
                       f"times, {_FM_SAMPLER}"))
def _flow_entry(n: int, generator: torch.Generator) -> Samples:
    model, history = fm.flow_mnist(progress=False)
    labels = torch.arange(n) % 10
    return Samples(fm.sample_flow(model, labels, generator=generator), history.seconds, labels)


@register("latent flow matching", chapter="13", value_range="pm1",
          description=f"flow matching (logit-normal times) on a KL autoencoder's 4x7x7 latents, decoded, {_FM_SAMPLER}")
def _latent_flow_entry(n: int, generator: torch.Generator) -> Samples:
    model, ae, scale, history = fm.latent_flow_mnist(progress=False)
    labels = torch.arange(n) % 10
    x = fm.sample_latent(model, ae, scale, labels, generator=generator).clamp(-1, 1)
    ae_seconds = fm.latent_autoencoder(progress=False)[2].seconds  # from the cache: the first stage's time
    return Samples(x, history.seconds + ae_seconds, labels)


def landing_figure(samples: dict, rows: Sequence[dict], *, per_model: int = 4, ncols: int = 5):
    """The book's first figure: ``per_model`` samples of each trained model (the entries of
    chapters other than 14's baselines, in the order of ``rows``), with its chapter, its training
    time and its FID beneath, as this build measured them. ``samples``: entry name -> images
    ``(n, 1, 28, 28)`` (at least ``per_model``); ``rows``: :func:`run`'s rows. Returns the figure."""
    import matplotlib.pyplot as plt

    from . import plotting

    trained = [r for r in rows if r["chapter"] != "14" and r["name"] in samples]
    if not trained:
        raise ValueError("no trained model among the rows: run the scoreboard on the course's models first")
    side = math.ceil(math.sqrt(per_model))
    nrows = math.ceil(len(trained) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.8 * ncols, 2.35 * nrows), squeeze=False)
    for ax, row in zip(axes.flat, trained):
        entry = _ENTRIES[row["name"]]
        plotting.image_grid(samples[row["name"]][:per_model], nrow=side, ax=ax, value_range=entry.value_range)
        minutes = row["train_seconds"] / 60
        took = f"{row['train_seconds']:.0f} s" if minutes < 1 else f"{minutes:.1f} min"
        ax.set_title(f"{row['name']} (ch. {row['chapter']})", fontsize=9)
        ax.text(0.5, -0.04, f"trained {took}\nFID {row['fid']:.1f}", transform=ax.transAxes, ha="center", va="top", fontsize=9)
    for ax in axes.flat[len(trained):]:
        ax.axis("off")
    fig.tight_layout(h_pad=1.6)
    return fig
