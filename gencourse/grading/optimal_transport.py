"""Public checks for the exercises of chapter 02 (optimal transport).

Each check compares the student's function with the library's reference
(:mod:`gencourse.transport`) and, when they differ, tries the classic mistakes (W_p^p for W_p,
variances for standard deviations, a transposed plan, max for min, a per-coordinate gradient
norm, ...) to say which one it is.
"""

from __future__ import annotations

from .checks import expect, expect_close, expect_shape, register
from .divergences import diagnose


@register("optimal_transport.wasserstein_1d")
def _wasserstein_1d(wasserstein_1d):
    import torch

    from gencourse import transport

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, generator=g, dtype=torch.float64)
    y = 0.5 * torch.randn(200, generator=g, dtype=torch.float64) ** 2 + 1.0
    for p in (1, 2, 3):
        ref = transport.wasserstein_1d(x, y, p=p)
        diagnose(float(wasserstein_1d(x, y, p)), float(ref), {
            f"it returns W_p^p: take the 1/p-th power at the end (p = {p})": float(ref) ** p,
            "sort both samples: the optimal plan on the line pairs the i-th smallest x with the i-th smallest y":
                float((x - y).abs().pow(p).mean() ** (1 / p)),
            "sort both samples, not just one of them": float((x.sort().values - y).abs().pow(p).mean() ** (1 / p)),
            "W_p averages |x_(i) - y_(i)|^p over i (a mean, not a sum)": float((x.sort().values - y.sort().values).abs().pow(p).sum() ** (1 / p)),
        }, what=f"wasserstein_1d(x, y, p={p})", rtol=1e-6)


@register("optimal_transport.w2_diag_gaussians")
def _w2_diag_gaussians(w2_diag_gaussians):
    import torch

    from gencourse import transport

    mu1, s1 = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64), torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    mu2, s2 = torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64), torch.tensor([3.0, 0.5, 0.5], dtype=torch.float64)
    ref = float(transport.wasserstein2_gaussians(mu1, torch.diag(s1**2), mu2, torch.diag(s2**2)))
    got = float(w2_diag_gaussians(mu1, s1, mu2, s2))
    diagnose(got, ref, {
        "it returns W_2^2: take the square root": ref**2,
        "sigma1 and sigma2 are standard deviations: the Bures term is sum (sigma1 - sigma2)^2, not sum (sigma1^2 - sigma2^2)^2":
            float((((mu1 - mu2) ** 2).sum() + ((s1**2 - s2**2) ** 2).sum()).sqrt()),
        "the Bures term is sum (sigma1 - sigma2)^2 (the squared difference of standard deviations)":
            float((((mu1 - mu2) ** 2).sum() + ((s1 - s2).abs()).sum()).sqrt()),
    }, what="w2_diag_gaussians(mu1, sigma1, mu2, sigma2)", hint="W_2^2 = |mu1 - mu2|^2 + |sigma1 - sigma2|^2 for diagonal Gaussians")
    expect_close(float(w2_diag_gaussians(mu1, s1, mu1, s1)), 0.0, what="W_2 between a Gaussian and itself", atol=1e-9)


def _problem(n=4, m=6, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 2, generator=g, dtype=torch.float64), torch.randn(m, 2, generator=g, dtype=torch.float64) + 0.5
    a = torch.softmax(torch.randn(n, generator=g, dtype=torch.float64), 0)
    b = torch.softmax(torch.randn(m, generator=g, dtype=torch.float64), 0)
    return a, b, ((x[:, None] - y[None]) ** 2).sum(-1)


@register("optimal_transport.sinkhorn")
def _sinkhorn(sinkhorn):
    import torch

    from gencourse import transport

    a, b, M = _problem()
    eps = 0.2
    plan = sinkhorn(a, b, M, eps, 2000)
    expect(isinstance(plan, torch.Tensor), f"return the plan as a tensor, got {type(plan).__name__}")
    expect(tuple(plan.shape) != (6, 4),
           "the plan has shape (m, n) = (6, 4): it is transposed; row i must hold where the mass of x_i goes, shape (n, m) = (4, 6)")
    expect_shape(plan, (4, 6), what="the plan")
    expect_close(plan.sum(1), a, what="the row sums of the plan", rtol=1e-4, atol=1e-7,
                 hint="row i of the plan is where the mass a_i of x_i goes: P 1 = a")
    expect_close(plan.sum(0), b, what="the column sums of the plan", rtol=1e-4, atol=1e-7, hint="P^T 1 = b")
    ref = transport.sinkhorn(a, b, M, eps=eps, n_iters=5000, tol=1e-13).plan
    diagnose(plan, ref, {
        "the kernel is exp(-M / eps): eps divides the cost": transport.sinkhorn(a, b, M, eps=1 / eps, n_iters=5000, tol=1e-13).plan,
    }, what=f"sinkhorn(a, b, M, eps={eps})", rtol=1e-4, atol=1e-8,
        hint="f_i = eps log a_i - eps logsumexp_j((g_j - M_ij)/eps), g_j likewise; P_ij = exp((f_i + g_j - M_ij)/eps)")
    # a square problem whose transposed plan has the right shape but the wrong marginals
    a2, b2, M2 = _problem(5, 5, seed=1)
    plan2 = sinkhorn(a2, b2, M2, 0.5, 2000)
    expect_close(plan2.sum(1), a2, what="the row sums of the plan on a 5 x 5 problem", rtol=1e-4, atol=1e-7,
                 hint="rows must sum to a: is your plan transposed?")


