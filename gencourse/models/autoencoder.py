r"""Autoencoders and variational autoencoders (chapters 03–04).

* :class:`Autoencoder` — a deterministic convolutional autoencoder :math:`x \mapsto z = f(x) \mapsto \hat x = g(z)`
  (chapter 03).
* :class:`VAE` — a convolutional variational autoencoder with a diagonal-Gaussian encoder
  :math:`q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))`, the prior
  :math:`p(z) = \mathcal N(0, I)` and a Bernoulli decoder :math:`p_\theta(x \mid z)` (Kingma & Welling,
  2014); the β-VAE (Higgins et al., 2017) is the same model trained with ``beta != 1``; with
  ``n_classes > 0`` (or :class:`CVAE`) encoder and decoder are conditioned on a class label
  (Sohn, Lee & Yan, 2015).
* :class:`MixturePrior` — a Gaussian mixture fitted to the codes of the training images after
  training (one mixture per class for a conditional VAE): a prior to sample from and to score
  :math:`\log p(x)` with, closer to the codes the decoder was trained on than :math:`\mathcal N(0, I)`.
* :func:`reparameterize`, :func:`decoder_input`, :func:`iwae_log_likelihood`, :func:`evaluate`,
  :func:`active_units`, :func:`interpolate`, :func:`gaussian_grid`.
* :class:`LinearGaussian` — the linear-Gaussian latent model (probabilistic PCA, Tipping & Bishop,
  1999), where :math:`\log p(x)`, the posterior and the ELBO are all exact, so that
  :math:`\mathrm{ELBO} \le \log p(x)` can be checked with numbers (chapter 04).

Likelihood convention (chapter 04): :math:`\log p_\theta(x \mid z)` is the Bernoulli log-likelihood
of the grey values, **per image, summed over the 784 pixels**, i.e. minus the binary cross-entropy
summed over pixels (:func:`gencourse.losses.bernoulli_log_likelihood`); all ELBO / NLL numbers are
per image, in nats. The VAE's β is not the diffusion β (chapter 12).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks, distributed, losses
from ..nn import ConvDecoder, ConvEncoder

__all__ = [
    "reparameterize",
    "one_hot",
    "decoder_input",
    "Autoencoder",
    "VAEOutput",
    "VAE",
    "CVAE",
    "log_weights",
    "iwae_log_likelihood",
    "evaluate",
    "active_units",
    "interpolate",
    "gaussian_grid",
    "LinearGaussian",
    "LatentAutoencoder",
    "MixturePrior",
]


# ----------------------------------------------------------------------------------------------
# The reparameterisation trick and the conditional input
# ----------------------------------------------------------------------------------------------


def reparameterize(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""A sample of :math:`\mathcal N(\mu, \operatorname{diag}\sigma^2)` that is differentiable in :math:`\mu` and :math:`\log\sigma^2`.

    .. math:: z = \mu + \sigma \odot \varepsilon, \qquad \sigma = \exp\big(\tfrac12 \log\sigma^2\big),
              \qquad \varepsilon \sim \mathcal N(0, I)

    (Kingma & Welling, 2014, section 2.4). The noise :math:`\varepsilon` does not depend on the
    parameters, so :math:`\partial z / \partial \mu = 1` and
    :math:`\partial z / \partial \log\sigma^2 = \tfrac12 \sigma \varepsilon`.

    Args:
        mu, logvar: ``(B, D)`` (any equal shapes); ``logvar`` is :math:`\log\sigma^2`, not :math:`\sigma`.
        eps: optional noise of the same shape (else drawn with ``generator``).
        generator: a ``torch.Generator`` for the noise.

    Returns:
        ``z`` with the shape of ``mu``.

    >>> reparameterize(torch.zeros(1, 2), torch.log(torch.full((1, 2), 4.0)), eps=torch.ones(1, 2))
    tensor([[2., 2.]])
    """
    if not isinstance(mu, torch.Tensor) or not isinstance(logvar, torch.Tensor) or mu.shape != logvar.shape:
        shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in (mu, logvar)]
        raise ValueError(f"mu and logvar must be tensors of the same shape, got {shapes[0]} and {shapes[1]}")
    if eps is None:
        eps = distributed.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device if generator is None else generator.device)
        eps = eps.to(mu.device)
    elif eps.shape != mu.shape:
        raise ValueError(f"eps must have the shape of mu {tuple(mu.shape)}, got {tuple(eps.shape)}")
    sigma = torch.exp(0.5 * logvar)  # sigma = exp(log(sigma^2) / 2)
    return mu + sigma * eps


