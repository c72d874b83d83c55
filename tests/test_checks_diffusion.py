"""The public checks of chapter 12 accept the right answers and reject the classic mistakes."""

import math

import pytest
import torch

from gencourse import diffusion as D
from gencourse.grading import check


def bc(a, t):
    return a[t].view(-1, *([1] * 3)) if torch.is_tensor(t) and t.ndim else a[t]


# --- right answers, written the way a student would ---------------------------------------------


def q_sample(x0, t, eps, alpha_bar):
    ab = alpha_bar[t].view(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def ddpm_loss(eps_model, x0, t, eps, alpha_bar):
    x_t = q_sample(x0, t, eps, alpha_bar)
    return ((eps - eps_model(x_t, t)) ** 2).mean()


def ddpm_step(x_t, t, eps_hat, beta, alpha_bar, z):
    mean = (x_t - beta[t] / (1 - alpha_bar[t]).sqrt() * eps_hat) / (1 - beta[t]).sqrt()
    return mean + (beta[t].sqrt() * z if t > 1 else 0)


def ddim_step(x_t, t, t_prev, eps_hat, alpha_bar):
    x0 = (x_t - (1 - alpha_bar[t]).sqrt() * eps_hat) / alpha_bar[t].sqrt()
    return alpha_bar[t_prev].sqrt() * x0 + (1 - alpha_bar[t_prev]).sqrt() * eps_hat


def test_right_answers_pass(capsys):
    assert check("diffusion.q_sample", q_sample)
    assert check("diffusion.ddpm_loss", ddpm_loss)
    assert check("diffusion.ddpm_step", ddpm_step)
    assert check("diffusion.ddim_step", ddim_step)
    assert check("diffusion.guided_eps", lambda c, u, w: (1 + w) * c - w * u)
    # the library itself passes too
    assert check("diffusion.q_sample", D.q_sample)
    assert check("diffusion.ddpm_step", D.ddpm_sample_step)
    assert check("diffusion.ddim_step", D.ddim_step)
    assert check("diffusion.guided_eps", D.guided_eps)
    assert capsys.readouterr().out.count("✔") == 9


def _ab(a, t):
    return a[t].view(-1, 1, 1, 1)


@pytest.mark.parametrize(
    "qid, wrong, message",
    [
        # q_sample
        ("diffusion.q_sample", lambda x0, t, eps, ab: _ab(ab, t - 1).sqrt() * x0 + (1 - _ab(ab, t - 1)).sqrt() * eps, "off by one"),
        ("diffusion.q_sample", lambda x0, t, eps, ab: _ab(ab, t) * x0 + (1 - _ab(ab, t)) * eps, "square roots are missing"),
        ("diffusion.q_sample", lambda x0, t, eps, ab: _ab(ab, t).sqrt() * x0 + (1 - _ab(ab, t)) * eps, "square root on the noise"),
        ("diffusion.q_sample", lambda x0, t, eps, ab: _ab(ab, t).sqrt() * eps + (1 - _ab(ab, t)).sqrt() * x0, "swapped"),
        ("diffusion.q_sample", lambda x0, t, eps, ab: ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * eps, "shape"),  # no broadcast
        # ddpm_loss
        ("diffusion.ddpm_loss", lambda m, x0, t, eps, ab: ((eps - m(q_sample(x0, t, eps, ab), t)) ** 2).flatten(1).sum(1).mean(), "summed over the pixels"),
        ("diffusion.ddpm_loss", lambda m, x0, t, eps, ab: ((eps - m(q_sample(x0, t, eps, ab), t)) ** 2).sum(), "not the sum"),
        ("diffusion.ddpm_loss", lambda m, x0, t, eps, ab: ((eps - m(q_sample(x0, t - 1, eps, ab), t)) ** 2).mean(), "off by one"),
        ("diffusion.ddpm_loss", lambda m, x0, t, eps, ab: ((eps - m(q_sample(x0, t, eps, ab), t - 1)) ** 2).mean(), "same t"),
        ("diffusion.ddpm_loss", lambda m, x0, t, eps, ab: ((x0 - m(q_sample(x0, t, eps, ab), t)) ** 2).mean(), "not x0"),
        ("diffusion.ddpm_loss", lambda m, x0, t, eps, ab: ((eps - m(q_sample(x0, t, eps, ab), t).detach()) ** 2).mean(), "no gradient"),
        # ddpm_step
        ("diffusion.ddpm_step", lambda x, t, e, b, ab, z: (x - b[t] / (1 - ab[t]).sqrt() * e) / (1 - b[t]).sqrt() + b[t].sqrt() * z, "no noise is added at the last step"),
        ("diffusion.ddpm_step", lambda x, t, e, b, ab, z: (x - b[t] / (1 - ab[t]).sqrt() * e) / (1 - b[t]).sqrt() + (b[t] * z if t > 1 else 0), "sqrt\\(beta_t\\), not beta_t"),
        ("diffusion.ddpm_step", lambda x, t, e, b, ab, z: (x - b[t] / (1 - ab[t]).sqrt() * e) / ab[t].sqrt() + (b[t].sqrt() * z if t > 1 else 0), "not sqrt\\(alpha_bar_t\\)"),
        ("diffusion.ddpm_step", lambda x, t, e, b, ab, z: (x - b[t] / (1 - ab[t]) * e) / (1 - b[t]).sqrt() + (b[t].sqrt() * z if t > 1 else 0), "square root is missing"),
        ("diffusion.ddpm_step", lambda x, t, e, b, ab, z: D.ddpm_sample_step(x, t - 1 if t > 1 else t, e, b, ab, z) if t > 1 else D.ddpm_sample_step(x, t, e, b, ab, z), "off by one"),
        ("diffusion.ddpm_step", lambda x, t, e, b, ab, z: (x - b[t] / (1 - ab[t]).sqrt() * e) / (1 - b[t]).sqrt(), "random term"),
        # ddim_step
        ("diffusion.ddim_step", lambda x, t, s, e, ab: ddim_step(x, s, t, e, ab), "swapped"),
        ("diffusion.ddim_step", lambda x, t, s, e, ab: ddim_step(x, t, t - 1, e, ab), "DDIM skips steps"),
        ("diffusion.ddim_step", lambda x, t, s, e, ab: ab[s].sqrt() * (x - (1 - ab[t]) * e) / ab[t].sqrt() + (1 - ab[s]).sqrt() * e, "square root is missing"),
        ("diffusion.ddim_step", lambda x, t, s, e, ab: ab[s].sqrt() * (x - (1 - ab[t]).sqrt() * e) / ab[t].sqrt(), "direction term"),
        # guidance
        ("diffusion.guided_eps", lambda c, u, w: u + w * (c - u), "other convention"),
        ("diffusion.guided_eps", lambda c, u, w: c - w * (c - u), "not minus"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, wrong)


def right_optimal_eps(x_t, t, m, s, alpha_bar):
    a = alpha_bar[t]
    return (1 - a).sqrt() * (x_t - a.sqrt() * m) / (a * s**2 + 1 - a)


def test_optimal_eps_accepts_the_right_answer(capsys):
    assert check("diffusion.optimal_eps", right_optimal_eps)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda x, t, m, s, ab: (1 - ab[t]).sqrt() * x / (ab[t] * s**2 + 1 - ab[t]), "subtract it"),
        (lambda x, t, m, s, ab: (1 - ab[t]).sqrt() * (x - ab[t].sqrt() * m) / (ab[t] * s**2), "noise's share"),
        (lambda x, t, m, s, ab: (1 - ab[t]) * (x - ab[t].sqrt() * m) / (ab[t] * s**2 + 1 - ab[t]), "not 1 - alpha_bar_t"),
        (lambda x, t, m, s, ab: (1 - ab[t]).sqrt() * (x - ab[t].sqrt() * m) / (ab[t] * s**2 + 1 - ab[t]).sqrt(), "not by its standard deviation"),
        (lambda x, t, m, s, ab: (1 - ab[t]).sqrt() * (x - ab[t].sqrt() * m) / (ab[t] * s + 1 - ab[t]), "variance of x0 is s\\^2"),
        (lambda x, t, m, s, ab: (x - ab[t].sqrt() * m).numpy(), "must return a tensor"),
    ],
)
def test_optimal_eps_rejects_the_classic_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("diffusion.optimal_eps", wrong)


