"""gencourse.models.gan, the GAN steps of gencourse.train, chapter 07's recipe and chapter 06's
metrics (mode coverage, nearest neighbours): shapes, guidelines, metrics, updates."""

import math

import pytest
import torch
from torch import nn

from gencourse import config, losses, metrics, train
from gencourse.models import gan
from gencourse.recipes import dcgan

pytestmark = pytest.mark.usefixtures("one_thread")


def _layers(module):
    return [type(m) for m in module.modules() if not isinstance(m, (nn.Sequential, gan.DCGANGenerator, gan.DCGANDiscriminator,
                                                                      gan.ClassicDCGANGenerator, gan.ClassicDCGANDiscriminator))]


# ---------------------------------------------------------------------------------------- networks


def test_mlp_networks_shapes_and_output_ranges():
    G = gan.MLPGenerator(8, (1, 28, 28), hidden=(16,))
    x = G(torch.randn(5, 8) * 100)
    assert x.shape == (5, 1, 28, 28) and x.abs().max() <= 1
    G2 = gan.MLPGenerator(2, (2,), hidden=(16,), tanh=False)
    assert G2(torch.randn(4, 2)).shape == (4, 2) and not isinstance(G2.net[-1], nn.Tanh)
    D = gan.MLPDiscriminator((1, 28, 28), hidden=(16,))
    assert D(x).shape == (5,)
    assert any(isinstance(m, nn.LeakyReLU) for m in D.modules()) and not any(isinstance(m, nn.Sigmoid) for m in D.modules())
    with pytest.raises(ValueError, match=r"z must have shape \(B, latent_dim\) = \(B, 8\)"):
        G(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 28, 28\)"):
        D(torch.randn(5, 784))


def test_dcgan_shapes_and_guidelines():
    G, D = gan.DCGANGenerator(latent_dim=16, ngf=8), gan.DCGANDiscriminator(ndf=8)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, 1, 28, 28) and x.abs().max() < 1
    assert D(x).shape == (3,)
    g_layers, d_layers = _layers(G), _layers(D)
    for layers in (g_layers, d_layers):
        assert nn.Linear not in layers  # no hidden fully connected layers
        assert not any(issubclass(t, (nn.MaxPool2d, nn.AvgPool2d)) for t in layers)  # strided convolutions, no pooling
    assert g_layers[-1] is nn.Tanh and nn.ReLU in g_layers and nn.LeakyReLU not in g_layers
    assert g_layers.count(nn.BatchNorm2d) == 3 and g_layers[-2] is nn.Conv2d  # BN everywhere but the output layer
    assert nn.ReLU not in d_layers and d_layers.count(nn.LeakyReLU) == 2
    assert d_layers[:2] == [nn.Conv2d, nn.LeakyReLU]  # no BN on D's input layer
    # the sides grow 1 -> 7 -> 14 -> 28 in G and shrink 28 -> 14 -> 7 -> 1 in D
    h, sides = torch.randn(2, 16)[:, :, None, None], []
    for block in G.net:
        h = block(h)
        sides.append(h.shape[-1])
    assert sides == [7, 14, 28, 28, 28]


def test_classic_dcgan_is_the_64x64_recipe():
    G, D = gan.ClassicDCGANGenerator(ngf=4), gan.ClassicDCGANDiscriminator(ndf=4)
    assert G.latent_dim == 100
    x = G(torch.randn(2, 100))
    assert x.shape == (2, 1, 64, 64) and D(x).shape == (2,)
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [32, 16, 8, 4, 1] and all(c.kernel_size == (4, 4) for c in convs)
    full = gan.ClassicDCGANGenerator()
    assert [m.out_channels for m in full.modules() if isinstance(m, nn.ConvTranspose2d)] == [512, 256, 128, 64, 1]


def test_dcgan_init():
    torch.manual_seed(0)
    G = gan.dcgan_init_(gan.ClassicDCGANGenerator(ngf=16))
    w = G.net[1][0].weight
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    bn = G.net[1][1]
    assert abs(bn.weight.mean().item() - 1) < 0.01 and bn.bias.abs().max() == 0
    with pytest.raises(ValueError, match="nn.Module"):
        gan.dcgan_init_("G")


