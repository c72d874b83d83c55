"""Tests for gencourse.grading: exercise generation, in-notebook checks and the autograder.

Everything runs on a tiny self-contained solution notebook (plain Python, no torch), built here
with nbformat. Grading starts two processes per submission (a few seconds), so broken variants
are combined into few submissions. The attacks of a cheating student: test_grading_attacks.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from gencourse.grading import (
    UnknownQuestionError,
    check,
    expect,
    expect_close,
    generate_all,
    generate_exercise,
    grade,
    register,
)
from gencourse.grading.__main__ import main as cli_main
from gencourse.grading.generate import MarkupError, clear_source, notebook_to_text, read_notebook
from gencourse.grading.grader import format_report
from gencourse.grading.report import report_name

REPO = Path(__file__).resolve().parents[1]
NAME = "99_toy.ipynb"
TIMEOUT = 5  # seconds per cell for the gradings that contain an infinite loop


# ----------------------------------------------------------------------------- the notebook


def _answer(gid, source):
    return new_code_cell(
        source,
        id=f"ans-{gid}",
        metadata={"nbgrader": {"solution": True, "grade": False, "locked": False, "grade_id": gid,
                               "schema_version": 3}},
    )


def _test(gid, source, points):
    return new_code_cell(
        source,
        id=f"test-{gid}",
        metadata={"nbgrader": {"solution": False, "grade": True, "locked": True, "grade_id": gid,
                               "points": points, "schema_version": 3}},
    )


SQUARE = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION"
CUBE = "def cube(x):\n    ### BEGIN SOLUTION\n    return x ** 3\n    ### END SOLUTION"
HALVE = "def halve(x):\n    ### BEGIN SOLUTION\n    return x / 2\n    ### END SOLUTION"
TEST_SQUARE = "assert square(3) == 9\n### BEGIN HIDDEN TESTS\nassert square(-2) == 4\n### END HIDDEN TESTS"
TEST_CUBE = (
    'assert cube(2) == 8, f"cube(2) = {cube(2)}, expected 8"\n'
    "### BEGIN HIDDEN TESTS\n"
    'assert cube(-1) == -1, f"cube(-1) = {cube(-1)}, expected -1"\n'
    "### END HIDDEN TESTS"
)
TEST_HALVE = (
    "assert math.isclose(halve(4), 2)\n"
    "### BEGIN HIDDEN TESTS\n"
    'assert math.isclose(halve(1), 0.5), f"halve(1) = {halve(1)}, expected 0.5"\n'
    "### END HIDDEN TESTS"
)
POINTS = {"test_square": 1, "test_cube": 2, "test_halve": 3}


def solution_notebook():
    cells = [
        new_markdown_cell("# A toy chapter\n\nThree questions.", id="intro"),
        new_code_cell("import math", id="setup"),
        _answer("square", SQUARE),
        _test("test_square", TEST_SQUARE, 1),
        _answer("cube", CUBE),
        _test("test_cube", TEST_CUBE, 2),
        new_markdown_cell("Halve a number.", id="halve-md"),
        _answer("halve", HALVE),
        _test("test_halve", TEST_HALVE, 3),
        new_markdown_cell(
            "Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION",
            id="why",
            metadata={"nbgrader": {"solution": True, "grade": False, "locked": False,
                                   "grade_id": "why", "schema_version": 3}},
        ),
    ]
    for cell in cells:  # pretend the instructor ran it
        if cell.cell_type == "code":
            cell.execution_count = 1
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
            cell.metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00"}
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder: solutions/99_toy.ipynb and the generated exercises/99_toy.ipynb."""
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    nbformat.write(solution_notebook(), root / "solutions" / NAME)
    changed = generate_all(root / "solutions", root / "exercises")
    assert changed == [root / "exercises" / NAME]
    return root


