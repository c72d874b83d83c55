"""Run profiles, step budgets, seeding, device and cache folder.

A *profile* says how much compute a notebook may spend; it never changes the code path.

=========  ===========================  ==================================================
profile    where                        what it is for
=========  ===========================  ==================================================
``smoke``  CI, ``make test``            every cell runs, losses move the right way: seconds
``cpu``    laptops without a GPU        real results on the embedded MNIST subset: minutes
``gpu``    Colab / any CUDA machine     full MNIST, longer training: minutes on one GPU
=========  ===========================  ==================================================

The profile is read from the environment variable ``GENCOURSE_PROFILE`` when it is set,
otherwise detected: ``gpu`` when CUDA is available, else ``cpu``.

>>> budget(smoke=10, cpu=2_000, gpu=20_000, profile="cpu")
2000
"""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

import numpy as np
import torch

from . import checks

PROFILES = ("smoke", "cpu", "gpu")
ENV_PROFILE = "GENCOURSE_PROFILE"
ENV_DATA = "GENCOURSE_DATA"
ENV_WORKERS = "GENCOURSE_WORKERS"
#: set to "1" by ``python -m gencourse.book build`` for the kernels that execute the chapters
ENV_BOOK_BUILD = "GENCOURSE_BOOK_BUILD"

__all__ = [
    "PROFILES",
    "profile",
    "check_profile",
    "budget",
    "seed_everything",
    "device",
    "cache_dir",
    "threads",
]


def check_profile(name: str) -> str:
    """Return ``name`` if it is a valid profile, else raise a ``ValueError`` listing the valid ones."""
    if name not in PROFILES:
        raise ValueError(
            f"unknown gencourse profile {name!r}: expected one of {', '.join(PROFILES)} "
            f"(set it with the environment variable {ENV_PROFILE})"
        )
    return name


def profile() -> str:
    """The active profile: ``$GENCOURSE_PROFILE`` if set, else ``'gpu'`` with CUDA, else ``'cpu'``."""
    name = os.environ.get(ENV_PROFILE, "").strip()
    if name:
        return check_profile(name)
    return "gpu" if torch.cuda.is_available() else "cpu"


def budget(*, smoke, cpu, gpu, profile: str | None = None):
    """Pick the value for the active profile (step counts, epochs, sample sizes, ...).

    Every keyword is required so that a notebook states all three budgets where it uses them::

        steps = gc.config.budget(smoke=20, cpu=3_000, gpu=20_000)
    """
    name = check_profile(profile) if profile is not None else globals()["profile"]()
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[name]


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices) and return a fresh ``torch.Generator``.

    Use the returned generator where a function takes ``generator=`` so that a cell's
    randomness does not depend on what ran before it.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(int(seed))


def device() -> torch.device:
    """The device tensors and models go to: CUDA when present, else the CPU.

    Under ``torchrun`` the local rank picks the GPU (``LOCAL_RANK``), so the same code scales
    out with DistributedDataParallel.
    """
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def cache_dir(sub: str | None = None) -> Path:
    """The cache folder (datasets, checkpoints): ``$GENCOURSE_DATA`` or ``~/.cache/gencourse``.

    The folder (and ``sub`` inside it) is created if needed. A folder that cannot be created
    or written raises a ``PermissionError`` that names it and says how to choose another.
    """
    root = os.environ.get(ENV_DATA) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "gencourse"
    )
    path = Path(root).expanduser() / sub if sub else Path(root).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"the gencourse cache folder {str(path)!r} is not writable ({err.strerror or err}); "
            f"set {ENV_DATA} to a folder you can write to"
        ) from err
    return path


def workers(profile: str | None = None) -> int:
    """How many independent training runs may go at once, each in its own process on one thread
    (:func:`gencourse.train.run_in_processes`): ``$GENCOURSE_WORKERS`` when set, else under the
    ``cpu`` profile the number of CPU cores this process may use (at most 4), and 1 under ``smoke``
    (tests already run in parallel) and ``gpu`` (one device, used by one run at a time)."""
    value = os.environ.get(ENV_WORKERS, "").strip()
    if value:
        try:
            return checks.positive_int(int(value), ENV_WORKERS)
        except ValueError:
            raise ValueError(f"{ENV_WORKERS} must be a positive integer, got {value!r}") from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return budget(smoke=1, cpu=max(1, min(4, cores)), gpu=1, profile=profile)


class threads:
    r"""Run PyTorch on ``n`` CPU threads: for a block (``with``), a function (decorator) or the session.

    ::

        with gc.config.threads(1):      # a block; the previous setting is restored afterwards
            train_recipe()

        @gc.config.threads(1)           # every call of a function (restored after each call)
        def metric(...): ...

        gc.config.threads(1)            # a plain call: from here on, for the whole session

    The networks and matrices of the course are small: on a busy or shared 2-core machine (several
    notebooks or test workers), one thread is often several times faster than two, which spin idly,
    and one thread makes floating-point reductions independent of the machine's core count. Like
    ``torch.set_grad_enabled``, the setting takes effect when the object is created; leaving the
    ``with`` block restores the previous one. ``n`` must be a positive int.
    """

    def __init__(self, n: int = 1):
        self.n = checks.positive_int(n, "n")
        self.previous = torch.get_num_threads()
        if self.previous != self.n:
            torch.set_num_threads(self.n)

    def __repr__(self) -> str:  # what a notebook shows after a plain call
        return f"PyTorch runs on {self.n} CPU thread{'s' if self.n != 1 else ''} (it was {self.previous})"

    def __enter__(self) -> threads:
        return self

    def __exit__(self, *exc) -> None:
        if torch.get_num_threads() != self.previous:
            torch.set_num_threads(self.previous)

    def __call__(self, func):
        self.__exit__()  # used as a decorator: the setting applies to calls, not to the import
        n = self.n

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with threads(n):
                return func(*args, **kwargs)

        return wrapper
