"""The reference PixelCNN written out in benchmarks/pixelcnn_vs_reference.py: its layers against the
paper's description (van den Oord et al., 2016, figure 5 and table 2), its forward pass against a
layer-by-layer computation from its weights, its measured receptive field (with the blind spot)
against one worked out from the masks' rule, its exact likelihood against a sum over all images and a
plain binary cross-entropy, the Bernoulli baseline against torch.distributions, and the benchmark's
training step against the recipe's first step."""

import importlib.util
import itertools
import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from gencourse.models import autoregressive as ar
from gencourse.recipes import autoregressive as recipe

pytestmark = pytest.mark.usefixtures("one_thread")
D64 = torch.float64


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "pixelcnn_vs_reference.py"
    spec = importlib.util.spec_from_file_location("pixelcnn_vs_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spatial_rule(k: int, mask_type: str) -> list[tuple[int, int]]:
    """The offsets (dy, dx) an output pixel reads through a causal k x k kernel: the rows above, the
    pixels left in its row, and itself for type B."""
    c = k // 2
    offsets = [(dy, dx) for dy in range(-c, 0) for dx in range(-c, c + 1)] + [(0, dx) for dx in range(-c, 0)]
    return offsets + ([(0, 0)] if mask_type == "B" else [])


def test_reference_follows_the_paper_layout(bench):
    torch.manual_seed(0)
    net = bench.ReferencePixelCNN()  # h = 16, 6 residual blocks
    block = [(32, 16, 1, "B"), (16, 16, 3, "B"), (16, 32, 1, "B")]
    assert bench.layout(net) == [(1, 32, 7, "A"), *block * 6, (32, 32, 1, "B"), (32, 1, 1, "B")]
    for m in net.modules():
        if isinstance(m, ar.MaskedConv2d):
            k, c = m.kernel_size[0], m.kernel_size[0] // 2
            expected = torch.zeros(k, k)
            for dy, dx in _spatial_rule(k, m.mask_type):
                expected[c + dy, c + dx] = 1.0
            assert torch.equal(m.mask, expected.expand_as(m.weight))  # one colour channel: the spatial rule in every (out, in) pair
    h = 16
    expected_params = (49 * 2 * h + 2 * h) + 6 * ((2 * h * h + h) + (9 * h * h + h) + (h * 2 * h + 2 * h)) + (4 * h * h + 2 * h) + (2 * h + 1)
    assert sum(p.numel() for p in net.parameters()) == expected_params
    _, info = bench.reference_model(0)
    assert info["parameters"] == expected_params and info["layout"][0] == [1, 32, 7, "A"] and len(info["layout"]) == 21
    out = net(torch.randint(0, 2, (3, 1, 28, 28)))
    assert out.shape == (3, 2, 1, 28, 28) and torch.equal(out[:, 0], torch.zeros_like(out[:, 0]))
    with pytest.raises(ValueError, match="unconditional"):
        net(torch.zeros(1, 1, 28, 28, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="one binary channel"):
        net(torch.zeros(1, 2, 28, 28, dtype=torch.long))
    with pytest.raises(ValueError, match="levels in 0..1"):
        net(torch.full((1, 1, 28, 28), 2))


def test_reference_matches_a_layer_by_layer_computation(bench):
    torch.manual_seed(1)
    net = bench.ReferencePixelCNN(h=3, n_blocks=2).double()
    for p in net.parameters():  # non-trivial biases, so that their use matters
        torch.nn.init.normal_(p, 0.0, 0.3)
    x = torch.randint(0, 2, (2, 1, 9, 8))
    u = x.to(D64) * 2 - 1  # levels {0, 1} -> {-1, 1}

    def conv(h, m):
        k, c = m.kernel_size[0], m.kernel_size[0] // 2
        w = torch.zeros_like(m.weight)
        for dy, dx in _spatial_rule(k, m.mask_type):
            w[:, :, c + dy, c + dx] = m.weight[:, :, c + dy, c + dx]
        return F.conv2d(h, w, m.bias, padding=c)

    h = conv(u, net.first)
    for b in net.blocks:
        h = h + conv(F.relu(conv(F.relu(conv(F.relu(h), b.reduce)), b.conv)), b.expand)
    logit = conv(F.relu(conv(F.relu(h), net.out1)), net.out2)
    out = net(x)
    torch.testing.assert_close(out[:, 1, 0], logit[:, 0])
    torch.testing.assert_close(out[:, 0], torch.zeros_like(out[:, 0]))


def test_reference_receptive_field_has_the_blind_spot(bench):
    torch.manual_seed(2)
    net = bench.ReferencePixelCNN(h=4, n_blocks=3)
    H, W, i, j = 16, 16, 10, 7
    measured = ar.dependencies(net, (1, H, W), i, j, trials=8)[0]

    def dilate(points, rule):
        return {(y + dy, x + dx) for (y, x) in points for dy, dx in rule if 0 <= y + dy < H and 0 <= x + dx < W}

    reach = {(i, j)}  # backwards from the output pixel: 1 x 1 layers keep the set, a block adds its 3 x 3 mask-B neighbourhood
    for _ in net.blocks:
        reach = reach | dilate(reach, _spatial_rule(3, "B"))
    reach = dilate(reach, _spatial_rule(7, "A"))
    expected = torch.zeros(H, W, dtype=torch.bool)
    for y, x in reach:
        expected[y, x] = True
    assert torch.equal(measured, expected)
    before = torch.tensor([[(y, x) < (i, j) for x in range(W)] for y in range(H)])
    assert not (measured & ~before).any()  # causal: nothing at or after (i, j) in raster order
    assert measured[i - 1, j + 3] and not measured[i - 1, j + 5]  # the blind spot: upper right of the pixel, beyond the diagonal
    assert measured[i, 1:j].all() and not measured[i, 0]  # in its row: 3 + 3 pixels to the left (the first layer, then the blocks)
    assert measured[i - 1, j] and measured[i - 6, j] and not measured[i - 7, j]


def test_reference_likelihood_is_exact(bench):
    torch.manual_seed(3)
    net = bench.ReferencePixelCNN(h=2, n_blocks=2).eval()
    images = torch.tensor(list(itertools.product([0, 1], repeat=6))).view(64, 1, 2, 3)
    with torch.no_grad():
        ll = ar.log_likelihood(net, images)
        total = torch.logsumexp(ll.double(), 0).exp().item()
        logit = net(images)[:, 1]  # (B, 1, H, W)
        bce = F.binary_cross_entropy_with_logits(logit, images.float(), reduction="none").flatten(1).sum(1)
    assert abs(total - 1.0) < 1e-5  # a distribution over the 64 images
    torch.testing.assert_close(ll, -bce)
    x = images[::5]
    assert bench.heldout_nll(net, x) == pytest.approx(bench.heldout_nll_cross_entropy(net, x), abs=1e-4)
    assert bench.heldout_nll(net, x) == pytest.approx(bce[::5].mean().item(), abs=1e-4)


def test_bernoulli_baseline_against_torch_distributions(bench):
    g = torch.Generator().manual_seed(4)
    x_train = (torch.rand(50, 1, 4, 4, generator=g) < torch.linspace(0.05, 0.9, 16).view(1, 1, 4, 4)).long()
    x_test = (torch.rand(20, 1, 4, 4, generator=g) < 0.4).long()
    for s in (1.0, 0.5):
        p = (x_train.double().sum(0) + s) / (50 + 2 * s)
        expected = -torch.distributions.Bernoulli(probs=p).log_prob(x_test.double()).flatten(1).sum(1).mean().item()
        assert bench.bernoulli_nll(x_train, x_test, s) == pytest.approx(expected, rel=1e-10)
    x_train[:, 0, 0, 0] = 0
    x_test[0, 0, 0, 0] = 1
    assert math.isinf(bench.bernoulli_nll(x_train, x_test, 0.0))  # the maximum-likelihood fit: a held-out pixel on where none was
    x_test[:, 0, 0, 0] = 0
    full = x_train.clone()
    full[0] = 1 - full[1]  # every pixel both on and off somewhere: the maximum-likelihood fit is finite
    p = full.double().mean(0)
    expected = -torch.distributions.Bernoulli(probs=p).log_prob(x_test.double()).flatten(1).sum(1).mean().item()
    assert bench.bernoulli_nll(full, x_test, 0.0) == pytest.approx(expected, rel=1e-10)
    uniform = bench.bernoulli_nll(torch.tensor([[[[0]]], [[[1]]]]).expand(2, 1, 28, 28), x_train.new_zeros(3, 1, 28, 28), 0.0)
    assert uniform == pytest.approx(784 * math.log(2))  # p = 1/2 everywhere: the uniform baseline
    with pytest.raises(ValueError, match="same image shape"):
        bench.bernoulli_nll(x_train, torch.zeros(2, 1, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="smoothing"):
        bench.bernoulli_nll(x_train, x_test, -1.0)


def test_benchmark_step_is_the_recipes_first_step(bench):
    s = recipe.autoregressive_settings("gated", steps=1, seed=5, lr=bench.LR)  # the benchmark's rate, the same for both models
    ours, theirs = recipe.build_autoregressive(s), recipe.build_autoregressive(s)
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
    x_train, _ = recipe.binarised_mnist("train")
    nll = bench.make_step(ours, x_train, seed=5)()
    history = recipe.train_autoregressive(theirs, s, progress=False)  # its cosine factor is 1 at the first step
    assert nll == pytest.approx(history["nll"][0], rel=1e-6)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b)  # same batch, same loss, same Adam step
    assert any(not torch.equal(a, b) for a, b in zip(ours.parameters(), recipe.build_autoregressive(s).parameters()))


def test_clearly_better_rule(bench):
    assert bench.MARGIN == 2.0
    assert bench.clearly_better(80.0, 82.0) and bench.clearly_better(70.0, 90.0)
    assert not bench.clearly_better(80.5, 82.0) and not bench.clearly_better(85.0, 82.0)