RING = torch.stack([2 * torch.tensor([math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)]) for k in range(8)])
TOY = D.linear_schedule(T=100, beta_1=1e-3, beta_T=0.2)


def exact_ring_eps(x_t, t):
    """E[eps | x_t] for the ring (std 0.05) under the toy schedule: -sqrt(1 - ab_t) * score of the noised mixture."""
    ab = TOY.alpha_bar[t].double().view(-1, 1)
    with torch.enable_grad():  # the sampler runs under no_grad
        x = x_t.reshape(len(x_t), 2).double().requires_grad_(True)
        var = ab * 0.05**2 + 1 - ab
        sq = ((x[:, None, :] - ab.sqrt()[:, :, None] * RING.double()[None]) ** 2).sum(2)  # (B, 8)
        logp = torch.logsumexp(-sq / (2 * var), dim=1).sum()
        (score,) = torch.autograd.grad(logp, x)
    return (-(1 - ab).sqrt() * score).float().view(x_t.shape)


def exact_eps_of(a_of_t, c_of_t):
    """E[eps | x_t] for x_t = a_t x0 + c_t eps on the ring: -c_t * score (Tweedie), the best a network
    trained on that forward process can learn."""

    def eps_model(x_t, t):
        a, c = a_of_t(t).double().view(-1, 1), c_of_t(t).double().view(-1, 1)
        with torch.enable_grad():
            x = x_t.reshape(len(x_t), 2).double().requires_grad_(True)
            var = a**2 * 0.05**2 + c**2
            sq = ((x[:, None, :] - a[:, :, None] * RING.double()[None]) ** 2).sum(2)
            (score,) = torch.autograd.grad(torch.logsumexp(-sq / (2 * var), dim=1).sum(), x)
        return (-c * score).float().view(x_t.shape)

    return eps_model


