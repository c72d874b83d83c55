"""The public checks of chapter 14 accept the right answers and reject the classic mistakes."""

import math

import pytest
import torch

from gencourse import metrics
from gencourse.grading import check


def _root(S):
    lam, U = torch.linalg.eigh((S + S.T) / 2)
    return (U * lam.clamp(min=0).sqrt()) @ U.T


def right_frechet(mu1, S1, mu2, S2):
    return metrics.frechet_distance_gaussians(mu1, S1, mu2, S2)


def right_kid(x, y):
    return metrics.kid(x, y)


def test_right_answers_pass(capsys):
    assert check("evaluation.frechet_gaussians", right_frechet)
    assert check("evaluation.fid_from_features", metrics.frechet_distance)
    assert check("evaluation.kid_unbiased", right_kid)
    assert check("evaluation.precision_recall", lambda r, f, k: metrics.precision_recall(r, f, k=k))
    assert check("evaluation.bits_per_dim", metrics.bits_per_dim)
    assert capsys.readouterr().out.count("✔") == 5


def _v_statistic(x, y):  # biased: keeps the diagonal terms
    k = lambda a, b: (a.double() @ b.double().T / a.shape[1] + 1) ** 3  # noqa: E731
    return (k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()).item()


def _kid_no_d(x, y):  # kernel without the 1/d scaling
    k = lambda a, b: (a.double() @ b.double().T + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - kxx.trace()) / (m * (m - 1)) + (kyy.sum() - kyy.trace()) / (n * (n - 1)) - 2 * k(x, y).mean()).item()


def _pr_with_self(real, fake, k):  # the radius counts the point itself as a neighbour
    def radii(s):
        return torch.cdist(s, s).sort(dim=1).values[:, k - 1]

    def inside(q, s):
        return (torch.cdist(q, s) <= radii(s)).any(dim=1).double().mean().item()

    return inside(fake, real), inside(real, fake)


@pytest.mark.parametrize(
    "qid, wrong, message",
    [
        # element-wise square root of the product
        ("evaluation.frechet_gaussians", lambda m1, S1, m2, S2: ((m1 - m2) ** 2).sum().item() + (S1 + S2 - 2 * (S1 * S2).clamp(min=0).sqrt()).trace().item(), "non-commuting"),
        # sqrt(S1) @ sqrt(S2): right only for commuting covariances
        ("evaluation.frechet_gaussians", lambda m1, S1, m2, S2: ((m1 - m2) ** 2).sum().item() + (S1 + S2 - 2 * _root(S1) @ _root(S2)).trace().item(), "non-commuting"),
        # forgets the factor 2
        ("evaluation.frechet_gaussians", lambda m1, S1, m2, S2: ((m1 - m2) ** 2).sum().item() + (S1 + S2 - _root(_root(S1) @ S2 @ _root(S1))).trace().item(), "factor 2"),
        # distance instead of squared distance of the means
        ("evaluation.frechet_gaussians", lambda m1, S1, m2, S2: (m1 - m2).norm().item() + (S1 + S2 - 2 * _root(_root(S1) @ S2 @ _root(S1))).trace().item(), "squared Euclidean"),
        # transposed feature matrices: (N, N) covariances
        ("evaluation.fid_from_features", lambda a, b: metrics.frechet_distance(a.T, b.T[:, : a.shape[0]]) if a.shape[0] <= b.shape[0] else 0.0, "transposed"),
        # biased (1/N) covariance
        ("evaluation.fid_from_features", lambda a, b: metrics.frechet_distance_gaussians(a.mean(0), torch.cov(a.T, correction=0), b.mean(0), torch.cov(b.T, correction=0)), "1/\\(N - 1\\)"),
        ("evaluation.kid_unbiased", _v_statistic, "leave out i = j"),
        ("evaluation.kid_unbiased", _kid_no_d, "d the feature dimension"),
        ("evaluation.precision_recall", _pr_with_self, "NOT counting"),
        ("evaluation.precision_recall", lambda r, f, k: metrics.precision_recall(f, r, k=k), "roles swapped"),  # swapped sets
        ("evaluation.bits_per_dim", lambda nll, D, vr: nll / D, "ln 2"),  # nats per dim, no correction
        ("evaluation.bits_per_dim", lambda nll, D, vr: (nll + (D * math.log(256) if vr else 0)) / (D * math.log(2)), "1/128"),  # 256 for pm1
        ("evaluation.bits_per_dim", lambda nll, D, vr: nll / (D * math.log(2)), "correction"),  # forgets the correction
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, wrong)


def right_fid_mode_dropping(m):
    r2 = float((m**2).sum())
    return 2 * r2 + 2 - 2 * math.sqrt(1 + r2)


def test_fid_mode_dropping_accepts_the_right_answers(capsys):
    assert check("evaluation.fid_mode_dropping", right_fid_mode_dropping)

    def by_moments(m):  # the route a student may take: the mixture's moments and the library's distance
        eye = torch.eye(len(m), dtype=torch.float64)
        return float(metrics.frechet_distance_gaussians(torch.zeros(len(m), dtype=torch.float64), eye + torch.outer(m, m), m, eye))

    assert check("evaluation.fid_mode_dropping", by_moments)
    assert capsys.readouterr().out.count("✔") == 2


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda m: float((m**2).sum()), "covariance I \\+ m m\\^T"),
        (lambda m: right_fid_mode_dropping(m) - float((m**2).sum()), "mean term is missing"),
        (lambda m: right_fid_mode_dropping(m) + 3 * float((m**2).sum()), "not \\|2m\\|\\^2"),
        (lambda m: torch.tensor(right_fid_mode_dropping(m)), "Python float"),
        (lambda m: right_fid_mode_dropping(m) * 1.01, "for \\|m\\| = 3"),
    ],
)
def test_fid_mode_dropping_rejects_the_classic_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("evaluation.fid_mode_dropping", wrong)


def make_c2st(shuffle=True, held_out=True, decision="logit"):
    import torch.nn.functional as F
    from torch import nn

    def c2st_accuracy(x_real, x_fake, steps, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.cat([x_real, x_fake]).float()
        y = torch.cat([torch.ones(len(x_real)), torch.zeros(len(x_fake))])
        perm = torch.randperm(len(x), generator=g) if shuffle else torch.arange(len(x))
        x, y = x[perm], y[perm]
        n = len(x) // 2
        x_train, y_train = x[:n], y[:n]
        x_test, y_test = (x[n:], y[n:]) if held_out else (x_train, y_train)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1), nn.Flatten(0))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(steps):
            loss = F.binary_cross_entropy_with_logits(net(x_train), y_train)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            out = net(x_test)
            pred = out > 0 if decision == "logit" else torch.sigmoid(out) > 0
            return (pred.float() == y_test).float().mean().item()

    return c2st_accuracy


def test_c2st_accepts_the_right_answer(capsys):
    assert check("evaluation.c2st", make_c2st())
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (make_c2st(shuffle=False), "split before shuffling"),
        (make_c2st(held_out=False), "held-out half only"),
        (make_c2st(decision="sigmoid"), "always > 0"),
        (lambda *args: torch.tensor(make_c2st()(*args)), "Python float"),
    ],
)
def test_c2st_rejects_the_classic_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("evaluation.c2st", wrong)
