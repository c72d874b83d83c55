"""Wasserstein GANs: the WGAN losses, the critic and generator steps, the networks and the
measurements of chapter 08, each checked against an independent computation."""

import copy
import math

import pytest
import torch
from torch import nn

from gencourse import losses, train
from gencourse.models import wgan

pytestmark = pytest.mark.usefixtures("one_thread")
D64 = torch.float64


# ------------------------------------------------------------------------------------------ losses


def test_wgan_losses_are_differences_of_means():
    d_real, d_fake = torch.tensor([1.0, 2.0, 6.0], dtype=D64), torch.tensor([0.5, -0.5], dtype=D64)
    assert losses.wgan_critic_loss(d_real, d_fake).item() == pytest.approx(0.0 - 3.0)
    assert losses.wgan_generator_loss(d_fake).item() == pytest.approx(0.0)
    critic = lambda x: x.sum(1)  # noqa: E731
    x_real, x_fake = torch.randn(5, 2, dtype=D64), torch.randn(7, 2, dtype=D64)
    torch.testing.assert_close(losses.wgan_critic_loss(critic(x_real), critic(x_fake)),
                               -losses.critic_objective(critic, x_real, x_fake))
    d = torch.randn(4, requires_grad=True)
    (grad,) = torch.autograd.grad(losses.wgan_generator_loss(d), d)
    torch.testing.assert_close(grad, torch.full((4,), -0.25))  # no saturation: the same push everywhere
    with pytest.raises(ValueError, match="d_fake must be a torch.Tensor"):
        losses.wgan_generator_loss([1.0])


def test_gradient_penalty_of_a_linear_critic_on_images_is_per_image():
    # f(x) = <w, x> over all pixels: the gradient is w at every point, so GP = (||w|| - 1)^2 exactly
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 3, 4, 4, generator=g, dtype=D64)
    x_real, x_fake = torch.randn(6, 3, 4, 4, generator=g, dtype=D64), torch.randn(6, 3, 4, 4, generator=g, dtype=D64)
    gp = losses.gradient_penalty(lambda x: (x * w).flatten(1).sum(1), x_real, x_fake, generator=g)
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-12)


def test_clip_weights_bounds_the_lipschitz_constant_by_the_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 1))
    losses.clip_weights_(net, 0.01)
    bound = wgan.lipschitz_bound(net)
    assert bound <= 0.01 * math.sqrt(15) * 0.01 * math.sqrt(5) + 1e-12  # ||W||_2 <= ||W||_F <= c sqrt(n m)
    # the bound holds: finite differences never exceed it
    x, y = torch.randn(200, 3), torch.randn(200, 3)
    ratio = (net(x) - net(y)).abs().squeeze(1) / (x - y).norm(dim=1)
    assert ratio.max().item() <= bound * (1 + 1e-5)


def test_lipschitz_bound_is_the_product_of_largest_singular_values():
    a, b = nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 0.5]]))
        b.weight.copy_(torch.tensor([[0.6, 0.8]]))
    assert wgan.lipschitz_bound(nn.Sequential(a, nn.Tanh(), b)) == pytest.approx(3.0 * 1.0)
    with pytest.raises(ValueError, match="no nn.Linear"):
        wgan.lipschitz_bound(nn.ReLU())


# ------------------------------------------------------------------------------------------- steps


