"""Interactive explorers for the chapters (ipywidgets), each with a static fallback.

Convention (DESIGN.md): the computation and the drawing live in a tested function here that
returns a figure; the notebook calls it once (a static figure for readers without a kernel, and
for the rendered book), then offers the explorer in a cell tagged ``nbval-ignore-output``. An
explorer uses sliders with ``continuous_update=False`` (one redraw per release, not per pixel of
drag). Without ipywidgets or outside a running kernel, an explorer draws its initial state as a
static figure and returns ``None``. While the book is being built (``python -m gencourse.book
build`` sets ``GENCOURSE_BOOK_BUILD=1`` for its kernels), an explorer creates no widget and prints
one line instead: a slider cannot move in a static page, the cell before it already shows the
initial state, and a cell that opens widgets can leave the notebook runner waiting forever for a
reply (nbclient issue 312: ``make book`` hung for half an hour on chapter 04's explorer).

Explorers:

* :func:`latent_explorer` — two sliders move a point in a 2-D latent space; the figure shows the
  point among the encoded training codes and the image the decoder makes of it (chapters 03–04).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

from .config import ENV_BOOK_BUILD as BOOK_BUILD_ENV

__all__ = ["has_kernel", "building_book", "latent_view", "latent_explorer"]


def has_kernel() -> bool:
    """``True`` inside a running IPython kernel (where widgets can be displayed), else ``False``."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def building_book() -> bool:
    """``True`` while ``python -m gencourse.book build`` executes the chapters (``GENCOURSE_BOOK_BUILD=1``)."""
    return os.environ.get(BOOK_BUILD_ENV) == "1"


def _as_point(z) -> torch.Tensor:
    z = torch.as_tensor(z, dtype=torch.float32).flatten()
    if z.shape != (2,):
        raise ValueError(f"z must be a point of a 2-D latent space, 2 numbers, got shape {tuple(z.shape)}")
    return z


@torch.no_grad()
def latent_view(
    decode: Callable[[torch.Tensor], torch.Tensor],
    z,
    codes: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    lim: float = 3.0,
    fig=None,
):
    """Draw a point ``z`` of a 2-D latent space and the image ``decode(z)``; return ``(fig, image)``.

    Left panel: the ``codes`` ``(N, 2)`` (e.g. encoder means of training images), coloured by
    ``labels`` ``(N,)`` when given, and ``z`` as a black cross, on ``[-lim, lim]^2``. Right panel:
    the decoded image.

    Args:
        decode: maps codes ``(B, 2)`` to images ``(B, 1, H, W)`` in ``[0, 1]``
            (e.g. ``vae.decode``).
        z: the point, two numbers.
        codes, labels: optional context for the left panel.
        lim: half-width of the plotted square.
        fig: a figure to draw into (cleared first), else a new one.

    Returns:
        the figure and the decoded image as a ``(H, W)`` NumPy array.
    """
    z = _as_point(z)
    if codes is not None:
        codes = torch.as_tensor(codes).detach().cpu()
        if codes.ndim != 2 or codes.shape[1] != 2:
            raise ValueError(f"codes must have shape (N, 2), got {tuple(codes.shape)}")
        if labels is not None and torch.as_tensor(labels).shape != (codes.shape[0],):
            raise ValueError(f"labels must have shape (N,) = ({codes.shape[0]},), got {tuple(torch.as_tensor(labels).shape)}")
    image = decode(z[None])
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[:2] != (1, 1):
        raise ValueError(f"decode must return images of shape (1, 1, H, W), got {getattr(image, 'shape', type(image).__name__)}")
    image = image[0, 0].detach().float().cpu().numpy()
    if fig is None:
        fig = plt.figure(figsize=(8, 3.8))
    fig.clf()
    ax_z, ax_x = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    if codes is not None:
        c = None if labels is None else np.asarray(torch.as_tensor(labels).cpu())
        sc = ax_z.scatter(codes[:, 0].numpy(), codes[:, 1].numpy(), c=c, cmap="tab10", s=3, alpha=0.5, vmin=-0.5, vmax=9.5)
        if labels is not None:
            fig.colorbar(sc, ax=ax_z, ticks=range(10), fraction=0.046, pad=0.02)
    ax_z.plot([z[0].item()], [z[1].item()], "kx", ms=12, mew=3)
    ax_z.set_xlim(-lim, lim)
    ax_z.set_ylim(-lim, lim)
    ax_z.set_aspect("equal")
    ax_z.set_xlabel("$z_1$")
    ax_z.set_ylabel("$z_2$")
    ax_z.set_title(f"z = ({z[0].item():.2f}, {z[1].item():.2f})")
    ax_x.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax_x.set_axis_off()
    ax_x.set_title("decoded image")
    return fig, image


def latent_explorer(
    decode: Callable[[torch.Tensor], torch.Tensor],
    codes: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    lim: float = 3.0,
    z0=(0.0, 0.0),
    step: float = 0.05,
):
    """Two sliders ``z1``, ``z2`` in ``[-lim, lim]`` move the point of :func:`latent_view`.

    In a running kernel with ipywidgets, displays and returns the ``ipywidgets.interactive``
    object (sliders with ``continuous_update=False``). While the book is built
    (:func:`building_book`), prints that the explorer needs a kernel and returns ``None``.
    Otherwise draws the view at ``z0`` as a static figure and returns ``None``.
    """
    z0 = _as_point(z0)
    if not lim > 0 or not step > 0:
        raise ValueError(f"lim and step must be > 0, got lim={lim!r}, step={step!r}")
    if building_book():
        print("The explorer needs a running kernel: run this chapter as a notebook.")
        return None
    try:
        import ipywidgets
    except ImportError:
        ipywidgets = None
    if ipywidgets is None or not has_kernel():
        latent_view(decode, z0, codes, labels, lim)
        return None

    def show(z1: float, z2: float):
        fig, _ = latent_view(decode, (z1, z2), codes, labels, lim)
        plt.show()
        return None

    def slider(name: str, value: float):
        return ipywidgets.FloatSlider(value=value, min=-lim, max=lim, step=step, description=name, continuous_update=False)

    widget = ipywidgets.interactive(show, z1=slider("z1", float(z0[0])), z2=slider("z2", float(z0[1])))
    from IPython.display import display

    display(widget)
    return widget
