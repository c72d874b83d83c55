"""Chapter 08's WGAN-GP against the most-copied public MLP WGAN-GP recipe, at equal CPU time.

    .venv/bin/python benchmarks/wgan_vs_mlp.py [--cpu-seconds 300] [--seed 0]

Both models train on the embedded MNIST subset (4,000 training images in [-1, 1]) with WGAN-GP
(:func:`gencourse.train.critic_step` with the gradient penalty, :func:`gencourse.train.wgan_g_step`),
five critic steps per generator step, λ = 10, batches of 64, each for the same budget of CPU time
(``time.process_time``) on one CPU thread, so that the budget means the same thing on a busy
machine. Quality is measured at four points of the budget with :func:`gencourse.metrics.evaluate`
on 2,000 samples against the 1,000 held-out test images: FID, precision/recall and the entropy of
the predicted classes (ln 10 = 2.303 when all ten digits are equally frequent).

* **chapter 08** (:func:`gencourse.recipes.wgan.wgan_settings`): chapter 07's DCGAN generator and
  :class:`~gencourse.models.wgan.ConvCritic` (its discriminator without batch norm), ``ngf = ndf = 16``,
  Adam 3e-3 decayed linearly to 0 over the budget, β = (0.5, 0.9), samples from an EMA of G (decay 0.995).
* **public MLP recipe**, written from its description: :class:`~gencourse.models.wgan.PublicMLPGenerator`
  (z of 100 → 128 → 256 → 512 → 1024 → 784, batch norm, LeakyReLU, Tanh) and
  :class:`~gencourse.models.wgan.PublicMLPCritic` (784 → 512 → 256 → 1), Adam 2e-4, β = (0.5, 0.999),
  no EMA.

Writes ``benchmarks/results/wgan_vs_mlp.json`` and ``.md``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("GENCOURSE_PROFILE", "cpu")  # the embedded data and 2,000 evaluation samples

import torch

import gencourse as gc
from gencourse import metrics
from gencourse.models import gan, wgan
from gencourse.recipes import wgan as wgan_recipe

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = ("fid", "kid", "precision", "recall", "class_entropy")


def score(G: torch.nn.Module, n: int = 2000) -> dict:
    x = gan.generate(G, n, generator=torch.Generator().manual_seed(1234))
    r = metrics.evaluate(x, value_range="pm1", n=n, clamp=True, memorisation=False)
    return {k: round(float(r[k]), 4) for k in KEYS}


def train_for_cpu_seconds(name, G, critic, x_train, *, lr, betas, budget, ema_decay, seed, n_critic=5,
                          lambda_gp=10.0, batch_size=64, lr_decay=None, fractions=(0.25, 0.5, 0.75, 1.0)) -> dict:
    """WGAN-GP until ``budget`` CPU seconds of training; score at ``fractions`` of the budget (the
    scoring itself is not counted). With ``lr_decay="linear"`` both learning rates fall linearly
    to 0 over the budget (the recipe's decay over its steps, in CPU time)."""
    opt_G = torch.optim.Adam(G.parameters(), lr, betas=betas)
    opt_C = torch.optim.Adam(critic.parameters(), lr, betas=betas)
    ema = gc.train.EMA(G, ema_decay) if ema_decay else None
    g = torch.Generator().manual_seed(seed + 1)
    marks = [budget * f for f in fractions]
    cpu, wall, step, points = 0.0, 0.0, 0, []
    while marks:
        t_cpu, t_wall = time.process_time(), time.perf_counter()
        for _ in range(n_critic):
            idx = torch.randint(0, len(x_train), (batch_size,), generator=g)
            out = gc.train.critic_step(G, critic, opt_C, x_train[idx], torch.randn(batch_size, G.latent_dim, generator=g),
                                       lambda_gp=lambda_gp, generator=g)
        gc.train.wgan_g_step(G, critic, opt_G, torch.randn(batch_size, G.latent_dim, generator=g))
        if ema is not None:
            ema.update(G)
        step += 1
        cpu += time.process_time() - t_cpu
        if lr_decay == "linear":
            for opt in (opt_G, opt_C):
                for group in opt.param_groups:
                    group["lr"] = lr * max(0.0, 1 - cpu / budget)
        wall += time.perf_counter() - t_wall
        if cpu >= marks[0]:
            marks.pop(0)
            row = {"step": step, "cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1),
                   "ms_cpu_per_step": round(1000 * cpu / step, 1), "w1": round(out["w1"], 4),
                   **score(ema.module if ema is not None else G)}
            points.append(row)
            print(f"{name}: step {step}, {cpu:.0f} s CPU ({wall:.0f} s wall): FID {row['fid']:.1f}, "
                  f"class entropy {row['class_entropy']:.3f}", flush=True)
    return {"points": points, "final": points[-1]}


def markdown(out: dict) -> str:
    lines = [
        "# WGAN-GP at equal CPU time: chapter 08 against the public MLP recipe",
        "",
        f"{out['date']} · {out['machine']} · {out['cpu_seconds']:.0f} s of CPU time per model, one thread · seed "
        f"{out['seed']} · embedded MNIST subset, 4,000 training images; evaluation on 2,000 samples vs 1,000 held-out "
        "images. Produced by `benchmarks/wgan_vs_mlp.py`.",
        "",
        "| model | CPU s | wall s | generator steps | ms CPU / step | FID ↓ | precision ↑ | recall ↑ | class entropy ↑ |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, r in out["models"].items():
        for p in r["points"]:
            lines.append(f"| {key} | {p['cpu_seconds']:.0f} | {p['wall_seconds']:.0f} | {p['step']} | {p['ms_cpu_per_step']:.0f} | "
                         f"{p['fid']:.1f} | {p['precision']:.2f} | {p['recall']:.2f} | {p['class_entropy']:.3f} |")
    real = out["real"]
    lines.append(f"| real images (2,000 training images) | – | – | – | – | {real['fid']:.2f} | {real['precision']:.2f} | "
                 f"{real['recall']:.2f} | {real['class_entropy']:.3f} |")
    v = out["verdict"]
    lines += [
        "",
        "* " + "; ".join(f"{k}: {r['description']}" for k, r in out["models"].items()) + ".",
        f"* At equal CPU time the MLP recipe's FID is {v['fid_ratio_mlp_over_chapter']:.2f}× the chapter's "
        f"(clearly better: {'yes' if v['chapter08_clearly_better'] else 'no'}).",
        f"* The chapter's FID is {v['chapter08_fid_over_real_fid']:.2f}× the FID of real images (target ≤ 15×), class entropy "
        f"{out['models']['chapter08']['final']['class_entropy']:.3f} nats (target ≥ 2.28).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-seconds", type=float, default=300.0, help="CPU-time budget of each model (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    gc.config.threads(1)
    x_train = gc.data.mnist_tensors("train", value_range="pm1", verbose=False)[0]
    real = metrics.evaluate(x_train[:2000], value_range="pm1", n=2000, memorisation=False)
    real = {k: round(float(real[k]), 4) for k in KEYS}
    print(f"real images: FID {real['fid']:.2f}, class entropy {real['class_entropy']:.3f}", flush=True)

    models = {}
    s = wgan_recipe.wgan_settings()
    built = wgan_recipe.build_wgan({**s, "seed": args.seed})
    G, critic = built["G"], built["critic"]
    models["chapter08"] = {
        "description": f"DCGAN generator ngf {s['ngf']} + ConvCritic ndf {s['ndf']}, Adam {s['lr']:g}"
                       f"{' decayed linearly to 0 over the budget' if s['lr_decay'] == 'linear' else ''}, "
                       f"betas {tuple(s['betas'])}, EMA {s['ema_decay']}",
        "parameters_G": sum(p.numel() for p in G.parameters()), "parameters_critic": sum(p.numel() for p in critic.parameters()),
        **train_for_cpu_seconds("chapter 08", G, critic, x_train, lr=s["lr"], betas=tuple(s["betas"]),
                                budget=args.cpu_seconds, ema_decay=s["ema_decay"], seed=args.seed,
                                lr_decay=s["lr_decay"]),
    }
    torch.manual_seed(args.seed)
    G, critic = wgan.PublicMLPGenerator(), wgan.PublicMLPCritic()
    models["mlp"] = {
        "description": "MLP generator 100-128-256-512-1024-784 with batch norm, MLP critic 784-512-256-1, "
                       "Adam 2e-4, betas (0.5, 0.999), no EMA",
        "parameters_G": sum(p.numel() for p in G.parameters()), "parameters_critic": sum(p.numel() for p in critic.parameters()),
        **train_for_cpu_seconds("public MLP", G, critic, x_train, lr=2e-4, betas=(0.5, 0.999), budget=args.cpu_seconds,
                                ema_decay=None, seed=args.seed),
    }
    a, b = models["chapter08"]["final"], models["mlp"]["final"]
    verdict = {
        "fid_ratio_mlp_over_chapter": round(b["fid"] / a["fid"], 2),
        "chapter08_fid_over_real_fid": round(a["fid"] / real["fid"], 2),
        "chapter08_clearly_better": bool(a["fid"] < 0.7 * b["fid"] and a["class_entropy"] >= b["class_entropy"] - 0.01),
    }
    out = {"benchmark": "wgan_vs_mlp", "cpu_seconds": args.cpu_seconds, "threads": 1, "seed": args.seed,
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), torch {torch.__version__}",
           "date": time.strftime("%Y-%m-%d"), "real": real, "models": models, "verdict": verdict}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "wgan_vs_mlp.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "wgan_vs_mlp.md").write_text(markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
