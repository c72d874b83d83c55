"""Autoregressive models (chapter 05): causal masks, MADE, PixelCNN and the gated PixelCNN, the exact
log-likelihood, raster-order sampling and the binarised-MNIST recipe, each checked against an
independent computation (a loop over positions, a brute-force change of one input at a time, the
receptive field worked out from the layers, the enumeration of every image, a chi-square test)."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn
from torch.nn import functional as F

from gencourse import train
from gencourse.models import autoregressive as ar

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------ causal masks


def _mask_by_loop(k, mask_type, c_in=1, c_out=1, n_colours=1):
    """The causal mask by its rule, one weight at a time: kept iff the tap is in a row above the
    centre, or left of the centre in its row, or the centre itself with input colour before (A) or
    not after (B) the output colour; colours are contiguous blocks of channels."""
    c = k // 2
    mask = np.zeros((c_out, c_in, k, k))
    for o in range(c_out):
        for i in range(c_in):
            g_out, g_in = o // (c_out // n_colours), i // (c_in // n_colours)
            for row in range(k):
                for col in range(k):
                    if row < c or (row == c and col < c):
                        mask[o, i, row, col] = 1
                    elif row == c and col == c:
                        mask[o, i, row, col] = g_in < g_out if mask_type == "A" else g_in <= g_out
    return torch.tensor(mask, dtype=torch.float32)


def test_single_channel_masks_written_out():
    a3 = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=torch.float32)
    b3 = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]], dtype=torch.float32)
    a5 = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(ar.causal_mask(3, "A"), a3[None, None])
    assert torch.equal(ar.causal_mask(3, "B"), b3[None, None])
    assert torch.equal(ar.causal_mask(5, "A"), a5[None, None])
    b5 = a5.clone()
    b5[2, 2] = 1
    assert torch.equal(ar.causal_mask(5, "B"), b5[None, None])
    assert torch.equal(ar.causal_mask(1, "A"), torch.zeros(1, 1, 1, 1)) and torch.equal(ar.causal_mask(1, "B"), torch.ones(1, 1, 1, 1))


@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("c_in, c_out, n_colours", [(1, 1, 1), (2, 4, 1), (3, 3, 3), (6, 6, 3), (3, 6, 3), (6, 3, 3)])
def test_causal_mask_matches_the_rule_tap_by_tap(k, mask_type, c_in, c_out, n_colours):
    assert torch.equal(ar.causal_mask(k, mask_type, c_in, c_out, n_colours), _mask_by_loop(k, mask_type, c_in, c_out, n_colours))


def test_colour_groups_at_the_centre():
    R, G, B = 0, 1, 2
    a = ar.causal_mask(3, "A", 3, 3, 3)[:, :, 1, 1]  # (out, in)
    assert a[R].sum() == 0  # R sees no colour of its own pixel
    assert a[G].tolist() == [1, 0, 0] and a[B].tolist() == [1, 1, 0]  # G sees R; B sees R and G
    b = ar.causal_mask(3, "B", 3, 3, 3)[:, :, 1, 1]
    assert b.tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]  # each also sees itself
    a6 = ar.causal_mask(3, "A", 6, 6, 3)[:, :, 1, 1]
    b6 = ar.causal_mask(3, "B", 6, 6, 3)[:, :, 1, 1]
    block = torch.ones(2, 2)
    assert torch.equal(a6, torch.kron(torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]]), block))
    assert torch.equal(b6, torch.kron(torch.tensor([[1.0, 0, 0], [1, 1, 0], [1, 1, 1]]), block))
    # away from the centre every colour sees every colour
    for m in (ar.causal_mask(3, "A", 6, 6, 3), ar.causal_mask(3, "B", 6, 6, 3)):
        assert m[:, :, 0, :].eq(1).all() and m[:, :, 1, 0].eq(1).all() and m[:, :, 1, 2].eq(0).all() and m[:, :, 2].eq(0).all()


@pytest.mark.parametrize("args, message", [
    ((4, "A"), "kernel_size must be odd"),
    ((0, "B"), "kernel_size must be a positive int"),
    ((3, "C"), "mask_type must be 'A'"),
    ((3, "a"), "mask_type must be 'A'"),
    ((3, "A", 4, 3, 3), r"in_channels \(4\) and out_channels \(3\) must be multiples of n_colours \(3\)"),
    ((3, "B", 3, 5, 3), "must be multiples of n_colours"),
])
def test_causal_mask_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        ar.causal_mask(*args)


def test_masked_conv_is_a_convolution_with_the_masked_weights():
    torch.manual_seed(0)
    conv = ar.MaskedConv2d(3, 6, 5, "A", n_colours=3)
    x = torch.randn(2, 3, 7, 6)
    expected = nn.functional.conv2d(x, conv.weight * _mask_by_loop(5, "A", 3, 6, 3), conv.bias, padding=2)
    assert torch.allclose(conv(x), expected, atol=1e-6) and conv(x).shape == (2, 6, 7, 6)
    with torch.no_grad():  # the mask holds whatever the weights become
        conv.weight.add_(1.0)
    expected = nn.functional.conv2d(x, conv.weight * _mask_by_loop(5, "A", 3, 6, 3), conv.bias, padding=2)
    assert torch.allclose(conv(x), expected, atol=1e-6)


# ------------------------------------------------------------------------------- quantise, levels


def test_quantise_thresholds():
    x = torch.tensor([0.0, 0.49, 0.4999, 0.5, 0.51, 1.0])
    assert ar.quantise(x, 2).tolist() == [0, 0, 0, 1, 1, 1]
    x4 = torch.tensor([0.0, 0.24, 0.25, 0.49, 0.5, 0.74, 0.75, 0.99, 1.0])
    assert ar.quantise(x4, 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3]
    g = torch.Generator().manual_seed(0)
    u = torch.rand(1000, generator=g)
    for levels in (2, 3, 4, 7, 256):
        q = ar.quantise(u, levels)
        assert q.dtype == torch.int64
        assert q.tolist() == [min(math.floor(float(v) * levels), levels - 1) for v in u.double()]


@pytest.mark.parametrize("x, levels, message", [
    (torch.tensor([-0.01, 0.5]), 2, r"x01 must be in \[0, 1\]"),
    (torch.tensor([0.5, 1.01]), 2, r"x01 must be in \[0, 1\]"),
    (torch.tensor([0, 1]), 2, "x01 must be a float tensor"),
    (torch.tensor([0.5]), 1, "levels must be an int >= 2"),
])
def test_quantise_rejects_bad_inputs(x, levels, message):
    with pytest.raises(ValueError, match=message):
        ar.quantise(x, levels)


def test_check_levels():
    x = torch.tensor([[[[0, 1], [2, 1]]]])
    assert ar.check_levels(x, 3).dtype == torch.int64
    assert torch.equal(ar.check_levels(x.float(), 3), x)  # floats holding whole numbers are accepted
    with pytest.raises(ValueError, match="must hold integer levels 0..2, got non-integer values.*quantise"):
        ar.check_levels(x.float() / 2, 3)
    with pytest.raises(ValueError, match=r"must hold levels in 0..1, got values in \[0, 2\]"):
        ar.check_levels(x, 2)
    with pytest.raises(ValueError, match=r"must hold levels in 0..2, got values in \[-1, 2\]"):
        ar.check_levels(torch.tensor([[[[-1, 2]]]]), 3)
    with pytest.raises(ValueError, match=r"images of levels \(B, C, H, W\), got \(2, 2\)"):
        ar.check_levels(x[0, 0], 3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 3, 3\), got \(1, 1, 2, 2\)"):
        ar.check_levels(x, 3, (1, 3, 3))
    with pytest.raises(ValueError, match="images of levels"):
        ar.check_levels([[0, 1]], 2)


# ------------------------------------------------------------------------------------ the models

H8 = 8  # small images for the PixelCNNs (any size works); MADE gets its own shape


def _models():
    """Small instances of every model: (name, model, shape (C, H, W), number of classes or None)."""
    torch.manual_seed(0)
    return [
        ("made", ar.MADE((1, 6, 6), hidden=(64,)), (1, 6, 6), None),
        ("made-2-layers-conditional", ar.MADE((1, 4, 5), hidden=(64, 64), n_classes=3), (1, 4, 5), 3),
        ("pixelcnn", ar.PixelCNN(h=4, n_blocks=2), (1, H8, H8), None),
        ("pixelcnn-conditional", ar.PixelCNN(h=4, n_blocks=1, n_classes=3), (1, H8, 7), 3),
        ("pixelcnn-colour", ar.PixelCNN(channels=3, levels=4, h=6, n_blocks=1, first_kernel=5), (3, 5, 5), None),
        ("gated", ar.GatedPixelCNN(h=4, n_layers=3), (1, H8, H8), None),
        ("gated-conditional-3-levels", ar.GatedPixelCNN(levels=3, h=4, n_layers=2, n_classes=3), (1, 7, H8), 3),
        ("gated-class-map", _with_random_map(ar.GatedPixelCNN(h=4, n_layers=3, kernel_size=5, n_classes=3, class_map=3,
                                                              image_size=(7, H8))), (1, 7, H8), 3),
    ]


def _with_random_map(model):
    with torch.no_grad():  # the map starts at zero; draw it, so that a leak through it would show
        model.class_map.normal_()
    return model


MODEL_NAMES = [m[0] for m in _models()]


def _model(name):
    return next(m for m in _models() if m[0] == name)


def _raster(t):
    """(..., C, H, W) -> (..., H * W * C) in raster order: pixel-major, channel-minor."""
    return t.movedim(-3, -1).flatten(-3)


def _one_change_at_a_time(model, x, y):
    """x (1, C, H, W) levels: the D images that differ from x at one raster position k (its level moved
    to the next one, cyclically); returns changed (D, D): changed[k, p] is True when the logits of
    position p of the k-th image differ (exactly, float32) from those of x. The reference is a batch of
    D copies of x, so that each image is compared with x computed at the same place in a batch of the
    same size (a matrix product may round row 0 and row 15 of a batch differently)."""
    L = model.levels
    C, H, W = x.shape[1:]
    D = C * H * W
    flat = _raster(x.repeat(D, 1, 1, 1))  # a copy, (D, D)
    flat[torch.arange(D), torch.arange(D)] = (flat.diagonal() + 1) % L
    # the strides of x's copies (one channel: ambiguous strides read as channels-last, another convolution kernel)
    xs = flat.view(D, H, W, C).permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)
    ys = None if y is None else y.repeat(D)
    with torch.no_grad():
        out, ref = model(xs, ys), model(x.repeat(D, 1, 1, 1), ys)  # (D, L, C, H, W)
    assert out.shape == (D, L, C, H, W) and out.dtype == torch.float32
    assert (_raster(xs) != _raster(x)).sum(1).eq(1).all()  # one position changed in each image
    return _raster((out != ref).any(1))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_is_causal_by_brute_force(name):
    _, model, shape, n_classes = _model(name)
    C, H, W = shape
    D = C * H * W
    g = torch.Generator().manual_seed(1)
    seen = torch.zeros(D, D, dtype=torch.bool)
    for _ in range(8):  # several inputs: in MADE the last degrees have one hidden unit, which a ReLU may switch off
        x = torch.randint(0, model.levels, (1, *shape), generator=g)
        y = None if n_classes is None else torch.randint(0, n_classes, (1,), generator=g)
        changed = _one_change_at_a_time(model.eval(), x, y)
        # a change at position k leaves the logits of every position <= k exactly as they were
        assert not changed.tril().any(), f"{name}: position {changed.tril().nonzero()[0].tolist()} (k, p) sees the future"
        seen |= changed
    # ... and changes some later position's logits: the model reads its inputs
    assert seen[:-1].any(1).all(), f"{name}: changing positions {(~seen[:-1].any(1)).nonzero().flatten().tolist()} changes nothing"
    if not name.startswith("made"):  # convolutions: the next position in the row (or the next colour) always sees it
        nxt = [k for k in range(D - 1) if (k // C) % W != W - 1 or k % C != C - 1]
        assert seen[nxt, [k + 1 for k in nxt]].all()


def test_made_logits_fix_level_zero():
    torch.manual_seed(0)
    made = ar.MADE((1, 4, 4), hidden=(8,))
    out = made(torch.randint(0, 2, (5, 1, 4, 4)))
    assert out.shape == (5, 2, 1, 4, 4) and torch.equal(out[:, 0], torch.zeros(5, 1, 4, 4)) and out[:, 1].std() > 0
    with pytest.raises(ValueError, match="MADE models one binary channel"):
        ar.MADE((3, 4, 4))


def _all_relus_on(made):
    """Shift MADE's hidden units into the linear part of the ReLU (a large first-layer bias, positive
    later weights), so that every path the masks allow carries a gradient at every input in [-3, 3]."""
    with torch.no_grad():
        made.hidden[0].bias.add_(100.0)
        for layer in made.hidden[1:]:
            layer.weight.abs_()
    return made


@pytest.mark.parametrize("hidden", [(8,), (6, 5), (40,)])
def test_made_dependencies_follow_the_degrees(hidden):
    """Input e has degree e, hidden unit k of a layer of h units the degree m(k) = floor(k (D - 1) / h) + 1;
    a hidden unit reads units of degree <= its own, output d the units of degree < d: output d depends
    on input e iff a chain of degrees e <= m1 <= m2 <= ... <= d - 1 exists."""
    torch.manual_seed(0)
    shape, D = (1, 4, 4), 16
    made = _all_relus_on(ar.MADE(shape, hidden=hidden))
    reach = torch.eye(D, dtype=torch.bool)  # reach[e - 1, unit]: input e reaches the unit
    prev = torch.arange(1, D + 1)
    for h in hidden:
        m = torch.tensor([k * (D - 1) // h + 1 for k in range(h)])
        reach = (reach.double() @ (m[None, :] >= prev[:, None]).double()) > 0
        prev = m
    expected = (reach.double() @ (torch.arange(1, D + 1)[None, :] > prev[:, None]).double()) > 0  # (inputs, outputs)
    seen = torch.zeros(D, D, dtype=torch.bool)
    g = torch.Generator().manual_seed(3)
    for _ in range(2):
        seen |= _one_change_at_a_time(made.eval(), torch.randint(0, 2, (1, *shape), generator=g), None)
    assert torch.equal(seen, expected)
    for d in range(D):
        assert torch.equal(ar.dependencies(made, shape, *divmod(d, 4)).flatten(), expected[:, d]), d
    if hidden == (8,):  # degrees 1, 2, 4, 6, ..., 14: output 4 reads inputs 1 and 2, output 16 inputs 1..14
        assert expected[:, 3].nonzero().flatten().tolist() == [0, 1] and expected[:, 15].nonzero().flatten().tolist() == list(range(14))
    # without the shift some ReLUs are off at the measured inputs: never a dependence the masks forbid
    for d in range(D):
        assert not (ar.dependencies(ar.MADE(shape, hidden=hidden), shape, *divmod(d, 4)).flatten() & ~expected[:, d]).any()


# ---------------------------------------------------------------------- receptive fields, measured


def _minkowski(*sets):
    out = {(0, 0)}
    for s in sets:
        out = {(a + c, b + d) for a, b in out for c, d in s}
    return out


def _conv_taps(k, mask_type):
    """Offsets (di, dj) an output pixel reads through a k x k causal convolution."""
    c = k // 2
    return {(di, dj) for di in range(-c, 1) for dj in range(-c, c + 1) if di < 0 or dj < 0 or (dj == 0 and mask_type == "B")}


def _pixelcnn_field(first_kernel, n_blocks):
    """The offsets a PixelCNN output reads: the type-A first layer, then n 3 x 3 type-B convolutions
    (the residual connections add the paths that skip a block, which the centre tap already has);
    1 x 1 layers add nothing."""
    return _minkowski(_conv_taps(first_kernel, "A"), *[_conv_taps(3, "B")] * n_blocks)


def _gated_field(first_kernel, kernel_size, n_layers):
    """The offsets a gated PixelCNN output reads. Vertical stack: a (k//2 + 1) x k convolution over the
    rows i - k//2 .. i; horizontal stack: a 1 x (k//2 + 1) convolution over the columns j - k//2 .. j,
    shifted one column right in the first layer (type A), plus the vertical stack of the same layer
    shifted one row down, plus (after the first layer) itself."""
    def vert(k):
        return {(di, dj) for di in range(-(k // 2), 1) for dj in range(-(k // 2), k // 2 + 1)}

    def horiz(k):
        return {(0, dj) for dj in range(-(k // 2), 1)}

    v = vert(first_kernel)
    h = _minkowski(horiz(first_kernel), {(0, -1)}) | _minkowski(v, {(-1, 0)})
    for _ in range(n_layers - 1):
        v_pre = _minkowski(v, vert(kernel_size))
        h = _minkowski(h, horiz(kernel_size)) | h | _minkowski(v_pre, {(-1, 0)})
        v = v_pre
    return h


def _field_map(offsets, shape, i, j):
    C, H, W = shape
    out = torch.zeros(H, W, dtype=torch.bool)
    for di, dj in offsets:
        if 0 <= i + di < H and 0 <= j + dj < W:
            out[i + di, j + dj] = True
    return out


def _before(shape, i, j, channel):
    C, H, W = shape
    pos = torch.arange(C * H * W).view(H, W, C).permute(2, 0, 1)
    return pos < (i * W + j) * C + channel


def test_pixelcnn_dependencies_are_its_receptive_field_with_the_blind_spot():
    torch.manual_seed(0)
    net = ar.PixelCNN(h=4, n_blocks=2)
    shape, i, j = (1, 10, 10), 7, 4
    dep = ar.dependencies(net, shape, i, j)
    assert dep.shape == shape and dep.dtype == torch.bool
    expected = _field_map(_pixelcnn_field(7, 2), shape, i, j)
    assert torch.equal(dep[0], expected)
    assert not (dep & ~_before(shape, i, j, 0)).any()
    # written out: rows 2..6 above (reach 3 + 2 blocks), row 6 reaches 3 columns right, row 5 four, rows 4..2 five
    rows = torch.zeros(10, 10, dtype=torch.bool)
    rows[2:5, :] = True
    rows[5, :9] = True
    rows[6, :8] = True
    rows[7, :4] = True
    assert torch.equal(expected, rows)
    # the blind spot: (6, 8) is in the field's width (row 5 reaches it) but not seen
    assert dep[0, 5, 8] and not dep[0, 6, 8] and not dep[0, 6, 9]
    # the brute force agrees: a change of one input level moves exactly the measured dependencies
    seen = torch.zeros(10, 10, dtype=torch.bool)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        changed = _one_change_at_a_time(net.eval(), torch.randint(0, 2, (1, *shape), generator=g), None)
        seen |= changed[:, i * 10 + j].view(10, 10)
    assert torch.equal(seen, dep[0])


def test_gated_pixelcnn_dependencies_have_no_blind_spot():
    torch.manual_seed(0)
    net = ar.GatedPixelCNN(h=4, n_layers=2)
    shape, i, j = (1, 10, 10), 7, 5
    dep = ar.dependencies(net, shape, i, j)
    expected = _field_map(_gated_field(7, 3, 2), shape, i, j)
    assert torch.equal(dep[0], expected)
    # written out: a full band above (rows i - 5 .. i - 1, columns j - 4 .. j + 4) and 5 columns to the left
    band = torch.zeros(10, 10, dtype=torch.bool)
    band[2:7, 1:10] = True
    band[7, 0:5] = True
    assert torch.equal(expected, band)
    assert not (dep & ~_before(shape, i, j, 0)).any()
    seen = torch.zeros(10, 10, dtype=torch.bool)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        changed = _one_change_at_a_time(net.eval(), torch.randint(0, 2, (1, *shape), generator=g), None)
        seen |= changed[:, i * 10 + j].view(10, 10)
    assert torch.equal(seen, dep[0])


@pytest.mark.parametrize("n_layers", [1, 3, 4])
def test_gated_pixelcnn_field_grows_as_a_rectangle(n_layers):
    """With L layers (first kernel 7, then 3): rows i - (3 + L) .. i - 1 over columns j - (2 + L) .. j + (2 + L),
    and the 3 + L pixels left in the row: every pixel of that band is seen."""
    torch.manual_seed(1)
    net = ar.GatedPixelCNN(h=4, n_layers=n_layers, n_classes=2)
    shape, i, j = (1, 12, 14), 8, 7
    dep = ar.dependencies(net, shape, i, j)[0]
    band = torch.zeros(12, 14, dtype=torch.bool)
    band[max(0, i - 3 - n_layers):i, j - 2 - n_layers:j + 3 + n_layers] = True
    band[i, j - 3 - n_layers:j] = True
    assert torch.equal(dep, band) and torch.equal(band, _field_map(_gated_field(7, 3, n_layers), shape, i, j))


def test_colour_pixelcnn_dependencies_follow_the_colour_order():
    torch.manual_seed(0)
    net = ar.PixelCNN(channels=3, levels=4, h=6, n_blocks=1, first_kernel=5)
    shape, i, j = (3, 6, 6), 3, 2
    field = _field_map(_pixelcnn_field(5, 1) - {(0, 0)}, shape, i, j)
    for c in range(3):
        dep = ar.dependencies(net, shape, i, j, channel=c)
        expected = field.expand(3, 6, 6).clone()
        expected[:c, i, j] = True  # R, then G, then B of the pixel itself
        assert torch.equal(dep, expected), c
        assert not (dep & ~_before(shape, i, j, c)).any()
    with pytest.raises(ValueError, match=r"pixel \(3, 0, 0\) is outside an image of shape \(3, 6, 6\)"):
        ar.dependencies(net, shape, 0, 0, channel=3)


# ------------------------------------------------------------------------------------ likelihood


def _ll_by_loop(model, x, y=None):
    """sum over positions of log softmax(logits)[x], one position at a time, in float64."""
    with torch.no_grad():
        out = model(x, y).double()
    B, L, C, H, W = out.shape
    total = np.zeros(B)
    for b in range(B):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    z = out[b, :, c, i, j].numpy()
                    zmax = z.max()
                    total[b] += z[int(x[b, c, i, j])] - zmax - math.log(np.exp(z - zmax).sum())
    return torch.tensor(total)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_log_likelihood_is_the_sum_of_the_conditionals(name):
    _, model, shape, n_classes = _model(name)
    g = torch.Generator().manual_seed(4)
    x = torch.randint(0, model.levels, (5, *shape), generator=g)
    y = None if n_classes is None else torch.randint(0, n_classes, (5,), generator=g)
    ll = ar.log_likelihood(model, x, y)
    assert ll.shape == (5,) and ll.dtype == torch.float32
    assert torch.allclose(ll.double(), _ll_by_loop(model, x, y), rtol=1e-5, atol=1e-4)
    # per image: the same values whatever the rest of the batch, its order or the chunk size
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(ar.log_likelihood(model, x[perm], None if y is None else y[perm]), ll[perm], atol=1e-5)
    assert torch.allclose(ar.log_likelihood(model, x[1:2], None if y is None else y[1:2]), ll[1:2], atol=1e-5)
    assert torch.allclose(ar.log_likelihood(model, x, y, batch_size=2), ll, atol=1e-5)
    assert torch.allclose(ar.log_likelihood(model, x.float(), y), ll, atol=1e-6)  # whole-number floats


@pytest.mark.parametrize("make, shape", [
    (lambda: ar.MADE((1, 3, 3), hidden=(16,)), (1, 3, 3)),
    (lambda: ar.PixelCNN(h=4, n_blocks=1, levels=3), (1, 2, 3)),
    (lambda: ar.GatedPixelCNN(h=4, n_layers=2), (1, 3, 3)),
    (lambda: ar.PixelCNN(channels=3, levels=2, h=3, n_blocks=1, first_kernel=3), (3, 2, 1)),
], ids=["made", "pixelcnn-3-levels", "gated", "pixelcnn-colour"])
def test_the_likelihood_of_every_image_sums_to_one(make, shape):
    """A causal model is a distribution: enumerate all L^D images and add up exp(log p(x))."""
    torch.manual_seed(5)
    model = make()
    with torch.no_grad():  # sharper conditionals than at initialisation, so that a leak would show
        for p in model.parameters():
            p.mul_(3.0)
    L, D = model.levels, math.prod(shape)
    every = torch.tensor(list(itertools.product(range(L), repeat=D))).view(-1, *shape)
    ll = ar.log_likelihood(model, every).detach().double()
    assert len(every) == L ** D and ll.max() < 0
    assert abs(torch.logsumexp(ll, 0).item()) < 1e-5


@pytest.mark.parametrize("make, shape", [
    (lambda: ar.GatedPixelCNN(h=4, n_layers=2, n_classes=3), (1, 3, 3)),
    (lambda: ar.PixelCNN(channels=3, levels=2, h=3, n_blocks=1, first_kernel=3, n_classes=2), (3, 2, 1)),
    (lambda: ar.MADE((1, 2, 4), hidden=(16,), n_classes=2), (1, 2, 4)),
], ids=["gated", "pixelcnn-colour", "made"])
def test_prefix_likelihood_mixture_and_posterior_by_enumeration(make, shape):
    """upto = k is log p(first k values) = log of the sum of p(x) over every completion of them; the
    mixture is log sum_y p(y) p(x|y); the posterior is Bayes' rule, all checked by brute force."""
    torch.manual_seed(6)
    model = make()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    K, D = model.n_classes, math.prod(shape)
    every = torch.tensor(list(itertools.product(range(2), repeat=D)))  # raster order (pixel-major, channel-minor)
    images = every.view(-1, shape[1], shape[2], shape[0]).permute(0, 3, 1, 2)  # back to (N, C, H, W)
    prior = torch.tensor([0.2, 0.5, 0.3])[:K] if K == 3 else torch.tensor([0.7, 0.3])
    y1 = torch.ones(len(images), dtype=torch.long)
    full = ar.log_likelihood(model, images, y1).detach().double()
    for k in (0, 1, D // 2, D - 1, D):
        prefix = ar.log_likelihood(model, images, y1, upto=k).detach().double()
        for code in set(map(tuple, every[:, :k].tolist())):
            rows = (every[:, :k] == torch.tensor(code, dtype=torch.long)).all(1)
            assert torch.allclose(prefix[rows], torch.logsumexp(full[rows], 0).expand(int(rows.sum())), atol=1e-5), (k, code)
    joint = torch.stack([ar.log_likelihood(model, images, torch.full((len(images),), c)).detach().double() for c in range(K)], 1)
    mix = ar.mixture_log_likelihood(model, images, prior)
    assert mix.dtype == torch.float64
    by_hand = torch.log(sum(prior[c].double() * joint[:, c].exp() for c in range(K)))
    assert torch.allclose(mix, by_hand, atol=1e-5)
    assert abs(torch.logsumexp(mix, 0).item()) < 1e-5  # the mixture is a distribution too
    uniform = ar.mixture_log_likelihood(model, images)
    assert torch.allclose(uniform, torch.logsumexp(joint, 1) - math.log(K), atol=1e-5)
    torch.testing.assert_close(ar.class_log_joint(model, images, prior), joint + prior.double().log())
    post = ar.label_posterior(model, images, prior)
    bayes = prior.double() * joint.exp()
    assert torch.allclose(post, bayes / bayes.sum(1, keepdim=True), atol=1e-6)
    k = D // 2  # the posterior given the prefix: from p(prefix | y) summed over completions
    post_k = ar.label_posterior(model, images, prior, upto=k)
    row0 = (every[:, :k] == every[0, :k]).all(1)
    p_prefix = prior.double() * joint[row0].exp().sum(0)
    assert torch.allclose(post_k[0], p_prefix / p_prefix.sum(), atol=1e-6)


def test_prefix_mixture_and_posterior_reject_bad_arguments():
    x = torch.zeros(2, 1, 3, 3, dtype=torch.long)
    cond, plain = ar.GatedPixelCNN(h=4, n_layers=2, n_classes=3), ar.GatedPixelCNN(h=4, n_layers=2)
    for bad in (-1, 10, 2.5, True):
        with pytest.raises(ValueError, match="upto must be an int in 0..9"):
            ar.log_likelihood(plain, x, upto=bad)
    with pytest.raises(ValueError, match="not class-conditional"):
        ar.mixture_log_likelihood(plain, x)
    for prior in ([0.5, 0.5], [0.5, 0.6, -0.1], [0.2, 0.2, 0.2]):
        with pytest.raises(ValueError, match="prior must be 3 probabilities"):
            ar.label_posterior(cond, x, prior)


class _Fixed(nn.Module):
    """A stub model whose logits are ``logits`` (L,) at every position, whatever the input."""

    def __init__(self, logits, n_classes=None, dtype=torch.float32):
        super().__init__()
        self.levels, self.n_classes = len(logits), n_classes
        self.dummy = nn.Parameter(torch.zeros(1, dtype=dtype))
        self.register_buffer("logits", torch.as_tensor(logits, dtype=dtype))

    def forward(self, x, y=None):
        B, C, H, W = x.shape
        return (self.logits.view(1, -1, 1, 1, 1) + 0 * self.dummy).expand(B, -1, C, H, W)


@pytest.mark.parametrize("L", [2, 5, 256])
def test_zero_logits_give_minus_d_log_l(L):
    x = torch.randint(0, L, (3, 2, 4, 5), generator=torch.Generator().manual_seed(0))
    ll = ar.log_likelihood(_Fixed(torch.zeros(L), dtype=torch.float64), x)
    D = 2 * 4 * 5
    assert ll.shape == (3,) and torch.allclose(ll, torch.full((3,), -D * math.log(L), dtype=torch.float64), rtol=0, atol=1e-12)
    ll32 = ar.log_likelihood(_Fixed(torch.zeros(L)), x)
    assert torch.allclose(ll32.double(), torch.full((3,), -D * math.log(L), dtype=torch.float64), rtol=1e-6)


def test_labels_are_required_by_conditional_models_and_refused_by_the_others():
    x = torch.zeros(2, 1, 5, 6, dtype=torch.long)
    torch.manual_seed(0)
    for net in (ar.MADE((1, 5, 6), hidden=(8,), n_classes=3), ar.PixelCNN(h=2, n_blocks=1, n_classes=3),
                ar.GatedPixelCNN(h=2, n_layers=1, n_classes=3)):
        with pytest.raises(ValueError, match=r"class-conditional \(3 classes\): pass labels"):
            ar.log_likelihood(net, x)
        with pytest.raises(ValueError, match=r"labels must be in 0..2"):
            ar.log_likelihood(net, x, torch.tensor([0, 3]))
        with pytest.raises(ValueError, match=r"y must be integer labels of shape \(2,\)"):
            ar.log_likelihood(net, x, torch.tensor([0.0, 1.0]))
        with pytest.raises(ValueError, match=r"y must be integer labels of shape \(2,\)"):
            net(x, torch.tensor([0, 1, 2]))
        # the label matters
        assert not torch.equal(ar.log_likelihood(net, x, torch.tensor([0, 0])), ar.log_likelihood(net, x, torch.tensor([1, 2])))
    for net in (ar.MADE((1, 5, 6), hidden=(8,)), ar.PixelCNN(h=2, n_blocks=1), ar.GatedPixelCNN(h=2, n_layers=1)):
        with pytest.raises(ValueError, match="this model is unconditional: call it without labels"):
            ar.log_likelihood(net, x, torch.tensor([0, 1]))


def test_models_reject_bad_images():
    torch.manual_seed(0)
    made, pcnn, gated = ar.MADE((1, 4, 4), hidden=(8,)), ar.PixelCNN(channels=3, levels=4, h=3, n_blocks=1), ar.GatedPixelCNN(h=2, n_layers=1)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 4, 4\), got \(2, 1, 5, 4\)"):
        ar.log_likelihood(made, torch.zeros(2, 1, 5, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must hold levels in 0..1, got values in \[0, 2\]"):
        ar.log_likelihood(made, 2 * torch.eye(4, dtype=torch.long).expand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="non-integer values"):
        ar.log_likelihood(made, torch.full((2, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match=r"x must have 3 channel\(s\), got shape \(2, 1, 4, 4\)"):
        ar.log_likelihood(pcnn, torch.zeros(2, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must hold levels in 0..3"):
        ar.log_likelihood(pcnn, torch.full((2, 3, 4, 4), 4))
    with pytest.raises(ValueError, match=r"x must hold levels in 0..3, got values in \[-1, 0\]"):
        pcnn(-torch.eye(4, dtype=torch.long).expand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="GatedPixelCNN models one channel"):
        gated(torch.zeros(1, 2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"images of levels \(B, C, H, W\), got \(4, 4\)"):
        ar.log_likelihood(gated, torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="must be multiples of channels"):
        ar.PixelCNN(channels=3, h=4)
    with pytest.raises(ValueError, match="kernel sizes must be odd"):
        ar.GatedPixelCNN(kernel_size=4)


# -------------------------------------------------------------------------------------- sampling


class _TwoPixels(nn.Module):
    """A toy autoregressive model of a 1 x 2 image with 3 levels: p(x1) = softmax(a),
    p(x2 | x1) = softmax(b[x1])."""

    A = torch.tensor([0.3, -0.5, 0.9])
    B = torch.tensor([[2.0, 0.0, -1.0], [-1.0, 1.0, 0.5], [0.0, -2.0, 1.5]])

    def __init__(self):
        super().__init__()
        self.levels, self.n_classes = 3, None
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, y=None):
        out = torch.zeros(len(x), 3, 1, 1, 2)
        out[:, :, 0, 0, 0] = self.A
        out[:, :, 0, 0, 1] = self.B[x[:, 0, 0, 0]]
        return out


def _chi2_pvalue(counts, probs):
    counts, probs = np.asarray(counts, dtype=float), np.asarray(probs, dtype=float)
    expected = probs * counts.sum()
    statistic = ((counts - expected) ** 2 / expected).sum()
    return stats.chi2.sf(statistic, len(counts) - 1)


def test_sampling_the_toy_model_matches_its_exact_distribution():
    model, n = _TwoPixels(), 6000
    for temperature in (1.0, 0.6):
        x = ar.sample(model, n, (1, 1, 2), generator=torch.Generator().manual_seed(0), temperature=temperature)
        assert x.shape == (n, 1, 1, 2) and x.dtype == torch.int64
        p1 = np.exp(model.A.double().numpy() / temperature)
        p1 /= p1.sum()
        joint = np.zeros((3, 3))
        for a in range(3):
            p2 = np.exp(model.B[a].double().numpy() / temperature)
            joint[a] = p1[a] * p2 / p2.sum()
        counts = np.zeros((3, 3))
        for a, b in x[:, 0, 0].tolist():
            counts[a, b] += 1
        assert _chi2_pvalue(counts.flatten(), joint.flatten()) > 1e-3
    # the same log-probabilities through log_likelihood
    every = torch.tensor(list(itertools.product(range(3), repeat=2))).view(9, 1, 1, 2)
    p1 = torch.softmax(model.A.double(), 0)
    exact = torch.tensor([math.log(p1[a] * torch.softmax(model.B[a].double(), 0)[b]) for a, b in every[:, 0, 0].tolist()], dtype=torch.float64)
    assert torch.allclose(ar.log_likelihood(model, every).double(), exact, atol=1e-6)
    # completion: with the first pixel given, the second follows p(x2 | x1)
    given = torch.zeros(n, 1, 1, 2, dtype=torch.long)
    given[:, 0, 0, 0] = torch.arange(n) % 3
    known = torch.tensor([[[True, False]]])
    x = ar.sample(model, n, (1, 1, 2), given=given, known=known, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x[:, 0, 0, 0], given[:, 0, 0, 0])
    for a in range(3):
        counts = np.bincount(x[x[:, 0, 0, 0] == a, 0, 0, 1].numpy(), minlength=3)
        assert _chi2_pvalue(counts, torch.softmax(model.B[a].double(), 0).numpy()) > 1e-3


@pytest.mark.parametrize("make, shape", [
    (lambda: ar.PixelCNN(h=4, n_blocks=1), (1, 2, 2)),
    (lambda: ar.PixelCNN(channels=3, levels=2, h=3, n_blocks=1, first_kernel=3), (3, 1, 2)),  # R, G, B of a pixel in turn
    (lambda: ar.GatedPixelCNN(h=4, n_layers=2), (1, 2, 2)),
], ids=["pixelcnn", "pixelcnn-colour", "gated"])
def test_sampling_a_real_model_matches_its_likelihood(make, shape):
    """Frequencies of n draws against exp(log p(x)) over all 2^D images (chi-square)."""
    torch.manual_seed(6)
    net = make()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    n, D = 6000, math.prod(shape)
    x = ar.sample(net, n, shape, generator=torch.Generator().manual_seed(0))
    every = torch.tensor(list(itertools.product(range(2), repeat=D)))  # in raster order
    codes = (_raster(x) * 2 ** torch.arange(D - 1, -1, -1)).sum(1)  # the index of each draw in `every`
    C, H, W = shape
    probs = ar.log_likelihood(net, every.view(-1, H, W, C).permute(0, 3, 1, 2)).detach().double().exp()
    assert abs(probs.sum().item() - 1) < 1e-5
    assert _chi2_pvalue(np.bincount(codes.numpy(), minlength=2 ** D), (probs / probs.sum()).numpy()) > 1e-3


class _Chain(nn.Module):
    """A stub Markov chain in raster order over binary values: the first value is a fair coin, each later
    one repeats the one before it (pixel-major, channel-minor) with probability sigmoid(2 s)."""

    def __init__(self, s=1.0):
        super().__init__()
        self.levels, self.n_classes, self.s = 2, None, s
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, y=None):
        B, C, H, W = x.shape
        flat = _raster(x).float()
        prev = torch.cat([torch.full((B, 1), 0.5), flat[:, :-1]], 1)  # 0.5: no information
        logit1 = self.s * (4 * prev - 2)
        logits = torch.stack([torch.zeros_like(logit1), logit1], 1)  # (B, 2, D)
        return logits.view(B, 2, H, W, C).permute(0, 1, 4, 2, 3)


@pytest.mark.parametrize("shape", [(3, 2, 2), (1, 3, 4)])
def test_sample_draws_in_raster_order_channel_by_channel(shape):
    """Each value is drawn after every value before it in raster order: in the chain, value p repeats
    value p - 1 with probability sigmoid(2), whichever channel and pixel they belong to."""
    n, q = 3000, 1 / (1 + math.exp(-2.0))
    x = _raster(ar.sample(_Chain(), n, shape, generator=torch.Generator().manual_seed(0)))
    for p in range(x.shape[1]):
        k = int(x[:, p].sum()) if p == 0 else int((x[:, p] == x[:, p - 1]).sum())
        prob = 0.5 if p == 0 else q
        assert stats.binomtest(k, n, prob).pvalue > 1e-4, p


@pytest.mark.parametrize("name", ["made", "pixelcnn-colour", "gated-conditional-3-levels"])
def test_sample_is_deterministic_with_a_generator_and_keeps_the_known_pixels(name):
    _, model, shape, n_classes = _model(name)
    C, H, W = shape
    y = None if n_classes is None else torch.arange(4) % n_classes
    draws = [ar.sample(model, 4, shape, y=y, generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    x = draws[0]
    assert x.shape == (4, *shape) and x.dtype == torch.int64 and x.min() >= 0 and x.max() < model.levels
    assert model.training  # left in the mode it came in
    g = torch.Generator().manual_seed(7)
    given = torch.randint(0, model.levels, (4, *shape), generator=g)
    known = torch.zeros(C, H, W, dtype=torch.bool)
    known[:, : H // 2] = True  # the upper half: completion
    known[0, -1, -1] = True  # and a pixel the sampler reaches last
    for mask in (known, known.expand(4, C, H, W)):
        out = ar.sample(model, 4, shape, y=y, given=given, known=mask, generator=torch.Generator().manual_seed(0))
        assert torch.equal(out[mask.expand(4, C, H, W)], given[mask.expand(4, C, H, W)])
    per_image = torch.rand(4, C, H, W, generator=g) < 0.5  # a different mask for each image
    out = ar.sample(model, 4, shape, y=y, given=given, known=per_image, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[per_image], given[per_image])
    with pytest.raises(ValueError, match="go together"):
        ar.sample(model, 4, shape, y=y, known=known)
    with pytest.raises(ValueError, match="go together"):  # given alone would be silently ignored
        ar.sample(model, 4, shape, y=y, given=given)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ar.sample(model, 4, shape, y=y, temperature=0)


def test_fixed_logits_give_fixed_or_fair_samples():
    ones = ar.sample(_Fixed(torch.tensor([-30.0, 30.0, -30.0])), 10, (2, 3, 4), generator=torch.Generator().manual_seed(0))
    assert torch.equal(ones, torch.ones(10, 2, 3, 4, dtype=torch.long))
    n, shape = 200, (1, 5, 6)
    coins = ar.sample(_Fixed(torch.zeros(2)), n, shape, generator=torch.Generator().manual_seed(0))
    N = n * math.prod(shape)
    ones = int(coins.sum())
    assert set(coins.unique().tolist()) == {0, 1}
    assert stats.binom.cdf(ones, N, 0.5) > 1e-4 and stats.binom.sf(ones - 1, N, 0.5) > 1e-4  # two-sided 5e-4 test
    assert abs(ones - N / 2) < 4 * math.sqrt(N / 4)
    # every pixel on its own is a fair coin: no position is stuck
    per_pixel = coins.sum(0).flatten().numpy()
    assert (stats.binom.cdf(per_pixel, n, 0.5) > 1e-5).all() and (stats.binom.sf(per_pixel - 1, n, 0.5) > 1e-5).all()


# --------------------------------------------------------------------------------------- recipes


def test_binarised_mnist_is_the_grey_images_at_one_half():
    from gencourse import data
    from gencourse.recipes import autoregressive as rec

    for split in ("train", "test"):
        x, y = rec.binarised_mnist(split)
        grey, labels = data.mnist_tensors(split, verbose=False)
        assert x.dtype == torch.int64 and x.shape == grey.shape and x.shape[1:] == (1, 28, 28)
        assert set(x.unique().tolist()) == {0, 1}
        assert torch.equal(x, (grey >= 0.5).long()) and torch.equal(y, labels)


def test_autoregressive_settings_are_checked():
    from gencourse.recipes import autoregressive as rec

    assert rec.MODELS == ("made", "pixelcnn", "gated", "cpixelcnn")
    s = rec.autoregressive_settings("gated", steps=3, h=8)
    assert s["model"] == "gated" and s["steps"] == 3 and s["h"] == 8 and s["n_blocks"] == 4 and s["kernel"] == 5
    assert s["class_map"] is None and rec.autoregressive_settings("cpixelcnn")["class_map"] == 7
    net = rec.build_autoregressive(rec.autoregressive_settings("cpixelcnn"))
    assert net.n_classes == 10 and net.class_map.shape == (10, 16, 7, 7) and net.layers[1].v.kernel_size == (3, 5)
    assert rec.autoregressive_settings()["steps"] == 4  # the smoke budget
    assert rec.autoregressive_settings("pixelcnn")["n_blocks"] == 4
    with pytest.raises(ValueError, match="model must be one of 'made', 'pixelcnn', 'gated', 'cpixelcnn', got 'nade'"):
        rec.autoregressive_settings("nade")
    with pytest.raises(ValueError, match=r"unknown autoregressive settings \['layers', 'learning_rate'\]"):
        rec.autoregressive_settings("made", learning_rate=1e-3, layers=2)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        rec.autoregressive_settings("made", steps=0)


SMALL = {"made": {"hidden": 16}, "pixelcnn": {"h": 4, "n_blocks": 1}, "gated": {"h": 4, "n_blocks": 2}, "cpixelcnn": {"h": 4, "n_blocks": 2}}


@pytest.mark.parametrize("model", ["made", "pixelcnn", "gated", "cpixelcnn"])
def test_every_recipe_trains_then_loads_from_the_cache(model, tmp_path, monkeypatch):
    from gencourse.recipes import autoregressive as rec

    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("GENCOURSE_RETRAIN", "0")
    overrides = {"steps": 2, "batch_size": 4, **SMALL[model]}
    settings = rec.autoregressive_settings(model, **overrides)
    built = rec.build_autoregressive(settings)
    kind = {"made": ar.MADE, "pixelcnn": ar.PixelCNN, "gated": ar.GatedPixelCNN, "cpixelcnn": ar.GatedPixelCNN}[model]
    assert type(built) is kind and built.n_classes == (10 if model == "cpixelcnn" else None)
    path = train.checkpoint_path(model, settings)
    assert not path.exists()
    net, history = rec.autoregressive_mnist(model, progress=False, **overrides)
    assert path.exists() and history.run["trained"] and not net.training
    assert len(history) == 2 and set(history.losses) == {"nll"} and history.info["cpu_seconds"] > 0
    assert all(0 < v < 784 * math.log(2) * 2 for v in history["nll"])
    assert any(not torch.equal(a, b) for a, b in zip(built.state_dict().values(), net.state_dict().values()))

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr(rec, "train_autoregressive", no_training)
    again, history2 = rec.autoregressive_mnist(model, progress=False, **overrides)
    assert history2.run["trained"] is False and history2["nll"] == history["nll"]
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    # held-out NLL: minus the mean exact log-likelihood of the first test images
    conditional = model == "cpixelcnn"
    x, y = rec.binarised_mnist("test")
    expected = -ar.log_likelihood(net, x[:6], y[:6] if conditional else None).double().mean().item()
    assert rec.heldout_nll(net, n=6, conditional=conditional) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("make", [lambda: ar.PixelCNN(h=4, n_blocks=2), lambda: ar.GatedPixelCNN(h=4, n_layers=3),
                                  lambda: ar.PixelCNN(channels=3, levels=4, h=6, n_blocks=1),
                                  lambda: _with_random_map(ar.GatedPixelCNN(h=4, n_layers=3, n_classes=2, class_map=4, image_size=(9, 7)))])
def test_row_causal_models_give_the_same_logits_on_the_rows_above(make):
    # sample() runs a row_causal model on rows 0..i only: the logits of row i must not change
    torch.manual_seed(0)
    model = make().eval()
    assert model.row_causal
    x = torch.randint(0, model.levels, (2, model.channels, 9, 7))
    y = None if model.n_classes is None else torch.tensor([0, 1])
    with torch.no_grad():
        full = model(x, y)
        for i in range(9):
            torch.testing.assert_close(model(x[:, :, : i + 1], y)[:, :, :, i], full[:, :, :, i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make, y", [
    (lambda: ar.GatedPixelCNN(h=4, n_layers=3), None),
    (lambda: ar.GatedPixelCNN(levels=3, h=5, n_layers=2, kernel_size=5, first_kernel=3), None),
    (lambda: _with_random_map(ar.GatedPixelCNN(h=4, n_layers=3, kernel_size=5, n_classes=3, class_map=3, image_size=(6, 7))),
     torch.tensor([0, 2, 1])),
], ids=["gated", "gated-3-levels", "gated-class-map"])
def test_cached_rows_give_the_full_networks_logits_and_samples(make, y):
    """The sampler's cache (the vertical stack once per row, the horizontal stack on one row) must give
    the logits of the whole network at every pixel, and so the same samples from the same generator."""
    torch.manual_seed(1)
    model = make().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randint(0, model.levels, (3, 1, 6, 7))
    c = None if y is None else F.one_hot(y, model.n_classes).float()
    with torch.no_grad():
        full = model(x, y)
        s_full = model._map(c, 6, 7)
        u = x.float() * (2.0 / (model.levels - 1)) - 1.0
        for i in range(6):
            context = model.context_for_row(u[:, :, :i], i, c, s_full)
            torch.testing.assert_close(model.logits_of_row(u[:, :, i:i + 1], context, c)[:, :, :, 0], full[:, :, :, i],
                                       atol=1e-5, rtol=1e-5)
    draws = [ar.sample(model, 3, (1, 6, 7), y=y, generator=torch.Generator().manual_seed(3), cache=cache) for cache in (True, False)]
    assert torch.equal(draws[0], draws[1])
    known = torch.zeros(1, 6, 7, dtype=torch.bool)
    known[:, :3] = True
    kept = [ar.sample(model, 3, (1, 6, 7), y=y, given=x, known=known, generator=torch.Generator().manual_seed(4), cache=cache)
            for cache in (True, False)]
    assert torch.equal(kept[0], kept[1]) and torch.equal(kept[0][:, :, :3], x[:, :, :3])


@pytest.mark.parametrize("cache", [True, False])
def test_on_row_sees_each_row_as_it_is_drawn(cache):
    torch.manual_seed(2)
    model = ar.GatedPixelCNN(h=4, n_layers=2).eval()
    frames = []
    x = ar.sample(model, 2, (1, 5, 4), generator=torch.Generator().manual_seed(1), cache=cache,
                  on_row=lambda i, so_far: frames.append((i, so_far)))
    assert [i for i, _ in frames] == list(range(5))
    for i, so_far in frames:
        assert torch.equal(so_far[:, :, : i + 1], x[:, :, : i + 1]) and not so_far[:, :, i + 1 :].any()
    plain = ar.sample(model, 2, (1, 5, 4), generator=torch.Generator().manual_seed(1), cache=cache)
    assert torch.equal(plain, x)  # watching does not change the draw


def test_class_map_is_a_per_class_picture_over_the_image():
    model = _with_random_map(ar.GatedPixelCNN(h=4, n_layers=2, n_classes=3, class_map=2, image_size=(6, 5)))
    x = torch.zeros(3, 1, 6, 5, dtype=torch.long)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 1, 2]))
        plain = ar.GatedPixelCNN(h=4, n_layers=2, n_classes=3)
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if "map" not in k})
        same = plain(x, torch.tensor([0, 1, 2]))
        model.class_map.zero_()  # a zero map is the class bias alone
        torch.testing.assert_close(model(x, torch.tensor([0, 1, 2])), same)
    # on a blank image the logits still vary over the image and between classes: the map is where they come from
    assert (out[0] - same[0]).abs().flatten(1).std(1).max() > 1e-3 and (out[0] - out[1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="drawn over 6 x 5 images"):
        model(torch.zeros(1, 1, 6, 6, dtype=torch.long), torch.tensor([0]))
    with pytest.raises(ValueError, match="drawn over 6 x 5 images"):
        model(torch.zeros(1, 1, 7, 5, dtype=torch.long), torch.tensor([0]))
    with pytest.raises(ValueError, match="class_map needs n_classes"):
        ar.GatedPixelCNN(h=4, class_map=2)


def test_pixelcnn_scoreboard_entry(tmp_path, monkeypatch):
    from gencourse import scoreboard

    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")
    entry = {e.name: e for e in scoreboard.entries()}["gated PixelCNN"]
    assert entry.chapter == "05" and entry.value_range == "01"
    out = entry.factory(12, torch.Generator().manual_seed(0))
    assert out.x.shape == (12, 1, 28, 28) and out.x.dtype == torch.float32 and out.train_seconds > 0
    assert set(out.x.unique().tolist()) <= {0.0, 1.0} and torch.equal(out.labels, torch.arange(12) % 10)
