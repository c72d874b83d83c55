r"""Denoising diffusion: noise schedules, the forward process, the DDPM loss, ancestral sampling
(DDPM), DDIM and classifier-free guidance (chapter 12).

Nothing here is an ``nn.Module``: the schedules and samplers are separate from the noise
predictor :math:`\varepsilon_\theta`, which is any callable ``eps_model(x_t, t) -> eps`` (the
networks live in :mod:`gencourse.nn`). The sampling loops are short so that the chapter can write
them out and check them against these functions.

Indexing (as in the papers): arrays of length :math:`T + 1` with :math:`\beta_0 = 0`, so that
``beta[t]`` is :math:`\beta_t`, ``alpha_bar[t]`` is :math:`\bar\alpha_t = \prod_{s=1}^t (1 - \beta_s)`
and ``alpha_bar[0] == 1``; training draws :math:`t \in \{1, \dots, T\}`. Schedules are computed in
float64 and stored in float32.

>>> sched = linear_schedule(T=1000)
>>> sched.T, float(sched.beta[0]), round(float(sched.beta[1]), 6), round(float(sched.beta[1000]), 6)
(1000, 0.0, 0.0001, 0.02)
>>> float(sched.alpha_bar[0])
1.0

References: Sohl-Dickstein et al. (2015), *Deep unsupervised learning using nonequilibrium
thermodynamics*; Ho, Jain & Abbeel (2020), *Denoising diffusion probabilistic models* (DDPM:
eq. 4, 7, 11, Algorithms 1 and 2); Nichol & Dhariwal (2021), *Improved denoising diffusion
probabilistic models* (the cosine schedule, eq. 17); Song, Meng & Ermon (2021), *Denoising
diffusion implicit models* (DDIM: eq. 12, 16); Ho & Salimans (2021), *Classifier-free diffusion
guidance* (eq. 6, Algorithms 1 and 2); Salimans & Ho (2022), *Progressive distillation for fast
sampling of diffusion models* (the v-parameterisation, section 4 and appendix D).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import checks, distributed

__all__ = [
    "Schedule",
    "linear_schedule",
    "cosine_schedule",
    "extract",
    "snr",
    "q_step",
    "q_sample",
    "q_posterior",
    "predict_x0",
    "v_target",
    "eps_from_v",
    "EpsFromV",
    "sample_t",
    "TIME_DISTRIBUTIONS",
    "ddpm_loss",
    "drop_labels",
    "ddpm_sample_step",
    "ddpm_sample",
    "ddim_timesteps",
    "ddim_step",
    "ddim_sample",
    "guided_eps",
    "guided_model",
]


# ----------------------------------------------------------------------------------------------
# schedules
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    r"""A noise schedule :math:`\beta_1, \dots, \beta_T` and the quantities derived from it.

    Every field is a float32 tensor of shape ``(T + 1,)`` indexed by :math:`t = 0..T`
    (computed in float64 by :meth:`from_beta`):

    * ``beta``: :math:`\beta_t`, with :math:`\beta_0 = 0`;
    * ``alpha``: :math:`\alpha_t = 1 - \beta_t` (:math:`\alpha_0 = 1`);
    * ``alpha_bar``: :math:`\bar\alpha_t = \prod_{s=1}^{t} \alpha_s` (:math:`\bar\alpha_0 = 1`);
    * ``beta_tilde``: the variance of the forward-process posterior
      :math:`q(x_{t-1} \mid x_t, x_0)` (Ho et al., eq. 7),
      :math:`\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t` for
      :math:`t \ge 1` (so :math:`\tilde\beta_1 = 0`), and :math:`\tilde\beta_0 = 0`.
    """

    beta: torch.Tensor
    alpha: torch.Tensor
    alpha_bar: torch.Tensor
    beta_tilde: torch.Tensor

    @property
    def T(self) -> int:
        """The number of diffusion steps :math:`T`."""
        return self.beta.shape[0] - 1

    @classmethod
    def from_beta(cls, beta) -> Schedule:
        r"""Build a schedule from :math:`\beta_0 = 0, \beta_1, \dots, \beta_T` (shape ``(T + 1,)``),
        each :math:`\beta_t \in (0, 1)` for :math:`t \ge 1`."""
        beta = torch.as_tensor(beta, dtype=torch.float64).detach().cpu()
        if beta.ndim != 1 or beta.shape[0] < 2:
            raise ValueError(f"beta must have shape (T + 1,) with T >= 1, got {tuple(beta.shape)}")
        if beta[0] != 0:
            raise ValueError(f"beta[0] must be 0 (arrays are indexed by t = 0..T), got {beta[0].item():.6g}")
        b = beta[1:]
        if not bool(((b > 0) & (b < 1)).all()):
            raise ValueError(
                f"beta[1:] must lie in (0, 1), got min {b.min().item():.6g} and max {b.max().item():.6g}"
            )
        alpha = 1.0 - beta  # alpha_t = 1 - beta_t
        alpha_bar = torch.cumprod(alpha, 0)  # \bar\alpha_t = prod_{s <= t} alpha_s
        beta_tilde = torch.zeros_like(beta)
        # \tilde\beta_t = (1 - \bar\alpha_{t-1}) / (1 - \bar\alpha_t) * beta_t
        beta_tilde[1:] = (1.0 - alpha_bar[:-1]) / (1.0 - alpha_bar[1:]) * beta[1:]
        f32 = lambda a: a.to(torch.float32)  # noqa: E731
        return cls(f32(beta), f32(alpha), f32(alpha_bar), f32(beta_tilde))

    def to(self, device) -> Schedule:
        """The same schedule with every tensor on ``device``."""
        return Schedule(*(getattr(self, f).to(device) for f in ("beta", "alpha", "alpha_bar", "beta_tilde")))


def _check_T(T) -> int:
    return checks.positive_int(T, "T")


def linear_schedule(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> Schedule:
    r"""The linear schedule of Ho et al. (2020, section 4): :math:`\beta_t` evenly spaced from
    :math:`\beta_1 = 10^{-4}` to :math:`\beta_T = 0.02`, :math:`T = 1000`.

    .. math:: \beta_t = \beta_1 + \frac{t - 1}{T - 1}(\beta_T - \beta_1), \qquad t = 1..T.
    """
    T = _check_T(T)
    if not (0 < beta_1 < 1 and 0 < beta_T < 1):
        raise ValueError(f"beta_1 and beta_T must lie in (0, 1), got {beta_1!r} and {beta_T!r}")
    beta = torch.zeros(T + 1, dtype=torch.float64)
    beta[1:] = torch.linspace(beta_1, beta_T, T, dtype=torch.float64) if T > 1 else beta_1
    return Schedule.from_beta(beta)


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    r"""The cosine schedule of Nichol & Dhariwal (2021, eq. 17):

    .. math::
        \bar\alpha_t = \frac{f(t)}{f(0)}, \quad f(t) = \cos^2\Big(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\Big),
        \qquad \beta_t = \min\Big(1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}},\ \beta_{\max}\Big),

    with :math:`s = 0.008` and :math:`\beta_{\max} = 0.999` (the clip avoids :math:`\beta_T = 1`);
    :math:`\bar\alpha_t` is then recomputed from the clipped :math:`\beta_t`.
    """
    T = _check_T(T)
    if not s >= 0:
        raise ValueError(f"s must be >= 0, got {s!r}")
    if not 0 < max_beta < 1:
        raise ValueError(f"max_beta must lie in (0, 1), got {max_beta!r}")
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    beta = torch.zeros(T + 1, dtype=torch.float64)
    beta[1:] = (1.0 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)
    return Schedule.from_beta(beta)


def snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    r"""Signal-to-noise ratio of :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon`:
    :math:`\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)` (infinite at :math:`t = 0`)."""
    return alpha_bar / (1.0 - alpha_bar)


# ----------------------------------------------------------------------------------------------
# input checks and the broadcast helper
# ----------------------------------------------------------------------------------------------


def _check_table(a, name: str) -> torch.Tensor:
    if not torch.is_tensor(a) or a.ndim != 1 or a.shape[0] < 2:
        got = tuple(a.shape) if torch.is_tensor(a) else type(a).__name__
        raise ValueError(f"{name} must be a 1-D tensor of shape (T + 1,) indexed by t = 0..T, got {got}")
    return a


def _as_t(t, B: int, T: int, device, name: str = "t", low: int = 0) -> torch.Tensor:
    """``t`` (an int, or an integer tensor of shape ``()`` or ``(B,)``) as a long tensor ``(B,)``."""
    if isinstance(t, bool):
        raise ValueError(f"{name} must be an int or an integer tensor, got a bool")
    if isinstance(t, numbers.Integral):
        t = torch.full((B,), int(t), dtype=torch.long, device=device)
    elif torch.is_tensor(t):
        if t.is_floating_point() or t.is_complex():
            raise ValueError(f"{name} must hold integer time steps, got dtype {t.dtype}")
        if t.ndim == 0:
            t = t.expand(B)
        if t.shape != (B,):
            raise ValueError(f"{name} must be an int or have shape ({B},) (one step per sample), got {tuple(t.shape)}")
        t = t.to(device=device, dtype=torch.long)
    else:
        raise ValueError(f"{name} must be an int or an integer tensor, got {type(t).__name__}")
    if t.numel() and (int(t.min()) < low or int(t.max()) > T):
        raise ValueError(f"{name} must lie in {low}..{T}, got values from {int(t.min())} to {int(t.max())}")
    return t


def extract(a: torch.Tensor, t, x: torch.Tensor) -> torch.Tensor:
    r"""Gather ``a[t]`` per sample and shape it to broadcast against ``x``: ``(B, 1, ..., 1)``.

    For images ``x`` of shape ``(B, C, H, W)`` this returns ``(B, 1, 1, 1)``; for points
    ``(B, D)``, ``(B, 1)``. ``a`` is a table of shape ``(T + 1,)`` (e.g. ``alpha_bar``), ``t`` an
    int or an integer tensor ``(B,)`` in ``0..T``. The result has ``x``'s dtype and device.
    """
    _check_table(a, "a")
    if not torch.is_tensor(x) or x.ndim < 1:
        raise ValueError(f"x must be a tensor with a batch dimension, got {type(x).__name__}")
    B = x.shape[0]
    t = _as_t(t, B, a.shape[0] - 1, a.device)
    return a[t].to(device=x.device, dtype=x.dtype).reshape(B, *([1] * (x.ndim - 1)))


def _check_like(name: str, value: torch.Tensor, ref: torch.Tensor, ref_name: str) -> None:
    if not torch.is_tensor(value) or value.shape != ref.shape:
        got = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
        raise ValueError(f"{name} must have the shape of {ref_name}, {tuple(ref.shape)}, got {got}")


def _randn(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``device`` (so that a
    CPU generator gives the same numbers whatever the device of the model)."""
    gen_device = generator.device if generator is not None else device
    return distributed.randn(shape, generator=generator, device=gen_device).to(device)


# ----------------------------------------------------------------------------------------------
# the forward process
# ----------------------------------------------------------------------------------------------


def q_step(x_prev: torch.Tensor, t, eps: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    r"""One step of the forward process, a sample of :math:`q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)`:

    .. math:: x_t = \sqrt{1 - \beta_t}\; x_{t-1} + \sqrt{\beta_t}\; \varepsilon.

    Args:
        x_prev: :math:`x_{t-1}`, shape ``(B, ...)``.
        t: int or integer tensor ``(B,)`` in ``1..T``.
        eps: :math:`\varepsilon \sim \mathcal N(0, I)`, shape of ``x_prev``.
        beta: the schedule's ``beta``, shape ``(T + 1,)``.
    """
    _check_table(beta, "beta")
    _check_like("eps", eps, x_prev, "x_prev")
    t = _as_t(t, x_prev.shape[0], beta.shape[0] - 1, beta.device, low=1)
    b = extract(beta, t, x_prev)
    return (1.0 - b).sqrt() * x_prev + b.sqrt() * eps


def q_sample(x0: torch.Tensor, t, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    r"""A sample of :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1 - \bar\alpha_t) I)`
    (Ho et al., eq. 4), in one step instead of :math:`t` applications of :func:`q_step`:

    .. math:: x_t = \sqrt{\bar\alpha_t}\; x_0 + \sqrt{1 - \bar\alpha_t}\; \varepsilon.

    Args:
        x0: clean data :math:`x_0`, shape ``(B, ...)`` (e.g. ``(B, 1, 28, 28)`` in :math:`[-1, 1]`).
        t: int or integer tensor ``(B,)`` in ``0..T`` (:math:`t = 0` returns ``x0``).
        eps: :math:`\varepsilon \sim \mathcal N(0, I)`, shape of ``x0``.
        alpha_bar: the schedule's ``alpha_bar``, shape ``(T + 1,)``.

    Returns:
        :math:`x_t`, shape of ``x0``.
    """
    _check_table(alpha_bar, "alpha_bar")
    _check_like("eps", eps, x0, "x0")
    a_bar = extract(alpha_bar, t, x0)  # (B, 1, ..., 1)
    return a_bar.sqrt() * x0 + (1.0 - a_bar).sqrt() * eps


def q_posterior(x0: torch.Tensor, x_t: torch.Tensor, t, sched: Schedule) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and variance of the forward-process posterior (Ho et al., eq. 6–7)

    .. math::
        q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I), \quad
        \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t}\, x_0
        + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\, x_t, \quad
        \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t.

    Args:
        x0, x_t: shape ``(B, ...)``.
        t: int or integer tensor ``(B,)`` in ``1..T``.
        sched: a :class:`Schedule`.

    Returns:
        ``(mean, var)``: the mean of the shape of ``x_t``, the variance ``(B, 1, ..., 1)``.
    """
    _check_like("x0", x0, x_t, "x_t")
    t = _as_t(t, x_t.shape[0], sched.T, sched.beta.device, low=1)
    a_bar, a_bar_prev = extract(sched.alpha_bar, t, x_t), extract(sched.alpha_bar, t - 1, x_t)
    beta, alpha = extract(sched.beta, t, x_t), extract(sched.alpha, t, x_t)
    mean = (a_bar_prev.sqrt() * beta * x0 + alpha.sqrt() * (1.0 - a_bar_prev) * x_t) / (1.0 - a_bar)
    return mean, extract(sched.beta_tilde, t, x_t)


