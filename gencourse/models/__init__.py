"""Models of the course, one module per family (``autoencoder``, ``gan``, ...).

Submodules are imported on first use, so ``import gencourse`` stays cheap::

    import gencourse as gc
    vae = gc.models.autoencoder.VAE(latent_dim=16)
"""

import importlib

_SUBMODULES = ("autoencoder", "gan", "conditional", "translation", "autoregressive", "style", "diffusion")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'gencourse.models' has no attribute {name!r}")
