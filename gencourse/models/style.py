r"""Style-based generators (chapter 11): AdaIN, the mapping network, weight modulation and
demodulation, noise inputs, style mixing and the truncation trick.

* :func:`adain` — adaptive instance normalisation (Huang & Belongie, 2017): each channel of each
  image normalised over its **spatial** positions, then given the style's scale and bias.
* :class:`MappingNetwork` — :math:`z \mapsto w` (Karras et al., 2019): pixel norm, then an MLP.
* :class:`ModulatedConv2d` — StyleGAN2's convolution whose weights are scaled per input channel by
  the style (modulation) and renormalised per output channel (demodulation; Karras et al., 2020).
* :class:`StyleLayer` — one layer of the synthesis network: a 3×3 convolution, per-pixel noise,
  a bias, LeakyReLU and the style, either through AdaIN (``kind="adain"``, StyleGAN) or through
  the modulated convolution (``kind="demod"``, StyleGAN2).
* :class:`StyleGenerator` — a learned constant 4×4 input, 7 style layers (4 → 8 → 16 → 32) and a
  modulated 1×1 "to image" layer, so 8 styles :math:`w_0, \dots, w_7`; ``mapping``,
  ``synthesis``, ``mix`` (style mixing) and the running mean :math:`\bar w` for truncation.
* :class:`StyleDiscriminator` — a 32×32 discriminator without normalisation, with the minibatch
  standard deviation feature (Karras et al., 2018), returning logits ``(B,)``.
* :func:`truncate` — the truncation trick in :math:`W`: :math:`\bar w + \psi (w - \bar w)`.
* :func:`pad32`, :func:`crop28` — MNIST's 28×28 digits in the 32×32 frame of the generator.
* :func:`feature_stats` — per-layer feature-map statistics (the droplet measurement).
* :func:`path_length` — a perceptual-path-length-style measure of how smoothly images change
  along interpolations in :math:`Z` or :math:`W`.

The R1 penalty is :func:`gencourse.losses.r1_penalty`; the training recipe is
:mod:`gencourse.recipes.style`. Images are in :math:`[-1, 1]`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks

__all__ = [
    "adain",
    "pixel_norm",
    "MappingNetwork",
    "ModulatedConv2d",
    "StyleLayer",
    "StyleGenerator",
    "StyleDiscriminator",
    "minibatch_stddev",
    "truncate",
    "pad32",
    "crop28",
    "feature_stats",
    "path_length",
]


def _check_maps(x, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor of shape (B, C, H, W), got {got}")
    return x


def adain(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    r"""Adaptive instance normalisation (Huang & Belongie, 2017, eq. 8):

    .. math:: \mathrm{AdaIN}(x, y)_{b,c} = y^s_{b,c}\, \frac{x_{b,c} - \mu_{b,c}(x)}{\sqrt{\sigma^2_{b,c}(x) + \varepsilon}} + y^b_{b,c},

    where :math:`\mu_{b,c}` and :math:`\sigma^2_{b,c}` are the mean and the (biased) variance of
    channel :math:`c` of image :math:`b` over its :math:`H \times W` positions — per image, not over
    the batch (that would be batch norm). So each output channel has mean :math:`y^b_{b,c}` and
    standard deviation :math:`|y^s_{b,c}|` (up to :math:`\varepsilon`): the style sets the first two
    moments of every feature map, whatever they were.

    Args: ``x`` ``(B, C, H, W)``; ``scale``, ``bias`` ``(B, C)``; ``eps`` keeps a constant channel
    (variance 0) finite.
    """
    x = _check_maps(x)
    B, C = x.shape[:2]
    for name, v in (("scale", scale), ("bias", bias)):
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != (B, C):
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{name} must have shape (B, C) = ({B}, {C}), got {got}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (a constant channel has variance 0), got {eps}")
    mu = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    return scale[:, :, None, None] * (x - mu) / torch.sqrt(var + eps) + bias[:, :, None, None]


def pixel_norm(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    r""":math:`z / \sqrt{\operatorname{mean}_j z_j^2 + \varepsilon}` per row (Karras et al., 2018):
    puts every code on the sphere of radius :math:`\sqrt d`."""
    return z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + eps)


class MappingNetwork(nn.Module):
    r"""The mapping network :math:`f: z \mapsto w` of StyleGAN (Karras et al., 2019, section 2):
    :func:`pixel_norm` of :math:`z`, then ``n_layers`` fully connected layers, each followed by
    LeakyReLU(0.2) (the paper: 8 layers of 512; here 4 of ``w_dim``).

    Input ``(B, z_dim)``; output ``(B, w_dim)``. The paper trains it with a learning rate 100
    times smaller than the synthesis network's (:func:`gencourse.recipes.style.train_style` uses a
    separate parameter group).
    """

    def __init__(self, z_dim: int = 64, w_dim: int = 64, n_layers: int = 4):
        super().__init__()
        self.z_dim = checks.positive_int(z_dim, "z_dim")
        self.w_dim = checks.positive_int(w_dim, "w_dim")
        checks.positive_int(n_layers, "n_layers")
        layers = []
        for i in range(n_layers):
            layers += [nn.Linear(z_dim if i == 0 else w_dim, w_dim), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)
        for m in self.net:  # He initialisation: w keeps the scale of z through the layers
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, math.sqrt(2 / m.in_features))
                nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.z_dim:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must have shape (B, z_dim) = (B, {self.z_dim}), got {got}")
        return self.net(pixel_norm(z))


class ModulatedConv2d(nn.Module):
    r"""StyleGAN2's modulated convolution (Karras et al., 2020, eqs. 1–3). The style
    :math:`s = A(w)` (an affine map, initialised to :math:`s = 1`) scales the weights per input
    channel, then **demodulation** rescales each output channel's weights to unit norm:

    .. math:: w'_{oik} = s_i\, w_{oik}, \qquad w''_{oik} = w'_{oik} \Big/ \sqrt{\textstyle\sum_{i,k} {w'_{oik}}^2 + \varepsilon}.

    With inputs of unit standard deviation the outputs then have unit standard deviation (in
    expectation), which replaces AdaIN's explicit normalisation by the *data*. Each image of the
    batch has its own weights: one grouped convolution over the batch.

    ``demodulate=False`` gives the plain modulation (used by the 1×1 "to image" layer).
    Input ``x`` ``(B, c_in, H, W)`` and ``w`` ``(B, w_dim)``; output ``(B, c_out, H, W)``.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, w_dim: int, demodulate: bool = True, eps: float = 1e-8):
        super().__init__()
        self.c_in, self.c_out = checks.positive_int(c_in, "c_in"), checks.positive_int(c_out, "c_out")
        self.kernel_size = checks.positive_int(kernel_size, "kernel_size")
        self.demodulate, self.eps = bool(demodulate), eps
        # equalised learning rate (Karras et al., 2018): weights stored as N(0, 1), scaled by He's
        # constant at run time, so that Adam's steps are equally large relative to every layer's weights
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel_size, kernel_size))
        self.gain = 1 / math.sqrt(c_in * kernel_size**2)
        self.affine = nn.Linear(checks.positive_int(w_dim, "w_dim"), c_in)
        with torch.no_grad():  # s = 1 + small at the start (StyleGAN2: bias 1)
            self.affine.weight.normal_(0, 1 / math.sqrt(w_dim))
            self.affine.bias.fill_(1.0)

    def modulated_weight(self, w: torch.Tensor) -> torch.Tensor:
        """The per-image weights ``(B, c_out, c_in, k, k)`` for the styles ``w`` ``(B, w_dim)``."""
        s = self.affine(w)  # (B, c_in)
        weight = self.gain * self.weight[None] * s[:, None, :, None, None]  # modulation
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + self.eps)
        return weight

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = _check_maps(x)
        B, _, H, W = x.shape
        if x.shape[1] != self.c_in:
            raise ValueError(f"x must have {self.c_in} channels, got {x.shape[1]}")
        weight = self.modulated_weight(w).reshape(B * self.c_out, self.c_in, self.kernel_size, self.kernel_size)
        out = F.conv2d(x.reshape(1, B * self.c_in, H, W), weight, padding=self.kernel_size // 2, groups=B)
        return out.reshape(B, self.c_out, H, W)


class StyleLayer(nn.Module):
    r"""One layer of the synthesis network, optionally after a 2× upsampling (bilinear).

    ``kind="adain"`` (StyleGAN, Karras et al., 2019, figure 1b): 3×3 convolution, noise
    :math:`+\, \beta_c \cdot n` with :math:`n \sim \mathcal N(0, 1)` one value per pixel shared by the
    channels and a learned strength per channel, bias, LeakyReLU(0.2), then :func:`adain` with the
    style :math:`(y^s, y^b) = A(w)`.

    ``kind="demod"`` (StyleGAN2, Karras et al., 2020, figure 2c): :class:`ModulatedConv2d` with
    demodulation, then noise, bias and LeakyReLU(0.2); no normalisation of the feature maps.

    ``noise`` is ``None`` (fresh noise), a tensor ``(B, 1, H, W)``, or ``0`` (no noise).
    """

    def __init__(self, c_in: int, c_out: int, w_dim: int, kind: str = "demod", upsample: bool = False):
        super().__init__()
        self.kind = checks.one_of(kind, ("adain", "demod"), "kind")
        self.upsample = bool(upsample)
        if self.kind == "demod":
            self.conv = ModulatedConv2d(c_in, c_out, 3, w_dim, demodulate=True)
        else:
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            self.affine = nn.Linear(w_dim, 2 * c_out)
            with torch.no_grad():
                self.affine.weight.normal_(0, 1 / math.sqrt(w_dim))
                self.affine.bias.copy_(torch.cat([torch.ones(c_out), torch.zeros(c_out)]))  # scale 1, bias 0
        self.noise_strength = nn.Parameter(torch.zeros(c_out))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise=None, *, keep: dict | None = None) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv(x, w) if self.kind == "demod" else self.conv(x)
        B, _, H, W = x.shape
        if noise is None:
            noise = torch.randn(B, 1, H, W, device=x.device, dtype=x.dtype)
        x = x + self.noise_strength[None, :, None, None] * noise
        x = self.act(x + self.bias[None, :, None, None])
        if self.kind == "demod":
            x = x * math.sqrt(2)  # StyleGAN2's gain: LeakyReLU halves the variance, no normalisation restores it
        if keep is not None:
            keep["before_style"] = x
        if self.kind == "adain":
            scale, bias = self.affine(w).chunk(2, dim=1)
            x = adain(x, scale, bias)
        return x


