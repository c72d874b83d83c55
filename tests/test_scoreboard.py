"""gencourse.scoreboard: the registry, the table and the Gaussian baselines (checked against numpy)."""

import numpy as np
import pytest
import torch

from gencourse import scoreboard


def test_register_replace_and_unknown_names():
    calls = []

    @scoreboard.register("test entry", chapter="99", value_range="pm1")
    def _a(n, generator):
        calls.append("a")
        return scoreboard.Samples(torch.zeros(n, 1, 28, 28), 1.0)

    try:
        @scoreboard.register("test entry", chapter="98", value_range="01")
        def _b(n, generator):
            calls.append("b")
            return scoreboard.Samples(torch.zeros(n, 1, 28, 28), 2.0)

        entries = {e.name: e for e in scoreboard.entries()}
        names = [e.name for e in scoreboard.entries()]
        assert names.count("test entry") == 1
        assert names[:4] == ["uniform noise", "Gaussian (MLE)", "Gaussian per class", "memorised training images"]
        entry = entries["test entry"]
        assert entry.chapter == "98" and entry.value_range == "01"  # the second registration replaced the first
        out = entry.factory(3, torch.Generator())
        assert calls == ["b"] and out.train_seconds == 2.0 and out.x.shape == (3, 1, 28, 28)
        with pytest.raises(ValueError, match="unknown scoreboard entries"):
            scoreboard.run(["no such model"])
        with pytest.raises(ValueError, match="value_range"):
            scoreboard.register("x", chapter="1", value_range="0-1")
    finally:
        scoreboard._ENTRIES.pop("test entry", None)
    assert "test entry" not in [e.name for e in scoreboard.entries()]


def test_the_chapters_models_are_registered_from_their_recipes():
    entries = {e.name: e for e in scoreboard.entries()}
    assert {name: entries[name].chapter for name in ("VAE", "CVAE", "DCGAN", "DDPM + CFG", "flow matching", "latent flow matching")} == {
        "VAE": "04", "CVAE": "04", "DCGAN": "07", "DDPM + CFG": "12", "flow matching": "13", "latent flow matching": "13"}



def test_format_table_shows_missing_values_as_dashes():
    rows = [{"name": "m", "chapter": "04", "fid": 12.345, "train_seconds": 3.0}]
    table = scoreboard.format_table(rows).splitlines()
    assert table[0].startswith("| model | ch. | FID ↓") and table[2].startswith("| m | 04 | 12.3 | –")


def test_pixel_gaussian_is_the_mle_and_samples_have_its_covariance():
    g = torch.Generator().manual_seed(0)
    x = (0.3 + 0.1 * torch.randn(500, 1, 28, 28, generator=g)).clamp(0, 1)
    x[:, :, :3] = 0.0  # constant pixels: a singular covariance, as on MNIST's border
    model = scoreboard.PixelGaussian(x)
    flat = x.flatten(1).double().numpy()
    assert np.allclose(model.mu.numpy(), flat.mean(0))
    assert np.allclose(model.sigma.numpy(), np.cov(flat, rowvar=False, bias=True))  # MLE: 1/N
    s = model.sample(4000, torch.Generator().manual_seed(1))
    assert s.shape == (4000, 1, 28, 28) and s.min() >= 0 and s.max() <= 1 and (s[:, :, :3] == 0).all()
    emp = np.cov(s.flatten(1)[:, 100:110].double().numpy(), rowvar=False)
    assert np.abs(emp - model.sigma[100:110, 100:110].numpy()).max() < 0.002
    with pytest.raises(ValueError, match="singular"):
        model.log_prob(x[:2])
    ridged = scoreboard.PixelGaussian(x, ridge=0.01)
    s2 = ridged.sample(4000, torch.Generator().manual_seed(1))
    # on constant-0 pixels the ridge adds N(0, 0.01), clipped at 0: E[x^2] = 0.01 / 2
    assert abs(s2[:, :, :3].square().mean().item() - 0.005) < 0.0005
    import scipy.stats
    ref = scipy.stats.multivariate_normal(model.mu.numpy(), model.sigma.numpy() + 0.01 * np.eye(784)).logpdf(flat[:3])
    assert np.allclose(ridged.log_prob(x[:3]).numpy(), ref)


def test_class_gaussians_log_prob_is_the_mixture_and_samples_carry_labels():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 28, 28, generator=g) * 0.5
    y = torch.tensor([0] * 20 + [1] * 40)
    model = scoreboard.ClassGaussians(x, y, ridge=0.05)
    lp = model.log_prob(x[:3])
    p0, p1 = model.parts[0].log_prob(x[:3]), model.parts[1].log_prob(x[:3])
    assert torch.allclose(lp, torch.logaddexp(p0 + np.log(1 / 3), p1 + np.log(2 / 3)))
    samples, labels = model.sample(300, torch.Generator().manual_seed(2))
    assert samples.shape == (300, 1, 28, 28) and set(labels.tolist()) == {0, 1}
    assert 0.55 < (labels == 1).float().mean() < 0.8
