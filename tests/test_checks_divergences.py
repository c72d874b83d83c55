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
