"""gencourse.transport against POT, scipy (linprog, linear_sum_assignment, sqrtm) and closed forms."""

import math

import numpy as np
import ot
import pytest
import scipy.linalg
import scipy.optimize
import scipy.stats
import torch
from torch import nn

from gencourse import transport as tr

D64 = torch.float64


def _clouds(seed, n=7, m=9):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g, dtype=D64), torch.randn(m, 2, generator=g, dtype=D64) + 1.0


@pytest.mark.parametrize("n, m", [(50, 80), (7, 3), (1, 5)])
@pytest.mark.parametrize("p", [1, 2])
def test_wasserstein_1d_with_unequal_sizes_matches_pot_and_scipy(n, m, p):
    rng = np.random.default_rng(n + m + p)
    x, y = rng.normal(size=n), rng.exponential(size=m)
    ours = tr.wasserstein_1d_quantile(torch.from_numpy(x), torch.from_numpy(y), p=p).item()
    assert ours == pytest.approx(ot.wasserstein_1d(x, y, p=p) ** (1 / p), rel=1e-9)
    if p == 1:
        assert ours == pytest.approx(scipy.stats.wasserstein_distance(x, y), rel=1e-9)
    same = torch.from_numpy(rng.normal(size=n))
    assert tr.wasserstein_1d_quantile(same, same.flip(0) + 1.0, p=p).item() == pytest.approx(1.0)
    assert tr.wasserstein_1d_quantile(same, same * 2, p=p).item() == pytest.approx(tr.wasserstein_1d(same, same * 2, p=p).item())


def test_cost_matrix_matches_pot():
    x, y = _clouds(0)
    assert np.allclose(tr.cost_matrix(x, y).numpy(), ot.dist(x.numpy(), y.numpy()))
    assert np.allclose(tr.cost_matrix(x, y, p=1).numpy(), ot.dist(x.numpy(), y.numpy(), metric="euclidean"))
    with pytest.raises(ValueError, match="same D"):
        tr.cost_matrix(x, torch.zeros(3, 3, dtype=D64))


def test_exact_ot_is_an_assignment_for_uniform_equal_clouds():
    x, y = _clouds(1, 12, 12)
    M = tr.cost_matrix(x, y)
    plan, cost = tr.exact_ot(None, None, M)
    rows, cols = scipy.optimize.linear_sum_assignment(M.numpy())
    assert cost.item() == pytest.approx(M.numpy()[rows, cols].mean(), rel=1e-9)
    expected = np.zeros((12, 12))
    expected[rows, cols] = 1 / 12
    assert np.allclose(plan.numpy(), expected)  # row i = where the mass of x_i goes (not transposed)


def test_exact_ot_matches_pot_marginals_and_gradient():
    x, y = _clouds(2)
    a = torch.softmax(torch.arange(7, dtype=D64), 0)
    b = torch.full((9,), 1 / 9, dtype=D64)
    M = tr.cost_matrix(x, y).requires_grad_(True)
    plan, cost = tr.exact_ot(a, b, M)
    assert plan.shape == (7, 9)
    assert cost.item() == pytest.approx(ot.emd2(a.numpy(), b.numpy(), M.detach().numpy()), rel=1e-9)
    assert torch.allclose(plan.sum(1), a) and torch.allclose(plan.sum(0), b)
    cost.backward()
    assert torch.allclose(M.grad, plan)
    with pytest.raises(ValueError, match=r"b must have shape \(9,\)"):
        tr.exact_ot(a, b[:8] / b[:8].sum(), M)


def test_wasserstein_between_clouds_is_differentiable_and_a_translation_moves_it_by_its_length():
    x, _ = _clouds(3, 20, 20)
    shift = torch.tensor([0.5, 0.0], dtype=D64, requires_grad=True)
    w1 = tr.wasserstein(x, x + shift, p=1)
    assert w1.item() == pytest.approx(0.5, rel=1e-9)  # W_1 and W_2 of a translation = its length
    w1.backward()
    assert torch.allclose(shift.grad, torch.tensor([1.0, 0.0], dtype=D64))
    assert tr.wasserstein(x, x + shift.detach(), p=2).item() == pytest.approx(0.5, rel=1e-9)


