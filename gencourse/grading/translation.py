"""Public checks for the exercises of chapter 10 (image-to-image translation).

Each check computes its reference itself (in float64 where it matters) and names the classic
mistake it sees: pix2pix's L1 term computed against the source instead of the paired target,
summed instead of averaged, or with lambda on the wrong term, and the saturating GAN term; a
discriminator that sees only the image instead of the pair [source, image], sees the pair in the
wrong order, or a fake that is not detached; the two generators composed in the wrong order in the
cycle, the identity loss fed the generator's own input domain, squared instead of absolute errors;
a receptive field computed from the first layer forward or off by one, a PatchGAN's output size
without the padding; a loss term credited with catching a translation it is blind to; and a
trained generator that copies its input or loses the digit.
"""

from __future__ import annotations

import math
import numbers

from .checks import diagnose, expect, expect_close, register


def _softplus(t):
    import torch

    return torch.nn.functional.softplus(t)


# ------------------------------------------------------------------------------ 1. pix2pix's G loss


def _g_loss_inputs():
    import torch

    g = torch.Generator().manual_seed(10)
    B, side, patches = 4, 6, 3
    d_fake = 2 * torch.randn(B, 1, patches, patches, generator=g, dtype=torch.float64)
    source = (torch.rand(B, 1, side, side, generator=g, dtype=torch.float64) > 0.7).double() * 2 - 1  # an edge map
    fake = torch.tanh(torch.randn(B, 1, side, side, generator=g, dtype=torch.float64))
    target = torch.rand(B, 1, side, side, generator=g, dtype=torch.float64) * 2 - 1
    return d_fake, source, fake, target