def _toy(seed=0):
    torch.manual_seed(seed)
    G = nn.Linear(2, 3)
    critic = nn.Sequential(nn.Linear(3, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Flatten(0))
    return G, critic


def test_critic_step_is_wgan_gp_written_out():
    G, critic = _toy()
    G_ref, critic_ref = copy.deepcopy(G), copy.deepcopy(critic)
    g = torch.Generator().manual_seed(1)
    x_real, z = torch.randn(8, 3, generator=g), torch.randn(8, 2, generator=g)
    G_before = [p.detach().clone() for p in G.parameters()]
    out = train.critic_step(G, critic, torch.optim.SGD(critic.parameters(), 0.1), x_real, z, lambda_gp=10.0,
                            generator=torch.Generator().manual_seed(7))
    # the same update by hand: u drawn as the step draws it
    u = torch.rand(8, generator=torch.Generator().manual_seed(7))
    x_fake = G_ref(z).detach()
    x_hat = (u[:, None] * x_real + (1 - u[:, None]) * x_fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic_ref(x_hat).sum(), x_hat, create_graph=True)
    gp = ((grad.norm(dim=1) - 1) ** 2).mean()
    loss = critic_ref(x_fake).mean() - critic_ref(x_real).mean() + 10.0 * gp
    opt = torch.optim.SGD(critic_ref.parameters(), 0.1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    for p, q in zip(critic.parameters(), critic_ref.parameters()):
        torch.testing.assert_close(p, q)
    assert out["gp"] == pytest.approx(gp.item(), rel=1e-5) and out["loss_critic"] == pytest.approx(loss.item(), rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(G.parameters(), G_before))
    assert all(p.grad is None for p in G.parameters()), "the fake batch must be detached"


def test_critic_step_with_clipping_clamps_and_without_penalty_reports_zero():
    G, critic = _toy()
    g = torch.Generator().manual_seed(2)
    out = train.critic_step(G, critic, torch.optim.RMSprop(critic.parameters(), 0.5), torch.randn(8, 3, generator=g),
                            torch.randn(8, 2, generator=g), lambda_gp=0.0, clip=0.01)
    assert out["gp"] == 0.0
    assert max(p.abs().max().item() for p in critic.parameters()) <= 0.01
    assert max(p.abs().max().item() for p in G.parameters()) > 0.01, "only the critic is clipped"


def test_wgan_g_step_moves_only_G_and_descends_minus_the_critic():
    G, critic = _toy()
    G_ref = copy.deepcopy(G)
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(3))
    critic_before = [p.detach().clone() for p in critic.parameters()]
    train.wgan_g_step(G, critic, torch.optim.SGD(G.parameters(), 0.1), z)
    loss = -critic(G_ref(z)).mean()
    grads = torch.autograd.grad(loss, list(G_ref.parameters()))
    for p, p0, gr in zip(G.parameters(), G_ref.parameters(), grads):
        torch.testing.assert_close(p, p0 - 0.1 * gr)
    assert all(torch.equal(a, b) for a, b in zip(critic.parameters(), critic_before))
    assert all(p.requires_grad and p.grad is None for p in critic.parameters())


def test_wgan_gp_on_a_2d_shift_learns_the_shift():
    # data N((2, -1), 0.1^2 I), G(z) = A z + b: WGAN-GP must move b to the data's mean. (In 1-D the
    # penalty can trap the critic with the wrong sign: its slope must pass through 0 to flip.)
    torch.manual_seed(0)
    G = nn.Linear(2, 2)
    critic = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1), nn.Flatten(0))
    opt_G = torch.optim.Adam(G.parameters(), 1e-2, betas=(0.5, 0.9))
    opt_C = torch.optim.Adam(critic.parameters(), 1e-2, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(0)
    mean = torch.tensor([2.0, -1.0])
    for _ in range(300):
        for _ in range(3):
            train.critic_step(G, critic, opt_C, mean + 0.1 * torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g),
                              generator=g)
        train.wgan_g_step(G, critic, opt_G, torch.randn(64, 2, generator=g))
    assert (G.bias - mean).norm().item() < 0.3


# ---------------------------------------------------------------------------------------- networks


