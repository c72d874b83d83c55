"""gencourse.metrics against independent computations: numpy/scipy/POT/scikit-learn and brute-force loops.

These tests do not need the trained feature network (see test_metrics_sanity.py for those that do).
"""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import torch

from gencourse import config, transport
from gencourse import metrics as M


def _spd(d, seed, rank=None):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, rank or d, generator=g, dtype=torch.float64)
    return A @ A.T / (rank or d)


# ------------------------------------------------------------------------------------ input checks


def test_check_images_maps_ranges_and_says_what_is_wrong():
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(M.check_images(x, "01"), x)
    assert torch.allclose(M.check_images(2 * x - 1, "pm1"), x, atol=1e-6)
    with pytest.raises(ValueError, match=r"value_range must be '01'"):
        M.check_images(x, "auto")
    with pytest.raises(ValueError, match=r"samples must have shape \(B, 1, 28, 28\).*\(3, 784\)"):
        M.check_images(x.flatten(1), "01", name="samples")
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*look like \[-1, 1\].*value_range='pm1'"):
        M.check_images(2 * x - 1, "01")
    with pytest.raises(ValueError, match=r"values in \[-1, 1\].*clamp=True"):
        M.check_images(1.5 * x, "pm1")
    assert M.check_images(torch.full((1, 1, 28, 28), 1.2), "pm1", clamp=True).max() == 1.0
    with pytest.raises(ValueError, match="floating-point"):
        M.check_images(torch.zeros(1, 1, 28, 28, dtype=torch.uint8), "01")
    with pytest.raises(ValueError, match="NaN"):
        M.check_images(torch.full((1, 1, 28, 28), float("nan")), "01")


def test_check_features_and_transposed_inputs():
    f = torch.randn(50, 8)
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        M.check_features(torch.randn(50))
    with pytest.raises(ValueError, match="transposed"):
        M.frechet_distance(f, f.T)
    with pytest.raises(ValueError, match="transposed"):
        M.kid(f, f[:, :4])


# ------------------------------------------------------------------------------------ Fréchet distance


def test_gaussian_stats_match_numpy():
    f = torch.randn(40, 6, generator=torch.Generator().manual_seed(0))
    mu, sigma = M.gaussian_stats(f)
    assert np.allclose(mu.numpy(), f.numpy().mean(0)) and np.allclose(sigma.numpy(), np.cov(f.numpy(), rowvar=False))


@pytest.mark.parametrize("rank", [None, 3])
def test_sqrtm_psd_matches_scipy_and_squares_back(rank):
    A = _spd(7, 1, rank)
    root = M.sqrtm_psd(A)
    assert torch.allclose(root @ root, A, atol=1e-10)
    assert torch.allclose(root, root.T)
    if rank is None:  # scipy's Schur-based sqrtm is accurate for a well-conditioned matrix
        assert np.allclose(root.numpy(), np.real(scipy.linalg.sqrtm(A.numpy())), atol=1e-8)
    assert torch.linalg.eigvalsh(root).min() > -1e-12


def test_sqrtm_psd_handles_rounding_negative_eigenvalues():
    A = _spd(6, 2, rank=2)
    A = A - 1e-12 * torch.eye(6, dtype=torch.float64)  # two tiny negative eigenvalues, slightly asymmetric
    A[0, 1] += 1e-13
    root = M.sqrtm_psd(A)
    assert torch.isfinite(root).all()


def test_frechet_gaussians_closed_form_for_diagonal_covariances():
    # commuting covariances: W2^2 = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    a, b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()
    assert math.isclose(M.frechet_distance_gaussians(mu1, torch.diag(a), mu2, torch.diag(b)), expected.item(), rel_tol=1e-10)


