"""The public checks of chapter 09 accept the right answers and reject the classic mistakes."""

import math

import pytest
import torch
import torch.nn.functional as F

from gencourse import losses, train
from gencourse.grading import check
from gencourse.grading import conditional_gans as cg
from gencourse.models import conditional

# ----------------------------------------------------------------------------- right answers


def right_condition_inputs(z, x, y, n_classes):
    e = F.one_hot(y, n_classes).to(z.dtype)
    maps = e.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
    return torch.cat([z, e], 1), torch.cat([x, maps], 1)


def library_condition_inputs(z, x, y, n_classes):
    e = conditional.one_hot(y, n_classes)
    return torch.cat([z, e], 1), torch.cat([x, e[:, :, None, None] * torch.ones_like(x)], 1)


def right_acgan_d_loss(src_real, cls_real, y_real, src_fake, cls_fake, y_fake):
    return (F.softplus(-src_real).mean() + F.softplus(src_fake).mean()
            + F.cross_entropy(cls_real, y_real) + F.cross_entropy(cls_fake, y_fake))


def right_acgan_g_loss(src_fake, cls_fake, y_fake):
    return F.softplus(-src_fake).mean() + F.cross_entropy(cls_fake, y_fake)


def right_info_loss(cat_logits, c_cat, mu, logvar, c_cont):
    nll = 0.5 * (math.log(2 * math.pi) + logvar + (c_cont - mu) ** 2 / logvar.exp())
    return F.cross_entropy(cat_logits, c_cat) + nll.sum(1).mean()


def _d_step_with(info, q_on="fake", lam=None):
    def step(G, D, opt_D, x_real, z, c_cat, c_cont, lambda_info=1.0):
        x_fake = G(z, c_cat, c_cont).detach()
        d_real, cat_r, mu_r, lv_r = D(x_real)
        d_fake, cat_f, mu_f, lv_f = D(x_fake)
        loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        lam_ = lambda_info if lam is None else lam
        if q_on == "fake":
            loss = loss + lam_ * info(cat_f, c_cat, mu_f, lv_f, c_cont)
        elif q_on == "real":
            loss = loss + lam_ * info(cat_r, c_cat, mu_r, lv_r, c_cont)
        elif q_on == "both":
            loss = loss + lam_ * (info(cat_f, c_cat, mu_f, lv_f, c_cont) + info(cat_r, c_cat, mu_r, lv_r, c_cont))
        opt_D.zero_grad()
        loss.backward()
        opt_D.step()
        return loss.item()
    return step


def d_step_not_detached(G, D, opt_D, x_real, z, c_cat, c_cont, lambda_info=1.0):
    d_real = D(x_real)[0]
    d_fake, cat_f, mu_f, lv_f = D(G(z, c_cat, c_cont))
    loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean() + lambda_info * right_info_loss(cat_f, c_cat, mu_f, lv_f, c_cont)
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return loss.item()


def test_right_answers_pass(capsys):
    assert check("conditional_gans.condition_inputs", right_condition_inputs)
    assert check("conditional_gans.condition_inputs", library_condition_inputs)
    assert check("conditional_gans.acgan_d_loss", right_acgan_d_loss)
    assert check("conditional_gans.acgan_d_loss", losses.acgan_d_loss)
    assert check("conditional_gans.acgan_g_loss", right_acgan_g_loss)
    assert check("conditional_gans.acgan_g_loss", losses.acgan_g_loss)
    assert check("conditional_gans.info_loss", right_info_loss)
    assert check("conditional_gans.info_loss", losses.infogan_info_loss)
    assert check("conditional_gans.infogan_d_step", _d_step_with(right_info_loss))
    assert check("conditional_gans.infogan_d_step",
                 lambda G, D, opt, x, z, c, cc, lambda_info=1.0: train.infogan_d_step(G, D, opt, x, z, c, cc, lambda_info=lambda_info)["loss_D"])
    mi, bound = cg.channel_answers()
    assert check("conditional_gans.channel_mi", mi, bound)
    assert check("conditional_gans.design", "B", "the class term v_y^T phi(x) depends on x")
    assert check("conditional_gans.design", " (b) ", "the projection has a feature-dependent class term")
    assert capsys.readouterr().out.count("✔") == 13


# ----------------------------------------------------------------------------- the reference values


def test_channel_answers_against_closed_forms():
    # independent: I = H(x) - H(x | c) with x uniform; the bound from the per-x posterior, which is the channel itself
    h = -(0.7 * math.log(0.7) + 3 * 0.1 * math.log(0.1))
    mi, bound = cg.channel_answers()
    assert mi == pytest.approx(math.log(4) - h, abs=1e-12)
    assert bound == pytest.approx(math.log(4) + 0.7 * math.log(0.4) + 0.3 * math.log(0.2), abs=1e-12)
    # the gap is the expected KL between the true posterior P(c | x) = (0.7, 0.1, 0.1, 0.1) and Q = (0.4, 0.2, 0.2, 0.2)
    kl = 0.7 * math.log(0.7 / 0.4) + 3 * 0.1 * math.log(0.1 / 0.2)
    assert mi - bound == pytest.approx(kl, abs=1e-12)
    # a right Q closes the gap (the library's bound, evaluated exactly on the 16 pairs with their probabilities)
    P = cg.channel_joint()
    c, x = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    logits = torch.log(P / P.sum(0, keepdim=True)).T[x.flatten()]  # log P(c | x) as class logits, one row per pair
    per_pair = -F.cross_entropy(logits, c.flatten(), reduction="none")
    assert math.log(4) + float((P.flatten() * per_pair).sum()) == pytest.approx(mi, abs=1e-12)


