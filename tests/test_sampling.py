import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from gencourse import sampling


def test_exponential_icdf_inverts_the_cdf():
    u = torch.linspace(0, 0.999, 101, dtype=torch.float64)
    for rate in (0.5, 1.0, 3.0):
        x = sampling.exponential_icdf(u, rate)
        assert torch.allclose(sampling.exponential_cdf(x, rate), u.float(), atol=1e-5)
        assert np.allclose(x.numpy(), scipy.stats.expon(scale=1 / rate).ppf(u.numpy()), atol=1e-5)


def test_exponential_icdf_checks_its_input():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        sampling.exponential_icdf(torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="rate must be > 0"):
        sampling.exponential_icdf(torch.tensor([0.5]), rate=0)


def test_inverse_cdf_sampling_has_the_right_distribution():
    g = torch.Generator().manual_seed(0)
    x = sampling.inverse_cdf_sample(lambda u: sampling.exponential_icdf(u, 2.0), 20_000, generator=g)
    assert scipy.stats.kstest(x.numpy(), "expon", args=(0, 0.5)).pvalue > 0.01
    assert abs(x.mean().item() - 0.5) < 0.02


@pytest.mark.parametrize("seed", range(5))
def test_ks_statistic_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 1.2, size=int(rng.integers(5, 500)))
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    ours = sampling.ks_statistic(torch.from_numpy(x), normal.cdf)
    assert ours == pytest.approx(scipy.stats.kstest(x, "norm").statistic, abs=1e-12)


def test_ks_statistic_uses_both_sides_of_each_jump():
    # One sample at the median: the empirical CDF jumps from 0 to 1 there, so D = 1/2 from either side;
    # samples all below the support of F give D from the "i/n - F" side only.
    cdf = lambda t: t.clamp(0, 1)  # noqa: E731  uniform on [0, 1]
    assert sampling.ks_statistic(torch.tensor([0.5]), cdf) == pytest.approx(0.5)
    assert sampling.ks_statistic(torch.tensor([0.9, 0.95]), cdf) == pytest.approx(0.9)
    assert sampling.ks_statistic(torch.tensor([0.05, 0.1]), cdf) == pytest.approx(0.9)


def test_pushforward_gaussian_matches_samples():
    A = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])  # (d=2, k=3): A A^T, not A^T A
    b = torch.tensor([1.0, -2.0])
    mean, cov = sampling.pushforward_gaussian(A, b)
    assert cov.shape == (2, 2)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    x = z @ A.double().T + b.double()
    assert torch.allclose(x.mean(0), mean.double(), atol=0.02)
    assert torch.allclose(torch.cov(x.T), cov.double(), atol=0.05)
    with pytest.raises(ValueError, match=r"\(d, k\)"):
        sampling.pushforward_gaussian(A, torch.zeros(3))


def test_chi2_is_the_pushforward_of_a_square():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20_000, generator=g, dtype=torch.float64) ** 2
    chi2 = lambda t: torch.from_numpy(scipy.stats.chi2(1).cdf(t.numpy()))  # noqa: E731
    assert sampling.ks_statistic(x, chi2) < 1.358 / math.sqrt(len(x))


def test_rejection_sampling_follows_an_unnormalised_density():
    g = torch.Generator().manual_seed(0)
    # Beta(2, 5) known up to its constant: p~(x) = x (1 - x)^4 on [0, 1], max 4^4/5^5 at x = 1/5
    log_p_tilde = lambda x: torch.log(x) + 4 * torch.log1p(-x)  # noqa: E731
    log_M = math.log(4**4 / 5**5)
    x, rate = sampling.rejection_sample(
        log_p_tilde, lambda n, gen: torch.rand(n, generator=gen, dtype=torch.float64).clamp(1e-12, 1 - 1e-12),
        lambda x: torch.zeros_like(x), log_M, 20_000, generator=g,
    )
    assert x.shape == (20_000,)
    Z = scipy.special.beta(2, 5)  # acceptance rate = Z / M
    assert rate == pytest.approx(Z / math.exp(log_M), rel=0.03)
    assert scipy.stats.kstest(x.numpy(), scipy.stats.beta(2, 5).cdf).pvalue > 1e-3
    with pytest.raises(ValueError, match="log_M .* too small"):
        sampling.rejection_sample(log_p_tilde, lambda n, gen: torch.rand(n, generator=gen, dtype=torch.float64),
                                  lambda x: torch.zeros_like(x), log_M - 1.0, 100, generator=g)


def test_langevin_has_the_stationary_variance_of_its_discretisation():
    g = torch.Generator().manual_seed(1)
    tau = 0.2
    x = sampling.langevin(lambda x: -x, torch.zeros(40_000, 1, dtype=torch.float64), tau, 200, generator=g)
    # x' = (1 - tau) x + sqrt(2 tau) xi has stationary variance 2 tau / (1 - (1 - tau)^2) = 1 / (1 - tau/2)
    assert x.var().item() == pytest.approx(1 / (1 - tau / 2), rel=0.03)
    assert abs(x.mean().item()) < 0.03
    y = sampling.langevin(lambda x: -x, torch.zeros(5, 2), 0.1, 3, generator=torch.Generator().manual_seed(2))
    z = sampling.langevin(lambda x: -x, torch.zeros(5, 2), 0.1, 3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(y, z)
    with pytest.raises(ValueError, match="step_size must be > 0"):
        sampling.langevin(lambda x: -x, torch.zeros(3), 0.0, 3)
