"""The repository's address lives in `_config.yml` (`repository: url:` and `branch:`); every other
copy agrees with it, and `python -m gencourse.book url NEW_URL` rewrites them all and nothing else."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from gencourse import book, repo_url
from gencourse.grading.generate import generate_all

ROOT = Path(__file__).resolve().parents[1]
NEW_URL, NEW_BRANCH = "https://github.com/Alice-Fork/gen-course2", "dev/fork"
NEW_PAGES = "https://alice-fork.github.io/gen-course2"
SKIP_DIRS = {".git", ".venv", "_build", "__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints",
             "grading-reports", "node_modules"}


def _config():
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return repository["url"], repository["branch"]


def _install_source(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    cell = next(c for c in cells if c["cell_type"] == "code" and "remove-cell" in c["metadata"].get("tags", []))
    return "".join(cell["source"])


def _notebooks(root: Path) -> list[Path]:
    return [p for d in ("chapters", "exercises", "solutions") for p in sorted((root / d).glob("*.ipynb"))]


def test_every_copy_agrees_with_config():
    url, branch = _config()
    assert repo_url.read_config(ROOT) == (url, branch)
    owner, name = url.removeprefix("https://github.com/").split("/")
    notebooks = _notebooks(ROOT)
    assert len(notebooks) >= 3
    assert {ROOT / p for p in repo_url.copy_files(ROOT)} == {ROOT / n for n in ("_config.yml", "CITATION.cff", "intro.md")} | set(notebooks)
    for path in notebooks:
        assert f'"gencourse @ git+{url}@{branch}"' in _install_source(path), path
    footer = yaml.safe_load((ROOT / "_config.yml").read_text())["html"]["extra_footer"]
    assert f'href="{url}/blob/{branch}/CITATION.cff"' in footer
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["repository-code"] == url and cff["url"] == f"https://{owner.lower()}.github.io/{name}"
    assert re.findall(r"^\s*url\s*=\s*\{(.*)\},?$", (ROOT / "intro.md").read_text(), flags=re.M) == [url]
    assert repo_url.disagreements(ROOT) == []


def _text_files(root: Path):
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder, name)
            if path.stat().st_size < 5_000_000:
                try:
                    yield path, path.read_bytes().decode("utf-8")
                except UnicodeDecodeError:
                    continue


def test_no_copy_of_the_address_outside_the_known_places():
    """A new file that hard-codes the address must be added to gencourse.repo_url's copies."""
    url, _ = _config()
    addresses = (url, repo_url.pages_url(url))
    known = {ROOT / p for p in repo_url.copy_files(ROOT)}
    source = (ROOT / "_config.yml").read_text().index(f"url: {url}\n") + len("url: ")
    for path, text in _text_files(ROOT):
        hits = {m.start() for a in addresses for m in re.finditer(re.escape(a), text)}
        if path not in known:
            assert not hits, f"{path} hard-codes the repository's address; derive it from _config.yml"
            continue
        starts = {a for kind, a, _ in repo_url.places(path.relative_to(ROOT), text) if kind in ("url", "pages")}
        starts |= {source} if path.name == "_config.yml" else set()
        assert hits == starts, f"{path}: the address at offsets {sorted(hits - starts)} is not a known copy"


@pytest.fixture
def copy(tmp_path):
    """The files that hold the address, copied into a temporary folder; returns (folder, {file: bytes})."""
    files = repo_url.copy_files(ROOT)
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, tmp_path / rel)
    return tmp_path, {rel: (ROOT / rel).read_bytes() for rel in files}


def _by_hand(text: str, url: str, branch: str, pages: str) -> str:
    """The rewrite done with plain string replacements of the forms each file uses."""
    text = text.replace(f"git+{url}@{branch}\\\"", f"git+{NEW_URL}@{NEW_BRANCH}\\\"")
    text = text.replace(f"{url}/blob/{branch}/", f"{NEW_URL}/blob/{NEW_BRANCH}/")
    text = re.sub(rf"(?m)^(  branch: ){re.escape(branch)}$", rf"\g<1>{NEW_BRANCH}", text)
    return text.replace(url, NEW_URL).replace(pages, NEW_PAGES)