def test_generate_is_reproducible_batched_and_restores_the_mode():
    G = gan.DCGANGenerator(latent_dim=8, ngf=4)
    G.train()
    a = gan.generate(G, 10, generator=torch.Generator().manual_seed(3), batch_size=3)
    b = gan.generate(G, 10, generator=torch.Generator().manual_seed(3), batch_size=10)
    torch.testing.assert_close(a, b)
    assert G.training and not a.requires_grad
    z = gan.sample_z(10, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(gan.generate(G, z=z), a)
    with pytest.raises(ValueError, match="give n"):
        gan.generate(G)


# ---------------------------------------------------------------------------------------- metrics


def test_mode_coverage_counts_against_a_loop():
    means = torch.tensor([[math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)] for k in range(8)]) * 2
    g = torch.Generator().manual_seed(0)
    x = torch.cat([means[[0, 0, 3, 5]].repeat(50, 1) + 0.05 * torch.randn(200, 2, generator=g),
                   torch.zeros(40, 2)])  # 40 samples at the centre: far from every mode
    out = metrics.mode_coverage(x, means, std=0.05)
    counts = [0] * 8
    good = 0
    for point in x:
        d = [(point - m).norm().item() for m in means]
        k = min(range(8), key=d.__getitem__)
        if d[k] <= 3 * 0.05:
            counts[k] += 1
            good += 1
    assert out["counts"].tolist() == counts and out["high_quality"] == pytest.approx(good / len(x))
    assert out["modes"] == 3 and out["n_modes"] == 8
    pi = torch.tensor(counts, dtype=torch.float64) / good
    kl = sum(p * math.log(p * 8) for p in pi.tolist() if p > 0)
    assert out["kl_uniform"] == pytest.approx(kl)
    assert metrics.mode_coverage(x, means, std=0.05, min_count=200)["modes"] == 0
    with pytest.raises(ValueError, match="means must have shape"):
        metrics.mode_coverage(x, means[:, :1], std=0.05)


def test_mode_coverage_of_the_data_itself():
    from gencourse import data

    p = data.toy("ring")
    out = metrics.mode_coverage(p.sample(4000, torch.Generator().manual_seed(0)), p.means, 0.05)
    assert out["modes"] == 8 and out["high_quality"] > 0.98 and out["kl_uniform"] < 0.01


def test_nearest_neighbours_against_brute_force():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(50, 1, 4, 4, generator=g)
    x = torch.cat([data[[7, 3]], torch.randn(3, 1, 4, 4, generator=g)])
    dist, idx = metrics.nearest_neighbours(x, data, k=2, chunk=2)
    assert dist.dtype == torch.float64 and idx.shape == (5, 2)
    for i in range(len(x)):
        d = torch.stack([(x[i].double() - data[j].double()).norm() for j in range(len(data))])
        v, j = d.sort()
        assert idx[i].tolist() == j[:2].tolist()
        torch.testing.assert_close(dist[i], v[:2], atol=1e-12, rtol=1e-12)
    assert idx[0, 0] == 7 and dist[0, 0] == 0.0 and idx[1, 0] == 3 and dist[1, 0] == 0.0  # exact duplicates


@pytest.mark.parametrize("threads", [1, 2])
def test_nearest_neighbours_of_duplicates_are_exactly_zero_on_any_path(threads):
    # large enough for torch.cdist's matrix-product path, in float32 inputs, 1 or 2 threads
    g = torch.Generator().manual_seed(1)
    data = torch.rand(300, 1, 28, 28, generator=g)
    x = torch.cat([data[torch.arange(0, 300, 7)], torch.rand(20, 1, 28, 28, generator=g)])
    with config.threads(threads):
        dist, idx = metrics.nearest_neighbours(x, data, k=3, chunk=16)
        again = metrics.nearest_neighbours(x, data, k=3, chunk=1000)
    n_dup = len(range(0, 300, 7))
    assert (dist[:n_dup, 0] == 0.0).all() and idx[:n_dup, 0].tolist() == list(range(0, 300, 7))
    assert (dist[n_dup:, 0] > 0).all() and (dist[:, 1:] >= dist[:, :-1]).all()
    assert torch.equal(dist, again[0]) and torch.equal(idx, again[1])  # the chunk size changes nothing
    assert torch.equal(metrics.nearest_distances(x, data), dist[:, 0])


# ---------------------------------------------------------------------------------------- latent space


def test_slerp_follows_the_great_circle():
    z0, z1 = torch.tensor([2.0, 0.0, 0.0]), torch.tensor([0.0, 2.0, 0.0])
    path = gan.slerp(z0, z1, 5)
    t = torch.linspace(0, 1, 5)
    expected = 2 * torch.stack([torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2), torch.zeros(5)], dim=1)
    torch.testing.assert_close(path, expected)
    torch.testing.assert_close(gan.slerp(z0, 3 * z0, 3)[1], 2 * z0)  # parallel codes: linear
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        gan.slerp(z0, z1, 1)


