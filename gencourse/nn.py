r"""Building blocks shared by the models of the course.

Sections (one per family of blocks; each says which chapters use it):

* **MLP** — a multilayer perceptron (the MLP GANs of chapter 06, the WGAN critic of chapter 08; the classic
  MLP VAE that chapter 04 is compared with is written out in ``benchmarks/vae_vs_mlp.py``).
* **Convolutional encoder and decoder for 28×28 images** — chapters 03–04 (autoencoders, VAEs).
* **Transposed convolution by hand; DCGAN blocks** — chapters 06–07 (output-size arithmetic,
  ``conv_transpose2d_by_hand``, ``up_block`` / ``down_block``).
* **Diffusion** — chapter 12 (sinusoidal time embedding, ``TimeResBlock``, the small
  ``DiffusionUNet`` for 28×28 images, ``TimeMLP`` for 2-D toys).

Shapes follow ``B, C, H, W = x.shape``. Nothing here draws random numbers except the
initialisation of weights (seed with :func:`gencourse.config.seed_everything`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from . import checks

__all__ = ["MLP", "ConvEncoder", "ConvDecoder"]


def _check_positive_ints(name: str, values, allow_empty: bool = False) -> tuple[int, ...]:
    """A tuple of positive ints (one or several, e.g. layer widths), each checked by :func:`gencourse.checks.positive_int`."""
    values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    if not values and not allow_empty:
        raise ValueError(f"{name} must be positive ints, got {values!r}")
    try:
        return tuple(checks.positive_int(v, name) for v in values)
    except ValueError:
        raise ValueError(f"{name} must be positive ints, got {values!r}") from None


# ----------------------------------------------------------------------------------------------
# MLP
# ----------------------------------------------------------------------------------------------


class MLP(nn.Sequential):
    r"""A multilayer perceptron :math:`x \mapsto W_L\,\phi(\cdots \phi(W_1 x + b_1) \cdots) + b_L`.

    Args:
        sizes: layer widths ``(in, hidden_1, ..., out)``, at least two entries.
        activation: the non-linearity :math:`\phi` between layers (a module class, default ReLU).
        final_activation: an optional module class applied after the last layer (e.g. ``nn.Sigmoid``).

    Input ``(B, in)``, output ``(B, out)``.

    >>> MLP([784, 400, 20])(torch.zeros(3, 784)).shape
    torch.Size([3, 20])
    """

    def __init__(self, sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU, final_activation: type[nn.Module] | None = None):
        sizes = _check_positive_ints("sizes", list(sizes))
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least the input and output widths, got {sizes!r}")
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(activation())
        if final_activation is not None:
            layers.append(final_activation())
        super().__init__(*layers)
        self.sizes = sizes


# ----------------------------------------------------------------------------------------------
# Convolutional encoder and decoder for 28x28 images (chapters 03-04)
# ----------------------------------------------------------------------------------------------


class ConvEncoder(nn.Module):
    r"""Convolutional encoder: an image ``(B, C, H, W)`` to a feature vector ``(B, out_features)``.

    Each of the ``len(widths)`` convolutions has a 4×4 kernel, stride 2 and padding 1, so it halves
    the side (28 → 14 → 7 for two layers), followed by ``activation``. The feature map is
    flattened, an optional condition vector ``c`` of ``cond_dim`` entries (e.g. a one-hot class,
    chapter 04's conditional VAE) is concatenated to it, and an MLP with one hidden layer of
    ``hidden`` units maps it to ``out_features`` (e.g. ``2 * latent_dim`` for a VAE's
    :math:`(\mu, \log\sigma^2)`).

    Args:
        out_features: size of the output vector.
        in_channels: ``C`` (1 for MNIST).
        widths: channels of the convolutions, e.g. ``(32, 64)``.
        hidden: width of the fully connected hidden layer.
        image_size: ``H = W``; must be divisible by ``2 ** len(widths)``.
        cond_dim: size of the condition vector (0: unconditional).
        activation: module class for the non-linearity (default SiLU).

    >>> ConvEncoder(8)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 8])
    """

    def __init__(
        self,
        out_features: int,
        in_channels: int = 1,
        widths: Sequence[int] = (32, 64),
        hidden: int = 256,
        image_size: int = 28,
        cond_dim: int = 0,
        activation: type[nn.Module] = nn.SiLU,
    ):
        super().__init__()
        out_features, in_channels, hidden, image_size = _check_positive_ints(
            "out_features, in_channels, hidden, image_size", (out_features, in_channels, hidden, image_size))
        widths = _check_positive_ints("widths", list(widths))
        if image_size % 2 ** len(widths):
            raise ValueError(f"image_size must be divisible by 2**len(widths) = {2 ** len(widths)}, got {image_size}")
        if not isinstance(cond_dim, int) or cond_dim < 0:
            raise ValueError(f"cond_dim must be an int >= 0, got {cond_dim!r}")
        layers: list[nn.Module] = []
        for c_in, c_out in zip((in_channels, *widths[:-1]), widths):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), activation()]
        self.conv = nn.Sequential(*layers)
        self.in_channels, self.image_size, self.cond_dim = in_channels, image_size, cond_dim
        side = image_size // 2 ** len(widths)
        self.head = nn.Sequential(
            nn.Linear(widths[-1] * side * side + cond_dim, hidden), activation(), nn.Linear(hidden, out_features)
        )

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != expected:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {got}")
        h = self.conv(x).flatten(1)  # (B, widths[-1] * side * side)
        if self.cond_dim:
            if c is None or c.shape != (x.shape[0], self.cond_dim):
                got = None if c is None else tuple(c.shape)
                raise ValueError(f"c must have shape (B, cond_dim) = ({x.shape[0]}, {self.cond_dim}), got {got}")
            h = torch.cat([h, c.to(h.dtype)], dim=1)
        elif c is not None:
            raise ValueError("c was given but this encoder has cond_dim=0")
        return self.head(h)


class ConvDecoder(nn.Module):
    r"""Convolutional decoder: a vector ``(B, in_features)`` to an image ``(B, C, H, W)``.

    The mirror image of :class:`ConvEncoder`: an MLP with one hidden layer maps the input to a
    ``widths[0]`` × side × side feature map (side = ``image_size / 2**len(widths)``, 7 for
    MNIST), and ``len(widths)`` transposed convolutions (4×4, stride 2, padding 1) double the
    side back to ``image_size``; the last one outputs ``out_channels``. The output has **no final
    non-linearity**: for a Bernoulli decoder these are the logits :math:`\ell` of
    :math:`p(x \mid z) = \prod_i \mathrm{Bernoulli}(x_i; \sigma(\ell_i))`.

    Args:
        in_features: size of the input (a latent code, possibly concatenated with a condition).
        out_channels: ``C`` of the output image.
        widths: channels entering each transposed convolution, e.g. ``(64, 32)``.
        hidden: width of the fully connected hidden layer.
        image_size: output side ``H = W``.
        activation: module class for the non-linearity (default SiLU).

    >>> ConvDecoder(8)(torch.zeros(2, 8)).shape
    torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self,
        in_features: int,
        out_channels: int = 1,
        widths: Sequence[int] = (64, 32),
        hidden: int = 256,
        image_size: int = 28,
        activation: type[nn.Module] = nn.SiLU,
    ):
        super().__init__()
        in_features, out_channels, hidden, image_size = _check_positive_ints(
            "in_features, out_channels, hidden, image_size", (in_features, out_channels, hidden, image_size))
        widths = _check_positive_ints("widths", list(widths))
        if image_size % 2 ** len(widths):
            raise ValueError(f"image_size must be divisible by 2**len(widths) = {2 ** len(widths)}, got {image_size}")
        self.in_features = in_features
        self.side = image_size // 2 ** len(widths)
        self.widths = widths
        self.head = nn.Sequential(
            nn.Linear(in_features, hidden), activation(), nn.Linear(hidden, widths[0] * self.side**2), activation()
        )
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths, (*widths[1:], out_channels)):
            layers += [nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1), activation()]
        self.deconv = nn.Sequential(*layers[:-1])  # no non-linearity after the last layer

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.in_features:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must have shape (B, in_features) = (B, {self.in_features}), got {got}")
        h = self.head(z).view(-1, self.widths[0], self.side, self.side)  # (B, C', side, side)
        return self.deconv(h)


# ----------------------------------------------------------------------------------------------
# Transposed convolution by hand; DCGAN blocks (chapters 06-07)
# ----------------------------------------------------------------------------------------------

__all__ += [
    "conv_output_size",
    "conv_transpose_output_size",
    "conv_transpose2d_by_hand",
    "insert_zeros",
    "conv_transpose2d_as_conv",
    "up_block",
    "down_block",
]


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    r"""Side of the output of a convolution (``nn.Conv2d``) along one axis.

    .. math:: H_\text{out} = \left\lfloor \frac{H_\text{in} + 2p - \delta (k - 1) - 1}{s} \right\rfloor + 1

    for kernel :math:`k`, stride :math:`s`, padding :math:`p`, dilation :math:`\delta` (chapter 07).

    >>> conv_output_size(28, 4, stride=2, padding=1)
    14
    """
    size, kernel_size, stride, dilation = _check_positive_ints("size, kernel_size, stride, dilation", (size, kernel_size, stride, dilation))
    padding = checks.positive_int(padding, "padding", low=0)
    out = (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"the kernel ({kernel_size}, dilation {dilation}) is larger than the padded input ({size} + 2*{padding})")
    return out


def conv_transpose_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, output_padding: int = 0,
                               dilation: int = 1) -> int:
    r"""Side of the output of a transposed convolution (``nn.ConvTranspose2d``) along one axis.

    .. math:: H_\text{out} = (H_\text{in} - 1)\,s - 2p + \delta (k - 1) + p_\text{out} + 1

    Each of the :math:`H_\text{in}` input pixels paints a :math:`k`-wide patch, the patches start
    :math:`s` apart, so together they span :math:`(H_\text{in} - 1)s + k`; the padding :math:`p`
    crops that much on each side and ``output_padding`` :math:`p_\text{out}` adds rows at the end
    (chapter 07). With :math:`k = 4, s = 2, p = 1` the side doubles: :math:`H_\text{out} = 2 H_\text{in}`.

    >>> conv_transpose_output_size(7, 4, stride=2, padding=1)
    14
    """
    size, kernel_size, stride, dilation = _check_positive_ints("size, kernel_size, stride, dilation", (size, kernel_size, stride, dilation))
    padding, output_padding = checks.positive_int(padding, "padding", low=0), checks.positive_int(output_padding, "output_padding", low=0)
    if output_padding >= max(stride, dilation):
        raise ValueError(f"output_padding must be smaller than stride or dilation, got {output_padding} (stride {stride}, dilation {dilation})")
    out = (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1
    if out < 1:
        raise ValueError(f"padding {padding} crops the whole output ({(size - 1) * stride + dilation * (kernel_size - 1) + 1} wide)")
    return out


def _check_conv_transpose_args(x, weight, stride: int, padding: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must have shape (B, C_in, H, W), got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4 or weight.shape[0] != x.shape[1]:
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight must have shape (C_in, C_out, k_h, k_w) = ({x.shape[1]}, C_out, k_h, k_w) "
                         f"(the layout of nn.ConvTranspose2d.weight), got {got}")
    _check_positive_ints("stride", stride)
    checks.positive_int(padding, "padding", low=0)
    return x, weight


def conv_transpose2d_by_hand(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    r"""Transposed convolution written as "each input pixel paints a scaled copy of the kernel".

    .. math:: y[o,\; s i + u,\; s j + v] \mathrel{+}= \sum_{c} x[c, i, j]\; w[c, o, u, v],
              \qquad 0 \le u < k_h,\ 0 \le v < k_w

    then ``padding`` rows and columns are cropped from each side. This is the gradient of a
    convolution with respect to its input (hence "transposed": the matrix of the convolution,
    transposed), and what ``nn.ConvTranspose2d`` computes (no bias, no dilation, no groups).
    Two explicit loops over the input pixels: slow, for teaching and testing (chapter 07).

    Args:
        x: ``(B, C_in, H, W)``.
        weight: ``(C_in, C_out, k_h, k_w)``, the layout of ``nn.ConvTranspose2d.weight``.
        stride: :math:`s`; padding: :math:`p`.

    Returns:
        ``(B, C_out, H_out, W_out)`` with :math:`H_\text{out} = (H - 1)s - 2p + k_h`.

    >>> conv_transpose2d_by_hand(torch.tensor([[[[1.0, 2.0]]]]), torch.ones(1, 1, 1, 2))
    tensor([[[[1., 3., 2.]]]])
    """
    x, weight = _check_conv_transpose_args(x, weight, stride, padding)
    B, C_in, H, W = x.shape
    _, C_out, kh, kw = weight.shape
    full = x.new_zeros(B, C_out, (H - 1) * stride + kh, (W - 1) * stride + kw)
    for i in range(H):
        for j in range(W):
            # (B, C_in) x (C_in, C_out, kh, kw) -> (B, C_out, kh, kw): pixel (i, j) paints its patch
            patch = torch.einsum("bc,cokl->bokl", x[:, :, i, j], weight)
            full[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw] += patch
    if padding:
        if 2 * padding >= min(full.shape[-2:]):
            raise ValueError(f"padding {padding} crops the whole output of side {tuple(full.shape[-2:])}")
        full = full[:, :, padding:-padding, padding:-padding]
    return full


def insert_zeros(x: torch.Tensor, stride: int) -> torch.Tensor:
    r"""Put ``stride - 1`` zeros between neighbouring pixels: ``(B, C, H, W)`` → ``(B, C, (H-1)s+1, (W-1)s+1)``.

    .. math:: \tilde x[c, s i, s j] = x[c, i, j], \qquad \tilde x = 0 \text{ elsewhere}

    The first step of a stride-:math:`s` transposed convolution seen as an ordinary convolution
    ("fractionally strided", Dumoulin & Visin, 2016, section 4.5; chapter 07).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    (stride,) = _check_positive_ints("stride", stride)
    B, C, H, W = x.shape
    out = x.new_zeros(B, C, (H - 1) * stride + 1, (W - 1) * stride + 1)
    out[:, :, ::stride, ::stride] = x
    return out


def conv_transpose2d_as_conv(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    r"""Transposed convolution as zero insertion followed by an ordinary convolution.

    .. math:: \operatorname{convT}_s(x; w) = \operatorname{conv}_1\big(\operatorname{pad}_{k-1-p}
              (\operatorname{insert\_zeros}_s(x));\; \overleftrightarrow{w}^\top\big)

    where :math:`\overleftrightarrow{w}^\top` is the kernel rotated by 180° with its input and output
    channels swapped: :math:`\overleftrightarrow{w}^\top[o, c, u, v] = w[c, o, k_h-1-u, k_w-1-v]`
    (Dumoulin & Visin, 2016, relationship 14; chapter 07). Same arguments and result as
    :func:`conv_transpose2d_by_hand`; requires ``padding <= k - 1``.
    """
    x, weight = _check_conv_transpose_args(x, weight, stride, padding)
    kh, kw = weight.shape[-2:]
    if padding > min(kh, kw) - 1:
        raise ValueError(f"padding must be at most kernel_size - 1 = {min(kh, kw) - 1} here, got {padding}")
    x_up = insert_zeros(x, stride)  # (B, C_in, (H-1)s+1, (W-1)s+1)
    x_up = nn.functional.pad(x_up, (kw - 1 - padding, kw - 1 - padding, kh - 1 - padding, kh - 1 - padding))
    w_conv = weight.flip(-2, -1).transpose(0, 1)  # (C_out, C_in, kh, kw), rotated by 180 degrees
    return nn.functional.conv2d(x_up, w_conv)


def up_block(c_in: int, c_out: int, kernel_size: int = 4, stride: int = 2, padding: int = 1, batch_norm: bool = True) -> nn.Sequential:
    r"""A DCGAN generator block: transposed convolution, batch norm, ReLU.

    .. math:: h \mapsto \mathrm{ReLU}\big(\mathrm{BN}(\operatorname{convT}(h))\big)

    With the defaults (:math:`k = 4, s = 2, p = 1`) it doubles the side:
    ``(B, c_in, H, W)`` → ``(B, c_out, 2H, 2W)`` (:func:`conv_transpose_output_size`). The
    convolution has no bias when batch norm follows (BN's shift replaces it). Radford, Metz &
    Chintala (2016); chapter 07.
    """
    c_in, c_out, kernel_size, stride = _check_positive_ints("c_in, c_out, kernel_size, stride", (c_in, c_out, kernel_size, stride))
    padding = checks.positive_int(padding, "padding", low=0)
    layers: list[nn.Module] = [nn.ConvTranspose2d(c_in, c_out, kernel_size, stride, padding, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def down_block(c_in: int, c_out: int, kernel_size: int = 4, stride: int = 2, padding: int = 1, batch_norm: bool = True,
               slope: float = 0.2) -> nn.Sequential:
    r"""A DCGAN discriminator block: strided convolution, batch norm, LeakyReLU.

    .. math:: h \mapsto \mathrm{LeakyReLU}_{0.2}\big(\mathrm{BN}(\operatorname{conv}(h))\big)

    With the defaults (:math:`k = 4, s = 2, p = 1`) it halves the side:
    ``(B, c_in, H, W)`` → ``(B, c_out, H/2, W/2)`` (:func:`conv_output_size`); the strided
    convolution replaces pooling (Radford, Metz & Chintala, 2016; chapter 07). The first block of
    a discriminator has ``batch_norm=False``.
    """
    c_in, c_out, kernel_size, stride = _check_positive_ints("c_in, c_out, kernel_size, stride", (c_in, c_out, kernel_size, stride))
    if not 0 <= slope < 1:
        raise ValueError(f"slope must be in [0, 1), got {slope!r}")
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size, stride, checks.positive_int(padding, "padding", low=0), bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(slope))
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------------------------
# Diffusion: sinusoidal time embedding, time-conditioned residual blocks, U-Net (chapter 12)
# ----------------------------------------------------------------------------------------------

__all__ += ["timestep_embedding", "SinusoidalEmbedding", "TimeResBlock", "DiffusionUNet", "TimeMLP"]


def _check_t(t, B: int, continuous: bool = False) -> torch.Tensor:
    """Integer diffusion steps ``(B,)``; with ``continuous``, float times ``(B,)`` in [0, 1]
    (flow matching, chapter 13), returned as ``1000 t`` so that the sinusoidal embedding sees the
    same range of angles as for the steps of a 1000-step diffusion."""
    if continuous:
        if not isinstance(t, torch.Tensor) or t.shape != (B,) or not t.is_floating_point():
            got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"t must be a float tensor of shape (B,) = ({B},) in [0, 1] (continuous time), got {got}")
        return 1000.0 * t
    if not isinstance(t, torch.Tensor) or t.shape != (B,) or t.is_floating_point():
        got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"t must be an integer tensor of shape (B,) = ({B},), got {got}")
    return t


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    r"""Sinusoidal embedding of the time step (Vaswani et al., 2017, section 3.5; Ho et al., 2020,
    appendix B): with :math:`h = \text{dim}/2` and :math:`\omega_k = \text{max\_period}^{-k/h}`,

    .. math:: e(t) = \big(\sin(\omega_0 t), \dots, \sin(\omega_{h-1} t),\
              \cos(\omega_0 t), \dots, \cos(\omega_{h-1} t)\big).

    Args:
        t: time steps ``(B,)`` (integers or floats).
        dim: an even embedding size.

    Returns:
        ``(B, dim)`` float32.

    >>> timestep_embedding(torch.tensor([0]), 4).tolist()
    [[0.0, 0.0, 1.0, 1.0]]
    """
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even int >= 2, got {dim!r}")
    if not isinstance(t, torch.Tensor) or t.ndim != 1:
        raise ValueError(f"t must be a tensor of shape (B,), got {tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    half = dim // 2
    omega = max_period ** (-torch.arange(half, dtype=torch.float32, device=t.device) / half)  # (half,)
    angle = t.to(torch.float32)[:, None] * omega[None]  # (B, half)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


class SinusoidalEmbedding(nn.Module):
    """:func:`timestep_embedding` as a module: ``(B,)`` → ``(B, dim)``."""

    def __init__(self, dim: int, max_period: float = 10_000.0):
        super().__init__()
        if not isinstance(dim, int) or dim < 2 or dim % 2:
            raise ValueError(f"dim must be an even int >= 2, got {dim!r}")
        self.dim, self.max_period = dim, max_period

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return timestep_embedding(t, self.dim, self.max_period)


class TimeResBlock(nn.Module):
    r"""A residual block conditioned on an embedding :math:`e` (of the time step, and of the class):

    .. math::
        h = \operatorname{conv}_1\big(\mathrm{SiLU}(\mathrm{GN}(x))\big) + W e, \qquad
        \text{out} = \operatorname{conv}_2\big(\mathrm{SiLU}(\mathrm{GN}(h))\big) + \operatorname{skip}(x),

    with 3×3 convolutions, group normalisation (GN, ``groups`` groups), :math:`W e` broadcast over
    the pixels, and a 1×1 convolution as ``skip`` when the channel count changes (Ho et al., 2020,
    appendix B, without dropout). ``(B, c_in, H, W), (B, emb_dim)`` → ``(B, c_out, H, W)``.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8):
        super().__init__()
        c_in, c_out, emb_dim, groups = _check_positive_ints("c_in, c_out, emb_dim, groups", (c_in, c_out, emb_dim, groups))
        self.norm1 = nn.GroupNorm(math.gcd(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(math.gcd(groups, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]  # (B, c_out, 1, 1): the same shift at every pixel
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return h + self.skip(x)


class DiffusionUNet(nn.Module):
    r"""A small time- (and class-) conditioned U-Net :math:`\varepsilon_\theta(x_t, t, y)` for 28×28
    images, sized for a CPU (chapter 12).

    Layout (``channels=(32, 64)``, ``patch=2``, MNIST)::

        x (B,1,28,28) -pixel_unshuffle-> (B,4,14,14) -conv-> 32 ch
          level 14x14: TimeResBlock(32)  ----------------------- skip ----+
          stride-2 conv -> 7x7                                           |
          level 7x7:   TimeResBlock(64)  ------- skip ---+               |
          middle:      TimeResBlock(64)                  |               |
          up 7x7:      TimeResBlock(cat 64+64 -> 64) <---+               |
          nearest x2 + conv -> 14x14                                     |
          up 14x14:    TimeResBlock(cat 64+32 -> 32) <-------------------+
        GN, SiLU, conv (zero-initialised) -> (B,4,14,14) -pixel_shuffle-> (B,1,28,28)

    ``patch`` :math:`p` folds each :math:`p \times p` block of pixels into :math:`p^2` channels
    (``pixel_unshuffle``, lossless) so that the first level already works at 14×14: four times fewer
    positions for the convolutions, which is what makes training on 2 CPU cores practical. There is
    no attention layer. The embedding :math:`e = \mathrm{MLP}(\text{sinusoidal}(t)) + E[y]` enters every
    block; with ``n_classes`` :math:`K > 0` the label table :math:`E` has :math:`K + 1` rows, the last
    one (``null_label = K``) being the "no label" :math:`\varnothing` of classifier-free guidance. The
    output layer starts at zero, so the untrained model predicts :math:`\varepsilon = 0`.

    Args:
        in_channels: ``C`` of the images.
        channels: channels of each resolution level (each level after the first halves the side).
        n_res: residual blocks per level on each side.
        emb_dim: size of the embedding :math:`e`.
        n_classes: number of classes (0: unconditional).
        patch: :math:`p` (1: no folding).
        image_size: ``H = W``, divisible by :math:`p \cdot 2^{L-1}` for :math:`L` levels.
        groups: groups of the group normalisations.
        continuous_time: ``t`` is a float time in :math:`[0, 1]` (flow matching, chapter 13),
            embedded as :math:`1000\,t`, instead of an integer diffusion step.

    Forward: ``x (B, C, H, W)``, ``t`` long ``(B,)`` (float with ``continuous_time``), ``y`` long
    ``(B,)`` in ``0..K`` or ``None`` (the null label) → ``(B, C, H, W)``.

    >>> DiffusionUNet(n_classes=10)(torch.zeros(2, 1, 28, 28), torch.tensor([1, 1000]), torch.tensor([3, 10])).shape
    torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (32, 64),
        n_res: int = 1,
        emb_dim: int = 128,
        n_classes: int = 0,
        patch: int = 2,
        image_size: int = 28,
        groups: int = 8,
        continuous_time: bool = False,
    ):
        super().__init__()
        self.continuous_time = bool(continuous_time)
        channels = _check_positive_ints("channels", list(channels))
        in_channels, n_res, emb_dim, patch, image_size = _check_positive_ints(
            "in_channels, n_res, emb_dim, patch, image_size", (in_channels, n_res, emb_dim, patch, image_size))
        if not isinstance(n_classes, int) or n_classes < 0:
            raise ValueError(f"n_classes must be an int >= 0, got {n_classes!r}")
        factor = patch * 2 ** (len(channels) - 1)
        if image_size % factor:
            raise ValueError(f"image_size must be divisible by patch * 2**(len(channels) - 1) = {factor}, got {image_size}")
        self.in_channels, self.image_size, self.patch = in_channels, image_size, patch
        self.n_classes, self.null_label, self.n_res = n_classes, n_classes, n_res
        self.channels = channels
        self.time_dim = 2 * ((channels[0] + 1) // 2)
        self.time_mlp = nn.Sequential(nn.Linear(self.time_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(n_classes + 1, emb_dim) if n_classes else None
        self.conv_in = nn.Conv2d(in_channels * patch**2, channels[0], 3, padding=1)
        self.down, self.downsample, skips, c = nn.ModuleList(), nn.ModuleList(), [], channels[0]
        for i, ch in enumerate(channels):
            for _ in range(n_res):
                self.down.append(TimeResBlock(c, ch, emb_dim, groups))
                c = ch
                skips.append(c)
            if i < len(channels) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = TimeResBlock(c, c, emb_dim, groups)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(channels))):
            for _ in range(n_res):
                self.up.append(TimeResBlock(c + skips.pop(), channels[i], emb_dim, groups))
                c = channels[i]
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.norm_out = nn.GroupNorm(math.gcd(groups, c), c)
        self.conv_out = nn.Conv2d(c, in_channels * patch**2, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def embedding(self, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        r"""The conditioning vector :math:`e = \mathrm{MLP}(\text{sinusoidal}(t)) + E[y]`, ``(B, emb_dim)``."""
        e = self.time_mlp(timestep_embedding(t, self.time_dim))
        if self.label_emb is None:
            if y is not None:
                raise ValueError("y was given but this U-Net has n_classes=0")
            return e
        if y is None:
            y = torch.full_like(t, self.null_label)
        if not isinstance(y, torch.Tensor) or y.shape != t.shape or y.is_floating_point():
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"y must be an integer tensor of shape (B,) = {tuple(t.shape)}, got {got}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > self.null_label):
            raise ValueError(f"y must hold labels in 0..{self.n_classes} ({self.null_label} = no label), got {int(y.min())}..{int(y.max())}")
        return e + self.label_emb(y)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != expected:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {got}")
        emb = self.embedding(_check_t(t, x.shape[0], self.continuous_time), y)
        h = nn.functional.pixel_unshuffle(x, self.patch) if self.patch > 1 else x  # (B, C p^2, H/p, W/p)
        h = self.conv_in(h)
        skips, k = [], 0
        for i in range(len(self.channels)):
            for _ in range(self.n_res):
                h = self.down[k](h, emb)
                k += 1
                skips.append(h)
            if i < len(self.channels) - 1:
                h = self.downsample[i](h)  # (B, c, H/2, W/2)
        h = self.mid(h, emb)
        k = 0
        for j, i in enumerate(reversed(range(len(self.channels)))):
            for _ in range(self.n_res):
                h = self.up[k](torch.cat([h, skips.pop()], dim=1), emb)
                k += 1
            if i > 0:
                h = self.upsample[j](nn.functional.interpolate(h, scale_factor=2.0, mode="nearest"))  # (B, c, 2H, 2W)
        h = self.conv_out(nn.functional.silu(self.norm_out(h)))
        return nn.functional.pixel_shuffle(h, self.patch) if self.patch > 1 else h


class TimeMLP(nn.Module):
    r"""A time-conditioned residual MLP :math:`\varepsilon_\theta(x_t, t)` for points in
    :math:`\mathbb R^D` (the 2-D toys of chapter 12):

    .. math::
        h_0 = W_\text{in} x, \qquad h_{k} = h_{k-1} + W_k\,\mathrm{SiLU}(h_{k-1} + U_k e), \qquad
        \varepsilon_\theta = W_\text{out}\,\mathrm{SiLU}(h_L),

    with :math:`e = \mathrm{MLP}(\text{sinusoidal}(t))`. Forward: ``x (B, D)``, ``t`` long ``(B,)`` → ``(B, D)``;
    with ``continuous_time``, ``t`` is a float ``(B,)`` in :math:`[0, 1]` (a velocity field,
    chapter 13), embedded as :math:`1000\,t`.

    >>> TimeMLP(2)(torch.zeros(5, 2), torch.arange(5)).shape
    torch.Size([5, 2])
    """

    def __init__(self, dim: int = 2, hidden: int = 128, n_layers: int = 3, emb_dim: int = 64, continuous_time: bool = False):
        super().__init__()
        self.continuous_time = bool(continuous_time)
        dim, hidden, n_layers, emb_dim = _check_positive_ints("dim, hidden, n_layers, emb_dim", (dim, hidden, n_layers, emb_dim))
        if emb_dim % 2:
            raise ValueError(f"emb_dim must be even, got {emb_dim}")
        self.dim, self.emb_dim = dim, emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.inp = nn.Linear(dim, hidden)
        self.emb = nn.ModuleList(nn.Linear(emb_dim, hidden) for _ in range(n_layers))
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_layers))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {self.dim}), got {got}")
        e = self.time_mlp(timestep_embedding(_check_t(t, x.shape[0], self.continuous_time), self.emb_dim))
        h = self.inp(x)
        for layer, proj in zip(self.layers, self.emb):
            h = h + layer(nn.functional.silu(h + proj(e)))
        return self.out(nn.functional.silu(h))


# ----------------------------------------------------------------------------------------------
# Image-to-image translation: the pix2pix U-Net and the PatchGAN discriminator (chapter 10)
# ----------------------------------------------------------------------------------------------

__all__ += ["TranslationUNet", "PatchGAN", "receptive_field"]


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(c, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {kind!r}")


class TranslationUNet(nn.Module):
    r"""The pix2pix generator (Isola et al., 2017, section 3.2.1 and appendix 6.1.1), at the size of
    the course's images: an encoder of ``depth`` strided convolutions (:math:`k = 4, s = 2`, the
    side halves each time), a bottleneck of two 3 × 3 convolutions, and a decoder of transposed
    convolutions that mirrors the encoder. With ``skips=True`` (the U-Net) the decoder layer at
    each resolution also receives the encoder's features of that resolution, concatenated along
    the channels; with ``skips=False`` it is the paper's plain encoder-decoder, whose every bit of
    information about the input must pass through the bottleneck.

    Channels: ``ngf``, ``2 ngf``, ... (at most ``8 ngf``); LeakyReLU(0.2) in the encoder, ReLU in the
    decoder, ``norm`` after every convolution except the first and the last, ``tanh`` output in
    :math:`[-1, 1]`. Input ``(B, in_channels, H, W)`` with :math:`H, W` divisible by
    :math:`2^\text{depth}` (28 × 28 digits: ``depth=2``; 32 × 32 crops: ``depth=3``).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 32, depth: int = 2, *, skips: bool = True,
                 norm: str = "instance", dropout: float = 0.0):
        super().__init__()
        in_channels, out_channels, ngf, depth = _check_positive_ints("in_channels, out_channels, ngf, depth",
                                                                    (in_channels, out_channels, ngf, depth))
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        _norm(norm, 1)
        self.in_channels, self.out_channels, self.depth, self.skips = in_channels, out_channels, depth, bool(skips)
        widths = [ngf * min(2**i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        c = in_channels
        for i, w in enumerate(widths):
            layers: list[nn.Module] = [nn.Conv2d(c, w, 4, 2, 1)]
            if i > 0:
                layers.append(_norm(norm, w))
            layers.append(nn.LeakyReLU(0.2))
            self.down.append(nn.Sequential(*layers))
            c = w
        wb = ngf * min(2**depth, 8)
        self.bottleneck = nn.Sequential(nn.Conv2d(c, wb, 3, 1, 1), _norm(norm, wb), nn.ReLU(),
                                        nn.Conv2d(wb, wb, 3, 1, 1), _norm(norm, wb), nn.ReLU())
        self.up = nn.ModuleList()
        c = wb
        for i in reversed(range(depth)):
            c_in = c + (widths[i] if self.skips else 0)
            if i == 0:
                self.up.append(nn.Sequential(nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1), nn.Tanh()))
            else:
                w = widths[i - 1]
                layers = [nn.ConvTranspose2d(c_in, w, 4, 2, 1), _norm(norm, w), nn.ReLU()]
                if dropout:
                    layers.append(nn.Dropout(dropout))
                self.up.append(nn.Sequential(*layers))
                c = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape if x.ndim == 4 else (None,) * 4
        f = 2**self.depth
        if x.ndim != 4 or C != self.in_channels or H % f or W % f:
            raise ValueError(f"TranslationUNet expects images (B, {self.in_channels}, H, W) with H and W divisible by "
                             f"2^depth = {f}, got shape {tuple(x.shape)}")
        features = []
        h = x
        for block in self.down:
            h = block(h)
            features.append(h)
        h = self.bottleneck(h)
        for block, skip in zip(self.up, reversed(features)):
            h = block(torch.cat([h, skip], 1) if self.skips else h)
        return h


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    r"""The receptive field (in input pixels, per side) of one output unit of a stack of
    convolutions ``layers = [(kernel_size, stride), ...]``, first layer first:

    .. math:: r_L = 1, \qquad r_{l-1} = s_l\,(r_l - 1) + k_l

    run from the last layer back to the input. Padding moves the field, it does not change its size.
    pix2pix's 70 × 70 PatchGAN, ``[(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)]``, gives 70.
    """
    r = 1
    for k, s in reversed([tuple(layer) for layer in layers]):
        k, s = _check_positive_ints("kernel_size, stride", (k, s))
        r = s * (r - 1) + k
    return r


class PatchGAN(nn.Module):
    r"""The PatchGAN discriminator of pix2pix (Isola et al., 2017, section 3.2.2; their ``n_layers``
    construction): ``n_down`` convolutions :math:`k = 4, s = 2` (``ndf``, ``2 ndf``, ...), one
    :math:`k = 4, s = 1` convolution, and a :math:`k = 4, s = 1` convolution to one logit per patch.

    It returns a map of logits ``(B, 1, H', W')``: each judges whether one
    :attr:`receptive_field` × :attr:`receptive_field` patch of the input is real. ``n_down=3`` is the
    paper's 70 × 70 PatchGAN; ``n_down=1`` gives 16 × 16 patches, a little over half of a 28 × 28
    digit. For pix2pix the input is the source and the (real or generated) target concatenated along
    the channels, ``in_channels = C_source + C_target``; for CycleGAN it is one image.
    """

    def __init__(self, in_channels: int = 2, ndf: int = 32, n_down: int = 1, *, norm: str = "instance"):
        super().__init__()
        in_channels, ndf, n_down = _check_positive_ints("in_channels, ndf, n_down", (in_channels, ndf, n_down))
        _norm(norm, 1)
        self.in_channels = in_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ndf
        for i in range(1, n_down + 1):
            w = ndf * min(2**i, 8)
            stride = 2 if i < n_down else 1
            layers += [nn.Conv2d(c, w, 4, stride, 1), _norm(norm, w), nn.LeakyReLU(0.2)]
            c = w
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.layers = [(m.kernel_size[0], m.stride[0]) for m in self.net if isinstance(m, nn.Conv2d)]
        self.receptive_field = receptive_field(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"PatchGAN expects images (B, {self.in_channels}, H, W) (for pix2pix: the source and the "
                             f"target concatenated along the channels), got shape {tuple(x.shape)}")
        return self.net(x)
