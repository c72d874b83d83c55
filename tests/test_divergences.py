"""gencourse.divergences against torch.distributions, scipy, brute-force sums and known values."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.spatial.distance
import scipy.special
import scipy.stats
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from gencourse import divergences as dv

D64 = torch.float64


def _probs(g, *shape):
    return torch.softmax(2 * torch.randn(*shape, generator=g, dtype=D64), -1)


def test_kl_normal_matches_torch_and_quadrature():
    mu_p, s_p, mu_q, s_q = 0.3, 0.7, -1.1, 1.9
    ours = dv.kl_normal(mu_p, s_p, mu_q, s_q).item()
    ref = kl_divergence(Normal(mu_p, s_p), Normal(mu_q, s_q)).item()
    p, q = scipy.stats.norm(mu_p, s_p), scipy.stats.norm(mu_q, s_q)
    quad, _ = scipy.integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -15, 15)
    assert ours == pytest.approx(ref, rel=1e-6) and ours == pytest.approx(quad, rel=1e-6)
    # asymmetric, zero on equal arguments, broadcasts
    assert dv.kl_normal(mu_q, s_q, mu_p, s_p).item() != pytest.approx(ours, rel=0.1)
    assert dv.kl_normal(torch.zeros(3), torch.ones(3), torch.zeros(3), torch.ones(3)).abs().max() < 1e-7
    assert dv.kl_normal(torch.zeros(4, 1), 1.0, torch.zeros(3), 2.0).shape == (4, 3)
    with pytest.raises(ValueError, match="sigma_q must be > 0"):
        dv.kl_normal(0.0, 1.0, 0.0, -1.0)


def test_kl_gaussians_is_a_sum_of_univariate_kls_with_log_variances():
    g = torch.Generator().manual_seed(0)
    mu, logvar, mu_q, logvar_q = (torch.randn(5, 3, generator=g, dtype=D64) for _ in range(4))
    ours = dv.kl_gaussians(mu, logvar, mu_q, logvar_q)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(mu_q, (0.5 * logvar_q).exp())).sum(-1)
    assert ours.shape == (5,) and torch.allclose(ours, ref)
    # the VAE term against N(0, I): 1/2 sum(mu^2 + s^2 - log s^2 - 1)
    vae = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(-1)
    assert torch.allclose(dv.kl_gaussians(mu, logvar), vae)
    with pytest.raises(ValueError, match="same shape"):
        dv.kl_gaussians(mu, logvar[:, :2])


def test_kl_mvn_matches_torch_and_the_diagonal_case():
    g = torch.Generator().manual_seed(1)
    A, B = torch.randn(4, 4, generator=g, dtype=D64), torch.randn(4, 4, generator=g, dtype=D64)
    S_p, S_q = A @ A.T + 0.5 * torch.eye(4, dtype=D64), B @ B.T + 0.5 * torch.eye(4, dtype=D64)
    mu_p, mu_q = torch.randn(4, generator=g, dtype=D64), torch.randn(4, generator=g, dtype=D64)
    ref = kl_divergence(MultivariateNormal(mu_p, S_p), MultivariateNormal(mu_q, S_q))
    assert dv.kl_mvn(mu_p, S_p, mu_q, S_q).item() == pytest.approx(ref.item(), rel=1e-9)
    # the reverse direction differs; diagonal covariances reduce to kl_gaussians
    assert dv.kl_mvn(mu_q, S_q, mu_p, S_p).item() != pytest.approx(ref.item(), rel=0.01)
    v_p, v_q = torch.rand(4, generator=g, dtype=D64) + 0.1, torch.rand(4, generator=g, dtype=D64) + 0.1
    diag = dv.kl_mvn(mu_p, torch.diag(v_p), mu_q, torch.diag(v_q))
    assert diag.item() == pytest.approx(dv.kl_gaussians(mu_p, v_p.log(), mu_q, v_q.log()).item(), rel=1e-9)
    with pytest.raises(ValueError, match="positive definite"):
        dv.kl_mvn(mu_p, -S_p, mu_q, S_q)
    with pytest.raises(ValueError, match=r"Sigma_q must have shape \(D, D\) = \(4, 4\)"):
        dv.kl_mvn(mu_p, S_p, mu_q, S_q[:3, :3])


def test_kl_monte_carlo_is_within_its_standard_error_and_differentiable():
    g = torch.Generator().manual_seed(2)
    p, q = Normal(torch.tensor(0.0, dtype=D64), 1.0), Normal(torch.tensor(1.0, dtype=D64), 2.0)
    x = torch.randn(200_000, generator=g, dtype=D64)
    est, se = dv.kl_monte_carlo(p.log_prob, q.log_prob, x)
    exact = kl_divergence(p, q).item()
    assert abs(est.item() - exact) < 4 * se.item()
    # the standard error is sd/sqrt(n), brute force
    r = (p.log_prob(x) - q.log_prob(x)).numpy()
    assert se.item() == pytest.approx(r.std(ddof=1) / math.sqrt(len(r)), rel=1e-9)
    # reparameterised: d/dmu KL(N(mu,1) || N(1, 2^2)) = (mu - 1) / 4 at mu = 0 is -1/4
    mu = torch.tensor(0.0, dtype=D64, requires_grad=True)
    eps = torch.randn(100_000, generator=g, dtype=D64)
    est, _ = dv.kl_monte_carlo(lambda z: Normal(mu, 1.0).log_prob(z), q.log_prob, mu + eps)
    est.backward()
    assert mu.grad.item() == pytest.approx(-0.25, abs=0.01)
    with pytest.raises(ValueError, match="n >= 2 samples"):
        dv.kl_monte_carlo(p.log_prob, q.log_prob, torch.zeros(1))


def test_discrete_kl_and_js_match_scipy():
    g = torch.Generator().manual_seed(3)
    p, q = _probs(g, 6, 7), _probs(g, 6, 7)
    kl = dv.kl_discrete(p, q)
    assert torch.allclose(kl, torch.from_numpy(scipy.stats.entropy(p.numpy(), q.numpy(), axis=-1)))
    assert torch.allclose(kl, torch.from_numpy(scipy.special.rel_entr(p.numpy(), q.numpy()).sum(-1)))
    js = dv.js_discrete(p, q)
    # scipy's jensenshannon is the square root of JS (natural log by default)
    ref = np.array([scipy.spatial.distance.jensenshannon(a, b) ** 2 for a, b in zip(p.numpy(), q.numpy())])
    assert np.allclose(js.numpy(), ref)
    assert bool((kl >= 0).all()) and bool((js >= 0).all()) and bool((js <= math.log(2)).all())


def test_discrete_edge_cases_zero_mass_and_disjoint_supports():
    p, q = torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.0, 0.5, 0.5])
    assert dv.kl_discrete(p, q).item() == math.inf
    assert dv.kl_discrete(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5])).item() == pytest.approx(math.log(2))
    disjoint_p, disjoint_q = torch.tensor([0.3, 0.7, 0.0, 0.0]), torch.tensor([0.0, 0.0, 0.4, 0.6])
    assert dv.js_discrete(disjoint_p, disjoint_q).item() == pytest.approx(math.log(2))
    # exactly log 2, not log2(2) = 1 bit
    assert dv.js_discrete(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])).item() == pytest.approx(0.693147, abs=1e-6)
    with pytest.raises(ValueError, match="p must sum to 1"):
        dv.kl_discrete(torch.tensor([0.5, 0.6]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="q must have finite, non-negative"):
        dv.kl_discrete(torch.tensor([0.5, 0.5]), torch.tensor([1.5, -0.5]))


def test_f_divergences_are_the_named_divergences():
    g = torch.Generator().manual_seed(4)
    p, q = _probs(g, 5, 9), _probs(g, 5, 9)
    assert torch.allclose(dv.f_divergence(p, q, "kl"), dv.kl_discrete(p, q))
    assert torch.allclose(dv.f_divergence(p, q, "reverse_kl"), dv.kl_discrete(q, p))
    assert torch.allclose(dv.f_divergence(p, q, "js"), dv.js_discrete(p, q))
    assert torch.allclose(dv.f_divergence(p, q, "tv"), 0.5 * (p - q).abs().sum(-1))
    assert torch.allclose(dv.f_divergence(p, q, "chi2"), ((p - q) ** 2 / q).sum(-1))
    # a callable generator: squared Hellinger, f(t) = (sqrt t - 1)^2
    hell = dv.f_divergence(p, q, lambda t: (t.sqrt() - 1) ** 2)
    assert torch.allclose(hell, ((p.sqrt() - q.sqrt()) ** 2).sum(-1))
    with pytest.raises(ValueError, match="f must be one of"):
        dv.f_divergence(p, q, "hellinger")


def test_f_divergence_bounds_and_disjoint_supports():
    g = torch.Generator().manual_seed(5)
    p, q = _probs(g, 2000, 5), _probs(g, 2000, 5)
    kl, js, tv, chi2 = (dv.f_divergence(p, q, f) for f in ("kl", "js", "tv", "chi2"))
    assert bool((js <= math.log(2)).all()) and bool((tv <= 1).all())
    assert bool((tv <= (kl / 2).sqrt() + 1e-12).all())  # Pinsker
    assert bool((kl <= torch.log1p(chi2) + 1e-12).all())
    assert bool((js <= tv * math.log(2) + 1e-12).all())
    a, b = torch.tensor([0.5, 0.5, 0.0, 0.0]), torch.tensor([0.0, 0.0, 0.25, 0.75])
    assert dv.f_divergence(a, b, "js").item() == pytest.approx(math.log(2))
    assert dv.f_divergence(a, b, "tv").item() == pytest.approx(1.0)
    assert dv.f_divergence(a, b, "kl").item() == math.inf
    assert dv.f_divergence(a, b, "reverse_kl").item() == math.inf  # q puts mass where p = 0: -log 0
    with pytest.raises(ValueError, match="f_inf"):
        dv.f_divergence(a, b, lambda t: (t - 1) ** 2)


def test_optimal_discriminator_maximises_the_gan_value_and_gives_js():
    g = torch.Generator().manual_seed(6)
    p, q = _probs(g, 12), _probs(g, 12)
    d_star = dv.optimal_discriminator(p.log(), q.log())
    assert torch.allclose(d_star, p / (p + q))

    def value(d):
        return (p * torch.log(d) + q * torch.log1p(-d)).sum()

    v_star = value(d_star)
    assert v_star.item() == pytest.approx(2 * dv.js_discrete(p, q).item() - math.log(4), rel=1e-9)
    # brute force: no other discriminator on a grid does better, pointwise
    grid = torch.linspace(0.001, 0.999, 999, dtype=D64)
    pointwise = p[:, None] * grid.log() + q[:, None] * torch.log1p(-grid)  # (12, 999)
    best = grid[pointwise.argmax(1)]
    assert torch.allclose(best, d_star, atol=1e-3)
    assert v_star >= value(d_star.clamp(0.05, 0.95) * 0.9 + 0.05)
    # log D* and log(1 - D*) stay finite where D* rounds to 1
    lp, lq = torch.tensor([0.0, -50.0], dtype=D64), torch.tensor([-50.0, 0.0], dtype=D64)
    assert torch.allclose(dv.optimal_discriminator(lq, lp, log=True), torch.tensor([-50.0, 0.0], dtype=D64), atol=1e-12)
    assert torch.allclose(dv.optimal_discriminator(lp, lq, log=True).exp(), dv.optimal_discriminator(lp, lq))
    # disjoint supports: D* is 1 on the data, 0 on the model
    ones = dv.optimal_discriminator(torch.tensor([0.0, -math.inf]), torch.tensor([-math.inf, 0.0]))
    assert ones.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="both densities are 0"):
        dv.optimal_discriminator(torch.tensor([-math.inf]), torch.tensor([-math.inf]))


def test_f_divergence_gradients_stay_finite_where_densities_underflow():
    # JS between two discretised Gaussians far apart: most of each density underflows to 0 under the other
    x = torch.linspace(-3, 4, 7001, dtype=D64)

    def js(theta, sigma=0.03):
        p0 = Normal(torch.tensor(0.0, dtype=D64), sigma).log_prob(x).exp()
        pt = Normal(theta, sigma).log_prob(x).exp()
        return dv.f_divergence(p0 / p0.sum(), pt / pt.sum(), "js")

    theta = torch.tensor(0.5, dtype=D64, requires_grad=True)
    value = js(theta)
    value.backward()
    assert value.item() == pytest.approx(math.log(2), abs=1e-9)
    assert torch.isfinite(theta.grad) and abs(theta.grad.item()) < 1e-9
    # near the target the gradient is finite and matches a central difference
    theta = torch.tensor(0.04, dtype=D64, requires_grad=True)
    js(theta).backward()
    fd = (js(torch.tensor(0.04 + 1e-6, dtype=D64)) - js(torch.tensor(0.04 - 1e-6, dtype=D64))).item() / 2e-6
    assert theta.grad.item() == pytest.approx(fd, rel=1e-5)
    # the ratio-free forms agree with q f(p/q) where both are positive
    g = torch.Generator().manual_seed(7)
    p, q = _probs(g, 3, 6), _probs(g, 3, 6)
    for name, gen in dv.F_GENERATORS.items():
        assert torch.allclose(gen.perspective(p, q), q * gen.f(p / q)), name
        assert gen.f(torch.tensor(1.0, dtype=D64)).abs() < 1e-12, name
