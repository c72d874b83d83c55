"""Autograde a student's notebook against the instructor's solution notebook.

How a submission is graded (the pieces are in this package):

1. :func:`prepare` reads the submission and its solution notebook into memory, builds the plan
   (:mod:`.build`) and copies the submission into a scratch folder, before any student code runs
   (the command line prepares every submission first). The submission is only ever read.
2. :func:`run` starts one worker process per submission, in its own session
   (:mod:`.execute`): a child subreaper that runs the student's cells in a student process and
   the instructor's tests in a separate test process (:mod:`.kernel`), the tests calling the
   student's functions through proxies (:mod:`.remote`). Whatever the submission's code does
   (kill its parent, detach a process, rewrite files), the worker ends every process it
   started before it answers, and this process alone writes the report.
3. :mod:`.score` turns what ran into points; :mod:`.report` names and writes the report.

A graded test cell earns its points iff it ran without an error and the answer does not call the
library's own implementation of what the exercise asks for.

Importing this module costs only the standard library; nbformat loads on use.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import isolate
from .build import GradingInputError, build_plan, find_solution
from .generate import NotebookReadError, read_notebook
from .report import STATUSES, format_report, report_name, write_report
from .score import num, score

__all__ = [
    "GradingInputError",
    "GradingError",
    "find_solution",
    "prepare",
    "run",
    "stop_all",
    "resume",
    "grade",
    "format_report",
    "write_report",
    "report_name",
    "STATUSES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_GRACE",
]

DEFAULT_TIMEOUT = 120.0
DEFAULT_GRACE = 5.0
MAX_COPY_BYTES = 200 * 2**20  # a bigger submission folder is not copied, only the notebook
MAX_COPY_FILES = 5000
_COPY_IGNORE = (".git", ".ipynb_checkpoints", "__pycache__", ".venv", "venv", "node_modules",
                "grading-reports", ".pytest_cache")
_BOOT = ("import sys, types; p = types.ModuleType('gencourse'); p.__path__ = [sys.argv[1]]; "
         "sys.modules['gencourse'] = p; from gencourse.grading.execute import main; main()")


class GradingError(RuntimeError):
    """Grading could not run at all (e.g. the Python of the kernels does not start)."""


@dataclass
class Prepared:
    """A submission read, planned and copied, ready to run."""

    submission: Path
    solution: Path
    plan: dict
    tmp: Path
    scratch: Path
    warnings: list[str] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    t0: float = field(default_factory=time.monotonic)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


# ------------------------------------------------------------------------------- preparing


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


def _scratch_copy(submission: Path, data: bytes, dest: Path, copy_folder: bool = True) -> list[str]:
    """Copy the submission's folder (data files it may read), without other notebooks (other
    students' submissions), into ``dest``; the notebook itself from the bytes read up front.
    ``copy_folder=False``: the notebook alone (a folder shared by a whole class)."""
    src = submission.resolve().parent
    warnings = []
    dest.mkdir(parents=True)
    if copy_folder and _folder_is_small(src):
        def ignore(folder, names):
            skip = set(shutil.ignore_patterns(*_COPY_IGNORE)(folder, names))
            return skip | {n for n in names if n.endswith(".ipynb")}

        try:
            shutil.copytree(src, dest, symlinks=False, ignore=ignore, dirs_exist_ok=True)
        except (OSError, shutil.Error) as exc:
            warnings.append(f"could not copy the submission's folder ({exc}); only the notebook was copied")
    elif copy_folder:
        warnings.append("the submission's folder is large; only the notebook was copied to run it")
    (dest / submission.name).write_bytes(data)
    return warnings


def prepare(submission_path: str | Path, solution_path: str | Path | None = None, *,
            copy_folder: bool = True) -> Prepared:
    """Read ``submission_path`` and its solution, plan the run and make the scratch copy.

    ``copy_folder=False`` copies the notebook alone, not the other files of its folder (a folder
    that holds the whole class's files, as an LMS export does). Raises
    :class:`GradingInputError` for a missing/invalid submission or no matching solution.
    """
    submission = Path(submission_path)
    try:
        sub_nb = read_notebook(submission)
        data = submission.read_bytes()
    except NotebookReadError as exc:
        raise GradingInputError(str(exc)) from None
    except OSError as exc:
        raise GradingInputError(f"{submission}: cannot be read ({exc})") from None
    solution = find_solution(submission, solution_path)
    try:
        sol_nb = read_notebook(solution)
    except NotebookReadError as exc:
        raise GradingInputError(f"solution notebook: {exc}") from None
    plan = build_plan(sub_nb, sol_nb, solution_name=solution.name)
    if not plan["questions"]:
        raise GradingInputError(f"{solution}: has no graded test cells (nbgrader grade: true) to grade with")
    tmp = Path(tempfile.mkdtemp(prefix="gencourse-grade-"))
    try:
        scratch = tmp / "work" / (submission.resolve().parent.name or "submission")
        warnings = _scratch_copy(submission, data, scratch, copy_folder)
        for sub in ("tests", "tmp", "data", "pylib", "ipython", "mpl"):
            (tmp / sub).mkdir()
        os.symlink(isolate.library_path(), tmp / "pylib" / "gencourse")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not plan["matched"]:
        warnings.append(f"this notebook matches none of the exercises of {solution.name} (no answer or test "
                        "cell of that chapter): is it the right file?")
    return Prepared(submission, solution, plan, tmp, scratch, warnings)


# ---------------------------------------------------------------------------------- running

# The grading workers running now (several at once when a class is graded in parallel), so that
# an interrupted run can end them all: token -> worker process.
_RUNNING: dict[str, subprocess.Popen] = {}
_RUNNING_LOCK = threading.Lock()
_STOPPING = threading.Event()


def _repo_root() -> Path | None:
    root = Path(isolate.library_path()).parent
    return root if (root / "pyproject.toml").is_file() else None


def _student_env(prep: Prepared, env: dict | None, token: str) -> dict:
    """The environment of the student process: no path into the course's repository (the
    library is reached through a private folder), its own temporary and data folders."""
    root = _repo_root()
    full = {}
    for key, value in os.environ.items():
        if key in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "JPY_PARENT_PID", "PWD", "OLDPWD"):
            continue
        if root is not None and str(root) in value and key != "PATH":
            continue
        full[key] = value
    if root is not None and "PATH" in full:
        full["PATH"] = os.pathsep.join(p for p in full["PATH"].split(os.pathsep)
                                       if not p.startswith(str(root)) or p == os.path.dirname(sys.executable))
    full.update({str(k): str(v) for k, v in (env or {}).items()})
    full.setdefault("GENCOURSE_PROFILE", os.environ.get("GENCOURSE_PROFILE", "smoke"))
    full.update({
        "PYTHONPATH": str(prep.tmp / "pylib"),
        "TMPDIR": str(prep.tmp / "tmp"),
        "IPYTHONDIR": str(prep.tmp / "ipython"),
        "MPLCONFIGDIR": str(prep.tmp / "mpl"),
        "GENCOURSE_DATA": str(prep.tmp / "data"),
        "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "GENCOURSE_GRADING_TOKEN": token,
        "HOME": str(prep.tmp / "tmp"),
    })
    return full


def _tests_env(prep: Prepared, env: dict | None, token: str) -> dict:
    full = dict(os.environ)
    full.update({str(k): str(v) for k, v in (env or {}).items()})
    full.setdefault("GENCOURSE_PROFILE", "smoke")
    parts = [p for p in full.get("PYTHONPATH", "").split(os.pathsep) if p]
    full["PYTHONPATH"] = os.pathsep.join([str(prep.tmp / "pylib"), *parts])
    full.update({"MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1", "GENCOURSE_GRADING_TOKEN": token})
    return full


def _sweep(token: str) -> int:
    """Kill what is left of a submission whose worker was killed (found by its token)."""
    n = 0
    for _ in range(20):
        pids = isolate.processes_with_token(token)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                n += 1
            except OSError:
                pass
        time.sleep(0.05)
    return n


def _kill_worker(proc: subprocess.Popen, token: str) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    _sweep(token)
    try:
        proc.wait(timeout=10)
    except (subprocess.TimeoutExpired, OSError):
        pass


def stop_all() -> int:
    """Kill every grading worker of this process that is still running, with the processes its
    submission started, and refuse new ones until :func:`resume` (an interrupted class run);
    return how many workers were killed. Their :func:`run` calls return a report that says the
    worker was killed; the caller discards it."""
    with _RUNNING_LOCK:
        _STOPPING.set()
        running = list(_RUNNING.items())
    for token, proc in running:
        _kill_worker(proc, token)
    return len(running)


def resume() -> None:
    """Allow :func:`run` again after :func:`stop_all`."""
    _STOPPING.clear()


def run(prep: Prepared, timeout: float = DEFAULT_TIMEOUT, *, env: dict | None = None, sandbox: bool = False,
        grace: float = DEFAULT_GRACE, startup_timeout: float = 120, landlock: bool | None = None,
        executed_path: str | Path | None = None) -> dict:
    """Grade a prepared submission in its own worker process; return the report (not written).

    ``sandbox``: run the student's process under bubblewrap (raises :class:`GradingError` when
    ``bwrap`` is not usable). ``landlock``: restrict the student's process with Landlock (default:
    when the kernel offers it).
    """
    t0 = time.monotonic()
    token = secrets.token_hex(16)
    job = {
        "plan": prep.plan, "timeout": float(timeout), "grace": float(grace), "tmp": str(prep.tmp),
        "scratch": str(prep.scratch), "startup_timeout": startup_timeout,
        "student_env": _student_env(prep, env, token), "tests_env": _tests_env(prep, env, token),
    }
    notes = []
    use_landlock = isolate.landlock_abi() > 0 if landlock is None else landlock
    if use_landlock:
        job["landlock"] = isolate.landlock_rules(str(prep.scratch), [str(prep.tmp / s) for s in
                                                                      ("tmp", "data", "ipython", "mpl")])
        job["landlock"]["read"].append(str(prep.tmp / "pylib"))
    if sandbox:
        exe = isolate.bwrap_available()
        if exe is None:
            raise GradingError("--sandbox needs bubblewrap (`bwrap`), installed and able to create namespaces "
                               "here (e.g. `apt-get install bubblewrap`)")
        job["bwrap"] = isolate.bwrap_argv(exe, str(prep.scratch), [str(prep.tmp / s) for s in ("tmp", "data", "ipython", "mpl")],
                                          [str(prep.tmp / "pylib")])
        notes.append("sandbox: bubblewrap")
    worker_env = {**os.environ, "GENCOURSE_GRADING_TOKEN": token}
    argv = [sys.executable, "-c", _BOOT, str(Path(isolate.library_path()))]
    with open(prep.tmp / "worker.log", "wb") as log:
        with _RUNNING_LOCK:
            if _STOPPING.is_set():
                raise GradingError("grading was interrupted")
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                    cwd=str(prep.tmp), env=worker_env, start_new_session=True)
            _RUNNING[token] = proc
        try:
            out, _ = proc.communicate(json.dumps(job).encode("utf-8"))
        except BaseException:  # interrupted (Ctrl-C): end this submission's processes, not only wait
            _kill_worker(proc, token)
            raise
        finally:
            with _RUNNING_LOCK:
                _RUNNING.pop(token, None)
    leftovers = _sweep(token)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    warnings = list(prep.warnings)
    result = None
    try:
        result = json.loads(out.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        result = None
    if not isinstance(result, dict) or "records" not in result:
        why = (result or {}).get("fatal") if isinstance(result, dict) else None
        code = proc.returncode
        reason = (f"the grader failed on this submission ({why})" if why else
                  f"grading was stopped: the worker process of this submission was killed (exit status {code}), "
                  "most likely by the submission's own code")
        warnings.append(reason)
        records = {q["index"]: {"status": "error", "reason": reason} for q in prep.plan["questions"]}
        restarts = 0
    else:
        records = {int(k): v for k, v in result["records"].items() if isinstance(v, dict)}
        restarts = int(result.get("restarts", 0))
        notes += [n for n in result.get("notes", []) if isinstance(n, str)]
        leftovers += int(result.get("leftovers", 0) or 0)
    if leftovers:
        notes.append(f"{leftovers} process(es) left behind by the submission were killed")
    entries = score(prep.plan, records, matched=bool(prep.plan["matched"]))
    if executed_path is not None:
        _write_executed(prep, records, executed_path)
    return {
        "submission": str(prep.submission),
        "solution": str(prep.solution),
        "total": num(sum(e["points"] for e in entries)),
        "max_total": num(sum(e["max_points"] for e in entries)),
        "questions": entries,
        "started": prep.started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - t0, 2),
        "kernel_restarts": restarts,
        "warnings": warnings,
        "isolation": notes,
    }


def _write_executed(prep: Prepared, records: dict, path) -> None:
    import nbformat

    from .generate import write_notebook

    cells = []
    for j, cell in enumerate(prep.plan["cells"]):
        if cell["cell_type"] == "code":
            rec = records.get(j, {})
            outputs = []
            if rec.get("stdout"):
                outputs.append(nbformat.v4.new_output("stream", name="stdout", text=str(rec["stdout"])))
            if rec.get("status") not in (None, "ok"):
                outputs.append(nbformat.v4.new_output("error", ename=str(rec.get("ename", rec.get("status"))),
                                                      evalue=str(rec.get("evalue", rec.get("reason", ""))),
                                                      traceback=[]))
            new = nbformat.v4.new_code_cell(cell["source"], metadata=cell["metadata"], outputs=outputs)
        elif cell["cell_type"] == "markdown":
            new = nbformat.v4.new_markdown_cell(cell["source"], metadata=cell["metadata"])
        else:
            new = nbformat.v4.new_raw_cell(cell["source"], metadata=cell["metadata"])
        if cell.get("id"):
            new["id"] = cell["id"]
        cells.append(new)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=prep.plan["metadata"])
    write_notebook(nb, path)


# ------------------------------------------------------------------------------------ grade


def grade(
    submission_path: str | Path,
    solution_path: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    report_dir: str | Path | None = None,
    env: dict | None = None,
    sandbox: bool = False,
    grace: float = DEFAULT_GRACE,
    startup_timeout: float = 120,
    landlock: bool | None = None,
    executed_path: str | Path | None = None,
) -> dict:
    """Grade one submitted notebook; return the report (and write it when ``report_dir`` is given).

    ``solution_path`` is the solution notebook or a folder of them (default: see
    :func:`find_solution`). ``timeout`` is per cell, in seconds; a cell that ignores the interrupt
    is killed ``grace`` seconds later (at most ``timeout + 2 * grace`` per cell). Raises
    :class:`GradingInputError` for a missing/invalid submission or no matching solution (nothing
    is written then). ``env`` adds environment variables for the student's and the test process;
    ``executed_path``, if given, receives the notebook as it ran (instructor's tests included).

    The report: ``{submission, solution, total, max_total, questions: [{grade_id, points,
    max_points, status, message, notes}], started, duration_s, kernel_restarts, warnings,
    isolation}``; its file name comes from :func:`report_name`.
    """
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    submission = Path(submission_path)
    if executed_path is not None and Path(executed_path).resolve() == submission.resolve():
        raise GradingInputError(f"{submission}: the executed notebook must not overwrite the submission")
    prep = prepare(submission, solution_path)
    try:
        report = run(prep, timeout, env=env, sandbox=sandbox, grace=grace, startup_timeout=startup_timeout,
                     landlock=landlock, executed_path=executed_path)
    finally:
        prep.cleanup()
    if report_dir is not None:
        target = Path(report_dir) / report_name(submission)
        if target.exists():
            report.setdefault("warnings", []).append(f"replaced the earlier report {target}")
        write_report(report, target)
    return report
