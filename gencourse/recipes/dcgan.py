r"""Chapter 07's DCGAN as a recipe: settings (hashed into the checkpoint's name), build, train, load or train.

:func:`dcgan_mnist` trains (or loads) the chapter's model, cached with
:func:`gencourse.train.load_or_train` under the name ``"dcgan"``; chapter 14's scoreboard reloads
the same checkpoint (entry ``"DCGAN"``). The networks are in :mod:`gencourse.models.gan`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import nn

from .. import checks, config, data, distributed, train
from ..models import gan

__all__ = ["TrainingRecord", "dcgan_settings", "build_dcgan", "train_dcgan", "dcgan_mnist"]




class TrainingRecord(nn.Module):
    r"""What a training run leaves besides the weights, kept in buffers so that
    :func:`gencourse.train.load_or_train` saves and reloads it with the checkpoint: samples of a
    fixed noise batch at ``n_snapshots`` steps (``images`` ``(n_snapshots, n_images, 1, 28, 28)``,
    ``steps`` ``(n_snapshots,)``) and the CPU time of the run (``cpu_seconds``, a scalar)."""

    def __init__(self, n_snapshots: int, n_images: int, shape: Sequence[int] = (1, 28, 28)):
        super().__init__()
        n_snapshots, n_images = checks.positive_int(n_snapshots, "n_snapshots"), checks.positive_int(n_images, "n_images")
        self.register_buffer("images", torch.zeros(n_snapshots, n_images, *shape))
        self.register_buffer("steps", torch.zeros(n_snapshots, dtype=torch.long))
        self.register_buffer("cpu_seconds", torch.zeros((), dtype=torch.float64))


def dcgan_settings(**overrides) -> dict:
    r"""The settings of chapter 07's DCGAN under the active profile (everything that changes the result).

    ========================  ===============================  ==========================================
    setting                   value                            why
    ========================  ===============================  ==========================================
    ``latent_dim``            64
    ``ngf``, ``ndf``          16, 16                           fastest to reach a good FID on 2 CPU cores
    ``batch_size``            64
    ``lr_G``, ``lr_D``        5e-4                             DCGAN's 2e-4 is slower in short runs
    ``betas``                 (0.5, 0.999)                     DCGAN's :math:`\beta_1 = 0.5`
    ``kind``                  ``"non_saturating"``             :mod:`gencourse.losses`
    ``ema_decay``             0.995                            samples from an EMA of G's weights
    ``r1_gamma``              1.0                              R1 penalty on D at the real images:
                                                               FID 27.6 → 23.0 (3 seeds, about 9 %
                                                               more CPU; ``benchmarks/gan_r1.py``)
    ``r1_every``              4                                lazy: one R1 update of D every 4 steps
    ``steps``                 smoke 20, cpu 4,000, gpu 15,000  about 5 CPU minutes under ``cpu``
    ``snapshots``             6                                progress grid of a fixed noise batch
    ========================  ===============================  ==========================================

    The widths and learning rates were chosen by a sweep at equal CPU time
    (``benchmarks/results/dcgan_design_sweep.md``); ``benchmarks/dcgan_vs_classic.py`` records the
    comparison with the 64×64 recipe.
    """
    settings = {
        "latent_dim": 64, "ngf": 16, "ndf": 16, "batch_size": 64, "lr_G": 5e-4, "lr_D": 5e-4, "betas": [0.5, 0.999],
        "kind": "non_saturating", "ema_decay": 0.995, "r1_gamma": 1.0, "r1_every": 4, "snapshots": 6, "seed": 0,
        "steps": config.budget(smoke=20, cpu=4_000, gpu=15_000),
    }
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown DCGAN settings {sorted(unknown)}; known: {sorted(settings)}")
    settings.update(overrides)
    return settings


def build_dcgan(settings: dict) -> dict:
    r"""The modules of a DCGAN run, initialised (:func:`gencourse.models.gan.dcgan_init_`) and on :func:`gencourse.config.device`:
    ``{"G", "D", "G_ema", "record"}`` (``G_ema`` is the :class:`gencourse.train.EMA` copy of ``G``).
    The weights are drawn from ``settings["seed"]`` in a forked random state: building a model never
    changes the caller's random numbers."""
    device = config.device()
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(settings["seed"])
        G = gan.dcgan_init_(gan.DCGANGenerator(settings["latent_dim"], settings["ngf"])).to(device)
        D = gan.dcgan_init_(gan.DCGANDiscriminator(settings["ndf"])).to(device)
    ema = train.EMA(G, settings["ema_decay"])
    record = TrainingRecord(settings["snapshots"], 64).to(device)
    return {"G": G, "D": D, "G_ema": ema.module, "record": record, "_ema": ema}


