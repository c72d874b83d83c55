r"""Losses of the course, one section per family.

* **ELBO terms** (chapter 04, variational autoencoders): the Bernoulli log-likelihood of the
  decoder, the diagonal-Gaussian log-density, the KL term, the (β-)ELBO and the importance-weighted
  (IWAE) bound.
* **GAN losses** (chapters 06–07): the value of the game, the discriminator's binary
  cross-entropy, the minimax and non-saturating generator losses, least-squares and hinge
  losses, all computed from the discriminator's **logits** (scalars, means over the batch).
* **Wasserstein critic** (chapters 02 and 08): the Kantorovich–Rubinstein objective, the WGAN-GP
  gradient penalty and WGAN weight clipping.
* **Conditional GANs** (chapter 09): ACGAN's source and class losses, InfoGAN's variational
  mutual-information term and the bound it gives.

Conventions of the ELBO section: every term is **per image, summed over pixels** (and over latent
dimensions), in **nats**; functions return one value per sample, shape ``(B,)``, and the training
loss is the mean over the batch of the per-image negative ELBO. The β of the β-VAE weights the
KL term; it is **not** the β of the diffusion noise schedule (chapter 12).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .divergences import kl_gaussians

__all__ = [
    # ELBO terms (chapter 04)
    "bernoulli_log_likelihood",
    "gaussian_log_density",
    "kl_gaussians",
    "elbo",
    "vae_loss",
    "iwae_bound",
]

LOG_2PI = math.log(2.0 * math.pi)


def _check_tensor(value, name: str, min_ndim: int = 1) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {tuple(value.shape)}")
    return value


def _check_same_shape(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{a_name} and {b_name} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


# ==============================================================================================
# ELBO terms (chapter 04)
# ==============================================================================================
#
# The KL term KL(N(mu, diag exp(logvar)) || N(0, I)) is gencourse.divergences.kl_gaussians
# (chapter 01), re-exported here: 1/2 sum_k (mu_k^2 + sigma_k^2 - log sigma_k^2 - 1).


def bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    r"""Log-likelihood of images under a Bernoulli decoder, **per image, summed over pixels** (nats).

    .. math:: \log p(x \mid z) = \sum_{i=1}^{D} \big[x_i \log \sigma(\ell_i) + (1 - x_i) \log(1 - \sigma(\ell_i))\big]
              = -\sum_{i=1}^{D} \mathrm{BCE}(\sigma(\ell_i), x_i)

    with :math:`\ell` = ``logits`` the decoder's output and :math:`D = C H W` pixels. Computed from
    the logits (``binary_cross_entropy_with_logits``), which is stable where :math:`\sigma(\ell)`
    rounds to 0 or 1. This is the likelihood of the original VAE on MNIST (Kingma & Welling, 2014,
    appendix C.1) and of the PyTorch example. For grey values :math:`x_i \in (0, 1)` it is *not* a
    normalised density over :math:`[0,1]^D` (Loaiza-Ganem & Cunningham, 2019, the continuous
    Bernoulli), so numbers are comparable between models trained with it, not with results on
    binarised MNIST.

    Args:
        x: images ``(B, ...)`` with values in :math:`[0, 1]`.
        logits: decoder logits, same shape as ``x``.

    Returns:
        ``(B,)``: one log-likelihood per image.

    >>> x = torch.tensor([[1.0, 0.0]]); logits = torch.zeros(1, 2)
    >>> round(bernoulli_log_likelihood(x, logits).item(), 4)  # 2 log(1/2)
    -1.3863
    """
    x = _check_tensor(x, "x")
    logits = _check_tensor(logits, "logits")
    _check_same_shape(x, "x", logits, "logits")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"x must have values in [0, 1] (a Bernoulli decoder models pixels in [0, 1]), "
            f"got min {x.min().item():.4g} and max {x.max().item():.4g}"
        )
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")  # (B, ...)
    return -bce.flatten(1).sum(1)  # sum over the pixels of each image


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""Log-density of a diagonal Gaussian, summed over the last axis (nats).

    .. math:: \log \mathcal N\big(z; \mu, \operatorname{diag} e^{v}\big)
              = -\frac12 \sum_{k=1}^{D} \Big[\log 2\pi + v_k + \frac{(z_k - \mu_k)^2}{e^{v_k}}\Big]

    with :math:`v = \log \sigma^2` (``logvar``). Used for :math:`\log q_\phi(z \mid x)` and
    :math:`\log p(z)` (``mu = 0``, ``logvar = 0``) in Monte-Carlo KL and importance-sampling
    estimates (chapter 04).

    Args:
        z: points ``(..., D)``.
        mu, logvar: broadcastable to ``z``.

    Returns:
        shape ``z.shape[:-1]``.

    >>> round(gaussian_log_density(torch.zeros(1), torch.zeros(1), torch.zeros(1)).item(), 4)  # -log(2 pi)/2
    -0.9189
    """
    z = _check_tensor(z, "z")
    mu = torch.as_tensor(mu, dtype=z.dtype, device=z.device)
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    try:
        shape = torch.broadcast_shapes(z.shape, mu.shape, logvar.shape)
    except RuntimeError:
        raise ValueError(
            f"mu and logvar must broadcast to z's shape {tuple(z.shape)}, got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        ) from None
    if shape != z.shape:
        raise ValueError(f"mu and logvar must broadcast to z's shape {tuple(z.shape)}, not enlarge it to {tuple(shape)}")
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)