DOWN = [1.0 / (1 + i) for i in range(30)]


@pytest.mark.parametrize(
    "what, a_of_t, c_of_t",
    [
        ("alpha_t in place of alpha_bar_t", lambda t: TOY.alpha[t].sqrt(), lambda t: (1 - TOY.alpha[t]).sqrt()),
        ("q_sample without its square roots", lambda t: TOY.alpha_bar[t], lambda t: 1 - TOY.alpha_bar[t]),
    ],
)
def test_toy_ddpm_rejects_a_network_of_another_forward_process(what, a_of_t, c_of_t, monkeypatch):
    """The best network a loop with the mistake can train fails the held-out error under the true
    process, even where its samples land on the ring (alpha_t: every sample within 0.3 of a mode)."""
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    with pytest.raises(AssertionError, match="held-out noise-prediction error"):
        check("diffusion.toy_ddpm", exact_eps_of(a_of_t, c_of_t), DOWN)
    from gencourse.grading.diffusion import TOY_TARGET_MSE, toy_outcome

    right = toy_outcome(exact_ring_eps, seed=0)["heldout_mse"]
    assert right < TOY_TARGET_MSE - 0.05, right  # the exact predictor of the true process passes with room


def test_toy_ddpm_accepts_the_exact_noise_prediction(monkeypatch, capsys):
    assert check("diffusion.toy_ddpm", exact_ring_eps, DOWN)
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    assert check("diffusion.toy_ddpm", exact_ring_eps, DOWN)
    assert capsys.readouterr().out.count("✔") == 2


@pytest.mark.parametrize(
    "eps_model, losses, profile, message",
    [
        (lambda x, t: torch.zeros_like(x), DOWN, "cpu", "mean radius"),
        (exact_ring_eps, list(reversed(DOWN)), "smoke", "did not go down"),
        (exact_ring_eps, [torch.tensor(v) for v in DOWN], "smoke", "append"),
    ],
)
def test_toy_ddpm_rejects_the_classic_mistakes(eps_model, losses, profile, message, monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", profile)
    with pytest.raises(AssertionError, match=message):
        check("diffusion.toy_ddpm", eps_model, losses)
