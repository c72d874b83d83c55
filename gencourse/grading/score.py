"""From what ran to points: one entry per question, with a message that says what went wrong.

A question earns its points iff its test cell ran without an error and its answer does not call
the library function that the exercise asks for. Messages come from the test process (the
values that came and that were expected, never the hidden test's source) or from the grader.
"""

from __future__ import annotations

import re

_MESSAGE_MAX = 400
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(float(x), 4)


def _text(value, limit: int = _MESSAGE_MAX) -> str:
    text = _ANSI.sub("", value if isinstance(value, str) else "").strip()
    line = " ".join(text.split("\n")[0:1]).strip() if "\n" in text and len(text) > limit else text.replace("\n", " ")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe(rec: dict) -> str:
    """One line for a record of a cell."""
    status = rec.get("status")
    ename, evalue = _text(rec.get("ename", ""), 80), _text(rec.get("evalue", ""))
    if status in ("timeout", "died", "not_run") or (rec.get("reason") and not ename):
        return _text(rec.get("reason", "")) or status or "not run"
    if ename == "NotImplementedError" and not evalue:
        return "NotImplementedError: not implemented yet"
    if ename and evalue:
        return f"{ename}: {evalue}"
    return ename or "error"


def _answer_problem(q: dict, cells: list, records: dict) -> tuple[str, str] | None:
    """(status, text) for the first answer cell of the question that did not run cleanly."""
    for j in q["answer_indices"]:
        rec = records.get(j)
        if rec is None or rec.get("status") == "ok":
            continue
        gid = cells[j].get("grade_id") or f"cell {j}"
        if rec.get("status") == "timeout":
            return "timeout", f"answer cell {gid!r} {describe(rec)}"
        if rec.get("status") == "died":
            return "error", f"answer cell {gid!r}: {describe(rec)}"
        return "error", f"answer cell {gid!r} raised {describe(rec)}"
    return None


def score(plan: dict, records: dict[int, dict], *, matched: bool = True) -> list[dict]:
    cells = plan["cells"]
    entries = []
    for q in plan["questions"]:
        rec = records.get(q["index"]) or {"status": "not_run", "reason": "not run"}
        notes = []
        if q["reinserted"]:
            notes.append("test cell was missing from the submission and was put back")
        elif q["modified"]:
            notes.append("test cell was modified in the submission; the original was run")
        status, message = "passed", ""
        if rec.get("status") != "ok":
            message = describe(rec)
            if rec.get("status") == "timeout":
                status = "timeout"
            elif rec.get("ename") == "AssertionError" and not rec.get("student"):
                status = "failed"
            else:
                status = "error"
            name_missing = rec.get("ename") == "NameError" and rec.get("name") in (rec.get("missing") or [])
            if q["missing_answers"]:
                status = "missing"
                names = ", ".join(repr(a) for a in q["missing_answers"])
                message = f"answer cell {names} missing from the submission; {message}"
            elif q["late_answers"] and (name_missing or rec.get("ename") == "NameError"):
                names = ", ".join(repr(a) for a in q["late_answers"])
                message = (f"`{rec.get('name') or 'your function'}` is not defined when its test runs: the answer "
                           f"cell {names} comes after its test cell in your notebook; move it above the test")
            else:
                problem = _answer_problem(q, cells, records)
                if problem is not None:
                    kind, text = problem
                    if kind == "timeout":
                        status = "timeout"
                        message = f"{text}; then {message}"
                    else:
                        message = f"{message} ({text})"
            if not matched:
                message = f"{message} [this notebook matches none of the exercises of this chapter]"
        if q.get("forbidden_calls"):
            names = ", ".join(q["forbidden_calls"])
            status = "failed"
            message = (f"your answer calls {names}, the library's implementation of what this exercise asks "
                       "you to write: write it yourself")
        entries.append({
            "grade_id": q["grade_id"],
            "points": num(q["max_points"] if status == "passed" else 0),
            "max_points": num(q["max_points"]),
            "status": status,
            "message": message,
            "notes": notes,
        })
    return entries
