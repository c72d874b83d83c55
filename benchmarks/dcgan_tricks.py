"""Chapter 07's DCGAN under ``cpu``: changes tried for sharper samples, each against the recipe.

    .venv/bin/python benchmarks/dcgan_tricks.py baseline translate lr_decay ema999 bf16 r1_0.1 r1_1

Each argument trains the recipe (:func:`gencourse.recipes.dcgan.dcgan_mnist`, seed 0, one thread)
with one change, then scores 2,000 samples of the EMA generator against the held-out images
(:func:`gencourse.metrics.evaluate`; 2,000 real images score about 2.7):

* ``translate``: DiffAugment's translation (Zhao et al., 2020) on every image the discriminator
  sees, real and generated: a random shift of up to 2 pixels, the border filled with the
  background (-1); the remedy for a discriminator that overfits a small training set;
* ``lr_decay``: both learning rates decayed linearly to 0 over the steps (as chapter 08's WGAN-GP);
* ``ema999``: the EMA of G with decay 0.999 instead of 0.995;
* ``bf16``: G and D under bfloat16 autocast, with 6,400 steps instead of 4,000 (about the CPU
  time that float32 needs for 5,200 on this machine);
* ``r1_<gamma>``: the R1 penalty (:func:`gencourse.losses.r1_penalty`, Mescheder et al., 2018) on
  the discriminator at the real images, lazily (Karras et al., 2020): every 4th discriminator step
  one more update by :math:`4 γ/2 R_1` (the recipe's ``r1_gamma``, :func:`gencourse.train.r1_step`),
  as chapter 11's StyleGAN.

Every other run has ``r1_gamma = 0``: the recipe as it was when this table was recorded (chapter
07 has trained with R1 since; ``gan_r1.py`` measured it over three seeds).

One JSON line per run; the results are in ``results/dcgan_tricks.md``.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("GENCOURSE_PROFILE", "cpu")

import torch
import torch.nn.functional as F

import gencourse as gc
from gencourse import train
from gencourse.models import gan
from gencourse.recipes import dcgan as recipe


def translate(x: torch.Tensor, s: int = 2) -> torch.Tensor:
    B = x.shape[0]
    xp = F.pad(x, (s, s, s, s), value=-1.0)
    dy, dx = torch.randint(-s, s + 1, (B,)), torch.randint(-s, s + 1, (B,))
    ar = torch.arange(x.shape[-1])
    rows = (ar[None] + s + dy[:, None])[:, :, None]
    cols = (ar[None] + s + dx[:, None])[:, None, :]
    return xp[torch.arange(B)[:, None, None], 0, rows, cols][:, None]


class Translated(torch.nn.Module):
    def __init__(self, D):
        super().__init__()
        self.D = D

    def forward(self, x):
        return self.D(translate(x) if self.training else x)


class BFloat16(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, *args):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.m(*args)
        return out.float()


def run(change: str) -> dict:
    torch.manual_seed(1000)
    overrides = {"ema999": {"ema_decay": 0.999}, "bf16": {"steps": 6_400}}.get(change, {})
    overrides["r1_gamma"] = float(change.split("_")[1]) if change.startswith("r1_") else 0.0
    steps = recipe.dcgan_settings(**overrides)["steps"]
    build, adam, ema_update = recipe.build_dcgan, torch.optim.Adam, train.EMA.update

    def patched_build(settings):
        modules = build(settings)
        if change == "translate":
            modules["D"] = Translated(modules["D"])
        if change == "bf16":
            modules["G"], modules["D"] = BFloat16(modules["G"]), BFloat16(modules["D"])
        return modules

    class DecayingAdam(adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.k, self.base = 0, [g["lr"] for g in self.param_groups]

        def step(self, closure=None):
            for g, lr in zip(self.param_groups, self.base):
                g["lr"] = lr * max(0.0, 1 - self.k / steps)
            self.k += 1
            return super().step(closure)

    recipe.build_dcgan = patched_build
    if change == "lr_decay":
        torch.optim.Adam = DecayingAdam
    train.EMA.update = lambda self, model: ema_update(self, model.m if isinstance(model, BFloat16) else model)
    try:
        start = time.process_time()
        modules, _ = recipe.dcgan_mnist(f"dcgan_{change}", progress=False, retrain=True, **overrides)
        cpu = time.process_time() - start
    finally:
        recipe.build_dcgan, torch.optim.Adam, train.EMA.update = build, adam, ema_update
    x = gan.generate(modules["G_ema"], 2000, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    r = gc.metrics.evaluate(x, value_range="pm1", n=2000, memorisation=False)
    return {"change": change, "steps": steps, "cpu_seconds": round(cpu), "fid": round(float(r["fid"]), 2),
            "precision": round(float(r["precision"]), 3), "recall": round(float(r["recall"]), 3),
            "class_entropy": round(float(r["class_entropy"]), 3)}


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["baseline"]:
        print(json.dumps(run(arg)), flush=True)
