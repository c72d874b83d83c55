"""Public checks for the exercises of chapter 09 (conditional GANs).

Each check computes its reference itself (in float64 where it matters) and names the classic
mistake it sees: a raw integer label appended instead of a one-hot vector, a one-hot of the wrong
size, label maps that are not constant or sit in the wrong channel; ACGAN's class loss of the fakes
computed with the real batch's labels or with the discriminator's own argmax, a missing term, the
saturating generator loss; InfoGAN's information term with its sign flipped, without
:math:`\\log 2\\pi` or without the log-variance; Q's loss computed on the real images instead of
the generated ones; the mutual information in bits, or the bound averaged over the wrong
distribution; a discriminator design that cannot represent the optimal conditional logit.
"""

from __future__ import annotations

import math

from .checks import diagnose, expect, expect_close, register

# ------------------------------------------------------------------------------ 1. conditioning


def _one_hot(y, K: int):
    import torch

    out = torch.zeros(len(y), K)
    out[torch.arange(len(y)), y] = 1.0
    return out


@register("conditional_gans.condition_inputs")
def _condition_inputs(condition_inputs):
    import torch

    g = torch.Generator().manual_seed(0)
    B, d, K = 6, 5, 10
    z = torch.randn(B, d, generator=g)
    x = torch.rand(B, 1, 28, 28, generator=g) * 2 - 1
    y = torch.tensor([3, 0, 8, 3, 7, 1])  # no 9: F.one_hot(y) without num_classes would have 9 columns
    out = condition_inputs(z, x, y, K)
    expect(isinstance(out, (tuple, list)) and len(out) == 2,
           f"condition_inputs must return a pair (g_in, d_in), got {type(out).__name__}")
    g_in, d_in = out
    expect(isinstance(g_in, torch.Tensor) and isinstance(d_in, torch.Tensor), "g_in and d_in must be torch tensors")
    expect(g_in.ndim == 2 and len(g_in) == B, f"g_in must have shape (B, d + K) = ({B}, {d + K}), got {tuple(g_in.shape)}")
    expect(g_in.shape[1] != d + 1,
           f"g_in has shape {tuple(g_in.shape)}: the label was appended as one number; append its one-hot vector e_y "
           f"(K = {K} entries, a single 1 at index y)")
    expect(g_in.shape[1] == d + K,
           f"g_in has shape {tuple(g_in.shape)}, expected ({B}, {d + K}): the one-hot vector has K = {K} entries "
           "(one per class, classes 0..K-1), whatever labels the batch holds: F.one_hot(y, K), not F.one_hot(y)")
    expect(g_in.is_floating_point(), f"g_in must be a float tensor (the input of a network), got {g_in.dtype}")
    expect_close(g_in[:, :d], z, what="g_in[:, :d]", rtol=0, atol=0, hint="g_in = [z, e_y]: z first, unchanged")
    expect_close(g_in[:, d:], _one_hot(y, K), what="g_in[:, d:] (the label part)", rtol=0, atol=0,
                 hint="the one-hot vector e_y: a 1 at column y, zeros elsewhere (F.one_hot(y, K).float())")
    expect(d_in.shape[:1] == (B,) and d_in.shape[2:] == (28, 28),
           f"d_in must have shape (B, 1 + K, 28, 28) = ({B}, {1 + K}, 28, 28), got {tuple(d_in.shape)}")
    expect(d_in.shape[1] != 2,
           f"d_in has shape {tuple(d_in.shape)}: one channel holding the label's value is not a one-hot code; "
           f"join K = {K} constant maps, map k all ones if k == y, else all zeros")
    expect(d_in.shape[1] == 1 + K, f"d_in has shape {tuple(d_in.shape)}, expected ({B}, {1 + K}, 28, 28): the image's "
           f"channel, then K = {K} label maps")
    expect(d_in.is_floating_point(), f"d_in must be a float tensor, got {d_in.dtype}")
    maps = d_in[:, 1:]
    if torch.equal(d_in[:, -1:], x) and not torch.equal(d_in[:, :1], x):
        expect(False, "d_in puts the image last: the image comes first, d_in = [x, maps] (channel 0 is x)")
    expect_close(d_in[:, :1], x, what="d_in[:, :1] (the image channel)", rtol=0, atol=0, hint="d_in = [x, maps]: x first, unchanged")
    constant = bool((maps == maps[:, :, :1, :1]).all())
    expect(constant, "the label maps are not constant over the image: each of the K maps must be all ones or all zeros "
           "(e_y[:, :, None, None].expand(-1, -1, 28, 28)), not a one-hot placed in a few pixels")
    expect_close(maps[:, :, 0, 0], _one_hot(y, K), what="the label maps' values (d_in[:, 1:, 0, 0])", rtol=0, atol=0,
                 hint="map k is all ones where k == y and all zeros elsewhere: the ones must be in channel 1 + y")
    single = condition_inputs(z[:1], x[:1], y[:1], K)
    expect(torch.equal(single[0], g_in[:1]) and torch.equal(single[1], d_in[:1]),
           "each image's input must depend only on its own z, x and y (no statistics over the batch; "
           "F.one_hot(y, K) with K given, not sized by the batch's largest label)")


