"""The public checks of chapter 07 accept the right answers and reject the classic mistakes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gencourse import nn as gnn
from gencourse.grading import check


def right_conv_transpose(x, w, stride):
    return gnn.conv_transpose2d_by_hand(x[None, None], w[None, None], stride)[0, 0]


def flipped_kernel(x, w, stride):
    return right_conv_transpose(x, w.flip(0, 1), stride)


def ignores_stride(x, w, stride):
    return right_conv_transpose(x, w, 1)


def test_right_answers_pass(capsys):
    assert check("dcgan.conv_transpose", right_conv_transpose)
    assert check("dcgan.conv_transpose", lambda x, w, s: F.conv_transpose2d(x[None, None], w[None, None], stride=s)[0, 0])
    assert check("dcgan.output_size", lambda n, k, s, p: (n - 1) * s - 2 * p + k)
    assert check("dcgan.generator_block", lambda c_in, c_out: gnn.up_block(c_in, c_out))
    assert check("dcgan.discriminator_block", lambda c_in, c_out, bn: gnn.down_block(c_in, c_out, batch_norm=bn))
    assert capsys.readouterr().out.count("✔") == 5


@pytest.mark.parametrize(
    "qid, wrong, message",
    [
        ("dcgan.conv_transpose", flipped_kernel, "not flipped"),
        ("dcgan.conv_transpose", ignores_stride, "shape"),
        ("dcgan.output_size", lambda n, k, s, p: n * s - 2 * p + k, "output_size"),
        ("dcgan.output_size", lambda n, k, s, p: (n - 1) * s - p + k, "output_size"),
        ("dcgan.generator_block", lambda c_in, c_out: nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 3, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()), "shape"),
        ("dcgan.generator_block", lambda c_in, c_out: nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.ReLU()), "batch norm"),
        ("dcgan.generator_block", lambda c_in, c_out: nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU()), "ConvTranspose2d"),
        ("dcgan.generator_block", lambda c_in, c_out: nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)), "ReLU"),
        ("dcgan.discriminator_block", lambda c_in, c_out, bn: gnn.down_block(c_in, c_out, batch_norm=True), "no batch norm"),
        ("dcgan.discriminator_block", lambda c_in, c_out, bn: gnn.down_block(c_in, c_out, batch_norm=bn, slope=0.01), "slope 0.2"),
        ("dcgan.discriminator_block", lambda c_in, c_out, bn: nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1), nn.MaxPool2d(2), nn.LeakyReLU(0.2)), "strided"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, wrong)


def right_receptive_field(layers):
    r, jump = 1, 1
    for k, s in layers:
        r += (k - 1) * jump
        jump *= s
    return r


def strides_ignored(layers):
    return 1 + sum(k - 1 for k, _ in layers)


def own_stride_included(layers):
    r, jump = 1, 1
    for k, s in layers:
        jump *= s
        r += (k - 1) * jump
    return r


def test_receptive_field_accepts_the_right_answer(capsys):
    assert check("dcgan.receptive_field", right_receptive_field)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (strides_ignored, "the strides are missing"),
        (own_stride_included, "BEFORE it"),
        (lambda layers: float(right_receptive_field(layers)), "must return an int"),
        (lambda layers: right_receptive_field(layers) + 1, "receptive_field\\(\\[\\(5, 1\\)\\]\\)"),
    ],
)
def test_receptive_field_rejects_the_classic_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("dcgan.receptive_field", wrong)


def bilinear_transposed_convolution():
    """The transposed convolution that IS bilinear 2x upsampling in the interior: kernel [1, 3, 3, 1] / 4 (outer)."""
    up = nn.ConvTranspose2d(1, 1, 4, 2, 1, bias=False)
    k = torch.tensor([0.25, 0.75, 0.75, 0.25])
    with torch.no_grad():
        up.weight.copy_(torch.outer(k, k)[None, None])
    return up


def checkerboard_transposed_convolution():
    up = nn.ConvTranspose2d(1, 1, 3, 2, 1, output_padding=1, bias=False)
    k = torch.tensor([0.25, 1.0, 0.75])
    with torch.no_grad():
        up.weight.copy_(torch.outer(k, k)[None, None])
    return up


DOWN = [0.01 / (1 + i) for i in range(30)]


def test_learn_upsampling_accepts_the_exact_kernel(monkeypatch, capsys):
    assert check("dcgan.learn_upsampling", bilinear_transposed_convolution(), DOWN)
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    assert check("dcgan.learn_upsampling", bilinear_transposed_convolution(), DOWN)
    assert capsys.readouterr().out.count("✔") == 2


@pytest.mark.parametrize(
    "up, losses, profile, message",
    [
        (checkerboard_transposed_convolution(), DOWN, "cpu", "checkerboard"),
        (nn.ConvTranspose2d(1, 1, 4, 1, 1, bias=False), DOWN, "smoke", "shape"),
        (bilinear_transposed_convolution(), list(reversed(DOWN)), "smoke", "did not go down"),
        (bilinear_transposed_convolution(), [torch.tensor(v) for v in DOWN], "smoke", "append"),
    ],
)
def test_learn_upsampling_rejects_the_classic_mistakes(up, losses, profile, message, monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", profile)
    with pytest.raises(AssertionError, match=message):
        check("dcgan.learn_upsampling", up, losses)
