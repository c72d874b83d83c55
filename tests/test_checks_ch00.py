"""The public checks of chapter 00 accept the right answers and reject the classic mistakes."""

import math

import pytest
import torch

from gencourse import sampling
from gencourse.grading import check


def right_icdf(u, rate):
    return -torch.log1p(-u) / rate


def test_right_answers_pass(capsys):
    assert check("00.exp_icdf", right_icdf)
    assert check("00.sample_exponential", lambda n, rate, generator=None: right_icdf(torch.rand(n, generator=generator), rate))
    assert check("00.ks_statistic", sampling.ks_statistic)
    assert check("00.chi2_density", lambda x: torch.exp(-x / 2) / torch.sqrt(2 * math.pi * x))
    assert check("00.linear_pushforward", sampling.pushforward_gaussian)
    assert capsys.readouterr().out.count("✔") == 5


@pytest.mark.parametrize(
    "qid, wrong, message",
    [
        ("00.exp_icdf", lambda u, rate: -torch.log(u) / rate, "exp_icdf"),  # log(u) instead of log(1 - u)
        ("00.exp_icdf", lambda u, rate: torch.log1p(-u) / rate, "exp_icdf"),  # sign
        ("00.exp_icdf", lambda u, rate: -torch.log1p(-u) * rate, "exp_icdf"),  # rate multiplies
        ("00.sample_exponential", lambda n, rate, generator=None: -torch.log1p(-torch.rand(n, generator=generator)), "KS statistic"),
        ("00.sample_exponential", lambda n, rate, generator=None: right_icdf(torch.rand(n), rate), "generator"),
        ("00.sample_exponential", lambda n, rate, generator=None: torch.log1p(-torch.rand(n, generator=generator)) / rate, ">= 0"),
        (
            "00.ks_statistic",  # only one side of each jump of the empirical CDF
            lambda x, cdf: (torch.arange(1, len(x) + 1) / len(x) - cdf(x.sort().values)).max().item(),
            "ks_statistic",
        ),
        (
            "00.ks_statistic",  # forgets to sort
            lambda x, cdf: torch.maximum(torch.arange(1, len(x) + 1) / len(x) - cdf(x), cdf(x) - torch.arange(len(x)) / len(x)).max().item(),
            "ks_statistic",
        ),
        ("00.chi2_density", lambda x: torch.exp(-x / 2) / torch.sqrt(2 * math.pi * x) / 2, "both branches"),  # one branch only
        ("00.chi2_density", lambda x: torch.exp(-x / 2) / torch.sqrt(2 * math.pi * x.clamp(min=1)), "chi2_density"),
        ("00.linear_pushforward", lambda A, b: (b, A.T @ A), "shape"),  # A^T A
        ("00.linear_pushforward", lambda A, b: (torch.zeros_like(b), A @ A.T), "mean"),
        ("00.linear_pushforward", lambda A, b: (b, A), "shape"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, wrong)
