r"""Chapter 13's flow-matching models of MNIST as recipes, shared by the chapter and the scoreboard.

* **Pixel space** (:func:`flow_mnist`): chapter 12's class-conditional U-Net with a continuous time
  input, trained by conditional flow matching with label dropout (classifier-free guidance) —
  the same network, data, optimiser, batch, learning-rate schedule and EMA as the DDPM of
  chapter 12, only the path and the target differ.
* **Latent space** (:func:`latent_flow_mnist`): a KL-regularised autoencoder
  (:class:`~gencourse.models.autoencoder.LatentAutoencoder`, 28×28 → 4×7×7), its latents scaled to
  unit variance (Rombach et al.'s scale factor), and a one-level U-Net trained by flow matching on
  the latents; samples are decoded.
* :func:`sample_flow` / :func:`sample_latent` — guided ODE samples in :math:`[-1, 1]`.

Settings are hashed into the checkpoint names (:func:`gencourse.train.load_or_train`).

>>> flow_settings(profile="cpu")["channels"], latent_flow_settings(profile="cpu")["channels"]
([32, 64], [64])
"""

from __future__ import annotations

import torch

from .. import config, data, diffusion, distributed, flow, train
from ..models.autoencoder import LatentAutoencoder
from ..nn import DiffusionUNet
from .diffusion import ddpm_settings

__all__ = [
    "FLOW_STEPS",
    "SAMPLER",
    "flow_settings",
    "latent_ae_settings",
    "latent_flow_settings",
    "build_flow_unet",
    "train_flow",
    "flow_mnist",
    "latent_autoencoder",
    "encode_dataset",
    "latent_flow_mnist",
    "sample_flow",
    "sample_latent",
]

#: Adam steps of the pixel-space model per profile.
FLOW_STEPS = {"smoke": 8, "cpu": 3_000, "gpu": 20_000}

#: The sampler of the chapter's reported samples: Heun, 10 steps (20 network evaluations), guidance
#: w = 0.35 (``benchmarks/results/flow_time_sampling.md``: with 5 steps the pixel model's samples
#: carry background specks; w = 0.5 buys precision with recall and a higher FID).
SAMPLER = {"method": "heun", "n_steps": 10, "w": 0.35}


def _settings(defaults: dict, overrides: dict, what: str) -> dict:
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise ValueError(f"unknown {what} settings {sorted(unknown)}; known: {sorted(defaults)}")
    defaults.update(overrides)
    if "channels" in defaults:
        defaults["channels"] = list(defaults["channels"])
    return defaults


def flow_settings(name: str = "flow_cfg", *, profile: str | None = None, **overrides) -> dict:
    r"""Settings of the pixel-space model: chapter 12's (:func:`gencourse.recipes.diffusion.ddpm_settings`)
    without ``schedule``, ``T`` and ``prediction`` (its ``time_dist`` kept), with ``image`` (the shape the model generates), ``steps`` from
    :data:`FLOW_STEPS`, ``coupling`` (``"independent"`` or ``"ot"``, minibatch OT) and ``time_dist``, the
    distribution of the training times (:func:`gencourse.flow.sample_time`): ``"logit_normal"``, which
    gave sharper samples at the same cost (``benchmarks/results/flow_time_sampling.md``), or
    ``"uniform"``. ``overrides`` replace single keys."""
    settings = ddpm_settings(name, profile=profile)
    del settings["schedule"], settings["T"], settings["prediction"]
    settings.update({
        "image": [1, 28, 28],
        "coupling": "independent",
        "steps": config.budget(profile=profile, **FLOW_STEPS),
    })
    return _settings(settings, overrides, "flow")


def latent_ae_settings(name: str = "latent_ae", *, profile: str | None = None, **overrides) -> dict:
    r"""Settings of the autoencoder: ``latent_channels`` 4 (4×7×7), ``widths`` [16, 32], KL weight
    ``beta`` 1e-4 (per latent entry, against a squared error per pixel), Adam 2e-3 with cosine
    decay, batch 32 (gpu 128), ``steps`` smoke 8 / cpu 1,500 / gpu 10,000."""
    b = lambda **kw: config.budget(profile=profile, **kw)  # noqa: E731
    return _settings({
        "name": name,
        "latent_channels": 4,
        "widths": [16, 32],
        "beta": 1e-4,
        "steps": b(smoke=8, cpu=1_500, gpu=10_000),
        "batch_size": b(smoke=16, cpu=32, gpu=128),
        "lr": 2e-3,
        "warmup": 50,
        "seed": 0,
        "data": "mnist-train-pm1",
    }, overrides, "latent autoencoder")