# ------------------------------------------------------------------------------ 2. ACGAN losses


def _acgan_inputs():
    import torch

    g = torch.Generator().manual_seed(1)
    B, K = 8, 5
    src_real, src_fake = 2 * torch.randn(B, generator=g, dtype=torch.float64), 2 * torch.randn(B, generator=g, dtype=torch.float64)
    cls_real, cls_fake = torch.randn(B, K, generator=g, dtype=torch.float64), torch.randn(B, K, generator=g, dtype=torch.float64)
    y_real = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    y_fake = torch.tensor([4, 3, 0, 1, 2, 2, 4, 3])
    # the class head's own guesses for the fakes differ from the labels given to G
    cls_fake[torch.arange(B), (y_fake + 1) % K] += 3.0
    return src_real, cls_real, y_real, src_fake, cls_fake, y_fake


def _ce(logits, y):
    return -logits.log_softmax(1)[range(len(y)), y].mean()


def _softplus(t):
    import torch

    return torch.nn.functional.softplus(t)


@register("conditional_gans.acgan_d_loss")
def _acgan_d_loss(acgan_d_loss):
    import torch

    src_real, cls_real, y_real, src_fake, cls_fake, y_fake = _acgan_inputs()
    got = acgan_d_loss(src_real, cls_real, y_real, src_fake, cls_fake, y_fake)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0,
           f"acgan_d_loss must return a scalar tensor, got {getattr(got, 'shape', type(got).__name__)}")
    l_s = _softplus(-src_real).mean() + _softplus(src_fake).mean()  # -L_S
    c_real, c_fake = _ce(cls_real, y_real), _ce(cls_fake, y_fake)
    want = l_s + c_real + c_fake
    diagnose(got, {
        "the class loss of the fakes uses the real batch's labels: a fake's class is the label GIVEN TO G (y_fake)":
            l_s + c_real + _ce(cls_fake, y_real),
        "the class loss of the fakes uses the discriminator's own guess (argmax): use the labels given to G (y_fake)":
            l_s + c_real + _ce(cls_fake, cls_fake.argmax(1)),
        "the class loss of the fakes is missing: ACGAN's L_C has two terms, the discriminator also classifies the fakes "
        "(with the labels given to G)": l_s + c_real,
        "the class loss of the real images is missing: L_C = E log P(C = c | X_real) + E log P(C = c | X_fake)": l_s + c_fake,
        "the source loss -L_S is missing: the discriminator also tells real from fake": c_real + c_fake,
        "the sign is flipped: return -(L_S + L_C), the quantity to MINIMISE": -want,
        "the source terms have their labels swapped: real images are labelled 1, fakes 0":
            _softplus(src_real).mean() + _softplus(-src_fake).mean() + c_real + c_fake,
    }, "acgan_d_loss", expected=want)
    expect_close(got, want, what="acgan_d_loss", rtol=1e-6,
                 hint="softplus(-src_real).mean() + softplus(src_fake).mean() + CE(cls_real, y_real) + CE(cls_fake, y_fake)")
    d = src_fake.clone().requires_grad_(True)
    expect(acgan_d_loss(src_real, cls_real, y_real, d, cls_fake, y_fake).requires_grad,
           "acgan_d_loss must keep the graph (no .item(), .detach() or NumPy)")
    big = acgan_d_loss(torch.full((2,), -200.0), cls_real[:2], y_real[:2], torch.full((2,), 200.0), cls_fake[:2], y_fake[:2])
    expect(bool(torch.isfinite(big)), "acgan_d_loss is not finite for logits of +-200: use softplus / cross_entropy, not log(sigmoid)")