def test_rewrite_changes_every_copy_and_nothing_else_and_back(copy):
    root, before = copy
    url, branch = _config()
    changed = repo_url.set_url(root, NEW_URL, NEW_BRANCH)
    assert set(changed) == set(before)
    assert repo_url.read_config(root) == (NEW_URL, NEW_BRANCH)
    for rel, old in before.items():
        new = (root / rel).read_bytes()
        assert new != old, rel
        assert new.decode() == _by_hand(old.decode(), url, branch, repo_url.pages_url(url)), rel
        assert url not in new.decode(), rel
    for path in _notebooks(root):
        assert f'"gencourse @ git+{NEW_URL}@{NEW_BRANCH}"' in _install_source(path)
    assert repo_url.disagreements(root) == []
    # the rewritten exercises are exactly what the generator makes of the rewritten solutions
    assert generate_all(root / "solutions", root / "exercises", check=True) == []
    assert repo_url.set_url(root, NEW_URL, NEW_BRANCH) == []  # a second run changes nothing
    assert set(repo_url.set_url(root, url, branch)) == set(before)
    assert {rel: (root / rel).read_bytes() for rel in before} == before


def test_report_names_the_file_that_disagrees(copy, monkeypatch, capsys):
    root, before = copy
    url, branch = _config()
    wrong = Path("chapters") / _notebooks(root)[0].name
    (root / wrong).write_text((root / wrong).read_text().replace(f"{url}@{branch}", f"{url}-old@{branch}"))
    report = repo_url.disagreements(root)
    assert len(report) == 1 and report[0].startswith(f"{wrong}: url '{url}-old'")
    monkeypatch.chdir(root)
    assert book.main(["url"]) == 1
    out = capsys.readouterr().out
    assert url in out and str(wrong) in out and "1 file(s) disagree" in out
    # rewriting with the recorded address repairs it, and only it
    assert book.main(["url", url]) == 0
    assert {rel: (root / rel).read_bytes() for rel in before} == before
    assert book.main(["url"]) == 0 and f"all {len(before)} files agree" in capsys.readouterr().out


def test_a_missing_copy_is_reported_and_blocks_the_rewrite(copy):
    root, before = copy
    url, _ = _config()
    (root / "intro.md").write_text((root / "intro.md").read_text().replace(f"{{{url}}}", "{}"))
    assert [line.split(":")[0] for line in repo_url.disagreements(root)] == ["intro.md"]
    with pytest.raises(ValueError, match="intro.md"):
        repo_url.set_url(root, NEW_URL)
    assert all((root / rel).read_bytes() == old for rel, old in before.items() if rel.name != "intro.md")


def test_the_command_line_rewrites_and_reports(copy, monkeypatch, capsys):
    root, before = copy
    monkeypatch.chdir(root)
    assert book.main(["url", NEW_URL, "--branch", NEW_BRANCH]) == 0
    assert f"wrote {Path('chapters') / _notebooks(root)[0].name}" in capsys.readouterr().out
    assert book.main(["url"]) == 0 and f"repository: {NEW_URL} (branch {NEW_BRANCH})" in capsys.readouterr().out
    assert book.main(["url", "https://github.com/x/y.git"]) == 2
    assert "expected https://host/owner/name" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["https://github.com/a/b/", "https://github.com/a/b.git", "github.com/a/b",
                                 "https://github.com/a b/c", 'https://github.com/a/"b', "https://u@github.com/a/b",
                                 "https://github.com", "", None])
def test_wrong_addresses_are_refused(url):
    with pytest.raises(ValueError, match="repository URL"):
        repo_url.check_url(url)


@pytest.mark.parametrize("branch", ["", "-x", "a..b", "a b", "a@b", "a/", None])
def test_wrong_branches_are_refused(branch):
    with pytest.raises(ValueError, match="branch"):
        repo_url.check_branch(branch)


def test_pages_address():
    assert repo_url.pages_url("https://github.com/Alice/book") == "https://alice.github.io/book"
    assert repo_url.pages_url("https://github.com/alice/alice.github.io") == "https://alice.github.io"
    assert repo_url.pages_url("https://gitlab.com/alice/book") is None
    assert repo_url.check_url("https://gitlab.example.org:8443/group/sub/book") == "https://gitlab.example.org:8443/group/sub/book"
    assert repo_url.check_branch("release/1.0") == "release/1.0"