def test_ink_and_slant_on_drawn_images():
    img = torch.zeros(2, 1, 28, 28)
    for r in range(4, 24):
        img[0, 0, r, 27 - r] = 1.0  # leans right: one column to the right per row upwards
        img[1, 0, r, r] = 1.0  # leans left
    s = gan.slant(img, value_range="01")
    torch.testing.assert_close(s, torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(gan.ink(img, value_range="01"), torch.full((2,), 20 / 784))
    torch.testing.assert_close(gan.ink(2 * img - 1), gan.ink(img, value_range="01"))
    with pytest.raises(ValueError, match="value_range"):
        gan.ink(img, value_range="0255")


def test_attribute_direction_is_the_difference_of_group_means():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(100, 4, generator=g)
    score = z[:, 0] + 0.1 * torch.randn(100, generator=g)
    v = gan.attribute_direction(z, score, q=0.2)
    order = score.argsort()
    torch.testing.assert_close(v, z[order[-20:]].mean(0) - z[order[:20]].mean(0))
    assert v[0] > 2 and v[1:].abs().max() < 0.8
    with pytest.raises(ValueError, match="score must have shape"):
        gan.attribute_direction(z, score[:5])


# ---------------------------------------------------------------------------------------- steps


def _pair(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(2, 3), nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))


def test_d_step_moves_d_only_and_matches_the_loss_gradient():
    G, D = _pair()
    x_real, z = torch.randn(6, 3), torch.randn(5, 2)
    D_ref = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
    D_ref.load_state_dict(D.state_dict())
    G_before = [p.clone() for p in G.parameters()]
    loss_ref = losses.d_loss_bce(D_ref(x_real), D_ref(G(z).detach()))
    grads = torch.autograd.grad(loss_ref, list(D_ref.parameters()))
    out = train.d_step(G, D, torch.optim.SGD(D.parameters(), lr=0.1), x_real, z)
    assert out["loss_D"] == pytest.approx(loss_ref.item())
    for p, p_ref, grad in zip(D.parameters(), D_ref.parameters(), grads):
        torch.testing.assert_close(p, p_ref - 0.1 * grad)
    assert all(torch.equal(a, b) for a, b in zip(G.parameters(), G_before))
    assert all(p.grad is None for p in G.parameters())  # the fake batch was detached
    assert 0 < out["D_real"] < 1 and 0 < out["D_fake"] < 1


def test_g_step_moves_g_only_and_matches_the_loss_gradient():
    G, D = _pair()
    z = torch.randn(5, 2)
    G_ref = nn.Linear(2, 3)
    G_ref.load_state_dict(G.state_dict())
    D_before = [p.clone() for p in D.parameters()]
    grads = torch.autograd.grad(losses.g_loss_non_saturating(D(G_ref(z))), list(G_ref.parameters()))
    out = train.g_step(G, D, torch.optim.SGD(G.parameters(), lr=0.1), z)
    for p, p_ref, grad in zip(G.parameters(), G_ref.parameters(), grads):
        torch.testing.assert_close(p, p_ref - 0.1 * grad)
    assert all(torch.equal(a, b) for a, b in zip(D.parameters(), D_before))
    assert all(p.grad is None and p.requires_grad for p in D.parameters())  # frozen during the step, restored after
    assert out["loss_G"] > 0


def test_gan_steps_learn_a_1d_gaussian():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    G = nn.Linear(1, 1)
    D = nn.Sequential(nn.Linear(1, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1), nn.Flatten(0))
    opt_G, opt_D = torch.optim.Adam(G.parameters(), 5e-3, betas=(0.5, 0.999)), torch.optim.Adam(D.parameters(), 5e-3, betas=(0.5, 0.999))
    for _ in range(800):
        train.d_step(G, D, opt_D, 3 + 0.5 * torch.randn(128, 1, generator=g), torch.randn(128, 1, generator=g))
        train.g_step(G, D, opt_G, torch.randn(128, 1, generator=g))
    with torch.no_grad():
        x = G(torch.randn(5000, 1, generator=g))
    assert abs(x.mean().item() - 3) < 0.3 and abs(x.std().item() - 0.5) < 0.25


# ---------------------------------------------------------------------------------------- the recipe of chapter 07


def test_build_dcgan_leaves_the_callers_random_state_alone_and_is_seeded():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = dcgan.build_dcgan(dcgan.dcgan_settings())
    assert torch.equal(torch.rand(3), expected)  # building drew nothing from the global generator
    b = dcgan.build_dcgan(dcgan.dcgan_settings())
    c = dcgan.build_dcgan(dcgan.dcgan_settings(seed=1))
    assert all(torch.equal(p, q) for p, q in zip(a["G"].parameters(), b["G"].parameters()))
    assert not torch.equal(next(a["G"].parameters()), next(c["G"].parameters()))
    torch.manual_seed(0)  # the weights are those of the global generator seeded with settings["seed"], as before
    G0 = gan.dcgan_init_(gan.DCGANGenerator(64, 16))
    assert all(torch.equal(p, q) for p, q in zip(G0.parameters(), a["G"].parameters()))


