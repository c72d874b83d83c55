r"""Chapter 09's conditional GANs on MNIST as a recipe: settings (hashed into the checkpoint's
name), build, train, load or train, for four models that differ only in how the condition enters:

==============  =====================================================  ===================================
``model``       generator / discriminator                              steps
==============  =====================================================  ===================================
``"cgan"``      :class:`~gencourse.models.conditional.ConditionalGenerator` /  :func:`gencourse.train.d_step`,
                :class:`~gencourse.models.conditional.ConcatDiscriminator`     :func:`gencourse.train.g_step`
                                                                               with labels
``"projection"``  same generator / :class:`~gencourse.models.conditional.ProjectionDiscriminator`  same
``"acgan"``     same generator / :class:`~gencourse.models.conditional.ACGANDiscriminator`  :func:`gencourse.train.acgan_d_step`, ``acgan_g_step``
``"infogan"``   :class:`~gencourse.models.conditional.InfoGANGenerator` /  :func:`gencourse.train.infogan_d_step`,
                :class:`~gencourse.models.conditional.InfoGANDiscriminator` (no labels)  ``infogan_g_step``
==============  =====================================================  ===================================

All four use chapter 07's non-saturating loss, its Adam settings and an EMA of the generator's
weights; :func:`conditional_mnist` trains (or loads) one of them, cached with
:func:`gencourse.train.load_or_train` (chapter 14's scoreboard reloads the same checkpoints).
"""

from __future__ import annotations

import time

import torch

from .. import checks, config, data, distributed, train
from ..models import conditional as cond
from ..models import gan
from .dcgan import TrainingRecord

__all__ = ["MODELS", "conditional_settings", "build_conditional", "train_conditional", "conditional_mnist", "conditional_models",
           "sample_conditional", "sample_infogan"]

MODELS = ("cgan", "projection", "acgan", "infogan")
N_PER_CLASS = 8  # columns of the progress grid: one row per class (or categorical code)


def conditional_settings(model: str = "cgan", **overrides) -> dict:
    r"""The settings of one of chapter 09's conditional GANs under the active profile.

    ========================  ===============================  ==========================================
    setting                   value                            why
    ========================  ===============================  ==========================================
    ``model``                 one of :data:`MODELS`
    ``latent_dim``            64                               as chapter 07's DCGAN
    ``ngf``, ``ndf``          16, 16                           as chapter 07's DCGAN
    ``features``              64                               :math:`F`, the body's output
    ``batch_size``            64
    ``lr_G``, ``lr_D``        5e-4 (InfoGAN: 1e-3, 2e-4)       as chapter 07; InfoGAN's categorical
                                                               code matched the digits better with
                                                               a faster G (0.34 against 0.22, one
                                                               seed, 1,000 steps)
    ``betas``                 (0.5, 0.999)
    ``ema_decay``             0.995
    ``lambda_cls``            1                                ACGAN's class-loss weight
    ``lambda_info``           1                                InfoGAN's :math:`\lambda` (paper: 1)
    ``lambda_cont``           0.1                              weight of the continuous codes' term
                                                               inside it (with 1 they crowd out the
                                                               categorical code in short runs)
    ``n_cont``                2                                InfoGAN's continuous codes
    ``steps``                 smoke 10, cpu 1,000, gpu 10,000  about a CPU minute each under ``cpu``
    ========================  ===============================  ==========================================
    """
    settings = {
        "model": "cgan", "latent_dim": 64, "ngf": 16, "ndf": 16, "features": 64, "batch_size": 64, "lr_G": 5e-4, "lr_D": 5e-4,
        "betas": [0.5, 0.999], "ema_decay": 0.995, "lambda_cls": 1.0, "lambda_info": 1.0, "lambda_cont": 0.1, "n_cont": 2, "n_classes": 10,
        "snapshots": 5, "seed": 0, "steps": config.budget(smoke=10, cpu=1_000, gpu=10_000),
    }
    overrides["model"] = model
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown conditional GAN settings {sorted(unknown)}; known: {sorted(settings)}")
    checks.one_of(model, MODELS, "model")
    if model == "infogan":  # the learning rates of the public InfoGAN code: a faster G finds the code sooner
        settings.update(lr_G=1e-3, lr_D=2e-4)
    settings.update(overrides)
    checks.positive_int(settings["steps"], "steps")
    return settings


