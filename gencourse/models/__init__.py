"""Networks of the course and their methods, one module per family (``autoencoder``, ``gan``, ...);
the training recipes of the chapters are in :mod:`gencourse.recipes`.

Submodules are imported on first use, so ``import gencourse`` stays cheap::

    import gencourse as gc
    vae = gc.models.autoencoder.VAE(latent_dim=16)
"""

import importlib
import pkgutil

# the modules of this folder, found on disk: nothing to keep in sync by hand
_SUBMODULES = tuple(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'gencourse.models' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBMODULES])
