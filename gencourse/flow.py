r"""Flow matching: the linear probability path, the conditional flow-matching loss, ODE samplers,
the exact marginal field of a Gaussian mixture, minibatch optimal-transport couplings, reflow, and
a diffusion model read as a velocity field (chapter 13).

**Convention** (Lipman et al., 2023): time runs from noise to data. :math:`t = 0` is the source
:math:`x_0 \sim \mathcal N(0, I)`, :math:`t = 1` the data :math:`x_1 \sim p_\text{data}`; the
linear (rectified-flow, "optimal-transport") path and its conditional velocity are

.. math::
    x_t = (1 - t)\,x_0 + t\,x_1, \qquad u_t(x_t \mid x_0, x_1) = \frac{d x_t}{dt} = x_1 - x_0 .

A velocity model is any callable ``v(x, t) -> (B, ...)`` with ``t`` a float tensor ``(B,)`` in
:math:`[0, 1]`; sampling integrates :math:`\dot x = v(x, t)` from :math:`t = 0` to :math:`1`.
Nothing here is an ``nn.Module`` (the networks are in :mod:`gencourse.nn`).

>>> x0, x1 = torch.zeros(1, 2), torch.ones(1, 2)
>>> linear_path(x0, x1, torch.tensor([0.25])).tolist(), conditional_velocity(x0, x1).tolist()
([[0.25, 0.25]], [[1.0, 1.0]])

References: Lipman, Chen, Ben-Hamu, Nickel & Le (2023), *Flow matching for generative modeling*
(eq. 5–9, theorem 2); Liu, Gong & Liu (2023), *Flow straight and fast* (rectified flow, reflow,
straightness, eq. 1 and definition 3.4); Albergo & Vanden-Eijnden (2023), *Building normalizing
flows with stochastic interpolants*; Tong et al. (2024), *Improving and generalizing flow-based
generative models with minibatch optimal transport*; Pooladian et al. (2023), *Multisample flow
matching*; Song, Meng & Ermon (2021) and Karras et al. (2022) for DDIM as an ODE solver.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import checks, distributed

__all__ = [
    "linear_path",
    "conditional_velocity",
    "sample_time",
    "TIME_DISTRIBUTIONS",
    "cfm_loss",
    "ot_pairs",
    "euler_step",
    "heun_step",
    "integrate",
    "SOLVERS",
    "gmm_marginal_velocity",
    "eps_to_velocity",
    "diffusion_time",
    "diffusion_velocity",
    "straightness",
    "reflow_pairs",
]


def _as_time(t, x: torch.Tensor, name: str = "t") -> torch.Tensor:
    """``t`` as a float tensor of shape ``(B,)`` on ``x``'s device (a Python number is broadcast)."""
    B = x.shape[0]
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        t = torch.full((B,), float(t), device=x.device)
    if not isinstance(t, torch.Tensor) or t.shape != (B,) or not t.is_floating_point():
        got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a float or a float tensor of shape (B,) = ({B},), got {got}")
    if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
        raise ValueError(f"{name} must lie in [0, 1] (0 = noise, 1 = data), got {float(t.min()):.4g}..{float(t.max()):.4g}")
    return t.to(x.dtype)


def _bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (x.ndim - 1)))


def _check_pair(x0, x1) -> None:
    for name, v in (("x0", x0), ("x1", x1)):
        if not isinstance(v, torch.Tensor) or v.ndim < 2 or not v.is_floating_point():
            got = f"{tuple(v.shape)} {v.dtype}" if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{name} must be a float tensor (B, ...), got {got}")
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")


def linear_path(x0: torch.Tensor, x1: torch.Tensor, t) -> torch.Tensor:
    r"""The point at time :math:`t` on the straight line from noise :math:`x_0` to data :math:`x_1`:
    :math:`x_t = (1 - t)\,x_0 + t\,x_1` (Lipman et al., eq. 20 with :math:`\sigma_\min = 0`; Liu
    et al., eq. 1). ``x0, x1 (B, ...)``, ``t`` a float or ``(B,)`` in :math:`[0, 1]`."""
    _check_pair(x0, x1)
    t = _bcast(_as_time(t, x0), x0)
    return (1.0 - t) * x0 + t * x1


