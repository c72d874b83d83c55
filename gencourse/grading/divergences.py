"""Public checks for the exercises of chapter 01 (divergences and maximum likelihood).

Each check compares the student's function with the library's reference
(:mod:`gencourse.divergences`, :mod:`gencourse.density`) and, when they differ, tries the classic
mistakes (a missing 1/2, a flipped sign, log base 2, a variance taken for a log-variance, ...) to
say which one it is.
"""

from __future__ import annotations

import math

from .checks import expect, expect_close, expect_shape, register


def _close(a, b, rtol=1e-5, atol=1e-7) -> bool:
    import torch

    try:
        a_t, b_t = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    return a_t.shape == b_t.shape and bool(torch.allclose(a_t, b_t, rtol=rtol, atol=atol))


def diagnose(actual, expected, mistakes: dict, *, what: str, rtol: float = 1e-5, atol: float = 1e-7, hint: str | None = None) -> None:
    """``expect_close(actual, expected)``, but first name the classic mistake that ``actual`` matches.

    ``mistakes`` maps a message to the value that mistake would produce.
    """
    if not _close(actual, expected, rtol, atol):
        for message, wrong in mistakes.items():
            if _close(actual, wrong, rtol, atol):
                expect(False, f"{what}: {message}")
    expect_close(actual, expected, what=what, rtol=rtol, atol=atol, hint=hint)


@register("divergences.kl_diag_gaussians")
def _kl_diag_gaussians(kl_diag_gaussians):
    import torch

    from gencourse import divergences

    g = torch.Generator().manual_seed(0)
    mu_p, logvar_p, mu_q, logvar_q = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(4))
    got = kl_diag_gaussians(mu_p, logvar_p, mu_q, logvar_q)
    expect_shape(got, (4,), what="kl_diag_gaussians on inputs of shape (4, 3)")
    ref = divergences.kl_gaussians(mu_p, logvar_p, mu_q, logvar_q)
    per_dim = 0.5 * (logvar_q - logvar_p + (logvar_p.exp() + (mu_p - mu_q) ** 2) / logvar_q.exp() - 1)
    var_p, var_q = logvar_p.exp(), logvar_q.exp()
    diagnose(got, ref, {
        "it is twice the KL: the factor 1/2 is missing": 2 * ref,
        "it has the wrong sign": -ref,
        "it is KL(q || p): the arguments are swapped": divergences.kl_gaussians(mu_q, logvar_q, mu_p, logvar_p),
        "it returns the mean over the D dimensions; the KL of independent coordinates is their sum": per_dim.mean(-1),
        "exp(logvar) is the variance: the ratio of variances is exp(logvar_p - logvar_q), not its square":
            0.5 * (2 * (logvar_q - logvar_p) + (var_p**2 + (mu_p - mu_q) ** 2) / var_q**2 - 1).sum(-1),
    }, what="kl_diag_gaussians(mu_p, logvar_p, mu_q, logvar_q)",
        hint="KL = 1/2 sum_k [logvar_q - logvar_p + (exp(logvar_p) + (mu_p - mu_q)^2) / exp(logvar_q) - 1]")
    same = kl_diag_gaussians(mu_p, logvar_p, mu_p, logvar_p)
    expect_close(same, torch.zeros(4, dtype=torch.float64), what="KL(p || p)", atol=1e-9)


@register("divergences.kl_monte_carlo")
def _kl_monte_carlo(kl_monte_carlo):
    import torch
    from torch.distributions import Normal

    from gencourse import divergences

    p = Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    q = Normal(torch.tensor(0.5, dtype=torch.float64), 1.5)
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = kl_monte_carlo(p.log_prob, q.log_prob, x)
    expect(isinstance(out, tuple) and len(out) == 2, f"return a tuple (estimate, standard_error), got {type(out).__name__}")
    est, se = (float(v) for v in out)
    ref_est, ref_se = (float(v) for v in divergences.kl_monte_carlo(p.log_prob, q.log_prob, x))
    diagnose(est, ref_est, {
        "the estimate has the wrong sign: average log p(x) - log q(x) over the samples x ~ P": -ref_est,
        "the estimate is KL(Q || P)'s integrand averaged over P: average log p - log q, not log q - log p": -ref_est,
    }, what="the Monte-Carlo estimate", rtol=1e-6)
    r = (p.log_prob(x) - q.log_prob(x)).numpy()
    diagnose(se, ref_se, {
        "the standard error is sd / sqrt(n), not the standard deviation itself": r.std(ddof=1),
        "the standard error is sd / sqrt(n), not the variance / n": r.var(ddof=1) / len(r),
        "the standard error is sd / sqrt(n), not sd / n": r.std(ddof=1) / len(r),
    }, what="the standard error", rtol=1e-3)


