import pytest
import torch
from torch import nn

from gencourse import train


def test_fit_records_every_step_and_cycles_the_data(capsys):
    seen = []

    def step(batch):
        seen.append(batch)
        return {"a": float(batch), "b": 2.0 * batch}

    history = train.fit(step, [1, 2, 3], steps=7, progress=False, desc="demo")
    assert seen == [1, 2, 3, 1, 2, 3, 1]
    assert history["a"] == [1, 2, 3, 1, 2, 3, 1] and len(history) == 7
    assert history.seconds > 0
    assert "demo: 7 steps" in capsys.readouterr().out


def test_fit_without_batches_passes_the_step_number():
    history = train.fit(lambda i: float(i), steps=4, progress=False)
    assert history["loss"] == [1.0, 2.0, 3.0, 4.0]


def test_fit_callback_and_errors():
    calls = []
    train.fit(lambda i: 0.0, steps=5, progress=False, callback=lambda i, h: calls.append(i), callback_every=2)
    assert calls == [2, 4, 5]
    with pytest.raises(ValueError, match="positive int"):
        train.fit(lambda i: 0.0, steps=0)
    with pytest.raises(ValueError, match="empty"):
        train.fit(lambda b: 0.0, [], steps=2, progress=False)


def test_fit_trains_a_model():
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.linspace(-1, 1, 64)[:, None]
    y = 3 * x + 1

    def step(_):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    history = train.fit(step, steps=300, progress=False)
    assert history["loss"][-1] < 1e-4 < history["loss"][0]


def test_ema_is_the_exponential_average():
    model = nn.Linear(1, 1, bias=False)
    ema = train.EMA(model, decay=0.9, warmup=False)
    values = [1.0, 2.0, 4.0, -1.0]
    expected = model.weight.item()
    for v in values:
        with torch.no_grad():
            model.weight.fill_(v)
        ema.update(model)
        expected = 0.9 * expected + 0.1 * v  # brute-force recursion
    assert ema.module.weight.item() == pytest.approx(expected, rel=1e-6)
    assert not ema.module.weight.requires_grad


def test_ema_warmup_and_buffers():
    model = nn.BatchNorm1d(2)
    ema = train.EMA(model, decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    model.running_mean.fill_(5.0)
    ema.update(model)
    assert torch.equal(ema.module.running_mean, model.running_mean)
    with pytest.raises(ValueError, match="decay"):
        train.EMA(model, decay=1.0)


def test_load_or_train_caches_by_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.delenv("GENCOURSE_RETRAIN", raising=False)
    calls = []

    def make_trainer(model, value):
        def run():
            calls.append(value)
            with torch.no_grad():
                model.weight.fill_(value)
            return train.History(losses={"loss": [1.0, 0.5]}, seconds=0.25)
        return run

    m1 = nn.Linear(2, 1)
    h1 = train.load_or_train("toy", m1, make_trainer(m1, 7.0), settings={"lr": 1})
    m2 = nn.Linear(2, 1)
    h2 = train.load_or_train("toy", m2, make_trainer(m2, 9.0), settings={"lr": 1})
    assert calls == [7.0] and torch.all(m2.weight == 7.0)  # loaded, not retrained
    assert h2.losses == h1.losses and h2.seconds == 0.25
    m3 = nn.Linear(2, 1)
    train.load_or_train("toy", m3, make_trainer(m3, 9.0), settings={"lr": 2})  # new settings: new file
    assert calls == [7.0, 9.0] and torch.all(m3.weight == 9.0)
    G, D = nn.Linear(1, 1), nn.Linear(1, 1)
    train.load_or_train("gan", {"G": G, "D": D}, lambda: train.History({"l": [0.0]}, 0.0))
    G2, D2 = nn.Linear(1, 1), nn.Linear(1, 1)
    train.load_or_train("gan", {"G": G2, "D": D2}, lambda: pytest.fail("should load"))
    assert torch.equal(G.weight, G2.weight) and torch.equal(D.bias, D2.bias)


def test_load_or_train_corrupt_checkpoint_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    model = nn.Linear(1, 1)
    path = train.checkpoint_path("broken", {})
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="delete that file"):
        train.load_or_train("broken", model, lambda: train.History())
    assert path.read_bytes() == b"not a checkpoint"
    with pytest.raises(ValueError, match="nn.Module"):
        train.load_or_train("x", object(), lambda: train.History())
    with pytest.raises(ValueError, match="without slashes"):
        train.checkpoint_path("a/b")


