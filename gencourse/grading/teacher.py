"""A teacher's term on top of the grader: release the exercises, grade a whole class in parallel,
and write a gradebook, a per-question summary and a feedback file per student.

    python -m gencourse.grading release vae dcgan --out release [--zip]
    python -m gencourse.grading grade submissions/ --jobs 2

* :func:`release` writes the student notebooks of some chapters (generated from ``solutions/``
  exactly as ``generate`` does) with a README for the students, into a folder or a zip file.
* :func:`discover` finds the submissions of a class folder (the layouts: :data:`LAYOUTS`) and
  tells which student and which chapter each notebook is.
* :func:`run_parallel` grades prepared submissions on a few threads, each submission still in its
  own worker process, kernels and scratch copy (:func:`.grader.run`): a submission that hangs
  holds one thread for its own time limit, never the others.
* :func:`gradebook_table`, :func:`question_summary` and :func:`feedback_markdown` turn the
  reports into the gradebook (CSV, one row per student and chapter), what the class found hard,
  and what each student reads: each question's points and the message ``check`` would have shown,
  never a hidden test's source (the reports hold none).
* :func:`keep_earlier` moves the results of an earlier run of the same class into
  ``earlier/<time>/`` of the report folder before they would be replaced.

Importing this module costs only the standard library (nbformat loads when notebooks are read).
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .build import GradingInputError, chapter_name, grade_id, is_test, points
from .grader import _COPY_IGNORE, resume, stop_all
from .score import num

__all__ = [
    "LAYOUTS",
    "GRADEBOOK_STATUSES",
    "UnknownChapterError",
    "chapter_index",
    "resolve_chapters",
    "chapter_questions",
    "release",
    "student_readme",
    "Submission",
    "Discovery",
    "parse_student",
    "match_chapter",
    "discover",
    "run_parallel",
    "gradebook_table",
    "write_csv",
    "question_summary",
    "summary_markdown",
    "feedback_markdown",
    "feedback_name",
    "keep_earlier",
]

#: How a class folder may be laid out (the ``--help`` of ``grade`` and the README say the same).
LAYOUTS = """\
A class folder may hold, in any mix:
  DIR/<student>/<NN_name>.ipynb              one subfolder per student
  DIR/<student>/<assignment>/<NN_name>.ipynb nbgrader's submitted/ folder (give submitted/ as DIR)
  DIR/<prefix><NN_name>.ipynb                one file per student and chapter, as LMS exports name
                                             them; the student is the prefix, e.g.
      Student Name_12345_assignsubmission_file_04_vae.ipynb (Moodle)  -> Student Name_12345
      studentname_12345_67890_04_vae.ipynb                  (Canvas)  -> studentname_12345
      alice-04_vae.ipynb                                    (other)   -> alice
