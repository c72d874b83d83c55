"""Public checks for the exercises of chapter 12 (diffusion models).

Each check compares the student's function with :mod:`gencourse.diffusion` and, when the answer
matches a classic mistake, says which: an off-by-one in :math:`t` (:math:`\\bar\\alpha_{t-1}` used
where :math:`\\bar\\alpha_t` is meant), a missing square root, :math:`\\bar\\alpha_t` where
:math:`\\alpha_t` is meant, noise added at the last step, a sum where the mean is meant.
"""

from __future__ import annotations

from .checks import diagnose as _diagnose
from .checks import expect, expect_close, expect_shape, register


def _schedule(T: int = 50):
    from gencourse import diffusion

    return diffusion.linear_schedule(T=T, beta_1=1e-3, beta_T=0.2)


def _batch(seed: int = 0, B: int = 4):
    import torch

    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, 1, 3, 3, generator=g) for _ in range(3))


def _bc(a, t):
    """``a[t]`` as ``(B, 1, 1, 1)``."""
    return a[t].view(-1, 1, 1, 1)


@register("diffusion.q_sample")
def _q_sample(q_sample):
    import torch

    from gencourse import diffusion

    sched = _schedule()
    ab = sched.alpha_bar
    x0, eps, _ = _batch(0)
    t = torch.tensor([1, 7, 30, 50])
    try:
        got = q_sample(x0, t, eps, ab)
    except NotImplementedError:
        raise
    except RuntimeError as err:
        raise AssertionError(
            f"q_sample raised {err}; alpha_bar[t] has shape (B,): reshape it to (B, 1, 1, 1) "
            "(.view(-1, 1, 1, 1)) so that it broadcasts over the pixels of each image"
        ) from None
    expect_shape(got, tuple(x0.shape), what="q_sample(x0, t, eps, alpha_bar)")
    expected = diffusion.q_sample(x0, t, eps, ab)
    _diagnose(
        got,
        {
            "you used alpha_bar[t - 1] where alpha_bar[t] is meant (off by one in t; arrays are indexed by t = 0..T)": _bc(ab, t - 1).sqrt() * x0
            + (1 - _bc(ab, t - 1)).sqrt() * eps,
            "you used alpha_bar[t + 1] where alpha_bar[t] is meant (off by one in t)": _bc(ab, (t + 1).clamp(max=50)).sqrt() * x0
            + (1 - _bc(ab, (t + 1).clamp(max=50))).sqrt() * eps,
            "the square roots are missing: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps": _bc(ab, t) * x0 + (1 - _bc(ab, t)) * eps,
            "the square root on the noise term is missing: its standard deviation is sqrt(1 - alpha_bar_t)": _bc(ab, t).sqrt() * x0
            + (1 - _bc(ab, t)) * eps,
            "the square root on the signal term is missing: the mean is sqrt(alpha_bar_t) x0": _bc(ab, t) * x0 + (1 - _bc(ab, t)).sqrt() * eps,
            "you used alpha_t = 1 - beta_t instead of the cumulative product alpha_bar_t": _bc(sched.alpha, t).sqrt() * x0
            + (1 - _bc(sched.alpha, t)).sqrt() * eps,
            "x0 and eps are swapped": _bc(ab, t).sqrt() * eps + (1 - _bc(ab, t)).sqrt() * x0,
        },
        "q_sample",
        expected,
    )
    expect_close(
        got,
        expected,
        what="q_sample(x0, t, eps, alpha_bar)",
        rtol=1e-4,
        atol=1e-5,
        hint="x_t = sqrt(alpha_bar[t]) * x0 + sqrt(1 - alpha_bar[t]) * eps, with alpha_bar[t] of shape (B, 1, 1, 1)",
    )
    expect_close(q_sample(x0, torch.zeros(4, dtype=torch.long), eps, ab), x0, what="q_sample at t = 0 (alpha_bar_0 = 1)", rtol=1e-5, atol=1e-6)


