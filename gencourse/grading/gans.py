"""Public checks for the exercises of chapter 06 (generative adversarial networks).

Each check compares the student's function with the library's reference (:mod:`gencourse.losses`,
:mod:`gencourse.divergences`, :mod:`gencourse.train`) and names the classic mistake it sees:
swapped labels, a sum instead of a mean, the naive (unstable) formula, a tensor detached where
the gradient must flow, or a missing ``detach()`` where it must not.
"""

from __future__ import annotations

import math

from .checks import expect, expect_close, register


def _logits():
    import torch

    g = torch.Generator().manual_seed(0)
    return 3 * torch.randn(6, generator=g), 3 * torch.randn(4, generator=g)


@register("gans.d_loss")
def _d_loss(d_loss):
    import torch

    from gencourse import losses

    d_real, d_fake = _logits()
    got = d_loss(d_real, d_fake)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0, f"d_loss must return a scalar tensor, got {getattr(got, 'shape', type(got).__name__)}")
    right = torch.tensor([4.0]), torch.tensor([-4.0])  # a discriminator that is right about both
    expect(
        float(d_loss(*right)) < 0.1,
        f"d_loss(d_real=+4, d_fake=-4) = {float(d_loss(*right)):.4g} should be small (the discriminator is right): "
        "are the labels swapped? Real samples have label 1, fakes label 0",
    )
    expect_close(got, losses.d_loss_bce(d_real, d_fake), what="d_loss(d_real, d_fake)", rtol=1e-4,
                 hint="-mean(log sigmoid(d_real)) - mean(log(1 - sigmoid(d_fake))): a mean over each batch, the two terms added")
    extreme = d_loss(torch.tensor([-150.0, 0.0]), torch.tensor([150.0, 0.0]))
    expect(bool(torch.isfinite(extreme)),
           f"d_loss is {float(extreme)} for logits of +-150: use softplus (or binary_cross_entropy_with_logits), not log(sigmoid(d))")
    expect_close(extreme, losses.d_loss_bce(torch.tensor([-150.0, 0.0]), torch.tensor([150.0, 0.0])), what="d_loss at logits +-150", rtol=1e-4)


@register("gans.g_loss_ns")
def _g_loss_ns(g_loss_ns):
    import torch

    from gencourse import losses

    _, d_fake = _logits()
    d = d_fake.clone().requires_grad_(True)
    got = g_loss_ns(d)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0, "g_loss_ns must return a scalar tensor")
    expect_close(got, losses.g_loss_non_saturating(d_fake), what="g_loss_ns(d_fake)", rtol=1e-4,
                 hint="the non-saturating loss is -mean(log sigmoid(d_fake)) = mean(softplus(-d_fake)); "
                      "mean(log(1 - sigmoid(d_fake))) is the saturating minimax loss")
    expect(got.requires_grad, "g_loss_ns returns a tensor without gradient: the loss must stay connected to d_fake (no detach(), .item() or numpy)")
    (grad,) = torch.autograd.grad(got, d)
    expect_close(grad, -(1 - torch.sigmoid(d_fake)) / len(d_fake), what="the gradient of g_loss_ns with respect to d_fake", rtol=1e-4)
    extreme = g_loss_ns(torch.tensor([-150.0]))
    expect(bool(torch.isfinite(extreme)), "g_loss_ns(-150) is not finite: compute it from the logits with softplus")


@register("gans.optimal_d")
def _optimal_d(optimal_d):
    import torch

    from gencourse import divergences

    x = torch.linspace(-3, 3, 13)
    p = torch.exp(-0.5 * (x - 1) ** 2)
    q = torch.exp(-0.5 * (x + 1) ** 2 / 4) / 2
    got = optimal_d(p, q)
    expect_close(optimal_d(torch.tensor([2.0]), torch.tensor([2.0])), [0.5], what="optimal_d where p_data = p_g", rtol=1e-6,
                 hint="where the densities agree the discriminator can only guess: D* = 1/2")
    expect_close(got, divergences.optimal_discriminator(p.log(), q.log()), what="optimal_d(p_data, p_g)", rtol=1e-5,
                 hint="D*(x) = p_data(x) / (p_data(x) + p_g(x)); p_g / (p_data + p_g) is the probability of fake")


def _toy_gan(seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    G = nn.Linear(2, 3)
    D = nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.2), nn.Linear(4, 1), nn.Flatten(0))
    return G, D


@register("gans.discriminator_step")
def _discriminator_step(discriminator_step):
    import copy

    import torch

    from gencourse import train

    G, D = _toy_gan()
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    g = torch.Generator().manual_seed(1)
    x_real, z = torch.randn(8, 3, generator=g), torch.randn(8, 2, generator=g)
    G_before = [p.detach().clone() for p in G.parameters()]
    discriminator_step(G, D, torch.optim.SGD(D.parameters(), lr=0.5), x_real, z)
    train.d_step(G_ref, D_ref, torch.optim.SGD(D_ref.parameters(), lr=0.5), x_real, z)
    expect(all(p.grad is None or float(p.grad.abs().max()) == 0 for p in G.parameters()),
           "the generator's parameters received gradients in the discriminator's step: detach the fake batch, x_fake = G(z).detach()")
    expect(all(torch.equal(a, b) for a, b in zip(G.parameters(), G_before)), "the discriminator's step changed G's parameters")
    for (name, p), p_ref in zip(D.named_parameters(), D_ref.parameters()):
        expect_close(p, p_ref, what=f"D's parameter {name} after one step", rtol=1e-4, atol=1e-6,
                     hint="zero the gradients, loss_D = d_loss(D(x_real), D(x_fake)), backward, opt_D.step(); real = 1, fake = 0")