def _cells_by_id(nb):
    return {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") or c.get("id"): c for c in nb.cells}


def make_submission(course, folder, *, answers=None, tests=None, drop=(), extra=(), strip_meta=()):
    """Write ``folder/99_toy.ipynb``: the exercise with some cells filled in, replaced or deleted
    (``strip_meta``: cells whose nbgrader metadata is lost, as some editors do)."""
    nb = read_notebook(course / "exercises" / NAME)
    by_id = _cells_by_id(nb)
    for key, source in {**(answers or {}), **(tests or {})}.items():
        by_id[key].source = source
    for key in strip_meta:
        del by_id[key].metadata["nbgrader"]
    nb.cells = [c for c in nb.cells if (_cells_by_id(new_notebook(cells=[c])).popitem()[0]) not in drop]
    for position, source in extra:
        nb.cells.insert(position, new_code_cell(source))
    folder = course / folder
    folder.mkdir(exist_ok=True)
    path = folder / NAME
    path.write_text(notebook_to_text(nb), encoding="utf-8")
    return path


def _stat(path):
    return path.read_bytes(), path.stat().st_mtime_ns


def _by_gid(report):
    return {q["grade_id"]: q for q in report["questions"]}


GOOD = {"square": "def square(x):\n    return x * x", "cube": "def cube(x):\n    return x ** 3",
        "halve": "def halve(x):\n    return x / 2"}


# ------------------------------------------------------------------------------- generation


def test_generated_exercise_has_stubs_no_hidden_tests_and_no_outputs(course):
    text = (course / "exercises" / NAME).read_text(encoding="utf-8")
    ex = nbformat.reads(text, as_version=4)
    cells = _cells_by_id(ex)
    assert cells["square"].source == "def square(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert cells["test_square"].source == "assert square(3) == 9"
    assert cells["test_cube"].source == 'assert cube(2) == 8, f"cube(2) = {cube(2)}, expected 8"'
    assert cells["why"].source == "Why?\n\nYOUR ANSWER HERE"
    assert cells["setup"].source == "import math"
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "return x * x", "-2", "halve(1)"):
        assert marker not in text
    for cell in ex.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            assert "execution" not in cell.metadata
    # nbgrader metadata and cell ids are kept
    meta = dict(cells["test_cube"].metadata.nbgrader)
    assert len(meta.pop("checksum")) == 32 and meta.pop("cell_type") == "code"  # as nbgrader's release
    assert meta == {"solution": False, "grade": True, "locked": True, "grade_id": "test_cube", "points": 2,
                    "schema_version": 3}
    assert cells["cube"].metadata.nbgrader["solution"] is True
    assert [c.get("id") for c in ex.cells] == [c.get("id") for c in solution_notebook().cells]
    # Jupyter's own format: indent 1, non-ASCII kept, trailing newline
    assert text.startswith('{\n "cells": [\n') and text.endswith("}\n")


def test_generation_is_deterministic_and_idempotent(course, tmp_path):
    sol = read_notebook(course / "solutions" / NAME)
    once = generate_exercise(sol)
    assert notebook_to_text(generate_exercise(once)) == notebook_to_text(once)
    assert notebook_to_text(generate_exercise(sol)) == notebook_to_text(once)
    assert "outputs" in sol.cells[1] and sol.cells[1].outputs, "the input notebook must not be modified"
    # a second run writes nothing; --check agrees; then detects a stale file
    assert generate_all(course / "solutions", course / "exercises") == []
    assert generate_all(course / "solutions", course / "exercises", check=True) == []
    assert cli_main(["generate", "--solutions", str(course / "solutions"), "--exercises",
                     str(course / "exercises"), "--check"]) == 0
    stale = tmp_path / "exercises"
    stale.mkdir()
    (stale / NAME).write_text((course / "exercises" / NAME).read_text().replace("import math", "import os"))
    before = (stale / NAME).read_bytes()
    assert generate_all(course / "solutions", stale, check=True) == [stale / NAME]
    assert cli_main(["generate", "--solutions", str(course / "solutions"), "--exercises", str(stale),
                     "--check"]) == 1
    assert (stale / NAME).read_bytes() == before, "--check must not write"
    assert cli_main(["generate", "--solutions", str(course / "solutions"), "--exercises", str(stale)]) == 0
    assert (stale / NAME).read_bytes() == (course / "exercises" / NAME).read_bytes()


