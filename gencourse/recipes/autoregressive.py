r"""Chapter 05's autoregressive models of binarised MNIST as recipes: settings (hashed into the
checkpoint's name), build, train, load or train.

==============  ================================================================  ==================
``model``       network (:mod:`gencourse.models.autoregressive`)                  conditional
==============  ================================================================  ==================
``"made"``      :class:`~gencourse.models.autoregressive.MADE`, one hidden layer   no
``"pixelcnn"``  :class:`~gencourse.models.autoregressive.PixelCNN`                 no
``"gated"``     :class:`~gencourse.models.autoregressive.GatedPixelCNN`            no
``"cpixelcnn"`` the gated PixelCNN with a class bias in every gate                 the digit
==============  ================================================================  ==================

Data: MNIST binarised at a fixed threshold (:func:`binarised_mnist`, a pixel is on when its grey
value is at least 0.5), the convention of most autoregressive-model papers on MNIST since a fixed
binarisation makes the likelihood of a discrete image exact; chapter 05 evaluates chapter 04's VAE
on the same binary images. Every model is trained by maximum likelihood: the loss is the exact
negative log-likelihood in nats per image, averaged over the batch.
"""

from __future__ import annotations

import time

import torch

from .. import checks, config, data, distributed, train
from ..models import autoregressive as ar

__all__ = ["MODELS", "autoregressive_settings", "build_autoregressive", "train_autoregressive", "autoregressive_mnist",
           "binarised_mnist", "heldout_nll", "autoregressive_models"]

MODELS = ("made", "pixelcnn", "gated", "cpixelcnn")


