r"""Chapter 10's translation models as recipes: pix2pix on a paired set and CycleGAN on UCI digits ↔
MNIST, each with the ablations the chapter measures.

===================  ==========================================================================
``variant``          what it trains
===================  ==========================================================================
``"pix2pix"``        U-Net G, PatchGAN D seeing (source, output), cGAN + :math:`\lambda`·L1, :math:`\lambda = 100`
``"l1"``             the same U-Net, L1 alone (no D)
``"cgan"``           U-Net and D, the GAN alone (:math:`\lambda = 0`)
``"noskip"``         cGAN + L1 with the encoder-decoder (the U-Net without its skips)
``"cyclegan"``       two U-Nets :math:`G_{AB}, G_{BA}`, two PatchGANs, least squares, cycle 10, identity 5
``"no_cycle"``       the same without the cycle loss
``"no_identity"``    the same without the identity loss
===================  ==========================================================================

:func:`translation_model` loads a variant from the cache or trains it
(:func:`gencourse.train.load_or_train`); :func:`translation_models` trains several side by side in
worker processes. :func:`translate` applies a generator to a batch of images;
:func:`digit_classifier` reads digits of both domains and measures whether a translation kept
the digit.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .. import checks, config, data, distributed, train
from .. import nn as gnn
from ..metrics import features
from ..models.translation import KeepLuminance
from .dcgan import TrainingRecord

__all__ = ["PIX2PIX_VARIANTS", "CYCLEGAN_VARIANTS", "VARIANTS", "translation_settings", "build_translation", "train_translation",
           "translation_model", "translation_models", "translate", "digit_classifier", "N_GRID"]

PIX2PIX_VARIANTS = ("pix2pix", "l1", "cgan", "noskip")
CYCLEGAN_VARIANTS = ("cyclegan", "no_cycle", "no_identity")
VARIANTS = PIX2PIX_VARIANTS + CYCLEGAN_VARIANTS
N_GRID = 8  # held-out inputs whose translations are recorded during training


def translation_settings(variant: str = "pix2pix", task: str = "edges2digits", **overrides) -> dict:
    r"""The settings of one of chapter 10's models under the active profile.

    =====================  ==================================  ===========================================
    setting                value                               why
    =====================  ==================================  ===========================================
    ``variant``            one of :data:`VARIANTS`
    ``task``               ``"edges2digits"`` or               pix2pix's paired set
                           ``"grey2colour"``; CycleGAN:
                           ``"uci2mnist"``
    ``ngf``, ``ndf``       16, 16                              a quarter of the paper's 64: 28 × 28
                                                               images, CPU minutes
    ``depth``              2 (28 × 28) or 3 (32 × 32)          the U-Net halves the side ``depth`` times
    ``n_down``             1 (16 × 16 patches)                 a patch a little over half a digit
    ``norm``               ``"instance"``                      the same in training and at test time
    ``keep_luminance``     ``True`` for ``grey2colour``        G only chooses colours: the output's
                                                               luminance is the input
                                                               (:class:`~gencourse.models.translation.KeepLuminance`)
    ``batch_size``         16                                  the paper uses 1; 16 uses a CPU better
    ``lr``                 2e-4, Adam (0.5, 0.999)             the paper's
    ``lambda_l1``          100                                 pix2pix's :math:`\lambda`
    ``lambda_cycle``       10, ``lambda_identity`` 5           CycleGAN's (identity: 0.5 × cycle)
    ``steps``              smoke 6, cpu 800, gpu 10,000        about a CPU minute for a pix2pix variant
    =====================  ==================================  ===========================================
    """
    checks.one_of(variant, VARIANTS, "variant")
    cyclegan = variant in CYCLEGAN_VARIANTS
    if cyclegan and task == "edges2digits":
        task = "uci2mnist"
    settings = {
        "variant": variant, "task": task, "ngf": 16, "ndf": 16, "depth": 2, "n_down": 1, "norm": "instance",
        "batch_size": 16, "lr": 2e-4, "betas": [0.5, 0.999], "kind": "non_saturating",
        "lambda_l1": 100.0, "lambda_cycle": 10.0, "lambda_identity": 5.0, "keep_luminance": False, "snapshots": 5, "seed": 0,
        "steps": config.budget(smoke=6, cpu=800, gpu=10_000),
    }
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown translation settings {sorted(unknown)}; known: {sorted(settings)}")
    settings.update(overrides)
    task = settings["task"]
    if cyclegan:
        if task != "uci2mnist":
            raise ValueError(f"CycleGAN variants translate UCI digits and MNIST: task must be 'uci2mnist', got {task!r}")
        settings.update({"kind": "least_squares", "lambda_l1": 0.0})
        settings["lambda_cycle"] = 0.0 if variant == "no_cycle" else settings["lambda_cycle"]
        settings["lambda_identity"] = 0.0 if variant == "no_identity" else settings["lambda_identity"]
    else:
        checks.one_of(task, data.PAIRED_TASKS, "task")
        if task == "grey2colour":
            settings["depth"] = overrides.get("depth", 3)
            settings["keep_luminance"] = overrides.get("keep_luminance", True)
        if variant == "cgan":
            settings["lambda_l1"] = 0.0
    checks.positive_int(settings["steps"], "steps")
    return settings


def _channels(task: str) -> tuple[int, int]:
    return (1, 3) if task == "grey2colour" else (1, 1)


def build_translation(settings: dict) -> dict:
    r"""The modules of a run on :func:`gencourse.config.device`, weights drawn from ``settings["seed"]``
    in a forked random state. pix2pix: ``{"G", "D", "record"}`` (``D`` is ``None`` for ``"l1"``);
    CycleGAN: ``{"G_AB", "G_BA", "D_A", "D_B", "record"}``. ``record`` keeps the translations of
    :data:`N_GRID` held-out inputs at ``settings["snapshots"]`` steps (both directions for CycleGAN)."""
    s, device = settings, config.device()
    c_in, c_out = _channels(s["task"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s["seed"])
        if s["variant"] in CYCLEGAN_VARIANTS:
            mods = {"G_AB": gnn.TranslationUNet(1, 1, s["ngf"], s["depth"], norm=s["norm"]),
                    "G_BA": gnn.TranslationUNet(1, 1, s["ngf"], s["depth"], norm=s["norm"]),
                    "D_A": gnn.PatchGAN(1, s["ndf"], s["n_down"], norm=s["norm"]),
                    "D_B": gnn.PatchGAN(1, s["ndf"], s["n_down"], norm=s["norm"])}
            shape, n = (1, 28, 28), 2 * N_GRID
        else:
            G = gnn.TranslationUNet(c_in, c_out, s["ngf"], s["depth"], skips=s["variant"] != "noskip", norm=s["norm"])
            mods = {"G": KeepLuminance(G) if s["keep_luminance"] else G,
                    "D": None if s["variant"] == "l1" else gnn.PatchGAN(c_in + c_out, s["ndf"], s["n_down"], norm=s["norm"])}
            side = 32 if s["task"] == "grey2colour" else 28
            shape, n = (c_out, side, side), N_GRID
    mods = {k: (m.to(device) if m is not None else None) for k, m in mods.items()}
    mods["record"] = TrainingRecord(s["snapshots"], n, shape).to(device)
    return mods


def _grid_inputs(settings: dict) -> torch.Tensor:
    """The held-out inputs whose translations the record keeps (CycleGAN: N_GRID of A, then N_GRID of B)."""
    if settings["variant"] in CYCLEGAN_VARIANTS:
        a, b = data.unpaired("test")
        return torch.cat([a.tensors[0][:: len(a) // N_GRID][:N_GRID], b.tensors[0][:: len(b) // N_GRID][:N_GRID]])
    src = data.paired(settings["task"], "test").tensors[0]
    return src[:: len(src) // N_GRID][:N_GRID]


@torch.no_grad()
def translate(G: torch.nn.Module, x: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    r"""``G(x)`` in evaluation mode, in batches, on ``G``'s device; returned on the CPU, clamped to
    :math:`[-1, 1]`. ``x`` ``(N, C, H, W)`` in :math:`[-1, 1]`."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    device = next(G.parameters()).device
    was = G.training
    G.eval()
    try:
        out = [G(xb.to(device)).cpu() for xb in x.split(batch_size)]
    finally:
        G.train(was)
    return torch.cat(out).clamp(-1, 1)