def test_clear_source_markup():
    src = "x = 1\n    ### BEGIN SOLUTION\n    y = 2\n    ### END SOLUTION\nz = 3"
    assert clear_source(src) == ("x = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\nz = 3", True)
    assert clear_source("a\n### BEGIN HIDDEN TESTS\nb\n### END HIDDEN TESTS\n") == ("a", True)
    assert clear_source("plain\n") == ("plain\n", False)
    for bad in ("### BEGIN SOLUTION\nx", "x\n### END SOLUTION",
                "### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n### END SOLUTION"):
        with pytest.raises(MarkupError, match="line"):
            clear_source(bad, where="cell 3")


def test_answer_cell_without_markers_becomes_a_stub():
    nb = new_notebook(cells=[_answer("free", "x = 42")])
    assert generate_exercise(nb).cells[0].source == "# YOUR CODE HERE\nraise NotImplementedError()"


# ------------------------------------------------------------------------------------ check


def test_check_success_failure_and_not_implemented(capsys):
    @register("test.square")
    def _(square):
        expect_close(square(3), 9, what="square(3)")
        expect_close(square(-2), 4, what="square(-2)", hint="a square is never negative")
        expect(square(0) == 0, "square(0) should be 0")

    assert check("test.square", lambda x: x * x) == True  # noqa: E712 - a true value Jupyter does not show
    assert capsys.readouterr().out.strip() == "✔ test.square: 3 checks passed"
    assert hasattr(check("test.square", lambda x: x * x), "_ipython_display_")
    capsys.readouterr()

    with pytest.raises(AssertionError, match=r"square\(-2\) = -4, expected 4 \(hint: a square is never negative\)"):
        check("test.square", lambda x: x * abs(x))

    def stub(x):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        check("test.square", stub)
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        check("test.square", lambda x: 1 / 0)

    with pytest.raises(UnknownQuestionError, match="test.square") as info:
        check("test.nope", lambda x: x)
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_expect_close_arrays():
    @register("test.vec")
    def _(f):
        expect_close(f([1.0, 2.0]), [2.0, 4.0], what="double([1, 2])")

    assert check("test.vec", lambda v: [2 * x for x in v])
    with pytest.raises(AssertionError, match=r"shape \(3,\), expected shape \(2,\)"):
        check("test.vec", lambda v: [0.0, 0.0, 0.0])
    with pytest.raises(AssertionError, match="1 of 2 entries differ"):
        check("test.vec", lambda v: [2.0, 5.0])


def test_check_called_without_the_function_blames_the_call():
    @register("test.one")
    def _(f):
        expect(f(1) == 1, "f(1) should be 1")

    with pytest.raises(TypeError, match=r"check\('test.one', ...\) was called wrongly: it takes f"):
        check("test.one")


# ---------------------------------------------------------------------------------- grading


def test_solution_scores_full_marks(course):
    report = grade(course / "solutions" / NAME)  # finds solutions/ by itself
    assert report["total"] == report["max_total"] == 6, format_report(report)
    assert [q["status"] for q in report["questions"]] == ["passed"] * 3
    assert [q["notes"] for q in report["questions"]] == [[]] * 3
    assert {q["grade_id"]: q["max_points"] for q in report["questions"]} == POINTS


def test_unanswered_exercise_scores_zero(course):
    path = course / "exercises" / NAME
    before = _stat(path)
    report = grade(path, timeout=30)
    assert report["total"] == 0 and report["max_total"] == 6
    for q in report["questions"]:
        assert q["status"] == "error" and q["message"] == "NotImplementedError: not implemented yet"
    assert _stat(path) == before


