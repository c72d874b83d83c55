"""The two processes that grade one submission: ``python -m gencourse.grading.kernel student|tests``.

* The **student process** runs the student's cells (answer cells and the student's own cells,
  never a test cell) in an IPython shell, in a scratch copy of the submission's folder, with
  the library functions that the exercises ask for replaced by stubs that raise. Between cells
  it answers calls from the test process (see :mod:`.remote`): it unpickles the instructor's
  arguments, runs the student's function, and sends back only data in the safe encoding.
* The **test process** never runs student code. It runs the instructor's setup cells and test
  cells, hidden tests included, with the student's names bound to proxies. A failed ``assert``
  without a message says what came and what was expected, never its own source line.

Both talk to the grader (:mod:`.execute`) over two pipes whose descriptors are given on the
command line; the student process forks at start so that its parent is a small waiting process,
not the grader (``os.kill(os.getppid(), ...)`` then only ends that waiter).
"""

from __future__ import annotations

import ast
import io
import json
import os
import signal
import sys
import traceback

from . import remote
from .remote import recv_frame, send_frame, send_json

_TEXT_MAX = 20_000


class _State:
    busy = False


def _on_sigint(signum, frame):
    if _State.busy:
        raise KeyboardInterrupt


def _trim(text: str, n: int = _TEXT_MAX) -> str:
    return text if len(text) <= n else text[: n // 2] + "\n...\n" + text[-n // 2 :]


def _exc_info(exc: BaseException) -> dict:
    return {
        "ename": type(exc).__name__,
        "evalue": _trim(str(exc), 2000),
        "traceback": _trim("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), 8000),
    }


class _Capped(io.StringIO):
    """A StringIO that keeps the first ``_TEXT_MAX`` characters and drops the rest."""

    def write(self, text):
        room = _TEXT_MAX + 1 - self.tell()
        if room > 0:
            super().write(str(text)[:room])
        return len(text)


class _Capture:
    """Collect what Python code prints (sys.stdout / sys.stderr) while a cell runs."""

    def __enter__(self):
        self.buf = _Capped()
        self.saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = self.buf
        return self

    def __exit__(self, *exc):
        sys.stdout, sys.stderr = self.saved
        return False

    @property
    def text(self) -> str:
        return _trim(self.buf.getvalue())


# ------------------------------------------------------------------------------ student side


def _nanny() -> None:
    """Fork: the parent only waits for the child and exits with its status."""
    pid = os.fork()
    if pid == 0:
        return
    try:
        os.closerange(3, 1 << 16)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            status = 0
            break
        except InterruptedError:
            continue
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF if status else 0)


#: the forbidden library functions of the cell that compiled each code file name
_FORBID_BY_FILE: dict[str, frozenset] = {}
_FORBID_ALL: set[str] = set()
_STUDENT_GLOBALS: list = []  # the namespace the student's cells run in


def _forbidden_here(path: str) -> bool:
    """Whether a student frame on the stack comes from an answer whose question forbids ``path``
    (code of unknown origin in the student's namespace counts as forbidding everything)."""
    frame = sys._getframe(2)
    while frame is not None:
        if _STUDENT_GLOBALS and frame.f_globals is _STUDENT_GLOBALS[0]:
            forbid = _FORBID_BY_FILE.get(frame.f_code.co_filename)
            if forbid is None:
                forbid = _FORBID_ALL
            if path in forbid:
                return True
        frame = frame.f_back
    return False


def install_stubs(forbid: list[str]) -> list[str]:
    """Replace each library function named in ``forbid`` (``"gencourse.diffusion.ddim_step"``)
    by a stub, wherever a gencourse module holds it: called (directly or through the library)
    from an answer whose question forbids it, it raises; otherwise it runs the original."""
    import importlib

    _FORBID_ALL.update(forbid)

    done = []
    for path in forbid:
        modname, _, fname = path.rpartition(".")
        try:
            mod = importlib.import_module(modname)
        except Exception:
            continue
        original = getattr(mod, fname, None)
        if original is None:
            continue

        def stub(*args, _path=path, _original=original, **kwargs):
            if _forbidden_here(_path):
                raise RuntimeError(f"calling {_path} is not allowed in this exercise: write it yourself")
            return _original(*args, **kwargs)

        stub.__name__ = fname
        stub.__qualname__ = fname
        stub.__module__ = modname
        stub.__doc__ = f"{path} is not available while this exercise is graded."
        for m in list(sys.modules.values()):
            name = getattr(m, "__name__", "") or ""
            if not (name == "gencourse" or name.startswith("gencourse.")):
                continue
            try:
                items = list(vars(m).items())
            except TypeError:
                continue
            for key, value in items:
                if value is original:
                    setattr(m, key, stub)
        done.append(path)
    return done


class StudentServer:
    def __init__(self, fd_in: int, fd_out: int):
        self.fd_in, self.fd_out = fd_in, fd_out
        self.handles: dict[int, tuple] = {}
        self.next_handle = 0
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        config = Config()
        config.HistoryManager.enabled = False
        self.shell = InteractiveShell.instance(config=config)
        self.ns = self.shell.user_ns
        _STUDENT_GLOBALS[:] = [self.shell.user_global_ns]
        self.cell_forbid: frozenset = frozenset()
        cache = self.shell.compile.cache

        def remember(*args, **kwargs):  # which cell (and so which question) compiled which code
            name = cache(*args, **kwargs)
            _FORBID_BY_FILE[name] = self.cell_forbid
            return name

        self.shell.compile.cache = remember

    # -- cells
    def run_cell(self, source: str, forbid=()) -> dict:
        self.cell_forbid = frozenset(forbid)
        with _Capture() as cap:
            _State.busy = True
            try:
                result = self.shell.run_cell(source, store_history=False, silent=False)
            except KeyboardInterrupt as exc:  # between IPython's own handlers
                result = None
                err = exc
            finally:
                _State.busy = False
        if result is None:
            return {"status": "error", **_exc_info(err), "stdout": cap.text}
        err = result.error_before_exec or result.error_in_exec
        if err is not None:
            return {"status": "error", **_exc_info(err), "stdout": cap.text}
        return {"status": "ok", "stdout": cap.text}

    # -- calls
    def _resolve(self, x):
        if isinstance(x, remote.StudentRef):
            if x.name not in self.ns:
                raise NameError(f"name {x.name!r} is not defined")
            return self.ns[x.name]
        if isinstance(x, list):
            return [self._resolve(v) for v in x]
        if isinstance(x, tuple):
            return tuple(self._resolve(v) for v in x)
        if isinstance(x, dict):
            return {k: self._resolve(v) for k, v in x.items()}
        return x

    def call(self, payload: bytes) -> tuple[bytes, bytes]:
        (name, args, kwargs, mutable_keys, want_grad, grad_enabled), grad_inputs = remote.unpickle_args(payload)
        if name not in self.ns:
            err = NameError(f"name {name!r} is not defined in your notebook")
            return b"E", json.dumps(_exc_info(err)).encode()
        fn = self.ns[name]
        args, kwargs = self._resolve(tuple(args)), self._resolve(dict(kwargs))
        with _Capture():
            _State.busy = True
            try:
                torch = sys.modules.get("torch")
                if torch is not None:
                    with torch.set_grad_enabled(bool(grad_enabled)):
                        result = fn(*args, **kwargs)
                else:
                    result = fn(*args, **kwargs)
            except BaseException as exc:
                _State.busy = False
                info = _exc_info(exc)
                tb = exc.__traceback__
                info["signature_error"] = isinstance(exc, TypeError) and tb is not None and tb.tb_next is None
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    info["ename"], info["evalue"] = "TimeoutError" if isinstance(exc, KeyboardInterrupt) else "RuntimeError", (
                        "interrupted at the time limit" if isinstance(exc, KeyboardInterrupt) else f"SystemExit({exc})"
                    )
                return b"E", json.dumps(info).encode()
            finally:
                _State.busy = False
        states = {}
        for key, value in remote._flat_args(args, kwargs):
            if key in mutable_keys:
                try:
                    states[key] = remote.state_of(value)
                except Exception:
                    pass
        handle = None
        if want_grad:
            handle = self._keep_graph(grad_inputs, result)
        try:
            return b"V", remote.encode({"result": result, "states": states, "handle": handle})
        except remote.UnsafeValue as exc:
            err = TypeError(
                f"{name} returned {exc}, which the grader does not accept: return tensors, arrays, "
                "numbers, strings, or tuples/lists/dicts of these"
            )
            return b"E", json.dumps(_exc_info(err)).encode()

    def _keep_graph(self, inputs, result):
        import torch

        outs = []

        def collect(x):
            if isinstance(x, torch.Tensor) and x.requires_grad:
                outs.append(x)
            elif isinstance(x, (list, tuple)):
                for v in x:
                    collect(v)

        collect(result)
        if not inputs or not outs:
            return None
        self.next_handle += 1
        self.handles[self.next_handle] = (inputs, outs)
        for old in [h for h in self.handles if h <= self.next_handle - 256]:
            del self.handles[old]
        return self.next_handle

    def vjp(self, payload: bytes) -> tuple[bytes, bytes]:
        import torch

        (handle, grads), _ = remote.unpickle_args(payload)
        if handle not in self.handles:
            return b"E", json.dumps({"ename": "RuntimeError", "evalue": "the graph of this result is gone"}).encode()
        inputs, outs = self.handles[handle]
        pairs = [(o, g) for o, g in zip(outs, grads) if g is not None]
        try:
            got = torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs],
                                      allow_unused=True, retain_graph=True)
        except Exception as exc:
            return b"E", json.dumps(_exc_info(exc)).encode()
        return b"V", remote.encode([None if g is None else g.detach() for g in got])

    def describe(self, payload: bytes) -> tuple[bytes, bytes]:
        names, _ = remote.unpickle_args(payload)
        out = {}
        for name in names:
            if name not in self.ns:
                out[name] = ("missing", None)
                continue
            value = self.ns[name]
            if callable(value):
                out[name] = ("callable", None)
                continue
            try:
                remote.encode(value)
                out[name] = ("value", value)
            except remote.UnsafeValue as exc:
                out[name] = ("unsafe", str(exc))
        try:
            return b"V", remote.encode(out)
        except remote.UnsafeValue as exc:
            return b"E", json.dumps({"ename": "TypeError", "evalue": str(exc)}).encode()

    def serve(self) -> None:
        while True:
            try:
                frame = recv_frame(self.fd_in)
            except KeyboardInterrupt:  # an interrupt that came after the work ended
                continue
            if frame is None:
                return
            kind, body = frame
            try:
                if kind == b"E":
                    job = json.loads(body.decode("utf-8"))
                    reply = self.run_cell(job["source"], job.get("forbid", ()))
                    send_json(self.fd_out, b"D", reply)
                elif kind == b"C":
                    op, payload = body[:8].decode().strip(), body[8:]
                    handler = {"call": self.call, "vjp": self.vjp, "describe": self.describe}.get(op)
                    if handler is None:
                        rk, rb = b"E", json.dumps({"ename": "RuntimeError", "evalue": f"unknown op {op}"}).encode()
                    else:
                        rk, rb = handler(payload)
                    send_frame(self.fd_out, b"R", rk + rb)
                elif kind == b"Q":
                    return
            except KeyboardInterrupt:
                err = {"ename": "TimeoutError", "evalue": "interrupted at the time limit"}
                if kind == b"E":
                    send_json(self.fd_out, b"D", {"status": "error", **err})
                else:
                    send_frame(self.fd_out, b"R", b"E" + json.dumps(err).encode())