@register("translation.pix2pix_g_loss")
def _pix2pix_g_loss(pix2pix_g_loss):
    import torch

    d_fake, source, fake, target = _g_loss_inputs()
    lam = 7.0
    got = pix2pix_g_loss(d_fake, source, fake, target, lambda_l1=lam)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0,
           f"pix2pix_g_loss must return a scalar tensor, got {getattr(got, 'shape', type(got).__name__)}")
    ns = _softplus(-d_fake).mean()
    err = (fake - target).abs()
    l1 = err.mean()
    want = ns + lam * l1
    diagnose(got, {
        "the L1 term compares G(x) with the SOURCE x: it must compare it with the paired TARGET y, the image G should "
        "produce (|G(x) - x| asks G to copy its input)": ns + lam * (fake - source).abs().mean(),
        "the L1 term is a sum over the pixels: take the mean over all pixels and images (the convention under which "
        "lambda = 100 was chosen)": ns + lam * err.sum(),
        "the L1 term is summed over each image's pixels, then averaged over the batch: take the mean over all pixels":
            ns + lam * err.flatten(1).sum(1).mean(),
        "lambda multiplies the GAN term: it weighs the L1 term, L_GAN + lambda * L1": lam * ns + l1,
        "lambda multiplies both terms: it weighs the L1 term only, L_GAN + lambda * L1": lam * (ns + l1),
        "lambda_l1 is not applied: L_GAN + lambda * L1": ns + l1,
        "this is the saturating (minimax) GAN term log(1 - D): use the non-saturating -log D(x, G(x)) = softplus(-d_fake)":
            -_softplus(d_fake).mean() + lam * l1,
        "the GAN term is the discriminator's loss on the fakes, softplus(d_fake): the generator wants D to say REAL, "
        "-log sigmoid(d_fake) = softplus(-d_fake)": _softplus(d_fake).mean() + lam * l1,
        "the GAN term is summed over the patches: a PatchGAN's logits are averaged over patches and images":
            _softplus(-d_fake).flatten(1).sum(1).mean() + lam * l1,
        "the L1 term is a squared error: pix2pix uses the absolute error |y - G(x)| (L2 blurs more)":
            ns + lam * ((fake - target) ** 2).mean(),
        "the GAN term is missing: L_G = softplus(-d_fake).mean() + lambda * L1": lam * l1,
        "the L1 term is missing: L_G = softplus(-d_fake).mean() + lambda * mean|target - fake|": ns,
        "the L1 term is the mean absolute difference between the target and the SOURCE: G(x) must appear in it":
            ns + lam * (target - source).abs().mean(),
    }, "pix2pix_g_loss", expected=want)
    expect_close(got, want, what="pix2pix_g_loss(..., lambda_l1=7)", rtol=1e-9, atol=1e-12,
                 hint="softplus(-d_fake).mean() + lambda_l1 * (fake - target).abs().mean()")
    default = pix2pix_g_loss(d_fake, source, fake, target)
    expect_close(default, ns + 100.0 * l1, what="pix2pix_g_loss without lambda_l1", rtol=1e-9, atol=1e-12,
                 hint="the default lambda_l1 is pix2pix's 100")
    f = fake.clone().requires_grad_(True)
    d = torch.full_like(d_fake, -30.0).requires_grad_(True)  # D is sure that every patch is fake
    loss = pix2pix_g_loss(d, source, f, target, lambda_l1=lam)
    expect(isinstance(loss, torch.Tensor) and loss.requires_grad,
           "pix2pix_g_loss must keep the graph to fake and d_fake (no .item(), .detach() or NumPy)")
    grad_d, grad_f = torch.autograd.grad(loss, (d, f))
    expect_close(grad_d, -torch.sigmoid(-d.detach()) / d.numel(), what="the gradient with respect to d_fake where D is sure "
                 "the patches are fake", rtol=1e-6, atol=1e-12,
                 hint="the non-saturating term keeps a gradient of about -1/N per logit there; log(1 - D) would give ~0")
    expect_close(grad_f, lam * torch.sign(fake - target) / fake.numel(), what="the gradient with respect to fake", rtol=1e-6,
                 atol=1e-12, hint="d/dfake of lambda * mean|fake - target| is lambda * sign(fake - target) / N")
    big = pix2pix_g_loss(torch.full((2, 1, 2, 2), -200.0), source[:2], fake[:2].float(), target[:2].float(), lambda_l1=lam)
    expect(isinstance(big, torch.Tensor) and bool(torch.isfinite(big)),
           "pix2pix_g_loss is not finite for logits of -200: use softplus(-d_fake), not -log(sigmoid(d_fake))")


# ------------------------------------------------------------------------------ 2. pix2pix's D step


