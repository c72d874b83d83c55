"""The reference pix2pix networks written out in benchmarks/pix2pix_vs_reference.py: their layers
against the paper's description (scaled to 28 x 28 digits), the generator's forward pass against a
layer-by-layer computation from its weights, the PatchGAN's receptive field against the support of
an input gradient, and the batched form of the paper's test mode against a loop over single images."""

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

pytestmark = pytest.mark.usefixtures("one_thread")
D64 = torch.float64


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "pix2pix_vs_reference.py"
    spec = importlib.util.spec_from_file_location("pix2pix_vs_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _random_running_stats(module):
    for m in module.modules():  # non-trivial statistics and affine parameters, so that their use matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(m.weight, 1.0, 0.3)
            nn.init.normal_(m.bias, 0.0, 0.3)


def test_reference_generator_follows_the_paper_scaled_to_32(bench):
    torch.manual_seed(0)
    G = bench.ReferenceGenerator()
    convs = [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in G.enc]
    assert convs == [(1, 64, (4, 4), (2, 2)), (64, 128, (4, 4), (2, 2)), (128, 256, (4, 4), (2, 2)),
                     (256, 512, (4, 4), (2, 2)), (512, 512, (4, 4), (2, 2))]
    assert [(m.in_channels, m.out_channels) for m in G.dec] == [(512, 512), (1024, 256), (512, 128), (256, 64), (128, 1)]
    assert all(m.kernel_size == (4, 4) and m.stride == (2, 2) for m in G.dec)
    # batch norm on every layer but the first and the innermost of the encoder and the last of the decoder
    assert [type(m).__name__ for m in G.enc_norm] == ["Identity", "BatchNorm2d", "BatchNorm2d", "BatchNorm2d", "Identity"]
    assert [getattr(m, "num_features", None) for m in G.dec_norm] == [512, 256, 128, 64, None]
    assert [getattr(m, "p", None) for m in G.dec_drop] == [0.5, 0.5, None, None, None]
    weights = torch.cat([m.weight.flatten() for m in [*G.enc, *G.dec]])
    assert abs(weights.std().item() - 0.02) < 0.001 and abs(weights.mean().item()) < 0.001
    shapes = []
    hook = G.enc[-1].register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    out = G.eval()(torch.rand(3, 1, 28, 28) * 2 - 1)
    hook.remove()
    assert shapes == [(3, 512, 1, 1)]  # five stride-2 layers take the padded 32 x 32 input to 1 x 1
    assert out.shape == (3, 1, 28, 28) and out.abs().max() <= 1
    with pytest.raises(ValueError, match="28, 28"):
        G(torch.zeros(1, 1, 32, 32))


def test_reference_generator_matches_a_layer_by_layer_computation(bench):
    torch.manual_seed(1)
    G = bench.ReferenceGenerator(ngf=2).double()
    _random_running_stats(G)
    G.eval()
    x = torch.rand(2, 1, 28, 28, dtype=D64) * 2 - 1

    def bn(h, m):
        shape = (1, -1, 1, 1)
        return (h - m.running_mean.view(shape)) / torch.sqrt(m.running_var.view(shape) + m.eps) * m.weight.view(shape) + m.bias.view(shape)

    h = torch.full((2, 1, 32, 32), -1.0, dtype=D64)
    h[:, :, 2:30, 2:30] = x  # padded with the background value
    feats = []
    for i, conv in enumerate(G.enc):
        if i > 0:
            h = torch.where(h > 0, h, 0.2 * h)
        h = F.conv2d(h, conv.weight, None, stride=2, padding=1)
        if i in (1, 2, 3):
            h = bn(h, G.enc_norm[i])
        feats.append(h)
    for j, conv in enumerate(G.dec):
        if j > 0:
            h = torch.cat([h, feats[4 - j]], 1)
        h = F.conv_transpose2d(h.clamp_min(0), conv.weight, conv.bias, stride=2, padding=1)
        if j < 4:
            h = bn(h, G.dec_norm[j])
    expected = torch.tanh(h)[:, :, 2:30, 2:30]
    torch.testing.assert_close(G(x), expected)
    x2 = x.clone()
    x2[0, 0, 0, 0] = -x2[0, 0, 0, 0]
    assert (G(x2)[0] - G(x)[0]).abs().max() > 0  # the output depends on the input's corner pixel: the crop is aligned


@pytest.mark.parametrize("n_layers, field, widths", [(3, 70, [64, 128, 256, 512]), (1, 16, [64, 128])])
def test_reference_patchgan_layout_and_receptive_field(bench, n_layers, field, widths):
    torch.manual_seed(2)
    D = bench.ReferencePatchGAN(2, 64, n_layers)
    assert D.widths == widths and D.receptive_field == field
    assert D.layers == [(4, 2)] * n_layers + [(4, 1), (4, 1)]
    bns = [m.num_features for m in D.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns == widths[1:]  # no batch norm on the first layer
    assert D(torch.zeros(3, 2, 28, 28)).shape == ((3, 1, 1, 1) if n_layers == 3 else (3, 1, 12, 12))
    # the support of one interior logit's input gradient, on an input large enough that padding does not clip it
    _random_running_stats(D)
    D = D.double().eval()
    x = torch.randn(1, 2, 160, 160, dtype=D64, requires_grad=True)
    logits = D(x)
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad.abs().sum((0, 1, 3)) > 0).flatten()
    cols = torch.nonzero(x.grad.abs().sum((0, 1, 2)) > 0).flatten()
    assert rows.max() - rows.min() + 1 == field and cols.max() - cols.min() + 1 == field


def test_paper_test_mode_is_a_loop_over_single_images_in_training_mode(bench):
    torch.manual_seed(3)
    G = bench.ReferenceGenerator(ngf=4)
    _random_running_stats(G)
    before = [m.running_mean.clone() for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    assert bench.check_test_mode(G, x) < 1e-5  # dropout off: batched instance norm == batch norm of one image at a time
    paper, paper_again = bench.paper_test_mode(G, x, 0), bench.paper_test_mode(G, x, 0)
    torch.testing.assert_close(paper, paper_again)  # the seed fixes the dropout masks
    assert (bench.paper_test_mode(G, x, 1) - paper).abs().max() > 1e-4  # dropout is on
    assert (paper - G.eval()(x)).abs().max() > 1e-3  # not the running statistics
    after = [m.running_mean for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(before, after))  # G itself is untouched
    assert G.training is False