@register("diffusion.ddpm_loss")
def _ddpm_loss(ddpm_loss):
    import torch

    from gencourse import diffusion

    sched = _schedule()
    ab = sched.alpha_bar
    x0, eps, W = _batch(1)
    t = torch.tensor([1, 2, 25, 50])
    seen = {}

    def eps_model(x_t, t_in):
        seen["t"] = t_in
        return W * x_t

    got = ddpm_loss(eps_model, x0, t, eps, ab)
    expect("t" in seen, "ddpm_loss must call eps_model(x_t, t)")
    t_seen = torch.as_tensor(seen["t"])
    expected = diffusion.ddpm_loss(eps_model, x0, ab, t=t, eps=eps)
    expect(
        torch.is_tensor(got) and got.numel() == 1,
        f"ddpm_loss must return a scalar tensor, got {type(got).__name__} {tuple(got.shape) if torch.is_tensor(got) else ''}",
    )
    x_t = _bc(ab, t).sqrt() * x0 + (1 - _bc(ab, t)).sqrt() * eps
    x_t_prev = _bc(ab, t - 1).sqrt() * x0 + (1 - _bc(ab, t - 1)).sqrt() * eps
    _diagnose(
        got,
        {
            "the loss is the mean over the batch AND the pixels (F.mse_loss); you summed over the pixels": ((eps - W * x_t) ** 2)
            .flatten(1)
            .sum(1)
            .mean(),
            "the loss is the mean, not the sum, of the squared errors": ((eps - W * x_t) ** 2).sum(),
            "x_t must be built with alpha_bar[t], not alpha_bar[t - 1] (off by one in t)": ((eps - W * x_t_prev) ** 2).mean(),
            "the target is the noise eps, not x0": ((x0 - W * x_t) ** 2).mean(),
            "the square is missing: use the squared error (eps - eps_theta)^2": (eps - W * x_t).abs().mean(),
        },
        "ddpm_loss",
        expected,
    )
    expect(
        t_seen.shape == t.shape and torch.equal(t_seen.long(), t),
        f"eps_model must be called with the same t that noised x0 (got t = {t_seen.tolist()}, expected {t.tolist()})",
    )
    expect_close(
        got, expected, what="ddpm_loss", rtol=1e-4, atol=1e-6, hint="loss = mean((eps - eps_model(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t))^2)"
    )
    x0.requires_grad_(False)
    W.requires_grad_(True)
    loss = ddpm_loss(eps_model, x0, t, eps, ab)
    expect(
        torch.is_tensor(loss) and loss.requires_grad and W.grad is None and (loss.backward() or W.grad is not None),
        "the loss carries no gradient to the model: do not detach eps_model's output or call .item()",
    )


@register("diffusion.ddpm_step")
def _ddpm_step(ddpm_step):

    from gencourse import diffusion

    sched = _schedule()
    beta, ab, alpha = sched.beta, sched.alpha_bar, sched.alpha
    x_t, eps_hat, z = _batch(2)
    for t in (7, 50):
        got = ddpm_step(x_t, t, eps_hat, beta, ab, z)
        expect_shape(got, tuple(x_t.shape), what=f"ddpm_step at t = {t}")
        expected = diffusion.ddpm_sample_step(x_t, t, eps_hat, beta, ab, z)
        mean = (x_t - beta[t] / (1 - ab[t]).sqrt() * eps_hat) / alpha[t].sqrt()
        _diagnose(
            got,
            {
                "the noise is sigma_t z with sigma_t = sqrt(beta_t), not beta_t": mean + beta[t] * z,
                "divide by sqrt(alpha_t) (one step), not sqrt(alpha_bar_t)": (x_t - beta[t] / (1 - ab[t]).sqrt() * eps_hat) / ab[t].sqrt()
                + beta[t].sqrt() * z,
                "the noise coefficient is beta_t / sqrt(1 - alpha_bar_t): the square root is missing": (x_t - beta[t] / (1 - ab[t]) * eps_hat)
                / alpha[t].sqrt()
                + beta[t].sqrt() * z,
                "the noise coefficient is beta_t / sqrt(1 - alpha_bar_t), with alpha_bar (not alpha) under the root": (
                    x_t - beta[t] / (1 - alpha[t]).sqrt() * eps_hat
                )
                / alpha[t].sqrt()
                + beta[t].sqrt() * z,
                "off by one in t: use beta[t] and alpha_bar[t], not index t - 1": (x_t - beta[t - 1] / (1 - ab[t - 1]).sqrt() * eps_hat)
                / (1 - beta[t - 1]).sqrt()
                + beta[t - 1].sqrt() * z,
                "the random term sigma_t z is missing for t > 1": mean,
            },
            f"ddpm_step at t = {t}",
            expected,
        )
        expect_close(
            got,
            expected,
            what=f"ddpm_step at t = {t}",
            rtol=1e-4,
            atol=1e-5,
            hint="x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_hat) / sqrt(alpha_t) + sqrt(beta_t) * z",
        )
    got = ddpm_step(x_t, 1, eps_hat, beta, ab, z)
    last = (x_t - beta[1] / (1 - ab[1]).sqrt() * eps_hat) / alpha[1].sqrt()
    _diagnose(
        got, {"no noise is added at the last step (t = 1): Algorithm 2 returns the mean there": last + beta[1].sqrt() * z}, "ddpm_step at t = 1"
    )
    expect_close(
        got,
        last,
        what="ddpm_step at t = 1",
        rtol=1e-4,
        atol=1e-5,
        hint="at t = 1, x_0 = (x_1 - beta_1 / sqrt(1 - alpha_bar_1) eps_hat) / sqrt(alpha_1)",
    )


