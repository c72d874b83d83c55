r"""Wasserstein GANs: critics, generators and measurements of the critic (chapter 08).

A Wasserstein GAN trains a **critic** :math:`f` that returns a real score (no sigmoid) and should be
1-Lipschitz, so that :math:`\mathbb E f(x_\text{real}) - \mathbb E f(G(z))` estimates
:math:`W_1` (Kantorovich–Rubinstein, chapter 02). The losses are in :mod:`gencourse.losses`
(:func:`~gencourse.losses.wgan_critic_loss`, :func:`~gencourse.losses.gradient_penalty`,
:func:`~gencourse.losses.clip_weights_`), the one-step updates :func:`gencourse.train.critic_step`
and :func:`gencourse.train.wgan_g_step`.

* :class:`ConvCritic` — the DCGAN discriminator of chapter 07 **without batch norm** (the penalty
  is per sample; batch norm would make each score depend on the rest of the batch).
* :class:`ConvGenerator` — a DCGAN-like generator whose batch norm and activation can be changed:
  the architectures of the robustness experiment (Gulrajani et al., 2017, section 5.2).
* :class:`PublicMLPGenerator`, :class:`PublicMLPCritic` — the widely copied MLP WGAN-GP recipe,
  the reference of ``benchmarks/wgan_vs_mlp.py``.
* :func:`critic_grad_norms` — :math:`\|\nabla_x f(x)\|_2` per sample, to watch the Lipschitz
  constraint; :func:`lipschitz_bound` — the product of the layers' spectral norms, an upper bound
  on a network's Lipschitz constant.

The training recipe of chapter 08's MNIST WGAN-GP is in :mod:`gencourse.recipes.wgan` when that
package exists, else below (:func:`wgan_settings`, :func:`wgan_mnist`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..nn import MLP, up_block

__all__ = [
    "ConvCritic",
    "ConvGenerator",
    "PublicMLPGenerator",
    "PublicMLPCritic",
    "critic_grad_norms",
    "lipschitz_bound",
]


def _check_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _check_images(x, channels: int, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (channels, 28, 28):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (B, {channels}, 28, 28), got {got}")
    return x


_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "lrelu": lambda: nn.LeakyReLU(0.2)}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


class ConvCritic(nn.Module):
    r"""A WGAN critic for 28×28 images: chapter 07's DCGAN discriminator without batch norm.

    ============================  ==========================
    layer                         output ``(B, C, H, W)``
    ============================  ==========================
    Conv 4×4, stride 2, pad 1     ``(B, ndf, 14, 14)``
    activation
    Conv 4×4, stride 2, pad 1     ``(B, 2·ndf, 7, 7)``
    activation
    Conv 7×7, stride 1            ``(B, 1, 1, 1)``: the score
    ============================  ==========================

    No batch norm anywhere (Gulrajani et al., 2017, section 4: the penalty constrains the gradient
    of each score with respect to its own input, which batch norm would tie to the other samples
    of the batch). ``activation`` is ``"lrelu"`` (LeakyReLU(0.2), default) or ``"tanh"``.
    Input ``(B, channels, 28, 28)``; output ``(B,)``: scores, not logits.
    """

    def __init__(self, ndf: int = 16, channels: int = 1, activation: str = "lrelu"):
        super().__init__()
        _check_int("ndf", ndf)
        self.channels = _check_int("channels", channels)
        self.net = nn.Sequential(
            nn.Conv2d(channels, ndf, 4, 2, 1), _activation(activation),  # (B, ndf, 14, 14)
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1), _activation(activation),  # (B, 2ndf, 7, 7)
            nn.Conv2d(2 * ndf, 1, 7, 1, 0),  # (B, 1, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_check_images(x, self.channels)).flatten()  # (B,)


class ConvGenerator(nn.Module):
    r"""A DCGAN-like generator for 28×28 images with switchable batch norm and activation.

    With ``constant_width=False`` it is chapter 07's :class:`gencourse.models.gan.DCGANGenerator`
    (``z`` → ConvT 7×7 to ``4·ngf`` channels at 7×7 → ConvT to ``2·ngf`` at 14×14 → ConvT to
    ``ngf`` at 28×28 → Conv 3×3 → Tanh); with ``constant_width=True`` every hidden layer has
    ``2·ngf`` channels. ``batch_norm=False`` removes the batch norm after each transposed
    convolution, ``activation="tanh"`` replaces the ReLUs (the variants of Gulrajani et al., 2017,
    figure 2). Input ``(B, latent_dim)``; output ``(B, channels, 28, 28)`` in :math:`(-1, 1)`.
    """

    def __init__(self, latent_dim: int = 64, ngf: int = 16, channels: int = 1, *, batch_norm: bool = True,
                 activation: str = "relu", constant_width: bool = False):
        super().__init__()
        self.latent_dim = _check_int("latent_dim", latent_dim)
        _check_int("ngf", ngf)
        self.channels = _check_int("channels", channels)
        widths = (2 * ngf, 2 * ngf, 2 * ngf) if constant_width else (4 * ngf, 2 * ngf, ngf)
        blocks = [up_block(latent_dim, widths[0], kernel_size=7, stride=1, padding=0, batch_norm=batch_norm),  # 7x7
                  up_block(widths[0], widths[1], batch_norm=batch_norm),  # 14x14
                  up_block(widths[1], widths[2], batch_norm=batch_norm)]  # 28x28
        if activation != "relu":
            for block in blocks:
                block[-1] = _activation(activation)
        self.net = nn.Sequential(*blocks, nn.Conv2d(widths[2], channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {getattr(z, 'shape', type(z).__name__)}")
        return self.net(z[:, :, None, None])  # (B, d, 1, 1) -> (B, C, 28, 28)


class PublicMLPGenerator(nn.Module):
    r"""The generator of the most-copied public MLP WGAN-GP recipe, written from its description:
    ``z`` (100) → 128 → 256 → 512 → 1024 → 784, LeakyReLU(0.2) after each hidden layer, batch norm
    (``eps = 0.8``, as that code passes 0.8 as BatchNorm1d's second argument) on the 256, 512 and
    1024 layers, Tanh on the output. Input ``(B, latent_dim)``; output ``(B, 1, 28, 28)``."""

    def __init__(self, latent_dim: int = 100, hidden: Sequence[int] = (128, 256, 512, 1024)):
        super().__init__()
        self.latent_dim = _check_int("latent_dim", latent_dim)
        layers: list[nn.Module] = []
        sizes = [latent_dim, *hidden]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i > 0:
                layers.append(nn.BatchNorm1d(n_out, 0.8))
            layers.append(nn.LeakyReLU(0.2))
        layers += [nn.Linear(sizes[-1], 784), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 28, 28)  # (B, 1, 28, 28)


class PublicMLPCritic(nn.Module):
    r"""The critic of the public MLP WGAN-GP recipe: 784 → 512 → 256 → 1 with LeakyReLU(0.2).
    Input ``(B, 1, 28, 28)``; output ``(B,)``."""

    def __init__(self, hidden: Sequence[int] = (512, 256)):
        super().__init__()
        self.net = MLP([784, *hidden, 1], activation=lambda: nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)  # (B,)


def critic_grad_norms(critic: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    r"""The norm of the critic's gradient at each point, :math:`\|\nabla_x f(x_b)\|_2` over all
    dimensions of the sample (all pixels), ``(B,)``. A 1-Lipschitz critic has all of them
    :math:`\le 1`; the optimal WGAN-GP critic has them :math:`= 1` between the two distributions.
    ``x`` ``(B, ...)``; the critic's parameters get no gradient."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        raise ValueError(f"x must be a tensor of shape (B, ...), got {getattr(x, 'shape', type(x).__name__)}")
    norms = []
    flags = [p.requires_grad for p in critic.parameters()]
    critic.requires_grad_(False)
    try:
        with torch.enable_grad():
            for xb in x.detach().split(batch_size):
                xb = xb.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(critic(xb).sum(), xb)
                norms.append(grad.flatten(1).norm(dim=1))  # (b,) one norm per sample
    finally:
        for p, flag in zip(critic.parameters(), flags):
            p.requires_grad_(flag)
    return torch.cat(norms)


def lipschitz_bound(module: nn.Module) -> float:
    r"""An upper bound on the Lipschitz constant (for the Euclidean norm) of a stack of linear layers
    and 1-Lipschitz activations (ReLU, LeakyReLU, Tanh):

    .. math:: \|f\|_L \le \prod_{l} \|W_l\|_2

    the product of the layers' spectral norms (largest singular values). ``module`` is an
    ``nn.Sequential`` (or any module) whose ``nn.Linear`` layers are applied in sequence. With weight
    clipping at :math:`c`, :math:`\|W\|_2 \le c\sqrt{n_\text{in} n_\text{out}}`: clipping bounds the
    constant, but not at 1 (chapter 08)."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("module has no nn.Linear layer")
    return math.prod(torch.linalg.matrix_norm(m.weight.detach().double(), ord=2).item() for m in linears)