def _snapshot(mods: dict, s: dict, grid: torch.Tensor) -> torch.Tensor:
    if s["variant"] in CYCLEGAN_VARIANTS:
        return torch.cat([translate(mods["G_AB"], grid[:N_GRID]), translate(mods["G_BA"], grid[N_GRID:])])
    return translate(mods["G"], grid)


def train_translation(mods: dict, settings: dict, progress: bool = True) -> train.History:
    r"""Train one of chapter 10's models: ``settings["steps"]`` iterations on batches drawn with
    replacement from the training split (pix2pix: one D step then one G step on the same pairs;
    CycleGAN: one step of both generators, then one of both discriminators on the batch's
    translations, with *A* and *B* drawn **independently**: no pairing). Returns the
    :class:`gencourse.train.History`; its ``info`` holds ``cpu_seconds``."""
    s = settings
    device = config.device()
    g = torch.Generator().manual_seed(s["seed"] + 1)
    B, betas = s["batch_size"], tuple(s["betas"])
    cyclegan = s["variant"] in CYCLEGAN_VARIANTS
    if cyclegan:
        a_set, b_set = data.unpaired("train")
        xa, xb = a_set.tensors[0].to(device), b_set.tensors[0].to(device)
        opt_G = torch.optim.Adam([*mods["G_AB"].parameters(), *mods["G_BA"].parameters()], s["lr"], betas=betas)
        opt_D = torch.optim.Adam([*mods["D_A"].parameters(), *mods["D_B"].parameters()], s["lr"], betas=betas)
    else:
        src, tgt, _ = data.paired(s["task"], "train").tensors
        src, tgt = src.to(device), tgt.to(device)
        G, D = mods["G"], mods["D"]
        opt_G = torch.optim.Adam(G.parameters(), s["lr"], betas=betas)
        opt_D = torch.optim.Adam(D.parameters(), s["lr"], betas=betas) if D is not None else None
    grid = _grid_inputs(s).to(device)
    record = mods["record"]
    snap_steps = torch.linspace(0, s["steps"], record.images.shape[0]).round().long().tolist()
    n = distributed.local_batch(B)  # this rank's share of the global batch (B itself in one process)
    # DistributedDataParallel under torchrun (the modules themselves in one process)
    net = {k: distributed.wrap(m) if m is not None else None for k, m in mods.items() if k != "record"}

    def step(i: int) -> dict:
        if cyclegan:
            a = xa[distributed.randint(0, len(xa), (n,), generator=g).to(device)]
            b = xb[distributed.randint(0, len(xb), (n,), generator=g).to(device)]
            out = train.cyclegan_g_step(net["G_AB"], net["G_BA"], net["D_A"], net["D_B"], opt_G, a, b,
                                        lambda_cycle=s["lambda_cycle"], lambda_identity=s["lambda_identity"])
            fake_a, fake_b = out.pop("fakes")
            out.update(train.cyclegan_d_step(net["D_A"], net["D_B"], opt_D, a, b, fake_a, fake_b))
        else:
            idx = distributed.randint(0, len(src), (n,), generator=g).to(device)
            x, y = src[idx], tgt[idx]
            out = {}
            if D is not None:
                out.update(train.pix2pix_d_step(net["G"], net["D"], opt_D, x, y, kind=s["kind"]))
            out.update(train.pix2pix_g_step(net["G"], net["D"], opt_G, x, y, lambda_l1=s["lambda_l1"], kind=s["kind"]))
        if i in snap_steps:
            record.images[snap_steps.index(i)] = _snapshot(mods, s, grid).to(record.images.device)
            record.steps[snap_steps.index(i)] = i
        return out

    with config.threads(1):
        start = time.process_time()
        record.images[0] = _snapshot(mods, s, grid).to(record.images.device)
        history = train.fit(step, steps=s["steps"], desc=s["variant"], progress=progress)
        cpu = time.process_time() - start
    record.cpu_seconds.fill_(cpu)
    history.info.update({"cpu_seconds": cpu})
    return history


