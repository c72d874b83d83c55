"""Margins of exercise 08.7 (a WGAN-GP trained on the ring of eight Gaussians).

    GENCOURSE_PROFILE=cpu OMP_NUM_THREADS=1 .venv/bin/python benchmarks/exercise_margins_wgan.py \
        [--seeds 0 1 2 3 4] [--mistake-seeds 0 1] [--only solution]

Runs the answer cell ``train_ring_wgan`` of ``solutions/08_wgan.ipynb`` verbatim (its code between the
solution markers), with the library's losses in place of the student's earlier answers, and scores it as
the graded cell does: a fresh generator (an MLP 2 -> 128 -> 128 -> 2) built after
``torch.manual_seed(seed)`` (the graded cell uses seed 0), ``RING_STEPS`` generator steps on one CPU
thread, 2,000 samples, :func:`gencourse.metrics.mode_coverage` with ``std = 0.05`` (high quality: within
three standard deviations of a mode). Each listed mistake is a small change of the answer cell. Prints
one JSON line per run and writes ``benchmarks/results/exercise_margins_wgan.json``. Not part of the test
suite.
"""

from __future__ import annotations

import time
from pathlib import Path

import _margins
import torch
from torch import nn

import gencourse as gc
from gencourse import losses

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "08_wgan.ipynb"
RESULTS = ROOT / "benchmarks" / "results" / "exercise_margins_wgan.json"
STEPS = 2_000  # RING_STEPS under cpu

#: name -> list of (text in the solution's cell, replacement)
MISTAKES = {
    "the paper's lambda = 10 at the solution's learning rate": [("lambda_gp, lr = 256, 5, 0.1, 2e-3", "lambda_gp, lr = 256, 5, 10.0, 2e-3")],
    "no learning-rate decay": [('group["lr"] = lr * (1 - step / steps)', 'group["lr"] = lr')],
    "the first solution's settings: lambda = 1, Adam 5e-4, no decay": [
        ("lambda_gp, lr = 256, 5, 0.1, 2e-3", "lambda_gp, lr = 256, 5, 1.0, 5e-4"), ('group["lr"] = lr * (1 - step / steps)', 'group["lr"] = lr')],
}


def run(seed: int, changes=()) -> dict:
    _, answer = _margins.solution_cells(SOLUTION, "train_ring_wgan", "import gencourse as gc")
    cell = _margins.with_changes(answer, seed, changes)
    ns = {"gc": gc, "torch": torch, "nn": nn, "time": time, "critic_loss": losses.wgan_critic_loss,
          "generator_loss": losses.wgan_generator_loss,
          "gradient_penalty": lambda critic, x_real, x_fake: losses.gradient_penalty(critic, x_real, x_fake)}
    exec(cell, ns)
    ring = gc.data.toy("ring")
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))
    with gc.config.threads(1):
        start = time.process_time()
        ns["train_ring_wgan"](G, ns["make_critic"](), lambda n: ring.sample(n), STEPS)
        cpu = time.process_time() - start
    with torch.no_grad():
        cov = gc.metrics.mode_coverage(G(torch.randn(2000, 2)), ring.means, std=0.05)
    return {"seed": seed, "steps": STEPS, "cpu_seconds": round(cpu, 1), "modes": cov["modes"],
            "high_quality": round(cov["high_quality"], 4), "passes": cov["modes"] >= 7 and cov["high_quality"] >= 0.70}


def main() -> None:
    args = _margins.parse_args()
    _margins.run_plan(args, MISTAKES, run, RESULTS)


if __name__ == "__main__":
    main()