def binarised_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST of the active profile as binary levels ``(N, 1, 28, 28)`` int64 (a pixel is 1 when its
    grey value is at least 0.5) and labels ``(N,)``."""
    x, y = data.mnist_tensors(split, verbose=False)
    return ar.quantise(x, 2), y


def autoregressive_settings(model: str = "pixelcnn", **overrides) -> dict:
    r"""The settings of one of chapter 05's models under the active profile.

    ====================  =================================  =========================================
    setting               value                              why
    ====================  =================================  =========================================
    ``model``             one of :data:`MODELS`
    ``hidden``            MADE: 500                          one hidden layer (Germain et al.: 500)
    ``h``                 PixelCNN: 16; gated: 16            :math:`2h` channels between blocks
    ``n_blocks``          PixelCNN: 4 residual blocks;
                          gated: 4 layers
    ``kernel``            gated: 5 (after a 7 x 7 first      each layer extends the field two rows up;
                          layer)                             conditional model, about 250 CPU s, one
                                                             seed, held-out -log p(x | y): 69.0 nats
                                                             for five 3 x 3 layers, 67.1 for 5 x 5
    ``class_map``         conditional gated model: 7         a learned 7 x 7 picture per digit in every
                                                             gate (location-dependent conditioning);
                                                             about 230 CPU s, one seed: 61.3 nats, and
                                                             the classifier reads the asked digit in
                                                             98 % of 50 samples (four 5 x 5 layers),
                                                             against 67.1 and 32 % without the map
    ``batch_size``        32
    ``lr``                Adam, cosine decay to 0: 1e-3;     the conditional gated model after 600
                          gated models 3e-3                  steps: -log p(x | y) 72.6 nats and the
                                                             label read back by likelihood in 66 % of
                                                             held-out digits, against 78.6 and 48 %
                                                             at 1e-3 (one seed)
    ``steps``             cpu: MADE 2,000, the PixelCNNs     about a minute (MADE) and four minutes
                          1,000; gpu 20,000; smoke 4         (a PixelCNN) of one CPU core; MADE's
                                                             held-out NLL was 111.0 after 3,000 steps
                                                             (it overfits 4,000 images)
    ====================  =================================  =========================================
    """
    checks.one_of(model, MODELS, "model")
    gated = model in ("gated", "cpixelcnn")
    settings = {"model": model, "hidden": 500, "h": 16, "n_blocks": 4, "kernel": 5 if gated else None,
                "class_map": 7 if model == "cpixelcnn" else None,
                "batch_size": 32, "lr": 3e-3 if gated else 1e-3, "seed": 0,
                "steps": config.budget(smoke=4, cpu=2_000, gpu=20_000) if model == "made" else config.budget(smoke=4, cpu=1_000, gpu=20_000)}
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown autoregressive settings {sorted(unknown)}; known: {sorted(settings)}")
    settings.update(overrides)
    checks.positive_int(settings["steps"], "steps")
    return settings


def build_autoregressive(settings: dict) -> torch.nn.Module:
    """The (untrained) network that ``settings`` describe, weights drawn from ``settings["seed"]``."""
    s = settings
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s["seed"])
        if s["model"] == "made":
            net = ar.MADE(hidden=(s["hidden"],))
        elif s["model"] == "pixelcnn":
            net = ar.PixelCNN(h=s["h"], n_blocks=s["n_blocks"])
        else:
            conditional = s["model"] == "cpixelcnn"
            net = ar.GatedPixelCNN(h=s["h"], n_layers=s["n_blocks"], kernel_size=s["kernel"],
                                   n_classes=10 if conditional else None, class_map=s["class_map"] if conditional else None)
    return net.to(config.device())


def train_autoregressive(net: torch.nn.Module, settings: dict, progress: bool = True) -> train.History:
    r"""Maximum likelihood: ``settings["steps"]`` Adam steps on batches drawn with replacement from
    the binarised training images, minimising :math:`-\frac1B\sum_b \log p(x_b)` (nats per image,
    :func:`gencourse.models.autoregressive.log_likelihood`). Returns the history (``nll`` per step);
    ``info`` holds ``cpu_seconds``."""
    s = settings
    device = next(net.parameters()).device
    x, y = binarised_mnist("train")
    x, y = x.to(device), y.to(device)
    g = torch.Generator().manual_seed(s["seed"] + 1)
    opt = torch.optim.Adam(net.parameters(), lr=s["lr"])
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: train.lr_cosine(i, s["steps"]))
    conditional = s["model"] == "cpixelcnn"
    b = distributed.local_batch(s["batch_size"])  # this rank's share of the global batch
    log_likelihood = distributed.wrap_call(net, ar.log_likelihood)  # through DistributedDataParallel under torchrun

    def step(_):
        idx = distributed.randint(0, len(x), (b,), generator=g).to(device)
        nll = -log_likelihood(x[idx], y[idx] if conditional else None).mean()
        opt.zero_grad(set_to_none=True)
        nll.backward()
        opt.step()
        schedule.step()
        return {"nll": nll.item()}

    net.train()
    with config.threads(1):
        start = time.process_time()
        history = train.fit(step, steps=s["steps"], desc=s["model"], progress=progress)
        cpu = time.process_time() - start
    net.eval()
    history.info.update({"cpu_seconds": cpu})
    return history


def autoregressive_mnist(model: str = "pixelcnn", *, retrain: bool | None = None, progress: bool = True, **overrides):
    """One of chapter 05's models, loaded from the cache or trained (:func:`train_autoregressive`) and
    cached under ``model``. Returns ``(net, history)``, the network in ``eval()`` mode."""
    settings = autoregressive_settings(model, **overrides)
    net = build_autoregressive(settings)
    with config.threads(1):
        history = train.load_or_train(model, net, lambda: train_autoregressive(net, settings, progress), settings=settings, retrain=retrain)
    return net.eval(), history


@torch.no_grad()
def heldout_nll(net: torch.nn.Module, *, n: int | None = None, conditional: bool = False) -> float:
    """The exact negative log-likelihood of the held-out binarised images, nats per image (mean)."""
    x, y = binarised_mnist("test")
    if n is not None:
        x, y = x[:n], y[:n]
    return -ar.log_likelihood(net, x, y if conditional else None).mean().item()


def _train_in_child(model: str, retrain: bool | None, overrides: dict) -> float:
    return autoregressive_mnist(model, retrain=retrain, progress=False, **overrides)[1].seconds


def _vae_in_child(retrain: bool | None) -> float:
    from . import vae

    with config.threads(1):  # a worker process: one thread, as the other models
        return vae.vae_mnist("vae_binary", retrain=retrain, progress=False, data="mnist-train-binary")[1].seconds


def autoregressive_models(jobs=MODELS, *, with_vae: bool = False, workers: int | None = None, retrain: bool | None = None) -> dict:
    r"""Several of chapter 05's models at once (``jobs``: names in :data:`MODELS`), and with
    ``with_vae`` chapter 04's VAE trained on the same binarised images (key ``"vae"``). Those not in
    the cache train side by side, each in its own process on one thread
    (:func:`gencourse.train.run_in_processes`), then all are loaded. Returns ``{name: (model, history)}``."""
    from . import vae

    names = [checks.one_of(m, MODELS, "model") for m in jobs]
    todo = [(_train_in_child, (m, retrain, {}), {}) for m in names
            if retrain or not train.checkpoint_path(m, autoregressive_settings(m)).exists()]
    vae_settings = vae.vae_settings("vae_binary", data="mnist-train-binary")
    if with_vae and (retrain or not train.checkpoint_path("vae_binary", vae_settings).exists()):
        todo.append((_vae_in_child, (retrain,), {}))
    parallel = len(todo) > 1 and (workers or config.workers()) > 1
    if parallel:
        train.run_in_processes(todo, workers)
    out = {m: autoregressive_mnist(m, progress=not parallel, retrain=False if parallel else retrain) for m in names}
    if with_vae:
        out["vae"] = vae.vae_mnist("vae_binary", progress=not parallel, retrain=False if parallel else retrain, data="mnist-train-binary")
    if parallel:
        for job in todo:
            key = job[1][0] if job[0] is _train_in_child else "vae"
            out[key][1].run.update(trained=True, worker_process=True)
    return out
