"""Exercises and autograding for the course notebooks.

* In a notebook: ``from gencourse.grading import check; check("generative_models.exp_icdf", exp_icdf)`` runs
  the public checks registered for that question and says what is wrong, if anything.
* ``solutions/NN_name.ipynb`` (nbgrader markup) is the single source of a chapter's exercises;
  ``generate_all()`` / ``python -m gencourse.grading generate`` writes ``exercises/`` from it.
* ``grade()`` / ``python -m gencourse.grading grade SUBMISSION.ipynb`` runs a student's notebook
  with the instructor's tests (hidden ones included) and writes a JSON report.

Importing this package needs only the standard library (no torch, no other gencourse module);
nbformat and nbclient are imported when generating or grading.
"""

from .checks import CHAPTER_CHECKS, UnknownQuestionError, check, expect, expect_close, expect_shape, known_ids, register
from .generate import MarkupError, NotebookReadError, generate_all, generate_exercise
from .grader import GradingError, GradingInputError, find_solution, format_report, grade

__all__ = [
    "check",
    "register",
    "known_ids",
    "expect",
    "expect_close",
    "expect_shape",
    "CHAPTER_CHECKS",
    "UnknownQuestionError",
    "generate_exercise",
    "generate_all",
    "grade",
    "find_solution",
    "format_report",
    "GradingError",
    "GradingInputError",
    "MarkupError",
    "NotebookReadError",
]