def elbo(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    r"""The (β-)evidence lower bound, per image, estimated with one sample :math:`z \sim q_\phi(z \mid x)`.

    .. math:: \mathrm{ELBO}_\beta(x) = \underbrace{\log p_\theta(x \mid z)}_{\text{reconstruction}}
              \;-\; \beta\, \underbrace{\mathrm{KL}\big(q_\phi(z \mid x) \,\|\, \mathcal N(0, I)\big)}_{\text{closed form}},
              \qquad z = \mu + \sigma \odot \varepsilon

    where ``logits`` are the decoder's output at the reparameterised sample :math:`z` (Kingma &
    Welling, 2014, eq. 10). :math:`\beta = 1` is the ELBO, a lower bound on :math:`\log p_\theta(x)`;
    other values give the β-VAE objective (Higgins et al., 2017), which is not a bound on
    :math:`\log p_\theta(x)` for :math:`\beta < 1`. This β is not the diffusion β (chapter 12).

    Args:
        x: images ``(B, C, H, W)`` (any ``(B, ...)``) in :math:`[0, 1]`.
        logits: Bernoulli decoder logits at :math:`z`, same shape as ``x``.
        mu, logvar: the encoder's :math:`\mu` and :math:`\log\sigma^2`, shape ``(B, D)``.
        beta: weight of the KL term, ``>= 0``.

    Returns:
        ``(B,)``: per-image ELBO in nats (summed over pixels and latent dimensions).
    """
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    mu = _check_tensor(mu, "mu", 2)
    logvar = _check_tensor(logvar, "logvar", 2)
    _check_same_shape(mu, "mu", logvar, "logvar")
    if mu.ndim != 2 or mu.shape[0] != x.shape[0]:
        raise ValueError(f"mu must have shape (B, D) with B = {x.shape[0]} as in x, got {tuple(mu.shape)}")
    log_px_z = bernoulli_log_likelihood(x, logits)  # (B,) summed over pixels
    kl = kl_gaussians(mu, logvar)  # (B,) summed over latent dimensions
    return log_px_z - beta * kl


def vae_loss(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    r"""The training loss of a (β-)VAE: the negative ELBO per image, **averaged over the batch**.

    .. math:: \mathcal L = \frac1B \sum_{b=1}^{B} \Big[-\log p_\theta(x_b \mid z_b) + \beta\,\mathrm{KL}\big(q_\phi(z \mid x_b)\,\|\,p(z)\big)\Big]

    (The PyTorch example sums over the batch as well; dividing by :math:`B` changes only the
    scale of the gradient, which Adam undoes, and makes the number a per-image value in nats.)
    Same arguments as :func:`elbo`; returns a scalar tensor.
    """
    return -elbo(x, logits, mu, logvar, beta).mean()


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    r"""The importance-weighted bound on :math:`\log p(x)` from :math:`K` log-weights per image.

    .. math:: \mathcal L_K(x) = \log \frac1K \sum_{k=1}^{K} w_k, \qquad
              w_k = \frac{p_\theta(x, z_k)}{q_\phi(z_k \mid x)}, \quad z_k \sim q_\phi(z \mid x)

    computed stably as :math:`\operatorname{logsumexp}_k \log w_k - \log K` (Burda, Grosse &
    Salakhutdinov, 2016). :math:`\mathcal L_1` is the ELBO, :math:`\mathbb E[\mathcal L_K]` increases
    with :math:`K` and tends to :math:`\log p_\theta(x)`.

    Args:
        log_w: ``(K, B)``, the log-weights :math:`\log p_\theta(x_b \mid z_{k}) + \log p(z_{k}) - \log q_\phi(z_{k} \mid x_b)`.

    Returns:
        ``(B,)``, in nats.

    >>> round(iwae_bound(torch.log(torch.tensor([[1.0], [3.0]]))).item(), 6)  # log((1 + 3) / 2)
    0.693147
    """
    log_w = _check_tensor(log_w, "log_w")
    if log_w.ndim != 2 or log_w.shape[0] < 1:
        raise ValueError(f"log_w must have shape (K, B) with K >= 1 samples per image, got {tuple(log_w.shape)}")
    K = log_w.shape[0]
    return torch.logsumexp(log_w, dim=0) - math.log(K)


# ==============================================================================================
# GAN losses (chapters 06-07)
# ==============================================================================================
#
# Every GAN loss takes the discriminator's LOGITS d = D_logit(x) (no sigmoid in the network):
# D(x) = sigmoid(d), log D = -softplus(-d) and log(1 - D) = -softplus(d) are then exact for any d,
# where log(sigmoid(d)) computed naively gives -inf (and NaN gradients) once sigmoid(d) rounds to 0.
# Conventions: d_real (B_r,) and d_fake (B_f,) (any shapes), losses are scalars, means over the
# batch, to MINIMISE; names follow the chapters (loss_D, loss_G).

__all__ += [
    "gan_value",
    "d_loss_bce",
    "g_loss_minimax",
    "g_loss_non_saturating",
    "d_loss_least_squares",
    "g_loss_least_squares",
    "d_loss_hinge",
    "g_loss_hinge",
    "GAN_LOSSES",
    "discriminator_loss",
    "generator_loss",
]


def _check_logits(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of discriminator logits, got {type(value).__name__}")
    if not value.is_floating_point() or value.numel() == 0:
        raise ValueError(f"{name} must be a non-empty floating-point tensor of logits, got dtype {value.dtype} and shape {tuple(value.shape)}")
    return value


def gan_value(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    r"""Monte-Carlo estimate of the value of the GAN game (Goodfellow et al., 2014, eq. 1).

    .. math:: V(D, G) = \mathbb E_{x \sim p_\text{data}}[\log D(x)] + \mathbb E_{z \sim p_z}[\log(1 - D(G(z)))]
              \approx \frac1{B_r}\sum_b \log\sigma(d^\text{real}_b) + \frac1{B_f}\sum_b \log\big(1 - \sigma(d^\text{fake}_b)\big)

    computed as :math:`-\operatorname{softplus}(-d^\text{real}) - \operatorname{softplus}(d^\text{fake})`.
    :math:`V \le 0`; for the optimal discriminator :math:`V = 2\,\mathrm{JS} - \log 4 \ge -\log 4`
    (chapter 06). ``d_real``, ``d_fake``: logits of any shapes; returns a scalar.

    >>> round(gan_value(torch.zeros(3), torch.zeros(5)).item(), 4)  # D = 1/2 everywhere: -log 4
    -1.3863
    """
    d_real, d_fake = _check_logits(d_real, "d_real"), _check_logits(d_fake, "d_fake")
    return -F.softplus(-d_real).mean() - F.softplus(d_fake).mean()


def d_loss_bce(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    r"""The discriminator's loss of the original GAN: binary cross-entropy with real = 1, fake = 0.

    .. math:: \mathcal L_D = -\frac1{B_r}\sum_b \log\sigma(d^\text{real}_b) - \frac1{B_f}\sum_b \log\big(1 - \sigma(d^\text{fake}_b)\big)
              = -V(D, G)

    the negative log-likelihood of the labels (maximum likelihood for a logistic classifier), the
    **sum** of the two batch means (some codes average them, which halves the loss). Used by both
    the minimax and the non-saturating GAN (Goodfellow et al., 2014, Algorithm 1; chapter 06).
    """
    d_real, d_fake = _check_logits(d_real, "d_real"), _check_logits(d_fake, "d_fake")
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()  # -log sigma(d) = softplus(-d)


def g_loss_minimax(d_fake: torch.Tensor) -> torch.Tensor:
    r"""The generator's loss of the minimax game: minimise :math:`\log(1 - D(G(z)))`.

    .. math:: \mathcal L_G^\text{minimax} = \frac1B \sum_b \log\big(1 - \sigma(d^\text{fake}_b)\big)
              = -\frac1B\sum_b \operatorname{softplus}(d^\text{fake}_b)

    Its gradient :math:`\partial \mathcal L / \partial d = -\sigma(d)/B` vanishes when the
    discriminator rejects the samples (:math:`\sigma(d) \approx 0`), which is the situation early in
    training: the loss **saturates** (Goodfellow et al., 2014, section 3; chapter 06).
    """
    return -F.softplus(_check_logits(d_fake, "d_fake")).mean()


def g_loss_non_saturating(d_fake: torch.Tensor) -> torch.Tensor:
    r"""The non-saturating generator loss: maximise :math:`\log D(G(z))` instead.

    .. math:: \mathcal L_G^\text{NS} = -\frac1B \sum_b \log\sigma(d^\text{fake}_b) = \frac1B\sum_b \operatorname{softplus}(-d^\text{fake}_b)

    Same fixed point as the minimax loss, but the gradient :math:`-(1 - \sigma(d))/B` is largest
    where the samples are rejected (Goodfellow et al., 2014, section 3; chapter 06). It is the
    binary cross-entropy of fake samples labelled *real*.
    """
    return F.softplus(-_check_logits(d_fake, "d_fake")).mean()


def d_loss_least_squares(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    r"""The least-squares GAN discriminator loss (Mao et al., 2017, eq. 9 with :math:`a = 0, b = c = 1`).

    .. math:: \mathcal L_D^\text{LS} = \frac12\,\frac1{B_r}\sum_b (d^\text{real}_b - 1)^2 + \frac12\,\frac1{B_f}\sum_b (d^\text{fake}_b)^2

    ``d`` is the raw output (no sigmoid): real targets 1, fake targets 0.
    """
    d_real, d_fake = _check_logits(d_real, "d_real"), _check_logits(d_fake, "d_fake")
    return 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake**2).mean()


def g_loss_least_squares(d_fake: torch.Tensor) -> torch.Tensor:
    r"""The least-squares GAN generator loss (Mao et al., 2017, eq. 9, :math:`c = 1`).

    .. math:: \mathcal L_G^\text{LS} = \frac12\,\frac1B\sum_b (d^\text{fake}_b - 1)^2
    """
    return 0.5 * ((_check_logits(d_fake, "d_fake") - 1) ** 2).mean()


def d_loss_hinge(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    r"""The hinge discriminator loss (Lim & Ye, 2017; Miyato et al., 2018, eq. 16).

    .. math:: \mathcal L_D^\text{hinge} = \frac1{B_r}\sum_b \max(0, 1 - d^\text{real}_b) + \frac1{B_f}\sum_b \max(0, 1 + d^\text{fake}_b)

    Real samples are pushed above +1, fakes below −1; beyond the margin they no longer count.
    """
    d_real, d_fake = _check_logits(d_real, "d_real"), _check_logits(d_fake, "d_fake")
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def g_loss_hinge(d_fake: torch.Tensor) -> torch.Tensor:
    r"""The generator loss that goes with the hinge discriminator loss: :math:`\mathcal L_G = -\frac1B\sum_b d^\text{fake}_b`."""
    return -_check_logits(d_fake, "d_fake").mean()


#: name -> (discriminator loss, generator loss), for :func:`discriminator_loss` / :func:`generator_loss`
#: and :func:`gencourse.train.d_step` / :func:`gencourse.train.g_step`.
GAN_LOSSES = {
    "minimax": (d_loss_bce, g_loss_minimax),
    "non_saturating": (d_loss_bce, g_loss_non_saturating),
    "least_squares": (d_loss_least_squares, g_loss_least_squares),
    "hinge": (d_loss_hinge, g_loss_hinge),
}


def _gan_pair(kind: str):
    if kind not in GAN_LOSSES:
        raise ValueError(f"kind must be one of {', '.join(repr(k) for k in GAN_LOSSES)}, got {kind!r}")
    return GAN_LOSSES[kind]


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    r"""The discriminator loss of the GAN variant ``kind`` (a key of :data:`GAN_LOSSES`), from logits.

    ``"minimax"`` and ``"non_saturating"`` share :func:`d_loss_bce`; ``"least_squares"`` is
    :func:`d_loss_least_squares`, ``"hinge"`` :func:`d_loss_hinge`.
    """
    return _gan_pair(kind)[0](d_real, d_fake)


def generator_loss(d_fake: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    r"""The generator loss of the GAN variant ``kind`` (a key of :data:`GAN_LOSSES`), from logits:
    :func:`g_loss_minimax`, :func:`g_loss_non_saturating`, :func:`g_loss_least_squares` or :func:`g_loss_hinge`."""
    return _gan_pair(kind)[1](d_fake)


# The Wasserstein critic (chapters 02 and 08): no sigmoid, the critic's output is a real score.

__all__ += ["critic_objective", "gradient_penalty", "clip_weights_", "wgan_critic_loss", "wgan_generator_loss"]


def critic_objective(critic: Callable[[torch.Tensor], torch.Tensor], x_real: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    r"""The Kantorovich–Rubinstein objective that a Wasserstein critic maximises:

    .. math:: \mathbb E_{x \sim P}[f(x)] - \mathbb E_{x \sim Q}[f(x)] \;\le\; K \cdot W_1(P, Q)
              \quad\text{for a } K\text{-Lipschitz } f,

    with equality at the best 1-Lipschitz :math:`f` (Villani, 2008, Remark 6.5; Arjovsky et al.,
    2017). ``critic`` maps ``(B, ...)`` to ``(B,)`` or ``(B, 1)``; ``x_real`` ``(B, ...)`` from
    :math:`P`, ``x_fake`` ``(B', ...)`` from :math:`Q`. Returns a scalar; the critic's loss is its
    negative (chapters 02 and 08).
    """
    d_real, d_fake = critic(x_real), critic(x_fake)
    for d, x, name in ((d_real, x_real, "x_real"), (d_fake, x_fake, "x_fake")):
        if d.reshape(d.shape[0], -1).shape[1] != 1 or d.shape[0] != x.shape[0]:
            raise ValueError(f"critic({name}) must have shape (B,) or (B, 1) with B = {x.shape[0]}, got {tuple(d.shape)}")
    return d_real.mean() - d_fake.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    x_real: torch.Tensor,
    x_fake: torch.Tensor,
    u: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The WGAN-GP gradient penalty (Gulrajani et al., 2017, eq. (3)), without its weight :math:`\lambda`:

    .. math:: \hat x = u\, x_\text{real} + (1 - u)\, x_\text{fake}, \quad u \sim \mathcal U[0, 1]
              \text{ one per sample}, \qquad
              \mathrm{GP} = \frac1B \sum_{b=1}^B \big(\|\nabla_{\hat x} f(\hat x_b)\|_2 - 1\big)^2

    The norm is taken **per sample over all of its dimensions** (all pixels and channels of an
    image), not per coordinate. ``x_real``, ``x_fake`` of the same shape ``(B, ...)``; ``u`` of
    shape ``(B,)`` (or ``(B, 1, ..., 1)``), drawn with ``generator`` when not given. Returns a
    scalar that keeps the graph (``create_graph=True``), so ``(-critic_objective + lambda_gp * GP)
    .backward()`` trains the critic. The interpolates are detached from ``x_real``/``x_fake``.
    """
    if x_real.shape != x_fake.shape or x_real.ndim < 2:
        raise ValueError(f"x_real and x_fake must have the same shape (B, ...), got {tuple(x_real.shape)} and {tuple(x_fake.shape)}")
    B = x_real.shape[0]
    bshape = (B,) + (1,) * (x_real.ndim - 1)
    if u is None:
        device = generator.device if generator is not None else x_real.device
        u = distributed.rand((B,), generator=generator, dtype=x_real.dtype, device=device).to(x_real.device)
    if u.numel() != B or u.shape[0] != B:
        raise ValueError(f"u must hold one number per sample, shape ({B},) or {bshape}, got {tuple(u.shape)}")
    u = u.reshape(bshape)
    x_hat = (u * x_real + (1 - u) * x_fake).detach().requires_grad_(True)
    with torch.enable_grad():
        d_hat = critic(x_hat)
        (grad,) = torch.autograd.grad(d_hat.sum(), x_hat, create_graph=True)
    norm = grad.reshape(B, -1).norm(2, dim=1)  # (B,): one norm per sample, over all dimensions
    return ((norm - 1) ** 2).mean()


@torch.no_grad()
def clip_weights_(module: nn.Module, c: float = 0.01) -> nn.Module:
    r"""Clamp every parameter of ``module`` to :math:`[-c, c]` in place (the original WGAN, Arjovsky
    et al., 2017, Algorithm 1, :math:`c = 0.01`). This makes the critic :math:`K`-Lipschitz for some
    :math:`K` that depends on :math:`c` and the architecture, not 1-Lipschitz. Returns ``module``."""
    if not float(c) > 0:
        raise ValueError(f"c must be > 0, got {c}")
    for p in module.parameters():
        p.clamp_(-c, c)
    return module


def wgan_critic_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    r"""The WGAN critic's loss (Arjovsky et al., 2017, Algorithm 1; chapter 08), to **minimise**:

    .. math:: \mathcal L_\text{critic} = \frac1{B_f}\sum_b f(x^\text{fake}_b) - \frac1{B_r}\sum_b f(x^\text{real}_b)

    the negative of :func:`critic_objective` computed from the critic's scores ``d_real``
    ``(B_r,)`` and ``d_fake`` ``(B_f,)`` (raw outputs, no sigmoid). Add
    ``lambda_gp * gradient_penalty(...)`` for WGAN-GP, or clip the weights after the step for the
    original WGAN. Returns a scalar.

    >>> wgan_critic_loss(torch.tensor([3.0, 1.0]), torch.tensor([-1.0])).item()
    -3.0
    """
    d_real, d_fake = _check_logits(d_real, "d_real"), _check_logits(d_fake, "d_fake")
    return d_fake.mean() - d_real.mean()


def wgan_generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    r"""The WGAN generator's loss (Arjovsky et al., 2017, Algorithm 1; chapter 08), to minimise:

    .. math:: \mathcal L_G = -\frac1B \sum_b f\big(G(z_b)\big)

    the part of :math:`-(\mathbb E f(x_\text{real}) - \mathbb E f(G(z)))` that depends on
    :math:`G`. ``d_fake`` ``(B,)``: the critic's scores of generated samples; returns a scalar.
    (The same expression as :func:`g_loss_hinge`, with a critic in place of a hinge discriminator.)
    """
    return -_check_logits(d_fake, "d_fake").mean()


# ==============================================================================================
# Conditional GANs (chapter 09): ACGAN and InfoGAN
# ==============================================================================================

__all__ += ["r1_penalty"]


def r1_penalty(D: Callable[[torch.Tensor], torch.Tensor], x_real: torch.Tensor) -> torch.Tensor:
    r"""The R1 penalty (Mescheder, Geiger & Nowozin, 2018, eq. 9; used by StyleGAN, chapter 11),
    without its weight :math:`\gamma / 2`:

    .. math:: R_1 = \frac1B \sum_{b=1}^B \big\| \nabla_x d(x_b) \big\|_2^2 \quad \text{at the real images } x_b,

    the squared norm per sample over all of its pixels. Only real images: the penalty makes the
    discriminator flat on the data, so that at equilibrium it cannot push the generator off the
    data (a penalty at fake images or interpolates is a different regulariser). ``D`` maps
    ``(B, ...)`` to logits ``(B,)``. Returns a scalar that keeps the graph
    (``create_graph=True``): the discriminator's loss is ``loss_D + gamma / 2 * r1_penalty(D, x)``.
    """
    x_real = _check_tensor(x_real, "x_real", min_ndim=2)
    x = x_real.detach().requires_grad_(True)
    with torch.enable_grad():
        d = D(x)
        if d.shape != (x.shape[0],):
            raise ValueError(f"D must return one logit per image, shape ({x.shape[0]},), got {tuple(d.shape)}")
        (grad,) = torch.autograd.grad(d.sum(), x, create_graph=True)
    return grad.reshape(x.shape[0], -1).pow(2).sum(dim=1).mean()


__all__ += ["class_loss", "acgan_d_loss", "acgan_g_loss", "gaussian_nll", "infogan_info_loss", "infogan_mi_lower_bound",
            "uniform_code_entropy"]


def _check_class_logits(logits, y, names=("logits", "y")) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not logits.is_floating_point():
        got = f"{logits.dtype} {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"{names[0]} must be floating-point class logits of shape (B, K), got {got}")
    if not isinstance(y, torch.Tensor) or y.shape != (len(logits),) or y.is_floating_point() or y.dtype == torch.bool:
        got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{names[1]} must be integer class indices of shape (B,) = ({len(logits)},), got {got}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        raise ValueError(f"{names[1]} must be in 0..{logits.shape[1] - 1}, got values in {int(y.min())}..{int(y.max())}")
    return logits, y


def class_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""The class loss :math:`-\frac1B\sum_b \log \operatorname{softmax}(\ell_b)_{y_b}` (cross-entropy,
    nats, mean over the batch) of class logits ``(B, K)`` and integer labels ``(B,)``: minus
    ACGAN's :math:`L_C` on one batch, or minus the categorical part of InfoGAN's bound."""
    logits, y = _check_class_logits(logits, y)
    return F.cross_entropy(logits, y.long())


def acgan_d_loss(src_real: torch.Tensor, cls_real: torch.Tensor, y_real: torch.Tensor,
                 src_fake: torch.Tensor, cls_fake: torch.Tensor, y_fake: torch.Tensor, lambda_cls: float = 1.0) -> torch.Tensor:
    r"""ACGAN's discriminator loss (Odena, Olah & Shlens, 2017, section 3), to **minimise**:
    :math:`-(L_S + \lambda L_C)` with

    .. math:: L_S = \mathbb E[\log P(S = \text{real} \mid X_\text{real})] + \mathbb E[\log P(S = \text{fake} \mid X_\text{fake})],

    .. math:: L_C = \mathbb E[\log P(C = c \mid X_\text{real})] + \mathbb E[\log P(C = c \mid X_\text{fake})],

    where :math:`c` is the real image's label for :math:`X_\text{real}` and the label **given to
    the generator** for :math:`X_\text{fake} = G(z, c)`. ``src_*``: source logits ``(B,)``;
    ``cls_*``: class logits ``(B, K)``; ``y_*``: int labels ``(B,)``. Returns a scalar:
    :func:`d_loss_bce` of the source logits plus ``lambda_cls`` × the two class cross-entropies.
    """
    l_s = d_loss_bce(src_real, src_fake)
    l_c = class_loss(cls_real, y_real) + class_loss(cls_fake, y_fake)
    return l_s + lambda_cls * l_c


def acgan_g_loss(src_fake: torch.Tensor, cls_fake: torch.Tensor, y_fake: torch.Tensor, lambda_cls: float = 1.0) -> torch.Tensor:
    r"""ACGAN's generator loss, to **minimise**: the generator maximises :math:`\lambda L_C - L_S`;
    its part of :math:`-L_S` is written in the non-saturating form, as for every GAN of the course:

    .. math:: \mathcal L_G = -\frac1B\sum_b \log\sigma(d(G(z_b, c_b))) - \lambda\,\frac1B \sum_b \log P(C = c_b \mid G(z_b, c_b)).

    ``src_fake`` ``(B,)``, ``cls_fake`` ``(B, K)``, ``y_fake`` ``(B,)``: the labels that were
    **given to the generator** (any other labels teach it nothing about the condition)."""
    return g_loss_non_saturating(src_fake) + lambda_cls * class_loss(cls_fake, y_fake)


def gaussian_nll(c: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""Per-sample negative log-density of :math:`c` under the diagonal Gaussian
    :math:`\mathcal N(\mu, \operatorname{diag} e^{\text{logvar}})`, summed over dimensions, in nats:

    .. math:: -\log \mathcal N(c; \mu, \sigma^2) = \frac12 \sum_k \Big(\log 2\pi + \log\sigma_k^2 + \frac{(c_k - \mu_k)^2}{\sigma_k^2}\Big).

    All three ``(B, n)``; returns ``(B,)`` (minus :func:`gaussian_log_density`)."""
    return -gaussian_log_density(c, mu, logvar)


def infogan_info_loss(cat_logits: torch.Tensor, c_cat: torch.Tensor, mu: torch.Tensor | None = None,
                      logvar: torch.Tensor | None = None, c_cont: torch.Tensor | None = None, lambda_cont: float = 1.0) -> torch.Tensor:
    r"""InfoGAN's information loss (Chen et al., 2016, eq. 5), to **minimise**: minus the
    expected log-likelihood of the codes under the recognition network,

    .. math:: \mathcal L_\text{info} = -\frac1B\sum_b \Big(\log Q(c^\text{cat}_b \mid x_b)
              + \lambda_\text{cont} \log \mathcal N\big(c^\text{cont}_b;\, \mu(x_b), \sigma^2(x_b)\big)\Big),
              \qquad x_b = G(z_b, c_b),

    so that :math:`L_I(G, Q) = H(c) - \mathcal L_\text{info}` (with :math:`\lambda_\text{cont} = 1`)
    is the variational lower bound on the mutual information :math:`I(c; G(z, c))`
    (:func:`infogan_mi_lower_bound`). It must be evaluated on **generated** images, whose codes are
    known; real images have no codes. ``cat_logits`` ``(B, K)``, ``c_cat`` ``(B,)`` int; the
    continuous part (``mu``, ``logvar``, ``c_cont``, all ``(B, n)``) is optional. Returns a scalar.
    """
    loss = class_loss(cat_logits, c_cat)
    if c_cont is not None:
        if mu is None or logvar is None:
            raise ValueError("the continuous part needs mu, logvar and c_cont together")
        for name, value in (("mu", mu), ("logvar", logvar), ("c_cont", c_cont)):
            if not isinstance(value, torch.Tensor) or value.shape != (len(cat_logits), c_cont.shape[-1]) or c_cont.ndim != 2:
                got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"{name} must have shape (B, n_cont) = ({len(cat_logits)}, {c_cont.shape[-1]}), got {got}")
        loss = loss + lambda_cont * gaussian_nll(c_cont, mu, logvar).mean()
    return loss


def uniform_code_entropy(n_cat: int, n_cont: int = 0, low: float = -1.0, high: float = 1.0) -> float:
    r"""The entropy :math:`H(c)` of InfoGAN's prior, in nats: :math:`\log K` for a uniform
    categorical code plus :math:`\log(b - a)` per continuous code uniform on :math:`(a, b)`
    (a differential entropy: :math:`\log 2` for :math:`(-1, 1)`)."""
    if not high > low:
        raise ValueError(f"high must be > low, got low={low}, high={high}")
    return math.log(n_cat) + n_cont * math.log(high - low)


def infogan_mi_lower_bound(cat_logits: torch.Tensor, c_cat: torch.Tensor, mu: torch.Tensor | None = None,
                           logvar: torch.Tensor | None = None, c_cont: torch.Tensor | None = None) -> torch.Tensor:
    r"""The variational lower bound on the mutual information of InfoGAN (Chen et al., 2016, lemma 5.1):

    .. math:: I(c; x) \;\ge\; L_I = \mathbb E_{c, x}\big[\log Q(c \mid x)\big] + H(c),

    tight when :math:`Q(c \mid x)` is the true posterior :math:`P(c \mid x)` (the gap is
    :math:`\mathbb E_x \mathrm{KL}(P(\cdot \mid x) \,\|\, Q(\cdot \mid x)) \ge 0`). The codes are assumed
    uniform (:func:`uniform_code_entropy`, continuous codes on :math:`(-1, 1)`); a Monte-Carlo
    estimate over the batch, in nats. Arguments as in :func:`infogan_info_loss`.
    """
    n_cont = 0 if c_cont is None else c_cont.shape[-1]
    return uniform_code_entropy(cat_logits.shape[-1], n_cont) - infogan_info_loss(cat_logits, c_cat, mu, logvar, c_cont)


# ----------------------------------------------------------------------------------------------
# image-to-image translation (chapter 10): pix2pix, CycleGAN
# ----------------------------------------------------------------------------------------------

__all__ += ["l1_loss", "pix2pix_g_loss", "cycle_loss", "identity_loss"]


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""The mean absolute error :math:`\frac1{BCHW}\sum |\text{output} - \text{target}|` (pix2pix's
    :math:`\mathcal L_{L1}`, Isola et al., 2017, eq. 3, as a mean over pixels, the convention of
    their code under which :math:`\lambda = 100` was chosen)."""
    output, target = _check_tensor(output, "output"), _check_tensor(target, "target")
    _check_same_shape(output, "output", target, "target")
    return (output - target).abs().mean()


def pix2pix_g_loss(d_fake: torch.Tensor, fake: torch.Tensor, target: torch.Tensor, lambda_l1: float = 100.0,
                   kind: str = "non_saturating") -> torch.Tensor:
    r"""The pix2pix generator's objective (Isola et al., 2017, eq. 4):

    .. math:: \mathcal L_G = \mathcal L_\text{GAN}\big(D(x, G(x))\big) + \lambda\,\frac1{BCHW}\sum |y - G(x)|

    ``d_fake`` the discriminator's logits on the pair (source, generated) (a PatchGAN's map: the
    GAN term averages over patches), ``fake`` :math:`= G(x)`, ``target`` :math:`= y`, the **paired
    target**, not the source :math:`x`. ``kind`` the GAN loss (:data:`GAN_LOSSES`); ``lambda_l1=0``
    leaves the GAN alone.
    """
    if lambda_l1 < 0:
        raise ValueError(f"lambda_l1 must be >= 0, got {lambda_l1!r}")
    gan = _gan_pair(kind)[1](d_fake)
    return gan + lambda_l1 * l1_loss(fake, target) if lambda_l1 else gan


def cycle_loss(G_AB: Callable[[torch.Tensor], torch.Tensor], G_BA: Callable[[torch.Tensor], torch.Tensor],
               a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""CycleGAN's cycle-consistency loss (Zhu et al., 2017, eq. 2), as means over pixels:

    .. math:: \mathcal L_\text{cyc} = \frac1{N}\sum \big|G_{BA}(G_{AB}(a)) - a\big| + \frac1{N}\sum \big|G_{AB}(G_{BA}(b)) - b\big|

    ``G_AB`` maps domain *A* to *B*, ``G_BA`` *B* to *A*; ``a`` and ``b`` are batches of the two
    domains (any sizes). Forward cycle :math:`a \to B \to A`, backward cycle :math:`b \to A \to B`.
    """
    a, b = _check_tensor(a, "a"), _check_tensor(b, "b")
    return l1_loss(G_BA(G_AB(a)), a) + l1_loss(G_AB(G_BA(b)), b)


def identity_loss(G_AB: Callable[[torch.Tensor], torch.Tensor], G_BA: Callable[[torch.Tensor], torch.Tensor],
                  a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""CycleGAN's identity loss (Zhu et al., 2017, section 5.2, after Taigman et al., 2017):
    a generator given an image that is **already in its output domain** should leave it alone,

    .. math:: \mathcal L_\text{id} = \frac1{N}\sum \big|G_{AB}(b) - b\big| + \frac1{N}\sum \big|G_{BA}(a) - a\big|

    (``G_AB`` is fed *B*'s images and ``G_BA`` *A*'s; feeding each its own input domain would ask
    the generators not to translate at all).
    """
    a, b = _check_tensor(a, "a"), _check_tensor(b, "b")
    return l1_loss(G_AB(b), b) + l1_loss(G_BA(a), a)
