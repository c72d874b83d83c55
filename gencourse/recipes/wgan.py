r"""Chapter 08's WGAN-GP on MNIST as a recipe: settings (hashed into the checkpoint's name), build,
train, load or train.

:func:`wgan_mnist` trains (or loads) the chapter's model, cached with
:func:`gencourse.train.load_or_train` under the name ``"wgan"``; chapter 14's scoreboard reloads
the same checkpoint (entry ``"WGAN-GP"``). The networks are in :mod:`gencourse.models.wgan` and
:mod:`gencourse.models.gan`; the steps are :func:`gencourse.train.critic_step` and
:func:`gencourse.train.wgan_g_step`.

Besides the weights the run keeps, in ``history.info``, what chapter 08 plots: the CPU time, and
at ``n_checkpoints`` points of training the FID of ``n_fid`` samples of the EMA generator (a fixed
batch of codes) next to the critic's estimate of :math:`W_1` averaged over the last critic steps.
"""

from __future__ import annotations

import time

import torch

from .. import config, data, distributed, metrics, train
from ..models import gan, wgan
from .dcgan import TrainingRecord

__all__ = ["wgan_settings", "build_wgan", "train_wgan", "wgan_mnist"]


def wgan_settings(**overrides) -> dict:
    r"""The settings of chapter 08's WGAN-GP under the active profile (everything that changes the result).

    ========================  ===============================  ==========================================
    setting                   value                            why
    ========================  ===============================  ==========================================
    ``latent_dim``            64                               as chapter 07's DCGAN
    ``ngf``, ``ndf``          16, 16                           generator: chapter 07's DCGAN; critic:
                                                               its discriminator without batch norm
    ``batch_size``            64
    ``n_critic``              5                                Gulrajani et al. (2017), Algorithm 1
    ``lambda_gp``             10                               Gulrajani et al. (2017)
    ``lr``                    3e-3                             both networks; far above the paper's 1e-4,
                                                               which is slow in a short run
    ``lr_decay``              ``"linear"``                     both learning rates fall linearly to 0 at
                                                               the last step (as in Gulrajani et al.'s
                                                               code). 800 steps, 2,000 samples (real
                                                               images 2.7): 5e-4 constant FID 61.0,
                                                               1e-3 constant 46.0, 5e-4 decayed 85.7,
                                                               1e-3 decayed 48.2, 2e-3 decayed 36.1,
                                                               3e-3 decayed 31.0 (seeds 1, 2: 39.3,
                                                               30.9), 4e-3 decayed 29.5
                                                               (``benchmarks/results/wgan_lr_sweep.md``)
    ``betas``                 (0.5, 0.9)                       the paper has (0, 0.9): 83.2 against
                                                               85.7 at 5e-4 decayed
    ``ema_decay``             0.995                            samples from an EMA of G's weights
    ``steps``                 generator steps: smoke 10,       about 2 CPU minutes under ``cpu``
                              cpu 800, gpu 10,000
    ``n_checkpoints``         8                                FID and W1 estimate along training
    ``n_fid``                 smoke 100, cpu 500, gpu 2,000    samples per FID checkpoint
    ========================  ===============================  ==========================================
    """
    settings = {
        "latent_dim": 64, "ngf": 16, "ndf": 16, "batch_size": 64, "n_critic": 5, "lambda_gp": 10.0,
        "lr": 3e-3, "lr_decay": "linear", "betas": [0.5, 0.9], "ema_decay": 0.995, "snapshots": 6, "seed": 0,
        "steps": config.budget(smoke=10, cpu=800, gpu=10_000),
        "n_checkpoints": 8, "n_fid": config.budget(smoke=100, cpu=500, gpu=2_000),
    }
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown WGAN settings {sorted(unknown)}; known: {sorted(settings)}")
    settings.update(overrides)
    if settings["lr_decay"] not in (None, "linear"):
        raise ValueError(f"lr_decay must be None or 'linear', got {settings['lr_decay']!r}")
    return settings


def build_wgan(settings: dict) -> dict:
    r"""The modules of a WGAN-GP run on :func:`gencourse.config.device`: ``{"G", "critic", "G_ema",
    "record"}``. ``G`` is chapter 07's generator (:class:`gencourse.models.gan.DCGANGenerator`, DCGAN
    initialisation), ``critic`` a :class:`gencourse.models.wgan.ConvCritic` (PyTorch's default
    initialisation), ``G_ema`` the :class:`gencourse.train.EMA` copy of ``G``. The weights are drawn
    from ``settings["seed"]`` in a forked random state."""
    device = config.device()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings["seed"])
        G = gan.dcgan_init_(gan.DCGANGenerator(settings["latent_dim"], settings["ngf"])).to(device)
        critic = wgan.ConvCritic(settings["ndf"]).to(device)
    ema = train.EMA(G, settings["ema_decay"])
    record = TrainingRecord(settings["snapshots"], 64).to(device)
    return {"G": G, "critic": critic, "G_ema": ema.module, "record": record, "_ema": ema}


def _fid(G: torch.nn.Module, z: torch.Tensor) -> float:
    features = metrics.embed(gan.generate(G, z=z).clamp(-1, 1), value_range="pm1")[0]
    return metrics.frechet_distance(features, metrics.reference_embedding()[0])


