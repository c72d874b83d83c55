"""Public checks for the exercises of chapter 13 (flow matching and latent diffusion).

Each check computes the reference itself (in float64) and names the classic mistake it sees: the
time reversed (:math:`t = 0` taken as the data, where the course's convention puts the noise),
the target :math:`x_1 - x_0` with its sign flipped, an Euler step with the wrong time increment
(a fixed :math:`1/n`, or :math:`t'` instead of :math:`t' - t`) or the velocity taken at the end of
the step, a sampler that runs from data to noise, a noise prediction converted with
:math:`1 - t` instead of :math:`t`, the two-point field without its :math:`1/(1 - t)` or with the
wrong variance in its weights.
"""

from __future__ import annotations

import math

from .checks import expect, expect_close, register

#: the W1 target of the training exercise (ring of 8 Gaussians, 2,000 samples, 50 Euler steps)
W1_TARGET = 0.15


def _pairs(seed: int, shape=(6, 3)):
    import torch

    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(*shape, generator=g, dtype=torch.float64)
    x1 = 2 + torch.randn(*shape, generator=g, dtype=torch.float64)
    t = torch.rand(shape[0], generator=g, dtype=torch.float64)
    return x0, x1, t


@register("flow_matching.path_and_target")
def _path_and_target(path_and_target):
    import torch

    x0, x1, t = _pairs(0)
    got = path_and_target(x0, x1, t)
    expect(isinstance(got, tuple) and len(got) == 2 and all(isinstance(v, torch.Tensor) for v in got),
           f"path_and_target must return a tuple (x_t, u) of two tensors, got {type(got).__name__}")
    x_t, u = got
    want_x = (1 - t[:, None]) * x0 + t[:, None] * x1
    expect(tuple(x_t.shape) == tuple(x0.shape), f"x_t must have the shape of x0 {tuple(x0.shape)}, got {tuple(x_t.shape)}")
    reversed_x = t[:, None] * x0 + (1 - t[:, None]) * x1
    expect(not torch.allclose(x_t.double(), reversed_x, atol=1e-6),
           "the time is reversed: t = 0 is the NOISE x0 and t = 1 the data x1, so x_t = (1 - t) x0 + t x1")
    expect_close(x_t, want_x, what="x_t", rtol=1e-6, atol=1e-9,
                 hint="x_t = (1 - t) x0 + t x1, with t of shape (B,) broadcast over each sample's entries (t[:, None])")
    expect(not torch.allclose(u.double(), x0 - x1, atol=1e-6),
           "the target has its sign flipped: the velocity from noise to data is x1 - x0")
    expect_close(u, x1 - x0, what="u", rtol=1e-6, atol=1e-9, hint="u = d x_t / dt = x1 - x0")
    # images: t must broadcast over (C, H, W)
    xi0, xi1 = torch.zeros(2, 1, 2, 2, dtype=torch.float64), torch.ones(2, 1, 2, 2, dtype=torch.float64)
    xi_t, _ = path_and_target(xi0, xi1, torch.tensor([0.25, 0.75], dtype=torch.float64))
    expect_close(xi_t, torch.tensor([0.25, 0.75], dtype=torch.float64)[:, None, None, None].expand(2, 1, 2, 2),
                 what="x_t for images (B, 1, 2, 2)", rtol=1e-6,
                 hint="reshape t to (B, 1, ..., 1) so that it works for points (B, D) and images (B, C, H, W)")


def _field(record=None):
    def v(x, t):
        import torch

        expect(isinstance(t, torch.Tensor) and t.shape == (x.shape[0],) and t.is_floating_point(),
               f"the velocity model must be called as v(x, t) with t a float tensor of shape (B,) = ({x.shape[0]},), "
               f"got {type(t).__name__ if not isinstance(t, torch.Tensor) else f'{tuple(t.shape)} {t.dtype}'}")
        if record is not None:
            record.append(float(t[0]))
        return (1 + t[:, None]) * x + 0.5  # depends on x and on t
    return v


