"""Each chapter's trained model as a recipe: its settings (hashed into the checkpoint's name), a
build function, a train function and a load-or-train function
(:func:`gencourse.train.load_or_train`), one module per chapter:

* :mod:`~gencourse.recipes.vae` — chapter 04's VAEs (``vae_mnist``);
* :mod:`~gencourse.recipes.dcgan` — chapter 07's DCGAN (``dcgan_mnist``);
* :mod:`~gencourse.recipes.style` — chapter 11's style-based generators (``style_mnist``);
* :mod:`~gencourse.recipes.diffusion` — chapter 12's class-conditional DDPM (``ddpm_mnist``).

A chapter and the scoreboard (:mod:`gencourse.scoreboard`, which registers an entry per recipe)
call the same function and so share one checkpoint. The networks live in :mod:`gencourse.models`
and :mod:`gencourse.nn`; recipes depend on them, never the other way round. Submodules are
imported on first use::

    import gencourse as gc
    vae, history = gc.recipes.vae.vae_mnist("vae")
"""

from .._lazy import attach, submodules

# the modules of this folder, found on disk: nothing to keep in sync by hand
_SUBMODULES = submodules(__path__)
__getattr__, __dir__ = attach(__name__, _SUBMODULES, globals())