@pytest.mark.parametrize("eps", [0.05, 0.5])
def test_log_domain_sinkhorn_matches_pot(eps):
    x, y = _clouds(4)
    M = tr.cost_matrix(x, y)
    a = torch.softmax(torch.linspace(0, 1, 7, dtype=D64), 0)
    res = tr.sinkhorn(a, None, M, eps=eps, n_iters=5000, tol=1e-12)
    ref = ot.sinkhorn(a.numpy(), np.full(9, 1 / 9), M.numpy(), reg=eps, numItermax=20000, stopThr=1e-13)
    assert res.plan.shape == (7, 9) and res.error < 1e-12
    assert np.allclose(res.plan.numpy(), ref, atol=1e-10)
    # the plan is exp((f_i + g_j - M_ij) / eps)
    assert torch.allclose(res.plan, torch.exp((res.f[:, None] + res.g[None, :] - M) / eps))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_sinkhorn_works_where_the_plain_iterations_underflow_and_tends_to_exact_ot():
    x, y = _clouds(5, 10, 10)
    M = tr.cost_matrix(x, y).float()  # float32: exp(-M/eps) underflows to 0 for M/eps > 104
    assert (M / 0.01).max() > 200
    _, exact = tr.exact_ot(None, None, M)
    res = tr.sinkhorn(None, None, M, eps=0.01, n_iters=3000, tol=1e-5)
    assert torch.isfinite(res.plan).all() and res.error < 1e-3
    assert (res.plan * M).sum().item() == pytest.approx(exact.item(), rel=1e-2)
    with pytest.warns(UserWarning):  # the plain iterations divide by zero here
        plain = ot.sinkhorn(np.full(10, 0.1, dtype=np.float32), np.full(10, 0.1, dtype=np.float32), M.numpy(), reg=0.01)
    assert not np.allclose(plain.sum(1), 0.1, atol=1e-3)
    with pytest.raises(ValueError, match="eps must be > 0"):
        tr.sinkhorn(None, None, M, eps=0.0)


def test_wasserstein2_gaussians_matches_pot_scipy_and_1d():
    g = torch.Generator().manual_seed(6)
    A, B = torch.randn(3, 3, generator=g, dtype=D64), torch.randn(3, 3, generator=g, dtype=D64)
    S1, S2 = A @ A.T + 0.1 * torch.eye(3, dtype=D64), B @ B.T + 0.1 * torch.eye(3, dtype=D64)
    m1, m2 = torch.randn(3, generator=g, dtype=D64), torch.randn(3, generator=g, dtype=D64)
    ours = tr.wasserstein2_gaussians(m1, S1, m2, S2).item()
    r2 = scipy.linalg.sqrtm(S2.numpy())
    ref_sq = np.sum((m1 - m2).numpy() ** 2) + np.trace(S1.numpy() + S2.numpy() - 2 * scipy.linalg.sqrtm(r2 @ S1.numpy() @ r2).real)
    assert ours == pytest.approx(math.sqrt(ref_sq), rel=1e-8)
    assert ours == pytest.approx(float(ot.gaussian.bures_wasserstein_distance(m1.numpy(), m2.numpy(), S1.numpy(), S2.numpy())), rel=1e-6)
    # 1-D: W_2^2 = (m1 - m2)^2 + (s1 - s2)^2 (standard deviations, not variances)
    one = tr.wasserstein2_gaussians(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([0.0]), torch.tensor([[1.0]]))
    assert one.item() == pytest.approx(math.sqrt(1 + 1), rel=1e-6)
    with pytest.raises(ValueError, match=r"shape \(D, D\)"):
        tr.wasserstein2_gaussians(m1, S1[:2], m2, S2)


def test_kantorovich_dual_equals_the_primal_and_is_feasible():
    x, y = _clouds(7, 5, 6)
    M = tr.cost_matrix(x, y)
    a = torch.tensor([0.1, 0.2, 0.3, 0.25, 0.15], dtype=D64)
    b = torch.full((6,), 1 / 6, dtype=D64)
    f, g, value = tr.kantorovich_dual(a, b, M)
    assert f.shape == (5,) and g.shape == (6,)
    primal = ot.emd2(a.numpy(), b.numpy(), M.numpy())
    assert value == pytest.approx(primal, rel=1e-8)
    assert value == pytest.approx((a * f).sum().item() + (b * g).sum().item(), rel=1e-10)
    assert (f[:, None] + g[None, :] - M).max().item() < 1e-8
    # complementary slackness: f_i + g_j = M_ij wherever the optimal plan moves mass
    plan, _ = tr.exact_ot(a, b, M)
    assert (f[:, None] + g[None, :] - M)[plan > 1e-12].abs().max().item() < 1e-8