@register("optimal_transport.c_transform")
def _c_transform(c_transform):
    import torch

    from gencourse import transport

    _, _, M = _problem()
    f = torch.tensor([0.3, -0.2, 1.0, 0.1], dtype=torch.float64)
    got = c_transform(f, M)
    expect(tuple(getattr(got, "shape", ())) != (4,),
           "f^c lives on the targets: it has m = 6 entries, one per column of M (take the min over i, dim=0)")
    expect_shape(got, (6,), what="c_transform(f, M) with M of shape (4, 6)")
    ref = transport.c_transform(f, M)
    diagnose(got, ref, {
        "the c-transform takes the min over i, not the max": (M - f[:, None]).max(0).values,
        "f^c_j = min_i (M_ij - f_i): subtract f, do not add it": (M + f[:, None]).min(0).values,
    }, what="c_transform(f, M)", hint="f^c_j = min_i (M_ij - f_i)")


@register("optimal_transport.dual_value")
def _dual_value(dual_value):
    import torch

    from gencourse import transport

    a, b, M = _problem()
    f = torch.tensor([0.3, -0.2, 1.0, 0.1], dtype=torch.float64)
    fc = transport.c_transform(f, M)
    ref = float(a @ f + b @ fc)
    diagnose(float(dual_value(a, b, M, f)), ref, {
        "use the c-transform for g: g_j = min_i (M_ij - f_i), not the max": float(a @ f + b @ (M - f[:, None]).max(0).values),
        "weigh f by a (the source weights) and f^c by b": float(b[:4] @ f + a @ fc[:4]),
    }, what="dual_value(a, b, M, f)", hint="<f, a> + <f^c, b>")
    f_opt, _, value = transport.kantorovich_dual(a, b, M)
    expect_close(float(dual_value(a, b, M, f_opt)), value, what="the dual value at the optimal potential", rtol=1e-6,
                 hint="at the optimum the dual value equals the optimal transport cost")


@register("optimal_transport.gradient_penalty")
def _gradient_penalty(gradient_penalty):
    import torch
    from torch import nn

    from gencourse import transport

    g = torch.Generator().manual_seed(3)
    B = 5
    x_real = torch.randn(B, 1, 4, 4, generator=g, dtype=torch.float64)
    x_fake = torch.randn(B, 1, 4, 4, generator=g, dtype=torch.float64)
    u = torch.rand(B, generator=g, dtype=torch.float64)
    w = torch.randn(1, 4, 4, generator=g, dtype=torch.float64)
    linear = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731  gradient w everywhere
    per_coordinate = ((w.abs() - 1) ** 2).mean()
    diagnose(gradient_penalty(linear, x_real, x_fake, u), transport.gradient_penalty(linear, x_real, x_fake, u=u), {
        "the norm must be taken per sample over all its dimensions (flatten each sample), not per coordinate": per_coordinate,
        "the penalty is (||grad|| - 1)^2: the square is missing": (w.norm() - 1).abs(),
        "the penalty is (||grad|| - 1)^2, not (||grad||^2 - 1)^2": (w.norm() ** 2 - 1) ** 2,
    }, what="gradient_penalty on a linear critic f(x) = <w, x>", rtol=1e-6, hint="for a linear critic the penalty is (||w|| - 1)^2")
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    torch.manual_seed(0)
    critic = lambda x: net(x).squeeze(1)  # noqa: E731
    got = gradient_penalty(critic, x_real, x_fake, u)
    ref = transport.gradient_penalty(critic, x_real, x_fake, u=u)
    u_swapped = transport.gradient_penalty(critic, x_real, x_fake, u=1 - u)
    diagnose(got, ref, {"interpolate as x_hat = u * x_real + (1 - u) * x_fake (u weighs the real sample)": u_swapped},
             what="gradient_penalty on a small network", rtol=1e-6)
    expect(getattr(got, "requires_grad", False),
           "the penalty must stay differentiable in the critic's parameters: call torch.autograd.grad(..., create_graph=True)")
    got.backward()
    expect(net[1].weight.grad is not None and bool(net[1].weight.grad.abs().sum() > 0),
           "backward() through the penalty gave no gradient to the critic: use create_graph=True")


