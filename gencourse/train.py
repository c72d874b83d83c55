"""A small training loop, an exponential moving average of weights, and cached checkpoints.

The first chapter of each model family writes its loop out in the notebook; later chapters
call :func:`fit` with a one-step function::

    def step(batch):
        x, _ = batch
        loss = model_loss(x)
        opt.zero_grad(); loss.backward(); opt.step()
        return {"loss": loss.item()}

    history = gc.train.fit(step, loader, steps=gc.config.budget(smoke=20, cpu=2_000, gpu=20_000))

Nothing here holds global state, so the same step functions run under ``torchrun`` with
DistributedDataParallel (wrap the model, use a ``DistributedSampler``; only rank 0 saves).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

import torch
from torch import nn
from tqdm.std import tqdm  # plain text on stderr: the rendered book drops it, Jupyter shows it

from . import config

__all__ = ["History", "cycle", "fit", "EMA", "load_or_train", "checkpoint_path", "vae_step"]


@dataclass
class History:
    """Losses recorded by :func:`fit`: one list per name, one entry per step, and the run time."""

    losses: dict = field(default_factory=dict)
    seconds: float = 0.0

    def append(self, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self.losses.setdefault(name, []).append(float(value))

    def __getitem__(self, name: str) -> list:
        return self.losses[name]

    def __len__(self) -> int:
        return max((len(v) for v in self.losses.values()), default=0)

    def last(self, name: str, n: int = 100) -> float:
        """Mean of the last ``n`` recorded values of ``name`` (a smoothed final loss)."""
        values = self.losses[name][-n:]
        return sum(values) / len(values)

    def to_dict(self) -> dict:
        return {"losses": self.losses, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: Mapping) -> "History":
        return cls(losses={k: list(v) for k, v in d["losses"].items()}, seconds=float(d["seconds"]))


def cycle(batches: Iterable) -> Iterator:
    """Iterate over ``batches`` forever, starting a new pass (a new shuffle) after each one."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("batches is empty: expected an iterable (e.g. a DataLoader) with at least one batch")


def fit(
    step: Callable[[object], Mapping[str, float] | float],
    batches: Iterable | None = None,
    *,
    steps: int,
    desc: str = "training",
    progress: bool = True,
    callback: Callable[[int, History], None] | None = None,
    callback_every: int = 0,
) -> History:
    r"""Run ``step(batch)`` for ``steps`` batches drawn from ``batches`` (cycled) and record losses.

    With ``batches=None`` (data sampled inside ``step``, e.g. from a toy distribution) ``step``
    receives the step number ``1..steps`` instead.

    ``step`` performs one update and returns its losses as a dict (or a single float, recorded
    as ``"loss"``). ``callback(i, history)`` runs every ``callback_every`` steps (e.g. to save a
    grid of samples from a fixed noise batch). Returns the :class:`History`; prints one summary
    line at the end so that a rendered notebook shows the run time.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    history = History()
    start = time.perf_counter()
    bar = tqdm(total=steps, desc=desc, disable=not progress, file=sys.stderr, mininterval=1.0, leave=False)
    source = cycle(batches) if batches is not None else iter(range(1, steps + 1))
    for i, batch in zip(range(1, steps + 1), source):
        out = step(batch)
        values = {"loss": out} if not isinstance(out, Mapping) else out
        history.append(values)
        if i % 50 == 0 or i == steps:
            bar.set_postfix({k: f"{float(v):.4g}" for k, v in values.items()}, refresh=False)
        bar.update(1)
        if callback is not None and callback_every and (i % callback_every == 0 or i == steps):
            callback(i, history)
    bar.close()
    history.seconds = time.perf_counter() - start
    summary = ", ".join(f"{k} {history.last(k, max(1, steps // 20)):.4g}" for k in history.losses)
    print(f"{desc}: {steps} steps in {history.seconds:.1f} s ({summary})")
    return history


class EMA:
    r"""Exponential moving average of a model's weights (Polyak averaging).

    .. math:: \bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta, \qquad
              d = \min\left(\text{decay}, \frac{1 + n}{10 + n}\right)

    where ``n`` counts the updates so far (the warm-up keeps early averages from being
    dominated by the random initialisation). Buffers (e.g. batch-norm statistics) are copied.
    ``ema.module`` is an evaluation copy of the model to sample from.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for p_ema, p in zip(self.module.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - d)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: Mapping) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
        self.decay = float(state["decay"])


