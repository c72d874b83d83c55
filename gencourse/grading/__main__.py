"""Command line: ``python -m gencourse.grading {grade,generate} ...``.

    python -m gencourse.grading grade SUBMISSION.ipynb [MORE.ipynb ...] [--solutions DIR]
                                      [--timeout SECONDS] [--grace SECONDS] [--report-dir DIR]
                                      [--json] [--sandbox]
    python -m gencourse.grading generate [--solutions solutions] [--exercises exercises] [--check]

Exit status: 0 when everything was graded (whatever the scores) or generated / in sync;
1 when ``generate --check`` finds files out of sync, or a kernel cannot be started;
2 for bad input (a missing file, a file that is not a notebook, no matching solution,
broken solution markup) -- the other submissions are still graded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gencourse.grading",
        description="Generate exercise notebooks from solution notebooks, and autograde submissions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade submitted notebooks against the solution notebooks")
    g.add_argument("submissions", nargs="+", metavar="SUBMISSION.ipynb", help="the notebooks to grade")
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

    s = sub.add_parser("generate", help="write exercises/ from solutions/")
    s.add_argument("--solutions", default="solutions", metavar="DIR", help="instructor notebooks (default solutions)")
    s.add_argument("--exercises", default="exercises", metavar="DIR", help="student notebooks (default exercises)")
    s.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 and list the exercise files that are out of sync")
    return parser


def _grade(args) -> int:
    if not args.timeout > 0 or not args.grace > 0:
        print("error: --timeout and --grace must be positive numbers of seconds", file=sys.stderr)
        return 2
    status = 0
    # read every submission and solution, and make every scratch copy, before any student code runs
    prepared = []
    for item in args.submissions:
        path = Path(item)
        try:
            prepared.append(prepare(path, args.solutions))
        except GradingInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
    reports = []
    written: set[Path] = set()
    try:
        for prep in prepared:
            try:
                report = run(prep, args.timeout, grace=args.grace, sandbox=args.sandbox)
            except GradingError as exc:
                print(f"error: {prep.submission}: {exc}", file=sys.stderr)
                status = max(status, 1)
                continue
            except Exception as exc:
                print(f"error: {prep.submission}: internal grader error: {type(exc).__name__}: {exc}", file=sys.stderr)
                status = max(status, 1)
                continue
            finally:
                prep.cleanup()
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