<NN_name> is a solution notebook's name (04_vae), in any case, possibly followed by a
resubmission number (04_vae-1.ipynb, 04_vae (2).ipynb). Moodle's "_assignsubmission_file"
and Canvas's attachment id and "_LATE" are dropped from the student's name (Canvas's late
submissions get a warning); the number (Moodle's participant id, Canvas's user id) goes to the
gradebook's lms_id column. A student folder may have a Moodle name too
(Student Name_12345_assignsubmission_file_/04_vae.ipynb). Hidden folders, .ipynb_checkpoints and
the report folder are skipped; a notebook named like no chapter is listed and not graded."""

#: The gradebook's status column: graded (points below), error (the submission could not be
#: read or graded: see warnings; no points), not submitted (no notebook of that chapter: 0 points).
GRADEBOOK_STATUSES = ("graded", "error", "not submitted")

_SEPARATORS = "_- ."
_MOODLE = re.compile(r"^(?P<name>.*?)_(?P<id>\d+)_assign(?:submission|feedback)_[a-z]+_*$")
_CANVAS = re.compile(r"^(?P<name>[^_]+?)(?P<late>_LATE)?_(?P<uid>\d+)_(?P<aid>\d+)$")
_RESUBMISSION = re.compile(r"^(?P<stem>.+?)(?:-(?P<a>\d+)| ?\((?P<b>\d+)\))$")
_SKIP_DIRS = set(_COPY_IGNORE) | {"__MACOSX"}


class UnknownChapterError(GradingInputError):
    """A chapter named on the command line that has no solution notebook."""


# ----------------------------------------------------------------------------------- chapters


def chapter_index(solutions: str | Path) -> dict[str, Path]:
    """The solution notebooks of a folder (or the one notebook given), by stem: ``{"04_vae": path}``.

    Raises :class:`GradingInputError` when there is no such folder or it holds no notebook.
    """
    solutions = Path(solutions)
    if solutions.is_file():
        return {solutions.stem: solutions}
    if not solutions.is_dir():
        raise GradingInputError(f"{solutions}: no such solutions folder (expected the instructor notebooks, "
                                "solutions/NN_name.ipynb; use --solutions DIR)")
    found = {p.stem: p for p in sorted(solutions.glob("*.ipynb"))}
    if not found:
        raise GradingInputError(f"{solutions}: holds no solution notebook (*.ipynb)")
    return found


def _names(stem: str) -> set[str]:
    names = {stem.lower(), f"{stem.lower()}.ipynb", chapter_name(stem).lower()}
    head = stem.partition("_")[0]
    if head.isdigit():
        names |= {head, str(int(head))}
    return names


def resolve_chapters(names: Iterable[str], solutions: str | Path) -> list[Path]:
    """The solution notebooks for chapter names as a teacher types them: ``vae``, ``04_vae``,
    ``04_vae.ipynb`` or ``04``. Raises :class:`UnknownChapterError` listing the valid names."""
    index = chapter_index(solutions)
    out: list[Path] = []
    for name in names:
        key = name.strip().lower()
        hits = [path for stem, path in index.items() if key in _names(stem)]
        if not hits:
            valid = ", ".join(f"{chapter_name(stem)} ({stem})" for stem in index)
            close = difflib.get_close_matches(key, sorted({n for stem in index for n in _names(stem) if not n.isdigit()}), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownChapterError(f"unknown chapter {name!r}{hint}; valid chapters: {valid}")
        if hits[0] not in out:
            out.append(hits[0])
    return out


def chapter_questions(solution: str | Path) -> list[tuple[str, float]]:
    """``[(grade_id, max_points)]`` of a solution notebook's graded test cells, in its order."""
    from .generate import NotebookReadError, read_notebook

    try:
        nb = read_notebook(solution)
    except NotebookReadError as exc:
        raise GradingInputError(f"solution notebook: {exc}") from None
    out: dict[str, float] = {}
    for cell in nb.cells:
        if is_test(cell):
            out.setdefault(grade_id(cell), points(cell))
    return list(out.items())


# ------------------------------------------------------------------------------------ release


def student_readme(solutions: list[Path]) -> str:
    """The README of a release: how to work on the notebooks, what not to edit, how to submit."""
    rows = []
    for path in solutions:
        qs = chapter_questions(path)
        rows.append(f"| `{path.name}` | {len(qs)} | {num(sum(p for _, p in qs)):g} |")
    example = solutions[0].name if solutions else "04_vae.ipynb"
    call = _first_check(solutions[0]) if solutions else None
    call = call or 'check("vae.reparameterize", reparameterize)'
    return "\n".join([
        "# Exercises",
        "",
        "| notebook | questions | points |",
        "| --- | --- | --- |",
        *rows,
        "",
        "## Working on a notebook",
        "",
        "- Open the notebook in Jupyter (JupyterLab, Notebook, VS Code) where the course's `gencourse` library is",
        "  installed, or in Colab (its first cell installs the library there).",
        "- Fill in every cell marked `# YOUR CODE HERE`, and delete the `raise NotImplementedError()` line.",
        f"- Run the cell below each answer. It calls `check`, e.g. `{call}`,",
        "  which prints a line starting with ✔ when your answer passes, and otherwise says what is wrong",
        "  (the value that came, the value expected). The grader runs the same checks and a few hidden",
        "  ones: a passing `check` is a good sign, not a guarantee.",
        "- Before you submit, restart the kernel and run all cells (Kernel > Restart & Run All): the grader",
        "  runs your notebook from top to bottom in a fresh process, with a time limit per cell.",
        "",
        "## What not to edit",
        "",
        "- The cells that call `check` (the test cells) are locked: the grader always runs its own copy of",
        "  them, so a changed or deleted test cell changes nothing.",
        "- Do not delete, split or merge the answer cells, do not rename the functions and variables they",
        "  define, and keep each answer above its test cell.",
        "- Write the answers yourself: calling the course library's own implementation of what a question",
        "  asks for earns no points.",
        "- Use only files of your notebook's folder, and download nothing: the grader may run without network.",
        "",
        "## How to submit",
        "",
        f"- Submit the notebook itself, with its file name unchanged (`{example}`): the grader tells the",
        "  chapters apart by file name. A name your course platform adds in front is fine.",
        "- One notebook per chapter: no zip file, no copies (`Copy of ...`), no other formats (.py, .html, .pdf).",
        "- Save it first. Outputs do not matter: the grader runs the notebook again.",
        "",
    ])


