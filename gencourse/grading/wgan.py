"""Public checks for the exercises of chapter 08 (Wasserstein GANs).

Each check computes the reference itself (in float64 where it matters) and names the classic
mistake it sees: the critic loss with its sign flipped, a clipped generator, the penalty's norm
over the wrong axes (per pixel or over the whole batch), the penalty at the real points instead of
the interpolates, one interpolation weight for the whole batch, a penalty that no gradient flows
through (``create_graph=True`` missing), batch norm in the critic.
"""

from __future__ import annotations

from .checks import expect, expect_close, register


def _scores():
    import torch

    g = torch.Generator().manual_seed(0)
    return 3 * torch.randn(6, generator=g, dtype=torch.float64), 3 * torch.randn(4, generator=g, dtype=torch.float64) - 1


@register("wgan.critic_loss")
def _critic_loss(critic_loss):
    import torch

    d_real, d_fake = _scores()
    got = critic_loss(d_real, d_fake)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0,
           f"critic_loss must return a scalar tensor, got {getattr(got, 'shape', type(got).__name__)}")
    want = d_fake.mean() - d_real.mean()
    expect(abs(float(got) + float(want)) > 1e-6 * (1 + abs(float(want))),
           "critic_loss has its sign flipped: the critic MINIMISES mean f(fake) - mean f(real) "
           "(it maximises mean f(real) - mean f(fake))")
    expect_close(got, want, what="critic_loss(d_real, d_fake)", rtol=1e-6,
                 hint="mean(d_fake) - mean(d_real): a mean over each batch (the batches may differ in size), no log, no sigmoid")
    d = d_real.clone().requires_grad_(True)
    loss = critic_loss(d, d_fake)
    expect(loss.requires_grad, "critic_loss must keep the graph (no .item(), .detach() or NumPy)")


@register("wgan.generator_loss")
def _generator_loss(generator_loss):
    import torch

    _, d_fake = _scores()
    d = d_fake.clone().requires_grad_(True)
    got = generator_loss(d)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0, "generator_loss must return a scalar tensor")
    expect_close(got, -d_fake.mean(), what="generator_loss(d_fake)", rtol=1e-6,
                 hint="the generator minimises -mean(f(G(z))): it wants the critic to score its samples high")
    expect(got.requires_grad, "generator_loss must keep the graph (no .item(), .detach() or NumPy)")


@register("wgan.clip_weights")
def _clip_weights(clip_weights):
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10)
    before = [p.detach().clone() for p in net.parameters()]
    clip_weights(net, 0.05)
    for p, b in zip(net.parameters(), before):
        expect_close(p, b.clamp(-0.05, 0.05), what="the weights after clip_weights(net, 0.05)", rtol=0, atol=1e-7,
                     hint="clamp every parameter (weights AND biases) to [-c, c], in place (p.data.clamp_ or under torch.no_grad())")


