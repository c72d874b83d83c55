"""gencourse.diffusion against closed forms, brute-force loops and exact oracles."""

import math

import numpy as np
import pytest
import torch

from gencourse import diffusion as D

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sched():
    return D.linear_schedule(T=1000)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------ schedules


def test_linear_schedule_matches_hand_computed_values(sched):
    assert sched.T == 1000 and sched.beta.shape == (1001,) and sched.beta.dtype == torch.float32
    assert sched.beta[0] == 0 and sched.alpha[0] == 1 and sched.alpha_bar[0] == 1
    # beta_t = 1e-4 + (t - 1) / 999 * (0.02 - 1e-4)
    for t in (1, 2, 500, 999, 1000):
        assert math.isclose(sched.beta[t].item(), 1e-4 + (t - 1) / 999 * (0.02 - 1e-4), rel_tol=1e-6)
    # alpha_bar_t = prod_{s=1}^t (1 - beta_s), by a plain Python loop in float64
    betas = [1e-4 + (s - 1) / 999 * (0.02 - 1e-4) for s in range(1, 1001)]
    prod = 1.0
    for t, b in enumerate(betas, start=1):
        prod *= 1.0 - b
        if t in (1, 10, 250, 1000):
            assert math.isclose(sched.alpha_bar[t].item(), prod, rel_tol=1e-5, abs_tol=1e-9), t
    assert math.isclose(sched.alpha_bar[1].item(), 1 - 1e-4, rel_tol=1e-7)
    assert sched.alpha_bar[1000].item() < 1e-4  # x_T is almost pure noise
    assert bool((sched.alpha_bar[1:] < sched.alpha_bar[:-1]).all())


def test_cosine_schedule_matches_the_formula():
    T, s = 1000, 0.008
    c = D.cosine_schedule(T)
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 100, 500, 900):
        assert math.isclose(c.alpha_bar[t].item(), f(t) / f(0), rel_tol=1e-5), t
        assert math.isclose(c.beta[t].item(), 1 - f(t) / f(t - 1), rel_tol=1e-4), t
    assert c.beta[0] == 0 and c.alpha_bar[0] == 1
    assert math.isclose(c.beta[T].item(), 0.999, rel_tol=1e-6)  # clipped: 1 - f(T)/f(T-1) = 1
    assert bool((c.beta[1:] <= 0.999).all())


def test_schedule_is_built_in_float64():
    # beta_t tiny: in float32, 1 - prod would lose digits; here alpha_bar matches a float64 product
    beta = torch.zeros(3001, dtype=torch.float64)
    beta[1:] = 1e-6
    sched = D.Schedule.from_beta(beta)
    assert math.isclose(1 - sched.alpha_bar[3000].item(), 1 - (1 - 1e-6) ** 3000, rel_tol=1e-4)


def test_posterior_variance_matches_closed_form(sched):
    betas = [0.0] + [1e-4 + (s - 1) / 999 * (0.02 - 1e-4) for s in range(1, 1001)]  # float64, by hand
    ab = np.cumprod(1 - np.array(betas))
    for t in (1, 2, 37, 1000):
        expected = (1 - ab[t - 1]) / (1 - ab[t]) * betas[t]
        assert math.isclose(sched.beta_tilde[t].item(), expected, rel_tol=1e-5, abs_tol=1e-12), t
        if t > 1:  # the precision form of a product of two Gaussians: 1/var = alpha_t/beta_t + 1/(1 - ab_{t-1})
            precision = (1 - betas[t]) / betas[t] + 1 / (1 - ab[t - 1])
            assert math.isclose(sched.beta_tilde[t].item(), 1 / precision, rel_tol=1e-5), t
    assert sched.beta_tilde[1] == 0 and sched.beta_tilde[0] == 0