def latent_flow_settings(name: str = "latent_flow_cfg", *, profile: str | None = None, **overrides) -> dict:
    r"""Settings of the latent model: a one-level U-Net (``channels`` [64], ``n_res`` 2, no patch
    folding) on 4×7×7 latents, otherwise as :func:`flow_settings`, with its own ``steps``
    (smoke 8 / cpu 2,000 / gpu 20,000) and the autoencoder's settings under ``"autoencoder"``."""
    b = lambda **kw: config.budget(profile=profile, **kw)  # noqa: E731
    ae = overrides.pop("autoencoder", None) or latent_ae_settings(profile=profile)
    settings = flow_settings(name, profile=profile)
    settings.update({
        "channels": b(smoke=[64], cpu=[64], gpu=[128]),
        "n_res": 2,
        "patch": 1,
        "image": [ae["latent_channels"], 7, 7],
        "steps": b(smoke=8, cpu=2_000, gpu=20_000),
        "batch_size": b(smoke=16, cpu=64, gpu=128),
        "data": "mnist-train-latents",
        "autoencoder": ae,
    })
    return _settings(settings, overrides, "latent flow")


def build_flow_unet(settings: dict) -> DiffusionUNet:
    """The untrained velocity U-Net of ``settings`` (continuous time), weights from ``settings["seed"]``."""
    c, h, _ = settings["image"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings["seed"])
        model = DiffusionUNet(
            in_channels=c, channels=tuple(settings["channels"]), n_res=settings["n_res"], emb_dim=settings["emb_dim"],
            n_classes=settings["n_classes"], patch=settings["patch"], image_size=h, continuous_time=True,
        )
    return model.to(config.device())


def train_flow(model: DiffusionUNet, ema: train.EMA, settings: dict, x: torch.Tensor, y: torch.Tensor, *, progress: bool = True) -> train.History:
    r"""Train ``model`` (and its average ``ema``) on ``(x, y)`` by :func:`gencourse.train.flow_train_step`:
    ``settings["steps"]`` steps of a batch drawn with replacement, labels dropped with probability
    ``p_uncond``, :math:`t` (from ``settings["time_dist"]``) and :math:`x_0` drawn, the CFM loss, Adam at the learning rate of
    :func:`gencourse.train.lr_cosine`, the EMA. Every random number comes from one CPU generator
    seeded with ``settings["seed"]``. Returns the :class:`~gencourse.train.History` (``loss``)."""
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    g = torch.Generator().manual_seed(settings["seed"])
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    steps, b = settings["steps"], distributed.local_batch(settings["batch_size"])  # b: this rank's share
    net = distributed.wrap(model)  # DistributedDataParallel under torchrun, the model itself otherwise

    def step(i):
        idx = distributed.randint(0, len(x), (b,), generator=g).to(device)
        return train.flow_train_step(
            net, opt, x[idx], y=y[idx], p_uncond=settings["p_uncond"], null_label=settings["n_classes"],
            coupling=settings["coupling"], time_dist=settings["time_dist"], lr=settings["lr"] * train.lr_cosine(i - 1, steps, settings["warmup"]),
            ema=ema, generator=g,
        )

    model.train()
    history = train.fit(step, steps=steps, desc=f"flow matching ({settings['name']})", progress=progress)
    model.eval()
    return history


def flow_mnist(name: str = "flow_cfg", *, retrain: bool | None = None, progress: bool = True, **overrides):
    """The pixel-space model: loaded from the cache or trained (one CPU thread) and cached.
    Returns ``(ema_model, history)``, the EMA model in ``eval()`` mode."""
    settings = flow_settings(name, **overrides)
    model = build_flow_unet(settings)
    ema = train.EMA(model, decay=settings["ema_decay"])

    def fit():
        x, y = data.mnist("train", value_range="pm1").tensors
        return train_flow(model, ema, settings, x, y, progress=progress)

    with config.threads(1):
        history = train.load_or_train(name, {"model": model, "ema": ema.module}, fit, settings=settings, retrain=retrain)
    return ema.module.eval(), history


