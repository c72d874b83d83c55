"""The public checks of chapter 02 accept the right answers and reject the classic mistakes with a specific message."""

import pytest
import torch

from gencourse import transport
from gencourse.grading import check


def w1d(x, y, p):
    return (x.sort().values - y.sort().values).abs().pow(p).mean() ** (1 / p)


def w2_diag(mu1, s1, mu2, s2):
    return (((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum()).sqrt()


def sinkhorn_log(a, b, M, eps, n_iters):
    f, g = torch.zeros_like(a), torch.zeros_like(b)
    for _ in range(n_iters):
        f = eps * a.log() - eps * torch.logsumexp((g[None, :] - M) / eps, 1)
        g = eps * b.log() - eps * torch.logsumexp((f[:, None] - M) / eps, 0)
    return torch.exp((f[:, None] + g[None, :] - M) / eps)


def sinkhorn_plain(a, b, M, eps, n_iters):
    K = torch.exp(-M / eps)
    u, v = torch.ones_like(a), torch.ones_like(b)
    for _ in range(n_iters):
        u = a / (K @ v)
        v = b / (K.T @ u)
    return u[:, None] * K * v[None, :]


def c_transform(f, M):
    return (M - f[:, None]).min(0).values


def dual_value(a, b, M, f):
    return a @ f + b @ c_transform(f, M)


def gp(critic, x_real, x_fake, u):
    x_hat = (u.view(-1, *[1] * (x_real.ndim - 1)) * x_real + (1 - u.view(-1, *[1] * (x_real.ndim - 1))) * x_fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def test_right_answers_pass(capsys):
    assert check("optimal_transport.wasserstein_1d", w1d)
    assert check("optimal_transport.w2_diag_gaussians", w2_diag)
    assert check("optimal_transport.sinkhorn", sinkhorn_log)
    assert check("optimal_transport.sinkhorn", sinkhorn_plain)
    assert check("optimal_transport.c_transform", c_transform)
    assert check("optimal_transport.c_transform", transport.c_transform)
    assert check("optimal_transport.dual_value", dual_value)
    assert check("optimal_transport.gradient_penalty", gp)
    assert check("optimal_transport.gradient_penalty", lambda c, xr, xf, u: transport.gradient_penalty(c, xr, xf, u=u))
    assert capsys.readouterr().out.count("✔") == 9


def gp_per_coordinate(critic, x_real, x_fake, u):
    uu = u.view(-1, 1, 1, 1)
    x_hat = (uu * x_real + (1 - uu) * x_fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.abs() - 1) ** 2).mean()


def gp_no_graph(critic, x_real, x_fake, u):
    uu = u.view(-1, 1, 1, 1)
    x_hat = (uu * x_real + (1 - uu) * x_fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@pytest.mark.parametrize(
    "qid, wrong, message",
    [
        ("optimal_transport.wasserstein_1d", lambda x, y, p: w1d(x, y, p) ** p, "W_p\\^p"),
        ("optimal_transport.wasserstein_1d", lambda x, y, p: (x - y).abs().pow(p).mean() ** (1 / p), "sort both samples"),
        ("optimal_transport.wasserstein_1d", lambda x, y, p: (x.sort().values - y).abs().pow(p).mean() ** (1 / p), "not just one"),
        ("optimal_transport.wasserstein_1d", lambda x, y, p: (x.sort().values - y.sort().values).abs().pow(p).sum() ** (1 / p), "a mean, not a sum"),
        ("optimal_transport.w2_diag_gaussians", lambda m1, s1, m2, s2: w2_diag(m1, s1, m2, s2) ** 2, "W_2\\^2"),
        ("optimal_transport.w2_diag_gaussians", lambda m1, s1, m2, s2: w2_diag(m1, s1**2, m2, s2**2), "standard deviations"),
        ("optimal_transport.sinkhorn", lambda a, b, M, eps, n: sinkhorn_log(a, b, M, eps, n).T, "transposed"),
        ("optimal_transport.sinkhorn", lambda a, b, M, eps, n: sinkhorn_log(a, b, M, 1 / eps, n), "eps divides the cost"),
        ("optimal_transport.sinkhorn", lambda a, b, M, eps, n: sinkhorn_log(a, b, M, eps, 1), "column sums|row sums"),
        # square problem, plan computed with the roles of a and b swapped and transposed back wrongly
        ("optimal_transport.sinkhorn", lambda a, b, M, eps, n: sinkhorn_log(b, a, M.T, eps, n) if M.shape[0] == M.shape[1] else sinkhorn_log(a, b, M, eps, n), "transposed"),
        ("optimal_transport.c_transform", lambda f, M: (M - f[:, None]).max(0).values, "min over i, not the max"),
        ("optimal_transport.c_transform", lambda f, M: (M + f[:, None]).min(0).values, "subtract f"),
        ("optimal_transport.c_transform", lambda f, M: (M - f[:, None]).min(1).values, "m = 6 entries"),
        ("optimal_transport.dual_value", lambda a, b, M, f: a @ f + b @ (M - f[:, None]).max(0).values, "not the max"),
        ("optimal_transport.dual_value", lambda a, b, M, f: (a @ f).item(), "dual_value"),
        ("optimal_transport.gradient_penalty", gp_per_coordinate, "per sample over all its dimensions"),
        ("optimal_transport.gradient_penalty", lambda c, xr, xf, u: gp(c, xr, xf, u).sqrt(), "square is missing"),
        ("optimal_transport.gradient_penalty", lambda c, xr, xf, u: gp(c, xf, xr, u), "u weighs the real sample"),
        ("optimal_transport.gradient_penalty", gp_no_graph, "create_graph=True"),
    ],
)
def test_classic_mistakes_fail_with_a_specific_message(qid, wrong, message):
    with pytest.raises(AssertionError, match=message):
        check(qid, wrong)


# ------------------------------------------------------------------ W1 between weighted points on the line


def w1_cdf(x, a, y, b):
    t, order = torch.cat([x, y]).sort()
    gap = torch.cumsum(torch.cat([a, -b])[order], 0)[:-1]
    return float((gap.abs() * (t[1:] - t[:-1])).sum())


def test_w1_weighted_1d_accepts_the_right_answer(capsys):
    assert check("optimal_transport.w1_weighted_1d", w1_cdf)
    assert "✔" in capsys.readouterr().out


def w1_no_abs(x, a, y, b):
    t, order = torch.cat([x, y]).sort()
    return float((torch.cumsum(torch.cat([a, -b])[order], 0)[:-1] * (t[1:] - t[:-1])).sum())


def w1_uniform(x, a, y, b):
    return w1_cdf(x, torch.full_like(a, 1 / len(a)), y, torch.full_like(b, 1 / len(b)))


def w1_unsorted(x, a, y, b):
    return float((torch.cumsum(torch.cat([a, -b]), 0)[:-1].abs() * torch.cat([x, y]).diff().abs()).sum())


@pytest.mark.parametrize(
    "wrong, message",
    [
        (w1_no_abs, "absolute value is missing"),
        (w1_uniform, "weights are ignored"),
        (w1_unsorted, "sort the points of both measures together"),
        (lambda x, a, y, b: torch.tensor(w1_cdf(x, a, y, b)), "Python float"),
    ],
)
def test_w1_weighted_1d_rejects_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check("optimal_transport.w1_weighted_1d", wrong)


# ------------------------------------------------------------------ the generator trained with exact OT (training)

from gencourse import data  # noqa: E402

GOING_DOWN = [3.0 - 0.01 * i for i in range(50)]


def ring_sampler(n_modes=8):
    ring = data.toy("ring", n_modes=n_modes, radius=2.0, std=0.1)
    return lambda z: ring.sample(len(z), generator=torch.Generator().manual_seed(9))


@pytest.fixture
def cpu_profile(monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")


def test_ot_generator_accepts_a_perfect_sampler(cpu_profile, capsys):
    assert check("optimal_transport.ot_generator", ring_sampler(), GOING_DOWN)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "G, losses, message",
    [
        (lambda z: 0.01 * z, GOING_DOWN, "collapsed"),  # the independent / index coupling
        (ring_sampler(4), GOING_DOWN, "W2 between|shares"),  # half the modes
        (lambda z: ring_sampler()(z)[:, :1], GOING_DOWN, "shape"),
        (ring_sampler(), GOING_DOWN[::-1], "did not go down"),
    ],
)
def test_ot_generator_rejects_mistakes(cpu_profile, G, losses, message):
    with pytest.raises(AssertionError, match=message):
        check("optimal_transport.ot_generator", G, losses)