def _first_check(solution: Path) -> str | None:
    """The first line of the first test cell that calls ``check``: an example for the README."""
    from .generate import read_notebook

    for cell in read_notebook(solution).cells:
        first = cell.source.split("\n", 1)[0].strip()
        if is_test(cell) and first.startswith("check("):
            return first
    return None


def _write_bytes(path: Path, data: bytes) -> str:
    """Write atomically; return what happened: ``wrote``, ``replaced`` or ``unchanged``."""
    if path.exists():
        if path.is_file() and path.read_bytes() == data:
            return "unchanged"
        what = "replaced"
    else:
        what = "wrote"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return what


def release(chapters: Iterable[str], out: str | Path, *, solutions: str | Path = "solutions",
            as_zip: bool = False) -> list[tuple[str, Path]]:
    """Write the student notebooks of ``chapters`` and a README for students into the folder
    ``out``, or (``as_zip``) into the zip file ``out`` (``.zip`` added when missing; its files in
    a folder named like it). Returns ``[(what, path)]``, what being ``wrote``, ``replaced`` or
    ``unchanged``: nothing is replaced without saying so. Raises :class:`UnknownChapterError`,
    :class:`GradingInputError` (no solutions folder), or the errors of reading a solution
    (:class:`.generate.NotebookReadError`, :class:`.generate.MarkupError`)."""
    from .generate import generate_exercise, notebook_to_text, read_notebook

    paths = resolve_chapters(chapters, solutions)
    files: dict[str, bytes] = {}
    for path in paths:
        student = generate_exercise(read_notebook(path), name=str(path))  # exactly as `generate`
        files[path.name] = notebook_to_text(student).encode("utf-8")
    files["README.md"] = student_readme(paths).encode("utf-8")
    out = Path(out)
    if not as_zip:
        return [(_write_bytes(out / name, data), out / name) for name, data in files.items()]
    target = out if out.suffix == ".zip" else out.with_name(out.name + ".zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(f"{target.stem}/{name}", date_time=(2000, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return [(_write_bytes(target, buffer.getvalue()), target)]


# ------------------------------------------------------------------------------------ layouts


@dataclass
class Submission:
    """One notebook of a class folder: whose it is and which chapter."""

    student: str
    chapter: str  # the solution notebook's stem, 04_vae
    path: Path
    lms_id: str = ""
    shared_folder: bool = False  # the notebook's folder holds other students' files (flat layout)
    notes: list[str] = field(default_factory=list)
    resubmission: int = 0


@dataclass
class Discovery:
    """What :func:`discover` found: the submissions to grade, every student seen (a student
    folder without a chapter notebook included), and the notebooks it could not place:
    ``(student or None, path, why)``."""

    submissions: list[Submission]
    students: dict[str, str]  # student -> lms_id
    unrecognised: list[tuple[str | None, Path, str]]
    duplicates: list[tuple[Submission, Submission]]  # (ignored, graded)


def parse_student(prefix: str) -> tuple[str, str, list[str]]:
    """``(student, lms_id, notes)`` from a file-name prefix or a folder name (see :data:`LAYOUTS`)."""
    text = prefix.strip(_SEPARATORS)
    m = _MOODLE.match(text)
    if m and m["name"].strip(_SEPARATORS):
        return f"{m['name'].strip(_SEPARATORS)}_{m['id']}", m["id"], []
    m = _CANVAS.match(text)
    if m:
        notes = ["submitted late (Canvas marked the file LATE)"] if m["late"] else []
        return f"{m['name']}_{m['uid']}", m["uid"], notes
    return text, "", []


def match_chapter(filename: str, chapters: Iterable[str]) -> tuple[str, str, int] | None:
    """``(chapter, prefix, resubmission)`` when ``filename`` names a chapter notebook, alone
    (``04_vae.ipynb``: prefix ``""``) or after a prefix and a separator (``alice_04_vae.ipynb``);
    ``None`` otherwise. Case does not matter; a resubmission number may follow (``04_vae-1``)."""
    if not filename.lower().endswith(".ipynb"):
        return None
    stem = filename[: -len(".ipynb")]
    candidates = [(stem, 0)]
    m = _RESUBMISSION.match(stem)
    if m:
        candidates.append((m["stem"], int(m["a"] or m["b"])))
    ordered = sorted(chapters, key=len, reverse=True)
    for cand, number in candidates:
        low = cand.lower()
        for chapter in ordered:
            c = chapter.lower()
            if low == c:
                return chapter, "", number
            if low.endswith(c) and cand[-len(c) - 1] in _SEPARATORS:
                prefix = cand[: -len(c) - 1]
                if prefix.strip(_SEPARATORS):
                    return chapter, prefix, number
    return None


def _skip(path: Path, excluded: set[Path]) -> bool:
    return path.name.startswith(".") or path.name in _SKIP_DIRS or path.resolve() in excluded


def discover(root: str | Path, chapters: Iterable[str], *, exclude: Iterable[str | Path] = ()) -> Discovery:
    """The submissions of the class folder ``root`` (layouts: :data:`LAYOUTS`); ``chapters``
    are the solution notebooks' stems; folders in ``exclude`` (the report folder, solutions/)
    are skipped. Of two notebooks of the same student and chapter, the one less deep, then
    the later resubmission, then the first by name is graded; the other is listed in
    ``duplicates``. Raises :class:`GradingInputError` when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise GradingInputError(f"{root}: no such folder" if not root.exists() else f"{root}: not a folder")
    chapters = list(chapters)
    excluded = {Path(p).resolve() for p in exclude}
    found: list[tuple[int, Submission]] = []
    students: dict[str, str] = {}
    unrecognised: list[tuple[str | None, Path, str]] = []
    example = f"{chapters[0]}.ipynb" if chapters else "NN_name.ipynb"
    misnamed = f"named like no chapter notebook (expected the name of a solution notebook, e.g. {example})"
    for entry in sorted(root.iterdir()):
        if _skip(entry, excluded):
            continue
        if entry.is_file():
            if not entry.name.lower().endswith(".ipynb"):
                continue
            hit = match_chapter(entry.name, chapters)
            if hit is None:
                unrecognised.append((None, entry, misnamed))
                continue
            if not hit[1]:
                unrecognised.append((None, entry, "whose is it? put it in a folder named after the student, or "
                                     f"put the student's name in front of the file's (alice_{entry.name})"))
                continue
            chapter, prefix, number = hit
            student, lms_id, notes = parse_student(prefix)
            students.setdefault(student, lms_id)
            found.append((0, Submission(student, chapter, entry, lms_id, True, notes, number)))
        elif entry.is_dir():
            student, lms_id, notes = parse_student(entry.name)
            if not student:
                continue
            students.setdefault(student, lms_id)
            for depth, path in _notebooks(entry, excluded):
                hit = match_chapter(path.name, chapters)
                if hit is None:
                    unrecognised.append((student, path, misnamed))
                    continue
                found.append((depth, Submission(student, hit[0], path, lms_id, False, list(notes), hit[2])))
    best: dict[tuple[str, str], tuple[int, Submission]] = {}
    duplicates: list[tuple[Submission, Submission]] = []
    for depth, sub in found:
        key = (sub.student, sub.chapter)
        if key in best:
            old_depth, old = best[key]
            if (depth, -sub.resubmission, str(sub.path)) < (old_depth, -old.resubmission, str(old.path)):
                keep, drop = (depth, sub), old
            else:
                keep, drop = (old_depth, old), sub
            duplicates.append((drop, keep[1]))
            best[key] = keep
        else:
            best[key] = (depth, sub)
    duplicates = [(drop, best[(drop.student, drop.chapter)][1]) for drop, _ in duplicates]
    for drop, keep in duplicates:
        keep.notes.append(f"also found {drop.path.name} for this chapter; graded {keep.path.name}")
    subs = sorted((s for _, s in best.values()), key=lambda s: (s.student, s.chapter))
    return Discovery(subs, dict(sorted(students.items())), unrecognised, duplicates)


def _notebooks(folder: Path, excluded: set[Path]) -> Iterator[tuple[int, Path]]:
    """The notebooks of a student folder and of its subfolders (nbgrader's assignment folders)."""
    for entry in sorted(folder.iterdir()):
        if _skip(entry, excluded):
            continue
        if entry.is_file() and entry.name.lower().endswith(".ipynb"):
            yield 1, entry
        elif entry.is_dir():
            for sub in sorted(entry.iterdir()):
                if sub.is_file() and sub.name.lower().endswith(".ipynb") and not _skip(sub, excluded):
                    yield 2, sub


# ----------------------------------------------------------------------------------- parallel


def run_parallel(items: list, func: Callable, jobs: int = 1) -> Iterator[tuple[int, object]]:
    """``(index, func(item))`` for each item, as they finish, ``func`` running on ``jobs``
    threads (each call starts its own worker process: threads only wait). An interrupted run
    (Ctrl-C, or the caller stops iterating) cancels what has not started and kills the running
    workers (:func:`.grader.stop_all`) before it returns."""
    resume()
    if jobs <= 1:
        for i, item in enumerate(items):
            yield i, func(item)
        return
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="gencourse-grade")
    futures = {pool.submit(func, item): i for i, item in enumerate(items)}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=futures.get):
                yield futures[fut], fut.result()
    except BaseException:
        for fut in futures:
            fut.cancel()
        stop_all()
        pool.shutdown(wait=True, cancel_futures=True)
        resume()
        raise
    pool.shutdown(wait=True)


