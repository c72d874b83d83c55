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