def test_frechet_gaussians_one_dimension_matches_sorted_samples():
    # in 1-D, W2(N(m1, s1^2), N(m2, s2^2))^2 = (m1 - m2)^2 + (s1 - s2)^2; check against sorted-sample W2
    g = torch.Generator().manual_seed(0)
    x = 0.5 + 2.0 * torch.randn(400_000, generator=g, dtype=torch.float64)
    y = -1.0 + 0.5 * torch.randn(400_000, generator=g, dtype=torch.float64)
    closed = M.frechet_distance_gaussians(torch.tensor([0.5]), torch.tensor([[4.0]]), torch.tensor([-1.0]), torch.tensor([[0.25]]))
    assert math.isclose(closed, 1.5**2 + 1.5**2, rel_tol=1e-12)
    assert math.isclose(transport.wasserstein_1d(x, y, p=2).item() ** 2, closed, rel_tol=0.01)


def test_frechet_gaussians_matches_scipy_formula_and_pot():
    ot = pytest.importorskip("ot")
    g = torch.Generator().manual_seed(3)
    mu1, mu2 = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    S1, S2 = _spd(5, 4), _spd(5, 5)
    ours = M.frechet_distance_gaussians(mu1, S1, mu2, S2)
    covmean = np.real(scipy.linalg.sqrtm(S1.numpy() @ S2.numpy()))  # the reference FID code's formula
    ref = ((mu1 - mu2) ** 2).sum().item() + np.trace(S1.numpy() + S2.numpy() - 2 * covmean)
    assert math.isclose(ours, ref, rel_tol=1e-8)
    pot = ot.gaussian.bures_wasserstein_distance(mu1.numpy(), mu2.numpy(), S1.numpy(), S2.numpy())
    assert math.isclose(ours, float(pot) ** 2, rel_tol=1e-6)


def test_frechet_distance_is_symmetric_zero_on_identical_and_rotation_invariant():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 10, generator=g), 0.5 + 1.5 * torch.randn(200, 10, generator=g)
    assert math.isclose(M.frechet_distance(a, b), M.frechet_distance(b, a), rel_tol=1e-9)
    assert M.frechet_distance(a, a) < 1e-9
    Q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g))
    assert math.isclose(M.frechet_distance(a @ Q, b @ Q), M.frechet_distance(a, b), rel_tol=1e-6)


def test_frechet_distance_with_fewer_samples_than_dimensions_is_finite():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(20, 64, generator=g), torch.randn(30, 64, generator=g)
    value = M.frechet_distance(a, b)
    assert math.isfinite(value) and value > 0


def test_fid_bias_falls_with_n_and_fid_infinity_extrapolates():
    # two Gaussians with a known FID; FID_N is biased upwards by about c/N
    g = torch.Generator().manual_seed(0)
    d = 8
    ref = torch.randn(20_000, d, generator=g, dtype=torch.float64)
    pool = 0.3 + torch.randn(20_000, d, generator=g, dtype=torch.float64) * 1.2
    true = d * 0.3**2 + d * (1.2 - 1.0) ** 2
    ns, mean, _ = M.fid_vs_n(pool, ref, [20, 50, 200, 1000], repeats=8, generator=g)
    assert mean[0] > mean[1] > mean[3] and mean[0] > 2 * true  # the bias at N = 20 is larger than the FID
    fid_inf, slope = M.fid_infinity(ns, mean)
    assert slope > 0 and abs(fid_inf - true) < 0.2 * true  # the extrapolation removes most of it
    exact_inf, exact_slope = M.fid_infinity([10, 20, 40], [2 + 30 / 10, 2 + 30 / 20, 2 + 30 / 40])
    assert math.isclose(exact_inf, 2.0, rel_tol=1e-9) and math.isclose(exact_slope, 30.0, rel_tol=1e-9)


# ------------------------------------------------------------------------------------ KID


