"""Autograde a student's notebook against the instructor's solution notebook.

What runs is the student's notebook, except that every graded test cell (nbgrader
``grade: true``, ``solution: false``, matched by ``grade_id``) is the instructor's version from
the solution notebook, hidden tests included: a student cannot weaken a test. A test cell the
student deleted is put back (after the cell that precedes it in the solution when that cell is
in the submission, else at the end). Points come from the solution notebook only.

The notebook runs with nbclient in a fresh ``python3`` kernel, in a temporary copy of the
submission's folder (nothing is written next to the submission, and the submission is only
ever opened for reading), with ``GENCOURSE_PROFILE=smoke`` unless the caller set a profile.
Errors are allowed, each cell has a time limit (the kernel is interrupted, then restarted if the
interrupt does not stop it), and a kernel that dies (``os._exit``, a crash, out of memory) is
restarted: the cells that ran before are replayed and grading goes on, so a broken answer costs
only its own question.

A graded test cell earns its points iff it ran without an error.

Importing this module costs only the standard library; nbformat and nbclient load on use.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .generate import NotebookReadError, clear_source, read_notebook

__all__ = [
    "GradingInputError",
    "GradingError",
    "find_solution",
    "build_grading_notebook",
    "grade",
    "format_report",
    "write_report",
    "STATUSES",
]

STATUSES = ("passed", "failed", "error", "timeout", "missing")

DEFAULT_TIMEOUT = 120.0
MAX_COPY_BYTES = 200 * 2**20  # a bigger submission folder is not copied, only the notebook
MAX_COPY_FILES = 5000
_COPY_IGNORE = (".git", ".ipynb_checkpoints", "__pycache__", ".venv", "venv", "node_modules",
                "grading-reports", ".pytest_cache")
_MESSAGE_MAX = 300
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ARROW_LINE = re.compile(r"^\s*-+>\s*\d+\s(.*)$")


class GradingInputError(ValueError):
    """The submission or solution is missing, is not a notebook, or has no solution to match."""


class GradingError(RuntimeError):
    """Grading could not run at all (e.g. the Jupyter kernel does not start)."""


# ------------------------------------------------------------------------------ notebook parts


def _nbg(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _grade_id(cell) -> str | None:
    gid = _nbg(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def _is_test(cell) -> bool:
    meta = _nbg(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and _grade_id(cell) is not None


def _is_answer(cell) -> bool:
    return bool(_nbg(cell).get("solution"))


def _points(cell) -> float:
    try:
        value = float(_nbg(cell).get("points", 0) or 0)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(float(x), 4)


def _clean_copy(cell):
    cell = copy.deepcopy(cell)
    if cell.get("cell_type") == "code":
        cell["outputs"] = []
        cell["execution_count"] = None
    return cell


# ---------------------------------------------------------------------------------- locating


def _matches_in(directory: Path, name: str) -> Path | None:
    exact = directory / name
    if exact.is_file():
        return exact
    return None


def _fuzzy_in(directory: Path, stem: str) -> Path | None:
    """The solution whose stem is the longest one contained in ``stem`` (e.g. alice_00_x)."""
    hits = [p for p in directory.glob("*.ipynb") if p.stem and p.stem in stem]
    if not hits:
        return None
    best = max(len(p.stem) for p in hits)
    longest = [p for p in hits if len(p.stem) == best]
    return longest[0] if len(longest) == 1 else None


def find_solution(submission: str | Path, solutions: str | Path | None = None) -> Path:
    """The solution notebook for ``submission``, matched by file name.

    ``solutions`` may be a notebook (used as is) or a folder. Without it, ``solutions/`` is
    looked for next to the submission's folder and above it (``exercises/00_x.ipynb`` ->
    ``solutions/00_x.ipynb``), then in the current directory. When no file has the same name,
    a unique solution whose name is contained in the submission's (``alice_00_x.ipynb``) is used.
    Raises :class:`GradingInputError` naming the places looked at.
    """
    submission = Path(submission)
    name = submission.name
    if solutions is not None:
        solutions = Path(solutions)
        if solutions.suffix == ".ipynb" or solutions.is_file():
            if not solutions.is_file():
                raise GradingInputError(f"{solutions}: no such solution notebook")
            return solutions
        if not solutions.is_dir():
            raise GradingInputError(f"{solutions}: no such solutions folder (expected a folder of *.ipynb)")
        dirs = [solutions]
    else:
        dirs = []
        for parent in [submission.resolve().parent, *submission.resolve().parents]:
            cand = parent / "solutions"
            if cand.is_dir() and cand not in dirs:
                dirs.append(cand)
        cwd_solutions = Path("solutions")
        if cwd_solutions.is_dir() and cwd_solutions.resolve() not in [d.resolve() for d in dirs]:
            dirs.append(cwd_solutions)
    for directory in dirs:
        hit = _matches_in(directory, name)
        if hit is not None:
            return hit
    for directory in dirs:
        hit = _fuzzy_in(directory, submission.stem)
        if hit is not None:
            return hit
    where = ", ".join(str(d) for d in dirs) if dirs else "no solutions/ folder found near it or in ./solutions"
    raise GradingInputError(
        f"{submission}: no matching solution notebook (expected solutions/{name}; looked in: {where}; "
        "use --solutions DIR)"
    )


# ---------------------------------------------------------------------------------- building


@dataclass
class Question:
    grade_id: str
    max_points: float
    index: int = -1  # position of the test cell in the built notebook
    reinserted: bool = False
    modified: bool = False  # the submission's copy of the test differed from the exercise's
    answer_ids: list[str] = field(default_factory=list)  # answer cells of the solution
    missing_answers: list[str] = field(default_factory=list)
    answer_indices: list[int] = field(default_factory=list)  # in the built notebook


def build_grading_notebook(submission_nb, solution_nb, *, solution_name: str = "solution"):
    """Return ``(notebook, questions)``: the notebook to execute and its graded test cells."""
    import nbformat

    sol_cells = list(solution_nb.cells)
    tests: dict[str, int] = {}
    for i, cell in enumerate(sol_cells):
        if _is_test(cell):
            gid = _grade_id(cell)
            if gid in tests:
                raise GradingInputError(f"{solution_name}: grade_id {gid!r} is used by two graded cells")
            tests[gid] = i

    # questions, in the solution's order, with the answer cells that precede each test
    questions: dict[str, Question] = {}
    pending_answers: list[str] = []
    for i, cell in enumerate(sol_cells):
        if _is_test(cell):
            gid = _grade_id(cell)
            questions[gid] = Question(gid, _points(cell), answer_ids=pending_answers)
            pending_answers = []
        elif _is_answer(cell) and _grade_id(cell):
            pending_answers.append(_grade_id(cell))

    # cells whose nbgrader metadata an editor dropped are recognised by their cell id
    by_cell_id = {c.get("id"): c for c in sol_cells if c.get("id") and _grade_id(c)}

    built: list[Any] = []
    used: set[str] = set()
    for cell in submission_nb.cells:
        cell = _clean_copy(cell)
        if "nbgrader" not in cell.get("metadata", {}) and cell.get("id") in by_cell_id:
            cell.setdefault("metadata", {})["nbgrader"] = copy.deepcopy(_nbg(by_cell_id[cell["id"]]))
        gid = _grade_id(cell)
        if gid in tests:
            if gid in used:
                continue  # a duplicated test cell runs (and counts) once
            used.add(gid)
            original = sol_cells[tests[gid]]
            visible, _ = clear_source(original.source, cell_type="code", where=gid)
            source = cell.get("source", "").strip()
            questions[gid].modified = source not in (visible.strip(), original.source.strip())
            built.append(_clean_copy(original))
        else:
            built.append(cell)

    # put back the test cells the student deleted
    for gid, sol_index in tests.items():
        if gid in used:
            continue
        used.add(gid)
        position = None
        if sol_index > 0:
            prev = sol_cells[sol_index - 1]
            prev_gid, prev_id = _grade_id(prev), prev.get("id")
            for j, cell in enumerate(built):
                if (prev_gid and _grade_id(cell) == prev_gid) or (
                    not prev_gid and prev_id and cell.get("id") == prev_id
                ):
                    position = j + 1
                    break
        cell = _clean_copy(sol_cells[sol_index])
        if position is None:
            built.append(cell)
        else:
            built.insert(position, cell)
        questions[gid].reinserted = True

    # cell ids must stay unique after re-insertion
    seen: set[str] = set()
    for j, cell in enumerate(built):
        cid = cell.get("id")
        if cid is not None:
            while cid in seen:
                cid = f"{cid[:54]}-{j}"
            cell["id"] = cid
            seen.add(cid)

    present = {_grade_id(c) for c in built if _grade_id(c)}
    test_positions = {}
    for j, cell in enumerate(built):
        gid = _grade_id(cell)
        if gid in questions and gid not in test_positions:
            test_positions[gid] = j
    ordered = sorted(test_positions.values())
    for gid, q in questions.items():
        q.index = test_positions[gid]
        earlier = [p for p in ordered if p < q.index]
        start = earlier[-1] + 1 if earlier else 0
        q.answer_indices = [j for j in range(start, q.index) if _is_answer(built[j])]
        q.missing_answers = [a for a in q.answer_ids if a not in present]

    nb = nbformat.from_dict(
        {
            "cells": built,
            "metadata": copy.deepcopy(dict(submission_nb.get("metadata", {}))),
            "nbformat": 4,
            "nbformat_minor": submission_nb.get("nbformat_minor", 5),
        }
    )
    return nb, list(questions.values())


# --------------------------------------------------------------------------------- executing


@dataclass
class CellRun:
    status: str  # "ok" | "error" | "timeout" | "died" | "not_run"
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = field(default_factory=list)
    reason: str = ""
    kernel_lost: bool = False


class _Unresponsive(Exception):
    """The kernel did not stop when interrupted after a timeout."""


_CLIENT_CLASS = None


def _client_class():
    global _CLIENT_CLASS
    if _CLIENT_CLASS is not None:
        return _CLIENT_CLASS
    from jupyter_core.utils import ensure_async
    from nbclient import NotebookClient

    class GradingClient(NotebookClient):
        """Interrupts a cell at its timeout; gives up on the kernel if that does not stop it."""

        timeouts_seen = 0
        reply_error: dict | None = None

        async def _async_handle_timeout(self, timeout, cell=None):
            self.timeouts_seen += 1
            if self.timeouts_seen == 1:
                try:
                    await ensure_async(self.km.interrupt_kernel())
                except Exception as exc:  # noqa: BLE001
                    raise _Unresponsive(f"interrupt failed: {exc}") from None
                return None  # wait for the (KeyboardInterrupt) reply
            raise _Unresponsive("the cell did not stop when interrupted")

    _CLIENT_CLASS = GradingClient
    return GradingClient


def _quiet_logger() -> logging.Logger:
    log = logging.getLogger("gencourse.grading.nbclient")
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    return log


def _kernel_env(env: dict | None) -> dict:
    full = dict(os.environ)
    if env:
        full.update({str(k): str(v) for k, v in env.items()})
    full.setdefault("GENCOURSE_PROFILE", "smoke")
    full.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # silences a debugger warning
    # a source checkout (not a site-packages install): make `import gencourse` work in the kernel
    root = Path(__file__).resolve().parents[2]
    if (root / "gencourse" / "__init__.py").is_file() and "site-packages" not in root.parts:
        parts = [p for p in full.get("PYTHONPATH", "").split(os.pathsep) if p]
        if str(root) not in parts:
            full["PYTHONPATH"] = os.pathsep.join([str(root), *parts])
    return full


def _error_of(cell) -> tuple[str, str, list[str]] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return str(out.get("ename", "Error")), str(out.get("evalue", "")), list(out.get("traceback", []))
    return None


def _run_cell(client, nb, index: int, count: int, timeout: float, replaying: bool) -> CellRun:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    original = nb.cells[index]
    cell = copy.deepcopy(original) if replaying else original
    client.timeouts_seen = 0
    client.reply_error = None
    try:
        client.execute_cell(cell, index, execution_count=count)
    except DeadKernelError:
        return CellRun("died", reason="the kernel died while running this cell (os._exit, a crash or "
                       "running out of memory); it was restarted", kernel_lost=True)
    except (_Unresponsive, CellTimeoutError):
        return CellRun("timeout", reason=f"timed out after {timeout:g} s and did not stop when "
                       "interrupted; the kernel was restarted", kernel_lost=True)
    except Exception as exc:  # noqa: BLE001 - never let one cell crash the grader
        return CellRun("error", ename=type(exc).__name__, evalue=str(exc),
                       reason=f"the grader could not run this cell ({type(exc).__name__}: {exc})",
                       kernel_lost=True)
    finally:
        if replaying:
            nb.cells[index] = original
    if client.timeouts_seen:
        return CellRun("timeout", reason=f"timed out after {timeout:g} s")
    err = _error_of(cell)
    if err is None and client.reply_error:
        content = client.reply_error
        err = (str(content.get("ename", "Error")), str(content.get("evalue", "")), list(content.get("traceback", [])))
    if err is not None:
        return CellRun("error", *err)
    return CellRun("ok")


def execute_notebook(
    nb,
    cwd: str | Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    kernel_name: str = "python3",
    env: dict | None = None,
    max_restarts: int = 3,
    startup_timeout: float = 60,
    kernel_log: str | Path | None = None,
) -> tuple[dict[int, CellRun], int]:
    """Execute ``nb`` in place; return ``({cell index: CellRun}, number of kernel restarts)``."""
    Client = _client_class()

    def on_error(cell, cell_index, execute_reply):
        client.reply_error = execute_reply.get("content", {})

    client = Client(
        nb,
        timeout=None,
        timeout_func=lambda cell: timeout,
        kernel_name=kernel_name,
        allow_errors=True,
        interrupt_on_timeout=True,
        shutdown_kernel="immediate",
        startup_timeout=int(math.ceil(startup_timeout)),
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
        on_cell_error=on_error,
        log=_quiet_logger(),
    )
    kernel_env = _kernel_env(env)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    records: dict[int, CellRun] = {}
    replay: list[int] = []
    restarts, pos, count = 0, 0, 0
    log_fh = open(kernel_log, "ab") if kernel_log else open(os.devnull, "wb")
    try:
        while pos < len(code):
            try:
                ctx = client.setup_kernel(env=kernel_env, cwd=str(cwd), stdout=log_fh, stderr=log_fh)
                ctx.__enter__()
            except Exception as exc:  # noqa: BLE001
                _discard_kernel(client)
                if restarts == 0 and not records:
                    tail = _tail(kernel_log)
                    raise GradingError(
                        f"could not start the Jupyter kernel {kernel_name!r}: {type(exc).__name__}: {exc}"
                        + (f"\nkernel output:\n{tail}" if tail else "")
                        + "\n(is ipykernel installed in this environment? `python -m ipykernel install --sys-prefix`)"
                    ) from None
                for i in code[pos:]:
                    records[i] = CellRun("not_run", reason=f"not run: the kernel could not be restarted ({exc})")
                return records, restarts
            lost = False
            try:
                for j in list(replay):  # bring the new kernel to where the old one was
                    run = _run_cell(client, nb, j, 0, timeout, replaying=True)
                    if run.kernel_lost:
                        replay.remove(j)
                        lost = True
                        break
                while not lost and pos < len(code):
                    i = code[pos]
                    count += 1
                    run = _run_cell(client, nb, i, count, timeout, replaying=False)
                    records[i] = run
                    pos += 1
                    if run.kernel_lost:
                        lost = True
                    elif run.status in ("ok", "error"):
                        replay.append(i)
            finally:
                try:
                    ctx.__exit__(None, None, None)
                except Exception:  # noqa: BLE001 - a dead kernel may fail to shut down cleanly
                    _discard_kernel(client)
            if lost and pos < len(code):
                restarts += 1
                if restarts > max_restarts:
                    for i in code[pos:]:
                        records[i] = CellRun(
                            "not_run", reason=f"not run: the kernel died {restarts} times, grading stopped"
                        )
                    break
    finally:
        log_fh.close()
    return records, restarts


def _discard_kernel(client) -> None:
    try:
        if client.km is not None:
            client._cleanup_kernel()
    except Exception:  # noqa: BLE001
        pass
    client.km = None
    client.kc = None


def _tail(path, n: int = 2000) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_bytes()[-n:].decode("utf-8", "replace").strip()
    except OSError:
        return ""


# ----------------------------------------------------------------------------------- scoring


def _one_line(text: str) -> str:
    text = _ANSI.sub("", text).strip()
    line = text.splitlines()[0].strip() if text else ""
    return line if len(line) <= _MESSAGE_MAX else line[: _MESSAGE_MAX - 1] + "…"


def _failing_line(traceback: list[str]) -> str:
    lines = _ANSI.sub("", "\n".join(traceback)).splitlines()
    for line in reversed(lines):
        m = _ARROW_LINE.match(line)
        if m:
            return m.group(1).strip()
    return ""


def _describe_run(run: CellRun) -> str:
    if run.status in ("timeout", "died", "not_run") or (run.reason and not run.ename):
        return run.reason
    if run.evalue.strip():
        return _one_line(f"{run.ename}: {run.evalue}")
    if run.ename == "NotImplementedError":
        return "NotImplementedError: not implemented yet"
    where = _failing_line(run.traceback)
    return _one_line(f"{run.ename} at `{where}`" if where else run.ename)


def _score(nb, questions: list[Question], records: dict[int, CellRun]) -> list[dict]:
    entries = []
    for q in questions:
        run = records.get(q.index) or CellRun("not_run", reason="not run")
        notes = []
        if q.reinserted:
            notes.append("test cell was missing from the submission and was put back")
        elif q.modified:
            notes.append("test cell was modified in the submission; the original was run")
        if run.status == "ok":
            status, message = "passed", ""
        else:
            message = _describe_run(run)
            if run.status == "timeout":
                status = "timeout"
            elif run.status == "error" and run.ename == "AssertionError":
                status = "failed"
            else:
                status = "error"
            if q.missing_answers:
                status = "missing"
                names = ", ".join(repr(a) for a in q.missing_answers)
                message = f"answer cell {names} missing from the submission; {message}"
            else:
                for j in q.answer_indices:
                    ans = records.get(j)
                    if ans is None or ans.status == "ok":
                        continue
                    gid = _grade_id(nb.cells[j]) or f"cell {j}"
                    if ans.status == "timeout":
                        status = "timeout"
                        message = f"answer cell {gid!r} {ans.reason}; then {message}"
                    elif ans.status == "died":
                        message = f"answer cell {gid!r}: {ans.reason}; then {message}"
                    else:
                        message = f"{message} (answer cell {gid!r} raised {_describe_run(ans)})"
                    break
        entries.append(
            {
                "grade_id": q.grade_id,
                "points": _num(q.max_points if status == "passed" else 0),
                "max_points": _num(q.max_points),
                "status": status,
                "message": message,
                "notes": notes,
            }
        )
    return entries


# ------------------------------------------------------------------------------ working copy


def _folder_is_small(folder: Path) -> bool:
    total, files = 0, 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _COPY_IGNORE]
        for name in names:
            files += 1
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
            if files > MAX_COPY_FILES or total > MAX_COPY_BYTES:
                return False
    return True


def _prepare_workdir(submission: Path, tmp: Path) -> tuple[Path, list[str]]:
    """Copy the submission's folder (or only the notebook, for a big folder) into ``tmp``."""
    src = submission.resolve().parent
    dest = tmp / (src.name or "submission")
    warnings = []
    if _folder_is_small(src):
        try:
            shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(*_COPY_IGNORE))
            return dest, warnings
        except (OSError, shutil.Error) as exc:
            warnings.append(f"could not copy the submission's folder ({exc}); only the notebook was copied")
            shutil.rmtree(dest, ignore_errors=True)
    else:
        warnings.append("the submission's folder is large; only the notebook was copied to run it")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(submission, dest / submission.name)
    return dest, warnings