def train_dcgan(modules: dict, settings: dict, progress: bool = True) -> train.History:
    r"""Train a DCGAN on MNIST in :math:`[-1, 1]` (chapter 07): ``settings["steps"]`` iterations of
    one :func:`gencourse.train.d_step` and one :func:`gencourse.train.g_step` on batches drawn with
    replacement, after every ``r1_every``-th step one :func:`gencourse.train.r1_step` of D at the same
    real batch (none when ``r1_gamma`` is 0), an EMA of G's weights, and the fixed-noise progress grid
    in ``modules["record"]``.

    ``modules`` from :func:`build_dcgan`. Returns the :class:`gencourse.train.History` (``loss_D``,
    ``D_real``, ``D_fake``, ``loss_G`` and ``r1``, the last penalty computed, per step; wall-clock ``seconds``); the CPU time goes to
    ``modules["record"].cpu_seconds``.
    """
    G, D, ema, record = modules["G"], modules["D"], modules["_ema"], modules["record"]
    device = next(G.parameters()).device
    x_train = data.mnist_tensors("train", value_range="pm1", verbose=False)[0].to(device)
    g = torch.Generator().manual_seed(settings["seed"] + 1)
    opt_G = torch.optim.Adam(G.parameters(), settings["lr_G"], betas=tuple(settings["betas"]))
    opt_D = torch.optim.Adam(D.parameters(), settings["lr_D"], betas=tuple(settings["betas"]))
    steps, B, kind = settings["steps"], settings["batch_size"], settings["kind"]
    z_fixed = torch.randn(record.images.shape[1], settings["latent_dim"], generator=g).to(device)
    snap_steps = torch.linspace(0, steps, record.images.shape[0]).round().long().tolist()

    def snapshot(i: int) -> None:
        k = snap_steps.index(i)
        record.images[k] = gan.generate(ema.module, z=z_fixed).to(device)
        record.steps[k] = i

    b = distributed.local_batch(B)  # this rank's share of the global batch (B itself in one process)
    G_, D_ = distributed.wrap(G), distributed.wrap(D)  # DistributedDataParallel under torchrun

    gamma, every, r1_last = settings["r1_gamma"], settings["r1_every"], [0.0]

    def step(i: int) -> dict:
        idx = distributed.randint(0, len(x_train), (b,), generator=g).to(device)
        z = distributed.randn((b, settings["latent_dim"]), generator=g).to(device)
        out = train.d_step(G_, D_, opt_D, x_train[idx], z, kind=kind)  # update D once ...
        if gamma > 0 and i % every == 0:  # ... every 4th step once more, by R1 at the same real batch ...
            r1_last[0] = train.r1_step(D_, opt_D, x_train[idx], gamma=gamma, every=every)["r1"]
        out["r1"] = r1_last[0]
        z = distributed.randn((b, settings["latent_dim"]), generator=g).to(device)
        out.update(train.g_step(G_, D_, opt_G, z, kind=kind))  # ... then G once (k = 1)
        ema.update(G)
        if i in snap_steps:
            snapshot(i)
        return out

    with config.threads(1):
        start = time.process_time()
        snapshot(0)
        history = train.fit(step, steps=steps, desc="DCGAN", progress=progress)
        record.cpu_seconds.fill_(time.process_time() - start)
    return history


def dcgan_mnist(name: str = "dcgan", *, retrain: bool | None = None, progress: bool = True, **overrides):
    r"""Chapter 07's DCGAN: loaded from the cache if it was trained before with the same settings
    under the same profile, else trained (:func:`train_dcgan`) and cached with
    :func:`gencourse.train.load_or_train` under ``name``, on one CPU thread (:class:`gencourse.config.threads`).

    Returns ``(modules, history)``: ``modules`` as in :func:`build_dcgan` (sample from
    ``modules["G_ema"]``), put in ``eval()`` mode.
    """
    settings = dcgan_settings(**overrides)
    modules = build_dcgan(settings)
    saved = {k: v for k, v in modules.items() if not k.startswith("_")}
    with config.threads(1):
        history = train.load_or_train(name, saved, lambda: train_dcgan(modules, settings, progress), settings=settings, retrain=retrain)
    for key in ("G", "D", "G_ema"):
        modules[key].eval()
    return modules, history
