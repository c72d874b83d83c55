r"""Chapter 11's style-based generator on MNIST as a recipe: settings (hashed into the checkpoint's
name), build, train, load or train.

:func:`style_mnist` trains (or loads) the chapter's model, cached with
:func:`gencourse.train.load_or_train` under the name ``"stylegan"`` (AdaIN, StyleGAN's
layer) or ``"stylegan_demod"`` (``kind="demod"``, StyleGAN2's modulation and demodulation);
chapter 14's scoreboard reloads the first (entry ``"StyleGAN"``). The networks are in
:mod:`gencourse.models.style`, the R1 penalty is :func:`gencourse.losses.r1_penalty`.

The digits are trained at 32×32 (MNIST padded by 2 pixels of background, as the generator
doubles 4 → 8 → 16 → 32); samples are cropped back to 28×28 for the metrics
(:func:`sample28`).
"""

from __future__ import annotations

import time

import torch

from .. import config, data, distributed, losses, train
from ..models import style
from .dcgan import TrainingRecord

__all__ = ["style_settings", "build_style", "train_style", "style_mnist", "sample28"]


def style_settings(**overrides) -> dict:
    r"""The settings of chapter 11's style-based GAN under the active profile.

    ========================  ===============================  ==========================================
    setting                   value                            why
    ========================  ===============================  ==========================================
    ``kind``                  ``"adain"``                      StyleGAN's layer; ``"demod"``: StyleGAN2's
    ``z_dim``, ``w_dim``      64, 64                           the paper: 512, 512
    ``mapping_layers``        4                                the paper: 8
    ``channels``              (64, 64, 32, 16)                 widths at 4, 8, 16, 32 pixels
    ``ndf``                   16                               discriminator widths 16, 32, 64
    ``batch_size``            32
    ``lr``                    2e-3                             StyleGAN2: 2e-3 to 2.5e-3
    ``mapping_lr_mul``        0.1                              the paper: 0.01; here the mapping network
                                                               has no equalised learning rate (only the
                                                               modulated convolutions do), and 0.01
                                                               trained worse (FID 105 against 75 for
                                                               ``"demod"`` after 1,200 steps, one seed)
    ``betas``                 (0, 0.99)                        StyleGAN (both networks)
    ``r1_gamma``              1.0                              R1 weight :math:`\gamma`
    ``r1_every``              4                                lazy regularisation: R1 every 4 D steps,
                                                               weighted by 4 (StyleGAN2: every 16)
    ``mixing_prob``           0.5                              style-mixing regularisation (paper 0.9)
    ``w_avg_beta``            0.995                            running mean of :math:`w` (truncation)
    ``ema_decay``             0.995                            samples from an EMA of G's weights
    ``steps``                 smoke 10, cpu 1,500, gpu 20,000  about 3.5 CPU minutes under ``cpu``
    ========================  ===============================  ==========================================
    """
    settings = {
        "kind": "adain", "z_dim": 64, "w_dim": 64, "mapping_layers": 4, "channels": [64, 64, 32, 16], "ndf": 16,
        "batch_size": 32, "lr": 2e-3, "mapping_lr_mul": 0.1, "betas": [0.0, 0.99], "r1_gamma": 1.0, "r1_every": 4,
        "mixing_prob": 0.5, "w_avg_beta": 0.995, "ema_decay": 0.995, "snapshots": 6, "seed": 0,
        "steps": config.budget(smoke=10, cpu=1_500, gpu=20_000),
    }
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown style-GAN settings {sorted(unknown)}; known: {sorted(settings)}")
    settings.update(overrides)
    return settings


def build_style(settings: dict) -> dict:
    r"""The modules of a run on :func:`gencourse.config.device`: ``{"G", "D", "G_ema", "record"}``:
    a :class:`gencourse.models.style.StyleGenerator`, a
    :class:`gencourse.models.style.StyleDiscriminator`, the :class:`gencourse.train.EMA` copy of
    ``G`` (whose ``w_avg`` buffer follows G's) and the progress grid (32×32). Weights drawn from
    ``settings["seed"]`` in a forked random state."""
    device = config.device()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings["seed"])
        G = style.StyleGenerator(settings["z_dim"], settings["w_dim"], tuple(settings["channels"]),
                                 settings["mapping_layers"], settings["kind"]).to(device)
        D = style.StyleDiscriminator(settings["ndf"]).to(device)
    ema = train.EMA(G, settings["ema_decay"])
    record = TrainingRecord(settings["snapshots"], 64, (1, 32, 32)).to(device)
    return {"G": G, "D": D, "G_ema": ema.module, "record": record, "_ema": ema}


