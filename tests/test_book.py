"""The book builds warning-free (-W) under the smoke profile, with its figures."""

from pathlib import Path

import pytest

from gencourse import book

ROOT = Path(__file__).resolve().parents[1]


def test_book_builds_with_warnings_as_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert book.build(ROOT, output=tmp_path, profile="smoke") == 0
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").exists() and (html / "intro.html").exists()
    for name in book.chapters(ROOT):
        page = (html / "chapters" / f"{name}.html").read_text()
        assert "<img" in page, f"{name}: no figure rendered"
        assert "google.colab" not in page, f"{name}: the Colab install cell must be hidden"
        assert "colab.research.google.com" in page, f"{name}: no Colab launch button"
    assert (tmp_path / "_build" / ".gencourse-profile").read_text().strip() == "smoke"
    # the landing figure (glued by chapter 14 from this build's models) and the interactive figures
    assert 'alt="samples of every model of the course" style="max-width: 100%" src="data:image/png;base64,' in (html / "intro.html").read_text()
    for name in ("04_vae", "05_autoregressive", "07_dcgan", "12_diffusion", "13_flow_matching"):
        page = (html / "chapters" / f"{name}.html").read_text()
        assert 'type="range"' in page and "data:image/jpeg;base64," in page, f"{name}: no interactive figure"
    assert "require.min.js" not in (html / "chapters" / "04_vae.html").read_text()  # no widget manager from a CDN
    _looked_at_offline(html, tmp_path)


def _looked_at_offline(html: Path, tmp_path: Path) -> None:
    """Every page as a reader offline sees it in Chromium: formulas rendered by the book's own
    MathJax, no traceback, no raw TeX, no broken image, no dead internal link."""
    from page_check import check_pages, ensure_chromium

    chromium = ensure_chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed and could not be installed (apt-get install chromium): "
                    "the built pages were not looked at")
    pages = [html / "intro.html"] + sorted((html / "chapters").glob("*.html")) + sorted((html / "appendix").glob("*.html"))
    problems = check_pages(html, pages, tmp_path, chromium)
    assert not problems, f"what a reader sees wrong: {problems}"


def test_build_rejects_an_unknown_profile(tmp_path):
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        book.build(ROOT, output=tmp_path, profile="fast")


def test_header_reports_profile_and_runtimes(capsys, monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    g = book.header("generative_models", seed=3)
    out = capsys.readouterr().out
    assert "profile cpu" in out and "seed 3" in out and "cpu profile" in out
    import platform

    import torch
    import torchvision

    assert f"executed with Python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}" in out
    assert g.initial_seed() == 3


def test_glue_returns_plain_numbers_outside_a_kernel():
    import numpy as np
    import torch

    assert book.glue("x", torch.tensor(1.5)) == 1.5 and isinstance(book.glue("x", torch.tensor(2)), int)
    assert book.glue("y", np.float64(0.25)) == 0.25 and type(book.glue("y", np.float64(0.25))) is float
    assert book.glue("z", "8") == "8"


def test_footer_and_training_notes(capsys):
    from gencourse.train import History

    book.header("gans", seed=0)
    trained = History(seconds=229.0, run={"trained": True, "train_seconds": 229.0})
    loaded = History(seconds=229.0, run={"trained": False, "train_seconds": 229.0,
                                         "date": "2026-12-01 20:00 UTC", "profile": "cpu"})
    assert book.training_note("the DCGAN", trained) == "the DCGAN was trained in this run in 3.8 min"
    in_worker = History(seconds=229.0, run={"trained": True, "worker_process": True, "train_seconds": 229.0})
    assert book.training_note("the cGAN", in_worker) == "the cGAN was trained in this run (in a worker process) in 3.8 min"
    assert book.training_note("the DCGAN", loaded) == (
        "the DCGAN was loaded from the cache (trained in 3.8 min on 2026-12-01 20:00 UTC under the cpu profile)")
    note = book.footer("gans", [book.training_note("the DCGAN", loaded)])
    assert "this page was executed under the" in note and "loaded from the cache" in note
    assert "chapter run time:" in capsys.readouterr().out


def test_html_table_renders_rows_of_dicts_with_formats():
    table = book.html_table([{"name": "VAE", "fid": 85.71, "kid": None}],
                            [("name", "model", "{}"), ("fid", "FID", "{:.1f}"), ("kid", "KID", "{:.2f}")])
    html = table._repr_html_()
    assert html.startswith("<table") and "<th" in html and ">85.7</td>" in html and ">–</td>" in html
    assert repr(table).splitlines()[0].split() == ["model", "FID", "KID"]


def test_page_check_names_what_a_reader_offline_would_miss(tmp_path):
    """The rules of the Chromium look at every page, on hand-made pages."""
    from page_check import page_problems

    page = tmp_path / "p.html"
    (tmp_path / "ok.png").write_bytes(b"")
    fine = '<html><img src="ok.png"><a href="https://example.org">x</a><script src="_static/x.js"></script></html>'
    assert page_problems(fine, page, tmp_path) == []
    cdn = '<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js"></script>'
    css = '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/font-awesome.min.css">'
    problems = page_problems(f"<html>{cdn}{css}<img src='missing.png'><img src=\"gone.png\"></html>", page, tmp_path)
    assert any("require.min.js" in p for p in problems) and any("font-awesome" in p for p in problems)
    assert "broken image: gone.png" in problems
    assert page_problems('<p class="math">$x$</p>', page, tmp_path)[0] == "formulas were not rendered by MathJax"
    # a player whose script ran shows its first frame; one whose script did not, nothing
    assert page_problems('<img id="_anim_img1a2b" src="data:image/jpeg;base64,AAAA">', page, tmp_path) == []
    assert page_problems('<img id="_anim_img1a2b">', page, tmp_path) == [
        "an interactive figure did not start (no frame in _anim_img1a2b)"]


def test_measure_runtimes_runs_the_kernels_as_a_book_build(tmp_path, monkeypatch):
    """A widget stalls nbclient: the kernels must see the book-build variable, and the caller's
    environment is left as it was."""
    import os

    import nbclient
    import nbformat

    from gencourse import book, config

    (tmp_path / "chapters").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "chapters" / "04_vae.ipynb")
    seen = []

    class FakeClient:
        def __init__(self, nb, **kwargs):
            pass

        def execute(self):
            seen.append(os.environ.get(config.ENV_BOOK_BUILD))

    monkeypatch.setattr(nbclient, "NotebookClient", FakeClient)
    monkeypatch.setenv(config.ENV_PROFILE, "smoke")  # smoke: runtimes.json is not written
    monkeypatch.delenv(config.ENV_BOOK_BUILD, raising=False)
    book.measure_runtimes(tmp_path, ["04_vae"])
    assert seen == ["1"] and config.ENV_BOOK_BUILD not in os.environ