# ------------------------------------------------------------------------------------- grade


def grade(
    submission_path: str | Path,
    solution_path: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    report_dir: str | Path | None = None,
    kernel_name: str = "python3",
    env: dict | None = None,
    max_restarts: int = 3,
    startup_timeout: float = 60,
    executed_path: str | Path | None = None,
) -> dict:
    """Grade one submitted notebook; return the report (and write it when ``report_dir`` is given).

    ``solution_path`` is the solution notebook or a folder of them (default: see
    :func:`find_solution`). ``timeout`` is per cell, in seconds. Raises
    :class:`GradingInputError` for a missing/invalid submission or no matching solution (nothing
    is written then) and :class:`GradingError` when no kernel can be started. ``env`` adds
    environment variables for the kernel; ``executed_path``, if given, receives the executed
    notebook (with the instructor's tests and every output, for a closer look).

    The report: ``{submission, solution, total, max_total, questions: [{grade_id, points,
    max_points, status, message, notes}], started, duration_s, kernel_restarts, warnings}``.
    """
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    submission = Path(submission_path)
    if executed_path is not None and Path(executed_path).resolve() == submission.resolve():
        raise GradingInputError(f"{submission}: the executed notebook must not overwrite the submission")
    try:
        sub_nb = read_notebook(submission)
    except NotebookReadError as exc:
        raise GradingInputError(str(exc)) from None
    solution = find_solution(submission, solution_path)
    try:
        sol_nb = read_notebook(solution)
    except NotebookReadError as exc:
        raise GradingInputError(f"solution notebook: {exc}") from None
    nb, questions = build_grading_notebook(sub_nb, sol_nb, solution_name=str(solution))
    if not questions:
        raise GradingInputError(f"{solution}: has no graded test cells (nbgrader grade: true) to grade with")

    with tempfile.TemporaryDirectory(prefix="gencourse-grade-") as tmp:
        tmp = Path(tmp)
        workdir, warnings = _prepare_workdir(submission, tmp / "work")
        records, restarts = execute_notebook(
            nb,
            workdir,
            timeout=float(timeout),
            kernel_name=kernel_name,
            env=env,
            max_restarts=max_restarts,
            startup_timeout=startup_timeout,
            kernel_log=tmp / "kernel.log",
        )
    entries = _score(nb, questions, records)
    if executed_path is not None:
        from .generate import write_notebook

        write_notebook(nb, executed_path)
    report = {
        "submission": str(submission),
        "solution": str(solution),
        "total": _num(sum(e["points"] for e in entries)),
        "max_total": _num(sum(e["max_points"] for e in entries)),
        "questions": entries,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - t0, 2),
        "kernel_restarts": restarts,
        "warnings": warnings,
    }
    if report_dir is not None:
        write_report(report, Path(report_dir) / f"{submission.stem}.json")
    return report


def write_report(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


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
        extra.append(f"kernel restarted {report['kernel_restarts']} time(s)")
    extra.extend(report.get("warnings", []))
    extra.append(f"graded in {report['duration_s']:g} s")
    lines.append("(" + "; ".join(extra) + ")")
    return "\n".join(lines)
