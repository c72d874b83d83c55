"""The course's own exercises: in sync with the solutions, solutions score full marks, untouched
exercises score zero (graded without crashing)."""

from pathlib import Path

import pytest

from gencourse import grading

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_every_solution_has_an_exercise_and_they_are_in_sync(tmp_path):
    exercises = sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    assert exercises == [p.name for p in SOLUTIONS]
    stale = grading.generate_all(ROOT / "solutions", ROOT / "exercises", check=True)
    assert not stale, f"exercises/ is out of date for {stale}: run `make exercises`"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_scores_full_marks_and_exercise_scores_zero(solution, tmp_path):
    full = grading.grade(solution, solution, timeout=600, report_dir=tmp_path)
    assert full["max_total"] > 0
    failed = [(q["grade_id"], q["message"]) for q in full["questions"] if q["status"] != "passed"]
    assert full["total"] == full["max_total"], failed
    exercise = ROOT / "exercises" / solution.name
    before = exercise.read_bytes()
    zero = grading.grade(exercise, solution, timeout=600, report_dir=tmp_path)
    assert zero["total"] == 0 and zero["max_total"] == full["max_total"]
    assert all(q["status"] in ("failed", "error") for q in zero["questions"])
    assert exercise.read_bytes() == before
