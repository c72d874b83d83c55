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
           "book_style", "PAGE_WIDTH", "animate_images", "latent_walk"]

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
    image, nrow, ncol = _canvas(x, nrow, value_range, padding)
    ax = _axes(ax, figsize=(0.6 * nrow + 1, 0.6 * ncol + 1))
    _show(ax, image)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def _canvas(x: torch.Tensor, nrow: int | None, value_range: str, padding: int) -> tuple[np.ndarray, int, int]:
    """The images of ``x`` ``(B, C, H, W)`` laid out ``nrow`` to a row on a white canvas ``(H', W', C)`` in [0, 1]."""
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
    return canvas.permute(1, 2, 0).numpy(), nrow, ncol


def _show(ax, image: np.ndarray):
    if image.shape[-1] == 1:
        return ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
    return ax.imshow(image)


# ----------------------------------------------------------------------------------------------
# interactive figures that need no kernel: matplotlib animations embedded as JavaScript
# ----------------------------------------------------------------------------------------------


#: matplotlib's player draws its buttons with Font Awesome from a CDN: offline they would be blank.
#: The same buttons as plain characters, so that the page needs nothing from the network; characters
#: that common fonts (DejaVu) have: the media symbols U+23EE/U+23ED drew empty boxes in Chromium on Debian.
_BUTTONS = {"fa fa-minus": "&minus;", "fa fa-fast-backward": "&#x21E4;", "fa fa-step-backward": "&#x25C1;",
            "fa fa-play fa-flip-horizontal": "&#x25C0;", "fa fa-pause": "&#x2759;&#x2759;", "fa fa-play": "&#x25B6;",
            "fa fa-step-forward": "&#x25B7;", "fa fa-fast-forward": "&#x21E5;", "fa fa-plus": "+"}


def _offline_player(html: str) -> str:
    import re

    html = re.sub(r'<link rel="stylesheet"\s*href="https?://[^"]*font-awesome[^"]*">', "", html)
    for cls, char in _BUTTONS.items():
        html = html.replace(f'<i class="{cls}"></i>', f"<span>{char}</span>")
    return html


def _jshtml(fig, update: Callable[[int], None], n_frames: int, interval: int, loop: bool):
    """``fig`` animated by ``update(k)`` as a self-contained HTML player (frames as JPEG, a slider and
    play buttons, no kernel, no network: :meth:`matplotlib.animation.Animation.to_jshtml`). Returns an
    :class:`IPython.display.HTML` whose ``kb`` attribute is its size in kilobytes."""
    from IPython.display import HTML
    from matplotlib.animation import FuncAnimation

    anim = FuncAnimation(fig, update, frames=n_frames, interval=interval, blit=False)
    # JPEG frames: a quarter of PNG's weight on noisy images (a diffusion chain's first steps)
    with plt.rc_context({"animation.embed_limit": 50.0, "animation.frame_format": "jpeg"}):
        html = anim.to_jshtml(default_mode="loop" if loop else "once")
    plt.close(fig)
    html = _offline_player(html)
    out = HTML(html)
    out.kb = len(html.encode()) / 1024
    out.n_frames = n_frames
    return out