@register("gans.generator_step")
def _generator_step(generator_step):
    import copy

    import torch

    from gencourse import train

    G, D = _toy_gan()
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    z = torch.randn(8, 2, generator=torch.Generator().manual_seed(2))
    G_before = [p.detach().clone() for p in G.parameters()]
    D_before = [p.detach().clone() for p in D.parameters()]
    generator_step(G, D, torch.optim.SGD(G.parameters(), lr=0.5), z)
    train.g_step(G_ref, D_ref, torch.optim.SGD(G_ref.parameters(), lr=0.5), z)
    expect(not all(torch.equal(a, b) for a, b in zip(G.parameters(), G_before)),
           "G's parameters did not change: the gradient must flow from D's output back into G (do not detach G(z) here)")
    expect(all(torch.equal(a, b) for a, b in zip(D.parameters(), D_before)), "the generator's step changed D's parameters: step opt_G only")
    for (name, p), p_ref in zip(G.named_parameters(), G_ref.parameters()):
        expect_close(p, p_ref, what=f"G's parameter {name} after one step", rtol=1e-4, atol=1e-6,
                     hint="minimise the non-saturating loss -mean(log sigmoid(D(G(z)))), i.e. label the fakes as real")


def _game_value_reference(a: float) -> float:
    """C(a) for p_data = U(0, 1), p_g = U(0, a): D* = a / (a + 1) on [0, 1] and 0 on (1, a]."""
    return math.log(a / (a + 1)) - math.log(a + 1) / a


@register("gans.game_value")
def _game_value(game_value):
    got = game_value(1.0)
    expect(isinstance(got, float), f"game_value must return a Python float, got {type(got).__name__} (use float(...) or math.log)")
    expect_close(got, -math.log(4), what="game_value(1) (p_g = p_data)", rtol=1e-9,
                 hint="where the two densities are equal, D* = 1/2 everywhere and C = log(1/2) + log(1/2) = -log 4")
    a = 3.0
    got, want = float(game_value(a)), _game_value_reference(a)
    wrong = {
        "-log 4 is the value only when p_g = p_data: here D* is not 1/2 everywhere": -math.log(4),
        "p_g puts only 1/a of its mass on [0, 1]: weigh E_g[log(1 - D*)] by where p_g lives, and on (1, a] D* = 0, "
        "so log(1 - D*) = 0 there": math.log(a / (a + 1)) + math.log(1 / (a + 1)),
        "D* is p_data / (p_data + p_g) = 1 / (1 + 1/a) on [0, 1], not 1/2": math.log(0.5) + math.log(0.5) / a,
        "the two terms are swapped: E_data uses log D*, E_g uses log(1 - D*)": math.log(1 / (a + 1)) + math.log(a / (a + 1)) / a,
    }
    for hint, value in wrong.items():
        expect(abs(got - value) > 1e-6 or abs(value - want) < 1e-9, f"game_value({a:g}) = {got:.6f}: {hint}")
    expect_close(got, want, what=f"game_value({a:g})", rtol=1e-7,
                 hint="find D* on [0, 1] and on (1, a], then integrate each expectation over where its density lives")
    expect(float(game_value(1e6)) > -1e-3, "as a grows, C(a) must tend to 0 (the discriminator wins almost everywhere)")


def _ring_means():
    import torch

    return torch.stack([2 * torch.tensor([math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)]) for k in range(8)])


RING_TARGET_MODES, RING_TARGET_HQ = 6, 0.35


@register("gans.ring_gan")
def _ring_gan(G, losses_D):
    import torch

    from gencourse import metrics

    from ._training import expect_target, profile

    expect(isinstance(losses_D, (list, tuple)), f"losses_D must be a list of floats, got {type(losses_D).__name__}")
    values = []
    for i, v in enumerate(losses_D):
        expect(isinstance(v, (int, float)) and not isinstance(v, bool),
               f"losses_D[{i}] is a {type(v).__name__}: append the float that discriminator_step returns (loss.item())")
        values.append(float(v))
    expect(len(values) >= 10 and all(math.isfinite(v) for v in values),
           f"losses_D must hold a finite loss for every discriminator step, got {len(values)} values")
    if profile() == "smoke":
        expect(min(values) < values[0] - 0.01,
               "the discriminator's loss never went below its first value: does discriminator_step step opt_D?")
    with torch.no_grad():
        x = G(torch.randn(2000, 2, generator=torch.Generator().manual_seed(0)))
    expect(isinstance(x, torch.Tensor) and tuple(x.shape) == (2000, 2),
           f"G(z) for z of shape (2000, 2) must be a tensor of shape (2000, 2), got {tuple(getattr(x, 'shape', ()))}")
    cov = metrics.mode_coverage(x, _ring_means(), std=0.05)
    hint = ("a GAN that covers few modes has collapsed: the non-saturating loss, Adam with beta1 = 0.5, more than one "
            "discriminator step per generator step and a larger learning rate help; a GAN with few high-quality samples "
            "needs more steps or a larger learning rate")
    expect_target(cov["modes"], RING_TARGET_MODES - 1, what=f"modes captured (of 8; {cov['high_quality']:.0%} high-quality samples)",
                  below=False, hint=hint)
    expect_target(cov["high_quality"], RING_TARGET_HQ, what="fraction of samples within 3 standard deviations of a mode",
                  below=False, hint=hint)
