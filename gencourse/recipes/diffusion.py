r"""Chapter 12's diffusion model of MNIST as a recipe, shared by the chapter and the scoreboard.

One class-conditional :class:`~gencourse.nn.DiffusionUNet` trained with label dropout serves every
use in the chapter: conditional samples (a label :math:`y`), unconditional ones (the null label
:math:`\varnothing`), and classifier-free guidance in between. The schedules, the loss and the
samplers are in :mod:`gencourse.diffusion`; this module holds only what makes the trained model
reproducible:

* :func:`ddpm_settings` — the settings of the chapter's model (hashed into the checkpoint's name);
* :func:`build_unet`, :func:`make_schedule` — the untrained network and its noise schedule;
* :func:`train_ddpm` — Algorithm 1 of Ho et al. (2020) with label dropout (Ho & Salimans, 2021,
  Algorithm 1), the network predicting :math:`v` instead of :math:`\varepsilon` (Salimans & Ho,
  2022), Adam with a warm-up and cosine decay, and an EMA of the weights;
* :func:`ddpm_mnist` — the trained EMA model, loaded from the cache or trained and cached
  (:func:`gencourse.train.load_or_train`, name ``"ddpm_cfg"``), wrapped as an
  :math:`\varepsilon`-network (:class:`~gencourse.diffusion.EpsFromV`) for the samplers;
* :func:`sample_mnist` — guided DDIM samples in :math:`[-1, 1]`, in batches.

>>> s = ddpm_settings(profile="cpu")
>>> s["channels"], s["T"], s["p_uncond"], s["prediction"]
([32, 64], 1000, 0.2, 'v')
"""

from __future__ import annotations

import torch

from .. import config, data, diffusion, distributed, train
from ..nn import DiffusionUNet

__all__ = ["DDPM_STEPS", "SAMPLER", "ddpm_settings", "build_unet", "make_schedule", "train_ddpm", "ddpm_mnist", "sample_mnist"]

#: Adam steps of the chapter's model per profile.
DDPM_STEPS = {"smoke": 8, "cpu": 3_500, "gpu": 20_000}


def ddpm_settings(name: str = "ddpm_cfg", *, profile: str | None = None, **overrides) -> dict:
    r"""The settings of chapter 12's model, a JSON-serialisable dict (hashed into the checkpoint's
    file name by :func:`gencourse.train.load_or_train`).

    ==============  ==============================================================  =================
    key             meaning                                                         cpu (gpu)
    ==============  ==============================================================  =================
    ``channels``    channels of the U-Net's two levels (14×14 and 7×7)              [32, 64] ([64, 128])
    ``n_res``       residual blocks per level and side                              1 (2)
    ``emb_dim``     size of the time + class embedding                              128
    ``patch``       pixel folding of the input (28×28 → 4 × 14×14)                  2
    ``n_classes``   10 labels; label 10 is the null label :math:`\varnothing`        10
    ``p_uncond``    probability of replacing a label by :math:`\varnothing`          0.2
    ``schedule``    ``"linear"`` (Ho et al.) or ``"cosine"``                         linear
    ``T``           diffusion steps                                                 1000
    ``prediction``  the network's target: ``"v"`` (Salimans & Ho) or ``"eps"``      v
    ``time_dist``   how the training steps are drawn: ``"logit_normal"``            logit_normal
                    (:func:`gencourse.diffusion.sample_t`) or ``"uniform"``
    ``steps``       Adam steps (:data:`DDPM_STEPS`)                                 3,500 (20,000)
    ``batch_size``  images per step                                                 32 (128)
    ``lr``          peak learning rate (linear warm-up, then cosine decay to 0)     2e-3 (1e-3)
    ``warmup``      warm-up steps                                                   100
    ``ema_decay``   decay of the EMA of the weights                                 0.995 (0.9995)
    ``seed``        initial weights, batches, time steps and noise                  0
    ==============  ==============================================================  =================

    ``smoke`` uses the cpu architecture with batch 16 and :data:`DDPM_STEPS` ``["smoke"]``.
    ``overrides`` replace single keys (an unknown key raises a ``ValueError``). ``prediction``:
    at the same training budget, v-prediction (:func:`gencourse.diffusion.v_target`) gave a lower
    FID than :math:`\varepsilon`-prediction over 3 seeds (``benchmarks/results/diffusion_prediction.md``),
    and drawing the steps from the logit-normal distribution lowered it further (same file).
    """
    b = lambda **kw: config.budget(profile=profile, **kw)  # noqa: E731
    settings = {
        "name": name,
        "channels": b(smoke=[32, 64], cpu=[32, 64], gpu=[64, 128]),
        "n_res": b(smoke=1, cpu=1, gpu=2),
        "emb_dim": 128,
        "patch": 2,
        "n_classes": 10,
        "p_uncond": 0.2,
        "schedule": "linear",
        "T": 1000,
        "prediction": "v",
        "time_dist": "logit_normal",
        "steps": b(**DDPM_STEPS),
        "batch_size": b(smoke=16, cpu=32, gpu=128),
        "lr": b(smoke=2e-3, cpu=2e-3, gpu=1e-3),
        "warmup": 100,
        "ema_decay": b(smoke=0.995, cpu=0.995, gpu=0.9995),
        "seed": 0,
        "data": "mnist-train-pm1",
    }
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown diffusion settings {sorted(unknown)}; known: {sorted(settings)}")
    settings.update(overrides)
    if settings["prediction"] not in ("eps", "v"):
        raise ValueError(f"prediction must be 'eps' or 'v', got {settings['prediction']!r}")
    if settings["time_dist"] not in diffusion.TIME_DISTRIBUTIONS:
        raise ValueError(f"time_dist must be one of {diffusion.TIME_DISTRIBUTIONS}, got {settings['time_dist']!r}")
    settings["channels"] = list(settings["channels"])
    return settings


