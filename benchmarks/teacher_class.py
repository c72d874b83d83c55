"""Wall time of grading a class of 30 submissions with ``grade CLASS_DIR --jobs N``.

    GENCOURSE_PROFILE=smoke OMP_NUM_THREADS=1 .venv/bin/python benchmarks/teacher_class.py [--jobs 1 2] [--timeout 12]

The class is the one of ``tests/test_teacher.py``: 30 submissions of chapter 07 (DCGAN) made from the
solution and the broken probes (8 solutions, 6 untouched exercises, 3 infinite loops, 4 crashes, 4
missing answer cells, 5 cheats), in the three layouts (a folder per student, nbgrader's
``<student>/<assignment>/``, Moodle's flat file names). Each run is the command line, in a fresh
process, writing into its own report folder; the script checks that every run gives every student
the same marks. Prints one JSON line per run and appends a record to ``benchmarks/results/teacher_class.json``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "teacher_class.json"
sys.path.insert(0, str(ROOT / "tests"))

import test_teacher  # noqa: E402  (the class's builder)


def run(class_dir: Path, reports: Path, jobs: int, timeout: float, grace: float) -> dict:
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gencourse.grading", "grade", str(class_dir), "--solutions",
                           str(test_teacher.SOLUTIONS), "--jobs", str(jobs), "--timeout", str(timeout), "--grace",
                           str(grace), "--report-dir", str(reports)], capture_output=True, text=True, cwd=class_dir.parent)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"--jobs {jobs} failed ({proc.returncode}):\n{proc.stderr}")
    reports_ = [json.loads(p.read_text()) for p in reports.glob("*.json")]
    return {"jobs": jobs, "submissions": len(reports_), "wall_s": round(wall, 1),
            "sum_of_gradings_s": round(sum(r["duration_s"] for r in reports_), 1),
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
            "marks": {r["student"]: [q["points"] for q in r["questions"]] for r in reports_}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=test_teacher.TIMEOUT)
    parser.add_argument("--grace", type=float, default=test_teacher.GRACE)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="teacher-class-") as tmp:
        class_dir = Path(tmp) / "class"
        test_teacher.build_class(class_dir)
        for jobs in args.jobs:
            result = run(class_dir, Path(tmp) / f"reports-{jobs}", jobs, args.timeout, args.grace)
            print(json.dumps({k: v for k, v in result.items() if k != "marks"}), flush=True)
            runs.append(result)
    if any(r["marks"] != runs[0]["marks"] for r in runs):
        raise SystemExit("the runs gave different marks")
    record = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "python": platform.python_version(), "profile": os.environ.get("GENCOURSE_PROFILE", ""),
              "chapter": test_teacher.CHAPTER, "class": test_teacher.CLASS, "timeout": args.timeout, "grace": args.grace,
              "runs": [{k: v for k, v in r.items() if k != "marks"} for r in runs]}
    earlier = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps([*earlier, record], indent=1) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
