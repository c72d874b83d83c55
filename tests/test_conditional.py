"""Conditional GANs (chapter 09): the networks of gencourse.models.conditional, the ACGAN and InfoGAN
losses, the one-step updates with labels or codes, the matched accuracy and per-class scores, and the
recipe, each checked against an independent computation (a loop, scipy, a closed form, a copy of the
modules stepped by hand)."""

import copy
import itertools
import math
import operator

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import log_softmax
from torch import nn

from gencourse import losses, train
from gencourse.metrics import classifier, scores
from gencourse.models import conditional as cond

pytestmark = pytest.mark.usefixtures("one_thread")
D64 = torch.float64
K, LATENT, B = 4, 8, 6  # small networks: classes, latent dimension, batch


def _nets(seed=0):
    torch.manual_seed(seed)
    return {
        "G": cond.ConditionalGenerator(LATENT, K, ngf=4),
        "concat": cond.ConcatDiscriminator(K, ndf=4, features=8),
        "projection": cond.ProjectionDiscriminator(K, ndf=4, features=8),
        "acgan": cond.ACGANDiscriminator(K, ndf=4, features=8),
        "info_G": cond.InfoGANGenerator(LATENT, K, n_cont=2, ngf=4),
        "info_D": cond.InfoGANDiscriminator(K, n_cont=2, ndf=4, features=8, hidden=8),
    }


def _batch(seed=1, n=B):
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(n, 1, 28, 28, generator=g) - 1
    z = torch.randn(n, LATENT, generator=g)
    y = torch.randint(0, K, (n,), generator=g)
    return x, z, y, g


# ------------------------------------------------------------------------------------------ models


def test_every_network_has_the_documented_shapes():
    nets = _nets()
    x, z, y, g = _batch()
    out = nets["G"](z, y)
    assert out.shape == (B, 1, 28, 28) and out.abs().max() < 1
    assert nets["concat"](x, y).shape == (B,)
    assert nets["projection"](x, y).shape == (B,)
    src, cls = nets["acgan"](x)
    assert src.shape == (B,) and cls.shape == (B, K)
    c_cont = 2 * torch.rand(B, 2, generator=g) - 1
    assert nets["info_G"](z, y, c_cont).shape == (B, 1, 28, 28)
    d, cat_logits, mu, logvar = nets["info_D"](x)
    assert d.shape == (B,) and cat_logits.shape == (B, K) and mu.shape == (B, 2) and logvar.shape == (B, 2)
    assert cond.DiscriminatorBody(1, 4, 8)(x).shape == (B, 8)


def test_one_hot_matches_a_loop():
    y = torch.tensor([3, 0, 2, 2, 1, 0])
    expected = torch.zeros(len(y), 5)
    for b in range(len(y)):
        for k in range(5):
            expected[b, k] = 1.0 if k == int(y[b]) else 0.0
    out = cond.one_hot(y, 5)
    assert out.dtype == torch.float32 and torch.equal(out, expected)


BAD_LABELS = [
    (torch.tensor([0.0, 1.0, 2.0, 3.0, 0.0, 1.0]), r"integer tensor of class indices with shape \(B,\), got torch.float32 \(6,\)"),
    (nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 0, 1]), K), r"shape \(B,\), got torch.int64 \(6, 4\).*not one-hot"),
    (nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 0, 1]), K).float(), r"shape \(B,\), got torch.float32 \(6, 4\)"),
    (torch.tensor([0, 1, 2]), r"one label per image: shape \(6,\), got \(3,\)"),
    (torch.tensor([0, 1, 2, 3, 4, 0]), r"class indices in 0..3, got values in 0..4"),
    (torch.tensor([0, 1, 2, 3, -1, 0]), r"class indices in 0..3, got values in -1..3"),
]


@pytest.mark.parametrize("bad, message", BAD_LABELS)
def test_conditional_networks_reject_bad_labels_saying_what_was_expected_and_what_came(bad, message):
    nets = _nets()
    x, z, _, _ = _batch()
    with pytest.raises(ValueError, match=message):
        nets["G"](z, bad)
    with pytest.raises(ValueError, match=message):
        nets["concat"](x, bad)
    with pytest.raises(ValueError, match=message):
        nets["projection"](x, bad)
    with pytest.raises(ValueError, match=message.replace("y must", "c_cat must")):
        nets["info_G"](z, bad, torch.zeros(B, 2))