def test_snr_decreases_and_matches_definition(sched):
    r = D.snr(sched.alpha_bar[1:])
    assert bool((r[1:] < r[:-1]).all())
    t = 300
    a = sched.alpha_bar[t].item()
    assert math.isclose(r[t - 1].item(), a / (1 - a), rel_tol=1e-5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: D.linear_schedule(T=0), "T must be a positive int"),
        (lambda: D.linear_schedule(T=10, beta_T=1.5), "beta_1 and beta_T"),
        (lambda: D.Schedule.from_beta(torch.tensor([0.1, 0.2])), r"beta\[0\] must be 0"),
        (lambda: D.Schedule.from_beta(torch.tensor([0.0, 1.0])), r"beta\[1:\] must lie in \(0, 1\)"),
    ],
)
def test_bad_schedules_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ------------------------------------------------------------------------------------ extract


def test_extract_shapes_and_values(sched):
    x = torch.zeros(4, 1, 28, 28)
    t = torch.tensor([1, 10, 100, 1000])
    out = D.extract(sched.alpha_bar, t, x)
    assert out.shape == (4, 1, 1, 1)
    assert torch.equal(out.flatten(), sched.alpha_bar[t])
    assert D.extract(sched.beta, 7, torch.zeros(3, 2)).shape == (3, 1)
    assert torch.equal(D.extract(sched.beta, 7, torch.zeros(3, 2)).flatten(), sched.beta[7].repeat(3))


@pytest.mark.parametrize(
    "t, message",
    [
        (torch.tensor([1, 1001]), r"t must lie in 0\.\.1000"),
        (torch.tensor([-1, 3]), r"t must lie in 0\.\.1000"),
        (torch.tensor([1.0, 2.0]), "integer time steps"),
        (torch.tensor([1, 2, 3]), r"shape \(2,\)"),
    ],
)
def test_extract_rejects_bad_t(sched, t, message):
    with pytest.raises(ValueError, match=message):
        D.extract(sched.alpha_bar, t, torch.zeros(2, 1, 4, 4))


# ------------------------------------------------------------------------------------ forward process


def test_q_sample_moments(sched):
    x0 = torch.tensor([[1.0, -0.5, 0.0]]).repeat(200_000, 1)  # (N, 3)
    t = 400
    eps = torch.randn(x0.shape, generator=gen(1))
    x_t = D.q_sample(x0, t, eps, sched.alpha_bar)
    a = sched.alpha_bar[t].item()
    assert torch.allclose(x_t.mean(0), math.sqrt(a) * x0[0], atol=0.01)
    assert torch.allclose(x_t.var(0), torch.full((3,), 1 - a), rtol=0.02)
    assert torch.equal(D.q_sample(x0[:5], 0, eps[:5], sched.alpha_bar), x0[:5])  # t = 0 is the data


def test_q_sample_agrees_with_iterated_q_step(sched):
    n, t_end = 40_000, 150
    x0 = torch.full((n, 1), 1.5)
    g = gen(2)
    x = x0
    for t in range(1, t_end + 1):
        x = D.q_step(x, t, torch.randn(x.shape, generator=g), sched.beta)
    # moments of t_end small noising steps = the closed form q(x_t | x_0)
    a = sched.alpha_bar[t_end].item()
    assert abs(x.mean().item() - math.sqrt(a) * 1.5) < 0.01
    assert abs(x.var().item() - (1 - a)) < 0.01
    direct = D.q_sample(x0, t_end, torch.randn(x0.shape, generator=g), sched.alpha_bar)
    assert abs(direct.mean().item() - x.mean().item()) < 0.015 and abs(direct.var().item() - x.var().item()) < 0.015


def test_q_sample_uses_per_sample_t(sched):
    x0 = torch.ones(3, 1, 2, 2)
    eps = torch.zeros_like(x0)
    out = D.q_sample(x0, torch.tensor([1, 500, 1000]), eps, sched.alpha_bar)
    assert torch.allclose(out[:, 0, 0, 0], sched.alpha_bar[[1, 500, 1000]].sqrt())


