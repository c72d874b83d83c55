"""gencourse: the library of the open course on deep generative models for images.

>>> import gencourse as gc
>>> gc.config.profile() in gc.config.PROFILES
True
"""

from . import book, config, data, density, plotting, sampling, train, transport  # noqa: F401
from .checks import check_close  # noqa: F401

__version__ = "0.1.0"
