"""gencourse.widgets: the explorers compute what they show, and degrade to a static figure."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from gencourse import widgets


def _decode(z):  # a toy decoder: an 8x8 image whose brightness is the sigmoid of z1 + z2
    return torch.sigmoid(z.sum(1)).view(-1, 1, 1, 1).expand(-1, 1, 8, 8)


def test_latent_view_shows_the_decoded_point_and_the_codes():
    codes, labels = torch.randn(50, 2), torch.arange(50) % 10
    fig, image = widgets.latent_view(_decode, (0.5, 1.0), codes, labels, lim=2.0)
    np.testing.assert_allclose(image, np.full((8, 8), 1 / (1 + np.exp(-1.5))), rtol=1e-6)
    ax_z = fig.axes[0]
    assert ax_z.collections[0].get_offsets().shape == (50, 2)
    cross = ax_z.lines[0].get_xydata()
    np.testing.assert_allclose(cross, [[0.5, 1.0]])
    assert ax_z.get_xlim() == (-2.0, 2.0) and "0.50, 1.00" in ax_z.get_title()


def test_latent_view_redraws_into_a_given_figure():
    fig = plt.figure()
    fig2, _ = widgets.latent_view(_decode, (0, 0), fig=fig)
    fig3, _ = widgets.latent_view(_decode, (1, 0), fig=fig)
    assert fig2 is fig3 is fig and len(fig.axes) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(z=(1.0, 2.0, 3.0)), "2 numbers"),
        (dict(z=(0, 0), codes=torch.zeros(4, 3)), r"codes must have shape \(N, 2\)"),
        (dict(z=(0, 0), codes=torch.zeros(4, 2), labels=torch.zeros(3)), r"labels must have shape \(N,\) = \(4,\)"),
    ],
)
def test_latent_view_checks_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        widgets.latent_view(_decode, **kwargs)


def test_latent_explorer_without_a_kernel_draws_a_static_figure():
    assert not widgets.has_kernel()
    n_before = len(plt.get_fignums())
    assert widgets.latent_explorer(_decode, z0=(0.2, -0.1)) is None
    assert len(plt.get_fignums()) == n_before + 1
    assert "0.20, -0.10" in plt.gcf().axes[0].get_title()


def test_latent_explorer_in_a_kernel_builds_sliders_that_update_on_release(monkeypatch):
    monkeypatch.setattr(widgets, "has_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    w = widgets.latent_explorer(_decode, lim=2.5, z0=(0.5, 0.0))
    sliders = {c.description: c for c in w.children if hasattr(c, "continuous_update")}
    assert set(sliders) == {"z1", "z2"}
    assert all(not s.continuous_update and s.min == -2.5 and s.max == 2.5 for s in sliders.values())
    assert sliders["z1"].value == 0.5


def test_latent_explorer_opens_no_widget_while_the_book_is_built(monkeypatch, capsys):
    """A book build's kernels get GENCOURSE_BOOK_BUILD=1: no widget (nbclient can hang on one), one line instead."""
    monkeypatch.setattr(widgets, "has_kernel", lambda: True)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append(a))
    monkeypatch.setenv(widgets.BOOK_BUILD_ENV, "1")
    n_before = len(plt.get_fignums())
    assert widgets.building_book()
    assert widgets.latent_explorer(_decode, lim=2.5) is None
    assert shown == [] and len(plt.get_fignums()) == n_before
    assert "needs a running kernel" in capsys.readouterr().out
    monkeypatch.setenv(widgets.BOOK_BUILD_ENV, "0")
    assert not widgets.building_book()


def test_the_book_build_tells_its_kernels(monkeypatch, tmp_path):
    from gencourse import book

    seen = {}
    monkeypatch.setattr(book.subprocess, "call", lambda cmd, env: seen.update(env) or 1)
    (tmp_path / "_build").mkdir()
    assert book.build(tmp_path, profile="smoke") == 1
    assert seen[widgets.BOOK_BUILD_ENV] == "1" and seen["GENCOURSE_PROFILE"] == "smoke"
