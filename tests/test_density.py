"""Kernel density estimation in gencourse.density against scipy and brute-force loops."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from gencourse import density

D64 = torch.float64


def test_kde_log_prob_matches_scipy_in_1d():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(300, 1, generator=g, dtype=D64) * 1.7 + 0.4
    x = torch.linspace(-6, 6, 101, dtype=D64)[:, None]
    h = 0.35
    # scipy scales its kernel by the data's standard deviation (ddof=1): factor = h / std
    kde = scipy.stats.gaussian_kde(data[:, 0].numpy(), bw_method=h / data[:, 0].numpy().std(ddof=1))
    ours = density.kde_log_prob(x, data, h)
    assert np.allclose(ours.numpy(), kde.logpdf(x[:, 0].numpy()), rtol=1e-9)


def test_kde_log_prob_matches_a_loop_in_3d_and_chunks_agree():
    g = torch.Generator().manual_seed(1)
    data, x, h = torch.randn(40, 3, generator=g, dtype=D64), torch.randn(7, 3, generator=g, dtype=D64), 0.6
    ref = []
    for xm in x:
        dens = sum(scipy.stats.multivariate_normal(xi.numpy(), h**2 * np.eye(3)).pdf(xm.numpy()) for xi in data) / len(data)
        ref.append(math.log(dens))
    assert np.allclose(density.kde_log_prob(x, data, h).numpy(), ref, rtol=1e-9)
    assert torch.allclose(density.kde_log_prob(x, data, h, chunk=3), density.kde_log_prob(x, data, h))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3\)"):
        density.kde_log_prob(torch.zeros(4, 2, dtype=D64), data, h)
    with pytest.raises(ValueError, match="bandwidth must be a positive number"):
        density.kde_log_prob(x, data, 0.0)


def test_kde_integrates_to_one():
    g = torch.Generator().manual_seed(2)
    data = torch.randn(50, 2, generator=g, dtype=D64)
    grid = torch.linspace(-6, 6, 241, dtype=D64)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    mass = density.kde_log_prob(pts, data, 0.3).exp().sum() * (grid[1] - grid[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=1e-4)


def test_leave_one_out_likelihood_matches_a_loop():
    g = torch.Generator().manual_seed(3)
    data, h = torch.randn(30, 2, generator=g, dtype=D64), 0.5
    loop = np.mean([density.kde_log_prob(data[i : i + 1], torch.cat([data[:i], data[i + 1 :]]), h).item() for i in range(30)])
    assert density.kde_loo_log_likelihood(data, h).item() == pytest.approx(loop, rel=1e-10)
    assert density.kde_loo_log_likelihood(data, h, chunk=7).item() == pytest.approx(loop, rel=1e-10)
    # with x_i kept in its own estimate the score would grow as h -> 0; left out it collapses
    assert density.kde_loo_log_likelihood(data, 1e-3) < density.kde_loo_log_likelihood(data, h)


def test_rule_of_thumb_and_cross_validation():
    g = torch.Generator().manual_seed(4)
    data = 2.0 * torch.randn(1000, 1, generator=g, dtype=D64)
    # Silverman in 1-D: (4/3)^(1/5) sigma n^(-1/5) = 1.06 sigma n^(-1/5)
    assert density.bandwidth_rule_of_thumb(data) == pytest.approx((4 / 3) ** 0.2 * data.std().item() * 1000**-0.2)
    data2 = torch.randn(500, 2, generator=g, dtype=D64)
    assert density.bandwidth_rule_of_thumb(data2) == pytest.approx(500 ** (-1 / 6) * data2.std(0).mean().item())
    hs = [0.05, 0.2, 0.5, 1.0, 3.0]
    best, scores = density.select_bandwidth(data, hs)
    assert scores.shape == (5,) and best == hs[int(scores.argmax())]
    assert best in (0.5, 1.0)  # the rule of thumb gives 0.5 here; tiny and huge bandwidths lose
    with pytest.raises(ValueError, match="at least one candidate"):
        density.select_bandwidth(data, [])
