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