class StyleGenerator(nn.Module):
    r"""A small style-based generator for 32×32 images (Karras et al., 2019; 2020).

    ===============================  ==============================  ======
    layer                            output ``(B, C, H, W)``         style
    ===============================  ==============================  ======
    learned constant                 ``(B, c_0, 4, 4)``
    :class:`StyleLayer`              ``(B, c_0, 4, 4)``              0
    up 2×, StyleLayer, StyleLayer    ``(B, c_1, 8, 8)``              1, 2
    up 2×, StyleLayer, StyleLayer    ``(B, c_2, 16, 16)``            3, 4
    up 2×, StyleLayer, StyleLayer    ``(B, c_3, 32, 32)``            5, 6
    modulated 1×1 conv ("to image")  ``(B, img_channels, 32, 32)``   7
    ===============================  ==============================  ======

    The input is not :math:`z`: every image starts from the same learned constant, and :math:`z`
    enters only through the styles :math:`w = f(z)` of the :class:`MappingNetwork`, one copy per
    layer (``num_ws = 8``), so that different layers can take different :math:`w` (style mixing).
    Coarse layers (0–2, 4×4 and 8×8) set the layout; fine layers (5–7, 32×32) the stroke.
    As in StyleGAN the output is linear (no tanh): a tanh saturates when the generator collapses
    to the background value -1, and its gradient then vanishes. Clamp samples to [-1, 1] to show
    or score them.

    Methods: ``mapping(z)``; ``synthesis(ws, noise=...)`` with ``ws`` ``(B, num_ws, w_dim)``;
    ``forward(z, psi=1.0)`` (truncation toward the buffer ``w_avg``, :func:`truncate`);
    ``mix(z1, z2, crossover)``; ``update_w_avg(w)``.
    ``kind``: ``"demod"`` (StyleGAN2) or ``"adain"`` (StyleGAN).
    """

    def __init__(self, z_dim: int = 64, w_dim: int = 64, channels=(64, 64, 32, 16), mapping_layers: int = 4,
                 kind: str = "demod", img_channels: int = 1):
        super().__init__()
        channels = tuple(checks.positive_int(c, "channels") for c in channels)
        if len(channels) != 4:
            raise ValueError(f"channels must give 4 widths (4x4, 8x8, 16x16, 32x32), got {channels}")
        self.kind = checks.one_of(kind, ("adain", "demod"), "kind")
        self.z_dim, self.w_dim, self.img_channels = z_dim, w_dim, checks.positive_int(img_channels, "img_channels")
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.const = nn.Parameter(torch.randn(1, channels[0], 4, 4))
        layers = [StyleLayer(channels[0], channels[0], w_dim, kind)]
        for c_prev, c in zip(channels[:-1], channels[1:]):
            layers += [StyleLayer(c_prev, c, w_dim, kind, upsample=True), StyleLayer(c, c, w_dim, kind)]
        self.layers = nn.ModuleList(layers)
        self.to_image = ModulatedConv2d(channels[-1], img_channels, 1, w_dim, demodulate=False)
        self.image_bias = nn.Parameter(torch.zeros(img_channels))
        self.num_ws = len(self.layers) + 1
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def resolutions(self) -> list[int]:
        """The output resolution of each style input (the last is the 1×1 "to image" layer)."""
        res, out = 4, []
        for layer in self.layers:
            res *= 2 if layer.upsample else 1
            out.append(res)
        return out + [res]

    def _ws(self, ws: torch.Tensor) -> torch.Tensor:
        if not isinstance(ws, torch.Tensor) or ws.ndim != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            got = tuple(ws.shape) if isinstance(ws, torch.Tensor) else type(ws).__name__
            raise ValueError(f"ws must have shape (B, num_ws, w_dim) = (B, {self.num_ws}, {self.w_dim}), got {got}")
        return ws

    def synthesis(self, ws: torch.Tensor, noise=None, *, keep: list | None = None) -> torch.Tensor:
        r"""Images ``(B, img_channels, 32, 32)`` from per-layer styles ``ws`` ``(B, num_ws, w_dim)``.
        ``noise``: ``None`` (fresh), ``0`` (none) or a list of ``num_ws - 1`` tensors ``(B, 1, H, W)``.
        ``keep``: a list that receives, per layer, the feature maps before the style is applied."""
        ws = self._ws(ws)
        B = ws.shape[0]
        if isinstance(noise, (list, tuple)) and len(noise) != len(self.layers):
            raise ValueError(f"noise must be a list of {len(self.layers)} tensors, got {len(noise)}")
        x = self.const.expand(B, -1, -1, -1)
        for i, layer in enumerate(self.layers):
            n = noise[i] if isinstance(noise, (list, tuple)) else (None if noise is None else 0.0)
            store = {} if keep is not None else None
            x = layer(x, ws[:, i], n, keep=store)
            if keep is not None:
                keep.append(store["before_style"])
        return self.to_image(x, ws[:, -1]) + self.image_bias[None, :, None, None]

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """``(B, w_dim)`` → ``(B, num_ws, w_dim)``: the same style for every layer."""
        return w[:, None, :].expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, psi: float = 1.0, noise=None) -> torch.Tensor:
        w = self.mapping(z)
        if psi != 1.0:
            w = truncate(w, self.w_avg, psi)
        return self.synthesis(self.broadcast(w), noise)

    def mix(self, z1: torch.Tensor, z2: torch.Tensor, crossover: int, noise=None, psi: float = 1.0) -> torch.Tensor:
        r"""Style mixing (Karras et al., 2019, section 3.1): layers ``< crossover`` take
        :math:`w_1 = f(z_1)`, layers ``>= crossover`` take :math:`w_2 = f(z_2)`."""
        if not 0 <= crossover <= self.num_ws:
            raise ValueError(f"crossover must be in [0, {self.num_ws}], got {crossover}")
        w1, w2 = self.mapping(z1), self.mapping(z2)
        if psi != 1.0:
            w1, w2 = truncate(w1, self.w_avg, psi), truncate(w2, self.w_avg, psi)
        ws = self.broadcast(w1).clone()
        ws[:, crossover:] = w2[:, None, :]
        return self.synthesis(ws, noise)

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor, beta: float = 0.995) -> None:
        r"""Track :math:`\bar w \leftarrow \beta \bar w + (1 - \beta)\operatorname{mean}_b w_b`
        (StyleGAN's running average, the centre of the truncation trick)."""
        self.w_avg.lerp_(w.detach().mean(dim=0), 1 - beta)


