"""Public checks for the exercises of chapter 14 (evaluating generative models).

Each check compares the student's function with the library's reference (:mod:`gencourse.metrics`)
on cases chosen so that the classic mistakes give a different answer, and says which case failed.
"""

from __future__ import annotations

import math

from .checks import expect, expect_close, register


def _spd(d, seed, rank=None):
    import torch

    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, rank or d, generator=g, dtype=torch.float64)
    return A @ A.T / (rank or d)


@register("evaluation.frechet_gaussians")
def _frechet_gaussians(frechet_gaussians):
    import torch

    from gencourse import metrics

    z = torch.zeros(2, dtype=torch.float64)
    S = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    expect_close(
        float(frechet_gaussians(z + 1, S, z + 1, S)),
        0.0,
        what="d^2 between a Gaussian and itself",
        atol=1e-8,
        hint="identical Gaussians are at distance 0: tr(S + S - 2 (S^(1/2) S S^(1/2))^(1/2)) = tr(2S - 2S); check the factor 2",
    )
    expect_close(
        float(
            frechet_gaussians(
                z, torch.eye(2, dtype=torch.float64), z + torch.tensor([3.0, 4.0], dtype=torch.float64), torch.eye(2, dtype=torch.float64)
            )
        ),
        25.0,
        what="d^2 between N(0, I) and N((3, 4), I)",
        rtol=1e-6,
        hint="the mean term is the squared Euclidean distance ||mu1 - mu2||^2",
    )
    a, b = torch.tensor([1.0, 4.0], dtype=torch.float64), torch.tensor([9.0, 1.0], dtype=torch.float64)
    expect_close(
        float(frechet_gaussians(z, torch.diag(a), z, torch.diag(b))),
        ((a.sqrt() - b.sqrt()) ** 2).sum().item(),
        what="d^2 between N(0, diag(1, 4)) and N(0, diag(9, 1))",
        rtol=1e-6,
        hint="for diagonal covariances d^2 = sum_i (sqrt(a_i) - sqrt(b_i))^2: check the factor 2 in front of the square-root term",
    )
    g = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.randn(4, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    S1, S2 = _spd(4, 1), _spd(4, 2)
    expect_close(
        float(frechet_gaussians(mu1, S1, mu2, S2)),
        metrics.frechet_distance_gaussians(mu1, S1, mu2, S2),
        what="d^2 for two full (non-commuting) covariances",
        rtol=1e-5,
        hint="the matrix square root of S1^(1/2) S2 S1^(1/2) (a matrix function, not an element-wise sqrt, "
        "and not sqrt(S1) @ sqrt(S2), which is right only when S1 and S2 commute)",
    )
    S3, S4 = _spd(5, 3, rank=2), _spd(5, 4, rank=3)
    value = float(frechet_gaussians(torch.zeros(5, dtype=torch.float64), S3, torch.ones(5, dtype=torch.float64), S4))
    expect(
        math.isfinite(value), "d^2 is NaN or inf for singular (rank-deficient) covariances: clip the eigenvalues that rounding makes negative to 0"
    )
    expect_close(
        value, metrics.frechet_distance_gaussians(torch.zeros(5), S3, torch.ones(5), S4), what="d^2 for singular covariances", rtol=1e-4, atol=1e-6
    )


@register("evaluation.fid_from_features")
def _fid_from_features(fid_from_features):
    import torch

    from gencourse import metrics

    g = torch.Generator().manual_seed(0)
    fa = torch.randn(12, 3, generator=g, dtype=torch.float64)  # N = 12 images, d = 3 features
    fb = 0.5 + 2.0 * torch.randn(9, 3, generator=g, dtype=torch.float64)
    expect_close(
        float(fid_from_features(fa, fb)),
        metrics.frechet_distance(fa, fb),
        what="FID of features (12, 3) and (9, 3)",
        rtol=1e-5,
        hint="rows are images and columns features: mu = f.mean(0) and Sigma = the (d, d) covariance with 1/(N - 1) "
        "(torch.cov(f.T) or numpy.cov(f, rowvar=False)); a transposed matrix gives an (N, N) covariance",
    )
    expect_close(float(fid_from_features(fa, fa)), 0.0, what="FID of a set with itself", atol=1e-8)
    expect_close(float(fid_from_features(fb, fa)), metrics.frechet_distance(fa, fb), what="FID(b, a) (it is symmetric)", rtol=1e-5)


@register("evaluation.kid_unbiased")
def _kid_unbiased(kid_unbiased):
    import torch

    from gencourse import metrics

    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = 0.3 + torch.randn(8, 4, generator=g, dtype=torch.float64)
    expect_close(
        float(kid_unbiased(x, y)),
        metrics.kid(x, y),
        what="KID of x (6, 4) and y (8, 4)",
        rtol=1e-6,
        hint="k(a, b) = (a.b / d + 1)^3 with d the feature dimension; leave out i = j in the two within-set sums and "
        "divide them by m(m - 1) and n(n - 1); the cross term is -2/(mn) times the sum over all pairs",
    )
    same = [float(kid_unbiased(torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g))) for _ in range(400)]
    mean = sum(same) / len(same)
    sd = (sum((v - mean) ** 2 for v in same) / (len(same) - 1)) ** 0.5
    expect(
        abs(mean) < 4 * sd / math.sqrt(len(same)),
        f"on two samples of the same distribution your KID averages {mean:.4f} over 400 draws, significantly above 0: "
        "the estimator is biased (did you keep the diagonal terms k(x_i, x_i)?)",
    )


