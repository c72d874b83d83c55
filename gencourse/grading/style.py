"""Public checks for the exercises of chapter 11 (style-based generators).

Each check computes the reference itself (in float64) and names the classic mistake it sees:
AdaIN normalising over the batch (batch norm) instead of each image's positions, a standard
deviation without ε (a constant channel gives NaN) or with Bessel's correction, a mapping network
without the pixel norm or with ReLU, truncation applied to z instead of w (or the wrong way
round), R1 computed on fake images or as a mean over pixels, a penalty that no gradient flows
through.
"""

from __future__ import annotations

from .checks import expect, expect_close, register

#: resolutions of the style inputs of chapter 11's generator (7 layers, then the 32x32 image)
STYLE_RESOLUTIONS = (4, 8, 8, 16, 16, 32, 32, 32)


def _maps(seed: int, shape=(3, 4, 5, 6)):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(*shape, generator=g, dtype=torch.float64) + 2 * torch.arange(shape[0], dtype=torch.float64)[:, None, None, None]
    scale = 0.5 + torch.rand(shape[:2], generator=g, dtype=torch.float64)
    bias = torch.randn(shape[:2], generator=g, dtype=torch.float64)
    return x, scale, bias


def reference_adain(x, scale, bias, eps=1e-5):
    mu = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    return scale[:, :, None, None] * (x - mu) / (var + eps).sqrt() + bias[:, :, None, None]


@register("style.adain")
def _adain(adain):
    import torch

    x, s, b = _maps(0)
    got = adain(x, s, b)
    expect(isinstance(got, torch.Tensor) and got.shape == x.shape,
           f"adain must return a tensor of the input's shape {tuple(x.shape)}, got {tuple(getattr(got, 'shape', ())) or type(got).__name__}")
    over_batch = s[:, :, None, None] * (x - x.mean(dim=(0, 2, 3), keepdim=True)) / (
        x.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt() + b[:, :, None, None]
    expect(not torch.allclose(got, over_batch, rtol=1e-6, atol=1e-8),
           "adain normalises over the batch (that is batch norm): take the mean and variance of each image's channel "
           "over its positions only, x.mean(dim=(2, 3), keepdim=True)")
    unbiased = s[:, :, None, None] * (x - x.mean(dim=(2, 3), keepdim=True)) / (
        x.var(dim=(2, 3), unbiased=True, keepdim=True) + 1e-5).sqrt() + b[:, :, None, None]
    expect(not torch.allclose(got, unbiased, rtol=1e-7, atol=1e-9),
           "adain uses the unbiased variance (Bessel's correction): AdaIN's sigma is the plain standard deviation, unbiased=False")
    const = torch.full((2, 3, 4, 4), 5.0, dtype=torch.float64)
    out = adain(const, torch.ones(2, 3, dtype=torch.float64), torch.full((2, 3), 0.25, dtype=torch.float64))
    expect(isinstance(out, torch.Tensor) and bool(torch.isfinite(out).all()),
           "adain of a constant channel (variance 0) is not finite: add eps inside the square root, sqrt(var + eps)")
    expect_close(out, torch.full_like(out, 0.25), what="adain of a constant channel", rtol=0, atol=1e-8,
                 hint="a constant channel has x - mu = 0: the output is the bias")
    expect_close(got, reference_adain(x, s, b), what="adain(x, scale, bias)", rtol=1e-5, atol=1e-7,
                 hint="scale * (x - mu) / sqrt(var + eps) + bias, with mu and var per image and channel over (H, W)")


def _mapping_params(seed: int, sizes=(6, 5, 5, 5)):
    import torch

    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(o, i, generator=g, dtype=torch.float64) / i**0.5 for i, o in zip(sizes[:-1], sizes[1:])]
    biases = [0.1 * torch.randn(o, generator=g, dtype=torch.float64) for o in sizes[1:]]
    return weights, biases


def reference_mapping(z, weights, biases):
    import torch

    h = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
    for W, b in zip(weights, biases):
        h = torch.nn.functional.leaky_relu(h @ W.T + b, 0.2)
    return h


