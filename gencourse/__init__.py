"""gencourse: the library of the open course on deep generative models for images.

>>> import gencourse as gc
>>> gc.config.profile() in gc.config.PROFILES
True
"""

import importlib

from . import config, data, diffusion, density, divergences, plotting, sampling, train, transport, metrics, scoreboard, losses, models, nn, widgets  # noqa: F401
from .checks import check_close  # noqa: F401

__version__ = "0.1.0"

_LAZY = ("book", "grading")  # also command-line entry points: imported on first use


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'gencourse' has no attribute {name!r}")