def student_main(fd_in: int, fd_out: int) -> None:
    _nanny()
    signal.signal(signal.SIGINT, _on_sigint)
    for fd in (fd_in, fd_out):
        os.set_inheritable(fd, False)
    send_json(fd_out, b"H", {"pid": os.getpid()})
    frame = recv_frame(fd_in)
    if frame is None or frame[0] != b"I":
        return
    init = json.loads(frame[1].decode("utf-8"))
    notes = []
    if init.get("landlock"):
        from .isolate import landlock_restrict

        notes.append(landlock_restrict(**init["landlock"]))
    server = StudentServer(fd_in, fd_out)
    with _Capture():
        stubbed = install_stubs(init.get("forbid", []))
    send_json(fd_out, b"D", {"status": "ok", "stubbed": stubbed, "notes": [n for n in notes if n]})
    server.serve()


# ------------------------------------------------------------------------------- test side

_COMPARE_CALLS = {"allclose", "isclose", "equal", "array_equal", "assert_allclose"}
_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
        ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


class _AssertRewriter(ast.NodeTransformer):
    """``assert a < b`` -> ``assert (_v0 := a) < (_v1 := b), _explain(...)`` (only asserts
    without a message): a failure then reports the values, not the source."""

    def __init__(self):
        self.n = 0

    def _var(self, node):
        self.n += 1
        name = f"__gc_v{self.n}"
        return ast.NamedExpr(target=ast.Name(name, ast.Store()), value=node), ast.Name(name, ast.Load())

    def _func_name(self, call):
        f = call.func
        return f.attr if isinstance(f, ast.Attribute) else (f.id if isinstance(f, ast.Name) else "")

    def visit_Lambda(self, node):
        return node

    def visit_Assert(self, node):
        if node.msg is not None:
            return node
        test = node.test
        line = getattr(node, "lineno", 0)
        explain = ast.Name("__gc_explain__", ast.Load())
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            left, lref = self._var(test.left)
            right, rref = self._var(test.comparators[0])
            test = ast.Compare(left=left, ops=test.ops, comparators=[right])
            op = _OPS.get(type(node.test.ops[0]), "?")
            msg = ast.Call(explain, [ast.Constant(op), lref, rref, ast.Constant(line)], [])
        elif isinstance(test, ast.Call) and self._func_name(test) in _COMPARE_CALLS and len(test.args) >= 2:
            a, aref = self._var(test.args[0])
            b, bref = self._var(test.args[1])
            test = ast.Call(test.func, [a, b, *test.args[2:]], test.keywords)
            msg = ast.Call(explain, [ast.Constant(self._func_name(node.test)), aref, bref, ast.Constant(line)], [])
        else:
            msg = ast.Call(explain, [ast.Constant(""), ast.Constant(None), ast.Constant(None), ast.Constant(line)], [])
        new = ast.Assert(test=test, msg=msg)
        return ast.copy_location(new, node)


