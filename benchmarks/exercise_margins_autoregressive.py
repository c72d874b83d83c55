"""Margins of exercise 05.7 (a MADE trained to a held-out exact likelihood).

    GENCOURSE_PROFILE=cpu OMP_NUM_THREADS=1 .venv/bin/python benchmarks/exercise_margins_autoregressive.py \
        [--seeds 0 1 2 3 4] [--mistake-seeds 0 1] [--only solution]

Runs the training cell of ``solutions/05_autoregressive.ipynb`` verbatim (its code between the solution
markers, with ``SEED`` set), one run at a time on one thread, and each listed mistake (a small change of
that cell). Each run is scored exactly as the grader scores it: the exact negative log-likelihood of the
trained model on the 1,000 held-out binarised images and on 1,000 training images, computed by the check
from the model's logits (:func:`gencourse.grading.autoregressive.heldout_nll`), the number of pixels whose
flip changes a prediction it must not (:func:`gencourse.grading.autoregressive.causality_violations`, on the
check's two base images), and the verdict of the public check itself (``check("autoregressive.made", ...)``)
with its message. Prints one JSON line per run and writes the table to
``benchmarks/results/exercise_margins_autoregressive.json``. Not part of the test suite.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import _margins
import torch

import gencourse as gc
from gencourse.grading import autoregressive as checks
from gencourse.grading import check
from gencourse.recipes.autoregressive import binarised_mnist

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "05_autoregressive.ipynb"
RESULTS = ROOT / "benchmarks" / "results" / "exercise_margins_autoregressive.json"

MADE_LINE = "model = gc.models.autoregressive.MADE(hidden=(500,))"
BATCH_LINE = "xb = x_train[torch.randint(0, len(x_train), (B,), generator=g)]"
#: name -> list of (text in the solution's cell, replacement)
MISTAKES = {
    "not causal: the output mask lets output d see the hidden units of degree <= d (so its own pixel)": [
        (MADE_LINE, MADE_LINE + "\n    _deg = torch.arange(500) * 783 // 500 + 1\n"
                    "    model.out.mask.copy_((torch.arange(1, 785)[:, None] >= _deg[None, :]).float())")],
    "not causal: every mask set to ones (a plain MLP)": [
        (MADE_LINE, MADE_LINE + "\n    for _layer in [*model.hidden, model.out]:\n        _layer.mask.fill_(1.0)")],
    "trained on the test split": [
        (BATCH_LINE, "xb = _x_test[torch.randint(0, len(_x_test), (B,), generator=g)]")],
    "the recipe's defaults: batches of 32, Adam 1e-3 (same steps, same cosine decay)": [
        ("B, lr = 64, 2e-3", "B, lr = 32, 1e-3")],
    "grey values fed instead of levels": [
        (BATCH_LINE, "xb = _x_grey[torch.randint(0, len(_x_grey), (B,), generator=g)]")],
}


def _cell() -> str:
    nb = json.loads(SOLUTION.read_text())
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "made":
            src = "".join(cell["source"])
            keep = [line for line in src.splitlines() if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line]
            return "\n".join(keep) + "\n"
    raise ValueError("no answer cell 'made' in the solution")


def run(seed: int, changes=()) -> dict:
    cell = _cell().replace("SEED = 0\n", f"SEED = {seed}\n")
    for old, new in changes:
        if old not in cell:
            raise ValueError(f"the solution's cell does not contain {old!r}")
        cell = cell.replace(old, new)
    x_train, _ = binarised_mnist("train")
    x_test, _ = binarised_mnist("test")
    ns = {"gc": gc, "torch": torch, "time": time, "math": math, "nn": torch.nn, "F": torch.nn.functional,
          "print": lambda *a, **k: None, "x_train": x_train, "_x_test": x_test,
          "_x_grey": gc.data.mnist_tensors("train", verbose=False)[0]}
    try:
        exec(cell, ns)
    except Exception as exc:  # a mistake the library itself refuses
        return {"seed": seed, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}", "passes": False}
    model, losses = ns["model"], ns["losses"]
    s = checks.heldout_nll(model)
    g = torch.Generator().manual_seed(50)
    bases = [x_test[int(torch.randint(0, len(x_test), (1,), generator=g))], (torch.rand(1, 28, 28, generator=g) < 0.3).long()]
    with torch.no_grad():
        bad = max(len(checks.causality_violations(model, b)) for b in bases)
    try:
        check("autoregressive.made", model, losses)
        verdict = "passes"
    except AssertionError as exc:
        verdict = str(exc)
    k = max(1, len(losses) // 10)
    return {"seed": seed, "cpu_seconds": round(ns["cpu_seconds"], 1), "steps": ns["MADE_STEPS"],
            "train_loss_last_tenth": round(sum(losses[-k:]) / k, 2), "heldout_nll": round(s["test"], 2),
            "train_images_nll": round(s["train"], 2), "gap": round(s["gap"], 2), "non_causal_pixels": bad,
            "passes": verdict == "passes", "check": verdict}


def main() -> None:
    args = _margins.parse_args()
    _margins.run_plan(args, MISTAKES, run, RESULTS)


if __name__ == "__main__":
    main()