def _fingerprint(settings: Mapping) -> str:
    try:
        text = json.dumps(settings, sort_keys=True, default=str)
    except TypeError as err:  # pragma: no cover - default=str makes this rare
        raise ValueError(f"settings must be JSON-serialisable: {err}") from err
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def checkpoint_path(name: str, settings: Mapping | None = None, profile: str | None = None):
    """Where :func:`load_or_train` keeps ``name``'s checkpoint: the cache folder, keyed by a
    hash of ``settings`` and the profile, so that a changed configuration never loads a stale file."""
    if not name or any(c in name for c in "/\\ "):
        raise ValueError(f"name must be a non-empty word without slashes or spaces, got {name!r}")
    profile = config.check_profile(profile) if profile else config.profile()
    key = _fingerprint({"name": name, "profile": profile, **dict(settings or {})})
    return config.cache_dir("checkpoints") / f"{name}-{profile}-{key}.pt"


def _as_modules(models) -> dict:
    if isinstance(models, nn.Module):
        return {"model": models}
    if isinstance(models, Mapping) and models and all(isinstance(m, nn.Module) for m in models.values()):
        return dict(models)
    raise ValueError("models must be an nn.Module or a non-empty dict of nn.Modules, " f"got {type(models).__name__}")


def load_or_train(
    name: str,
    models,
    train: Callable[[], History],
    *,
    settings: Mapping | None = None,
    retrain: bool | None = None,
) -> History:
    """Load ``models``' weights from the cache if this configuration was trained before, else
    call ``train()`` (which trains ``models`` in place and returns a :class:`History`) and save.

    ``models`` is one module or a dict of them (e.g. ``{"G": G, "D": D}``); ``settings`` is a
    JSON-serialisable dict of everything that changes the result (architecture, steps, learning
    rate): it is hashed into the file name. ``retrain=True`` (or the environment variable
    ``GENCOURSE_RETRAIN=1``) ignores an existing checkpoint. Files are written atomically.
    """
    modules = _as_modules(models)
    path = checkpoint_path(name, settings)
    if retrain is None:
        retrain = os.environ.get("GENCOURSE_RETRAIN", "") not in ("", "0")
    if path.exists() and not retrain:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            for key, module in modules.items():
                module.load_state_dict(state["modules"][key])
        except Exception as err:
            raise RuntimeError(
                f"could not load the checkpoint {str(path)!r} ({type(err).__name__}: {err}); "
                "delete that file to train again"
            ) from err
        history = History.from_dict(state["history"])
        print(f"{name}: loaded from {path.name} (trained in {history.seconds:.1f} s)")
        return history
    history = train()
    if not isinstance(history, History):
        raise ValueError(f"train() must return a gencourse.train.History, got {type(history).__name__}")
    state = {"modules": {k: m.state_dict() for k, m in modules.items()}, "history": history.to_dict()}
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return history


