"""gencourse: the library of the open course on deep generative models for images.

>>> import gencourse as gc
>>> gc.config.profile() in gc.config.PROFILES
True

Submodules are imported on first use (``gc.plotting``, ``gc.metrics``, ...), so that
``import gencourse`` costs little more than ``import torch``: a chapter pays only for what it uses
(matplotlib, SciPy, POT, ipywidgets come with the modules that need them).
"""

from . import checks, config
from ._lazy import attach, submodules
from .checks import check_close

__version__ = "0.1.0"

#: The submodules and subpackages of this folder, imported by ``gencourse.<name>`` on first use.
SUBMODULES = tuple(name for name in submodules(__path__) if name not in ("checks", "config"))

__all__ = ["checks", "config", "check_close", *SUBMODULES]


__getattr__, __dir__ = attach(__name__, SUBMODULES, globals())
