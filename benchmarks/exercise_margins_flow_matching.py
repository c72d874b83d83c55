"""Margins of exercise 13.6 (a flow trained on the ring of eight Gaussians).

    GENCOURSE_PROFILE=cpu OMP_NUM_THREADS=1 .venv/bin/python benchmarks/exercise_margins_flow_matching.py \
        [--seeds 0 1 ... 19] [--mistake-seeds 0 1] [--only solution]

Runs the answer cell ``train_flow_2d`` of ``solutions/13_flow_matching.ipynb`` verbatim (its code between
the solution markers), with the library's path in place of the student's ``path_and_target``, and
scores it as the graded cell does: ``torch.manual_seed(seed)``, ``make_velocity_net()``, ``FLOW_STEPS``
steps on one CPU thread, then :func:`gencourse.grading.flow_matching.ring_w1` (2,000 samples by 50
Euler steps of the grader's own loop, exact W1 by POT against 2,000 points of the ring; the hidden
test uses ``seed=1`` of that function). Each listed mistake is a small change of the answer cell (the
ones chapter 13 warns about: the time reversed, the target's sign flipped) or a weaker training run.
Prints one JSON line per run and writes ``benchmarks/results/exercise_margins_flow_matching.json``. Not
part of the test suite.
"""

from __future__ import annotations

import time
from pathlib import Path

import _margins
import torch
from torch import nn

import gencourse as gc
from gencourse import flow
from gencourse.grading import flow_matching as fm

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "13_flow_matching.ipynb"
RESULTS = ROOT / "benchmarks" / "results" / "exercise_margins_flow_matching.json"
STEPS = 8_000  # FLOW_STEPS under cpu

#: name -> list of (text in the solution's cell, replacement)
MISTAKES = {
    "time reversed (t = 0 taken as the data)": [("x_t, u = path_and_target(x0, x1, t)", "x_t, u = path_and_target(x1, x0, t)")],
    "target with its sign flipped": [("x_t, u = path_and_target(x0, x1, t)", "x_t, u = path_and_target(x0, x1, t); u = -u")],
    "a tenth of the steps": [("for step in range(steps):", "steps = steps // 10\n    for step in range(steps):")],
}


def run(seed: int, changes=()) -> dict:
    _, answer = _margins.solution_cells(SOLUTION, "train_flow_2d", "import gencourse as gc")
    cell = _margins.with_changes(answer, seed, changes)
    ns = {"gc": gc, "torch": torch, "nn": nn, "time": time,
          "path_and_target": lambda x0, x1, t: (flow.linear_path(x0, x1, t), flow.conditional_velocity(x0, x1))}
    exec(cell, ns)
    ring = gc.data.toy("ring")
    torch.manual_seed(seed)
    net = ns["make_velocity_net"]()
    with gc.config.threads(1):
        start = time.process_time()
        ns["train_flow_2d"](net, lambda n: ring.sample(n), STEPS)
        cpu = time.process_time() - start
    w1 = fm.ring_w1(net, seed=1)
    return {"seed": seed, "steps": STEPS, "cpu_seconds": round(cpu, 1), "w1": round(w1, 4), "passes": w1 < fm.W1_TARGET}


def main() -> None:
    args = _margins.parse_args(seeds=tuple(range(20)))
    _margins.run_plan(args, MISTAKES, run, RESULTS)


if __name__ == "__main__":
    main()