@register("flow_matching.euler")
def _euler(euler_step, euler_sample):
    import torch

    x = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)
    calls: list = []
    got = euler_step(_field(calls), x, 0.2, 0.5)
    expect(isinstance(got, torch.Tensor) and got.shape == x.shape, "euler_step must return a tensor of x's shape")
    expect(calls == [0.2] or (len(calls) == 1 and abs(calls[0] - 0.2) < 1e-6),
           f"euler_step must evaluate v once, at the start of the step (x, t = 0.2); it evaluated v at t = {calls}")
    want = x + 0.3 * ((1 + 0.2) * x + 0.5)
    expect(not torch.allclose(got.double(), x + 0.5 * ((1 + 0.2) * x + 0.5), atol=1e-6),
           "the step uses t_next (0.5) as its length: the increment is t_next - t")
    expect_close(got, want, what="euler_step(v, x, 0.2, 0.5)", rtol=1e-6,
                 hint="x + (t_next - t) * v(x, t): the time increment is t_next - t, whatever the grid")
    back = euler_step(_field(), x, 0.5, 0.2)
    expect_close(back, x - 0.3 * ((1 + 0.5) * x + 0.5), what="euler_step(v, x, 0.5, 0.2) (backwards)", rtol=1e-6,
                 hint="a step backwards in time has a negative increment t_next - t")
    calls = []
    end = euler_sample(_field(calls), x, 4)
    expect(isinstance(end, torch.Tensor) and end.shape == x.shape, "euler_sample must return the end point, a tensor of x0's shape")
    expect(len(calls) == 4, f"euler_sample(v, x0, 4) must evaluate v 4 times (one per step), it did {len(calls)}")
    expect(all(abs(a - b) < 1e-6 for a, b in zip(calls, [0.0, 0.25, 0.5, 0.75])),
           f"euler_sample must start from the noise at t = 0 and step towards t = 1 (t = 0, 0.25, 0.5, 0.75); "
           f"it evaluated v at t = {[round(c, 4) for c in calls]}")
    ref = x.clone()
    for k in range(4):
        ref = ref + 0.25 * ((1 + k / 4) * ref + 0.5)
    expect_close(end, ref, what="euler_sample(v, x0, 4)", rtol=1e-6, hint="4 Euler steps on the grid 0, 1/4, 1/2, 3/4, 1")


@register("flow_matching.eps_to_velocity")
def _eps_to_velocity(eps_to_velocity):
    import torch

    x0, x1, t = _pairs(1)
    t = 0.1 + 0.8 * t
    x_t = (1 - t[:, None]) * x0 + t[:, None] * x1
    got = eps_to_velocity(x_t, t, x0)
    expect(isinstance(got, torch.Tensor) and got.shape == x0.shape, f"eps_to_velocity must return a tensor of shape {tuple(x0.shape)}")
    expect(not torch.allclose(got.double(), (x_t - x0) / (1 - t[:, None]), atol=1e-6),
           "divided by 1 - t: with t the weight of the DATA, x_hat = (x_t - (1 - t) eps) / t, so v = (x_t - eps) / t")
    expect_close(got, x1 - x0, what="eps_to_velocity(x_t, t, eps) with the true noise", rtol=1e-6, atol=1e-9,
                 hint="with the true noise, the velocity is x1 - x0; in general v = x_hat - eps = (x_t - eps) / t")


def reference_two_point(x, t: float, a, b):
    """The marginal field of the linear path from N(0, I) to (delta_a + delta_b) / 2, in float64."""
    import torch

    x, a, b = x.double(), a.double(), b.double()
    mu = torch.stack([a, b])  # (2, D)
    logits = -((x[:, None, :] - t * mu[None]) ** 2).sum(-1) / (2 * (1 - t) ** 2)
    gamma = torch.softmax(logits, dim=1)  # (N, 2)
    return (gamma[..., None] * (mu[None] - x[:, None, :])).sum(1) / (1 - t)


