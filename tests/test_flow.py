"""Flow matching (chapter 13): every function against an independent computation."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate as sp_integrate

import gencourse as gc
from gencourse import flow

MEANS = torch.tensor([[2.0, 0.0], [-1.0, 1.5], [0.0, -2.0]])
STDS = torch.tensor([0.3, 0.5, 0.2])
WEIGHTS = torch.tensor([0.5, 0.3, 0.2])


def _mixture_log_density(x, t):
    """log p_t(x) of x_t = (1-t) x0 + t x1, x0 ~ N(0, I), x1 ~ the mixture (each component stays Gaussian)."""
    x = x.double()
    var = (1 - t) ** 2 + t**2 * STDS.double() ** 2
    c = x[:, None, :] - t * MEANS.double()[None]
    return torch.logsumexp(WEIGHTS.double().log() - 0.5 * (c**2).sum(-1) / var - torch.log(2 * math.pi * var), dim=1)


# ---------------------------------------------------------------------------------------------- path


def test_linear_path_goes_from_noise_at_0_to_data_at_1():
    x0, x1 = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(flow.linear_path(x0, x1, 0.0), x0)
    torch.testing.assert_close(flow.linear_path(x0, x1, 1.0), x1)
    t = torch.tensor([0.1, 0.5, 0.7, 0.9])
    torch.testing.assert_close(flow.linear_path(x0, x1, t), x0 + t[:, None] * (x1 - x0))
    # the conditional velocity is the time derivative of the path (finite difference), data minus noise
    h = 1e-3
    fd = (flow.linear_path(x0, x1, t + h) - flow.linear_path(x0, x1, t - h)) / (2 * h)
    torch.testing.assert_close(flow.conditional_velocity(x0, x1), fd, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(flow.conditional_velocity(x0, x1), x1 - x0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: flow.linear_path(torch.zeros(2, 2), torch.zeros(2, 2), 1.5), r"\[0, 1\]"),
        (lambda: flow.linear_path(torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([0, 1])), "float tensor"),
        (lambda: flow.linear_path(torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(3)), r"\(B,\) = \(2,\)"),
        (lambda: flow.linear_path(torch.zeros(2, 2), torch.zeros(2, 3), 0.5), "same shape"),
        (lambda: flow.eps_to_velocity(torch.zeros(2, 2), 0.0, torch.zeros(2, 2)), "t must be > 0"),
        (lambda: flow.integrate(lambda x, t: x, torch.zeros(2, 2), 0), "n_steps"),
        (lambda: flow.integrate(lambda x, t: x, torch.zeros(2, 2), 2, method="rk4"), "method"),
    ],
)
def test_errors_say_what_was_expected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------------- exact marginal field


def test_gmm_marginal_velocity_against_monte_carlo():
    """u_t(x) = E[x1 - x0 | x_t = x], by importance weighting over data samples x1 (x0 is then fixed)."""
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(5, 2, generator=g) * 1.5, 0.4
    u = flow.gmm_marginal_velocity(x, t, MEANS, STDS, WEIGHTS)
    n = 400_000
    comp = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    x1 = (MEANS[comp] + STDS[comp, None] * torch.randn(n, 2, generator=g)).double()
    for i in range(len(x)):
        x0 = (x[i].double() - t * x1) / (1 - t)
        weight = torch.softmax(-0.5 * (x0**2).sum(1), dim=0)
        mc = (weight[:, None] * (x1 - x0)).sum(0)
        torch.testing.assert_close(u[i].double(), mc, atol=0.02, rtol=0.01)


def test_gmm_marginal_velocity_satisfies_the_continuity_equation():
    """d p_t / dt + div(p_t u_t) = 0, by central finite differences on the exact density."""
    x, t, h = torch.randn(6, 2, generator=torch.Generator().manual_seed(1)).double(), 0.6, 1e-4
    dp_dt = (_mixture_log_density(x, t + h).exp() - _mixture_log_density(x, t - h).exp()) / (2 * h)

    def flux(z):
        return _mixture_log_density(z, t).exp()[:, None] * flow.gmm_marginal_velocity(z, t, MEANS, STDS, WEIGHTS)

    div = sum((flux(x + h * e)[:, d] - flux(x - h * e)[:, d]) / (2 * h) for d, e in enumerate(torch.eye(2, dtype=torch.float64)))
    torch.testing.assert_close(dp_dt, -div, atol=1e-6, rtol=1e-4)


def test_gmm_marginal_velocity_at_the_ends():
    x = torch.randn(7, 2)
    # t = 0: E[x1 - x0 | x0 = x] = E[x1] - x
    torch.testing.assert_close(flow.gmm_marginal_velocity(x, 0.0, MEANS, STDS, WEIGHTS), WEIGHTS @ MEANS - x, atol=1e-5, rtol=1e-5)
    # t = 1: E[x1 - x0 | x1 = x] = x - E[x0] = x
    torch.testing.assert_close(flow.gmm_marginal_velocity(x, 1.0, MEANS, STDS, WEIGHTS), x, atol=1e-5, rtol=1e-5)


def test_cfm_and_marginal_losses_have_the_same_gradient():
    """Lipman et al., theorem 2, on a linear model: the gradients of E||v - (x1 - x0)||^2 and of
    E||v - u_t(x_t)||^2 agree (up to Monte Carlo error), the losses differ by a constant."""
    g = torch.Generator().manual_seed(2)
    n = 1_000_000
    comp = torch.multinomial(WEIGHTS, n, replacement=True, generator=g)
    x1 = MEANS[comp] + STDS[comp, None] * torch.randn(n, 2, generator=g)
    x0, t = torch.randn(n, 2, generator=g), torch.rand(n, generator=g)
    x_t = flow.linear_path(x0, x1, t)
    u = flow.gmm_marginal_velocity(x_t, t, MEANS, STDS, WEIGHTS)
    theta = torch.tensor([[0.3, -0.2, 0.5], [0.1, 0.4, -0.3]], requires_grad=True)

    def v(x, s):
        return torch.cat([x, s[:, None]], 1) @ theta.T

    (g_cfm,) = torch.autograd.grad(flow.cfm_loss(v, x1, x0=x0, t=t), theta)
    (g_fm,) = torch.autograd.grad(torch.nn.functional.mse_loss(v(x_t, t), u), theta)
    assert (g_cfm - g_fm).norm() < 0.02 * g_fm.norm()
    # a wrong target (the flipped sign) moves the gradient far more than the Monte Carlo error
    (g_flip,) = torch.autograd.grad(torch.nn.functional.mse_loss(v(x_t, t), x0 - x1), theta)
    assert (g_flip - g_fm).norm() > 0.5 * g_fm.norm()
    # but the losses themselves differ (by E Var[x1 - x0 | x_t] > 0)
    with torch.no_grad():
        assert flow.cfm_loss(v, x1, x0=x0, t=t) - torch.nn.functional.mse_loss(v(x_t, t), u) > 0.05


def test_cfm_loss_by_hand_and_the_order_of_draws():
    model = lambda x, t, y=None: 0.5 * x + t[:, None] + (0 if y is None else y[:, None].float())  # noqa: E731
    x1 = torch.randn(6, 2)
    g = torch.Generator().manual_seed(3)
    loss = flow.cfm_loss(model, x1, generator=g)
    g = torch.Generator().manual_seed(3)
    t = torch.rand(6, generator=g)  # t first, then x0
    x0 = torch.randn(6, 2, generator=g)
    x_t = (1 - t[:, None]) * x0 + t[:, None] * x1
    expected = ((0.5 * x_t + t[:, None] - (x1 - x0)) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    y = torch.arange(6)
    torch.testing.assert_close(flow.cfm_loss(model, x1, y=y, x0=x0, t=t), ((0.5 * x_t + t[:, None] + y[:, None] - (x1 - x0)) ** 2).mean())


def test_cfm_loss_is_zero_only_for_the_right_sign_and_time_convention():
    """With a single data point and a deterministic x0, the true field is known: the loss catches a
    flipped target and a reversed time."""
    x1, x0, t = torch.ones(4, 2), torch.zeros(4, 2), torch.tensor([0.2, 0.4, 0.6, 0.8])
    right = lambda x, s: torch.ones_like(x)  # noqa: E731  (x1 - x0)
    assert flow.cfm_loss(right, x1, x0=x0, t=t) == 0
    assert flow.cfm_loss(lambda x, s: -torch.ones_like(x), x1, x0=x0, t=t) > 1
    torch.testing.assert_close(flow.linear_path(x0, x1, t)[:, 0], t)  # t = 0.2 is near the noise


# ---------------------------------------------------------------------------------------------- solvers


def test_euler_step_on_a_non_uniform_grid():
    v = lambda x, t: x * t[:, None]  # noqa: E731
    x = torch.tensor([[1.0, 2.0]])
    torch.testing.assert_close(flow.euler_step(v, x, 0.2, 0.5), x + 0.3 * 0.2 * x)
    torch.testing.assert_close(flow.euler_step(v, x, 0.5, 0.2), x - 0.3 * 0.5 * x)  # backwards in time too


def test_heun_step_is_second_order_on_a_linear_ode():
    lam = -1.3
    v = lambda x, t: lam * x  # noqa: E731
    x = torch.tensor([[1.0]], dtype=torch.float64)
    h = 0.25
    torch.testing.assert_close(flow.heun_step(v, x, 0.0, h), x * (1 + lam * h + (lam * h) ** 2 / 2))
    exact = math.exp(lam)
    err = {m: [abs(flow.integrate(v, x, n, method=m).item() - exact) for n in (10, 20)] for m in ("euler", "heun")}
    assert 1.8 < err["euler"][0] / err["euler"][1] < 2.2  # first order
    assert 3.6 < err["heun"][0] / err["heun"][1] < 4.4  # second order


def test_one_euler_step_is_exact_for_straight_paths():
    c = torch.tensor([[0.5, -2.0]])
    x0 = torch.randn(3, 2)
    torch.testing.assert_close(flow.integrate(lambda x, t: c.expand_as(x), x0, 1), x0 + c)
    path = flow.integrate(lambda x, t: c.expand_as(x), x0, 4, return_path=True)
    assert len(path) == 5 and torch.equal(path[0], x0)


def test_straightness_against_quadrature():
    """For v(x) = a x, Z_t = Z_0 e^{a t}: S = E||Z_0||^2 int_0^1 (e^a - 1 - a e^{a t})^2 dt."""
    a = 0.8
    x0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    S, x1 = flow.straightness(lambda x, t: a * x, x0, n_steps=2000)
    exact = (x0**2).sum(1).mean().item() * sp_integrate.quad(lambda s: (math.exp(a) - 1 - a * math.exp(a * s)) ** 2, 0, 1)[0]
    assert abs(S - exact) < 0.01 * exact
    assert flow.straightness(lambda x, t: torch.ones_like(x), x0, 10)[0] == pytest.approx(0.0, abs=1e-12)


def test_reflow_pairs_end_where_the_flow_ends():
    v = lambda x, t: -x  # noqa: E731
    x0 = torch.randn(5, 2)
    a, b = flow.reflow_pairs(v, x0, n_steps=50)
    assert a is x0
    torch.testing.assert_close(b, flow.integrate(v, x0, 50, method="heun"))


# ---------------------------------------------------------------------------------------------- couplings


def test_ot_pairs_against_all_permutations():
    g = torch.Generator().manual_seed(5)
    x0, x1 = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    paired = flow.ot_pairs(x0, x1)
    cost = ((paired - x1) ** 2).sum().item()
    best = min(((x0[list(p)] - x1) ** 2).sum().item() for p in itertools.permutations(range(6)))
    assert cost == pytest.approx(best, rel=1e-6)
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, x0.tolist()))  # a permutation of x0


def test_ot_pairs_of_images_is_a_permutation():
    x0, x1 = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    paired = flow.ot_pairs(x0, x1)
    assert paired.shape == x0.shape
    assert ((paired - x1) ** 2).sum() <= ((x0 - x1) ** 2).sum() + 1e-5


# ---------------------------------------------------------------------------------------------- one family


def test_eps_to_velocity_recovers_the_path_velocity():
    x0, x1, t = torch.randn(5, 3), torch.randn(5, 3), torch.tensor([0.1, 0.3, 0.5, 0.7, 0.99])
    x_t = flow.linear_path(x0, x1, t)
    torch.testing.assert_close(flow.eps_to_velocity(x_t, t, x0), x1 - x0, atol=1e-5, rtol=1e-5)


def _toy_eps_model(x, t):
    return torch.tanh(0.7 * x + (t.float() / 1000.0)[:, None, None, None])


def test_diffusion_time_is_the_data_weight():
    sched = gc.diffusion.linear_schedule(1000)
    s = flow.diffusion_time(sched.alpha_bar)
    a = sched.alpha_bar.double()
    torch.testing.assert_close(s.double(), a.sqrt() / (a.sqrt() + (1 - a).sqrt()), atol=1e-7, rtol=1e-6)
    assert s[0] == 1 and bool((s[1:] < s[:-1]).all())


def test_euler_on_the_diffusion_velocity_is_ddim():
    """One Euler step of the converted field from s_i to s_{i-1} is one DDIM step (eta = 0)."""
    sched = gc.diffusion.linear_schedule(1000)
    steps = gc.diffusion.ddim_timesteps(1000, 10)
    x_T = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(6))
    x_ddim = gc.diffusion.ddim_sample(_toy_eps_model, x_T.shape, sched.alpha_bar, 10, x_T=x_T)
    s_table = flow.diffusion_time(sched.alpha_bar).double()
    v = flow.diffusion_velocity(_toy_eps_model, sched.alpha_bar)
    ts = steps.tolist()[::-1] + [0]  # T, ..., 0 (DDIM ends at x_0)
    scale = lambda t: (sched.alpha_bar[t].double().sqrt() + (1 - sched.alpha_bar[t].double()).sqrt()).float()  # noqa: E731
    z = x_T / scale(ts[0])
    for t, t_next in zip(ts[:-1], ts[1:]):
        z = flow.euler_step(v, z, float(s_table[t]), float(s_table[t_next]))
    torch.testing.assert_close(z * scale(0), x_ddim, atol=2e-4, rtol=1e-4)


def test_diffusion_velocity_interpolates_between_integer_steps():
    sched = gc.diffusion.linear_schedule(1000)
    s_table = flow.diffusion_time(sched.alpha_bar).double()
    calls = []

    def eps_model(x, t):
        calls.append(t.clone())
        return torch.zeros_like(x) + t.float()[:, None]

    v = flow.diffusion_velocity(eps_model, sched.alpha_bar)
    z = torch.zeros(1, 2)
    v(z, float(s_table[500]))
    assert len(calls) == 1 and calls[0].item() == 500  # a grid time: one evaluation
    calls.clear()
    mid = float((s_table[500] + s_table[501]) / 2)
    out = v(z, mid)
    assert sorted(c.item() for c in calls) == [500, 501]
    eps = -out * mid  # v = (z - eps) / s with z = 0
    assert 500 < eps[0, 0].item() < 501


# ---------------------------------------------------------------------------------------------- networks and steps


def test_continuous_time_networks():
    net = gc.nn.DiffusionUNet(n_classes=10, continuous_time=True)
    assert net(torch.zeros(2, 1, 28, 28), torch.tensor([0.0, 1.0]), torch.tensor([3, 10])).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="float tensor"):
        net(torch.zeros(2, 1, 28, 28), torch.tensor([1, 2]))
    mlp = gc.nn.TimeMLP(2, continuous_time=True)
    assert mlp(torch.zeros(3, 2), torch.rand(3)).shape == (3, 2)
    # the embedding of time t is the sinusoidal embedding of 1000 t
    e = mlp.time_mlp(gc.nn.timestep_embedding(torch.tensor([250.0]), mlp.emb_dim))
    torch.manual_seed(0)
    h = mlp.inp(torch.zeros(1, 2))
    for layer, proj in zip(mlp.layers, mlp.emb):
        h = h + layer(torch.nn.functional.silu(h + proj(e)))
    torch.testing.assert_close(mlp(torch.zeros(1, 2), torch.tensor([0.25])), mlp.out(torch.nn.functional.silu(h)))


def test_flow_train_step_is_the_cfm_loss_and_ot_reorders_the_noise():
    torch.manual_seed(0)
    net = gc.nn.TimeMLP(2, hidden=16, n_layers=1, emb_dim=8, continuous_time=True)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    x1 = torch.randn(16, 2)
    out = gc.train.flow_train_step(net, opt, x1, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    t = torch.rand(16, generator=g)
    x0 = torch.randn(16, 2, generator=g)
    assert out["loss"] == pytest.approx(flow.cfm_loss(net, x1, x0=x0, t=t).item(), rel=1e-6)
    out_ot = gc.train.flow_train_step(net, opt, x1, coupling="ot", generator=torch.Generator().manual_seed(7))
    assert out_ot["loss"] == pytest.approx(flow.cfm_loss(net, x1, x0=flow.ot_pairs(x0, x1), t=t).item(), rel=1e-6)
    with pytest.raises(ValueError, match="coupling"):
        gc.train.flow_train_step(net, opt, x1, coupling="sinkhorn")


def test_logit_normal_times_against_scipy_and_the_train_step_uses_them():
    from scipy import stats

    t = flow.sample_time(20_000, torch.Generator().manual_seed(3), dist="logit_normal", loc=0.5, scale=0.8)
    assert t.dtype == torch.float32 and t.shape == (20_000,) and 0 < t.min() and t.max() < 1
    logit = torch.log(t.double() / (1 - t.double())).numpy()
    assert stats.kstest(logit, stats.norm(0.5, 0.8).cdf).pvalue > 0.01
    # the density of the docstring integrates to the empirical mass of an interval
    a, b = 0.2, 0.4
    grid = np.linspace(a, b, 2001)
    density = stats.norm.pdf((np.log(grid / (1 - grid)) - 0.5) / 0.8) / (0.8 * grid * (1 - grid))
    mass = float(np.sum((density[1:] + density[:-1]) / 2 * np.diff(grid)))
    assert ((t > a) & (t < b)).double().mean().item() == pytest.approx(mass, abs=0.01)
    # uniform times are unchanged: the generator's rand
    torch.testing.assert_close(flow.sample_time(8, torch.Generator().manual_seed(4)), torch.rand(8, generator=torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match="dist"):
        flow.sample_time(4, dist="beta")
    with pytest.raises(ValueError, match="scale must be positive"):
        flow.sample_time(4, dist="logit_normal", scale=0.0)
    torch.manual_seed(0)
    net = gc.nn.TimeMLP(2, hidden=16, n_layers=1, emb_dim=8, continuous_time=True)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    x1 = torch.randn(16, 2)
    out = gc.train.flow_train_step(net, opt, x1, time_dist="logit_normal", generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    t = torch.sigmoid(torch.randn(16, generator=g))
    x0 = torch.randn(16, 2, generator=g)
    assert out["loss"] == pytest.approx(flow.cfm_loss(net, x1, x0=x0, t=t).item(), rel=1e-6)


def test_latent_autoencoder_loss_by_hand():
    torch.manual_seed(0)
    ae = gc.models.autoencoder.LatentAutoencoder(4, (8, 16))
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    loss, parts = ae.loss(x, 0.5, generator=torch.Generator().manual_seed(8))
    mu, logvar = ae.encode(x)
    assert mu.shape == (3, 4, 7, 7)
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(8))
    mse = ((ae.decode(z) - x) ** 2).mean()
    # KL(N(mu, s^2) || N(0, 1)) per entry, against scipy-free closed form written differently
    s2 = logvar.exp()
    kl = (0.5 * (s2 + mu**2) - 0.5 - 0.5 * torch.log(s2)).mean()
    torch.testing.assert_close(loss, mse + 0.5 * kl)
    assert parts["mse"] == pytest.approx(mse.item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 4, 7, 7\)"):
        ae.decode(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 28, 28\)"):
        ae.encode(torch.zeros(2, 28, 28))


# ---------------------------------------------------------------------------------------------- recipes


def test_recipes_train_cache_reload_and_sample():
    from gencourse.recipes import flow as recipe

    model, history = recipe.flow_mnist("flow_test", progress=False, steps=3, batch_size=4)
    assert len(history["loss"]) == 3 and all(math.isfinite(v) for v in history["loss"])
    again, _ = recipe.flow_mnist("flow_test", progress=False, steps=3, batch_size=4)
    x, t, y = torch.randn(2, 1, 28, 28), torch.rand(2), torch.tensor([1, 10])
    torch.testing.assert_close(again(x, t, y), model(x, t, y))
    labels = torch.tensor([0, 1, 2])
    out = recipe.sample_flow(model, labels, n_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 1, 28, 28) and out.min() >= -1 and out.max() <= 1
    lmodel, ae, scale, lhist = recipe.latent_flow_mnist("latent_flow_test", progress=False, steps=3, batch_size=4)
    assert scale > 0 and len(lhist["loss"]) == 3
    imgs = recipe.sample_latent(lmodel, ae, scale, labels, n_steps=2, method="euler", generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown"):
        recipe.flow_settings(step=3)
    with pytest.raises(ValueError, match="labels"):
        recipe.sample_flow(model, torch.zeros(3), n_steps=1)
    assert np.isfinite(imgs.numpy()).all()