def _toy_pix2pix_nets(seed: int = 5):
    """A small generator (one 3 x 3 convolution, tanh) and a patch discriminator that reads the
    first C channels of whatever it is given (so that a discriminator fed the image alone runs, and
    its update tells what it saw)."""
    import torch
    from torch import nn

    class ToyG(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return torch.tanh(self.conv(x) + 0.5)

    class ToyPatchD(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3)
            self.head = nn.Conv2d(4, 1, 1)

        def forward(self, inp):
            c = inp.shape[1]
            h = nn.functional.conv2d(inp, self.conv.weight[:, :c], self.conv.bias)
            return self.head(nn.functional.leaky_relu(h, 0.2))  # (B, 1, H - 2, W - 2): one logit per patch

    torch.manual_seed(seed)
    return ToyG().double(), ToyPatchD().double()


def _reference_d_step(G, D, x, y, *, pair="right", labels="right", reduce="mean", scale=1.0):
    """One SGD step (lr 0.1) of a copy of D; returns the copy and the loss."""
    import copy

    import torch

    D = copy.deepcopy(D)
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    with torch.no_grad():
        fake = G(x)
    real_in, fake_in = {
        "right": (torch.cat([x, y], 1), torch.cat([x, fake], 1)),
        "image only": (y, fake),
        "swapped": (torch.cat([y, x], 1), torch.cat([fake, x], 1)),
        "source only": (x, x),
    }[pair]
    d_real, d_fake = D(real_in), D(fake_in)
    sign = 1.0 if labels == "right" else -1.0
    red = (lambda t: t.mean()) if reduce == "mean" else (lambda t: t.flatten(1).sum(1).mean())
    loss = scale * (red(_softplus(-sign * d_real)) + red(_softplus(sign * d_fake)))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return D, float(loss.detach())


def _same_params(a, b, rtol=1e-6, atol=1e-9) -> bool:
    import torch

    return all(torch.allclose(p.detach().double(), q.detach().double(), rtol=rtol, atol=atol)
               for p, q in zip(a.parameters(), b.parameters()))


@register("translation.pix2pix_d_step")
def _pix2pix_d_step(pix2pix_d_step):
    import copy

    import torch

    G, D = _toy_pix2pix_nets()
    g = torch.Generator().manual_seed(6)
    B, side = 8, 6
    x = (torch.rand(B, 1, side, side, generator=g, dtype=torch.float64) > 0.6).double() * 2 - 1
    y = torch.rand(B, 1, side, side, generator=g, dtype=torch.float64) * 2 - 1
    G_before = [p.detach().clone() for p in G.parameters()]
    D_start = copy.deepcopy(D)
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    got = pix2pix_d_step(G, D, opt, x, y)
    expect(all(torch.equal(a, b) for a, b in zip(G.parameters(), G_before)), "the discriminator's step changed G: step opt_D only")
    expect(all(p.grad is None or float(p.grad.abs().max()) == 0 for p in G.parameters()),
           "G received gradients in the discriminator's step: the fake must be detached (fake = G(x).detach(), or G(x) "
           "computed under torch.no_grad()), so that D's loss does not reach G's parameters")
    want_D, want_loss = _reference_d_step(G, D_start, x, y)
    if not _same_params(D, want_D):
        mistakes = {
            "D sees only the image (y, then G(x)): a conditional discriminator judges the PAIR, torch.cat([x, y], 1) "
            "against torch.cat([x, G(x)], 1); alone, the image says nothing about whether it fits its source": dict(pair="image only"),
            "the pair is in the wrong order: the source comes first, torch.cat([x, y], 1) and torch.cat([x, G(x)], 1)":
                dict(pair="swapped"),
            "the labels are swapped: real pairs [x, y] are labelled 1 (softplus(-d_real)), generated pairs 0 (softplus(d_fake))":
                dict(labels="swapped"),
            "the logits are summed over the patches: average the loss over every patch logit and every image":
                dict(reduce="sum"),
            "the loss is halved (or the two batches averaged together): minimise softplus(-d_real).mean() + "
            "softplus(d_fake).mean(), the sum of the two means": dict(scale=0.5),
            "D sees only the source: the real pair is [x, y], the generated pair [x, G(x)]": dict(pair="source only"),
        }
        for hint, kw in mistakes.items():
            if _same_params(D, _reference_d_step(G, D_start, x, y, **kw)[0]):
                expect(False, hint)
        for (name, p), q in zip(D.named_parameters(), want_D.parameters()):
            expect_close(p.detach(), q.detach(), what=f"D's parameter {name} after one SGD step", rtol=1e-6, atol=1e-9,
                         hint="minimise softplus(-D(cat[x, y])).mean() + softplus(D(cat[x, G(x).detach()])).mean()")
    expect(isinstance(got, float) and not isinstance(got, bool),
           f"pix2pix_d_step must return the loss as a Python float (loss.item()), got {type(got).__name__}")
    expect_close(got, want_loss, what="the loss pix2pix_d_step returns", rtol=1e-6,
                 hint="the loss before the update: softplus(-d_real).mean() + softplus(d_fake).mean()")


# ------------------------------------------------------------------------------ 3. CycleGAN's losses


def cycle_maps():
    """Two generators that do not commute, as modules with one parameter each (so that a loss
    must keep the graph to them): ``G_AB(t) = 2 t + 0.5`` and ``G_BA(t) = t^2 - 0.3``, pixel-wise.
    ``G_BA(G_AB(t)) = (2t + 0.5)^2 - 0.3`` differs from ``G_AB(G_BA(t)) = 2t^2 - 0.1``."""
    import torch
    from torch import nn

    class Affine(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(2.0, dtype=torch.float64))

        def forward(self, t):
            return self.scale * t + 0.5

    class Square(nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

        def forward(self, t):
            return self.gain * t**2 - 0.3

    return Affine(), Square()


def _cycle_batches():
    import torch

    g = torch.Generator().manual_seed(7)
    a = torch.rand(5, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1  # 5 images of A
    b = 0.5 * torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)  # 3 images of B: sizes differ
    return a, b


@register("translation.cycle_losses")
def _cycle_losses(cycle_loss, identity_loss):
    import torch

    G_AB, G_BA = cycle_maps()
    a, b = _cycle_batches()
    with torch.no_grad():
        fa, ga, fb, gb = G_AB(a), G_BA(a), G_AB(b), G_BA(b)
        a_cyc, b_cyc = G_BA(fa), G_AB(gb)

    def mean_abs(t):
        return t.abs().mean()

    got = cycle_loss(G_AB, G_BA, a, b)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0,
           f"cycle_loss must return a scalar tensor, got {getattr(got, 'shape', type(got).__name__)}")
    want = mean_abs(a_cyc - a) + mean_abs(b_cyc - b)
    diagnose(got, {
        "the generators are composed in the wrong order: the forward cycle translates a to B first, G_BA(G_AB(a)), "
        "and the backward cycle b to A first, G_AB(G_BA(b))": mean_abs(G_AB(ga) - a) + mean_abs(G_BA(fb) - b),
        "the errors are squared: the cycle loss is an L1 (absolute) error, |G_BA(G_AB(a)) - a|":
            ((a_cyc - a) ** 2).mean() + ((b_cyc - b) ** 2).mean(),
        "the errors are summed over the pixels: take the mean of each cycle's absolute error":
            (a_cyc - a).abs().sum() + (b_cyc - b).abs().sum(),
        "the two cycles are averaged over both batches together: take the mean over each batch (a and b may have "
        "different sizes), then add the two means":
            ((a_cyc - a).abs().sum() + (b_cyc - b).abs().sum()) / (a.numel() + b.numel()),
        "the two means are averaged: the cycle loss is their SUM": (mean_abs(a_cyc - a) + mean_abs(b_cyc - b)) / 2,
        "only the forward cycle a -> B -> A is there: add the backward cycle, |G_AB(G_BA(b)) - b|": mean_abs(a_cyc - a),
        "only the backward cycle b -> A -> B is there: add the forward cycle, |G_BA(G_AB(a)) - a|": mean_abs(b_cyc - b),
        "each cycle is compared with the translation, not with the original image: |G_BA(G_AB(a)) - a|":
            mean_abs(a_cyc - fa) + mean_abs(b_cyc - gb),
    }, "cycle_loss", expected=want)
    expect_close(got, want, what="cycle_loss", rtol=1e-9, atol=1e-12,
                 hint="(G_BA(G_AB(a)) - a).abs().mean() + (G_AB(G_BA(b)) - b).abs().mean()")

    got = identity_loss(G_AB, G_BA, a, b)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0,
           f"identity_loss must return a scalar tensor, got {getattr(got, 'shape', type(got).__name__)}")
    want = mean_abs(fb - b) + mean_abs(ga - a)
    diagnose(got, {
        "each generator is fed its own INPUT domain, G_AB(a) and G_BA(b): the identity loss feeds each generator an image "
        "that is already in its OUTPUT domain, G_AB(b) ~ b and G_BA(a) ~ a (asking G_AB(a) ~ a would forbid translating)":
            mean_abs(fa - a) + mean_abs(gb - b),
        "the errors are squared: the identity loss is an L1 (absolute) error, |G_AB(b) - b|":
            ((fb - b) ** 2).mean() + ((ga - a) ** 2).mean(),
        "the errors are summed over the pixels: take the mean of each term's absolute error":
            (fb - b).abs().sum() + (ga - a).abs().sum(),
        "the two terms are averaged over both batches together: take the mean over each batch, then add the two means":
            ((fb - b).abs().sum() + (ga - a).abs().sum()) / (a.numel() + b.numel()),
        "the two means are averaged: the identity loss is their SUM": (mean_abs(fb - b) + mean_abs(ga - a)) / 2,
        "only G_AB's term is there: add |G_BA(a) - a|": mean_abs(fb - b),
        "only G_BA's term is there: add |G_AB(b) - b|": mean_abs(ga - a),
        "this is the cycle loss: the identity loss applies each generator ONCE, to an image of its output domain":
            mean_abs(a_cyc - a) + mean_abs(b_cyc - b),
    }, "identity_loss", expected=want)
    expect_close(got, want, what="identity_loss", rtol=1e-9, atol=1e-12,
                 hint="(G_AB(b) - b).abs().mean() + (G_BA(a) - a).abs().mean()")

    for name, fn in (("cycle_loss", cycle_loss), ("identity_loss", identity_loss)):
        loss = fn(G_AB, G_BA, a, b)
        expect(isinstance(loss, torch.Tensor) and loss.requires_grad,
               f"{name} must keep the graph to the generators' parameters (no .item(), .detach(), torch.no_grad() or NumPy)")
        grads = torch.autograd.grad(loss, [G_AB.scale, G_BA.gain], allow_unused=True)
        expect(all(gr is not None and float(gr.abs()) > 0 for gr in grads),
               f"{name} must send a gradient to both generators: both G_AB and G_BA appear in it")


