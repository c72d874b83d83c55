"""Margins of exercise 11.7 (a style-based decoder fitted to 256 digits with one learnable code each).

    GENCOURSE_PROFILE=cpu OMP_NUM_THREADS=1 .venv/bin/python benchmarks/exercise_margins_style.py \
        [--seeds 0 1 2 3 4] [--mistake-seeds 0 1] [--only solution]

Runs the answer cell ``fit_styles`` of ``solutions/11_style.ipynb`` verbatim (its code between the
solution markers, with ``torch.manual_seed(seed)`` before the generator is built; the graded cell uses
seed 0) and scores it as the hidden test does: the PSNR of ``G(codes, noise=0)`` against the 256 digits
(:func:`gencourse.grading.style.reconstruction_psnr`), ``STEPS`` steps on one CPU thread. Each listed
mistake is a small change of the answer cell. Prints one JSON line per run and writes
``benchmarks/results/exercise_margins_style.json``. Not part of the test suite.
"""

from __future__ import annotations

import time
from pathlib import Path

import _margins
import torch
import torch.nn.functional as F
from torch import nn

import gencourse as gc
from gencourse.grading import style as checks

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "11_style.ipynb"
RESULTS = ROOT / "benchmarks" / "results" / "exercise_margins_style.json"

#: name -> list of (text in the solution's cell, replacement)
MISTAKES = {
    "one learning rate (2e-3) for the codes and the network": [('{"params": [codes], "lr": 2e-2}', '{"params": [codes], "lr": 2e-3}')],
    "fixed random codes (only the network learns)": [('{"params": [codes], "lr": 2e-2}', '{"params": [], "lr": 2e-2}')],
    "fresh noise during training": [("loss = F.mse_loss(G(codes[idx], noise=0), images[idx])",
                                     "loss = F.mse_loss(G(codes[idx]), images[idx])")],
    "gradients never zeroed": [("        opt.zero_grad()\n", "")],
    "a fresh random code at each step instead of the image's own": [
        ("loss = F.mse_loss(G(codes[idx], noise=0), images[idx])",
         "loss = F.mse_loss(G(torch.randn(len(idx), G.z_dim), noise=0), images[idx])")],
}


def run(seed: int, changes=()) -> dict:
    _, answer = _margins.solution_cells(SOLUTION, "fit_styles", "import gencourse as gc")
    cell = _margins.with_changes(answer.replace("torch.manual_seed(0)\n", f"torch.manual_seed({seed})\n"), seed, changes)
    ns = {"gc": gc, "torch": torch, "nn": nn, "F": F, "time": time}
    with gc.config.threads(1):
        exec(cell, ns)
        start = time.process_time()
        codes = ns["fit_styles"](ns["G"], ns["images"], ns["STEPS"])
        cpu = time.process_time() - start
    psnr = checks.reconstruction_psnr(ns["G"], codes, ns["images"])
    return {"seed": seed, "steps": ns["STEPS"], "cpu_seconds": round(cpu, 1), "psnr": round(psnr, 3),
            "passes": psnr >= checks.PSNR_TARGET}


def main() -> None:
    args = _margins.parse_args()
    _margins.run_plan(args, MISTAKES, run, RESULTS)


if __name__ == "__main__":
    main()
