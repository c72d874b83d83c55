"""Submodules imported on first use (``gencourse.metrics``, ``gencourse.models.gan``, ...), so that
importing a package costs only what it needs."""

from __future__ import annotations

import importlib
import pkgutil


def submodules(path) -> tuple[str, ...]:
    """The public modules and packages found in a package's folder(s) ``path`` (its ``__path__``)."""
    return tuple(m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_"))


def attach(package: str, names, namespace: dict):
    """``(__getattr__, __dir__)`` for ``package`` that import the submodules ``names`` on first access."""
    names = tuple(names)

    def __getattr__(name):
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted([*namespace, *names])

    return __getattr__, __dir__