def lr_cosine(step: int, total: int, warmup: int = 0) -> float:
    """Learning-rate factor: linear warm-up for ``warmup`` steps, then cosine decay to 0."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ----------------------------------------------------------------------------------------------
# one-step functions
# ----------------------------------------------------------------------------------------------


def vae_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor | None = None,
             *, beta: float = 1.0, generator: torch.Generator | None = None) -> dict:
    r"""One update of a (β-, conditional) VAE (chapter 04): minimise the negative ELBO.

    .. math:: \mathcal L = \frac1B \sum_b \big[-\log p_\theta(x_b \mid z_b) + \beta\,\mathrm{KL}(q_\phi(z\mid x_b)\,\|\,p(z))\big]

    ``model`` has ``loss_terms(x, y, beta=, generator=)`` (:class:`gencourse.models.autoencoder.VAE`);
    ``x`` ``(B, 1, 28, 28)`` in [0, 1], ``y`` ``(B,)`` labels for a conditional VAE. Returns floats
    per image in nats: ``loss``, ``rec`` (:math:`-\log p(x\mid z)`), ``kl`` and ``elbo`` (= -rec - kl).
    """
    terms = model.loss_terms(x, y, beta=beta, generator=generator)
    opt.zero_grad(set_to_none=True)
    terms["loss"].backward()
    opt.step()
    rec, kl = terms["rec"].mean().item(), terms["kl"].mean().item()
    return {"loss": terms["loss"].item(), "rec": rec, "kl": kl, "elbo": -rec - kl}


# ----------------------------------------------------------------------------------------------
# one-step functions of a GAN (chapters 06-07)
# ----------------------------------------------------------------------------------------------

__all__ += ["d_step", "g_step"]

from . import losses  # noqa: E402  (the GAN losses of chapters 06-07)


def d_step(G: nn.Module, D: nn.Module, opt_D: torch.optim.Optimizer, x_real: torch.Tensor, z: torch.Tensor,
           *, kind: str = "non_saturating") -> dict:
    r"""One update of the discriminator (Goodfellow et al., 2014, Algorithm 1, inner loop; chapter 06).

    .. math:: \mathcal L_D = -\frac1B\sum_b \log\sigma\big(d(x_b)\big) - \frac1B\sum_b \log\Big(1 - \sigma\big(d(G(z_b))\big)\Big)

    for ``kind`` ``"minimax"`` / ``"non_saturating"`` (other kinds: :data:`gencourse.losses.GAN_LOSSES`).
    The fake batch is **detached**: this step moves :math:`D` only, and no gradient reaches ``G``'s
    parameters. ``D`` returns logits ``(B,)``; ``x_real`` ``(B, ...)``, ``z`` ``(B', latent_dim)``.

    Returns floats: ``loss_D``, ``D_real`` = mean :math:`\sigma(d(x))` and ``D_fake`` = mean
    :math:`\sigma(d(G(z)))` (the discriminator's average belief that each batch is real).
    """
    x_fake = G(z).detach()  # a constant for this step: no gradient flows into G
    d_real, d_fake = D(x_real), D(x_fake)
    loss_D = losses.discriminator_loss(d_real, d_fake, kind)
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()
    return {"loss_D": loss_D.item(), "D_real": torch.sigmoid(d_real).mean().item(), "D_fake": torch.sigmoid(d_fake).mean().item()}


def g_step(G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, z: torch.Tensor, *, kind: str = "non_saturating") -> dict:
    r"""One update of the generator (Goodfellow et al., 2014, Algorithm 1, outer step; chapter 06).

    .. math:: \mathcal L_G^\text{NS} = -\frac1B\sum_b \log\sigma\big(d(G(z_b))\big) \quad\text{or}\quad
              \mathcal L_G^\text{minimax} = \frac1B\sum_b \log\Big(1 - \sigma\big(d(G(z_b))\big)\Big)

    (``kind``; see :data:`gencourse.losses.GAN_LOSSES`). The gradient flows **through** ``D`` into
    ``G`` (nothing is detached), but ``D``'s parameters are frozen during the step, so that no
    gradient is accumulated for them (saves the work; their ``requires_grad`` is restored).

    Returns floats: ``loss_G``.
    """
    flags = [p.requires_grad for p in D.parameters()]
    D.requires_grad_(False)
    try:
        d_fake = D(G(z))
        loss_G = losses.generator_loss(d_fake, kind)
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
    finally:
        for p, flag in zip(D.parameters(), flags):
            p.requires_grad_(flag)
    return {"loss_G": loss_G.item()}