def train_wgan(modules: dict, settings: dict, progress: bool = True) -> train.History:
    r"""Train a WGAN-GP on MNIST in :math:`[-1, 1]` (Gulrajani et al., 2017, Algorithm 1):
    ``settings["steps"]`` generator steps, each after ``n_critic`` :func:`gencourse.train.critic_step`
    on fresh batches (drawn with replacement), then one :func:`gencourse.train.wgan_g_step`; with
    ``lr_decay="linear"`` both learning rates are ``lr * (1 - i / steps)`` after generator step ``i``;
    an EMA of G's weights; the fixed-noise progress grid in ``modules["record"]``.

    Returns the :class:`gencourse.train.History`: per generator step ``w1`` (the critic's estimate,
    mean over its ``n_critic`` steps), ``gp``, ``loss_critic`` and ``loss_G``. ``history.info``
    holds ``cpu_seconds`` (training, without the checkpoints' FIDs) and ``checkpoints``: a list of
    ``{"step", "fid", "w1"}`` (FID of ``n_fid`` samples of the EMA generator; ``w1`` averaged over
    the last tenth of the steps up to the checkpoint).
    """
    G, critic, ema, record = modules["G"], modules["critic"], modules["_ema"], modules["record"]
    device = next(G.parameters()).device
    x_train = data.mnist_tensors("train", value_range="pm1", verbose=False)[0].to(device)
    g = torch.Generator().manual_seed(settings["seed"] + 1)
    opt_G = torch.optim.Adam(G.parameters(), settings["lr"], betas=tuple(settings["betas"]))
    opt_C = torch.optim.Adam(critic.parameters(), settings["lr"], betas=tuple(settings["betas"]))
    steps, B, d = settings["steps"], settings["batch_size"], settings["latent_dim"]
    # lr_decay="linear": both learning rates fall linearly to 0 at the last generator step
    schedules = [torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / steps)
                 for opt in (opt_G, opt_C)] if settings["lr_decay"] == "linear" else []
    z_fixed = torch.randn(record.images.shape[1], d, generator=g).to(device)
    z_fid = torch.randn(settings["n_fid"], d, generator=g)
    snap_steps = torch.linspace(0, steps, record.images.shape[0]).round().long().tolist()
    check_steps = torch.linspace(0, steps, settings["n_checkpoints"] + 1)[1:].round().long().tolist()
    checkpoints, eval_seconds = [], 0.0
    b = distributed.local_batch(B)  # this rank's share of the global batch (B itself in one process)
    G_, critic_ = distributed.wrap(G), distributed.wrap(critic)  # DistributedDataParallel under torchrun

    def step(i: int) -> dict:
        nonlocal eval_seconds
        outs = []
        for _ in range(settings["n_critic"]):  # n_critic critic steps ...
            idx = distributed.randint(0, len(x_train), (b,), generator=g).to(device)
            z = distributed.randn((b, d), generator=g).to(device)
            outs.append(train.critic_step(G_, critic_, opt_C, x_train[idx], z, lambda_gp=settings["lambda_gp"], generator=g))
        out = {k: sum(o[k] for o in outs) / len(outs) for k in outs[0]}
        out.update(train.wgan_g_step(G_, critic_, opt_G, distributed.randn((b, d), generator=g).to(device)))  # ... one G step
        ema.update(G)
        for schedule in schedules:
            schedule.step()
        if i in snap_steps:
            record.images[snap_steps.index(i)] = gan.generate(ema.module, z=z_fixed).to(device)
            record.steps[snap_steps.index(i)] = i
        w1s.append(out["w1"])
        if i in check_steps and distributed.is_main():  # only rank 0 saves, so only rank 0 measures, alone
            start = time.process_time()
            window = max(1, steps // 10)
            with distributed.local():
                fid = _fid(ema.module, z_fid)
            checkpoints.append({"step": i, "fid": fid, "w1": sum(w1s[-window:]) / len(w1s[-window:])})
            eval_seconds += time.process_time() - start
        return out

    w1s: list = []
    with config.threads(1):
        start = time.process_time()
        record.images[0] = gan.generate(ema.module, z=z_fixed).to(device)
        history = train.fit(step, steps=steps, desc="WGAN-GP", progress=progress)
        cpu = time.process_time() - start - eval_seconds
    record.cpu_seconds.fill_(cpu)
    history.info.update({"cpu_seconds": cpu, "checkpoints": checkpoints})
    return history


def wgan_mnist(name: str = "wgan", *, retrain: bool | None = None, progress: bool = True, **overrides):
    r"""Chapter 08's WGAN-GP: loaded from the cache if it was trained before with the same settings
    under the same profile, else trained (:func:`train_wgan`) on one CPU thread and cached with
    :func:`gencourse.train.load_or_train` under ``name``.

    Returns ``(modules, history)``: ``modules`` as in :func:`build_wgan` (sample from
    ``modules["G_ema"]``), in ``eval()`` mode.
    """
    settings = wgan_settings(**overrides)
    modules = build_wgan(settings)
    saved = {k: v for k, v in modules.items() if not k.startswith("_")}
    with config.threads(1):
        history = train.load_or_train(name, saved, lambda: train_wgan(modules, settings, progress), settings=settings,
                                      retrain=retrain)
    for key in ("G", "critic", "G_ema"):
        modules[key].eval()
    return modules, history