def one_hot(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Float one-hot codes ``(B, n_classes)`` of integer labels ``y`` of shape ``(B,)`` in ``0..n_classes-1``."""
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point():
        got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must be integer labels of shape (B,), got {got}")
    if y.numel() and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y must have labels in 0..{n_classes - 1}, got min {y.min().item()} and max {y.max().item()}")
    return F.one_hot(y.long(), n_classes).float()


def decoder_input(z: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    r"""The input of a conditional decoder :math:`p_\theta(x \mid z, y)`: the code and the one-hot class side by side.

    .. math:: [\,z \,;\, \mathrm{onehot}(y)\,] \in \mathbb R^{D + n_\text{classes}}

    (Sohn, Lee & Yan, 2015; chapter 04). ``z`` of shape ``(B, D)``, ``y`` integer labels ``(B,)``;
    returns ``(B, D + n_classes)``.
    """
    if not isinstance(z, torch.Tensor) or z.ndim != 2:
        raise ValueError(f"z must have shape (B, D), got {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
    c = one_hot(y, n_classes)
    if c.shape[0] != z.shape[0]:
        raise ValueError(f"y must have one label per code: z has B = {z.shape[0]}, y has {c.shape[0]}")
    return torch.cat([z, c.to(z.dtype).to(z.device)], dim=1)


# ----------------------------------------------------------------------------------------------
# Autoencoder (chapter 03)
# ----------------------------------------------------------------------------------------------


class Autoencoder(nn.Module):
    r"""A convolutional autoencoder: encoder :math:`f_\phi`, code :math:`z = f_\phi(x) \in \mathbb R^d`,
    decoder :math:`g_\theta`, trained to reconstruct its input (chapter 03).

    The decoder outputs logits :math:`\ell = g_\theta(z)`; the reconstruction is
    :math:`\hat x = \sigma(\ell)` and the loss is the binary cross-entropy summed over pixels and
    averaged over the batch, :math:`\frac1B\sum_b -\log p(x_b \mid z_b)` in the notation of the VAE
    (:meth:`loss`), so the autoencoder and the VAE of chapter 04 differ only in the encoder's noise
    and the KL term.

    Args:
        latent_dim: :math:`d`.
        enc_widths, dec_widths: channels of the convolutions (see :class:`gencourse.nn.ConvEncoder`).
        hidden: width of the fully connected layer on each side.
    """

    def __init__(self, latent_dim: int = 16, enc_widths: Sequence[int] = (32, 64), dec_widths: Sequence[int] = (64, 32), hidden: int = 256):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = ConvEncoder(latent_dim, widths=enc_widths, hidden=hidden)
        self.decoder = ConvDecoder(latent_dim, widths=dec_widths, hidden=hidden)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``z`` of shape ``(B, latent_dim)`` of images ``x`` ``(B, 1, 28, 28)``."""
        return self.encoder(checks.image_batch(x, (1, 28, 28)))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits ``(B, 1, 28, 28)`` of codes ``z`` ``(B, latent_dim)``."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        r"""Images :math:`\hat x = \sigma(g_\theta(z))` in :math:`[0, 1]`, shape ``(B, 1, 28, 28)``."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the reconstruction of ``x`` (``(B, 1, 28, 28)``)."""
        return self.decode_logits(self.encode(x))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        r"""Reconstruction loss :math:`\frac1B \sum_b \sum_i \mathrm{BCE}(\hat x_{b,i}, x_{b,i})`, per image
        summed over pixels, averaged over the batch."""
        return -losses.bernoulli_log_likelihood(x, self(x)).mean()


# ----------------------------------------------------------------------------------------------
# Variational autoencoder, beta-VAE, conditional VAE (chapter 04)
# ----------------------------------------------------------------------------------------------


class VAEOutput(NamedTuple):
    """What :meth:`VAE.forward` returns: decoder ``logits`` at ``z``, the encoder's ``mu`` and ``logvar``, and ``z``."""

    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class VAE(nn.Module):
    r"""A convolutional variational autoencoder for 28×28 images (chapter 04).

    .. math:: q_\phi(z \mid x) = \mathcal N\big(\mu_\phi(x), \operatorname{diag} e^{v_\phi(x)}\big), \quad
              p(z) = \mathcal N(0, I_d), \quad
              p_\theta(x \mid z) = \prod_{i=1}^{784} \mathrm{Bernoulli}\big(x_i; \sigma(\ell_\theta(z)_i)\big)

    The encoder (:class:`gencourse.nn.ConvEncoder`) outputs :math:`(\mu, v = \log\sigma^2)`; the decoder
    (:class:`gencourse.nn.ConvDecoder`) outputs logits :math:`\ell`. Training maximises the ELBO
    (:func:`gencourse.losses.elbo`); with ``beta != 1`` it is a β-VAE (β weights the KL term;
    not the diffusion β). With ``n_classes > 0`` it is a conditional VAE: the encoder sees the
    one-hot class next to its convolutional features, the decoder sees :math:`[z; \mathrm{onehot}(y)]`
    (:func:`decoder_input`), and every method needs the labels ``y``.

    Args:
        latent_dim: :math:`d`.
        n_classes: 0 for an unconditional VAE, else the number of classes of ``y``.
        enc_widths, dec_widths, hidden: sizes of the networks (see :mod:`gencourse.nn`).
    """

    def __init__(
        self,
        latent_dim: int = 16,
        n_classes: int = 0,
        enc_widths: Sequence[int] = (32, 64),
        dec_widths: Sequence[int] = (64, 32),
        hidden: int = 256,
    ):
        super().__init__()
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
        if not isinstance(n_classes, int) or n_classes < 0:
            raise ValueError(f"n_classes must be an int >= 0, got {n_classes!r}")
        self.latent_dim, self.n_classes = latent_dim, n_classes
        self.encoder = ConvEncoder(2 * latent_dim, widths=enc_widths, hidden=hidden, cond_dim=n_classes)
        self.decoder = ConvDecoder(latent_dim + n_classes, widths=dec_widths, hidden=hidden)

    def _labels(self, y, B: int):
        if self.n_classes == 0:
            if y is not None:
                raise ValueError("y was given but this VAE is unconditional (n_classes=0)")
            return None
        if y is None:
            raise ValueError(f"this conditional VAE needs labels y of shape (B,) = ({B},), got None")
        if not isinstance(y, torch.Tensor) or y.shape != (B,):
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"y must have shape (B,) = ({B},), got {got}")
        return y

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The parameters :math:`(\mu, \log\sigma^2)` of :math:`q_\phi(z \mid x[, y])`, each ``(B, latent_dim)``."""
        x = checks.image_batch(x, (1, 28, 28))
        y = self._labels(y, x.shape[0])
        c = None if y is None else one_hot(y, self.n_classes).to(x.device)
        mu, logvar = self.encoder(x, c).chunk(2, dim=1)  # (B, d), (B, d)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        r"""Decoder logits :math:`\ell_\theta(z[, y])`, shape ``(B, 1, 28, 28)``."""
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.latent_dim:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must have shape (B, latent_dim) = (B, {self.latent_dim}), got {got}")
        y = self._labels(y, z.shape[0])
        h = z if y is None else decoder_input(z, y, self.n_classes)
        return self.decoder(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        r"""The decoder's mean image :math:`\hat x = \sigma(\ell_\theta(z))` in :math:`[0, 1]`, ``(B, 1, 28, 28)``."""
        return torch.sigmoid(self.decode_logits(z, y))

    def forward(self, x, y=None, eps: torch.Tensor | None = None, generator: torch.Generator | None = None) -> VAEOutput:
        r"""Encode, draw :math:`z = \mu + \sigma\odot\varepsilon` (:func:`reparameterize`), decode."""
        mu, logvar = self.encode(x, y)
        z = reparameterize(mu, logvar, eps=eps, generator=generator)
        return VAEOutput(self.decode_logits(z, y), mu, logvar, z)

    def loss_terms(self, x, y=None, beta: float = 1.0, generator: torch.Generator | None = None) -> dict:
        r"""One-sample estimate of the (β-)VAE loss and its two terms.

        Returns a dict: ``loss`` (scalar, :math:`\frac1B\sum_b [-\log p_\theta(x_b\mid z_b) + \beta\,\mathrm{KL}_b]`,
        to minimise), ``rec`` = :math:`-\log p_\theta(x \mid z)` and ``kl`` =
        :math:`\mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))`, each ``(B,)`` in nats per image.
        """
        out = self(x, y, generator=generator)
        rec = -losses.bernoulli_log_likelihood(x, out.logits)  # (B,) summed over pixels
        kl = losses.kl_gaussians(out.mu, out.logvar)  # (B,) summed over latent dimensions
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not math.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        return {"loss": (rec + beta * kl).mean(), "rec": rec, "kl": kl}

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None,
               prior: MixturePrior | None = None) -> torch.Tensor:
        r"""``n`` images from the model: :math:`z \sim \mathcal N(0, I)` (or :math:`z \sim` ``prior``,
        a :class:`MixturePrior` fitted to the training codes), then the decoder's mean :math:`\sigma(\ell_\theta(z))`.

        Shows the mean image of :math:`p_\theta(x \mid z)` (not a Bernoulli draw, which would be
        salt-and-pepper noise around it), as is customary. Returns ``(n, 1, 28, 28)``.
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        device = next(self.parameters()).device
        if prior is None:
            z = torch.randn(n, self.latent_dim, generator=generator)
        else:
            if prior.means.shape[-1] != self.latent_dim:
                raise ValueError(f"the prior is over {prior.means.shape[-1]}-dimensional codes, the model's are {self.latent_dim}-dimensional")
            z = prior.sample(n, None if y is None else torch.as_tensor(y).cpu(), generator=generator)
        return self.decode(z.to(device), y)


class CVAE(VAE):
    r"""A conditional VAE :math:`q_\phi(z \mid x, y)`, :math:`p_\theta(x \mid z, y)` with :math:`p(z) = \mathcal N(0, I)`
    (Sohn, Lee & Yan, 2015): :class:`VAE` with ``n_classes=10`` by default. Every method takes the labels ``y``."""

    def __init__(self, latent_dim: int = 16, n_classes: int = 10, **kwargs):
        if not isinstance(n_classes, int) or n_classes < 1:
            raise ValueError(f"n_classes must be a positive int for a conditional VAE, got {n_classes!r}")
        super().__init__(latent_dim=latent_dim, n_classes=n_classes, **kwargs)


# ----------------------------------------------------------------------------------------------
# A prior fitted to the codes after training
# ----------------------------------------------------------------------------------------------


class MixturePrior(nn.Module):
    r"""A Gaussian mixture over the latent space, fitted to codes after the VAE is trained
    (chapter 04, "ex-post density estimation", Ghosh et al., 2020):

    .. math:: p_\psi(z \,[\mid y]) = \sum_{k=1}^K \pi_{y,k}\, \mathcal N(z;\, m_{y,k},\, \Sigma_{y,k})

    with full covariances; one mixture for an unconditional VAE, one per class :math:`y` for a
    conditional one. The VAE's training pushed each :math:`q_\phi(z \mid x)` towards
    :math:`\mathcal N(0, I)`, but the codes of the training images (the *aggregate posterior*)
    do not fill that ball evenly: a code drawn from :math:`\mathcal N(0, I)` often lands where
    no training image was encoded, and the decoder answers with a blend. Drawing codes from a
    density fitted to the codes it was trained on avoids those regions. The decoder is unchanged;
    :math:`p_\psi` is a new prior, so the model :math:`p_\theta(x) = \int p_\theta(x \mid z)\,
    p_\psi(z)\,dz` has its own likelihood (:func:`evaluate` with ``prior=``).

    Build it with :meth:`fit` (expectation-maximisation by :class:`sklearn.mixture.GaussianMixture`);
    the parameters are buffers: ``weights`` ``(C, K)``, ``means`` ``(C, K, d)``, ``scale_tril``
    ``(C, K, d, d)`` (Cholesky factors of the covariances), with ``C = 1`` when unconditional.
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor):
        super().__init__()
        if weights.ndim != 2 or means.ndim != 3 or covariances.ndim != 4 or means.shape[:2] != weights.shape \
                or covariances.shape != (*means.shape, means.shape[-1]):
            raise ValueError("expected weights (C, K), means (C, K, d) and covariances (C, K, d, d), got "
                             f"{tuple(weights.shape)}, {tuple(means.shape)} and {tuple(covariances.shape)}")
        if bool((weights < 0).any()) or not torch.allclose(weights.sum(1), torch.ones(weights.shape[0], dtype=weights.dtype)):
            raise ValueError("weights must be non-negative and sum to 1 in each row")
        self.register_buffer("weights", weights.float())
        self.register_buffer("means", means.float())
        self.register_buffer("scale_tril", torch.linalg.cholesky(covariances.double()).float())

    @classmethod
    def fit(cls, codes: torch.Tensor, y: torch.Tensor | None = None, n_components: int = 10, *, n_classes: int | None = None,
            seed: int = 0, reg_covar: float = 1e-6) -> MixturePrior:
        r"""Fit ``n_components`` full-covariance Gaussians to ``codes`` ``(N, d)`` by EM
        (:class:`sklearn.mixture.GaussianMixture`, k-means start, ``random_state=seed``; ``reg_covar``
        is added to the covariances' diagonals). With labels ``y`` ``(N,)`` in ``0..n_classes-1``
        (``n_classes`` defaults to ``y.max() + 1``), one mixture is fitted to each class's codes."""
        from sklearn.mixture import GaussianMixture

        if not isinstance(codes, torch.Tensor) or codes.ndim != 2:
            got = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"codes must be a tensor of shape (N, d), got {got}")
        if not isinstance(n_components, int) or n_components < 1:
            raise ValueError(f"n_components must be a positive int, got {n_components!r}")
        codes = codes.detach().double().cpu()
        if y is None:
            groups = [codes]
        else:
            y = torch.as_tensor(y).long().cpu()
            if y.shape != (codes.shape[0],):
                raise ValueError(f"y must hold one label per code, shape ({codes.shape[0]},), got {tuple(y.shape)}")
            n_classes = int(y.max()) + 1 if n_classes is None else n_classes
            groups = [codes[y == c] for c in range(n_classes)]
        params = []
        for c, group in enumerate(groups):
            if group.shape[0] < max(2, n_components):
                what = "the codes" if y is None else f"class {c}"
                raise ValueError(f"{what}: need at least {max(2, n_components)} codes for {n_components} components, got {group.shape[0]}")
            gm = GaussianMixture(n_components, covariance_type="full", reg_covar=reg_covar, random_state=seed).fit(group.numpy())
            params.append([torch.from_numpy(a) for a in (gm.weights_, gm.means_, gm.covariances_)])
        weights, means, covs = (torch.stack(p) for p in zip(*params))
        return cls(weights / weights.sum(1, keepdim=True), means, covs)

    @property
    def n_classes(self) -> int:
        """0 for one mixture (unconditional), else the number of classes."""
        return 0 if self.weights.shape[0] == 1 else self.weights.shape[0]

    def _rows(self, y, n: int) -> torch.Tensor:
        if self.n_classes == 0:
            if y is not None:
                raise ValueError("this prior is unconditional: call it without y")
            return torch.zeros(n, dtype=torch.long, device=self.weights.device)
        if y is None:
            raise ValueError(f"this prior has one mixture per class ({self.n_classes}): pass the labels y")
        y = torch.as_tensor(y, device=self.weights.device).long()
        if y.shape != (n,) or bool((y < 0).any()) or bool((y >= self.n_classes).any()):
            raise ValueError(f"y must be ({n},) labels in 0..{self.n_classes - 1}, got shape {tuple(y.shape)}")
        return y

    def _mixture(self, c: int) -> torch.distributions.MixtureSameFamily:
        return torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(probs=self.weights[c]),
            torch.distributions.MultivariateNormal(self.means[c], scale_tril=self.scale_tril[c]),
        )

    def log_prob(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\log p_\psi(z \,[\mid y])` of codes ``z`` ``(N, d)`` (labels ``y`` ``(N,)`` when
        conditional); returns ``(N,)``."""
        d = self.means.shape[-1]
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != d:
            raise ValueError(f"z must have shape (N, {d}), got {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
        rows = self._rows(y, z.shape[0])
        out = torch.empty(z.shape[0], dtype=z.dtype, device=z.device)
        for c in rows.unique().tolist():
            mask = rows == c
            out[mask] = self._mixture(c).log_prob(z[mask].float()).to(z.dtype)
        return out

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``n`` codes ``(n, d)``: a component :math:`k \sim \pi_y`, then :math:`z = m_{y,k} + L_{y,k}\,\varepsilon`,
        :math:`\varepsilon \sim \mathcal N(0, I)`, all random numbers from ``generator`` (on the CPU)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        rows = self._rows(y, n).cpu()
        k = torch.multinomial(self.weights.cpu()[rows], 1, generator=generator).squeeze(1)  # (n,)
        eps = torch.randn(n, self.means.shape[-1], generator=generator)
        L, m = self.scale_tril.cpu()[rows, k], self.means.cpu()[rows, k]  # (n, d, d), (n, d)
        return (m + (L @ eps[:, :, None]).squeeze(-1)).to(self.means.device)

# ----------------------------------------------------------------------------------------------
# Held-out evaluation: ELBO and the importance-weighted bound
# ----------------------------------------------------------------------------------------------


def _device(model) -> torch.device:
    param = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def log_weights(model: VAE, x: torch.Tensor, K: int, y=None, generator: torch.Generator | None = None, chunk: int = 4096,
                prior: MixturePrior | None = None) -> torch.Tensor:
    r"""Importance log-weights :math:`\log w_k = \log p_\theta(x \mid z_k) + \log p(z_k) - \log q_\phi(z_k \mid x)`,
    :math:`z_k \sim q_\phi(z \mid x)`, for ``K`` samples per image.

    ``x`` ``(B, 1, 28, 28)`` (any ``(B, ...)`` the model takes; ``y`` ``(B,)`` for a conditional
    model). :math:`p(z)` is :math:`\mathcal N(0, I)`, or ``prior`` (a :class:`MixturePrior`, given
    ``y`` when it is per class). Decodes at most ``chunk`` codes at a time. Returns ``(K, B)``. Any model with ``encode``, ``decode_logits`` and
    ``latent_dim`` works (e.g. the MLP VAE of the benchmark).
    """
    return sum(_log_weight_terms(model, x, K, y, generator, chunk, prior))


def _log_weight_terms(model, x, K, y, generator, chunk, prior) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r""":math:`\log p_\theta(x \mid z_k)`, :math:`\log p(z_k)` and :math:`-\log q_\phi(z_k \mid x)`, each ``(K, B)``."""
    if not isinstance(K, int) or K < 1:
        raise ValueError(f"K must be a positive int, got {K!r}")
    if prior is not None and prior.n_classes and y is None:
        raise ValueError(f"the prior has one mixture per class ({prior.n_classes}): pass the labels y")
    mu, logvar = model.encode(x, y) if y is not None else model.encode(x)
    B, d = mu.shape
    per_pass = max(1, chunk // B)
    eps_all = torch.randn(K, B, d, generator=generator).to(mu.device)  # drawn at once: results do not depend on chunk
    out = ([], [], [])
    for k0 in range(0, K, per_pass):
        k = min(per_pass, K - k0)
        z = mu + torch.exp(0.5 * logvar) * eps_all[k0 : k0 + k]  # (k, B, d)
        zf = z.reshape(k * B, d)  # (k*B, d)
        logits = model.decode_logits(zf, y.repeat(k)) if y is not None else model.decode_logits(zf)
        x_k = x.repeat(k, *([1] * (x.ndim - 1)))  # (k*B, ...), the same order as zf
        log_px_z = losses.bernoulli_log_likelihood(x_k, logits).view(k, B)
        if prior is None:
            log_pz = losses.gaussian_log_density(z, torch.zeros(()), torch.zeros(()))  # (k, B)
        else:
            log_pz = prior.log_prob(zf, None if prior.n_classes == 0 else y.repeat(k)).view(k, B)
        log_qz = losses.gaussian_log_density(z, mu, logvar)  # (k, B)
        for part, term in zip(out, (log_px_z, log_pz, -log_qz)):
            part.append(term)
    return tuple(torch.cat(part, dim=0) for part in out)


@torch.no_grad()
def iwae_log_likelihood(model: VAE, x: torch.Tensor, K: int = 100, y=None, generator=None, batch_size: int = 100,
                        prior: MixturePrior | None = None) -> torch.Tensor:
    r"""Importance-sampled estimate of :math:`\log p_\theta(x)` per image: the IWAE bound
    :math:`\mathcal L_K(x) = \log\frac1K\sum_k w_k` (:func:`gencourse.losses.iwae_bound`, Burda et al., 2016).

    ``x`` ``(N, 1, 28, 28)``, processed ``batch_size`` images at a time. Returns ``(N,)`` in nats.
    :math:`\mathcal L_K \le \log p_\theta(x)` in expectation and tends to it as :math:`K \to \infty`;
    ``-iwae_log_likelihood(...).mean()`` is the held-out NLL the chapter reports. ``prior``: as in
    :func:`log_weights`.
    """
    x = checks.image_batch(x, (1, 28, 28))
    device = _device(model)
    parts = []
    for i in range(0, x.shape[0], batch_size):
        yb = None if y is None else y[i : i + batch_size].to(device)
        parts.append(losses.iwae_bound(log_weights(model, x[i : i + batch_size].to(device), K, yb, generator, prior=prior)).cpu())
    return torch.cat(parts)


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, y=None, K: int = 100, generator=None, batch_size: int = 100,
             prior: MixturePrior | None = None) -> dict:
    r"""Held-out numbers of a VAE, means over the ``N`` images of ``x``, per image in nats.

    Returns a dict of floats: ``elbo`` (the mean of the ``K`` log-weights, an unbiased
    ``K``-sample estimate of the ELBO, :math:`\frac1K\sum_k \log w_k`), ``rec``
    (:math:`-\mathbb E_q \log p(x\mid z)`, same samples), ``kl`` (closed form), ``iwae``
    (:math:`\mathcal L_K`), ``nll`` (:math:`-\mathcal L_K`), ``gap`` (:math:`\mathcal L_K - \mathrm{ELBO}`,
    :math:`\ge 0` for every image by Jensen's inequality, since log-mean-exp :math:`\ge` mean) and ``K``.
    The model is put in ``eval()`` mode and restored to its previous mode afterwards.

    With ``prior`` (a :class:`MixturePrior`) the numbers are those of the model with that prior:
    ``kl`` is then the Monte Carlo estimate :math:`\frac1K\sum_k[\log q_\phi(z_k \mid x) - \log p_\psi(z_k)]`
    (no closed form for a mixture).
    """
    x = checks.image_batch(x, (1, 28, 28))
    was_training = model.training
    model.eval()
    try:
        elbos, iwaes, kls = [], [], []
        device = _device(model)
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size].to(device)
            yb = None if y is None else y[i : i + batch_size].to(device)
            log_px_z, log_pz, neg_log_qz = _log_weight_terms(model, xb, K, yb, generator, 4096, prior)  # (K, B) each
            lw = log_px_z + log_pz + neg_log_qz
            elbos.append(lw.mean(0).cpu())
            iwaes.append(losses.iwae_bound(lw).cpu())
            if prior is None:
                mu, logvar = model.encode(xb, yb) if yb is not None else model.encode(xb)
                kls.append(losses.kl_gaussians(mu, logvar).cpu())
            else:  # no closed form: the Monte Carlo estimate at the same K codes
                kls.append(-(log_pz + neg_log_qz).mean(0).cpu())
    finally:
        model.train(was_training)
    elbo, iwae, kl = torch.cat(elbos).mean().item(), torch.cat(iwaes).mean().item(), torch.cat(kls).mean().item()
    return {"elbo": elbo, "rec": -(elbo + kl), "kl": kl, "iwae": iwae, "nll": -iwae, "gap": iwae - elbo, "K": K}


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    r"""Number of latent dimensions the encoder uses: :math:`\#\{k : \operatorname{Var}_x[\mu_k(x)] > \text{threshold}\}`.

    A dimension whose posterior mean does not vary with :math:`x` carries no information about the
    image (its KL term is ~0: "posterior collapse"). Burda, Grosse & Salakhutdinov (2016), section 5.2,
    use the threshold 0.01. ``mu``: encoder means ``(N, D)`` of ``N >= 2`` images.
    """
    if not isinstance(mu, torch.Tensor) or mu.ndim != 2 or mu.shape[0] < 2:
        raise ValueError(f"mu must have shape (N, D) with N >= 2, got {tuple(mu.shape) if isinstance(mu, torch.Tensor) else type(mu).__name__}")
    return int((mu.var(dim=0) > threshold).sum().item())


# ----------------------------------------------------------------------------------------------
# Walking the latent space
# ----------------------------------------------------------------------------------------------


def interpolate(z0: torch.Tensor, z1: torch.Tensor, n: int) -> torch.Tensor:
    r"""``n`` evenly spaced points on the segment from ``z0`` to ``z1``, both ends included.

    .. math:: z_j = (1 - t_j)\, z_0 + t_j\, z_1, \qquad t_j = \frac{j}{n - 1}, \quad j = 0, \dots, n - 1

    ``z0``, ``z1`` of shape ``(D,)``; returns ``(n, D)`` (``n >= 2``).
    """
    if not isinstance(z0, torch.Tensor) or not isinstance(z1, torch.Tensor) or z0.shape != z1.shape or z0.ndim != 1:
        raise ValueError("z0 and z1 must be tensors of the same shape (D,)")
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2 (both ends are included), got {n!r}")
    t = torch.linspace(0.0, 1.0, n, dtype=z0.dtype, device=z0.device)[:, None]  # (n, 1)
    return (1 - t) * z0 + t * z1


def gaussian_grid(n: int, p_max: float = 0.95) -> torch.Tensor:
    r"""An ``n`` × ``n`` grid of 2-D codes at the quantiles of :math:`\mathcal N(0, 1)` in each axis.

    .. math:: z_{ij} = \big(\Phi^{-1}(u_j), \Phi^{-1}(u_i)\big), \qquad u = \mathrm{linspace}(1 - p_\max, p_\max, n)

    so that equal steps carry equal prior mass (the manifold figures of Kingma & Welling, 2014).
    Rows go from high :math:`z_2` (top of the image) to low, columns from low :math:`z_1` to high.
    Returns ``(n * n, 2)``.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    if not 0.5 < p_max < 1.0:
        raise ValueError(f"p_max must be in (0.5, 1), got {p_max!r}")
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(1 - p_max, p_max, n))  # (n,)
    z2, z1 = torch.meshgrid(q.flip(0), q, indexing="ij")  # rows: z2 from high to low
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)  # (n*n, 2)