def build_conditional(settings: dict) -> dict:
    r"""The modules of a run on :func:`gencourse.config.device`: ``{"G", "D", "G_ema", "record"}``
    (DCGAN initialisation, weights drawn from ``settings["seed"]`` in a forked random state)."""
    device = config.device()
    s = settings
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s["seed"])
        if s["model"] == "infogan":
            G = cond.InfoGANGenerator(s["latent_dim"], s["n_classes"], s["n_cont"], s["ngf"])
            D = cond.InfoGANDiscriminator(s["n_classes"], s["n_cont"], s["ndf"], s["features"])
        else:
            G = cond.ConditionalGenerator(s["latent_dim"], s["n_classes"], s["ngf"])
            D = {"cgan": cond.ConcatDiscriminator, "projection": cond.ProjectionDiscriminator,
                 "acgan": cond.ACGANDiscriminator}[s["model"]](s["n_classes"], s["ndf"], s["features"])
        G, D = gan.dcgan_init_(G).to(device), gan.dcgan_init_(D).to(device)
    ema = train.EMA(G, s["ema_decay"])
    record = TrainingRecord(s["snapshots"], s["n_classes"] * N_PER_CLASS).to(device)
    return {"G": G, "D": D, "G_ema": ema.module, "record": record, "_ema": ema}


def _grid_codes(settings: dict, g: torch.Generator):
    """Fixed inputs of the progress grid: one row per class, ``N_PER_CLASS`` noise vectors shared by the rows."""
    K, d = settings["n_classes"], settings["latent_dim"]
    z = torch.randn(N_PER_CLASS, d, generator=g).repeat(K, 1)
    y = torch.arange(K).repeat_interleave(N_PER_CLASS)
    c_cont = torch.zeros(K * N_PER_CLASS, settings["n_cont"])
    return z, y, c_cont


@torch.no_grad()
def _draw(G, settings, z, y, c_cont):
    was = G.training
    G.eval()
    try:
        return G(z, y, c_cont) if settings["model"] == "infogan" else G(z, y)
    finally:
        G.train(was)


def train_conditional(modules: dict, settings: dict, progress: bool = True) -> train.History:
    r"""Train one of chapter 09's models on MNIST in :math:`[-1, 1]`: ``settings["steps"]``
    iterations of one discriminator step and one generator step on batches drawn with replacement
    (labels requested from the generator drawn uniformly), an EMA of G, and the progress grid (one
    row per class, or per categorical code for InfoGAN) in ``modules["record"]``. InfoGAN never sees
    a label. Returns the :class:`gencourse.train.History`; its ``info`` holds ``cpu_seconds``."""
    G, D, ema, record, s = modules["G"], modules["D"], modules["_ema"], modules["record"], settings
    device = next(G.parameters()).device
    x_train, y_train = data.mnist_tensors("train", value_range="pm1", verbose=False)
    x_train, y_train = x_train.to(device), y_train.to(device)
    g = torch.Generator().manual_seed(s["seed"] + 1)
    opt_G = torch.optim.Adam(G.parameters(), s["lr_G"], betas=tuple(s["betas"]))
    opt_D = torch.optim.Adam(D.parameters(), s["lr_D"], betas=tuple(s["betas"]))
    steps, B, d, K, model = s["steps"], s["batch_size"], s["latent_dim"], s["n_classes"], s["model"]
    grid = [t.to(device) for t in _grid_codes(s, g)]
    snap_steps = torch.linspace(0, steps, record.images.shape[0]).round().long().tolist()
    b = distributed.local_batch(B)  # this rank's share of the global batch (B itself in one process)
    G_, D_ = distributed.wrap(G), distributed.wrap(D)  # DistributedDataParallel under torchrun

    def codes():
        return distributed.randn((b, d), generator=g).to(device), distributed.randint(0, K, (b,), generator=g).to(device)

    def step(i: int) -> dict:
        idx = distributed.randint(0, len(x_train), (b,), generator=g).to(device)
        x, y = x_train[idx], y_train[idx]
        if model == "infogan":
            z, c, cc = cond.sample_codes(b, d, K, s["n_cont"], generator=g, device=device)
            out = train.infogan_d_step(G_, D_, opt_D, x, z, c, cc, lambda_info=s["lambda_info"], lambda_cont=s["lambda_cont"])
            z, c, cc = cond.sample_codes(b, d, K, s["n_cont"], generator=g, device=device)
            out.update(train.infogan_g_step(G_, D_, opt_G, z, c, cc, lambda_info=s["lambda_info"], lambda_cont=s["lambda_cont"]))
        else:
            z, y_fake = codes()
            if model == "acgan":
                out = train.acgan_d_step(G_, D_, opt_D, x, y, z, y_fake, lambda_cls=s["lambda_cls"])
            else:
                out = train.d_step(G_, D_, opt_D, x, z, y_real=y, y_fake=y_fake)
            z, y_fake = codes()
            if model == "acgan":
                out.update(train.acgan_g_step(G_, D_, opt_G, z, y_fake, lambda_cls=s["lambda_cls"]))
            else:
                out.update(train.g_step(G_, D_, opt_G, z, y=y_fake))
        ema.update(G)
        if i in snap_steps:
            record.images[snap_steps.index(i)] = _draw(ema.module, s, *grid)
            record.steps[snap_steps.index(i)] = i
        return out

    with config.threads(1):
        start = time.process_time()
        record.images[0] = _draw(ema.module, s, *grid)
        history = train.fit(step, steps=steps, desc=model, progress=progress)
        cpu = time.process_time() - start
    record.cpu_seconds.fill_(cpu)
    history.info.update({"cpu_seconds": cpu})
    return history