def predict_x0(x_t: torch.Tensor, t, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    r"""Invert :func:`q_sample` for :math:`x_0` given the noise (or a prediction of it):

    .. math:: \hat x_0 = \frac{x_t - \sqrt{1 - \bar\alpha_t}\;\hat\varepsilon}{\sqrt{\bar\alpha_t}}.

    ``t`` in ``0..T``; shapes as in :func:`q_sample`.
    """
    _check_table(alpha_bar, "alpha_bar")
    _check_like("eps", eps, x_t, "x_t")
    a_bar = extract(alpha_bar, t, x_t)
    return (x_t - (1.0 - a_bar).sqrt() * eps) / a_bar.sqrt()


def v_target(x0: torch.Tensor, t, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    r"""The velocity of Salimans & Ho (2022): :math:`v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1 - \bar\alpha_t}\,x_0`,
    the target of a v-prediction network. With :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon`,
    :math:`(x_t, v)` is a rotation of :math:`(x_0, \varepsilon)`. Shapes as in :func:`q_sample`."""
    _check_table(alpha_bar, "alpha_bar")
    _check_like("eps", eps, x0, "x0")
    a_bar = extract(alpha_bar, t, x0)
    return a_bar.sqrt() * eps - (1.0 - a_bar).sqrt() * x0


def eps_from_v(x_t: torch.Tensor, t, v: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    r"""The noise that a velocity (prediction) implies: :math:`\hat\varepsilon = \sqrt{\bar\alpha_t}\,\hat v + \sqrt{1 - \bar\alpha_t}\,x_t`
    (invert the rotation of :func:`v_target`), so that every sampler written for an
    :math:`\varepsilon`-network runs a v-network unchanged. Shapes as in :func:`q_sample`."""
    _check_table(alpha_bar, "alpha_bar")
    _check_like("v", v, x_t, "x_t")
    a_bar = extract(alpha_bar, t, x_t)
    return a_bar.sqrt() * v + (1.0 - a_bar).sqrt() * x_t


class EpsFromV(torch.nn.Module):
    r"""Wrap a v-prediction network ``v_model(x_t, t[, y])`` as the :math:`\varepsilon`-network
    ``(x_t, t[, y]) -> eps_from_v(x_t, t, v_model(x_t, t[, y]), alpha_bar)`` that the samplers and
    :func:`guided_model` take. Attributes of the wrapped network (``null_label``, ``in_channels``,
    ``image_size``, ...) are read through. Guidance commutes with the wrap: :math:`\hat\varepsilon`
    is affine in :math:`\hat v` with the same :math:`x_t`, so guiding :math:`v` or :math:`\varepsilon`
    gives the same samples."""

    def __init__(self, v_model: torch.nn.Module, alpha_bar: torch.Tensor):
        super().__init__()
        self.v_model = v_model
        self.register_buffer("alpha_bar", _check_table(alpha_bar, "alpha_bar").detach().clone())

    def forward(self, x_t: torch.Tensor, t, *args) -> torch.Tensor:
        return eps_from_v(x_t, t, self.v_model(x_t, t, *args), self.alpha_bar.to(x_t.device))

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("v_model"), name)


# ----------------------------------------------------------------------------------------------
# training: Algorithm 1
# ----------------------------------------------------------------------------------------------


#: The distributions of the training steps of :func:`sample_t`.
TIME_DISTRIBUTIONS = ("uniform", "logit_normal")


def sample_t(B: int, T: int, generator: torch.Generator | None = None, device=None, *, dist: str = "uniform",
             alpha_bar: torch.Tensor | None = None) -> torch.Tensor:
    r"""``B`` training steps in :math:`\{1, \dots, T\}`, a long tensor ``(B,)``.

    ``dist="uniform"``: :math:`t \sim \mathcal U\{1, \dots, T\}` (Ho et al., Algorithm 1).
    ``dist="logit_normal"`` (needs the schedule's ``alpha_bar``): chapter 13's logit-normal times
    carried over to the steps. Each step lies on the linear noise-to-data path at the time
    :math:`s_t = \sqrt{\bar\alpha_t} / (\sqrt{\bar\alpha_t} + \sqrt{1 - \bar\alpha_t})`
    (:func:`gencourse.flow.diffusion_time`); draw :math:`s = \sigma(n)`, :math:`n \sim \mathcal N(0, 1)`,
    and take the step whose :math:`s_t` is nearest. Steps where the image is half decided are drawn
    more often, the nearly clean and the nearly pure-noise ones less (Esser et al., 2024, compare
    the time distributions of both parameterisations this way).
    """
    T = _check_T(T)
    checks.one_of(dist, TIME_DISTRIBUTIONS, "dist")
    gen_device = generator.device if generator is not None else (device or "cpu")
    if dist == "uniform":
        return distributed.randint(1, T + 1, (B,), generator=generator, device=gen_device).to(device or gen_device)
    if alpha_bar is None:
        raise ValueError("dist='logit_normal' needs the schedule's alpha_bar (T + 1,)")
    _check_table(alpha_bar, "alpha_bar")
    if alpha_bar.shape[0] != T + 1:
        raise ValueError(f"alpha_bar must have T + 1 = {T + 1} entries, got {alpha_bar.shape[0]}")
    from .flow import diffusion_time

    s_steps = diffusion_time(alpha_bar.detach().double())[1:].to(gen_device)  # s of t = 1..T, decreasing
    s = torch.sigmoid(distributed.randn((B,), generator=generator, device=gen_device).double())
    t = (s_steps[None, :] - s[:, None]).abs().argmin(dim=1) + 1
    return t.to(device or gen_device)


def ddpm_loss(
    eps_model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    alpha_bar: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    prediction: str = "eps",
    time_dist: str = "uniform",
) -> torch.Tensor:
    r"""The simplified DDPM objective of Ho et al. (eq. 14, Algorithm 1), :math:`\varepsilon`-prediction:

    .. math::
        L_\text{simple}(\theta) = \mathbb E_{x_0, t, \varepsilon}\Big[\frac1D\big\|\varepsilon
        - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon,\ t\big)\big\|^2\Big],
        \quad t \sim \mathcal U\{1..T\},\ \varepsilon \sim \mathcal N(0, I).

    Normalisation: the mean over the batch **and** the :math:`D` entries of each sample (a
    per-pixel mean squared error, ``F.mse_loss``); Ho et al. state it per sample, which is
    :math:`D` times this value and has the same minimiser.

    Args:
        eps_model: :math:`\varepsilon_\theta`, called as ``eps_model(x_t, t)`` or, when ``y`` is
            given, ``eps_model(x_t, t, y)``; ``t`` is a long tensor ``(B,)``.
        x0: data, shape ``(B, ...)``.
        alpha_bar: the schedule's ``alpha_bar``, shape ``(T + 1,)``.
        y: optional labels ``(B,)`` for a conditional model.
        t: optional time steps ``(B,)`` in ``1..T`` (default: drawn uniformly with ``generator``).
        eps: optional noise of the shape of ``x0`` (default: drawn with ``generator``).
        prediction: ``"eps"`` (the network predicts :math:`\varepsilon`, as above) or ``"v"``
            (it predicts :func:`v_target`, :math:`\|v - v_\theta(x_t, t)\|^2`, Salimans & Ho, 2022).
            In terms of the implied noise (:func:`eps_from_v`) the v-loss is the
            :math:`\varepsilon`-loss weighted by :math:`1/\bar\alpha_t`: more weight on the noisy
            steps, where the digit's shape is decided. Same random numbers in the same order.
        time_dist: how :math:`t` is drawn when not given: ``"uniform"`` (as above) or
            ``"logit_normal"`` (:func:`sample_t`).

    Returns:
        the scalar loss.
    """
    if prediction not in ("eps", "v"):
        raise ValueError(f"prediction must be 'eps' or 'v', got {prediction!r}")
    _check_table(alpha_bar, "alpha_bar")
    B = x0.shape[0]
    T = alpha_bar.shape[0] - 1
    t = sample_t(B, T, generator, x0.device, dist=time_dist, alpha_bar=alpha_bar) if t is None else _as_t(t, B, T, x0.device, low=1)
    eps = _randn(x0.shape, generator, x0.device) if eps is None else eps
    _check_like("eps", eps, x0, "x0")
    x_t = q_sample(x0, t, eps, alpha_bar)
    eps_hat = eps_model(x_t, t) if y is None else eps_model(x_t, t, y)
    if not torch.is_tensor(eps_hat) or eps_hat.shape != x0.shape:
        got = tuple(eps_hat.shape) if torch.is_tensor(eps_hat) else type(eps_hat).__name__
        raise ValueError(f"eps_model must return a tensor of the shape of x0, {tuple(x0.shape)}, got {got}")
    return F.mse_loss(eps_hat, eps if prediction == "eps" else v_target(x0, t, eps, alpha_bar))


def drop_labels(
    y: torch.Tensor, p_uncond: float, null_label: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Label dropout for classifier-free guidance (Ho & Salimans, Algorithm 1): replace each label
    by the null label :math:`\varnothing` (``null_label``) with probability ``p_uncond``, so that
    one network learns both :math:`\varepsilon_\theta(x_t, t, y)` and :math:`\varepsilon_\theta(x_t, t, \varnothing)`.

    Args:
        y: long tensor ``(B,)``; p_uncond: in ``[0, 1]``; null_label: the index of :math:`\varnothing`.

    Returns:
        a new long tensor ``(B,)``.
    """
    if not torch.is_tensor(y) or y.ndim != 1 or y.is_floating_point():
        raise ValueError(f"y must be an integer tensor of shape (B,), got {tuple(y.shape) if torch.is_tensor(y) else type(y).__name__}")
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond!r}")
    gen_device = generator.device if generator is not None else y.device
    drop = (distributed.rand((y.shape[0],), generator=generator, device=gen_device) < p_uncond).to(y.device)
    return torch.where(drop, torch.full_like(y, null_label), y)


# ----------------------------------------------------------------------------------------------
# sampling: Algorithm 2 (ancestral, DDPM)
# ----------------------------------------------------------------------------------------------


def ddpm_sample_step(
    x_t: torch.Tensor,
    t,
    eps_hat: torch.Tensor,
    beta: torch.Tensor,
    alpha_bar: torch.Tensor,
    z: torch.Tensor,
    sigma2: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""One step of ancestral sampling, Algorithm 2 of Ho et al. (line 4) (the training step is
    :func:`gencourse.train.ddpm_train_step`):

    .. math::
        x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\,
        \hat\varepsilon\Big) + \sigma_t z, \qquad \sigma_t^2 = \beta_t,

    with **no noise at the last step** (:math:`z = 0` when :math:`t = 1`), so that the chain
    ends on the mean. The mean equals :math:`\tilde\mu_t(\hat x_0, x_t)` of :func:`q_posterior`
    with :math:`\hat x_0` from :func:`predict_x0`.

    Args:
        x_t: shape ``(B, ...)``.
        t: int or integer tensor ``(B,)`` in ``1..T``.
        eps_hat: :math:`\hat\varepsilon = \varepsilon_\theta(x_t, t)`, shape of ``x_t``.
        beta, alpha_bar: the schedule's tables, shape ``(T + 1,)``; :math:`\alpha_t = 1 - \beta_t`.
        z: standard normal noise of the shape of ``x_t`` (ignored where :math:`t = 1`).
        sigma2: the variances :math:`\sigma_t^2` as a table ``(T + 1,)``; default ``beta``
            (Ho et al. found :math:`\sigma_t^2 = \tilde\beta_t`, ``sched.beta_tilde``, similar).

    Returns:
        :math:`x_{t-1}`, shape of ``x_t``.
    """
    _check_table(beta, "beta")
    _check_table(alpha_bar, "alpha_bar")
    _check_like("eps_hat", eps_hat, x_t, "x_t")
    _check_like("z", z, x_t, "x_t")
    t = _as_t(t, x_t.shape[0], beta.shape[0] - 1, beta.device, low=1)
    b, a_bar = extract(beta, t, x_t), extract(alpha_bar, t, x_t)
    sigma = extract(beta if sigma2 is None else _check_table(sigma2, "sigma2"), t, x_t).sqrt()
    last = (t == 1).to(x_t.device).reshape(-1, *([1] * (x_t.ndim - 1)))  # z = 0 at the last step (Algorithm 2, line 3)
    sigma = sigma.masked_fill(last, 0.0)
    mean = (x_t - b / (1.0 - a_bar).sqrt() * eps_hat) / (1.0 - b).sqrt()
    return mean + sigma * z


@torch.no_grad()
def ddpm_sample(
    eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape: Sequence[int],
    sched: Schedule,
    *,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    device=None,
    record: Sequence[int] = (),
) -> torch.Tensor | tuple[torch.Tensor, dict]:
    r"""Ancestral sampling, Algorithm 2 of Ho et al.: :math:`x_T \sim \mathcal N(0, I)`, then
    :func:`ddpm_sample_step` for :math:`t = T, \dots, 1` (:math:`T` network evaluations).

    Noise is drawn in this order: :math:`x_T` (unless given), then one :math:`z` for each
    :math:`t = T, \dots, 2` (none at :math:`t = 1`).

    Args:
        eps_model: ``eps_model(x_t, t) -> eps_hat`` with ``t`` a long tensor ``(B,)``.
        shape: ``(B, ...)`` of the samples.
        sched: the :class:`Schedule` the model was trained with.
        generator: for the noise; x_T: optional starting noise; device: default ``x_T``'s or CPU.
        record: time steps at which to keep :math:`(x_t, \hat x_0)` (e.g. ``(1000, 500, 100)``).

    Returns:
        :math:`x_0`, or ``(x_0, {t: (x_t, x0_hat)})`` when ``record`` is not empty.
    """
    device = torch.device(device) if device is not None else (x_T.device if x_T is not None else torch.device("cpu"))
    sched = sched.to(device)
    x = _randn(tuple(shape), generator, device) if x_T is None else x_T.to(device)
    chain = {}
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=device)
        eps_hat = eps_model(x, t_batch)
        if t in record:
            chain[t] = (x.cpu(), predict_x0(x, t, eps_hat, sched.alpha_bar).cpu())
        z = _randn(x.shape, generator, device) if t > 1 else torch.zeros_like(x)
        x = ddpm_sample_step(x, t, eps_hat, sched.beta, sched.alpha_bar, z)
    return (x, chain) if record else x


# ----------------------------------------------------------------------------------------------
# DDIM
# ----------------------------------------------------------------------------------------------


def ddim_timesteps(T: int, n_steps: int) -> torch.Tensor:
    r"""The sub-sequence :math:`0 = \tau_0 < \tau_1 < \dots < \tau_S = T` of DDIM (Song et al.,
    section 4.2, "linear" spacing): :math:`\tau_i = \operatorname{round}(iT/S)`. A long tensor
    ``(S + 1,)``; sampling walks it backwards, :math:`\tau_S \to \tau_{S-1} \to \dots \to \tau_0 = 0`."""
    T, S = _check_T(T), _check_T(n_steps)
    if S > T:
        raise ValueError(f"n_steps must be at most T = {T}, got {S}")
    tau = torch.round(torch.linspace(0, T, S + 1, dtype=torch.float64)).long()
    return tau


def ddim_step(
    x_t: torch.Tensor,
    t,
    t_prev,
    eps_hat: torch.Tensor,
    alpha_bar: torch.Tensor,
    eta: float = 0.0,
    z: torch.Tensor | None = None,
    clip_x0: float | None = None,
) -> torch.Tensor:
    r"""One DDIM step from :math:`t` to :math:`s = t_\text{prev} < t` (Song et al., eq. 12 and 16):

    .. math::
        \hat x_0 &= \frac{x_t - \sqrt{1 - \bar\alpha_t}\,\hat\varepsilon}{\sqrt{\bar\alpha_t}}, \qquad
        \sigma = \eta \sqrt{\frac{1 - \bar\alpha_s}{1 - \bar\alpha_t}}\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_s}},\\
        x_s &= \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\;\hat\varepsilon + \sigma z.

    With :math:`\eta = 0` the step is deterministic; with :math:`\eta = 1` and :math:`s = t - 1`
    it is the DDPM step with :math:`\sigma_t^2 = \tilde\beta_t`. At :math:`s = 0`
    (:math:`\bar\alpha_0 = 1`) it returns :math:`\hat x_0`.

    Args:
        x_t: shape ``(B, ...)``; t: int or tensor ``(B,)`` in ``1..T``; t_prev: in ``0..t-1``.
        eps_hat: :math:`\varepsilon_\theta(x_t, t)`, shape of ``x_t``.
        alpha_bar: shape ``(T + 1,)``.
        eta: :math:`\eta \ge 0`; z: noise of the shape of ``x_t``, required when ``eta > 0``.
        clip_x0: if given, clamp :math:`\hat x_0` to ``[-clip_x0, clip_x0]`` and recompute
            :math:`\hat\varepsilon` from it (a common trick for few-step sampling of data in
            :math:`[-1, 1]`; off by default, as in the paper).

    Returns:
        :math:`x_s`, shape of ``x_t``.
    """
    _check_table(alpha_bar, "alpha_bar")
    _check_like("eps_hat", eps_hat, x_t, "x_t")
    T = alpha_bar.shape[0] - 1
    B = x_t.shape[0]
    t = _as_t(t, B, T, alpha_bar.device, low=1)
    s = _as_t(t_prev, B, T, alpha_bar.device, name="t_prev")
    if bool((s >= t).any()):
        raise ValueError("t_prev must be smaller than t for every sample")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta!r}")
    a_t, a_s = extract(alpha_bar, t, x_t), extract(alpha_bar, s, x_t)
    x0_hat = (x_t - (1.0 - a_t).sqrt() * eps_hat) / a_t.sqrt()
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
        eps_hat = (x_t - a_t.sqrt() * x0_hat) / (1.0 - a_t).sqrt()
    sigma = eta * ((1.0 - a_s) / (1.0 - a_t) * (1.0 - a_t / a_s)).clamp(min=0).sqrt()
    x_s = a_s.sqrt() * x0_hat + (1.0 - a_s - sigma**2).clamp(min=0).sqrt() * eps_hat
    if eta > 0:
        if z is None:
            raise ValueError("z (standard normal noise of the shape of x_t) is required when eta > 0")
        _check_like("z", z, x_t, "x_t")
        x_s = x_s + sigma * z
    return x_s


@torch.no_grad()
def ddim_sample(
    eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape: Sequence[int],
    alpha_bar: torch.Tensor,
    n_steps: int,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    device=None,
    clip_x0: float | None = None,
    record: Sequence[int] = (),
) -> torch.Tensor | tuple[torch.Tensor, dict]:
    r"""DDIM sampling (Song et al., 2021) along :func:`ddim_timesteps`: ``n_steps`` network
    evaluations instead of :math:`T`; deterministic given :math:`x_T` when ``eta == 0``.

    Noise: :math:`x_T` (unless given), then, when ``eta > 0``, one :math:`z` per step.
    Arguments as in :func:`ddpm_sample` and :func:`ddim_step`; ``record`` keeps
    :math:`(x_t, \hat x_0)` at those :math:`t` of the sub-sequence.
    """
    device = torch.device(device) if device is not None else (x_T.device if x_T is not None else torch.device("cpu"))
    alpha_bar = _check_table(alpha_bar, "alpha_bar").to(device)
    tau = ddim_timesteps(alpha_bar.shape[0] - 1, n_steps).tolist()
    x = _randn(tuple(shape), generator, device) if x_T is None else x_T.to(device)
    chain = {}
    for t, s in zip(tau[:0:-1], tau[-2::-1]):
        eps_hat = eps_model(x, torch.full((x.shape[0],), t, dtype=torch.long, device=device))
        if t in record:
            chain[t] = (x.cpu(), predict_x0(x, t, eps_hat, alpha_bar).cpu())
        z = _randn(x.shape, generator, device) if eta > 0 else None
        x = ddim_step(x, t, s, eps_hat, alpha_bar, eta=eta, z=z, clip_x0=clip_x0)
    return (x, chain) if record else x


# ----------------------------------------------------------------------------------------------
# classifier-free guidance
# ----------------------------------------------------------------------------------------------


def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    r"""Classifier-free guidance (Ho & Salimans, eq. 6):

    .. math:: \tilde\varepsilon = (1 + w)\,\varepsilon_\theta(x_t, t, y) - w\,\varepsilon_\theta(x_t, t, \varnothing).

    :math:`w = 0` is the conditional model, :math:`w = -1` the unconditional one, :math:`w > 0`
    pushes samples towards what makes :math:`y` likely (less diversity, more fidelity).
    """
    _check_like("eps_uncond", eps_uncond, eps_cond, "eps_cond")
    return (1.0 + w) * eps_cond - w * eps_uncond


def guided_model(
    eps_model: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    w: float,
    null_label: int,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""Wrap a conditional ``eps_model(x_t, t, y)`` into the guided ``(x_t, t) -> eps`` of
    :func:`guided_eps`, for the samplers. The conditional and unconditional passes share one
    batch of size ``2B``; with ``w == 0`` only the conditional pass runs.

    Args:
        y: long tensor ``(B,)`` of labels (fixed for the whole chain); null_label: :math:`\varnothing`.
    """
    if not torch.is_tensor(y) or y.ndim != 1:
        raise ValueError(f"y must be a long tensor of shape (B,), got {type(y).__name__}")

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x_t.shape[0] != y.shape[0]:
            raise ValueError(f"x_t has batch size {x_t.shape[0]} but y has {y.shape[0]} labels")
        labels = y.to(x_t.device)
        if w == 0:
            return eps_model(x_t, t, labels)
        null = torch.full_like(labels, null_label)
        eps_cond, eps_uncond = eps_model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
        return guided_eps(eps_cond, eps_uncond, w)

    return model