@register("conditional_gans.acgan_g_loss")
def _acgan_g_loss(acgan_g_loss):
    import torch

    *_, src_fake, cls_fake, y_fake = _acgan_inputs()
    got = acgan_g_loss(src_fake, cls_fake, y_fake)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0,
           f"acgan_g_loss must return a scalar tensor, got {getattr(got, 'shape', type(got).__name__)}")
    ns, c = _softplus(-src_fake).mean(), _ce(cls_fake, y_fake)
    want = ns + c
    diagnose(got, {
        "this is the saturating (minimax) loss log(1 - D(G(z))): use the non-saturating -log D(G(z)) = softplus(-src_fake)":
            -_softplus(src_fake).mean() + c,
        "the class loss uses the discriminator's own guess (argmax): use the labels given to G":
            ns + _ce(cls_fake, cls_fake.argmax(1)),
        "the class term is missing: G must also make its images classified as the label it was given": ns,
        "the class term has the wrong sign: G MAXIMISES L_C, so it minimises the cross-entropy, like D": ns - c,
        "the source term is missing: G must also fool the real/fake head": c,
    }, "acgan_g_loss", expected=want)
    expect_close(got, want, what="acgan_g_loss", rtol=1e-6,
                 hint="softplus(-src_fake).mean() + cross_entropy(cls_fake, y_fake)")
    d = src_fake.clone().requires_grad_(True)
    loss = acgan_g_loss(d, cls_fake, y_fake)
    expect(loss.requires_grad, "acgan_g_loss must keep the graph (no .item(), .detach() or NumPy)")
    (grad,) = torch.autograd.grad(loss, d)
    expect_close(grad, -torch.sigmoid(-src_fake) / len(src_fake), what="the gradient of acgan_g_loss with respect to src_fake",
                 rtol=1e-6, atol=1e-12, hint="the non-saturating loss: d/ds softplus(-s) = -sigmoid(-s), averaged over the batch")


# ------------------------------------------------------------------------------ 3. InfoGAN


def _info_inputs(seed: int = 2, B: int = 7, K: int = 4, n: int = 3):
    import torch

    g = torch.Generator().manual_seed(seed)
    cat_logits = 2 * torch.randn(B, K, generator=g, dtype=torch.float64)
    c_cat = torch.randint(0, K, (B,), generator=g)
    mu = torch.randn(B, n, generator=g, dtype=torch.float64)
    logvar = torch.randn(B, n, generator=g, dtype=torch.float64)
    c_cont = 2 * torch.rand(B, n, generator=g, dtype=torch.float64) - 1
    return cat_logits, c_cat, mu, logvar, c_cont


def _info_reference(cat_logits, c_cat, mu, logvar, c_cont, *, log2pi=True, logvar_term=True, sigma_not_var=False):
    var = logvar.exp() ** 2 if sigma_not_var else logvar.exp()
    nll = 0.5 * ((c_cont - mu) ** 2 / var)
    if logvar_term:
        nll = nll + (logvar if not sigma_not_var else 2 * logvar) * 0.5
    if log2pi:
        nll = nll + 0.5 * math.log(2 * math.pi)
    return _ce(cat_logits, c_cat) + nll.sum(1).mean()


