"""Public checks for the exercises of chapter 04 (variational autoencoders).

Each check compares the student's function with the library (:mod:`gencourse.losses`,
:mod:`gencourse.models.autoencoder`) and, when the answer matches a classic mistake, says which:
a sign error, a missing 1/2, a mean where a sum is meant, sigma used where log sigma^2 is meant.
"""

from __future__ import annotations

import math

from .checks import close_to as _close
from .checks import diagnose as _diagnose
from .checks import expect, expect_close, expect_shape, register


def _latents(seed: int = 0, B: int = 4, d: int = 3):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, d, generator=g), 1.5 * torch.randn(B, d, generator=g)


@register("vae.reparameterize")
def _reparameterize(reparameterize):
    import torch

    mu, logvar = _latents()
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
    z = reparameterize(mu, logvar, eps)
    expect_shape(z, tuple(mu.shape), what="reparameterize(mu, logvar, eps)")
    _diagnose(z, {
        "sigma = exp(logvar) is the variance; the standard deviation is exp(logvar / 2)": mu + logvar.exp() * eps,
        "logvar is log sigma^2, not sigma: use sigma = exp(logvar / 2)": mu + logvar * eps,
        "the noise must be scaled by the standard deviation exp(logvar / 2), not by sqrt(logvar) or logvar / 2": mu + 0.5 * logvar * eps,
        "the mean is missing: z = mu + sigma * eps": (0.5 * logvar).exp() * eps,
    }, "reparameterize")
    expect_close(z, mu + (0.5 * logvar).exp() * eps, what="reparameterize(mu, logvar, eps)", rtol=1e-5, atol=1e-6,
                 hint="z = mu + exp(logvar / 2) * eps")
    mu_ = mu.clone().requires_grad_()
    logvar_ = logvar.clone().requires_grad_()
    z = reparameterize(mu_, logvar_, eps)
    expect(z.requires_grad, "z carries no gradient: build it from mu and logvar with tensor operations "
           "(no .detach(), no torch.normal/.sample())")
    z.sum().backward()
    expect_close(logvar_.grad, 0.5 * (0.5 * logvar).exp() * eps, what="d z / d logvar", rtol=1e-4, atol=1e-6)


@register("vae.kl_standard_normal")
def _kl_standard_normal(kl_standard_normal):
    import torch

    from gencourse import losses

    mu, logvar = _latents()
    got = kl_standard_normal(mu, logvar)
    expected = losses.kl_gaussians(mu, logvar)
    per_dim = mu**2 + logvar.exp() - logvar - 1  # (B, d), without the 1/2
    sigma = (0.5 * logvar).exp()
    _diagnose(got, {
        "the factor 1/2 is missing: KL = 1/2 sum_k (mu_k^2 + sigma_k^2 - log sigma_k^2 - 1)": per_dim.sum(1),
        "the sign is flipped: the KL divergence is >= 0": -expected,
        "averaged over the latent dimensions: the KL of a sample is a SUM over its dimensions": expected / mu.shape[1],
        "logvar was used as sigma: sigma^2 = exp(logvar) and log sigma^2 = logvar":
            0.5 * (mu**2 + logvar**2 - (logvar**2).log() - 1).sum(1),
        "sigma was used where log sigma^2 is meant (the -log sigma^2 term takes logvar itself)":
            0.5 * (mu**2 + logvar.exp() - sigma - 1).sum(1),
    }, "kl_standard_normal")
    if torch.as_tensor(got).ndim == 0:
        raise AssertionError("return one KL per sample, shape (B,): sum over the latent dimensions only, not over the batch")
    expect_shape(got, (mu.shape[0],), what="kl_standard_normal(mu, logvar)")
    expect_close(got, expected, what="kl_standard_normal(mu, logvar)", rtol=1e-4, atol=1e-5,
                 hint="1/2 sum_k (mu_k^2 + exp(logvar_k) - logvar_k - 1), one value per row")
    zero = kl_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3))
    expect_close(zero, torch.zeros(2), what="the KL of N(0, I) from itself", atol=1e-7)