def test_one_hot_and_generate_reject_bad_labels():
    with pytest.raises(ValueError, match=r"y must be an integer tensor.*got torch.float32"):
        cond.one_hot(torch.tensor([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match=r"0..2, got values in 0..3"):
        cond.one_hot(torch.tensor([0, 3]), 3)
    G = _nets()["G"]
    with pytest.raises(ValueError, match=r"got torch.int64 \(2, 4\)"):
        cond.generate(G, nn.functional.one_hot(torch.tensor([0, 1]), K))
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        cond.generate(G, torch.tensor([0, 1]), z=torch.randn(3, LATENT))


def test_networks_reject_wrong_image_and_code_shapes():
    nets = _nets()
    x, z, y, _ = _batch()
    small = torch.zeros(B, 1, 32, 32)
    for name in ("concat", "projection"):
        with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 28, 28\) with B >= 1, got \(6, 1, 32, 32\)"):
            nets[name](small, y)
    for name in ("acgan", "info_D"):
        with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 28, 28\) with B >= 1, got \(6, 1, 32, 32\)"):
            nets[name](small)
    with pytest.raises(ValueError, match=r"z must have shape \(B, latent_dim\) = \(B, 8\), got \(6, 9\)"):
        nets["G"](torch.zeros(B, LATENT + 1), y)
    with pytest.raises(ValueError, match=r"c_cont must have shape \(B, n_cont\) = \(6, 2\), got \(6, 3\)"):
        nets["info_G"](z, y, torch.zeros(B, 3))
    with pytest.raises(ValueError, match=r"c_cont must have shape \(B, n_cont\) = \(6, 2\), got \(6,\)"):
        nets["info_G"](z, y, torch.zeros(B))
    with pytest.raises(ValueError, match=r"c_cont must have shape .* got NoneType"):
        nets["info_G"](z, y, None)


def test_conditional_generator_is_a_dcgan_on_noise_joined_to_the_one_hot_label():
    G = _nets()["G"].eval()
    x, z, y, _ = _batch()
    joint = torch.cat([z, cond.one_hot(y, K)], dim=1)
    torch.testing.assert_close(G(z, y), G.body(joint))
    assert not torch.allclose(G(z, y), G(z, (y + 1) % K))  # the label changes the image


def test_concat_discriminator_sees_the_label_through_constant_channels():
    D = _nets()["concat"].eval()
    x, _, y, _ = _batch()
    maps = torch.zeros(B, K, 28, 28)
    for b in range(B):
        maps[b, int(y[b])] = 1.0
    torch.testing.assert_close(D(x, y), D.head(D.body(torch.cat([x, maps], 1))).flatten())
    other = (y + 1) % K
    assert ((D(x, y) - D(x, other)).abs() > 1e-6).all()  # every logit moves when the label does


def test_projection_discriminator_is_psi_of_phi_plus_the_inner_product_with_the_label_embedding():
    D = _nets()["projection"].eval()
    x, _, y, _ = _batch()
    with torch.no_grad():
        phi = D.body(x).double()  # (B, F)
        w, b = D.head.weight.double()[0], D.head.bias.double()[0]
        V = D.embed.weight.double()  # (K, F)
        expected = torch.stack([w @ phi[i] + b + V[int(y[i])] @ phi[i] for i in range(B)])
        out = D(x, y)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    # the label enters only through V: with V = 0 the output no longer depends on it
    with torch.no_grad():
        D.embed.weight.zero_()
    torch.testing.assert_close(D(x, y), D(x, (y + 1) % K))


def test_acgan_heads_share_the_body():
    D = _nets()["acgan"].eval()
    x, _, _, _ = _batch()
    src, cls = D(x)
    h = D.body(x)
    torch.testing.assert_close(src, D.source(h).flatten())
    torch.testing.assert_close(cls, D.classes(h))


def test_infogan_q_splits_its_output_and_clamps_the_log_variance():
    D = _nets()["info_D"].eval()
    x, _, _, _ = _batch()
    last = D.q[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4, 7.0, -8.0, 100.0, -100.0]))
    d, cat_logits, mu, logvar = D(x)
    torch.testing.assert_close(cat_logits, torch.tensor([0.1, 0.2, 0.3, 0.4]).expand(B, K))
    torch.testing.assert_close(mu, torch.tensor([7.0, -8.0]).expand(B, 2))
    torch.testing.assert_close(logvar, torch.tensor([3.0, -5.0]).expand(B, 2))  # clamped to [-5, 3]
    with torch.no_grad():
        last.bias[6:] = torch.tensor([2.5, -4.5])
    torch.testing.assert_close(D(x)[3], torch.tensor([2.5, -4.5]).expand(B, 2))  # inside the range: unchanged


