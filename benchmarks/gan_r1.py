"""The R1 penalty on the discriminators of chapters 07 and 09, over three seeds, under ``cpu``.

    .venv/bin/python benchmarks/gan_r1.py acgan:none:0 acgan:r1_1:0 dcgan:r1_1:2 ...
    .venv/bin/python benchmarks/gan_r1.py --table

Each argument ``MODEL:CHANGE:SEED`` trains one recipe (``dcgan``: chapter 07's
:func:`gencourse.recipes.dcgan.dcgan_mnist`; ``cgan``, ``projection``, ``acgan``: chapter 09's
:func:`gencourse.recipes.conditional.conditional_mnist`) from training seed ``SEED`` on one thread,
with one change:

* ``none``: no R1 (chapter 09's recipes; chapter 07's with ``r1_gamma=0``, as it was before R1);
* ``r1_<gamma>``: the R1 penalty (:func:`gencourse.losses.r1_penalty`, Mescheder et al., 2018) on
  the discriminator at the real images, lazily (Karras et al., 2020): after every 4th
  discriminator step, one more discriminator update by :math:`4\\,\\gamma/2\\,R_1`
  (:func:`gencourse.train.r1_step`; chapter 07's recipe has it as the settings ``r1_gamma``,
  ``r1_every``, with :math:`\\gamma = 1`; chapter 09's get it here by wrapping their discriminator
  step); it costs about 9 % more CPU time;
* ``steps_<n>``: the recipe with ``n`` steps instead of its own; ``r1_<gamma>+steps_<n>``: both.

It then scores 2,000 samples of the EMA generator (labels 0-9 in turn for the conditional models)
against the held-out images with :func:`gencourse.metrics.evaluate` (2,000 real images score
about 2.7) and appends one JSON line to ``results/gan_r1.jsonl``; ``--table`` writes
``results/gan_r1.md`` (mean ± sd over the seeds of each model and change).
"""

from __future__ import annotations

import os
import platform
import sys
import time

os.environ.setdefault("GENCOURSE_PROFILE", "cpu")

import torch
from _jsonl import append, grouped, machines_line, main, mean_sd, rows

import gencourse as gc
from gencourse import train
from gencourse.models import gan
from gencourse.recipes import conditional, dcgan

NAME = "gan_r1"
R1_EVERY = 4


def _with_r1(step, gamma: float, acgan: bool):
    """``step`` (a discriminator step of :mod:`gencourse.train`) followed, every ``R1_EVERY``-th
    call, by one :func:`gencourse.train.r1_step` (``R1_EVERY * gamma / 2 * R1`` at the real batch):
    on ACGAN's source logit (its D returns ``(source, classes)``), else on :math:`d(x, y)` at the real labels."""
    count = [0]

    def wrapped(G, D, opt_D, x_real, *args, **kwargs):
        out = step(G, D, opt_D, x_real, *args, **kwargs)
        count[0] += 1
        if count[0] % R1_EVERY == 0:
            if acgan:
                out.update(train.r1_step(lambda x: D(x)[0], opt_D, x_real, gamma=gamma, every=R1_EVERY))
            else:
                out.update(train.r1_step(D, opt_D, x_real, gamma=gamma, every=R1_EVERY, y_real=kwargs["y_real"]))
        return out

    return wrapped


def run(spec: str) -> None:
    model, change, seed = spec.split(":")
    seed = int(seed)
    overrides, gamma = {"seed": seed}, 0.0
    for part in change.split("+"):
        if part.startswith("steps_"):
            overrides["steps"] = int(part.split("_")[1])
        elif part.startswith("r1_"):
            gamma = float(part.split("_")[1])
        elif part != "none":
            raise ValueError(f"change must be none, r1_<gamma>, steps_<n> or two joined by '+', got {change!r}")
    saved = train.d_step, train.acgan_d_step
    if model == "dcgan":
        overrides["r1_gamma"] = gamma
    elif gamma > 0 and model == "acgan":
        train.acgan_d_step = _with_r1(saved[1], gamma, acgan=True)
    elif gamma > 0:
        train.d_step = _with_r1(saved[0], gamma, acgan=False)
    torch.manual_seed(1000)
    name = f"r1bench_{model}_{change}_{seed}".replace(".", "p").replace("+", "_")
    try:
        start = time.process_time()
        if model == "dcgan":
            modules, _ = dcgan.dcgan_mnist(name, progress=False, retrain=True, **overrides)
        else:
            modules, _ = conditional.conditional_mnist(model, name, progress=False, retrain=True, **overrides)
        cpu = time.process_time() - start
    finally:
        train.d_step, train.acgan_d_step = saved
    g = torch.Generator().manual_seed(0)
    if model == "dcgan":
        x, labels = gan.generate(modules["G_ema"], 2000, generator=g), None
        steps = dcgan.dcgan_settings(**overrides)["steps"]
    else:
        labels = torch.arange(2000) % 10
        x = conditional.sample_conditional(modules["G_ema"], labels, generator=g)
        steps = conditional.conditional_settings(model, **overrides)["steps"]
    r = gc.metrics.evaluate(x.clamp(-1, 1), value_range="pm1", labels=labels, n=2000, memorisation=False)
    append(NAME, {"model": model, "change": change, "seed": seed, "steps": steps, "cpu_seconds": round(cpu), **scores(r, labels)})


def scores(r: dict, labels) -> dict:
    """The fields of a result line from :func:`gencourse.metrics.evaluate`'s ``r`` (conditional accuracy when the
    samples had ``labels``), with the machine that ran it."""
    return {"fid": round(float(r["fid"]), 2), "precision": round(float(r["precision"]), 3),
            "recall": round(float(r["recall"]), 3), "class_entropy": round(float(r["class_entropy"]), 3),
            "cond_acc": None if labels is None else round(float(r["conditional_accuracy"]), 3),
            "cpu": torch.backends.cpu.get_cpu_capability(), "machine": platform.machine()}


def table() -> str:
    runs = rows(NAME)
    groups = grouped(runs, "model", "change")
    lines = [
        "# The R1 penalty on the GANs' discriminators (chapters 07 and 09)",
        "",
        "`benchmarks/gan_r1.py`, `cpu` profile, one thread per run (two runs side by side on 2 cores). FID, precision and",
        "recall of 2,000 samples of the EMA generator against the held-out images with `gencourse.metrics` (2,000 real",
        "images score about 2.7; the target of 5 times real is about 13.5); mean ± standard deviation over the training",
        "seeds. R1 is lazy: one more discriminator update by 4 γ/2 R1 after every 4th discriminator step.",
        "",
        "| model | change | seeds | steps | CPU s | FID ↓ | precision | recall | conditional accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (model, change), rs in groups.items():
        acc = [r["cond_acc"] for r in rs if r["cond_acc"] is not None]
        lines.append(
            f"| {model} | {change} | {len(rs)} | {rs[0]['steps']:,} | {mean_sd([r['cpu_seconds'] for r in rs], '{:.0f}')} "
            f"| {mean_sd([r['fid'] for r in rs], '{:.1f}')} | {mean_sd([r['precision'] for r in rs], '{:.2f}')} "
            f"| {mean_sd([r['recall'] for r in rs], '{:.2f}')} | {mean_sd(acc, '{:.2f}') if acc else '–'} |")
    lines += ["", machines_line(runs)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], NAME, table, run))
