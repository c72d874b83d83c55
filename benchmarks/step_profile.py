"""Where a training step's time goes on a CPU, and what the CPU options buy, for three of the
course's recipes under ``cpu``: chapter 04's VAE, chapter 07's DCGAN and chapter 12's diffusion U-Net.

    .venv/bin/python benchmarks/step_profile.py [--steps 90] [--threads 1] [--compile] [--table]

Each step is written out here from the recipe's step function (same networks, batch sizes and
optimisers as the recipe) with a clock around each phase: ``data`` (indexing the batch, drawing
the noise), ``forward`` (up to the loss), ``backward``, ``optimiser`` (``zero_grad`` and ``step``)
and ``ema`` (the average of the weights, where the recipe keeps one). One thread, as the recipes
train; medians of ``--steps`` steps after 10 warm-up steps, taken in three rounds in which the
variants take turns. ``torch.profiler`` lists the operators
that take the most time in the baseline.

Variants, each changing one thing: Adam's ``foreach`` and ``fused`` implementations (on a CPU
PyTorch's default is the per-parameter loop), the EMA with one ``torch._foreach_lerp_`` call,
``channels_last`` memory format, bfloat16 autocast, and (``--compile``) ``torch.compile`` of the
network. Results: ``benchmarks/results/step_profile.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("GENCOURSE_PROFILE", "cpu")

import torch

import gencourse as gc
from gencourse import diffusion, losses
from gencourse.recipes import dcgan as dcgan_recipe
from gencourse.recipes import diffusion as ddpm_recipe
from gencourse.recipes import vae as vae_recipe

RESULTS = Path(__file__).resolve().parent / "results"
PHASES = ("data", "forward", "backward", "optimiser", "ema")


class Clock:
    def __init__(self):
        self.times = {p: [] for p in PHASES}
        self.t = None

    def start(self):
        self.t = time.perf_counter()

    def lap(self, phase):
        now = time.perf_counter()
        self.times[phase].append(now - self.t)
        self.t = now


def _adam(params, variant, **kw):
    if variant == "foreach":
        kw["foreach"] = True
    elif variant == "fused":
        kw["fused"] = True
    return torch.optim.Adam(params, **kw)


def _ema_update(ema_model, model, decay, variant):
    with torch.no_grad():
        if variant == "ema_foreach":
            torch._foreach_lerp_(list(ema_model.parameters()), [p.detach() for p in model.parameters()], 1 - decay)
        else:
            for pe, p in zip(ema_model.parameters(), model.parameters()):
                pe.lerp_(p.detach(), 1 - decay)


def _autocast(variant):
    return torch.autocast("cpu", dtype=torch.bfloat16) if variant == "bf16" else contextlib.nullcontext()


def _memory(variant):
    return torch.channels_last if variant == "channels_last" else torch.contiguous_format


def vae_task(variant):
    s = vae_recipe.vae_settings("vae")
    model = vae_recipe.build_vae(s).to(memory_format=_memory(variant))
    net = torch.compile(model) if variant == "compile" else model
    opt = _adam(model.parameters(), variant, lr=s["lr"])
    x = gc.data.mnist("train").tensors[0]
    g = torch.Generator().manual_seed(0)

    def step(clock):
        clock.start()
        xb = x[torch.randint(0, len(x), (s["batch_size"],), generator=g)].contiguous(memory_format=_memory(variant))
        clock.lap("data")
        with _autocast(variant):
            out = net(xb, generator=g)
            rec = -losses.bernoulli_log_likelihood(xb, out.logits.float())
            loss = (rec + losses.kl_gaussians(out.mu.float(), out.logvar.float())).mean()
        clock.lap("forward")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clock.lap("backward")
        opt.step()
        clock.lap("optimiser")
        clock.lap("ema")

    return step, s["batch_size"]


def dcgan_task(variant):
    s = dcgan_recipe.dcgan_settings()
    m = dcgan_recipe.build_dcgan(s)
    G, D, G_ema = (m[k].to(memory_format=_memory(variant)) for k in ("G", "D", "G_ema"))
    Gc, Dc = (torch.compile(G), torch.compile(D)) if variant == "compile" else (G, D)
    opt_G = _adam(G.parameters(), variant, lr=s["lr_G"], betas=tuple(s["betas"]))
    opt_D = _adam(D.parameters(), variant, lr=s["lr_D"], betas=tuple(s["betas"]))
    x = gc.data.mnist_tensors("train", value_range="pm1", verbose=False)[0]
    g = torch.Generator().manual_seed(0)
    B = s["batch_size"]

    def step(clock):
        clock.start()
        xb = x[torch.randint(0, len(x), (B,), generator=g)].contiguous(memory_format=_memory(variant))
        z1, z2 = torch.randn(B, s["latent_dim"], generator=g), torch.randn(B, s["latent_dim"], generator=g)
        clock.lap("data")
        with _autocast(variant):  # D step
            fake = Gc(z1).detach()
            loss_D = losses.discriminator_loss(Dc(xb).float(), Dc(fake).float(), s["kind"])
        clock.lap("forward")
        opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        clock.lap("backward")
        opt_D.step()
        clock.lap("optimiser")
        D.requires_grad_(False)  # G step, D frozen as train.g_step does
        with _autocast(variant):
            loss_G = losses.generator_loss(Dc(Gc(z2)).float(), s["kind"])
        clock.times["forward"][-1] += time.perf_counter() - clock.t
        clock.start()
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        clock.times["backward"][-1] += time.perf_counter() - clock.t
        clock.start()
        opt_G.step()
        D.requires_grad_(True)
        clock.times["optimiser"][-1] += time.perf_counter() - clock.t
        clock.start()
        _ema_update(G_ema, G, s["ema_decay"], variant)
        clock.lap("ema")

    return step, B


def ddpm_task(variant):
    s = ddpm_recipe.ddpm_settings()
    model = ddpm_recipe.build_unet(s).to(memory_format=_memory(variant))
    ema = ddpm_recipe.build_unet(s).to(memory_format=_memory(variant)).requires_grad_(False)
    net = torch.compile(model) if variant == "compile" else model
    opt = _adam(model.parameters(), variant, lr=s["lr"])
    alpha_bar = ddpm_recipe.make_schedule(s).alpha_bar
    x, y = gc.data.mnist("train", value_range="pm1").tensors
    g = torch.Generator().manual_seed(0)
    B = s["batch_size"]

    def step(clock):
        clock.start()
        idx = torch.randint(0, len(x), (B,), generator=g)
        x0, yb = x[idx].contiguous(memory_format=_memory(variant)), diffusion.drop_labels(y[idx], s["p_uncond"], 10, generator=g)
        t = diffusion.sample_t(B, s["T"], generator=g)
        eps = torch.randn(x0.shape, generator=g)
        x_t = diffusion.q_sample(x0, t, eps, alpha_bar).contiguous(memory_format=_memory(variant))
        clock.lap("data")
        with _autocast(variant):
            loss = torch.nn.functional.mse_loss(net(x_t, t, yb).float(), eps)
        clock.lap("forward")
        opt.zero_grad()
        loss.backward()
        clock.lap("backward")
        opt.step()
        clock.lap("optimiser")
        _ema_update(ema, model, s["ema_decay"], variant)
        clock.lap("ema")

    return step, B


TASKS = {"VAE (ch. 04)": vae_task, "DCGAN (ch. 07)": dcgan_task, "DDPM (ch. 12)": ddpm_task}
VARIANTS = ["baseline", "foreach", "fused", "ema_foreach", "channels_last", "bf16"]


def measure(task, variants, steps, rounds=3):
    """Each variant built once and warmed up, then ``rounds`` rounds of ``steps // rounds`` steps,
    the variants taking turns, so that a slow spell of a shared machine hits them all alike."""
    built = {}
    for variant in variants:
        torch.manual_seed(0)
        start = time.perf_counter()
        try:
            step, batch = task(variant)
            clock = Clock()
            for _ in range(10):
                step(clock)
            built[variant] = (step, batch, Clock(), time.perf_counter() - start)
        except Exception as exc:  # a variant this CPU or PyTorch cannot run is reported, not fatal
            built[variant] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    for _ in range(rounds):
        for b in built.values():
            if not isinstance(b, str):
                for _ in range(steps // rounds):
                    b[0](b[2])
    rows = []
    for variant, b in built.items():
        if isinstance(b, str):
            rows.append({"variant": variant, "error": b})
            continue
        _, batch, clock, setup = b
        n = len(clock.times["data"])
        med = {p: statistics.median(clock.times[p]) * 1e3 for p in PHASES}
        total = statistics.median([sum(clock.times[p][i] for p in PHASES) for i in range(n)]) * 1e3
        rows.append({"variant": variant, "batch": batch, "ms_per_step": total, "phases_ms": med, "setup_s": setup})
    return rows


def top_ops(task, n=8):
    step, _ = task("baseline")
    clock = Clock()
    for _ in range(5):
        step(clock)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            step(clock)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "share": e.self_cpu_time_total / total, "calls_per_step": e.count / 10} for e in events[:n]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=90)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--table", action="store_true", help="only rewrite the .md from the recorded .json")
    args = parser.parse_args()
    if args.table:
        (RESULTS / "step_profile.md").write_text(table(json.loads((RESULTS / "step_profile.json").read_text())))
        return 0
    torch.set_num_threads(args.threads)
    variants = VARIANTS + (["compile"] if args.compile else [])
    out = {"meta": {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
                    "threads": args.threads, "steps": args.steps}, "tasks": {}}
    for name, task in TASKS.items():
        rows = measure(task, variants, args.steps)
        for row in rows:
            print(name, json.dumps(row), flush=True)
        out["tasks"][name] = {"variants": rows, "top_ops": top_ops(task)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "step_profile.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "step_profile.md").write_text(table(out))
    return 0


def table(out: dict) -> str:
    m = out["meta"]
    lines = [
        "# Where a training step's time goes on a CPU",
        "",
        f"`benchmarks/step_profile.py`, {m['date']}, {m['machine']} (PyTorch {m['torch']}, CPU capability "
        f"{m['cpu_capability']}), {m['threads']} thread(s), medians of {m['steps']} steps after 10 warm-up steps "
        "(three rounds, the variants taking turns). "
        "Milliseconds per training step and per phase; 'speed-up' is the baseline's time over the variant's.",
        "",
    ]
    for name, t in out["tasks"].items():
        base = next(r for r in t["variants"] if r["variant"] == "baseline")
        lines += [f"## {name}, batch {base['batch']}", "",
                  "| variant | ms / step | speed-up | " + " | ".join(PHASES) + " |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in PHASES) + " |"]
        for r in t["variants"]:
            if "error" in r:
                lines.append(f"| {r['variant']} | – | – | " + " | ".join("–" for _ in PHASES) + f" |\n\n{r['variant']}: {r['error']}\n")
                continue
            lines.append(f"| {r['variant']} | {r['ms_per_step']:.1f} | {base['ms_per_step'] / r['ms_per_step']:.2f}× | "
                         + " | ".join(f"{r['phases_ms'][p]:.1f}" for p in PHASES) + " |")
        lines += ["", "Operators with the most self time in the baseline (torch.profiler, 10 steps):", "",
                  "| operator | share of CPU time | calls per step |", "| --- | --- | --- |"]
        lines += [f"| `{o['op']}` | {o['share']:.0%} | {o['calls_per_step']:.0f} |" for o in t["top_ops"]]
        lines.append("")
    lines += [
        "Read: in all three steps the convolutions and matrix products, forward and backward, take almost all the time; the "
        "optimiser, the EMA and the batch take under a tenth together, so Python overhead and the optimiser's implementation "
        "are not where the time goes (a fused Adam halves the optimiser's own time, a few per cent of the step). The one "
        "consistent gain is bfloat16 autocast (1.2 to 1.6 times here); `channels_last` and `torch.compile` help one network "
        "and slow another, within a spread of about ten per cent between repeated runs. The recipes stay in float32: bfloat16 "
        "changes the numbers a chapter reproduces, its speed depends on the CPU (Colab's differ), and one DCGAN run with it "
        "(6,400 steps in the CPU time of about 5,200 in float32) is too little to adopt it.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