def test_sample_codes_follow_the_prior_and_the_generator():
    z, c_cat, c_cont = cond.sample_codes(20_000, 3, 5, 2, generator=torch.Generator().manual_seed(0))
    assert z.shape == (20_000, 3) and c_cat.shape == (20_000,) and c_cont.shape == (20_000, 2)
    assert abs(z.mean().item()) < 0.03 and abs(z.std().item() - 1) < 0.03
    counts = torch.bincount(c_cat, minlength=5).double() / 20_000
    assert (counts - 0.2).abs().max() < 0.02 and c_cat.min() == 0 and c_cat.max() == 4
    assert c_cont.min() >= -1 and c_cont.max() <= 1 and abs(c_cont.var().item() - 1 / 3) < 0.02  # Uniform(-1, 1)
    again = cond.sample_codes(20_000, 3, 5, 2, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip((z, c_cat, c_cont), again))


# ------------------------------------------------------------------------------------------ losses


def _log_softmax_loop(row, k):
    m = max(row)
    return row[k] - m - math.log(sum(math.exp(v - m) for v in row))


def _log_sigmoid(s):
    return -math.log1p(math.exp(-s)) if s > 0 else s - math.log1p(math.exp(s))


def test_class_loss_is_minus_the_mean_log_softmax_of_the_label():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(7, 5, generator=g, dtype=D64)
    y = torch.randint(0, 5, (7,), generator=g)
    expected = -sum(_log_softmax_loop(logits[b].tolist(), int(y[b])) for b in range(7)) / 7
    assert losses.class_loss(logits, y).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match=r"y must be integer class indices of shape \(B,\) = \(7,\), got torch.float64"):
        losses.class_loss(logits, y.double())
    with pytest.raises(ValueError, match=r"y must be in 0..4, got values in"):
        losses.class_loss(logits, torch.full((7,), 5))
    with pytest.raises(ValueError, match=r"logits must be floating-point class logits of shape \(B, K\), got torch.float64 \(7,\)"):
        losses.class_loss(logits[:, 0], y)


def test_acgan_d_loss_is_minus_the_four_log_likelihood_terms_of_the_paper():
    g = torch.Generator().manual_seed(1)
    src_real, src_fake = 2 * torch.randn(6, generator=g, dtype=D64), 2 * torch.randn(5, generator=g, dtype=D64)
    cls_real, cls_fake = torch.randn(6, 4, generator=g, dtype=D64), torch.randn(5, 4, generator=g, dtype=D64)
    y_real, y_fake = torch.randint(0, 4, (6,), generator=g), torch.randint(0, 4, (5,), generator=g)
    for lam in (1.0, 0.3):
        # L_S = E log P(S=real | x_real) + E log P(S=fake | x_fake); L_C = E log P(C=c | x_real) + E log P(C=c | x_fake)
        l_s = sum(_log_sigmoid(s) for s in src_real.tolist()) / 6 + sum(_log_sigmoid(-s) for s in src_fake.tolist()) / 5
        l_c = (sum(_log_softmax_loop(cls_real[b].tolist(), int(y_real[b])) for b in range(6)) / 6
               + sum(_log_softmax_loop(cls_fake[b].tolist(), int(y_fake[b])) for b in range(5)) / 5)
        out = losses.acgan_d_loss(src_real, cls_real, y_real, src_fake, cls_fake, y_fake, lam)
        assert out.item() == pytest.approx(-(l_s + lam * l_c), rel=1e-12)
    # the class loss on fakes uses the fakes' labels: the real ones give another value
    swapped = losses.acgan_d_loss(src_real, cls_real, y_real, src_fake, cls_fake, (y_fake + 1) % 4)
    assert swapped.item() != pytest.approx(losses.acgan_d_loss(src_real, cls_real, y_real, src_fake, cls_fake, y_fake).item())


def test_acgan_g_loss_is_non_saturating_plus_the_class_loss_of_the_labels_given():
    g = torch.Generator().manual_seed(2)
    src, cls = torch.randn(8, generator=g, dtype=D64), torch.randn(8, 3, generator=g, dtype=D64)
    y = torch.randint(0, 3, (8,), generator=g)
    for lam in (1.0, 2.5):
        expected = -sum(_log_sigmoid(s) for s in src.tolist()) / 8 - lam * sum(_log_softmax_loop(cls[b].tolist(), int(y[b])) for b in range(8)) / 8
        assert losses.acgan_g_loss(src, cls, y, lam).item() == pytest.approx(expected, rel=1e-12)
    right = losses.acgan_g_loss(src, cls, y)
    wrong = losses.acgan_g_loss(src, cls, (y + 1) % 3)
    assert abs(right.item() - wrong.item()) > 1e-3
    with pytest.raises(ValueError, match=r"integer class indices"):
        losses.acgan_g_loss(src, cls, nn.functional.one_hot(y, 3))


