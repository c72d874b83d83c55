"""The public checks of chapter 08 accept the right answers and reject the classic mistakes."""

import pytest
import torch
from torch import nn

from gencourse import losses
from gencourse.grading import check
from gencourse.models import wgan


def right_gp(critic, x_real, x_fake):
    u = torch.rand(x_real.shape[0], *[1] * (x_real.ndim - 1), dtype=x_real.dtype)
    x_hat = (u * x_real + (1 - u) * x_fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _gp_with(u_shape, norm, at_real=False, create_graph=True):
    def gp(critic, x_real, x_fake):
        u = torch.rand(u_shape(x_real), dtype=x_real.dtype)
        x_hat = x_real if at_real else u * x_real + (1 - u) * x_fake
        x_hat = x_hat.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=create_graph)
        return ((norm(grad) - 1) ** 2).mean()
    return gp


per_sample_u = lambda x: (x.shape[0], *[1] * (x.ndim - 1))  # noqa: E731
per_sample_norm = lambda grad: grad.flatten(1).norm(dim=1)  # noqa: E731


def right_clip_step(G, critic, opt, x_real, z, c):
    loss = losses.wgan_critic_loss(critic(x_real), critic(G(z).detach()))
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.clip_weights_(critic, c)


def clip_step_flipped(G, critic, opt, x_real, z, c):
    loss = -losses.wgan_critic_loss(critic(x_real), critic(G(z).detach()))
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.clip_weights_(critic, c)


def clip_step_clips_G(G, critic, opt, x_real, z, c):
    right_clip_step(G, critic, opt, x_real, z, c)
    losses.clip_weights_(G, c)


def clip_step_weights_only(G, critic, opt, x_real, z, c):
    loss = losses.wgan_critic_loss(critic(x_real), critic(G(z).detach()))
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        for name, p in critic.named_parameters():
            if name.endswith("weight"):
                p.clamp_(-c, c)


def test_right_answers_pass(capsys):
    assert check("wgan.critic_loss", lambda r, f: f.mean() - r.mean())
    assert check("wgan.generator_loss", lambda f: -f.mean())
    assert check("wgan.clip_weights", losses.clip_weights_)
    assert check("wgan.clip_critic_step", right_clip_step)
    assert check("wgan.gradient_penalty", right_gp)
    assert check("wgan.gradient_penalty", lambda c, r, f: losses.gradient_penalty(c, r, f))
    assert check("wgan.lipschitz_bound", wgan.lipschitz_bound)
    assert check("wgan.make_critic", lambda: nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Flatten(0)))
    assert capsys.readouterr().out.count("✔") == 8


def frobenius_bound(net):
    out = 1.0
    for m in net.modules():
        if isinstance(m, nn.Linear):
            out *= m.weight.norm().item()
    return out


@pytest.mark.parametrize(
    "qid, wrong, message",
    [
        ("wgan.critic_loss", lambda r, f: r.mean() - f.mean(), "sign flipped"),
        ("wgan.critic_loss", lambda r, f: f.sum() - r.sum(), "critic_loss"),
        ("wgan.generator_loss", lambda f: f.mean(), "score its samples high"),
        ("wgan.generator_loss", lambda f: -f.mean().detach(), "keep the graph"),
        ("wgan.clip_weights", lambda net, c: None, "clamp every parameter"),
        ("wgan.clip_critic_step", clip_step_flipped, "not its negative"),
        ("wgan.clip_critic_step", clip_step_clips_G, "changed G"),
        ("wgan.clip_critic_step", clip_step_weights_only, r"\[-c, c\]"),
        ("wgan.gradient_penalty", _gp_with(per_sample_u, lambda g: g.abs()), "per pixel"),
        ("wgan.gradient_penalty", _gp_with(per_sample_u, lambda g: g.norm()), "whole batch"),
        ("wgan.gradient_penalty", _gp_with(per_sample_u, per_sample_norm, at_real=True), "real points"),
        ("wgan.gradient_penalty", _gp_with(lambda x: (1,) * x.ndim, per_sample_norm), "ONE u per sample"),
        ("wgan.gradient_penalty", _gp_with(lambda x: x.shape, per_sample_norm), "ONE u per sample"),
        ("wgan.gradient_penalty", _gp_with(per_sample_u, per_sample_norm, create_graph=False), "create_graph=True"),
        ("wgan.lipschitz_bound", frobenius_bound, "singular values"),
        ("wgan.make_critic", lambda: nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.2), nn.Linear(8, 1),
                                                   nn.Flatten(0)), "no batch norm"),
        ("wgan.make_critic", lambda: nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1)), "Flatten"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, wrong)