def _mmd2_loop(x, y):
    k = lambda a, b: (float(np.dot(a, b)) / len(a) + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_polynomial_kernel_matches_scikit_learn():
    pairwise = pytest.importorskip("sklearn.metrics.pairwise")
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, generator=g), torch.randn(4, 7, generator=g)
    ref = pairwise.polynomial_kernel(a.double().numpy(), b.double().numpy(), degree=3, gamma=1 / 7, coef0=1)
    assert np.allclose(M.polynomial_kernel(a, b).numpy(), ref)


def test_kid_matches_brute_force_double_loop():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 5, generator=g), 0.4 + torch.randn(9, 5, generator=g)
    assert math.isclose(M.kid(x, y), _mmd2_loop(x.double().numpy(), y.double().numpy()), rel_tol=1e-10)
    assert math.isclose(M.mmd2_unbiased(x, y), M.mmd2_unbiased(y, x), rel_tol=1e-10)


def test_kid_block_sums_match_small_chunks():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, 4, generator=g), torch.randn(30, 4, generator=g)
    full = M.fid._kernel_sums(x.double(), y.double(), M.polynomial_kernel, chunk=4096)
    assert math.isclose(M.fid._kernel_sums(x.double(), y.double(), M.polynomial_kernel, chunk=7), full, rel_tol=1e-12)


def test_kid_is_unbiased_and_the_v_statistic_is_not():
    # same distribution: E[KID] = 0 for any sample size; the biased estimator (with the diagonal) is > 0
    g = torch.Generator().manual_seed(2)
    vals, biased = [], []
    for _ in range(300):
        x, y = torch.randn(10, 3, generator=g), torch.randn(15, 3, generator=g)
        vals.append(M.kid(x, y))
        kxx = M.polynomial_kernel(x, x).mean().item()
        kyy = M.polynomial_kernel(y, y).mean().item()
        biased.append(kxx + kyy - 2 * M.polynomial_kernel(x, y).mean().item())
    se = np.std(vals) / math.sqrt(len(vals))
    assert abs(np.mean(vals)) < 3 * se
    assert np.mean(biased) > 10 * np.std(biased) / math.sqrt(len(biased))


# ------------------------------------------------------------------------------------ precision and recall


def _pr_loop(real, fake, k):
    def radii(s):
        out = []
        for i in range(len(s)):
            d = sorted(float(np.linalg.norm(s[i] - s[j])) for j in range(len(s)) if j != i)
            out.append(d[k - 1])
        return out

    def cover(q, s, r):
        return np.mean([any(np.linalg.norm(qi - s[j]) <= r[j] for j in range(len(s))) for qi in q])

    return cover(fake, real, radii(real)), cover(real, fake, radii(fake))


@pytest.mark.parametrize("k", [1, 3])
def test_precision_recall_match_brute_force(k):
    g = torch.Generator().manual_seed(k)
    real, fake = torch.randn(40, 3, generator=g), 0.7 + 0.6 * torch.randn(35, 3, generator=g)
    ours = M.precision_recall(real, fake, k=k)
    ref = _pr_loop(real.double().numpy(), fake.double().numpy(), k)
    assert np.allclose(ours, ref)
    assert ours[0] != ours[1]  # not symmetric: precision and recall are different questions