def conditional_mnist(model: str = "cgan", name: str | None = None, *, retrain: bool | None = None, progress: bool = True,
                      **overrides):
    r"""One of chapter 09's models (``model`` in :data:`MODELS`): loaded from the cache if it was
    trained before with the same settings under the same profile, else trained
    (:func:`train_conditional`) on one CPU thread and cached under ``name`` (default: ``model``).

    Returns ``(modules, history)``: ``modules`` as in :func:`build_conditional` (sample from
    ``modules["G_ema"]``), in ``eval()`` mode.
    """
    settings = conditional_settings(model, **overrides)
    modules = build_conditional(settings)
    saved = {k: v for k, v in modules.items() if not k.startswith("_")}
    with config.threads(1):
        history = train.load_or_train(name or model, saved, lambda: train_conditional(modules, settings, progress),
                                      settings=settings, retrain=retrain)
    for key in ("G", "D", "G_ema"):
        modules[key].eval()
    return modules, history


def _train_in_child(model: str, seed: int, retrain: bool | None, overrides: dict) -> float:
    history = conditional_mnist(model, retrain=retrain, progress=False, seed=seed, **overrides)[1]
    return history.seconds


def conditional_models(jobs=MODELS, *, workers: int | None = None, retrain: bool | None = None, **overrides) -> dict:
    r"""Several of chapter 09's models at once. ``jobs``: model names (seed 0) or ``(model, seed)``
    pairs. Those not in the cache are trained side by side, each in its own process on one thread
    (:func:`gencourse.train.run_in_processes`, ``workers`` at a time, default
    :func:`gencourse.config.workers`: the machine's cores under ``cpu``), then all are loaded with
    :func:`conditional_mnist`. ``overrides`` apply to every model.
    Returns ``{(model, seed): (modules, history)}``.
    """
    pairs = []
    for job in jobs:
        model, seed = (job, 0) if isinstance(job, str) else tuple(job)
        pairs.append((checks.one_of(model, MODELS, "model"), checks.positive_int(seed, "seed", low=0)))
    todo = [(_train_in_child, (m, seed, retrain, overrides), {}) for m, seed in pairs
            if retrain or not train.checkpoint_path(m, conditional_settings(m, seed=seed, **overrides)).exists()]
    parallel = len(todo) > 1 and (workers or config.workers()) > 1
    if parallel:
        train.run_in_processes(todo, workers)
    out = {(m, seed): conditional_mnist(m, progress=not parallel, retrain=False if parallel else retrain, seed=seed, **overrides)
           for m, seed in pairs}
    if parallel:  # loaded here, but trained by this call in a worker process: say so
        trained_here = {(job[1][0], job[1][1]) for job in todo}
        for key in trained_here:
            out[key][1].run.update(trained=True, worker_process=True)
    return out


def sample_conditional(G: torch.nn.Module, labels: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Samples of a conditional generator, one per requested label ``labels`` ``(n,)``, in ``[-1, 1]`` on the CPU."""
    return cond.generate(G, labels, generator=generator).clamp(-1, 1)


@torch.no_grad()
def sample_infogan(G: torch.nn.Module, c_cat: torch.Tensor, c_cont: torch.Tensor | None = None, *,
                   generator: torch.Generator | None = None, batch_size: int = 1000) -> torch.Tensor:
    r"""Samples :math:`G(z, c)` of an InfoGAN generator for the categorical codes ``c_cat`` ``(n,)``
    and continuous codes ``c_cont`` ``(n, n_cont)`` (default: drawn from Uniform(-1, 1)), ``z``
    drawn from ``generator``; in ``[-1, 1]`` on the CPU."""
    c_cat = cond.check_labels(c_cat, G.n_cat, name="c_cat")
    n = len(c_cat)
    z = torch.randn(n, G.latent_dim, generator=generator)
    if c_cont is None:
        c_cont = 2 * torch.rand(n, G.n_cont, generator=generator) - 1
    device = next(G.parameters()).device
    was = G.training
    G.eval()
    try:
        out = [G(zb.to(device), cb.to(device), ccb.to(device)).cpu()
               for zb, cb, ccb in zip(z.split(batch_size), c_cat.split(batch_size), c_cont.split(batch_size))]
    finally:
        G.train(was)
    return torch.cat(out).clamp(-1, 1)
