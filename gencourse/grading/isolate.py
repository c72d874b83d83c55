"""What the operating system can do to keep a submission's processes apart (Linux).

* :func:`become_subreaper`: orphaned descendants of the grading worker (a detached
  ``subprocess.Popen(..., start_new_session=True)``) are re-parented to it, so that
  :func:`kill_descendants` finds and ends them before the report is written.
* :func:`landlock_restrict` (Linux >= 5.13, no root needed): the student process and everything
  it starts may write only into its scratch folder and temporary folders, may read only the
  Python installation, the library and system folders (not the course's ``solutions/``), and
  (Linux >= 6.12) may not send signals to processes outside it. Used when the kernel offers it.
* :func:`bwrap_argv` (``--sandbox``): bubblewrap, when installed: a new mount namespace in
  which only the Python environment, the library and the scratch copy exist (read-only where
  possible), no network, a separate PID namespace.

Without these, a student's process can read and write every file its user can.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) < 2:
            continue
        if rest[0] == "Z":
            continue
        kids.setdefault(int(rest[1]), []).append(int(entry))
    return kids


def descendants(pid: int | None = None) -> list[int]:
    """Living descendants of ``pid`` (default: this process), from /proc."""
    root = os.getpid() if pid is None else pid
    if not os.path.isdir("/proc"):
        return []
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        for child in kids.get(todo.pop(), []):
            if child not in out:
                out.append(child)
                todo.append(child)
    return out


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_descendants(settle: float = 0.3, limit: float = 10.0) -> list[int]:
    """SIGKILL every descendant of this process until none is left (this process should be a
    subreaper, so that orphans come back to it); return the pids that were killed."""
    killed: list[int] = []
    quiet_since = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        pids = descendants()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
        _reap()
        if pids:
            quiet_since = None
            time.sleep(0.02)
            continue
        if quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            break
        time.sleep(0.05)
    return killed


def processes_with_token(token: str) -> list[int]:
    """Processes of this user whose environment carries ``GENCOURSE_GRADING_TOKEN=token``."""
    needle = f"GENCOURSE_GRADING_TOKEN={token}".encode()
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


# ------------------------------------------------------------------------------------ landlock

_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446
_FS = {
    "execute": 1 << 0, "write_file": 1 << 1, "read_file": 1 << 2, "read_dir": 1 << 3,
    "remove_dir": 1 << 4, "remove_file": 1 << 5, "make_char": 1 << 6, "make_dir": 1 << 7,
    "make_reg": 1 << 8, "make_sock": 1 << 9, "make_fifo": 1 << 10, "make_block": 1 << 11,
    "make_sym": 1 << 12, "refer": 1 << 13, "truncate": 1 << 14, "ioctl_dev": 1 << 15,
}
_READ = _FS["execute"] | _FS["read_file"] | _FS["read_dir"]


def landlock_abi() -> int:
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return 0
    try:
        libc = _libc()
        libc.syscall.restype = ctypes.c_long
        abi = libc.syscall(ctypes.c_long(_SYS_CREATE), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return int(abi) if abi > 0 else 0


def landlock_restrict(read: list[str], write: list[str]) -> str:
    """Restrict this process and its future children: read (and execute) only under ``read``,
    read and write only under ``write``; no signals to processes outside (ABI >= 6). Returns
    a note (empty on success)."""
    abi = landlock_abi()
    if abi < 1:
        return "landlock is not available"
    handled = 0
    for name, bit in _FS.items():
        if name == "refer" and abi < 2 or name == "truncate" and abi < 3 or name == "ioctl_dev" and abi < 5:
            continue
        handled |= bit
    writes = handled
    scoped = 0x2 if abi >= 6 else 0  # LANDLOCK_SCOPE_SIGNAL

    class Attr(ctypes.Structure):
        _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                    ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    attr = Attr(handled, 0, scoped)
    size = ctypes.sizeof(Attr) if abi >= 6 else 16
    ruleset = libc.syscall(ctypes.c_long(_SYS_CREATE), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"landlock: cannot create a ruleset ({os.strerror(ctypes.get_errno())})"
    try:
        for paths, access in ((read, _READ), (write, writes)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    allowed = access
                    if not os.path.isdir(path):  # a file: only file rights
                        allowed &= _FS["execute"] | _FS["read_file"] | _FS["write_file"] | _FS["truncate"] | (
                            _FS["ioctl_dev"] if abi >= 5 else 0)
                    rule = PathBeneath(allowed & handled, fd)
                    libc.syscall(ctypes.c_long(_SYS_ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(1),
                                 ctypes.byref(rule), ctypes.c_uint32(0))
                finally:
                    os.close(fd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return "landlock: cannot set no_new_privs"
        if libc.syscall(ctypes.c_long(_SYS_RESTRICT), ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return f"landlock: cannot restrict ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    return ""


def python_paths() -> list[str]:
    """Folders the Python environment needs to be readable (interpreter, stdlib, site-packages)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    for p in sys.path:
        if p and os.path.isdir(p) and ("site-packages" in p or "dist-packages" in p or p.startswith(sys.base_prefix)):
            paths.add(p)
    return sorted(paths)


def library_path() -> str:
    return str(Path(__file__).resolve().parents[1])  # the gencourse package folder


def landlock_rules(scratch: str, extra_write: list[str]) -> dict:
    """The paths the student process may read and write."""
    read = ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/opt", "/run",
            *python_paths(), library_path()]
    cache = os.environ.get("GENCOURSE_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "gencourse")
    read.append(cache)
    write = [scratch, *extra_write, "/dev/null", "/dev/shm", "/dev/zero", "/dev/urandom", "/dev/random",
             "/dev/tty", "/dev/pts"]
    return {"read": [p for p in read if os.path.exists(p)], "write": [p for p in write if os.path.exists(p)]}


# ----------------------------------------------------------------------------------- bubblewrap


def bwrap_available() -> str | None:
    """The path of ``bwrap`` if it is installed and can create its namespaces here."""
    exe = shutil.which("bwrap")
    if not exe:
        return None
    import subprocess

    try:
        ok = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                            capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return None
    return exe if ok else None


def bwrap_argv(exe: str, scratch: str, writable: list[str], readable: list[str]) -> list[str]:
    """bubblewrap's command line: system folders, the Python environment and the library
    read-only, the scratch copy and a private /tmp writable, nothing else of the file system;
    no network; new PID, IPC and UTS namespaces."""
    argv = [exe, "--unshare-all", "--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp"]
    for path in ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc"):
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    for path in [*python_paths(), library_path()]:
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    cache = os.environ.get("GENCOURSE_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "gencourse")
    if os.path.isdir(cache):
        argv += ["--ro-bind", cache, cache]
    for path in readable:
        argv += ["--ro-bind", path, path]
    for path in writable:
        argv += ["--bind", path, path]
    argv += ["--bind", scratch, scratch, "--chdir", scratch]
    return argv
