import numpy as np
import ot
import pytest
import scipy.stats
import torch

from gencourse import density, transport


def test_gaussian_mle_is_the_biased_sample_covariance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=g, dtype=torch.float64) @ torch.tensor([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 2]], dtype=torch.float64)
    mu, sigma = density.gaussian_mle(x)
    assert np.allclose(mu.numpy(), x.numpy().mean(0))
    assert np.allclose(sigma.numpy(), np.cov(x.numpy().T, bias=True))


def test_gmm_log_prob_matches_scipy():
    g = torch.Generator().manual_seed(0)
    model = density.GaussianMixtureModel(K=3, D=2, generator=g).double()
    with torch.no_grad():
        model.logits.copy_(torch.tensor([0.0, 1.0, -0.5]))
        model.log_stds.copy_(torch.tensor([[0.1, -0.2], [0.3, 0.0], [-0.5, 0.2]]))
    x = torch.randn(50, 2, generator=g, dtype=torch.float64)
    w = torch.softmax(model.logits, 0).detach().numpy()
    ref = sum(
        w[k] * scipy.stats.multivariate_normal(model.means[k].detach().numpy(), np.diag(model.log_stds[k].detach().exp().numpy() ** 2)).pdf(x.numpy())
        for k in range(3)
    )
    assert np.allclose(model.log_prob(x).detach().numpy(), np.log(ref))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        model.log_prob(torch.zeros(4, 3, dtype=torch.float64))


def test_gmm_samples_follow_its_density():
    g = torch.Generator().manual_seed(3)
    model = density.GaussianMixtureModel(K=2, D=1, init_std=3.0, generator=g)
    x = model.sample(50_000, generator=g)
    grid = torch.linspace(-10, 10, 4001)[:, None]
    cdf = torch.cumsum(model.log_prob(grid).exp().detach(), 0) * (20 / 4000)
    emp = (x[:, 0][None, :] <= grid).float().mean(1)
    assert (cdf - emp).abs().max() < 0.02


@pytest.mark.parametrize("p", [1, 2, 3])
def test_wasserstein_1d_matches_pot_and_scipy(p):
    rng = np.random.default_rng(p)
    x, y = rng.normal(size=300), rng.gamma(2.0, size=300)
    ours = transport.wasserstein_1d(torch.from_numpy(x), torch.from_numpy(y), p=p).item()
    assert ours == pytest.approx(ot.wasserstein_1d(x, y, p=p) ** (1 / p), rel=1e-9)
    if p == 1:
        assert ours == pytest.approx(scipy.stats.wasserstein_distance(x, y), rel=1e-9)


def test_wasserstein_1d_is_differentiable_and_checks_shapes():
    x = torch.tensor([0.0, 1.0, 2.0], requires_grad=True)
    transport.wasserstein_1d(x, torch.tensor([1.0, 2.0, 3.0]), p=2).backward()
    assert torch.allclose(x.grad, torch.full((3,), -1 / 3) / 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="same length"):
        transport.wasserstein_1d(torch.zeros(3), torch.zeros(4))


def test_kmeanspp_init_picks_distinct_modes():
    from gencourse import data

    g = torch.Generator().manual_seed(0)
    ring = data.toy("ring", std=0.05)
    x = ring.sample(4000, generator=g)
    model = density.GaussianMixtureModel(K=8).init_from_data(x, generator=g)
    # every true mode gets exactly one starting mean
    nearest = torch.cdist(model.means.detach(), ring.means).argmin(1)
    assert sorted(nearest.tolist()) == list(range(8))
    with pytest.raises(ValueError, match="at least K=8"):
        density.GaussianMixtureModel(K=8).init_from_data(x[:3])