# ----------------------------------------------------------------------------------------------
# The linear-Gaussian latent model: log p(x) exact (chapter 04)
# ----------------------------------------------------------------------------------------------


class LinearGaussian:
    r"""The linear-Gaussian latent-variable model (probabilistic PCA, Tipping & Bishop, 1999).

    .. math:: z \sim \mathcal N(0, I_d), \qquad x \mid z \sim \mathcal N(W z + b, \sigma^2 I_D)

    Everything is exact: the marginal :math:`p(x) = \mathcal N(b, WW^\top + \sigma^2 I)`, the
    posterior :math:`p(z \mid x) = \mathcal N\big(M^{-1}W^\top(x - b), \sigma^2 M^{-1}\big)` with
    :math:`M = W^\top W + \sigma^2 I_d`, and the ELBO of any Gaussian
    :math:`q(z) = \mathcal N(m, \operatorname{diag} s^2)`, so that the identity
    :math:`\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q \,\|\, p(z\mid x))` can be checked with numbers.

    Args:
        W: ``(D, d)``; b: ``(D,)``; sigma2: the noise variance :math:`\sigma^2 > 0` (a float).
        Computations are in float64.
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma2: float):
        if not isinstance(W, torch.Tensor) or W.ndim != 2:
            raise ValueError(f"W must be a (D, d) tensor, got {tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__}")
        if not isinstance(b, torch.Tensor) or b.shape != (W.shape[0],):
            raise ValueError(f"b must have shape (D,) = ({W.shape[0]},), got {tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__}")
        if not isinstance(sigma2, (int, float)) or not sigma2 > 0:
            raise ValueError(f"sigma2 must be a number > 0 (a variance), got {sigma2!r}")
        self.W, self.b, self.sigma2 = W.double(), b.double(), float(sigma2)
        self.D, self.d = W.shape

    def _x(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.D:
            raise ValueError(f"x must have shape (N, D) = (N, {self.D}), got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        return x.double()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of :math:`x = Wz + b + \\sigma\\varepsilon`, shape ``(n, D)``."""
        z = torch.randn(n, self.d, generator=generator, dtype=torch.float64)
        noise = torch.randn(n, self.D, generator=generator, dtype=torch.float64)
        return z @ self.W.T + self.b + math.sqrt(self.sigma2) * noise

    def marginal(self) -> torch.distributions.MultivariateNormal:
        r""":math:`p(x) = \mathcal N(b, WW^\top + \sigma^2 I_D)`."""
        return torch.distributions.MultivariateNormal(self.b, self.W @ self.W.T + self.sigma2 * torch.eye(self.D, dtype=torch.float64))

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`\log p(x)` for ``x`` ``(N, D)``: returns ``(N,)`` in nats."""
        return self.marginal().log_prob(self._x(x))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Exact posterior :math:`p(z\mid x) = \mathcal N(M^{-1}W^\top(x - b), \sigma^2 M^{-1})`: mean ``(N, d)``, covariance ``(d, d)``."""
        x = self._x(x)
        M = self.W.T @ self.W + self.sigma2 * torch.eye(self.d, dtype=torch.float64)  # (d, d)
        mean = torch.linalg.solve(M, self.W.T @ (x - self.b).T).T  # (N, d)
        return mean, self.sigma2 * torch.linalg.inv(M)

    def elbo(self, x: torch.Tensor, m: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        r"""The ELBO of :math:`q(z) = \mathcal N(m, \operatorname{diag} e^{v})`, in closed form.

        .. math:: \mathrm{ELBO} = \mathbb E_q[\log p(x\mid z)] - \mathrm{KL}(q\,\|\,\mathcal N(0, I)), \qquad
                  \mathbb E_q[\log p(x\mid z)] = -\frac D2 \log(2\pi\sigma^2)
                  - \frac{\|x - b - Wm\|^2 + \sum_k e^{v_k}\,\|W_{:,k}\|^2}{2\sigma^2}

        ``x`` ``(N, D)``, ``m`` and ``logvar`` ``(N, d)``; returns ``(N,)`` in nats.
        """
        x = self._x(x)
        m, logvar = m.double(), logvar.double()
        if m.shape != (x.shape[0], self.d) or logvar.shape != m.shape:
            raise ValueError(f"m and logvar must have shape (N, d) = ({x.shape[0]}, {self.d}), got {tuple(m.shape)} and {tuple(logvar.shape)}")
        resid = x - self.b - m @ self.W.T  # (N, D)
        trace = (logvar.exp() * (self.W**2).sum(0)).sum(1)  # tr(W diag(s^2) W^T)
        expected_log_lik = -0.5 * self.D * math.log(2 * math.pi * self.sigma2) - ((resid**2).sum(1) + trace) / (2 * self.sigma2)
        return expected_log_lik - losses.kl_gaussians(m, logvar)


# ----------------------------------------------------------------------------------------------
# A KL-regularised autoencoder with a spatial latent, for latent flow matching (chapter 13)
# ----------------------------------------------------------------------------------------------


class LatentAutoencoder(nn.Module):
    r"""The first stage of latent diffusion (Rombach et al., 2022, section 3): a fully convolutional
    autoencoder from images :math:`x \in [-1, 1]^{1 \times 28 \times 28}` to a spatial latent
    :math:`z \in \mathbb R^{c \times 7 \times 7}` (``latent_channels`` :math:`c`; 4 gives
    196 numbers, 4 times fewer than pixels), with a small KL term towards :math:`\mathcal N(0, I)`
    that keeps the latents from drifting to arbitrary scales (the "KL-reg" variant of the paper):

    .. math:: \mathcal L = \frac{1}{784}\,\|x - D(z)\|^2 + \beta\,\frac{1}{7 \cdot 7 c}\,
              \mathrm{KL}\big(\mathcal N(\mu, \operatorname{diag}\sigma^2)\,\|\,\mathcal N(0, I)\big),
              \qquad z = \mu + \sigma \odot \varepsilon .

    Encoder: 3×3 convolutions at 28, 14 and 7 pixels (stride-2 4×4 convolutions between), SiLU, and a
    3×3 convolution to :math:`(\mu, \log\sigma^2)`; the decoder mirrors it with transposed
    convolutions, with no output non-linearity (a tanh saturates at the background value −1 and
    the training stalls there; clamp to :math:`[-1, 1]` to display). No normalisation layers.

    Args:
        latent_channels: :math:`c`.
        widths: channels at 28 and at 14/7 pixels.
    """

    def __init__(self, latent_channels: int = 4, widths: Sequence[int] = (32, 64)):
        super().__init__()
        if not isinstance(latent_channels, int) or latent_channels < 1:
            raise ValueError(f"latent_channels must be a positive int, got {latent_channels!r}")
        widths = tuple(widths)
        if len(widths) != 2 or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(f"widths must be two positive ints, got {widths!r}")
        a, b = widths
        self.latent_channels, self.latent_shape = latent_channels, (latent_channels, 7, 7)
        act = nn.SiLU
        self.encoder = nn.Sequential(
            nn.Conv2d(1, a, 3, padding=1), act(), nn.Conv2d(a, b, 4, 2, 1), act(),  # 28 -> 14
            nn.Conv2d(b, b, 3, padding=1), act(), nn.Conv2d(b, b, 4, 2, 1), act(),  # 14 -> 7
            nn.Conv2d(b, b, 3, padding=1), act(), nn.Conv2d(b, 2 * latent_channels, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, b, 3, padding=1), act(), nn.Conv2d(b, b, 3, padding=1), act(),
            nn.ConvTranspose2d(b, b, 4, 2, 1), act(), nn.Conv2d(b, b, 3, padding=1), act(),  # 7 -> 14
            nn.ConvTranspose2d(b, a, 4, 2, 1), act(), nn.Conv2d(a, 1, 3, padding=1),  # 14 -> 28
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(\mu, \log\sigma^2)` of images ``(B, 1, 28, 28)`` in :math:`[-1, 1]`, each ``(B, c, 7, 7)``."""
        x = checks.image_batch(x, (1, 28, 28))
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        r"""Images :math:`D(z)` (about :math:`[-1, 1]`, not clamped), ``(B, 1, 28, 28)``, of latents ``(B, c, 7, 7)``."""
        return self.decoder(checks.image_batch(z, self.latent_shape, "z"))

    def loss(self, x: torch.Tensor, beta: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        r"""The loss above on a batch (``generator`` draws :math:`\varepsilon`); returns
        ``(loss, {"mse": ..., "kl": ...})`` with the two terms as floats (per pixel, per latent entry)."""
        mu, logvar = self.encode(x)
        eps = distributed.randn(mu.shape, generator=generator, device=generator.device if generator is not None else None).to(mu.device)
        z = mu + (0.5 * logvar).exp() * eps
        mse = (self.decode(z) - x).pow(2).mean()
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).mean()
        return mse + beta * kl, {"mse": mse.item(), "kl": kl.item()}
