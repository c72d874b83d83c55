"""A teacher's term: release, a class folder graded in parallel, the gradebook, the per-question
summary, the feedback files, and a second run that keeps the first one's results.

The class is 30 submissions of chapter 07 (DCGAN, the quickest chapter to grade under the smoke
profile: about 4 s a submission), made from the solution and the broken probes of
test_grading.py (an untouched exercise, an infinite loop, a crash, a missing answer cell, a
cheat). Each probe is graded alone once, and every student's grade in the class must be the
grade of that probe alone. That one class run takes about two minutes on two cores; the
comparison of --jobs 1 with --jobs 2 on the same class is benchmarks/teacher_class.py
(results: benchmarks/results/teacher_class.md). That submissions really overlap is shown on a
tiny chapter whose answers sleep. Layouts are parsed without grading anything.
"""

from __future__ import annotations

import csv
import json
import time
import zipfile
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from gencourse.grading import generate_exercise, grade
from gencourse.grading.__main__ import main as cli_main
from gencourse.grading.generate import notebook_to_text, read_notebook
from gencourse.grading.teacher import (
    discover,
    feedback_markdown,
    feedback_name,
    gradebook_table,
    match_chapter,
    parse_student,
    question_summary,
    resolve_chapters,
    write_csv,
)

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
CHAPTER = "07_dcgan"
TIMEOUT, GRACE = 12, 2  # per cell: what the infinite loop costs; the slowest honest cell takes ~3 s on a busy machine
#: the class: how many students hand in each kind of submission (30 in all)
CLASS = {"solution": 8, "untouched": 6, "loop": 3, "crash": 4, "missing": 4, "cheat": 5}


# ------------------------------------------------------------------------------- submissions


def _by_gid(nb):
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}


def probe(kind: str):
    """The notebook a student of this kind hands in (chapter 07)."""
    sol = read_notebook(SOLUTIONS / f"{CHAPTER}.ipynb")
    if kind == "untouched":
        return generate_exercise(sol)
    cells = _by_gid(sol)
    if kind == "loop":  # output_size never returns: that question times out
        cells["output_size"].source = "def output_size(n, k, s, p):\n    while True:\n        pass"
    elif kind == "crash":  # the student's process dies in the call: restarted, the rest graded
        cells["conv_transpose"].source = "import os\n\ndef conv_transpose(x, w, stride):\n    os._exit(1)"
    elif kind == "missing":  # an answer cell deleted
        sol.cells = [c for c in sol.cells if c is not cells["generator_block"]]
    elif kind == "cheat":  # check shadowed, the test cell emptied, a wrong answer
        cells["receptive_field"].source = "check = lambda *a, **k: True\n\ndef receptive_field(layers):\n    return 0"
        cells["test_receptive_field"].source = "pass"
    elif kind != "solution":
        raise ValueError(kind)
    return sol