def test_syntax_error_and_infinite_loop_cost_only_their_question(course, tmp_path):
    path = make_submission(
        course, "syntax_loop",
        answers={"square": "def square(x):\n    return x *",
                 "cube": "def cube(x):\n    while True:\n        pass",
                 "halve": GOOD["halve"]},
        extra=[(0, "import os, sys\nprint(os.environ['GENCOURSE_PROFILE'], sys.executable, os.getcwd())")],
    )
    before = _stat(path)
    listing = sorted(p.name for p in path.parent.iterdir())
    report = grade(path, course / "solutions", timeout=TIMEOUT, report_dir=tmp_path / "reports",
                   env={"GENCOURSE_PROFILE": "cpu"}, executed_path=tmp_path / "executed.ipynb")
    q = _by_gid(report)
    assert q["test_square"]["status"] == "error"
    assert "NameError: name 'square' is not defined" in q["test_square"]["message"]
    assert "SyntaxError" in q["test_square"]["message"]
    assert q["test_cube"]["status"] == "timeout"
    assert q["test_cube"]["message"] == f"timed out after {TIMEOUT} s"
    assert q["test_halve"]["status"] == "passed"
    assert report["total"] == 3 and report["max_total"] == 6
    assert _stat(path) == before and sorted(p.name for p in path.parent.iterdir()) == listing
    saved = json.loads((tmp_path / "reports" / report_name(path)).read_text())
    assert saved["total"] == 3 and set(saved) >= {"submission", "solution", "total", "max_total",
                                                  "questions", "started", "duration_s"}
    assert set(saved["questions"][0]) >= {"grade_id", "points", "max_points", "status", "message"}
    table = format_report(report)
    assert "test_cube" in table and "timeout" in table and "3 / 6" in table
    # the kernel ran this interpreter, with the caller's profile, in a copy of the folder
    executed = read_notebook(tmp_path / "executed.ipynb")
    profile, executable, cwd = executed.cells[0].outputs[0]["text"].split()
    assert profile == "cpu" and Path(executable).resolve() == Path(sys.executable).resolve()
    assert Path(cwd).name == path.parent.name and Path(cwd).resolve() != path.parent.resolve()
    hidden = [c for c in executed.cells if "BEGIN HIDDEN TESTS" in c.source]
    assert len(hidden) == 3, "the instructor's tests, hidden ones included, were run"


def test_deleted_and_tampered_cells(course):
    path = make_submission(
        course, "tampered",
        answers={"cube": GOOD["cube"], "halve": "def halve(x):\n    return x // 2"},
        tests={"test_halve": "assert True"},  # a weakened test: the instructor's runs instead
        drop=("square", "test_cube"),  # a deleted answer cell; a deleted test cell is put back
        extra=[(1, "open('written_by_student.txt', 'w').write('x')")],
        strip_meta=("test_halve",),  # still recognised (by cell id) as the test it replaces
    )
    before = _stat(path)
    report = grade(path, course / "solutions", timeout=30)
    q = _by_gid(report)
    assert q["test_square"]["status"] == "missing" and q["test_square"]["points"] == 0
    assert "'square' missing" in q["test_square"]["message"]
    assert q["test_cube"]["status"] == "passed" and q["test_cube"]["points"] == 2
    assert any("put back" in n for n in q["test_cube"]["notes"])
    assert q["test_halve"]["status"] == "failed"
    assert q["test_halve"]["message"] == "AssertionError: halve(1) = 0, expected 0.5"
    assert any("modified" in n for n in q["test_halve"]["notes"])
    assert report["total"] == 2
    assert _stat(path) == before
    assert not (path.parent / "written_by_student.txt").exists()


