"""The public checks of chapter 01 accept the right answers and reject the classic mistakes with a specific message."""

import math

import pytest
import torch

from gencourse import density, divergences
from gencourse.grading import check


def kl_diag(mu_p, logvar_p, mu_q, logvar_q):
    return 0.5 * (logvar_q - logvar_p + (logvar_p.exp() + (mu_p - mu_q) ** 2) / logvar_q.exp() - 1).sum(-1)


def kl_mc(log_p, log_q, x):
    r = log_p(x) - log_q(x)
    return r.mean(), r.std() / math.sqrt(len(r))


def js(p, q):
    m = (p + q) / 2
    return 0.5 * (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(-1) + 0.5 * (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(-1)


def kde(x, data, h):
    N, D = data.shape
    sq = torch.cdist(x, data) ** 2
    return torch.logsumexp(-sq / (2 * h**2), 1) - math.log(N) - D / 2 * math.log(2 * math.pi * h**2)


def mle(x):
    mu = x.mean(0)
    return mu, (x - mu).T @ (x - mu) / len(x)


def test_right_answers_pass(capsys):
    assert check("divergences.kl_diag_gaussians", kl_diag)
    assert check("divergences.kl_diag_gaussians", divergences.kl_gaussians)
    assert check("divergences.kl_monte_carlo", kl_mc)
    assert check("divergences.js_divergence", js)
    assert check("divergences.kde_log_prob", kde)
    assert check("divergences.kde_log_prob", density.kde_log_prob)
    assert check("divergences.gaussian_mle", mle)
    assert capsys.readouterr().out.count("✔") == 7


@pytest.mark.parametrize(
    "qid, wrong, message",
    [
        ("divergences.kl_diag_gaussians", lambda *a: 2 * kl_diag(*a), "factor 1/2 is missing"),
        ("divergences.kl_diag_gaussians", lambda *a: -kl_diag(*a), "wrong sign"),
        ("divergences.kl_diag_gaussians", lambda mp, lp, mq, lq: kl_diag(mq, lq, mp, lp), "swapped"),
        ("divergences.kl_diag_gaussians", lambda *a: kl_diag(*a) / a[0].shape[-1], "mean over the D dimensions"),
        # logvar taken for a log standard deviation: variances squared
        ("divergences.kl_diag_gaussians", lambda mp, lp, mq, lq: kl_diag(mp, 2 * lp, mq, 2 * lq), "exp\\(logvar\\) is the variance"),
        ("divergences.kl_diag_gaussians", lambda mp, lp, mq, lq: kl_diag(mp, lp, mq, lq)[None], "shape"),
        ("divergences.kl_monte_carlo", lambda lp, lq, x: (-(lp(x) - lq(x)).mean(), (lp(x) - lq(x)).std() / math.sqrt(len(x))), "wrong sign"),
        ("divergences.kl_monte_carlo", lambda lp, lq, x: ((lp(x) - lq(x)).mean(), (lp(x) - lq(x)).std()), "not the standard deviation itself"),
        ("divergences.kl_monte_carlo", lambda lp, lq, x: ((lp(x) - lq(x)).mean(), (lp(x) - lq(x)).std() / len(x)), "not sd / n"),
        ("divergences.kl_monte_carlo", lambda lp, lq, x: (lp(x) - lq(x)).mean(), "tuple"),
        ("divergences.js_divergence", lambda p, q: js(p, q) / math.log(2), "bits"),
        ("divergences.js_divergence", lambda p, q: 2 * js(p, q), "twice JS"),
        ("divergences.js_divergence", lambda p, q: 0.5 * (divergences.kl_discrete(p, q) + divergences.kl_discrete(q, p)), "mixture"),
        ("divergences.js_divergence", lambda p, q: 0.5 * (p * (p / ((p + q) / 2)).log()).sum(-1) + 0.5 * (q * (q / ((p + q) / 2)).log()).sum(-1), "0 log 0"),
        ("divergences.kde_log_prob", lambda x, d, h: kde(x, d, h) + math.log(len(d)), "log N"),
        ("divergences.kde_log_prob", lambda x, d, h: kde(x, d, math.sqrt(h)), "not its variance"),
        ("divergences.kde_log_prob", lambda x, d, h: kde(x, d, h) + d.shape[1] / 2 * math.log(2 * math.pi * h**2), "normaliser"),
        ("divergences.kde_log_prob", lambda x, d, h: kde(x, d, h) / math.log(2), "bits"),
        ("divergences.kde_log_prob", lambda x, d, h: kde(x, d, h).exp(), "not its logarithm"),
        ("divergences.gaussian_mle", lambda x: (x.mean(0), (x - x.mean(0)).T @ (x - x.mean(0)) / (len(x) - 1)), "N - 1"),
        ("divergences.gaussian_mle", lambda x: (x.mean(0), x.T @ x / len(x)), "centre the data"),
        ("divergences.gaussian_mle", lambda x: (x.mean(1), mle(x)[1]), "mu"),
        ("divergences.gaussian_mle", lambda x: (x.mean(0), (x - x.mean(0)) @ (x - x.mean(0)).T / len(x)), "shape"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, wrong)


# ------------------------------------------------------------------ KL between exponentials


def right_kl_exp(rate_p, rate_q):
    return torch.log(rate_p / rate_q) + rate_q / rate_p - 1


def test_kl_exponential_accepts_the_right_answer(capsys):
    assert check("divergences.kl_exponential", right_kl_exp)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda p, q: right_kl_exp(q, p), "swapped"),
        (lambda p, q: torch.log(q / p) + q / p - 1, "log term has the wrong sign"),
        (lambda p, q: torch.log(p / q) + q / p, "-1 is missing"),
        (lambda p, q: right_kl_exp(p, q) / math.log(2), "bits"),
        (lambda p, q: float(right_kl_exp(p, q).sum()), "tensor"),
    ],
)
def test_kl_exponential_rejects_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("divergences.kl_exponential", wrong)


# ------------------------------------------------------------------ the mixture fitted by maximum likelihood (training)

GOING_DOWN = [3.0 - 0.01 * i for i in range(50)]
_ANGLES = torch.arange(8) * 2 * math.pi / 8
RING_MEANS = 2.0 * torch.stack([_ANGLES.cos(), _ANGLES.sin()], 1)


@pytest.fixture
def cpu_profile(monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")


def test_mixture_mle_accepts_the_true_parameters(cpu_profile, capsys):
    assert check("divergences.mixture_mle", torch.zeros(8), RING_MEANS.clone(), torch.full((8,), math.log(0.2)), GOING_DOWN)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "params, losses, message",
    [
        ((torch.zeros(8), RING_MEANS, torch.full((8,), math.log(5.0))), GOING_DOWN, "-2 log sigma"),  # no log-det term
        ((torch.zeros(1), torch.zeros(1, 2), torch.full((1,), math.log(1.5))), GOING_DOWN, "target < 0.08"),  # one blob
        ((torch.zeros(20), torch.zeros(20, 2), torch.zeros(20)), GOING_DOWN, "at most 16"),
        ((torch.zeros(8), RING_MEANS, torch.zeros(7)), GOING_DOWN, "shapes"),
        ((torch.zeros(8), RING_MEANS.tolist(), torch.zeros(8)), GOING_DOWN, "float tensor"),
        ((torch.zeros(8), RING_MEANS, torch.full((8,), math.log(0.2))), GOING_DOWN[::-1], "did not go down"),
    ],
)
def test_mixture_mle_rejects_mistakes(cpu_profile, params, losses, message):
    with pytest.raises(AssertionError, match=message):
        check("divergences.mixture_mle", *params, losses)