def latent_autoencoder(*, retrain: bool | None = None, progress: bool = True, **overrides):
    r"""The trained :class:`~gencourse.models.autoencoder.LatentAutoencoder` (cached) and its
    latent scale :math:`1/\mathrm{sd}(\mu)` over the training images (Rombach et al.'s scale factor).
    Returns ``(model, scale, history)`` (``history``: ``loss``, ``mse``, ``kl`` per step)."""
    s = latent_ae_settings(**overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s["seed"])
        ae = LatentAutoencoder(s["latent_channels"], tuple(s["widths"])).to(config.device())
    x, _ = data.mnist("train", value_range="pm1").tensors

    def fit():
        device = next(ae.parameters()).device
        xd = x.to(device)
        g = torch.Generator().manual_seed(s["seed"])
        opt = torch.optim.Adam(ae.parameters(), lr=s["lr"])
        b, ae_loss = distributed.local_batch(s["batch_size"]), distributed.wrap_method(ae, "loss")

        def step(i):
            idx = distributed.randint(0, len(xd), (b,), generator=g).to(device)
            loss, parts = ae_loss(xd[idx], s["beta"], generator=g)
            for group in opt.param_groups:
                group["lr"] = s["lr"] * train.lr_cosine(i - 1, s["steps"], s["warmup"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"loss": loss.item(), **parts}

        ae.train()
        return train.fit(step, steps=s["steps"], desc="latent autoencoder", progress=progress)

    with config.threads(1):
        history = train.load_or_train(s["name"], {"autoencoder": ae}, fit, settings=s, retrain=retrain)
    ae.eval()
    mu = encode_dataset(ae, x)
    return ae, float(1.0 / mu.std()), history


@torch.no_grad()
def encode_dataset(ae: LatentAutoencoder, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    r"""The latent means :math:`\mu(x)` of images ``x`` ``(N, 1, 28, 28)`` in :math:`[-1, 1]`, on the CPU."""
    device = next(ae.parameters()).device
    return torch.cat([ae.encode(b.to(device))[0].cpu() for b in x.split(batch_size)])


def latent_flow_mnist(name: str = "latent_flow_cfg", *, retrain: bool | None = None, progress: bool = True, **overrides):
    """The latent model: the autoencoder (:func:`latent_autoencoder`), then the flow on its scaled
    latent means, each loaded from the cache or trained. Returns ``(ema_model, ae, scale, history)``."""
    settings = latent_flow_settings(name, **overrides)
    ae, scale, _ = latent_autoencoder(retrain=retrain, progress=progress, **{k: v for k, v in settings["autoencoder"].items()})
    model = build_flow_unet(settings)
    ema = train.EMA(model, decay=settings["ema_decay"])

    def fit():
        x, y = data.mnist("train", value_range="pm1").tensors
        return train_flow(model, ema, settings, encode_dataset(ae, x) * scale, y, progress=progress)

    with config.threads(1):
        history = train.load_or_train(name, {"model": model, "ema": ema.module}, fit, settings=settings, retrain=retrain)
    return ema.module.eval(), ae, scale, history


def _check_labels(labels) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point():
        got = f"{tuple(labels.shape)} {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be an integer tensor of shape (n,), got {got}")
    return labels


@torch.no_grad()
def sample_flow(
    model: DiffusionUNet,
    labels: torch.Tensor,
    *,
    w: float = SAMPLER["w"],
    n_steps: int = SAMPLER["n_steps"],
    method: str = SAMPLER["method"],
    generator: torch.Generator | None = None,
    batch_size: int = 500,
    clamp: bool = True,
) -> torch.Tensor:
    r"""Samples of a class-conditional velocity model: :math:`x_0 \sim \mathcal N(0, I)` (drawn on
    the CPU from ``generator``, batch after batch), the guided field
    :math:`\tilde v = (1 + w)\,v(x, t, y) - w\,v(x, t, \varnothing)`
    (:func:`gencourse.diffusion.guided_model`) integrated by :func:`gencourse.flow.integrate`.
    ``model.null_label`` entries give unconditional samples (use ``w=0``). Returns the samples on
    the CPU (clamped to :math:`[-1, 1]` when ``clamp``)."""
    labels = _check_labels(labels)
    device = next(model.parameters()).device
    shape = (model.in_channels, model.image_size, model.image_size)
    out = []
    for y in labels.split(batch_size):
        x0 = torch.randn(len(y), *shape, generator=generator).to(device)
        x = flow.integrate(diffusion.guided_model(model, y.to(device), w, model.null_label), x0, n_steps, method=method)
        out.append((x.clamp(-1, 1) if clamp else x).cpu())
    return torch.cat(out)


@torch.no_grad()
def sample_latent(model: DiffusionUNet, ae: LatentAutoencoder, scale: float, labels: torch.Tensor, batch_size: int = 500, **kwargs) -> torch.Tensor:
    r"""Latent samples (:func:`sample_flow` with ``clamp=False``, same keyword arguments), divided by
    ``scale`` and decoded: images in :math:`[-1, 1]` on the CPU."""
    z = sample_flow(model, labels, clamp=False, batch_size=batch_size, **kwargs) / scale
    device = next(ae.parameters()).device
    return torch.cat([ae.decode(b.to(device)).cpu() for b in z.split(batch_size)])
