"""The grading worker: one process per submission (``python -m gencourse.grading.execute``).

It reads a job (the plan from :mod:`.build`, the scratch folder, the limits) as JSON on stdin,
starts the student process and the test process (:mod:`.kernel`), runs the plan's cells in
order, relays the test process's calls to the student process, and prints the raw records as
JSON on stdout. It is a child subreaper: every process the submission started, detached ones
included, comes back to it and is killed before it answers. It never decodes what the student
process sends beyond small JSON status messages.

Time limits: each cell gets ``timeout`` seconds; then it is interrupted (SIGINT), and a process
that has not answered ``grace`` seconds later is killed and restarted. A cell therefore costs at
most ``timeout + 2 * grace`` seconds. A student process that dies is restarted and the student's
cells that ran before are replayed, so a death costs only the question being run.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import isolate
from .remote import send_frame

_JSON_MAX = 1 << 20
KNOWN_PIDS: set[int] = set()  # the kernel processes themselves (not left behind when killed late)
# start a kernel without importing the library's heavy package first (the student's or the
# tests' own `import gencourse` loads it when they need it)
_KERNEL_BOOT = (
    "import sys, types, importlib.util\n"
    "spec = importlib.util.find_spec('gencourse')\n"
    "p = types.ModuleType('gencourse'); p.__path__ = list(spec.submodule_search_locations)\n"
    "sys.modules['gencourse'] = p\n"
    "from gencourse.grading import kernel\n"
    "del sys.modules['gencourse']\n"
    "kernel.main(sys.argv[1:])\n"
)


class Lost(Exception):
    """The process ended (or its pipe closed)."""


class Proc:
    """A kernel process (student or tests) and its two pipes."""

    def __init__(self, role: str, *, cwd: str, env: dict, log, wrapper: list[str] | None = None,
                 startup_timeout: float = 120.0, extra: list[str] | None = None):
        self.role = role
        r_in, w_in = os.pipe()  # grader -> process
        r_out, w_out = os.pipe()  # process -> grader
        flags = ["-P"] if sys.version_info >= (3, 11) else []  # no cwd on sys.path
        argv = [*(wrapper or []), sys.executable, *flags, "-c", _KERNEL_BOOT, role, str(r_in), str(w_out), *(extra or [])]
        try:
            self.popen = subprocess.Popen(argv, cwd=cwd, env=env, pass_fds=(r_in, w_out), stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=log, start_new_session=True)
        finally:
            os.close(r_in)
            os.close(w_out)
        self.fd_to, self.fd_from = w_in, r_out
        self.buffer = b""
        self.pid = None
        self.pidfd = None
        self.dead = False
        self.wrapped = bool(wrapper)
        self.startup_timeout = startup_timeout
        self.ready = False

    def handshake(self) -> Proc:
        """Wait for the process's hello (it has started and, for the tests, loaded its modules)."""
        if self.ready:
            return self
        frame = self.read(time.monotonic() + self.startup_timeout, accept=(b"H",))
        if frame is None:
            self.kill()
            raise Lost(f"the {self.role} process did not start within {self.startup_timeout:g} s")
        try:
            pid = int(json.loads(frame[1])["pid"])
        except (ValueError, KeyError, TypeError):
            self.kill()
            raise Lost(f"the {self.role} process did not start") from None
        self.pid = self._real_pid(pid) if self.wrapped else pid
        KNOWN_PIDS.add(self.pid)
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except (OSError, AttributeError):
            self.pidfd = None
        self.ready = True
        return self

    def _real_pid(self, inner: int) -> int:
        """The pid seen from here of the process that calls itself ``inner`` in its namespace."""
        for pid in isolate.descendants(self.popen.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("NSpid:") and line.split()[-1] == str(inner) and len(line.split()) > 2:
                    return pid
        return inner

    def alive(self) -> bool:
        if self.dead:
            return False
        if self.pid is None:
            return self.popen.poll() is None
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            return state not in (b"Z", b"X")
        except (OSError, IndexError):
            return False

    def send(self, kind: bytes, payload: bytes = b"") -> None:
        try:
            send_frame(self.fd_to, kind, payload)
        except OSError:
            self.dead = True
            raise Lost(f"the {self.role} process is gone") from None

    def _parse(self):
        if len(self.buffer) < 8:
            return None
        n = int.from_bytes(self.buffer[:8], "big")
        if not 1 <= n <= (1 << 30):
            self.dead = True
            raise Lost(f"the {self.role} process sent a malformed message")
        if len(self.buffer) < 8 + n:
            return None
        body = self.buffer[8 : 8 + n]
        self.buffer = self.buffer[8 + n :]
        return body[:1], body[1:]

    def read(self, deadline: float, accept=None):
        """The next frame (of a kind in ``accept``), None at the deadline; raises Lost."""
        while True:
            frame = self._parse()
            if frame is not None:
                if accept is None or frame[0] in accept:
                    return frame
                continue
            wait = deadline - time.monotonic()
            if wait <= 0:
                return None
            fds = [self.fd_from] + ([self.pidfd] if self.pidfd is not None else [])
            ready, _, _ = select.select(fds, [], [], min(wait, 0.5))
            if self.fd_from in ready:
                chunk = os.read(self.fd_from, 1 << 20)
                if not chunk:
                    self.dead = True
                    raise Lost(f"the {self.role} process is gone")
                self.buffer += chunk
                continue
            if not self.alive():
                self.dead = True
                raise Lost(f"the {self.role} process is gone")

    def readable(self) -> bool:
        return bool(self.buffer) or bool(select.select([self.fd_from], [], [], 0)[0])

    def interrupt(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGINT)
            except OSError:
                pass

    def kill(self) -> None:
        self.dead = True
        for pid in [self.pid] if self.pid else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.popen.kill()
        except OSError:
            pass
        for fd in (self.fd_to, self.fd_from, self.pidfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.fd_to = self.fd_from = self.pidfd = -1
        try:
            self.popen.wait(timeout=5)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass


def _json(body: bytes) -> dict:
    if len(body) > _JSON_MAX:
        return {"status": "error", "ename": "RuntimeError", "evalue": "an oversized status message"}
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return {"status": "error", "ename": "RuntimeError", "evalue": "a malformed status message"}
    if not isinstance(data, dict):
        return {"status": "error", "ename": "RuntimeError", "evalue": "a malformed status message"}
    return {str(k): v for k, v in data.items() if isinstance(v, (str, bool, int, float, list, type(None)))}


class Worker:
    def __init__(self, job: dict):
        self.job = job
        self.plan = job["plan"]
        self.timeout = float(job["timeout"])
        self.grace = float(job.get("grace", 5.0))
        self.tmp = Path(job["tmp"])
        self.scratch = job["scratch"]
        self.log = open(self.tmp / "kernels.log", "ab")
        self.student: Proc | None = None
        self.tests: Proc | None = None
        self.replay: list[int] = []
        self.setup_ran = 0
        self.restarts = 0
        self.records: dict[int, dict] = {}
        self.notes: list[str] = []
        self.start_failure = ""

    # -- processes
    def _student_env(self) -> dict:
        return dict(self.job["student_env"])

    def _spawn_student(self) -> Proc:
        wrapper = self.job.get("bwrap") or None
        return Proc("student", cwd=self.scratch, env=self._student_env(), log=self.log, wrapper=wrapper,
                    startup_timeout=float(self.job.get("startup_timeout", 120)))

    def _start_student(self, proc: Proc | None = None) -> Proc:
        proc = (proc or self._spawn_student()).handshake()
        init = {"forbid": self.plan["forbid"], "landlock": self.job.get("landlock")}
        proc.send(b"I", json.dumps(init).encode())
        frame = proc.read(time.monotonic() + float(self.job.get("startup_timeout", 120)), accept=(b"D",))
        if frame is None:
            proc.kill()
            raise Lost("the student process did not get ready")
        info = _json(frame[1])
        for note in info.get("notes") or []:
            if isinstance(note, str) and note not in self.notes:
                self.notes.append(note[:300])
        return proc

    def ensure_student(self) -> Proc:
        if self.student is not None and not self.student.dead and not self.student.ready:
            try:
                self.student = self._start_student(self.student)
            except Lost:
                self.student.dead = True
        while self.student is None or self.student.dead:
            if self.student is not None:
                self.student.kill()
                self.restarts += 1
            self.student = self._start_student()
            for j in list(self.replay):
                rec = self.run_student_cell(j, replaying=True)
                if rec.get("lost"):
                    self.replay.remove(j)
                    break
        return self.student

    def ensure_tests(self) -> Proc:
        if self.tests is None or self.tests.dead:
            if self.tests is not None:
                self.tests.kill()
            self.tests = self._spawn_tests()
            self.setup_ran = 0
        return self.tests.handshake()

    def _spawn_tests(self) -> Proc:
        return Proc("tests", cwd=str(self.tmp / "tests"), env=dict(self.job["tests_env"]), log=self.log,
                    startup_timeout=float(self.job.get("startup_timeout", 120)),
                    extra=list(self.plan.get("imports", [])))

    # -- cells
    def run_student_cell(self, j: int, replaying: bool = False) -> dict:
        proc = self.student
        source = self.plan["cells"][j]["source"]
        try:
            proc.send(b"E", json.dumps({"source": source, "forbid": self.plan["cells"][j].get("forbid", [])}).encode())
            frame = proc.read(time.monotonic() + self.timeout, accept=(b"D",))
            if frame is not None:
                return _json(frame[1])
            proc.interrupt()
            frame = proc.read(time.monotonic() + self.grace, accept=(b"D",))
            if frame is not None:
                rec = _json(frame[1])
                return {**rec, "status": "timeout", "reason": f"timed out after {self.timeout:g} s"}
            proc.kill()
            return {"status": "timeout", "lost": True,
                    "reason": f"timed out after {self.timeout:g} s and did not stop when interrupted; "
                    "its process was restarted"}
        except Lost:
            proc.kill()
            return {"status": "died", "lost": True,
                    "reason": "the process running your notebook died while running this cell (os._exit, a crash, "
                    "a signal or running out of memory); it was restarted"}

    def run_test(self, j: int, q: dict) -> dict:
        try:
            student = self.ensure_student()
        except Lost as exc:
            return {"status": "error", "reason": f"your notebook's process could not be started: {exc}"}
        try:
            tests = self.ensure_tests()
        except Lost as exc:
            return {"status": "error", "reason": f"the test process could not be started: {exc}", "grader": True}
        setup = self.plan["setup"][self.setup_ran : q["setup_upto"]]
        job = {"setup": setup, "test": self.plan["cells"][j]["source"], "bind": q["bind"],
               "signatures": self.plan["signatures"]}
        deadline = time.monotonic() + self.timeout * (1 + len(setup))
        phase, pending, student_lost = 0, False, False
        try:
            tests.send(b"E", json.dumps(job).encode())
        except Lost:
            return {"status": "error", "reason": "the test process is gone", "grader": True}
        while True:
            now = time.monotonic()
            if now >= deadline:
                phase += 1
                if phase == 1:
                    (student if pending else tests).interrupt()
                elif phase == 2 and pending:
                    student.kill()
                    student_lost, pending = True, False
                    try:
                        tests.send(b"X", b"your function did not stop when interrupted at the time limit")
                    except Lost:
                        pass
                else:
                    tests.kill()
                    if pending:
                        student.kill()
                    return {"status": "timeout", "lost": True, "student_lost": student_lost,
                            "reason": f"timed out after {self.timeout:g} s and did not stop when interrupted"}
                deadline = now + self.grace
                continue
            fds = [tests.fd_from] + ([student.fd_from] if pending and not student.dead else [])
            if tests.buffer or (pending and student.buffer):
                ready = fds
            else:
                ready, _, _ = select.select(fds, [], [], min(deadline - now, 0.5))
            try:
                if pending and (student.fd_from in ready or student.buffer):
                    try:
                        frame = student.read(time.monotonic() + 0.01, accept=(b"R",))
                    except Lost:
                        student_lost, pending = True, False
                        student.kill()
                        tests.send(b"X", b"the process running your notebook died during the call (os._exit, "
                                         b"a crash, a signal or running out of memory)")
                        continue
                    if frame is not None:
                        pending = False
                        tests.send(b"R", frame[1])
                if tests.fd_from in ready or tests.buffer:
                    frame = tests.read(time.monotonic() + 0.01, accept=(b"C", b"D"))
                    if frame is None:
                        continue
                    if frame[0] == b"D":
                        self.setup_ran = q["setup_upto"]
                        rec = _json(frame[1])
                        if phase:
                            reason = f"timed out after {self.timeout:g} s"
                            if student_lost or phase >= 2:
                                reason += " and did not stop when interrupted; its process was restarted"
                            rec = {**rec, "status": "timeout", "reason": reason}
                        if student_lost:
                            rec["student_lost"] = True
                        return rec
                    if student.dead:
                        tests.send(b"X", b"the process running your notebook is gone")
                    else:
                        try:
                            student.send(b"C", frame[1])
                            pending = True
                        except Lost:
                            student_lost = True
                            tests.send(b"X", b"the process running your notebook is gone")
                elif pending and not student.alive() and not student.readable():
                    student_lost, pending = True, False
                    student.kill()
                    tests.send(b"X", b"the process running your notebook died during the call")
            except Lost:
                tests.kill()
                if pending:
                    student.kill()
                return {"status": "error", "lost": True, "student_lost": student_lost, "grader": True,
                        "reason": "the test process died while running this test"}

    def run(self) -> dict:
        cells = self.plan["cells"]
        questions = {q["index"]: q for q in self.plan["questions"]}
        # both start at once; the student's first cell waits until the test process has loaded
        # its modules (it then holds its own copy of them, whatever the student's code writes)
        try:
            self.tests = self._spawn_tests()
            self.student = self._spawn_student()
            self.ensure_tests()
        except (Lost, OSError):
            pass
        for j, cell in enumerate(cells):
            if cell["kind"] == "student" and cell["source"].strip():
                try:
                    self.ensure_student()
                except Lost as exc:
                    self.records[j] = {"status": "not_run", "reason": f"not run: {exc}"}
                    continue
                rec = self.run_student_cell(j)
                self.records[j] = rec
                if rec.get("status") in ("ok", "error"):
                    self.replay.append(j)
            elif cell["kind"] == "test" and j in questions:
                rec = self.run_test(j, questions[j])
                self.records[j] = rec
                if rec.get("student_lost") and self.student is not None:
                    self.student.dead = True
        for proc in (self.student, self.tests):
            if proc is not None and not proc.dead:
                try:
                    proc.send(b"Q")
                except Lost:
                    pass
        time.sleep(0.05)
        for proc in (self.student, self.tests):
            if proc is not None:
                proc.kill()
        self.log.close()
        return {"records": {str(k): v for k, v in self.records.items()}, "restarts": self.restarts,
                "notes": self.notes}


def main() -> None:
    job = json.loads(sys.stdin.read())
    subreaper = isolate.become_subreaper()
    out_fd = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing but the result goes to the grader
    try:
        result = Worker(job).run()
    except Exception as exc:
        result = {"fatal": f"{type(exc).__name__}: {exc}"}
    result["leftovers"] = len(set(isolate.kill_descendants()) - KNOWN_PIDS)
    result["subreaper"] = subreaper
    data = json.dumps(result).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(out_fd, view):]
    os.close(out_fd)


if __name__ == "__main__":
    main()