@register("divergences.js_divergence")
def _js_divergence(js_divergence):
    import torch

    from gencourse import divergences

    g = torch.Generator().manual_seed(2)
    p = torch.softmax(torch.randn(5, 7, generator=g, dtype=torch.float64), -1)
    q = torch.softmax(torch.randn(5, 7, generator=g, dtype=torch.float64), -1)
    got = js_divergence(p, q)
    expect_shape(got, (5,), what="js_divergence on distributions of shape (5, 7)")
    ref = divergences.js_discrete(p, q)
    diagnose(got, ref, {
        "it is in bits: use the natural logarithm (nats)": ref / math.log(2),
        "it is twice JS: JS = KL(p || m)/2 + KL(q || m)/2": 2 * ref,
        "it compares p and q directly: JS compares each with the mixture m = (p + q)/2":
            0.5 * divergences.kl_discrete(p, q) + 0.5 * divergences.kl_discrete(q, p),
    }, what="js_divergence(p, q)", hint="m = (p + q) / 2; JS = 1/2 sum p log(p/m) + 1/2 sum q log(q/m)")
    disjoint = js_divergence(torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 0.0, 0.3, 0.7], dtype=torch.float64))
    expect_close(disjoint, math.log(2), what="JS between distributions with disjoint supports",
                 hint="0 log 0 = 0: use torch.xlogy, or sum only where p > 0; the answer is log 2")


@register("divergences.kde_log_prob")
def _kde_log_prob(kde_log_prob):
    import torch

    from gencourse import density

    g = torch.Generator().manual_seed(3)
    data = torch.randn(40, 2, generator=g, dtype=torch.float64)
    x = 1.5 * torch.randn(9, 2, generator=g, dtype=torch.float64)
    h = 0.4
    got = kde_log_prob(x, data, h)
    expect_shape(got, (9,), what="kde_log_prob(x of shape (9, 2), data of shape (40, 2), h)")
    ref = density.kde_log_prob(x, data, h)
    D, N = 2, 40
    diagnose(got, ref, {
        "the average over the N kernels is missing: subtract log N": ref + math.log(N),
        "the kernel's normaliser is (2 pi h^2)^(-D/2): the D/2 * log(2 pi h^2) term is off": ref + 0.5 * D * math.log(2 * math.pi * h * h),
        "h is the kernel's standard deviation, not its variance": density.kde_log_prob(x, data, math.sqrt(h)),
        "it is in bits: use natural logarithms": ref / math.log(2),
        "it returns the density, not its logarithm": ref.exp(),
    }, what="kde_log_prob(x, data, h)",
        hint="log p(x) = logsumexp_i(-|x - x_i|^2 / (2 h^2)) - log N - D/2 log(2 pi h^2)")


@register("divergences.gaussian_mle")
def _gaussian_mle(gaussian_mle):
    import torch

    from gencourse import density

    g = torch.Generator().manual_seed(4)
    A = torch.tensor([[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 2.0]], dtype=torch.float64)
    x = torch.randn(25, 3, generator=g, dtype=torch.float64) @ A + 1.0
    out = gaussian_mle(x)
    expect(isinstance(out, tuple) and len(out) == 2, f"return a tuple (mu, Sigma), got {type(out).__name__}")
    mu, Sigma = out
    ref_mu, ref_Sigma = density.gaussian_mle(x)
    expect_close(mu, ref_mu, what="mu", hint="the sample mean over the N rows: x.mean(0)")
    expect_shape(Sigma, (3, 3), what="Sigma")
    xc = x - ref_mu
    diagnose(Sigma, ref_Sigma, {
        "the maximum-likelihood covariance divides by N, not N - 1 (that is the unbiased estimate)": xc.T @ xc / 24,
        "centre the data first: Sigma = 1/N sum (x_i - mu)(x_i - mu)^T": x.T @ x / 25,
    }, what="Sigma")