def test_exception_and_dead_kernel(course):
    path = make_submission(
        course, "crash",
        answers={"square": "def square(x):\n    raise ValueError('boom')",
                 "cube": "import os\ndef cube(x):\n    os._exit(1)",
                 "halve": GOOD["halve"]},
    )
    before = _stat(path)
    report = grade(path, course / "solutions", timeout=30)
    q = _by_gid(report)
    assert q["test_square"]["status"] == "error" and q["test_square"]["message"] == "ValueError: boom"
    assert q["test_cube"]["status"] == "error" and "died during the call" in q["test_cube"]["message"]
    # the kernel was restarted and the earlier cells (import math) replayed
    assert q["test_halve"]["status"] == "passed", q["test_halve"]
    assert report["total"] == 3 and report["kernel_restarts"] == 1
    assert _stat(path) == before


def test_loop_that_ignores_interrupts_restarts_the_kernel(course):
    swallow = ("import time\ndef square(x):\n    while True:\n        try:\n            time.sleep(0.05)\n"
               "        except KeyboardInterrupt:\n            pass")
    path = make_submission(course, "swallow", answers={"square": swallow, "cube": GOOD["cube"],
                                                       "halve": GOOD["halve"]})
    report = grade(path, course / "solutions", timeout=2, grace=1)
    q = _by_gid(report)
    assert q["test_square"]["status"] == "timeout"
    assert "did not stop when interrupted" in q["test_square"]["message"]
    assert [q["test_cube"]["status"], q["test_halve"]["status"]] == ["passed", "passed"]
    assert report["total"] == 5 and report["kernel_restarts"] == 1


def test_importing_grading_needs_no_torch_nor_sibling_modules():
    code = (
        "import sys, types\n"
        "pkg = types.ModuleType('gencourse'); pkg.__path__ = [sys.argv[1]]; sys.modules['gencourse'] = pkg\n"
        "import gencourse.grading\n"
        "heavy = {'torch', 'numpy', 'nbformat', 'nbclient', 'jupyter_client'}\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "bad += [m for m in sys.modules if m.startswith('gencourse.') and not m.startswith('gencourse.grading')]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(REPO / "gencourse")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_python3_kernelspec_runs_this_interpreter():
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec("python3").argv
    assert argv[0] in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}") or (
        Path(argv[0]).resolve() == Path(sys.executable).resolve()
    ), argv


# -------------------------------------------------------------------------------------- CLI