# ---------------------------------------------------------------------------------- gradebook


def _column(chapter: str, gid: str) -> str:
    return f"{chapter_name(chapter)}.{gid}"


def gradebook_table(entries: list[dict], questions: dict[str, list[tuple[str, float]]]) -> tuple[list[str], list[list]]:
    """The gradebook: a header and one row per entry (sorted by student, then chapter).

    ``entries``: ``{student, chapter, status, report (or None), warnings: [str], lms_id,
    submission}``; ``questions``: each chapter's ``[(grade_id, max_points)]``. Columns:
    student, chapter, one per question (``<chapter name>.<grade id>``: its points), total, max,
    status, warnings, lms_id, submission."""
    qcols = [(ch, gid) for ch in sorted(questions) for gid, _ in questions[ch]]
    header = ["student", "chapter", *(_column(ch, gid) for ch, gid in qcols), "total", "max", "status", "warnings",
              "lms_id", "submission"]
    rows = []
    for e in sorted(entries, key=lambda e: (e["student"], e["chapter"])):
        report = e.get("report")
        got = {q["grade_id"]: q["points"] for q in report["questions"]} if report else {}
        cells = [got.get(gid, "") if ch == e["chapter"] else "" for ch, gid in qcols]
        chapter_max = num(sum(p for _, p in questions.get(e["chapter"], [])))
        if report:
            total, maximum = report["total"], report["max_total"]
        else:
            total, maximum = (0 if e["status"] == "not submitted" else ""), chapter_max
        rows.append([e["student"], e["chapter"], *cells, total, maximum, e["status"], "; ".join(e.get("warnings", [])),
                     e.get("lms_id", ""), e.get("submission", "")])
    return header, rows