def write_probe(kind: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(notebook_to_text(probe(kind)), encoding="utf-8")
    return path


def build_class(root: Path, counts: dict[str, int] = CLASS) -> dict[str, tuple[str, str]]:
    """Write a class folder in three layouts at once: a subfolder per student, nbgrader's
    ``<student>/<assignment>/`` and Moodle's flat file names. Returns ``{student: (kind, lms_id)}``."""
    kinds = [kind for kind, n in counts.items() for _ in range(n)]
    students = {}
    for i, kind in enumerate(kinds):
        if i % 3 == 0:
            name, pid = f"Student {i:02d}", str(1000 + i)
            write_probe(kind, root / f"{name}_{pid}_assignsubmission_file_{CHAPTER}.ipynb")
            students[f"{name}_{pid}"] = (kind, pid)
        elif i % 3 == 1:
            write_probe(kind, root / f"s{i:02d}" / f"{CHAPTER}.ipynb")
            students[f"s{i:02d}"] = (kind, "")
        else:
            write_probe(kind, root / f"s{i:02d}" / "ps07" / f"{CHAPTER}.ipynb")
            students[f"s{i:02d}"] = (kind, "")
    return students


def _marks(report):
    return [(q["grade_id"], q["points"], q["status"]) for q in report["questions"]]


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _hidden_test_lines() -> list[str]:
    """The longer lines of chapter 07's hidden tests, which no feedback may show."""
    lines = []
    for cell in read_notebook(SOLUTIONS / f"{CHAPTER}.ipynb").cells:
        inside = False
        for line in cell.source.split("\n"):
            if "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) > 20:
                lines.append(line.strip())
    return lines


# ------------------------------------------------------------------------------------ the class


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """Each kind of submission graded by itself."""
    root = tmp_path_factory.mktemp("alone")
    return {kind: grade(write_probe(kind, root / kind / f"{CHAPTER}.ipynb"), SOLUTIONS, timeout=TIMEOUT, grace=GRACE)
            for kind in CLASS}


def test_the_probes_are_what_they_say(alone):
    maximum = alone["solution"]["max_total"]
    assert alone["solution"]["total"] == maximum == 17
    assert alone["untouched"]["total"] == 0
    status = {kind: {gid: s for gid, _, s in _marks(r)} for kind, r in alone.items()}
    assert status["loop"]["test_output_size"] == "timeout" and alone["loop"]["total"] == maximum - 1
    crashed = next(q for q in alone["crash"]["questions"] if q["grade_id"] == "test_conv_transpose")
    assert crashed["points"] == 0 and "died during the call" in crashed["message"] and alone["crash"]["kernel_restarts"] >= 1
    assert alone["crash"]["total"] == maximum - 4
    assert status["missing"]["test_generator_block"] == "missing" and alone["missing"]["total"] == maximum - 3
    assert status["cheat"]["test_receptive_field"] == "failed" and alone["cheat"]["total"] == maximum - 3


def test_a_class_graded_in_parallel_gets_each_grade_it_gets_alone(alone, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    students = build_class(tmp_path / "class")
    assert len(students) == 30
    reports_dir = tmp_path / "reports"
    t0 = time.monotonic()
    code = cli_main(["grade", "class", "--solutions", str(SOLUTIONS), "--jobs", "2", "--timeout", str(TIMEOUT),
                     "--grace", str(GRACE), "--report-dir", str(reports_dir)])
    wall = time.monotonic() - t0
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err
    reports = [json.loads(p.read_text()) for p in reports_dir.glob("*.json")]
    assert len(reports) == 30
    by_student = {r["student"]: r for r in reports}
    assert set(by_student) == set(students)
    for student, (kind, _) in students.items():
        assert _marks(by_student[student]) == _marks(alone[kind]), (student, kind, by_student[student]["questions"])
        assert by_student[student]["total"] == alone[kind]["total"]
    # no submission waited for the loops beyond its own time limit: the class took less than
    # grading it one after the other would have
    assert wall < sum(r["duration_s"] for r in reports), wall

    # the gradebook: one row per student and chapter, the points of the reports
    rows = _read_csv(reports_dir / "gradebook.csv")
    assert len(rows) == 30 and {(r["student"], r["chapter"]) for r in rows} == {(s, CHAPTER) for s in students}
    qcols = [f"dcgan.{q['grade_id']}" for q in reports[0]["questions"]]
    assert list(rows[0]) == ["student", "chapter", *qcols, "total", "max", "status", "warnings", "lms_id", "submission"]
    for row in rows:
        report = by_student[row["student"]]
        assert [float(row[c]) for c in qcols] == [q["points"] for q in report["questions"]]
        assert (float(row["total"]), float(row["max"]), row["status"]) == (report["total"], report["max_total"], "graded")
        assert row["lms_id"] == students[row["student"]][1]
        assert Path(row["submission"]).name.endswith(f"{CHAPTER}.ipynb")

    # the per-question summary says what the reports say
    summary = {r["question"]: r for r in _read_csv(reports_dir / "summary.csv")}
    assert list(summary) == [q["grade_id"] for q in reports[0]["questions"]]
    for gid, row in summary.items():
        qs = [q for r in reports for q in r["questions"] if q["grade_id"] == gid]
        failures = Counter(q["message"] for q in qs if q["points"] < q["max_points"])
        assert int(row["graded"]) == 30
        assert float(row["mean_points"]) == pytest.approx(sum(q["points"] for q in qs) / 30, abs=0.005)
        assert float(row["full_marks"]) == pytest.approx(sum(q["points"] == q["max_points"] for q in qs) / 30, abs=1e-4)
        assert int(row["not_full"]) == sum(failures.values())
        top = max(failures.values())
        assert int(row["most_frequent_failure_count"]) == top
        assert row["most_frequent_failure"] == min(m for m, n in failures.items() if n == top)
        assert f"| {gid} |" in out and f"| {gid} |" in (reports_dir / "summary.md").read_text()
    untouched = CLASS["untouched"]
    assert int(summary["test_output_size"]["not_full"]) == untouched + CLASS["loop"]

    # a feedback file per student: the points and messages, never the hidden tests' source
    feedback = sorted((reports_dir / "feedback").glob("*.md"))
    assert len(feedback) == 30
    hidden = _hidden_test_lines()
    assert len(hidden) > 10
    for path in feedback:
        text = path.read_text(encoding="utf-8")
        plain = text.replace("&lt;", "<").replace("&gt;", ">").replace("\\|", "|")
        assert not [line for line in hidden if line in text or line in plain], path
    loop_student = next(s for s, (kind, _) in students.items() if kind == "loop")
    text = (reports_dir / "feedback" / f"{loop_student}.md").read_text(encoding="utf-8")
    assert f"## {CHAPTER}: 16 / 17 points" in text and f"| test_output_size | 0 / 1 | timeout | timed out after {TIMEOUT} s" in text
    moodle = next(s for s in students if s.startswith("Student"))
    assert (reports_dir / "feedback" / f"{moodle.replace(' ', '_')}.md").is_file()


# --------------------------------------------------------------------------- a tiny chapter


def _answer(gid, source):
    return new_code_cell(source, id=f"ans-{gid}", metadata={"nbgrader": {
        "solution": True, "grade": False, "locked": False, "grade_id": gid, "schema_version": 3}})


def _test(gid, source, points):
    return new_code_cell(source, id=f"test-{gid}", metadata={"nbgrader": {
        "solution": False, "grade": True, "locked": True, "grade_id": gid, "points": points, "schema_version": 3}})


NAP = 4.0  # seconds each submission sleeps


@pytest.fixture
def toy(tmp_path):
    """A plain-Python chapter (99_nap) whose answer sleeps NAP seconds, and a class of two."""
    (tmp_path / "solutions").mkdir()
    nb = new_notebook(cells=[
        _answer("nap", f"import time\ntime.sleep({NAP})\ndef nap(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"),
        _test("test_nap", "assert nap(1) == 1", 1),
        _answer("double", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
        _test("test_double", "assert double(2) == 4\n### BEGIN HIDDEN TESTS\nassert double(-3) == -6\n### END HIDDEN TESTS", 2),
    ])
    nbformat.write(nb, tmp_path / "solutions" / "99_nap.ipynb")
    for student in ("ann", "ben"):
        (tmp_path / "class" / student).mkdir(parents=True)
        nbformat.write(nb, tmp_path / "class" / student / "99_nap.ipynb")
    return tmp_path


def test_submissions_really_run_at_the_same_time(toy, monkeypatch, capsys):
    monkeypatch.chdir(toy)
    t0 = time.monotonic()
    assert cli_main(["grade", "class", "--jobs", "2", "--timeout", "30"]) == 0
    wall = time.monotonic() - t0
    reports = [json.loads(p.read_text()) for p in (toy / "grading-reports").glob("*.json")]
    assert sorted(r["total"] for r in reports) == [3, 3]
    durations = [r["duration_s"] for r in reports]
    assert min(durations) > NAP
    # one after the other, the run would take at least the sum of the two gradings
    assert wall < 0.8 * sum(durations), (wall, durations)
    out = capsys.readouterr().out
    assert "with 2 job(s)" in out and "[2/2]" in out


def test_a_second_run_keeps_the_first_runs_results(toy, monkeypatch, capsys):
    monkeypatch.chdir(toy)
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), toy / "class" / "ben" / "99_nap.ipynb")
    assert cli_main(["grade", "class", "--jobs", "2", "--timeout", "30", "--gradebook", "book.csv"]) == 0
    first = (toy / "book.csv").read_bytes()
    first_feedback = (toy / "grading-reports" / "feedback" / "ben.md").read_text()
    assert "0 / 3 points" in first_feedback
    capsys.readouterr()
    # ben hands in the right answers, and the class is graded again
    nbformat.write(read_notebook(toy / "solutions" / "99_nap.ipynb"), toy / "class" / "ben" / "99_nap.ipynb")
    assert cli_main(["grade", "class", "--jobs", "2", "--timeout", "30", "--gradebook", "book.csv"]) == 0
    out = capsys.readouterr().out
    earlier = [p for p in (toy / "grading-reports" / "earlier").iterdir()]
    assert len(earlier) == 1 and f"kept the earlier results in {Path('grading-reports') / 'earlier' / earlier[0].name}/" in out
    assert (earlier[0] / "book.csv").read_bytes() == first
    assert (earlier[0] / "feedback" / "ben.md").read_text() == first_feedback
    assert len(list(earlier[0].glob("*.json"))) == 2 and (earlier[0] / "summary.md").is_file()
    assert {r["student"]: r["total"] for r in _read_csv(toy / "book.csv")} == {"ann": "3", "ben": "3"}
    assert "3 / 3 points" in (toy / "grading-reports" / "feedback" / "ben.md").read_text()
    assert not (toy / "grading-reports" / "book.csv").exists()


def test_notebooks_given_with_jobs_are_reported_in_the_order_given(toy, monkeypatch, capsys):
    monkeypatch.chdir(toy)
    files = [str(toy / "class" / s / "99_nap.ipynb") for s in ("ben", "ann")]
    assert cli_main(["grade", *files, "--jobs", "2", "--timeout", "30"]) == 0
    out = capsys.readouterr().out
    assert out.index("class/ben/99_nap") < out.index("class/ann/99_nap")
    assert out.count("report: ") == 2 and "gradebook" not in out
    assert not (toy / "grading-reports" / "gradebook.csv").exists()


# -------------------------------------------------------------------------------------- errors


def test_clear_errors_exit_2_without_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no notebooks here")
    (tmp_path / "a.ipynb").write_text("{}")
    cases = {
        ("grade", "no_such_folder", "--solutions", str(SOLUTIONS)): "no_such_folder: no such file or folder",
        ("grade", "empty", "--solutions", str(SOLUTIONS)): "no chapter notebook found in empty",
        ("grade", "empty"): "no solutions/ folder in or above empty",
        ("grade", "empty", "a.ipynb"): "give either notebooks or class folders, not both",
        ("grade", "empty", "--jobs", "0"): "--jobs must be at least 1",
        ("grade", "a.ipynb", "--gradebook", "g.csv"): "--gradebook is written when grading class folders",
        ("release", "vea", "--out", "rel", "--solutions", str(SOLUTIONS)): "unknown chapter 'vea' (did you mean 'vae'?)",
        ("release", "dcgan", "--out", "rel", "--solutions", "nowhere"): "nowhere: no such solutions folder",
    }
    for argv, message in cases.items():
        assert cli_main(list(argv)) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "rel").exists()


