r"""Likelihood units: dequantisation, nats and bits per dimension."""

from __future__ import annotations

import math

import torch

from .features import VALUE_RANGES, check_images

__all__ = ["dequantize", "discretisation_correction", "bits_per_dim", "nats_from_bits_per_dim"]

# ----------------------------------------------------------------------------------------------
# likelihoods: nats and bits per dimension
# ----------------------------------------------------------------------------------------------


def dequantize(x01, *, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Uniform dequantisation of 8-bit images (Theis et al., 2016): pixels :math:`x = b/255` with
    :math:`b \in \{0..255\}` become :math:`(b + u)/256`, :math:`u \sim \mathcal U[0, 1)`. A continuous
    density :math:`p` of the result then gives a lower bound on the discrete likelihood,
    :math:`\log P(b) \ge \mathbb E_u[\log p((b+u)/256)] - D \log 256` (Jensen)."""
    x = check_images(x01, "01", name="x01")
    b = (x * 255).round()
    u = torch.rand(x.shape, generator=generator)
    return (b + u) / 256


def discretisation_correction(dims: int = 784, value_range: str | None = "01") -> float:
    r"""Nats to add to a continuous negative log-density to obtain a discrete 8-bit one:
    :math:`D \log 256` for pixels scaled to :math:`[0, 1]` (bins of width 1/256), :math:`D \log 128`
    for :math:`[-1, 1]` (bins of width 2/256), 0 for ``value_range=None`` (already discrete, e.g. a
    PixelCNN's softmax over 256 values)."""
    if value_range is None:
        return 0.0
    if value_range not in VALUE_RANGES:
        raise ValueError(f"value_range must be '01', 'pm1' or None, got {value_range!r}")
    return dims * math.log(256 if value_range == "01" else 128)


def bits_per_dim(nll_nats, dims: int = 784, value_range: str | None = None):
    r"""Bits per dimension of a negative log-likelihood per image in nats:

    .. math:: \text{bpd} = \frac{\mathrm{NLL} + C}{D \ln 2},

    with :math:`D` = ``dims`` (784 for MNIST) and the discretisation correction :math:`C`
    (:func:`discretisation_correction`): ``value_range="01"`` when ``nll_nats`` is a continuous
    density of pixels in :math:`[0, 1]` (:math:`C = D\ln 256`), ``"pm1"`` for :math:`[-1, 1]`
    (:math:`C = D \ln 128`), ``None`` when it is already a discrete likelihood (:math:`C = 0`).
    ``nll_nats`` is a float or a tensor (per image, not per pixel)."""
    if not isinstance(dims, int) or dims < 1:
        raise ValueError(f"dims must be a positive int, got {dims!r}")
    return (nll_nats + discretisation_correction(dims, value_range)) / (dims * math.log(2))


def nats_from_bits_per_dim(bpd, dims: int = 784, value_range: str | None = None):
    r"""The inverse of :func:`bits_per_dim`: :math:`\mathrm{NLL} = \text{bpd}\cdot D \ln 2 - C` nats per image."""
    if not isinstance(dims, int) or dims < 1:
        raise ValueError(f"dims must be a positive int, got {dims!r}")
    return bpd * dims * math.log(2) - discretisation_correction(dims, value_range)
