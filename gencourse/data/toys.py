r"""2-D toy distributions with exact (or quadrature-exact) log-densities: Gaussian mixtures (ring,
grid), rings, moons, swiss roll. See :mod:`gencourse.data`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from .. import checks

__all__ = ["ToyDistribution", "GaussianMixture", "NoisyCurve", "Rings", "Moons", "SwissRoll", "TOYS", "toy"]


# ----------------------------------------------------------------------------------------------
# 2-D toy distributions
# ----------------------------------------------------------------------------------------------

LOG_2PI = math.log(2.0 * math.pi)


def _check_generator(generator) -> torch.device:
    if generator is None:
        return torch.device("cpu")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator.device


def _check_points(x, name: str = "x") -> torch.Tensor:
    """Return ``x`` as a floating tensor of shape ``(N, 2)`` or raise a ``ValueError``."""
    if not torch.is_tensor(x):
        try:
            x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a tensor of shape (N, 2), got {type(x).__name__}") from err
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    return x


def _positive(name: str, value: float) -> float:
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _log_normal_2d(sq_dist: torch.Tensor, std) -> torch.Tensor:
    r""":math:`\log \mathcal N(x; \mu, \sigma^2 I_2) = -\|x-\mu\|^2 / (2\sigma^2) - \log(2\pi\sigma^2)`."""
    var = std**2
    log_var = torch.log(var) if torch.is_tensor(var) else math.log(var)
    return -0.5 * sq_dist / var - LOG_2PI - log_var


class ToyDistribution:
    r"""Base class of the 2-D toy distributions :math:`p(x)`, :math:`x \in \mathbb{R}^2`.

    Subclasses implement ``sample(n, generator=None) -> (n, 2)`` and ``log_prob(x) -> (N,)``.
    """

    dim = 2

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r"""The score :math:`\nabla_x \log p(x)` by automatic differentiation: ``(N, 2) -> (N, 2)``."""
        x = _check_points(x).detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self.log_prob(x).sum(), x)
        return grad

    def entropy_mc(self, n: int = 100_000, generator: torch.Generator | None = None) -> float:
        r"""Monte-Carlo differential entropy :math:`\hat H = -\frac1n \sum_i \log p(x_i)`, :math:`x_i \sim p`.

        It is the floor of a model's average negative log-likelihood (in nats) on samples of
        :math:`p`; its standard error is about :math:`\mathrm{sd}(\log p)/\sqrt n`.
        """
        return -self.log_prob(self.sample(checks.positive_int(n), generator)).double().mean().item()

    def extent(self, margin: float = 4.0) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` that holds the support plus ``margin`` noise scales (plots)."""
        raise NotImplementedError


