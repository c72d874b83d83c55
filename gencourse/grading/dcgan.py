"""Public checks for the exercises of chapter 07 (DCGAN).

The transposed convolution is compared with ``torch.nn.functional.conv_transpose2d`` and with
:func:`gencourse.nn.conv_transpose2d_by_hand`; the blocks with the DCGAN guidelines and the
output-size arithmetic of :mod:`gencourse.nn`.
"""

from __future__ import annotations

from .checks import expect, expect_close, expect_shape, register


@register("dcgan.conv_transpose")
def _conv_transpose(conv_transpose):
    import torch
    import torch.nn.functional as F

    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    w = torch.tensor([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0], [30.0, 20.0, 10.0]])
    for stride in (1, 2):
        expected = F.conv_transpose2d(x[None, None], w[None, None], stride=stride)[0, 0]
        got = conv_transpose(x, w, stride)
        expect_shape(got, tuple(expected.shape), what=f"conv_transpose(x, w, stride={stride})")
        expect_close(got, expected, what=f"conv_transpose of the chapter's example, stride {stride}", rtol=1e-5,
                     hint="each input pixel x[i, j] adds x[i, j] * w to the output block starting at (stride*i, stride*j); "
                          "the kernel is not flipped")
    g = torch.Generator().manual_seed(0)
    x2, w2 = torch.randn(3, 4, generator=g), torch.randn(2, 3, generator=g)
    expect_close(conv_transpose(x2, w2, 3), F.conv_transpose2d(x2[None, None], w2[None, None], stride=3)[0, 0],
                 what="conv_transpose of a 3x4 input with a 2x3 kernel, stride 3", rtol=1e-4, atol=1e-5)


@register("dcgan.output_size")
def _output_size(output_size):
    from gencourse import nn as gnn

    cases = [(7, 4, 2, 1), (1, 7, 1, 0), (14, 4, 2, 1), (2, 3, 1, 0), (2, 3, 2, 0), (5, 5, 3, 2)]
    for n, k, s, p in cases:
        expect_close(output_size(n, k, s, p), gnn.conv_transpose_output_size(n, k, s, p),
                     what=f"output_size(n={n}, k={k}, s={s}, p={p})", hint="(n - 1) * s - 2 * p + k")


def _block_checks(block, c_in, c_out, side, expected_side, conv_type, act, what):
    import torch
    from torch import nn

    torch.manual_seed(0)
    expect(isinstance(block, nn.Module), f"{what} must return an nn.Module (e.g. nn.Sequential), got {type(block).__name__}")
    with torch.no_grad():
        y = block(torch.randn(4, c_in, side, side))
    expect_shape(y, (4, c_out, expected_side, expected_side), what=f"the output of {what}({c_in}, {c_out}) on a {side}x{side} input")
    types = [type(m) for m in block.modules()]
    expect(conv_type in types, f"{what} needs a {conv_type.__name__} (the DCGAN has no pooling and no fully connected layers)")
    expect(nn.Linear not in types and nn.Upsample not in types and not any(issubclass(t, (nn.MaxPool2d, nn.AvgPool2d)) for t in types),
           f"{what} must change the size with a strided (transposed) convolution only: no Linear, Upsample or pooling layers")
    expect(act in types, f"{what} must end with {act.__name__} (DCGAN: ReLU in the generator, LeakyReLU(0.2) in the discriminator)")
    return types


@register("dcgan.generator_block")
def _generator_block(generator_block):
    import torch
    from torch import nn

    for c_in, c_out, side in ((16, 8, 7), (8, 4, 14)):
        types = _block_checks(generator_block(c_in, c_out), c_in, c_out, side, 2 * side, nn.ConvTranspose2d, nn.ReLU, "generator_block")
    expect(nn.BatchNorm2d in types, "generator_block needs batch norm between the transposed convolution and the ReLU")
    with torch.no_grad():
        y = generator_block(4, 2)(torch.randn(3, 4, 7, 7))
    expect(float(y.min()) >= 0, "the block's output has negative values: end with ReLU")


@register("dcgan.discriminator_block")
def _discriminator_block(discriminator_block):
    import torch
    from torch import nn

    for c_in, c_out, side in ((1, 8, 28), (8, 16, 14)):
        types = _block_checks(discriminator_block(c_in, c_out, True), c_in, c_out, side, side // 2, nn.Conv2d, nn.LeakyReLU, "discriminator_block")
    expect(nn.BatchNorm2d in types, "discriminator_block(..., batch_norm=True) needs batch norm")
    first = discriminator_block(1, 8, False)
    expect(nn.BatchNorm2d not in [type(m) for m in first.modules()], "discriminator_block(..., batch_norm=False) must have no batch norm (D's first layer)")
    slopes = [m.negative_slope for m in first.modules() if isinstance(m, nn.LeakyReLU)]
    expect(slopes and abs(slopes[0] - 0.2) < 1e-9, f"use LeakyReLU with slope 0.2 as in the DCGAN paper, got {slopes}")
    with torch.no_grad():
        y = first(-torch.ones(1, 1, 28, 28))
    expect(float(y.min()) < 0, "LeakyReLU must let negative values through (scaled by 0.2)")
