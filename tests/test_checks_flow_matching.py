"""The public checks of chapter 13 accept the right answers and reject the classic mistakes."""

import math

import pytest
import torch
from torch import nn

from gencourse import flow
from gencourse.grading import check
from gencourse.grading import flow_matching as fm


def _bt(t, x):
    return t.reshape(-1, *[1] * (x.ndim - 1))


def right_path(x0, x1, t):
    return flow.linear_path(x0, x1, t), flow.conditional_velocity(x0, x1)


def right_euler_step(v, x, t, t_next):
    return flow.euler_step(v, x, t, t_next)


def right_euler_sample(v, x0, n):
    return flow.integrate(v, x0, n)


def _sample_with(step):
    def sample(v, x0, n):
        x = x0
        for k in range(n):
            x = step(v, x, k / n, (k + 1) / n)
        return x
    return sample


def step_fixed_h(v, x, t, t_next):  # always 1/4 whatever the grid
    return x + 0.25 * v(x, torch.full((x.shape[0],), float(t), dtype=x.dtype))


def step_t_next(v, x, t, t_next):  # the length of the step taken as t_next
    return x + t_next * v(x, torch.full((x.shape[0],), float(t), dtype=x.dtype))


def step_end_velocity(v, x, t, t_next):  # the velocity at the end of the step
    return x + (t_next - t) * v(x, torch.full((x.shape[0],), float(t_next), dtype=x.dtype))


def step_float_t(v, x, t, t_next):  # t passed as a Python float
    return x + (t_next - t) * v(x, t)


def sample_reversed(v, x0, n):  # from data (t = 1) to noise
    x = x0
    for k in range(n, 0, -1):
        x = flow.euler_step(v, x, k / n, (k - 1) / n)
    return x


def right_two_point(x, t, a, b):
    # the library's Gaussian-mixture field with (almost) zero widths
    return flow.gmm_marginal_velocity(x, t, torch.stack([a, b]), 1e-6)


def two_point_no_division(x, t, a, b):
    return fm.reference_two_point(x, t, a, b) * (1 - t)


def two_point_wrong_variance(x, t, a, b):
    mu = torch.stack([a, b]).double()
    logits = -((x[:, None, :] - t * mu[None]) ** 2).sum(-1) / (2 * t**2)
    gamma = torch.softmax(logits, dim=1)
    return (gamma[..., None] * (mu[None] - x[:, None, :])).sum(1) / (1 - t)


def _no_t():
    net = nn.Sequential(nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight[:, 2] = 0.0  # ignores its time input
    return lambda: net


def test_right_answers_pass(capsys):
    assert check("flow_matching.path_and_target", right_path)
    assert check("flow_matching.euler", right_euler_step, right_euler_sample)
    assert check("flow_matching.euler", right_euler_step, _sample_with(right_euler_step))
    assert check("flow_matching.eps_to_velocity", flow.eps_to_velocity)
    assert check("flow_matching.two_point_velocity", right_two_point)
    assert check("flow_matching.two_point_velocity", fm.reference_two_point)
    assert check("flow_matching.couplings", 6.0, 6 - 4 * math.sqrt(2 / math.pi), "sign")
    assert check("flow_matching.velocity_net", lambda: nn.Sequential(nn.Linear(3, 16), nn.SiLU(), nn.Linear(16, 2)))
    assert capsys.readouterr().out.count("✔") == 8


@pytest.mark.parametrize(
    "qid, args, message",
    [
        ("flow_matching.path_and_target", (lambda x0, x1, t: (_bt(t, x0) * x0 + (1 - _bt(t, x0)) * x1, x1 - x0),), "time is reversed"),
        ("flow_matching.path_and_target", (lambda x0, x1, t: (flow.linear_path(x0, x1, t), x0 - x1),), "sign flipped"),
        ("flow_matching.path_and_target", (lambda x0, x1, t: (flow.linear_path(x0, x1, t), x1),), "x1 - x0"),
        ("flow_matching.path_and_target", (lambda x0, x1, t: flow.linear_path(x0, x1, t),), "tuple"),
        ("flow_matching.euler", (step_fixed_h, _sample_with(step_fixed_h)), "t_next - t"),
        ("flow_matching.euler", (step_t_next, _sample_with(step_t_next)), "t_next - t"),
        ("flow_matching.euler", (step_end_velocity, _sample_with(step_end_velocity)), "start of the step"),
        ("flow_matching.euler", (step_float_t, _sample_with(step_float_t)), "float tensor of shape"),
        ("flow_matching.euler", (right_euler_step, sample_reversed), "start from the noise"),
        ("flow_matching.eps_to_velocity", (lambda x, t, e: (x - e) / _bt(1 - t, x),), "divided by 1 - t"),
        ("flow_matching.eps_to_velocity", (lambda x, t, e: (e - x) / _bt(t, x),), "x1 - x0"),
        ("flow_matching.two_point_velocity", (two_point_no_division,), "1 - t"),
        ("flow_matching.two_point_velocity", (two_point_wrong_variance,), "posterior"),
        ("flow_matching.couplings", (6.0, 6.0, "sign"), "cost_sign"),
        ("flow_matching.couplings", (4.0, 6 - 4 * math.sqrt(2 / math.pi), "sign"), "cost_independent"),
        ("flow_matching.couplings", (6.0, 6 - 4 * math.sqrt(2 / math.pi), "independent"), "never cross"),
        ("flow_matching.couplings", (torch.tensor(6.0), 2.8, "sign"), "Python float"),
        ("flow_matching.velocity_net", (lambda: nn.Sequential(nn.Linear(3, 2), nn.Flatten(0)),), "(B, 2)"),
        ("flow_matching.velocity_net", (_no_t(),), "depend on t"),
    ],
)
def test_mistakes_are_named(qid, args, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, *args)


def test_ring_w1_separates_a_trained_flow_from_the_listed_mistakes():
    """The training exercise's measure: the exact field's samples pass, a flipped field fails."""
    import gencourse as gc

    r = gc.data.toy("ring")

    def exact(xt):
        x, t = xt[:, :2], xt[:, 2]
        return flow.gmm_marginal_velocity(x, t.clamp(max=0.999), r.means, r.stds, r.weights)

    assert fm.ring_w1(exact) < fm.W1_TARGET
    assert fm.ring_w1(lambda xt: -exact(xt), n=500) > 1.0  # the target's sign flipped
    with pytest.raises(AssertionError, match=r"\(B, 2\)"):
        fm.ring_w1(lambda xt: xt, n=10)
