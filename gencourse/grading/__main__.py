"""Command line: ``python -m gencourse.grading {grade,generate} ...``.

    python -m gencourse.grading grade SUBMISSION.ipynb [MORE.ipynb ...] [--solutions DIR]
                                      [--timeout SECONDS] [--report-dir DIR] [--json]
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
from .grader import DEFAULT_TIMEOUT, GradingError, GradingInputError, format_report, grade, write_report


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
        help=f"time limit per cell (default {DEFAULT_TIMEOUT:g})",
    )
    g.add_argument("--report-dir", default="grading-reports", metavar="DIR",
                   help="where the JSON reports go (default ./grading-reports)")
    g.add_argument("--json", action="store_true", help="print the JSON report(s) instead of tables")

    s = sub.add_parser("generate", help="write exercises/ from solutions/")
    s.add_argument("--solutions", default="solutions", metavar="DIR", help="instructor notebooks (default solutions)")
    s.add_argument("--exercises", default="exercises", metavar="DIR", help="student notebooks (default exercises)")
    s.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 and list the exercise files that are out of sync")
    return parser


def _report_name(submission: Path, used: set[str]) -> str:
    name = f"{submission.stem}.json"
    if name in used:  # alice/00_x.ipynb and bob/00_x.ipynb in one run
        base = f"{submission.resolve().parent.name}_{submission.stem}"
        name, n = f"{base}.json", 2
        while name in used:
            name, n = f"{base}_{n}.json", n + 1
    used.add(name)
    return name


def _grade(args) -> int:
    if not args.timeout > 0:
        print(f"error: --timeout must be a positive number of seconds, got {args.timeout:g}", file=sys.stderr)
        return 2
    status = 0
    reports = []
    used: set[str] = set()
    for item in args.submissions:
        path = Path(item)
        try:
            report = grade(path, args.solutions, timeout=args.timeout)
        except GradingInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        except GradingError as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            status = max(status, 1)
            continue
        except Exception as exc:  # noqa: BLE001 - a grader bug must not stop the other gradings
            print(f"error: {path}: internal grader error: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = max(status, 1)
            continue
        out = write_report(report, Path(args.report_dir) / _report_name(path, used))
        reports.append(report)
        if not args.json:
            print(format_report(report))
            print(f"report: {out}\n")
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
