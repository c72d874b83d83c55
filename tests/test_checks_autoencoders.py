"""The public checks of chapter 03 accept the right answers and reject the classic mistakes."""

import pytest
import torch
import torch.nn.functional as F

from gencourse.grading import check
from gencourse.models import autoencoder as ae


def right_loss(x, logits):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


def right_pca(X, k):
    mean = X.mean(0)
    _, _, Vt = torch.linalg.svd(X - mean, full_matrices=False)
    return mean, Vt[:k].T


def test_right_answers_pass(capsys):
    assert check("autoencoders.reconstruction_loss", right_loss)
    assert check("autoencoders.interpolate", ae.interpolate)
    assert check("autoencoders.pca_directions", right_pca)
    # any orthonormal basis of the leading subspace is right, e.g. from eigh (largest last)
    def by_eigh(X, k):
        mean = X.mean(0)
        _, vecs = torch.linalg.eigh((X - mean).T @ (X - mean))
        return mean, vecs[:, -k:].flip(1) @ torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=X.dtype)
    assert check("autoencoders.pca_directions", by_eigh)
    assert capsys.readouterr().out.count("✔") == 4


def _eigh_smallest(X, k):
    mean = X.mean(0)
    _, vecs = torch.linalg.eigh((X - mean).T @ (X - mean))
    return mean, vecs[:, :k]


@pytest.mark.parametrize(
    "qid, wrong, message",
    [
        ("autoencoders.reconstruction_loss", lambda x, l: F.binary_cross_entropy_with_logits(l, x), "averaged over the pixels"),
        ("autoencoders.reconstruction_loss", lambda x, l: F.binary_cross_entropy_with_logits(l, x, reduction="sum"), "summed over the batch"),
        ("autoencoders.reconstruction_loss", lambda x, l: -right_loss(x, l), "sign"),
        ("autoencoders.reconstruction_loss", lambda x, l: F.binary_cross_entropy(l.sigmoid(), x, reduction="sum") / x.shape[0], "from the logits"),
        ("autoencoders.reconstruction_loss", lambda x, l: ((l.sigmoid() - x) ** 2).sum() / x.shape[0], "reconstruction_loss"),
        ("autoencoders.interpolate", lambda z0, z1, n: z0 + torch.arange(n)[:, None] / n * (z1 - z0), "both ends"),
        ("autoencoders.interpolate", lambda z0, z1, n: ae.interpolate(z1, z0, n), "backwards"),
        ("autoencoders.interpolate", lambda z0, z1, n: torch.linspace(0, 1, n)[:, None] * z1, "interpolate"),
        ("autoencoders.pca_directions", _eigh_smallest, "SMALLEST"),
        ("autoencoders.pca_directions", lambda X, k: (X.mean(0), torch.linalg.svd(X, full_matrices=False)[2][:k].T), "CENTRED"),
        ("autoencoders.pca_directions", lambda X, k: (X.mean(0), right_pca(X, k)[1].T), r"shape \(k, D\)"),
        ("autoencoders.pca_directions", lambda X, k: (torch.zeros(X.shape[1]), right_pca(X, k)[1]), "mean"),
        ("autoencoders.pca_directions", lambda X, k: (X.mean(0), 2 * right_pca(X, k)[1]), "orthonormal"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, wrong)
