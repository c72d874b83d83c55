"""Reports: a unique file name per submission path, written atomically, and a readable table."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

STATUSES = ("passed", "failed", "error", "timeout", "missing")


def report_name(submission: str | Path) -> str:
    """``exercises__00_x-1a2b3c4d.json``: the submission's path (relative to the current folder
    when it is below it) with a short hash of its absolute path, so two submissions never share
    a report and the same submission always gets the same one."""
    path = Path(submission)
    absolute = path.resolve()
    try:
        shown = absolute.relative_to(Path.cwd().resolve())
    except ValueError:
        shown = Path(*absolute.parts[-3:]) if len(absolute.parts) > 3 else absolute
    stem = "__".join(p for p in shown.with_suffix("").parts if p not in ("/", "\\"))
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "submission"
    digest = hashlib.sha256(str(absolute).encode("utf-8")).hexdigest()[:8]
    return f"{stem[-80:]}-{digest}.json"


def write_report(report: dict, path: str | Path) -> tuple[Path, bool]:
    """Write ``report`` to ``path`` atomically; return ``(path, replaced)`` where ``replaced``
    says that an earlier report was there (the caller says so)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    replaced = path.exists()
    data = (json.dumps(report, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path, replaced


def format_report(report: dict) -> str:
    """A fixed-width table of the report, one line per question and a total line."""
    rows = report["questions"]
    width = max([len("question"), len("total")] + [len(q["grade_id"]) for q in rows])
    pts = [f"{q['points']:g} / {q['max_points']:g}" for q in rows]
    total = f"{report['total']:g} / {report['max_total']:g}"
    pw = max([len("points"), len(total)] + [len(p) for p in pts])
    sw = max(len(s) for s in STATUSES)
    lines = [
        f"submission: {report['submission']}",
        f"solution:   {report['solution']}",
        f"{'question':<{width}}  {'points':>{pw}}  {'status':<{sw}}  message",
        f"{'-' * width}  {'-' * pw}  {'-' * sw}  {'-' * 7}",
    ]
    for q, p in zip(rows, pts):
        msg = q["message"]
        if q.get("notes"):
            msg = (msg + " " if msg else "") + "[" + "; ".join(q["notes"]) + "]"
        lines.append(f"{q['grade_id']:<{width}}  {p:>{pw}}  {q['status']:<{sw}}  {msg}".rstrip())
    lines.append(f"{'-' * width}  {'-' * pw}")
    lines.append(f"{'total':<{width}}  {total:>{pw}}")
    extra = []
    if report.get("kernel_restarts"):
        extra.append(f"the process running the notebook was restarted {report['kernel_restarts']} time(s)")
    extra.extend(report.get("warnings", []))
    extra.append(f"graded in {report['duration_s']:g} s")
    lines.append("(" + "; ".join(extra) + ")")
    return "\n".join(lines)
