"""The public checks of chapter 04 accept the right answers and reject the classic mistakes:
a sign error, a missing 1/2, a mean where a sum is meant, sigma where log sigma^2 is meant."""

import math

import pytest
import torch
import torch.nn.functional as F

from gencourse import losses
from gencourse.grading import check
from gencourse.models import autoencoder as ae


def right_kl(mu, logvar):
    return 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(1)


def right_neg_elbo(x, logits, mu, logvar, beta=1.0):
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    return (rec + beta * right_kl(mu, logvar)).mean()


def test_right_answers_pass(capsys):
    assert check("vae.reparameterize", lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar) * eps)
    assert check("vae.kl_standard_normal", right_kl)
    assert check("vae.negative_elbo", right_neg_elbo)
    assert check("vae.negative_elbo", lambda x, l, mu, lv, beta=1.0: losses.vae_loss(x, l, mu, lv, beta))
    assert check("vae.iwae_bound", lambda log_w: torch.logsumexp(log_w, 0) - math.log(log_w.shape[0]))
    assert check("vae.conditional_decoder_input", ae.decoder_input)
    assert capsys.readouterr().out.count("✔") == 6


def _bce_mean(x, l, mu, lv, beta=1.0):
    return (F.binary_cross_entropy_with_logits(l, x, reduction="none").flatten(1).mean(1) + beta * right_kl(mu, lv)).mean()


@pytest.mark.parametrize(
    "qid, wrong, message",
    [
        ("vae.reparameterize", lambda mu, lv, eps: mu + lv.exp() * eps, "variance"),
        ("vae.reparameterize", lambda mu, lv, eps: mu + lv * eps, "not sigma"),
        ("vae.reparameterize", lambda mu, lv, eps: torch.exp(0.5 * lv) * eps, "mean is missing"),
        ("vae.reparameterize", lambda mu, lv, eps: (mu + torch.exp(0.5 * lv) * eps).detach(), "no gradient"),
        ("vae.kl_standard_normal", lambda mu, lv: (mu**2 + lv.exp() - lv - 1).sum(1), "1/2"),
        ("vae.kl_standard_normal", lambda mu, lv: -right_kl(mu, lv), "sign"),
        ("vae.kl_standard_normal", lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv - 1).mean(1), "SUM over its dimensions"),
        ("vae.kl_standard_normal", lambda mu, lv: 0.5 * (mu**2 + lv**2 - (lv**2).log() - 1).sum(1), "logvar was used as sigma"),
        ("vae.kl_standard_normal", lambda mu, lv: 0.5 * (mu**2 + lv.exp() - torch.exp(0.5 * lv) - 1).sum(1), "sigma was used where log sigma"),
        ("vae.kl_standard_normal", lambda mu, lv: right_kl(mu, lv).sum(), r"shape \(B,\)"),
        ("vae.negative_elbo", _bce_mean, "averaged over pixels"),
        ("vae.negative_elbo", lambda *a, **k: -right_neg_elbo(*a, **k), "sign is flipped"),
        ("vae.negative_elbo", lambda x, l, mu, lv, beta=1.0: right_neg_elbo(x, l, mu, lv, beta) * x.shape[0], "summed over the batch"),
        ("vae.negative_elbo", lambda x, l, mu, lv, beta=1.0: right_neg_elbo(x, l, mu, lv, -beta), "KL term has the wrong sign"),
        ("vae.negative_elbo", lambda x, l, mu, lv, beta=1.0: right_neg_elbo(x, l, mu, lv, 2 * beta), "1/2"),
        ("vae.negative_elbo", lambda x, l, mu, lv, beta=1.0: right_neg_elbo(x, l, mu, lv), "negative_elbo"),  # ignores beta
        ("vae.iwae_bound", lambda lw: lw.mean(0), "ELBO"),
        ("vae.iwae_bound", lambda lw: torch.logsumexp(lw, 0), "log K"),
        ("vae.iwae_bound", lambda lw: torch.log(torch.exp(lw).mean(0)), "logsumexp"),
        ("vae.iwae_bound", lambda lw: torch.logsumexp(lw, 1) - math.log(lw.shape[1]), "dim 0"),
        ("vae.conditional_decoder_input", lambda z, y, n: torch.cat([z, y[:, None].float()], 1), "one-hot"),
        ("vae.conditional_decoder_input", lambda z, y, n: torch.cat([F.one_hot(y, n).float(), z], 1), "code first"),
        ("vae.conditional_decoder_input", lambda z, y, n: torch.cat([z.long(), F.one_hot(y, n)], 1), "floating point"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, wrong)


# ------------------------------------------------------------------ the ELBO gap of the linear-Gaussian model


def right_gap(x, W, b, sigma2, m, logvar):
    lg = ae.LinearGaussian(W, b, sigma2)
    return lg.log_marginal(x) - lg.elbo(x, m, logvar)


def kl_to_prior(x, W, b, sigma2, m, logvar):
    return right_kl(m, logvar)


def test_elbo_gap_accepts_the_right_answer(capsys):
    assert check("vae.elbo_gap", right_gap)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (kl_to_prior, "POSTERIOR"),
        (lambda *args: -right_gap(*args), "sign is flipped"),
        (lambda *args: right_gap(*args).sum(), "shape"),
        (lambda *args: 1.1 * right_gap(*args), "elbo_gap"),
    ],
)
def test_elbo_gap_rejects_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("vae.elbo_gap", wrong)


# ------------------------------------------------------------------ the VAE trained to a held-out ELBO

from gencourse.grading import vae as vae_checks  # noqa: E402

GOING_DOWN = [500.0 - i for i in range(50)]


def tiny_vae(logvar_shift=0.0, collapse=False):
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32))
    dec = torch.nn.Sequential(torch.nn.Linear(16, 784), torch.nn.Unflatten(1, (1, 28, 28)))

    def encode(x):
        mu, logvar = enc(x).chunk(2, dim=1)
        if collapse:
            return torch.zeros_like(mu), torch.zeros_like(logvar)
        return 3 * mu, logvar + logvar_shift

    return encode, dec


@pytest.fixture
def cpu_profile(monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")


def test_train_vae_accepts_a_model_that_reaches_the_target(cpu_profile, monkeypatch, capsys):
    monkeypatch.setattr(vae_checks, "VAE_TARGET_NEG_ELBO", 1e6)
    assert check("vae.train_vae", *tiny_vae(), GOING_DOWN)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "model, losses, message",
    [
        (tiny_vae(), GOING_DOWN, "target <"),
        (tiny_vae(collapse=True), GOING_DOWN, "collapsed"),  # KL weighed 784 times (per-pixel mean)
        (tiny_vae(logvar_shift=20.0), GOING_DOWN, "ADD"),  # KL with the wrong sign
        ((lambda x: tiny_vae()[0](x)[0], tiny_vae()[1]), GOING_DOWN, "tuple"),
        (tiny_vae(), GOING_DOWN[::-1], "did not go down"),
    ],
)
def test_train_vae_rejects_mistakes(cpu_profile, monkeypatch, model, losses, message):
    monkeypatch.setattr(vae_checks, "VAE_TARGET_NEG_ELBO", 120.0)
    with pytest.raises(AssertionError, match=message):
        check("vae.train_vae", *model, losses)
