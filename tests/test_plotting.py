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


def _frames_of(html: str) -> list[bytes]:
    """The JPEG frames that an embedded animation carries, decoded."""
    import base64
    import re

    blobs = re.findall(r'data:image/jpeg;base64,([^"]+)"', html)  # base64 lines joined by backslash-newline
    return [base64.b64decode(re.sub(r"[^A-Za-z0-9+/=]", "", b)) for b in blobs]


def test_animate_images_embeds_one_frame_each_with_a_player():
    frames = torch.stack([torch.full((4, 1, 8, 8), v) for v in (0.0, 0.5, 1.0)])  # (F, B, C, H, W) in [0, 1]
    player = plotting.animate_images(frames, ["a", "b", "c"], nrow=2)
    html = player.data
    assert player.n_frames == 3 and len(_frames_of(html)) == 3
    assert 'type="range"' in html and "<script" in html and "require(" not in html  # no kernel, no loader
    assert "http://" not in html and "https://" not in html  # nothing fetched from the network
    assert 0 < player.kb < 200
    from io import BytesIO

    from PIL import Image

    means = [np.asarray(Image.open(BytesIO(b)).convert("L")).mean() for b in _frames_of(html)]
    assert means[0] < means[1] < means[2]  # the frames are the three batches, in order
    with pytest.raises(ValueError, match="one entry per frame"):
        plotting.animate_images(frames, ["a"])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        plotting.animate_images(torch.zeros(3, 8, 8))


def test_latent_walk_decodes_each_point_of_the_path():
    seen = []

    def decode(z):
        seen.append(z.clone())
        return torch.sigmoid(z[:, :1, None, None].expand(-1, 1, 8, 8))

    path = torch.stack([torch.linspace(-2, 2, 5), torch.zeros(5)], dim=1)
    player = plotting.latent_walk(decode, torch.randn(50, 2), torch.randint(0, 10, (50,)), path)
    assert player.n_frames == 5 and len(_frames_of(player.data)) == 5
    assert torch.equal(seen[0], path)
    with pytest.raises(ValueError, match=r"path must be a tensor \(F, 2\)"):
        plotting.latent_walk(decode, torch.randn(50, 2), torch.zeros(50), torch.zeros(5, 3))
