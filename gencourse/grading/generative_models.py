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
    x64 = torch.rand(400, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.2 - 0.1
    expect_close(
        float(ks_statistic(x64, uniform_cdf)), sampling.ks_statistic(x64, uniform_cdf),
        what="ks_statistic on 400 float64 samples", rtol=0, atol=1e-10,
        hint="keep the samples' float64 (no float32 step): the graders ask for 1e-9",
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


def _pushforward_log_prob_reference(x):
    import torch

    x1, x2 = x[:, 0], x[:, 1]
    normal = torch.distributions.Normal(torch.zeros((), dtype=x.dtype), torch.ones((), dtype=x.dtype))
    return normal.log_prob(torch.log(x1)) + normal.log_prob(x2 / x1) - 2 * torch.log(x1)


@register("generative_models.pushforward_log_prob")
def _pushforward_log_prob(pushforward_log_prob):
    import torch

    from .checks import diagnose

    g = torch.Generator().manual_seed(0)
    x = torch.stack([torch.exp(torch.randn(6, generator=g, dtype=torch.float64)), 2 * torch.randn(6, generator=g, dtype=torch.float64)], 1)
    got = pushforward_log_prob(x)
    expect(isinstance(got, torch.Tensor), f"return a tensor, got {type(got).__name__}")
    expect_shape(got, (6,), what="pushforward_log_prob(x) for x of shape (6, 2)")
    expect(got.dtype == torch.float64, f"float64 input must give float64 output, got {got.dtype}")
    ref = _pushforward_log_prob_reference(x)
    log_x1 = torch.log(x[:, 0])
    diagnose(got, {
        "the Jacobian term is missing: add log|det J_{G^-1}(x)| = -2 log x1": ref + 2 * log_x1,
        "the Jacobian determinant of G^-1 is 1 / x1^2 (both coordinates are divided by x1): the term is -2 log x1, not -log x1": ref + log_x1,
        "the Jacobian term has the wrong sign: |det J_{G^-1}(x)| = 1 / x1^2, so add -2 log x1": ref + 4 * log_x1,
        "this is the density, not its logarithm": ref.exp(),
        "z2 = x2 / x1, not x2 * x1 or x2": _pushforward_log_prob_reference(torch.stack([x[:, 0], x[:, 1] * x[:, 0] ** 2], 1)),
    }, "pushforward_log_prob", expected=ref)
    expect_close(got, ref, what="pushforward_log_prob(x)", rtol=1e-7, atol=1e-9,
                 hint="z = G^{-1}(x) = (log x1, x2 / x1); log p(x) = log N(z1) + log N(z2) - 2 log x1")


#: The data of the quantile push-forward exercise: 0.3 N(-1.5, 0.4^2) + 0.7 N(2, 0.8^2).
QUANTILE_MIXTURE = ((0.3, -1.5, 0.4), (0.7, 2.0, 0.8))
QUANTILE_TARGET_KS = 0.1


@register("generative_models.quantile_pushforward")
def _quantile_pushforward(G, losses):
    import torch

    from gencourse import sampling

    from ._training import expect_losses_went_down, expect_target

    expect_losses_went_down(losses)
    u = torch.rand(20_000, 1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = G(u)
    expect(isinstance(x, torch.Tensor), f"G(u) must return a tensor, got {type(x).__name__}")
    expect_shape(x, (20_000, 1), what="G(u) for u of shape (20000, 1)")
    x = x.double()[:, 0]
    expect(bool(torch.isfinite(x).all()), "G(u) has non-finite values")

    def cdf(t):
        return sum(w * torch.distributions.Normal(m, s).cdf(t) for w, m, s in QUANTILE_MIXTURE)

    D = sampling.ks_statistic(x, cdf)
    spread = float(x.std())
    expect(spread > 0.3, f"the samples G(u) hardly vary (standard deviation {spread:.3g}; the data's is about 1.8): "
           "G must depend on u; the squared error learns the mean, the absolute error the median, "
           "the pinball loss rho_u the u-quantile")
    expect_target(D, QUANTILE_TARGET_KS, what="KS statistic of 20,000 samples G(u) against p_data",
                  hint="train longer, with a larger batch, or lower the learning rate towards the end")
