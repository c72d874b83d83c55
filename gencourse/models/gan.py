r"""Generative adversarial networks: MLP GANs and DCGANs (chapters 06–07).

A GAN is a generator :math:`G: z \mapsto x`, :math:`z \sim \mathcal N(0, I)`, and a discriminator
:math:`D` that outputs a **logit** :math:`d(x)` (the probability that :math:`x` is real is
:math:`\sigma(d(x))`); the losses are in :mod:`gencourse.losses` and the one-step updates
:func:`gencourse.train.d_step` / :func:`gencourse.train.g_step`.

* :class:`MLPGenerator`, :class:`MLPDiscriminator` — fully connected networks for 2-D toys and
  for MNIST (Goodfellow et al., 2014; chapter 06).
* :class:`DCGANGenerator`, :class:`DCGANDiscriminator` — the DCGAN of chapter 07 for 28×28 images
  (Radford, Metz & Chintala, 2016, adapted to MNIST: 7 → 14 → 28).
* :class:`ClassicDCGANGenerator`, :class:`ClassicDCGANDiscriminator` — the 64×64 DCGAN as published
  (4 → 8 → 16 → 32 → 64, ``ngf = ndf = 64``), the reference of ``benchmarks/dcgan_vs_classic.py``.
* :func:`dcgan_init_` — the paper's initialisation :math:`\mathcal N(0, 0.02^2)`.
* :func:`sample_z`, :func:`generate` — latent codes and samples.
* :func:`slerp`, :func:`attribute_direction`, :func:`ink`, :func:`slant` — walking the latent
  space and latent vector arithmetic (chapter 07).

Chapter 07's training recipe is :mod:`gencourse.recipes.dcgan`; mode coverage and nearest
neighbours (chapter 06's measures of mode collapse and memorisation) are in :mod:`gencourse.metrics`.

Images are in :math:`[-1, 1]` (``value_range="pm1"`` of :func:`gencourse.data.mnist`): the
generators end with :math:`\tanh`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .. import checks, data
from ..nn import MLP, down_block, up_block

__all__ = [
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "ClassicDCGANGenerator",
    "ClassicDCGANDiscriminator",
    "dcgan_init_",
    "sample_z",
    "generate",
    "slerp",
    "ink",
    "slant",
    "attribute_direction",
]


def _check_z(z, latent_dim: int) -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != latent_dim:
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"z must have shape (B, latent_dim) = (B, {latent_dim}), got {got}")
    return z


# ----------------------------------------------------------------------------------------------
# MLP GAN (chapter 06)
# ----------------------------------------------------------------------------------------------


class MLPGenerator(nn.Module):
    r"""A fully connected generator :math:`G_\theta: \mathbb R^{d} \to \mathbb R^{\text{out\_shape}}`.

    An :class:`gencourse.nn.MLP` ``latent_dim → hidden... → prod(out_shape)`` with ReLU, reshaped
    to ``out_shape``. With ``tanh=True`` (images in :math:`[-1, 1]`) the output goes through
    :math:`\tanh`; for 2-D toy data keep ``tanh=False`` (a linear output).

    Args:
        latent_dim: :math:`d`, the size of :math:`z`.
        out_shape: shape of one sample, e.g. ``(2,)`` or ``(1, 28, 28)``.
        hidden: widths of the hidden layers.
        tanh: end with :math:`\tanh`.

    Input ``z`` ``(B, latent_dim)``; output ``(B, *out_shape)``.

    >>> MLPGenerator(8, (1, 28, 28))(torch.zeros(3, 8)).shape
    torch.Size([3, 1, 28, 28])
    """

    def __init__(self, latent_dim: int = 64, out_shape: Sequence[int] = (1, 28, 28), hidden: Sequence[int] = (256, 512), tanh: bool = True):
        super().__init__()
        self.latent_dim = checks.positive_int(latent_dim, "latent_dim")
        self.out_shape = tuple(checks.positive_int(s, "out_shape") for s in out_shape)
        if not self.out_shape:
            raise ValueError("out_shape must have at least one dimension, got ()")
        self.net = MLP([latent_dim, *hidden, math.prod(self.out_shape)], activation=nn.ReLU,
                       final_activation=nn.Tanh if tanh else None)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = _check_z(z, self.latent_dim)
        return self.net(z).view(-1, *self.out_shape)  # (B, *out_shape)


class MLPDiscriminator(nn.Module):
    r"""A fully connected discriminator that returns **logits** :math:`d(x)`, :math:`D(x) = \sigma(d(x))`.

    Flattens ``x`` ``(B, *in_shape)`` and applies an MLP ``prod(in_shape) → hidden... → 1`` with
    LeakyReLU(0.2) between layers (no sigmoid: the losses take logits). Returns ``(B,)``.

    >>> MLPDiscriminator((2,), hidden=(16,))(torch.zeros(5, 2)).shape
    torch.Size([5])
    """

    def __init__(self, in_shape: Sequence[int] = (1, 28, 28), hidden: Sequence[int] = (512, 256), slope: float = 0.2):
        super().__init__()
        self.in_shape = tuple(checks.positive_int(s, "in_shape") for s in in_shape)
        if not self.in_shape:
            raise ValueError("in_shape must have at least one dimension, got ()")
        layers: list[nn.Module] = []
        sizes = [math.prod(self.in_shape), *hidden]
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(slope)]
        layers.append(nn.Linear(sizes[-1], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = checks.image_batch(x, self.in_shape)
        return self.net(x.flatten(1)).squeeze(1)  # (B,) logits


# ----------------------------------------------------------------------------------------------
# DCGAN for 28x28 images (chapter 07)
# ----------------------------------------------------------------------------------------------


class DCGANGenerator(nn.Module):
    r"""The DCGAN generator adapted to 28×28 images (chapter 07).

    ============================  ==========================  =========================
    layer                         output ``(B, C, H, W)``     DCGAN guideline
    ============================  ==========================  =========================
    ``z`` reshaped                ``(B, d, 1, 1)``
    ConvT 7×7, stride 1           ``(B, 4·ngf, 7, 7)``        "project and reshape"
    BN, ReLU
    ConvT 4×4, stride 2, pad 1    ``(B, 2·ngf, 14, 14)``      strided, no pooling
    BN, ReLU
    ConvT 4×4, stride 2, pad 1    ``(B, ngf, 28, 28)``        batch norm in G
    BN, ReLU
    Conv 3×3, stride 1, pad 1     ``(B, C, 28, 28)``          no BN on the output
    Tanh                                                      images in [-1, 1]
    ============================  ==========================  =========================

    No fully connected hidden layer; every layer but the last is followed by batch norm and
    ReLU (Radford, Metz & Chintala, 2016, section 3). The 64×64 original grows 4 → 8 → 16 → 32 → 64;
    here 1 → 7 → 14 → 28, and a last 3×3 convolution at full resolution smooths the
    checkerboard of the stride-2 transposed convolutions. Initialise with :func:`dcgan_init_`.

    Args:
        latent_dim: :math:`d`.
        ngf: width unit (channels ``4·ngf, 2·ngf, ngf``).
        channels: ``C`` of the output.

    Input ``z`` ``(B, latent_dim)``; output ``(B, channels, 28, 28)`` in :math:`(-1, 1)`.
    """

    def __init__(self, latent_dim: int = 64, ngf: int = 16, channels: int = 1):
        super().__init__()
        self.latent_dim = checks.positive_int(latent_dim, "latent_dim")
        checks.positive_int(ngf, "ngf")
        self.channels = checks.positive_int(channels, "channels")
        self.net = nn.Sequential(
            up_block(latent_dim, 4 * ngf, kernel_size=7, stride=1, padding=0),  # (B, 4ngf, 7, 7)
            up_block(4 * ngf, 2 * ngf),  # (B, 2ngf, 14, 14)
            up_block(2 * ngf, ngf),  # (B, ngf, 28, 28)
            nn.Conv2d(ngf, channels, kernel_size=3, stride=1, padding=1),  # (B, C, 28, 28)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = _check_z(z, self.latent_dim)
        return self.net(z[:, :, None, None])  # (B, d, 1, 1) -> (B, C, 28, 28)


class DCGANDiscriminator(nn.Module):
    r"""The DCGAN discriminator adapted to 28×28 images (chapter 07); returns logits ``(B,)``.

    ============================  ==========================  =========================
    layer                         output ``(B, C, H, W)``     DCGAN guideline
    ============================  ==========================  =========================
    Conv 4×4, stride 2, pad 1     ``(B, ndf, 14, 14)``        strided, no pooling
    LeakyReLU(0.2)                                            no BN on D's input layer
    Conv 4×4, stride 2, pad 1     ``(B, 2·ndf, 7, 7)``
    BN, LeakyReLU(0.2)                                        LeakyReLU in D
    Conv 7×7, stride 1            ``(B, 1, 1, 1)``            no fully connected layer
    ============================  ==========================  =========================

    The last convolution covers the whole 7×7 map and gives one logit per image (the paper's
    "flattened and fed into a single sigmoid output"; the sigmoid is in the loss). Initialise
    with :func:`dcgan_init_`.
    """

    def __init__(self, ndf: int = 16, channels: int = 1, slope: float = 0.2):
        super().__init__()
        checks.positive_int(ndf, "ndf")
        self.channels = checks.positive_int(channels, "channels")
        self.net = nn.Sequential(
            down_block(channels, ndf, batch_norm=False, slope=slope),  # (B, ndf, 14, 14)
            down_block(ndf, 2 * ndf, slope=slope),  # (B, 2ndf, 7, 7)
            nn.Conv2d(2 * ndf, 1, kernel_size=7, stride=1, padding=0),  # (B, 1, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = checks.image_batch(x, (self.channels, 28, 28))
        return self.net(x).flatten()  # (B,) logits


# ----------------------------------------------------------------------------------------------
# The 64x64 DCGAN as published (benchmark reference)
# ----------------------------------------------------------------------------------------------


class ClassicDCGANGenerator(nn.Module):
    r"""The DCGAN generator of Radford, Metz & Chintala (2016), figure 1, for 64×64 images.

    ``z`` ``(B, latent_dim)`` → ConvT 4×4 (stride 1) to ``(B, 8·ngf, 4, 4)`` → three ConvT 4×4,
    stride 2, pad 1 (``4·ngf`` at 8×8, ``2·ngf`` at 16×16, ``ngf`` at 32×32), each with batch norm
    and ReLU → ConvT 4×4, stride 2 to ``(B, channels, 64, 64)`` → Tanh. The paper's settings:
    ``latent_dim = 100``, ``ngf = 64``, Adam with learning rate 2e-4 and :math:`\beta_1 = 0.5`,
    batch 128 (the benchmark uses 64), weights :math:`\mathcal N(0, 0.02^2)`.
    """

    def __init__(self, latent_dim: int = 100, ngf: int = 64, channels: int = 1):
        super().__init__()
        self.latent_dim = checks.positive_int(latent_dim, "latent_dim")
        checks.positive_int(ngf, "ngf")
        self.channels = checks.positive_int(channels, "channels")
        self.net = nn.Sequential(
            up_block(latent_dim, 8 * ngf, kernel_size=4, stride=1, padding=0),  # (B, 8ngf, 4, 4)
            up_block(8 * ngf, 4 * ngf),  # (B, 4ngf, 8, 8)
            up_block(4 * ngf, 2 * ngf),  # (B, 2ngf, 16, 16)
            up_block(2 * ngf, ngf),  # (B, ngf, 32, 32)
            nn.ConvTranspose2d(ngf, channels, kernel_size=4, stride=2, padding=1),  # (B, C, 64, 64)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = _check_z(z, self.latent_dim)
        return self.net(z[:, :, None, None])


class ClassicDCGANDiscriminator(nn.Module):
    r"""The DCGAN discriminator of Radford, Metz & Chintala (2016) for 64×64 images; logits ``(B,)``.

    Four Conv 4×4, stride 2, pad 1 (``ndf`` at 32×32 without batch norm, then ``2·ndf``, ``4·ndf``,
    ``8·ndf`` at 16, 8, 4 with batch norm), LeakyReLU(0.2) after each, then Conv 4×4 (stride 1)
    to one logit.
    """

    def __init__(self, ndf: int = 64, channels: int = 1, slope: float = 0.2):
        super().__init__()
        checks.positive_int(ndf, "ndf")
        self.channels = checks.positive_int(channels, "channels")
        self.net = nn.Sequential(
            down_block(channels, ndf, batch_norm=False, slope=slope),  # (B, ndf, 32, 32)
            down_block(ndf, 2 * ndf, slope=slope),  # (B, 2ndf, 16, 16)
            down_block(2 * ndf, 4 * ndf, slope=slope),  # (B, 4ndf, 8, 8)
            down_block(4 * ndf, 8 * ndf, slope=slope),  # (B, 8ndf, 4, 4)
            nn.Conv2d(8 * ndf, 1, kernel_size=4, stride=1, padding=0),  # (B, 1, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = checks.image_batch(x, (self.channels, 64, 64))
        return self.net(x).flatten()


def dcgan_init_(module: nn.Module) -> nn.Module:
    r"""The DCGAN initialisation, in place: convolution weights :math:`\sim \mathcal N(0, 0.02^2)`,
    batch-norm scales :math:`\sim \mathcal N(1, 0.02^2)`, biases 0 (Radford et al., 2016, section 4).

    Use as ``dcgan_init_(G)``; returns ``module``. Linear layers are initialised like convolutions.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be an nn.Module, got {type(module).__name__}")
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------


