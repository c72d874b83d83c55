"""gencourse.nn, transposed convolution and DCGAN blocks: by hand, as convolution, and torch agree."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gencourse import nn as gnn

X = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]
K = torch.tensor([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0], [30.0, 20.0, 10.0]])[None, None]


def test_the_chapter_example_by_hand():
    # each input pixel paints x_ij * K at offset (i, j); the four patches overlap and add up
    expected = torch.tensor([[10.0, 40.0, 70.0, 60.0],
                             [70.0, 230.0, 330.0, 240.0],
                             [150.0, 390.0, 430.0, 260.0],
                             [90.0, 180.0, 110.0, 40.0]])
    torch.testing.assert_close(gnn.conv_transpose2d_by_hand(X, K)[0, 0], expected)
    # stride 2: the patches start 2 apart, so they overlap on one row/column only
    y2 = gnn.conv_transpose2d_by_hand(X, K, stride=2)[0, 0]
    assert y2.shape == (5, 5)
    assert y2[2, 2].item() == 1 * 10 + 2 * 30 + 3 * 30 + 4 * 10  # the centre collects four corners


@pytest.mark.parametrize("stride, padding", list(itertools.product([1, 2, 3], [0, 1, 2])))
def test_by_hand_and_as_convolution_match_torch(stride, padding):
    g = torch.Generator().manual_seed(stride * 10 + padding)
    x = torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 4, generator=g, dtype=torch.float64)  # (C_in, C_out, kh, kw), non-square
    expected = F.conv_transpose2d(x, w, stride=stride, padding=padding)
    torch.testing.assert_close(gnn.conv_transpose2d_by_hand(x, w, stride, padding), expected)
    torch.testing.assert_close(gnn.conv_transpose2d_as_conv(x, w, stride, padding), expected)


def test_transposed_convolution_is_the_adjoint_of_convolution():
    # <conv(x; w), y> = <x, convT(y; w)>: the gradient of a convolution with respect to its input
    g = torch.Generator().manual_seed(1)
    w = torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64)  # conv2d layout (C_out, C_in, k, k)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 4, 4, 4, generator=g, dtype=torch.float64)
    (grad_x,) = torch.autograd.grad((F.conv2d(x, w, stride=2, padding=1) * y).sum(), x)
    torch.testing.assert_close(gnn.conv_transpose2d_by_hand(y, w, stride=2, padding=1), grad_x)


def test_insert_zeros():
    out = gnn.insert_zeros(X, 2)[0, 0]
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [3.0, 0.0, 4.0]]))
    assert gnn.insert_zeros(torch.zeros(1, 2, 7, 5), 3).shape == (1, 2, 19, 13)


@pytest.mark.parametrize("size, k, s, p, op", [(7, 4, 2, 1, 0), (1, 7, 1, 0, 0), (14, 4, 2, 1, 0), (5, 3, 2, 1, 1), (4, 4, 1, 0, 0), (3, 5, 3, 2, 2)])
def test_output_sizes_match_torch_layers(size, k, s, p, op):
    convT = nn.ConvTranspose2d(1, 1, k, s, p, output_padding=op)
    assert gnn.conv_transpose_output_size(size, k, s, p, op) == convT(torch.zeros(1, 1, size, size)).shape[-1]
    out = gnn.conv_transpose_output_size(size, k, s, p, op)
    conv = nn.Conv2d(1, 1, k, s, p)
    assert gnn.conv_output_size(out, k, s, p) == conv(torch.zeros(1, 1, out, out)).shape[-1]


def test_output_size_arithmetic_of_the_dcgan():
    assert gnn.conv_transpose_output_size(1, 7) == 7
    assert gnn.conv_transpose_output_size(7, 4, 2, 1) == 14 and gnn.conv_transpose_output_size(14, 4, 2, 1) == 28
    assert gnn.conv_output_size(28, 4, 2, 1) == 14 and gnn.conv_output_size(14, 4, 2, 1) == 7
    assert gnn.conv_output_size(7, 7) == 1
    with pytest.raises(ValueError, match="output_padding"):
        gnn.conv_transpose_output_size(4, 3, 1, 0, 1)
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        gnn.conv_output_size(4, 3, 1, -1)


def test_blocks_have_the_dcgan_layers_and_shapes():
    up = gnn.up_block(16, 8)
    assert [type(m) for m in up] == [nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU] and up[0].bias is None
    assert up(torch.zeros(2, 16, 7, 7)).shape == (2, 8, 14, 14)
    down = gnn.down_block(1, 8, batch_norm=False)
    assert [type(m) for m in down] == [nn.Conv2d, nn.LeakyReLU] and down[0].bias is not None
    assert down[1].negative_slope == 0.2
    assert gnn.down_block(8, 16)(torch.zeros(2, 8, 14, 14)).shape == (2, 16, 7, 7)
    with pytest.raises(ValueError, match="slope"):
        gnn.down_block(1, 8, slope=1.5)


def test_input_checks():
    with pytest.raises(ValueError, match="weight must have shape"):
        gnn.conv_transpose2d_by_hand(X, torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match="x must have shape"):
        gnn.conv_transpose2d_by_hand(X[0], K)
    with pytest.raises(ValueError, match="padding must be at most"):
        gnn.conv_transpose2d_as_conv(X, K, padding=3)
