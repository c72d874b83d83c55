"""A small training loop, an exponential moving average of weights, and cached checkpoints.

The first chapter of each model family writes its loop out in the notebook; later chapters
call :func:`fit` with a one-step function::

    def step(batch):
        x, _ = batch
        loss = model_loss(x)
        opt.zero_grad(); loss.backward(); opt.step()
        return {"loss": loss.item()}

    history = gc.train.fit(step, loader, steps=gc.config.budget(smoke=20, cpu=2_000, gpu=20_000))

The same recipes and step functions run under ``torchrun`` with DistributedDataParallel
(:mod:`gencourse.distributed`: each rank draws its slice of the global batch, only the network a
step updates runs through its wrapper, :func:`fit` averages the recorded losses over the ranks,
:func:`load_or_train` writes on rank 0 only). From the command line (:mod:`gencourse.cli`)::

    python -m gencourse.train dcgan --profile gpu
    torchrun --nproc_per_node=2 -m gencourse.train ddpm
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.std import tqdm  # plain text on stderr: the rendered book drops it, Jupyter shows it

from . import checks, config, diffusion, distributed, losses

__all__ = ["History", "cycle", "fit", "EMA", "load_or_train", "last_run_info", "checkpoint_path", "lr_cosine", "vae_step"]


@dataclass
class History:
    """Losses recorded by :func:`fit`: one list per name, one entry per step, and the run time.

    ``info`` holds what a training run wants kept with its checkpoint besides losses (e.g. a
    held-out accuracy); ``run`` is filled by :func:`load_or_train` (see :func:`last_run_info`).
    """

    losses: dict = field(default_factory=dict)
    seconds: float = 0.0
    info: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)

    def append(self, values: Mapping[str, float]) -> None:
        """Record one step's values (a dict name -> float)."""
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
        """A plain dict (saved in checkpoints): losses, seconds and info."""
        return {"losses": self.losses, "seconds": self.seconds, "info": self.info}

    @classmethod
    def from_dict(cls, d: Mapping) -> History:
        """The inverse of :meth:`to_dict`."""
        return cls(losses={k: list(v) for k, v in d["losses"].items()}, seconds=float(d["seconds"]), info=dict(d.get("info") or {}))


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
    main = distributed.is_main()  # under torchrun only rank 0 reports
    bar = tqdm(total=steps, desc=desc, disable=not (progress and main), file=sys.stderr, mininterval=1.0, leave=False)
    source = cycle(batches) if batches is not None else iter(range(1, steps + 1))
    for i, batch in zip(range(1, steps + 1), source):
        with distributed.sharded_draws():  # under N processes each rank draws its slice of the global batch
            out = step(batch)
        values = {"loss": out} if not isinstance(out, Mapping) else out
        values = distributed.mean_over_ranks(values)  # under torchrun: the global batch's losses
        history.append(values)
        if i % 50 == 0 or i == steps:
            bar.set_postfix({k: f"{float(v):.4g}" for k, v in values.items()}, refresh=False)
        bar.update(1)
        if callback is not None and callback_every and (i % callback_every == 0 or i == steps):
            callback(i, history)
    bar.close()
    history.seconds = time.perf_counter() - start
    summary = ", ".join(f"{k} {history.last(k, max(1, steps // 20)):.4g}" for k in history.losses)
    if main:
        ranks = f" on {distributed.world_size()} processes" if distributed.world_size() > 1 else ""
        print(f"{desc}: {steps} steps in {history.seconds:.1f} s{ranks} ({summary})")
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
        model = distributed.unwrap(model)
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
        model = distributed.unwrap(model)  # the average is of the module, not of its DDP wrapper
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


def checkpoint_path(name: str, settings: Mapping | None = None, profile: str | None = None, *, per_profile: bool = True):
    """Where :func:`load_or_train` keeps ``name``'s checkpoint: the cache folder, keyed by a
    hash of ``settings`` and the profile, so that a changed configuration never loads a stale file.

    ``per_profile=False`` for a model whose training does not depend on the profile (e.g. the
    feature network of the metrics): the file is ``<name>-<hash of settings>.pt``.
    """
    if not name or any(c in name for c in "/\\ "):
        raise ValueError(f"name must be a non-empty word without slashes or spaces, got {name!r}")
    if not per_profile:
        return config.cache_dir("checkpoints") / f"{name}-{_fingerprint(dict(settings or {}))}.pt"
    profile = config.check_profile(profile) if profile else config.profile()
    key = _fingerprint({"name": name, "profile": profile, **dict(settings or {})})
    return config.cache_dir("checkpoints") / f"{name}-{profile}-{key}.pt"


def _as_modules(models) -> dict:
    if isinstance(models, nn.Module):
        return {"model": models}
    if isinstance(models, Mapping) and models and all(isinstance(m, nn.Module) for m in models.values()):
        return dict(models)
    raise ValueError("models must be an nn.Module or a non-empty dict of nn.Modules, " f"got {type(models).__name__}")


def _is_saving_process() -> bool:
    """False on the ranks other than 0 of an initialised ``torch.distributed`` process group."""
    return distributed.is_main()