def truncate(w: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
    r"""The truncation trick in :math:`W` (Karras et al., 2019, section 4.1):
    :math:`w' = \bar w + \psi\,(w - \bar w)`. ``psi = 1`` leaves ``w``; ``psi = 0`` gives the
    "average" image for every code. ``w`` is ``(B, w_dim)`` or ``(B, num_ws, w_dim)``; with the
    latter, ``cutoff`` truncates only the layers ``< cutoff`` (the paper truncates the coarse ones).
    It is applied to :math:`w`, **after** the mapping network, not to :math:`z` (BigGAN truncates
    :math:`z` by resampling; StyleGAN's :math:`W` has a meaningful centre, :math:`Z` does not)."""
    if not isinstance(w, torch.Tensor) or w.ndim not in (2, 3):
        raise ValueError(f"w must have shape (B, w_dim) or (B, num_ws, w_dim), got {getattr(w, 'shape', type(w).__name__)}")
    if not isinstance(w_avg, torch.Tensor) or tuple(w_avg.shape) != (w.shape[-1],):
        raise ValueError(f"w_avg must have shape ({w.shape[-1]},), got {getattr(w_avg, 'shape', type(w_avg).__name__)}")
    out = w_avg + psi * (w - w_avg)
    if cutoff is not None:
        if w.ndim != 3:
            raise ValueError("cutoff needs per-layer styles w of shape (B, num_ws, w_dim)")
        out = torch.cat([out[:, :cutoff], w[:, cutoff:]], dim=1)
    return out


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    r"""Append one feature map: the standard deviation of each feature over groups of ``group``
    images, averaged over features and positions (Karras et al., 2018, section 3). It lets the
    discriminator see a batch's lack of variety (mode collapse)."""
    B, C, H, W = x.shape
    g = min(group, B)
    if B % g:
        g = 1
    y = x.reshape(g, B // g, C, H, W)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B // g,)
    y = y.repeat(g)[:, None, None, None].expand(B, 1, H, W)
    return torch.cat([x, y], dim=1)


class StyleDiscriminator(nn.Module):
    r"""A discriminator for 32×32 images: 3×3 convolution at 32×32, then three stride-2 4×4
    convolutions (32 → 16 → 8 → 4, widths ``ndf, 2·ndf, 4·ndf``) with LeakyReLU(0.2) and no
    normalisation (the R1 penalty needs each score to depend on its own image only, apart from
    the minibatch standard deviation), :func:`minibatch_stddev`, a 3×3 convolution and a linear
    layer to one logit per image."""

    def __init__(self, ndf: int = 16, img_channels: int = 1, mbstd_group: int = 4):
        super().__init__()
        checks.positive_int(ndf, "ndf")
        self.img_channels, self.mbstd_group = img_channels, mbstd_group
        act = nn.LeakyReLU(0.2)
        self.features = nn.Sequential(
            nn.Conv2d(img_channels, ndf, 3, padding=1), act,
            nn.Conv2d(ndf, ndf, 4, 2, 1), act,  # 16
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1), act,  # 8
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1), act,  # 4
        )
        self.head = nn.Sequential(nn.Conv2d(4 * ndf + 1, 4 * ndf, 3, padding=1), act, nn.Flatten(), nn.Linear(4 * ndf * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = checks.image_batch(x, (self.img_channels, 32, 32))
        h = self.features(x)
        if self.mbstd_group > 1:
            h = minibatch_stddev(h, self.mbstd_group)
        else:
            h = torch.cat([h, torch.zeros_like(h[:, :1])], dim=1)
        return self.head(h).flatten()


def _square_images(x, side: int) -> torch.Tensor:
    """``x`` checked as images ``(B, C, side, side)``, any number of channels."""
    channels = x.shape[1] if isinstance(x, torch.Tensor) and x.ndim == 4 else 1
    return checks.image_batch(x, (channels, side, side))


def pad32(x: torch.Tensor, value: float = -1.0) -> torch.Tensor:
    """28×28 images ``(B, C, 28, 28)`` into the 32×32 frame (2 pixels of ``value``, the background
    of images in [-1, 1], on each side)."""
    return F.pad(_square_images(x, 28), (2, 2, 2, 2), value=value)


def crop28(x: torch.Tensor) -> torch.Tensor:
    """The central 28×28 of 32×32 images (the inverse of :func:`pad32`), for the metrics."""
    return _square_images(x, 32)[:, :, 2:30, 2:30]


@torch.no_grad()
def feature_stats(G: StyleGenerator, z: torch.Tensor) -> list[dict]:
    r"""Per synthesis layer, statistics of the feature maps **before** the style is applied (the
    input of AdaIN, the activations of a demodulated layer): ``peak_ratio``, the mean over images
    and channels of max|x| / mean|x| over the positions (a "droplet" is a spike, a large ratio:
    the generator hides a strong local signal to control AdaIN's normalisation; Karras et al.,
    2020, section 2), and ``max_abs``."""
    keep: list = []
    G.synthesis(G.broadcast(G.mapping(z)), noise=0, keep=keep)
    out = []
    for res, x in zip(G.resolutions(), keep):
        a = x.abs().flatten(2)
        ratio = a.amax(dim=2) / a.mean(dim=2).clamp_min(1e-8)
        out.append({"resolution": res, "peak_ratio": float(ratio.mean()), "max_abs": float(a.amax())})
    return out


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


@torch.no_grad()
def path_length(G: StyleGenerator, n: int, *, space: str, embed, eps: float = 1e-2,
                generator: torch.Generator | None = None) -> torch.Tensor:
    r"""A perceptual path length (Karras et al., 2019, section 4.2) with the course's feature
    network in place of VGG: for ``n`` pairs of codes and :math:`t \sim \mathcal U[0, 1]`,

    .. math:: \frac{1}{\varepsilon^2}\, \big\| \phi(g(\mathrm{lerp}(t))) - \phi(g(\mathrm{lerp}(t + \varepsilon))) \big\|^2,

    interpolating :math:`z` spherically (``space="z"``) or :math:`w = f(z)` linearly
    (``space="w"``), with the same noise for both images. ``embed`` maps images in [-1, 1]
    ``(B, 1, 32, 32)`` to features. Returns the ``n`` values (the paper reports their mean after
    discarding the 1 % tails)."""
    checks.one_of(space, ("z", "w"), "space")
    n = checks.positive_int(n, "n")
    device = G.w_avg.device
    z0 = torch.randn(n, G.z_dim, generator=generator).to(device)
    z1 = torch.randn(n, G.z_dim, generator=generator).to(device)
    t = torch.rand(n, 1, generator=generator).to(device) * (1 - eps)
    if space == "z":
        a, b = G.mapping(_slerp(z0, z1, t)), G.mapping(_slerp(z0, z1, t + eps))
    else:
        w0, w1 = G.mapping(z0), G.mapping(z1)
        a, b = torch.lerp(w0, w1, t), torch.lerp(w0, w1, t + eps)
    noise = [torch.randn(n, 1, r, r, generator=generator).to(device) for r in G.resolutions()[:-1]]
    fa, fb = embed(G.synthesis(G.broadcast(a), noise)), embed(G.synthesis(G.broadcast(b), noise))
    return (fa - fb).pow(2).sum(dim=1) / eps**2
