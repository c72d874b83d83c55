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
        expect_close(
            got,
            expected,
            what=f"conv_transpose of the chapter's example, stride {stride}",
            rtol=1e-5,
            hint="each input pixel x[i, j] adds x[i, j] * w to the output block starting at (stride*i, stride*j); the kernel is not flipped",
        )
    g = torch.Generator().manual_seed(0)
    x2, w2 = torch.randn(3, 4, generator=g), torch.randn(2, 3, generator=g)
    expect_close(
        conv_transpose(x2, w2, 3),
        F.conv_transpose2d(x2[None, None], w2[None, None], stride=3)[0, 0],
        what="conv_transpose of a 3x4 input with a 2x3 kernel, stride 3",
        rtol=1e-4,
        atol=1e-5,
    )


@register("dcgan.output_size")
def _output_size(output_size):
    from gencourse import nn as gnn

    cases = [(7, 4, 2, 1), (1, 7, 1, 0), (14, 4, 2, 1), (2, 3, 1, 0), (2, 3, 2, 0), (5, 5, 3, 2)]
    for n, k, s, p in cases:
        expect_close(
            output_size(n, k, s, p),
            gnn.conv_transpose_output_size(n, k, s, p),
            what=f"output_size(n={n}, k={k}, s={s}, p={p})",
            hint="(n - 1) * s - 2 * p + k",
        )


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
    expect(
        nn.Linear not in types and nn.Upsample not in types and not any(issubclass(t, (nn.MaxPool2d, nn.AvgPool2d)) for t in types),
        f"{what} must change the size with a strided (transposed) convolution only: no Linear, Upsample or pooling layers",
    )
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
    expect(
        nn.BatchNorm2d not in [type(m) for m in first.modules()],
        "discriminator_block(..., batch_norm=False) must have no batch norm (D's first layer)",
    )
    slopes = [m.negative_slope for m in first.modules() if isinstance(m, nn.LeakyReLU)]
    expect(slopes and abs(slopes[0] - 0.2) < 1e-9, f"use LeakyReLU with slope 0.2 as in the DCGAN paper, got {slopes}")
    with torch.no_grad():
        y = first(-torch.ones(1, 1, 28, 28))
    expect(float(y.min()) < 0, "LeakyReLU must let negative values through (scaled by 0.2)")


def _receptive_field_reference(layers) -> int:
    r, jump = 1, 1
    for k, s in layers:
        r += (k - 1) * jump
        jump *= s
    return r


@register("dcgan.receptive_field")
def _receptive_field(receptive_field):
    cases = [
        ([(5, 1)], "one 5 x 5 convolution sees 5 x 5 pixels"),
        ([(3, 1), (3, 1)], "two 3 x 3 convolutions of stride 1 see 5 x 5 pixels"),
        ([(4, 2), (4, 2), (7, 1)], "the chapter's discriminator"),
        ([(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)], "pix2pix's 70 x 70 PatchGAN"),
        ([(3, 2), (3, 3), (2, 1)], "a stack with strides 2 and 3"),
    ]
    for layers, what in cases:
        got = receptive_field(list(layers))
        expect(isinstance(got, int) and not isinstance(got, bool), f"receptive_field must return an int, got {type(got).__name__}")
        want = _receptive_field_reference(layers)
        no_stride = 1 + sum(k - 1 for k, _ in layers)
        own_stride, jump = 1, 1
        for k, s in layers:
            jump *= s
            own_stride += (k - 1) * jump
        expect(
            got != no_stride or no_stride == want,
            f"receptive_field({layers}) = {got} ({what}): the strides are missing; a pixel after a stride-s layer "
            "spans s pixels of that layer's input, so later kernels widen the field by (k - 1) times the product of the earlier strides",
        )
        expect(
            got != own_stride or own_stride == want,
            f"receptive_field({layers}) = {got} ({what}): a layer's kernel is counted in pixels of ITS input, so multiply "
            "(k - 1) by the product of the strides of the layers BEFORE it, not including its own",
        )
        expect_close(got, want, what=f"receptive_field({layers}) ({what})", rtol=0, atol=0.5)


UPSAMPLING_TARGET = 1e-4


@register("dcgan.learn_upsampling")
def _learn_upsampling(up, losses):
    import torch
    import torch.nn.functional as F

    from gencourse import data

    from ._training import expect_losses_went_down, expect_target

    expect_losses_went_down(losses)
    x28, _ = data.mnist_tensors("test", source="embedded", verbose=False)
    x = F.avg_pool2d(x28[-300:], 2)
    with torch.no_grad():
        y = up(x)
    expect(isinstance(y, torch.Tensor), f"up(x) must return a tensor, got {type(y).__name__}")
    expect_shape(y, (300, 1, 28, 28), what="up(x) for x of shape (300, 1, 14, 14) (check the side with your output_size)")
    want = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    err = (y.double() - want.double())[..., 1:-1, 1:-1]
    mse = float((err**2).mean())
    even_odd = [float((err[..., i::2, j::2] ** 2).mean()) for i in (0, 1) for j in (0, 1)]
    hint = ""
    if mse > 0 and max(even_odd) > 4 * min(even_odd) + 1e-9:
        hint = (
            "the error differs between even and odd output pixels ("
            + ", ".join(f"{v:.2g}" for v in even_odd)
            + "): a checkerboard. Choose a kernel size that is a multiple of the stride, so that every output pixel "
            "receives the same number of kernel taps"
        )
    expect_target(
        mse,
        UPSAMPLING_TARGET,
        what="held-out interior MSE of up(x) against bilinear upsampling",
        hint=hint or "train longer, with a larger learning rate, or check the kernel size, stride and padding",
    )
