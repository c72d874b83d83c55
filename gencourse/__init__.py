"""gencourse: the library of the open course on deep generative models for images.

>>> import gencourse as gc
>>> gc.config.profile() in gc.config.PROFILES
True

Submodules are imported on first use (``gc.plotting``, ``gc.metrics``, ...), so that
``import gencourse`` costs little more than ``import torch``: a chapter pays only for what it uses
(matplotlib, SciPy, POT, ipywidgets come with the modules that need them).
"""

import importlib

from . import checks, config
from .checks import check_close

__version__ = "0.1.0"

#: The submodules, imported by ``gencourse.<name>`` on first use.
SUBMODULES = (
    "book", "data", "density", "diffusion", "divergences", "grading", "losses", "metrics", "models", "nn",
    "plotting", "recipes", "sampling", "scoreboard", "train", "transport", "widgets",
)

__all__ = ["checks", "config", "check_close", *SUBMODULES]


def __getattr__(name):
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'gencourse' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *SUBMODULES])
