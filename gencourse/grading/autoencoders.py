"""Public checks for the exercises of chapter 03 (autoencoders).

Each check compares the student's function with the library (:mod:`gencourse.losses`,
:mod:`gencourse.models.autoencoder`) or with a closed form, and names the classic mistake when the
answer matches it (a mean where a sum is meant, an endpoint left out, the smallest eigenvectors).
"""

from __future__ import annotations

import math

from .checks import expect, expect_close, expect_shape, register


def _close(a, b, rtol=1e-4, atol=1e-4) -> bool:
    import torch

    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=atol))


@register("autoencoders.reconstruction_loss")
def _reconstruction_loss(reconstruction_loss):
    import torch

    from gencourse import losses

    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 28, 28, generator=g)
    logits = 2 * torch.randn(5, 1, 28, 28, generator=g)
    got = reconstruction_loss(x, logits)
    expected = -losses.bernoulli_log_likelihood(x, logits).mean()
    expect(isinstance(got, torch.Tensor) and got.ndim == 0, f"return one number (a 0-d tensor), got {getattr(got, 'shape', type(got).__name__)}")
    value = float(got)
    hints = {
        "averaged over the pixels instead of summed: the loss is a sum over the 784 pixels of each image": expected / 784,
        "summed over the batch instead of averaged: average the per-image losses over the B images": expected * 5,
        "the sign is flipped: the loss is minus the log-likelihood": -expected,
    }
    for hint, wrong in hints.items():
        expect(not math.isclose(value, float(wrong), rel_tol=1e-4), f"reconstruction_loss = {value:.4g}: {hint}")
    expect_close(value, float(expected), what="reconstruction_loss(x, logits)", rtol=1e-4,
                 hint="BCE with the logits (binary_cross_entropy_with_logits), summed over pixels, averaged over images")
    big = float(reconstruction_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[-200.0, 200.0]])))
    expect(math.isfinite(big) and math.isclose(big, 400.0, rel_tol=1e-3),
           f"for logits -200 and 200 on pixels 1 and 0 the loss is 400 nats, you get {big:.4g}: compute it from the logits "
           "(binary_cross_entropy_with_logits), not from sigmoid(logits), which rounds to 0 and 1")


@register("autoencoders.interpolate")
def _interpolate(interpolate):
    import torch

    from gencourse.models import autoencoder as ae

    z0, z1 = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([4.0, -2.0, 1.0])
    for n in (2, 5, 11):
        got = interpolate(z0, z1, n)
        expect_shape(got, (n, 3), what=f"interpolate(z0, z1, n={n})")
        expected = ae.interpolate(z0, z1, n)
        if _close(got, torch.linspace(0, 1, n + 1)[:-1, None] * (z1 - z0) + z0):
            raise AssertionError("the last point should be z1 itself: both ends are included, t = j / (n - 1)")
        if _close(got, expected.flip(0)):
            raise AssertionError("the path runs backwards: the first point should be z0 and the last z1")
        expect_close(got, expected, what=f"interpolate(z0, z1, n={n})", rtol=1e-5, atol=1e-6,
                     hint="z_j = (1 - t_j) z0 + t_j z1 with t_j = j / (n - 1), j = 0..n-1")


@register("autoencoders.pca_directions")
def _pca_directions(pca_directions):
    import torch

    g = torch.Generator().manual_seed(0)
    # data with a clear spectrum: variances 9, 4, 1, 0.25, 0.01 along random orthogonal axes, mean far from 0
    Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    X = (torch.randn(400, 5, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0, 0.5, 0.1], dtype=torch.float64)) @ Q.T + 5.0
    k = 2
    out = pca_directions(X, k)
    expect(isinstance(out, tuple) and len(out) == 2, f"return a tuple (mean, V), got {type(out).__name__}")
    mean, V = (torch.as_tensor(t, dtype=torch.float64) for t in out)
    expect_shape(mean, (5,), what="mean")
    expect_close(mean, X.mean(0), what="mean", rtol=1e-6, atol=1e-8, hint="the mean of the rows of X")
    if V.shape == (k, 5):
        raise AssertionError("V has shape (k, D) = (2, 5): return the directions as the columns of a (D, k) matrix")
    expect_shape(V, (5, k), what="V")
    expect_close(V.T @ V, torch.eye(k, dtype=torch.float64), what="V^T V", atol=1e-6, hint="the columns of V must be orthonormal")
    Xc = X - X.mean(0)
    eig = torch.linalg.eigvalsh(Xc.T @ Xc)  # ascending
    error = ((Xc - Xc @ V @ V.T) ** 2).sum().item()
    if math.isclose(error, eig[k:].sum().item(), rel_tol=1e-6):
        raise AssertionError("these are the directions of the SMALLEST variance (torch.linalg.eigh sorts eigenvalues "
                             "in ascending order): take the last k eigenvectors, or use the SVD")
    expect_close(error, eig[:-k].sum().item(), what="the reconstruction error of the centred data with V",
                 rtol=1e-6, hint="V must span the k leading principal directions of the CENTRED data (subtract the mean first)")