def _cell(value):
    """A text that a spreadsheet would run as a formula (``=...``) is kept as text."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "@", "\t", "\r") else value


def write_csv(path: str | Path, header: list[str], rows: list[list]) -> Path:
    """Write a CSV file (UTF-8, comma-separated, quoted where needed) atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    path = Path(path)
    _write_bytes(path, buffer.getvalue().encode("utf-8"))
    return path


def question_summary(entries: list[dict], questions: dict[str, list[tuple[str, float]]]) -> list[dict]:
    """Per chapter and question, over the graded submissions: ``{chapter, question, max_points,
    graded, mean_points, full_marks (share, 0..1), not_full (count), most_frequent_failure,
    most_frequent_failure_count}``; the most frequent failure is the message most often given
    when the question did not earn full marks (ties: the first in alphabetical order)."""
    out = []
    for chapter in sorted(questions):
        reports = [e["report"] for e in entries if e["chapter"] == chapter and e.get("report")]
        for gid, max_points in questions[chapter]:
            qs = [q for r in reports for q in r["questions"] if q["grade_id"] == gid]
            n = len(qs)
            full = sum(1 for q in qs if q["points"] >= q["max_points"])
            failures = Counter(q["message"] or q["status"] for q in qs if q["points"] < q["max_points"])
            top = min(failures.items(), key=lambda kv: (-kv[1], kv[0])) if failures else ("", 0)
            out.append({
                "chapter": chapter, "question": gid, "max_points": num(max_points), "graded": n,
                "mean_points": round(sum(q["points"] for q in qs) / n, 2) if n else "",
                "full_marks": round(full / n, 4) if n else "",
                "not_full": n - full,
                "most_frequent_failure": top[0], "most_frequent_failure_count": top[1],
            })
    return out