def test_lr_cosine():
    assert train.lr_cosine(0, 100, warmup=10) == pytest.approx(0.1)
    assert train.lr_cosine(10, 100, warmup=10) == pytest.approx(1.0)
    assert train.lr_cosine(100, 100, warmup=10) == pytest.approx(0.0)


def test_load_or_train_records_the_run_and_says_whether_it_trained(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    monkeypatch.delenv("GENCOURSE_RETRAIN", raising=False)
    model = nn.Linear(2, 1)
    h1 = train.load_or_train("timed", model, lambda: train.History({"loss": [1.0]}, seconds=229.4), settings={"a": 1})
    assert h1.run["trained"] is True and h1.run["train_seconds"] == 229.4
    assert h1.run["profile"] == "smoke" and h1.run["threads"] == torch.get_num_threads()
    assert "timed: trained in 229 s" in capsys.readouterr().out
    assert train.last_run_info("timed") == h1.run == train.last_run_info()
    h2 = train.load_or_train("timed", nn.Linear(2, 1), lambda: pytest.fail("should load"), settings={"a": 1})
    out = capsys.readouterr().out
    assert h2.run["trained"] is False and h2.run["train_seconds"] == 229.4
    assert h2.run["date"] == h1.run["date"] and h2.run["profile"] == "smoke"
    assert "timed: loaded from the cache" in out and "trained in 229 s on " in out and "under smoke" in out
    assert train.last_run_info("timed")["trained"] is False
    with pytest.raises(LookupError, match="has not run 'never'"):
        train.last_run_info("never")


@pytest.mark.parametrize("rank, saves", [(0, True), (1, False)])
def test_load_or_train_saves_only_on_rank_0(monkeypatch, tmp_path, rank, saves):
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    from gencourse import distributed

    barriers = []
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "barrier", lambda: barriers.append(rank))
    calls = []
    history = train.load_or_train("ranked", nn.Linear(1, 1), lambda: calls.append(1) or train.History(), settings={})
    assert calls == [1] and history.run["trained"] is True and history.run["processes"] == 2
    assert train.checkpoint_path("ranked", {}).exists() is saves
    assert barriers == [rank]  # every rank waits for the checkpoint before going on
    # (tests/test_distributed.py checks the same with two real processes under torchrun)


def test_checkpoint_path_without_the_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    a = train.checkpoint_path("net", {"x": 1}, per_profile=False)
    assert a == train.checkpoint_path("net", {"x": 1}, profile="cpu", per_profile=False)
    assert "smoke" not in a.name and a.name.startswith("net-")