def _styles(G: style.StyleGenerator, z: torch.Tensor, mixing_prob: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer styles for a batch, with style-mixing regularisation: with probability
    ``mixing_prob`` a second code takes over from a random crossover layer."""
    w = G.mapping(z)
    ws = G.broadcast(w)
    if float(torch.rand((), generator=g)) < mixing_prob:  # one draw for the whole (global) batch
        w2 = G.mapping(distributed.randn(z.shape, generator=g).to(z.device))
        cut = int(torch.randint(1, G.num_ws, (), generator=g))
        ws = torch.cat([ws[:, :cut], G.broadcast(w2)[:, cut:]], dim=1)
    return w, ws


def train_style(modules: dict, settings: dict, progress: bool = True) -> train.History:
    r"""Train a style-based GAN on MNIST padded to 32×32, in :math:`[-1, 1]`, as StyleGAN does:
    the non-saturating loss, the R1 penalty on real images every ``r1_every`` D steps (lazy
    regularisation, weighted by ``r1_every``), style-mixing regularisation, Adam with
    :math:`\beta = (0, 0.99)` and the mapping network at ``mapping_lr_mul`` times the learning
    rate, the running mean :math:`\bar w` for truncation, an EMA of G's weights.

    Returns the :class:`gencourse.train.History`: ``loss_D``, ``loss_G``, ``D_real``, ``D_fake``
    per step and ``r1`` (the last penalty computed); ``history.info["cpu_seconds"]``.
    """
    G, D, ema, record = modules["G"], modules["D"], modules["_ema"], modules["record"]
    device = next(G.parameters()).device
    x_train = style.pad32(data.mnist_tensors("train", value_range="pm1", verbose=False)[0]).to(device)
    g = torch.Generator().manual_seed(settings["seed"] + 1)
    lr, betas = settings["lr"], tuple(settings["betas"])
    mapping = list(G.mapping.parameters())
    ids = {id(p) for p in mapping}
    opt_G = torch.optim.Adam([{"params": [p for p in G.parameters() if id(p) not in ids]},
                              {"params": mapping, "lr": lr * settings["mapping_lr_mul"]}], lr, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr, betas=betas)
    steps, B, d = settings["steps"], settings["batch_size"], settings["z_dim"]
    z_fixed = torch.randn(record.images.shape[1], d, generator=g).to(device)
    snap_steps = torch.linspace(0, steps, record.images.shape[0]).round().long().tolist()
    r1_last = [0.0]
    b = distributed.local_batch(B)  # this rank's share of the global batch (B itself in one process)
    D_ = distributed.wrap(D)  # DistributedDataParallel under torchrun

    def fake(G: style.StyleGenerator, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w, ws = _styles(G, z, settings["mixing_prob"], g)
        return w, G.synthesis(ws)

    G_fake = distributed.wrap_call(G, fake)  # mapping, mixing and synthesis in one call: DDP averages G's gradients

    def snapshot(i: int) -> None:
        k = snap_steps.index(i)
        with torch.no_grad():
            record.images[k] = ema.module(z_fixed).clamp(-1, 1)
        record.steps[k] = i

    def step(i: int) -> dict:
        x_real = x_train[distributed.randint(0, len(x_train), (b,), generator=g).to(device)]
        with torch.no_grad():
            _, ws = _styles(G, distributed.randn((b, d), generator=g).to(device), settings["mixing_prob"], g)
            x_fake = G.synthesis(ws)
        d_real, d_fake = D_(x_real), D_(x_fake)
        loss_D = losses.d_loss_bce(d_real, d_fake)
        if settings["r1_gamma"] > 0 and i % settings["r1_every"] == 0:
            r1 = losses.r1_penalty(D_, x_real)
            loss_D = loss_D + settings["r1_gamma"] / 2 * settings["r1_every"] * r1
            r1_last[0] = r1.item()
        opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        opt_D.step()
        w, x_fake = G_fake(distributed.randn((b, d), generator=g).to(device))
        G.update_w_avg(w.detach(), settings["w_avg_beta"])
        with train._frozen(D):  # as in train.g_step: no gradient accumulated for D's parameters
            loss_G = losses.g_loss_non_saturating(D(x_fake))
            opt_G.zero_grad(set_to_none=True)
            loss_G.backward()
            opt_G.step()
        ema.update(G)
        if i in snap_steps:
            snapshot(i)
        return {"loss_D": loss_D.item(), "loss_G": loss_G.item(), "D_real": torch.sigmoid(d_real).mean().item(),
                "D_fake": torch.sigmoid(d_fake).mean().item(), "r1": r1_last[0]}

    # the synthesis layers draw their per-pixel noise from PyTorch's global generator, which a fresh
    # process seeds at random: seed it from the settings (and give the caller's state back after),
    # so that the same settings train the same model, as the checkpoint's name promises
    with config.threads(1), torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings["seed"] + 2)
        start = time.process_time()
        snapshot(0)
        history = train.fit(step, steps=steps, desc=f"StyleGAN ({settings['kind']})", progress=progress)
        cpu = time.process_time() - start
    record.cpu_seconds.fill_(cpu)
    history.info.update({"cpu_seconds": cpu})
    return history


def style_mnist(name: str = "stylegan", *, retrain: bool | None = None, progress: bool = True, **overrides):
    r"""Chapter 11's style-based GAN: loaded from the cache if it was trained before with the same
    settings under the same profile, else trained (:func:`train_style`) on one CPU thread and
    cached under ``name`` (``"stylegan"``; the chapter trains ``"stylegan_demod"`` with
    ``kind="demod"`` beside it).

    Returns ``(modules, history)``: ``modules`` as in :func:`build_style` (sample from
    ``modules["G_ema"]``), in ``eval()`` mode.
    """
    settings = style_settings(**overrides)
    modules = build_style(settings)
    saved = {k: v for k, v in modules.items() if not k.startswith("_")}
    with config.threads(1):
        history = train.load_or_train(name, saved, lambda: train_style(modules, settings, progress), settings=settings,
                                      retrain=retrain)
    for key in ("G", "D", "G_ema"):
        modules[key].eval()
    return modules, history


@torch.no_grad()
def sample28(G: style.StyleGenerator, n: int, *, psi: float = 1.0, generator: torch.Generator | None = None,
             batch_size: int = 500) -> torch.Tensor:
    r"""``n`` samples of ``G`` cropped to 28×28 and clamped to [-1, 1] (for the metrics of
    :mod:`gencourse.metrics`), with truncation ``psi`` in :math:`W`."""
    device = G.w_avg.device
    out = []
    for start in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - start), G.z_dim, generator=generator).to(device)
        out.append(style.crop28(G(z, psi=psi)).clamp(-1, 1))
    return torch.cat(out)
