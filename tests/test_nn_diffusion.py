"""gencourse.nn, diffusion section: the time embedding, the residual block, the U-Net and the MLP."""

import math

import pytest
import torch

from gencourse.nn import DiffusionUNet, SinusoidalEmbedding, TimeMLP, TimeResBlock, timestep_embedding

pytestmark = pytest.mark.usefixtures("one_thread")


def test_timestep_embedding_matches_the_formula():
    t = torch.tensor([0, 1, 17, 1000])
    dim = 8
    e = timestep_embedding(t, dim)
    assert e.shape == (4, 8) and e.dtype == torch.float32
    for i, ti in enumerate(t.tolist()):
        for k in range(4):
            omega = 10_000 ** (-k / 4)
            assert math.isclose(e[i, k].item(), math.sin(omega * ti), abs_tol=1e-4)
            assert math.isclose(e[i, 4 + k].item(), math.cos(omega * ti), abs_tol=1e-4)
    assert torch.equal(SinusoidalEmbedding(8)(t), e)
    with pytest.raises(ValueError, match="even"):
        timestep_embedding(t, 7)


def test_time_res_block_adds_the_embedding_per_channel():
    torch.manual_seed(0)
    block = TimeResBlock(4, 6, emb_dim=5, groups=2)
    x = torch.randn(2, 4, 7, 7)
    e1, e2 = torch.randn(2, 5), torch.randn(2, 5)
    out = block(x, e1)
    assert out.shape == (2, 6, 7, 7)
    assert isinstance(block.skip, torch.nn.Conv2d)  # 4 -> 6 channels: a 1x1 convolution on the skip path
    assert not torch.allclose(out, block(x, e2))
    # the block by hand
    F = torch.nn.functional
    h = block.conv1(F.silu(block.norm1(x))) + (e1 @ block.emb.weight.T + block.emb.bias)[:, :, None, None]
    torch.testing.assert_close(out, block.conv2(F.silu(block.norm2(h))) + block.skip(x))
    assert isinstance(TimeResBlock(6, 6, 5).skip, torch.nn.Identity)


def test_unet_shapes_zero_start_and_conditioning():
    torch.manual_seed(0)
    net = DiffusionUNet(channels=(8, 16), emb_dim=16, n_classes=10)
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([1, 500, 1000])
    out = net(x, t, torch.tensor([0, 5, 10]))
    assert out.shape == (3, 1, 28, 28)
    assert torch.count_nonzero(out) == 0  # the output convolution starts at zero: eps_hat = 0
    with torch.no_grad():
        torch.nn.init.normal_(net.conv_out.weight, std=0.1)
    y = torch.tensor([1, 1, 1])
    base = net(x, t, y)
    assert not torch.allclose(base, net(x, torch.tensor([2, 501, 999]), y))  # time matters
    assert not torch.allclose(base, net(x, t, torch.tensor([2, 2, 2])))  # the label matters
    torch.testing.assert_close(net(x, t), net(x, t, torch.full((3,), 10)))  # y = None is the null label


def test_unet_patch_folding_keeps_pixels_apart():
    # pixel_unshuffle then pixel_shuffle is the identity: without convolutions mixing them, each
    # output pixel depends only on its own 2x2 block (checked by the Jacobian of the folding)
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    folded = torch.nn.functional.pixel_unshuffle(x, 2)
    assert folded.shape == (2, 4, 2, 2)
    assert torch.equal(torch.nn.functional.pixel_shuffle(folded, 2), x)
    net = DiffusionUNet(channels=(8,), emb_dim=8, patch=1, image_size=12)
    assert net(torch.zeros(2, 1, 12, 12), torch.tensor([1, 2])).shape == (2, 1, 12, 12)


def test_unet_is_differentiable_and_parameter_count_is_small():
    net = DiffusionUNet(n_classes=10)
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)
    net(torch.randn(2, 1, 28, 28), torch.tensor([3, 4]), torch.tensor([1, 2])).square().mean().backward()
    assert all(p.grad is not None for name, p in net.named_parameters())
    n = sum(p.numel() for p in net.parameters())
    assert 300_000 < n < 600_000, n  # the cpu-profile model: about 0.4 M parameters


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda net: net(torch.zeros(2, 1, 32, 32), torch.tensor([1, 2])), r"x must have shape \(B, 1, 28, 28\)"),
        (lambda net: net(torch.zeros(2, 1, 28, 28), torch.tensor([1.0, 2.0])), "integer tensor of shape"),
        (lambda net: net(torch.zeros(2, 1, 28, 28), torch.tensor([1, 2, 3])), r"t must be an integer tensor of shape \(B,\) = \(2,\)"),
        (lambda net: net(torch.zeros(2, 1, 28, 28), torch.tensor([1, 2]), torch.tensor([3, 11])), r"labels in 0\.\.10"),
    ],
)
def test_unet_rejects_bad_inputs(call, message):
    net = DiffusionUNet(channels=(8, 16), emb_dim=16, n_classes=10)
    with pytest.raises(ValueError, match=message):
        call(net)


def test_unet_rejects_bad_configurations():
    with pytest.raises(ValueError, match="divisible"):
        DiffusionUNet(channels=(8, 16, 32), patch=2, image_size=28)
    with pytest.raises(ValueError, match="n_classes=0"):
        DiffusionUNet(channels=(8,), emb_dim=8)(torch.zeros(1, 1, 28, 28), torch.tensor([1]), torch.tensor([0]))


def test_time_mlp():
    torch.manual_seed(0)
    mlp = TimeMLP(2, hidden=16, n_layers=2, emb_dim=8)
    x = torch.randn(5, 2)
    out = mlp(x, torch.arange(5))
    assert out.shape == (5, 2)
    assert not torch.allclose(out, mlp(x, torch.arange(5) + 100))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        mlp(torch.zeros(5, 3), torch.arange(5))
