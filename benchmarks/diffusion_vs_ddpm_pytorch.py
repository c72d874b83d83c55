"""Chapter 12's diffusion model against a DDPM from ``denoising-diffusion-pytorch``, at equal CPU time, on the same data.

    .venv/bin/python benchmarks/diffusion_vs_ddpm_pytorch.py [--budget SECONDS] [--n SAMPLES] [--sampling-steps S]
                                                             [--threads N] [--jobs 1|2]

Both models train for the same budget of **CPU time** (``time.process_time``) on the embedded MNIST
subset (the 4,000 training images of the ``cpu`` profile), then draw ``--n`` samples with DDIM
(:math:`\\eta = 0`) in ``--sampling-steps`` steps, scored by :func:`gencourse.metrics.evaluate` against
the 1,000 held-out images (FID and KID in the feature space of gencourse's MNIST classifier,
precision/recall, class entropy). The sampling CPU time is recorded too.

* **gencourse**: :func:`gencourse.recipes.diffusion.ddpm_settings` of the ``cpu`` profile (the
  class-conditional :class:`~gencourse.nn.DiffusionUNet` with channels 32/64 on 14×14 and 7×7 after
  folding 2×2 pixels into channels, batch 32, Adam 2e-3, ε-prediction, linear schedule, T = 1000,
  label dropout 0.2, EMA 0.995), trained by the same steps as :func:`gencourse.recipes.diffusion.train_ddpm` (:func:`gencourse.train.ddpm_train_step`)
  with the warm-up + cosine decay of the learning rate spread over the CPU budget instead of a step
  count. It is scored twice: unconditional samples (the null label, the like-for-like comparison)
  and class-conditional samples with classifier-free guidance (scale ``--w``).
* **denoising-diffusion-pytorch** (lucidrains, ``pip install denoising-diffusion-pytorch --no-deps``
  plus ``einops ema-pytorch accelerate safetensors``; never a dependency of gencourse): its ``Unet(dim=32,
  dim_mults=(1, 2, 4), channels=1)`` at 28×28 (the smallest configuration of the README's family that
  fits 28×28: ResNet blocks at 28, 14 and 7 pixels, linear attention, full attention in the middle),
  ``GaussianDiffusion(image_size=28, timesteps=1000, sampling_timesteps=S)`` with the package's
  defaults (v-prediction, sigmoid schedule), trained like its ``Trainer``: Adam 1e-4 with betas
  (0.9, 0.99), an EMA of the weights (``ema_pytorch.EMA``, decay 0.995, updated every 10 steps),
  here with batch 64 (the Trainer's default is 16; a larger batch suits its few steps) and no mixed
  precision (CPU).

PyTorch runs with ``--threads`` threads (default 1): on a machine shared with other jobs, OpenMP
threads that wait for each other spin and burn CPU time that does no work; with one thread the CPU
time measures the work alone. ``--jobs 2`` trains the two models in two processes at once (each
measures its own CPU time). Results go to ``benchmarks/results/diffusion_vs_ddpm_pytorch.json``,
``.md`` and ``.png`` (samples of each model).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import gencourse as gc
from gencourse.recipes import diffusion as dm

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "diffusion_vs_ddpm_pytorch"


def lr_factor(step: int, used: float, budget: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay over the fraction of the CPU budget used."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, used / budget)))


def train_ours(budget: float, seed: int) -> tuple[dict, object]:
    settings = dm.ddpm_settings("ddpm_bench", profile="cpu", seed=seed)
    model = dm.build_unet(settings).cpu()
    ema = gc.train.EMA(model, decay=settings["ema_decay"])
    sched = dm.make_schedule(settings)
    x, y = gc.data.mnist("train", source="embedded", value_range="pm1").tensors
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    B, steps, losses = settings["batch_size"], 0, []
    start, wall, used = time.process_time(), time.perf_counter(), 0.0
    model.train()
    while used < budget:  # the steps of dm.train_ddpm, with the learning rate decayed over the CPU budget
        idx = torch.randint(len(x), (B,), generator=g)
        out = gc.train.ddpm_train_step(
            model, opt, x[idx], sched.alpha_bar, y=y[idx], p_uncond=settings["p_uncond"], null_label=settings["n_classes"],
            lr=settings["lr"] * lr_factor(steps, used, budget, settings["warmup"]), ema=ema, generator=g,
        )
        losses.append(out["loss"])
        steps += 1
        used = time.process_time() - start
    model.eval()
    rec = {"steps": steps, "epochs": steps * B / len(x), "batch_size": B, "cpu_seconds": used,
           "wall_seconds": time.perf_counter() - wall, "loss_last100": sum(losses[-100:]) / len(losses[-100:]),
           "loss": "eps-prediction MSE (per pixel)", "parameters": sum(p.numel() for p in model.parameters())}
    return rec, (ema.module.eval(), sched)


def train_theirs(budget: float, seed: int, sampling_steps: int) -> tuple[dict, object]:
    from denoising_diffusion_pytorch import GaussianDiffusion, Unet
    from ema_pytorch import EMA

    torch.manual_seed(seed)
    unet = Unet(dim=32, dim_mults=(1, 2, 4), channels=1)
    diffusion = GaussianDiffusion(unet, image_size=28, timesteps=1000, sampling_timesteps=sampling_steps)
    ema = EMA(diffusion, beta=0.995, update_every=10)
    x = gc.data.mnist("train", source="embedded", value_range="01").tensors[0]  # the package normalises to [-1, 1]
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(diffusion.parameters(), lr=1e-4, betas=(0.9, 0.99))
    B, steps, losses = 64, 0, []
    start, wall, used = time.process_time(), time.perf_counter(), 0.0
    diffusion.train()
    while used < budget:
        idx = torch.randint(len(x), (B,), generator=g)
        loss = diffusion(x[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update()
        losses.append(loss.item())
        steps += 1
        used = time.process_time() - start
    rec = {"steps": steps, "epochs": steps * B / len(x), "batch_size": B, "cpu_seconds": used,
           "wall_seconds": time.perf_counter() - wall, "loss_last100": sum(losses[-100:]) / len(losses[-100:]),
           "loss": "v-prediction MSE (per pixel, the package's default objective)",
           "parameters": sum(p.numel() for p in unet.parameters())}
    return rec, ema.ema_model.eval()


def sample_and_score(which: str, model, n: int, sampling_steps: int, w: float, seed: int) -> list[dict]:
    rows = []
    if which == "ours":
        net, sched = model
        variants = [("gencourse, unconditional (null label)", torch.full((n,), net.null_label), 0.0),
                    (f"gencourse, class-conditional, guidance w = {w:g}", torch.arange(n) % 10, w)]
        for label, y, w_ in variants:
            t = time.process_time()
            x = dm.sample_mnist(net, sched, y, w=w_, n_steps=sampling_steps, generator=torch.Generator().manual_seed(seed))
            seconds = time.process_time() - t
            conditional = y[0].item() != net.null_label
            scores = gc.metrics.evaluate(x, value_range="pm1", n=n, labels=y if conditional else None)
            rows.append({"model": label, "sample_cpu_seconds": seconds, **scores, "_x": x[:64]})
    else:
        torch.manual_seed(seed)
        t = time.process_time()
        with torch.no_grad():
            x = torch.cat([model.sample(batch_size=min(500, n - i)) for i in range(0, n, 500)])
        seconds = time.process_time() - t
        scores = gc.metrics.evaluate(x.clamp(0, 1), value_range="01", n=n)
        rows.append({"model": "denoising-diffusion-pytorch (unconditional)", "sample_cpu_seconds": seconds, **scores,
                     "_x": x[:64] * 2 - 1})
    return rows


def worker(which: str, args, out_path: str) -> None:
    gc.config.threads(args.threads)
    gc.metrics.feature_net(verbose=False)
    print(f"{which}: training for {args.budget:.0f} CPU seconds", flush=True)
    if which == "ours":
        rec, model = train_ours(args.budget, args.seed)
    else:
        rec, model = train_theirs(args.budget, args.seed, args.sampling_steps)
    print(f"{which}: {rec['steps']} steps in {rec['cpu_seconds']:.0f} CPU s; sampling {args.n} images", flush=True)
    rows = sample_and_score(which, model, args.n, args.sampling_steps, args.w, args.seed)
    grids = {r["model"]: r.pop("_x") for r in rows}
    torch.save({"train": rec, "rows": rows, "grids": grids}, out_path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=420.0, help="CPU seconds of training per model (default 420)")
    parser.add_argument("--n", type=int, default=1000, help="samples per model for the metrics (default 1000)")
    parser.add_argument("--sampling-steps", type=int, default=20, help="DDIM steps for both models (default 20)")
    parser.add_argument("--w", type=float, default=1.0, help="guidance scale of the conditional row (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads per model (default 1)")
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2), help="train the two models in parallel processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS), help=f"folder for {NAME}.json, .md and .png")
    parser.add_argument("--parts", help="folder for each model's raw results; a model whose file is already there "
                        "is not trained again (default: a new temporary folder)")
    parser.add_argument("--only", choices=("ours", "theirs"), help=argparse.SUPPRESS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("GENCOURSE_PROFILE", "cpu")
    if args.only:
        worker(args.only, args, args.part)
        return 0

    gc.metrics.feature_net(verbose=True)  # train and cache it once, before the workers start
    tmp = Path(args.parts) if args.parts else Path(tempfile.mkdtemp(prefix="ddpm_bench_"))
    tmp.mkdir(parents=True, exist_ok=True)
    parts = {w: str(tmp / f"{w}.pt") for w in ("ours", "theirs")}
    base = [sys.executable, __file__, "--budget", str(args.budget), "--n", str(args.n), "--sampling-steps",
            str(args.sampling_steps), "--w", str(args.w), "--threads", str(args.threads), "--seed", str(args.seed)]
    cmds = {w: base + ["--only", w, "--part", parts[w]] for w in parts if not Path(parts[w]).exists()}
    if args.jobs == 2:
        procs = [subprocess.Popen(cmd) for cmd in cmds.values()]
        codes = [p.wait() for p in procs]
    else:
        codes = [subprocess.call(cmd) for cmd in cmds.values()]
    if any(codes):
        print(f"a worker failed (exit codes {codes})", file=sys.stderr)
        return 1
    results = {w: torch.load(p, weights_only=False) for w, p in parts.items()}

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["ours"]["rows"] + results["theirs"]["rows"]
    grids = {**results["ours"]["grids"], **results["theirs"]["grids"]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids), 4.6))
    for ax, (label, x) in zip(axes, grids.items()):
        gc.plotting.image_grid(x, nrow=8, ax=ax, value_range="pm1", title=label.replace(", ", ",\n", 1))
    fig.tight_layout()
    fig.savefig(out / f"{NAME}.png", dpi=80)

    train_rec = {"gencourse": results["ours"]["train"], "denoising-diffusion-pytorch": results["theirs"]["train"]}
    result = {
        "benchmark": NAME, "budget_cpu_seconds": args.budget, "n": args.n, "sampling_steps": args.sampling_steps,
        "guidance_w": args.w, "threads": args.threads, "jobs": args.jobs, "seed": args.seed,
        "data": "embedded MNIST subset: 4,000 train / 1,000 held-out images",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}",
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"), "training": train_rec, "rows": rows,
    }
    (out / f"{NAME}.json").write_text(json.dumps(result, indent=1) + "\n")

    lines = [
        "# Chapter 12's diffusion model against denoising-diffusion-pytorch at equal CPU time",
        "",
        f"`benchmarks/{NAME}.py --budget {args.budget:g} --n {args.n} --sampling-steps {args.sampling_steps} --w {args.w:g} "
        f"--threads {args.threads} --jobs {args.jobs}` ({result['date']}, {result['machine']}, torch {result['torch']}). "
        f"Each model trains for {args.budget:g} s of CPU time (`time.process_time`, {args.threads} thread(s)) on the 4,000 "
        f"training images of the embedded subset, then draws {args.n} samples with DDIM in {args.sampling_steps} steps; the "
        f"metrics are those of `gencourse.metrics.evaluate` against the 1,000 held-out images.",
        "",
        "| model | parameters | steps (epochs) | training loss (last 100) | training CPU s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, r in train_rec.items():
        lines.append(f"| {label} | {r['parameters']:,} | {r['steps']:,} ({r['epochs']:.0f}) | {r['loss_last100']:.4f} ({r['loss']}) "
                     f"| {r['cpu_seconds']:.0f} |")
    lines += ["", f"| samples | FID ↓ | KID ↓ | precision ↑ | recall ↑ | class entropy ↑ (max 2.30) | cond. acc. ↑ | "
              f"sampling CPU s per {args.n} |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        acc = f"{r['conditional_accuracy']:.2f}" if "conditional_accuracy" in r else "–"
        lines.append(f"| {r['model']} | {r['fid']:.1f} | {r['kid']:.3f} | {r['precision']:.2f} | {r['recall']:.2f} | "
                     f"{r['class_entropy']:.2f} | {acc} | {r['sample_cpu_seconds']:.0f} |")
    ours, theirs = rows[0], rows[-1]
    better = ours["fid"] < theirs["fid"] and ours["kid"] < theirs["kid"]
    lines += ["", f"Like for like (unconditional samples, same sampler and number of steps), the chapter's model is "
              f"{'better' if better else 'NOT better'}: FID {ours['fid']:.1f} against {theirs['fid']:.1f} "
              f"({theirs['fid'] / ours['fid']:.1f}× lower), KID {ours['kid']:.3f} against {theirs['kid']:.3f}, and it samples "
              f"{theirs['sample_cpu_seconds'] / max(ours['sample_cpu_seconds'], 1e-9):.1f}× faster.",
              "", f"Samples: `{NAME}.png`. The budget is CPU time, not wall-clock time: the machine may be shared with "
              "other jobs, which slows the wall clock but not the CPU time of a single-threaded run."]
    (out / f"{NAME}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
