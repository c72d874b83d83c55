"""Background specks in chapter 12's DDPM samples: clipping DDIM's predicted x_0, and more steps.

    GENCOURSE_DATA=<a cache with chapter 12's cpu model> .venv/bin/python benchmarks/diffusion_specks.py

Loads chapter 12's class-conditional DDPM (``gc.recipes.diffusion.ddpm_mnist()`` under ``cpu``,
trained when missing) and draws 1,000 guided samples (w = 1, 100 of each digit, the same starting
noise for every sampler) with DDIM at S = 20 and 50 steps, with and without clamping the predicted
x_0 to [-1, 1] at every step (``diffusion.ddim_step(..., clip_x0=1.0)``). For each: FID,
precision and recall against the held-out images (:func:`gencourse.metrics.evaluate`), and the
**speck fraction**: among the pixels farther than 3 pixels from any stroke pixel (value above 0.5),
the fraction brighter than 0.1 (images in [0, 1]). Real
held-out digits give the floor. Writes ``results/diffusion_specks.{json,md}``; not part of the tests.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("GENCOURSE_PROFILE", "cpu")

import torch
import torch.nn.functional as F

import gencourse as gc
from gencourse import diffusion
from gencourse.recipes import diffusion as recipe

RESULTS = Path(__file__).resolve().parent / "results"
N = 1000


def speck_fraction(x01: torch.Tensor) -> float:
    """Fraction of background pixels (farther than 3 pixels from a pixel above 0.5) that exceed 0.1."""
    near = F.max_pool2d((x01 > 0.5).float(), 7, 1, 3) > 0
    background = ~near
    return ((x01 > 0.1) & background).float().sum().item() / background.float().sum().item()


def main() -> int:
    model, sched, _ = recipe.ddpm_mnist(progress=False)
    x_real = gc.data.mnist_tensors("test", value_range="pm1")[0][:N]
    rows = [{"sampler": "real held-out digits", "specks": speck_fraction((x_real + 1) / 2)}]
    labels = torch.arange(10).repeat(N // 10)
    for S, clip in ((20, None), (20, 1.0), (50, None), (50, 1.0)):
        g, out, start = torch.Generator().manual_seed(0), [], time.process_time()
        for y in labels.split(500):
            guided = diffusion.guided_model(model, y, recipe.SAMPLER["w"], model.null_label)
            x_T = torch.randn(len(y), 1, 28, 28, generator=g)
            out.append(diffusion.ddim_sample(guided, x_T.shape, sched.alpha_bar, S, x_T=x_T, clip_x0=clip).clamp(-1, 1))
        x = torch.cat(out)
        seconds = time.process_time() - start
        r = gc.metrics.evaluate(x, value_range="pm1", n=N, memorisation=False)
        row = {"sampler": f"DDIM S = {S}" + (", x_0 clipped" if clip else ""), "cpu_seconds": round(seconds, 1),
               "fid": round(float(r["fid"]), 2), "precision": round(float(r["precision"]), 3),
               "recall": round(float(r["recall"]), 3), "specks": speck_fraction((x + 1) / 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "diffusion_specks.json").write_text(json.dumps(rows, indent=1) + "\n")
    floor = rows[0]["specks"]
    lines = ["# Specks in chapter 12's DDPM samples: x_0 clipping and steps", "",
             f"`benchmarks/diffusion_specks.py`, {time.strftime('%Y-%m-%d')}, chapter 12's `cpu` model (guidance w = "
             f"{recipe.SAMPLER['w']:g}), {N:,} samples, 100 per digit, the same starting noise for every sampler. FID, "
             "precision and recall against the held-out images; speck fraction: background pixels (farther than 3 "
             "pixels from any pixel above 0.5) brighter than 0.1. The chapter's sampler is the first row (S = 20, "
             "no clipping).", "",
             "| sampler | CPU s | FID ↓ | precision | recall | speck fraction | × real |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows[1:]:
        lines.append(f"| {r['sampler']} | {r['cpu_seconds']:.0f} | {r['fid']:.1f} | {r['precision']:.2f} | {r['recall']:.2f} | "
                     f"{r['specks']:.5f} | {r['specks'] / floor:.0f} |")
    lines.append(f"| real held-out digits | – | – | – | – | {floor:.5f} | 1 |")
    (RESULTS / "diffusion_specks.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