# ------------------------------------------------------------------------------ 4. derive: PatchGAN geometry

#: The two stacks of the exercise, ``(kernel_size, stride)`` first layer first, every one with padding 1.
STACK_A = ((4, 2), (4, 2), (4, 1), (4, 1))  # the library's PatchGAN(n_down=2)
STACK_B = ((4, 2), (3, 1), (4, 2), (4, 1))
PADDING = 1
INPUT_SIDE = 28


def receptive_field_of(layers) -> int:
    """The receptive field of one output unit: ``r = 1`` at the output, then ``r <- s (r - 1) + k``
    for each layer from the last back to the first."""
    r = 1
    for k, s in reversed(tuple(layers)):
        r = s * (r - 1) + k
    return r


def forward_recursion(layers) -> int:
    """The same recursion run the wrong way, from the first layer to the last."""
    r = 1
    for k, s in layers:
        r = s * (r - 1) + k
    return r


def output_side(layers, n: int = INPUT_SIDE, padding: int = PADDING) -> int:
    """The side of the output map for an ``n x n`` input: ``n <- floor((n + 2p - k) / s) + 1`` per layer."""
    for k, s in layers:
        n = (n + 2 * padding - k) // s + 1
    return n


def geometry_answers() -> tuple[int, int, int, int]:
    """``(rf_a, rf_b, out_a, out_b)`` of the exercise."""
    return receptive_field_of(STACK_A), receptive_field_of(STACK_B), output_side(STACK_A), output_side(STACK_B)