def _cli(*args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "gencourse.grading", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_cli_bad_inputs_are_reported_and_the_rest_graded(course, tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "not_json.ipynb").write_text("this is not json")
    (bad / "notes.txt").write_text("hello")
    (bad / "old.ipynb").write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": []}))
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), bad / "00_unknown.ipynb")
    bad_paths = [bad / "missing.ipynb", bad / "not_json.ipynb", bad / "notes.txt", bad / "old.ipynb",
                 bad / "00_unknown.ipynb"]
    snapshot = {p: p.read_bytes() for p in bad.iterdir()}

    # only bad input: exit 2, one clear line each, no traceback, nothing written
    reports = tmp_path / "reports_none"
    result = _cli("grade", *bad_paths, "--solutions", course / "solutions", "--report-dir", reports, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(bad_paths) and all(line.startswith("error: ") for line in lines), result.stderr
    assert "missing.ipynb: no such file" in lines[0]
    assert "not_json.ipynb: not a Jupyter notebook" in lines[1]
    assert "notes.txt: not a notebook file (expected a *.ipynb" in lines[2]
    assert "nbformat 4" in lines[3]
    assert "no matching solution notebook (expected solutions/00_unknown.ipynb" in lines[4]
    assert not reports.exists()
    assert {p: p.read_bytes() for p in bad.iterdir()} == snapshot

    # a good one among bad ones is still graded; JSON on stdout; --solutions found by itself
    # (in-process, to spare a second start of the interpreter)
    monkeypatch.chdir(tmp_path)
    reports = tmp_path / "reports"
    good = course / "exercises" / NAME
    code = cli_main(["grade", str(bad / "missing.ipynb"), str(good), "--report-dir", str(reports), "--json",
                     "--timeout", "30"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.strip() == f"error: {bad / 'missing.ipynb'}: no such file (expected a Jupyter notebook, *.ipynb)"
    report = json.loads(out)
    assert report["total"] == 0 and report["max_total"] == 6
    assert Path(report["solution"]).resolve() == (course / "solutions" / NAME).resolve()
    assert sorted(p.name for p in reports.iterdir()) == [report_name(good)]


@pytest.mark.parametrize("qid", ["generative_models.exp_icdf", "divergences.js_divergence", "diffusion.q_sample",
                                 "diffusion.ddpm_loss", "diffusion.ddpm_step", "diffusion.ddim_step",
                                 "diffusion.guided_eps", "evaluation.kid_unbiased"])
def test_a_chapter_question_left_as_a_stub_is_reported_as_not_implemented(qid):
    def stub(*args):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        check(qid, stub)


# ------------------------------------------------------------------- defects of a broken submission


def test_generated_exercise_has_nbgrader_locks(course):
    cells = _cells_by_id(read_notebook(course / "exercises" / NAME))
    for gid in ("square", "cube", "halve", "why"):
        assert cells[gid].metadata["deletable"] is False and "editable" not in cells[gid].metadata
    for gid in POINTS:
        assert cells[gid].metadata["deletable"] is False and cells[gid].metadata["editable"] is False
    assert "deletable" not in cells["setup"].metadata


def test_moved_answer_wrong_signature_and_failed_hidden_assert_say_what_is_wrong(course):
    path = make_submission(
        course, "misplaced",
        answers={"square": "def square(x):\n    return x", "cube": "def cube(x, y):\n    return x ** 3"},
        drop=("halve",),
        extra=[(99, GOOD["halve"])],  # the answer cell of halve, but after its test
    )
    nb = read_notebook(path)  # put the moved cell back under the answer's grade id
    nb.cells[-1].metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "halve",
                                         "schema_version": 3}
    path.write_text(notebook_to_text(nb), encoding="utf-8")
    q = _by_gid(grade(path, course / "solutions", timeout=30))
    # what came and what was expected, not the test's source
    assert q["test_square"]["status"] == "failed"
    assert q["test_square"]["message"].startswith("AssertionError: got 3; expected 9")
    assert "square(" not in q["test_square"]["message"]
    assert "expected the signature cube(x)" in q["test_cube"]["message"]
    assert "comes after its test cell" in q["test_halve"]["message"] and "NameError" not in q["test_halve"]["message"]


def test_a_notebook_of_another_chapter_is_said_to_match_no_exercise(course):
    folder = course / "empty"
    folder.mkdir(exist_ok=True)
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), folder / NAME)
    report = grade(folder / NAME, course / "solutions", timeout=30)
    assert report["total"] == 0
    assert any("matches none of the exercises" in w for w in report["warnings"])


MANY = 5  # more deaths than the old limit of restarts


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    cells = []
    for k in range(1, MANY + 1):
        cells.append(_answer(f"f{k}", f"def f{k}(x):\n    ### BEGIN SOLUTION\n    return x + {k}\n    ### END SOLUTION"))
        cells.append(_test(f"test_f{k}", f"assert f{k}(1) == {k + 1}", 1))
    (root / "solutions").mkdir()
    nbformat.write(new_notebook(cells=cells), root / "solutions" / "97_many.ipynb")
    generate_all(root / "solutions", root / "exercises")
    return root


