"""The command line and the run loop shared by the ``exercise_margins_*.py`` scripts: run the
solution's training cell on several seeds, and each typical mistake on a few, and keep the results
of every (run, seed) in a JSON file (a rerun of one seed replaces its entry)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import gencourse as gc


def parse_args(seeds=(0, 1, 2, 3, 4), mistake_seeds=(0, 1)) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=list(seeds))
    parser.add_argument("--mistake-seeds", type=int, nargs="+", default=list(mistake_seeds))
    parser.add_argument("--only", choices=["solution", "mistakes"], default=None)
    parser.add_argument("--mistakes", type=int, nargs="+", default=None, help="indices of the mistakes to run (default: all)")
    args = parser.parse_args()
    if gc.config.profile() != "cpu":
        raise SystemExit("run under GENCOURSE_PROFILE=cpu (the profile the target is graded under)")
    return args


def run_plan(args: argparse.Namespace, mistakes: Mapping, run: Callable, results: Path) -> dict:
    """Run ``run(seed, changes)`` for the solution (no changes) and every mistake, saving after each run."""
    out = json.loads(results.read_text()) if results.exists() else {}
    plan = []
    if args.only in (None, "solution"):
        plan += [("solution", s, ()) for s in args.seeds]
    if args.only in (None, "mistakes"):
        chosen = [m for i, m in enumerate(mistakes.items()) if args.mistakes is None or i in args.mistakes]
        plan += [(name, s, changes) for name, changes in chosen for s in args.mistake_seeds]
    for name, seed, changes in plan:
        result = run(seed, changes)
        print(json.dumps({"run": name, **result}), flush=True)
        runs = [r for r in out.get(name, []) if r["seed"] != seed] + [result]
        out[name] = sorted(runs, key=lambda r: r["seed"])
        results.write_text(json.dumps(out, indent=1) + "\n")
    return out


def solution_cells(solution: Path, grade_id: str, setup_marker: str) -> tuple[str, str]:
    """The setup cell (the one containing ``setup_marker``) and the answer cell ``grade_id`` of a
    solution notebook, the answer without its solution markers."""
    nb = json.loads(solution.read_text())
    setup = answer = None
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id:
            answer = src
        elif setup_marker in src:
            setup = src
    if setup is None or answer is None:
        raise ValueError(f"{solution.name}: no setup cell containing {setup_marker!r} or no answer cell {grade_id!r}")
    keep = [line for line in answer.splitlines() if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line]
    return setup, "\n".join(keep) + "\n"


def with_changes(cell: str, seed: int, changes=()) -> str:
    """The answer cell with ``SEED`` set and each ``(old, new)`` replacement made (a typical mistake)."""
    cell = cell.replace("SEED = 0\n", f"SEED = {seed}\n")
    for old, new in changes:
        if old not in cell:
            raise ValueError(f"the solution's cell does not contain {old!r}")
        cell = cell.replace(old, new)
    return cell
