"""The public checks of chapter 10 accept the right answers and reject the classic mistakes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gencourse import losses, train
from gencourse import nn as gnn
from gencourse.grading import check
from gencourse.grading import translation as tr

# ----------------------------------------------------------------------------- right answers


def right_g_loss(d_fake, source, fake, target, lambda_l1=100.0):
    return F.softplus(-d_fake).mean() + lambda_l1 * (fake - target).abs().mean()


def library_g_loss(d_fake, source, fake, target, lambda_l1=100.0):
    return losses.pix2pix_g_loss(d_fake, fake, target, lambda_l1=lambda_l1)


def bce_g_loss(d_fake, source, fake, target, lambda_l1=100.0):
    gan = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    return gan + lambda_l1 * F.l1_loss(fake, target)


def d_step_with(pair="right", labels="right", reduce="mean", scale=1.0, detach=True, as_float=True):
    def step(G, D, opt_D, x, y):
        if detach:
            with torch.no_grad():
                fake = G(x)
        else:
            fake = G(x)
        real_in, fake_in = {
            "right": (torch.cat([x, y], 1), torch.cat([x, fake], 1)),
            "image only": (y, fake),
            "swapped": (torch.cat([y, x], 1), torch.cat([fake, x], 1)),
        }[pair]
        d_real, d_fake = D(real_in), D(fake_in)
        if labels == "swapped":
            d_real, d_fake = -d_real, -d_fake
        red = (lambda t: t.mean()) if reduce == "mean" else (lambda t: t.flatten(1).sum(1).mean())
        loss = scale * (red(F.softplus(-d_real)) + red(F.softplus(d_fake)))
        opt_D.zero_grad()
        loss.backward()
        opt_D.step()
        return loss.item() if as_float else loss.detach()
    return step


def d_step_one_batch(G, D, opt_D, x, y):
    """Both pairs through D in one call, BCE with logits against labels 1 and 0: the same loss."""
    fake = G(x).detach()
    logits = D(torch.cat([torch.cat([x, y], 1), torch.cat([x, fake], 1)], 0))
    d_real, d_fake = logits[: len(x)], logits[len(x):]
    loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) \
        + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return loss.item()


def right_cycle(G_AB, G_BA, a, b):
    return (G_BA(G_AB(a)) - a).abs().mean() + (G_AB(G_BA(b)) - b).abs().mean()


def right_identity(G_AB, G_BA, a, b):
    return (G_AB(b) - b).abs().mean() + (G_BA(a) - a).abs().mean()


def test_right_answers_pass(capsys):
    assert check("translation.pix2pix_g_loss", right_g_loss)
    assert check("translation.pix2pix_g_loss", library_g_loss)
    assert check("translation.pix2pix_g_loss", bce_g_loss)
    assert check("translation.pix2pix_d_step", d_step_with())
    assert check("translation.pix2pix_d_step", d_step_one_batch)
    assert check("translation.pix2pix_d_step", lambda G, D, opt, x, y: train.pix2pix_d_step(G, D, opt, x, y)["loss_D"])
    assert check("translation.cycle_losses", right_cycle, right_identity)
    assert check("translation.cycle_losses", losses.cycle_loss, losses.identity_loss)
    assert check("translation.patchgan_geometry", 34, 26, 5, 6)
    assert check("translation.patchgan_geometry", torch.tensor(34), np.int64(26), 5.0, torch.tensor([6]))
    assert check("translation.which_loss", "c", "G_AB turns an MNIST 4 into a 9: the identity term sees it")
    assert check("translation.which_loss", " (C) ", "only the identity term compares an output with its input")
    assert capsys.readouterr().out.count("✔") == 12


# ----------------------------------------------------------------------------- the reference values


def _brute_force_receptive_field(layers) -> int:
    """The rows of a large input that one central output unit depends on, found by back-propagation
    through the stack with positive weights (no cancellation)."""
    convs = [torch.nn.Conv2d(1, 1, k, s, padding=1) for k, s in layers]
    for c in convs:
        torch.nn.init.constant_(c.weight, 1.0)
        torch.nn.init.zeros_(c.bias)
    net = torch.nn.Sequential(*convs).double()
    z = torch.zeros(1, 1, 160, 160, dtype=torch.float64, requires_grad=True)
    out = net(z)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (z.grad[0, 0].abs().sum(1) > 0).nonzero().flatten()
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize("layers", [tr.STACK_A, tr.STACK_B, ((4, 2), (4, 2), (4, 2), (4, 1), (4, 1)), ((3, 1), (3, 1)),
                                    ((4, 2), (4, 1), (4, 1))])
def test_receptive_field_against_back_propagation(layers):
    assert tr.receptive_field_of(layers) == _brute_force_receptive_field(layers) == gnn.receptive_field(layers)


def test_geometry_answers_are_the_networks():
    rf_a, rf_b, out_a, out_b = tr.geometry_answers()
    assert (rf_a, rf_b, out_a, out_b) == (34, 26, 5, 6)
    D = gnn.PatchGAN(2, ndf=4, n_down=2)  # stack A is the library's PatchGAN with n_down=2
    assert tuple(D.layers) == tr.STACK_A and D.receptive_field == rf_a
    assert D(torch.zeros(1, 2, 28, 28)).shape[-2:] == (out_a, out_a)
    convs = torch.nn.Sequential(*[torch.nn.Conv2d(1, 1, k, s, padding=1) for k, s in tr.STACK_B])
    assert convs(torch.zeros(1, 1, 28, 28)).shape[-2:] == (out_b, out_b)
    # the wrong answers the check names are wrong answers for these stacks
    assert tr.forward_recursion(tr.STACK_A) == 16 and tr.forward_recursion(tr.STACK_B) == 17
    assert tr.output_side(tr.STACK_B, padding=0) == 1


def test_cycle_maps_do_not_commute():
    G_AB, G_BA = tr.cycle_maps()
    t = torch.linspace(-1, 1, 11, dtype=torch.float64)
    with torch.no_grad():
        assert not torch.allclose(G_BA(G_AB(t)), G_AB(G_BA(t)))
        assert torch.allclose(G_BA(G_AB(t)), (2 * t + 0.5) ** 2 - 0.3)


# ----------------------------------------------------------------------------- classic mistakes


def g_loss_with(l1_to="target", reduce="mean", lam_on="l1", gan="ns", squared=False):
    def loss(d_fake, source, fake, target, lambda_l1=100.0):
        ref = target if l1_to == "target" else source
        err = (fake - ref) ** 2 if squared else (fake - ref).abs()
        l1 = err.mean() if reduce == "mean" else err.sum()
        g = {"ns": F.softplus(-d_fake).mean(), "saturating": -F.softplus(d_fake).mean(),
             "d_fake": F.softplus(d_fake).mean(), "none": 0.0}[gan]
        return lambda_l1 * g + l1 if lam_on == "gan" else g + lambda_l1 * l1
    return loss


def cycle_wrong_order(G_AB, G_BA, a, b):
    return (G_AB(G_BA(a)) - a).abs().mean() + (G_BA(G_AB(b)) - b).abs().mean()


def cycle_squared(G_AB, G_BA, a, b):
    return ((G_BA(G_AB(a)) - a) ** 2).mean() + ((G_AB(G_BA(b)) - b) ** 2).mean()


def cycle_sum(G_AB, G_BA, a, b):
    return (G_BA(G_AB(a)) - a).abs().sum() + (G_AB(G_BA(b)) - b).abs().sum()


def cycle_pooled(G_AB, G_BA, a, b):
    return torch.cat([(G_BA(G_AB(a)) - a).flatten(), (G_AB(G_BA(b)) - b).flatten()]).abs().mean()


def cycle_detached(G_AB, G_BA, a, b):
    with torch.no_grad():
        return right_cycle(G_AB, G_BA, a, b)


def identity_wrong_domain(G_AB, G_BA, a, b):
    return (G_AB(a) - a).abs().mean() + (G_BA(b) - b).abs().mean()


def identity_squared(G_AB, G_BA, a, b):
    return ((G_AB(b) - b) ** 2).mean() + ((G_BA(a) - a) ** 2).mean()


@pytest.mark.parametrize(
    "qid, args, message",
    [
        ("translation.pix2pix_g_loss", (g_loss_with(l1_to="source"),), "SOURCE"),
        ("translation.pix2pix_g_loss", (g_loss_with(reduce="sum"),), "sum over the pixels"),
        ("translation.pix2pix_g_loss", (lambda d, x, f, y, lambda_l1=100.0: F.softplus(-d).mean()
                                        + lambda_l1 * (f - y).abs().flatten(1).sum(1).mean(),), "summed over each image"),
        ("translation.pix2pix_g_loss", (g_loss_with(lam_on="gan"),), "lambda multiplies the GAN term"),
        ("translation.pix2pix_g_loss", (g_loss_with(gan="saturating"),), "saturating"),
        ("translation.pix2pix_g_loss", (g_loss_with(gan="d_fake"),), "wants D to say REAL"),
        ("translation.pix2pix_g_loss", (g_loss_with(squared=True),), "squared error"),
        ("translation.pix2pix_g_loss", (g_loss_with(gan="none"),), "GAN term is missing"),
        ("translation.pix2pix_g_loss", (lambda d, x, f, y, lambda_l1=100.0: F.softplus(-d).mean(),), "L1 term is missing"),
        ("translation.pix2pix_g_loss", (lambda d, x, f, y, lambda_l1=100.0: F.softplus(-d).flatten(1).sum(1).mean()
                                        + lambda_l1 * (f - y).abs().mean(),), "summed over the patches"),
        ("translation.pix2pix_g_loss", (lambda d, x, f, y, lambda_l1=10.0: right_g_loss(d, x, f, y, lambda_l1),), "default"),
        ("translation.pix2pix_g_loss", (lambda *a, **k: right_g_loss(*a, **k).detach(),), "keep the graph"),
        ("translation.pix2pix_g_loss", (lambda d, x, f, y, lambda_l1=100.0: -torch.log(torch.sigmoid(d)).mean()
                                        + lambda_l1 * (f - y).abs().mean(),), "not finite"),
        ("translation.pix2pix_d_step", (d_step_with(pair="image only"),), "sees only the image"),
        ("translation.pix2pix_d_step", (d_step_with(pair="swapped"),), "wrong order"),
        ("translation.pix2pix_d_step", (d_step_with(detach=False),), "detached"),
        ("translation.pix2pix_d_step", (d_step_with(labels="swapped"),), "labels are swapped"),
        ("translation.pix2pix_d_step", (d_step_with(reduce="sum"),), "summed over the patches"),
        ("translation.pix2pix_d_step", (d_step_with(scale=0.5),), "halved"),
        ("translation.pix2pix_d_step", (d_step_with(as_float=False),), "Python float"),
        ("translation.cycle_losses", (cycle_wrong_order, right_identity), "wrong order"),
        ("translation.cycle_losses", (cycle_squared, right_identity), "squared"),
        ("translation.cycle_losses", (cycle_sum, right_identity), "summed over the pixels"),
        ("translation.cycle_losses", (cycle_pooled, right_identity), "both batches together"),
        ("translation.cycle_losses", (lambda G_AB, G_BA, a, b: (G_BA(G_AB(a)) - a).abs().mean(), right_identity), "only the forward"),
        ("translation.cycle_losses", (cycle_detached, right_identity), "keep the graph"),
        ("translation.cycle_losses", (right_cycle, identity_wrong_domain), "own INPUT domain"),
        ("translation.cycle_losses", (right_cycle, identity_squared), "squared"),
        ("translation.cycle_losses", (right_cycle, lambda G_AB, G_BA, a, b: (G_AB(b) - b).abs().mean()), "only G_AB's term"),
        ("translation.cycle_losses", (right_cycle, right_cycle), "this is the cycle loss"),
        ("translation.patchgan_geometry", (16, 26, 5, 6), "first layer forward"),
        ("translation.patchgan_geometry", (34, 17, 5, 6), "first layer forward"),
        ("translation.patchgan_geometry", (33, 26, 5, 6), "off by one"),
        ("translation.patchgan_geometry", (34, 27, 5, 6), "off by one"),
        ("translation.patchgan_geometry", (13, 26, 5, 6), "ignores the strides"),
        ("translation.patchgan_geometry", (43, 26, 5, 6), "INCLUDING its own"),
        ("translation.patchgan_geometry", (34, 26, 5, 1), "leaves out the padding"),
        ("translation.patchgan_geometry", (34, 26, -1, 6), "zero or less"),
        ("translation.patchgan_geometry", (34, 26, 7, 6), "product of the strides"),
        ("translation.patchgan_geometry", (34, 26, 34, 6), "receptive field \\(the size of a patch\\)"),
        ("translation.patchgan_geometry", (34.5, 26, 5, 6), "whole number"),
        ("translation.patchgan_geometry", ("34", 26, 5, 6), "must be a number"),
        ("translation.which_loss", ("a", "the discriminator sees the wrong digit"), "compare distributions"),
        ("translation.which_loss", ("b", "the cycle comes back to a different digit"), "bijection"),
        ("translation.which_loss", ("d", "a consistent swap fools every term"), "one term does see it"),
        ("translation.which_loss", ("c", ""), "reason"),
        ("translation.which_loss", ("e", "something else"), "one of"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, args, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, *args)


# ----------------------------------------------------------------------------- the training target


class _Oracle(torch.nn.Module):
    """G(x): the held-out digit whose edge map x is (found by nearest edge map), or, with
    ``other_class``, a held-out digit of another class."""

    def __init__(self, other_class=False):
        super().__init__()
        from gencourse import data

        self.src, self.tgt, self.labels = data.paired("edges2digits", "test").tensors
        self.other = other_class

    def forward(self, x):
        idx = torch.cdist(x.flatten(1), self.src.flatten(1)).argmin(1)
        if self.other:
            pools = [(self.labels == c).nonzero().flatten() for c in range(10)]
            idx = torch.stack([pools[(int(self.labels[i]) + 1) % 10][0] for i in idx])
        return self.tgt[idx]


LOSSES = [float(v) for v in torch.linspace(0.6, 0.1, 100)]


def test_training_check_scores_held_out_translations(monkeypatch, capsys):
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    scores = tr.heldout_scores(_Oracle())
    assert scores["l1"] < 1e-6 and scores["agreement"] > 0.95
    assert abs(scores["copy_l1"] - 0.319) < 0.01  # the copy-the-input baseline of the exercise's text
    assert check("translation.pix2pix_generator", _Oracle(), LOSSES)
    with pytest.raises(AssertionError, match="closer to the edge maps than to the digits"):
        check("translation.pix2pix_generator", lambda x: x.clone(), LOSSES)
    with pytest.raises(AssertionError, match="fraction of copying the input"):
        check("translation.pix2pix_generator", _Oracle(other_class=True), LOSSES)
    with pytest.raises(AssertionError, match="as a float"):
        check("translation.pix2pix_generator", _Oracle(), [torch.tensor(v) for v in LOSSES])
    with pytest.raises(AssertionError, match="did not go down"):
        check("translation.pix2pix_generator", _Oracle(), LOSSES[::-1])
    with pytest.raises(AssertionError, match="same shape"):
        check("translation.pix2pix_generator", lambda x: x[:, 0], LOSSES)
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")  # under smoke the target is only reported
    assert check("translation.pix2pix_generator", lambda x: x.clone(), LOSSES[:5])
    assert "checked under the cpu profile" in capsys.readouterr().out


def test_the_agreement_target_is_checked(monkeypatch):
    """The second target has its own message (raised here by asking the oracle for more than its classifier reads)."""
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    agreement = tr.heldout_scores(_Oracle())["agreement"]
    monkeypatch.setattr(tr, "AGREEMENT_TARGET", min(1.0, agreement + 0.001))
    with pytest.raises(AssertionError, match="read as the input's digit"):
        check("translation.pix2pix_generator", _Oracle(), LOSSES)
