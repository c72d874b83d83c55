"""Style-based generators (chapter 11): AdaIN, the mapping network, the modulated convolution,
noise, style mixing, truncation, the R1 penalty, the minibatch standard deviation, the path length
and the recipe, each checked against an independent computation (NumPy loops, closed forms,
identities of convolution, autograd per sample)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gencourse import losses
from gencourse.models import style

pytestmark = pytest.mark.usefixtures("one_thread")
D64 = torch.float64


# ---------------------------------------------------------------------------------------------- AdaIN

def _adain_numpy(x, scale, bias, eps):
    x = x.numpy()
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            v = x[b, c]
            out[b, c] = scale[b, c].item() * (v - v.mean()) / np.sqrt(v.var() + eps) + bias[b, c].item()
    return out


def test_adain_against_a_numpy_loop():
    g = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(4, 5, 6, 7, generator=g, dtype=D64) + 2
    s, b = torch.randn(4, 5, generator=g, dtype=D64), torch.randn(4, 5, generator=g, dtype=D64)
    np.testing.assert_allclose(style.adain(x, s, b, eps=1e-5).numpy(), _adain_numpy(x, s, b, 1e-5), rtol=1e-12, atol=1e-12)


def test_adain_output_moments_are_the_style():
    g = torch.Generator().manual_seed(1)
    x = 5 * torch.rand(3, 4, 8, 8, generator=g, dtype=D64) - 1
    s, b = 0.5 + torch.rand(3, 4, generator=g, dtype=D64), torch.randn(3, 4, generator=g, dtype=D64)
    y = style.adain(x, s, b, eps=1e-12)
    torch.testing.assert_close(y.mean(dim=(2, 3)), b)
    torch.testing.assert_close(y.std(dim=(2, 3), unbiased=False), s)


def test_adain_normalises_each_image_alone_not_over_the_batch():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 3, 5, 5, generator=g, dtype=D64)
    s, b = torch.rand(6, 3, generator=g, dtype=D64) + 0.5, torch.randn(6, 3, generator=g, dtype=D64)
    alone = style.adain(x[:2], s[:2], b[:2])
    x2 = x.clone()
    x2[2:] *= 100  # other images change: the first two must not
    torch.testing.assert_close(style.adain(x2, s, b)[:2], alone)


def test_adain_of_a_constant_channel_is_the_bias_not_nan():
    x = torch.full((2, 3, 4, 4), 7.0)
    y = style.adain(x, torch.ones(2, 3), torch.full((2, 3), -0.5))
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, torch.full_like(y, -0.5))


@pytest.mark.parametrize("bad", [dict(scale=torch.ones(2, 4)), dict(bias=torch.ones(3)), dict(eps=0.0)])
def test_adain_rejects_wrong_shapes_and_eps(bad):
    args = dict(x=torch.randn(2, 3, 4, 4), scale=torch.ones(2, 3), bias=torch.zeros(2, 3), eps=1e-5) | bad
    with pytest.raises(ValueError, match="scale|bias|eps"):
        style.adain(**args)


def test_adain_rejects_non_image_input():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        style.adain(torch.randn(2, 3), torch.ones(2, 3), torch.zeros(2, 3))


# ---------------------------------------------------------------------------------------------- mapping

def test_pixel_norm_puts_codes_on_the_sphere_of_radius_sqrt_d():
    z = torch.randn(10, 16, dtype=D64) * torch.arange(1, 11, dtype=D64)[:, None]
    torch.testing.assert_close(style.pixel_norm(z).norm(dim=1), torch.full((10,), 4.0, dtype=D64))


def test_mapping_network_is_pixel_norm_then_an_mlp():
    torch.manual_seed(0)
    f = style.MappingNetwork(8, 6, n_layers=3).double()
    z = torch.randn(5, 8, dtype=D64)
    h = z.numpy() / np.sqrt((z.numpy() ** 2).mean(axis=1, keepdims=True) + 1e-8)
    for m in f.net:
        if isinstance(m, nn.Linear):
            h = h @ m.weight.detach().numpy().T + m.bias.detach().numpy()
            h = np.where(h > 0, h, 0.2 * h)
    np.testing.assert_allclose(f(z).detach().numpy(), h, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="z_dim"):
        f(torch.randn(5, 7, dtype=D64))


# ---------------------------------------------------------------------------------------------- modulated conv

def test_modulated_conv_against_per_image_convolutions():
    torch.manual_seed(1)
    conv = style.ModulatedConv2d(3, 4, 3, w_dim=5).double()
    x, w = torch.randn(2, 3, 6, 6, dtype=D64), torch.randn(2, 5, dtype=D64)
    s = (w @ conv.affine.weight.detach().T + conv.affine.bias.detach()).numpy()
    outs = []
    for b in range(2):
        wb = conv.gain * conv.weight.detach().numpy() * s[b][None, :, None, None]
        wb = wb / np.sqrt((wb**2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
        outs.append(F.conv2d(x[b:b + 1], torch.from_numpy(wb), padding=1))
    torch.testing.assert_close(conv(x, w), torch.cat(outs), rtol=1e-10, atol=1e-10)


def test_modulation_equals_scaling_the_input_channels():
    torch.manual_seed(2)
    conv = style.ModulatedConv2d(3, 2, 3, w_dim=4, demodulate=False).double()
    x, w = torch.randn(2, 3, 5, 5, dtype=D64), torch.randn(2, 4, dtype=D64)
    s = conv.affine(w).detach()
    want = F.conv2d(x * s[:, :, None, None], conv.gain * conv.weight.detach(), padding=1)
    torch.testing.assert_close(conv(x, w), want)


def test_demodulation_gives_unit_output_std_for_unit_inputs():
    torch.manual_seed(3)
    conv = style.ModulatedConv2d(32, 8, 3, w_dim=8)
    with torch.no_grad():
        conv.affine.weight.mul_(10)  # strong, different styles per image
    x, w = torch.randn(16, 32, 24, 24), torch.randn(16, 8)
    with torch.no_grad():
        y = conv(x, w)[:, :, 1:-1, 1:-1]  # away from the zero padding
        weights = conv.modulated_weight(w)
    torch.testing.assert_close(weights.pow(2).sum(dim=(2, 3, 4)), torch.ones(16, 8), rtol=1e-5, atol=1e-5)
    std = y.std(dim=(2, 3))  # per image and channel: 1 whatever the style
    assert (std - 1).abs().max() < 0.1, std


# ---------------------------------------------------------------------------------------------- generator

def _G(kind="demod"):
    torch.manual_seed(4)
    return style.StyleGenerator(z_dim=8, w_dim=8, channels=(8, 8, 4, 4), mapping_layers=2, kind=kind).double()


def _noise(G, B, seed=5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, 1, r, r, generator=g, dtype=D64) for r in G.resolutions()[:-1]]


@pytest.mark.parametrize("kind", ["demod", "adain"])
def test_generator_shapes_and_styles(kind):
    G = _G(kind)
    assert G.num_ws == 8 and G.resolutions() == [4, 8, 8, 16, 16, 32, 32, 32]
    z = torch.randn(3, 8, dtype=D64)
    assert G(z).shape == (3, 1, 32, 32)
    with pytest.raises(ValueError, match="num_ws"):
        G.synthesis(torch.randn(3, 7, 8, dtype=D64))


@pytest.mark.parametrize("kind", ["demod", "adain"])
def test_style_mixing_takes_each_layer_from_the_right_code(kind):
    G = _G(kind)
    z1, z2 = torch.randn(2, 8, dtype=D64), torch.randn(2, 8, dtype=D64)
    noise = _noise(G, 2)
    with torch.no_grad():
        torch.testing.assert_close(G.mix(z1, z2, 0, noise), G(z2, noise=noise))
        torch.testing.assert_close(G.mix(z1, z2, G.num_ws, noise), G(z1, noise=noise))
        ws = G.broadcast(G.mapping(z1)).clone()
        ws[:, 3:] = G.mapping(z2)[:, None]
        torch.testing.assert_close(G.mix(z1, z2, 3, noise), G.synthesis(ws, noise))
    with pytest.raises(ValueError, match="crossover"):
        G.mix(z1, z2, 9)


def test_every_style_input_reaches_the_image():
    G = _G()
    z = torch.randn(2, 8, dtype=D64)
    noise = _noise(G, 2)
    with torch.no_grad():
        ws = G.broadcast(G.mapping(z)).clone()
        base = G.synthesis(ws, noise)
        for k in range(G.num_ws):
            other = ws.clone()
            other[:, k] += 1.0
            assert (G.synthesis(other, noise) - base).abs().max() > 1e-6, f"style {k} is not used"


def test_noise_inputs_are_per_pixel_and_optional():
    G = _G()
    with torch.no_grad():
        for layer in G.layers:
            layer.noise_strength.fill_(0.5)
        z = torch.randn(2, 8, dtype=D64)
        assert not torch.equal(G(z), G(z)), "fresh noise at each call"
        torch.testing.assert_close(G(z, noise=0), G(z, noise=0))
        noise = _noise(G, 2)
        torch.testing.assert_close(G(z, noise=noise), G(z, noise=noise))
        for layer in G.layers:
            layer.noise_strength.zero_()
        torch.testing.assert_close(G(z, noise=noise), G(z, noise=0))


# ---------------------------------------------------------------------------------------------- truncation

def test_truncation_in_w():
    g = torch.Generator().manual_seed(6)
    w, w_avg = torch.randn(5, 4, generator=g, dtype=D64), torch.randn(4, generator=g, dtype=D64)
    torch.testing.assert_close(style.truncate(w, w_avg, 1.0), w)
    torch.testing.assert_close(style.truncate(w, w_avg, 0.0), w_avg.expand(5, 4))
    torch.testing.assert_close(style.truncate(w, w_avg, 0.3), 0.7 * w_avg + 0.3 * w)
    ws = w[:, None].expand(5, 3, 4)
    cut = style.truncate(ws, w_avg, 0.0, cutoff=2)
    torch.testing.assert_close(cut[:, :2], w_avg.expand(5, 2, 4))
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])
    with pytest.raises(ValueError, match="w_avg"):
        style.truncate(w, torch.zeros(3), 0.5)


def test_generator_truncates_w_after_the_mapping_not_z():
    G = _G()
    with torch.no_grad():
        G.w_avg.copy_(torch.randn(8, dtype=D64))
        z = torch.randn(3, 8, dtype=D64)
        want = G.synthesis(G.broadcast(G.w_avg + 0.5 * (G.mapping(z) - G.w_avg)), noise=0)
        torch.testing.assert_close(G(z, psi=0.5, noise=0), want)
        in_z = G.synthesis(G.broadcast(G.mapping(0.5 * z)), noise=0)
        assert (G(z, psi=0.5, noise=0) - in_z).abs().max() > 1e-3
        # psi = 0: every code gives the image of w_avg
        out = G(z, psi=0.0, noise=0)
        torch.testing.assert_close(out, out[:1].expand_as(out))


def test_w_avg_is_a_running_mean():
    G = _G()
    w1, w2 = torch.randn(4, 8, dtype=D64), torch.randn(4, 8, dtype=D64)
    G.update_w_avg(w1, beta=0.9)
    G.update_w_avg(w2, beta=0.9)
    torch.testing.assert_close(G.w_avg, 0.9 * 0.1 * w1.mean(0) + 0.1 * w2.mean(0))


# ---------------------------------------------------------------------------------------------- R1

def test_r1_of_a_linear_discriminator_is_the_squared_norm_of_its_weights():
    w = torch.randn(1, 1, 5, 5, dtype=D64)
    x = torch.randn(7, 1, 5, 5, dtype=D64)
    r1 = losses.r1_penalty(lambda x: (x * w).flatten(1).sum(1), x)
    torch.testing.assert_close(r1, w.pow(2).sum())


def test_r1_against_autograd_per_sample_and_not_per_pixel():
    torch.manual_seed(7)
    D = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0)).double()
    x = torch.randn(6, 1, 4, 4, dtype=D64)
    want = 0.0
    for b in range(6):
        xb = x[b:b + 1].clone().requires_grad_(True)
        (gb,) = torch.autograd.grad(D(xb).sum(), xb)
        want += float(gb.pow(2).sum()) / 6
    r1 = losses.r1_penalty(D, x)
    assert abs(float(r1.detach()) - want) < 1e-10
    per_pixel_mean = want / 16
    assert abs(float(r1.detach()) - per_pixel_mean) > 1e-3
    # the penalty trains D: its gradient w.r.t. D's weights exists (create_graph=True)
    grads = torch.autograd.grad(r1, [D[1].weight])
    assert grads[0].abs().sum() > 0


def test_r1_of_half_squared_norm_is_the_mean_squared_norm():
    x = torch.randn(9, 1, 3, 3, dtype=D64)
    r1 = losses.r1_penalty(lambda x: 0.5 * x.pow(2).flatten(1).sum(1), x)
    torch.testing.assert_close(r1, x.pow(2).flatten(1).sum(1).mean())
    with pytest.raises(ValueError, match="one logit per image"):
        losses.r1_penalty(lambda x: x.flatten(1), x)


# ---------------------------------------------------------------------------------------------- discriminator

def test_minibatch_stddev_against_numpy():
    x = torch.randn(8, 3, 2, 2, dtype=D64)
    out = style.minibatch_stddev(x, group=4)
    a = x.numpy().reshape(4, 2, 3, 2, 2)
    sd = np.sqrt(a.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))  # (2,): one per group member index
    want = np.tile(sd, 4)  # image b is in group b % 2
    assert out.shape == (8, 4, 2, 2)
    np.testing.assert_allclose(out[:, 3, 0, 0].numpy(), want, rtol=1e-10)
    torch.testing.assert_close(out[:, :3], x)


def test_discriminator_shapes_and_errors():
    torch.manual_seed(8)
    D = style.StyleDiscriminator(4)
    assert D(torch.randn(8, 1, 32, 32)).shape == (8,)
    assert D(torch.randn(3, 1, 32, 32)).shape == (3,)  # batch not divisible by the group
    with pytest.raises(ValueError, match="32, 32"):
        D(torch.randn(2, 1, 28, 28))


def test_pad32_and_crop28_are_inverse():
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    y = style.pad32(x)
    assert y.shape == (3, 1, 32, 32) and torch.all(y[:, :, :2] == -1) and torch.all(y[:, :, :, -2:] == -1)
    torch.testing.assert_close(style.crop28(y), x)
    with pytest.raises(ValueError, match="28, 28"):
        style.pad32(torch.rand(3, 1, 32, 32))


# ---------------------------------------------------------------------------------------------- measures

class _LinearSynthesis(style.StyleGenerator):
    """A generator whose images are a fixed linear map of w (same for all layers)."""

    def __init__(self):
        super().__init__(z_dim=4, w_dim=4, channels=(4, 4, 4, 4), mapping_layers=1)
        self.A = torch.randn(4, 32 * 32, generator=torch.Generator().manual_seed(9))

    def synthesis(self, ws, noise=None, *, keep=None):
        return (ws[:, 0] @ self.A).reshape(-1, 1, 32, 32)


def test_path_length_in_w_of_a_linear_generator_is_exact():
    G = _LinearSynthesis()
    g = torch.Generator().manual_seed(10)
    got = style.path_length(G, 6, space="w", embed=lambda x: x.flatten(1), generator=g)
    g = torch.Generator().manual_seed(10)
    z0, z1 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    with torch.no_grad():
        dw = G.mapping(z1) - G.mapping(z0)
    want = (dw @ G.A).pow(2).sum(1)  # |A (w1 - w0) eps|^2 / eps^2
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)
    z_values = style.path_length(G, 6, space="z", embed=lambda x: x.flatten(1), generator=torch.Generator().manual_seed(10))
    assert z_values.shape == (6,) and (z_values >= 0).all()
    with pytest.raises(ValueError, match="space"):
        style.path_length(G, 6, space="x", embed=lambda x: x)


def test_feature_stats_per_layer():
    G = _G().float()
    stats = style.feature_stats(G, torch.randn(4, 8))
    assert [s["resolution"] for s in stats] == G.resolutions()[:-1]
    assert all(s["peak_ratio"] >= 1.0 and s["max_abs"] > 0 for s in stats)


@pytest.mark.parametrize("kind", ["adain", "demod"])
def test_feature_stats_against_the_layers_run_by_hand(kind):
    """The maps before the style, recomputed layer by layer (conv, bias, LeakyReLU, the demod gain)."""
    G = _G(kind).float()
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        w = G.mapping(z)
        x = G.const.expand(3, -1, -1, -1)
        for layer, got in zip(G.layers, style.feature_stats(G, z)):
            if layer.upsample:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            h = layer.conv(x, w) if kind == "demod" else layer.conv(x)
            h = F.leaky_relu(h + layer.bias[None, :, None, None], 0.2) * (math.sqrt(2) if kind == "demod" else 1.0)
            a = h.abs().numpy().reshape(3, h.shape[1], -1)
            ratio = (a.max(axis=2) / np.maximum(a.mean(axis=2), 1e-8)).mean()
            assert got["peak_ratio"] == pytest.approx(ratio, rel=1e-5)
            assert got["max_abs"] == pytest.approx(a.max(), rel=1e-6)
            if kind == "adain":
                scale, bias = layer.affine(w).chunk(2, dim=1)
                h = _adain_torch(h, scale, bias)
            x = h


def _adain_torch(h, scale, bias):
    return torch.from_numpy(_adain_numpy(h.double(), scale.double(), bias.double(), 1e-5)).float()


# ---------------------------------------------------------------------------------------------- recipe

def test_recipe_trains_caches_and_reloads():
    from gencourse.recipes import style as recipe

    modules, history = recipe.style_mnist("stylegan_test", progress=False, steps=4, batch_size=8)
    assert len(history["loss_D"]) == 4 and all(math.isfinite(v) for v in history["loss_D"])
    # lazy R1: computed at steps 4, 8, ... (steps count from 1), reported until the next one
    assert history["r1"][:3] == [0.0] * 3 and history["r1"][3] > 0
    assert modules["G_ema"].w_avg.abs().sum() > 0, "w_avg follows training"
    again, _ = recipe.style_mnist("stylegan_test", progress=False, steps=4, batch_size=8)
    z = torch.randn(2, 64)
    torch.testing.assert_close(again["G_ema"](z, noise=0), modules["G_ema"](z, noise=0))
    x = recipe.sample28(modules["G_ema"], 5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match="unknown"):
        recipe.style_settings(step=3)


def test_recipe_is_reproducible_from_its_settings_and_leaves_the_callers_random_state():
    """The synthesis noise comes from the global generator, which a fresh process seeds at random:
    the recipe seeds it from the settings, so retraining gives the same weights whatever the state
    before, and the caller's state is as it was."""
    from gencourse.recipes import style as recipe

    weights = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # another state of the global generator before training
        modules, _ = recipe.style_mnist("stylegan_repro", progress=False, steps=3, batch_size=8, retrain=True)
        after = torch.rand(3)
        torch.manual_seed(seed)
        assert torch.equal(after, torch.rand(3)), "training changed the caller's random numbers"
        weights.append(torch.cat([p.detach().flatten() for p in modules["G"].parameters()]))
    assert torch.equal(weights[0], weights[1])
