"""Margins of exercise 12.7 (a noise-prediction network trained on the ring of eight Gaussians).

    GENCOURSE_PROFILE=cpu OMP_NUM_THREADS=1 .venv/bin/python benchmarks/exercise_margins_diffusion.py \
        [--seeds 0 1 ... 19] [--mistake-seeds 0 1 2] [--only solution]

Runs the setup and answer cells of ``solutions/12_diffusion.ipynb`` (``TinyEps``, ``ring_sample``,
``toy_sched`` and the training loop between the solution markers) with the solution's ``q_sample`` and
``ddpm_loss``, then scores the trained network as the hidden test does
(:func:`gencourse.grading.diffusion.toy_outcome`): the modes captured and the share of 2,000 samples of
Algorithm 2 within 0.3 of a mode, and the held-out noise-prediction error under the true forward process
(the grader's own ``q_sample``). Each mistake is a one-line change (the ones chapter 12 warns about):
``alpha_t`` in place of ``alpha_bar_t``, ``q_sample`` without its square roots, ``x0`` as the regression
target, ``t`` drawn from ``0..T-1``. Prints one JSON line per run and writes
``benchmarks/results/exercise_margins_diffusion.json``. Not part of the test suite.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import _margins
import torch

import gencourse as gc
from gencourse.grading import diffusion as gd

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "12_diffusion.ipynb"
RESULTS = ROOT / "benchmarks" / "results" / "exercise_margins_diffusion.json"

Q_SAMPLE = '''
def q_sample(x0, t, eps, alpha_bar):
    ab = alpha_bar[t].view(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

def ddpm_loss(eps_model, x0, t, eps, alpha_bar):
    x_t = q_sample(x0, t, eps, alpha_bar)
    return ((eps - eps_model(x_t, t)) ** 2).mean()
'''

#: name -> list of (text in the cells, replacement)
MISTAKES = {
    "alpha_t in place of alpha_bar_t": [("toy_sched.alpha_bar)", "toy_sched.alpha)")],
    "q_sample without the square roots": [("return ab.sqrt() * x0 + (1 - ab).sqrt() * eps", "return ab * x0 + (1 - ab) * eps")],
    "x0 as the regression target": [("return ((eps - eps_model(x_t, t)) ** 2).mean()", "return ((x0 - eps_model(x_t, t)) ** 2).mean()")],
}


def _cells() -> tuple[str, str]:
    nb = json.loads(SOLUTION.read_text())
    setup = answer = None
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if "class TinyEps" in src:
            setup = src
        elif "steps_toy = " in src:
            answer = "\n".join(line for line in src.splitlines() if "### " not in line) + "\n"
    return setup, answer


def run(seed: int, changes=()) -> dict:
    setup, answer = _cells()
    code = Q_SAMPLE + setup
    code = _margins.with_changes(code + "\n#---\n" + answer, seed, [c for c in changes if c[0] in code + answer])
    ns = {"gc": gc, "torch": torch, "math": math}
    head, cell = code.split("\n#---\n")
    exec(head, ns)
    with gc.config.threads(1):
        start = time.process_time()
        exec(cell, ns)
        cpu = time.process_time() - start
    out = gd.toy_outcome(ns["eps_model"])
    return {"seed": seed, "steps": ns["steps_toy"], "cpu_seconds": round(cpu, 1), **out, "passes": gd.toy_passes(out)}


def main() -> None:
    args = _margins.parse_args(seeds=tuple(range(20)), mistake_seeds=(0, 1, 2))
    _margins.run_plan(args, MISTAKES, run, RESULTS)


if __name__ == "__main__":
    main()