# ------------------------------------------------------------------------------------- release


def test_release_writes_the_generated_notebooks_and_a_readme(tmp_path, capsys):
    out = tmp_path / "release"
    assert cli_main(["release", "dcgan", "00", "04_vae.ipynb", "--out", str(out), "--solutions", str(SOLUTIONS)]) == 0
    names = ["07_dcgan.ipynb", "00_generative_models.ipynb", "04_vae.ipynb"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "README.md"])
    for name in names:  # exactly what `generate` writes
        assert (out / name).read_text(encoding="utf-8") == notebook_to_text(generate_exercise(read_notebook(SOLUTIONS / name)))
    readme = (out / "README.md").read_text(encoding="utf-8")
    for text in ("`07_dcgan.ipynb` | 6 | 17", 'check("dcgan.conv_transpose", conv_transpose)', "What not to edit",
                 "file name unchanged", "One notebook per chapter", "Restart"):
        assert text in readme, text
    assert "BEGIN SOLUTION" not in readme
    assert capsys.readouterr().out.count("wrote ") == 4
    assert cli_main(["release", "dcgan", "--out", str(out), "--solutions", str(SOLUTIONS)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"unchanged {out / '07_dcgan.ipynb'}", f"replaced {out / 'README.md'}"]

    assert cli_main(["release", "generative_models", "--out", str(tmp_path / "term1"), "--zip", "--solutions", str(SOLUTIONS)]) == 0
    with zipfile.ZipFile(tmp_path / "term1.zip") as zf:
        assert sorted(zf.namelist()) == ["term1/00_generative_models.ipynb", "term1/README.md"]
        assert zf.read("term1/00_generative_models.ipynb") == (out / "00_generative_models.ipynb").read_bytes()
    assert resolve_chapters(["VAE", "4", "04_vae"], SOLUTIONS) == [SOLUTIONS / "04_vae.ipynb"]


# ------------------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("prefix, student, lms_id, late", [
    ("Student Name_12345_assignsubmission_file_", "Student Name_12345", "12345", False),
    ("Student Name_12345_assignsubmission_file", "Student Name_12345", "12345", False),
    ("studentname_12345_67890_", "studentname_12345", "12345", False),
    ("studentname_LATE_12345_67890_", "studentname_12345", "12345", True),
    ("alice-", "alice", "", False),
    ("alice_12345", "alice_12345", "", False),
    ("Bob Lee", "Bob Lee", "", False),
])
def test_student_names_from_lms_prefixes(prefix, student, lms_id, late):
    got, got_id, notes = parse_student(prefix)
    assert (got, got_id, bool(notes)) == (student, lms_id, late)


