"""Public checks for the exercises of chapter 00 (push-forward sampling).

Each check compares the student's function with the library's reference
(:mod:`gencourse.sampling`) or with a closed form, and says what differs.
"""

from __future__ import annotations

import math

from .checks import expect, expect_close, expect_shape, register


@register("generative_models.exp_icdf")
def _exp_icdf(exp_icdf):
    import torch

    from gencourse import sampling

    u = torch.tensor([0.0, 0.1, 0.5, 0.9, 0.99])
    for rate in (1.0, 2.0):
        expect_close(
            exp_icdf(u, rate), sampling.exponential_icdf(u, rate), what=f"exp_icdf(u, rate={rate})", rtol=1e-4,
            hint="F^{-1}(u) = -log(1 - u) / rate; check the sign, log(1 - u) versus log(u), and rate dividing",
        )
    expect_close(exp_icdf(torch.tensor([0.5]), 2.0), [math.log(2) / 2], what="exp_icdf(0.5, rate=2)", rtol=1e-4)


@register("generative_models.sample_exponential")
def _sample_exponential(sample_exponential):
    import torch

    from gencourse import sampling

    n, rate = 20_000, 3.0
    x = sample_exponential(n, rate, generator=torch.Generator().manual_seed(0))
    expect_shape(x, (n,), what=f"sample_exponential({n}, {rate})")
    expect(bool((x >= 0).all()), "exponential samples must be >= 0; some are negative (a sign error?)")
    D = sampling.ks_statistic(x, lambda t: sampling.exponential_cdf(t, rate))
    expect(
        D < 1.63 / math.sqrt(n),
        f"the KS statistic of your samples against Exp(rate={rate}) is {D:.4f}, above the 1% critical value "
        f"{1.63 / math.sqrt(n):.4f}: the samples do not follow the distribution (mean {x.mean():.4f}, expected {1 / rate:.4f})",
    )
    y = sample_exponential(100, rate, generator=torch.Generator().manual_seed(1))
    z = sample_exponential(100, rate, generator=torch.Generator().manual_seed(1))
    expect(torch.equal(y, z), "use the generator argument (torch.rand(n, generator=generator)) so that samples are reproducible")


@register("generative_models.ks_statistic")
def _ks_statistic(ks_statistic):
    import torch

    from gencourse import sampling

    uniform_cdf = lambda t: t.clamp(0, 1)  # noqa: E731
    cases = {
        "one point at 0.5": torch.tensor([0.5]),
        "points below the mass": torch.tensor([0.05, 0.1, 0.12]),
        "points above the mass": torch.tensor([0.9, 0.95, 0.8]),
        "unsorted uniform sample": torch.rand(50, generator=torch.Generator().manual_seed(0)),
    }
    for what, x in cases.items():
        expect_close(
            float(ks_statistic(x, uniform_cdf)), sampling.ks_statistic(x, uniform_cdf), what=f"ks_statistic on {what}",
            rtol=1e-5, atol=1e-7,
            hint="sort the samples and take the max of i/n - F(x_(i)) and F(x_(i)) - (i-1)/n over i = 1..n",
        )


@register("generative_models.chi2_density")
def _chi2_density(chi2_density):
    import torch

    x = torch.tensor([0.1, 0.5, 1.0, 2.0, 4.0])
    expected = torch.distributions.Chi2(torch.tensor(1.0)).log_prob(x).exp()
    got = chi2_density(x)
    expect_close(
        got, expected, what="chi2_density(x)", rtol=1e-4,
        hint="both branches z = +sqrt(x) and z = -sqrt(x) map to x: p(x) = 2 phi(sqrt x) / (2 sqrt x)",
    )


@register("generative_models.linear_pushforward")
def _linear_pushforward(linear_pushforward):
    import torch

    from gencourse import sampling

    A = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])  # (d, k) = (2, 3)
    b = torch.tensor([1.0, -2.0])
    out = linear_pushforward(A, b)
    expect(isinstance(out, tuple) and len(out) == 2, f"return a tuple (mean, cov), got {type(out).__name__}")
    mean, cov = out
    ref_mean, ref_cov = sampling.pushforward_gaussian(A, b)
    expect_close(mean, ref_mean, what="mean of Az + b", rtol=1e-5)
    expect_close(cov, ref_cov, what="covariance of Az + b", rtol=1e-5, hint="Cov[Az + b] = A Cov[z] A^T = A A^T (a d x d matrix)")