def _integer(value, name: str) -> int:
    try:
        import torch

        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()  # NumPy scalars
    expect(isinstance(value, numbers.Real) and not isinstance(value, bool),
           f"{name} must be a number (an int), got {type(value).__name__}")
    expect(math.isfinite(float(value)) and float(value) == int(float(value)),
           f"{name} = {value}: a number of pixels (or of logits) is a whole number")
    return int(float(value))


def _rf_message(name: str, got: int, layers) -> str | None:
    want = receptive_field_of(layers)
    if got == want:
        return None
    no_stride = 1 + sum(k - 1 for k, _ in layers)
    jump, with_own = 1, 1
    for k, s in layers:
        jump *= s
        with_own += (k - 1) * jump
    wrong = {
        forward_recursion(layers): "you ran the recursion from the first layer forward: start at the OUTPUT (r = 1, one "
                                   "logit) and go back to the input, r <- s (r - 1) + k for the last layer first",
        no_stride: "this ignores the strides: a layer after a stride-2 layer takes steps of 2 input pixels, so its kernel "
                   "widens the field by (k - 1) times the product of the EARLIER strides",
        with_own: "each layer's (k - 1) is multiplied by the product of the strides up to and INCLUDING its own: only the "
                  "strides of the layers before it count",
        want - 1: "off by one: one output unit starts with a field of r = 1, and each layer gives r <- s (r - 1) + k",
        want + 1: "off by one: one output unit starts with a field of r = 1, and each layer gives r <- s (r - 1) + k",
    }
    return f"{name} = {got}: " + wrong.get(got, "not the receptive field of this stack: work back from one output logit, "
                                           "r = 1, with r <- s (r - 1) + k for each layer, last layer first")