def test_every_kernel_death_costs_only_its_question(many):
    nb = read_notebook(many / "exercises" / "97_many.ipynb")
    answers = {"f1": "import os\nos._exit(3)\ndef f1(x):\n    return x + 1"}  # dies in the answer cell
    answers.update({f"f{k}": f"import os\ndef f{k}(x):\n    os._exit(1)" for k in range(2, MANY)})  # in the test
    answers[f"f{MANY}"] = f"def f{MANY}(x):\n    return x + {MANY}"
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    path = many / "sub" / "97_many.ipynb"
    path.parent.mkdir()
    path.write_text(notebook_to_text(nb), encoding="utf-8")
    report = grade(path, many / "solutions", timeout=30)
    q = _by_gid(report)
    assert q[f"test_f{MANY}"]["status"] == "passed" and report["total"] == 1, report["questions"]
    assert "died" in q["test_f1"]["message"] and "died during the call" in q["test_f2"]["message"]
    assert report["kernel_restarts"] >= MANY - 1


def test_reports_are_unique_per_path_and_a_replaced_one_is_said(course, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = make_submission(course, "alice", answers={"square": GOOD["square"]})
    b = make_submission(course, "bob", answers={"cube": GOOD["cube"]})
    reports = tmp_path / "reports"
    assert cli_main(["grade", str(a), str(b), "--report-dir", str(reports), "--timeout", "30"]) == 0
    names = sorted(p.name for p in reports.iterdir())
    assert names == sorted([report_name(a), report_name(b)]) and len(set(names)) == 2
    totals = sorted(json.loads(p.read_text())["total"] for p in reports.iterdir())
    assert totals == [1, 2]
    capsys.readouterr()
    assert cli_main(["grade", str(a), "--report-dir", str(reports), "--timeout", "30"]) == 0
    assert "replaced the earlier report" in capsys.readouterr().out


def test_visible_check_applies_the_hidden_tests_contract():
    import numpy as np
    import torch

    def ks(dtype):
        def ks_statistic(samples, cdf):
            x = samples.flatten().sort().values.to(dtype)
            n = x.numel()
            F = cdf(x).to(dtype)
            i = torch.arange(1, n + 1, dtype=dtype)
            return torch.maximum(i / n - F, F - (i - 1) / n).max().item()

        return ks_statistic

    assert check("generative_models.ks_statistic", ks(torch.float64))
    with pytest.raises(AssertionError, match="float64"):
        check("generative_models.ks_statistic", ks(torch.float32))
    with pytest.raises(AssertionError, match="should be a torch.Tensor .* got numpy.ndarray"):
        check("generative_models.exp_icdf", lambda u, rate: -np.log1p(-u.numpy()) / rate)


@pytest.mark.parametrize("qid", ["gans.discriminator_step", "dcgan.generator_block", "optimal_transport.gradient_penalty"])
def test_checks_leave_the_global_random_state_alone(qid):
    import random

    import numpy as np
    import torch

    from gencourse import train, transport

    answers = {
        "gans.discriminator_step": lambda G, D, opt, x, z: train.d_step(G, D, opt, x, z),
        "dcgan.generator_block": lambda a, b: torch.nn.Sequential(
            torch.nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), torch.nn.BatchNorm2d(b), torch.nn.ReLU()),
        "optimal_transport.gradient_penalty": lambda critic, xr, xf, u: transport.gradient_penalty(critic, xr, xf, u=u),
    }
    torch.manual_seed(123)
    np.random.seed(7)
    random.seed(5)
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    try:
        check(qid, answers[qid])
    except AssertionError:
        pass  # the verdict does not matter here, only the random state
    assert torch.equal(torch.get_rng_state(), before[0])
    assert (np.random.get_state()[1] == before[1]).all() and random.getstate() == before[2]


def test_a_passing_check_leaves_no_result_output_for_nbgrader():
    """nbgrader reads an execute_result of a test cell as partial credit: a cell ending in
    check(...) must show only the check's line."""
    from nbclient import NotebookClient

    nb = new_notebook(cells=[
        new_code_cell("from gencourse.grading import check, register, expect\n@register('t.one')\n"
                      "def _(f):\n    expect(f(1) == 1, 'f(1) should be 1')"),
        new_code_cell("check('t.one', lambda x: x)"),
    ])
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    assert [o["output_type"] for o in nb.cells[1].outputs] == ["stream"]