def _md(text, limit: int | None = None) -> str:
    """Text for a Markdown table cell."""
    text = " ".join(str(text).split())
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def summary_markdown(summary: list[dict]) -> str:
    """The per-question summary as a Markdown table, one per chapter, the hardest question named."""
    lines = []
    for chapter in sorted({s["chapter"] for s in summary}):
        rows = [s for s in summary if s["chapter"] == chapter]
        n = max((s["graded"] for s in rows), default=0)
        lines += [f"## {chapter}: {n} submission(s) graded", "",
                  "| question | max | mean points | full marks | most frequent failure |",
                  "| --- | --- | --- | --- | --- |"]
        for s in rows:
            share = f"{100 * s['full_marks']:.0f} %" if s["graded"] else "–"
            mean = f"{s['mean_points']:g}" if s["graded"] else "–"
            fail = f"{_md(s['most_frequent_failure'], 120)} ({s['most_frequent_failure_count']} of {s['graded']})" \
                if s["most_frequent_failure_count"] else ""
            lines.append(f"| {s['question']} | {s['max_points']:g} | {mean} | {share} | {fail} |")
        graded = [s for s in rows if s["graded"]]
        hard = min(graded, key=lambda s: s["full_marks"]) if graded else None
        if hard is not None and hard["full_marks"] < 1:
            lines += ["", f"Hardest: {hard['question']} ({100 * hard['full_marks']:.0f} % full marks)."]
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- feedback


def feedback_name(student: str, taken: set[str]) -> str:
    """A file name for a student's feedback, unique among ``taken`` (which it joins)."""
    base = re.sub(r"[^\w.-]+", "_", student, flags=re.UNICODE).strip("._") or "student"
    name, k = f"{base}.md", 2
    while name.lower() in taken:
        name, k = f"{base}-{k}.md", k + 1
    taken.add(name.lower())
    return name


def feedback_markdown(student: str, entries: list[dict]) -> str:
    """What a student reads: per chapter, the points of each question and the message that
    ``check`` and the hidden tests gave (what came and what was expected, never a test's
    source), the notes of the grader, and the warnings (a misnamed notebook, a late file)."""
    lines = [f"# Feedback: {student}", ""]
    for e in sorted(entries, key=lambda e: e["chapter"]):
        report = e.get("report")
        if report:
            lines += [f"## {e['chapter']}: {report['total']:g} / {report['max_total']:g} points", "",
                      "| question | points | result | message |", "| --- | --- | --- | --- |"]
            for q in report["questions"]:
                msg = q["message"]
                if q.get("notes"):
                    msg = (msg + " " if msg else "") + "(" + "; ".join(q["notes"]) + ")"
                lines.append(f"| {q['grade_id']} | {q['points']:g} / {q['max_points']:g} | {q['status']} | {_md(msg)} |")
            lines.append("")
            if report.get("kernel_restarts"):
                lines.append(f"- The process running your notebook died or hung and was restarted "
                             f"{report['kernel_restarts']} time(s); each restart cost only the question being run.")
        elif e["status"] == "not submitted":
            lines += [f"## {e['chapter']}: not submitted (0 points)", ""]
        else:
            lines += [f"## {e['chapter']}: not graded", ""]
        lines += [f"- {_md(w)}" for w in e.get("warnings", [])]
        if report or e.get("warnings"):
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------- earlier results


def keep_earlier(report_dir: str | Path, paths: Iterable[str | Path]) -> tuple[Path | None, list[Path]]:
    """Move those of ``paths`` that exist (files or folders: an earlier run's gradebook, summary,
    feedback and reports) into ``report_dir/earlier/<time of the newest>/``, keeping their names;
    return ``(that folder, the paths moved)`` (``(None, [])`` when none existed)."""
    present = []
    for p in paths:
        p = Path(p)
        if p.exists() and p not in present:
            present.append(p)
    if not present:
        return None, []
    newest = max(p.stat().st_mtime for p in present)
    stamp = datetime.fromtimestamp(newest).strftime("%Y%m%d-%H%M%S")
    base = Path(report_dir) / "earlier"
    dest, k = base / stamp, 2
    while dest.exists():
        dest, k = base / f"{stamp}-{k}", k + 1
    dest.mkdir(parents=True)
    for p in present:
        target = dest / p.name
        n = 2
        while target.exists():  # a gradebook elsewhere with the name of a report, say
            target, n = dest / f"{p.stem}-{n}{p.suffix}", n + 1
        shutil.move(str(p), str(target))
    return dest, present