@register("diffusion.ddim_step")
def _ddim_step(ddim_step):
    import torch

    from gencourse import diffusion

    sched = _schedule()
    ab = sched.alpha_bar
    x_t, eps_hat, _ = _batch(3)
    for t, s in ((40, 30), (10, 9), (50, 25)):
        got = ddim_step(x_t, t, s, eps_hat, ab)
        expect_shape(got, tuple(x_t.shape), what=f"ddim_step from t = {t} to {s}")
        expected = diffusion.ddim_step(x_t, t, s, eps_hat, ab)
        x0 = (x_t - (1 - ab[t]).sqrt() * eps_hat) / ab[t].sqrt()
        _diagnose(
            got,
            {
                "alpha_bar_t and alpha_bar_{t_prev} are swapped: x0_hat uses alpha_bar[t], the new point alpha_bar[t_prev]": ab[t].sqrt()
                * ((x_t - (1 - ab[s]).sqrt() * eps_hat) / ab[s].sqrt())
                + (1 - ab[t]).sqrt() * eps_hat,
                "the new point must use alpha_bar[t_prev], not alpha_bar[t - 1] (DDIM skips steps)": ab[t - 1].sqrt() * x0
                + (1 - ab[t - 1]).sqrt() * eps_hat,
                "x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t): a square root is missing": ab[s].sqrt()
                * ((x_t - (1 - ab[t]) * eps_hat) / ab[t].sqrt())
                + (1 - ab[s]).sqrt() * eps_hat,
                "the direction term is sqrt(1 - alpha_bar_{t_prev}) eps_hat: the square root is missing": ab[s].sqrt() * x0 + (1 - ab[s]) * eps_hat,
                "the direction term sqrt(1 - alpha_bar_{t_prev}) eps_hat is missing": ab[s].sqrt() * x0,
            },
            f"ddim_step from t = {t} to {s}",
            expected,
        )
        expect_close(
            got,
            expected,
            what=f"ddim_step from t = {t} to {s}",
            rtol=1e-4,
            atol=1e-5,
            hint="x_s = sqrt(ab_s) * x0_hat + sqrt(1 - ab_s) * eps_hat with x0_hat = (x_t - sqrt(1 - ab_t) eps_hat) / sqrt(ab_t)",
        )
    # with the exact noise of a point mass, one step from t = T to 0 lands on the point
    x_star = torch.full((1, 1, 3, 3), 0.3)
    x_T = torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(4))
    eps_true = (x_T - ab[50].sqrt() * x_star) / (1 - ab[50]).sqrt()
    expect_close(
        ddim_step(x_T, 50, 0, eps_true, ab),
        x_star.expand(4, 1, 3, 3),
        what="one DDIM step from T to 0 with the true noise",
        rtol=1e-4,
        atol=1e-4,
        hint="with the true noise, x0_hat is exact, and at t_prev = 0 (alpha_bar_0 = 1) x_s = x0_hat",
    )


