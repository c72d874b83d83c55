r"""Chapter 04's VAEs as a recipe: settings (hashed into the checkpoint's name), build, train, load or train.

:func:`vae_mnist` trains (or loads) one of the chapter's models, cached with
:func:`gencourse.train.load_or_train` under the names ``"vae"``, ``"vae2d"``, ``"cvae"`` (and
``"vae_beta<β>"`` for the β sweep), so that chapter 14's scoreboard reloads the same checkpoints
(entries ``"VAE"`` and ``"CVAE"``). The network is :class:`gencourse.models.autoencoder.VAE`.
"""

from __future__ import annotations

import torch

from .. import config, data, distributed, train
from ..models import autoencoder

__all__ = ["VAE_STEPS", "PRIOR_COMPONENTS", "vae_settings", "build_vae", "train_vae", "vae_mnist", "fit_prior"]


#: Training steps of the chapter's VAEs per profile (batches of ``batch_size`` images).
VAE_STEPS = {"smoke": 10, "cpu": 2_500, "gpu": 20_000}

#: Components of the Gaussian mixture fitted to the codes after training (:func:`fit_prior`): ten for
#: the VAE's codes of all digits, one Gaussian per class for the conditional VAE. Chosen by
#: ``benchmarks/vae_prior.py`` (FID and held-out NLL over 3 seeds).
PRIOR_COMPONENTS = {"vae": 10, "cvae": 1}

_PRESETS = {
    "vae": {},
    "vae2d": {"latent_dim": 2},
    "cvae": {"n_classes": 10},
}


def vae_settings(name: str = "vae", **overrides) -> dict:
    """The settings of one of chapter 04's VAEs: a JSON-serialisable dict, hashed into the
    checkpoint's file name by :func:`gencourse.train.load_or_train`.

    ==============  ================================================================  ===========
    key             meaning                                                           default
    ==============  ================================================================  ===========
    ``latent_dim``  :math:`d`, size of :math:`z`                                      16 (2 for ``"vae2d"``)
    ``n_classes``   0: unconditional; 10: conditional VAE                             0 (10 for ``"cvae"``)
    ``enc_widths``  channels of the encoder's two stride-2 convolutions               [16, 32]
    ``dec_widths``  channels entering the decoder's two transposed convolutions       [32, 16]
    ``hidden``      width of the fully connected layer on each side                   256
    ``beta``        weight of the KL term (β-VAE; not the diffusion β)                1.0
    ``steps``       Adam steps, :data:`VAE_STEPS` for the active profile              2,500 (cpu)
    ``batch_size``  images per step                                                   128
    ``lr``          Adam's learning rate, cosine-decayed to 0 over ``steps``          2e-3
    ``seed``        seeds the initial weights and the order of the batches            0
    ``data``        ``"mnist-train-01"``: ``gencourse.data.mnist("train")``, grey      ``"mnist-train-01"``
                    values; ``"mnist-train-binary"``: the same binarised at 0.5
                    (chapter 05's exact likelihoods are of binary images)
    ==============  ================================================================  ===========

    ``name`` picks a preset (``"vae"``, ``"vae2d"``, ``"cvae"``, or any other name for the plain
    defaults, e.g. ``"vae_beta4"`` with ``beta=4.0``); ``overrides`` replace single keys.
    """
    settings = {
        "latent_dim": 16, "n_classes": 0, "enc_widths": [16, 32], "dec_widths": [32, 16], "hidden": 256,
        "beta": 1.0, "steps": config.budget(**VAE_STEPS), "batch_size": 128, "lr": 2e-3, "seed": 0,
        "data": "mnist-train-01",
    }
    settings.update(_PRESETS.get(name, {}))
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown VAE settings {sorted(unknown)}; known: {sorted(settings)}")
    settings.update(overrides)
    for key in ("enc_widths", "dec_widths"):
        settings[key] = list(settings[key])
    return settings