@register("vae.negative_elbo")
def _negative_elbo(negative_elbo):
    import torch

    from gencourse import losses

    g = torch.Generator().manual_seed(2)
    B = 4
    x = torch.rand(B, 1, 28, 28, generator=g)
    logits = 2 * torch.randn(B, 1, 28, 28, generator=g)
    mu, logvar = _latents(3, B=B, d=5)
    rec = -losses.bernoulli_log_likelihood(x, logits)  # (B,)
    kl = losses.kl_gaussians(mu, logvar)  # (B,)
    for beta in (1.0, 4.0):
        got = negative_elbo(x, logits, mu, logvar, beta=beta)
        expect(isinstance(got, torch.Tensor) and got.ndim == 0, f"return one number (a 0-d tensor), got {getattr(got, 'shape', type(got).__name__)}")
        _diagnose(got, {
            "the reconstruction term is averaged over pixels: sum the BCE over the 784 pixels of each image": (rec / 784 + beta * kl).mean(),
            "summed over the batch: average the per-image negative ELBO over the B images": (rec + beta * kl).sum(),
            "the KL term has the wrong sign: the loss is reconstruction PLUS beta times KL": (rec - beta * kl).mean(),
            "the sign is flipped: this is the ELBO, the loss to minimise is its negative": -(rec + beta * kl).mean(),
            "the KL term misses its factor 1/2": (rec + beta * 2 * kl).mean(),
            "beta multiplies the wrong term: it weights the KL term": (beta * rec + kl).mean(),
        }, f"negative_elbo(beta={beta:g})", expected=(rec + beta * kl).mean())
        expect_close(got, (rec + beta * kl).mean(), what=f"negative_elbo(x, logits, mu, logvar, beta={beta:g})", rtol=1e-4,
                     hint="mean over the batch of [BCE summed over pixels + beta * KL summed over latent dimensions]")


@register("vae.iwae_bound")
def _iwae_bound(iwae_bound):
    import torch

    from gencourse import losses

    g = torch.Generator().manual_seed(4)
    log_w = 3 * torch.randn(6, 4, generator=g, dtype=torch.float64) - 100.0  # (K, B)
    got = iwae_bound(log_w)
    expected = losses.iwae_bound(log_w)
    K = log_w.shape[0]
    _diagnose(got, {
        "this is the mean of the log-weights, the ELBO: the IWAE bound is the log of the MEAN of the weights": log_w.mean(0),
        "the -log K is missing: log (1/K) sum_k w_k = logsumexp_k(log w_k) - log K": expected + math.log(K),
        "the samples are along dim 0 (log_w has shape (K, B)); reduce over dim 0": torch.logsumexp(log_w, 1) - math.log(log_w.shape[1]),
    }, "iwae_bound")
    expect_shape(got, (4,), what="iwae_bound(log_w) for log_w of shape (K, B) = (6, 4)")
    expect_close(got, expected, what="iwae_bound(log_w)", rtol=1e-6, atol=1e-6, hint="torch.logsumexp(log_w, dim=0) - log K")
    tiny = iwae_bound(torch.full((3, 2), -1000.0, dtype=torch.float64))
    expect(bool(torch.isfinite(torch.as_tensor(tiny)).all()),
           "log_w = -1000 gives -inf: exp(-1000) underflows to 0; use torch.logsumexp, which subtracts the maximum first")
    expect_close(tiny, [-1000.0, -1000.0], what="iwae_bound of three equal log-weights -1000", rtol=1e-9)


@register("vae.conditional_decoder_input")
def _conditional_decoder_input(conditional_decoder_input):
    import torch

    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))
    y = torch.tensor([2, 0, 9])
    got = conditional_decoder_input(z, y, 10)
    expect(isinstance(got, torch.Tensor), f"return a tensor, got {type(got).__name__}")
    if got.shape == (3, 5):
        raise AssertionError(
            "the label was appended as one number: use its one-hot code, 10 numbers (torch.nn.functional.one_hot)")
    expect_shape(got, (3, 14), what="conditional_decoder_input(z, y, 10) for z (3, 4)")
    expect(got.is_floating_point(),
           f"the result must be floating point (the decoder's input), got {got.dtype}: convert the one-hot code with .float()")
    expected = torch.cat([z, torch.eye(10)[y]], dim=1)
    if _close(got, torch.cat([torch.eye(10)[y], z], dim=1)):
        raise AssertionError("put the code first and the one-hot class after it: [z ; onehot(y)]")
    expect_close(got, expected, what="conditional_decoder_input(z, y, 10)", rtol=1e-6, atol=1e-7,
                 hint="torch.cat([z, one_hot(y, 10).float()], dim=1)")


def _elbo_gap_reference(x, W, b, sigma2, m, logvar):
    """log p(x) - ELBO(q) for the linear-Gaussian model, from its exact marginal and closed-form ELBO."""
    import torch

    D, d = W.shape
    marginal = torch.distributions.MultivariateNormal(b, W @ W.T + sigma2 * torch.eye(D, dtype=W.dtype))
    resid = x - b - m @ W.T
    expected_log_lik = -0.5 * D * math.log(2 * math.pi * sigma2) - ((resid**2).sum(1) + (logvar.exp() * (W**2).sum(0)).sum(1)) / (2 * sigma2)
    kl_prior = 0.5 * (m**2 + logvar.exp() - logvar - 1).sum(1)
    return marginal.log_prob(x) - (expected_log_lik - kl_prior), kl_prior