def _side_message(name: str, got: int, layers) -> str | None:
    want = output_side(layers)
    if got == want:
        return None
    strides = math.prod(s for _, s in layers)
    wrong = {
        output_side(layers, padding=0): "this leaves out the padding: every convolution here pads by 1, "
                                        "n <- floor((n + 2 - k) / s) + 1",
        INPUT_SIDE // strides: "28 divided by the product of the strides is not the whole story: each stride-1 layer with "
                               "k = 4 and padding 1 also shrinks the map by one, n <- floor((n + 2p - k) / s) + 1",
        receptive_field_of(layers): "this is the receptive field (the size of a patch), not the size of the output map "
                                    "(how many patches per side)",
    }
    return f"{name} = {got}: " + wrong.get(got, "apply n <- floor((n + 2p - k) / s) + 1 layer by layer, from n = 28, p = 1")


@register("translation.patchgan_geometry")
def _patchgan_geometry(rf_a, rf_b, out_a, out_b):
    got = {"rf_a": _integer(rf_a, "rf_a"), "rf_b": _integer(rf_b, "rf_b"),
           "out_a": _integer(out_a, "out_a"), "out_b": _integer(out_b, "out_b")}
    expect(got["rf_a"] > 0 and got["rf_b"] > 0, "a receptive field is at least one pixel wide")
    expect(got["out_a"] > 0 and got["out_b"] > 0,
           "an output side of zero or less: the padding keeps every map at least one unit wide here, "
           "n <- floor((n + 2p - k) / s) + 1 with p = 1")
    for name, layers in (("rf_a", STACK_A), ("rf_b", STACK_B)):
        message = _rf_message(name, got[name], layers)
        expect(message is None, message or "")
    for name, layers in (("out_a", STACK_A), ("out_b", STACK_B)):
        message = _side_message(name, got[name], layers)
        expect(message is None, message or "")


# ------------------------------------------------------------------------------ 5. decide: which term


WHICH_LOSS_ANSWER = "c"
_WHICH_WHY = {
    "a": "the discriminators compare distributions: swapping two classes that are equally frequent in both domains "
         "leaves the distribution of G_AB(a) equal to B's, and every translation looks real, so the adversarial terms "
         "see nothing wrong",
    "b": "the swap is a bijection that G_BA undoes: a UCI 4 becomes an MNIST 9, which G_BA turns back into the same "
         "UCI 4, so G_BA(G_AB(a)) = a and the cycle loss is zero (a cycle rules out losing information, not permuting it)",
    "d": "one term does see it: feed G_AB an MNIST 4, an image already in its output domain; it returns a 9, "
         "far from the 4 that the identity term asks for",
}


@register("translation.which_loss")
def _which_loss(answer, reason):
    expect(isinstance(answer, str), f"answer must be a letter as a string ('a', 'b', 'c' or 'd'), got {type(answer).__name__}")
    letter = answer.strip().strip("().").strip().lower()
    expect(letter in ("a", "b", "c", "d"), f"answer must be one of 'a', 'b', 'c', 'd', got {answer!r}")
    expect(isinstance(reason, str) and len(reason.strip()) >= 10,
           "reason must say in one line why (a string of at least a few words)")
    expect(letter == WHICH_LOSS_ANSWER, f"{_WHICH_WHY.get(letter, '')}: for each term, ask what it compares the "
           "translation with, and whether the swap changes that")