def test_gaussian_nll_is_minus_the_scipy_log_density_summed():
    g = torch.Generator().manual_seed(3)
    c, mu, logvar = torch.randn(5, 3, generator=g, dtype=D64), torch.randn(5, 3, generator=g, dtype=D64), torch.randn(5, 3, generator=g, dtype=D64)
    expected = -stats.norm.logpdf(c.numpy(), loc=mu.numpy(), scale=np.exp(0.5 * logvar.numpy())).sum(1)
    np.testing.assert_allclose(losses.gaussian_nll(c, mu, logvar).numpy(), expected, rtol=1e-12)


def test_infogan_info_loss_matches_scipy():
    g = torch.Generator().manual_seed(4)
    n = 9
    cat_logits = torch.randn(n, 5, generator=g, dtype=D64)
    c_cat = torch.randint(0, 5, (n,), generator=g)
    mu, logvar = torch.randn(n, 2, generator=g, dtype=D64), torch.randn(n, 2, generator=g, dtype=D64)
    c_cont = 2 * torch.rand(n, 2, generator=g, dtype=D64) - 1
    cat = log_softmax(cat_logits.numpy(), axis=1)[np.arange(n), c_cat.numpy()]
    cont = stats.norm.logpdf(c_cont.numpy(), mu.numpy(), np.exp(0.5 * logvar.numpy())).sum(1)
    assert losses.infogan_info_loss(cat_logits, c_cat).item() == pytest.approx(-cat.mean(), rel=1e-12)
    for lam in (1.0, 0.5):
        out = losses.infogan_info_loss(cat_logits, c_cat, mu, logvar, c_cont, lambda_cont=lam)
        assert out.item() == pytest.approx(-(cat + lam * cont).mean(), rel=1e-12)
    with pytest.raises(ValueError, match="mu, logvar and c_cont together"):
        losses.infogan_info_loss(cat_logits, c_cat, mu, None, c_cont)
    with pytest.raises(ValueError, match=r"logvar must have shape \(B, n_cont\) = \(9, 2\), got \(9, 3\)"):
        losses.infogan_info_loss(cat_logits, c_cat, mu, torch.zeros(n, 3, dtype=D64), c_cont)


def test_uniform_code_entropy():
    assert losses.uniform_code_entropy(10) == pytest.approx(math.log(10), rel=1e-15)
    assert losses.uniform_code_entropy(10, 2) == pytest.approx(math.log(10) + 2 * math.log(2), rel=1e-15)
    assert losses.uniform_code_entropy(4, 1, 0.0, 3.0) == pytest.approx(math.log(4) + math.log(3))
    # a differential entropy agrees with scipy's
    assert losses.uniform_code_entropy(1, 1) == pytest.approx(float(stats.uniform(-1, 2).entropy()))
    with pytest.raises(ValueError, match="high must be > low"):
        losses.uniform_code_entropy(10, 1, 1.0, 1.0)


def _symmetric_channel(n_codes, eps):
    """Every (c, x) pair of the K-ary symmetric channel, each repeated in proportion to its probability
    (exact for these eps: P(c, x) = (1 - eps)/K if x = c else eps / (K (K - 1)))."""
    p_same, p_other = 1 - eps, eps / (n_codes - 1)
    unit = min(p_same, p_other)
    reps = {True: round(p_same / unit), False: round(p_other / unit)}
    assert reps[True] * unit == pytest.approx(p_same) and reps[False] * unit == pytest.approx(p_other)
    c, x = [], []
    for ci in range(n_codes):
        for xi in range(n_codes):
            c += [ci] * reps[ci == xi]
            x += [xi] * reps[ci == xi]
    return torch.tensor(c), torch.tensor(x)


@pytest.mark.parametrize("n_codes, eps", [(4, 0.3), (5, 0.2), (3, 0.5), (10, 0.1)])
def test_mi_lower_bound_is_exact_with_the_true_posterior_and_lower_by_the_expected_kl_otherwise(n_codes, eps):
    c, x = _symmetric_channel(n_codes, eps)
    # the batch holds every pair in proportion to P(c, x): the empirical mean is the exact expectation
    joint = torch.bincount(c * n_codes + x, minlength=n_codes ** 2).double() / len(c)
    expected = [((1 - eps) if i == j else eps / (n_codes - 1)) / n_codes for i in range(n_codes) for j in range(n_codes)]
    assert joint.tolist() == pytest.approx(expected, rel=1e-12)
    h_b = -(1 - eps) * math.log(1 - eps) - eps * math.log(eps)
    mi = math.log(n_codes) - h_b - eps * math.log(n_codes - 1)
    # the true posterior P(c | x): 1 - eps on c = x, eps / (K - 1) elsewhere (c uniform, channel symmetric)
    posterior = torch.full((n_codes, n_codes), eps / (n_codes - 1), dtype=D64)
    posterior.fill_diagonal_(1 - eps)  # posterior[x, c]
    exact = losses.infogan_mi_lower_bound(posterior.log()[x], c)
    assert exact.item() == pytest.approx(mi, rel=1e-12, abs=1e-12)
    # any other Q(. | x): lower, by E_x KL(P(. | x) || Q(. | x)) (x is uniform here)
    g = torch.Generator().manual_seed(n_codes)
    for _ in range(3):
        q_logits = torch.randn(n_codes, n_codes, generator=g, dtype=D64)  # row x: logits of Q(. | x)
        bound = losses.infogan_mi_lower_bound(q_logits[x], c).item()
        q = torch.softmax(q_logits, 1)
        kl = sum(posterior[xi, ci].item() * math.log(posterior[xi, ci].item() / q[xi, ci].item())
                 for xi in range(n_codes) for ci in range(n_codes)) / n_codes
        assert bound < mi - 1e-6
        assert mi - bound == pytest.approx(kl, rel=1e-10)