@register("vae.elbo_gap")
def _elbo_gap(elbo_gap):
    import torch

    g = torch.Generator().manual_seed(6)
    D, d, N = 4, 2, 3
    W = torch.randn(D, d, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    sigma2 = 0.5
    x = 2 * torch.randn(N, D, generator=g, dtype=torch.float64)
    m = torch.randn(N, d, generator=g, dtype=torch.float64)
    logvar = torch.randn(N, d, generator=g, dtype=torch.float64) - 1
    got = elbo_gap(x, W, b, sigma2, m, logvar)
    expect(isinstance(got, torch.Tensor), f"return a tensor, got {type(got).__name__}")
    expect_shape(got, (N,), what=f"elbo_gap for x of shape ({N}, {D})")
    ref, kl_prior = _elbo_gap_reference(x, W, b, sigma2, m, logvar)
    # the reverse direction, KL(p(z|x) || q)
    M = W.T @ W + sigma2 * torch.eye(d, dtype=torch.float64)
    post_mean = torch.linalg.solve(M, W.T @ (x - b).T).T
    post_cov = sigma2 * torch.linalg.inv(M)
    var_q = logvar.exp()
    reverse = 0.5 * ((torch.diagonal(post_cov) / var_q).sum(1) + ((post_mean - m) ** 2 / var_q).sum(1) - d
                     + logvar.sum(1) - torch.logdet(post_cov))
    _diagnose(got, {
        "this is KL(q || p(z)), the KL term of the ELBO: the gap is the KL from q to the POSTERIOR p(z | x)": kl_prior,
        "the KL has the wrong direction: log p(x) - ELBO(q) = KL(q || p(z | x)), not KL(p(z | x) || q)": reverse,
        "the sign is flipped: the ELBO is below log p(x), so the gap is >= 0": -ref,
    }, "elbo_gap", expected=ref)
    expect_close(got, ref, what="elbo_gap(x, W, b, sigma2, m, logvar)", rtol=1e-6, atol=1e-8,
                 hint="the gap is KL(q || p(z | x)) with p(z | x) = N(M^{-1} W^T (x - b), sigma2 M^{-1}), M = W^T W + sigma2 I")


VAE_TARGET_NEG_ELBO = 150.0
VAE_LATENT = 16


@register("vae.train_vae")
def _train_vae(encode, decode, losses):
    import torch
    import torch.nn.functional as F

    from gencourse import data

    from ._training import expect_losses_went_down, expect_target

    expect_losses_went_down(losses)
    x = data.mnist("test").tensors[0]
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        out = encode(x)
        expect(isinstance(out, tuple) and len(out) == 2, f"encode(x) must return a tuple (mu, logvar), got {type(out).__name__}")
        mu, logvar = out
        for name, t in (("mu", mu), ("logvar", logvar)):
            expect(isinstance(t, torch.Tensor) and tuple(t.shape) == (len(x), VAE_LATENT),
                   f"{name} must have shape (B, {VAE_LATENT}), got {tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        mu, logvar = mu.double(), logvar.double()
        kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(1)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g, dtype=torch.float64)
        logits = decode(z.float())
    expect(isinstance(logits, torch.Tensor), f"decode(z) must return a tensor, got {type(logits).__name__}")
    expect_shape(logits, tuple(x.shape), what="decode(z)")
    rec = F.binary_cross_entropy_with_logits(logits.double(), x.double(), reduction="none").flatten(1).sum(1)
    neg_elbo = (rec + kl).mean().item()
    expect(math.isfinite(neg_elbo), f"the held-out negative ELBO is {neg_elbo}")
    kl_mean, rec_mean = kl.mean().item(), rec.mean().item()
    expect(kl_mean > 1.0, f"the KL term is {kl_mean:.3g} nats per image on held-out digits: the posterior collapsed onto "
           "the prior, the code carries no information. Is the reconstruction term SUMMED over the 784 pixels "
           "(a per-pixel mean weighs the KL 784 times too much)?")
    expect(kl_mean < 200, f"the KL term is {kl_mean:.3g} nats per image: far too large. Does the loss ADD beta * KL "
           "to the reconstruction term (the negative ELBO), rather than subtract it?")
    expect_target(neg_elbo, VAE_TARGET_NEG_ELBO,
                  what=f"held-out negative ELBO per image (reconstruction {rec_mean:.1f} + KL {kl_mean:.1f})",
                  hint="train longer or with a wider network; check the loss is BCE summed over pixels + KL")