@register("diffusion.guided_eps")
def _guided_eps(guided_eps):
    import torch

    c, u = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 1.0, 0.5])
    for w in (0.0, 3.0):
        got = guided_eps(c, u, w)
        _diagnose(
            got,
            {
                "here w = 0 is the conditional model, eps = (1 + w) eps_cond - w eps_uncond; you used the other convention "
                "eps_uncond + w (eps_cond - eps_uncond), which is this one with w - 1": u + w * (c - u),
                "the guidance pushes away from the unconditional prediction: eps = eps_cond + w (eps_cond - eps_uncond), not minus": c - w * (c - u),
            },
            f"guided_eps with w = {w}",
            (1 + w) * c - w * u,
        )
        expect_close(
            got, (1 + w) * c - w * u, what=f"guided_eps with w = {w}", rtol=1e-6, atol=1e-7, hint="eps_tilde = (1 + w) * eps_cond - w * eps_uncond"
        )


@register("diffusion.optimal_eps")
def _optimal_eps(optimal_eps):
    import torch

    sched = _schedule()
    ab = sched.alpha_bar
    g = torch.Generator().manual_seed(5)
    x_t = 2 * torch.randn(3, 1, 2, 2, generator=g)
    got = optimal_eps(x_t, 50, 0.0, 1.0, ab)
    expect(isinstance(got, torch.Tensor), f"optimal_eps must return a tensor, got {type(got).__name__}")
    expect_shape(got, tuple(x_t.shape), what="optimal_eps(x_t, t, m, s, alpha_bar)")
    for t, m, s in ((10, 0.7, 0.3), (40, -1.0, 2.0)):
        a = ab[t]
        got = optimal_eps(x_t, t, m, s, ab)
        want = (1 - a).sqrt() * (x_t - a.sqrt() * m) / (a * s**2 + 1 - a)
        _diagnose(
            got,
            {
                "the mean of x_t is sqrt(alpha_bar_t) m: subtract it from x_t": (1 - a).sqrt() * x_t / (a * s**2 + 1 - a),
                "Var x_t = alpha_bar_t s^2 + (1 - alpha_bar_t): the noise's share of the variance is missing": (1 - a).sqrt()
                * (x_t - a.sqrt() * m)
                / (a * s**2),
                "Cov(eps, x_t) = sqrt(1 - alpha_bar_t), not 1 - alpha_bar_t": (1 - a) * (x_t - a.sqrt() * m) / (a * s**2 + 1 - a),
                "divide by the variance of x_t, not by its standard deviation": (1 - a).sqrt() * (x_t - a.sqrt() * m) / (a * s**2 + 1 - a).sqrt(),
                "s is the standard deviation: the variance of x0 is s^2": (1 - a).sqrt() * (x_t - a.sqrt() * m) / (a * s + 1 - a),
                "this is E[x0 | x_t], not E[eps | x_t]": m + a.sqrt() * s**2 * (x_t - a.sqrt() * m) / (a * s**2 + 1 - a),
            },
            f"optimal_eps at t = {t}, m = {m}, s = {s}",
            want,
        )
        expect_close(
            got,
            want,
            what=f"optimal_eps at t = {t}, m = {m}, s = {s}",
            rtol=1e-4,
            atol=1e-6,
            hint="E[eps | x_t] = Cov(eps, x_t) / Var(x_t) * (x_t - E x_t)",
        )
    expect_close(
        optimal_eps(x_t, 50, 0.0, 1.0, ab),
        (1 - ab[50]).sqrt() * x_t,
        what="optimal_eps at m = 0, s = 1",
        rtol=1e-4,
        atol=1e-6,
        hint="for data N(0, 1), x_t ~ N(0, 1) at every t and E[eps | x_t] = sqrt(1 - alpha_bar_t) x_t",
    )


TOY_TARGET_MODES, TOY_TARGET_HQ, TOY_TARGET_MSE = 7, 0.25, 0.30