def test_networks_shapes_and_no_batch_norm_in_the_critic():
    critic = wgan.ConvCritic(ndf=4)
    x = torch.randn(3, 1, 28, 28)
    assert critic(x).shape == (3,)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in critic.modules())
    # no batch norm: each score depends on its own image only
    torch.testing.assert_close(critic(x)[:1], critic(x[:1]))
    assert any(isinstance(m, nn.Tanh) for m in wgan.ConvCritic(ndf=4, activation="tanh").modules())
    for kw in ({}, {"batch_norm": False}, {"activation": "tanh"}, {"constant_width": True}):
        G = wgan.ConvGenerator(8, 4, **kw)
        y = G(torch.randn(2, 8))
        assert y.shape == (2, 1, 28, 28) and y.abs().max() <= 1
        has_bn = any(isinstance(m, nn.BatchNorm2d) for m in G.modules())
        assert has_bn == kw.get("batch_norm", True)
    assert not any(isinstance(m, nn.ReLU) for m in wgan.ConvGenerator(8, 4, activation="tanh").modules())
    with pytest.raises(ValueError, match="activation must be one of"):
        wgan.ConvCritic(4, activation="gelu")
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 28, 28\)"):
        critic(torch.randn(3, 784))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        wgan.ConvGenerator(8, 4)(torch.randn(2, 3))


def test_public_mlp_recipe_networks_follow_the_description():
    G, critic = wgan.PublicMLPGenerator(), wgan.PublicMLPCritic()
    linears = [m for m in G.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(100, 128), (128, 256), (256, 512), (512, 1024), (1024, 784)]
    assert [m.num_features for m in G.modules() if isinstance(m, nn.BatchNorm1d)] == [256, 512, 1024]
    assert G(torch.randn(4, 100)).shape == (4, 1, 28, 28)
    assert [(m.in_features, m.out_features) for m in critic.modules() if isinstance(m, nn.Linear)] == [(784, 512), (512, 256), (256, 1)]
    assert critic(torch.randn(4, 1, 28, 28)).shape == (4,)


def test_critic_grad_norms_match_autograd_per_sample():
    w = torch.randn(1, 1, 28, 28, dtype=D64)
    linear = nn.Module()
    linear.forward = lambda x: (x * w).flatten(1).sum(1)
    linear.parameters = lambda: iter(())
    norms = wgan.critic_grad_norms(linear, torch.randn(5, 1, 28, 28, dtype=D64), batch_size=2)
    torch.testing.assert_close(norms, torch.full((5,), w.norm().item(), dtype=D64))
    critic = wgan.ConvCritic(4)
    x = torch.randn(3, 1, 28, 28)
    norms = wgan.critic_grad_norms(critic, x)
    for b in range(3):
        xb = x[b : b + 1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(xb).sum(), xb)
        assert norms[b].item() == pytest.approx(grad.norm().item(), rel=1e-5)
    assert all(p.grad is None and p.requires_grad for p in critic.parameters())


def test_wgan_recipe_decays_both_learning_rates_linearly(monkeypatch, tmp_path):
    """lr_decay="linear": generator step i runs at lr * (1 - (i - 1) / steps) for both optimisers."""
    from gencourse import train as train_mod
    from gencourse.recipes import wgan as recipe

    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    seen = {"critic": [], "G": []}
    critic_step, g_step = train_mod.critic_step, train_mod.wgan_g_step
    monkeypatch.setattr(train_mod, "critic_step",
                        lambda G, C, opt, *a, **k: seen["critic"].append(opt.param_groups[0]["lr"]) or critic_step(G, C, opt, *a, **k))
    monkeypatch.setattr(train_mod, "wgan_g_step",
                        lambda G, C, opt, *a, **k: seen["G"].append(opt.param_groups[0]["lr"]) or g_step(G, C, opt, *a, **k))
    settings = recipe.wgan_settings(steps=4, n_critic=2, batch_size=8, n_checkpoints=0, n_fid=16, lr=1e-3)
    assert settings["lr_decay"] == "linear"
    recipe.train_wgan(recipe.build_wgan(settings), settings, progress=False)
    expected = [1e-3 * (1 - i / 4) for i in range(4)]
    assert seen["G"] == pytest.approx(expected)
    assert seen["critic"] == pytest.approx([v for v in expected for _ in range(2)])
    with pytest.raises(ValueError, match="lr_decay"):
        recipe.wgan_settings(lr_decay="cosine")