@pytest.mark.parametrize("filename, expected", [
    ("04_vae.ipynb", ("04_vae", "", 0)),
    ("04_VAE.ipynb", ("04_vae", "", 0)),
    ("04_vae-1.ipynb", ("04_vae", "", 1)),
    ("04_vae (2).ipynb", ("04_vae", "", 2)),
    ("Student Name_12345_assignsubmission_file_04_vae.ipynb", ("04_vae", "Student Name_12345_assignsubmission_file", 0)),
    ("studentname_12345_67890_04_vae-1.ipynb", ("04_vae", "studentname_12345_67890", 1)),
    ("studentname_12345_67890_14_vae.ipynb", None),  # another chapter's number
    ("x04_vae.ipynb", None),  # no separator
    ("vae.ipynb", None),
    ("04_vae.py", None),
])
def test_chapter_from_file_name(filename, expected):
    assert match_chapter(filename, ["04_vae", "07_dcgan", "14_evaluation"]) == expected


def test_class_layouts(tmp_path):
    root = tmp_path / "class"
    files = [
        "alice/07_dcgan.ipynb",  # a folder per student
        "bob/ps07/07_dcgan.ipynb",  # nbgrader: <student>/<assignment>/
        "bob/ps04/04_vae.ipynb",
        "carol/07_dcgan.ipynb",  # two notebooks of a chapter: the resubmission is graded
        "carol/07_DCGAN-2.ipynb",
        "Dan Smith_123_assignsubmission_file_/07_dcgan.ipynb",  # Moodle, downloaded in folders
        "Eve Jones_456_assignsubmission_file_07_dcgan.ipynb",  # Moodle, flat
        "frankmiller_789_1011_07_dcgan.ipynb",  # Canvas
        "frankmiller_789_1012_04_vae.ipynb",
        "gracehopper_LATE_111_222_07_dcgan-1.ipynb",  # Canvas, late, resubmitted
        "heidi-07_dcgan.ipynb",  # any other prefix
        "07_dcgan.ipynb",  # whose?
        "ivan/my_notebook.ipynb",  # named like no chapter
        "notes.txt",
        ".ipynb_checkpoints/zed-07_dcgan.ipynb",
        "alice/.ipynb_checkpoints/07_dcgan-checkpoint.ipynb",
        "reports/x_07_dcgan.ipynb",
    ]
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}")
    found = discover(root, ["04_vae", "07_dcgan"], exclude=[root / "reports"])
    got = {(s.student, s.chapter): (s.path.relative_to(root).as_posix(), s.lms_id, s.shared_folder) for s in found.submissions}
    assert got == {
        ("alice", "07_dcgan"): ("alice/07_dcgan.ipynb", "", False),
        ("bob", "07_dcgan"): ("bob/ps07/07_dcgan.ipynb", "", False),
        ("bob", "04_vae"): ("bob/ps04/04_vae.ipynb", "", False),
        ("carol", "07_dcgan"): ("carol/07_DCGAN-2.ipynb", "", False),
        ("Dan Smith_123", "07_dcgan"): ("Dan Smith_123_assignsubmission_file_/07_dcgan.ipynb", "123", False),
        ("Eve Jones_456", "07_dcgan"): ("Eve Jones_456_assignsubmission_file_07_dcgan.ipynb", "456", True),
        ("frankmiller_789", "07_dcgan"): ("frankmiller_789_1011_07_dcgan.ipynb", "789", True),
        ("frankmiller_789", "04_vae"): ("frankmiller_789_1012_04_vae.ipynb", "789", True),
        ("gracehopper_111", "07_dcgan"): ("gracehopper_LATE_111_222_07_dcgan-1.ipynb", "111", True),
        ("heidi", "07_dcgan"): ("heidi-07_dcgan.ipynb", "", True),
    }
    assert sorted(found.students) == sorted({s for s, _ in got} | {"ivan"})
    assert [(s, p.relative_to(root).as_posix()) for s, p, _ in found.unrecognised] == [
        (None, "07_dcgan.ipynb"), ("ivan", "ivan/my_notebook.ipynb")]
    assert [(a.path.name, b.path.name) for a, b in found.duplicates] == [("07_dcgan.ipynb", "07_DCGAN-2.ipynb")]
    grace = next(s for s in found.submissions if s.student == "gracehopper_111")
    assert any("late" in n for n in grace.notes)
    # nbgrader's course folder: submitted/<student>/<assignment>/<notebook>, submitted/ given
    for name in ("submitted/zoe/ps07/07_dcgan.ipynb", "submitted/yan/ps07/07_dcgan.ipynb", "submitted/yan/ps04/04_vae.ipynb"):
        (tmp_path / "course" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "course" / name).write_text("{}")
    nested = discover(tmp_path / "course" / "submitted", ["04_vae", "07_dcgan"])
    assert [(s.student, s.chapter) for s in nested.submissions] == [("yan", "04_vae"), ("yan", "07_dcgan"), ("zoe", "07_dcgan")]