def test_q_posterior_matches_product_of_gaussians(sched):
    # q(x_{t-1} | x_t, x0) ∝ N(x_t; sqrt(alpha_t) x_{t-1}, beta_t) N(x_{t-1}; sqrt(ab_{t-1}) x0, 1 - ab_{t-1})
    g = gen(3)
    x0, x_t = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    for t in (2, 50, 999):
        mean, var = D.q_posterior(x0, x_t, t, sched)
        b, ab_prev = sched.beta.double()[t], sched.alpha_bar.double()[t - 1]
        precision = (1 - b) / b + 1 / (1 - ab_prev)
        mu = (torch.sqrt(1 - b) * x_t.double() / b + torch.sqrt(ab_prev) * x0.double() / (1 - ab_prev)) / precision
        # float32 tables: 1 - alpha_bar_{t-1} loses ~3 digits at small t, hence rtol 1e-3
        assert torch.allclose(mean.double(), mu, rtol=1e-3, atol=1e-4), t
        assert torch.allclose(var.double().flatten(), (1 / precision).repeat(5), rtol=1e-4), t
        assert var.shape == (5, 1)


def test_predict_x0_inverts_q_sample(sched):
    g = gen(4)
    x0, eps = torch.randn(6, 1, 4, 4, generator=g), torch.randn(6, 1, 4, 4, generator=g)
    t = torch.tensor([1, 2, 10, 100, 500, 1000])
    x_t = D.q_sample(x0, t, eps, sched.alpha_bar)
    assert torch.allclose(D.predict_x0(x_t, t, eps, sched.alpha_bar), x0, atol=2e-3)


# ------------------------------------------------------------------------------------ training


def _loss_batch(seed, t):
    """A batch of 4 images of 3 x 3 pixels, its time steps and noise, and the weights of a linear model W * x_t."""
    g = gen(seed)
    x0 = torch.randn(4, 1, 3, 3, generator=g)
    eps = torch.randn_like(x0)
    return x0, torch.tensor(t), eps, torch.randn(4, 1, 3, 3, generator=g)