def test_knn_radii_exclude_the_point_itself_and_count_duplicates():
    f = torch.tensor([[0.0], [1.0], [3.0], [3.0]])
    assert torch.allclose(M.knn_radii(f, k=1), torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    assert torch.allclose(M.knn_radii(f, k=2), torch.tensor([3.0, 2.0, 2.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="k must be"):
        M.knn_radii(f, k=4)


def test_precision_recall_collapse_keeps_precision_but_loses_recall():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 2, generator=g)
    collapsed = real[:5].repeat(60, 1) + 0.01 * torch.randn(300, 2, generator=g)
    precision, recall = M.precision_recall(real, collapsed)
    assert precision > 0.9 and recall < 0.2


# ------------------------------------------------------------------------------------ classifier scores


def test_class_coverage_entropy_and_kl():
    uniform = torch.eye(10).repeat(5, 1) * 10  # 50 confident predictions, 5 per class
    out = M.class_coverage(uniform)
    assert math.isclose(out["class_entropy"], math.log(10), rel_tol=1e-12) and abs(out["class_kl_uniform"]) < 1e-12
    one = M.class_coverage(torch.eye(10)[[3] * 20] * 5)
    assert one["class_entropy"] == 0.0 and math.isclose(one["class_kl_uniform"], math.log(10))
    two = M.class_coverage(torch.eye(10)[[1, 2, 2, 2]] * 5)
    assert math.isclose(two["class_entropy"], -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert two["class_histogram"][2] == 0.75


def test_inception_score_matches_loop_and_bounds():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(30, 10, generator=g)
    p = logits.double().softmax(1).numpy()
    marginal = p.mean(0)
    ref = math.exp(np.mean([sum(pi[c] * math.log(pi[c] / marginal[c]) for c in range(10)) for pi in p]))
    assert math.isclose(M.inception_score(logits), ref, rel_tol=1e-9)
    assert math.isclose(M.inception_score(torch.eye(10).repeat(3, 1) * 50), 10.0, rel_tol=1e-6)
    assert math.isclose(M.inception_score(torch.ones(8, 10)), 1.0, rel_tol=1e-9)


def test_conditional_accuracy():
    logits = torch.eye(10)[[0, 1, 2, 3]]
    assert M.conditional_accuracy(logits, torch.tensor([0, 1, 5, 3])) == 0.75
    with pytest.raises(ValueError, match="labels"):
        M.conditional_accuracy(logits, torch.tensor([0.0, 1.0, 2.0, 3.0]))


# ------------------------------------------------------------------------------------ memorisation


def test_nearest_distances_and_nn_train_ratio():
    g = torch.Generator().manual_seed(0)
    train, test = torch.rand(30, 1, 28, 28, generator=g), torch.rand(10, 1, 28, 28, generator=g)
    q = torch.rand(5, 1, 28, 28, generator=g)
    ref = [min(float((qi - t).norm()) for t in train) for qi in q]
    assert np.allclose(M.nearest_distances(q, train).numpy(), ref)
    assert M.nn_train_ratio(train[:10], train, test) < 1e-6  # copies
    assert 0.7 < M.nn_train_ratio(torch.rand(20, 1, 28, 28, generator=g), train, test) < 1.3  # new draws


# ------------------------------------------------------------------------------------ corruptions


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.5, 2.0])
def test_blur_matches_scipy(sigma):
    x = torch.zeros(2, 1, 28, 28, dtype=torch.float64)
    x[:, :, 8:20, 10:16] = torch.rand(2, 1, 12, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = np.stack([scipy.ndimage.gaussian_filter(xi[0].numpy(), sigma, mode="constant", truncate=4.0) for xi in x])
    assert np.allclose(M.blur(x, sigma)[:, 0].numpy(), ref, atol=1e-12)
    assert torch.equal(M.blur(x, 0.0), x)


def test_add_noise_is_clipped_and_reproducible():
    x = torch.full((2, 1, 28, 28), 0.5)
    y = M.add_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, M.add_noise(x, 0.1, generator=torch.Generator().manual_seed(0)))
    assert abs((y - 0.5).std().item() - 0.1) < 0.01
    assert M.add_noise(x, 10.0, generator=torch.Generator().manual_seed(0)).abs().max() <= 1.0


# ------------------------------------------------------------------------------------ bits per dimension


def test_dequantize_stays_in_the_bin_of_each_byte():
    b = torch.randint(0, 256, (4, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    x = M.dequantize(b.float() / 255, generator=torch.Generator().manual_seed(1))
    assert torch.equal((x * 256).floor().long(), b)


def test_bits_per_dim_of_uniform_densities_is_8_bits():
    D = 784
    # uniform density on [0, 1]^D: continuous NLL 0; on [-1, 1]^D: NLL D log 2. Both are 8 bits per pixel.
    assert math.isclose(M.bits_per_dim(0.0, D, value_range="01"), 8.0)
    assert math.isclose(M.bits_per_dim(D * math.log(2), D, value_range="pm1"), 8.0)
    # a discrete likelihood: no correction, and the base is 2 (ln -> log2)
    assert math.isclose(M.bits_per_dim(D * math.log(256), D), 8.0)
    assert math.isclose(M.bits_per_dim(100.0, 10), 100 / (10 * math.log(2)))
    nll = torch.tensor([-1500.0, 80.0])
    for vr in ("01", "pm1", None):
        assert torch.allclose(M.nats_from_bits_per_dim(M.bits_per_dim(nll, D, vr), D, vr), nll)
    assert math.isclose(M.discretisation_correction(3, "pm1"), 3 * math.log(128))
    with pytest.raises(ValueError, match="value_range"):
        M.bits_per_dim(1.0, 4, value_range="0-1")


# ------------------------------------------------------------------------------------ the feature network and its cache


TINY = {**M.FEATURE_NET_SETTINGS, "epochs": 1, "batch_size": 256}


def test_feature_net_trains_deterministically_caches_and_never_loads_a_stale_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setattr(M.features, "_NETS", {})
    a = M.feature_net(settings=TINY, verbose=False)
    assert M.feature_net_path(TINY).exists() and a.info["steps"] == 15 and 0 <= a.info["accuracy"] <= 1
    b = M.train_feature_net(TINY, verbose=False)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    M.features._NETS.clear()

    def fail(*args, **kwargs):
        raise AssertionError("trained again although the cache file exists")

    monkeypatch.setattr(M.features, "_fit_feature_net", fail)
    c = M.feature_net(settings=TINY, verbose=False)  # loaded from the file
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))
    changed = {**TINY, "lr": 1e-3}
    assert M.feature_net_path(changed) != M.feature_net_path(TINY)
    with pytest.raises(AssertionError, match="trained again"):
        M.feature_net(settings=changed, verbose=False)


def test_embed_shapes_and_random_net():
    net = M.random_feature_net(0)
    f, logits = M.embed(torch.rand(5, 1, 28, 28) * 2 - 1, value_range="pm1", net=net)
    assert f.shape == (5, 128) and logits.shape == (5, 10) and (f >= 0).all()
    assert torch.allclose(net.head(f), logits, atol=1e-6)
    assert net.info["key"] is None  # a random network's reference features are never cached


def test_evaluate_checks_its_arguments_before_any_work():
    with pytest.raises(TypeError):
        M.evaluate(torch.rand(300, 1, 28, 28))  # value_range is required
    with pytest.raises(ValueError, match="at least n = 200"):
        M.evaluate(torch.rand(50, 1, 28, 28), value_range="01")
    with pytest.raises(ValueError, match="labels"):
        M.evaluate(torch.rand(200, 1, 28, 28), value_range="01", labels=torch.zeros(10, dtype=torch.long))
    assert M.n_samples("smoke") == 200 and M.n_samples("cpu") == 2000 and M.n_samples("gpu") == 10_000


def test_metrics_run_on_one_thread_and_restore_the_thread_count_even_on_error():
    seen = []
    coverage = M.neighbours.manifold_coverage

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        if kwargs.pop("fail", False):
            raise RuntimeError("boom")
        return coverage(*args, **kwargs)

    wrapped = config.threads(1)(spy)
    f = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    with config.threads(3):  # a count other than 1, whatever OMP_NUM_THREADS says
        wrapped(f, f, M.knn_radii(f, 2))
        with pytest.raises(RuntimeError):
            wrapped(f, f, M.knn_radii(f, 2), fail=True)
        assert torch.get_num_threads() == 3
    assert seen == [1, 1]

