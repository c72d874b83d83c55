"""Margins of exercise 09.8 (a conditional GAN trained to draw the digit asked for).

    GENCOURSE_PROFILE=cpu OMP_NUM_THREADS=1 .venv/bin/python benchmarks/exercise_margins_conditional_gans.py \
        [--seeds 0 1 2 3 4] [--mistake-seeds 0 1] [--only solution]

Runs the training cell of ``solutions/09_conditional_gans.ipynb`` verbatim (its code between the
solution markers, with ``SEED`` set), one run at a time on one thread, and each listed mistake (a
one-line change of that cell). Each run is scored exactly as the grader scores it: the hidden test's
100 samples per class with noise seeded 4242, and the public check's with noise seeded 0, labelled by
the MNIST classifier of :mod:`gencourse.metrics`. Prints one JSON line per run and writes the
table to ``benchmarks/results/exercise_margins_conditional_gans.json``. Not part of the test suite.
"""

from __future__ import annotations

import time
from pathlib import Path

import _margins
import torch

import gencourse as gc
from gencourse.grading import conditional_gans as checks

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "09_conditional_gans.ipynb"
RESULTS = ROOT / "benchmarks" / "results" / "exercise_margins_conditional_gans.json"

BLIND_D = """
class _LabelBlind(torch.nn.Module):
    def __init__(self, D):
        super().__init__()
        self.D = D
    def forward(self, x, y):
        return self.D(x, torch.zeros_like(y))
"""

#: name -> list of (text in the solution's cell, replacement)
MISTAKES = {
    "real images paired with the labels drawn for G (y_real = y_fake)": [("y_real=y_train[idx]", "y_real=y_fake")],
    "D ignores the labels (it is always told class 0)": [
        ("    B, lr = 64, 2e-3\n", "    B, lr = 64, 2e-3\n    D = _LabelBlind(D)\n")],
    "chapter 07's learning rate 5e-4": [("B, lr = 64, 2e-3", "B, lr = 64, 5e-4")],
    "concatenation discriminator instead of projection": [("ProjectionDiscriminator(10, ndf=16, features=64)",
                                                          "ConcatDiscriminator(10, ndf=16, features=64)")],
    "G asked for the real batch's labels (y_fake = y_train[idx]; not a mistake)": [
        ("y_fake = torch.randint(0, 10, (B,), generator=g)", "y_fake = y_train[idx]")],
    "G left in training mode (no G.eval(); batch statistics at sampling)": [("    G.eval()\n", "")],
}


def run(seed: int, changes=()) -> dict:
    setup, cell = _margins.solution_cells(SOLUTION, "conditional_generator", "x_train, y_train = gc.data.mnist_tensors")
    cell = _margins.with_changes(cell, seed, changes)
    ns = {"gc": gc, "torch": torch, "time": time, "math": __import__("math"), "nn": torch.nn,
          "F": torch.nn.functional, "print": lambda *a, **k: None}
    exec(setup + BLIND_D, ns)
    exec(cell, ns)
    G, latent = ns["G"], ns["LATENT_DIM"]
    hidden, _ = checks.conditional_accuracy_of(G, latent, seed=4242)
    public, coverage = checks.conditional_accuracy_of(G, latent, seed=0)
    return {"seed": seed, "cpu_seconds": round(ns["cpu_seconds"], 1), "steps": ns["COND_STEPS"],
            "accuracy_hidden": hidden, "accuracy_public": public, "class_entropy": round(coverage["class_entropy"], 3),
            "passes": min(hidden, public) >= checks.ACCURACY_TARGET}


def main() -> None:
    args = _margins.parse_args()
    gc.metrics.feature_net(verbose=False)  # trained (and cached) before any run is timed
    _margins.run_plan(args, MISTAKES, run, RESULTS)


if __name__ == "__main__":
    main()
