"""The public MLP cGAN recipe's two networks (gencourse.models.conditional, used by
benchmarks/cgan_vs_mlp.py): their layers against the recipe's description, their forward pass against
a layer-by-layer computation from the weights, their label checks, and one least-squares step of
each through gencourse.train with labels."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gencourse import train
from gencourse.models import conditional as cond

pytestmark = pytest.mark.usefixtures("one_thread")
D64 = torch.float64


def _linears(module):
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def test_public_conditional_networks_follow_the_description():
    G, D = cond.PublicMLPConditionalGenerator(), cond.PublicMLPConditionalDiscriminator()
    assert (G.latent_dim, G.n_classes) == (100, 10)
    assert (G.label_emb.num_embeddings, G.label_emb.embedding_dim) == (10, 10)
    assert _linears(G) == [(110, 128), (128, 256), (256, 512), (512, 1024), (1024, 784)]
    bns = [m for m in G.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [m.num_features for m in bns] == [256, 512, 1024] and all(m.eps == 0.8 for m in bns)
    assert [m.negative_slope for m in G.modules() if isinstance(m, nn.LeakyReLU)] == [0.2] * 4
    assert isinstance(G.net[-1], nn.Tanh)
    assert (D.label_embedding.num_embeddings, D.label_embedding.embedding_dim) == (10, 10)
    assert _linears(D) == [(794, 512), (512, 512), (512, 512), (512, 1)]
    assert [m.p for m in D.modules() if isinstance(m, nn.Dropout)] == [0.4, 0.4]
    assert not any(isinstance(m, (nn.Sigmoid, nn.BatchNorm1d)) for m in D.modules())  # a raw score
    y = torch.arange(6) % 10
    x = G(torch.randn(6, 100), y)
    assert x.shape == (6, 1, 28, 28) and x.abs().max() < 1
    assert D(x, y).shape == (6,)


def test_public_conditional_generator_matches_a_layer_by_layer_computation():
    torch.manual_seed(0)
    G = cond.PublicMLPConditionalGenerator(latent_dim=5, n_classes=3, hidden=(7, 6, 4)).double()
    for m in G.modules():  # non-trivial running statistics, so that eps and the statistics matter
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.2, 2)
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
    G.eval()
    z, y = torch.randn(4, 5, dtype=D64), torch.tensor([2, 0, 1, 2])
    h = torch.cat([G.label_emb.weight[y], z], dim=1)  # embedding first, then the noise
    linears = [m for m in G.net if isinstance(m, nn.Linear)]
    bns = iter(m for m in G.net if isinstance(m, nn.BatchNorm1d))
    for i, lin in enumerate(linears[:-1]):
        h = h @ lin.weight.T + lin.bias
        if i > 0:
            bn = next(bns)
            h = (h - bn.running_mean) / torch.sqrt(bn.running_var + 0.8) * bn.weight + bn.bias
        h = torch.where(h > 0, h, 0.2 * h)
    expected = torch.tanh(h @ linears[-1].weight.T + linears[-1].bias).view(4, 1, 28, 28)
    torch.testing.assert_close(G(z, y), expected)
    same_z = G(z[:1].repeat(3, 1), torch.arange(3))
    assert (same_z[0] - same_z[1]).abs().max() > 1e-6  # the label changes the image


def test_public_conditional_discriminator_matches_a_layer_by_layer_computation():
    torch.manual_seed(1)
    D = cond.PublicMLPConditionalDiscriminator(n_classes=4, hidden=6).double().eval()  # eval: dropout off
    x, y = torch.randn(5, 1, 28, 28, dtype=D64), torch.tensor([3, 1, 0, 2, 3])
    h = torch.cat([x.reshape(5, 784), D.label_embedding.weight[y]], dim=1)  # the image first, then the label
    linears = [m for m in D.net if isinstance(m, nn.Linear)]
    for lin in linears[:-1]:
        a = h @ lin.weight.T + lin.bias
        h = torch.where(a > 0, a, 0.2 * a)
    expected = (h @ linears[-1].weight.T + linears[-1].bias)[:, 0]
    torch.testing.assert_close(D(x, y), expected)
    D.train()  # dropout on: two passes of the same batch differ
    assert (D(x, y) - D(x, y)).abs().max() > 0


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(3), r"y must be an integer tensor of class indices with shape \(B,\), got torch.float32 \(3,\)"),
        (F.one_hot(torch.tensor([0, 1, 2]), 10), r"got torch.int64 \(3, 10\) \(give class indices, not one-hot vectors\)"),
        (torch.tensor([0, 1, 10]), r"y must hold class indices in 0..9, got values in 0..10"),
        (torch.tensor([0, -1, 2]), r"y must hold class indices in 0..9, got values in -1..2"),
        (torch.tensor([0, 1]), r"y must have one label per image: shape \(3,\), got \(2,\)"),
        ([0, 1, 2], r"y must be an integer tensor .* got list"),
    ],
)
def test_public_conditional_networks_reject_bad_labels(bad, message):
    G, D = cond.PublicMLPConditionalGenerator(), cond.PublicMLPConditionalDiscriminator()
    with pytest.raises(ValueError, match=message):
        G(torch.randn(3, 100), bad)
    with pytest.raises(ValueError, match=message):
        D(torch.zeros(3, 1, 28, 28), bad)


def test_public_conditional_networks_reject_bad_shapes_and_settings():
    G, D = cond.PublicMLPConditionalGenerator(), cond.PublicMLPConditionalDiscriminator()
    with pytest.raises(ValueError, match=r"z must have shape \(B, latent_dim\) = \(B, 100\), got \(3, 64\)"):
        G(torch.randn(3, 64), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 28, 28\) with B >= 1, got \(3, 784\)"):
        D(torch.zeros(3, 784), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="dropout must be a probability in"):
        cond.PublicMLPConditionalDiscriminator(dropout=1.0)
    with pytest.raises(ValueError, match="hidden must list at least one width"):
        cond.PublicMLPConditionalGenerator(hidden=())
    with pytest.raises(ValueError, match="n_classes must be a positive int"):
        cond.PublicMLPConditionalGenerator(n_classes=0)


def test_public_conditional_networks_train_with_the_least_squares_steps_and_labels():
    torch.manual_seed(2)
    G = cond.PublicMLPConditionalGenerator(latent_dim=8, n_classes=4, hidden=(16, 16))
    D = cond.PublicMLPConditionalDiscriminator(n_classes=4, hidden=16)
    G.eval(), D.eval()  # deterministic forward passes, so the expected losses can be computed beforehand
    opt_G, opt_D = torch.optim.Adam(G.parameters(), 2e-4), torch.optim.Adam(D.parameters(), 2e-4)
    x, y = torch.rand(6, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 2, 3, 0, 1])
    z, y_fake = torch.randn(6, 8), torch.tensor([3, 3, 2, 1, 0, 0])
    with torch.no_grad():
        d_real, d_fake = D(x, y), D(G(z, y_fake), y_fake)
    expected_D = 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake**2).mean()
    g_before = [p.clone() for p in G.parameters()]
    out = train.d_step(G, D, opt_D, x, z, kind="least_squares", y_real=y, y_fake=y_fake)
    assert out["loss_D"] == pytest.approx(expected_D.item(), rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(g_before, G.parameters()))  # the D step leaves G alone
    with torch.no_grad():
        expected_G = 0.5 * ((D(G(z, y_fake), y_fake) - 1) ** 2).mean()
    d_before = [p.clone() for p in D.parameters()]
    out = train.g_step(G, D, opt_G, z, kind="least_squares", y=y_fake)
    assert out["loss_G"] == pytest.approx(expected_G.item(), rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(d_before, D.parameters()))  # the G step leaves D alone
    assert any(not torch.equal(a, b) for a, b in zip(g_before, G.parameters()))
    samples = cond.generate(G, torch.tensor([0, 1, 2, 3]), generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 1, 28, 28) and samples.abs().max() <= 1
