"""The book builds warning-free (-W) under the smoke profile, with its figures."""

import shutil
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


def test_build_rejects_an_unknown_profile(tmp_path):
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        book.build(ROOT, output=tmp_path, profile="fast")


def test_header_reports_profile_and_runtimes(capsys, monkeypatch):
    monkeypatch.setenv("GENCOURSE_PROFILE", "cpu")
    g = book.header("generative_models", seed=3)
    out = capsys.readouterr().out
    assert "profile cpu" in out and "seed 3" in out and "cpu profile" in out
    assert g.initial_seed() == 3