@register("divergences.kl_exponential")
def _kl_exponential(kl_exponential):
    import torch

    rate_p = torch.tensor([1.0, 0.5, 2.0, 3.0], dtype=torch.float64)
    rate_q = torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64)
    got = kl_exponential(rate_p, rate_q)
    expect(isinstance(got, torch.Tensor), f"return a tensor, got {type(got).__name__}")
    expect_shape(got, (4,), what="kl_exponential(rate_p, rate_q) for rates of shape (4,)")
    ref = torch.log(rate_p / rate_q) + rate_q / rate_p - 1
    diagnose(got, ref, {
        "it is KL(Exp(rate_q) || Exp(rate_p)): the arguments are swapped":
            torch.log(rate_q / rate_p) + rate_p / rate_q - 1,
        "the log term has the wrong sign: log p - log q contributes log(rate_p / rate_q)":
            torch.log(rate_q / rate_p) + rate_q / rate_p - 1,
        "the -1 is missing: E_P[(rate_p - rate_q) x] = 1 - rate_q / rate_p": torch.log(rate_p / rate_q) + rate_q / rate_p,
        "E_P[x] = 1 / rate_p, not rate_p": torch.log(rate_p / rate_q) + (rate_q - rate_p) * rate_p,
        "it is in bits: use the natural logarithm": (torch.log(rate_p / rate_q) + rate_q / rate_p - 1) / math.log(2),
    }, what="kl_exponential(rate_p, rate_q)", rtol=1e-9, atol=1e-12,
        hint="KL = E_P[log p(x) - log q(x)] = log(rate_p / rate_q) - (rate_p - rate_q) E_P[x]")


#: The ring of the mixture exercise, and the target: held-out NLL within this many nats of its entropy.
MIXTURE_RING = {"n_modes": 8, "radius": 2.0, "std": 0.2}
MIXTURE_TARGET_EXCESS = 0.08
MIXTURE_MAX_K = 16


def mixture_nll(logits, means, log_std, x):
    """The average negative log-likelihood of ``x`` ``(N, 2)`` under the isotropic Gaussian mixture."""
    import torch

    sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)  # (N, K)
    log_normal = -sq / (2 * torch.exp(2 * log_std)) - 2 * log_std - math.log(2 * math.pi)
    return -torch.logsumexp(torch.log_softmax(logits, 0) + log_normal, 1).mean().item()


@register("divergences.mixture_mle")
def _mixture_mle(logits, means, log_std, losses):
    import torch

    from gencourse import data

    from ._training import expect_losses_went_down, expect_target

    expect_losses_went_down(losses)
    for name, t in (("logits", logits), ("means", means), ("log_std", log_std)):
        expect(isinstance(t, torch.Tensor) and t.is_floating_point(), f"{name} must be a float tensor, got {type(t).__name__}")
    lo, mu, ls = (t.detach().double() for t in (logits, means, log_std))
    K = lo.shape[0] if lo.ndim == 1 else -1
    expect(lo.ndim == 1 and tuple(mu.shape) == (K, 2) and tuple(ls.shape) == (K,),
           f"shapes {tuple(lo.shape)}, {tuple(mu.shape)}, {tuple(ls.shape)}: expected logits (K,), means (K, 2), log_std (K,)")
    expect(K <= MIXTURE_MAX_K, f"K = {K} components: at most {MIXTURE_MAX_K} are allowed")
    ring = data.toy("ring", **MIXTURE_RING)
    x = ring.sample(5000, generator=torch.Generator().manual_seed(3)).double()
    nll = mixture_nll(lo, mu, ls, x)
    H = -ring.log_prob(x).mean().item()
    expect(math.isfinite(nll), f"the held-out negative log-likelihood is {nll}")
    spread = ls.exp().max().item()
    expect(spread < 3.0, f"a component has standard deviation {spread:.3g}, wider than the ring itself: did you drop "
           "the -2 log sigma term of the Gaussian's log-density? Without it a wider Gaussian always looks better")
    expect_target(nll - H, MIXTURE_TARGET_EXCESS,
                  what=f"held-out NLL of your mixture minus the ring's own ({nll:.4f} - {H:.4f} nats)",
                  hint="log q is the logsumexp over components of log pi_k + log N(x; mu_k, sigma_k^2 I); "
                       "use more components or steps, or start the means on data points")