def test_info_reference_is_the_library_loss():
    args = cg._info_inputs(seed=11)
    assert float(cg._info_reference(*args)) == pytest.approx(float(losses.infogan_info_loss(*args)), rel=1e-12)


# ----------------------------------------------------------------------------- classic mistakes


def cond_raw_label(z, x, y, K):
    g_in, d_in = right_condition_inputs(z, x, y, K)
    return torch.cat([z, y[:, None].to(z.dtype)], 1), d_in


def cond_wrong_size(z, x, y, K):
    _, d_in = right_condition_inputs(z, x, y, K)
    return torch.cat([z, F.one_hot(y).to(z.dtype)], 1), d_in  # sized by the largest label of the batch


def cond_one_label_channel(z, x, y, K):
    g_in, _ = right_condition_inputs(z, x, y, K)
    return g_in, torch.cat([x, y.to(x.dtype)[:, None, None, None].expand_as(x)], 1)


def cond_pixel_maps(z, x, y, K):
    g_in, _ = right_condition_inputs(z, x, y, K)
    maps = torch.zeros(len(x), K, *x.shape[2:])
    maps[torch.arange(len(x)), y, 0, 0] = 1.0
    return g_in, torch.cat([x, maps], 1)


def cond_shifted_channel(z, x, y, K):
    g_in, _ = right_condition_inputs(z, x, y, K)
    e = F.one_hot((y + 1) % K, K).float()
    return g_in, torch.cat([x, e[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)


def cond_image_last(z, x, y, K):
    g_in, d_in = right_condition_inputs(z, x, y, K)
    return g_in, torch.cat([d_in[:, 1:], x], 1)


def acgan_d_with(fake_labels="given", terms=("S", "real", "fake")):
    def loss(src_real, cls_real, y_real, src_fake, cls_fake, y_fake):
        labels = {"given": y_fake, "real": y_real, "argmax": cls_fake.argmax(1)}[fake_labels]
        out = 0.0
        if "S" in terms:
            out = out + F.softplus(-src_real).mean() + F.softplus(src_fake).mean()
        if "real" in terms:
            out = out + F.cross_entropy(cls_real, y_real)
        if "fake" in terms:
            out = out + F.cross_entropy(cls_fake, labels)
        return out
    return loss


def info_with(log2pi=True, logvar_term=True, sign=1.0):
    def loss(cat_logits, c_cat, mu, logvar, c_cont):
        nll = 0.5 * (c_cont - mu) ** 2 / logvar.exp()
        if log2pi:
            nll = nll + 0.5 * math.log(2 * math.pi)
        if logvar_term:
            nll = nll + 0.5 * logvar
        return sign * (F.cross_entropy(cat_logits, c_cat) + nll.sum(1).mean())
    return loss


MI, BOUND = cg.channel_answers()


@pytest.mark.parametrize(
    "qid, args, message",
    [
        ("conditional_gans.condition_inputs", (cond_raw_label,), "appended as one number"),
        ("conditional_gans.condition_inputs", (cond_wrong_size,), "K = 10 entries"),
        ("conditional_gans.condition_inputs", (cond_one_label_channel,), "one channel holding the label"),
        ("conditional_gans.condition_inputs", (cond_pixel_maps,), "not constant"),
        ("conditional_gans.condition_inputs", (cond_shifted_channel,), "channel 1 \\+ y"),
        ("conditional_gans.condition_inputs", (cond_image_last,), "image comes first"),
        ("conditional_gans.acgan_d_loss", (acgan_d_with(fake_labels="real"),), "GIVEN TO G"),
        ("conditional_gans.acgan_d_loss", (acgan_d_with(fake_labels="argmax"),), "own guess"),
        ("conditional_gans.acgan_d_loss", (acgan_d_with(terms=("S", "real")),), "class loss of the fakes is missing"),
        ("conditional_gans.acgan_d_loss", (acgan_d_with(terms=("S", "fake")),), "real images is missing"),
        ("conditional_gans.acgan_d_loss", (acgan_d_with(terms=("real", "fake")),), "source loss"),
        ("conditional_gans.acgan_d_loss", (lambda *a: -right_acgan_d_loss(*a),), "sign is flipped"),
        ("conditional_gans.acgan_g_loss", (lambda s, c, y: -F.softplus(s).mean() + F.cross_entropy(c, y),), "saturating"),
        ("conditional_gans.acgan_g_loss", (lambda s, c, y: F.softplus(-s).mean(),), "class term is missing"),
        ("conditional_gans.acgan_g_loss", (lambda s, c, y: F.softplus(-s).mean() + F.cross_entropy(c, c.argmax(1)),), "own guess"),
        ("conditional_gans.acgan_g_loss", (lambda s, c, y: F.softplus(-s).mean() - F.cross_entropy(c, y),), "wrong sign"),
        ("conditional_gans.acgan_g_loss", (lambda s, c, y: right_acgan_g_loss(s, c, y).detach(),), "keep the graph"),
        ("conditional_gans.info_loss", (info_with(sign=-1.0),), "sign is flipped"),
        ("conditional_gans.info_loss", (info_with(log2pi=False),), "log 2 pi is missing"),
        ("conditional_gans.info_loss", (info_with(logvar_term=False),), "log-variance term is missing"),
        ("conditional_gans.info_loss", (info_with(log2pi=False, logvar_term=False),), "log-variance term and log 2 pi"),
        ("conditional_gans.info_loss", (lambda l, c, m, v, cc: F.cross_entropy(l, c) + (0.5 * (cc - m) ** 2).sum(1).mean(),),
         "squared error"),
        ("conditional_gans.info_loss", (lambda l, c, m, v, cc: F.cross_entropy(l, c) + losses.gaussian_nll(cc, m, v).mean() / 3,),
         "averaged over the codes"),
        ("conditional_gans.info_loss", (lambda l, c, m, v, cc: F.cross_entropy(l, c) + losses.gaussian_nll(cc, m, 2 * v).mean(),),
         "log sigma"),
        ("conditional_gans.info_loss", (lambda l, c, m, v, cc: F.cross_entropy(l, c),), "continuous term is missing"),
        ("conditional_gans.infogan_d_step", (_d_step_with(right_info_loss, q_on="real"),), "REAL images"),
        ("conditional_gans.infogan_d_step", (_d_step_with(right_info_loss, q_on="both"),), "both batches"),
        ("conditional_gans.infogan_d_step", (_d_step_with(right_info_loss, q_on="none"),), "information term is missing"),
        ("conditional_gans.infogan_d_step", (_d_step_with(info_with(sign=-1.0)),), "wrong sign"),
        ("conditional_gans.infogan_d_step", (_d_step_with(right_info_loss, lam=1.0),), "lambda_info is not applied"),
        ("conditional_gans.infogan_d_step", (d_step_not_detached,), "detach"),
        ("conditional_gans.channel_mi", (MI / math.log(2), BOUND), "bits"),
        ("conditional_gans.channel_mi", (math.log(4), BOUND), "H\\(c\\)"),
        ("conditional_gans.channel_mi", (MI, MI), "true mutual information"),
        ("conditional_gans.channel_mi", (MI, BOUND - math.log(4)), "alone"),
        ("conditional_gans.channel_mi", (MI, math.log(4) + (math.log(0.4) + 3 * math.log(0.2)) / 4), "INDEPENDENTLY"),
        ("conditional_gans.channel_mi", (MI, BOUND / math.log(2)), "bits"),
        ("conditional_gans.design", ("A", "a per-class bias is enough"), "per-class constant"),
        ("conditional_gans.design", ("C", "scaling by class is enough"), "multiple of the same function"),
        ("conditional_gans.design", ("B", ""), "reason"),
        ("conditional_gans.design", ("D", "none of them"), "one of"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, args, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, *args)


# ----------------------------------------------------------------------------- the training target


class _Oracle(torch.nn.Module):
    """G(z, y): a real test image of class y (the i-th one for the i-th request of that class)."""

    def __init__(self, x, y, shuffle_labels=False):
        super().__init__()
        self.x, self.y, self.shuffle = x, y, shuffle_labels

    def forward(self, z, labels):
        out = torch.empty(len(labels), 1, 28, 28)
        for c in range(10):
            want = (labels + 3) % 10 if self.shuffle else labels
            idx = (want == c).nonzero().flatten()
            pool = self.x[self.y == c]
            out[idx] = pool[torch.arange(len(idx)) % len(pool)]
        return out


def test_training_check_reads_the_classifier(monkeypatch):
    from gencourse import data

    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    x, y = data.mnist_tensors("test", value_range="pm1", source="embedded", verbose=False)
    losses_D = [1.4, 1.2, 1.0, 1.1, 0.9, 0.8]
    assert check("conditional_gans.conditional_generator", _Oracle(x, y), losses_D, 64)
    with pytest.raises(AssertionError, match="not the ones asked for"):
        check("conditional_gans.conditional_generator", _Oracle(x, y, shuffle_labels=True), losses_D, 64)
    with pytest.raises(AssertionError, match="append the discriminator's loss as a float"):
        check("conditional_gans.conditional_generator", _Oracle(x, y), [torch.tensor(1.0)] * 6, 64)
    with pytest.raises(AssertionError, match="shape"):
        check("conditional_gans.conditional_generator", lambda z, labels: torch.zeros(len(z), 28, 28), losses_D, 64)
