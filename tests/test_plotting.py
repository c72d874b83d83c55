import numpy as np
import pytest
import torch

from gencourse import plotting, train


def test_image_grid_accepts_both_ranges_and_lays_out_rows():
    x = torch.rand(10, 1, 28, 28)
    ax = plotting.image_grid(x, nrow=5)
    img = ax.get_images()[0].get_array()
    assert img.shape == (2 * 30 + 2, 5 * 30 + 2)
    ax2 = plotting.image_grid(x * 2 - 1, nrow=5)  # [-1, 1] is mapped back to [0, 1]
    assert np.allclose(ax2.get_images()[0].get_array(), img, atol=1e-6)


def test_image_grid_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        plotting.image_grid(torch.rand(28, 28))
    with pytest.raises(ValueError, match="value_range"):
        plotting.image_grid(torch.rand(2, 1, 4, 4), value_range="0-255")


def test_moving_average_matches_a_loop():
    v = np.random.default_rng(0).normal(size=50)
    ma = plotting.moving_average(v, 7)
    brute = [v[max(0, i - 6) : i + 1].mean() for i in range(50)]
    assert np.allclose(ma, brute)


def test_loss_curves_and_2d_plots():
    h = train.History(losses={"a": list(range(100)), "b": [1.0] * 100})
    ax = plotting.loss_curves(h)
    assert len(ax.get_lines()) == 4  # raw + smoothed for each
    with pytest.raises(ValueError, match="no losses named"):
        plotting.loss_curves(h, names=["c"])
    plotting.scatter2d(torch.randn(10, 2))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plotting.scatter2d(torch.randn(10, 3))
    ax = plotting.density2d(lambda x: -0.5 * (x**2).sum(1), lim=2, n=20)
    assert ax.get_images()[0].get_array().shape == (20, 20)


def test_transport_plan_draws_one_line_per_moved_mass():
    x, y = torch.randn(4, 2), torch.randn(3, 2)
    plan = torch.tensor([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0], [0.0, 0.05, 0.2], [0.0, 0.0, 0.25]])
    ax = plotting.transport_plan(x, y, plan)
    segments = ax.collections[0].get_segments()
    assert len(segments) == 5
    assert np.allclose(segments[-1], np.stack([x[2].numpy(), y[1].numpy()]))  # the smallest mass is drawn last
    with pytest.raises(ValueError, match=r"plan must have shape \(n, m\) = \(4, 3\)"):
        plotting.transport_plan(x, y, plan.T)
