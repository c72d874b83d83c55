"""Background specks in chapter 12's DDPM samples: DDIM's steps, their spacing, and clipping x_0.

    GENCOURSE_DATA=<a cache with chapter 12's cpu model> .venv/bin/python benchmarks/diffusion_specks.py 20:linear 20:quadratic ...
    .venv/bin/python benchmarks/diffusion_specks.py --table

Loads chapter 12's class-conditional DDPM (``gc.recipes.diffusion.ddpm_mnist()`` under ``cpu``,
trained when missing) and, for each argument ``S:SPACING``, draws 2,000 samples (200 of each
digit, the same starting noise for every sampler) with the chapter's guided DDIM
(``gc.recipes.diffusion.SAMPLER``: guidance w, the predicted x_0 clamped to [-1, 1] at every step)
at ``S`` steps, spaced ``linear`` (:func:`gencourse.diffusion.ddim_timesteps`,
:math:`\\tau_i = \\mathrm{round}(iT/S)`, the chapter's) or ``quadratic``
(:math:`\\tau_i = \\mathrm{round}(T (i/S)^2)`, kept strictly increasing: more of the steps near the
data, the spacing Song et al. used for CIFAR-10). For each: FID, precision, recall and conditional
accuracy against the held-out images (:func:`gencourse.metrics.evaluate`), and the **speck
fraction**: among the pixels farther than 3 pixels from any stroke pixel (value above 0.5), the
fraction brighter than 0.1 (images in [0, 1]); real held-out digits give the floor. One JSON line
per sampler goes to ``results/diffusion_specks.jsonl``; ``--table`` writes
``results/diffusion_specks.md``, after the first measurement (``results/diffusion_specks.json``,
chapter 12's earlier ε-prediction model). Not part of the tests.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

os.environ.setdefault("GENCOURSE_PROFILE", "cpu")

import torch
import torch.nn.functional as F
from _jsonl import RESULTS, append, main, rows

import gencourse as gc
from gencourse import diffusion
from gencourse.recipes import diffusion as recipe

NAME = "diffusion_specks"
N = 2000


def speck_fraction(x01: torch.Tensor) -> float:
    """Fraction of background pixels (farther than 3 pixels from a pixel above 0.5) that exceed 0.1."""
    near = F.max_pool2d((x01 > 0.5).float(), 7, 1, 3) > 0
    background = ~near
    return ((x01 > 0.1) & background).float().sum().item() / background.float().sum().item()


def quadratic_timesteps(T: int, n_steps: int) -> torch.Tensor:
    r""":math:`0 = \tau_0 < \dots < \tau_S = T` with :math:`\tau_i = \mathrm{round}(T (i/S)^2)`, each at least one
    above the one before."""
    tau = [0]
    for i in range(1, n_steps + 1):
        tau.append(max(round(T * (i / n_steps) ** 2), tau[-1] + 1))
    if tau[-1] != T:
        raise ValueError(f"n_steps = {n_steps} is too many for T = {T} with quadratic spacing")
    return torch.tensor(tau)


def run(spec: str) -> None:
    S, spacing = spec.split(":")
    S = int(S)
    if spacing not in ("linear", "quadratic"):
        raise ValueError(f"spacing must be linear or quadratic, got {spacing!r}")
    model, sched, _ = recipe.ddpm_mnist(progress=False)
    labels = torch.arange(10).repeat(N // 10)
    linear = diffusion.ddim_timesteps
    diffusion.ddim_timesteps = linear if spacing == "linear" else quadratic_timesteps  # ddim_sample looks it up by name
    try:
        g, out, start = torch.Generator().manual_seed(0), [], time.process_time()
        for y in labels.split(500):
            guided = diffusion.guided_model(model, y, recipe.SAMPLER["w"], model.null_label)
            x_T = torch.randn(len(y), 1, 28, 28, generator=g)
            out.append(diffusion.ddim_sample(guided, x_T.shape, sched.alpha_bar, S, x_T=x_T,
                                             clip_x0=recipe.SAMPLER["clip_x0"]).clamp(-1, 1))
        seconds = time.process_time() - start
    finally:
        diffusion.ddim_timesteps = linear
    x = torch.cat(out)
    r = gc.metrics.evaluate(x, value_range="pm1", labels=labels, n=N, memorisation=False)
    x_real = gc.data.mnist_tensors("test", value_range="pm1")[0][:N]
    append(NAME, {"steps": S, "spacing": spacing, "w": recipe.SAMPLER["w"], "cpu_seconds": round(seconds),
                  "fid": round(float(r["fid"]), 2), "precision": round(float(r["precision"]), 3),
                  "recall": round(float(r["recall"]), 3), "cond_acc": round(float(r["conditional_accuracy"]), 3),
                  "specks": speck_fraction((x + 1) / 2), "specks_real": speck_fraction((x_real + 1) / 2),
                  "cpu": torch.backends.cpu.get_cpu_capability(), "machine": platform.machine()})


def table() -> str:
    runs = rows(NAME)
    floor = runs[0]["specks_real"]
    lines = [
        "# Specks in chapter 12's DDPM samples: DDIM's steps, their spacing, and clipping x_0", "",
        f"`benchmarks/diffusion_specks.py`, chapter 12's `cpu` model (v-prediction, logit-normal training steps, one training "
        f"seed), its guided DDIM (w = {runs[0]['w']:g}, the predicted x_0 clamped to [-1, 1]), {N:,} samples, 200 per digit, "
        "the same starting noise for every sampler; CPU seconds of sampling on one thread, with other runs sharing the two "
        "cores. FID, precision, recall and conditional accuracy against the held-out images (2,000 real images score about "
        "2.7); speck fraction: background pixels (farther than 3 pixels from any pixel above 0.5) brighter than 0.1. The "
        "chapter's sampler is S = 20, linear. Linear: τ_i = round(iT/S); quadratic: τ_i = round(T (i/S)²), more of the steps "
        "near the data.", "",
        "| steps S | spacing | CPU s | FID ↓ | precision | recall | cond. accuracy | speck fraction | × real |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(runs, key=lambda r: (r["steps"], r["spacing"])):
        lines.append(f"| {r['steps']} | {r['spacing']} | {r['cpu_seconds']} | {r['fid']:.2f} | {r['precision']:.2f} | "
                     f"{r['recall']:.2f} | {r['cond_acc']:.3f} | {r['specks']:.5f} | {r['specks'] / floor:.1f} |")
    lines.append(f"| real held-out digits | – | – | – | – | – | – | {floor:.5f} | 1 |")
    machines = sorted({f"{r['machine']} {r['cpu']}" for r in runs})
    lines += ["", f"Machines: {', '.join(machines)}.", ""]
    old = json.loads((RESULTS / f"{NAME}.json").read_text())
    lines += [
        "## The first measurement: chapter 12's earlier ε-prediction model", "",
        "The same measure on the model chapter 12 trained before it moved to v-prediction (guidance w = 1, 1,000 samples, "
        "linear spacing; `results/diffusion_specks.json`). Clamping the predicted x_0 is what removed most of its specks, "
        "and the chapter has clamped it since.", "",
        "| sampler | CPU s | FID ↓ | precision | recall | speck fraction |", "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in old[1:]:
        lines.append(f"| {r['sampler']} | {r['cpu_seconds']:.0f} | {r['fid']:.1f} | {r['precision']:.2f} | {r['recall']:.2f} | "
                     f"{r['specks']:.5f} |")
    lines.append(f"| real held-out digits | – | – | – | – | {old[0]['specks']:.5f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], NAME, table, run))