def test_ddpm_train_step_is_algorithm_1_with_label_dropout():
    from gencourse import diffusion

    sched = diffusion.linear_schedule(50)
    x0 = torch.randn(4, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([1, 2, 3, 0])

    class Eps(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(0.5))
            self.emb = nn.Parameter(torch.zeros(5))

        def forward(self, x_t, t, y=None):
            return self.w * x_t + (0 if y is None else self.emb[y].view(-1, 1, 1, 1))

    a, b = Eps(), Eps()
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=1.0), torch.optim.SGD(b.parameters(), lr=1.0)
    ema = train.EMA(a, decay=0.5, warmup=False)
    out = train.ddpm_train_step(a, opt_a, x0, sched.alpha_bar, y=y, p_uncond=0.5, null_label=4, lr=0.1, ema=ema,
                                generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the same draws, in the same order: labels, then t and eps
    y0 = diffusion.drop_labels(y, 0.5, 4, generator=g)
    loss = diffusion.ddpm_loss(b, x0, sched.alpha_bar, y=y0, generator=g)
    loss.backward()
    for group in opt_b.param_groups:
        group["lr"] = 0.1
    opt_b.step()
    assert out["loss"] == pytest.approx(loss.item())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert opt_a.param_groups[0]["lr"] == 0.1 and ema.updates == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_run_in_background_returns_the_result_or_the_error(monkeypatch, workers):
    import math
    import os

    monkeypatch.setenv("GENCOURSE_WORKERS", workers)
    future = train.run_in_background(math.pow, 2, 10)
    assert future.result(timeout=120) == 1024.0
    if workers == "1":  # ran here and now
        assert future.done()
    failing = train.run_in_background(math.sqrt, -1.0)
    with pytest.raises(ValueError, match="math domain error"):
        failing.result(timeout=120)
    pid = train.run_in_background(os.getpid).result(timeout=120)
    assert (pid == os.getpid()) == (workers == "1")  # a separate process when there are two workers
    with pytest.raises(ValueError, match="callable"):
        train.run_in_background(3)


def test_workers_from_the_environment_and_the_profile(monkeypatch):
    from gencourse import config

    monkeypatch.setenv("GENCOURSE_WORKERS", "3")
    assert config.workers() == 3
    monkeypatch.setenv("GENCOURSE_WORKERS", "two")
    with pytest.raises(ValueError, match="GENCOURSE_WORKERS must be a positive integer, got 'two'"):
        config.workers()
    monkeypatch.delenv("GENCOURSE_WORKERS")
    assert config.workers("smoke") == 1 and config.workers("gpu") == 1
    assert 1 <= config.workers("cpu") <= 4


class _LinearD(nn.Module):
    """d(x) = w · x (+ a label-dependent offset): grad_x d = w, so R1 = ||w||^2 exactly."""

    def __init__(self, n: int):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 2.0, n))
        self.offset = nn.Parameter(torch.zeros(10))

    def forward(self, x, y=None):
        d = x.flatten(1) @ self.w
        return d if y is None else d + self.offset[y]


@pytest.mark.parametrize("every", [1, 4])
def test_r1_step_is_one_sgd_step_on_every_gamma_half_squared_norm(every):
    # R1 = ||w||^2, so every * gamma / 2 * R1 has gradient every * gamma * w: w <- w (1 - lr every gamma).
    D, lr, gamma = _LinearD(12), 0.01, 2.0
    w0 = D.w.detach().clone()
    out = train.r1_step(D, torch.optim.SGD(D.parameters(), lr), torch.randn(5, 3, 4), gamma=gamma, every=every)
    assert out["r1"] == pytest.approx(float(w0.pow(2).sum()), rel=1e-6)
    torch.testing.assert_close(D.w.detach(), w0 * (1 - lr * every * gamma))


def test_r1_step_per_sample_norm_and_conditional_labels():
    # A nonlinear D, d(x) = sum(x^3) per sample: grad = 3 x^2, R1 = mean_b sum_i 9 x_bi^4 (per sample, not per pixel).
    x = torch.randn(6, 1, 3, 3)
    scale = nn.Parameter(torch.ones(()))
    D = lambda x, y=None: scale * x.pow(3).flatten(1).sum(1) + (0.0 if y is None else y.float())  # noqa: E731
    out = train.r1_step(D, torch.optim.SGD([scale], 0.0), x, gamma=1.0, y_real=torch.arange(6))
    assert out["r1"] == pytest.approx(float((9 * x.pow(4)).flatten(1).sum(1).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="gamma"):
        train.r1_step(_LinearD(4), torch.optim.SGD([scale], 0.1), torch.randn(2, 4), gamma=0.0)
    with pytest.raises(ValueError, match="every"):
        train.r1_step(_LinearD(4), torch.optim.SGD([scale], 0.1), torch.randn(2, 4), gamma=1.0, every=0)