def _name(settings: dict) -> str:
    return settings["variant"] if settings["task"] in ("edges2digits", "uci2mnist") else f"{settings['variant']}_{settings['task']}"


def translation_model(variant: str = "pix2pix", task: str = "edges2digits", *, retrain: bool | None = None, progress: bool = True,
                      **overrides):
    r"""One of chapter 10's models: loaded from the cache if it was trained before with the same
    settings under the same profile, else trained (:func:`train_translation`) on one CPU thread and
    cached. Returns ``(modules, history)`` (modules as in :func:`build_translation`, in ``eval()`` mode)."""
    settings = translation_settings(variant, task, **overrides)
    mods = build_translation(settings)
    saved = {k: v for k, v in mods.items() if v is not None}
    with config.threads(1):
        history = train.load_or_train(_name(settings), saved, lambda: train_translation(mods, settings, progress),
                                      settings=settings, retrain=retrain)
    for m in mods.values():
        if m is not None:
            m.eval()
    return mods, history


def _train_in_child(variant: str, task: str, retrain: bool | None, overrides: dict) -> float:
    return translation_model(variant, task, retrain=retrain, progress=False, **overrides)[1].seconds


def translation_models(jobs, *, workers: int | None = None, retrain: bool | None = None, **overrides) -> dict:
    r"""Several of chapter 10's models at once. ``jobs``: variant names (on their default task) or
    ``(variant, task)`` pairs. Those not in the cache are trained side by side, each in its own
    process on one thread (:func:`gencourse.train.run_in_processes`), then all are loaded.
    ``overrides`` apply to every model. Returns ``{(variant, task): (modules, history)}``."""
    pairs = []
    for job in jobs:
        variant, task = (job, "edges2digits") if isinstance(job, str) else tuple(job)
        pairs.append((variant, translation_settings(variant, task)["task"]))
    todo = [(_train_in_child, (v, t, retrain, overrides), {}) for v, t in pairs
            if retrain or not train.checkpoint_path(_name(translation_settings(v, t, **overrides)),
                                                    translation_settings(v, t, **overrides)).exists()]
    # longest first: CycleGAN's steps cost about three of pix2pix's
    todo.sort(key=lambda job: job[1][0] not in CYCLEGAN_VARIANTS)
    parallel = len(todo) > 1 and (workers or config.workers()) > 1
    if parallel:
        train.run_in_processes(todo, workers)
    out = {(v, t): translation_model(v, t, progress=not parallel, retrain=False if parallel else retrain, **overrides) for v, t in pairs}
    if parallel:
        for job in todo:
            out[job[1][0], translation_settings(job[1][0], job[1][1])["task"]][1].run.update(trained=True, worker_process=True)
    return out