def test_mi_lower_bound_rises_when_q_puts_more_mass_on_the_right_code():
    g = torch.Generator().manual_seed(5)
    c = torch.randint(0, 6, (200,), generator=g)
    base = torch.randn(200, 6, generator=g, dtype=D64)
    values = []
    for boost in (0.0, 0.5, 1.0, 2.0, 4.0):
        logits = base.clone()
        logits[torch.arange(200), c] += boost
        values.append(losses.infogan_mi_lower_bound(logits, c).item())
    assert all(b > a for a, b in zip(values, values[1:]))
    assert values[-1] <= math.log(6)  # never above H(c)
    # with the continuous part: H(c) includes log 2 per Uniform(-1, 1) code, and a sharper right mean helps
    c_cont = 2 * torch.rand(200, 2, generator=g, dtype=D64) - 1
    far, near = torch.zeros(200, 2, dtype=D64), c_cont.clone()
    logvar = torch.full((200, 2), -2.0, dtype=D64)
    lb_far = losses.infogan_mi_lower_bound(base, c, far, logvar, c_cont).item()
    lb_near = losses.infogan_mi_lower_bound(base, c, near, logvar, c_cont).item()
    assert lb_near > lb_far
    cont = stats.norm.logpdf(c_cont.numpy(), 0.0, math.exp(-1.0)).sum(1).mean()
    expected = math.log(6) + 2 * math.log(2) - losses.class_loss(base, c).item() + cont
    assert lb_far == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------------- train steps


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a, b))


def _all_changed(before, module):
    return all(not torch.equal(p, q) for p, q in zip(before, module.parameters()))


def test_conditional_d_step_uses_the_labels_updates_d_only():
    nets = _nets()
    G, D = nets["G"], nets["concat"]
    x, z, y_real, _ = _batch(2)
    y_fake = (y_real + 1) % K
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    with torch.no_grad():
        expected = losses.d_loss_bce(D_ref(x, y_real), D_ref(G_ref(z, y_fake), y_fake)).item()
        wrong = losses.d_loss_bce(D_ref(x, y_real), D_ref(G_ref(z, y_fake), y_real)).item()
    g_before, d_before = _params(G), _params(D)
    opt_D = torch.optim.SGD(D.parameters(), lr=0.1)
    out = train.d_step(G, D, opt_D, x, z, y_real=y_real, y_fake=y_fake)
    assert out["loss_D"] == pytest.approx(expected, rel=1e-5) and abs(expected - wrong) > 1e-4
    assert _same(g_before, G.parameters()) and all(p.grad is None for p in G.parameters())
    assert not _same(d_before, D.parameters())
    with pytest.raises(ValueError, match="needs both y_real"):
        train.d_step(G, D, opt_D, x, z, y_real=y_real)


def test_conditional_g_step_changes_only_g():
    nets = _nets()
    G, D = nets["G"], nets["projection"]
    _, z, y, _ = _batch(3)
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    with torch.no_grad():
        expected = losses.g_loss_non_saturating(D_ref(G_ref(z, y), y)).item()
    g_before, d_before = _params(G), _params(D)
    out = train.g_step(G, D, torch.optim.SGD(G.parameters(), lr=0.1), z, y=y)
    assert out["loss_G"] == pytest.approx(expected, rel=1e-5)
    assert _same(d_before, D.parameters()) and all(p.grad is None and p.requires_grad for p in D.parameters())
    assert not _same(g_before, G.parameters())


