"""Data-parallel training (gencourse.distributed, the recipes under DDP) and the command line
``python -m gencourse.train``, on two CPU processes with the gloo backend.

Each two-process run is compared with one process trained on the same global batches: the
parameters must be identical on both ranks after every step, and equal the single process's to
float tolerance (far below what one step moves them)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gencourse import distributed

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int, data: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), GENCOURSE_PROFILE="smoke", GENCOURSE_DATA=data)
    torch.set_num_threads(1)
    distributed.setup()


def _flat(module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


def _recipe_worker(rank: int, world: int, port: int, out: str, recipe: str) -> None:
    """Train a smoke recipe for a few steps, saving the flat parameters after every step."""
    _join(rank, world, port, os.path.join(out, "data"))
    from gencourse import train
    from gencourse.recipes import diffusion, flow

    snaps, holder, real_fit = [], {}, train.fit

    def fit(step, *args, **kwargs):
        def recorded(batch):
            values = step(batch)
            snaps.append(_flat(holder["model"]))
            return values
        history = real_fit(recorded, *args, **kwargs)
        snaps.append(torch.tensor(history["loss"]))
        return history

    train.fit = fit
    if recipe == "ddpm":
        s = diffusion.ddpm_settings(steps=4, batch_size=8)
        model = holder["model"] = diffusion.build_unet(s)
        ema = train.EMA(model, decay=s["ema_decay"])
        diffusion.train_ddpm(model, ema, s, progress=False)
        snaps.append(_flat(ema.module))
    elif recipe == "flow":
        s = flow.flow_settings(steps=4, batch_size=8)
        model = holder["model"] = flow.build_flow_unet(s)
        ema = train.EMA(model, decay=s["ema_decay"])
        x, y = flow.data.mnist("train", value_range="pm1").tensors
        flow.train_flow(model, ema, s, x, y, progress=False)
        snaps.append(_flat(ema.module))
    torch.save(snaps, os.path.join(out, f"{recipe}-{world}-{rank}.pt"))
    distributed.cleanup()


def _gan_worker(rank: int, world: int, port: int, out: str) -> None:
    """WGAN-GP steps (critic with the gradient penalty's double backward, then G) on a 2-D toy:
    G and critic in DDP, each rank on its slice of the same global batches."""
    _join(rank, world, port, os.path.join(out, "data"))
    from torch import nn

    from gencourse import train

    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    C = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1), nn.Flatten(0))
    ema = train.EMA(G, 0.9)
    G_, C_ = distributed.wrap(G), distributed.wrap(C)
    opt_G, opt_C = torch.optim.Adam(G.parameters(), 1e-2), torch.optim.Adam(C.parameters(), 1e-2)
    g = torch.Generator().manual_seed(1)
    b = distributed.local_batch(16)
    snaps = []
    for _ in range(3):
        with distributed.sharded_draws():
            for _ in range(2):
                x = distributed.randn((b, 2), generator=g) * 0.5 + 1.0
                z = distributed.randn((b, 2), generator=g)
                train.critic_step(G_, C_, opt_C, x, z, lambda_gp=10.0, generator=g)
            train.wgan_g_step(G_, C_, opt_G, distributed.randn((b, 2), generator=g))
            ema.update(G_)
        snaps.append(torch.cat([_flat(G), _flat(C), _flat(ema.module)]))
    torch.save(snaps, os.path.join(out, f"gan-{world}-{rank}.pt"))
    distributed.cleanup()


def _every_recipe_worker(rank: int, world: int, port: int, out: str) -> None:
    """Every recipe family for two steps (StyleGAN four, to reach its lazy R1) under DDP, smoke settings:
    the final parameters per recipe."""
    _join(rank, world, port, os.path.join(out, "data"))
    from gencourse import cli

    recipes = cli._recipes()
    final = {}
    for name in ("cvae", "gated", "dcgan", "wgan", "acgan", "infogan", "cgan", "pix2pix", "cyclegan", "stylegan", "latent_ae"):
        result = recipes[name].run(True, False, steps=4 if name == "stylegan" else 2)  # lazy R1 at step 4
        modules = result[0] if isinstance(result, tuple) else result
        modules = modules if isinstance(modules, dict) else {"model": modules}
        final[name] = torch.cat([_flat(m) for k, m in sorted(modules.items())
                                 if isinstance(m, torch.nn.Module) and k != "record" and any(True for _ in m.parameters())])
    torch.save(final, os.path.join(out, f"every-{world}-{rank}.pt"))
    distributed.cleanup()


def _spawn(fn, world: int, *args) -> None:
    mp.start_processes(fn, args=(world, _free_port(), *args), nprocs=world, start_method="spawn")


def _compare(out: Path, name: str, atol: float) -> tuple[float, float]:
    one = torch.load(out / f"{name}-1-0.pt")
    r0, r1 = torch.load(out / f"{name}-2-0.pt"), torch.load(out / f"{name}-2-1.pt")
    assert len(one) == len(r0) == len(r1) and len(one) >= 3
    worst, moved = 0.0, 0.0
    for i, (a, b0, b1) in enumerate(zip(one, r0, r1)):
        assert torch.equal(b0, b1), f"{name}: the two ranks differ after step {i + 1}"
        worst = max(worst, (a - b0).abs().max().item())
        if 0 < i < len(one) - 2 and a.shape == one[i - 1].shape:
            moved = max(moved, (a - one[i - 1]).abs().max().item())
        torch.testing.assert_close(b0, a, atol=atol, rtol=0, msg=f"{name}: two processes differ from one after step {i + 1}")
    return worst, moved


@pytest.mark.parametrize("recipe", ["ddpm", "flow"])
def test_recipe_on_two_processes_equals_one_process(tmp_path, recipe):
    """Chapter 12's DDPM and chapter 13's flow (recipe code unchanged: batch indices, label dropout,
    t and noise drawn at the global batch and sharded; DDP averages the gradients; EMA of the
    unwrapped module; the recorded losses averaged over the ranks) on 2 ranks against 1."""
    _spawn(_recipe_worker, 1, str(tmp_path), recipe)
    _spawn(_recipe_worker, 2, str(tmp_path), recipe)
    worst, moved = _compare(tmp_path, recipe, atol=1e-5)
    assert moved > 100 * worst, (moved, worst)  # the comparison is not vacuous: steps move far more


def test_wgan_gp_steps_on_two_processes_equal_one_process(tmp_path):
    """The gradient penalty's create_graph double backward under DDP: per-sample norms inside each
    process, the final backward through DDP's all-reduce; the EMA of the unwrapped generator."""
    _spawn(_gan_worker, 1, str(tmp_path))
    _spawn(_gan_worker, 2, str(tmp_path))
    worst, _ = _compare(tmp_path, "gan", atol=1e-5)
    first = torch.load(tmp_path / "gan-1-0.pt")
    assert (first[-1] - first[0]).abs().max() > 1e-3 > worst


def test_every_recipe_trains_under_ddp_with_identical_ranks(tmp_path):
    """VAE, PixelCNN, DCGAN (batch norm), WGAN-GP, ACGAN, InfoGAN, cGAN, pix2pix, CycleGAN (two
    generators in one optimiser), StyleGAN (R1 through DDP, mapping and synthesis in one wrapped call)
    and the latent autoencoder: two steps each on 2 ranks, and the ranks end with the same weights."""
    _spawn(_every_recipe_worker, 2, str(tmp_path))
    r0, r1 = torch.load(tmp_path / "every-2-0.pt"), torch.load(tmp_path / "every-2-1.pt")
    assert sorted(r0) == sorted(r1) and len(r0) == 11
    for name in r0:
        assert torch.equal(r0[name], r1[name]), f"{name}: the ranks' weights differ after training"
    assert len(list((tmp_path / "data" / "checkpoints").glob("*.pt"))) >= 11  # rank 0 wrote each once


def test_sharded_draws_are_the_global_batch_slices(monkeypatch):
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    full = torch.randn(6, 3, generator=g1)
    full_t = torch.randint(1, 10, (6,), generator=g1)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    with distributed.sharded_draws():
        part = distributed.randn((3, 3), generator=g2)
        part_t = distributed.randint(1, 10, (3,), generator=g2)
        assert distributed.randn((), generator=torch.Generator()).shape == ()  # a scalar is never sharded
    assert torch.equal(part, full[3:]) and torch.equal(part_t, full_t[3:])
    assert distributed.randn((3, 3), generator=torch.Generator().manual_seed(5)).shape == (3, 3)  # outside: plain
    assert torch.equal(distributed.shard(torch.arange(8)), torch.arange(4, 8))


def test_batch_not_divisible_by_the_processes(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    assert distributed.local_batch(96) == 32
    with pytest.raises(ValueError, match=r"global batch size 64 is not divisible by the 3 processes.*\[1, 2, 4, 8, 16, 32, 64\]"):
        distributed.local_batch(64)


def test_single_process_is_unchanged():
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    m = torch.nn.Linear(2, 2)
    assert distributed.wrap(m) is m and distributed.unwrap(m) is m
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    with distributed.sharded_draws():
        assert torch.equal(distributed.randn((4, 2), generator=g1), torch.randn(4, 2, generator=g2))
    assert distributed.mean_over_ranks({"loss": 1.5}) == {"loss": 1.5}


def _cli(args, env, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "gencourse.train", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def cli_env(tmp_path):
    env = {**os.environ, "GENCOURSE_PROFILE": "smoke", "OMP_NUM_THREADS": "1", "GENCOURSE_DATA": str(tmp_path / "elsewhere")}
    env.pop("GENCOURSE_RETRAIN", None)
    return env


def test_cli_trains_and_the_chapter_loader_finds_it(tmp_path, cli_env, monkeypatch):
    out = tmp_path / "run"
    r = _cli(["vae", "--out", str(out), "--quiet"], cli_env, tmp_path)
    assert r.returncode == 0, r.stderr
    files = list((out / "checkpoints").glob("vae-smoke-*.pt"))
    assert len(files) == 1 and f"checkpoint: {files[0]}" in r.stdout
    assert 'gc.recipes.vae.vae_mnist("vae")' in r.stdout
    monkeypatch.setenv("GENCOURSE_DATA", str(out))
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")
    import gencourse as gc

    _, history = gc.recipes.vae.vae_mnist("vae", progress=False)
    assert history.run["trained"] is False and history.run["path"] == str(files[0])


def test_cli_under_torchrun_writes_one_checkpoint(tmp_path, cli_env, monkeypatch):
    """torchrun --nproc_per_node=2 -m gencourse.train: both ranks train, rank 0 alone writes and prints,
    the run record says 2 processes, and the chapter's loader finds the file."""
    out = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node=2", f"--master_port={_free_port()}", "-m", "gencourse.train", "ddpm",
           "--out", str(out), "--quiet", "--set", "batch_size=8", "--steps", "3"]
    r = subprocess.run(cmd, env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    files = list((out / "checkpoints").glob("*.pt"))
    assert len(files) == 1 and not list((out / "checkpoints").glob("*.tmp*"))
    assert r.stdout.count("checkpoint: ") == 1 and "on 2 processes" in r.stdout
    state = torch.load(files[0], weights_only=True)
    assert state["run"]["processes"] == 2 and not any(k.startswith("module.") for k in state["modules"]["model"])
    assert 'gc.recipes.diffusion.ddpm_mnist(batch_size=8, steps=3)' in r.stdout
    monkeypatch.setenv("GENCOURSE_DATA", str(out))
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")
    import gencourse as gc

    gc.recipes.diffusion.ddpm_mnist(batch_size=8, steps=3, progress=False)
    assert gc.train.last_run_info("ddpm_cfg")["trained"] is False


def test_cli_list_and_errors(tmp_path, monkeypatch, capsys):
    from gencourse import cli

    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")
    monkeypatch.setenv("GENCOURSE_DATA", str(tmp_path))
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("vae", "dcgan", "wgan", "ddpm", "flow", "latent_flow", "stylegan", "cgan", "pix2pix", "cyclegan", "gated"):
        assert f"  {name} " in out
    first = next(line for line in out.splitlines() if line.strip().startswith("{"))
    assert "steps" in json.loads(first)
    for argv, message in [
        (["nope"], "unknown recipe 'nope'; known: vae, vae2d, cvae"),
        (["dcgan", "--set", "foo=1"], "unknown DCGAN settings ['foo']"),
        (["dcgan", "--set", "lr_G"], "--set takes KEY=VALUE, got 'lr_G'"),
        (["dcgan", "--steps", "0"], "--steps must be a positive number of steps, got 0"),
        ([], "name a recipe"),
    ]:
        assert cli.main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert cli._value("[16, 32]") == [16, 32] and cli._value("0.5") == 0.5 and cli._value("adain") == "adain"
    assert not (tmp_path / "checkpoints").exists()  # nothing trained