def test_c_transform_is_the_largest_feasible_potential():
    x, y = _clouds(8, 4, 3)
    M = tr.cost_matrix(x, y)
    f = torch.tensor([0.3, -0.2, 1.0, 0.1], dtype=D64)
    fc = tr.c_transform(f, M)
    brute = torch.tensor([min(M[i, j].item() - f[i].item() for i in range(4)) for j in range(3)], dtype=D64)
    assert fc.shape == (3,) and torch.allclose(fc, brute)
    assert (f[:, None] + fc[None, :] - M).max() <= 1e-12
    # the dual value at (f, f^c) is below OT and at least that of any feasible (f, g)
    a, b = torch.full((4,), 0.25, dtype=D64), torch.full((3,), 1 / 3, dtype=D64)
    _, ot_cost = tr.exact_ot(a, b, M)
    assert (a @ f + b @ fc).item() <= ot_cost.item() + 1e-12
    assert (a @ f + b @ (fc - 0.1)).item() < (a @ f + b @ fc).item()
    with pytest.raises(ValueError, match=r"f must have shape \(n,\) = \(4,\)"):
        tr.c_transform(f[:3], M)


def test_critic_objective_is_a_difference_of_means():
    x_real, x_fake = torch.randn(10, 2, dtype=D64), torch.randn(6, 2, dtype=D64)
    critic = lambda x: x[:, 0] * 2 - x[:, 1]  # noqa: E731
    value = tr.critic_objective(critic, x_real, x_fake)
    assert value.item() == pytest.approx(critic(x_real).mean().item() - critic(x_fake).mean().item())
    with pytest.raises(ValueError, match=r"\(B,\) or \(B, 1\)"):
        tr.critic_objective(lambda x: x, x_real, x_fake)


def test_gradient_penalty_takes_the_norm_per_sample_over_all_dims():
    torch.manual_seed(0)
    B, C, H, W = 5, 2, 3, 3
    w = torch.randn(C, H, W, dtype=D64)
    linear = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731  gradient w at every point
    x_real, x_fake = torch.randn(B, C, H, W, dtype=D64), torch.randn(B, C, H, W, dtype=D64)
    gp = tr.gradient_penalty(linear, x_real, x_fake, u=torch.rand(B, dtype=D64))
    per_sample = (w.norm() - 1) ** 2  # ||grad||_2 over all C*H*W entries
    per_coordinate = ((w.abs() - 1) ** 2).mean()  # the classic bug
    assert gp.item() == pytest.approx(per_sample.item(), rel=1e-10)
    assert gp.item() != pytest.approx(per_coordinate.item(), rel=0.05)


def test_gradient_penalty_interpolates_with_one_u_per_sample_and_keeps_the_graph():
    x_real = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=D64)
    x_fake = torch.zeros(3, 2, dtype=D64)
    u = torch.tensor([0.5, 0.25, 1.0], dtype=D64)
    quad = lambda x: 0.5 * (x**2).sum(1)  # noqa: E731  gradient = x_hat = u * x_real
    expected = np.mean([(0.5 * 3 - 1) ** 2, (0.25 * 2 - 1) ** 2, (math.sqrt(2) - 1) ** 2])
    assert tr.gradient_penalty(quad, x_real, x_fake, u=u).item() == pytest.approx(expected, rel=1e-10)
    assert tr.gradient_penalty(quad, x_real, x_fake, u=u[:, None]).item() == pytest.approx(expected, rel=1e-10)
    # drawn with the generator: reproducible
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert tr.gradient_penalty(quad, x_real, x_fake, generator=g1) == tr.gradient_penalty(quad, x_real, x_fake, generator=g2)
    # the penalty is differentiable in the critic's parameters (create_graph)
    lin = nn.Linear(2, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0]]))
    tr.gradient_penalty(lin, x_real, x_fake, u=u).backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 4 * (0.6, 0.8)
    assert torch.allclose(lin.weight.grad, torch.tensor([[4.8, 6.4]], dtype=D64))
    with pytest.raises(ValueError, match="one number per sample"):
        tr.gradient_penalty(quad, x_real, x_fake, u=torch.rand(3, 2, dtype=D64))


def test_clip_weights_clamps_every_parameter():
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(100)
    tr.clip_weights_(net, 0.01)
    assert max(p.abs().max().item() for p in net.parameters()) <= 0.01
    assert any((p.abs() == 0.01).any() for p in net.parameters())