def test_acgan_d_step_class_loss_on_fakes_uses_the_labels_given_to_g(monkeypatch):
    nets = _nets()
    G, D = nets["G"], nets["acgan"]
    x, z, y_real, _ = _batch(4)
    y_fake = (y_real + 2) % K
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    with torch.no_grad():
        src_r, cls_r = D_ref(x)
        src_f, cls_f = D_ref(G_ref(z, y_fake))
        expected = losses.acgan_d_loss(src_r, cls_r, y_real, src_f, cls_f, y_fake, 0.7).item()
        with_real_labels = losses.acgan_d_loss(src_r, cls_r, y_real, src_f, cls_f, y_real, 0.7).item()
    calls = []
    original = losses.acgan_d_loss

    def spy(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(losses, "acgan_d_loss", spy)
    g_before, d_before = _params(G), _params(D)
    out = train.acgan_d_step(G, D, torch.optim.SGD(D.parameters(), lr=0.1), x, y_real, z, y_fake, lambda_cls=0.7)
    (args,) = calls
    assert torch.equal(args[2], y_real) and torch.equal(args[5], y_fake) and args[6] == 0.7
    torch.testing.assert_close(args[4].detach(), cls_f, rtol=1e-5, atol=1e-6)  # the class logits are those of G(z, y_fake)
    assert out["loss_D"] == pytest.approx(expected, rel=1e-5) and abs(expected - with_real_labels) > 1e-3
    assert out["acc_real"] == pytest.approx((cls_r.argmax(1) == y_real).float().mean().item())
    assert _same(g_before, G.parameters()) and all(p.grad is None for p in G.parameters())
    assert _all_changed(d_before, D)


def test_acgan_g_step_uses_its_labels_and_changes_only_g():
    nets = _nets()
    G, D = nets["G"], nets["acgan"]
    _, z, y, _ = _batch(5)
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    with torch.no_grad():
        src, cls = D_ref(G_ref(z, y))
        expected = losses.acgan_g_loss(src, cls, y, 1.5).item()
    g_before, d_before = _params(G), _params(D)
    out = train.acgan_g_step(G, D, torch.optim.SGD(G.parameters(), lr=0.1), z, y, lambda_cls=1.5)
    assert out["loss_G"] == pytest.approx(expected, rel=1e-5)
    assert _same(d_before, D.parameters()) and all(p.grad is None and p.requires_grad for p in D.parameters())
    assert not _same(g_before, G.parameters())


def _info_batch(seed):
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(B, 1, 28, 28, generator=g) - 1
    z, c_cat, c_cont = cond.sample_codes(B, LATENT, K, 2, generator=g)
    return x, z, c_cat, c_cont


def test_infogan_d_step_computes_the_info_loss_on_generated_images_only(monkeypatch):
    nets = _nets()
    G, D = nets["info_G"], nets["info_D"]
    x, z, c_cat, c_cont = _info_batch(6)
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    with torch.no_grad():
        d_real, cat_r, mu_r, lv_r = D_ref(x)
        d_fake, cat_f, mu_f, lv_f = D_ref(G_ref(z, c_cat, c_cont))
        info_fake = losses.infogan_info_loss(cat_f, c_cat, mu_f, lv_f, c_cont, 0.5).item()
        info_real = losses.infogan_info_loss(cat_r, c_cat, mu_r, lv_r, c_cont, 0.5).item()
        expected = losses.d_loss_bce(d_real, d_fake).item() + 2.0 * info_fake
    seen = []
    original = losses.infogan_info_loss

    def spy(*args, **kwargs):
        seen.append([a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args])
        return original(*args, **kwargs)

    monkeypatch.setattr(losses, "infogan_info_loss", spy)
    g_before, d_before = _params(G), _params(D)
    out = train.infogan_d_step(G, D, torch.optim.SGD(D.parameters(), lr=0.1), x, z, c_cat, c_cont, lambda_info=2.0, lambda_cont=0.5)
    (args,) = seen
    torch.testing.assert_close(args[0], cat_f, rtol=1e-5, atol=1e-6)  # Q's outputs on G(z, c) ...
    assert not torch.allclose(args[0], cat_r, atol=1e-3)  # ... not on the real batch
    assert torch.equal(args[1], c_cat) and torch.equal(args[4], c_cont)
    assert out["info"] == pytest.approx(info_fake, rel=1e-5) and abs(info_fake - info_real) > 1e-3
    assert out["loss_D"] == pytest.approx(expected, rel=1e-5)
    assert _same(g_before, G.parameters()) and all(p.grad is None for p in G.parameters())
    assert not _same(d_before, D.parameters())


def test_infogan_g_step_changes_g_not_d_and_q():
    nets = _nets()
    G, D = nets["info_G"], nets["info_D"]
    _, z, c_cat, c_cont = _info_batch(7)
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    with torch.no_grad():
        d_fake, cat_f, mu_f, lv_f = D_ref(G_ref(z, c_cat, c_cont))
        expected = losses.g_loss_non_saturating(d_fake).item() + 3.0 * losses.infogan_info_loss(cat_f, c_cat, mu_f, lv_f, c_cont).item()
    g_before, d_before = _params(G), _params(D)
    out = train.infogan_g_step(G, D, torch.optim.SGD(G.parameters(), lr=0.1), z, c_cat, c_cont, lambda_info=3.0)
    assert out["loss_G"] == pytest.approx(expected, rel=1e-5)
    assert _same(d_before, D.parameters()) and all(p.grad is None and p.requires_grad for p in D.parameters())
    assert not _same(g_before, G.parameters())


@pytest.mark.parametrize("workers", [1, 2])
def test_run_in_processes_returns_results_in_order(workers):
    jobs = [(math.pow, (2, 3), {}), (operator.sub, (10, 4), {}), (math.pow, (3, 2), {}), (divmod, (17, 5), {})]
    assert train.run_in_processes(jobs, workers=workers) == [8.0, 6, 9.0, (3, 2)]


def test_run_in_processes_rejects_bad_jobs():
    with pytest.raises(ValueError, match=r"each job must be a tuple \(function, args, kwargs\), got"):
        train.run_in_processes([(math.pow, (2, 3))], workers=1)
    with pytest.raises(ValueError, match="each job must be a tuple"):
        train.run_in_processes([("pow", (2, 3), {})], workers=2)
    with pytest.raises(ValueError, match="workers must be a positive int, got int 0"):
        train.run_in_processes([(math.pow, (2, 3), {})], workers=0)


# ----------------------------------------------------------------------------------------- metrics


def test_confusion_matrix_matches_a_loop():
    g = torch.Generator().manual_seed(8)
    pred, true = torch.randint(0, 4, (300,), generator=g), torch.randint(0, 6, (300,), generator=g)
    expected = torch.zeros(4, 6, dtype=torch.long)
    for p, t in zip(pred.tolist(), true.tolist()):
        expected[p, t] += 1
    assert torch.equal(classifier.confusion_matrix(pred, true, 4, 6), expected)
    with pytest.raises(ValueError, match=r"true must be in 0..5, got values in 0..6"):
        classifier.confusion_matrix(pred, torch.where(true == 2, 6, true), 4, 6)
    with pytest.raises(ValueError, match="integer tensors of the same shape"):
        classifier.confusion_matrix(pred.double(), true, 4, 6)
    with pytest.raises(ValueError, match="same shape"):
        classifier.confusion_matrix(pred, true[:10], 4, 6)


@pytest.mark.parametrize("n_classes", [4, 5])
def test_matched_accuracy_equals_brute_force_over_all_permutations(n_classes):
    g = torch.Generator().manual_seed(n_classes)
    for trial in range(5):
        true = torch.randint(0, n_classes, (60,), generator=g)
        noise = torch.randint(0, n_classes, (60,), generator=g)
        keep = torch.rand(60, generator=g) < 0.2 * trial  # from independent to mostly a relabelling
        perm = torch.randperm(n_classes, generator=g)
        pred = torch.where(keep, perm[true], noise)
        best = max(sum(int(perm_[p] == t) for p, t in zip(pred.tolist(), true.tolist()))
                   for perm_ in itertools.permutations(range(n_classes))) / 60
        out = classifier.matched_accuracy(pred, true, n_classes)
        assert out["accuracy"] == pytest.approx(best, abs=1e-12)
        # the mapping is a permutation that reaches that accuracy
        assert sorted(out["mapping"].tolist()) == list(range(n_classes))
        assert (out["mapping"][pred] == true).double().mean().item() == pytest.approx(best, abs=1e-12)


def test_matched_accuracy_is_one_for_a_permuted_perfect_labelling_and_chance_for_an_independent_code():
    g = torch.Generator().manual_seed(9)
    true = torch.randint(0, 10, (500,), generator=g)
    perm = torch.randperm(10, generator=g)
    out = classifier.matched_accuracy(perm[true], true)
    assert out["accuracy"] == 1.0 and torch.equal(out["mapping"][perm], torch.arange(10))
    for k in (3, 10):
        true = torch.randint(0, k, (100_000,), generator=g)
        code = torch.randint(0, k, (100_000,), generator=g)
        assert abs(classifier.matched_accuracy(code, true, k)["accuracy"] - 1 / k) < 0.01


def test_per_class_scores_see_a_collapse_within_classes():
    from gencourse import data

    x, y = data.mnist_tensors("test", verbose=False)
    net = scores.feature_net(verbose=False)
    halves, collapsed, labels = [], [], []
    for c in range(10):
        xc = x[y == c]
        second = xc[(len(xc) + 1) // 2 :]  # disjoint from the first real[:m] the function compares with
        halves.append(second)
        collapsed.append(second[:1].expand_as(second))  # one image per class, repeated
        labels.append(torch.full((len(second),), c))
    labels = torch.cat(labels)
    real = scores.per_class_scores(torch.cat(halves), labels, value_range="01", net=net)
    collapse = scores.per_class_scores(torch.cat(collapsed), labels, value_range="01", net=net)
    assert set(real) == {"fid", "recall", "precision", "per_class"} and real["per_class"]["recall"].shape == (10,)
    assert real["per_class"]["recall"].min() > 0.5 and real["recall"] > 0.7 and real["precision"] > 0.7
    assert collapse["recall"] < 0.05  # one style per class covers none of the other real images
    assert (collapse["per_class"]["fid"] > 2 * real["per_class"]["fid"]).all()
    assert real["recall"] == pytest.approx(real["per_class"]["recall"].mean().item())
    few = torch.cat([torch.cat(halves)[labels != 3], torch.cat(halves)[labels == 3][:3]])
    few_labels = torch.cat([labels[labels != 3], torch.full((3,), 3)])
    with pytest.raises(ValueError, match=r"class 3 has 3 samples .* need more than k = 3"):
        scores.per_class_scores(few, few_labels, value_range="01", net=net)
    with pytest.raises(ValueError, match=r"labels must be integers of shape \(N,\)"):
        scores.per_class_scores(torch.cat(halves), labels.double(), value_range="01", net=net)


# ----------------------------------------------------------------------------------------- recipes


def test_conditional_settings_reject_unknown_models_and_settings():
    from gencourse.recipes import conditional

    s = conditional.conditional_settings("acgan", steps=3)
    assert s["model"] == "acgan" and s["steps"] == 3 and s["n_classes"] == 10
    assert conditional.conditional_settings()["steps"] == 10  # the smoke budget
    with pytest.raises(ValueError, match="model must be one of 'cgan', 'projection', 'acgan', 'infogan', got 'bigan'"):
        conditional.conditional_settings("bigan")
    with pytest.raises(ValueError, match=r"unknown conditional GAN settings \['learning_rate'\]"):
        conditional.conditional_settings("cgan", learning_rate=1e-3)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        conditional.conditional_settings("cgan", steps=0)


@pytest.mark.parametrize("model", ["cgan", "projection", "acgan", "infogan"])
def test_conditional_mnist_trains_each_model_and_its_ema_generator_draws_images(model, tmp_path, monkeypatch):
    from gencourse.recipes import conditional

    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("GENCOURSE_RETRAIN", "0")
    modules, history = conditional.conditional_mnist(model, progress=False, steps=4, batch_size=16, snapshots=2)
    assert history.run["trained"] and len(history) == 4 and history.info["cpu_seconds"] > 0
    assert not modules["G_ema"].training
    assert any(not torch.equal(a, b) for a, b in zip(modules["G"].parameters(), modules["G_ema"].parameters()))
    g = torch.Generator().manual_seed(0)
    if model == "infogan":
        x = conditional.sample_infogan(modules["G_ema"], torch.arange(12) % 10, generator=g)
        expected_keys = {"loss_D", "info", "D_real", "D_fake", "loss_G"}
    else:
        x = conditional.sample_conditional(modules["G_ema"], torch.arange(12) % 10, generator=g)
        expected_keys = {"loss_D", "D_real", "D_fake", "loss_G"} | ({"acc_real", "acc_fake"} if model == "acgan" else set())
    assert set(history.losses) == expected_keys
    assert x.shape == (12, 1, 28, 28) and x.min() >= -1 and x.max() <= 1 and x.std() > 0
    record = modules["record"]
    assert record.steps.tolist() == [0, 4] and record.images.shape[1] == 10 * conditional.N_PER_CLASS


def test_conditional_models_trains_several_then_loads_them(tmp_path, monkeypatch):
    from gencourse.recipes import conditional

    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("GENCOURSE_RETRAIN", "0")
    overrides = {"steps": 3, "batch_size": 8, "snapshots": 2}
    paths = {m: train.checkpoint_path(m, conditional.conditional_settings(m, **overrides)) for m in ("cgan", "infogan")}
    assert not any(p.exists() for p in paths.values())
    out = conditional.conditional_models(("cgan", "infogan"), workers=1, **overrides)
    assert set(out) == {("cgan", 0), ("infogan", 0)} and all(p.exists() for p in paths.values())
    assert len(out["cgan", 0][1]) == 3 and len(out["infogan", 0][1]) == 3

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr(conditional, "train_conditional", no_training)
    again = conditional.conditional_models([("cgan", 0), ("infogan", 0)], workers=1, **overrides)
    for m in ("cgan", "infogan"):
        assert again[m, 0][1].run["trained"] is False and train.last_run_info(m)["trained"] is False
        for a, b in zip(out[m, 0][0]["G_ema"].state_dict().values(), again[m, 0][0]["G_ema"].state_dict().values()):
            assert torch.equal(a, b)
