"""Networks of the course and their methods, one module per family (``autoencoder``, ``gan``, ...);
the training recipes of the chapters are in :mod:`gencourse.recipes`.

Submodules are imported on first use, so ``import gencourse`` stays cheap::

    import gencourse as gc
    vae = gc.models.autoencoder.VAE(latent_dim=16)
"""

from .._lazy import attach, submodules

# the modules of this folder, found on disk: nothing to keep in sync by hand
_SUBMODULES = submodules(__path__)
__getattr__, __dir__ = attach(__name__, _SUBMODULES, globals())
