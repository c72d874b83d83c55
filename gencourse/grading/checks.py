"""Public in-notebook checks: a registry of question ids and ``check(qid, *candidates)``.

A chapter registers one check function per question::

    from gencourse.grading.checks import register, expect, expect_close

    @register("generative_models.exp_icdf")
    def _(exp_icdf):
        expect_close(exp_icdf(0.5, rate=2.0), math.log(2) / 2, what="exp_icdf(0.5, rate=2)",
                     hint="the inverse CDF of Exp(rate) is -log(1 - u) / rate")

and the notebook calls::

    from gencourse.grading import check
    check("generative_models.exp_icdf", exp_icdf)      # prints "✔ generative_models.exp_icdf: 1 check passed" or raises

A check function takes the student's object(s) and raises ``AssertionError`` with a specific
message when something is wrong. It may return the number of checks it made; otherwise the
``expect*`` helpers called while it runs are counted.

Chapter check modules (one per chapter, named like it: ``grading/vae.py``) are found on disk,
listed in :data:`CHAPTER_CHECKS`, and imported on first use, so that
importing this module stays cheap (standard library only: no torch, no other gencourse module).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "CHAPTER_CHECKS",
    "UnknownQuestionError",
    "register",
    "check",
    "known_ids",
    "expect",
    "expect_close",
    "expect_shape",
    "close_to",
    "diagnose",
    "Passed",
]

#: Chapter names by their place in the book, for ids of the old form ``"04.negative_elbo"``.
_OLD_NUMBERS = {
    "00": "generative_models", "01": "divergences", "02": "optimal_transport", "03": "autoencoders",
    "04": "vae", "06": "gans", "07": "dcgan", "11": "diffusion", "12": "evaluation",
}
#: Modules of this package that are machinery, not a chapter's checks.
_MACHINERY = {"checks", "generate", "grader", "__main__", "build", "execute", "isolate", "kernel", "remote", "teacher",
              "report", "score"}


def _discover_chapter_checks() -> list[str]:
    """Every module of ``gencourse.grading`` that is not machinery: one per chapter, named like
    the chapter (``vae.py`` registers ``"vae.*"``). Found on disk, so a new chapter needs no list."""
    from pathlib import Path

    here = Path(__file__).parent
    names = sorted(p.stem for p in here.glob("*.py") if p.stem not in _MACHINERY and not p.stem.startswith("_"))
    return [f"{__package__}.{name}" for name in names]


#: Modules that register chapter checks, imported the first time an unknown id is asked for.
CHAPTER_CHECKS: list[str] = _discover_chapter_checks()

_REGISTRY: dict[str, Callable[..., Any]] = {}
_IMPORTED: set[str] = set()
_IMPORT_ERRORS: dict[str, str] = {}
_COUNTER: list[int] = []  # stack of expect* counters, one per running check


class UnknownQuestionError(KeyError, ValueError):
    """``check`` was given a question id that no check is registered for."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