# ----------------------------------------------------------------------------------------------
# a digit classifier that reads both domains (UCI digits at 28 x 28 and MNIST)
# ----------------------------------------------------------------------------------------------

DIGIT_CLASSIFIER_SETTINGS = {"seed": 0, "epochs": 6, "batch_size": 64, "lr": 3e-3, "shift": 2, "data": "uci_digits_28+mnist_train"}
_DIGIT_NET: dict = {}


def _fit_digits(net: features.FeatureNet, s: dict) -> train.History:
    (xa, ya), (xb, yb) = data.uci_digits("train"), data.mnist_tensors("train", source="embedded", verbose=False)
    x, y = torch.cat([xa, xb]), torch.cat([ya, yb])
    g = torch.Generator().manual_seed(s["seed"])
    opt = torch.optim.Adam(net.parameters(), lr=s["lr"])
    steps = s["epochs"] * len(x) // s["batch_size"]
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s["lr"], total_steps=steps)
    start = time.process_time()
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (s["batch_size"],), generator=g)
        dx, dy = torch.randint(-s["shift"], s["shift"] + 1, (2,), generator=g).tolist()
        loss = F.cross_entropy(net(torch.roll(x[idx], (dx, dy), dims=(2, 3))), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    net.eval()
    info = {"steps": steps}
    with torch.no_grad():
        for name, (xt, yt) in (("uci", data.uci_digits("test")), ("mnist", data.mnist_tensors("test", source="embedded", verbose=False))):
            info[f"accuracy_{name}"] = (net(xt).argmax(1) == yt).float().mean().item()
    return train.History(seconds=time.process_time() - start, info=info)


def digit_classifier() -> features.FeatureNet:
    r"""A judge of digits in **both** domains (images in :math:`[0, 1]`): the feature network's
    architecture trained on the UCI training digits at 28 × 28 and the embedded MNIST training
    split together (cached, every profile alike; held-out accuracies in ``net.info["accuracy_uci"]``
    and ``["accuracy_mnist"]``).

    A classifier of one domain is no judge of the other: trained on UCI digits alone, it reads
    MNIST digits right about half of the time, even MNIST digits rendered at 8 × 8 by UCI's own
    rule, because the two sets' writers shape their digits differently. This one reads both, so
    that "the translation kept the digit" is measured apart from "the translation looks like the
    target domain" (FID against the target domain's held-out images)."""
    if "net" in _DIGIT_NET:
        return _DIGIT_NET["net"]
    s = dict(DIGIT_CLASSIFIER_SETTINGS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s["seed"])
        net = features.FeatureNet()
    with config.threads(1):
        history = train.load_or_train("digit_classifier", net, lambda: _fit_digits(net, s), settings=s, per_profile=False, verbose=False)
    net.info = dict(history.info)
    net.eval().requires_grad_(False)
    _DIGIT_NET["net"] = net.to(config.device())
    return _DIGIT_NET["net"]