def conditional_velocity(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    r"""The velocity of the linear path, :math:`u_t(x_t \mid x_0, x_1) = x_1 - x_0` (data minus
    noise; the same at every :math:`t`)."""
    _check_pair(x0, x1)
    return x1 - x0


#: The time distributions of :func:`sample_time`.
TIME_DISTRIBUTIONS = ("uniform", "logit_normal")


def sample_time(B: int, generator: torch.Generator | None = None, device=None, *, dist: str = "uniform",
                loc: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    r"""Training times ``(B,)`` float32 in :math:`(0, 1)`, drawn on the generator's device, then moved.

    ``dist="uniform"``: :math:`t \sim \mathcal U[0, 1)` (Lipman et al.). ``dist="logit_normal"``:
    :math:`t = \sigma(m + s\,n)`, :math:`n \sim \mathcal N(0, 1)` (``loc`` :math:`m`, ``scale``
    :math:`s`; Esser et al., 2024, eq. 19), whose density

    .. math:: \pi(t) = \frac{1}{s\sqrt{2\pi}}\,\frac{1}{t(1 - t)}
              \exp\Big(-\frac{(\operatorname{logit} t - m)^2}{2 s^2}\Big)

    puts more of the training at intermediate times, where the velocity is hardest to predict, and
    less near :math:`t = 0` (pure noise, the target is nearly the data mean minus the noise) and
    :math:`t = 1` (the target is nearly read off the input).
    """
    B = checks.positive_int(B, "B")
    checks.one_of(dist, TIME_DISTRIBUTIONS, "dist")
    on = generator.device if generator is not None else None
    if dist == "uniform":
        return distributed.rand((B,), generator=generator, device=on).to(device)
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return torch.sigmoid(loc + scale * distributed.randn((B,), generator=generator, device=on)).to(device)


def cfm_loss(
    v_model: Callable,
    x1: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    x0: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The conditional flow-matching loss (Lipman et al., eq. 9 with the linear path):

    .. math:: \mathcal L_\text{CFM}(\theta) = \mathbb E_{t, x_0, x_1}
              \big\| v_\theta(x_t, t) - (x_1 - x_0) \big\|^2, \qquad
              x_t = (1 - t)\,x_0 + t\,x_1 .

    Its gradient equals that of the marginal loss :math:`\mathbb E\,\|v_\theta(x_t, t) - u_t(x_t)\|^2`
    (theorem 2 of Lipman et al.): the two differ by a constant in :math:`\theta`.

    Args:
        v_model: ``v(x_t, t)`` or, with ``y``, ``v(x_t, t, y)``.
        x1: a batch of data ``(B, ...)``.
        x0: the noise (default :math:`\mathcal N(0, I)` from ``generator``); pass a coupled batch
            (:func:`ot_pairs`) for minibatch OT.
        t: ``(B,)`` times (default :math:`\mathcal U[0, 1)` from ``generator``, drawn before ``x0``).

    Normalisation: the mean over the batch and the entries of each sample (``F.mse_loss``), as
    :func:`gencourse.diffusion.ddpm_loss`.
    """
    if not isinstance(x1, torch.Tensor) or x1.ndim < 2 or not x1.is_floating_point():
        raise ValueError(f"x1 must be a float tensor (B, ...), got {type(x1).__name__ if not isinstance(x1, torch.Tensor) else tuple(x1.shape)}")
    if t is None:
        t = sample_time(x1.shape[0], generator, x1.device)
    if x0 is None:
        x0 = distributed.randn(x1.shape, generator=generator, device=generator.device if generator is not None else None).to(x1.device)
    x_t = linear_path(x0, x1, t)
    v = v_model(x_t, t) if y is None else v_model(x_t, t, y)
    return F.mse_loss(v, conditional_velocity(x0, x1))


def ot_pairs(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    r"""Minibatch optimal-transport coupling (Tong et al., 2024; Pooladian et al., 2023): the noise
    batch reordered so that ``(x0[perm], x1)`` is the exact OT matching for the squared Euclidean
    cost, :math:`\pi^* = \arg\min_\pi \sum_i \|x_0^{\pi(i)} - x_1^i\|^2` (POT's network simplex on
    uniform weights, whose optimum for equal batch sizes is a permutation).

    Returns ``x0[perm]`` (same shape as ``x0``). Flatten-free: images are compared as vectors.
    """
    import ot

    _check_pair(x0, x1)
    a, b = x0.reshape(len(x0), -1).detach().double().cpu(), x1.reshape(len(x1), -1).detach().double().cpu()
    M = torch.cdist(b, a).pow(2).numpy()  # rows: data points, columns: noise points
    plan = ot.emd(torch.full((len(b),), 1.0 / len(b)).double().numpy(), torch.full((len(a),), 1.0 / len(a)).double().numpy(), M)
    perm = torch.from_numpy(plan.argmax(axis=1)).to(x0.device)
    return x0[perm]


def euler_step(v_model: Callable, x: torch.Tensor, t, t_next) -> torch.Tensor:
    r"""One explicit Euler step of :math:`\dot x = v(x, t)`:
    :math:`x_{t'} = x_t + (t' - t)\,v(x_t, t)` (one network evaluation)."""
    t, t_next = _as_time(t, x), _as_time(t_next, x, "t_next")
    return x + _bcast(t_next - t, x) * v_model(x, t)


def heun_step(v_model: Callable, x: torch.Tensor, t, t_next) -> torch.Tensor:
    r"""One Heun step (the explicit trapezoidal rule, second order; Karras et al., 2022, Algorithm 1):

    .. math:: d_1 = v(x_t, t),\quad \tilde x = x_t + h\,d_1,\quad d_2 = v(\tilde x, t'),\quad
              x_{t'} = x_t + \tfrac h2 (d_1 + d_2), \qquad h = t' - t

    (two network evaluations)."""
    t, t_next = _as_time(t, x), _as_time(t_next, x, "t_next")
    h = _bcast(t_next - t, x)
    d1 = v_model(x, t)
    d2 = v_model(x + h * d1, t_next)
    return x + 0.5 * h * (d1 + d2)


#: The ODE solvers of :func:`integrate` and their network evaluations per step.
SOLVERS = {"euler": (euler_step, 1), "heun": (heun_step, 2)}


@torch.no_grad()
def integrate(
    v_model: Callable,
    x0: torch.Tensor,
    n_steps: int,
    *,
    method: str = "euler",
    t0: float = 0.0,
    t1: float = 1.0,
    return_path: bool = False,
):
    r"""Integrate :math:`\dot x = v(x, t)` from ``x0`` at :math:`t_0` to :math:`t_1` on the uniform
    grid :math:`t_k = t_0 + k (t_1 - t_0)/n` with ``method`` ``"euler"`` (``n_steps`` network
    evaluations) or ``"heun"`` (``2 n_steps``).

    Returns the end point ``(B, ...)``, or with ``return_path`` the list of the ``n_steps + 1``
    states along the way (the first is ``x0``).
    """
    n_steps = checks.positive_int(n_steps, "n_steps")
    checks.one_of(method, tuple(SOLVERS), "method")
    step, _ = SOLVERS[method]
    grid = torch.linspace(t0, t1, n_steps + 1, dtype=torch.float64).tolist()
    x, path = x0, [x0]
    for t, t_next in zip(grid[:-1], grid[1:]):
        x = step(v_model, x, t, t_next)
        if return_path:
            path.append(x)
    return path if return_path else x


def gmm_marginal_velocity(x: torch.Tensor, t, means, stds, weights=None) -> torch.Tensor:
    r"""The exact marginal velocity :math:`u_t(x) = \mathbb E[x_1 - x_0 \mid x_t = x]` of the linear
    path from :math:`\mathcal N(0, I_D)` to an isotropic Gaussian mixture
    :math:`\sum_k w_k \mathcal N(\mu_k, s_k^2 I_D)`.

    Given the component :math:`k`, :math:`(x_0, x_1, x_t)` are jointly Gaussian, with
    :math:`x_t \sim \mathcal N(t\mu_k, v_k I)`, :math:`v_k = (1-t)^2 + t^2 s_k^2`,
    :math:`\mathrm{Cov}(x_1, x_t) = t s_k^2 I` and :math:`\mathrm{Cov}(x_0, x_t) = (1 - t) I`, so

    .. math::
        u_t(x) = \sum_k \gamma_k(x)\Big[\mu_k + \frac{t s_k^2 - (1 - t)}{v_k}\,(x - t\mu_k)\Big],
        \qquad \gamma_k(x) \propto w_k\,\mathcal N(x; t\mu_k, v_k I).

    ``x (N, D)``, ``t`` a float or ``(N,)``, ``means (K, D)``, ``stds (K,)`` or a scalar, ``weights``
    ``(K,)`` (default uniform). Computed in float64, returned in ``x``'s dtype.
    """
    x = checks.as_points(x, "x", dim=x.shape[1] if isinstance(x, torch.Tensor) and x.ndim == 2 else 2)
    t = _as_time(t, x).double()[:, None, None]  # (N, 1, 1)
    mu = torch.as_tensor(means, dtype=torch.float64, device=x.device)
    if mu.ndim != 2 or mu.shape[1] != x.shape[1]:
        raise ValueError(f"means must have shape (K, {x.shape[1]}), got {tuple(mu.shape)}")
    K, D = mu.shape
    s = torch.as_tensor(stds, dtype=torch.float64, device=x.device).expand(K)[None, :, None]  # (1, K, 1)
    w = torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    w = (w / w.sum()).to(x.device)
    xd = x.double()[:, None, :]  # (N, 1, D)
    var = (1 - t) ** 2 + t**2 * s**2  # (N, K, 1)
    centred = xd - t * mu[None]  # (N, K, D)
    log_gamma = w.log()[None] - 0.5 * (centred**2).sum(-1) / var[..., 0] - 0.5 * D * var[..., 0].log()
    gamma = torch.softmax(log_gamma, dim=1)[..., None]  # (N, K, 1)
    u = mu[None] + (t * s**2 - (1 - t)) / var * centred
    return (gamma * u).sum(1).to(x.dtype)


def eps_to_velocity(x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
    r"""A noise prediction turned into a velocity on the linear path. With
    :math:`x_t = (1 - t)\,\hat x_0 + t\,\hat x_1` and :math:`\hat x_0 = \hat\varepsilon`, the data
    estimate is :math:`\hat x_1 = (x_t - (1 - t)\hat\varepsilon)/t`, hence

    .. math:: v = \hat x_1 - \hat\varepsilon = \frac{x_t - \hat\varepsilon}{t} \qquad (t > 0).
    """
    _check_pair(x_t, eps)
    t = _as_time(t, x_t)
    if t.numel() and float(t.min()) <= 0.0:
        raise ValueError("t must be > 0: at t = 0 the noise prediction says nothing about the data")
    return (x_t - eps) / _bcast(t, x_t)


def diffusion_time(alpha_bar: torch.Tensor) -> torch.Tensor:
    r"""The linear-path time of each diffusion step. Dividing
    :math:`x = \sqrt{\bar\alpha}\,x_0 + \sqrt{1 - \bar\alpha}\,\varepsilon` by
    :math:`\sqrt{\bar\alpha} + \sqrt{1 - \bar\alpha}` puts it on the linear path at

    .. math:: s = \frac{\sqrt{\bar\alpha}}{\sqrt{\bar\alpha} + \sqrt{1 - \bar\alpha}}

    (data weight :math:`s`, noise weight :math:`1 - s`). ``alpha_bar (T + 1,)`` → ``(T + 1,)``,
    decreasing from 1 (:math:`t = 0`, data) towards 0."""
    a = alpha_bar.double()
    return (a.sqrt() / (a.sqrt() + (1 - a).sqrt())).to(alpha_bar.dtype)


def diffusion_velocity(eps_model: Callable, alpha_bar: torch.Tensor, **model_kwargs) -> Callable:
    r"""A diffusion model :math:`\varepsilon_\theta(x, t)` (integer steps, chapter 12) as a velocity
    field :math:`v(z, s)` on the linear path (:func:`diffusion_time`).

    For a time :math:`s`, the diffusion step :math:`\tau` with that :math:`s` is found by linear
    interpolation in the table of :func:`diffusion_time` (fractional in general); the image is
    :math:`x = z\,(\sqrt{\bar\alpha_\tau} + \sqrt{1 - \bar\alpha_\tau})`, the noise prediction is
    interpolated linearly between the two integer steps around :math:`\tau` (one network evaluation
    when :math:`\tau` is an integer), and :func:`eps_to_velocity` gives :math:`v`.
    With this field, one Euler step from :math:`s_i` to :math:`s_{i-1}` is exactly one DDIM step
    (:math:`\eta = 0`) from :math:`t_i` to :math:`t_{i-1}` (chapter 13 shows it).

    ``model_kwargs`` (e.g. ``y=labels``) are passed to ``eps_model``.
    """
    table = diffusion_time(alpha_bar).double().cpu()  # decreasing in the step index
    T = len(table) - 1
    rev = table.flip(0)  # increasing: rev[j] = s at step T - j
    steps, a_table = np.arange(T + 1.0), alpha_bar.double().cpu().numpy()

    def v(z: torch.Tensor, s) -> torch.Tensor:
        s = _as_time(s, z, "s")
        sd = s.double().cpu().clamp(float(rev[0]), float(rev[-1]))
        j = torch.searchsorted(rev, sd).clamp(1, T)  # rev[j - 1] <= s <= rev[j]
        lam = (sd - rev[j - 1]) / (rev[j] - rev[j - 1])  # 0 at rev[j-1], 1 at rev[j]
        tau = (T - (j - 1)).double() - lam  # fractional diffusion step (decreasing in s)
        near = tau.round()
        tau = torch.where((tau - near).abs() < 1e-3, near, tau)  # a grid time given in float32
        lo, hi = tau.floor().long(), tau.ceil().long()
        frac = (tau - lo.double()).to(z.dtype).to(z.device)
        a_tau = torch.from_numpy(np.interp(tau.numpy(), steps, a_table))
        scale = (a_tau.sqrt() + (1 - a_tau).sqrt()).to(z.dtype).to(z.device)
        x = z * _bcast(scale, z)
        eps = eps_model(x, lo.to(z.device), **model_kwargs)
        if bool((hi != lo).any()):
            eps = eps + _bcast(frac, z) * (eps_model(x, hi.to(z.device), **model_kwargs) - eps)
        return eps_to_velocity(z, s, eps)

    return v


@torch.no_grad()
def straightness(v_model: Callable, x0: torch.Tensor, n_steps: int = 100) -> tuple[float, torch.Tensor]:
    r"""How far the flow's paths are from straight lines (Liu et al., 2023, definition 3.4):

    .. math:: S = \int_0^1 \mathbb E\,\big\| (Z_1 - Z_0) - v(Z_t, t) \big\|^2\,dt ,

    zero exactly when every path is a straight line travelled at constant speed (then one Euler step
    is exact). Computed on the Euler trajectories of ``n_steps`` steps from ``x0``, with the
    left-point rule; the squared norm is summed over each sample's entries and averaged over the
    batch. Returns ``(S, x1)`` with ``x1`` the end points.
    """
    n_steps = checks.positive_int(n_steps, "n_steps")
    path = integrate(v_model, x0, n_steps, return_path=True)
    x1, h = path[-1], 1.0 / n_steps
    total = 0.0
    for k, x in enumerate(path[:-1]):
        v = (path[k + 1] - x) / h  # = v(x_k, t_k) for Euler
        total += h * ((x1 - x0) - v).pow(2).flatten(1).sum(1).mean().item()
    return total, x1


@torch.no_grad()
def reflow_pairs(v_model: Callable, x0: torch.Tensor, n_steps: int = 100, method: str = "heun") -> tuple[torch.Tensor, torch.Tensor]:
    r"""The coupling of one reflow step (Liu et al., 2023, section 2.3): noise :math:`x_0` and the
    end point :math:`x_1 = \Phi_1(x_0)` of the trained flow's ODE. A new model trained with
    :func:`cfm_loss` on these pairs (``x0=`` the noise) has straighter paths. Returns ``(x0, x1)``."""
    return x0, integrate(v_model, x0, n_steps, method=method)
