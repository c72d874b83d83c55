r"""Pixel-wise fidelity of a translation to its paired target (chapter 10): mean absolute error and
PSNR, one value per image or averaged, for images in :math:`[0, 1]` or :math:`[-1, 1]`."""

from __future__ import annotations

import torch

__all__ = ["mean_abs_error", "psnr"]

_PEAK = {"01": 1.0, "pm1": 2.0}  # the range's width: the largest possible pixel difference


def _pair(output, target, value_range: str, clamp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if value_range not in _PEAK:
        raise ValueError(f"value_range must be '01' or 'pm1', got {value_range!r}")
    low, high = (0.0, 1.0) if value_range == "01" else (-1.0, 1.0)
    checked = []
    for x, name in ((output, "output"), (target, "target")):
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            got = f"shape {tuple(x.shape)} and dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a float tensor of images (B, C, H, W), got {got}")
        x = x.detach()
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf")
        if clamp and name == "output":
            x = x.clamp(low, high)
        elif x.min() < low - 1e-6 or x.max() > high + 1e-6:
            hint = "; pass clamp=True for model outputs" if name == "output" else ""
            raise ValueError(f"{name} must have values in [{low:g}, {high:g}] (value_range={value_range!r}), got min "
                             f"{x.min().item():.4g} and max {x.max().item():.4g}{hint}")
        checked.append(x)
    output, target = checked
    if output.shape != target.shape:
        raise ValueError(f"output and target must have the same shape, got {tuple(output.shape)} and {tuple(target.shape)}")
    return output.double(), target.double()


def mean_abs_error(output, target, *, value_range: str, clamp: bool = False, per_image: bool = False):
    r"""Mean absolute pixel error :math:`\frac1{CHW}\sum |o - t|` per image ``(B,)`` (``per_image``)
    or over the whole batch (a float), in the units of ``value_range``."""
    o, t = _pair(output, target, value_range, clamp)
    err = (o - t).abs().flatten(1).mean(1)
    return err.float() if per_image else err.mean().item()


def psnr(output, target, *, value_range: str, clamp: bool = False, per_image: bool = False, max_db: float = 100.0):
    r"""Peak signal-to-noise ratio in decibels, per image,

    .. math:: \mathrm{PSNR} = 10 \log_{10} \frac{P^2}{\frac1{CHW}\sum (o - t)^2}

    with the peak :math:`P` the width of the range (1 for ``"01"``, 2 for ``"pm1"``, so that the
    value does not depend on the range), capped at ``max_db`` for identical images. Returns
    ``(B,)`` (``per_image``) or the mean over images (a float), the convention of image-restoration
    papers (not the PSNR of the batch's mean squared error).
    """
    o, t = _pair(output, target, value_range, clamp)
    mse = (o - t).pow(2).flatten(1).mean(1)
    peak = _PEAK[value_range]
    db = torch.where(mse > 0, 10 * torch.log10(peak**2 / mse.clamp_min(1e-300)), torch.full_like(mse, max_db)).clamp(max=max_db)
    return db.float() if per_image else db.mean().item()


