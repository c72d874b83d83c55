"""The public checks of chapter 05 accept the right answers and reject the classic mistakes."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from gencourse.grading import autoregressive as arc
from gencourse.grading import check
from gencourse.models import autoregressive as ar

# ----------------------------------------------------------------------------- right answers


def right_spatial_mask(k, mask_type):
    c = k // 2
    mask = torch.zeros(k, k)
    mask[:c] = 1.0
    mask[c, :c] = 1.0
    mask[c, c] = float(mask_type == "B")
    return mask


def numpy_bool_spatial_mask(k, mask_type):
    """Built pixel by pixel in raster order, returned as a bool tensor: the same mask."""
    c = k // 2
    centre = c * k + c
    flat = np.array([i < centre or (i == centre and mask_type == "B") for i in range(k * k)])
    return torch.from_numpy(flat.reshape(k, k))


def right_colour_mask(c_in, c_out, mask_type):
    g_in = torch.arange(c_in) * 3 // c_in
    g_out = torch.arange(c_out) * 3 // c_out
    return (g_in[None] < g_out[:, None] if mask_type == "A" else g_in[None] <= g_out[:, None]).float()


def right_log_likelihood(logits, x):
    return torch.log_softmax(logits, 1).gather(1, x.unsqueeze(1)).flatten(1).sum(1)


def cross_entropy_log_likelihood(logits, x):
    """-cross_entropy(reduction='none') summed per image: the same thing."""
    return -nn.functional.cross_entropy(logits, x, reduction="none").flatten(1).sum(1)


def right_sample_step(logits, generator, temperature=1.0):
    return torch.multinomial(torch.softmax(logits / temperature, 1), 1, generator=generator).squeeze(1)


def gumbel_sample_step(logits, generator, temperature=1.0):
    """The Gumbel-max trick: exact samples of softmax(logits / T) too."""
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).clamp(1e-12, 1 - 1e-12)
    return (logits / temperature - torch.log(-torch.log(u))).argmax(1)


def test_right_answers_pass(capsys):
    assert check("autoregressive.spatial_mask", right_spatial_mask)
    assert check("autoregressive.spatial_mask", numpy_bool_spatial_mask)
    assert check("autoregressive.spatial_mask", lambda k, t: ar.causal_mask(k, t)[0, 0])
    assert check("autoregressive.colour_mask", right_colour_mask)
    assert check("autoregressive.colour_mask", lambda i, o, t: ar.causal_mask(1, t, i, o, 3)[:, :, 0, 0])
    assert check("autoregressive.log_likelihood", right_log_likelihood)
    assert check("autoregressive.log_likelihood", cross_entropy_log_likelihood)
    assert check("autoregressive.sample_step", right_sample_step)
    assert check("autoregressive.sample_step", gumbel_sample_step)
    assert check("autoregressive.receptive_field", 37, 3, False, True)
    assert check("autoregressive.receptive_field", torch.tensor(37), np.int64(3), torch.tensor(False), np.bool_(True))
    assert check("autoregressive.exact_likelihood", "b", "the chain rule gives log p(x) exactly in one pass", 3072)
    assert check("autoregressive.exact_likelihood", " (B) ", "a sum of exact conditionals", torch.tensor(3072))
    assert capsys.readouterr().out.count("✔") == 13


# ----------------------------------------------------------------------------- the reference values


@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_spatial_rule_is_the_library_mask(k, mask_type):
    assert torch.equal(torch.tensor(arc.spatial_mask_rule(k, mask_type)), ar.causal_mask(k, mask_type)[0, 0])


@pytest.mark.parametrize("c_in, c_out", [(3, 3), (6, 12), (12, 6), (9, 3)])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_colour_rule_is_the_library_mask(c_in, c_out, mask_type):
    want = ar.causal_mask(3, mask_type, c_in, c_out, 3)[:, :, 1, 1]
    assert torch.equal(torch.tensor(arc.colour_mask_rule(c_in, c_out, mask_type)), want)


class _Stack(nn.Module):
    """One-channel masked convolutions with positive weights (no cancellation), for dependencies()."""

    levels = 2

    def __init__(self, stack):
        super().__init__()
        self.convs = nn.ModuleList(ar.MaskedConv2d(1, 1, k, t, bias=False) for k, t in stack)
        for c in self.convs:
            nn.init.constant_(c.weight, 1.0)

    def logits_from_inputs(self, u, c=None):
        for conv in self.convs:
            u = conv(u)
        return u.unsqueeze(1)


@pytest.mark.parametrize("stack", [arc.STACK, ((3, "A"),), ((7, "A"), (3, "B")), ((3, "A"), (3, "B"), (3, "B"), (5, "B"))])
def test_field_is_the_measured_dependencies(stack):
    side, i, j = 24, 14, 11
    dep = ar.dependencies(_Stack(stack), (1, side, side), i, j)[0]
    measured = {(int(a) - i, int(b) - j) for a, b in dep.nonzero()}
    assert arc.field_of(stack) == measured
    # the blind spot, from the measured map: the bounding box's pixels before (i, j) that are not reached
    rows, cols = dep.nonzero(as_tuple=True)
    box = torch.zeros_like(dep)
    box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
    before = (torch.arange(side)[:, None] * side + torch.arange(side)[None]) < i * side + j
    assert len(arc.blind_spot(arc.field_of(stack))) == int((box & before & ~dep).sum())


def test_receptive_field_answers_of_the_exercise():
    n_field, n_blind, first, second = arc.receptive_field_answers()
    assert (n_field, n_blind, first, second) == (37, 3, False, True)
    assert arc.blind_spot(arc.field_of()) == {(-2, 4), (-1, 3), (-1, 4)}
    # the wrong answers the check names are wrong answers here
    assert len(arc.field_of(centre=False)) not in (37, 40, 81, 38)


def test_sampling_passes_are_counted_through_sample():
    assert arc.sampling_passes((3, 32, 32)) == 3 * 32 * 32
    assert arc.sampling_passes((1, 4, 5)) == 20


# ----------------------------------------------------------------------------- classic mistakes


def spatial_with(centre=None, right=False, above=True, transpose=False):
    def mask(k, mask_type):
        m = torch.tensor(arc.spatial_mask_rule(k, mask_type, centre=centre, right=right, above=above))
        return m.T.contiguous() if transpose else m
    return mask


@pytest.mark.parametrize("wrong, message", [
    (spatial_with(centre=True), "type A is built like type B"),
    (spatial_with(centre=False), "type B is built like type A"),
    (spatial_with(right=True), "keeps the pixels RIGHT of the centre"),
    (spatial_with(centre=True, right=True), "the whole centre row is kept"),
    (spatial_with(above=False), "the rows above the centre are dropped"),
    (spatial_with(transpose=True), "the mask is transposed"),
    (lambda k, t: right_spatial_mask(k, t).flip(0), "upside down"),
    (lambda k, t: right_spatial_mask(k, t)[None, None], r"has shape \(1, 1, 3, 3\)"),
    (lambda k, t: right_spatial_mask(k, t).tolist(), "must return a torch.Tensor"),
])
def test_spatial_mask_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("autoregressive.spatial_mask", wrong)


@pytest.mark.parametrize("wrong, message", [
    (lambda i, o, t: torch.tensor(arc.colour_mask_rule(i, o, t, group=lambda c, n: c % 3)), "modulo 3"),
    (lambda i, o, t: right_colour_mask(i, o, t).T.contiguous(), r"transpose of the right one|= \(in, out\)"),
    (lambda i, o, t: right_colour_mask(i, o, "B" if t == "A" else "A"), "type A is built like type B"),
    (lambda i, o, t: ((torch.arange(o)[:, None] * 3 // o < torch.arange(i)[None] * 3 // i) if t == "A" else
                      (torch.arange(o)[:, None] * 3 // o <= torch.arange(i)[None] * 3 // i)).float(), "transpose of the right one"),
])
def test_colour_mask_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("autoregressive.colour_mask", wrong)


@pytest.mark.parametrize("wrong, message", [
    (lambda lg, x: right_log_likelihood(lg, x).sum(), "SUM over the batch"),
    (lambda lg, x: right_log_likelihood(lg, x).mean(), "MEAN over the batch"),
    (lambda lg, x: torch.log_softmax(lg, 2).gather(1, x.unsqueeze(1)).flatten(1).sum(1), "over the colour channels"),
    (lambda lg, x: torch.log_softmax(lg, -1).gather(1, x.unsqueeze(1)).flatten(1).sum(1), "over the last dimension"),
    (lambda lg, x: lg.gather(1, x.unsqueeze(1)).flatten(1).sum(1), "without normalising"),
    (lambda lg, x: torch.softmax(lg, 1).gather(1, x.unsqueeze(1)).flatten(1).sum(1), "softmax without the log"),
    (lambda lg, x: -right_log_likelihood(lg, x), "NEGATIVE log-likelihood"),
    (lambda lg, x: torch.log_softmax(lg, 1).gather(1, x.unsqueeze(1)).flatten(1).mean(1), "averaged over the pixels"),
    (lambda lg, x: torch.log(torch.softmax(lg, 1)).gather(1, x.unsqueeze(1)).flatten(1).sum(1), "not finite for logits of 800"),
    (lambda lg, x: right_log_likelihood(lg, x).detach(), "keep the graph"),
])
def test_log_likelihood_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("autoregressive.log_likelihood", wrong)


def _global_rng_step(logits, generator, temperature=1.0):
    return torch.distributions.Categorical(logits=logits / temperature).sample()


@pytest.mark.parametrize("wrong, message", [
    (lambda lg, g, temperature=1.0: lg.argmax(1), "this is the argmax"),
    (lambda lg, g, temperature=1.0: torch.multinomial(lg, 1, generator=g).squeeze(1), "in proportion to the raw logits"),
    (lambda lg, g, temperature=1.0: torch.multinomial(torch.softmax(lg / temperature, 0), 1, generator=g).squeeze(1),
     "softmax is taken over the batch"),
    (lambda lg, g, temperature=1.0: right_sample_step(lg * temperature, g), "the temperature multiplies the logits"),
    (lambda lg, g, temperature=1.0: right_sample_step(lg, g), "the temperature is ignored"),
    (lambda lg, g, temperature=1.0: torch.multinomial(torch.softmax(lg / temperature, 1), 1, generator=g), r"squeeze\(1\)"),
    (lambda lg, g, temperature=1.0: right_sample_step(lg, g, temperature).float(), "integer levels"),
    (_global_rng_step, "generators seeded alike gave different draws"),
    (lambda lg, g, temperature=1.0: right_sample_step(lg, torch.Generator().manual_seed(0), temperature),
     "seeded differently gave the same draws"),
    (lambda lg, g, temperature=1.0: torch.multinomial(torch.exp(lg / temperature), 1, generator=g).squeeze(1), "torch.softmax, which is stable"),
])
def test_sample_step_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("autoregressive.sample_step", wrong)


def test_sample_step_bound_is_loose_enough_for_exact_samplers():
    """The binomial bound of 5 standard deviations: an exact sampler passes with other seeds too."""
    base = torch.tensor([1.2, 0.4, 0.3, 2.0], dtype=torch.float64)
    n, passed = 20_000, 0
    for seed in range(20):
        draws = right_sample_step(base.repeat(n, 1), torch.Generator().manual_seed(seed))
        passed += arc._binomial_ok(torch.bincount(draws, minlength=4).tolist(), torch.softmax(base, 0).tolist(), n)
    assert passed == 20


@pytest.mark.parametrize("args, message", [
    ((40, 3, False, True), "BLIND SPOT"),
    ((81, 3, False, True), "unmasked convolutions"),
    ((len(arc.field_of(centre=False)), 3, False, True), "every layer as type A"),
    ((38, 3, False, True), "the output pixel"),
    ((37, 0, False, True), "no blind spot"),
    ((37, 4, False, True), "n_blind = 4"),
    ((37, 3, True, True), "sees_first = True"),
    ((37, 3, False, False), "sees_second = False"),
    ((37.5, 3, False, True), "whole"),
    ((37, 3, "no", True), "True or False"),
])
def test_receptive_field_mistakes(args, message):
    with pytest.raises(AssertionError, match=message):
        check("autoregressive.receptive_field", *args)


@pytest.mark.parametrize("args, message", [
    (("a", "the IWAE bound with many samples is exact", 3072), "lower bound"),
    (("c", "the discriminator knows the density", 3072), "no density"),
    (("d", "both are exact likelihoods here", 3072), "not the exact"),
    (("e", "none of them, they are all estimates", 3072), "one of"),
    (("b", "yes", 3072), "reason"),
    (("b", "the chain rule is exact in one pass", 1), "one pass gives all the conditionals"),
    (("b", "the chain rule is exact in one pass", 1024), "colours are drawn one after the other"),
    (("b", "the chain rule is exact in one pass", 3), "pixel by pixel"),
    (("b", "the chain rule is exact in one pass", 3 * 32 * 32 * 256), "one pass per value drawn"),
])
def test_exact_likelihood_mistakes(args, message):
    with pytest.raises(AssertionError, match=message):
        check("autoregressive.exact_likelihood", *args)


# ----------------------------------------------------------------------------- the trained MADE


def _made(seed=0, hidden=40):
    torch.manual_seed(seed)
    return ar.MADE(hidden=(hidden,)).eval()


def test_made_check_accepts_a_causal_model_under_smoke(monkeypatch, capsys):
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")
    assert check("autoregressive.made", _made(), [500.0, 450.0, 400.0, 380.0, 370.0])
    assert "held-out" in capsys.readouterr().out
    # any causal callable with the right output, e.g. a PixelCNN in eval mode
    torch.manual_seed(1)
    assert check("autoregressive.made", ar.PixelCNN(h=4, n_blocks=1).eval(), [1.0] * 5)


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_made_check_rejects_a_model_that_sees_its_own_pixel(monkeypatch, profile):
    monkeypatch.setenv("GENCOURSE_PROFILE", profile)
    m = _made()
    deg = torch.arange(40) * 783 // 40 + 1
    with torch.no_grad():
        m.out.mask.copy_((torch.arange(1, 785)[:, None] >= deg[None, :]).float())
    losses = [float(400 - i) for i in range(200)]
    with pytest.raises(AssertionError, match=r"not causal.*its own value"):
        check("autoregressive.made", m, losses)


def test_made_check_rejects_a_model_without_masks(monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")
    m = _made()
    with torch.no_grad():
        for layer in [*m.hidden, m.out]:
            layer.mask.fill_(1.0)
    with pytest.raises(AssertionError, match="not causal"):
        check("autoregressive.made", m, [1.0] * 5)


def test_made_check_rejects_a_random_or_misshapen_model(monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")

    class Dropout(nn.Module):
        def __init__(self):
            super().__init__()
            self.m, self.drop = _made(), nn.Dropout(0.5)

        def forward(self, x):
            return self.drop(self.m(x))

    with pytest.raises(AssertionError, match="eval mode"):
        check("autoregressive.made", Dropout().train(), [1.0] * 5)
    with pytest.raises(AssertionError, match=r"shape \(\d+, 2, 1, 28, 28\)"):
        check("autoregressive.made", lambda x: _made()(x)[:, 1], [1.0] * 5)
    with pytest.raises(AssertionError, match="finite float"):
        check("autoregressive.made", _made(), [])


def _train(model, x, steps, seed=0, batch=64, lr=3e-3):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        nll = -ar.log_likelihood(model, x[torch.randint(0, len(x), (batch,), generator=g)]).mean()
        opt.zero_grad()
        nll.backward()
        opt.step()
        losses.append(nll.item())
    return model.eval(), losses


def test_made_check_under_cpu_catches_training_on_the_test_split_and_a_missed_target(monkeypatch):
    from gencourse.recipes.autoregressive import binarised_mnist

    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    x_test, _ = binarised_mnist("test")
    with gc_threads():
        model, losses = _train(_made(hidden=100), x_test[:300], 150)
    s = arc.heldout_nll(model)
    assert s["test"] < s["train"]
    with pytest.raises(AssertionError, match="trained on the test split"):
        check("autoregressive.made", model, losses)
    x_train, _ = binarised_mnist("train")
    with gc_threads():
        model, losses = _train(_made(hidden=100), x_train, 150)
    s = arc.heldout_nll(model)
    assert s["gap"] > 0 and s["test"] > arc.NLL_TARGET
    with pytest.raises(AssertionError, match=r"held-out exact NLL .* target < "):
        check("autoregressive.made", model, losses)


def gc_threads():
    from gencourse import config

    return config.threads(1)


def test_heldout_nll_is_the_exact_likelihood():
    from gencourse.recipes.autoregressive import binarised_mnist

    model = _made(hidden=30)
    s = arc.heldout_nll(model, n_train=50)
    x_test, _ = binarised_mnist("test")
    x_train, _ = binarised_mnist("train")
    with torch.no_grad():
        want_test = -ar.log_likelihood(model, x_test).mean().item()
        logits = model(x_train[:50]).double()
    # an independent sum of Bernoulli log-probabilities: level 1 has probability sigmoid(l1 - l0)
    p1 = torch.sigmoid(logits[:, 1] - logits[:, 0])
    x = x_train[:50].double()
    want_train = -(x * p1.log() + (1 - x) * (1 - p1).log()).flatten(1).sum(1).mean().item()
    assert s["test"] == pytest.approx(want_test, rel=1e-6)
    assert s["train"] == pytest.approx(want_train, rel=1e-6)
    assert math.isclose(s["gap"], s["test"] - s["train"])


def test_causality_violations_find_exactly_the_leaks():
    base = (torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).long()
    assert arc.causality_violations(_made(), base) == []

    def leaks_pixel_100(x):  # the prediction of pixel 50 reads pixel 100, which comes after it
        logits = torch.zeros(len(x), 2, 1, 28, 28)
        logits[:, 1, 0, 50 // 28, 50 % 28] = 3.0 * x.flatten(1)[:, 100].float()
        return logits

    bad = arc.causality_violations(leaks_pixel_100, base)
    assert [(d, e) for d, e, _ in bad] == [(100, 50)]