def test_ddpm_loss_matches_its_equation(sched):
    x0, t, eps, W = _loss_batch(5, [1, 3, 700, 1000])
    seen = {}

    def eps_model(x_t, t_in):
        seen["x_t"], seen["t"] = x_t, t_in
        return W * x_t

    loss = D.ddpm_loss(eps_model, x0, sched.alpha_bar, t=t, eps=eps)
    ab = sched.alpha_bar[t].view(4, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    per_sample = ((eps - W * x_t) ** 2).flatten(1).sum(1)  # ||eps - eps_theta||^2 of each sample
    assert torch.allclose(loss, per_sample.mean() / 9, rtol=1e-5)  # mean over samples and the D = 9 pixels
    assert torch.equal(seen["t"], t) and torch.allclose(seen["x_t"], x_t)


def test_ddpm_loss_is_zero_for_the_true_noise_and_draws_t_in_1_to_T(sched):
    x0 = torch.randn(512, 2, generator=gen(6))
    seen = {}

    def oracle(x_t, t):  # knows x0, so it can return the exact noise
        seen["t"] = t
        ab = sched.alpha_bar[t].view(-1, 1)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    loss = D.ddpm_loss(oracle, x0, sched.alpha_bar, generator=gen(7))
    assert loss.item() < 1e-6
    assert seen["t"].min() >= 1 and seen["t"].max() <= 1000 and seen["t"].dtype == torch.long
    t_big = D.sample_t(100_000, 4, generator=gen(8))
    assert set(t_big.unique().tolist()) == {1, 2, 3, 4}


def test_logit_normal_steps_have_the_logit_normal_mass_of_their_cells_and_reach_the_loss():
    from scipy import stats

    sched = D.linear_schedule(10)
    from gencourse.flow import diffusion_time

    s_t = diffusion_time(sched.alpha_bar.double())[1:].numpy()  # decreasing in t = 1..10
    # step t takes the s closest to s_t: its cell runs between the midpoints with its neighbours
    upper = np.concatenate([[1.0], (s_t[:-1] + s_t[1:]) / 2])
    lower = np.concatenate([(s_t[:-1] + s_t[1:]) / 2, [0.0]])
    logit = lambda p: np.log(p / (1 - p)) if 0 < p < 1 else (np.inf if p >= 1 else -np.inf)  # noqa: E731
    mass = np.array([stats.norm.cdf(logit(u)) - stats.norm.cdf(logit(lo)) for u, lo in zip(upper, lower)])
    t = D.sample_t(200_000, 10, generator=gen(5), dist="logit_normal", alpha_bar=sched.alpha_bar)
    assert t.dtype == torch.long and t.min() >= 1 and t.max() <= 10
    freq = torch.bincount(t, minlength=11)[1:].double().numpy() / len(t)
    np.testing.assert_allclose(freq, mass, atol=0.004)
    # on the 1000-step schedule half the draws lie on each side of s = 1/2, the middle of the path
    long = D.linear_schedule(1000)
    t_long = D.sample_t(50_000, 1000, generator=gen(6), dist="logit_normal", alpha_bar=long.alpha_bar)
    s_median = diffusion_time(long.alpha_bar.double())[t_long.median()].item()
    assert s_median == pytest.approx(0.5, abs=0.02)
    # uniform stays Algorithm 1's draw; the loss draws t from the distribution it is given
    torch.testing.assert_close(D.sample_t(6, 10, generator=gen(2)), torch.randint(1, 11, (6,), generator=gen(2)))
    seen = {}

    def model(x_t, t):
        seen["t"] = t
        return torch.zeros_like(x_t)

    D.ddpm_loss(model, torch.randn(8, 2), sched.alpha_bar, generator=gen(4), time_dist="logit_normal")
    torch.testing.assert_close(seen["t"], D.sample_t(8, 10, generator=gen(4), dist="logit_normal", alpha_bar=sched.alpha_bar))
    with pytest.raises(ValueError, match="needs the schedule's alpha_bar"):
        D.sample_t(4, 10, dist="logit_normal")
    with pytest.raises(ValueError, match="T \\+ 1 = 11 entries"):
        D.sample_t(4, 10, dist="logit_normal", alpha_bar=D.linear_schedule(20).alpha_bar)
    with pytest.raises(ValueError, match="dist"):
        D.sample_t(4, 10, dist="cosine")


def test_ddpm_loss_passes_labels_and_checks_shapes(sched):
    x0 = torch.randn(3, 2)
    y = torch.tensor([0, 1, 2])
    got = {}

    def model(x_t, t, labels):
        got["y"] = labels
        return torch.zeros_like(x_t)

    D.ddpm_loss(model, x0, sched.alpha_bar, y=y, generator=gen(0))
    assert torch.equal(got["y"], y)
    with pytest.raises(ValueError, match="eps_model must return"):
        D.ddpm_loss(lambda x_t, t: x_t[:, :1], x0, sched.alpha_bar, generator=gen(0))
    with pytest.raises(ValueError, match=r"t must lie in 1\.\.1000"):
        D.ddpm_loss(lambda x_t, t: x_t, x0, sched.alpha_bar, t=torch.tensor([0, 1, 2]))


def test_drop_labels():
    y = torch.arange(10).repeat(10_000)
    out = D.drop_labels(y, 0.2, null_label=10, generator=gen(0))
    dropped = out == 10
    assert abs(dropped.float().mean().item() - 0.2) < 0.01
    assert torch.equal(out[~dropped], y[~dropped])
    assert torch.equal(D.drop_labels(y, 0.0, 10), y) and bool((D.drop_labels(y, 1.0, 10) == 10).all())
    with pytest.raises(ValueError, match="p_uncond"):
        D.drop_labels(y, 1.5, 10)


# ------------------------------------------------------------------------------------ DDPM sampling


def test_ddpm_sample_step_matches_brute_force_formula(sched):
    g = gen(9)
    x_t, eps_hat, z = (torch.randn(3, 2, generator=g) for _ in range(3))
    for t in (1, 2, 500, 1000):
        out = D.ddpm_sample_step(x_t, t, eps_hat, sched.beta, sched.alpha_bar, z)
        b, ab = sched.beta.double()[t].item(), sched.alpha_bar.double()[t].item()
        expected = np.zeros((3, 2))
        for i in range(3):
            for j in range(2):
                mean = (x_t[i, j].item() - b / math.sqrt(1 - ab) * eps_hat[i, j].item()) / math.sqrt(1 - b)
                expected[i, j] = mean + (math.sqrt(b) * z[i, j].item() if t > 1 else 0.0)
        assert np.allclose(out.double().numpy(), expected, rtol=1e-4, atol=1e-5), t


def test_ddpm_sample_step_mean_is_the_posterior_mean_at_x0_hat(sched):
    g = gen(10)
    x_t, eps_hat = torch.randn(4, 1, 3, 3, generator=g), torch.randn(4, 1, 3, 3, generator=g)
    t = torch.tensor([2, 20, 200, 1000])
    mean = D.ddpm_sample_step(x_t, t, eps_hat, sched.beta, sched.alpha_bar, torch.zeros_like(x_t))
    post_mean, _ = D.q_posterior(D.predict_x0(x_t, t, eps_hat, sched.alpha_bar), x_t, t, sched)
    assert torch.allclose(mean, post_mean, rtol=1e-3, atol=1e-4)
    # a per-sample t tensor: no noise exactly where t == 1
    z = torch.ones_like(x_t)
    mixed = D.ddpm_sample_step(x_t, torch.tensor([1, 2, 1, 3]), eps_hat, sched.beta, sched.alpha_bar, z)
    no_noise = D.ddpm_sample_step(x_t, torch.tensor([1, 2, 1, 3]), eps_hat, sched.beta, sched.alpha_bar, torch.zeros_like(z))
    assert torch.equal(mixed[[0, 2]], no_noise[[0, 2]]) and not torch.equal(mixed[[1, 3]], no_noise[[1, 3]])
    # sigma_t^2 = beta_tilde instead of beta
    s2 = D.ddpm_sample_step(x_t, t, eps_hat, sched.beta, sched.alpha_bar, z, sigma2=sched.beta_tilde)
    assert torch.allclose(s2 - mean, D.extract(sched.beta_tilde, t, x_t).sqrt().expand_as(x_t))


def _point_mass_oracle(x_star, alpha_bar):
    """The exact noise predictor when the data are one point x*: eps = (x_t - sqrt(ab) x*) / sqrt(1 - ab)."""

    def eps_model(x_t, t):
        ab = D.extract(alpha_bar, t, x_t)
        return (x_t - ab.sqrt() * x_star) / (1 - ab).sqrt()

    return eps_model


def test_ddpm_sample_ends_exactly_on_a_point_mass(sched):
    x_star = torch.tensor([0.7, -0.3, 0.1]).view(1, 3, 1, 1)
    out = D.ddpm_sample(_point_mass_oracle(x_star, sched.alpha_bar), (8, 3, 1, 1), sched, generator=gen(11))
    assert torch.allclose(out, x_star.expand(8, 3, 1, 1), atol=1e-4)  # no noise added at t = 1


def test_ddpm_sample_draws_noise_in_the_documented_order(sched):
    small = D.linear_schedule(T=5)
    calls = []

    def zero_model(x_t, t):
        calls.append(int(t[0]))
        return torch.zeros_like(x_t)

    out, chain = D.ddpm_sample(zero_model, (2, 3), small, generator=gen(12), record=(5, 1))
    assert calls == [5, 4, 3, 2, 1] and set(chain) == {5, 1}
    g = gen(12)
    x = torch.randn(2, 3, generator=g)
    for t in range(5, 0, -1):
        z = torch.randn(2, 3, generator=g) if t > 1 else torch.zeros(2, 3)
        x = D.ddpm_sample_step(x, t, torch.zeros_like(x), small.beta, small.alpha_bar, z)
    assert torch.equal(out, x)


def _gaussian_oracle(mu, s2, alpha_bar):
    """Exact E[eps | x_t] for 1-D data x0 ~ N(mu, s2): Cov(eps, x_t) / Var(x_t) (x_t - E x_t)."""

    def eps_model(x_t, t):
        ab = D.extract(alpha_bar, t, x_t).double()
        return ((1 - ab).sqrt() * (x_t.double() - ab.sqrt() * mu) / (ab * s2 + 1 - ab)).to(x_t.dtype)

    return eps_model


def test_ddpm_sample_recovers_a_gaussian_with_the_exact_noise_predictor(sched):
    short = D.linear_schedule(T=200, beta_T=0.1)  # alpha_bar_T = 4e-5: few steps keep the test fast
    mu, s2 = 0.8, 0.09
    x = D.ddpm_sample(_gaussian_oracle(mu, s2, short.alpha_bar), (20_000, 1), short, generator=gen(13))
    assert abs(x.mean().item() - mu) < 0.01 and abs(x.var().item() - s2) < 0.006


def test_ddim_is_the_affine_map_predicted_for_gaussian_data(sched):
    # For x0 ~ N(mu, s2) the exact eps(x_t) is affine in x_t, so each DDIM step (eta = 0) is an affine
    # map x_s = c_x x_t + c_0; composing them by hand gives the whole sampler x_T -> x_0.
    mu, s2 = 0.8, 0.09
    ab = [float(a) for a in sched.alpha_bar.double()]
    for n_steps in (10, 100):
        tau = list(range(0, 1001, 1000 // n_steps))
        slope, intercept = 1.0, 0.0
        for t, s in zip(tau[:0:-1], tau[-2::-1]):
            a, b = ab[t], ab[s]
            k = math.sqrt(1 - a) / (a * s2 + 1 - a)  # eps = k (x_t - sqrt(a) mu)
            cx = math.sqrt(b) * (1 - math.sqrt(1 - a) * k) / math.sqrt(a) + math.sqrt(1 - b) * k
            c0 = (math.sqrt(b) * math.sqrt(1 - a) * k - math.sqrt(1 - b) * k * math.sqrt(a)) * mu
            slope, intercept = cx * slope, cx * intercept + c0
        x_T = torch.tensor([[0.0], [1.0], [-2.0]])
        out = D.ddim_sample(_gaussian_oracle(mu, s2, sched.alpha_bar), (3, 1), sched.alpha_bar, n_steps, x_T=x_T)
        assert torch.allclose(out.flatten().double(), intercept + slope * x_T.flatten().double(), atol=2e-4), n_steps
    # few steps shrink the variance (slope^2 = 0.082 < 0.09 at 100 steps): DDIM is exact only as n_steps -> T
    assert 0.07 < slope**2 < 0.09


# ------------------------------------------------------------------------------------ DDIM


def test_ddim_timesteps():
    assert D.ddim_timesteps(1000, 10).tolist() == list(range(0, 1001, 100))
    assert D.ddim_timesteps(10, 3).tolist() == [0, 3, 7, 10]
    assert D.ddim_timesteps(5, 5).tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="n_steps must be at most"):
        D.ddim_timesteps(10, 11)


def test_ddim_step_matches_its_equation(sched):
    g = gen(15)
    x_t, eps_hat, z = (torch.randn(2, 3, generator=g) for _ in range(3))
    t, s, eta = 700, 600, 0.5
    a_t, a_s = sched.alpha_bar.double()[t].item(), sched.alpha_bar.double()[s].item()
    x0 = (x_t.double() - math.sqrt(1 - a_t) * eps_hat.double()) / math.sqrt(a_t)
    sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
    expected = math.sqrt(a_s) * x0 + math.sqrt(1 - a_s - sigma**2) * eps_hat.double() + sigma * z.double()
    out = D.ddim_step(x_t, t, s, eps_hat, sched.alpha_bar, eta=eta, z=z)
    assert torch.allclose(out.double(), expected, rtol=1e-4, atol=1e-5)
    # t_prev = 0 returns x0_hat
    assert torch.allclose(D.ddim_step(x_t, t, 0, eps_hat, sched.alpha_bar).double(), x0, rtol=1e-4, atol=1e-5)


def test_ddim_eta_one_is_ddpm_with_beta_tilde(sched):
    g = gen(16)
    x_t, eps_hat, z = (torch.randn(4, 2, generator=g) for _ in range(3))
    for t in (2, 100, 1000):
        ddim = D.ddim_step(x_t, t, t - 1, eps_hat, sched.alpha_bar, eta=1.0, z=z)
        ddpm = D.ddpm_sample_step(x_t, t, eps_hat, sched.beta, sched.alpha_bar, z, sigma2=sched.beta_tilde)
        assert torch.allclose(ddim, ddpm, rtol=1e-3, atol=1e-4), t


@pytest.mark.parametrize("n_steps", [1, 7, 50, 1000])
def test_ddim_is_deterministic_and_exact_on_a_point_mass(sched, n_steps):
    x_star = torch.tensor([[0.5, -1.0]])
    oracle = _point_mass_oracle(x_star, sched.alpha_bar)
    x_T = torch.randn(16, 2, generator=gen(17))
    a = D.ddim_sample(oracle, (16, 2), sched.alpha_bar, n_steps, x_T=x_T, generator=gen(1))
    b = D.ddim_sample(oracle, (16, 2), sched.alpha_bar, n_steps, x_T=x_T, generator=gen(2))
    assert torch.equal(a, b)  # eta = 0: no noise is drawn after x_T
    assert torch.allclose(a, x_star.expand(16, 2), atol=1e-4)


def test_ddim_sample_calls_the_model_on_the_subsequence(sched):
    calls = []

    def model(x_t, t):
        calls.append(int(t[0]))
        return torch.zeros_like(x_t)

    _, chain = D.ddim_sample(model, (2, 2), sched.alpha_bar, 4, generator=gen(0), record=(1000, 250))
    assert calls == [1000, 750, 500, 250] and set(chain) == {1000, 250}


def test_ddim_step_rejects_bad_arguments(sched):
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="t_prev must be smaller"):
        D.ddim_step(x, 10, 10, x, sched.alpha_bar)
    with pytest.raises(ValueError, match="z .* is required"):
        D.ddim_step(x, 10, 5, x, sched.alpha_bar, eta=1.0)
    with pytest.raises(ValueError, match="eps_hat must have the shape of x_t"):
        D.ddim_step(x, 10, 5, torch.zeros(2, 3), sched.alpha_bar)


# ------------------------------------------------------------------------------------ guidance


def test_guided_eps_formula():
    c, u = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])
    assert torch.equal(D.guided_eps(c, u, 0.0), c)
    assert torch.equal(D.guided_eps(c, u, -1.0), u)
    assert torch.allclose(D.guided_eps(c, u, 3.0), 4 * c - 3 * u)


