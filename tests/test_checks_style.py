"""The public checks of chapter 11 accept the right answers and reject the classic mistakes."""

import math

import pytest
import torch
import torch.nn.functional as F

from gencourse import losses
from gencourse.grading import check
from gencourse.models import style


def _adain_with(dims=(2, 3), unbiased=False, eps=1e-5):
    def adain(x, scale, bias):
        mu = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=unbiased, keepdim=True)
        return scale[:, :, None, None] * (x - mu) / torch.sqrt(var + eps) + bias[:, :, None, None]
    return adain


def _mapping_with(norm=True, act=lambda h: F.leaky_relu(h, 0.2), last_act=True):
    def mapping(z, weights, biases):
        h = z / torch.sqrt(z.pow(2).mean(1, keepdim=True) + 1e-8) if norm else z
        for i, (W, b) in enumerate(zip(weights, biases)):
            h = h @ W.T + b
            if last_act or i < len(weights) - 1:
                h = act(h)
        return h
    return mapping


def _d_loss_with(at="real", reduce=lambda g: g.flatten(1).pow(2).sum(1).mean(), create_graph=True):
    def d_loss(D, x_real, x_fake, gamma):
        x = (x_real if at == "real" else x_fake).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=create_graph)
        return F.softplus(-D(x_real)).mean() + F.softplus(D(x_fake)).mean() + gamma / 2 * reduce(grad)
    return d_loss


def right_d_loss(D, x_real, x_fake, gamma):
    return losses.d_loss_bce(D(x_real), D(x_fake)) + gamma / 2 * losses.r1_penalty(D, x_real)


def test_right_answers_pass(capsys):
    assert check("style.adain", style.adain)
    assert check("style.adain", _adain_with())
    assert check("style.mapping_forward", _mapping_with())
    assert check("style.truncate", lambda f, w_avg, z, psi: style.truncate(f(z), w_avg, psi))
    assert check("style.d_loss_r1", right_d_loss)
    assert check("style.d_loss_r1", _d_loss_with())
    by_hand = [[3 * (v - 3) / math.sqrt(5) - 1 for v in row] for row in ((0, 2), (4, 6))]
    assert check("style.adain_by_hand", by_hand, -1.0, 3.0)
    assert check("style.mixed_resolutions", lambda k: sorted(set([4, 8, 8, 16, 16, 32, 32, 32][k:])))
    assert capsys.readouterr().out.count("✔") == 8


@pytest.mark.parametrize(
    "qid, args, message",
    [
        ("style.adain", (_adain_with(dims=(0, 2, 3)),), "over the batch"),
        ("style.adain", (_adain_with(unbiased=True),), "unbiased"),
        ("style.adain", (_adain_with(eps=0.0),), "eps inside the square root"),
        ("style.adain", (lambda x, s, b: s[:, :, None, None] * x + b[:, :, None, None],), "adain"),
        ("style.mapping_forward", (_mapping_with(norm=False),), "pixel norm"),
        ("style.mapping_forward", (_mapping_with(act=torch.relu),), "ReLU"),
        ("style.mapping_forward", (_mapping_with(last_act=False),), "last layer included"),
        ("style.truncate", (lambda f, w_avg, z, psi: f(psi * z),), "applied to z"),
        ("style.truncate", (lambda f, w_avg, z, psi: f(z) + psi * (w_avg - f(z)),), "wrong side"),
        ("style.d_loss_r1", (_d_loss_with(at="fake"),), "fake images"),
        ("style.d_loss_r1", (_d_loss_with(reduce=lambda g: g.pow(2).mean()),), "over the pixels"),
        ("style.d_loss_r1", (_d_loss_with(create_graph=False),), "create_graph"),
        ("style.d_loss_r1", (lambda D, xr, xf, gamma: F.softplus(-D(xr)).mean() + F.softplus(D(xf)).mean(),), "missing"),
        ("style.adain_by_hand", ([[0, 0], [0, 0]], 0.0, 3.0), "mean"),
        ("style.adain_by_hand", ([[0, 0], [0, 0]], -1.0, 3.0 * math.sqrt(5)), "standard deviation"),
        ("style.adain_by_hand", ([[3 * (v - 3) / math.sqrt(20 / 3) - 1 for v in row] for row in ((0, 2), (4, 6))], -1.0, 3.0),
         "unbiased"),
        ("style.mixed_resolutions", (lambda k: [4, 8, 8, 16, 16, 32, 32, 32][k:],), None),
        ("style.mixed_resolutions", (lambda k: sorted(set([4, 8, 16, 32][k // 2:])),), "expected"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, args, message):
    if message is None:  # duplicates are fine: the check compares sets
        assert check(qid, *args)
        return
    with pytest.raises(AssertionError, match=message):
        check(qid, *args)