def animate_images(
    frames,
    titles: Sequence[str] | None = None,
    *,
    nrow: int | None = None,
    value_range: str = "auto",
    interval: int = 300,
    width: float = 6.0,
    dpi: int = 60,
    loop: bool = True,
):
    """An interactive figure for the rendered book and the notebook alike: a grid of images that
    changes frame by frame (e.g. a fixed noise batch over training, a reverse diffusion chain), with
    a slider and play buttons in the page itself (no kernel, works offline).

    ``frames``: a tensor ``(F, B, C, H, W)`` or a sequence of ``F`` batches ``(B, C, H, W)``;
    ``titles``: one per frame. ``dpi`` and ``width`` (inches) set the page weight: each frame is
    one JPEG in the page. Returns an :class:`IPython.display.HTML` (``.kb``: its size).
    """
    frames = list(frames)
    if not frames or any(not isinstance(f, torch.Tensor) or f.ndim != 4 for f in frames):
        raise ValueError("frames must be a non-empty sequence of image batches (B, C, H, W), e.g. a tensor (F, B, C, H, W)")
    if titles is not None and len(titles) != len(frames):
        raise ValueError(f"titles must have one entry per frame ({len(frames)}), got {len(titles)}")
    if value_range not in ("auto", "01", "pm1"):
        raise ValueError(f"value_range must be 'auto', '01' or 'pm1', got {value_range!r}")
    if value_range == "auto":
        value_range = "pm1" if min(float(f.min()) for f in frames) < 0 else "01"
    canvases = [_canvas(f, nrow, value_range, 2)[0] for f in frames]
    h, w = canvases[0].shape[:2]
    fig, ax = plt.subplots(figsize=(width, width * h / w + (0.4 if titles else 0.1)), dpi=dpi)
    im = _show(ax, canvases[0])
    ax.set_axis_off()
    title = ax.set_title(titles[0] if titles else "")
    fig.tight_layout(pad=0.2)

    def update(k: int) -> None:
        im.set_data(canvases[k][..., 0] if canvases[k].shape[-1] == 1 else canvases[k])
        title.set_text(titles[k] if titles else "")

    return _jshtml(fig, update, len(frames), interval, loop)


def latent_walk(
    decode: Callable[[torch.Tensor], torch.Tensor],
    codes: torch.Tensor,
    labels: torch.Tensor,
    path: torch.Tensor,
    *,
    interval: int = 150,
    dpi: int = 50,
    value_range: str = "01",
):
    """An interactive walk through a 2-D latent space (no kernel needed): on the left the codes
    ``codes`` ``(N, 2)`` of held-out images coloured by ``labels``, with a marker moving along
    ``path`` ``(F, 2)``; on the right the decoded image ``decode(path[k])`` of each point.
    Returns an :class:`IPython.display.HTML` as :func:`animate_images` does."""
    if not isinstance(path, torch.Tensor) or path.ndim != 2 or path.shape[1] != 2:
        raise ValueError(f"path must be a tensor (F, 2) of latent points, got {tuple(getattr(path, 'shape', ()))}")
    if not isinstance(codes, torch.Tensor) or codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"codes must be a tensor (N, 2), got {tuple(getattr(codes, 'shape', ()))}")
    with torch.no_grad():
        images = decode(path.float())
    canvases = [_canvas(images[k : k + 1], 1, value_range, 0)[0] for k in range(len(path))]
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 3.4), dpi=dpi, gridspec_kw={"width_ratios": [1.2, 1]})
    c = codes.detach().cpu().numpy()
    sc = left.scatter(c[:, 0], c[:, 1], c=labels.cpu().numpy(), cmap="tab10", s=3, alpha=0.5, vmin=-0.5, vmax=9.5)
    fig.colorbar(sc, ax=left, ticks=range(10), label="digit")
    p = path.detach().cpu().numpy()
    left.plot(p[:, 0], p[:, 1], color="k", lw=0.8)
    (marker,) = left.plot(p[:1, 0], p[:1, 1], "o", color="k", ms=8, mfc="none", mew=2)
    left.set(xlabel="$z_1$", ylabel="$z_2$", title="codes of held-out digits")
    im = _show(right, canvases[0])
    right.set_axis_off()
    title = right.set_title(f"decode(z), z = ({p[0, 0]:.2f}, {p[0, 1]:.2f})")
    fig.tight_layout()

    def update(k: int) -> None:
        marker.set_data(p[k : k + 1, 0], p[k : k + 1, 1])
        im.set_data(canvases[k][..., 0] if canvases[k].shape[-1] == 1 else canvases[k])
        title.set_text(f"decode(z), z = ({p[k, 0]:.2f}, {p[k, 1]:.2f})")

    return _jshtml(fig, update, len(path), interval, True)


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
