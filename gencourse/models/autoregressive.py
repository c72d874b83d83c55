r"""Autoregressive models of images (chapter 05): the chain rule made into networks.

.. math:: p(x) = \prod_{i=1}^{D} p(x_i \mid x_{<i})

in raster order (row by row, left to right; within a pixel, colour channel by colour channel). Every
model here maps an image of integer **levels** :math:`x \in \{0..L-1\}^{C \times H \times W}` to logits
``(B, L, C, H, W)`` whose entry at pixel :math:`i` depends on :math:`x_{<i}` only, so that one
forward pass gives all :math:`D` conditionals and the **exact** log-likelihood
(:func:`log_likelihood`, nats per image), and sampling takes :math:`D` passes (:func:`sample`).

* :func:`causal_mask`, :class:`MaskedConv2d` — convolutions of type A (the centre pixel excluded:
  first layer) and B (included: later layers), with colour-channel groups (van den Oord, Kalchbrenner
  & Kavukcuoglu, 2016, *Pixel recurrent neural networks*, section 3.4).
* :class:`MADE` — a masked MLP (Germain, Gregor, Murray & Larochelle, 2015), the fully visible
  belief network of the chapter's first section.
* :class:`PixelCNN` — a 7 × 7 type-A convolution, residual blocks 1 × 1 → 3 × 3 (B) → 1 × 1 and
  1 × 1 output layers (van den Oord et al., 2016, figure 5 and table 4), optionally class-conditional.
* :class:`GatedPixelCNN` — vertical and horizontal stacks with gated activations, which remove the
  blind spot of masked convolutions (van den Oord et al., 2016, *Conditional image generation with
  PixelCNN decoders*).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks

__all__ = ["causal_mask", "MaskedConv2d", "MADE", "PixelCNN", "GatedPixelCNN", "quantise", "log_likelihood",
           "class_log_joint", "mixture_log_likelihood", "label_posterior", "sample", "check_levels", "dependencies"]


def _colour_group(c: int, channels: int, n_colours: int) -> int:
    """The colour a feature channel belongs to: contiguous blocks of ``channels / n_colours``."""
    return c * n_colours // channels


def causal_mask(kernel_size: int, mask_type: str, in_channels: int = 1, out_channels: int = 1, n_colours: int = 1) -> torch.Tensor:
    r"""The mask ``(out_channels, in_channels, k, k)`` of a causal convolution in raster order.

    Spatially, a weight is kept (1) for the rows above the centre and for the pixels left of the
    centre in its row; the pixels right of the centre and the rows below are 0. At the centre pixel,
    with the channels split into ``n_colours`` contiguous groups (R, G, B for colour images), input
    group :math:`g_\text{in}` may feed output group :math:`g_\text{out}` when
    :math:`g_\text{in} < g_\text{out}` (type ``"A"``, the first layer: a pixel's colour never sees
    itself) or :math:`g_\text{in} \le g_\text{out}` (type ``"B"``, later layers). With one colour, type A
    drops the centre and type B keeps it.
    """
    kernel_size = checks.positive_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (the mask is centred on a pixel), got {kernel_size}")
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' (centre excluded, first layer) or 'B' (centre included), got {mask_type!r}")
    in_channels, out_channels, n_colours = (checks.positive_int(v, n) for v, n in
                                            ((in_channels, "in_channels"), (out_channels, "out_channels"), (n_colours, "n_colours")))
    if in_channels % n_colours or out_channels % n_colours:
        raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be multiples of n_colours ({n_colours})")
    k, c = kernel_size, kernel_size // 2
    mask = torch.zeros(out_channels, in_channels, k, k)
    mask[:, :, :c, :] = 1.0  # the rows above
    mask[:, :, c, :c] = 1.0  # left of the centre, same row
    g_in = torch.tensor([_colour_group(i, in_channels, n_colours) for i in range(in_channels)])
    g_out = torch.tensor([_colour_group(o, out_channels, n_colours) for o in range(out_channels)])
    allowed = g_in[None, :] < g_out[:, None] if mask_type == "A" else g_in[None, :] <= g_out[:, None]
    mask[:, :, c, c] = allowed.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    r"""A convolution whose weights are multiplied by :func:`causal_mask` at every forward pass
    ("same" padding, stride 1): output pixel :math:`i` sees only the input pixels before :math:`i`
    (type A) or up to :math:`i` (type B)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str, n_colours: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.mask_type = mask_type
        self.register_buffer("mask", causal_mask(kernel_size, mask_type, in_channels, out_channels, n_colours))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def check_levels(x, levels: int, shape=None, name: str = "x") -> torch.Tensor:
    """Check a batch of images of integer levels ``(B, C, H, W)`` in ``{0..levels-1}`` (an integer
    dtype, or floats holding whole numbers) and return it as int64."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be images of levels (B, C, H, W), got {got}")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} must have shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    if x.is_floating_point():
        if not torch.equal(x, x.round()):
            raise ValueError(f"{name} must hold integer levels 0..{levels - 1}, got non-integer values "
                             f"(grey values in [0, 1]? convert them with gencourse.models.autoregressive.quantise)")
        x = x.long()
    if x.numel() and (x.min() < 0 or x.max() >= levels):
        raise ValueError(f"{name} must hold levels in 0..{levels - 1}, got values in [{x.min().item()}, {x.max().item()}]")
    return x.long()


def quantise(x01: torch.Tensor, levels: int = 2) -> torch.Tensor:
    r"""Grey values in :math:`[0, 1]` to integer levels ``{0..levels-1}``: :math:`\lfloor L x \rfloor`
    (clipped to :math:`L - 1`). With ``levels=2`` a pixel is 1 when :math:`x \ge 0.5` (binarised MNIST
    at a fixed threshold)."""
    levels = checks.positive_int(levels, "levels", low=2)
    if not isinstance(x01, torch.Tensor) or not x01.is_floating_point():
        raise ValueError("x01 must be a float tensor of grey values in [0, 1]")
    if x01.numel() and (x01.min() < 0 or x01.max() > 1):
        raise ValueError(f"x01 must be in [0, 1], got values in [{x01.min().item():.3g}, {x01.max().item():.3g}]")
    return (x01 * levels).floor().clamp(max=levels - 1).long()


def _one_hot_or_none(y, n_classes: int | None, B: int, device) -> torch.Tensor | None:
    if n_classes is None:
        if y is not None:
            raise ValueError("this model is unconditional: call it without labels")
        return None
    if y is None:
        raise ValueError(f"this model is class-conditional ({n_classes} classes): pass labels y (B,)")
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32) or y.shape != (B,):
        raise ValueError(f"y must be integer labels of shape ({B},), got {getattr(y, 'dtype', type(y).__name__)} "
                         f"{tuple(getattr(y, 'shape', ()))}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must be in 0..{n_classes - 1}")
    return F.one_hot(y.long(), n_classes).float().to(device)


def _inputs(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Levels to the network's input: centred values in [-1, 1]."""
    return x.float() * (2.0 / (levels - 1)) - 1.0


