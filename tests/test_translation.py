"""Image-to-image translation (chapter 10): the offline paired and unpaired sets, the pix2pix U-Net
and PatchGAN with its receptive field, the L1, pix2pix, cycle and identity losses, the pix2pix and
CycleGAN steps, PSNR and mean absolute error, and the translation recipe, each checked against an
independent computation (a double loop, numpy, scikit-learn's raw digits, gradients, a copy of the
modules stepped by hand)."""

import copy
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from gencourse import losses, train
from gencourse import nn as gnn
from gencourse.data import images
from gencourse.data import translation as tdata
from gencourse.metrics import pixels

pytestmark = pytest.mark.usefixtures("one_thread")
D64 = torch.float64
B = 4


def _images(shape, seed=0, low=-1.0, high=1.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(*shape, generator=g, dtype=dtype)


# ------------------------------------------------------------------------------------------ data: UCI digits


def _raw_uci():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.asarray(digits.images, dtype=np.float32) / 16.0, np.asarray(digits.target)


def test_uci_digits_shapes_ranges_and_split_sizes():
    x, y = tdata.uci_digits("train")
    xt, yt = tdata.uci_digits("test")
    assert x.shape == (1_497, 1, 28, 28) and xt.shape == (300, 1, 28, 28)
    assert x.dtype == xt.dtype == torch.float32 and y.dtype == yt.dtype == torch.int64
    assert y.shape == (1_497,) and yt.shape == (300,)
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9 and x.min() == 0
    assert np.bincount(yt.numpy(), minlength=10).tolist() == [30] * 10
    _, raw_y = _raw_uci()
    assert np.array_equal(np.bincount(y.numpy(), minlength=10) + 30, np.bincount(raw_y, minlength=10))
    xp, yp = tdata.uci_digits("train", value_range="pm1")
    assert torch.equal(yp, y) and xp.min() >= -1 and xp.max() <= 1
    torch.testing.assert_close(xp, 2 * x - 1)


def test_uci_split_is_a_partition_of_the_raw_digits_disjoint_by_content():
    raw, raw_y = _raw_uci()
    rule = tdata.uci_to_28(torch.from_numpy(raw).unsqueeze(1))  # the documented rule, applied to every raw digit
    raw_of = {}  # 28 x 28 image -> the raw 8 x 8 digits (and labels) it comes from
    for i in range(len(raw)):
        raw_of.setdefault(rule[i].numpy().tobytes(), set()).add((raw[i].tobytes(), int(raw_y[i])))
    found = {}
    for split in ("train", "test"):
        x, y = tdata.uci_digits(split)
        found[split] = []
        for img, label in zip(x, y):
            sources = raw_of.get(img.numpy().tobytes())
            assert sources is not None, f"a {split} image is not the rule applied to any raw UCI digit"
            assert int(label) in {lab for _, lab in sources}
            found[split].append(img.numpy().tobytes())
    # every raw digit used exactly once: the two splits together are the 1,797 images
    assert sorted(found["train"] + found["test"]) == sorted(rule[i].numpy().tobytes() for i in range(len(raw)))
    # no test image equals a training image unless both come from equal raw 8 x 8 digits
    for key in set(found["train"]) & set(found["test"]):
        assert len({r for r, _ in raw_of[key]}) == 1
    raw_test = {r for key in found["test"] for r, _ in raw_of[key]}
    raw_train = {r for key in found["train"] for r, _ in raw_of[key]}
    n_dup_raw = len(raw) - len({r.tobytes() for r in raw})
    assert len(raw_test & raw_train) <= n_dup_raw


def test_uci_to_28_frames_the_digit_and_keeps_its_8x8_content():
    raw, _ = _raw_uci()
    x8 = torch.from_numpy(raw[:200]).unsqueeze(1)
    x28 = tdata.uci_to_28(x8)
    assert x28.shape == (200, 1, 28, 28) and x28.dtype == torch.float32
    assert x28.min() >= 0 and x28.max() <= 1
    border = torch.ones(28, 28, dtype=torch.bool)
    border[4:24, 4:24] = False
    assert x28[:, :, border].abs().max() == 0  # 4 pixels of background on every side
    centre = x28[:, :, 4:24, 4:24]
    # bilinear upsampling by 2.5 keeps each digit's mean ink exactly
    torch.testing.assert_close(centre.mean((1, 2, 3)), x8.mean((1, 2, 3)), rtol=1e-5, atol=1e-6)
    # averaging the 20 x 20 back to 8 x 8 gives the digit again, up to the blur of the interpolation
    back = F.adaptive_avg_pool2d(centre, 8)
    err = (back - x8).abs().flatten(1).mean(1)
    other = (back - x8.roll(1, 0)).abs().flatten(1).mean(1)  # another digit: the scale of "not close"
    assert err.max() < 0.15 and err.mean() < 0.1 and err.mean() < 0.5 * other.mean()
    # a constant 8 x 8 image becomes a constant 20 x 20 square
    const = tdata.uci_to_28(torch.full((1, 1, 8, 8), 0.625))
    assert torch.allclose(const[0, 0, 4:24, 4:24], torch.tensor(0.625)) and const.sum() == pytest.approx(0.625 * 400)


# ------------------------------------------------------------------------------------------ data: photo crops


def _halved(name):
    from PIL import Image

    with Image.open(tdata._photo_path(name)) as im:
        im = im.convert("RGB")
        im = im.resize((im.width // 2, im.height // 2), Image.BOX)
        return np.asarray(im).astype(np.int64).transpose(2, 0, 1)  # (3, H, W) bytes


def _window_index(pic, c=32):
    """Every c x c window of ``pic`` (3, H, W) by its channel sums: {(sR, sG, sB): [(top, left), ...]}."""
    s = np.zeros((3, pic.shape[1] + 1, pic.shape[2] + 1), dtype=np.int64)
    s[:, 1:, 1:] = pic.cumsum(1).cumsum(2)
    sums = s[:, c:, c:] - s[:, :-c, c:] - s[:, c:, :-c] + s[:, :-c, :-c]  # (3, H - c + 1, W - c + 1)
    index = {}
    for (top, left) in np.ndindex(sums.shape[1:]):
        index.setdefault(tuple(sums[:, top, left]), []).append((top, left))
    return index


def _positions(crop, pic, index, c=32):
    """Every (top, left) where the c x c crop (3, c, c) of bytes occurs in pic."""
    candidates = index.get(tuple(crop.reshape(3, -1).sum(1)), [])
    return [(top, left) for top, left in candidates if np.array_equal(pic[:, top:top + c, left:left + c], crop)]


def test_photo_crops_come_from_their_photograph_and_the_test_crops_from_its_right_most_quarter():
    from PIL import Image

    crops = {split: tdata.photo_crops(split) for split in ("train", "test")}
    for split, (x, ids) in crops.items():
        assert x.ndim == 4 and x.shape[1:] == (3, 32, 32) and x.dtype == torch.float32 and ids.dtype == torch.int64
        assert x.min() >= 0 and x.max() <= 1
        assert sorted(set(ids.tolist())) == list(range(len(tdata.PHOTOS)))  # every scene in both splits
        xp, idp = tdata.photo_crops(split, value_range="pm1")
        assert torch.equal(idp, ids) and xp.min() >= -1 and xp.max() <= 1
        torch.testing.assert_close(xp, 2 * x - 1)
    for k, name in enumerate(tdata.PHOTOS):
        with Image.open(tdata._photo_path(name)) as im:
            W = im.size[0] // 2
        cut = int(round(0.75 * W))  # the right-most quarter of the halved photograph is held out
        pic = _halved(name)
        assert pic.shape[2] == W
        index = _window_index(pic)
        for split, (x, ids) in crops.items():
            mine = torch.round(x[ids == k] * 255).to(torch.int64).numpy()
            assert len(mine) > 0
            for crop in mine:
                lefts = [left for _, left in _positions(crop, pic, index)]
                if split == "test":
                    assert any(left >= cut for left in lefts), f"a test crop of {name} is not right of column {cut}"
                else:
                    assert any(left + 32 <= cut for left in lefts), f"a training crop of {name} crosses column {cut}"
    train_keys = {c.numpy().tobytes() for c in crops["train"][0]}
    assert not any(c.numpy().tobytes() in train_keys for c in crops["test"][0])


def test_photo_crops_are_the_crops_scaled_to_01():
    x, _ = tdata.photo_crops("test")
    assert torch.allclose(x * 255, torch.round(x * 255), atol=1e-4)  # bytes / 255


# ------------------------------------------------------------------------------------------ data: determinism, offline


def _every_set():
    out = {"uci_train": tdata.uci_digits("train"), "uci_test": tdata.uci_digits("test"),
           "photos_train": tdata.photo_crops("train"), "photos_test": tdata.photo_crops("test")}
    for task in tdata.PAIRED_TASKS:
        out[task] = tdata.paired(task, "test").tensors
    a, b = tdata.unpaired("test")
    out["unpaired"] = a.tensors + b.tensors
    return out


def test_sets_are_deterministic_and_returned_as_copies():
    first = _every_set()
    for tensors in first.values():
        for t in tensors:
            t.add_(1)  # the caller modifies what it got ...
    again, third = _every_set(), _every_set()
    for name in first:
        for t1, t2, t3 in zip(first[name], again[name], third[name]):
            assert torch.equal(t2, t3), name  # ... the next calls give the same, unmodified tensors
            assert not torch.equal(t1, t2), name


def test_sets_are_built_without_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    tdata._uci_all.cache_clear()
    tdata._photo_split.cache_clear()
    with pytest.raises(OSError, match="no network"):
        socket.create_connection(("127.0.0.1", 9))  # the patch is in force
    sets = _every_set()
    assert len(sets["uci_train"][0]) == 1_497 and len(sets["photos_test"][0]) > 0
    assert [len(t) for t in sets["edges2digits"]] == [1_000] * 3


# ------------------------------------------------------------------------------------------ data: edges, grey


def _sobel_magnitude_loop(img):
    """|grad| of one (H, W) image by the 3 x 3 Sobel filters, zero outside, as a double loop in float64."""
    H, W = img.shape
    p = np.zeros((H + 2, W + 2))
    p[1:-1, 1:-1] = img
    mag = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            r, c = i + 1, j + 1
            gx = (p[r - 1, c + 1] + 2 * p[r, c + 1] + p[r + 1, c + 1]) - (p[r - 1, c - 1] + 2 * p[r, c - 1] + p[r + 1, c - 1])
            gy = (p[r + 1, c - 1] + 2 * p[r + 1, c] + p[r + 1, c + 1]) - (p[r - 1, c - 1] + 2 * p[r - 1, c] + p[r - 1, c + 1])
            mag[i, j] = np.hypot(gx, gy)
    return mag


@pytest.mark.parametrize("threshold", [tdata.EDGE_THRESHOLD, 0.4])
def test_edge_map_matches_a_double_loop_sobel(threshold):
    x, _ = images.mnist_tensors("test", verbose=False)
    x = x[:3]
    edges = tdata.edge_map(x, threshold) if threshold != tdata.EDGE_THRESHOLD else tdata.edge_map(x)
    assert edges.shape == x.shape and edges.dtype == x.dtype
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    for b in range(len(x)):
        mag = _sobel_magnitude_loop(x[b, 0].double().numpy())
        expected = mag > threshold
        differ = expected != edges[b, 0].bool().numpy()
        assert not differ[np.abs(mag - threshold) > 1e-5].any()  # only a tie at the threshold may round either way
        assert 20 < expected.sum() < 400  # a digit's outline, not nothing nor everything


def test_edge_map_of_a_vertical_step():
    x = torch.zeros(1, 1, 6, 6)
    x[..., 3:] = 1.0
    # inside the image the magnitude is 4 on the two columns beside the step, 0 elsewhere; at the
    # zero-padded border, 1 + 2 = 3 on the bright side (above 1.0), 1 on the dark side (not above)
    expected = (torch.from_numpy(_sobel_magnitude_loop(x[0, 0].double().numpy())) > 1.0).float()
    assert torch.equal(tdata.edge_map(x)[0, 0], expected)
    assert expected[2, 2] == 1 and expected[2, 3] == 1 and expected[2, 0] == 0 and expected[0, 5] == 1


def test_to_grey_is_bt601_luminance():
    rgb = _images((3, 3, 5, 7), seed=1, low=0.0, high=1.0)
    y = tdata.to_grey(rgb)
    expected = np.einsum("bchw,c->bhw", rgb.numpy().astype(np.float64), np.array([0.299, 0.587, 0.114]))[:, None]
    assert y.shape == (3, 1, 5, 7) and y.dtype == torch.float32
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=1e-7)
    white = tdata.to_grey(torch.ones(1, 3, 2, 2))
    torch.testing.assert_close(white, torch.ones(1, 1, 2, 2))  # the weights sum to 1


BAD_IMAGES = [
    (tdata.edge_map, torch.rand(2, 3, 8, 8), r"x01 must have 1 channel\(s\), got shape \(2, 3, 8, 8\)"),
    (tdata.edge_map, 2 * torch.rand(2, 1, 8, 8) - 1, r"x01 must be in \[0, 1\].*from_pm1"),
    (tdata.edge_map, torch.ones(2, 1, 8, 8, dtype=torch.int64), r"x01 must be a float tensor of images \(B, C, H, W\)"),
    (tdata.edge_map, torch.rand(1, 8, 8), r"x01 must be a float tensor of images \(B, C, H, W\), got a Tensor of shape \(1, 8, 8\)"),
    (tdata.to_grey, torch.rand(2, 1, 8, 8), r"rgb01 must have 3 channel\(s\), got shape \(2, 1, 8, 8\)"),
    (tdata.to_grey, 1.5 * torch.ones(2, 3, 8, 8), r"rgb01 must be in \[0, 1\]"),
    (tdata.uci_to_28, torch.rand(2, 1, 28, 28), r"x8 must be 8 x 8 UCI digits \(B, 1, 8, 8\), got shape \(2, 1, 28, 28\)"),
    (tdata.uci_to_28, torch.full((2, 1, 8, 8), 16.0), r"x8 must be in \[0, 1\]"),
    (tdata.uci_to_28, np.zeros((2, 1, 8, 8), dtype=np.float32), "x8 must be a float tensor of images"),
]


@pytest.mark.parametrize("fn, bad, message", BAD_IMAGES)
def test_image_transforms_reject_wrong_shapes_and_ranges(fn, bad, message):
    with pytest.raises(ValueError, match=message):
        fn(bad)


@pytest.mark.parametrize("call, message", [
    (lambda: tdata.paired("facades"), "task must be one of 'edges2digits', 'grey2colour', got 'facades'"),
    (lambda: tdata.paired("edges2digits", "val"), "split must be one of 'train', 'test', got 'val'"),
    (lambda: tdata.paired("grey2colour", value_range="0255"), "value_range must be one of"),
    (lambda: tdata.unpaired("validation"), "split must be one of"),
    (lambda: tdata.unpaired(value_range="01x"), "value_range must be one of"),
    (lambda: tdata.uci_digits("dev"), "split must be one of"),
    (lambda: tdata.uci_digits(value_range="pm2"), "value_range must be one of"),
    (lambda: tdata.photo_crops("holdout"), "split must be one of"),
    (lambda: tdata.photo_crops(value_range=1), "value_range must be one of"),
])
def test_sets_reject_unknown_tasks_splits_and_ranges(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_paired_edges2digits_is_mnist_and_its_edge_map():
    ds = tdata.paired("edges2digits", "test")
    assert isinstance(ds, TensorDataset) and len(ds.tensors) == 3
    source, target, label = ds.tensors
    x01, y = images.mnist_tensors("test", verbose=False)
    assert source.shape == target.shape == (1_000, 1, 28, 28) and source.dtype == target.dtype == torch.float32
    assert torch.equal(label, y) and label.dtype == torch.int64  # MNIST's labels
    torch.testing.assert_close(target, 2 * x01 - 1)
    assert set(source.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(source, 2 * tdata.edge_map(x01) - 1)
    s01, t01, l01 = tdata.paired("edges2digits", "test", value_range="01").tensors
    assert torch.equal(t01, x01) and torch.equal(s01, tdata.edge_map(x01)) and torch.equal(l01, y)
    # a pair of the train split: the same construction on the training images
    src_tr, tgt_tr, lab_tr = tdata.paired("edges2digits", "train", value_range="01").tensors
    x_tr, y_tr = images.mnist_tensors("train", verbose=False)
    assert torch.equal(tgt_tr, x_tr) and torch.equal(lab_tr, y_tr) and len(src_tr) == len(x_tr)


def test_paired_grey2colour_is_the_crops_and_their_luminance():
    source, target, label = tdata.paired("grey2colour", "test").tensors
    x, ids = tdata.photo_crops("test")
    assert source.shape == (len(x), 1, 32, 32) and target.shape == (len(x), 3, 32, 32)
    assert torch.equal(label, ids)
    assert source.min() >= -1 and source.max() <= 1 and target.min() >= -1 and target.max() <= 1
    torch.testing.assert_close(target, 2 * x - 1)
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close(source, 2 * (x * w).sum(1, keepdim=True) - 1)


def test_unpaired_domains_are_uci_and_mnist():
    for split in ("train", "test"):
        a, b = tdata.unpaired(split)
        assert isinstance(a, TensorDataset) and isinstance(b, TensorDataset)
        xa, ya = tdata.uci_digits(split, value_range="pm1")
        xb, yb = images.mnist_tensors(split, value_range="pm1", verbose=False)
        assert torch.equal(a.tensors[0], xa) and torch.equal(a.tensors[1], ya)
        assert torch.equal(b.tensors[0], xb) and torch.equal(b.tensors[1], yb)
        assert a.tensors[0].shape[1:] == b.tensors[0].shape[1:] == (1, 28, 28)
    a01, _ = tdata.unpaired("test", value_range="01")
    assert a01.tensors[0].min() >= 0 and a01.tensors[0].max() <= 1


# ------------------------------------------------------------------------------------------ nn: U-Net


@pytest.mark.parametrize("c_in, c_out, depth, side", [(1, 1, 2, 28), (1, 3, 3, 32), (2, 1, 1, 6)])
def test_translation_unet_shapes_and_tanh_range(c_in, c_out, depth, side):
    torch.manual_seed(0)
    G = gnn.TranslationUNet(c_in, c_out, ngf=4, depth=depth)
    x = _images((3, c_in, side, side))
    y = G(x)
    assert y.shape == (3, c_out, side, side)
    assert y.abs().max() < 1 and isinstance(G.up[-1][-1], nn.Tanh)
    assert G(100 * x).abs().max() <= 1  # saturated, still in [-1, 1]
    assert len(G.down) == len(G.up) == depth


def test_translation_unet_rejects_wrong_inputs_and_settings():
    G = gnn.TranslationUNet(1, 1, ngf=4, depth=2)
    with pytest.raises(ValueError, match=r"H and W divisible by 2\^depth = 4, got shape \(2, 1, 30, 30\)"):
        G(torch.zeros(2, 1, 30, 30))
    with pytest.raises(ValueError, match=r"images \(B, 1, H, W\).*got shape \(2, 3, 28, 28\)"):
        G(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"got shape \(1, 28, 28\)"):
        G(torch.zeros(1, 28, 28))
    with pytest.raises(ValueError, match=r"2\^depth = 8, got shape \(1, 1, 28, 28\)"):
        gnn.TranslationUNet(1, 1, ngf=4, depth=3)(torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="norm must be 'instance', 'batch' or 'none', got 'group'"):
        gnn.TranslationUNet(norm="group")
    with pytest.raises(ValueError, match="dropout must be in"):
        gnn.TranslationUNet(dropout=1.0)
    with pytest.raises(ValueError, match="depth"):
        gnn.TranslationUNet(depth=0)


def test_skips_false_removes_the_skip_channels_of_the_decoder():
    ngf, depth = 4, 2  # encoder widths 4 (14 x 14), 8 (7 x 7); bottleneck 16 (7 x 7); decoder 4 (14 x 14), 1 (28 x 28)
    with_skips = gnn.TranslationUNet(1, 1, ngf, depth, skips=True)
    plain = gnn.TranslationUNet(1, 1, ngf, depth, skips=False)
    first = lambda G: [m for m in G.up.modules() if isinstance(m, nn.ConvTranspose2d)]  # noqa: E731
    assert [m.in_channels for m in first(with_skips)] == [16 + 8, 4 + 4]  # + the encoder's features of that resolution
    assert [m.in_channels for m in first(plain)] == [16, 4]
    assert with_skips.skips and not plain.skips


def _zero_bottleneck(G):
    return G.bottleneck.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_without_skips_everything_passes_through_the_bottleneck(norm):
    torch.manual_seed(0)
    x1, x2 = _images((2, 1, 28, 28), seed=1), _images((2, 1, 28, 28), seed=2)
    for skips in (False, True):
        G = gnn.TranslationUNet(1, 1, ngf=4, depth=2, skips=skips, norm=norm)
        assert not torch.allclose(G(x1), G(x2))  # the input matters ...
        hook = _zero_bottleneck(G)
        y1, y2 = G(x1), G(x2)
        hook.remove()
        if skips:
            assert (y1 - y2).abs().max() > 1e-3  # ... through the skips when the bottleneck says nothing
        else:
            torch.testing.assert_close(y1, y2, rtol=0, atol=1e-6)  # ... only through the bottleneck


def test_with_a_silent_bottleneck_an_output_pixel_sees_only_nearby_input_pixels_through_the_skips():
    torch.manual_seed(0)
    G = gnn.TranslationUNet(1, 1, ngf=4, depth=2, skips=True, norm="none").double()
    x = _images((1, 1, 28, 28), seed=3, dtype=D64).requires_grad_(True)
    _zero_bottleneck(G)
    (grad,) = torch.autograd.grad(G(x)[0, 0, 5, 5], x)
    near = grad[0, 0].abs() > 0
    rows, cols = near.any(1).nonzero().flatten(), near.any(0).nonzero().flatten()
    assert near[5, 5] and rows.max() < 20 and cols.max() < 20  # a neighbourhood of (5, 5), not the whole image
    G2 = gnn.TranslationUNet(1, 1, ngf=4, depth=2, skips=False, norm="none").double()
    (grad2,) = torch.autograd.grad(G2(x)[0, 0, 5, 5], x)
    assert (grad2.abs() > 0).sum() > near.sum()  # through the bottleneck the field is wider


# ------------------------------------------------------------------------------------------ nn: receptive field, PatchGAN


@pytest.mark.parametrize("layers, expected", [
    ([(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)], 70),  # pix2pix's PatchGAN
    ([(4, 2), (4, 1), (4, 1)], 16),
    ([(7, 3)], 7), ([(1, 1)], 1), ([(4, 2)], 4),  # one layer: its kernel
    ([(3, 1), (3, 1)], 5),
    ([(2, 2), (2, 2), (2, 2)], 8),  # non-overlapping: 2^3
    ([(3, 2), (3, 2)], 7),
])
def test_receptive_field_known_values(layers, expected):
    assert gnn.receptive_field(layers) == expected


def test_receptive_field_rejects_bad_layers():
    with pytest.raises(ValueError):
        gnn.receptive_field([(0, 1)])
    with pytest.raises(ValueError):
        gnn.receptive_field([(3, -1)])


def _gradient_field(D, side):
    """Rows and columns of input pixels with a non-zero gradient for the central output logit."""
    x = torch.ones(1, D.in_channels, side, side, dtype=D64, requires_grad=True)
    out = D(x)
    i, j = out.shape[2] // 2, out.shape[3] // 2
    (grad,) = torch.autograd.grad(out[0, 0, i, j], x)
    mask = grad[0].abs().sum(0) > 0
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    return mask, rows, cols


@pytest.mark.parametrize("n_down, side", [(1, 40), (2, 48), (3, 96)])
def test_patchgan_receptive_field_matches_the_gradient_of_a_central_logit(n_down, side):
    D = gnn.PatchGAN(2, ndf=2, n_down=n_down, norm="none").double()
    with torch.no_grad():  # positive weights and inputs: no cancellation can hide a pixel
        for m in D.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(0.05)
                m.bias.zero_()
    mask, rows, cols = _gradient_field(D, side)
    assert rows.min() > 0 and rows.max() < side - 1 and cols.min() > 0 and cols.max() < side - 1  # away from the padding
    span_r, span_c = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    assert span_r == span_c == D.receptive_field == gnn.receptive_field(D.layers)
    assert mask.sum() == span_r * span_c  # a full square
    assert D.receptive_field == {1: 16, 2: 34, 3: 70}[n_down]


def test_patchgan_layers_and_output_size():
    D = gnn.PatchGAN(6, ndf=2, n_down=3)
    assert D.layers == [(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)] and D.receptive_field == 70
    assert D(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)  # pix2pix's 30 x 30 map on 256 x 256
    D1 = gnn.PatchGAN(2, ndf=4, n_down=1)
    assert D1.layers == [(4, 2), (4, 1), (4, 1)]
    assert D1(torch.zeros(3, 2, 28, 28)).shape == (3, 1, 12, 12)
    with pytest.raises(ValueError, match=r"PatchGAN expects images \(B, 2, H, W\).*got shape \(3, 1, 28, 28\)"):
        D1(torch.zeros(3, 1, 28, 28))


# ------------------------------------------------------------------------------------------ losses


def _softplus(z):
    return np.logaddexp(0.0, z)


GAN_G = {  # the generator's GAN term, in numpy, from the logits
    "minimax": lambda d: -_softplus(d).mean(),
    "non_saturating": lambda d: _softplus(-d).mean(),
    "least_squares": lambda d: 0.5 * ((d - 1) ** 2).mean(),
    "hinge": lambda d: -d.mean(),
}


def test_l1_loss_is_the_mean_absolute_difference():
    out, tgt = _images((3, 2, 5, 5), 1, dtype=D64), _images((3, 2, 5, 5), 2, dtype=D64)
    assert losses.l1_loss(out, tgt).item() == pytest.approx(np.abs(out.numpy() - tgt.numpy()).mean(), rel=1e-12)
    with pytest.raises(ValueError, match=r"output and target must have the same shape, got \(3, 2, 5, 5\) and \(3, 2, 5, 4\)"):
        losses.l1_loss(out, tgt[..., :4])
    with pytest.raises(ValueError, match="target must be a torch.Tensor"):
        losses.l1_loss(out, tgt.numpy())


@pytest.mark.parametrize("kind", list(GAN_G))
def test_pix2pix_g_loss_is_the_gan_term_plus_lambda_l1_against_the_target(kind):
    d_fake = torch.randn(B, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=D64)
    source, fake = _images((B, 1, 8, 8), 1, dtype=D64), _images((B, 1, 8, 8), 2, dtype=D64)
    target = (fake + 0.1 * _images((B, 1, 8, 8), 3, dtype=D64)).clamp(-1, 1)  # close to the output, unlike the source
    lam = 100.0
    gan = GAN_G[kind](d_fake.numpy())
    expected = gan + lam * np.abs(fake.numpy() - target.numpy()).mean()
    against_source = gan + lam * np.abs(fake.numpy() - source.numpy()).mean()
    got = losses.pix2pix_g_loss(d_fake, fake, target, lam, kind).item()
    assert got == pytest.approx(expected, rel=1e-10) and abs(expected - against_source) > 1.0
    assert losses.pix2pix_g_loss(d_fake, fake, target, 0.0, kind).item() == pytest.approx(gan, rel=1e-10)
    assert losses.pix2pix_g_loss(d_fake, fake, target, 2.5, kind).item() == pytest.approx(
        gan + 2.5 * np.abs(fake.numpy() - target.numpy()).mean(), rel=1e-10)


def test_pix2pix_g_loss_defaults_and_errors():
    d_fake = torch.randn(B, 1, 3, 3, generator=torch.Generator().manual_seed(0), dtype=D64)
    fake, target = _images((B, 1, 8, 8), 2, dtype=D64), _images((B, 1, 8, 8), 3, dtype=D64)
    expected = GAN_G["non_saturating"](d_fake.numpy()) + 100 * np.abs(fake.numpy() - target.numpy()).mean()
    assert losses.pix2pix_g_loss(d_fake, fake, target).item() == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="lambda_l1 must be >= 0, got -1.0"):
        losses.pix2pix_g_loss(d_fake, fake, target, -1.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        losses.pix2pix_g_loss(d_fake, fake, target, 1.0, "wasserstein")
    with pytest.raises(ValueError, match="same shape"):
        losses.pix2pix_g_loss(d_fake, fake, target[:, :, :4], 1.0)


def G_AB_map(x):
    return 2 * x + 1


def G_BA_map(x):
    return x**3


def test_cycle_loss_is_both_round_trips_against_a_hand_computation():
    a, b = _images((3, 1, 4, 4), 1, dtype=D64), _images((5, 1, 4, 4), 2, dtype=D64)  # batches of any sizes
    an, bn = a.numpy(), b.numpy()
    expected = np.abs((2 * an + 1) ** 3 - an).mean() + np.abs(2 * bn**3 + 1 - bn).mean()
    assert losses.cycle_loss(G_AB_map, G_BA_map, a, b).item() == pytest.approx(expected, rel=1e-12)
    swapped = np.abs(2 * an**3 + 1 - an).mean() + np.abs((2 * bn + 1) ** 3 - bn).mean()
    assert losses.cycle_loss(G_BA_map, G_AB_map, a, b).item() == pytest.approx(swapped, rel=1e-12)
    assert abs(expected - swapped) > 0.1
    inverse = lambda x: (x - 1) / 2  # noqa: E731  (the exact inverse of G_AB_map: no cycle error)
    assert losses.cycle_loss(G_AB_map, inverse, a, b).item() == pytest.approx(0.0, abs=1e-12)


def test_identity_loss_feeds_each_generator_its_output_domain():
    a, b = _images((3, 1, 4, 4), 1, 0.5, 1.5, dtype=D64), _images((5, 1, 4, 4), 2, -2.0, -1.0, dtype=D64)  # two domains apart
    an, bn = a.numpy(), b.numpy()
    expected = np.abs(2 * bn + 1 - bn).mean() + np.abs(an**3 - an).mean()  # G_AB fed b, G_BA fed a
    wrong = np.abs(2 * an + 1 - an).mean() + np.abs(bn**3 - bn).mean()
    assert losses.identity_loss(G_AB_map, G_BA_map, a, b).item() == pytest.approx(expected, rel=1e-12)
    assert abs(expected - wrong) > 0.1
    assert losses.identity_loss(lambda x: x, lambda x: x, a, b).item() == 0.0
    with pytest.raises(ValueError, match="a must be a torch.Tensor"):
        losses.identity_loss(G_AB_map, G_BA_map, an, b)


def test_cycle_and_identity_losses_with_small_linear_modules():
    torch.manual_seed(0)
    lin_ab, lin_ba = nn.Linear(3, 3).double(), nn.Linear(3, 3).double()
    a, b = torch.randn(4, 3, dtype=D64), torch.randn(6, 3, dtype=D64)
    Wab, bab = lin_ab.weight.detach().numpy(), lin_ab.bias.detach().numpy()
    Wba, bba = lin_ba.weight.detach().numpy(), lin_ba.bias.detach().numpy()
    f_ab = lambda x: x @ Wab.T + bab  # noqa: E731
    f_ba = lambda x: x @ Wba.T + bba  # noqa: E731
    an, bn = a.numpy(), b.numpy()
    cyc = np.abs(f_ba(f_ab(an)) - an).mean() + np.abs(f_ab(f_ba(bn)) - bn).mean()
    idt = np.abs(f_ab(bn) - bn).mean() + np.abs(f_ba(an) - an).mean()
    assert losses.cycle_loss(lin_ab, lin_ba, a, b).item() == pytest.approx(cyc, rel=1e-10)
    assert losses.identity_loss(lin_ab, lin_ba, a, b).item() == pytest.approx(idt, rel=1e-10)


# ------------------------------------------------------------------------------------------ train steps


def _params(*modules):
    return [p.detach().clone() for m in modules for p in m.parameters()]


def _same(before, *modules):
    return all(torch.equal(p, q) for p, q in zip(before, [p for m in modules for p in m.parameters()]))


class Spy(nn.Module):
    """A discriminator that records what it is given."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seen = net, []

    def forward(self, x):
        self.seen.append((x.detach().clone(), x.requires_grad))
        return self.net(x)


def _pix2pix_nets(seed=0, c_in=1, c_out=1):
    torch.manual_seed(seed)
    return gnn.TranslationUNet(c_in, c_out, ngf=4, depth=2), gnn.PatchGAN(c_in + c_out, ndf=4, n_down=1)


@pytest.mark.parametrize("kind", ["non_saturating", "least_squares"])
def test_pix2pix_d_step_judges_the_pairs_source_target_and_source_output(kind):
    G, net = _pix2pix_nets(c_out=3)
    D = Spy(net)
    x, y = _images((B, 1, 28, 28), 1), _images((B, 3, 28, 28), 2)
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(net)
    with torch.no_grad():
        fake = G_ref(x)
        d_real, d_fake = D_ref(torch.cat([x, y], 1)), D_ref(torch.cat([x, fake], 1))
        expected = losses.discriminator_loss(d_real, d_fake, kind).item()
    g_before, d_before = _params(G), _params(D)
    out = train.pix2pix_d_step(G, D, torch.optim.SGD(D.parameters(), lr=0.1), x, y, kind=kind)
    (real_in, _), (fake_in, fake_grad) = D.seen
    assert torch.equal(real_in, torch.cat([x, y], 1))  # the source first, then the real target
    torch.testing.assert_close(fake_in, torch.cat([x, fake], 1))  # the source, then the generated image
    assert not fake_grad  # the generated image is detached
    assert out["loss_D"] == pytest.approx(expected, rel=1e-5)
    assert out["D_real"] == pytest.approx(torch.sigmoid(d_real).mean().item(), rel=1e-5)
    assert out["D_fake"] == pytest.approx(torch.sigmoid(d_fake).mean().item(), rel=1e-5)
    assert _same(g_before, G) and all(p.grad is None for p in G.parameters())
    assert not _same(d_before, D)


@pytest.mark.parametrize("lambda_l1, kind", [(100.0, "non_saturating"), (0.0, "non_saturating"), (10.0, "least_squares")])
def test_pix2pix_g_step_descends_pix2pix_g_loss_with_d_frozen(lambda_l1, kind):
    G, D = _pix2pix_nets(1)
    x, y = _images((B, 1, 28, 28), 3), _images((B, 1, 28, 28), 4)
    last = list(D.parameters())[-1]
    last.requires_grad_(False)  # a parameter frozen before the step stays frozen after it
    flags = [p.requires_grad for p in D.parameters()]
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    fake = G_ref(x)
    loss_ref = losses.pix2pix_g_loss(D_ref(torch.cat([x, fake], 1)), fake, y, lambda_l1, kind)
    grads = torch.autograd.grad(loss_ref, list(G_ref.parameters()))
    d_before = _params(D)
    lr = 0.01
    out = train.pix2pix_g_step(G, D, torch.optim.SGD(G.parameters(), lr=lr), x, y, lambda_l1=lambda_l1, kind=kind)
    assert out["loss_G"] == pytest.approx(loss_ref.item(), rel=1e-5)
    assert out["l1"] == pytest.approx(losses.l1_loss(fake, y).item(), rel=1e-5)
    assert _same(d_before, D) and all(p.grad is None for p in D.parameters())
    assert [p.requires_grad for p in D.parameters()] == flags
    for p0, g, p in zip(G_ref.parameters(), grads, G.parameters()):  # one SGD step on the recomputed loss
        torch.testing.assert_close(p.detach(), p0.detach() - lr * g, rtol=1e-4, atol=1e-6)


def test_pix2pix_g_step_without_d_is_l1_regression_and_reduces_it():
    G, _ = _pix2pix_nets(2)
    x, y = _images((B, 1, 28, 28), 5), _images((B, 1, 28, 28), 6)
    opt = torch.optim.Adam(G.parameters(), lr=3e-3)
    first = train.pix2pix_g_step(G, None, opt, x, y, lambda_l1=100.0)
    assert first["loss_G"] == pytest.approx(100 * first["l1"], rel=1e-6)
    values = [train.pix2pix_g_step(G, None, opt, x, y, lambda_l1=100.0)["l1"] for _ in range(15)]
    assert values[-1] < 0.8 * first["l1"]
    G_ref = copy.deepcopy(G)
    out = train.pix2pix_g_step(G, None, torch.optim.SGD(G.parameters(), lr=0.0), x, y, lambda_l1=0.0)
    assert out["loss_G"] == pytest.approx(out["l1"]) == pytest.approx(losses.l1_loss(G_ref(x), y).item(), rel=1e-5)


def _cyclegan_nets(seed=0):
    torch.manual_seed(seed)
    return (gnn.TranslationUNet(1, 1, ngf=4, depth=2), gnn.TranslationUNet(1, 1, ngf=4, depth=2),
            gnn.PatchGAN(1, ndf=4, n_down=1), gnn.PatchGAN(1, ndf=4, n_down=1))


@pytest.mark.parametrize("lambda_cycle, lambda_identity", [(10.0, 5.0), (0.0, 5.0), (10.0, 0.0), (0.0, 0.0)])
def test_cyclegan_g_step_is_least_squares_gan_plus_cycle_plus_identity(lambda_cycle, lambda_identity):
    G_AB, G_BA, D_A, D_B = _cyclegan_nets()
    a, b = _images((3, 1, 28, 28), 7), _images((5, 1, 28, 28), 8)  # unpaired: even the batch sizes differ
    refs = [copy.deepcopy(m) for m in (G_AB, G_BA, D_A, D_B)]
    rAB, rBA, rDA, rDB = refs
    d_b, d_a = rDB(rAB(a)), rDA(rBA(b))
    gan = ((d_b - 1) ** 2).mean() + ((d_a - 1) ** 2).mean()
    assert gan.item() == pytest.approx(2 * (losses.g_loss_least_squares(d_b) + losses.g_loss_least_squares(d_a)).item(), rel=1e-6)
    cyc, idt = losses.cycle_loss(rAB, rBA, a, b), losses.identity_loss(rAB, rBA, a, b)
    total = gan + lambda_cycle * cyc + lambda_identity * idt
    g_params = [*rAB.parameters(), *rBA.parameters()]
    grads = torch.autograd.grad(total, g_params)
    d_before = _params(D_A, D_B)
    lr = 0.01
    opt = torch.optim.SGD([*G_AB.parameters(), *G_BA.parameters()], lr=lr)
    out = train.cyclegan_g_step(G_AB, G_BA, D_A, D_B, opt, a, b, lambda_cycle=lambda_cycle, lambda_identity=lambda_identity)
    assert out["gan"] == pytest.approx(gan.item(), rel=1e-5)
    assert out["cycle"] == (pytest.approx(cyc.item(), rel=1e-5) if lambda_cycle else 0.0)
    assert out["identity"] == (pytest.approx(idt.item(), rel=1e-5) if lambda_identity else 0.0)
    assert out["loss_G"] == pytest.approx(total.item(), rel=1e-5)
    assert cyc.item() > 0.05 and idt.item() > 0.05  # switching a term off changes the loss
    for p0, g, p in zip(g_params, grads, [*G_AB.parameters(), *G_BA.parameters()]):
        torch.testing.assert_close(p.detach(), p0.detach() - lr * g, rtol=1e-4, atol=1e-6)
    assert not _same(_params(rAB), G_AB) and not _same(_params(rBA), G_BA)  # both generators move
    assert _same(d_before, D_A, D_B) and all(p.grad is None and p.requires_grad for p in [*D_A.parameters(), *D_B.parameters()])
    fake_a, fake_b = out["fakes"]
    assert not fake_a.requires_grad and not fake_b.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(fake_a, rBA(b))  # (G_BA(b), G_AB(a)) before the update
        torch.testing.assert_close(fake_b, rAB(a))


def test_cyclegan_d_step_is_the_sum_of_two_least_squares_losses_and_leaves_the_generators_alone():
    G_AB, G_BA, D_A, D_B = _cyclegan_nets(1)
    a, b = _images((3, 1, 28, 28), 9), _images((5, 1, 28, 28), 10)
    fake_a, fake_b = G_BA(b), G_AB(a)  # not detached: the step must detach them
    rDA, rDB = copy.deepcopy(D_A), copy.deepcopy(D_B)
    with torch.no_grad():
        ra, fa, rb, fb = rDA(a), rDA(fake_a), rDB(b), rDB(fake_b)
        expected = losses.d_loss_least_squares(ra, fa) + losses.d_loss_least_squares(rb, fb)
        swapped = losses.d_loss_least_squares(rDA(a), rDA(fake_b)) + losses.d_loss_least_squares(rDB(b), rDB(fake_a))
    g_before, d_before = _params(G_AB, G_BA), _params(D_A, D_B)
    opt = torch.optim.SGD([*D_A.parameters(), *D_B.parameters()], lr=0.1)
    out = train.cyclegan_d_step(D_A, D_B, opt, a, b, fake_a, fake_b)
    assert out["loss_D"] == pytest.approx(expected.item(), rel=1e-5) and abs(expected - swapped) > 1e-4
    for key, value in (("D_A_real", ra), ("D_A_fake", fa), ("D_B_real", rb), ("D_B_fake", fb)):
        assert out[key] == pytest.approx(value.mean().item(), rel=1e-5)
    assert _same(g_before, G_AB, G_BA) and all(p.grad is None for p in [*G_AB.parameters(), *G_BA.parameters()])
    assert not _same(d_before[:len(list(D_A.parameters()))], D_A) and not _same(d_before[len(list(D_A.parameters())):], D_B)


# ------------------------------------------------------------------------------------------ metrics


def test_psnr_and_mean_abs_error_match_numpy_per_image_and_averaged():
    t = _images((5, 3, 6, 6), 1, 0.0, 1.0)
    o = (t + 0.1 * _images((5, 3, 6, 6), 2)).clamp(0, 1)
    on, tn = o.double().numpy(), t.double().numpy()
    mse = ((on - tn) ** 2).reshape(5, -1).mean(1)
    db = 10 * np.log10(1.0 / mse)
    mae = np.abs(on - tn).reshape(5, -1).mean(1)
    np.testing.assert_allclose(pixels.psnr(o, t, value_range="01", per_image=True).numpy(), db, rtol=1e-5)
    np.testing.assert_allclose(pixels.mean_abs_error(o, t, value_range="01", per_image=True).numpy(), mae, rtol=1e-5)
    assert pixels.psnr(o, t, value_range="01") == pytest.approx(db.mean(), rel=1e-6)  # the mean of per-image values
    assert pixels.psnr(o, t, value_range="01") != pytest.approx(10 * np.log10(1 / mse.mean()), rel=1e-4)
    assert pixels.mean_abs_error(o, t, value_range="01") == pytest.approx(mae.mean(), rel=1e-6)
    # the same images in [-1, 1]: the same PSNR (the peak is the range's width), twice the error
    o2, t2 = 2 * o - 1, 2 * t - 1
    np.testing.assert_allclose(pixels.psnr(o2, t2, value_range="pm1", per_image=True).numpy(), db, rtol=1e-4)
    assert pixels.mean_abs_error(o2, t2, value_range="pm1") == pytest.approx(2 * mae.mean(), rel=1e-5)


def test_psnr_of_identical_images_is_max_db():
    t = _images((3, 1, 4, 4), 3, 0.0, 1.0)
    assert pixels.psnr(t, t, value_range="01") == 100.0
    assert pixels.psnr(t, t.clone(), value_range="01", max_db=50.0) == 50.0
    o = t.clone()
    o[0, 0, 0, 0] += 1e-3 if o[0, 0, 0, 0] < 0.5 else -1e-3
    per = pixels.psnr(o, t, value_range="01", per_image=True, max_db=500.0)
    assert per[1:].tolist() == [500.0, 500.0] and per[0].item() == pytest.approx(10 * np.log10(16 / 1e-6), rel=1e-3)
    assert pixels.mean_abs_error(t, t, value_range="pm1") == 0.0


def test_pixel_metrics_reject_bad_inputs_and_clamp_outputs_when_asked():
    t = _images((2, 1, 4, 4), 4, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"output and target must have the same shape, got \(2, 1, 4, 4\) and \(2, 1, 4, 3\)"):
        pixels.psnr(t, t[..., :3], value_range="01")
    with pytest.raises(ValueError, match=r"target must have values in \[0, 1\]"):
        pixels.mean_abs_error(t, 2 * t - 1.5, value_range="01")
    with pytest.raises(ValueError, match=r"output must have values in \[-1, 1\].*clamp=True"):
        pixels.psnr(1.5 * torch.ones(2, 1, 4, 4), 2 * t - 1, value_range="pm1")
    with pytest.raises(ValueError, match="value_range must be '01' or 'pm1', got '0255'"):
        pixels.psnr(t, t, value_range="0255")
    with pytest.raises(ValueError, match=r"output must be a float tensor of images \(B, C, H, W\)"):
        pixels.psnr(t[0], t[0], value_range="01")
    with pytest.raises(ValueError, match="contains NaN"):
        pixels.psnr(torch.full_like(t, float("nan")), t, value_range="01")
    out = t + 0.3  # a model output past the range
    clamped = pixels.psnr(out, t, value_range="01", clamp=True, per_image=True)
    torch.testing.assert_close(clamped, pixels.psnr(out.clamp(0, 1), t, value_range="01", per_image=True))
    with pytest.raises(ValueError, match=r"target must have values in \[0, 1\]"):  # the target is never clamped
        pixels.psnr(t, t + 0.3, value_range="01", clamp=True)


# ------------------------------------------------------------------------------------------ recipe


def test_translation_settings_validate_and_derive_their_values():
    from gencourse.recipes import translation as rec

    s = rec.translation_settings()
    assert (s["variant"], s["task"], s["depth"], s["lambda_l1"], s["steps"]) == ("pix2pix", "edges2digits", 2, 100.0, 6)
    assert rec.translation_settings("pix2pix", "grey2colour")["depth"] == 3  # 32 x 32 crops
    assert rec.translation_settings("pix2pix", "grey2colour", depth=2)["depth"] == 2  # unless overridden
    assert rec.translation_settings("cgan")["lambda_l1"] == 0.0
    assert rec.translation_settings("l1")["lambda_l1"] == 100.0 and rec.translation_settings("noskip")["lambda_l1"] == 100.0
    c = rec.translation_settings("cyclegan")
    assert (c["task"], c["kind"], c["lambda_cycle"], c["lambda_identity"], c["lambda_l1"]) == ("uci2mnist", "least_squares", 10.0, 5.0, 0.0)
    assert rec.translation_settings("no_cycle", "uci2mnist")["lambda_cycle"] == 0.0
    assert rec.translation_settings("no_cycle")["lambda_identity"] == 5.0
    assert rec.translation_settings("no_identity")["lambda_identity"] == 0.0
    assert rec.translation_settings("no_identity")["lambda_cycle"] == 10.0
    assert rec.translation_settings("no_cycle", lambda_cycle=3.0)["lambda_cycle"] == 0.0  # the variant wins
    with pytest.raises(ValueError, match=r"unknown translation settings \['learning_rate'\]"):
        rec.translation_settings("pix2pix", learning_rate=1e-3)
    with pytest.raises(ValueError, match="variant must be one of 'pix2pix', .*'no_identity', got 'unit'"):
        rec.translation_settings("unit")
    with pytest.raises(ValueError, match="task must be 'uci2mnist', got 'grey2colour'"):
        rec.translation_settings("cyclegan", "grey2colour")
    with pytest.raises(ValueError, match="task must be one of 'edges2digits', 'grey2colour', got 'uci2mnist'"):
        rec.translation_settings("pix2pix", "uci2mnist")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        rec.translation_settings("l1", steps=0)


RECIPE_RUNS = [("pix2pix", "edges2digits"), ("l1", "edges2digits"), ("cgan", "edges2digits"), ("noskip", "edges2digits"),
               ("pix2pix", "grey2colour"), ("cyclegan", "uci2mnist"), ("no_cycle", "uci2mnist"), ("no_identity", "uci2mnist")]
OVERRIDES = {"steps": 2, "snapshots": 2}


@pytest.mark.parametrize("variant, task", RECIPE_RUNS)
def test_every_variant_trains_then_loads_from_the_cache(variant, task, tmp_path, monkeypatch):
    from gencourse.recipes import translation as rec

    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("GENCOURSE_RETRAIN", "0")
    settings = rec.translation_settings(variant, task, **OVERRIDES)
    fresh = rec.build_translation(settings)  # the same seed: the weights before training
    mods, history = rec.translation_model(variant, task, progress=False, **OVERRIDES)
    assert history.run["trained"] is True and len(history) == 2 and history.info["cpu_seconds"] > 0
    record = mods["record"]
    assert record.steps.tolist() == [0, 2] and torch.isfinite(record.images).all() and record.images.abs().max() <= 1
    if variant in rec.CYCLEGAN_VARIANTS:
        nets = ("G_AB", "G_BA", "D_A", "D_B")
        assert set(history.losses) == {"loss_G", "gan", "cycle", "identity", "loss_D", "D_A_real", "D_A_fake", "D_B_real", "D_B_fake"}
        assert all(v == 0 for v in history["cycle"]) == (variant == "no_cycle")
        assert all(v == 0 for v in history["identity"]) == (variant == "no_identity")
        assert record.images.shape == (2, 2 * rec.N_GRID, 1, 28, 28)
    else:
        nets = ("G",) if variant == "l1" else ("G", "D")
        assert (mods["D"] is None) == (variant == "l1")
        c_out, side = (3, 32) if task == "grey2colour" else (1, 28)
        unet = mods["G"] if isinstance(mods["G"], gnn.TranslationUNet) else mods["G"].G  # a wrapper may hold the U-Net
        assert isinstance(unet, gnn.TranslationUNet) and unet.skips == (variant != "noskip")
        assert (unet.in_channels, unet.out_channels, unet.depth) == (1, c_out, 3 if task == "grey2colour" else 2)
        if mods["D"] is not None:
            assert mods["D"].in_channels == 1 + c_out
        keys = {"loss_G", "l1"} | (set() if variant == "l1" else {"loss_D", "D_real", "D_fake"})
        assert set(history.losses) == keys
        assert record.images.shape == (2, rec.N_GRID, c_out, side, side)
    for name in nets:
        assert not mods[name].training
        assert any(not torch.equal(p, q) for p, q in zip(fresh[name].parameters(), mods[name].parameters())), name

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr(rec, "train_translation", no_training)
    again, history2 = rec.translation_model(variant, task, progress=False, **OVERRIDES)
    assert history2.run["trained"] is False and history2.losses == history.losses
    for name in (*nets, "record"):
        for p, q in zip(mods[name].state_dict().values(), again[name].state_dict().values()):
            assert torch.equal(p, q)


def test_translation_models_trains_several_then_loads_them(tmp_path, monkeypatch):
    from gencourse.recipes import translation as rec

    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("GENCOURSE_RETRAIN", "0")
    out = rec.translation_models(["l1", ("no_cycle", "uci2mnist")], workers=1, **OVERRIDES)
    assert set(out) == {("l1", "edges2digits"), ("no_cycle", "uci2mnist")}
    assert all(h.run["trained"] for _, h in out.values())
    again = rec.translation_models(["l1", "no_cycle"], workers=1, **OVERRIDES)
    assert set(again) == set(out) and not any(h.run["trained"] for _, h in again.values())


def test_translate_returns_clamped_cpu_images_and_restores_the_mode():
    from gencourse.recipes import translation as rec

    torch.manual_seed(0)
    G = gnn.TranslationUNet(1, 1, ngf=4, depth=2, norm="batch")  # batch norm: train and eval modes differ
    x = _images((7, 1, 28, 28), 11)
    G.train()
    y = rec.translate(G, x, batch_size=3)
    assert G.training and y.device.type == "cpu" and y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    G.eval()
    with torch.no_grad():
        expected = G(x)
    torch.testing.assert_close(y, expected)  # evaluation mode, batches joined in order
    assert not G.training
    torch.testing.assert_close(rec.translate(G, x, batch_size=500), y)
    G.train()
    with torch.no_grad():
        assert not torch.allclose(G(x), expected, atol=1e-3)  # the modes do differ
    with pytest.raises(ValueError, match="x must be a batch of images"):
        rec.translate(G, x[0])


def test_digit_classifier_reads_held_out_digits_of_both_domains():
    from gencourse.recipes import translation as rec

    net = rec.digit_classifier()
    assert net is rec.digit_classifier() and not net.training
    for name, (x, y) in (("uci", tdata.uci_digits("test")), ("mnist", images.mnist_tensors("test", source="embedded", verbose=False))):
        with torch.no_grad():
            accuracy = (net(x).argmax(1) == y).float().mean().item()
        assert accuracy > 0.9, (name, accuracy)
        assert net.info[f"accuracy_{name}"] == pytest.approx(accuracy, abs=1e-6)


def test_keep_luminance_gives_the_input_luminance_and_keeps_the_chroma():
    from gencourse.models.translation import KeepLuminance, luminance

    torch.manual_seed(0)
    G = gnn.TranslationUNet(1, 3, ngf=4, depth=2, norm="none")
    wrapped = KeepLuminance(G).eval()
    x = torch.rand(3, 1, 8, 8) * 0.2 - 0.1  # mid-grey: no clipping of the shifted output
    with torch.no_grad():
        rgb, out = G(x), wrapped(x)
    # the luminance by hand: BT.601 weights, in either range (they sum to 1)
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    lum_out = (out * w).sum(1, keepdim=True)
    torch.testing.assert_close(lum_out, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(luminance(out), lum_out)
    # the chrominance (B - Y, R - Y) of the network's output is left alone
    chroma = lambda t: torch.cat([t[:, 2:3] - (t * w).sum(1, keepdim=True), t[:, 0:1] - (t * w).sum(1, keepdim=True)], 1)  # noqa: E731
    torch.testing.assert_close(chroma(out), chroma(rgb), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="grey images"):
        wrapped(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="colour images"):
        luminance(torch.zeros(1, 1, 8, 8))