def _receptive_field(layers) -> int:
    size, jump = 1, 1
    for kernel, stride in layers:
        size += (kernel - 1) * jump
        jump *= stride
    return size


@register("autoencoders.receptive_field")
def _receptive_field_check(receptive_field):
    stacks = [[(3, 1)], [(3, 1), (3, 1)], [(4, 2), (4, 2)], [(3, 2), (5, 1), (3, 2)], [(2, 2), (2, 2), (3, 1)]]
    for layers in stacks:
        got = receptive_field(layers)
        expect(isinstance(got, int) and not isinstance(got, bool),
               f"receptive_field({layers}) must return an int, got {type(got).__name__}")
        expected = _receptive_field(layers)
        if got == expected:
            expect(True, "")
            continue
        mistakes = {
            "each layer adds (kernel - 1) times the product of the strides of the layers BEFORE it, not including its own":
                1 + sum((k - 1) * math.prod(s for _, s in layers[: i + 1]) for i, (k, _) in enumerate(layers)),
            "kernels do not simply add up: a layer's kernel spans (kernel - 1) steps of its input, each as wide as the "
            "product of the earlier strides": sum(k for k, _ in layers),
            "the sizes add with an overlap of one pixel per layer: 1 + sum (kernel - 1) x (earlier strides)":
                sum(k * math.prod(s for _, s in layers[:i]) for i, (k, _) in enumerate(layers)),
        }
        for hint, wrong in mistakes.items():
            if wrong == got and wrong != expected:
                expect(False, f"receptive_field({layers}) = {got}, expected {expected}: {hint}")
        expect(False, f"receptive_field({layers}) = {got}, expected {expected} "
               "(hint: size = 1 + sum_l (k_l - 1) * s_1 * ... * s_(l-1))")


AE_TARGET_BCE = 130.0
AE_MAX_CODE = 8


@register("autoencoders.train_autoencoder")
def _train_autoencoder(encode, decode, losses):
    import torch
    import torch.nn.functional as F

    from gencourse import data

    from ._training import expect_losses_went_down, expect_target

    expect_losses_went_down(losses)
    x = data.mnist("test").tensors[0]
    with torch.no_grad():
        z = encode(x)
        expect(isinstance(z, torch.Tensor) and z.ndim == 2 and z.shape[0] == len(x),
               f"encode(x) for x of shape {tuple(x.shape)} must return codes of shape (B, d), got "
               f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
        expect(z.shape[1] <= AE_MAX_CODE, f"the code has {z.shape[1]} numbers: at most {AE_MAX_CODE} are allowed")
        logits = decode(z)
    expect(isinstance(logits, torch.Tensor), f"decode(z) must return a tensor, got {type(logits).__name__}")
    expect_shape(logits, tuple(x.shape), what="decode(encode(x))")
    bce = F.binary_cross_entropy_with_logits(logits.double(), x.double(), reduction="none").flatten(1).sum(1).mean().item()
    expect(math.isfinite(bce), f"the held-out loss is {bce}")
    if bool((logits >= 0).all()) and bool((logits <= 1).all()):
        expect(False, "decode returns values in [0, 1], like pixel intensities: it must return LOGITS (train with "
               "the loss of question 1, which applies the sigmoid inside; no sigmoid in the decoder, no squared error on logits)")
    expect_target(bce, AE_TARGET_BCE, what="held-out reconstruction loss (nats per image)",
                  hint="train longer or with a larger network; draw a fresh random batch every step")