@register("evaluation.precision_recall")
def _precision_recall(precision_recall_knn):
    import torch

    from gencourse import metrics

    g = torch.Generator().manual_seed(0)
    real = torch.randn(40, 2, generator=g, dtype=torch.float64)
    fake = 0.8 + 0.5 * torch.randn(30, 2, generator=g, dtype=torch.float64)
    for k in (1, 3):
        got = precision_recall_knn(real, fake, k)
        expect(isinstance(got, tuple) and len(got) == 2, f"return a tuple (precision, recall), got {type(got).__name__}")
        ref = metrics.precision_recall(real, fake, k=k)
        expect_close(
            [float(got[0]), float(got[1])],
            list(ref),
            what=f"(precision, recall) with k = {k}",
            rtol=1e-9,
            hint="the radius of a point is the distance to its k-th nearest neighbour in its own set, NOT counting "
            "itself (the smallest distance, 0, is the point itself); precision = fraction of fake points within the radius "
            "of some real point; recall = the same with the roles swapped",
        )


@register("evaluation.bits_per_dim")
def _bits_per_dim(bits_per_dim):
    from gencourse import metrics

    D = 784
    expect_close(
        float(bits_per_dim(D * math.log(256), D, None)),
        8.0,
        what="bits_per_dim(784 ln 256, 784, None)",
        rtol=1e-6,
        hint="divide nats by D ln 2 (bits = nats / ln 2); a discrete likelihood (value_range=None) needs no correction",
    )
    expect_close(
        float(bits_per_dim(0.0, D, "01")),
        8.0,
        what="bits_per_dim(0, 784, '01') (uniform density on [0, 1]^D)",
        rtol=1e-6,
        hint="a continuous density on [0, 1] pixels needs the discretisation correction + D ln 256 nats (bins of width 1/256)",
    )
    expect_close(
        float(bits_per_dim(D * math.log(2), D, "pm1")),
        8.0,
        what="bits_per_dim(784 ln 2, 784, 'pm1') (uniform density on [-1, 1]^D)",
        rtol=1e-6,
        hint="on [-1, 1] the bins have width 2/256 = 1/128: add D ln 128 nats, not D ln 256",
    )
    for nll, vr in ((-1234.5, "01"), (250.0, "pm1"), (900.0, None)):
        expect_close(float(bits_per_dim(nll, 100, vr)), metrics.bits_per_dim(nll, 100, vr), what=f"bits_per_dim({nll}, 100, {vr!r})", rtol=1e-6)


def _fid_mode_dropping_reference(m) -> float:
    """Exact FID between the real mixture (1/2 N(m, I) + 1/2 N(-m, I)) and the model N(m, I)."""
    import torch

    from gencourse import metrics

    m = m.double()
    d = len(m)
    eye = torch.eye(d, dtype=torch.float64)
    return float(metrics.frechet_distance_gaussians(torch.zeros(d, dtype=torch.float64), eye + torch.outer(m, m), m, eye))