@register("flow_matching.two_point_velocity")
def _two_point(two_point_velocity):
    import torch

    g = torch.Generator().manual_seed(2)
    a, b = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64), torch.tensor([-1.0, 1.5, 0.0], dtype=torch.float64)
    for t in (0.1, 0.5, 0.8):
        x = 1.5 * torch.randn(7, 3, generator=g, dtype=torch.float64)
        got = two_point_velocity(x, t, a, b)
        expect(isinstance(got, torch.Tensor) and tuple(got.shape) == (7, 3),
               f"two_point_velocity must return a tensor (N, D) = (7, 3), got {tuple(getattr(got, 'shape', ())) or type(got).__name__}")
        expect_close(got, reference_two_point(x, t, a, b), what=f"two_point_velocity(x, {t}, a, b)", rtol=1e-5, atol=1e-8,
                     hint="given x1 = a, x_t ~ N(t a, (1 - t)^2 I) and E[x1 - x0 | x_t = x] = (a - x) / (1 - t); "
                          "weight a and b by their posterior probabilities")
    # far on a's side at late times the field points at a
    x = (0.9 * a)[None]
    expect_close(two_point_velocity(x, 0.9, a, b), (a - 0.9 * a)[None] / 0.1, what="the field at x = 0.9 a, t = 0.9", rtol=1e-4)


#: E||x1 - x0||^2 under the two couplings of question 5
COST_INDEPENDENT = 6.0
COST_SIGN = 6.0 - 4.0 * math.sqrt(2.0 / math.pi)


@register("flow_matching.couplings")
def _couplings(cost_independent, cost_sign, straight):
    for name, value in (("cost_independent", cost_independent), ("cost_sign", cost_sign)):
        expect(isinstance(value, (int, float)) and not isinstance(value, bool),
               f"{name} must be a Python float, got {type(value).__name__}")
    expect_close(cost_independent, COST_INDEPENDENT, what="cost_independent", rtol=1e-3,
                 hint="independent pairs: E||x1||^2 + E||x0||^2 (the cross term vanishes)")
    expect_close(cost_sign, COST_SIGN, what="cost_sign", rtol=1e-3,
                 hint="E(2 - |z|)^2 + E z_2^2 with z ~ N(0, 1): you need E|z| = sqrt(2 / pi)")
    expect(straight in ("independent", "sign"), f"straight must be 'independent' or 'sign', got {straight!r}")
    expect(straight == "sign", "which lines cross? With the sign coupling, a line keeps the sign of its first coordinate "
                               "from start to end, so lines to different points never cross")


@register("flow_matching.velocity_net")
def _velocity_net(make_velocity_net):
    import torch

    net = make_velocity_net()
    expect(isinstance(net, torch.nn.Module), f"make_velocity_net() must return an nn.Module, got {type(net).__name__}")
    xt = torch.randn(16, 3)
    with torch.no_grad():
        out = net(xt)
        expect(isinstance(out, torch.Tensor) and tuple(out.shape) == (16, 2),
               f"the network must map [x, t] (B, 3) to velocities (B, 2), got {tuple(getattr(out, 'shape', ()))}")
        other = net(torch.cat([xt[:, :2], torch.rand(16, 1)], 1))
    expect(float((out - other).abs().max()) > 0, "the network's output must depend on t, its last input (the field changes along the path)")


def ring_w1(net, *, n: int = 2000, n_steps: int = 50, seed: int = 0) -> float:
    """Exact W1 (POT) between ``n`` samples of the velocity network ``net`` (input ``[x, t]`` of
    shape ``(B, 3)``; ``n_steps`` Euler steps of this module's own loop, from N(0, I) at t = 0 to
    t = 1) and ``n`` points of the ring of eight Gaussians. ``net`` is only called (in the grader
    it stands for the student's network in another process)."""
    import torch

    from gencourse import data, transport

    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(n, 2, generator=g)
    with torch.no_grad():
        for k in range(n_steps):
            out = net(torch.cat([x, torch.full((n, 1), k / n_steps)], 1))
            expect(isinstance(out, torch.Tensor) and tuple(out.shape) == (n, 2),
                   f"the velocity network must return (B, 2) = ({n}, 2), got {tuple(getattr(out, 'shape', ())) or type(out).__name__}")
            x = x + out.float() / n_steps
    expect(bool(torch.isfinite(x).all()), "the samples are not finite: the velocity field diverges")
    return float(transport.wasserstein(x, data.toy("ring").sample(n, generator=g)))