class GaussianMixture(ToyDistribution):
    r"""Mixture of isotropic Gaussians :math:`p(x) = \sum_k w_k\, \mathcal N(x; \mu_k, \sigma_k^2 I_2)`.

    .. math::
        \log p(x) = \operatorname{logsumexp}_k \Big[\log w_k - \frac{\|x - \mu_k\|^2}{2\sigma_k^2}
        - \log(2\pi\sigma_k^2)\Big].

    Args:
        means: :math:`\mu`, shape ``(K, 2)``.
        stds: :math:`\sigma`, shape ``(K,)`` or a scalar shared by all modes; positive.
        weights: :math:`w`, shape ``(K,)``, non-negative (normalised here); default uniform.

    Attributes ``means (K, 2)``, ``stds (K,)``, ``weights (K,)`` and ``n_modes = K`` serve the
    mode-coverage measures of later chapters.
    """

    def __init__(self, means, stds=0.05, weights=None):
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.ndim != 2 or means.shape[1] != 2 or means.shape[0] < 1:
            raise ValueError(f"means must have shape (K, 2) with K >= 1, got {tuple(means.shape)}")
        k = means.shape[0]
        stds = torch.as_tensor(stds, dtype=torch.float64)
        if stds.ndim == 0:
            stds = stds.expand(k).clone()
        if stds.shape != (k,):
            raise ValueError(f"stds must be a scalar or have shape ({k},), got {tuple(stds.shape)}")
        if not bool((stds > 0).all()) or not bool(torch.isfinite(stds).all()):
            raise ValueError(f"stds must be positive and finite, got min {stds.min().item():.6g}")
        if weights is None:
            weights = torch.full((k,), 1.0 / k, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (k,):
            raise ValueError(f"weights must have shape ({k},), got {tuple(weights.shape)}")
        if not bool((weights >= 0).all()) or not weights.sum() > 0 or not bool(torch.isfinite(weights).all()):
            raise ValueError(f"weights must be non-negative with a positive sum, got {weights.tolist()}")
        weights = weights / weights.sum()
        self._params64 = (means, stds, weights)  # exact parameters for log_prob
        self.means = means.to(torch.float32)
        self.stds = stds.to(torch.float32)
        self.weights = weights.to(torch.float32)
        self.n_modes = k
        self._name = None

    @classmethod
    def ring(cls, n_modes: int = 8, radius: float = 2.0, std: float = 0.05) -> GaussianMixture:
        r"""``n_modes`` equal Gaussians on a circle of radius :math:`r`:
        :math:`\mu_k = r(\cos\frac{2\pi k}{K}, \sin\frac{2\pi k}{K})`, :math:`\sigma_k = ` ``std``."""
        k = checks.positive_int(n_modes, "n_modes")
        radius = _positive("radius", radius)
        angle = 2.0 * math.pi * torch.arange(k, dtype=torch.float64) / k
        means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        gm = cls(means, _positive("std", std))
        gm._name = f"GaussianMixture.ring(n_modes={k}, radius={radius:g}, std={std:g})"
        return gm

    @classmethod
    def grid(cls, n_per_side: int = 5, spacing: float = 1.0, std: float = 0.05) -> GaussianMixture:
        r"""``n_per_side**2`` (:math:`m^2`) equal Gaussians on a square grid centred at 0:
        :math:`\mu_{ij} = s\,(i - \frac{m-1}{2}, j - \frac{m-1}{2})`, spacing :math:`s`."""
        m = checks.positive_int(n_per_side, "n_per_side")
        spacing = _positive("spacing", spacing)
        axis = spacing * (torch.arange(m, dtype=torch.float64) - (m - 1) / 2)
        means = torch.cartesian_prod(axis, axis)
        gm = cls(means, _positive("std", std))
        gm._name = f"GaussianMixture.grid(n_per_side={m}, spacing={spacing:g}, std={std:g})"
        return gm

    def __repr__(self) -> str:
        if self._name:
            return self._name
        std = self.stds[0].item() if bool((self.stds == self.stds[0]).all()) else self.stds.tolist()
        return f"GaussianMixture(n_modes={self.n_modes}, std={std!r})"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``(n, 2)`` samples: :math:`k \sim \mathrm{Cat}(w)`, :math:`x = \mu_k + \sigma_k \varepsilon`."""
        n = checks.positive_int(n)
        device = _check_generator(generator)
        k = torch.multinomial(self.weights.to(device), n, replacement=True, generator=generator)
        eps = torch.randn(n, 2, generator=generator, device=device)
        return self.means.to(device)[k] + self.stds.to(device)[k, None] * eps

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`\log p(x)`, ``(N, 2) -> (N,)``: float64 inside, ``x.dtype`` out (differentiable)."""
        x = _check_points(x)
        mu, std, w = (t.to(device=x.device) for t in self._params64)
        sq = ((x.to(torch.float64)[:, None, :] - mu[None]) ** 2).sum(-1)  # (N, K)
        return torch.logsumexp(torch.log(w) + _log_normal_2d(sq, std), dim=1).to(x.dtype)

    def extent(self, margin: float = 4.0) -> tuple[float, float, float, float]:
        pad = margin * self.stds.max().item()
        lo, hi = self.means.min(0).values - pad, self.means.max(0).values + pad
        return (lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item())


class NoisyCurve(ToyDistribution):
    r"""A curve :math:`c: [0, 1] \to \mathbb{R}^2` blurred by isotropic Gaussian noise.

    Sampling: :math:`s \sim \mathcal U(0, 1)`, :math:`x = c(s) + \sigma \varepsilon`,
    :math:`\varepsilon \sim \mathcal N(0, I_2)`. The density is the integral over the curve,
    computed by the midpoint rule with :math:`K` nodes :math:`s_k` (``n_quad``):

    .. math::
        \log p(x) = \log \int_0^1 \mathcal N(x; c(s), \sigma^2 I_2)\, ds
        \approx \operatorname{logsumexp}_k \log \mathcal N(x; c(s_k), \sigma^2 I_2) - \log K.

    A curve made of ``n_pieces`` pieces (one per equal part of :math:`[0, 1]`, e.g. one per moon or
    per ring) gets its own midpoint rule on each piece, :math:`\lceil K / \text{pieces} \rceil`
    nodes each. The rule is spectrally accurate on closed pieces (rings) and has an
    :math:`O(h^2)` error near the two ends of an open piece: about :math:`10^{-4}` in
    :math:`\log p` with the default 2048 nodes, far below what a model's NLL resolves.

    Subclasses define :meth:`curve`, vectorised ``(M,) -> (M, 2)`` in float64.
    """

    #: number of pieces of :meth:`curve` (equal parts of ``[0, 1]``), each with its own rule
    n_pieces = 1
    #: entries of the ``(rows, K)`` distance matrix per block (bounds the memory of ``log_prob``)
    chunk_elements = 1 << 20

    def __init__(self, noise: float, n_quad: int = 2048):
        self.noise = _positive("noise", noise)
        self.n_quad = checks.positive_int(n_quad, "n_quad")

    def curve(self, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _nodes(self, device="cpu", dtype=torch.float64) -> torch.Tensor:
        """The quadrature nodes :math:`c(s_k)`, ``(K, 2)``: midpoints of each piece's sub-intervals."""
        pieces = self.n_pieces
        m = -(-self.n_quad // pieces)  # nodes per piece
        k = torch.arange(pieces * m, dtype=torch.float64)
        s = ((k // m) + ((k % m) + 0.5) / m) / pieces
        return self.curve(s).to(device=device, dtype=dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""``(n, 2)`` samples :math:`x = c(s) + \sigma\varepsilon`, :math:`s \sim \mathcal U(0,1)`."""
        n = checks.positive_int(n)
        device = _check_generator(generator)
        s = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        eps = torch.randn(n, 2, generator=generator, device=device)
        return self.curve(s).to(torch.float32) + self.noise * eps

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Quadrature :math:`\log p(x)`, ``(N, 2) -> (N,)``, computed in float64, returned in
        ``x.dtype`` (differentiable in ``x``).

        Expanding :math:`\|x - c_k\|^2 = \|x\|^2 - 2\, x \cdot c_k + \|c_k\|^2` takes the
        :math:`\|x\|^2` term out of the log-sum-exp, leaving one matrix product per block of rows:

        .. math::
            \log p(x) = -\frac{\|x\|^2}{2\sigma^2} + \operatorname{logsumexp}_k
            \frac{2\, x \cdot c_k - \|c_k\|^2}{2\sigma^2} - \log(2\pi\sigma^2) - \log K.
        """
        x = _check_points(x)
        x64 = x.to(torch.float64)
        c = self._nodes(x.device, torch.float64)  # (K, 2)
        var = self.noise**2
        # [x, 1] @ [c / var, -|c|^2 / (2 var)]^T = (2 x.c - |c|^2) / (2 var), shape (N, K)
        c_aug = torch.cat([c / var, (c * c).sum(1, keepdim=True) * (-0.5 / var)], dim=1)
        x_aug = torch.cat([x64, x64.new_ones(len(x64), 1)], dim=1)
        rows = max(1, self.chunk_elements // len(c))
        lse = [x64.new_zeros(0)] + [torch.logsumexp(xb @ c_aug.T, dim=1) for xb in x_aug.split(rows)]
        log_p = torch.cat(lse) - 0.5 * (x64 * x64).sum(1) / var - LOG_2PI - math.log(var) - math.log(len(c))
        return log_p.to(x.dtype)

    def extent(self, margin: float = 4.0) -> tuple[float, float, float, float]:
        c = self._nodes()
        pad = margin * self.noise
        lo, hi = c.min(0).values - pad, c.max(0).values + pad
        return (lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item())


class Rings(NoisyCurve):
    r"""Concentric noisy circles of radii :math:`R_1..R_J`, chosen with equal probability.

    :math:`x = R_j (\cos\theta, \sin\theta) + \sigma\varepsilon`, :math:`j \sim \mathcal U\{1..J\}`,
    :math:`\theta \sim \mathcal U[0, 2\pi)`. Integrating the angle out gives a closed form with
    the modified Bessel function :math:`I_0` (Rice distribution):

    .. math::
        p_R(x) = \frac{1}{2\pi\sigma^2} \exp\!\Big(-\frac{\|x\|^2 + R^2}{2\sigma^2}\Big)
        I_0\!\Big(\frac{\|x\| R}{\sigma^2}\Big),
        \qquad p(x) = \frac1J \sum_j p_{R_j}(x),

    evaluated stably as :math:`\log p_R = -\log(2\pi\sigma^2) - (\|x\| - R)^2/(2\sigma^2)
    + \log \mathrm{i0e}(\|x\| R/\sigma^2)` with :math:`\mathrm{i0e}(a) = e^{-a} I_0(a)`.
    """

    def __init__(self, radii=(1.0, 2.0), noise: float = 0.05, n_quad: int = 2048):
        radii = tuple(float(r) for r in (radii if isinstance(radii, (list, tuple)) else [radii]))
        if not radii or any(not (r > 0 and math.isfinite(r)) for r in radii):
            raise ValueError(f"radii must be a non-empty sequence of positive numbers, got {radii!r}")
        super().__init__(noise, n_quad)
        self.radii = radii
        self.n_pieces = len(radii)

    def __repr__(self) -> str:
        return f"Rings(radii={self.radii!r}, noise={self.noise:g})"

    def curve(self, s: torch.Tensor) -> torch.Tensor:
        r"""Ring :math:`j = \lfloor sJ \rfloor` at angle :math:`\theta = 2\pi(sJ - j)`."""
        J = len(self.radii)
        u = s * J
        j = u.floor().clamp(max=J - 1)
        theta = 2.0 * math.pi * (u - j)
        r = torch.tensor(self.radii, dtype=s.dtype, device=s.device)[j.long()]
        return torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`\log p(x)` (Bessel closed form), ``(N, 2) -> (N,)``."""
        x = _check_points(x)
        R = torch.tensor(self.radii, dtype=torch.float64, device=x.device)  # (J,)
        var = self.noise**2
        rho = torch.linalg.vector_norm(x.to(torch.float64), dim=1, keepdim=True)  # (N, 1)
        log_pr = (
            -LOG_2PI - math.log(var)
            - (rho - R) ** 2 / (2.0 * var)
            + torch.log(torch.special.i0e(rho * R / var))
        )
        return (torch.logsumexp(log_pr, dim=1) - math.log(len(self.radii))).to(x.dtype)

    def quadrature_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The midpoint-rule density of :class:`NoisyCurve` (to check the closed form)."""
        return NoisyCurve.log_prob(self, x)


class Moons(NoisyCurve):
    r"""Two interleaved half circles (as ``sklearn.datasets.make_moons``), centred at 0, plus noise.

    .. math::
        c(s) = \begin{cases} (\cos \pi u, \sin \pi u) - (\tfrac12, \tfrac14), & u = 2s,\ s < \tfrac12\\
        (1 - \cos \pi u, \tfrac12 - \sin \pi u) - (\tfrac12, \tfrac14), & u = 2s - 1,\ s \ge \tfrac12
        \end{cases}

    Each moon is one piece of the quadrature (``n_pieces = 2``).
    """

    n_pieces = 2

    def __init__(self, noise: float = 0.1, n_quad: int = 2048):
        super().__init__(noise, n_quad)

    def __repr__(self) -> str:
        return f"Moons(noise={self.noise:g})"

    def curve(self, s: torch.Tensor) -> torch.Tensor:
        upper = s < 0.5
        theta = math.pi * torch.where(upper, 2.0 * s, 2.0 * s - 1.0)
        cx, sy = torch.cos(theta), torch.sin(theta)
        px = torch.where(upper, cx, 1.0 - cx) - 0.5
        py = torch.where(upper, sy, 0.5 - sy) - 0.25
        return torch.stack([px, py], dim=-1)


class SwissRoll(NoisyCurve):
    r"""The 2-D swiss roll (``sklearn.datasets.make_swiss_roll``'s ``x, z`` plane) plus noise.

    .. math::
        t = \tfrac{3\pi}{2}(1 + 2s), \qquad c(s) = \frac{1}{\text{scale}}\,(t \cos t,\ t \sin t),

    with ``noise`` :math:`\sigma` in the scaled coordinates (``scale=5`` keeps it in about
    :math:`[-3, 3]^2`).
    """

    def __init__(self, noise: float = 0.1, scale: float = 5.0, n_quad: int = 2048):
        super().__init__(noise, n_quad)
        self.scale = _positive("scale", scale)

    def __repr__(self) -> str:
        return f"SwissRoll(noise={self.noise:g}, scale={self.scale:g})"

    def curve(self, s: torch.Tensor) -> torch.Tensor:
        t = 1.5 * math.pi * (1.0 + 2.0 * s)
        return torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=-1) / self.scale


#: name -> constructor, for :func:`toy`
TOYS = {
    "ring": GaussianMixture.ring,
    "grid": GaussianMixture.grid,
    "rings": Rings,
    "moons": Moons,
    "swissroll": SwissRoll,
}


def toy(name: str, **kwargs) -> ToyDistribution:
    """A 2-D toy distribution by name: ``"ring"``, ``"grid"``, ``"rings"``, ``"moons"``, ``"swissroll"``.

    Keyword arguments go to the constructor, e.g. ``toy("ring", n_modes=8, std=0.05)``.
    """
    checks.one_of(name, tuple(TOYS), "name")
    return TOYS[name](**kwargs)
