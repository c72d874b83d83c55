"""The course's own exercises: in sync with the solutions, solutions score full marks, untouched
exercises score zero (graded without crashing)."""

from pathlib import Path

import pytest

from gencourse import grading

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
#: Solutions with "train and reach a target" exercises: graded once, below, under the ``cpu`` profile,
#: where the hidden tests enforce the targets (under ``smoke`` they only check that training ran).
GRADED_UNDER_CPU = {"00_generative_models", "01_divergences", "02_optimal_transport", "03_autoencoders", "04_vae", "05_autoregressive",
                    "06_gans", "07_dcgan", "08_wgan", "09_conditional_gans", "10_translation", "11_style", "12_diffusion", "13_flow_matching",
                    "14_evaluation"}


def test_every_solution_has_an_exercise_and_they_are_in_sync(tmp_path):
    exercises = sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    assert exercises == [p.name for p in SOLUTIONS]
    stale = grading.generate_all(ROOT / "solutions", ROOT / "exercises", check=True)
    assert not stale, f"exercises/ is out of date for {stale}: run `make exercises`"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_scores_full_marks_and_exercise_scores_zero(solution, tmp_path, monkeypatch):
    if solution.stem in GRADED_UNDER_CPU:
        monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    full = grading.grade(solution, solution, timeout=600, report_dir=tmp_path)
    monkeypatch.setenv("GENCOURSE_PROFILE", "smoke")
    assert full["max_total"] > 0
    failed = [(q["grade_id"], q["message"]) for q in full["questions"] if q["status"] != "passed"]
    assert full["total"] == full["max_total"], failed
    exercise = ROOT / "exercises" / solution.name
    before = exercise.read_bytes()
    zero = grading.grade(exercise, solution, timeout=600, report_dir=tmp_path)
    assert zero["total"] == 0 and zero["max_total"] == full["max_total"]
    assert all(q["status"] in ("failed", "error") for q in zero["questions"])
    assert exercise.read_bytes() == before