def register(qid: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``func(*candidates) -> None | int`` as the check for question ``qid``.

    Ids look like ``"generative_models.exp_icdf"`` (chapter number, dot, name). Registering an id again
    replaces the previous check (re-running a notebook cell must not fail).
    """
    if not isinstance(qid, str) or not qid.strip():
        raise ValueError(f"question id must be a non-empty string, got {qid!r}")

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(func):
            raise TypeError(f"register({qid!r}) must decorate a function, got {type(func).__name__}")
        _REGISTRY[qid] = func
        return func

    return decorator


def _load_chapter_checks() -> None:
    for name in CHAPTER_CHECKS:
        if name in _IMPORTED:
            continue
        _IMPORTED.add(name)
        try:
            importlib.import_module(name)
        except Exception as exc:  # reported when the asked-for id is still unknown
            _IMPORT_ERRORS[name] = f"{type(exc).__name__}: {exc}"


def known_ids() -> list[str]:
    """All registered question ids (chapter check modules are imported first)."""
    _load_chapter_checks()
    return sorted(_REGISTRY)


def _lookup(qid: str) -> Callable[..., Any]:
    if qid not in _REGISTRY:
        _load_chapter_checks()
    if qid in _REGISTRY:
        return _REGISTRY[qid]
    old = re.fullmatch(r"(\d\d)\.(\w+)", qid) if isinstance(qid, str) else None
    if old and f"{_OLD_NUMBERS.get(old[1])}.{old[2]}" in _REGISTRY:
        new = f"{_OLD_NUMBERS[old[1]]}.{old[2]}"
        raise UnknownQuestionError(
            f"question ids are named by chapter now, not numbered: use {new!r} instead of {qid!r}"
        )
    known = ", ".join(sorted(_REGISTRY)) or "none"
    msg = f"unknown question id {qid!r}; known ids: {known}"
    if _IMPORT_ERRORS:
        failed = "; ".join(f"{mod} ({err})" for mod, err in _IMPORT_ERRORS.items())
        msg += f". These check modules could not be imported: {failed}"
    raise UnknownQuestionError(msg)


def _say(text: str, fallback: str) -> None:
    try:
        print(text)
    except UnicodeEncodeError:  # a console that cannot print the check mark
        print(fallback)


class _own_random_state:
    """Run a check without changing the caller's global random state (torch, NumPy, random):
    a check may seed or draw as it likes."""

    def __enter__(self):
        import random
        import sys

        self.py = random.getstate()
        np = sys.modules.get("numpy")
        self.np = (np, np.random.get_state()) if np is not None else None
        try:
            import torch
        except ImportError:
            self.fork = None
        else:
            devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
            self.fork = torch.random.fork_rng(devices=devices)
            self.fork.__enter__()
        return self

    def __exit__(self, *exc):
        import random

        random.setstate(self.py)
        if self.np is not None:
            self.np[0].random.set_state(self.np[1])
        if self.fork is not None:
            self.fork.__exit__(*exc)
        return False


def _check_call(qid: str, func: Callable[..., Any], candidates: tuple, kwargs: dict) -> None:
    """Raise ``TypeError`` (the checker was called wrongly, not the student's answer) when
    ``check(qid, ...)`` does not get what the check for ``qid`` takes."""
    import inspect

    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*candidates, **kwargs)
    except TypeError:
        names = ", ".join(p.name for p in sig.parameters.values()) or "nothing"
        got = len(candidates) + len(kwargs)
        raise TypeError(
            f"check({qid!r}, ...) was called wrongly: it takes {names} (your function(s), e.g. "
            f"check({qid!r}, {names.split(', ')[0]})), got {got} argument{'s' if got != 1 else ''}"
        ) from None


def check(qid: str, *candidates: Any, **kwargs: Any) -> bool:
    """Run the registered checks for question ``qid`` on the student's object(s).

    Prints ``✔ <qid>: N checks passed`` and returns a true value (:class:`Passed`, which
    Jupyter does not display) on success. Raises
    ``AssertionError`` with a specific message on failure, ``AssertionError("... not implemented
    yet ...")`` when the candidate still raises ``NotImplementedError``, and
    :class:`UnknownQuestionError` (a ``KeyError`` and ``ValueError``) for an unknown id.
    """
    func = _lookup(qid)
    _check_call(qid, func, candidates, kwargs)
    _COUNTER.append(0)
    try:
        with _own_random_state():
            result = func(*candidates, **kwargs)
    except NotImplementedError:
        raise AssertionError(
            f"✘ {qid}: not implemented yet — replace `raise NotImplementedError()` with your code"
        ) from None
    except AssertionError as exc:
        detail = str(exc) or "a check failed"
        raise AssertionError(f"✘ {qid}: {detail}") from None
    except Exception as exc:
        raise AssertionError(
            f"✘ {qid}: your code raised {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        counted = _COUNTER.pop()
    if isinstance(result, int) and not isinstance(result, bool) and result > 0:
        counted = result
    if counted:
        text = f"{qid}: {counted} check{'s' if counted != 1 else ''} passed"
    else:
        text = f"{qid}: passed"
    _say(f"✔ {text}", f"OK {text}")
    return Passed(qid)


class Passed:
    """What a successful :func:`check` returns: true, equal to ``True``, and shown as nothing
    by Jupyter (a test cell ending in ``check(...)`` has no ``True`` output, as nbgrader wants)."""

    __slots__ = ("qid",)

    def __init__(self, qid: str):
        self.qid = qid

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other) -> bool:
        return other is True or isinstance(other, Passed)

    def __hash__(self) -> int:
        return hash(True)

    def __repr__(self) -> str:
        return "True"

    def _ipython_display_(self) -> None:
        pass


# --------------------------------------------------------------------------- helpers for checks


def _count() -> None:
    if _COUNTER:
        _COUNTER[-1] += 1


def expect(condition: Any, message: str) -> None:
    """Count one check; raise ``AssertionError(message)`` unless ``condition`` is true."""
    _count()
    if not condition:
        raise AssertionError(message)


def _to_floats(value: Any) -> tuple[list[float], tuple[int, ...]]:
    """Flatten a number, sequence, NumPy array or torch tensor to floats (no torch import)."""
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu()
    if hasattr(value, "tolist") and hasattr(value, "shape"):
        shape = tuple(int(s) for s in value.shape)
        value = value.tolist()
    else:
        shape = None
    flat: list[float] = []

    def walk(v: Any, depth: int, dims: list[int]) -> None:
        if isinstance(v, (list, tuple)):
            if len(dims) <= depth:
                dims.append(len(v))
            for item in v:
                walk(item, depth + 1, dims)
        else:
            flat.append(float(v))

    dims: list[int] = []
    walk(value, 0, dims)
    return flat, shape if shape is not None else tuple(dims)


def _fmt(value: Any) -> str:
    flat, shape = _to_floats(value)
    if not shape:
        return f"{flat[0]:.6g}" if flat else repr(value)
    body = ", ".join(f"{x:.4g}" for x in flat[:6]) + (", ..." if len(flat) > 6 else "")
    return f"[{body}] (shape {shape})"


def _torch_tensor(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "dtype") and hasattr(x, "detach")


def _expect_same_kind(actual: Any, expected: Any, what: str, hint: str | None) -> None:
    """The contract of the hidden tests: a tensor where a tensor is expected (not a NumPy array
    or a list), and no float32 where float64 is expected (precision)."""
    if not _torch_tensor(expected):
        return
    if not _torch_tensor(actual):
        kind = f"{type(actual).__module__}.{type(actual).__name__}".replace("builtins.", "")
        raise AssertionError(
            f"{what} should be a torch.Tensor (like the inputs), got {kind}"
            + (" (convert with torch.as_tensor or compute with torch functions)" if "numpy" in kind else "")
        )
    if str(expected.dtype) == "torch.float64" and str(actual.dtype) != "torch.float64":
        raise AssertionError(
            f"{what} has dtype {str(actual.dtype).replace('torch.', '')}, expected float64 (the inputs are float64: "
            "compute in their dtype, without a float32 step)"
        )


def expect_close(
    actual: Any,
    expected: Any,
    *,
    what: str = "result",
    rtol: float = 1e-5,
    atol: float = 1e-8,
    hint: str | None = None,
) -> None:
    """Count one check; fail with ``what = <actual>, expected <expected>`` unless they are close.

    Works on numbers, (nested) sequences, NumPy arrays and torch tensors of equal shape.
    """
    _count()
    _expect_same_kind(actual, expected, what, hint)
    try:
        a, a_shape = _to_floats(actual)
    except (TypeError, ValueError):
        raise AssertionError(
            f"{what} should be a number or an array, got {type(actual).__name__}"
        ) from None
    b, b_shape = _to_floats(expected)
    if a_shape != b_shape:
        msg = f"{what} has shape {a_shape}, expected shape {b_shape}"
        raise AssertionError(msg + (f" (hint: {hint})" if hint else ""))
    bad = [
        i for i, (x, y) in enumerate(zip(a, b))
        if not (math.isclose(x, y, rel_tol=rtol, abs_tol=atol) or (math.isnan(x) and math.isnan(y)))
    ]
    if bad:
        msg = f"{what} = {_fmt(actual)}, expected {_fmt(expected)}"
        if not a_shape and _fmt(actual) == _fmt(expected):
            msg += f" (they differ by {abs(a[0] - b[0]):.3g}, more than the tolerance)"
        if a_shape:
            i = bad[0]
            msg += f" ({len(bad)} of {len(a)} entries differ, first at flat index {i}: {a[i]:.6g} vs {b[i]:.6g})"
        raise AssertionError(msg + (f" (hint: {hint})" if hint else ""))


def expect_shape(value: Any, shape: tuple[int, ...], *, what: str = "result") -> None:
    """Count one check; fail unless ``value.shape`` equals ``shape``."""
    _count()
    got = getattr(value, "shape", None)
    if got is None:
        raise AssertionError(f"{what} should be an array/tensor of shape {tuple(shape)}, got {type(value).__name__}")
    if tuple(got) != tuple(shape):
        raise AssertionError(f"{what} has shape {tuple(got)}, expected {tuple(shape)}")


def close_to(a, b, rtol=1e-4, atol=1e-5) -> bool:
    """Whether ``a`` and ``b`` (numbers, arrays, tensors) have one shape and close values."""
    import torch

    try:
        a = torch.as_tensor(a, dtype=torch.float64)
        b = torch.as_tensor(b, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def diagnose(got, mistakes: dict, what: str, expected=None) -> None:
    """Raise ``AssertionError`` naming the first mistake whose result ``got`` reproduces (mistakes
    that coincide with the ``expected`` result for these inputs are skipped)."""
    for hint, wrong in mistakes.items():
        if expected is not None and close_to(wrong, expected):
            continue
        if close_to(got, wrong):
            raise AssertionError(f"{what}: {hint}")