def _w1_cdf(x, a, y, b):
    import torch

    t, order = torch.cat([x, y]).sort()
    gap = torch.cumsum(torch.cat([a, -b])[order], 0)[:-1]
    return float((gap.abs() * (t[1:] - t[:-1])).sum())


@register("optimal_transport.w1_weighted_1d")
def _w1_weighted_1d(w1_weighted_1d):
    import torch

    from gencourse import transport

    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, generator=g, dtype=torch.float64)
    y = torch.randn(7, generator=g, dtype=torch.float64) + 0.5
    a = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    b = torch.softmax(torch.randn(7, generator=g, dtype=torch.float64), 0)
    got = w1_weighted_1d(x, a, y, b)
    expect(isinstance(got, float), f"return a Python float (float(...)), got {type(got).__name__}")
    ref = float(transport.wasserstein(x[:, None], y[:, None], p=1, a=a, b=b))
    t, order = torch.cat([x, y]).sort()
    signed = float((torch.cumsum(torch.cat([a, -b])[order], 0)[:-1] * (t[1:] - t[:-1])).sum())
    diagnose(got, ref, {
        "the absolute value is missing: without it the integral of F_alpha - F_beta is the difference of the means": signed,
        "the weights are ignored: F_alpha jumps by a_i at x_i, not by 1/n":
            _w1_cdf(x, torch.full((5,), 0.2, dtype=torch.float64), y, torch.full((7,), 1 / 7, dtype=torch.float64)),
        "this is the integral of (F_alpha - F_beta)^2 (the Cramér distance), not of |F_alpha - F_beta|":
            float((torch.cumsum(torch.cat([a, -b])[order], 0)[:-1] ** 2 * (t[1:] - t[:-1])).sum()),
        "sort the points of both measures together (keeping each weight with its point) before summing over the gaps":
            float((torch.cumsum(torch.cat([a, -b]), 0)[:-1].abs() * (torch.cat([x, y]).diff()).abs()).sum()),
    }, what="w1_weighted_1d(x, a, y, b)", rtol=1e-9, atol=1e-12,
        hint="sort the union of the points; between consecutive points t_k < t_{k+1} both CDFs are constant: "
             "sum |F_alpha(t_k) - F_beta(t_k)| (t_{k+1} - t_k)")
    same = w1_weighted_1d(x, a, x.flip(0), a.flip(0))
    expect_close(same, 0.0, what="W1 between a measure and itself (points given in another order)", atol=1e-12)


OT_GENERATOR_RING = {"n_modes": 8, "radius": 2.0, "std": 0.1}
OT_GENERATOR_TARGET_W2 = 0.8
OT_GENERATOR_MIN_SHARE = 0.05


@register("optimal_transport.ot_generator")
def _ot_generator(G, losses):
    import math

    import torch

    from gencourse import data, transport

    from ._training import expect_losses_went_down, expect_target

    expect_losses_went_down(losses)
    with torch.no_grad():
        x = G(torch.randn(2000, 2, generator=torch.Generator().manual_seed(1)))
    expect(isinstance(x, torch.Tensor), f"G(z) must return a tensor, got {type(x).__name__}")
    expect_shape(x, (2000, 2), what="G(z) for z of shape (2000, 2)")
    x = x.double()
    expect(bool(torch.isfinite(x).all()), "G(z) has non-finite values")
    ring = data.toy("ring", **OT_GENERATOR_RING)
    y = ring.sample(2000, generator=torch.Generator().manual_seed(2)).double()
    w2 = float(transport.wasserstein(x, y, p=2))
    angles = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
    modes = 2.0 * torch.stack([angles.cos(), angles.sin()], 1)
    share = torch.bincount(torch.cdist(x, modes).argmin(1), minlength=8).double() / len(x)
    spread = float(x.std(0).sum())
    expect(spread > 0.5, f"the samples G(z) hardly spread (standard deviations {x.std(0).tolist()}): the generator "
           "collapsed to the middle; match the generated points to the data points by the OPTIMAL plan, "
           "not by their index in the batch (that is the independent coupling, whose best answer is the mean)")
    expect_target(w2, OT_GENERATOR_TARGET_W2, what="W2 between 2,000 samples of G and of the ring")
    if share.min() < OT_GENERATOR_MIN_SHARE and math.isfinite(w2):
        from ._training import profile

        if profile() != "smoke":
            expect(False, f"the shares of samples nearest each mode are {[round(v, 3) for v in share.tolist()]}: "
                   f"each of the eight modes must receive at least {OT_GENERATOR_MIN_SHARE:.0%}")