def build_unet(settings: dict) -> DiffusionUNet:
    """The untrained U-Net that ``settings`` describe, its weights initialised from ``settings["seed"]``,
    on :func:`gencourse.config.device`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings["seed"])
        model = DiffusionUNet(
            channels=tuple(settings["channels"]), n_res=settings["n_res"], emb_dim=settings["emb_dim"],
            n_classes=settings["n_classes"], patch=settings["patch"],
        )
    return model.to(config.device())


def make_schedule(settings: dict) -> diffusion.Schedule:
    """The noise schedule of ``settings`` (``"linear"``: Ho et al.'s 1e-4 to 0.02; ``"cosine"``)."""
    kinds = {"linear": diffusion.linear_schedule, "cosine": diffusion.cosine_schedule}
    if settings["schedule"] not in kinds:
        raise ValueError(f"schedule must be 'linear' or 'cosine', got {settings['schedule']!r}")
    return kinds[settings["schedule"]](settings["T"])


def train_ddpm(model: DiffusionUNet, ema: train.EMA, settings: dict, *, progress: bool = True) -> train.History:
    r"""Train ``model`` in place (and its average ``ema``) on the MNIST training images of the
    active profile, in :math:`[-1, 1]`: ``settings["steps"]`` steps of

    1. a batch :math:`(x_0, y)` drawn with replacement;
    2. :func:`gencourse.train.ddpm_train_step`: each label replaced by :math:`\varnothing` with
       probability ``p_uncond``, the loss of Algorithm 1 (:math:`t`, from ``settings["time_dist"]``, then
       :math:`\varepsilon` drawn from the same generator) with the target of ``settings["prediction"]``, an Adam step at the learning rate of
       :func:`gencourse.train.lr_cosine`, then ``ema.update``.

    Every random number comes from one CPU generator seeded with ``settings["seed"]``, in this
    order, so that chapter 12's written-out loop reproduces it exactly. Returns the
    :class:`~gencourse.train.History` (``loss`` per step).
    """
    x, y = data.mnist("train", value_range="pm1").tensors
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    sched = make_schedule(settings).to(device)
    g = torch.Generator().manual_seed(settings["seed"])
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    steps, b = settings["steps"], distributed.local_batch(settings["batch_size"])  # b: this rank's share
    net = distributed.wrap(model)  # DistributedDataParallel under torchrun, the model itself otherwise

    def step(i):
        idx = distributed.randint(0, len(x), (b,), generator=g).to(device)
        return train.ddpm_train_step(
            net, opt, x[idx], sched.alpha_bar, y=y[idx], p_uncond=settings["p_uncond"], null_label=settings["n_classes"],
            lr=settings["lr"] * train.lr_cosine(i - 1, steps, settings["warmup"]), ema=ema, generator=g,
            prediction=settings["prediction"], time_dist=settings["time_dist"],
        )

    model.train()
    history = train.fit(step, steps=steps, desc="DDPM (Algorithm 1)", progress=progress)
    model.eval()
    return history


def ddpm_mnist(name: str = "ddpm_cfg", *, retrain: bool | None = None, progress: bool = True, **overrides):
    """Chapter 12's trained model: loaded from the cache if it was trained before with the same
    settings under the same profile, else trained (:func:`train_ddpm`, on one CPU thread as in the
    chapter) and cached.

    Returns ``(ema_model, schedule, history)``: the EMA of the weights (the model to sample from) in
    ``eval()`` mode on :func:`gencourse.config.device`, its :class:`~gencourse.diffusion.Schedule`, and
    the training :class:`~gencourse.train.History`. A v-prediction model (``prediction="v"``) comes
    wrapped in :class:`~gencourse.diffusion.EpsFromV`: an :math:`\varepsilon`-network for the samplers.
    """
    settings = ddpm_settings(name, **overrides)
    model = build_unet(settings)
    ema = train.EMA(model, decay=settings["ema_decay"])
    with config.threads(1):  # as chapter 12 trains it: small network, many sequential steps
        history = train.load_or_train(
            name, {"model": model, "ema": ema.module}, lambda: train_ddpm(model, ema, settings, progress=progress),
            settings=settings, retrain=retrain,
        )
    sched = make_schedule(settings)
    if settings["prediction"] == "v":
        return diffusion.EpsFromV(ema.module.eval(), sched.alpha_bar).eval(), sched, history
    return ema.module.eval(), sched, history


@torch.no_grad()
def sample_mnist(
    model: DiffusionUNet,
    sched: diffusion.Schedule,
    labels: torch.Tensor,
    *,
    w: float = 0.0,
    n_steps: int = 20,
    generator: torch.Generator | None = None,
    batch_size: int = 500,
    clip_x0: float | None = None,
) -> torch.Tensor:
    r"""DDIM samples (:math:`\eta = 0`, ``n_steps`` steps) of a class-conditional model with
    classifier-free guidance of scale ``w`` (:func:`gencourse.diffusion.guided_model`), clamped
    to :math:`[-1, 1]`, on the CPU. ``clip_x0``: clamp the predicted :math:`\hat x_0` to
    :math:`[-c, c]` at every step (:func:`gencourse.diffusion.ddim_step`; :data:`SAMPLER` uses 1).

    Args:
        labels: long tensor ``(n,)`` of classes; ``model.null_label`` entries give unconditional
            samples (use ``w=0`` for those: guidance towards :math:`\varnothing` is meaningless).
        w: guidance scale (0: the conditional model).
        generator: for the starting noise :math:`x_T` (drawn on the CPU, batch after batch).
    """
    device = next(model.parameters()).device
    out = []
    for y in labels.split(batch_size):
        guided = diffusion.guided_model(model, y.to(device), w, model.null_label)
        x_T = torch.randn(len(y), model.in_channels, model.image_size, model.image_size, generator=generator)
        x = diffusion.ddim_sample(guided, x_T.shape, sched.alpha_bar, n_steps, x_T=x_T.to(device), clip_x0=clip_x0)
        out.append(x.clamp(-1, 1).cpu())
    return torch.cat(out)


#: The sampler of chapter 12's reported samples: DDIM (eta = 0) with classifier-free guidance of
#: scale ``w``, the predicted x_0 clamped to [-1, 1] at every step.
SAMPLER = {"w": 0.5, "n_steps": 20, "clip_x0": 1.0}