@register("conditional_gans.info_loss")
def _info_loss(info_loss):
    import torch

    args = _info_inputs()
    got = info_loss(*args)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0,
           f"info_loss must return a scalar tensor, got {getattr(got, 'shape', type(got).__name__)}")
    want = _info_reference(*args)
    cat_logits, c_cat, mu, logvar, c_cont = args
    diagnose(got, {
        "the sign is flipped: return the loss to MINIMISE, minus the log-likelihood of the codes under Q":
            -want,
        "log 2 pi is missing from the Gaussian's negative log-density: "
        "-log N(c; mu, sigma^2) = (log 2 pi + log sigma^2 + (c - mu)^2 / sigma^2) / 2": _info_reference(*args, log2pi=False),
        "the log-variance term is missing: -log N(c; mu, sigma^2) includes (log sigma^2) / 2, which keeps sigma from growing "
        "without bound": _info_reference(*args, logvar_term=False),
        "the log-variance term and log 2 pi are missing: -log N(c; mu, sigma^2) = (log 2 pi + log sigma^2 + "
        "(c - mu)^2 / sigma^2) / 2": _info_reference(*args, log2pi=False, logvar_term=False),
        "the continuous term is the squared error (c - mu)^2 / 2, as if sigma = 1: Q predicts a variance too, so divide by "
        "sigma^2 = exp(logvar) and add (log 2 pi + logvar) / 2": _ce(cat_logits, c_cat) + (0.5 * (c_cont - mu) ** 2).sum(1).mean(),
        "logvar is read as log sigma: it is log sigma^2, so sigma^2 = exp(logvar)": _info_reference(*args, sigma_not_var=True),
        "the continuous codes' terms are averaged over the codes: sum them over the codes (the density of the vector is the "
        "product of the per-code densities), then average over the batch":
            _ce(cat_logits, c_cat) + (_info_reference(*args) - _ce(cat_logits, c_cat)) / c_cont.shape[1],
        "the categorical term is missing: the cross-entropy of the categorical code under Q": want - _ce(cat_logits, c_cat),
        "the continuous term is missing: add the Gaussian negative log-density of c_cont": _ce(cat_logits, c_cat),
    }, "info_loss", expected=want)
    expect_close(got, want, what="info_loss", rtol=1e-9, atol=1e-12,
                 hint="cross_entropy(cat_logits, c_cat) + mean over the batch of the sum over codes of "
                      "(log 2 pi + logvar + (c_cont - mu)^2 / exp(logvar)) / 2")
    mu_g = mu.clone().requires_grad_(True)
    expect(info_loss(cat_logits, c_cat, mu_g, logvar, c_cont).requires_grad,
           "info_loss must keep the graph (no .item(), .detach() or NumPy)")