def compile_test(source: str, filename: str = "<hidden test>"):
    tree = ast.parse(source, filename)
    tree = _AssertRewriter().visit(tree)
    ast.fix_missing_locations(tree)
    return compile(tree, filename, "exec")


def _describe_value(x) -> str:
    torch = sys.modules.get("torch")
    np = sys.modules.get("numpy")
    if torch is not None and isinstance(x, torch.Tensor):
        flat = x.detach().flatten()
        body = ", ".join(f"{v:.6g}" if not isinstance(v, bool) else str(v) for v in flat[:6].tolist())
        more = ", ..." if flat.numel() > 6 else ""
        shape = tuple(x.shape)
        return f"a tensor of shape {shape}, dtype {str(x.dtype).replace('torch.', '')}: [{body}{more}]"
    if np is not None and isinstance(x, np.ndarray):
        flat = x.ravel()
        body = ", ".join(f"{v:.6g}" if x.dtype.kind in "fc" else str(v) for v in flat[:6].tolist())
        return f"a NumPy array of shape {x.shape}, dtype {x.dtype}: [{body}{', ...' if flat.size > 6 else ''}]"
    if isinstance(x, float):
        return f"{x:.10g}"
    text = repr(x)
    return text if len(text) <= 200 else text[:199] + "…"