def test_the_help_says_which_layouts_are_accepted(capsys):
    with pytest.raises(SystemExit):
        cli_main(["grade", "--help"])
    out = capsys.readouterr().out
    for text in ("DIR/<student>/<NN_name>.ipynb", "DIR/<student>/<assignment>/<NN_name>.ipynb", "(Moodle)", "(Canvas)",
                 "--jobs", "gradebook.csv", "not submitted", "earlier/"):
        assert text in out, text


def test_gradebook_rows_of_every_status_and_their_feedback(tmp_path):
    questions = {"07_dcgan": [("test_a", 2), ("test_b", 1)], "04_vae": [("test_c", 3)]}
    report = {"total": 2, "max_total": 3, "kernel_restarts": 1, "warnings": [], "questions": [
        {"grade_id": "test_a", "points": 2, "max_points": 2, "status": "passed", "message": "", "notes": []},
        {"grade_id": "test_b", "points": 0, "max_points": 1, "status": "failed", "notes": ["test cell was modified"],
         "message": "AssertionError: got [1 | 2]; expected <3>"}]}
    entries = [
        {"student": "=ann", "chapter": "07_dcgan", "status": "graded", "report": report, "warnings": [], "lms_id": "7",
         "submission": "class/=ann/07_dcgan.ipynb"},
        {"student": "=ann", "chapter": "04_vae", "status": "not submitted", "report": None,
         "warnings": ["not graded: vae.ipynb is named like no chapter notebook"], "lms_id": "7", "submission": ""},
        {"student": "bob", "chapter": "07_dcgan", "status": "error", "report": None,
         "warnings": ["class/bob/07_dcgan.ipynb: not a Jupyter notebook"], "lms_id": "", "submission": "class/bob/07_dcgan.ipynb"},
    ]
    header, rows = gradebook_table(entries, questions)
    assert header == ["student", "chapter", "vae.test_c", "dcgan.test_a", "dcgan.test_b", "total", "max", "status", "warnings",
                      "lms_id", "submission"]
    write_csv(tmp_path / "g.csv", header, rows)
    got = [[r[k] for k in ("student", "chapter", "vae.test_c", "dcgan.test_a", "dcgan.test_b", "total", "max", "status")]
           for r in _read_csv(tmp_path / "g.csv")]
    assert got == [
        ["'=ann", "04_vae", "", "", "", "0", "3", "not submitted"],  # a name a spreadsheet would run stays text
        ["'=ann", "07_dcgan", "", "2", "0", "2", "3", "graded"],
        ["bob", "07_dcgan", "", "", "", "", "3", "error"],
    ]
    summary = question_summary(entries, questions)
    assert [(s["question"], s["graded"], s["mean_points"], s["full_marks"], s["most_frequent_failure_count"]) for s in summary] == [
        ("test_c", 0, "", "", 0), ("test_a", 1, 2, 1, 0), ("test_b", 1, 0, 0, 1)]
    text = feedback_markdown("=ann", entries[:2])
    assert "## 07_dcgan: 2 / 3 points" in text and "## 04_vae: not submitted (0 points)" in text
    assert r"AssertionError: got [1 \| 2]; expected &lt;3&gt; (test cell was modified)" in text
    assert "restarted 1 time(s)" in text and "vae.ipynb is named like no chapter notebook" in text
    assert "## 07_dcgan: not graded" in feedback_markdown("bob", entries[2:])
    taken: set[str] = set()
    assert [feedback_name(s, taken) for s in ("Ann Lee", "ann lee", "Zoë/../x")] == ["Ann_Lee.md", "ann_lee-2.md", "Zoë_.._x.md"]
