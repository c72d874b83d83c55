"""gencourse.models.autoencoder (chapters 03-04) against independent computations: quadrature,
closed forms of Gaussian conditioning, scipy, autograd, brute-force loops."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from torch import nn

import gencourse as gc
from gencourse import losses
from gencourse.divergences import kl_mvn
from gencourse.models import autoencoder as ae
from gencourse.recipes import vae as vae_recipe

SMALL = dict(enc_widths=(4, 8), dec_widths=(8, 4), hidden=16)


pytestmark = pytest.mark.usefixtures("one_thread")

# ------------------------------------------------------------------------------ reparameterisation


def test_reparameterize_is_mu_plus_sigma_eps_with_sigma_from_logvar():
    mu, logvar, eps = torch.tensor([[1.0, -2.0]]), torch.log(torch.tensor([[4.0, 0.25]])), torch.tensor([[0.5, 2.0]])
    # sigma = sqrt(var): 2 and 0.5 (not the variance, not exp(logvar))
    torch.testing.assert_close(ae.reparameterize(mu, logvar, eps=eps), torch.tensor([[2.0, -1.0]]))


def test_reparameterize_gradients_are_one_and_half_sigma_eps():
    mu = torch.randn(3, 4, requires_grad=True)
    logvar = torch.randn(3, 4, requires_grad=True)
    eps = torch.randn(3, 4)
    ae.reparameterize(mu, logvar, eps=eps).sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones(3, 4))
    torch.testing.assert_close(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)


def test_reparameterize_has_the_right_distribution_and_uses_the_generator():
    mu, logvar = torch.tensor([[1.0, -1.0]]).expand(100_000, 2), torch.log(torch.tensor([[0.25, 9.0]])).expand(100_000, 2)
    z = ae.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    for k, (m, s) in enumerate([(1.0, 0.5), (-1.0, 3.0)]):
        assert scipy.stats.kstest(z[:, k].numpy(), "norm", args=(m, s)).pvalue > 1e-3
    z2 = ae.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z, z2)
    with pytest.raises(ValueError, match="same shape"):
        ae.reparameterize(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="eps must have the shape"):
        ae.reparameterize(torch.zeros(2, 3), torch.zeros(2, 3), eps=torch.zeros(3))


def test_decoder_input_concatenates_the_one_hot_class():
    z, y = torch.randn(3, 2), torch.tensor([0, 9, 4])
    expected = torch.cat([z, torch.eye(10)[y]], dim=1)
    torch.testing.assert_close(ae.decoder_input(z, y, 10), expected)
    with pytest.raises(ValueError, match=r"labels in 0..9"):
        ae.decoder_input(z, torch.tensor([0, 10, 1]), 10)
    with pytest.raises(ValueError, match="one label per code"):
        ae.decoder_input(z, torch.tensor([0, 1]), 10)
    with pytest.raises(ValueError, match="integer labels"):
        ae.one_hot(torch.tensor([0.0, 1.0]), 10)


# --------------------------------------------------------------------------------- the models


def test_autoencoder_shapes_and_loss_is_bce_summed_per_image():
    torch.manual_seed(0)
    model = ae.Autoencoder(latent_dim=2, **SMALL)
    x = torch.rand(5, 1, 28, 28)
    assert model.encode(x).shape == (5, 2) and model(x).shape == (5, 1, 28, 28)
    x_hat = model.decode(model.encode(x))
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    bce = nn.functional.binary_cross_entropy(x_hat, x, reduction="sum") / 5
    torch.testing.assert_close(model.loss(x), bce, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 28, 28\)"):
        model.encode(torch.rand(5, 784))


def test_vae_forward_and_loss_terms_agree_with_the_elbo():
    torch.manual_seed(0)
    model = ae.VAE(latent_dim=3, **SMALL)
    x = torch.rand(4, 1, 28, 28)
    eps = torch.randn(4, 3)
    out = model(x, eps=eps)
    assert out.logits.shape == (4, 1, 28, 28) and out.mu.shape == out.logvar.shape == out.z.shape == (4, 3)
    torch.testing.assert_close(out.z, out.mu + (0.5 * out.logvar).exp() * eps)
    g = torch.Generator().manual_seed(1)
    terms = model.loss_terms(x, beta=2.0, generator=g)
    out = model(x, generator=torch.Generator().manual_seed(1))  # the same noise
    elbo_b = losses.elbo(x, out.logits, out.mu, out.logvar, beta=2.0)
    torch.testing.assert_close(terms["loss"], -elbo_b.mean())
    torch.testing.assert_close(terms["rec"] + terms["kl"], -losses.elbo(x, out.logits, out.mu, out.logvar))
    assert model.sample(6, generator=g).shape == (6, 1, 28, 28)
    with pytest.raises(ValueError, match="unconditional"):
        model.encode(x, torch.zeros(4, dtype=torch.long))


def test_cvae_uses_its_labels():
    torch.manual_seed(0)
    model = ae.CVAE(latent_dim=3, **SMALL)
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([1, 7])
    z = torch.randn(2, 3)
    assert not torch.allclose(model.decode(z, y), model.decode(z, torch.tensor([2, 2])))
    torch.testing.assert_close(model.decode_logits(z, y), model.decoder(ae.decoder_input(z, y, 10)))
    mu, _ = model.encode(x, y)
    assert not torch.allclose(mu, model.encode(x, torch.tensor([3, 3]))[0])
    assert model.sample(2, y).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="needs labels y"):
        model.encode(x)
    with pytest.raises(ValueError, match=r"y must have shape \(B,\) = \(2,\)"):
        model.decode(z, torch.tensor([1]))


def test_vae_step_trains_and_reports_per_image_terms():
    torch.manual_seed(0)
    model = ae.VAE(latent_dim=2, **SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = gc.data.mnist("train").tensors[0][:16]
    first = gc.train.vae_step(model, opt, x, generator=torch.Generator().manual_seed(0))
    assert set(first) == {"loss", "rec", "kl", "elbo"}
    assert math.isclose(first["elbo"], -first["rec"] - first["kl"], rel_tol=1e-6)
    assert 300 < first["rec"] < 784 * math.log(2) + 50  # per image, summed over 784 pixels
    for _ in range(15):
        last = gc.train.vae_step(model, opt, x)
    assert last["loss"] < first["loss"] - 50


# ---------------------------------------------------------------- importance sampling is exact


class _OneDimensionalDecoder(nn.Module):
    """A model with a 1-D latent, logits a z + c, and a fixed Gaussian q: log p(x) by quadrature."""

    def __init__(self, a, c, q_mu, q_logvar):
        super().__init__()
        self.a, self.c, self.q = a, c, (q_mu, q_logvar)
        self.latent_dim = 1

    def encode(self, x):
        B = x.shape[0]
        return self.q[0].expand(B, 1), self.q[1].expand(B, 1)

    def decode_logits(self, z):
        return (z * self.a + self.c).view(-1, 1, 28, 28)


def test_iwae_converges_to_the_exact_log_likelihood_and_the_elbo_is_below():
    g = torch.Generator().manual_seed(0)
    a, c = 0.3 * torch.randn(784, generator=g, dtype=torch.float64), torch.randn(784, generator=g, dtype=torch.float64)
    z_true = 0.7
    x = torch.bernoulli(torch.sigmoid(a * z_true + c), generator=g).view(1, 1, 28, 28)

    def log_joint(z):  # log p(x | z) + log p(z), in float64
        logits = a * z + c
        return float((x.flatten() * logits - torch.nn.functional.softplus(logits)).sum()) + scipy.stats.norm.logpdf(z)

    shift = log_joint(z_true)
    mass, _ = scipy.integrate.quad(lambda z: math.exp(log_joint(z) - shift), -12, 12, points=[z_true], limit=200)
    log_px = shift + math.log(mass)
    # q: a Gaussian near the posterior (its mean and variance from quadrature, then moved a bit)
    m1, _ = scipy.integrate.quad(lambda z: z * math.exp(log_joint(z) - log_px), -12, 12, points=[z_true], limit=200)
    m2, _ = scipy.integrate.quad(lambda z: z * z * math.exp(log_joint(z) - log_px), -12, 12, points=[z_true], limit=200)
    model = _OneDimensionalDecoder(a.float(), c.float(), torch.tensor([[m1 + 0.1]]), torch.tensor([[math.log(1.5 * (m2 - m1**2))]]))
    log_w = ae.log_weights(model, x.float(), K=20_000, generator=torch.Generator().manual_seed(1)).double()  # (K, 1)
    iwae = losses.iwae_bound(log_w).item()
    elbo = log_w.mean().item()
    assert abs(iwae - log_px) < 0.01, (iwae, log_px)
    assert elbo < log_px - 0.005  # the bound is strict for a q that is not the posterior
    # the same through evaluate() (which needs images and a model with encode/decode_logits)
    res = ae.evaluate(model, x.float(), K=4000, generator=torch.Generator().manual_seed(2))
    assert abs(res["iwae"] - log_px) < 0.02 and res["gap"] > 0 and math.isclose(res["nll"], -res["iwae"])


def test_log_weights_match_a_loop_over_torch_distributions():
    torch.manual_seed(0)
    model = ae.CVAE(latent_dim=2, **SMALL).eval()
    x, y = torch.rand(3, 1, 28, 28), torch.tensor([0, 5, 9])
    K = 4
    log_w = ae.log_weights(model, x, K, y, generator=torch.Generator().manual_seed(0), chunk=5)  # forces several passes
    torch.testing.assert_close(log_w, ae.log_weights(model, x, K, y, generator=torch.Generator().manual_seed(0)))
    eps = torch.randn(K, 3, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mu, logvar = model.encode(x, y)
        for k in range(K):
            for b in range(3):
                z = mu[b] + (0.5 * logvar[b]).exp() * eps[k, b]
                logits = model.decode_logits(z[None], y[b : b + 1])
                # Bernoulli.log_prob accepts the grey values as x log p + (1 - x) log(1 - p)
                log_px = torch.distributions.Bernoulli(logits=logits, validate_args=False).log_prob(x[b : b + 1]).sum()
                log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum()
                log_qz = torch.distributions.Normal(mu[b], (0.5 * logvar[b]).exp()).log_prob(z).sum()
                torch.testing.assert_close(log_w[k, b], log_px + log_pz - log_qz, rtol=1e-5, atol=1e-3)


def test_iwae_log_likelihood_batches_and_evaluate_restores_the_mode():
    torch.manual_seed(0)
    model = ae.VAE(latent_dim=2, **SMALL)
    x = torch.rand(5, 1, 28, 28)
    ll = ae.iwae_log_likelihood(model, x, K=3, generator=torch.Generator().manual_seed(0), batch_size=2)
    assert ll.shape == (5,)
    res = ae.evaluate(model, x, K=8, generator=torch.Generator().manual_seed(0), batch_size=2)
    assert model.training and res["gap"] >= 0 and res["K"] == 8
    assert math.isclose(res["rec"], -(res["elbo"] + res["kl"]), rel_tol=1e-9)


def test_active_units_counts_dimensions_whose_mean_varies():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(500, 4, generator=g) * torch.tensor([1.0, 0.001, 0.3, 0.05])  # variances 1, 1e-6, 0.09, 0.0025
    assert ae.active_units(mu) == 2
    assert ae.active_units(mu, threshold=0.001) == 3
    with pytest.raises(ValueError, match="N >= 2"):
        ae.active_units(torch.zeros(1, 4))


def test_interpolate_includes_both_ends_evenly():
    z0, z1 = torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0])
    path = ae.interpolate(z0, z1, 5)
    torch.testing.assert_close(path, torch.tensor([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0], [3.0, -1.0], [4.0, -2.0]]))
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        ae.interpolate(z0, z1, 1)


def test_gaussian_grid_uses_normal_quantiles_rows_from_top():
    grid = ae.gaussian_grid(4, p_max=0.9)
    q = scipy.stats.norm.ppf(np.linspace(0.1, 0.9, 4))
    assert grid.shape == (16, 2)
    np.testing.assert_allclose(grid[:4, 0].numpy(), q, rtol=1e-5)  # first row: z1 increasing
    np.testing.assert_allclose(grid[::4, 1].numpy(), q[::-1], rtol=1e-5)  # first column: z2 decreasing
    with pytest.raises(ValueError, match="p_max"):
        ae.gaussian_grid(4, p_max=1.0)


# ------------------------------------------------------------------------ the linear-Gaussian model


def _model(D=5, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ae.LinearGaussian(torch.randn(D, d, generator=g, dtype=torch.float64), torch.randn(D, generator=g, dtype=torch.float64), 0.3)


def test_linear_gaussian_marginal_matches_scipy_and_samples():
    m = _model()
    x = m.sample(4, generator=torch.Generator().manual_seed(1))
    cov = (m.W @ m.W.T).numpy() + 0.3 * np.eye(5)
    np.testing.assert_allclose(m.log_marginal(x).numpy(), scipy.stats.multivariate_normal(m.b.numpy(), cov).logpdf(x.numpy()), rtol=1e-10)
    big = m.sample(200_000, generator=torch.Generator().manual_seed(2))
    np.testing.assert_allclose(np.cov(big.numpy().T), cov, atol=0.08)


def test_linear_gaussian_posterior_is_gaussian_conditioning():
    m = _model()
    x = m.sample(3, generator=torch.Generator().manual_seed(1))
    # the joint of (z, x) is Gaussian: Sigma_zx = W^T, Sigma_xx = W W^T + s2 I
    S_xx = m.W @ m.W.T + 0.3 * torch.eye(5, dtype=torch.float64)
    gain = m.W.T @ torch.linalg.inv(S_xx)  # (d, D)
    mean, cov = m.posterior(x)
    torch.testing.assert_close(mean, (x - m.b) @ gain.T)
    torch.testing.assert_close(cov, torch.eye(2, dtype=torch.float64) - gain @ m.W)


def test_linear_gaussian_elbo_closed_form_matches_monte_carlo():
    m = _model()
    x = m.sample(1, generator=torch.Generator().manual_seed(1))
    q_m, q_logvar = torch.tensor([[0.3, -0.2]], dtype=torch.float64), torch.tensor([[-1.0, 0.5]], dtype=torch.float64)
    z = q_m + (0.5 * q_logvar).exp() * torch.randn(400_000, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    log_lik = torch.distributions.Normal(z @ m.W.T + m.b, math.sqrt(0.3)).log_prob(x).sum(1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    log_q = torch.distributions.Normal(q_m, (0.5 * q_logvar).exp()).log_prob(z).sum(1)
    mc = (log_lik + log_p - log_q).mean()
    assert abs(m.elbo(x, q_m, q_logvar).item() - mc.item()) < 0.02


def test_elbo_plus_kl_to_the_posterior_is_log_p_and_tight_at_a_diagonal_posterior():
    m = _model()
    x = m.sample(2, generator=torch.Generator().manual_seed(1))
    post_mean, post_cov = m.posterior(x)
    q_m, q_logvar = torch.tensor([[0.3, -0.2], [1.0, 0.0]], dtype=torch.float64), torch.tensor([[-1.0, 0.5], [0.0, -2.0]], dtype=torch.float64)
    for i in range(2):
        kl = kl_mvn(q_m[i], torch.diag(q_logvar[i].exp()), post_mean[i], post_cov)
        torch.testing.assert_close(m.elbo(x[i : i + 1], q_m[i : i + 1], q_logvar[i : i + 1])[0] + kl, m.log_marginal(x[i : i + 1])[0])
    # orthogonal columns of W: the posterior is diagonal, and q = posterior closes the gap
    Q, _ = torch.linalg.qr(torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    m2 = ae.LinearGaussian(Q * torch.tensor([2.0, 0.5], dtype=torch.float64), torch.zeros(5, dtype=torch.float64), 0.3)
    mean, cov = m2.posterior(x)
    assert torch.allclose(cov, torch.diag(torch.diagonal(cov)))
    logvar = torch.diagonal(cov).log().expand(2, 2)
    torch.testing.assert_close(m2.elbo(x, mean, logvar), m2.log_marginal(x))


def test_linear_gaussian_checks_inputs():
    with pytest.raises(ValueError, match="sigma2"):
        ae.LinearGaussian(torch.zeros(3, 2), torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match=r"b must have shape \(D,\) = \(3,\)"):
        ae.LinearGaussian(torch.zeros(3, 2), torch.zeros(2), 1.0)
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\) = \(N, 5\)"):
        _model().log_marginal(torch.zeros(2, 4))


# ------------------------------------------------------------------ the recipe and the scoreboard


def test_vae_settings_presets_and_checks():
    s = vae_recipe.vae_settings("vae")
    assert s["latent_dim"] == 16 and s["n_classes"] == 0 and s["steps"] == vae_recipe.VAE_STEPS["smoke"]
    assert vae_recipe.vae_settings("vae2d")["latent_dim"] == 2 and vae_recipe.vae_settings("cvae")["n_classes"] == 10
    assert vae_recipe.vae_settings("vae_beta4", beta=4.0)["beta"] == 4.0
    with pytest.raises(ValueError, match="unknown VAE settings"):
        vae_recipe.vae_settings("vae", latent=3)


def test_vae_mnist_trains_once_then_loads_and_feeds_the_scoreboard(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    small = dict(steps=3, batch_size=16, enc_widths=[4, 8], dec_widths=[8, 4], hidden=16)
    model, history = vae_recipe.vae_mnist("vae", progress=False, **small)
    assert len(history["loss"]) == 3 and not model.training
    again, _ = vae_recipe.vae_mnist("vae", progress=False, **small)
    assert "loaded from the cache" in capsys.readouterr().out
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)
    # the scoreboard's entries use the chapter's checkpoints ("vae", "cvae")
    from gencourse import scoreboard

    entries = {e.name: e for e in scoreboard.entries()}
    assert {"VAE", "CVAE"} <= set(entries) and entries["VAE"].chapter == "04"
    monkeypatch.setattr(vae_recipe, "VAE_STEPS", {"smoke": 2, "cpu": 2, "gpu": 2})
    monkeypatch.setattr(vae_recipe, "_PRESETS", {"vae": dict(enc_widths=[4, 8], dec_widths=[8, 4], hidden=16),
                                         "cvae": dict(n_classes=10, enc_widths=[4, 8], dec_widths=[8, 4], hidden=16)})
    out = entries["CVAE"].factory(12, torch.Generator().manual_seed(0))
    assert out.x.shape == (12, 1, 28, 28) and 0 <= out.x.min() and out.x.max() <= 1
    assert out.labels.tolist() == [i % 10 for i in range(12)]
    assert entries["VAE"].factory(5, torch.Generator().manual_seed(0)).x.shape == (5, 1, 28, 28)


# ------------------------------------------------------------------------------ a prior fitted after training


def _scipy_mixture_logpdf(z, weights, means, covs):
    dens = sum(w * scipy.stats.multivariate_normal(m, c).pdf(z) for w, m, c in zip(weights, means, covs))
    return np.log(dens)


def test_mixture_prior_log_prob_matches_scipy_and_sklearn():
    from sklearn.mixture import GaussianMixture

    g = torch.Generator().manual_seed(0)
    codes = torch.cat([torch.randn(300, 3, generator=g) * 0.5 + 2, torch.randn(200, 3, generator=g) @ torch.tensor(
        [[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.4]]) - 1])
    prior = ae.MixturePrior.fit(codes, n_components=2, seed=0)
    gm = GaussianMixture(2, covariance_type="full", random_state=0).fit(codes.double().numpy())
    z = torch.randn(50, 3, generator=g) * 2
    expected = _scipy_mixture_logpdf(z.double().numpy(), gm.weights_, gm.means_, gm.covariances_)
    np.testing.assert_allclose(prior.log_prob(z).numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(prior.log_prob(z).numpy(), gm.score_samples(z.double().numpy()), rtol=1e-4, atol=1e-4)
    assert prior.n_classes == 0 and prior.weights.shape == (1, 2)


def test_mixture_prior_per_class_fits_each_class_and_samples_from_it():
    g = torch.Generator().manual_seed(1)
    y = torch.arange(3).repeat_interleave(400)
    centres = torch.tensor([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]])
    scales = torch.tensor([0.5, 1.0, 0.25])
    codes = centres[y] + scales[y, None] * torch.randn(1200, 2, generator=g)
    prior = ae.MixturePrior.fit(codes, y, n_components=1)
    assert prior.n_classes == 3
    # one Gaussian per class: its maximum-likelihood mean and (biased) covariance, as scipy's density
    for c in range(3):
        m, cov = codes[y == c].double().mean(0), np.cov(codes[y == c].double().numpy().T, bias=True)
        z = torch.randn(5, 2, generator=g) + centres[c]
        expected = scipy.stats.multivariate_normal(m.numpy(), cov + 1e-6 * np.eye(2)).logpdf(z.double().numpy())
        np.testing.assert_allclose(prior.log_prob(z, torch.full((5,), c)).numpy(), expected, rtol=1e-4, atol=1e-4)
    labels = torch.tensor([0, 1, 2]).repeat(4000)
    s = prior.sample(len(labels), labels, generator=torch.Generator().manual_seed(0))
    for c in range(3):  # the fitted class Gaussian: the codes' mean and standard deviations
        torch.testing.assert_close(s[labels == c].mean(0), codes[y == c].mean(0), atol=0.04 * scales[c].item(), rtol=0)
        torch.testing.assert_close(s[labels == c].std(0), codes[y == c].std(0), atol=0.03 * scales[c].item(), rtol=0)
    again = prior.sample(len(labels), labels, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s, again)  # every random number from the generator
    with pytest.raises(ValueError, match="pass the labels y"):
        prior.sample(4)
    with pytest.raises(ValueError, match="labels in 0..2"):
        prior.log_prob(torch.zeros(2, 2), torch.tensor([0, 3]))


def test_mixture_prior_samples_follow_the_weights_and_covariances():
    weights = torch.tensor([[0.2, 0.8]])
    means = torch.tensor([[[-10.0, 0.0], [10.0, 0.0]]])
    covs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 1.2], [1.2, 1.0]]])[None]
    prior = ae.MixturePrior(weights, means, covs)
    s = prior.sample(40_000, generator=torch.Generator().manual_seed(0))
    right = s[:, 0] > 0
    assert abs(right.float().mean().item() - 0.8) < 0.01
    emp = np.cov(s[right].double().numpy().T)
    np.testing.assert_allclose(emp, covs[0, 1].numpy(), atol=0.06)  # L @ eps has covariance L L^T = Sigma
    with pytest.raises(ValueError, match="sum to 1"):
        ae.MixturePrior(torch.tensor([[0.5, 0.6]]), means, covs)
    with pytest.raises(ValueError, match="expected weights"):
        ae.MixturePrior(weights, means[0], covs)
    with pytest.raises(ValueError, match="need at least 10 codes"):
        ae.MixturePrior.fit(torch.randn(5, 2), n_components=10)
    with pytest.raises(ValueError, match="unconditional"):
        prior.log_prob(torch.zeros(3, 2), torch.zeros(3))


def test_vae_with_a_standard_normal_mixture_prior_is_the_vae():
    """A one-component 'mixture' N(0, I) is the VAE's own prior: the same samples, the same log-weights."""
    torch.manual_seed(0)
    model = ae.CVAE(latent_dim=3, **SMALL).eval()
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([1, 2, 3, 1])
    std = ae.MixturePrior(torch.ones(10, 1), torch.zeros(10, 1, 3), torch.eye(3).expand(10, 1, 3, 3))
    lw = ae.log_weights(model, x, 6, y, generator=torch.Generator().manual_seed(0))
    lw_prior = ae.log_weights(model, x, 6, y, generator=torch.Generator().manual_seed(0), prior=std)
    torch.testing.assert_close(lw_prior, lw, rtol=1e-5, atol=1e-4)
    a = ae.evaluate(model, x, y, K=400, generator=torch.Generator().manual_seed(1))
    b = ae.evaluate(model, x, y, K=400, generator=torch.Generator().manual_seed(1), prior=std)
    assert math.isclose(a["iwae"], b["iwae"], rel_tol=1e-5) and math.isclose(a["elbo"], b["elbo"], rel_tol=1e-5)
    assert abs(a["kl"] - b["kl"]) < 0.1 * a["kl"] + 0.05  # closed form against its Monte Carlo estimate
    with pytest.raises(ValueError, match="pass the labels y"):
        ae.log_weights(ae.VAE(latent_dim=3, **SMALL), x, 2, prior=std)
    with pytest.raises(ValueError, match="3-dimensional"):
        ae.VAE(latent_dim=2, **SMALL).sample(2, prior=ae.MixturePrior.fit(torch.randn(50, 3), n_components=1))
    out = model.sample(4, y, generator=torch.Generator().manual_seed(0), prior=std)
    ref = model.decode(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)).mul(0), y)  # shape only
    assert out.shape == ref.shape == (4, 1, 28, 28)