@register("style.mapping_forward")
def _mapping_forward(mapping_forward):
    import torch

    weights, biases = _mapping_params(1)
    z = 4 * torch.randn(7, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = mapping_forward(z, weights, biases)
    expect(isinstance(got, torch.Tensor) and tuple(got.shape) == (7, 5),
           f"mapping_forward must return w of shape (B, w_dim) = (7, 5), got {tuple(getattr(got, 'shape', ())) or type(got).__name__}")
    no_norm = z
    for W, b in zip(weights, biases):
        no_norm = torch.nn.functional.leaky_relu(no_norm @ W.T + b, 0.2)
    expect(not torch.allclose(got, no_norm, rtol=1e-6),
           "the pixel norm is missing: first z / sqrt(mean(z^2 over the features) + 1e-8), per code")
    relu = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
    for W, b in zip(weights, biases):
        relu = torch.relu(relu @ W.T + b)
    expect(not torch.allclose(got, relu, rtol=1e-6), "the activation is ReLU: StyleGAN's mapping uses LeakyReLU with slope 0.2")
    expect_close(got, reference_mapping(z, weights, biases), what="mapping_forward(z, weights, biases)", rtol=1e-6, atol=1e-9,
                 hint="h = pixel_norm(z); then for each layer h = leaky_relu(h @ W.T + b, 0.2), the last layer included")


@register("style.truncate")
def _truncate(truncate_w):
    import torch

    weights, biases = _mapping_params(3, sizes=(4, 4, 4))

    def mapping(z):
        return reference_mapping(z, weights, biases)

    g = torch.Generator().manual_seed(4)
    z = 2 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    w_avg = mapping(torch.randn(4096, 4, generator=g, dtype=torch.float64)).mean(0)
    got = truncate_w(mapping, w_avg, z, 0.7)
    expect(isinstance(got, torch.Tensor) and tuple(got.shape) == (6, 4),
           f"truncate_w must return w of shape (B, w_dim) = (6, 4), got {tuple(getattr(got, 'shape', ())) or type(got).__name__}")
    w = mapping(z)
    in_z = mapping(0.7 * z)
    expect(not torch.allclose(got, in_z, rtol=1e-6),
           "the truncation is applied to z: truncate w = f(z), after the mapping network, toward w_avg")
    flipped = w + 0.7 * (w_avg - w)
    expect(not torch.allclose(got, flipped, rtol=1e-6),
           "psi is on the wrong side: w' = w_avg + psi (w - w_avg) (psi = 1 leaves w, psi = 0 gives w_avg)")
    expect_close(got, w_avg + 0.7 * (w - w_avg), what="truncate_w(mapping, w_avg, z, 0.7)", rtol=1e-6, atol=1e-9,
                 hint="w = mapping(z); return w_avg + psi * (w - w_avg)")
    expect_close(truncate_w(mapping, w_avg, z, 0.0), w_avg.expand(6, 4), what="truncate_w with psi = 0", rtol=1e-6, atol=1e-9)


@register("style.d_loss_r1")
def _d_loss_r1(d_loss_r1):
    import torch
    from torch import nn

    torch.manual_seed(5)
    D = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0)).double()
    g = torch.Generator().manual_seed(6)
    x_real, x_fake = torch.randn(5, 1, 4, 4, generator=g, dtype=torch.float64), 3 * torch.randn(7, 1, 4, 4, generator=g, dtype=torch.float64)
    gamma = 10.0
    got = d_loss_r1(D, x_real, x_fake, gamma)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0, "d_loss_r1 must return a scalar tensor")

    def r1_at(x, per_pixel=False):
        total = 0.0
        for b in range(len(x)):
            xb = x[b:b + 1].clone().requires_grad_(True)
            (gb,) = torch.autograd.grad(D(xb).sum(), xb)
            total += float(gb.pow(2).mean() if per_pixel else gb.pow(2).sum())
        return total / len(x)

    with torch.no_grad():
        ns = nn.functional.softplus(-D(x_real)).mean() + nn.functional.softplus(D(x_fake)).mean()
    want = float(ns) + gamma / 2 * r1_at(x_real)
    on_fake = float(ns) + gamma / 2 * r1_at(x_fake)
    per_pixel = float(ns) + gamma / 2 * r1_at(x_real, per_pixel=True)
    value = float(got.detach())
    expect(abs(value - on_fake) > 1e-6 * (1 + abs(on_fake)),
           "R1 is computed at the fake images: the penalty is the squared gradient norm at the REAL images")
    expect(abs(value - per_pixel) > 1e-6 * (1 + abs(per_pixel)),
           "R1 averages the squared gradient over the pixels: sum over the pixels of each image, then average over the batch")
    expect(abs(value - float(ns)) > 1e-9, "the penalty is missing (or zero): add gamma / 2 * mean_b ||grad_x D(x_b)||^2")
    expect_close(value, want, what="d_loss_r1(D, x_real, x_fake, gamma=10)", rtol=1e-6,
                 hint="softplus(-D(x_real)).mean() + softplus(D(x_fake)).mean() + gamma / 2 * mean_b ||grad_x D(x_real_b)||^2")
    W = D[1].weight
    expect(got.requires_grad, "the loss must keep the graph (no .item() or .detach())")
    (gw,) = torch.autograd.grad(got, W, allow_unused=True)
    ns_only = nn.functional.softplus(-D(x_real)).mean() + nn.functional.softplus(D(x_fake)).mean()
    (gw_ns,) = torch.autograd.grad(ns_only, W)
    expect(gw is not None and not torch.allclose(gw, gw_ns, rtol=1e-6),
           "no gradient flows through the penalty to D's weights: torch.autograd.grad(..., create_graph=True)")