def toy_outcome(eps_model, *, n: int = 2000, seed: int = 777) -> dict:
    """What exercise 12.7's hidden test measures of a trained ``eps_model`` on the ring of eight Gaussians
    (radius 2, std 0.05), with ``T = 100`` and the linear schedule ``beta`` from 1e-3 to 0.2:

    * ``modes`` and ``high_quality``: ``n`` samples of Algorithm 2 written out here (the grader's own loop
      and noise), the modes holding at least 25 of them within 0.3 (six standard deviations), and the
      share of samples within 0.3 of a mode;
    * ``heldout_mse``: the noise-prediction error ``E||eps - eps_theta(x_t, t)||^2`` per coordinate under
      the true forward process ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps``, averaged over
      every ``t`` in ``1..T`` (100 fresh points each). A network trained on another forward process
      (``alpha_t`` in place of ``alpha_bar_t``, missing square roots) samples the ring by luck of the
      sampler at best, but predicts the noise of the true process badly.
    """
    import math

    import torch

    from gencourse import diffusion

    sched = diffusion.linear_schedule(T=100, beta_1=1e-3, beta_T=0.2)
    beta, ab, T = sched.beta, sched.alpha_bar, sched.T
    means = torch.stack([2 * torch.tensor([math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)]) for k in range(8)])
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 1, 1, generator=g)
    with torch.no_grad():
        for t in range(T, 0, -1):
            e = eps_model(x, torch.full((n,), t, dtype=torch.long))
            expect(isinstance(e, torch.Tensor) and tuple(e.shape) == (n, 2, 1, 1),
                   f"eps_model(x_t, t) must return a tensor of shape ({n}, 2, 1, 1), got {tuple(getattr(e, 'shape', ()))}")
            x = (x - beta[t] / (1 - ab[t]).sqrt() * e) / (1 - beta[t]).sqrt()
            if t > 1:
                x = x + beta[t].sqrt() * torch.randn(n, 2, 1, 1, generator=g)
        expect(bool(torch.isfinite(x).all()), "the samples of Algorithm 2 with your eps_model are not finite")
        dmin, k = torch.cdist(x.flatten(1).double(), means.double()).min(1)
        good = dmin <= 0.3
        modes = int((torch.bincount(k[good], minlength=8) >= 25).sum())
        per_t = 100
        t = torch.arange(1, T + 1).repeat_interleave(per_t)
        k0 = torch.randint(0, 8, (len(t),), generator=g)
        x0 = (means[k0] + 0.05 * torch.randn(len(t), 2, generator=g)).view(-1, 2, 1, 1)
        eps = torch.randn(x0.shape, generator=g)
        a = ab[t].view(-1, 1, 1, 1)
        e = eps_model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t)
        mse = float(((eps - e) ** 2).mean())
    return {"modes": modes, "high_quality": round(good.double().mean().item(), 4),
            "radius": round(x.flatten(1).norm(dim=1).mean().item(), 3), "heldout_mse": round(mse, 4)}


def toy_passes(out: dict) -> bool:
    """Whether :func:`toy_outcome`'s measures meet exercise 12.7's target."""
    return out["modes"] >= TOY_TARGET_MODES and out["high_quality"] >= TOY_TARGET_HQ and out["heldout_mse"] <= TOY_TARGET_MSE



@register("diffusion.toy_ddpm")
def _toy_ddpm(eps_model, losses):
    from ._training import expect_losses_went_down, expect_target

    expect_losses_went_down(losses)
    out = toy_outcome(eps_model, seed=0)
    hint = (
        f"the samples lie at mean radius {out['radius']:.2f} (the ring's is 2): build x_t with alpha_bar[t] (not alpha[t]), "
        "with the square roots, predict the noise eps (not x0), and draw t from 1..T"
    )
    expect_target(
        out["modes"],
        TOY_TARGET_MODES - 1,
        what=f"modes captured (of 8; {out['high_quality']:.0%} of the samples within 0.3 of a mode)",
        below=False,
        hint=hint,
    )
    expect_target(out["high_quality"], TOY_TARGET_HQ, what="fraction of the samples within 0.3 of a mode", below=False, hint=hint)
    expect_target(
        out["heldout_mse"],
        TOY_TARGET_MSE,
        what="held-out noise-prediction error E||eps - eps_theta(x_t, t)||^2 under the true forward process",
        hint="the network must learn the noise of x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps at every t in 1..T: "
        "train with alpha_bar (not alpha) and with both square roots",
    )
