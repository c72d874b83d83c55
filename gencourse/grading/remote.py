"""The wire between the test process and the student process: frames, a safe encoding, proxies.

Two directions, two rules:

* instructor -> student (a call's arguments): cloudpickle. The student process may unpickle
  the instructor's data; it runs the student's code anyway.
* student -> instructor (a call's result, the new state of mutable arguments): :func:`encode`,
  a format that carries data only: ``None``, ``bool``, ``int``, ``float``, ``complex``,
  ``str``, tuples, lists and dicts of these, torch tensors and NumPy arrays (dtype, shape, raw
  bytes) and ``torch.nn`` layers rebuilt from an allow-list of classes (:func:`decode` never
  unpickles anything). An object with an always-true ``__eq__`` cannot cross it.

A student's function, seen from the test process, is a :class:`StudentFunction`: calling it
sends the arguments over, runs the student's code there, brings the result back in the safe
encoding, and copies back what the call changed in its arguments (parameters, gradients and
buffers of modules, optimizer state, tensors changed in place), so a test that checks "G did
not change" sees what the student's code did. A result that depends on an argument that requires
a gradient comes back attached to the test's autograd graph: its backward pass asks the student
process for the vector-Jacobian product.

Frames: 8-byte big-endian length, then a 1-byte kind, then the payload.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import struct
import sys
from typing import Any

MAX_FRAME = 1 << 30  # 1 GiB: a bigger message is refused

# ------------------------------------------------------------------------------------- frames


def send_frame(fd: int, kind: bytes, payload: bytes = b"") -> None:
    data = struct.pack(">Q", len(payload) + 1) + kind + payload
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_frame(fd: int) -> tuple[bytes, bytes] | None:
    """``(kind, payload)``, or None at end of file. Raises ValueError for an oversized frame."""
    head = _read_exact(fd, 8)
    if head is None:
        return None
    (n,) = struct.unpack(">Q", head)
    if not 1 <= n <= MAX_FRAME:
        raise ValueError(f"frame of {n} bytes refused")
    body = _read_exact(fd, n)
    if body is None:
        return None
    return body[:1], body[1:]


def send_json(fd: int, kind: bytes, obj: Any) -> None:
    send_frame(fd, kind, json.dumps(obj, allow_nan=True).encode("utf-8"))


# -------------------------------------------------------------------------------- safe encoding

_TORCH_DTYPES = (
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
    "int8", "int16", "int32", "int64", "uint8", "bool",
)
_NUMPY_KINDS = "biufc"  # bool, int, unsigned, float, complex: no objects, no strings
_MAX_DEPTH = 32


class UnsafeValue(TypeError):
    """A value that the safe encoding does not carry (e.g. an object of a student's class)."""


def _torch():
    return sys.modules.get("torch")


def _numpy():
    return sys.modules.get("numpy")


def _is_tensor(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _is_module(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.nn.Module)


class _Encoder:
    def __init__(self):
        self.buffers: list[bytes] = []

    def blob(self, data: bytes) -> int:
        self.buffers.append(data)
        return len(self.buffers) - 1

    def tensor(self, t) -> dict:
        torch = _torch()
        dtype = str(t.dtype).replace("torch.", "")
        if dtype not in _TORCH_DTYPES:
            raise UnsafeValue(f"a tensor of dtype {dtype}")
        if t.is_sparse or getattr(t, "is_quantized", False):
            raise UnsafeValue("a sparse or quantized tensor")
        d = t.detach().to("cpu").contiguous()
        if d.dtype == torch.bfloat16:
            raw = d.view(torch.int16).numpy().tobytes()
        elif d.dtype.is_complex:
            raw = torch.view_as_real(d).numpy().tobytes()
        else:
            raw = d.numpy().tobytes()
        return {"T": self.blob(raw), "dtype": dtype, "shape": list(d.shape),
                "rg": bool(t.requires_grad)}

    def __call__(self, x, depth: int = 0):
        if depth > _MAX_DEPTH:
            raise UnsafeValue("a structure nested too deep")
        if x is None or isinstance(x, (bool, str)):
            return x if type(x) in (bool, str, type(None)) else (bool(x) if isinstance(x, bool) else str(x))
        if isinstance(x, int):
            return {"i": str(int(x))}
        if isinstance(x, float):
            return {"f": repr(float(x))}
        if isinstance(x, complex):
            return {"c": [repr(x.real), repr(x.imag)]}
        if isinstance(x, tuple):
            return {"t": [self(v, depth + 1) for v in x]}
        if isinstance(x, list):
            return {"l": [self(v, depth + 1) for v in x]}
        if isinstance(x, dict):
            return {"d": [[self(k, depth + 1), self(v, depth + 1)] for k, v in x.items()]}
        if _is_tensor(x):
            return self.tensor(x)
        np = _numpy()
        if np is not None and isinstance(x, np.ndarray):
            if x.dtype.kind not in _NUMPY_KINDS:
                raise UnsafeValue(f"a NumPy array of dtype {x.dtype}")
            a = np.ascontiguousarray(x)
            return {"N": self.blob(a.tobytes()), "dtype": a.dtype.str, "shape": list(a.shape)}
        if np is not None and isinstance(x, np.generic) and x.dtype.kind in _NUMPY_KINDS:
            return self(x.item(), depth + 1)
        if _is_module(x):
            return {"M": self.module(x, depth)}
        raise UnsafeValue(f"an object of type {type(x).__module__}.{type(x).__qualname__}")

    def module(self, m, depth: int) -> dict:
        cls = type(m)
        name = f"{cls.__module__}.{cls.__qualname__}"
        if not _allowed_module_class(name):
            raise UnsafeValue(f"a module of class {name} (only torch.nn layers come back)")
        attrs = {}
        for key, value in vars(m).items():
            if key.startswith("_") and key != "_reversed_padding_repeated_twice":
                continue
            if key == "training":
                continue
            try:
                attrs[key] = self(value, depth + 1)
            except UnsafeValue:
                continue
        return {
            "cls": name,
            "training": bool(m.training),
            "attrs": attrs,
            "params": {k: (None if p is None else self.tensor(p)) for k, p in m._parameters.items()},
            "buffers": {k: (None if b is None else self.tensor(b)) for k, b in m._buffers.items()},
            "modules": {k: (None if s is None else self.module(s, depth + 1)) for k, s in m._modules.items()},
        }


def _allowed_module_class(name: str) -> bool:
    return name.startswith("torch.nn.modules.") and name.count(".") == 4


def encode(x) -> bytes:
    """``x`` in the safe encoding (raises :class:`UnsafeValue` for anything else)."""
    enc = _Encoder()
    tree = enc(x)
    head = json.dumps({"v": tree, "n": [len(b) for b in enc.buffers]}).encode("utf-8")
    return struct.pack(">Q", len(head)) + head + b"".join(enc.buffers)


class _Decoder:
    def __init__(self, data: bytes):
        (n,) = struct.unpack(">Q", data[:8])
        head = json.loads(data[8 : 8 + n].decode("utf-8"))
        self.tree = head["v"]
        self.blobs = []
        pos = 8 + n
        for size in head["n"]:
            size = int(size)
            if size < 0 or pos + size > len(data):
                raise ValueError("malformed message")
            self.blobs.append(data[pos : pos + size])
            pos += size

    def tensor(self, node):
        import torch

        dtype = node["dtype"]
        if dtype not in _TORCH_DTYPES:
            raise ValueError(f"dtype {dtype!r} refused")
        shape = [int(s) for s in node["shape"]]
        raw = bytearray(self.blobs[int(node["T"])])
        torch_dtype = getattr(torch, dtype)
        if torch_dtype == torch.bfloat16:
            base = torch.frombuffer(raw, dtype=torch.int16) if raw else torch.empty(0, dtype=torch.int16)
            t = base.view(torch.bfloat16)
        elif torch_dtype.is_complex:
            real = torch.float32 if torch_dtype == torch.complex64 else torch.float64
            base = torch.frombuffer(raw, dtype=real) if raw else torch.empty(0, dtype=real)
            t = torch.view_as_complex(base.reshape(-1, 2))
        else:
            t = torch.frombuffer(raw, dtype=torch_dtype) if raw else torch.empty(0, dtype=torch_dtype)
        t = t.reshape(shape).clone()
        if node.get("rg") is True and (t.is_floating_point() or t.is_complex()):
            t.requires_grad_(True)
        return t

    def __call__(self, node, depth: int = 0):
        if depth > _MAX_DEPTH + 2:
            raise ValueError("nested too deep")
        if node is None or isinstance(node, (bool, str)):
            return node
        if not isinstance(node, dict):
            raise ValueError("malformed message")
        if "i" in node:
            return int(node["i"])
        if "f" in node:
            return float(node["f"])
        if "c" in node:
            return complex(float(node["c"][0]), float(node["c"][1]))
        if "t" in node:
            return tuple(self(v, depth + 1) for v in node["t"])
        if "l" in node:
            return [self(v, depth + 1) for v in node["l"]]
        if "d" in node:
            out = {}
            for k, v in node["d"]:
                key = self(k, depth + 1)
                if isinstance(key, (list, dict)) or hasattr(key, "shape"):
                    raise ValueError("unhashable dict key")
                out[key] = self(v, depth + 1)
            return out
        if "T" in node:
            return self.tensor(node)
        if "N" in node:
            import numpy as np

            dt = np.dtype(str(node["dtype"]))
            if dt.kind not in _NUMPY_KINDS:
                raise ValueError(f"dtype {dt} refused")
            shape = [int(s) for s in node["shape"]]
            return np.frombuffer(self.blobs[int(node["N"])], dtype=dt).reshape(shape).copy()
        if "M" in node:
            return self.module(node["M"], depth)
        raise ValueError("malformed message")

    def module(self, spec, depth: int):
        import importlib

        import torch

        name = str(spec["cls"])
        if not _allowed_module_class(name):
            raise ValueError(f"module class {name} refused")
        modname, clsname = name.rsplit(".", 1)
        cls = getattr(importlib.import_module(modname), clsname, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise ValueError(f"module class {name} refused")
        m = cls.__new__(cls)
        torch.nn.Module.__init__(m)
        for key, node in spec["attrs"].items():
            key = str(key)
            if not key.isidentifier() or key in ("forward", "training") or (
                key.startswith("_") and key != "_reversed_padding_repeated_twice"
            ):
                continue
            value = self(node, depth + 1)
            if isinstance(value, torch.nn.Module):
                continue
            object.__setattr__(m, key, value)
        for key, node in spec["params"].items():
            if node is None:
                m.register_parameter(str(key), None)
            else:
                t = self.tensor(node)
                m.register_parameter(str(key), torch.nn.Parameter(t.detach(), requires_grad=bool(node.get("rg", True))))
        for key, node in spec["buffers"].items():
            m.register_buffer(str(key), None if node is None else self.tensor(node).detach())
        for key, node in spec["modules"].items():
            m.add_module(str(key), None if node is None else self.module(node, depth + 1))
        m.train(bool(spec.get("training", True)))
        return m


def decode(data: bytes):
    """The value :func:`encode` wrote; never runs code from the message. Raises ValueError for
    a malformed message."""
    try:
        dec = _Decoder(data)
        return dec(dec.tree)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"malformed message ({type(exc).__name__})") from None


# ------------------------------------------------------------------------ mutable arguments


def _is_optimizer(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.optim.Optimizer)


def _is_function(x) -> bool:
    import types

    return isinstance(x, types.FunctionType)


def _is_mutable(x) -> bool:
    return _is_tensor(x) or _is_module(x) or _is_optimizer(x) or _is_function(x)


def _encodable(x) -> bool:
    try:
        encode(x)
        return True
    except (UnsafeValue, TypeError, ValueError):
        return False


def _flat_args(args, kwargs):
    """(key, value) of the arguments worth copying back: top level and one level of lists."""
    items = []
    for i, a in enumerate(args):
        items.append((f"a{i}", a))
        if isinstance(a, (list, tuple)):
            items.extend((f"a{i}.{j}", v) for j, v in enumerate(a))
    for k, a in kwargs.items():
        items.append((f"k{k}", a))
    return [(k, v) for k, v in items if _is_mutable(v)]


def state_of(x):
    """What a call may have changed in ``x`` (student side), in the safe encoding's terms."""
    if _is_module(x):
        params = {n: (p.detach(), None if p.grad is None else p.grad.detach()) for n, p in x.named_parameters()}
        buffers = {n: b for n, b in x.named_buffers()}
        return {"kind": "module", "params": params, "buffers": buffers,
                "training": [m.training for m in x.modules()]}
    if _is_optimizer(x):
        return {"kind": "optimizer", "state": x.state_dict()}
    if _is_function(x):
        # lists and dicts a callback fills in (``seen["t"] = t``): what the call left in them
        cells = {i: c.cell_contents for i, c in enumerate(x.__closure__ or ())
                 if _cell_container(c) and _encodable(c.cell_contents)}
        names = {n: x.__globals__[n] for n in x.__code__.co_names
                 if isinstance(x.__globals__.get(n), (list, dict)) and _encodable(x.__globals__[n])}
        return {"kind": "function", "cells": cells, "globals": names}
    return {"kind": "tensor", "data": x.detach(), "grad": None if x.grad is None else x.grad.detach()}


def _cell_container(cell) -> bool:
    try:
        return isinstance(cell.cell_contents, (list, dict))
    except ValueError:  # an empty cell
        return False


def _refill(target, value) -> None:
    if isinstance(target, dict) and isinstance(value, dict):
        target.clear()
        target.update(value)
    elif isinstance(target, list) and isinstance(value, list):
        target[:] = value


def apply_state(x, state) -> None:
    """Copy ``state`` (from :func:`state_of`, decoded) into the test's own object ``x``."""
    import torch

    kind = state.get("kind") if isinstance(state, dict) else None
    with torch.no_grad():
        if kind == "module" and _is_module(x):
            params = dict(x.named_parameters())
            for name, (data, grad) in state["params"].items():
                p = params.get(name)
                if p is None or not _is_tensor(data):
                    continue
                if p.shape == data.shape:
                    p.copy_(data)
                else:
                    p.data = data.to(p.dtype)
                p.grad = None if grad is None else grad.to(p.dtype).reshape(p.shape).clone()
            buffers = dict(x.named_buffers())
            for name, data in state["buffers"].items():
                b = buffers.get(name)
                if b is not None and _is_tensor(data):
                    if b.shape == data.shape:
                        b.copy_(data)
            for m, training in zip(x.modules(), state.get("training", [])):
                m.training = bool(training)
        elif kind == "optimizer" and _is_optimizer(x):
            try:
                x.load_state_dict(state["state"])
            except Exception:
                pass
        elif kind == "function" and _is_function(x):
            closure = x.__closure__ or ()
            for i, value in state.get("cells", {}).items():
                if isinstance(i, int) and 0 <= i < len(closure) and _cell_container(closure[i]):
                    _refill(closure[i].cell_contents, value)
            for name, value in state.get("globals", {}).items():
                if isinstance(name, str) and isinstance(x.__globals__.get(name), (list, dict)):
                    _refill(x.__globals__[name], value)
        elif kind == "tensor" and _is_tensor(x):
            data = state["data"]
            if _is_tensor(data) and data.shape == x.shape and not torch.equal(data.to(x.dtype), x.detach()):
                x.copy_(data.to(x.dtype))
            grad = state.get("grad")
            if x.is_leaf and x.requires_grad:
                x.grad = None if grad is None else grad.to(x.dtype).reshape(x.shape).clone()


# ---------------------------------------------------------------------- student-side references


class StudentRef:
    """A student's object named in a call (e.g. a student function passed to another one)."""

    def __init__(self, name: str):
        self.name = name


class StudentException(Exception):
    """Mixed into the exception a student's code raised, re-raised on the test side."""

    student_traceback = ""


_EXC_CACHE: dict[str, type] = {}


def student_exception(ename: str, message: str, tb: str = "") -> BaseException:
    """An exception of the builtin type named ``ename`` (else RuntimeError), marked as the
    student's, carrying only text."""
    base = getattr(builtins, ename, None)
    if not (isinstance(base, type) and issubclass(base, Exception)) or base is AssertionError:
        base, message = RuntimeError, f"{ename}: {message}" if ename else message
    cls = _EXC_CACHE.get(base.__name__)
    if cls is None:
        cls = type(base.__name__, (base, StudentException), {"__module__": "builtins"})
        _EXC_CACHE[base.__name__] = cls
    try:
        exc = cls(message)
    except Exception:
        exc = RuntimeError(message)
    exc.student_traceback = tb
    return exc


class StudentLost(RuntimeError):
    """The student process died, was killed, or did not stop when interrupted."""


# ---------------------------------------------------------------------------- test-side proxies


class Channel:
    """The test process's end of the wire to the student process (through the grader)."""

    def __init__(self, fd_in: int, fd_out: int):
        self.fd_in, self.fd_out = fd_in, fd_out

    def request(self, op: str, payload: bytes) -> tuple[bytes, bytes]:
        import cloudpickle  # noqa: F401 - the caller pickled with it

        send_frame(self.fd_out, b"C", op.encode("ascii").ljust(8) + payload)
        frame = recv_frame(self.fd_in)
        if frame is None:
            raise StudentLost("the grader closed the connection")
        kind, body = frame
        if kind == b"X":
            raise StudentLost(body.decode("utf-8", "replace"))
        if kind != b"R":
            raise StudentLost("unexpected message")
        return body[:1], body[1:]


def _grad_tracker(base):
    """A pickler class that sends every tensor requiring a gradient (a parameter of a module
    in a closure, say) by reference, so that both sides know them as the same list."""

    class Tracker(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.grad_tensors: list = []
            self.seen: dict[int, int] = {}

        def persistent_id(self, o):
            torch = _torch()
            if torch is not None and type(o) in (torch.Tensor, torch.nn.Parameter) and o.requires_grad:
                if id(o) not in self.seen:
                    self.seen[id(o)] = len(self.grad_tensors)
                    self.grad_tensors.append(o)
                return ("g", self.seen[id(o)])
            return None

    return Tracker


def pickle_args(obj) -> tuple[bytes, list]:
    """``obj`` pickled (plain pickle when it can, cloudpickle for lambdas and local functions),
    and the tensors requiring a gradient that it holds (sent apart, see :func:`unpickle_args`)."""
    import io
    import pickle

    for base in ("pickle", "cloudpickle"):
        if base == "pickle":
            cls = _grad_tracker(pickle.Pickler)
        else:
            import cloudpickle

            cls = _grad_tracker(cloudpickle.CloudPickler)
        buf = io.BytesIO()
        p = cls(buf, protocol=5)
        try:
            p.dump(obj)
        except Exception:
            if base == "cloudpickle":
                raise
            continue
        leaves = [(t.detach(), isinstance(t, _torch().nn.Parameter)) for t in p.grad_tensors]
        side = pickle.dumps(leaves, protocol=5)
        return len(side).to_bytes(8, "big") + side + buf.getvalue(), p.grad_tensors
    raise AssertionError("unreachable")


def unpickle_args(data: bytes):
    """``(obj, grad_tensors)`` on the student side: the tensors that required a gradient are
    fresh leaves that require one, each the same object wherever ``obj`` holds it."""
    import io
    import pickle

    n = int.from_bytes(data[:8], "big")
    leaves = pickle.loads(data[8 : 8 + n])
    torch = _torch()
    tensors = []
    for t, is_param in leaves:
        tensors.append(torch.nn.Parameter(t) if is_param else t.requires_grad_(True))

    class Loader(pickle.Unpickler):
        def persistent_load(self, pid):
            return tensors[pid[1]]

    return Loader(io.BytesIO(data[8 + n :])).load(), tensors


def _pickle_args(obj) -> bytes:
    return pickle_args(obj)[0]


def _reply(kind: bytes, body: bytes):
    """Turn a student's reply into a value or an exception (safe decoding only)."""
    if kind == b"V":
        return decode(body)
    if kind == b"E":
        info = json.loads(body.decode("utf-8"))
        raise student_exception(str(info.get("ename", "")), str(info.get("evalue", "")),
                                str(info.get("traceback", "")))
    raise StudentLost("unexpected reply")


class StudentFunction:
    """A callable standing for the student's object ``name`` in the student process."""

    def __init__(self, channel: Channel, name: str, signature: str | None = None):
        self._channel = channel
        self._name = name
        self._signature = signature
        self.__name__ = name
        self.__qualname__ = name
        self.__doc__ = f"the student's {name} (runs in the student's process)"

    def __repr__(self):
        return f"<student function {self._name}>"

    def __reduce__(self):
        return StudentRef, (self._name,)

    def __call__(self, *args, **kwargs):
        torch = _torch()
        mutable = _flat_args(args, kwargs)
        grad_enabled = torch is not None and torch.is_grad_enabled()
        payload, grad_inputs = pickle_args((self._name, args, kwargs, [k for k, _ in mutable], grad_enabled,
                                            grad_enabled))
        if not grad_enabled:
            grad_inputs = []
        kind, body = self._channel.request("call", payload)
        if kind == b"E":
            info = json.loads(body.decode("utf-8"))
            message = str(info.get("evalue", ""))
            if info.get("signature_error") and self._signature:
                message += f" (expected the signature {self._signature})"
            raise student_exception(str(info.get("ename", "")), message, str(info.get("traceback", "")))
        out = _reply(kind, body)
        if not (isinstance(out, dict) and "result" in out):
            raise StudentLost("malformed reply")
        for key, value in mutable:
            if key in out.get("states", {}):
                apply_state(value, out["states"][key])
        result = out["result"]
        if grad_inputs and out.get("handle") is not None:
            result = _attach_grad(self._channel, out["handle"], result, grad_inputs)
        return result


def _attach_grad(channel: Channel, handle: int, result, inputs):
    """Make the tensors of ``result`` that require a gradient depend on ``inputs`` through a
    backward pass computed by the student process."""
    import torch

    outs: list = []

    def collect(x):
        if isinstance(x, torch.Tensor) and x.requires_grad:
            outs.append(x)
        elif isinstance(x, (list, tuple)):
            for v in x:
                collect(v)

    collect(result)
    if not outs:
        return result

    class Remote(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *ins):
            return tuple(o.detach().clone() for o in outs)

        @staticmethod
        def backward(ctx, *grads):
            payload = _pickle_args((handle, [g.detach() if g is not None else None for g in grads]))
            kind, body = channel.request("vjp", payload)
            got = _reply(kind, body)
            got = list(got) + [None] * (len(inputs) - len(got))
            return tuple(None if g is None else torch.as_tensor(g).to(i.dtype).reshape(i.shape)
                         for g, i in zip(got, inputs))

    new = Remote.apply(*inputs)
    if not isinstance(new, tuple):
        new = (new,)
    mapping = {id(o): n for o, n in zip(outs, new)}

    def rebuild(x):
        if isinstance(x, torch.Tensor) and id(x) in mapping:
            return mapping[id(x)]
        if isinstance(x, tuple):
            return tuple(rebuild(v) for v in x)
        if isinstance(x, list):
            return [rebuild(v) for v in x]
        return x

    return rebuild(result)


def fetch(channel: Channel, names: list[str]) -> dict:
    """``{name: ("callable", None) | ("value", value) | ("missing", None) | ("unsafe", text)}``."""
    kind, body = channel.request("describe", _pickle_args(list(names)))
    out = _reply(kind, body)
    if not isinstance(out, dict):
        raise StudentLost("malformed reply")
    return out


def is_close_number(a, b) -> bool:  # small helper used in messages
    try:
        return math.isclose(float(a), float(b))
    except (TypeError, ValueError):
        return False