def build_vae(settings: dict) -> autoencoder.VAE:
    """The (untrained) model that ``settings`` describe, its weights initialised from ``settings["seed"]``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings["seed"])
        model = autoencoder.VAE(
            latent_dim=settings["latent_dim"], n_classes=settings["n_classes"], enc_widths=tuple(settings["enc_widths"]),
            dec_widths=tuple(settings["dec_widths"]), hidden=settings["hidden"],
        )
    return model.to(config.device())


def _shuffled_batches(n: int, batch_size: int, generator: torch.Generator):
    """Indices of mini-batches, a new random order every epoch (the last partial batch dropped)."""
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i : i + batch_size]


def train_vae(model: autoencoder.VAE, settings: dict, progress: bool = True) -> train.History:
    r"""Train ``model`` in place on the MNIST training images of the active profile: ``settings["steps"]``
    steps of :func:`gencourse.train.vae_step` (Adam, learning rate cosine-decayed to 0), minimising
    :math:`\frac1B\sum_b[-\log p_\theta(x_b\mid z_b) + \beta\,\mathrm{KL}_b]`. Returns the :class:`~gencourse.train.History`
    (``loss``, ``rec``, ``kl``, ``elbo`` per step, nats per image)."""
    x, y = _training_images(settings["data"])
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    steps, conditional = settings["steps"], settings["n_classes"] > 0
    generator = torch.Generator().manual_seed(settings["seed"])
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: train.lr_cosine(s, steps))
    batches = _shuffled_batches(len(x), settings["batch_size"], generator)
    distributed.local_batch(settings["batch_size"])  # a clear error when the processes do not divide the batch
    loss_terms = distributed.wrap_method(model, "loss_terms")  # through DistributedDataParallel under torchrun

    def step(_):
        idx = distributed.shard(next(batches)).to(device)  # this rank's share of the global batch
        out = train.vae_step(model, opt, x[idx], y[idx] if conditional else None, beta=settings["beta"], generator=generator,
                             loss_terms=loss_terms)
        schedule.step()
        return out

    model.train()
    history = train.fit(step, steps=steps, desc=f"VAE (d={settings['latent_dim']}, beta={settings['beta']:g})", progress=progress)
    model.eval()
    return history


def vae_mnist(name: str = "vae", *, retrain: bool | None = None, progress: bool = True, **overrides) -> tuple[autoencoder.VAE, train.History]:
    """One of chapter 04's trained VAEs: loaded from the cache if it was trained before with the
    same settings under the same profile, else trained (:func:`train_vae`) and cached.

    ``name`` is the checkpoint's name and picks the preset of :func:`vae_settings` (``"vae"``,
    ``"vae2d"``, ``"cvae"``); ``overrides`` change single settings. Returns ``(model, history)``,
    the model in ``eval()`` mode on :func:`gencourse.config.device`.
    """
    settings = vae_settings(name, **overrides)
    model = build_vae(settings)
    history = train.load_or_train(name, model, lambda: train_vae(model, settings, progress), settings=settings, retrain=retrain)
    return model.eval(), history


def _training_images(data_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data.mnist("train").tensors
    if data_name == "mnist-train-binary":  # chapter 05: the binarised images its exact likelihoods are computed on
        x = (x >= 0.5).float()
    elif data_name != "mnist-train-01":
        raise ValueError(f"data must be 'mnist-train-01' (grey values) or 'mnist-train-binary' (binarised at 0.5), got {data_name!r}")
    return x, y


@torch.no_grad()
def fit_prior(model: autoencoder.VAE, n_components: int | None = None, *, data_name: str = "mnist-train-01", seed: int = 0,
              batch_size: int = 1000) -> autoencoder.MixturePrior:
    r"""A :class:`~gencourse.models.autoencoder.MixturePrior` for a trained VAE, fitted to its
    aggregate posterior: one code :math:`z \sim q_\phi(z \mid x)` per training image (drawn with
    a generator seeded with ``seed``), then ``n_components`` full-covariance Gaussians by EM, one
    mixture per class for a conditional model. ``n_components`` defaults to
    :data:`PRIOR_COMPONENTS` (10 for a VAE, 1 for a conditional VAE). Takes about a second on a CPU.

    Sample with ``model.sample(n, y, prior=prior)``; score with
    ``autoencoder.evaluate(model, x, y, prior=prior)``.
    """
    conditional = model.n_classes > 0
    if n_components is None:
        n_components = PRIOR_COMPONENTS["cvae" if conditional else "vae"]
    x, y = _training_images(data_name)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        codes = []
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            mu, logvar = model.encode(xb.to(device), yb.to(device) if conditional else None)
            eps = torch.randn(mu.shape, generator=generator).to(device)
            codes.append(autoencoder.reparameterize(mu, logvar, eps=eps).cpu())
    finally:
        model.train(was_training)
    return autoencoder.MixturePrior.fit(torch.cat(codes), y if conditional else None, n_components, seed=seed).to(device)