def _run_message(name: str, run: Mapping) -> str:
    when = f" on {run['date']}" if run.get("date") else ""
    how = f" under {run['profile']}" if run.get("profile") else ""
    threads = run.get("threads")
    how += f", {threads} CPU thread{'s' if threads != 1 else ''}" if threads else ""
    how += f", {run['processes']} processes" if (run.get("processes") or 1) > 1 else ""
    took = f"trained in {run['train_seconds']:.0f} s" if run.get("train_seconds") is not None else "training time unknown"
    if run["trained"]:
        return f"{name}: {took}{how}"
    return f"{name}: loaded from the cache ({run['path'].rsplit('/', 1)[-1]}); {took}{when}{how}"


_LAST_RUN: dict = {}


def last_run_info(name: str | None = None) -> dict:
    """What the last :func:`load_or_train` call (of ``name``, or of any name) did, for a chapter to show.

    A dict: ``trained`` (``True`` if this call trained, ``False`` if it loaded the checkpoint),
    ``train_seconds`` (wall-clock seconds of the training, whenever it happened), ``date`` (ISO
    date and time of the training, UTC), ``profile``, ``threads`` (PyTorch CPU threads during the
    training), ``device``, ``path`` (the checkpoint) and ``message`` (the line that was printed,
    e.g. ``"dcgan: loaded from the cache (dcgan-cpu-....pt); trained in 229 s on 2026-12-01 ...
    under cpu"``). The same dict is ``history.run`` on the returned :class:`History`. Checkpoints
    written before run records existed give ``date``, ``threads`` and ``device`` as ``None``.
    """
    if name is None:
        if "" not in _LAST_RUN:
            raise LookupError("no load_or_train call has run in this process yet")
        return dict(_LAST_RUN[""])
    if name not in _LAST_RUN:
        raise LookupError(f"load_or_train has not run {name!r} in this process (runs so far: {sorted(k for k in _LAST_RUN if k)})")
    return dict(_LAST_RUN[name])


def load_or_train(
    name: str,
    models,
    train: Callable[[], History],
    *,
    settings: Mapping | None = None,
    retrain: bool | None = None,
    per_profile: bool = True,
    verbose: bool = True,
) -> History:
    """Load ``models``' weights from the cache if this configuration was trained before, else
    call ``train()`` (which trains ``models`` in place and returns a :class:`History`) and save.

    ``models`` is one module or a dict of them (e.g. ``{"G": G, "D": D}``); ``settings`` is a
    JSON-serialisable dict of everything that changes the result (architecture, steps, learning
    rate): it is hashed into the file name (with the profile unless ``per_profile=False``, see
    :func:`checkpoint_path`). ``retrain=True`` (or the environment variable
    ``GENCOURSE_RETRAIN=1``) ignores an existing checkpoint. Files are written atomically, and
    only by the process of rank 0 when ``torch.distributed`` is initialised (every rank trains).

    The checkpoint records the run: wall-clock training time, date, profile, thread count and
    device. The returned history's ``run`` dict (also :func:`last_run_info`) says whether this call
    trained or loaded, and one line says it (``"dcgan: trained in 229 s ..."`` or ``"dcgan: loaded
    from the cache (...); trained in 229 s on 2026-12-01 ... under cpu"``) unless ``verbose=False``.
    """
    modules = _as_modules(models)
    path = checkpoint_path(name, settings, per_profile=per_profile)
    if retrain is None:
        retrain = os.environ.get("GENCOURSE_RETRAIN", "") not in ("", "0")
    if path.exists() and not retrain:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if "modules" not in state and "state" in state and len(modules) == 1:  # older single-module format
                info = dict(state.get("info") or {})
                state = {"modules": {next(iter(modules)): state["state"]},
                         "history": {"losses": {}, "seconds": info.get("train_seconds", 0.0), "info": info}}
            for key, module in modules.items():
                module.load_state_dict(state["modules"][key])
        except Exception as err:
            raise RuntimeError(
                f"could not load the checkpoint {str(path)!r} ({type(err).__name__}: {err}); "
                "delete that file to train again"
            ) from err
        history = History.from_dict(state["history"])
        run = {"train_seconds": history.seconds, "date": None, "profile": None, "threads": None, "device": None,
               **dict(state.get("run") or {}), "trained": False, "path": str(path)}
    else:
        history = train()
        if not isinstance(history, History):
            raise ValueError(f"train() must return a gencourse.train.History, got {type(history).__name__}")
        run = {"train_seconds": history.seconds, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "profile": config.profile(), "threads": torch.get_num_threads(), "device": str(config.device()),
               "processes": distributed.world_size()}
        if _is_saving_process():
            state = {"modules": {k: distributed.unwrap(m).state_dict() for k, m in modules.items()},
                     "history": history.to_dict(), "run": run}
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(state, tmp)
            os.replace(tmp, path)
        distributed.barrier()  # the other ranks go on once the checkpoint is written
        run = {**run, "trained": True, "path": str(path)}
    run["message"] = _run_message(name, run)
    history.run = run
    _LAST_RUN[name] = _LAST_RUN[""] = run
    if verbose and distributed.is_main():
        print(run["message"])
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
             *, beta: float = 1.0, generator: torch.Generator | None = None, loss_terms: Callable | None = None) -> dict:
    r"""One update of a (β-, conditional) VAE (chapter 04): minimise the negative ELBO.

    .. math:: \mathcal L = \frac1B \sum_b \big[-\log p_\theta(x_b \mid z_b) + \beta\,\mathrm{KL}(q_\phi(z\mid x_b)\,\|\,p(z))\big]

    ``model`` has ``loss_terms(x, y, beta=, generator=)`` (:class:`gencourse.models.autoencoder.VAE`);
    ``x`` ``(B, 1, 28, 28)`` in [0, 1], ``y`` ``(B,)`` labels for a conditional VAE. Returns floats
    per image in nats: ``loss``, ``rec`` (:math:`-\log p(x\mid z)`), ``kl`` and ``elbo`` (= -rec - kl).
    Under ``torchrun``, ``loss_terms=gencourse.distributed.wrap_method(model, "loss_terms")`` runs the
    loss through DistributedDataParallel (default: ``model.loss_terms``).
    """
    terms = (loss_terms or model.loss_terms)(x, y, beta=beta, generator=generator)
    opt.zero_grad(set_to_none=True)
    terms["loss"].backward()
    opt.step()
    rec, kl = terms["rec"].mean().item(), terms["kl"].mean().item()
    return {"loss": terms["loss"].item(), "rec": rec, "kl": kl, "elbo": -rec - kl}


