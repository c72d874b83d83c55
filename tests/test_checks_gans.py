"""The public checks of chapter 06 accept the right answers and reject the classic mistakes."""

import math

import pytest
import torch
import torch.nn.functional as F

from gencourse import divergences, losses, train
from gencourse.grading import check


def right_discriminator_step(G, D, opt_D, x_real, z):
    x_fake = G(z).detach()
    loss = F.softplus(-D(x_real)).mean() + F.softplus(D(x_fake)).mean()
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()


def right_generator_step(G, D, opt_G, z):
    loss = F.softplus(-D(G(z))).mean()
    opt_G.zero_grad()
    loss.backward()
    opt_G.step()


def test_right_answers_pass(capsys):
    assert check("gans.d_loss", lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean())
    assert check("gans.d_loss", losses.d_loss_bce)
    assert check("gans.g_loss_ns", lambda f: F.binary_cross_entropy_with_logits(f, torch.ones_like(f)))
    assert check("gans.optimal_d", lambda p, q: p / (p + q))
    assert check("gans.optimal_d", lambda p, q: divergences.optimal_discriminator(p.log(), q.log()))
    assert check("gans.discriminator_step", right_discriminator_step)
    assert check("gans.discriminator_step", lambda G, D, opt, x, z: train.d_step(G, D, opt, x, z))
    assert check("gans.generator_step", right_generator_step)
    assert capsys.readouterr().out.count("✔") == 8


def swapped_d_loss(r, f):
    return F.softplus(r).mean() + F.softplus(-f).mean()


def missing_detach(G, D, opt_D, x_real, z):
    loss = F.softplus(-D(x_real)).mean() + F.softplus(D(G(z))).mean()
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()


def detached_generator(G, D, opt_G, z):
    x_fake = G(z).detach()
    loss = F.softplus(-D(x_fake)).mean()
    opt_G.zero_grad()
    loss.backward() if loss.requires_grad else None
    opt_G.step()


def minimax_generator(G, D, opt_G, z):
    loss = -F.softplus(D(G(z))).mean()
    opt_G.zero_grad()
    loss.backward()
    opt_G.step()


def swapped_step(G, D, opt_D, x_real, z):
    loss = swapped_d_loss(D(x_real), D(G(z).detach()))
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()


@pytest.mark.parametrize(
    "qid, wrong, message",
    [
        ("gans.d_loss", swapped_d_loss, "labels swapped"),
        ("gans.d_loss", lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(), "mean over each batch"),
        ("gans.d_loss", lambda r, f: 0.5 * (F.softplus(-r).mean() + F.softplus(f).mean()), "two terms added"),
        ("gans.d_loss", lambda r, f: -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean(), "softplus"),
        ("gans.g_loss_ns", lambda f: -F.softplus(f).mean(), "saturating minimax"),
        ("gans.g_loss_ns", lambda f: F.softplus(-f.detach()).mean(), "without gradient"),
        ("gans.g_loss_ns", lambda f: -torch.log(torch.sigmoid(f)).mean(), "softplus"),
        ("gans.optimal_d", lambda p, q: q / (p + q), "probability of fake"),
        ("gans.optimal_d", lambda p, q: p / q, "D\\* = 1/2"),
        ("gans.discriminator_step", missing_detach, "detach the fake batch"),
        ("gans.discriminator_step", swapped_step, "real = 1, fake = 0"),
        ("gans.generator_step", detached_generator, "do not detach G\\(z\\)"),
        ("gans.generator_step", minimax_generator, "non-saturating"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, wrong)


def right_game_value(a):
    return math.log(a / (a + 1)) - math.log(a + 1) / a


def test_game_value_accepts_the_right_answer(capsys):
    assert check("gans.game_value", right_game_value)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda a: -math.log(4), "only when p_g = p_data"),
        (lambda a: math.log(a / (a + 1)) + math.log(1 / (a + 1)), "only 1/a of its mass"),
        (lambda a: math.log(0.5) + math.log(0.5) / a, "not 1/2"),
        (lambda a: math.log(1 / (a + 1)) + math.log(a / (a + 1)) / a, "swapped"),
        (lambda a: torch.tensor(right_game_value(a)), "Python float"),
        (lambda a: right_game_value(a) + 1e-3 * (a - 1), "game_value\\(3\\)"),
    ],
)
def test_game_value_rejects_the_classic_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("gans.game_value", wrong)


RING = torch.stack([2 * torch.tensor([math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)]) for k in range(8)])


def ring_generator(z):
    """A perfect generator for the ring: the angle of z picks the mode, its norm a small offset."""
    k = ((torch.atan2(z[:, 1], z[:, 0]) + math.pi) / (2 * math.pi) * 8).long().clamp(0, 7)
    return RING[k] + 0.05 * z.flip(1)


def collapsed_generator(z):
    return RING[:1].expand(len(z), 2) + 0.05 * z


DOWN = [1.39 - 0.01 * i for i in range(40)]


def test_ring_gan_accepts_a_generator_that_covers_the_ring(monkeypatch, capsys):
    assert check("gans.ring_gan", ring_generator, DOWN)
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    assert check("gans.ring_gan", ring_generator, [1.3, 1.2, 1.35] * 10)  # under cpu the loss need not go down
    assert capsys.readouterr().out.count("✔") == 2


@pytest.mark.parametrize(
    "G, losses, profile, message",
    [
        (ring_generator, [torch.tensor(v) for v in DOWN], "smoke", "append the float"),
        (ring_generator, [1.3] + [1.35] * 30, "smoke", "never went below its first value"),
        (lambda z: ring_generator(z)[:, :1], DOWN, "smoke", "shape \\(2000, 2\\)"),
        (collapsed_generator, DOWN, "cpu", "modes captured"),
        (lambda z: ring_generator(z) + 0.2 * z, DOWN, "cpu", "within 3 standard deviations"),
    ],
)
def test_ring_gan_rejects_the_classic_mistakes(G, losses, profile, message, monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", profile)
    with pytest.raises(AssertionError, match=message):
        check("gans.ring_gan", G, losses)
