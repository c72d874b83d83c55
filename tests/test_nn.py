"""gencourse.nn: the building blocks have the sizes, layers and checks they claim."""

import pytest
import torch
from torch import nn

from gencourse.nn import MLP, ConvDecoder, ConvEncoder


def test_mlp_layers_and_parameter_count():
    mlp = MLP([784, 400, 20])
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(784, 400), (400, 20)]
    assert sum(p.numel() for p in mlp.parameters()) == 784 * 400 + 400 + 400 * 20 + 20
    assert isinstance(mlp[1], nn.ReLU) and len(mlp) == 3  # no activation after the last layer


def test_mlp_computes_the_composition():
    torch.manual_seed(0)
    mlp = MLP([3, 5, 2], activation=nn.Tanh, final_activation=nn.Sigmoid)
    x = torch.randn(4, 3)
    l1, l2 = mlp[0], mlp[2]
    expected = torch.sigmoid(torch.tanh(x @ l1.weight.T + l1.bias) @ l2.weight.T + l2.bias)
    torch.testing.assert_close(mlp(x), expected)


@pytest.mark.parametrize("sizes", [[784], [], [3, 0, 2], [3, 2.5]])
def test_mlp_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes"):
        MLP(sizes)


def test_conv_encoder_halves_the_side_per_layer():
    enc = ConvEncoder(10, widths=(8, 16), hidden=32)
    x = torch.randn(3, 1, 28, 28)
    assert enc.conv(x).shape == (3, 16, 7, 7)
    assert enc(x).shape == (3, 10)
    assert ConvEncoder(4, widths=(8,), hidden=8).conv(x).shape == (3, 8, 14, 14)


def test_conv_encoder_condition_changes_the_output_and_is_checked():
    torch.manual_seed(0)
    enc = ConvEncoder(6, widths=(4, 8), hidden=16, cond_dim=10)
    x = torch.randn(2, 1, 28, 28)
    c0, c1 = torch.eye(10)[[0, 0]], torch.eye(10)[[3, 3]]
    assert not torch.allclose(enc(x, c0), enc(x, c1))
    with pytest.raises(ValueError, match="c must have shape"):
        enc(x)
    with pytest.raises(ValueError, match="cond_dim=0"):
        ConvEncoder(6, widths=(4, 8))(x, c0)


def test_conv_encoder_rejects_wrong_images():
    enc = ConvEncoder(4, widths=(4, 8), hidden=8)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 28, 28\), got \(2, 784\)"):
        enc(torch.zeros(2, 784))
    with pytest.raises(ValueError, match="divisible"):
        ConvEncoder(4, widths=(4, 8, 16), image_size=28)


def test_conv_decoder_shapes_and_unbounded_logits():
    torch.manual_seed(0)
    dec = ConvDecoder(5, widths=(16, 8), hidden=32)
    z = 10 * torch.randn(7, 5)
    out = dec(z)
    assert out.shape == (7, 1, 28, 28)
    assert dec.head(z).shape == (7, 16 * 7 * 7)
    assert out.min() < 0 or out.max() > 1  # logits: no final sigmoid
    assert not isinstance(dec.deconv[-1], (nn.SiLU, nn.Sigmoid, nn.ReLU))
    with pytest.raises(ValueError, match=r"z must have shape \(B, in_features\) = \(B, 5\)"):
        dec(torch.zeros(7, 4))


def test_encoder_decoder_are_differentiable_end_to_end():
    enc, dec = ConvEncoder(4, widths=(4, 8), hidden=8), ConvDecoder(4, widths=(8, 4), hidden=8)
    x = torch.rand(2, 1, 28, 28)
    dec(enc(x)).sum().backward()
    assert all(p.grad is not None for p in [*enc.parameters(), *dec.parameters()])