def explain(op: str, got, expected, line: int) -> str:
    """The message of a failed hidden ``assert`` without its own message."""
    where = f" (hidden check on line {line})" if line else ""
    if op == "":
        return f"a hidden check did not hold{where}"
    if op in _COMPARE_CALLS:
        return f"got {_describe_value(got)}; expected (within tolerance) {_describe_value(expected)}{where}"
    if op == "==":
        return f"got {_describe_value(got)}; expected {_describe_value(expected)}{where}"
    if op in ("is", "is not", "in", "not in", "!="):
        return f"got {_describe_value(got)}; expected a value that is {op} {_describe_value(expected)}{where}"
    return f"got {_describe_value(got)}; expected a value {op} {_describe_value(expected)}{where}"


class TestServer:
    def __init__(self, fd_in: int, fd_out: int):
        self.fd_in, self.fd_out = fd_in, fd_out
        self.channel = remote.Channel(fd_in, fd_out)
        self.ns: dict = {"__name__": "__main__", "__builtins__": __builtins__, "__gc_explain__": explain}

    def _exec(self, source: str, filename: str, rewrite: bool):
        code = compile_test(source, filename) if rewrite else compile(source, filename, "exec")
        exec(code, self.ns)

    def run(self, job: dict) -> dict:
        with _Capture() as cap:
            for i, source in enumerate(job.get("setup", [])):
                _State.busy = True
                try:
                    self._exec(source, f"<setup cell {i}>", rewrite=False)
                except BaseException as exc:
                    if isinstance(exc, KeyboardInterrupt):
                        return {"status": "error", "ename": "TimeoutError", "evalue": "a setup cell timed out",
                                "where": "setup", "stdout": cap.text}
                    return {"status": "error", **_exc_info(exc), "where": "setup", "stdout": cap.text}
                finally:
                    _State.busy = False
            bind = list(job.get("bind", []))
            missing, unsafe = [], {}
            try:
                described = remote.fetch(self.channel, bind) if bind else {}
            except remote.StudentLost as exc:
                return {"status": "lost", "ename": "StudentLost", "evalue": str(exc), "stdout": cap.text}
            except ValueError as exc:
                return {"status": "error", "ename": "TypeError", "evalue": f"your notebook sent back a malformed value ({exc})",
                        "stdout": cap.text}
            signatures = job.get("signatures", {})
            for name in bind:
                kind, value = described.get(name, ("missing", None))
                self.ns.pop(name, None)
                if kind == "callable":
                    self.ns[name] = remote.StudentFunction(self.channel, name, signatures.get(name))
                elif kind == "value":
                    self.ns[name] = value
                elif kind == "unsafe":
                    unsafe[name] = value
                else:
                    missing.append(name)
            if unsafe:
                name, what = next(iter(unsafe.items()))
                return {"status": "error", "ename": "TypeError", "unsafe": name,
                        "evalue": f"{name} holds {what}, which the grader cannot take from your notebook",
                        "stdout": cap.text}
            _State.busy = True
            try:
                self._exec(job["test"], "<test cell>", rewrite=True)
            except remote.StudentLost as exc:
                return {"status": "lost", "ename": "StudentLost", "evalue": str(exc), "stdout": cap.text}
            except KeyboardInterrupt:
                return {"status": "error", "ename": "TimeoutError", "evalue": "interrupted at the time limit",
                        "stdout": cap.text}
            except BaseException as exc:
                info = _exc_info(exc)
                info.pop("traceback", None)  # never show the hidden test's source
                info["student"] = isinstance(exc, remote.StudentException)
                if isinstance(exc, NameError):
                    info["name"] = getattr(exc, "name", None)
                return {"status": "error", **info, "missing": missing, "stdout": cap.text}
            finally:
                _State.busy = False
        return {"status": "ok", "stdout": cap.text}

    def serve(self) -> None:
        while True:
            try:
                frame = recv_frame(self.fd_in)
            except KeyboardInterrupt:
                continue
            if frame is None:
                return
            kind, body = frame
            if kind == b"E":
                try:
                    reply = self.run(json.loads(body.decode("utf-8")))
                except KeyboardInterrupt:
                    reply = {"status": "error", "ename": "TimeoutError", "evalue": "interrupted at the time limit"}
                send_json(self.fd_out, b"D", reply)
            elif kind == b"Q":
                return


def tests_main(fd_in: int, fd_out: int, preload: list[str]) -> None:
    signal.signal(signal.SIGINT, _on_sigint)
    for name in ("cloudpickle", *preload):  # loaded before the student's code runs
        try:
            __import__(name)
        except Exception:
            pass
    send_json(fd_out, b"H", {"pid": os.getpid()})
    TestServer(fd_in, fd_out).serve()


def main(argv: list[str]) -> None:
    role, fd_in, fd_out = argv[0], int(argv[1]), int(argv[2])
    if role == "student":
        student_main(fd_in, fd_out)
    else:
        tests_main(fd_in, fd_out, argv[3:])


if __name__ == "__main__":
    main(sys.argv[1:])
