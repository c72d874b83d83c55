"""Figures the chapters share: image grids, loss curves, 2-D samples and densities.

Every function draws into ``ax`` when given (else a new figure) and returns the axes, so a
chapter can lay several panels out with ``plt.subplots``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import data

__all__ = ["image_grid", "loss_curves", "scatter2d", "density2d", "moving_average", "transport_plan",
           "book_style", "PAGE_WIDTH"]

#: Width of the book's text column in inches, for figures saved at 100 dpi: a figure wider than
#: this is shrunk to fit, and its fonts with it (a 9-inch figure by 0.8).
PAGE_WIDTH = 7.3

#: Font sizes (points) that stay at 8 points or more in a figure up to 9 inches wide.
BOOK_FONTS = {"font.size": 11, "axes.titlesize": 11, "axes.labelsize": 11, "xtick.labelsize": 10,
              "ytick.labelsize": 10, "legend.fontsize": 10, "figure.titlesize": 12}


def book_style() -> None:
    """Set matplotlib's default font sizes so that figures read at the book's text width: at
    most three panels a row and 9 inches wide, with these sizes, give text of 8 points or more
    (called by :func:`gencourse.book.header`)."""
    plt.rcParams.update(BOOK_FONTS)


def _axes(ax, figsize=(5, 5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def image_grid(
    x: torch.Tensor,
    nrow: int | None = None,
    ax=None,
    title: str | None = None,
    value_range: str = "auto",
    padding: int = 2,
):
    """Show a batch of images ``x`` of shape ``(B, C, H, W)`` (C = 1 or 3) as one grid.

    ``value_range`` is ``"01"`` ([0, 1]), ``"pm1"`` ([-1, 1]) or ``"auto"`` (``"pm1"`` when any
    value is negative). Values outside the range are clipped for display only.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] not in (1, 3):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (B, C, H, W) with C in (1, 3), got {shape}")
    if value_range not in ("auto", "01", "pm1"):
        raise ValueError(f"value_range must be 'auto', '01' or 'pm1', got {value_range!r}")
    x = x.detach().float().cpu()
    pm1 = value_range == "pm1" or (value_range == "auto" and x.min() < 0)
    x = data.from_pm1(x, strict=False) if pm1 else x.clamp(0, 1)
    B, C, H, W = x.shape
    nrow = nrow or math.ceil(math.sqrt(B))
    ncol = math.ceil(B / nrow)
    canvas = torch.ones(C, ncol * (H + padding) + padding, nrow * (W + padding) + padding)
    for i in range(B):
        r, c = divmod(i, nrow)
        top, left = padding + r * (H + padding), padding + c * (W + padding)
        canvas[:, top : top + H, left : left + W] = x[i]
    ax = _axes(ax, figsize=(0.6 * nrow + 1, 0.6 * ncol + 1))
    image = canvas.permute(1, 2, 0).numpy()  # (H', W', C)
    if C == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (the first points average over what exists so far)."""
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    n = np.arange(1, len(v) + 1)
    lo = np.maximum(0, n - window)
    return (c[n] - c[lo]) / (n - lo)


def loss_curves(history, ax=None, names: Sequence[str] | None = None, smooth: int | None = None, logy=False, title=None):
    """Plot losses against steps from a :class:`gencourse.train.History` or a dict of lists.

    Raw values are drawn faintly, a moving average (window ``smooth``, default 2 % of the run)
    on top.
    """
    losses: Mapping[str, Sequence[float]] = getattr(history, "losses", history)
    names = list(names or losses.keys())
    missing = [n for n in names if n not in losses]
    if missing:
        raise ValueError(f"no losses named {missing} in the history; it has {list(losses)}")
    ax = _axes(ax, figsize=(6, 3.5))
    for i, name in enumerate(names):
        v = np.asarray(losses[name], dtype=float)
        window = smooth or max(1, len(v) // 50)
        color = f"C{i}"
        steps = np.arange(1, len(v) + 1)
        if window > 1:
            ax.plot(steps, v, color=color, alpha=0.25, lw=0.8)
        ax.plot(steps, moving_average(v, window), color=color, lw=1.5, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if logy:
        ax.set_yscale("log")
    if len(names) > 1 or title is None:
        ax.legend()
    if title:
        ax.set_title(title)
    return ax


def scatter2d(x: torch.Tensor, ax=None, s: float = 2, alpha: float = 0.5, title=None, lim: float | None = None, **kw):
    """Scatter plot of 2-D points ``x`` of shape ``(N, 2)``, with equal axes."""
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (N, 2), got {tuple(x.shape)}")
    ax = _axes(ax)
    ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=s, alpha=alpha, **kw)
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    if title:
        ax.set_title(title)
    return ax


def density2d(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    lim: float = 3.0,
    n: int = 200,
    ax=None,
    title=None,
    cmap: str = "viridis",
):
    """Image of the density ``exp(log_prob(x))`` on the square ``[-lim, lim]^2`` (``n`` x ``n`` grid)."""
    g = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)  # (n*n, 2)
    with torch.no_grad():
        dens = log_prob(pts).exp().reshape(n, n).cpu().numpy()
    ax = _axes(ax)
    ax.imshow(dens, origin="lower", extent=(-lim, lim, -lim, lim), cmap=cmap)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def transport_plan(x, y, plan, ax=None, title=None, threshold: float = 1e-3, max_lines: int = 2000, lw: float = 1.0):
    """Draw a transport plan between 2-D point clouds ``x`` ``(n, 2)`` (blue) and ``y`` ``(m, 2)``
    (orange): a line from ``x[i]`` to ``y[j]`` for each entry ``plan[i, j]`` above ``threshold``
    times its largest entry, its opacity proportional to the mass moved (chapter 02)."""
    x, y, plan = (torch.as_tensor(v).detach().cpu().double() for v in (x, y, plan))
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != 2 or y.shape[1] != 2:
        raise ValueError(f"x and y must have shapes (n, 2) and (m, 2), got {tuple(x.shape)} and {tuple(y.shape)}")
    if plan.shape != (x.shape[0], y.shape[0]):
        raise ValueError(f"plan must have shape (n, m) = ({x.shape[0]}, {y.shape[0]}), got {tuple(plan.shape)}")
    ax = _axes(ax)
    top = plan.max().item() or 1.0
    i, j = torch.nonzero(plan > threshold * top, as_tuple=True)
    order = plan[i, j].argsort(descending=True)[:max_lines]
    i, j = i[order], j[order]
    from matplotlib.collections import LineCollection

    segments = np.stack([x[i].numpy(), y[j].numpy()], axis=1)  # (L, 2, 2)
    alpha = (plan[i, j] / top).clamp(0.05, 1).numpy()
    colors = np.zeros((len(i), 4))
    colors[:, 3] = alpha
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=lw))
    ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=14, color="C0", zorder=3, label="source")
    ax.scatter(y[:, 0].numpy(), y[:, 1].numpy(), s=14, color="C1", zorder=3, label="target")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax
