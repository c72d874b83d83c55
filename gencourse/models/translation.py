r"""Networks of chapter 10 (image-to-image translation) beyond :mod:`gencourse.nn`'s
:class:`~gencourse.nn.TranslationUNet` and :class:`~gencourse.nn.PatchGAN`.

:class:`KeepLuminance` wraps a grey → colour generator so that it only chooses colours: the
luminance of its output is the grey input's, exactly (up to clipping), as colourisation methods
that predict chrominance given lightness do (Zhang, Isola & Efros, 2016).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LUMA", "luminance", "KeepLuminance"]

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as gencourse.data.to_grey


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    r""":math:`Y = 0.299 R + 0.587 G + 0.114 B` of ``(B, 3, H, W)`` images as ``(B, 1, H, W)``, in
    either value range (the weights sum to 1, so :math:`[-1, 1]` maps to :math:`[-1, 1]`)."""
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must be colour images (B, 3, H, W), got shape {tuple(rgb.shape)}")
    w = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True)


class KeepLuminance(nn.Module):
    r"""``G(x) + (x - Y(G(x)))``, clipped to :math:`[-1, 1]`: adding the same amount to R, G and B
    shifts the luminance by that amount and leaves the chrominance :math:`(B - Y, R - Y)` alone, so
    the output's luminance is the input's ``x`` ``(B, 1, H, W)`` and the network ``G`` (1 → 3
    channels) only decides the colours."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"KeepLuminance expects grey images (B, 1, H, W), got shape {tuple(getattr(x, 'shape', ()))}")
        rgb = self.G(x)
        return (rgb + (x - luminance(rgb))).clamp(-1, 1)
