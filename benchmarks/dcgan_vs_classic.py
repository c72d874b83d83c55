"""Chapter 07's DCGAN against the classic 64×64 DCGAN recipe, at equal CPU time on the same data.

    .venv/bin/python benchmarks/dcgan_vs_classic.py [--cpu-seconds 300] [--seed 0]

Both models train on the embedded MNIST subset (4,000 training images in [-1, 1]) with the
non-saturating loss (:func:`gencourse.train.d_step` / :func:`gencourse.train.g_step`, one D step per
G step), each for the same budget of CPU time (``time.process_time``), on one CPU thread so that
the budget means the same thing on a busy machine. Quality is measured at four points of the
budget with :func:`gencourse.metrics.evaluate` on 2,000 samples against the 1,000 held-out test
images: FID, precision/recall and the entropy of the predicted classes (class coverage; ln 10 =
2.303 when all ten digits are equally frequent). The 64×64 samples are downsampled to 28×28
(antialiased bilinear) for the metric.

* **chapter 07** (:func:`gencourse.recipes.dcgan.dcgan_settings`): :class:`~gencourse.models.gan.DCGANGenerator`
  / :class:`~gencourse.models.gan.DCGANDiscriminator` for native 28×28 images, ``ngf = ndf = 16``,
  batch 64, Adam 5e-4, β = (0.5, 0.999), samples from an EMA of G (decay 0.995).
* **classic** (Radford, Metz & Chintala, 2016, as published): :class:`~gencourse.models.gan.ClassicDCGANGenerator`
  / :class:`~gencourse.models.gan.ClassicDCGANDiscriminator`, 64×64 images (MNIST resized), ``ngf = ndf = 64``,
  ``latent_dim = 100``, batch 64, Adam 2e-4, β = (0.5, 0.999), N(0, 0.02²) initialisation, no EMA.

Writes ``benchmarks/results/dcgan_vs_classic.json`` and ``.md``. Not part of the test suite.

``--sweep`` instead runs the design sweep that chose the chapter's settings (widths, learning
rate, batch size, loss), every configuration for the same CPU budget, and writes
``benchmarks/results/dcgan_design_sweep.json`` and ``.md``. "plain" is the common 28×28 DCGAN
whose last layer is a stride-2 transposed convolution to the image; "extra" is the chapter's
(:class:`~gencourse.models.gan.DCGANGenerator`: one more ``up_block`` at 28×28 and a 3×3 output
convolution).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("GENCOURSE_PROFILE", "cpu")  # the embedded data and 2,000 evaluation samples

import torch
import torch.nn.functional as F

import gencourse as gc
from gencourse import metrics
from gencourse.models import gan
from gencourse.recipes import dcgan as dcgan_recipe

RESULTS = Path(__file__).resolve().parent / "results"


def to28(x: torch.Tensor) -> torch.Tensor:
    """64×64 samples to 28×28 for the metric (antialiased bilinear), in [-1, 1]."""
    if x.shape[-1] == 28:
        return x
    return F.interpolate(x, size=28, mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)


def score(G: torch.nn.Module, n: int = 2000) -> dict:
    x = to28(gan.generate(G, n, generator=torch.Generator().manual_seed(1234)))
    r = metrics.evaluate(x, value_range="pm1", n=n, clamp=True, memorisation=False)
    return {k: round(float(r[k]), 4) for k in ("fid", "kid", "precision", "recall", "class_entropy")}


def train_for_cpu_seconds(name: str, G, D, x_train, *, lr: float, batch_size: int, budget: float, ema_decay: float | None,
                          seed: int, fractions=(0.25, 0.5, 0.75, 1.0), kind: str = "non_saturating") -> dict:
    """Alternate one D step and one G step until ``budget`` CPU seconds of training; score at
    ``fractions`` of the budget (the scoring itself is not counted)."""
    opt_G = torch.optim.Adam(G.parameters(), lr, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr, betas=(0.5, 0.999))
    ema = gc.train.EMA(G, ema_decay) if ema_decay else None
    g = torch.Generator().manual_seed(seed + 1)
    marks = [budget * f for f in fractions]
    cpu, wall, step, points = 0.0, 0.0, 0, []
    while marks:
        t_cpu, t_wall = time.process_time(), time.perf_counter()
        idx = torch.randint(0, len(x_train), (batch_size,), generator=g)
        gc.train.d_step(G, D, opt_D, x_train[idx], torch.randn(batch_size, G.latent_dim, generator=g), kind=kind)
        out = gc.train.g_step(G, D, opt_G, torch.randn(batch_size, G.latent_dim, generator=g), kind=kind)
        if ema is not None:
            ema.update(G)
        step += 1
        cpu += time.process_time() - t_cpu
        wall += time.perf_counter() - t_wall
        if cpu >= marks[0]:
            marks.pop(0)
            row = {"step": step, "cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1),
                   "ms_cpu_per_step": round(1000 * cpu / step, 1), "loss_G": round(out["loss_G"], 4),
                   **score(ema.module if ema is not None else G)}
            points.append(row)
            print(f"{name}: step {step}, {cpu:.0f} s CPU ({wall:.0f} s wall): FID {row['fid']:.1f}, "
                  f"class entropy {row['class_entropy']:.3f}, precision {row['precision']:.2f}, recall {row['recall']:.2f}", flush=True)
    return {"points": points, "final": points[-1]}


SWEEP = [  # name, arch, ngf, ndf, lr, batch, kind
    ("plain ngf=ndf=32, lr 2e-4", "plain", 32, 32, 2e-4, 64, "non_saturating"),
    ("plain ngf=ndf=64, lr 2e-4", "plain", 64, 64, 2e-4, 64, "non_saturating"),
    ("plain ngf=ndf=32, lr 5e-4", "plain", 32, 32, 5e-4, 64, "non_saturating"),
    ("extra ngf=ndf=32, lr 2e-4", "extra", 32, 32, 2e-4, 64, "non_saturating"),
    ("extra ngf=16 ndf=32, lr 2e-4", "extra", 16, 32, 2e-4, 64, "non_saturating"),
    ("extra ngf=16 ndf=32, lr 5e-4", "extra", 16, 32, 5e-4, 64, "non_saturating"),
    ("extra ngf=16 ndf=32, lr 1e-3", "extra", 16, 32, 1e-3, 64, "non_saturating"),
    ("extra ngf=ndf=16, lr 5e-4 (chapter)", "extra", 16, 16, 5e-4, 64, "non_saturating"),
    ("extra ngf=8 ndf=32, lr 5e-4", "extra", 8, 32, 5e-4, 64, "non_saturating"),
    ("extra ngf=16 ndf=32, lr 5e-4, batch 32", "extra", 16, 32, 5e-4, 32, "non_saturating"),
    ("extra ngf=16 ndf=32, lr 5e-4, hinge", "extra", 16, 32, 5e-4, 64, "hinge"),
]


def plain_generator(latent_dim: int, ngf: int) -> torch.nn.Module:
    """The common 28×28 DCGAN generator: 1 -> 7 -> 14 -> 28 with the last transposed convolution to the image."""
    G = gan.DCGANGenerator(latent_dim, ngf)
    G.net = torch.nn.Sequential(gc.nn.up_block(latent_dim, 4 * ngf, 7, 1, 0), gc.nn.up_block(4 * ngf, 2 * ngf),
                                torch.nn.ConvTranspose2d(2 * ngf, 1, 4, 2, 1), torch.nn.Tanh())
    return G


def sweep(budget: float, seed: int) -> dict:
    x28 = gc.data.mnist_tensors("train", value_range="pm1", verbose=False)[0]
    rows = []
    for name, arch, ngf, ndf, lr, batch, kind in SWEEP:
        torch.manual_seed(seed)
        G = gan.dcgan_init_(plain_generator(64, ngf) if arch == "plain" else gan.DCGANGenerator(64, ngf))
        D = gan.dcgan_init_(gan.DCGANDiscriminator(ndf))
        out = train_for_cpu_seconds(name, G, D, x28, lr=lr, batch_size=batch, budget=budget, ema_decay=0.995, seed=seed, kind=kind)
        rows.append({"name": name, **out})
    return {"benchmark": "dcgan_design_sweep", "cpu_seconds_per_config": budget, "threads": 1, "seed": seed,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}", "date": time.strftime("%Y-%m-%d"),
            "configs": rows}


def sweep_markdown(out: dict) -> str:
    lines = [
        "# DCGAN design sweep at equal CPU time",
        "",
        f"{out['date']} · {out['machine']} · {out['cpu_seconds_per_config']:.0f} s of CPU time per configuration, one thread "
        f"· seed {out['seed']} · EMA 0.995 of G · FID on 2,000 samples against the 1,000 held-out images. "
        "Produced by `benchmarks/dcgan_vs_classic.py --sweep`.",
        "",
        "| configuration | steps | ms CPU / step | FID at 50 % of the budget | FID at 100 % ↓ | class entropy ↑ |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in out["configs"]:
        half, full = r["points"][len(r["points"]) // 2 - 1], r["final"]
        lines.append(f"| {r['name']} | {full['step']} | {full['ms_cpu_per_step']:.0f} | {half['fid']:.1f} | {full['fid']:.1f} | "
                     f"{full['class_entropy']:.3f} |")
    return "\n".join(lines + [""])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-seconds", type=float, default=300.0, help="CPU-time budget of each model (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", action="store_true", help="run the design sweep instead (about 11 x the budget)")
    args = parser.parse_args(argv)
    gc.config.threads(1)
    if args.sweep:
        out = sweep(args.cpu_seconds, args.seed)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "dcgan_design_sweep.json").write_text(json.dumps(out, indent=1) + "\n")
        (RESULTS / "dcgan_design_sweep.md").write_text(sweep_markdown(out))
        print(sweep_markdown(out))
        return 0
    x28 = gc.data.mnist_tensors("train", value_range="pm1", verbose=False)[0]
    x64 = F.interpolate(x28, size=64, mode="bilinear", align_corners=False).clamp(-1, 1)

    # the floor: 2,000 real training images against the same held-out images
    real = metrics.evaluate(x28[:2000], value_range="pm1", n=2000, memorisation=False)
    real = {k: round(float(real[k]), 4) for k in ("fid", "kid", "precision", "recall", "class_entropy")}
    print(f"real images: FID {real['fid']:.2f}, class entropy {real['class_entropy']:.3f}", flush=True)

    results = {}
    s = dcgan_recipe.dcgan_settings()
    torch.manual_seed(args.seed)
    G = gan.dcgan_init_(gan.DCGANGenerator(s["latent_dim"], s["ngf"]))
    D = gan.dcgan_init_(gan.DCGANDiscriminator(s["ndf"]))
    results["chapter07"] = {
        "description": f"28x28 DCGAN, ngf = ndf = {s['ngf']}, batch {s['batch_size']}, Adam {s['lr_G']:g}, EMA {s['ema_decay']}",
        "parameters_G": sum(p.numel() for p in G.parameters()), "parameters_D": sum(p.numel() for p in D.parameters()),
        **train_for_cpu_seconds("chapter 07", G, D, x28, lr=s["lr_G"], batch_size=s["batch_size"], budget=args.cpu_seconds,
                                ema_decay=s["ema_decay"], seed=args.seed),
    }
    torch.manual_seed(args.seed)
    G = gan.dcgan_init_(gan.ClassicDCGANGenerator(latent_dim=100, ngf=64))
    D = gan.dcgan_init_(gan.ClassicDCGANDiscriminator(ndf=64))
    results["classic64"] = {
        "description": "64x64 DCGAN as published, ngf = ndf = 64, z 100, batch 64, Adam 2e-4, beta1 0.5, no EMA",
        "parameters_G": sum(p.numel() for p in G.parameters()), "parameters_D": sum(p.numel() for p in D.parameters()),
        **train_for_cpu_seconds("classic 64x64", G, D, x64, lr=2e-4, batch_size=64, budget=args.cpu_seconds, ema_decay=None, seed=args.seed),
    }
    a, b = results["chapter07"]["final"], results["classic64"]["final"]
    verdict = {
        "fid_ratio_classic_over_chapter": round(b["fid"] / a["fid"], 2),
        "chapter07_fid_over_real_fid": round(a["fid"] / real["fid"], 2),
        "chapter07_meets_targets": bool(a["class_entropy"] >= 2.28 and a["fid"] <= 15 * real["fid"]),
        "chapter07_clearly_better": bool(a["fid"] < 0.5 * b["fid"] and a["class_entropy"] > b["class_entropy"]),
    }
    out = {
        "benchmark": "dcgan_vs_classic", "cpu_seconds_per_model": args.cpu_seconds, "threads": 1, "seed": args.seed,
        "data": "embedded MNIST subset, 4,000 training images; evaluation on 2,000 samples vs 1,000 held-out images",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"), "real_images": real, "models": results, "verdict": verdict,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dcgan_vs_classic.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "dcgan_vs_classic.md").write_text(markdown(out))
    print(markdown(out))
    return 0


def markdown(out: dict) -> str:
    real, models, verdict = out["real_images"], out["models"], out["verdict"]
    lines = [
        "# DCGAN at equal CPU time: chapter 07 against the classic 64×64 recipe",
        "",
        f"{out['date']} · {out['machine']} · {out['cpu_seconds_per_model']:.0f} s of CPU time per model, one thread · seed {out['seed']}",
        f"· {out['data']}. Produced by `benchmarks/dcgan_vs_classic.py`.",
        "",
        "| model | CPU s | steps | ms CPU / step | FID ↓ | precision ↑ | recall ↑ | class entropy ↑ |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, m in models.items():
        for p in m["points"]:
            lines.append(f"| {key} | {p['cpu_seconds']:.0f} | {p['step']} | {p['ms_cpu_per_step']:.0f} | {p['fid']:.1f} | "
                         f"{p['precision']:.2f} | {p['recall']:.2f} | {p['class_entropy']:.3f} |")
    lines.append(f"| real images (2,000 training images) | – | – | – | {real['fid']:.2f} | {real['precision']:.2f} | "
                 f"{real['recall']:.2f} | {real['class_entropy']:.3f} |")
    lines += [
        "",
        f"* chapter 07: {models['chapter07']['description']}; classic: {models['classic64']['description']}.",
        f"* At equal CPU time the classic recipe's FID is {verdict['fid_ratio_classic_over_chapter']}× the chapter's "
        f"(clearly better: {'yes' if verdict['chapter07_clearly_better'] else 'no'}).",
        f"* The chapter's FID is {verdict['chapter07_fid_over_real_fid']}× the FID of real images (target ≤ 15×), class entropy "
        f"{models['chapter07']['final']['class_entropy']:.3f} nats (target ≥ 2.28): targets met: "
        f"{'yes' if verdict['chapter07_meets_targets'] else 'no'}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
