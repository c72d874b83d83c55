"""gencourse.recipes.diffusion: chapter 12's recipe trains, caches, reloads and samples what it says."""

import pytest
import torch

from gencourse import diffusion as D
from gencourse import scoreboard, train
from gencourse.recipes import diffusion as dm

pytestmark = pytest.mark.usefixtures("one_thread")


def test_settings_per_profile_and_overrides():
    cpu = dm.ddpm_settings(profile="cpu")
    assert cpu["channels"] == [32, 64] and cpu["batch_size"] == 32 and cpu["steps"] == dm.DDPM_STEPS["cpu"]
    assert cpu["T"] == 1000 and cpu["schedule"] == "linear" and cpu["n_classes"] == 10 and cpu["p_uncond"] == 0.2
    assert dm.ddpm_settings(profile="gpu")["steps"] == dm.DDPM_STEPS["gpu"]
    assert dm.ddpm_settings(profile="cpu", lr=1e-3)["lr"] == 1e-3
    with pytest.raises(ValueError, match="unknown diffusion settings"):
        dm.ddpm_settings(learning_rate=1e-3)
    assert torch.equal(dm.make_schedule(cpu).alpha_bar, D.linear_schedule(1000).alpha_bar)
    assert torch.equal(dm.make_schedule({**cpu, "schedule": "cosine"}).beta, D.cosine_schedule(1000).beta)


def test_build_unet_is_seeded():
    s = dm.ddpm_settings(profile="smoke")
    a, b, c = dm.build_unet(s), dm.build_unet(s), dm.build_unet({**s, "seed": 1})
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    assert a.null_label == 10


def test_train_is_reproducible_and_matches_algorithm_1():
    s = dm.ddpm_settings(profile="smoke", steps=2, batch_size=4)
    models = [dm.build_unet(s) for _ in range(2)]
    emas = [train.EMA(m, decay=s["ema_decay"]) for m in models]
    h1 = dm.train_ddpm(models[0], emas[0], s, progress=False)
    dm.train_ddpm(models[1], emas[1], s, progress=False)
    assert len(h1) == 2
    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])  # noqa: E731
    assert torch.allclose(flat(models[0]), flat(models[1]))
    assert not torch.equal(flat(models[0]), flat(emas[0].module))  # the EMA lags behind
    # the first loss is Algorithm 1's on the first batch, drawn in the documented order
    from gencourse import data

    x, y = data.mnist("train", value_range="pm1").tensors
    g = torch.Generator().manual_seed(s["seed"])
    idx = torch.randint(len(x), (4,), generator=g)
    y0 = D.drop_labels(y[idx], s["p_uncond"], 10, generator=g)
    fresh = dm.build_unet(s)
    assert s["prediction"] == "v" and s["time_dist"] == "logit_normal"  # the chapter's model: v, logit-normal steps
    expected = D.ddpm_loss(fresh, x[idx], dm.make_schedule(s).alpha_bar, y=y0, generator=g, prediction="v",
                           time_dist="logit_normal")
    assert abs(h1["loss"][0] - expected.item()) < 1e-5


def test_ddpm_mnist_caches_and_sample_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")
    model, sched, history = dm.ddpm_mnist("ddpm_test", steps=2, progress=False)
    again, _, history2 = dm.ddpm_mnist("ddpm_test", steps=2, progress=False)  # loaded from the cache
    assert history2.losses == history.losses and list((tmp_path / "checkpoints").glob("ddpm_test-smoke-*.pt"))
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)
    labels = torch.tensor([0, 1, 2, 10])
    x = dm.sample_mnist(model, sched, labels, w=2.0, n_steps=3, generator=torch.Generator().manual_seed(0), batch_size=3)
    y = dm.sample_mnist(model, sched, labels, w=2.0, n_steps=3, generator=torch.Generator().manual_seed(0), batch_size=3)
    assert x.shape == (4, 1, 28, 28) and x.min() >= -1 and x.max() <= 1 and torch.equal(x, y)
    # the same as the library's sampler on the same starting noise
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(3, 1, 28, 28, generator=g)
    ref = D.ddim_sample(D.guided_model(model, labels[:3], 2.0, 10), x_T.shape, sched.alpha_bar, 3, x_T=x_T).clamp(-1, 1)
    assert torch.allclose(x[:3], ref, atol=1e-5)
    # and with the predicted x_0 clamped, as the chapter's SAMPLER does
    xc = dm.sample_mnist(model, sched, labels[:3], w=2.0, n_steps=3, generator=torch.Generator().manual_seed(0), clip_x0=1.0)
    refc = D.ddim_sample(D.guided_model(model, labels[:3], 2.0, 10), x_T.shape, sched.alpha_bar, 3, x_T=x_T, clip_x0=1.0)
    assert torch.allclose(xc, refc.clamp(-1, 1), atol=1e-5) and dm.SAMPLER["clip_x0"] == 1.0


def test_scoreboard_entry_is_registered():
    names = {e.name: e for e in scoreboard.entries()}
    assert "DDPM + CFG" in names and names["DDPM + CFG"].chapter == "12" and names["DDPM + CFG"].value_range == "pm1"


def test_prediction_setting_is_v_by_default_and_checked():
    assert dm.ddpm_settings(profile="cpu")["prediction"] == "v"
    assert dm.ddpm_settings(profile="cpu", prediction="eps")["prediction"] == "eps"
    with pytest.raises(ValueError, match="prediction must be 'eps' or 'v'"):
        dm.ddpm_settings(prediction="x0")
    from gencourse.recipes import flow

    assert "prediction" not in flow.flow_settings(profile="cpu")  # the flow's target is its velocity


def test_v_prediction_recipe_trains_v_and_returns_an_eps_network(tmp_path, monkeypatch):
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")
    seen = []
    real_loss = D.ddpm_loss
    monkeypatch.setattr(D, "ddpm_loss", lambda *a, **k: seen.append(k.get("prediction")) or real_loss(*a, **k))
    model, sched, history = dm.ddpm_mnist("ddpm_v_test", progress=False, steps=2)
    assert seen == ["v", "v"] and isinstance(model, D.EpsFromV) and model.null_label == 10
    eps_model, _, _ = dm.ddpm_mnist("ddpm_eps_test", progress=False, prediction="eps", steps=2)
    assert seen[2:] == ["eps", "eps"] and not isinstance(eps_model, D.EpsFromV)
    x = dm.sample_mnist(model, sched, torch.tensor([0, 1]), w=1.0, n_steps=2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 28, 28) and x.abs().max() <= 1