def test_guided_model_batches_both_passes():
    calls = []

    def model(x_t, t, y):
        calls.append(y.clone())
        return x_t * (y.float() + 1).view(-1, 1)

    y = torch.tensor([0, 3])
    x, t = torch.ones(2, 1), torch.tensor([5, 5])
    out = D.guided_model(model, y, 2.0, null_label=10)(x, t)
    assert torch.equal(calls[0], torch.tensor([0, 3, 10, 10]))
    cond, uncond = torch.tensor([[1.0], [4.0]]), torch.tensor([[11.0], [11.0]])
    assert torch.allclose(out, 3 * cond - 2 * uncond)
    calls.clear()
    assert torch.equal(D.guided_model(model, y, 0.0, null_label=10)(x, t), cond) and len(calls[0]) == 2


# ------------------------------------------------------------------------------ v-prediction


def test_v_target_is_a_rotation_of_x0_and_eps_and_eps_from_v_inverts_it(sched):
    g = gen(11)
    x0, eps = torch.randn(5, 1, 4, 4, generator=g), torch.randn(5, 1, 4, 4, generator=g)
    t = torch.tensor([1, 10, 300, 999, 1000])
    ab = sched.alpha_bar[t].double().view(5, 1, 1, 1)
    x_t = D.q_sample(x0, t, eps, sched.alpha_bar)
    v = D.v_target(x0, t, eps, sched.alpha_bar)
    # Salimans & Ho (2022): v = sqrt(ab) eps - sqrt(1 - ab) x0, in float64 by hand
    torch.testing.assert_close(v.double(), ab.sqrt() * eps.double() - (1 - ab).sqrt() * x0.double(), rtol=1e-5, atol=1e-6)
    # a rotation: (x_t, v) has the norm of (x0, eps), and x0 = sqrt(ab) x_t - sqrt(1 - ab) v
    torch.testing.assert_close(x_t**2 + v**2, x0**2 + eps**2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ab.sqrt() * x_t.double() - (1 - ab).sqrt() * v.double(), x0.double(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(D.eps_from_v(x_t, t, v, sched.alpha_bar), eps, rtol=1e-4, atol=1e-5)


def test_v_loss_matches_its_equation_and_is_the_eps_loss_weighted_by_one_over_alpha_bar(sched):
    x0, t, eps, W = _loss_batch(12, [1, 200, 700, 1000])
    v_model = lambda x_t, t_in: W * x_t  # noqa: E731
    loss = D.ddpm_loss(v_model, x0, sched.alpha_bar, t=t, eps=eps, prediction="v")
    ab = sched.alpha_bar[t].view(4, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
    per_sample_v = ((W * x_t - v) ** 2).flatten(1).sum(1)
    torch.testing.assert_close(loss, per_sample_v.mean() / 9, rtol=1e-5, atol=0)
    # the noise that the prediction implies, and the eps-loss of it, weighted by 1 / alpha_bar
    eps_hat = D.eps_from_v(x_t, t, W * x_t, sched.alpha_bar)
    per_sample_eps = ((eps_hat - eps) ** 2).flatten(1).sum(1)
    torch.testing.assert_close(per_sample_v, per_sample_eps / ab.flatten(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="prediction must be 'eps' or 'v'"):
        D.ddpm_loss(v_model, x0, sched.alpha_bar, t=t, eps=eps, prediction="x0")


def test_a_v_network_wrapped_as_an_eps_network_samples_a_point_mass_exactly(sched):
    """The exact velocity of a point mass x*, wrapped, drives DDIM (and guidance) to x*."""
    x_star = torch.tensor([[0.7, -0.4]])

    class ExactV(torch.nn.Module):
        null_label = 3

        def forward(self, x_t, t, y=None):
            ab = D.extract(sched.alpha_bar, t, x_t)
            eps = (x_t - ab.sqrt() * x_star) / (1 - ab).sqrt()
            return ab.sqrt() * eps - (1 - ab).sqrt() * x_star

    wrapped = D.EpsFromV(ExactV(), sched.alpha_bar)
    assert wrapped.null_label == 3  # attributes read through
    x = D.ddim_sample(lambda x_t, t: wrapped(x_t, t), (64, 2), sched.alpha_bar, 10, generator=gen(13))
    torch.testing.assert_close(x, x_star.expand(64, 2), rtol=0, atol=1e-3)
    guided = D.guided_model(wrapped, torch.zeros(64, dtype=torch.long), 2.0, wrapped.null_label)
    x = D.ddim_sample(guided, (64, 2), sched.alpha_bar, 10, generator=gen(13))
    torch.testing.assert_close(x, x_star.expand(64, 2), rtol=0, atol=1e-3)


def test_ddim_step_with_clamped_x0_moves_along_the_clamped_prediction(sched):
    """clip_x0: x0_hat clamped to [-c, c], the noise recomputed from it, then DDIM's update (float64 by hand)."""
    g = gen(21)
    x_t = 3 * torch.randn(6, 1, 2, 2, generator=g)
    eps_hat = torch.randn(6, 1, 2, 2, generator=g)
    t, s = torch.tensor([1000, 900, 500, 100, 20, 5]), torch.tensor([950, 600, 250, 0, 10, 0])
    out = D.ddim_step(x_t, t, s, eps_hat, sched.alpha_bar, clip_x0=1.0).double()
    a_t = sched.alpha_bar[t].double().view(6, 1, 1, 1)
    a_s = sched.alpha_bar[s].double().view(6, 1, 1, 1)
    x0 = ((x_t.double() - (1 - a_t).sqrt() * eps_hat.double()) / a_t.sqrt())
    assert (x0.abs() > 1).any()  # the clamp is exercised
    x0c = x0.clamp(-1, 1)
    eps_c = (x_t.double() - a_t.sqrt() * x0c) / (1 - a_t).sqrt()
    torch.testing.assert_close(out, a_s.sqrt() * x0c + (1 - a_s).sqrt() * eps_c, rtol=1e-4, atol=1e-4)
    assert out[3].abs().max() <= 1 and out[5].abs().max() <= 1  # at s = 0 the step returns the clamped x0_hat
    unclamped = D.ddim_step(x_t, t, s, eps_hat, sched.alpha_bar).double()
    inside = (x0.abs() <= 1).flatten(1).all(1)  # samples whose prediction was inside move as without the clamp
    torch.testing.assert_close(out[inside], unclamped[inside], rtol=1e-4, atol=1e-4)