# ----------------------------------------------------------------------------------------------
# one-step functions of a GAN (chapters 06-07)
# ----------------------------------------------------------------------------------------------

__all__ += ["d_step", "g_step"]


class _frozen:
    """Within the block, no gradient is accumulated for ``module``'s parameters (restored after)."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self):
        self.flags = [p.requires_grad for p in self.module.parameters()]
        self.module.requires_grad_(False)

    def __exit__(self, *exc):
        for p, flag in zip(self.module.parameters(), self.flags):
            p.requires_grad_(flag)


def d_step(G: nn.Module, D: nn.Module, opt_D: torch.optim.Optimizer, x_real: torch.Tensor, z: torch.Tensor,
           *, kind: str = "non_saturating", y_real: torch.Tensor | None = None, y_fake: torch.Tensor | None = None) -> dict:
    r"""One update of the discriminator (Goodfellow et al., 2014, Algorithm 1, inner loop; chapter 06).

    .. math:: \mathcal L_D = -\frac1B\sum_b \log\sigma\big(d(x_b)\big) - \frac1B\sum_b \log\Big(1 - \sigma\big(d(G(z_b))\big)\Big)

    for ``kind`` ``"minimax"`` / ``"non_saturating"`` (other kinds: :data:`gencourse.losses.GAN_LOSSES`).
    The fake batch is **detached**: this step moves :math:`D` only, and no gradient reaches ``G``'s
    parameters. ``D`` returns logits ``(B,)``; ``x_real`` ``(B, ...)``, ``z`` ``(B', latent_dim)``.

    Returns floats: ``loss_D``, ``D_real`` = mean :math:`\sigma(d(x))` and ``D_fake`` = mean
    :math:`\sigma(d(G(z)))` (the discriminator's average belief that each batch is real).

    A **conditional** GAN (chapter 09) passes labels: ``y_real`` ``(B,)``, the real images' labels,
    and ``y_fake`` ``(B',)``, the labels given to the generator; then the step computes
    :math:`D(x, y_\text{real})` and :math:`D(G(z, y_\text{fake}), y_\text{fake})`.
    """
    if (y_real is None) != (y_fake is None):
        raise ValueError("a conditional d_step needs both y_real (labels of x_real) and y_fake (labels given to G)")
    G = distributed.unwrap(G)  # under DDP only the network this step updates runs through its wrapper
    if y_fake is None:
        x_fake = G(z).detach()  # a constant for this step: no gradient flows into G
        d_real, d_fake = D(x_real), D(x_fake)
    else:
        x_fake = G(z, y_fake).detach()
        d_real, d_fake = D(x_real, y_real), D(x_fake, y_fake)
    loss_D = losses.discriminator_loss(d_real, d_fake, kind)
    opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    opt_D.step()
    return {"loss_D": loss_D.item(), "D_real": torch.sigmoid(d_real).mean().item(), "D_fake": torch.sigmoid(d_fake).mean().item()}


def g_step(G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, z: torch.Tensor, *, kind: str = "non_saturating",
           y: torch.Tensor | None = None) -> dict:
    r"""One update of the generator (Goodfellow et al., 2014, Algorithm 1, outer step; chapter 06).

    .. math:: \mathcal L_G^\text{NS} = -\frac1B\sum_b \log\sigma\big(d(G(z_b))\big) \quad\text{or}\quad
              \mathcal L_G^\text{minimax} = \frac1B\sum_b \log\Big(1 - \sigma\big(d(G(z_b))\big)\Big)

    (``kind``; see :data:`gencourse.losses.GAN_LOSSES`). The gradient flows **through** ``D`` into
    ``G`` (nothing is detached), but ``D``'s parameters are frozen during the step, so that no
    gradient is accumulated for them (saves the work; their ``requires_grad`` is restored).

    A conditional GAN (chapter 09) passes the labels ``y`` ``(B,)``: :math:`D(G(z, y), y)`.

    Returns floats: ``loss_G``.
    """
    D = distributed.unwrap(D)
    with _frozen(D):
        d_fake = D(G(z)) if y is None else D(G(z, y), y)
        loss_G = losses.generator_loss(d_fake, kind)
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
    return {"loss_G": loss_G.item()}


__all__ += ["r1_step"]


def r1_step(D: nn.Module, opt_D: torch.optim.Optimizer, x_real: torch.Tensor, *, gamma: float, every: int = 1,
            y_real: torch.Tensor | None = None) -> dict:
    r"""One update of the discriminator by the R1 penalty alone (Mescheder et al., 2018), the
    **lazy** regularisation of StyleGAN2 (Karras et al., 2020, section 3.1): called after every
    ``every``-th :func:`d_step`, it minimises

    .. math:: \text{every}\cdot\frac{\gamma}{2}\,R_1, \qquad
              R_1 = \frac1B\sum_b \big\|\nabla_x d(x_b)\big\|_2^2 \ \text{at the real images}

    (:func:`gencourse.losses.r1_penalty`), so that on average the discriminator sees
    :math:`\frac{\gamma}{2} R_1` per step at a fraction ``1 / every`` of the cost of the double
    backward pass. A conditional discriminator gets the real labels ``y_real``: :math:`d(x, y)`.

    Returns floats: ``r1`` (the penalty before the update).
    """
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    every = checks.positive_int(every, "every")
    penalty = losses.r1_penalty(D if y_real is None else (lambda x: D(x, y_real)), x_real)
    opt_D.zero_grad(set_to_none=True)
    (every * gamma / 2 * penalty).backward()
    opt_D.step()
    return {"r1": penalty.item()}


# ----------------------------------------------------------------------------------------------
# one-step functions of a Wasserstein GAN (chapter 08)
# ----------------------------------------------------------------------------------------------

__all__ += ["critic_step", "wgan_g_step"]


def critic_step(G: nn.Module, critic: nn.Module, opt_critic: torch.optim.Optimizer, x_real: torch.Tensor,
                z: torch.Tensor, *, lambda_gp: float = 10.0, clip: float | None = None,
                generator: torch.Generator | None = None) -> dict:
    r"""One update of a Wasserstein critic (chapter 08): WGAN-GP (Gulrajani et al., 2017,
    Algorithm 1, lines 4-9) or, with ``clip=c``, the original WGAN (Arjovsky et al., 2017).

    .. math:: \mathcal L = \frac1B\sum_b f(\tilde x_b) - \frac1B\sum_b f(x_b)
              + \lambda\,\frac1B\sum_b \big(\|\nabla_{\hat x} f(\hat x_b)\|_2 - 1\big)^2,
              \qquad \tilde x = G(z) \text{ (detached)}

    ``lambda_gp`` :math:`= \lambda` (0 switches the penalty off); with ``clip`` every weight of
    ``critic`` is clamped to :math:`[-c, c]` after the step (:func:`gencourse.losses.clip_weights_`).
    ``critic`` returns scores ``(B,)``; the interpolation weights of the penalty are drawn with
    ``generator``. Returns floats: ``loss_critic``, ``w1`` (the estimate
    :math:`\frac1B\sum f(x) - \frac1B\sum f(\tilde x)` before the step) and ``gp`` (the penalty,
    without :math:`\lambda`; 0 when it is off).
    """
    x_fake = distributed.unwrap(G)(z).detach()  # a constant for this step: no gradient flows into G
    d_real, d_fake = critic(x_real), critic(x_fake)
    loss = losses.wgan_critic_loss(d_real, d_fake)
    gp = losses.gradient_penalty(critic, x_real, x_fake, generator=generator) if lambda_gp else None
    if gp is not None:
        loss = loss + lambda_gp * gp
    opt_critic.zero_grad(set_to_none=True)
    loss.backward()
    opt_critic.step()
    if clip is not None:
        losses.clip_weights_(critic, clip)
    w1 = (d_real.mean() - d_fake.mean()).item()
    return {"loss_critic": loss.item(), "w1": w1, "gp": gp.item() if gp is not None else 0.0}


def wgan_g_step(G: nn.Module, critic: nn.Module, opt_G: torch.optim.Optimizer, z: torch.Tensor) -> dict:
    r"""One update of a WGAN generator (chapter 08): minimise :math:`-\frac1B\sum_b f(G(z_b))`
    (:func:`gencourse.losses.wgan_generator_loss`). The gradient flows through the critic, whose
    parameters are frozen during the step (as in :func:`g_step`). Returns floats: ``loss_G``."""
    critic = distributed.unwrap(critic)
    with _frozen(critic):
        loss_G = losses.wgan_generator_loss(critic(G(z)))
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
    return {"loss_G": loss_G.item()}


# ----------------------------------------------------------------------------------------------
# independent runs side by side
# ----------------------------------------------------------------------------------------------

__all__ += ["run_in_processes", "run_in_background"]


def run_in_processes(jobs: Sequence[tuple[Callable, tuple, Mapping]], workers: int | None = None) -> list:
    r"""Run independent jobs ``(function, args, kwargs)``, up to ``workers`` at a time (default
    :func:`gencourse.config.workers`), each in a fresh process (``spawn``), and return their results
    in order. With one worker (or one job) they run here, one after the other.

    For runs that each use one CPU thread (the recipes of the course), two processes on two cores
    take about half the time of one after the other, where two threads in one process gain little.
    ``function`` must be importable (a module-level function of a package, not a notebook cell),
    arguments and results picklable; the children inherit the environment (profile, cache folder),
    so a recipe trained in a child is cached where the parent will load it.
    """
    jobs = list(jobs)
    workers = config.workers() if workers is None else checks.positive_int(workers, "workers")
    for job in jobs:
        if not (isinstance(job, tuple) and len(job) == 3 and callable(job[0])):
            raise ValueError(f"each job must be a tuple (function, args, kwargs), got {job!r}")
    if workers == 1 or len(jobs) <= 1:
        return [f(*args, **kwargs) for f, args, kwargs in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(f, *args, **kwargs) for f, args, kwargs in jobs]
        return [future.result() for future in futures]


def run_in_background(function: Callable, *args, **kwargs):
    r"""Start ``function(*args, **kwargs)`` in a fresh process (``spawn``) and return at once a
    :class:`concurrent.futures.Future`; ``future.result()`` waits for it and returns its result
    (or raises its exception). With one worker (:func:`gencourse.config.workers`: under ``smoke``
    and ``gpu``) it runs here and now, and the future is already done.

    A chapter uses it to train its large model on the second core while its other cells run on the
    first: both on one thread each, the chapter takes about the longer of the two instead of their
    sum. Same requirements as :func:`run_in_processes` (an importable function, picklable
    arguments and result, the environment inherited).
    """
    from concurrent.futures import Future

    if not callable(function):
        raise ValueError(f"function must be callable, got {type(function).__name__}")
    if config.workers() == 1:
        future: Future = Future()
        try:
            future.set_result(function(*args, **kwargs))
        except Exception as err:  # handed to the caller through the future
            future.set_exception(err)
        return future
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    future = pool.submit(function, *args, **kwargs)
    pool.shutdown(wait=False)  # the job runs to its end; the worker exits after it
    return future


# ----------------------------------------------------------------------------------------------
# one-step functions of ACGAN and InfoGAN (chapter 09)
# ----------------------------------------------------------------------------------------------

__all__ += ["acgan_d_step", "acgan_g_step", "infogan_d_step", "infogan_g_step"]


def acgan_d_step(G: nn.Module, D: nn.Module, opt_D: torch.optim.Optimizer, x_real: torch.Tensor, y_real: torch.Tensor,
                 z: torch.Tensor, y_fake: torch.Tensor, *, lambda_cls: float = 1.0) -> dict:
    r"""One update of ACGAN's discriminator (Odena et al., 2017): minimise
    :math:`-(L_S + \lambda L_C)` (:func:`gencourse.losses.acgan_d_loss`) on a real batch with its labels
    ``y_real`` and a detached fake batch :math:`G(z, y_\text{fake})` with the labels **given to G**.
    ``D`` returns ``(source logits (B,), class logits (B, K))``. Returns floats: ``loss_D``,
    ``D_real``, ``D_fake`` (mean :math:`\sigma` of the source logits), ``acc_real`` (the class
    head's accuracy on real images)."""
    x_fake = distributed.unwrap(G)(z, y_fake).detach()
    src_real, cls_real = D(x_real)
    src_fake, cls_fake = D(x_fake)
    loss = losses.acgan_d_loss(src_real, cls_real, y_real, src_fake, cls_fake, y_fake, lambda_cls)
    opt_D.zero_grad(set_to_none=True)
    loss.backward()
    opt_D.step()
    return {"loss_D": loss.item(), "D_real": torch.sigmoid(src_real).mean().item(), "D_fake": torch.sigmoid(src_fake).mean().item(),
            "acc_real": (cls_real.argmax(1) == y_real).float().mean().item()}


def acgan_g_step(G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, z: torch.Tensor, y: torch.Tensor,
                 *, lambda_cls: float = 1.0) -> dict:
    r"""One update of ACGAN's generator: minimise :func:`gencourse.losses.acgan_g_loss` of
    :math:`G(z, y)` with the labels ``y`` it was given; ``D``'s parameters frozen. Returns floats:
    ``loss_G`` and ``acc_fake`` (the class head's accuracy on the fakes)."""
    D = distributed.unwrap(D)
    with _frozen(D):
        src, cls = D(G(z, y))
        loss = losses.acgan_g_loss(src, cls, y, lambda_cls)
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
        opt_G.step()
    return {"loss_G": loss.item(), "acc_fake": (cls.argmax(1) == y).float().mean().item()}


def infogan_d_step(G: nn.Module, D: nn.Module, opt_D: torch.optim.Optimizer, x_real: torch.Tensor, z: torch.Tensor,
                   c_cat: torch.Tensor, c_cont: torch.Tensor, *, lambda_info: float = 1.0, lambda_cont: float = 1.0) -> dict:
    r"""One update of InfoGAN's discriminator and recognition network (Chen et al., 2016): minimise

    .. math:: \mathcal L_D + \lambda\,\mathcal L_\text{info}\big(Q(\cdot \mid \tilde x), c\big), \qquad \tilde x = G(z, c) \text{ (detached)},

    where :math:`\mathcal L_D` is :func:`gencourse.losses.d_loss_bce` and
    :math:`\mathcal L_\text{info}` (:func:`gencourse.losses.infogan_info_loss`) is computed on the
    **generated** batch only, whose codes are known. ``D`` returns ``(d, cat_logits, mu, logvar)``
    (:class:`gencourse.models.conditional.InfoGANDiscriminator`). Returns floats: ``loss_D``,
    ``info`` (:math:`\mathcal L_\text{info}`), ``D_real``, ``D_fake``."""
    x_fake = distributed.unwrap(G)(z, c_cat, c_cont).detach()
    d_real = D(x_real)[0]
    d_fake, cat_logits, mu, logvar = D(x_fake)
    info = losses.infogan_info_loss(cat_logits, c_cat, mu, logvar, c_cont, lambda_cont)
    loss = losses.d_loss_bce(d_real, d_fake) + lambda_info * info
    opt_D.zero_grad(set_to_none=True)
    loss.backward()
    opt_D.step()
    return {"loss_D": loss.item(), "info": info.item(), "D_real": torch.sigmoid(d_real).mean().item(),
            "D_fake": torch.sigmoid(d_fake).mean().item()}


def infogan_g_step(G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, z: torch.Tensor, c_cat: torch.Tensor,
                   c_cont: torch.Tensor, *, lambda_info: float = 1.0, lambda_cont: float = 1.0) -> dict:
    r"""One update of InfoGAN's generator: minimise the non-saturating loss plus
    :math:`\lambda\,\mathcal L_\text{info}` of :math:`G(z, c)` (so that :math:`G` makes its codes
    recoverable: it **maximises** the mutual-information bound); ``D`` and ``Q`` frozen. Returns
    floats: ``loss_G``, ``info``."""
    D = distributed.unwrap(D)
    with _frozen(D):
        d_fake, cat_logits, mu, logvar = D(G(z, c_cat, c_cont))
        info = losses.infogan_info_loss(cat_logits, c_cat, mu, logvar, c_cont, lambda_cont)
        loss = losses.g_loss_non_saturating(d_fake) + lambda_info * info
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
        opt_G.step()
    return {"loss_G": loss.item(), "info": info.item()}


# ----------------------------------------------------------------------------------------------
# one training step of a diffusion model (chapter 12)
# ----------------------------------------------------------------------------------------------

__all__ += ["ddpm_train_step", "flow_train_step"]


def _update(model: nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor, lr: float | None, ema: EMA | None) -> dict:
    """The end of a diffusion or flow step: backward, the learning rate set to ``lr`` (when given),
    ``opt.step()``, ``ema.update(model)`` (when given). Returns ``{"loss": float}``."""
    opt.zero_grad()
    loss.backward()
    if lr is not None:
        for group in opt.param_groups:
            group["lr"] = lr
    opt.step()
    if ema is not None:
        ema.update(model)
    return {"loss": loss.item()}


def ddpm_train_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x0: torch.Tensor,
    alpha_bar: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    p_uncond: float = 0.0,
    null_label: int | None = None,
    lr: float | None = None,
    ema: EMA | None = None,
    generator: torch.Generator | None = None,
    prediction: str = "eps",
    time_dist: str = "uniform",
) -> dict:
    r"""One update of an :math:`\varepsilon`-network (Ho et al., 2020, Algorithm 1; chapter 12): the
    training step, not to be confused with the sampling step :func:`gencourse.diffusion.ddpm_sample_step`.

    .. math:: \mathcal L = \frac1B \sum_b \big\|\varepsilon_b - \varepsilon_\theta\big(\sqrt{\bar\alpha_{t_b}}\,x_{0,b}
              + \sqrt{1 - \bar\alpha_{t_b}}\,\varepsilon_b,\ t_b,\ y_b\big)\big\|^2 / (C H W),
              \qquad t_b \sim \mathcal U\{1..T\},\ \varepsilon_b \sim \mathcal N(0, I)

    In this order, with ``generator``: for a class-conditional model (``y`` ``(B,)`` and
    ``null_label`` given) each label is replaced by :math:`\varnothing` with probability ``p_uncond``
    (:func:`gencourse.diffusion.drop_labels`, classifier-free guidance, Ho & Salimans, 2021); then
    :func:`gencourse.diffusion.ddpm_loss` draws :math:`t` and :math:`\varepsilon`. Backward, the
    learning rate set to ``lr`` (when given, e.g. from :func:`lr_cosine`), ``opt.step()``, and
    ``ema.update(model)`` when an :class:`EMA` is given. ``x0`` ``(B, C, H, W)``, ``alpha_bar``
    ``(T + 1,)`` on ``x0``'s device. ``prediction="v"`` trains a v-network instead
    (:func:`gencourse.diffusion.ddpm_loss`); ``time_dist="logit_normal"`` draws the steps from
    :func:`gencourse.diffusion.sample_t`'s logit-normal distribution. Returns ``{"loss": float}``.
    """
    if y is not None and null_label is not None:
        y = diffusion.drop_labels(y, p_uncond, null_label, generator=generator)
    loss = diffusion.ddpm_loss(model, x0, alpha_bar, y=y, generator=generator, prediction=prediction,
                               time_dist=time_dist)
    return _update(model, opt, loss, lr, ema)


def flow_train_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x1: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    p_uncond: float = 0.0,
    null_label: int | None = None,
    coupling: str = "independent",
    time_dist: str = "uniform",
    lr: float | None = None,
    ema: EMA | None = None,
    generator: torch.Generator | None = None,
) -> dict:
    r"""One update of a velocity network by conditional flow matching (chapter 13):

    .. math:: \mathcal L = \frac1B \sum_b \big\|v_\theta\big((1 - t_b)\,x_{0,b} + t_b\,x_{1,b},\ t_b,\ y_b\big)
              - (x_{1,b} - x_{0,b})\big\|^2 / D, \qquad t_b \sim \pi,\ x_{0,b} \sim \mathcal N(0, I)

    In this order, with ``generator``: the labels dropped to :math:`\varnothing` with probability
    ``p_uncond`` (as :func:`ddpm_train_step`), :math:`t` from the distribution ``time_dist``
    (:func:`gencourse.flow.sample_time`: ``"uniform"`` or ``"logit_normal"``), then :math:`x_0`; with
    ``coupling="ot"`` the noise batch is reordered by :func:`gencourse.flow.ot_pairs` (minibatch OT).
    Then :func:`gencourse.flow.cfm_loss`, backward, ``lr``, ``opt.step()`` and ``ema.update``.
    ``x1`` ``(B, ...)`` data. Returns ``{"loss": float}``.
    """
    from . import flow

    checks.one_of(coupling, ("independent", "ot"), "coupling")
    if y is not None and null_label is not None:
        y = diffusion.drop_labels(y, p_uncond, null_label, generator=generator)
    t = flow.sample_time(x1.shape[0], generator, x1.device, dist=time_dist)
    x0 = distributed.randn(x1.shape, generator=generator, device=generator.device if generator is not None else None).to(x1.device)
    if coupling == "ot":
        x0 = flow.ot_pairs(x0, x1)
    loss = flow.cfm_loss(model, x1, y=y, x0=x0, t=t)
    return _update(model, opt, loss, lr, ema)


# ----------------------------------------------------------------------------------------------
# one-step functions of image-to-image translation (chapter 10)
# ----------------------------------------------------------------------------------------------

__all__ += ["pix2pix_d_step", "pix2pix_g_step", "cyclegan_g_step", "cyclegan_d_step"]


def pix2pix_d_step(G: nn.Module, D: nn.Module, opt_D: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   *, kind: str = "non_saturating") -> dict:
    r"""One update of pix2pix's conditional discriminator (Isola et al., 2017, eq. 1): it sees the
    **pair** (source, target), real :math:`(x, y)` against generated :math:`(x, G(x))`,
    concatenated along the channels; the generated image is detached.

    .. math:: \mathcal L_D = \mathcal L^\text{D}_\text{GAN}\big(D([x, y]),\ D([x, G(x)])\big)

    (``kind``: :data:`gencourse.losses.GAN_LOSSES`; means over patches and batch). The paper halves
    this loss to slow D down; Adam's step size is invariant to that scale, so it is left out.
    ``x`` ``(B, C_x, H, W)`` source, ``y`` ``(B, C_y, H, W)`` target. Returns floats ``loss_D``,
    ``D_real``, ``D_fake`` (mean :math:`\sigma` of the patch logits)."""
    with torch.no_grad():
        fake = distributed.unwrap(G)(x)
    d_real, d_fake = D(torch.cat([x, y], 1)), D(torch.cat([x, fake], 1))
    loss = losses.discriminator_loss(d_real, d_fake, kind)
    opt_D.zero_grad(set_to_none=True)
    loss.backward()
    opt_D.step()
    return {"loss_D": loss.item(), "D_real": torch.sigmoid(d_real).mean().item(), "D_fake": torch.sigmoid(d_fake).mean().item()}


def pix2pix_g_step(G: nn.Module, D: nn.Module | None, opt_G: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   *, lambda_l1: float = 100.0, kind: str = "non_saturating") -> dict:
    r"""One update of pix2pix's generator: minimise :func:`gencourse.losses.pix2pix_g_loss`,
    :math:`\mathcal L_\text{GAN}(D([x, G(x)])) + \lambda\,\|y - G(x)\|_1` (``D`` frozen). With
    ``D=None`` the step is L1 regression alone (the paper's "L1" ablation); ``lambda_l1=0`` the GAN
    alone ("cGAN"). Returns floats ``loss_G`` and ``l1`` (the L1 term, unweighted)."""
    fake = G(x)
    l1 = losses.l1_loss(fake, y)
    if D is None:
        loss = lambda_l1 * l1 if lambda_l1 else l1
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
        opt_G.step()
        return {"loss_G": loss.item(), "l1": l1.item()}
    D = distributed.unwrap(D)
    with _frozen(D):
        loss = losses.pix2pix_g_loss(D(torch.cat([x, fake], 1)), fake, y, lambda_l1, kind)
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
        opt_G.step()
    return {"loss_G": loss.item(), "l1": l1.item()}


def cyclegan_g_step(G_AB: nn.Module, G_BA: nn.Module, D_A: nn.Module, D_B: nn.Module, opt_G: torch.optim.Optimizer,
                    a: torch.Tensor, b: torch.Tensor, *, lambda_cycle: float = 10.0, lambda_identity: float = 5.0) -> dict:
    r"""One update of CycleGAN's two generators (Zhu et al., 2017, eq. 3, least-squares GAN as in
    their section 4), with ``D_A`` and ``D_B`` frozen:

    .. math:: \mathcal L = \overline{(D_B(G_{AB}(a)) - 1)^2} + \overline{(D_A(G_{BA}(b)) - 1)^2}
              + \lambda_\text{cyc}\,\mathcal L_\text{cyc} + \lambda_\text{id}\,\mathcal L_\text{id}

    with :func:`gencourse.losses.cycle_loss` and :func:`gencourse.losses.identity_loss`
    (:math:`\lambda_\text{id} = 0.5\,\lambda_\text{cyc}` in the authors' code; 0 switches it off,
    as does ``lambda_cycle=0`` for the cycle). ``opt_G`` holds both generators' parameters.
    Returns floats (``gan``, ``cycle``, ``identity``, ``loss_G``) and, under ``"fakes"``, the
    detached translations ``(G_BA(b), G_AB(a))`` for :func:`cyclegan_d_step`."""
    D_A, D_B = distributed.unwrap(D_A), distributed.unwrap(D_B)
    with _frozen(D_A), _frozen(D_B):
        fake_b, fake_a = G_AB(a), G_BA(b)
        d_b, d_a = D_B(fake_b), D_A(fake_a)
        gan = ((d_b - 1) ** 2).mean() + ((d_a - 1) ** 2).mean()
        cyc = losses.l1_loss(G_BA(fake_b), a) + losses.l1_loss(G_AB(fake_a), b) if lambda_cycle else torch.zeros(())
        idt = losses.identity_loss(G_AB, G_BA, a, b) if lambda_identity else torch.zeros(())
        loss = gan + lambda_cycle * cyc + lambda_identity * idt
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
        opt_G.step()
    return {"loss_G": loss.item(), "gan": gan.item(), "cycle": cyc.item(), "identity": idt.item(),
            "fakes": (fake_a.detach(), fake_b.detach())}


def cyclegan_d_step(D_A: nn.Module, D_B: nn.Module, opt_D: torch.optim.Optimizer, a: torch.Tensor, b: torch.Tensor,
                    fake_a: torch.Tensor, fake_b: torch.Tensor) -> dict:
    r"""One update of CycleGAN's two discriminators (least squares, :func:`gencourse.losses.d_loss_least_squares`):
    ``D_A`` tells real *A* images ``a`` from translations ``fake_a`` :math:`= G_{BA}(b)`, ``D_B``
    real ``b`` from ``fake_b`` :math:`= G_{AB}(a)` (detached: from :func:`cyclegan_g_step`'s
    ``"fakes"``). The authors also replay translations from a pool of the last 50; this step uses the
    current batch only. Returns floats ``loss_D``, ``D_A_real``, ``D_A_fake``, ``D_B_real``, ``D_B_fake``
    (mean raw outputs: 1 means "real", 0 "fake")."""
    ra, fa, rb, fb = D_A(a), D_A(fake_a.detach()), D_B(b), D_B(fake_b.detach())
    loss = losses.d_loss_least_squares(ra, fa) + losses.d_loss_least_squares(rb, fb)
    opt_D.zero_grad(set_to_none=True)
    loss.backward()
    opt_D.step()
    return {"loss_D": loss.item(), "D_A_real": ra.mean().item(), "D_A_fake": fa.mean().item(),
            "D_B_real": rb.mean().item(), "D_B_fake": fb.mean().item()}


if __name__ == "__main__":  # python -m gencourse.train RECIPE ...: see gencourse.cli
    from gencourse.cli import main as _main

    try:
        _code = _main()
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. --list piped into `head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        _code = 1
    sys.exit(_code)
