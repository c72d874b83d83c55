"""The public checks of chapter 00 accept the right answers and reject the classic mistakes."""

import math

import pytest
import torch

from gencourse import sampling
from gencourse.grading import check


def right_icdf(u, rate):
    return -torch.log1p(-u) / rate


def test_right_answers_pass(capsys):
    assert check("generative_models.exp_icdf", right_icdf)
    assert check("generative_models.sample_exponential", lambda n, rate, generator=None: right_icdf(torch.rand(n, generator=generator), rate))
    assert check("generative_models.ks_statistic", sampling.ks_statistic)
    assert check("generative_models.chi2_density", lambda x: torch.exp(-x / 2) / torch.sqrt(2 * math.pi * x))
    assert check("generative_models.linear_pushforward", sampling.pushforward_gaussian)
    assert capsys.readouterr().out.count("✔") == 5


@pytest.mark.parametrize(
    "qid, wrong, message",
    [
        ("generative_models.exp_icdf", lambda u, rate: -torch.log(u) / rate, "exp_icdf"),  # log(u) instead of log(1 - u)
        ("generative_models.exp_icdf", lambda u, rate: torch.log1p(-u) / rate, "exp_icdf"),  # sign
        ("generative_models.exp_icdf", lambda u, rate: -torch.log1p(-u) * rate, "exp_icdf"),  # rate multiplies
        ("generative_models.sample_exponential", lambda n, rate, generator=None: -torch.log1p(-torch.rand(n, generator=generator)), "KS statistic"),
        ("generative_models.sample_exponential", lambda n, rate, generator=None: right_icdf(torch.rand(n), rate), "generator"),
        ("generative_models.sample_exponential", lambda n, rate, generator=None: torch.log1p(-torch.rand(n, generator=generator)) / rate, ">= 0"),
        (
            "generative_models.ks_statistic",  # only one side of each jump of the empirical CDF
            lambda x, cdf: (torch.arange(1, len(x) + 1) / len(x) - cdf(x.sort().values)).max().item(),
            "ks_statistic",
        ),
        (
            "generative_models.ks_statistic",  # forgets to sort
            lambda x, cdf: torch.maximum(torch.arange(1, len(x) + 1) / len(x) - cdf(x), cdf(x) - torch.arange(len(x)) / len(x)).max().item(),
            "ks_statistic",
        ),
        ("generative_models.chi2_density", lambda x: torch.exp(-x / 2) / torch.sqrt(2 * math.pi * x) / 2, "both branches"),  # one branch only
        ("generative_models.chi2_density", lambda x: torch.exp(-x / 2) / torch.sqrt(2 * math.pi * x.clamp(min=1)), "chi2_density"),
        ("generative_models.linear_pushforward", lambda A, b: (b, A.T @ A), "shape"),  # A^T A
        ("generative_models.linear_pushforward", lambda A, b: (torch.zeros_like(b), A @ A.T), "mean"),
        ("generative_models.linear_pushforward", lambda A, b: (b, A), "shape"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, wrong)


# ------------------------------------------------------------------ the density of a 2-D push-forward


def right_pushforward_log_prob(x):
    x1, x2 = x[:, 0], x[:, 1]
    return -0.5 * (torch.log(x1) ** 2 + (x2 / x1) ** 2) - math.log(2 * math.pi) - 2 * torch.log(x1)


def test_pushforward_log_prob_accepts_the_right_answer(capsys):
    assert check("generative_models.pushforward_log_prob", right_pushforward_log_prob)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda x: right_pushforward_log_prob(x) + 2 * torch.log(x[:, 0]), "Jacobian term is missing"),
        (lambda x: right_pushforward_log_prob(x) + torch.log(x[:, 0]), "not -log x1"),
        (lambda x: right_pushforward_log_prob(x) + 4 * torch.log(x[:, 0]), "wrong sign"),
        (lambda x: right_pushforward_log_prob(x).exp(), "density, not its logarithm"),
        (lambda x: right_pushforward_log_prob(x).float(), "float64"),
        (lambda x: right_pushforward_log_prob(x)[:, None], "shape"),
    ],
)
def test_pushforward_log_prob_rejects_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("generative_models.pushforward_log_prob", wrong)


# ------------------------------------------------------------------ the quantile push-forward (training)

from gencourse.grading import generative_models as gm  # noqa: E402


def mixture_quantile(u):
    """The exact quantile function of the exercise's mixture, by bisection: (n, 1) -> (n, 1)."""
    lo, hi = torch.full_like(u, -10.0, dtype=torch.float64), torch.full_like(u, 10.0, dtype=torch.float64)
    cdf = lambda t: sum(w * torch.distributions.Normal(m, s).cdf(t) for w, m, s in gm.QUANTILE_MIXTURE)  # noqa: E731
    for _ in range(60):
        mid = (lo + hi) / 2
        below = cdf(mid) < u
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return ((lo + hi) / 2).float()


GOING_DOWN = [1.0 - 0.01 * i for i in range(50)]


@pytest.fixture
def cpu_profile(monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")


def test_quantile_pushforward_accepts_the_exact_quantile_function(cpu_profile, capsys):
    assert check("generative_models.quantile_pushforward", mixture_quantile, GOING_DOWN)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "G, losses, message",
    [
        (lambda u: torch.full_like(u, 0.95), GOING_DOWN, "hardly vary"),  # the mean: squared error
        (lambda u: torch.distributions.Normal(0.0, 1.0).icdf(u.clamp(1e-6, 1 - 1e-6)) + 0.95, GOING_DOWN, "target < 0.1"),
        (mixture_quantile, [torch.tensor(v) for v in GOING_DOWN], "loss.item()"),
        (mixture_quantile, GOING_DOWN[::-1], "did not go down"),
        (mixture_quantile, GOING_DOWN[:3], "at least 10"),
        (lambda u: mixture_quantile(u)[:, 0], GOING_DOWN, "shape"),
    ],
)
def test_quantile_pushforward_rejects_mistakes(cpu_profile, G, losses, message):
    with pytest.raises(AssertionError, match=message):
        check("generative_models.quantile_pushforward", G, losses)


def test_quantile_pushforward_reports_but_does_not_enforce_the_target_under_smoke(monkeypatch, capsys):
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")
    wide = lambda u: 2.0 * torch.distributions.Normal(0.0, 1.0).icdf(u.clamp(1e-6, 1 - 1e-6)) + 0.95  # noqa: E731
    assert check("generative_models.quantile_pushforward", wide, GOING_DOWN)
    assert "checked under the cpu profile" in capsys.readouterr().out
