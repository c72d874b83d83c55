"""Margins of exercise 10.6 (pix2pix trained to draw the digit behind an edge map).

    GENCOURSE_PROFILE=cpu OMP_NUM_THREADS=1 .venv/bin/python benchmarks/exercise_margins_translation.py \
        [--seeds 0 1 2 3 4] [--mistake-seeds 0 1] [--only solution]

Runs the training cell of ``solutions/10_translation.ipynb`` verbatim (its code between the solution
markers, with ``SEED`` set), one run at a time on one thread, and each listed mistake (a small change of
that cell). Each run is scored exactly as the grader scores it (:func:`gencourse.grading.translation.heldout_scores`):
the trained generator applied to the 1,000 held-out edge maps, its mean absolute error to the held-out
digits as a fraction of that of copying the input, and the fraction of translations that the course's
MNIST classifier reads as the input's digit. Prints one JSON line per run and writes the table to
``benchmarks/results/exercise_margins_translation.json``. Not part of the test suite.
"""

from __future__ import annotations

import time
from pathlib import Path

import _margins
import torch

import gencourse as gc
from gencourse.grading import translation as checks

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "10_translation.ipynb"
RESULTS = ROOT / "benchmarks" / "results" / "exercise_margins_translation.json"

SOURCE_BLIND_D = """
class _SourceBlind(torch.nn.Module):
    '''A PatchGAN that is handed the pair [x, image] but looks at the image only.'''
    def __init__(self, ndf=16, n_down=1):
        super().__init__()
        self.D = gc.nn.PatchGAN(1, ndf=ndf, n_down=n_down)
    def forward(self, pair):
        return self.D(pair[:, 1:])
"""

#: name -> list of (text in the solution's cell, replacement)
MISTAKES = {
    "L1 against the input (pix2pix_g_step(..., x, x): the source as the target of the L1 term)": [
        ("out = gc.train.pix2pix_g_step(G, D, opt_G, x, y, lambda_l1=100.0)",
         "out = gc.train.pix2pix_g_step(G, D, opt_G, x, x, lambda_l1=100.0)")],
    "D without the source (it sees the image only)": [
        ("D = gc.nn.PatchGAN(2, ndf=16, n_down=1)", "D = _SourceBlind(ndf=16, n_down=1)")],
    "no L1 term (lambda = 0: the conditional GAN alone)": [
        ("lambda_l1=100.0)", "lambda_l1=0.0)")],
    "lambda = 1 instead of 100": [
        ("lambda_l1=100.0)", "lambda_l1=1.0)")],
}


def run(seed: int, changes=()) -> dict:
    setup, cell = _margins.solution_cells(SOLUTION, "pix2pix_generator", "x_edges, y_digits, digit_labels = gc.data.paired")
    cell = _margins.with_changes(cell, seed, changes)
    ns = {"gc": gc, "torch": torch, "time": time, "math": __import__("math"), "nn": torch.nn,
          "F": torch.nn.functional, "print": lambda *a, **k: None}
    exec(setup + SOURCE_BLIND_D, ns)
    exec(cell, ns)
    s = checks.heldout_scores(ns["G"])
    losses = ns["losses_l1"]
    return {"seed": seed, "cpu_seconds": round(ns["cpu_seconds"], 1), "steps": ns["PIX_STEPS"],
            "heldout_l1": round(s["l1"], 4), "copy_l1": round(s["copy_l1"], 4), "ratio": round(s["ratio"], 4),
            "l1_to_source": round(s["l1_to_source"], 4), "agreement": round(s["agreement"], 4),
            "train_l1_last_tenth": round(sum(losses[-len(losses) // 10:]) / (len(losses) // 10), 4),
            "passes": s["ratio"] < checks.L1_FRACTION_TARGET and s["agreement"] > checks.AGREEMENT_TARGET}


def main() -> None:
    args = _margins.parse_args()
    gc.metrics.feature_net(verbose=False)  # trained (and cached) before any run is timed
    _margins.run_plan(args, MISTAKES, run, RESULTS)


if __name__ == "__main__":
    main()