def sample_z(n: int, latent_dim: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    r"""``n`` latent codes :math:`z \sim \mathcal N(0, I_d)`, shape ``(n, latent_dim)``, on ``device``."""
    checks.positive_int(n, "n")
    checks.positive_int(latent_dim, "latent_dim")
    z = torch.randn(n, latent_dim, generator=generator, device=generator.device if generator is not None else None)
    return z.to(device) if device is not None else z


@torch.no_grad()
def generate(G: nn.Module, n: int | None = None, *, z: torch.Tensor | None = None, generator: torch.Generator | None = None,
             batch_size: int = 500) -> torch.Tensor:
    r"""Samples :math:`G(z)`, :math:`z \sim \mathcal N(0, I)`, without gradients, in evaluation mode.

    Give ``n`` (codes drawn with ``generator``) or the codes ``z`` ``(n, latent_dim)``. ``G`` must
    have ``latent_dim``. Batch norm uses its running statistics (``G.eval()``); the mode of ``G`` is
    restored afterwards. Runs ``batch_size`` codes at a time; returns ``(n, ...)`` on the CPU.
    """
    device = next(G.parameters()).device
    if z is None:
        if n is None:
            raise ValueError("give n (the number of samples) or z (the codes)")
        z = sample_z(n, G.latent_dim, generator)
    else:
        _check_z(z, G.latent_dim)
    was_training = G.training
    G.eval()
    try:
        out = [G(zb.to(device)).cpu() for zb in z.split(batch_size)]
    finally:
        G.train(was_training)
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------
# Walking the latent space; latent vector arithmetic (chapter 07)
# ----------------------------------------------------------------------------------------------


def slerp(z0: torch.Tensor, z1: torch.Tensor, n: int) -> torch.Tensor:
    r"""``n`` points on the great-circle arc from ``z0`` to ``z1`` (spherical interpolation).

    .. math:: z_j = \frac{\sin((1 - t_j)\,\Omega)}{\sin\Omega}\, z_0 + \frac{\sin(t_j\,\Omega)}{\sin\Omega}\, z_1,
              \qquad \cos\Omega = \frac{z_0 \cdot z_1}{\|z_0\|\,\|z_1\|}, \quad t_j = \frac{j}{n - 1}

    For :math:`z \sim \mathcal N(0, I_d)` with large :math:`d`, codes concentrate near the sphere of
    radius :math:`\sqrt d`; a straight line between two of them passes closer to the origin, where
    the generator saw few codes, and slerp stays at their norm (White, 2016, *Sampling generative
    networks*). Falls back to linear interpolation when :math:`z_0 \parallel z_1`.
    ``z0``, ``z1`` of shape ``(D,)``; returns ``(n, D)`` with both ends included (``n >= 2``).
    """
    if not isinstance(z0, torch.Tensor) or not isinstance(z1, torch.Tensor) or z0.shape != z1.shape or z0.ndim != 1:
        raise ValueError("z0 and z1 must be tensors of the same shape (D,)")
    checks.positive_int(n, "n", low=2)
    t = torch.linspace(0.0, 1.0, n, dtype=z0.dtype, device=z0.device)[:, None]  # (n, 1)
    cos = (z0 @ z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def _to01(x: torch.Tensor, value_range: str) -> torch.Tensor:
    if value_range not in ("01", "pm1"):
        raise ValueError(f"value_range must be '01' or 'pm1', got {value_range!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"x must be grey images (B, 1, H, W), got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    x = x.detach().float()
    return data.from_pm1(x, strict=False) if value_range == "pm1" else x.clamp(0, 1)


def ink(x: torch.Tensor, value_range: str = "pm1") -> torch.Tensor:
    r"""Stroke thickness as the mean ink per image: :math:`\frac{1}{HW}\sum_{i,j} x_{ij}` with
    :math:`x \in [0, 1]` (white strokes on black). ``x`` ``(B, 1, H, W)``; returns ``(B,)``."""
    return _to01(x, value_range).mean(dim=(1, 2, 3))


def slant(x: torch.Tensor, value_range: str = "pm1") -> torch.Tensor:
    r"""The slant of a digit from its second image moments: the horizontal shift per row upwards.

    With the ink :math:`m_{ij} = x_{ij}` as mass, column :math:`c_j` and height
    :math:`r_i = -(\text{row index})` (up is positive), centred at the centre of mass:

    .. math:: \text{slant} = \frac{\sum_{ij} m_{ij}\,(c_j - \bar c)(r_i - \bar r)}{\sum_{ij} m_{ij}\,(r_i - \bar r)^2}

    the slope of the least-squares line :math:`c = \bar c + \text{slant}\,(r - \bar r)`: positive for a
    digit that leans right (as in italic), negative for one that leans left (the moment used to
    deskew MNIST). ``x`` ``(B, 1, H, W)``; returns ``(B,)``.
    """
    m = _to01(x, value_range)[:, 0]  # (B, H, W)
    B, H, W = m.shape
    r = -torch.arange(H, dtype=m.dtype, device=m.device)[:, None].expand(H, W)  # up is positive
    c = torch.arange(W, dtype=m.dtype, device=m.device)[None, :].expand(H, W)
    mass = m.sum(dim=(1, 2)).clamp_min(1e-8)  # (B,)
    r_bar = (m * r).sum(dim=(1, 2)) / mass
    c_bar = (m * c).sum(dim=(1, 2)) / mass
    dr = r - r_bar[:, None, None]  # (B, H, W)
    dc = c - c_bar[:, None, None]
    return (m * dc * dr).sum(dim=(1, 2)) / (m * dr * dr).sum(dim=(1, 2)).clamp_min(1e-8)


def attribute_direction(z: torch.Tensor, score: torch.Tensor, q: float = 0.2, groups: torch.Tensor | None = None) -> torch.Tensor:
    r"""A latent direction for a visual attribute: the mean code of the samples that have most of it
    minus the mean code of those that have least.

    .. math:: v = \frac{1}{|T|}\sum_{i \in T} z_i - \frac{1}{|L|}\sum_{i \in L} z_i

    where :math:`T` and :math:`L` are the ``q`` fractions of the codes with the highest and the
    lowest ``score`` (e.g. :func:`ink` or :func:`slant` of :math:`G(z_i)`). Averaging many codes
    cancels what the groups do not share (Radford et al., 2016, section 6.3, averaged three
    exemplars per concept). With ``groups`` (e.g. the predicted digit of each sample) the
    difference is taken inside each group and the differences are averaged,
    :math:`v = \frac{1}{|C|}\sum_{c \in C} v_c` over the groups :math:`C` with at least
    :math:`2/q` members, so that an attribute correlated with the class (a 1 has less ink than
    a 0) does not turn into a direction that changes the class.

    ``z`` ``(n, d)``, ``score`` ``(n,)``, ``groups`` ``(n,)`` integer labels or ``None``; returns
    ``(d,)``: add a multiple of it to any code.
    """
    if not isinstance(z, torch.Tensor) or z.ndim != 2:
        raise ValueError(f"z must have shape (n, d), got {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
    if not isinstance(score, torch.Tensor) or score.shape != (z.shape[0],):
        got = tuple(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
        raise ValueError(f"score must have shape (n,) = ({z.shape[0]},), got {got}")
    if not 0 < q <= 0.5:
        raise ValueError(f"q must be in (0, 0.5], got {q!r}")
    if groups is None:
        m = max(1, int(q * z.shape[0]))
        order = score.argsort()
        return z[order[-m:]].mean(0) - z[order[:m]].mean(0)
    if not isinstance(groups, torch.Tensor) or groups.shape != (z.shape[0],) or groups.is_floating_point():
        raise ValueError(f"groups must be integer labels of shape (n,) = ({z.shape[0]},), got "
                         f"{tuple(groups.shape) if isinstance(groups, torch.Tensor) else type(groups).__name__}")
    parts = [attribute_direction(z[groups == c], score[groups == c], q) for c in groups.unique() if (groups == c).sum() * q >= 2]
    if not parts:
        raise ValueError(f"no group has at least 2/q = {2 / q:g} members")
    return torch.stack(parts).mean(0)