def test_dcgan_settings_and_unknown_keys():
    s = dcgan.dcgan_settings(steps=7)
    assert s["steps"] == 7 and s["ngf"] == 16 and s["betas"] == [0.5, 0.999]
    with pytest.raises(ValueError, match="unknown DCGAN settings"):
        dcgan.dcgan_settings(learning_rate=1.0)


def test_dcgan_recipe_trains_records_and_reloads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("GENCOURSE_RETRAIN", "0")
    modules, history = dcgan.dcgan_mnist("dcgan_test", progress=False, steps=5, snapshots=3)
    record = modules["record"]
    assert record.steps.tolist() == [0, 2, 5] and len(history) == 5
    assert set(history.losses) == {"loss_D", "D_real", "D_fake", "loss_G", "r1"}
    # lazy R1: no penalty before the 4th step, then the one computed at step 4
    assert history["r1"][:3] == [0.0, 0.0, 0.0] and history["r1"][3] > 0 and history["r1"][4] == history["r1"][3]
    assert record.cpu_seconds.item() > 0 and record.images.abs().amax(dim=(1, 2, 3, 4)).min() > 0
    assert not modules["G_ema"].training
    # the EMA generator is not the raw one after training
    assert any(not torch.equal(a, b) for a, b in zip(modules["G"].parameters(), modules["G_ema"].parameters()))
    again, history2 = dcgan.dcgan_mnist("dcgan_test", progress=False, steps=5, snapshots=3)
    assert history.run["trained"] and not history2.run["trained"]
    out = capsys.readouterr().out
    assert "loaded from the cache" in out and history.run["threads"] == 1 and again["record"] is not None
    for key in ("G", "D", "G_ema", "record"):
        for a, b in zip(modules[key].state_dict().values(), again[key].state_dict().values()):
            assert torch.equal(a, b)


def test_dcgan_scoreboard_entry(tmp_path, monkeypatch):
    from gencourse import scoreboard

    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")
    entry = {e.name: e for e in scoreboard.entries()}["DCGAN"]
    assert entry.chapter == "07" and entry.value_range == "pm1"
    out = entry.factory(12, torch.Generator().manual_seed(0))
    assert out.x.shape == (12, 1, 28, 28) and out.x.abs().max() <= 1 and out.train_seconds > 0


def test_attribute_direction_within_groups_ignores_what_the_groups_differ_in():
    g = torch.Generator().manual_seed(1)
    groups = torch.arange(300) % 3
    z = torch.randn(300, 3, generator=g)
    z[:, 1] += 3.0 * groups  # the groups differ along axis 1 ...
    score = z[:, 0] + 2.0 * groups  # ... and the score is higher in later groups
    pooled = gan.attribute_direction(z, score)
    within = gan.attribute_direction(z, score, groups=groups)
    expected = torch.stack([gan.attribute_direction(z[groups == c], score[groups == c]) for c in range(3)]).mean(0)
    torch.testing.assert_close(within, expected)
    assert pooled[1] > 3 and abs(within[1]) < 0.6 and within[0] > 1.5  # the pooled direction mixes in the group axis
    with pytest.raises(ValueError, match="no group"):
        gan.attribute_direction(z[:12], score[:12], groups=torch.arange(12))


def test_dcgan_recipe_r1_is_one_r1_step_every_fourth_step(tmp_path, monkeypatch):
    # 8 steps: gc.train.r1_step at steps 4 and 8 with the settings' gamma and every, and a discriminator
    # that differs from the one trained without R1 (chapter 07's written-out loop checks the losses step by step).
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    calls = []
    step = train.r1_step
    monkeypatch.setattr(train, "r1_step", lambda *a, **k: calls.append(k) or step(*a, **k))
    with_r1 = dcgan.dcgan_mnist("dcgan_r1", progress=False, retrain=True, steps=8, snapshots=2)[0]
    without = dcgan.dcgan_mnist("dcgan_nor1", progress=False, retrain=True, steps=8, snapshots=2, r1_gamma=0.0)[0]
    assert calls == [{"gamma": 1.0, "every": 4}] * 2
    assert any(not torch.equal(a, b) for a, b in zip(with_r1["D"].parameters(), without["D"].parameters()))