# ------------------------------------------------------------------------------ 6. train: pix2pix

#: held-out L1 of the generator, as a fraction of the L1 of copying the input (graded under the cpu profile)
L1_FRACTION_TARGET = 0.30
#: fraction of the held-out translations that the MNIST classifier reads as the input's digit
AGREEMENT_TARGET = 0.88


def heldout_scores(G, batch_size: int = 500) -> dict:
    """``G`` applied to the held-out edge maps of ``edges2digits`` (in [-1, 1]): the mean absolute
    error to the paired digits, that of copying the input, their ratio, the error to the inputs,
    and the fraction of outputs that the course's MNIST classifier reads as the input's digit."""
    import torch

    from gencourse import data, metrics

    src, tgt, labels = data.paired("edges2digits", "test").tensors
    outs = []
    with torch.no_grad():
        for xb in src.split(batch_size):
            out = G(xb)
            expect(isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(xb.shape),
                   f"G(x) for x of shape {tuple(xb.shape)} must return images of the same shape, got "
                   f"{tuple(getattr(out, 'shape', ())) or type(out).__name__}")
            expect(out.is_floating_point() and bool(torch.isfinite(out).all()), "G's outputs are not finite floats")
            outs.append(out.detach().double().cpu().clamp(-1, 1))
    out = torch.cat(outs)
    tgt, src = tgt.double(), src.double()
    l1 = (out - tgt).abs().mean().item()
    copy = (src - tgt).abs().mean().item()
    logits = metrics.embed(out.float(), value_range="pm1", clamp=True)[1]
    return {"l1": l1, "copy_l1": copy, "ratio": l1 / copy, "l1_to_source": (out - src).abs().mean().item(),
            "agreement": metrics.conditional_accuracy(logits, labels), "n": len(out)}


@register("translation.pix2pix_generator")
def _pix2pix_generator(G, losses_l1):
    from ._training import expect_losses_went_down, expect_target, profile

    expect(isinstance(losses_l1, (list, tuple)), f"losses_l1 must be a list of floats, got {type(losses_l1).__name__}")
    for i, v in enumerate(losses_l1):
        expect(isinstance(v, (int, float)) and not isinstance(v, bool),
               f"losses_l1[{i}] is a {type(v).__name__}: append the L1 term of each generator step as a float "
               "(pix2pix_g_step(...)['l1'])")
    if profile() == "smoke":
        expect(len(losses_l1) >= 5 and all(math.isfinite(float(v)) for v in losses_l1),
               f"losses_l1 must hold a finite value for every generator step, got {len(losses_l1)} values")
    else:
        expect_losses_went_down(list(losses_l1), min_steps=50)
    s = heldout_scores(G)
    print(f"  held-out L1 {s['l1']:.4f}, copying the input {s['copy_l1']:.4f} (ratio {s['ratio']:.3f}); "
          f"digit read back in {s['agreement']:.1%} of {s['n']} translations")
    hint = "train longer or with pix2pix's lambda = 100 on the L1 term"
    if s["l1_to_source"] < s["l1"]:
        hint = ("the outputs are closer to the edge maps than to the digits: is the L1 term computed against the source x "
                "instead of the target y?")
    expect_target(s["ratio"], L1_FRACTION_TARGET, what="held-out L1 of G(x) to the digits, as a fraction of copying the input",
                  below=True, hint=hint)
    expect_target(s["agreement"], AGREEMENT_TARGET, what="fraction of held-out translations read as the input's digit",
                  below=False, hint="G draws digits, but not the right ones: does D see the source with the image, and the "
                                    "L1 term compare G(x) with its own target?")
