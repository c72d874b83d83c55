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


# ------------------------------------------------------------------ the receptive field of a stack


def right_rf(layers):
    size, jump = 1, 1
    for k, s in layers:
        size, jump = size + (k - 1) * jump, jump * s
    return size


def test_receptive_field_accepts_the_right_answer(capsys):
    assert check("autoencoders.receptive_field", right_rf)
    assert "✔" in capsys.readouterr().out


def rf_own_stride(layers):
    size, jump = 1, 1
    for k, s in layers:
        jump *= s
        size += (k - 1) * jump
    return size


@pytest.mark.parametrize(
    "wrong, message",
    [
        (rf_own_stride, "BEFORE it"),
        (lambda layers: sum(k for k, _ in layers), "do not simply add up"),
        (lambda layers: float(right_rf(layers)), "must return an int"),
    ],
)
def test_receptive_field_rejects_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("autoencoders.receptive_field", wrong)


# ------------------------------------------------------------------ the autoencoder trained to a target

from gencourse.grading import autoencoders as ae_checks  # noqa: E402

GOING_DOWN = [300.0 - i for i in range(50)]


def tiny_autoencoder(d=8, probabilities=False):
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, d))
    dec = torch.nn.Sequential(torch.nn.Linear(d, 784), torch.nn.Unflatten(1, (1, 28, 28)))
    if probabilities:
        dec.append(torch.nn.Sigmoid())
    return enc, dec


@pytest.fixture
def cpu_profile(monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")


def test_train_autoencoder_accepts_a_model_that_reaches_the_target(cpu_profile, monkeypatch, capsys):
    monkeypatch.setattr(ae_checks, "AE_TARGET_BCE", 1e6)  # an untrained model, a target it reaches
    assert check("autoencoders.train_autoencoder", *tiny_autoencoder(), GOING_DOWN)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "model, losses, message",
    [
        (tiny_autoencoder(), GOING_DOWN, "target < 125"),  # untrained: far above the target
        (tiny_autoencoder(d=16), GOING_DOWN, "at most 8"),
        (tiny_autoencoder(probabilities=True), GOING_DOWN, "LOGITS"),
        (tiny_autoencoder(), GOING_DOWN[::-1], "did not go down"),
        ((tiny_autoencoder()[0], lambda z: tiny_autoencoder()[1](z).flatten(1)), GOING_DOWN, "shape"),
    ],
)
def test_train_autoencoder_rejects_mistakes(cpu_profile, monkeypatch, model, losses, message):
    monkeypatch.setattr(ae_checks, "AE_TARGET_BCE", 125.0)
    with pytest.raises(AssertionError, match=message):
        check("autoencoders.train_autoencoder", *model, losses)
