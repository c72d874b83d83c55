"""Chapter 08's WGAN-GP recipe under ``cpu``: learning rate, its linear decay, steps and seed.

    .venv/bin/python benchmarks/wgan_lr_sweep.py '{"lr": 0.003, "lr_decay": "linear"}' ...

Each argument is a JSON dict of overrides of :func:`gencourse.recipes.wgan.wgan_settings`; the
recipe trains from scratch (one thread, one FID checkpoint of 100 samples at the end, which is not
part of the score) and the EMA generator is scored like ``wgan_vs_mlp.py``: 2,000 samples against
the held-out images with :func:`gencourse.metrics.evaluate` (2,000 real images score about 2.7).
One JSON line per run on standard output; the results of the sweep that chose the recipe's
settings are in ``results/wgan_lr_sweep.md``.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("GENCOURSE_PROFILE", "cpu")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wgan_vs_mlp import score

from gencourse.recipes import wgan


def run(overrides: dict) -> dict:
    modules, history = wgan.wgan_mnist("wgan_sweep", retrain=True, progress=False, n_checkpoints=1, n_fid=100,
                                       **overrides)
    return {"overrides": overrides, "cpu_seconds": round(history.info["cpu_seconds"], 1), **score(modules["G_ema"])}


def main(argv: list[str]) -> int:
    for arg in argv or ["{}"]:
        print(json.dumps(run(json.loads(arg))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
