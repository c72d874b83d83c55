"""Command line: ``python -m gencourse.grading {grade,generate,release} ...``.

    python -m gencourse.grading grade SUBMISSION.ipynb [MORE.ipynb ...] [--solutions DIR]
                                      [--timeout SECONDS] [--grace SECONDS] [--report-dir DIR]
                                      [--json] [--sandbox] [--jobs N]
    python -m gencourse.grading grade CLASS_DIR [MORE_DIRS ...] [--jobs N] [--gradebook PATH] [...]
    python -m gencourse.grading generate [--solutions solutions] [--exercises exercises] [--check]
    python -m gencourse.grading release CHAPTER [CHAPTER ...] --out DIR [--zip] [--solutions DIR]

Grading a class folder (the layouts: :data:`.teacher.LAYOUTS`) also writes the gradebook, the
per-question summary and a feedback file per student (:mod:`.teacher`).

Exit status: 0 when everything was graded (whatever the scores) or generated / released / in sync;
1 when ``generate --check`` finds files out of sync, or a kernel cannot be started;
2 for bad input (a missing file or folder, a file that is not a notebook, no matching solution,
no notebook in a class folder, an unknown chapter, broken solution markup) -- the other
submissions are still graded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

from .generate import MarkupError, NotebookReadError, generate_all, orphan_exercises
from .grader import (
    DEFAULT_GRACE,
    DEFAULT_TIMEOUT,
    GradingError,
    GradingInputError,
    format_report,
    prepare,
    report_name,
    run,
    write_report,
)
from .teacher import (
    LAYOUTS,
    chapter_index,
    chapter_questions,
    discover,
    feedback_markdown,
    feedback_name,
    gradebook_table,
    keep_earlier,
    question_summary,
    release,
    run_parallel,
    summary_markdown,
    write_csv,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gencourse.grading",
        description="Generate exercise notebooks from solution notebooks, and autograde submissions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser(
        "grade", help="grade submitted notebooks, or a whole class folder, against the solution notebooks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Grade notebooks, each in its own fresh processes and scratch copy, and write a JSON report "
        "per notebook.\n\nGiven folders instead of notebooks, grade a whole class and write, in --report-dir, "
        "besides the reports:\n  gradebook.csv  one row per student and chapter: student, chapter, one column per "
        "question\n                 (<chapter>.<grade id>: its points), total, max, status (graded / error /\n"
        "                 not submitted), warnings, lms_id, submission\n  summary.md, summary.csv  per question: "
        "mean points, share of full marks, most\n                 frequent failure message (the Markdown is printed too)"
        "\n  feedback/<student>.md  each question's points and the message check gave\n"
        "An earlier run's gradebook, summary, feedback and reports of the same submissions are\nmoved to "
        "<report-dir>/earlier/<time>/ first, and the run says so.\n\n" + LAYOUTS,
    )
    g.add_argument("submissions", nargs="+", metavar="SUBMISSION.ipynb|CLASS_DIR",
                   help="the notebooks to grade, or class folders (not both)")
    g.add_argument(
        "--solutions",
        metavar="DIR",
        default=None,
        help="folder of solution notebooks, matched by file name (default: the solutions/ folder "
        "next to or above the submission's folder, else ./solutions)",
    )
    g.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"time limit per cell (default {DEFAULT_TIMEOUT:g}); a cell still running then is interrupted, "
        "and a process that ignores the interrupt is killed --grace seconds later and restarted: "
        "a cell costs at most SECONDS + 2 x GRACE",
    )
    g.add_argument("--grace", type=float, default=DEFAULT_GRACE, metavar="SECONDS",
                   help=f"how long an interrupted cell may take to stop (default {DEFAULT_GRACE:g})")
    g.add_argument("--report-dir", default="grading-reports", metavar="DIR",
                   help="where the JSON reports go (default ./grading-reports); one file per submission "
                   "path, named after it with a short hash; a report replaced is said so")
    g.add_argument("--json", action="store_true", help="print the JSON report(s) instead of tables")
    g.add_argument("--sandbox", action="store_true",
                   help="run the student's code under bubblewrap (bwrap must be installed): only the Python "
                   "environment, the library and the scratch copy visible, no network, own PID namespace")
    g.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="grade N submissions at once (default 1), each still in its own processes and scratch copy; "
                   "a submission that hangs holds one of the N for its own time limit only. Each job needs a "
                   "CPU core and the memory of two Python processes with torch")
    g.add_argument("--gradebook", metavar="PATH", default=None,
                   help="with class folders: where the gradebook CSV goes (default REPORT_DIR/gradebook.csv)")

    s = sub.add_parser("generate", help="write exercises/ from solutions/")
    s.add_argument("--solutions", default="solutions", metavar="DIR", help="instructor notebooks (default solutions)")
    s.add_argument("--exercises", default="exercises", metavar="DIR", help="student notebooks (default exercises)")
    s.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 and list the exercise files that are out of sync")

    r = sub.add_parser("release", help="write the student notebooks of some chapters, with a README for students, "
                       "into a folder or a zip file",
                       description="Write the student notebooks of the chapters named (generated from the solution "
                       "notebooks exactly as `generate` does) and a README.md for students (how to run check, what "
                       "not to edit, how to submit) into a folder, or a zip file. A file replaced is said so.")
    r.add_argument("chapters", nargs="+", metavar="CHAPTER",
                   help="a chapter name (vae, generative_models), a notebook's name (04_vae, 04_vae.ipynb) or number (04)")
    r.add_argument("--out", required=True, metavar="DIR", help="the folder to write (with --zip: the zip file, .zip added)")
    r.add_argument("--zip", action="store_true", help="write one zip file (its files in a folder named like it)")
    r.add_argument("--solutions", default="solutions", metavar="DIR", help="instructor notebooks (default solutions)")
    return parser


def _run_one(prep, args) -> tuple[dict | None, str | None]:
    """Grade one prepared submission: ``(report, None)`` or ``(None, why not)``; the scratch copy
    is removed either way. Runs on a thread of :func:`.teacher.run_parallel`."""
    try:
        return run(prep, args.timeout, grace=args.grace, sandbox=args.sandbox), None
    except GradingError as exc:
        return None, str(exc)
    except Exception as exc:
        return None, f"internal grader error: {type(exc).__name__}: {exc}"
    finally:
        prep.cleanup()


def _grade(args) -> int:
    if not args.timeout > 0 or not args.grace > 0:
        print("error: --timeout and --grace must be positive numbers of seconds", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("error: --jobs must be at least 1", file=sys.stderr)
        return 2
    folders = [item for item in args.submissions if Path(item).is_dir()]
    if folders and len(folders) < len(args.submissions):
        print("error: give either notebooks or class folders, not both (folders: " + ", ".join(folders) + ")",
              file=sys.stderr)
        return 2
    if folders:
        return _grade_class(args)
    if args.gradebook:
        print("error: --gradebook is written when grading class folders (give the folder, not its notebooks)",
              file=sys.stderr)
        return 2
    status = 0
    # read every submission and solution, and make every scratch copy, before any student code runs
    prepared = []
    for item in args.submissions:
        path = Path(item)
        if not path.exists() and path.suffix != ".ipynb":
            print(f"error: {path}: no such file or folder (expected a notebook, *.ipynb, or a class folder)",
                  file=sys.stderr)
            status = 2
            continue
        try:
            prepared.append(prepare(path, args.solutions))
        except GradingInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
    reports = []
    written: set[Path] = set()
    outcomes: dict[int, tuple] = {}
    shown = 0
    try:
        with contextlib.closing(run_parallel(prepared, partial(_run_one, args=args), args.jobs)) as results:
            for index, outcome in results:
                outcomes[index] = outcome
                while shown in outcomes:  # in the order given, as soon as each is ready
                    prep, (report, error) = prepared[shown], outcomes.pop(shown)
                    shown += 1
                    if error is not None:
                        print(f"error: {prep.submission}: {error}", file=sys.stderr)
                        status = max(status, 1)
                        continue
                    target = Path(args.report_dir) / report_name(prep.submission)
                    if target.exists():
                        why = "named twice in this run" if target in written else "from an earlier run"
                        report["warnings"].append(f"replaced the earlier report {target} ({why})")
                    out, _ = write_report(report, target)
                    written.add(target)
                    reports.append(report)
                    if not args.json:
                        print(format_report(report))
                        print(f"report: {out}\n")
    finally:
        for prep in prepared:
            prep.cleanup()
    if args.json and reports:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=1, ensure_ascii=False))
    return status


# ------------------------------------------------------------------------------------ a class


def _class_solutions(given: str | None, roots: list[Path]) -> Path:
    """The solutions of a class run: --solutions, else solutions/ in or above a class folder, else ./solutions."""
    if given:
        return Path(given)
    for root in roots:
        for parent in [root.resolve(), *root.resolve().parents]:
            if (parent / "solutions").is_dir():
                return parent / "solutions"
    if Path("solutions").is_dir():
        return Path("solutions")
    raise GradingInputError("no solutions/ folder in or above " + ", ".join(map(str, roots)) +
                            " nor in the current folder: use --solutions DIR")


def _entry(sub, status: str, warnings: list[str]) -> dict:
    return {"student": sub.student, "chapter": sub.chapter, "status": status, "report": None,
            "warnings": list(sub.notes) + warnings, "lms_id": sub.lms_id, "submission": str(sub.path)}


def _grade_class(args) -> int:
    t0 = time.monotonic()
    out = sys.stderr if args.json else sys.stdout  # what is said along the way; --json keeps stdout for JSON
    roots = [Path(item) for item in args.submissions]
    report_dir = Path(args.report_dir)
    try:
        solutions = _class_solutions(args.solutions, roots)
        index = chapter_index(solutions)
    except GradingInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = 0
    subs, students, misnamed = [], {}, {}
    taken: dict[tuple[str, str], object] = {}
    exclude = [report_dir, solutions if solutions.is_dir() else solutions.parent]
    for root in roots:
        try:
            found = discover(root, index, exclude=exclude)
        except (GradingInputError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        for student, path, why in found.unrecognised:
            print(f"warning: {path}: {why}; not graded", file=sys.stderr)
            if student is not None:
                students.setdefault(student, "")
                misnamed.setdefault(student, []).append(f"not graded: {path.name} is {why}")
        for dropped, kept in found.duplicates:
            print(f"warning: {dropped.path}: another notebook of {kept.student} for {kept.chapter} is graded "
                  f"({kept.path}); this one is not", file=sys.stderr)
        for student, lms_id in found.students.items():
            if not students.get(student):
                students[student] = lms_id
        for sub in found.submissions:
            twin = taken.get((sub.student, sub.chapter))
            if twin is not None:  # the same student in two class folders
                print(f"warning: {sub.path}: {sub.student} has another notebook for {sub.chapter} ({twin.path}), "
                      "graded instead", file=sys.stderr)
                continue
            taken[(sub.student, sub.chapter)] = sub
            subs.append(sub)
    if not subs:
        layouts = "DIR/<student>/NN_name.ipynb, DIR/<student>/<assignment>/NN_name.ipynb or DIR/<student>_NN_name.ipynb"
        nbgrader = [str(root / "submitted") for root in roots if (root / "submitted").is_dir()]
        hint = f"; for nbgrader's layout give its submitted/ folder: {', '.join(nbgrader)}" if nbgrader else ""
        print(f"error: no chapter notebook found in {', '.join(map(str, roots))} (expected {layouts}, NN_name being "
              f"one of {', '.join(index)}; see --help){hint}", file=sys.stderr)
        return 2
    # read every submission and make every scratch copy before any student code runs
    entries: list[dict] = []
    prepared, jobs = [], []
    for sub in subs:
        try:
            prep = prepare(sub.path, index[sub.chapter], copy_folder=not sub.shared_folder)
        except GradingInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            entries.append(_entry(sub, "error", [str(exc)]))
            continue
        prepared.append(prep)
        jobs.append(sub)
    chapters = sorted({sub.chapter for sub in subs})
    for student in students:
        for chapter in chapters:
            if (student, chapter) not in taken:
                entries.append({"student": student, "chapter": chapter, "status": "not submitted", "report": None,
                                "warnings": list(misnamed.get(student, [])), "lms_id": students[student], "submission": ""})
    gradebook = Path(args.gradebook) if args.gradebook else report_dir / "gradebook.csv"
    summary_md, summary_csv, feedback_dir = report_dir / "summary.md", report_dir / "summary.csv", report_dir / "feedback"
    try:
        earlier, moved = keep_earlier(report_dir, [gradebook, summary_md, summary_csv, feedback_dir,
                                                   *(report_dir / report_name(p.submission) for p in prepared)])
        if earlier is not None:
            names = [p.name + ("/" if (earlier / p.name).is_dir() else "") for p in moved]
            print(f"kept the earlier results in {earlier}/ (moved there: " + ", ".join(names[:6]) +
                  (f" and {len(names) - 6} more" if len(names) > 6 else "") + ")", file=out)
        n = len(prepared)
        print(f"grading {n} notebook(s) of {len(students)} student(s) ({', '.join(chapters)}) with {args.jobs} job(s), "
              f"--timeout {args.timeout:g} s per cell", file=out)
        width = max(len(s.student) for s in jobs) if jobs else 0
        with contextlib.closing(run_parallel(prepared, partial(_run_one, args=args), args.jobs)) as results:
            for done, (i, (report, error)) in enumerate(results, 1):
                sub = jobs[i]
                if error is not None:
                    print(f"error: {sub.path}: {error}", file=sys.stderr)
                    status = max(status, 1)
                    entries.append(_entry(sub, "error", [error]))
                    line = f"not graded: {error}"
                else:
                    report = {**report, "student": sub.student, "chapter": sub.chapter}
                    write_report(report, report_dir / report_name(sub.path))
                    entry = _entry(sub, "graded", report["warnings"])
                    entry["report"] = report
                    entries.append(entry)
                    line = f"{report['total']:g} / {report['max_total']:g}  ({report['duration_s']:g} s)"
                print(f"[{done:>{len(str(n))}}/{n}] {sub.student:<{width}}  {sub.chapter}  {line}", file=out)
    finally:
        for prep in prepared:
            prep.cleanup()
    questions = {chapter: chapter_questions(index[chapter]) for chapter in chapters}
    header, rows = gradebook_table(entries, questions)
    write_csv(gradebook, header, rows)
    summary = question_summary(entries, questions)
    write_csv(summary_csv, list(summary[0]) if summary else ["chapter", "question"],
              [list(s.values()) for s in summary])
    text = summary_markdown(summary)
    summary_md.write_text("# What the class found hard\n\n" + text, encoding="utf-8")
    taken: set[str] = set()
    feedback_dir.mkdir(parents=True, exist_ok=True)
    for student in sorted({e["student"] for e in entries}):
        mine = [e for e in entries if e["student"] == student]
        (feedback_dir / feedback_name(student, taken)).write_text(feedback_markdown(student, mine), encoding="utf-8")
    if args.json:
        print(json.dumps([e["report"] for e in entries if e["report"]], indent=1, ensure_ascii=False))
    else:
        print("\n" + text)
    graded = sum(1 for e in entries if e["status"] == "graded")
    print(f"gradebook: {gradebook} ({len(rows)} rows: {graded} graded, "
          f"{sum(1 for e in entries if e['status'] == 'error')} error, "
          f"{sum(1 for e in entries if e['status'] == 'not submitted')} not submitted)\n"
          f"summary:   {summary_md}, {summary_csv}\nfeedback:  {feedback_dir}/ ({len(taken)} files)\n"
          f"reports:   {report_dir}/\ngraded in {time.monotonic() - t0:.1f} s with {args.jobs} job(s)", file=out)
    return status


def _release(args) -> int:
    try:
        done = release(args.chapters, args.out, solutions=args.solutions, as_zip=args.zip)
    except (GradingInputError, NotebookReadError, MarkupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for what, path in done:
        print(f"{what} {path}")
    return 0


def _generate(args) -> int:
    try:
        changed = generate_all(args.solutions, args.exercises, check=args.check)
    except (NotebookReadError, MarkupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for orphan in orphan_exercises(args.solutions, args.exercises):
        print(f"warning: {orphan} has no solution notebook in {args.solutions}", file=sys.stderr)
    if args.check:
        if changed:
            print(f"out of sync with {args.solutions} (run `make exercises`):", file=sys.stderr)
            for path in changed:
                print(f"  {path}", file=sys.stderr)
            return 1
        print(f"{args.exercises} is in sync with {args.solutions}")
        return 0
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print(f"{args.exercises} already in sync with {args.solutions}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "grade":
        return _grade(args)
    if args.command == "release":
        return _release(args)
    return _generate(args)


if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