def _toy_info_nets(K: int = 3, n: int = 2, d: int = 4, side: int = 3, seed: int = 3):
    """A linear InfoGAN generator and a small discriminator with Q on its body, for the step check."""
    import torch
    from torch import nn

    class ToyG(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(d + K + n, side * side)

        def forward(self, z, c_cat, c_cont):
            e = torch.nn.functional.one_hot(c_cat, K).to(z)
            return torch.tanh(self.lin(torch.cat([z, e, c_cont], 1))).view(-1, 1, side, side)

    class ToyD(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(side * side, 8), nn.LeakyReLU(0.2))
            self.source = nn.Linear(8, 1)
            self.q = nn.Linear(8, K + 2 * n)

        def forward(self, x):
            h = self.body(x)
            cat_logits, mu, logvar = self.q(h).split([K, n, n], dim=1)
            return self.source(h).flatten(), cat_logits, mu, logvar

    torch.manual_seed(seed)
    return ToyG().double(), ToyD().double()


def _reference_d_step(G, D, x_real, z, c_cat, c_cont, lambda_info, *, q_on="fake", info_sign=1.0):
    """One SGD step of D on a copy; returns the copy and the loss."""
    import copy

    import torch

    D = copy.deepcopy(D)
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    with torch.no_grad():
        x_fake = G(z, c_cat, c_cont)
    d_real, cat_r, mu_r, lv_r = D(x_real)
    d_fake, cat_f, mu_f, lv_f = D(x_fake)
    loss = _softplus(-d_real).mean() + _softplus(d_fake).mean()
    if q_on == "fake":
        loss = loss + info_sign * lambda_info * _info_reference(cat_f, c_cat, mu_f, lv_f, c_cont)
    elif q_on == "real":
        loss = loss + info_sign * lambda_info * _info_reference(cat_r, c_cat, mu_r, lv_r, c_cont)
    elif q_on == "both":
        loss = loss + info_sign * lambda_info * (_info_reference(cat_f, c_cat, mu_f, lv_f, c_cont)
                                                 + _info_reference(cat_r, c_cat, mu_r, lv_r, c_cont))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return D, float(loss.detach())


def _same_params(a, b, rtol=1e-6, atol=1e-9) -> bool:
    import torch

    return all(torch.allclose(p.detach().double(), q.detach().double(), rtol=rtol, atol=atol)
               for p, q in zip(a.parameters(), b.parameters()))


@register("conditional_gans.infogan_d_step")
def _infogan_d_step(infogan_d_step):
    import copy

    import torch

    K, n, d, side, B = 3, 2, 4, 3, 16
    G, D = _toy_info_nets(K, n, d, side)
    g = torch.Generator().manual_seed(4)
    x_real = torch.rand(B, 1, side, side, generator=g, dtype=torch.float64) * 2 - 1
    z = torch.randn(B, d, generator=g, dtype=torch.float64)
    c_cat = torch.randint(0, K, (B,), generator=g)
    c_cont = 2 * torch.rand(B, n, generator=g, dtype=torch.float64) - 1
    lambda_info = 2.0
    G_before = [p.detach().clone() for p in G.parameters()]
    D_start = copy.deepcopy(D)
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    got = infogan_d_step(G, D, opt, x_real, z, c_cat, c_cont, lambda_info=lambda_info)
    expect(all(torch.equal(a, b) for a, b in zip(G.parameters(), G_before)), "the discriminator's step changed G: step opt_D only")
    expect(all(p.grad is None or float(p.grad.abs().max()) == 0 for p in G.parameters()),
           "G received gradients in the discriminator's step: detach the generated batch, x_fake = G(z, c_cat, c_cont).detach()")
    want_D, want_loss = _reference_d_step(G, D_start, x_real, z, c_cat, c_cont, lambda_info)
    if not _same_params(D, want_D):
        mistakes = {
            "Q's loss is computed on the REAL images: real images have no codes; compute it on the generated batch "
            "G(z, c_cat, c_cont), whose codes you know": dict(q_on="real"),
            "Q's loss is computed on both batches: only the generated images have codes; use Q's outputs on x_fake only":
                dict(q_on="both"),
            "the information term is missing: add lambda_info * info_loss(Q's outputs on the fakes, c_cat, c_cont)":
                dict(q_on="none"),
            "the information term has the wrong sign: D and Q MINIMISE info_loss (they maximise the bound)":
                dict(info_sign=-1.0),
        }
        for hint, kw in mistakes.items():
            if _same_params(D, _reference_d_step(G, D_start, x_real, z, c_cat, c_cont, lambda_info, **kw)[0]):
                expect(False, hint)
        if _same_params(D, _reference_d_step(G, D_start, x_real, z, c_cat, c_cont, 1.0)[0]):
            expect(False, "lambda_info is not applied: the loss is L_D + lambda_info * info_loss")
        for (name, p), q in zip(D.named_parameters(), want_D.parameters()):
            expect_close(p.detach(), q.detach(), what=f"D's parameter {name} after one SGD step", rtol=1e-6, atol=1e-9,
                         hint="minimise softplus(-d_real).mean() + softplus(d_fake).mean() + lambda_info * "
                              "info_loss(cat_logits, c_cat, mu, logvar, c_cont), Q's outputs taken on the detached fakes")
    expect(isinstance(got, float) and not isinstance(got, bool),
           f"infogan_d_step must return the loss as a Python float (loss.item()), got {type(got).__name__}")
    expect_close(got, want_loss, what="the loss infogan_d_step returns", rtol=1e-6)


# ------------------------------------------------------------------------------ 4. derive: I(c; x)


def channel_joint(K: int = 4, p: float = 0.7):
    """The joint P(c, x) of the exercise's channel: c uniform on K values, x = c with probability
    p, else uniform over the other K - 1 values. A (K, K) float64 tensor, rows c, columns x."""
    import torch

    cond = torch.full((K, K), (1 - p) / (K - 1), dtype=torch.float64)
    cond.fill_diagonal_(p)
    return cond / K


def wrong_q(K: int = 4, q: float = 0.4):
    """The exercise's recognition network Q(c | x): q on c = x, the rest spread evenly. Rows x, columns c."""
    import torch

    Q = torch.full((K, K), (1 - q) / (K - 1), dtype=torch.float64)
    Q.fill_diagonal_(q)
    return Q


def channel_answers(K: int = 4, p: float = 0.7, q: float = 0.4) -> tuple[float, float]:
    """``(I(c; x), H(c) + E log Q(c | x))`` in nats, from the joint by definition (sums over all pairs)."""
    P = channel_joint(K, p)
    pc, px = P.sum(1), P.sum(0)
    mi = sum(float(P[c, x] * math.log(P[c, x] / (pc[c] * px[x]))) for c in range(K) for x in range(K) if P[c, x] > 0)
    Q = wrong_q(K, q)
    h_c = -sum(float(pc[c] * math.log(pc[c])) for c in range(K))
    bound = h_c + sum(float(P[c, x] * math.log(Q[x, c])) for c in range(K) for x in range(K))
    return mi, bound


def _number(value, name: str) -> float:
    import numbers

    try:
        import torch

        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
    except ImportError:  # pragma: no cover
        pass
    expect(isinstance(value, numbers.Real) and not isinstance(value, bool), f"{name} must be a number (a float), got {type(value).__name__}")
    expect(math.isfinite(float(value)), f"{name} is not finite: {value}")
    return float(value)


@register("conditional_gans.channel_mi")
def _channel_mi(mi_channel, bound_wrong_q):
    mi, bound = channel_answers()
    got_mi, got_bound = _number(mi_channel, "mi_channel"), _number(bound_wrong_q, "bound_wrong_q")
    h_c = math.log(4)
    h_x_given_c = -(0.7 * math.log(0.7) + 0.3 * math.log(0.1))
    wrong_mi = {
        "this is the value in bits: use natural logarithms (nats)": mi / math.log(2),
        "this is H(c), the entropy of the code: subtract H(c | x) (or compute H(x) - H(x | c))": h_c,
        "this is H(x | c), the noise of the channel: I(c; x) = H(x) - H(x | c)": h_x_given_c,
        "the sign is flipped: I(c; x) = H(x) - H(x | c) >= 0": -mi,
    }
    for hint, value in wrong_mi.items():
        expect(abs(got_mi - value) > 1e-3, f"mi_channel = {got_mi:.4f}: {hint}")
    expect(got_mi >= 0, f"mi_channel = {got_mi:.4f}: a mutual information is never negative")
    expect(abs(got_mi - mi) < 1e-3, f"mi_channel = {got_mi:.4f} is not I(c; x) of this channel: "
           "I(c; x) = H(x) - H(x | c), with x uniform by symmetry and H(x | c) the entropy of (0.7, 0.1, 0.1, 0.1)")
    e_log_q = bound - h_c
    wrong_bound = {
        "this is the value in bits: use natural logarithms (nats)": bound / math.log(2),
        "this is E log Q(c | x) alone: the bound is H(c) + E log Q(c | x)": e_log_q,
        "this is the true mutual information: with the wrong Q the bound is lower by E_x KL(P(c | x) || Q(c | x))": mi,
        "the expectation is over c and x drawn INDEPENDENTLY (each pair 1/16): draw them from the channel, "
        "P(c, x) = P(c) P(x | c)": h_c + sum(math.log(float(wrong_q()[x, c])) for c in range(4) for x in range(4)) / 16,
        "this is the gap I(c; x) - bound, not the bound": mi - bound,
    }
    for hint, value in wrong_bound.items():
        expect(abs(got_bound - value) > 1e-3, f"bound_wrong_q = {got_bound:.4f}: {hint}")
    expect(got_bound <= got_mi + 1e-9, f"bound_wrong_q = {got_bound:.4f} exceeds mi_channel = {got_mi:.4f}: "
           "H(c) + E log Q(c | x) is a LOWER bound on I(c; x) for every Q")
    expect(abs(got_bound - bound) < 1e-3, f"bound_wrong_q = {got_bound:.4f} is not H(c) + E log Q(c | x) for this Q: "
           "average log Q(c | x) over the channel's pairs, P(c, x) = P(c) P(x | c)")


# ------------------------------------------------------------------------------ 5. decide: a design


DESIGN_ANSWER = "B"
_DESIGN_WHY = {
    "A": "design A adds a per-class constant b_y: the difference between two classes' logits, b_y - b_y', is the same for "
         "every image, but the optimal one is (v_y - v_y')^T phi(x), which changes with x",
    "C": "design C scales one function of x per class: the difference between two classes' logits is (s_y - s_y') psi(phi(x)), "
         "a multiple of the same function for every pair of classes, but the optimal one is (v_y - v_y')^T phi(x), a "
         "different linear function of the features for each pair",
}


@register("conditional_gans.design")
def _design(design, reason):
    expect(isinstance(design, str), f"design must be a letter as a string ('A', 'B' or 'C'), got {type(design).__name__}")
    letter = design.strip().strip("().").strip().upper()
    expect(letter in ("A", "B", "C"), f"design must be one of 'A', 'B', 'C', got {design!r}")
    expect(isinstance(reason, str) and len(reason.strip()) >= 10,
           "reason must say in one line why (a string of at least a few words)")
    expect(letter == DESIGN_ANSWER, f"{_DESIGN_WHY.get(letter, '')}: write the optimal logit r(x, y) with the family's "
           "posteriors and see which design has a class term that depends on the features")


# ------------------------------------------------------------------------------ 6. train: a cGAN

#: conditional accuracy that the generator must reach (graded under the cpu profile)
ACCURACY_TARGET = 0.80
N_PER_CLASS = 100


def conditional_accuracy_of(G, latent_dim: int, seed: int, n_per_class: int = N_PER_CLASS, n_classes: int = 10) -> tuple[float, dict]:
    """Samples of ``G(z, y)`` for ``n_per_class`` labels of each class, ``z`` from a fresh
    generator seeded with ``seed``; returns the classifier's conditional accuracy and its class coverage."""
    import torch

    from gencourse import metrics

    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    z = torch.randn(len(y), latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        x = G(z, y)
    expect(isinstance(x, torch.Tensor) and tuple(x.shape) == (len(y), 1, 28, 28),
           f"G(z, y) for z of shape ({len(y)}, {latent_dim}) and y of shape ({len(y)},) must return images of shape "
           f"({len(y)}, 1, 28, 28), got {tuple(getattr(x, 'shape', ())) or type(x).__name__}")
    expect(bool(torch.isfinite(x).all()), "G's samples are not finite")
    logits = metrics.embed(x.float().cpu(), value_range="pm1", clamp=True)[1]
    return metrics.conditional_accuracy(logits, y), metrics.class_coverage(logits)


@register("conditional_gans.conditional_generator")
def _conditional_generator(G, losses_D, latent_dim=64):
    from ._training import expect_target, profile

    expect(isinstance(losses_D, (list, tuple)), f"losses_D must be a list of floats, got {type(losses_D).__name__}")
    values = []
    for i, v in enumerate(losses_D):
        expect(isinstance(v, (int, float)) and not isinstance(v, bool),
               f"losses_D[{i}] is a {type(v).__name__}: append the discriminator's loss as a float (d_step(...)['loss_D'])")
        values.append(float(v))
    expect(len(values) >= 5 and all(math.isfinite(v) for v in values),
           f"losses_D must hold a finite loss for every discriminator step, got {len(values)} values")
    if profile() == "smoke":
        expect(min(values) < values[0], "the discriminator's loss never went below its first value: does D learn?")
    accuracy, coverage = conditional_accuracy_of(G, int(latent_dim), seed=0)
    hint = "train with larger learning rates, or check the labels"
    if accuracy < ACCURACY_TARGET and coverage["class_entropy"] > 1.8:
        hint = ("G draws digits of many classes, but not the ones asked for: D must see each real image with ITS OWN label "
                "(y_real) and each fake with the label given to G (y_fake)")
    elif accuracy < ACCURACY_TARGET:
        hint = ("G draws few classes: learning rates of about 2e-3 with Adam (beta1 = 0.5) and the projection "
                "discriminator learn the condition within the budget")
    expect_target(accuracy, ACCURACY_TARGET, what="fraction of G(z, y) that the classifier labels y (100 samples per class)",
                  below=False, hint=hint)
