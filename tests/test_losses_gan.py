"""gencourse.losses, GAN section: every loss against its equation, computed independently."""

import math

import pytest
import torch
import torch.nn.functional as F

from gencourse import divergences, losses


def naive_log_sigmoid(d):
    return torch.log(1.0 / (1.0 + torch.exp(-d.double())))


def naive_log_one_minus_sigmoid(d):
    return torch.log(1.0 - 1.0 / (1.0 + torch.exp(-d.double())))


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    return 2 * torch.randn(7, generator=g, dtype=torch.float64), 2 * torch.randn(5, generator=g, dtype=torch.float64)


def test_gan_value_is_the_naive_formula(logits):
    d_real, d_fake = logits
    expected = naive_log_sigmoid(d_real).mean() + naive_log_one_minus_sigmoid(d_fake).mean()
    torch.testing.assert_close(losses.gan_value(d_real, d_fake), expected)
    assert losses.gan_value(torch.zeros(3), torch.zeros(4)).item() == pytest.approx(-math.log(4), abs=1e-7)


def test_d_loss_bce_is_torch_binary_cross_entropy_with_real_one_fake_zero(logits):
    d_real, d_fake = logits
    expected = F.binary_cross_entropy(torch.sigmoid(d_real), torch.ones_like(d_real)) + F.binary_cross_entropy(
        torch.sigmoid(d_fake), torch.zeros_like(d_fake))
    torch.testing.assert_close(losses.d_loss_bce(d_real, d_fake), expected)
    torch.testing.assert_close(losses.d_loss_bce(d_real, d_fake), -losses.gan_value(d_real, d_fake))


def test_swapped_labels_give_a_different_loss():
    d_real, d_fake = torch.tensor([3.0]), torch.tensor([-3.0])  # a discriminator that is right
    assert losses.d_loss_bce(d_real, d_fake).item() == pytest.approx(2 * math.log1p(math.exp(-3)), rel=1e-6)
    assert losses.d_loss_bce(d_fake, d_real).item() == pytest.approx(2 * math.log1p(math.exp(3)), rel=1e-6)


def test_generator_losses_are_their_equations(logits):
    _, d_fake = logits
    torch.testing.assert_close(losses.g_loss_minimax(d_fake), naive_log_one_minus_sigmoid(d_fake).mean())
    torch.testing.assert_close(losses.g_loss_non_saturating(d_fake), -naive_log_sigmoid(d_fake).mean())
    torch.testing.assert_close(losses.g_loss_non_saturating(d_fake),
                               F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake)))


def test_gradients_saturate_for_minimax_and_not_for_non_saturating():
    d = torch.tensor([-8.0, -2.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    (g_mm,) = torch.autograd.grad(losses.g_loss_minimax(d), d)
    (g_ns,) = torch.autograd.grad(losses.g_loss_non_saturating(d), d)
    s = torch.sigmoid(d.detach())
    torch.testing.assert_close(g_mm, -s / 4)  # d/dd of log(1 - sigmoid(d)) / B
    torch.testing.assert_close(g_ns, -(1 - s) / 4)  # d/dd of -log sigmoid(d) / B
    assert abs(g_mm[0]) < 1e-4 and abs(g_ns[0]) > 0.24  # D(G(z)) ~ 3e-4: minimax has no signal


def test_losses_from_logits_are_stable_where_the_naive_formula_fails():
    d = torch.tensor([-200.0, 200.0], requires_grad=True)
    for loss in (losses.d_loss_bce(d, d), losses.g_loss_minimax(d), losses.g_loss_non_saturating(d), losses.gan_value(d, d)):
        (grad,) = torch.autograd.grad(loss, d)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert losses.g_loss_non_saturating(torch.tensor([-200.0])).item() == pytest.approx(200.0)
    assert torch.isinf(-torch.log(torch.sigmoid(torch.tensor([-200.0])))).all()  # what the naive formula gives


def test_least_squares_and_hinge_on_known_values():
    d_real, d_fake = torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.0])
    # 1/2 mean((d_real - 1)^2) + 1/2 mean(d_fake^2) = 1/2 * (0.25 + 1)/2 + 1/2 * (4 + 0)/2
    assert losses.d_loss_least_squares(d_real, d_fake).item() == pytest.approx(0.3125 + 1.0)
    assert losses.g_loss_least_squares(d_fake).item() == pytest.approx(0.5 * (9 + 1) / 2)
    # mean(relu(1 - d_real)) + mean(relu(1 + d_fake)) = (0.5 + 0)/2 + (0 + 1)/2
    assert losses.d_loss_hinge(d_real, d_fake).item() == pytest.approx(0.75)
    assert losses.g_loss_hinge(d_fake).item() == pytest.approx(1.0)


def test_value_at_the_optimal_discriminator_is_2js_minus_log4():
    # p = (1/2, 1/4, 1/4) and q = (1/4, 1/4, 1/2) on three points, written as equally weighted samples
    p, q = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64), torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
    logit_star = torch.logit(divergences.optimal_discriminator(p.log(), q.log())).requires_grad_(True)
    real_points, fake_points = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 2, 2])
    loss = losses.d_loss_bce(logit_star[real_points], logit_star[fake_points])
    js = divergences.js_discrete(p, q)
    assert (-loss).item() == pytest.approx(2 * js.item() - math.log(4), abs=1e-12)
    (grad,) = torch.autograd.grad(loss, logit_star)
    torch.testing.assert_close(grad, torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)  # D* is stationary


def test_dispatch_and_input_checks():
    d_real, d_fake = torch.randn(4), torch.randn(4)
    for kind, (d_loss, g_loss) in losses.GAN_LOSSES.items():
        torch.testing.assert_close(losses.discriminator_loss(d_real, d_fake, kind), d_loss(d_real, d_fake))
        torch.testing.assert_close(losses.generator_loss(d_fake, kind), g_loss(d_fake))
    assert losses.GAN_LOSSES["minimax"][0] is losses.GAN_LOSSES["non_saturating"][0] is losses.d_loss_bce
    with pytest.raises(ValueError, match="kind must be one of"):
        losses.generator_loss(d_fake, "wasserstein")
    with pytest.raises(ValueError, match="d_fake must be a torch.Tensor"):
        losses.g_loss_non_saturating([0.0, 1.0])
    with pytest.raises(ValueError, match="d_real must be a non-empty floating-point"):
        losses.d_loss_bce(torch.tensor([1, 0]), d_fake)