# ----------------------------------------------------------------------------------------------
# MADE: a masked MLP
# ----------------------------------------------------------------------------------------------


class _MaskedLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor):
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""A masked autoencoder for distribution estimation (Germain et al., 2015) on binary images
    ``(1, H, W)`` in raster order: an MLP whose weights are masked so that output :math:`d` depends on
    inputs :math:`1..d-1` only. Input :math:`d` has degree :math:`d`; hidden unit :math:`k` a degree
    :math:`m(k) \in \{1..D-1\}` (spread evenly, the same in every layer); a hidden unit sees the inputs
    of degree :math:`\le m(k)` and output :math:`d` the hidden units of degree :math:`< d`. Returns
    logits ``(B, 2, 1, H, W)`` (level 0 has logit 0, level 1 the network's output: a Bernoulli).
    """

    levels = 2

    def __init__(self, shape=(1, 28, 28), hidden=(500,), n_classes: int | None = None):
        super().__init__()
        self.shape = tuple(shape)
        if self.shape[0] != 1:
            raise ValueError(f"MADE models one binary channel, got shape {self.shape}")
        D = self.shape[1] * self.shape[2]
        hidden = tuple(checks.positive_int(h, "hidden") for h in hidden)
        self.D, self.n_classes = D, n_classes
        deg_in = torch.arange(1, D + 1)
        layers, prev = [], deg_in
        for h in hidden:
            deg = torch.arange(h) * (D - 1) // h + 1  # 1..D-1, spread evenly
            layers.append(_MaskedLinear(len(prev), h, (deg[:, None] >= prev[None, :]).float()))
            prev = deg
        self.hidden = nn.ModuleList(layers)
        self.out = _MaskedLinear(len(prev), D, (deg_in[:, None] > prev[None, :]).float())
        self.cond = nn.ModuleList(nn.Linear(n_classes, h) for h in hidden) if n_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = check_levels(x, 2, self.shape)
        return self.logits_from_inputs(_inputs(x, 2), _one_hot_or_none(y, self.n_classes, len(x), x.device))

    def logits_from_inputs(self, u: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The logits from the real-valued network input ``u`` ``(B, 1, H, W)`` (levels mapped to
        [-1, 1]) and a one-hot label ``c``: differentiable in ``u``, for :func:`dependencies`."""
        h = u.flatten(1)
        for i, layer in enumerate(self.hidden):
            h = layer(h)
            if c is not None:
                h = h + self.cond[i](c)
            h = F.relu(h)
        logit = self.out(h).view(len(u), 1, *self.shape)
        return torch.cat([torch.zeros_like(logit), logit], 1)


# ----------------------------------------------------------------------------------------------
# PixelCNN
# ----------------------------------------------------------------------------------------------


class _ResidualBlock(nn.Module):
    """ReLU → 1×1 (2h → h) → ReLU → 3×3 type B (h → h) → ReLU → 1×1 (h → 2h), plus the input."""

    def __init__(self, h: int, n_colours: int, n_classes: int | None):
        super().__init__()
        self.reduce = MaskedConv2d(2 * h, h, 1, "B", n_colours)
        self.conv = MaskedConv2d(h, h, 3, "B", n_colours)
        self.expand = MaskedConv2d(h, 2 * h, 1, "B", n_colours)
        self.cond = nn.Linear(n_classes, h) if n_classes else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        h = self.conv(F.relu(self.reduce(F.relu(x))))
        if c is not None:
            h = h + self.cond(c)[:, :, None, None]
        return x + self.expand(F.relu(h))


class PixelCNN(nn.Module):
    r"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu, 2016, section 3.5 and figure 5): a
    ``first_kernel`` × ``first_kernel`` type-A convolution to :math:`2h` channels, ``n_blocks``
    residual blocks (1 × 1 → 3 × 3 type B → 1 × 1, ReLU), then ReLU → 1 × 1 → ReLU → 1 × 1 to ``levels``
    logits per channel. ``n_classes`` adds a learned class bias to every block (a class-conditional
    PixelCNN). Input: levels ``(B, C, H, W)``; output: logits ``(B, levels, C, H, W)``.
    """

    #: the output at row i depends on rows 0..i only, whatever the rows below hold (or whether they exist)
    row_causal = True

    def __init__(self, channels: int = 1, levels: int = 2, h: int = 32, n_blocks: int = 5, first_kernel: int = 7,
                 n_classes: int | None = None, out_hidden: int | None = None):
        super().__init__()
        self.channels, self.levels, self.n_classes = checks.positive_int(channels, "channels"), checks.positive_int(levels, "levels", 2), n_classes
        self.shape = None
        C, o = channels, out_hidden or 2 * h
        if (2 * h) % C or h % C or o % C:
            raise ValueError(f"h ({h}) and out_hidden ({o}) must be multiples of channels ({C}) (colour groups)")
        self.first = MaskedConv2d(C, 2 * h, first_kernel, "A", C)
        self.blocks = nn.ModuleList(_ResidualBlock(h, C, n_classes) for _ in range(n_blocks))
        self.out1 = MaskedConv2d(2 * h, o, 1, "B", C)
        self.out2 = MaskedConv2d(o, levels * C, 1, "B", C)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = check_levels(x, self.levels)
        if x.shape[1] != self.channels:
            raise ValueError(f"x must have {self.channels} channel(s), got shape {tuple(x.shape)}")
        return self.logits_from_inputs(_inputs(x, self.levels), _one_hot_or_none(y, self.n_classes, len(x), x.device))

    def logits_from_inputs(self, u: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The logits from the real-valued input ``u`` ``(B, C, H, W)`` (differentiable, see :func:`dependencies`)."""
        h = self.first(u)
        for block in self.blocks:
            h = block(h, c)
        out = self.out2(F.relu(self.out1(F.relu(h))))  # (B, C * levels, H, W), grouped by colour
        B, _, H, W = out.shape
        return out.view(B, self.channels, self.levels, H, W).transpose(1, 2)


# ----------------------------------------------------------------------------------------------
# Gated PixelCNN: vertical and horizontal stacks
# ----------------------------------------------------------------------------------------------


def _shift_down(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def _shift_right(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


class _GatedLayer(nn.Module):
    def __init__(self, c_in: int, h: int, k: int, first: bool, n_classes: int | None, map_channels: int | None = None):
        super().__init__()
        self.first, self.k = first, k
        self.v = nn.Conv2d(c_in, 2 * h, (k // 2 + 1, k), padding=(k // 2, k // 2))
        self.h = nn.Conv2d(c_in, 2 * h, (1, k // 2 + 1), padding=(0, k // 2))
        self.v_to_h = nn.Conv2d(2 * h, 2 * h, 1)
        self.h_out = nn.Conv2d(h, h, 1)
        self.cond = nn.Linear(n_classes, 2 * h) if n_classes else None
        self.cond_map = nn.Conv2d(map_channels, 2 * h, 1, bias=False) if map_channels else None

    @staticmethod
    def _gate(a: torch.Tensor) -> torch.Tensor:
        f, g = a.chunk(2, 1)
        return torch.tanh(f) * torch.sigmoid(g)

    def bias(self, c: torch.Tensor | None, s: torch.Tensor | None):
        """The conditioning added to every gate: the class bias (B, 2h, 1, 1), plus the class map's
        picture (B, 2h, H, W) when there is one; None without a label."""
        if c is None:
            return None
        bias = self.cond(c)[:, :, None, None]
        if s is not None:  # location-dependent: a per-class map over the image, not a function of x
            bias = bias + self.cond_map(s)
        return bias

    def vertical(self, v: torch.Tensor, bias):
        """The vertical stack: (pre-activation, next layer's input); row i sees rows i - k//2 .. i."""
        v_pre = self.v(v)[:, :, :v.shape[2], :]
        return v_pre, self._gate(v_pre if bias is None else v_pre + bias)

    def horizontal(self, h: torch.Tensor, from_above: torch.Tensor, bias):
        """The horizontal stack, given ``from_above`` = v_to_h of the vertical pre-activation of the
        row above (the only way the rows above reach it)."""
        h_pre = self.h(h)[:, :, :, :h.shape[3]]  # column j sees columns j - k//2 .. j of its row
        if self.first:  # type A: the current pixel itself is not an input of its own prediction
            h_pre = _shift_right(h_pre)
        h_pre = h_pre + from_above
        if bias is not None:
            h_pre = h_pre + bias
        h_new = self.h_out(self._gate(h_pre))
        return h_new if self.first else h + h_new

    def forward(self, v: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, s: torch.Tensor | None = None):
        bias = self.bias(c, s)
        v_pre, v_new = self.vertical(v, bias)
        # only the rows strictly above reach the horizontal stack
        return v_new, self.horizontal(h, self.v_to_h(_shift_down(v_pre)), bias)


class GatedPixelCNN(nn.Module):
    r"""The gated PixelCNN (van den Oord et al., 2016b): a **vertical stack** whose features at row
    :math:`i` summarise the rows above (they reach the horizontal stack shifted down by one row), and a
    **horizontal stack** over the pixels left of the current one in its row; gated activations
    :math:`\tanh(W_f * h) \odot \sigma(W_g * h)`, residual connections in the horizontal stack, and an
    optional class bias in every gate and in the output layer. Unlike masked convolutions, the union of the two stacks covers
    every pixel before the current one: no blind spot. Output logits ``(B, levels, 1, H, W)``
    (one channel).

    ``class_map = R`` (with ``n_classes``) adds the paper's **location-dependent** conditioning: each
    class has a learned map of ``h`` channels at R x R, upsampled (bilinear) to ``image_size`` and
    added to every gate through a 1 x 1 convolution, so that the model knows where on the image the
    strokes of a given digit go, beyond what its receptive field sees. The map does not depend on the
    pixels, so the model stays causal. Images must then be ``image_size`` (or its first rows, as
    :func:`sample` passes them).
    """

    row_causal = True

    def __init__(self, levels: int = 2, h: int = 32, n_layers: int = 6, kernel_size: int = 3, first_kernel: int = 7,
                 n_classes: int | None = None, class_map: int | None = None, image_size=(28, 28)):
        super().__init__()
        self.levels, self.n_classes, self.channels = checks.positive_int(levels, "levels", 2), n_classes, 1
        if kernel_size % 2 == 0 or first_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd")
        if class_map is not None and not n_classes:
            raise ValueError("class_map needs n_classes: the map is one per class")
        self.image_size = tuple(image_size)
        m = h if class_map else None
        self.class_map = nn.Parameter(torch.zeros(n_classes, h, checks.positive_int(class_map, "class_map"), class_map)) if class_map else None
        self.layers = nn.ModuleList([_GatedLayer(1, h, first_kernel, True, n_classes, m)] +
                                    [_GatedLayer(h, h, kernel_size, False, n_classes, m) for _ in range(n_layers - 1)])
        self.out1 = nn.Conv2d(h, 2 * h, 1)
        self.out2 = nn.Conv2d(2 * h, levels, 1)
        self.cond_out = nn.Linear(n_classes, 2 * h) if n_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = check_levels(x, self.levels)
        if x.shape[1] != 1:
            raise ValueError(f"GatedPixelCNN models one channel, got shape {tuple(x.shape)}")
        return self.logits_from_inputs(_inputs(x, self.levels), _one_hot_or_none(y, self.n_classes, len(x), x.device))

    def _map(self, c: torch.Tensor | None, H: int, W: int) -> torch.Tensor | None:
        if self.class_map is None or c is None:
            return None
        if W != self.image_size[1] or H > self.image_size[0]:
            raise ValueError(f"this model's class map is drawn over {self.image_size[0]} x {self.image_size[1]} images "
                             f"(or their first rows), got {H} x {W}")
        s = torch.einsum("bk,kcrs->bcrs", c, self.class_map.to(c.dtype))
        return F.interpolate(s, size=self.image_size, mode="bilinear", align_corners=False)[:, :, :H]

    def logits_from_inputs(self, u: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The logits from the real-valued input ``u`` ``(B, 1, H, W)`` (differentiable, see :func:`dependencies`)."""
        v = h = u
        s = self._map(c, *u.shape[2:])
        for layer in self.layers:
            v, h = layer(v, h, c, s)
        return self._output(h, c)

    def _output(self, h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        out = self.out1(F.relu(h))
        if c is not None:
            out = out + self.cond_out(c)[:, :, None, None]
        return self.out2(F.relu(out)).unsqueeze(2)

    def context_for_row(self, u_above: torch.Tensor, i: int, c: torch.Tensor | None, s_full: torch.Tensor | None):
        """What the rows above give row ``i`` (the cache of :func:`sample`): for every layer, ``v_to_h``
        of the vertical pre-activation at row ``i - 1`` (``(B, 2h, 1, W)``), and the conditioning of row
        ``i``. ``u_above`` ``(B, 1, i, W)``: the real-valued inputs of rows ``0..i-1``; ``s_full`` the
        class map's picture over the whole image (or None)."""
        B, _, _, W = u_above.shape
        v, context = u_above, []
        for layer in self.layers:
            if i == 0:  # nothing above: the shifted-down stack is zero there
                context.append(layer.v_to_h(torch.zeros(B, layer.v_to_h.in_channels, 1, W, dtype=u_above.dtype, device=u_above.device)))
                continue
            bias = layer.bias(c, None if s_full is None else s_full[:, :, :i])
            v_pre, v = layer.vertical(v, bias)
            context.append(layer.v_to_h(v_pre[:, :, i - 1:i]))
        biases = [layer.bias(c, None if s_full is None else s_full[:, :, i:i + 1]) for layer in self.layers]
        return context, biases

    def logits_of_row(self, u_row: torch.Tensor, context, c: torch.Tensor | None) -> torch.Tensor:
        """The logits of one row ``(B, levels, 1, 1, W)`` from its inputs ``u_row`` ``(B, 1, 1, W)``
        and :meth:`context_for_row`: the horizontal stack and the output layers on one row only."""
        from_above, biases = context
        h = u_row
        for layer, above, bias in zip(self.layers, from_above, biases):
            h = layer.horizontal(h, above, bias)
        return self._output(h, c)


# ----------------------------------------------------------------------------------------------
# exact likelihood and sampling
# ----------------------------------------------------------------------------------------------


def log_likelihood(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *, upto: int | None = None,
                   batch_size: int = 500) -> torch.Tensor:
    r"""The exact :math:`\log p(x) = \sum_i \log p(x_i \mid x_{<i})` of each image, in nats, shape
    ``(B,)`` (per image, summed over pixels and channels: the course's convention; bits per dimension
    are :func:`gencourse.metrics.bits_per_dim` of its negative). One forward pass per batch.

    ``upto`` sums only the first ``upto`` factors in raster order (channel by channel within a pixel):
    :math:`\log p(x_1, \dots, x_{\text{upto}})`, the exact likelihood of that prefix of the image
    (e.g. ``upto = 14 * 28`` for the upper half of a 28 x 28 image), because the factors of the
    later values sum to one over them. The values after the prefix do not change the result."""
    x = check_levels(x, model.levels)
    C, H, W = x.shape[1:]
    if upto is not None and (isinstance(upto, bool) or not isinstance(upto, int) or not 0 <= upto <= C * H * W):
        raise ValueError(f"upto must be an int in 0..{C * H * W} (values in raster order), got {upto!r}")
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        yb = None if y is None else y[i:i + batch_size].to(device)
        logp = torch.log_softmax(model(xb, yb), 1).gather(1, xb.unsqueeze(1)).squeeze(1)  # (B, C, H, W)
        logp = logp.permute(0, 2, 3, 1).flatten(1)  # raster order: row, column, then channel
        out.append(logp[:, :upto].sum(1))
    return torch.cat(out)


@torch.no_grad()
def class_log_joint(model: nn.Module, x: torch.Tensor, prior=None, *, upto: int | None = None) -> torch.Tensor:
    r""":math:`\log p(y) + \log p(x \mid y)` for every image and class, ``(B, K)`` float64, one pass per
    class: what :func:`mixture_log_likelihood` (its logsumexp over classes) and :func:`label_posterior`
    (its softmax) are made of, for a chapter that needs both without paying twice. ``prior`` ``(K,)``:
    :math:`p(y)`, uniform if None; ``upto`` as in :func:`log_likelihood`."""
    K = getattr(model, "n_classes", None)
    if not K:
        raise ValueError("this model is not class-conditional (n_classes is None): there is no label to sum over")
    prior = torch.full((K,), 1.0 / K) if prior is None else torch.as_tensor(prior, dtype=torch.float64)
    if prior.shape != (K,) or (prior < 0).any() or abs(float(prior.sum()) - 1) > 1e-6:
        raise ValueError(f"prior must be {K} probabilities that sum to 1, got {prior.tolist()}")
    x = check_levels(x, model.levels)
    columns = [log_likelihood(model, x, torch.full((len(x),), k, dtype=torch.long), upto=upto) for k in range(K)]
    return torch.stack(columns, 1).double().cpu() + prior.double().log()  # (B, K): log p(y) + log p(x | y)


@torch.no_grad()
def mixture_log_likelihood(model: nn.Module, x: torch.Tensor, prior=None, *, upto: int | None = None) -> torch.Tensor:
    r"""A class-conditional model is also a model of :math:`x` alone, the mixture
    :math:`p(x) = \sum_y p(y)\, p(x \mid y)`, and its likelihood is still exact:
    :math:`\log p(x) = \operatorname{logsumexp}_y [\log p(y) + \log p(x \mid y)]`, one pass per class.
    ``prior`` ``(K,)``: :math:`p(y)`, uniform if None. ``upto`` as in :func:`log_likelihood`. Nats, ``(B,)`` float64."""
    return torch.logsumexp(class_log_joint(model, x, prior, upto=upto), 1)


@torch.no_grad()
def label_posterior(model: nn.Module, x: torch.Tensor, prior=None, *, upto: int | None = None) -> torch.Tensor:
    r"""Bayes' rule with an exact likelihood: :math:`p(y \mid x) \propto p(y)\, p(x \mid y)`, ``(B, K)``
    float64, rows summing to 1. With ``upto``, the posterior given the first ``upto`` values only (e.g.
    the upper half of each image), exact as well."""
    return torch.softmax(class_log_joint(model, x, prior, upto=upto), 1)


@torch.no_grad()
def sample(model: nn.Module, n: int, shape=(1, 28, 28), *, y: torch.Tensor | None = None, given: torch.Tensor | None = None,
           known: torch.Tensor | None = None, generator: torch.Generator | None = None, temperature: float = 1.0,
           cache: bool = True, on_row: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    r"""Draw ``n`` images pixel by pixel in raster order (channel by channel within a pixel): one
    forward pass per pixel and channel, :math:`D` passes in all; each value is drawn from the softmax
    of the logits divided by ``temperature``. ``given`` ``(n, C, H, W)`` levels and ``known`` (a
    boolean mask of the same shape, or ``(C, H, W)``) fix some pixels (e.g. the upper half: completion).
    Returns levels ``(n, C, H, W)`` int64 on the CPU.

    A convolutional model (``model.row_causal``) is run on rows ``0..i`` only when it predicts row
    ``i``: its output there does not depend on the rows below, so the result is the same and the
    average pass is about half as long.

    ``cache`` (the gated PixelCNN): the rows above reach row ``i`` only through the vertical stack,
    which does not change while row ``i`` is drawn. So it is run once per row
    (:meth:`GatedPixelCNN.context_for_row`) and each pixel of the row costs the horizontal stack on
    that row alone, on the columns up to the current one (:meth:`GatedPixelCNN.logits_of_row`): the
    same logits, many times fewer operations.
    ``cache=False`` runs the whole network for every pixel.

    ``on_row(i, x)``, when given, is called after row ``i`` is drawn with the images so far (levels
    ``(n, C, H, W)``, rows below ``i`` still 0), e.g. to animate the sampling."""
    n = checks.positive_int(n, "n")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    device = next(model.parameters()).device
    C, H, W = shape
    x = torch.zeros(n, C, H, W, dtype=torch.long)
    if (known is None) != (given is None):
        raise ValueError("given (the values of the known pixels) and known (which pixels they are) go together: pass both or neither")
    if known is not None:
        given = check_levels(given, model.levels, shape, "given")
        known = known.bool().expand(n, C, H, W) if known.ndim == 3 else known.bool()
        x[known] = given[known]
    was = model.training
    model.eval()
    try:
        if cache and hasattr(model, "context_for_row"):
            _sample_cached(model, x, y, known, generator, temperature, device, on_row)
            return x
        for i in range(H):
            for j in range(W):
                for c in range(C):
                    if known is not None and bool(known[:, c, i, j].all()):
                        continue
                    rows = x[:, :, : i + 1] if getattr(model, "row_causal", False) else x  # rows below i cannot matter
                    logits = model(rows.to(device), None if y is None else y.to(device))[:, :, c, i, j].cpu()
                    draw = torch.multinomial(torch.softmax(logits / temperature, 1), 1, generator=generator).squeeze(1)
                    x[:, c, i, j] = draw if known is None else torch.where(known[:, c, i, j], x[:, c, i, j], draw)
            if on_row is not None:
                on_row(i, x.clone())
    finally:
        model.train(was)
    return x


def _sample_cached(model, x, y, known, generator, temperature, device, on_row=None) -> None:
    n, _, H, W = x.shape
    c = _one_hot_or_none(y, model.n_classes, n, device)
    s_full = model._map(c, H, W)
    for i in range(H):
        context = model.context_for_row(_inputs(x[:, :, :i].to(device), model.levels), i, c, s_full)
        for j in range(W):
            if known is not None and bool(known[:, 0, i, j].all()):
                continue
            # the horizontal stack is causal along the row too: columns 0..j give column j exactly
            upto_j = ([a[..., :j + 1] for a in context[0]], [b if b is None or b.shape[-1] == 1 else b[..., :j + 1] for b in context[1]])
            logits = model.logits_of_row(_inputs(x[:, :, i:i + 1, :j + 1].to(device), model.levels), upto_j, c)[:, :, 0, 0, j].cpu()
            draw = torch.multinomial(torch.softmax(logits / temperature, 1), 1, generator=generator).squeeze(1)
            x[:, 0, i, j] = draw if known is None else torch.where(known[:, 0, i, j], x[:, 0, i, j], draw)
        if on_row is not None:
            on_row(i, x.clone())


def dependencies(model: nn.Module, shape, i: int, j: int, channel: int = 0, *, trials: int = 4, seed: int = 0) -> torch.Tensor:
    r"""Which input values the logits of output pixel ``(channel, i, j)`` depend on, **measured**:
    the gradient of those logits with respect to the network's real-valued input, at ``trials``
    random inputs (in float64, so that no dependence is lost to a cancellation); a boolean map
    ``(C, H, W)``, True where some gradient is non-zero. For a causal model every True lies before
    ``(channel, i, j)`` in raster order; the pixels before it that stay False are its **blind spot**."""
    C, H, W = shape
    if not (0 <= i < H and 0 <= j < W and 0 <= channel < C):
        raise ValueError(f"pixel ({channel}, {i}, {j}) is outside an image of shape {tuple(shape)}")
    g = torch.Generator().manual_seed(seed)
    m = copy.deepcopy(model).double().cpu().eval()
    seen = torch.zeros(C, H, W, dtype=torch.bool)
    for _ in range(trials):
        u = torch.randn(1, C, H, W, generator=g, dtype=torch.float64).requires_grad_(True)
        c = None
        if getattr(m, "n_classes", None):
            c = F.one_hot(torch.randint(0, m.n_classes, (1,), generator=g), m.n_classes).double()
        m.logits_from_inputs(u, c)[0, :, channel, i, j].sum().backward()
        seen |= u.grad[0] != 0
    return seen