@register("wgan.clip_critic_step")
def _clip_critic_step(clip_critic_step):
    import copy

    import torch
    from torch import nn

    torch.manual_seed(1)
    G = nn.Linear(2, 3)
    with torch.no_grad():
        G.weight.mul_(5)  # weights beyond c: a clipped generator would show it
    critic = nn.Sequential(nn.Linear(3, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Flatten(0))
    G_before = [p.detach().clone() for p in G.parameters()]
    critic_ref = copy.deepcopy(critic)
    g = torch.Generator().manual_seed(2)
    x_real, z = torch.randn(16, 3, generator=g), torch.randn(16, 2, generator=g)
    clip_critic_step(G, critic, torch.optim.SGD(critic.parameters(), lr=0.01), x_real, z, 0.05)
    expect(all(torch.equal(a, b) for a, b in zip(G.parameters(), G_before)),
           "the critic's step changed G: clip the CRITIC's weights only, and detach the fake batch")
    expect(all(p.grad is None or float(p.grad.abs().max()) == 0 for p in G.parameters()),
           "G received gradients in the critic's step: x_fake = G(z).detach()")
    x_fake = G(z).detach()
    loss = critic_ref(x_fake).mean() - critic_ref(x_real).mean()
    opt = torch.optim.SGD(critic_ref.parameters(), lr=0.01)
    opt.zero_grad()
    loss.backward()
    opt.step()
    for p in critic.parameters():
        expect(float(p.detach().abs().max()) <= 0.05 + 1e-7, "after the step every critic parameter must lie in [-c, c]")
    with torch.no_grad():
        for p in critic_ref.parameters():
            p.clamp_(-0.05, 0.05)
    for (name, p), q in zip(critic.named_parameters(), critic_ref.parameters()):
        expect_close(p, q, what=f"the critic's parameter {name} after one step", rtol=1e-4, atol=1e-6,
                     hint="minimise mean f(G(z)) - mean f(x_real) (not its negative), opt.step(), then clip")


def _ring_points(B: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 2, generator=g, dtype=torch.float64), torch.randn(B, 2, generator=g, dtype=torch.float64)


@register("wgan.gradient_penalty")
def _gradient_penalty(gradient_penalty):
    import torch

    torch.manual_seed(3)
    # 1. a linear critic on images: the gradient is w everywhere, so the penalty is (||w|| - 1)^2
    w = 0.05 * torch.randn(1, 1, 6, 6, dtype=torch.float64)
    x_real, x_fake = torch.randn(8, 1, 6, 6, dtype=torch.float64), torch.randn(8, 1, 6, 6, dtype=torch.float64)
    got = gradient_penalty(lambda x: (x * w).flatten(1).sum(1), x_real, x_fake)
    expect(isinstance(got, torch.Tensor) and got.ndim == 0, "gradient_penalty must return a scalar tensor")
    want = (w.norm() - 1) ** 2
    per_pixel = ((w.abs() - 1) ** 2).mean()
    per_batch = (w.norm() * 8**0.5 - 1) ** 2
    if abs(float(got) - float(per_pixel)) < 1e-6 * (1 + float(per_pixel)):
        expect(False, "the norm is taken per pixel: take it per sample over ALL its pixels, grad.flatten(1).norm(dim=1)")
    if abs(float(got) - float(per_batch)) < 1e-6 * (1 + float(per_batch)):
        expect(False, "the norm is taken over the whole batch: take one norm per sample, grad.flatten(1).norm(dim=1)")
    expect_close(got, want, what="gradient_penalty of the linear critic f(x) = <w, x> on 6x6 images", rtol=1e-6,
                 hint="mean over the batch of (||grad f(x_hat)|| - 1)^2, the norm per sample over all pixels")
    # 2. f(x) = |x|^2 / 2 has gradient x: at x_real = 0 and unit-norm fakes, the penalty at the
    #    interpolates x_hat = (1 - u) x_fake is mean(u^2) ~ 1/3 (one u per sample); at the real points 1
    B = 2000
    x_fake = torch.randn(B, 1, 4, 4, dtype=torch.float64)
    x_fake = x_fake / x_fake.flatten(1).norm(dim=1)[:, None, None, None]
    values = [float(gradient_penalty(lambda x: 0.5 * (x**2).flatten(1).sum(1), torch.zeros_like(x_fake), x_fake).detach())
              for _ in range(4)]
    expect(not all(abs(v - 1) < 1e-6 for v in values),
           "the penalty is taken at the real points: take it at the interpolates x_hat = u x_real + (1 - u) x_fake")
    expect(all(abs(v - 1 / 3) < 0.04 for v in values),
           f"with |x|^2/2 as critic, x_real = 0 and unit-norm fakes the penalty should be E[u^2] = 1/3 for u ~ U[0, 1], got "
           f"{', '.join(f'{v:.3f}' for v in values)} in four calls: draw ONE u per sample (shape (B, 1, 1, 1)), "
           "not one for the whole batch nor one per pixel, and draw it anew at each call")
    # 3. the penalty is differentiable with respect to the critic's parameters (create_graph=True)
    lin = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64))
    a, b = _ring_points(16, 4)
    a, b = torch.cat([a, a[:, :1]], 1), torch.cat([b, b[:, :1]], 1)
    gp = gradient_penalty(lambda x: lin(x).squeeze(1), a, b)
    expect(gp.requires_grad, "the penalty must carry a gradient to the critic's parameters: torch.autograd.grad(..., create_graph=True)")
    (grad_w,) = torch.autograd.grad(gp, lin.weight)
    expect_close(grad_w, torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64), what="the gradient of the penalty with respect to w",
                 rtol=1e-6, atol=1e-9, hint="for f(x) = <w, x> + b the penalty is (||w|| - 1)^2, whose gradient is 2 (||w|| - 1) w / ||w||")


@register("wgan.lipschitz_bound")
def _lipschitz_bound(lipschitz_bound):
    import torch
    from torch import nn

    a, b = nn.Linear(2, 2, bias=False), nn.Linear(2, 1)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 0.5]]))
        b.weight.copy_(torch.tensor([[0.6, 0.8]]))
        b.bias.fill_(7.0)
    got = lipschitz_bound(nn.Sequential(a, nn.Tanh(), b))
    expect_close(got, 3.0, what="lipschitz_bound for W1 = diag(3, 0.5), W2 = (0.6, 0.8)", rtol=1e-5,
                 hint="the product of the largest singular values of the weight matrices (the spectral norms), "
                      "not the Frobenius norms or the largest entries; biases do not count")
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.LeakyReLU(0.2), nn.Linear(5, 1))
    want = 1.0
    for m in net:
        if isinstance(m, nn.Linear):
            want *= float(torch.linalg.svdvals(m.weight.detach().double())[0])
    expect_close(lipschitz_bound(net), want, what="lipschitz_bound of a random 4-6-5-1 network", rtol=1e-5)


@register("wgan.make_critic")
def _make_critic(make_critic):
    import torch

    critic = make_critic()
    expect(isinstance(critic, torch.nn.Module), f"make_critic() must return an nn.Module, got {type(critic).__name__}")
    critic.train()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        out = critic(x)
        expect(isinstance(out, torch.Tensor) and tuple(out.shape) == (64,),
               f"the critic must map (B, 2) to (B,), got shape {tuple(getattr(out, 'shape', ()))}: end with nn.Flatten(0)")
        alone = critic(x[:8])
    expect(float((out[:8] - alone).abs().max()) < 1e-5,
           "the critic's score of a sample depends on the rest of the batch: no batch norm in a WGAN-GP critic "
           "(the penalty constrains each score's gradient with respect to its own sample)")