#: exercise 5: x = [[0, 2], [4, 6]], scale 3, bias -1, eps 0 -> 3 (x - 3) / sqrt(5) - 1
def _adain_by_hand_answer():
    import torch

    x = torch.tensor([[0.0, 2.0], [4.0, 6.0]], dtype=torch.float64)
    return 3 * (x - 3) / 5**0.5 - 1


@register("style.adain_by_hand")
def _adain_by_hand(out, mean, std):
    import torch

    want = _adain_by_hand_answer()
    expect_close(float(mean), -1.0, what="the output channel's mean", rtol=0, atol=1e-3,
                 hint="AdaIN sets the output mean of each channel to the style's bias")
    expect_close(float(std), 3.0, what="the output channel's standard deviation", rtol=0, atol=1e-3,
                 hint="AdaIN sets the output standard deviation of each channel to |scale|, whatever the input's")
    got = torch.as_tensor(out, dtype=torch.float64)
    expect(tuple(got.shape) == (2, 2), f"out must be the 2x2 output channel, got shape {tuple(got.shape)}")
    unbiased = 3 * (torch.tensor([[0.0, 2.0], [4.0, 6.0]], dtype=torch.float64) - 3) / (20 / 3) ** 0.5 - 1
    expect(not torch.allclose(got, unbiased, atol=1e-3),
           "you divided by the unbiased standard deviation sqrt(20/3): AdaIN's is the plain one, sqrt(mean((x - mu)^2)) = sqrt(5)")
    expect_close(got, want, what="the 2x2 output of AdaIN", rtol=0, atol=1e-3,
                 hint="mu = 3, sigma = sqrt(5); out = 3 * (x - 3) / sqrt(5) - 1")


@register("style.mixed_resolutions")
def _mixed_resolutions(mixed_resolutions):
    for k in range(0, len(STYLE_RESOLUTIONS) + 1):
        got = mixed_resolutions(k)
        expect(isinstance(got, (list, tuple)) and all(isinstance(r, int) for r in got),
               f"mixed_resolutions({k}) must return a list of ints, got {got!r}")
        want = sorted(set(STYLE_RESOLUTIONS[k:]))
        expect(sorted(set(got)) == want,
               f"mixed_resolutions({k}) = {sorted(set(got))}, expected {want}: styles {k} to 7 come from z2, and style i "
               f"acts at resolution {list(STYLE_RESOLUTIONS)}[i]")


# ------------------------------------------------------------------------------ 7. train: a style decoder

#: PSNR (dB) of the reconstructions that the hidden test asks for (graded under the cpu profile)
PSNR_TARGET = 17.5
N_IMAGES = 256


def reconstruction_psnr(G, codes, images, z_dim: int = 32) -> float:
    """PSNR (dB, range [-1, 1]) of ``G(codes, noise=0)`` against ``images`` ``(N, 1, 32, 32)``.
    ``G`` is only called (in the grader it stands for the student's generator in another process)."""
    import torch

    from gencourse import metrics

    expect(isinstance(codes, torch.Tensor) and tuple(codes.shape) == (len(images), z_dim),
           f"codes must have shape (N, z_dim) = ({len(images)}, {z_dim}), got {tuple(getattr(codes, 'shape', ())) or type(codes).__name__}")
    with torch.no_grad():
        x = G(codes.detach().to(images.dtype), noise=0)
    expect(isinstance(x, torch.Tensor) and x.shape == images.shape,
           f"G(codes, noise=0) must return images of shape {tuple(images.shape)}, got {tuple(getattr(x, 'shape', ())) or type(x).__name__}")
    expect(bool(torch.isfinite(x).all()), "G's images of the codes are not finite")
    return float(metrics.psnr(x.clamp(-1, 1), images, value_range="pm1"))