@register("evaluation.fid_mode_dropping")
def _fid_mode_dropping(fid_mode_dropping):
    import torch

    zero = fid_mode_dropping(torch.zeros(3, dtype=torch.float64))
    expect(isinstance(zero, float), f"fid_mode_dropping must return a Python float, got {type(zero).__name__}")
    expect_close(zero, 0.0, what="fid_mode_dropping(m = 0) (the two modes coincide)", atol=1e-9)
    m = torch.tensor([1.0, 2.0, -2.0], dtype=torch.float64)  # |m|^2 = 9
    got = float(fid_mode_dropping(m))
    want = _fid_mode_dropping_reference(m)
    r2 = float((m**2).sum())
    wrong = {
        "the real covariance is not I: a mixture of N(m, I) and N(-m, I) has covariance I + m m^T (the spread "
        "between the modes adds to the spread within them)": r2,
        "the mean term is missing: the real features have mean 0 and the model's mean m, ||0 - m||^2 = |m|^2": r2 + 2 - 2 * math.sqrt(1 + r2),
        "the real mean is 0 (the modes are at m and -m), so the mean term is |m|^2, not |2m|^2": 4 * r2 + r2 + 2 - 2 * math.sqrt(1 + r2),
        "the trace of the square root of I + m m^T is (d - 1) + sqrt(1 + |m|^2), not sqrt(d + |m|^2)": r2 + (3 + r2) + 3 - 2 * math.sqrt(3 + r2),
    }
    for hint, value in wrong.items():
        expect(abs(got - value) > 1e-6, f"fid_mode_dropping(m) = {got:.6g} for |m| = 3: {hint}")
    expect_close(
        got,
        want,
        what="fid_mode_dropping(m) for |m| = 3",
        rtol=1e-8,
        hint="FID = ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r^(1/2) S_g S_r^(1/2))^(1/2)) with the mixture's moments",
    )
    other = torch.tensor([0.5, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    expect_close(
        float(fid_mode_dropping(other)),
        _fid_mode_dropping_reference(other),
        what="fid_mode_dropping(m) in d = 5, |m| = 0.5",
        rtol=1e-8,
        hint="the answer depends on m only through |m|, not on d",
    )


@register("evaluation.c2st")
def _c2st(c2st_accuracy):
    import torch

    g = torch.Generator().manual_seed(0)
    far_real = torch.randn(100, 2, generator=g) + torch.tensor([4.0, 0.0])
    far_fake = torch.randn(100, 2, generator=g) - torch.tensor([4.0, 0.0])
    acc = c2st_accuracy(far_real, far_fake, 100, 0)
    expect(isinstance(acc, float), f"c2st_accuracy must return a Python float (use .item()), got {type(acc).__name__}")
    expect(0.0 <= acc <= 1.0, f"an accuracy lies in [0, 1], got {acc}")
    expect(
        acc != 0.0,
        "accuracy 0 on two sets that a line separates: did you split before shuffling (all real points in one half, "
        "all fake points in the other)? Shuffle the points with their labels, then split",
    )
    expect(
        acc > 0.9 or not 0.3 <= acc <= 0.7,
        f"accuracy {acc:.3f} on two sets that a line separates, no better than chance: is the decision 'logit > 0' "
        "(sigmoid(logit) > 1/2)? A sigmoid output is always > 0",
    )
    expect(
        acc > 0.9,
        f"accuracy {acc:.3f} on two well-separated Gaussians (means 8 apart): the classifier did not learn; "
        "check the labels (real 1, fake 0), the loss (binary cross-entropy on logits) and the learning rate",
    )
    again = c2st_accuracy(far_real, far_fake, 100, 0)
    expect(again == acc, f"two calls with the same seed gave {acc} and {again}: draw every random number from the seed")
    # the same distribution, few points: a classifier that is scored on its training points looks far better than chance
    null = [c2st_accuracy(torch.randn(30, 2, generator=g), torch.randn(30, 2, generator=g), 300, s) for s in range(3)]
    mean = sum(null) / 3
    expect(
        mean < 0.75,
        f"on two samples of the SAME distribution (30 points each) your accuracy averages {mean:.3f}: the classifier is "
        "scored on points it was trained on. Measure the accuracy on the held-out half only",
    )
