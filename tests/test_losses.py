"""gencourse.losses, each loss against an independent computation (scipy, torch.distributions, loops).

Sections follow the module: ELBO terms (chapter 04).
"""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from gencourse import losses

# ============================================================================ ELBO terms (ch. 04)


def _bernoulli_loop(x, logits):
    """sum_i x_i log p_i + (1 - x_i) log(1 - p_i), with p = sigmoid(logits), image by image, in float64."""
    x, p = x.double().flatten(1), torch.sigmoid(logits.double()).flatten(1)
    out = []
    for b in range(x.shape[0]):
        out.append(sum(float(xi * math.log(pi) + (1 - xi) * math.log(1 - pi)) for xi, pi in zip(x[b], p[b])))
    return torch.tensor(out, dtype=torch.float64)


def test_bernoulli_log_likelihood_matches_scipy_on_binary_images():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 5, 4, generator=g)
    x = torch.bernoulli(torch.full((3, 1, 5, 4), 0.4), generator=g)
    p = torch.sigmoid(logits).numpy()
    expected = scipy.stats.bernoulli.logpmf(x.numpy(), p).reshape(3, -1).sum(1)  # summed over pixels
    np.testing.assert_allclose(losses.bernoulli_log_likelihood(x, logits).numpy(), expected, rtol=1e-5)


def test_bernoulli_log_likelihood_on_grey_values_is_a_per_image_sum():
    g = torch.Generator().manual_seed(1)
    x, logits = torch.rand(4, 1, 6, 6, generator=g), 3 * torch.randn(4, 1, 6, 6, generator=g)
    got = losses.bernoulli_log_likelihood(x, logits)
    assert got.shape == (4,)
    torch.testing.assert_close(got.double(), _bernoulli_loop(x, logits), rtol=1e-5, atol=1e-5)
    # zero logits: each of the D pixels costs log 2, so a per-pixel mean would give -log 2 instead
    torch.testing.assert_close(losses.bernoulli_log_likelihood(x, torch.zeros_like(x)), torch.full((4,), -36 * math.log(2)))


def test_bernoulli_log_likelihood_is_stable_for_large_logits():
    x = torch.tensor([[1.0, 0.0]])
    got = losses.bernoulli_log_likelihood(x, torch.tensor([[-200.0, 200.0]]))
    assert torch.isfinite(got).all() and abs(got.item() + 400.0) < 1e-3


@pytest.mark.parametrize(
    "x, logits, message",
    [
        (torch.full((2, 3), 2.0), torch.zeros(2, 3), r"x must have values in \[0, 1\]"),
        (torch.full((2, 3), 0.5), torch.zeros(2, 4), "same shape"),
        ([0.5], torch.zeros(1), "x must be a torch.Tensor"),
    ],
)
def test_bernoulli_log_likelihood_checks_inputs(x, logits, message):
    with pytest.raises(ValueError, match=message):
        losses.bernoulli_log_likelihood(x, logits)


def test_gaussian_log_density_matches_scipy():
    g = torch.Generator().manual_seed(2)
    z, mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    expected = [scipy.stats.multivariate_normal(mu[i].numpy(), np.diag(logvar[i].exp().numpy())).logpdf(z[i].numpy()) for i in range(5)]
    np.testing.assert_allclose(losses.gaussian_log_density(z, mu, logvar).numpy(), expected, rtol=1e-5)
    # the standard normal by broadcasting scalars
    std = losses.gaussian_log_density(z, torch.zeros(()), torch.zeros(()))
    np.testing.assert_allclose(std.numpy(), scipy.stats.norm.logpdf(z.numpy()).sum(1), rtol=1e-5)


def test_gaussian_log_density_checks_shapes():
    with pytest.raises(ValueError, match="broadcast to z's shape"):
        losses.gaussian_log_density(torch.zeros(5, 3), torch.zeros(5, 4), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="not enlarge"):
        losses.gaussian_log_density(torch.zeros(3), torch.zeros(5, 3), torch.zeros(5, 3))


def test_kl_term_matches_torch_distributions_and_monte_carlo():
    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(4, 6), torch.ones(4, 6))
    kl = losses.kl_gaussians(mu, logvar)
    torch.testing.assert_close(kl, torch.distributions.kl_divergence(q, p).sum(1))
    z = q.sample((200_000,))  # (n, 4, 6)
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    torch.testing.assert_close(kl, mc, rtol=0.02, atol=0.02)


def test_elbo_is_log_likelihood_minus_beta_kl():
    g = torch.Generator().manual_seed(4)
    x, logits = torch.rand(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    mu, logvar = torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g)
    rec = _bernoulli_loop(x, logits)
    kl = 0.5 * (mu.double() ** 2 + logvar.double().exp() - logvar.double() - 1).sum(1)
    for beta in (0.0, 1.0, 4.0):
        torch.testing.assert_close(losses.elbo(x, logits, mu, logvar, beta=beta).double(), rec - beta * kl, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(losses.vae_loss(x, logits, mu, logvar, beta=2.0).double(), -(rec - 2.0 * kl).mean(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("beta", [-1.0, float("nan"), "1", True])
def test_elbo_rejects_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        losses.elbo(torch.rand(2, 3), torch.zeros(2, 3), torch.zeros(2, 1), torch.zeros(2, 1), beta=beta)


def test_elbo_checks_latent_shapes():
    with pytest.raises(ValueError, match=r"mu must have shape \(B, D\) with B = 2"):
        losses.elbo(torch.rand(2, 3), torch.zeros(2, 3), torch.zeros(3, 1), torch.zeros(3, 1))


def test_iwae_bound_is_log_mean_exp():
    g = torch.Generator().manual_seed(5)
    log_w = 50 * torch.randn(7, 3, generator=g, dtype=torch.float64) - 300  # exp underflows without logsumexp
    expected = [np.logaddexp.reduce(log_w[:, b].numpy()) - math.log(7) for b in range(3)]
    np.testing.assert_allclose(losses.iwae_bound(log_w).numpy(), expected, rtol=1e-12)
    torch.testing.assert_close(losses.iwae_bound(log_w[:1]), log_w[0])  # K = 1: the ELBO
    assert (losses.iwae_bound(log_w) >= log_w.mean(0)).all()  # Jensen: log-mean-exp >= mean
    with pytest.raises(ValueError, match=r"log_w must have shape \(K, B\)"):
        losses.iwae_bound(torch.zeros(3))
