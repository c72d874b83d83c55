"""The files that let others reuse, cite and extend the course exist and agree with each other."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_citation_cff_parses_and_has_the_required_fields():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors", "license"):
        assert cff.get(key), f"CITATION.cff lacks {key!r}"
    assert cff["license"] == "MIT"
    assert all("name" in a or "family-names" in a for a in cff["authors"])


def test_licences_exist_and_agree_with_pyproject():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
    assert "CC BY 4.0" in (ROOT / "LICENSE-BOOK.md").read_text()
    footer = yaml.safe_load((ROOT / "_config.yml").read_text())["html"]["extra_footer"]
    assert "CC BY 4.0" in footer and "MIT" in footer


def _commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if re.match(r"\s*(- run: )?make \w+", line)]


def test_tests_workflow_runs_the_same_command_as_ci():
    ci = _commands((ROOT / ".ci" / "run").read_text())
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "tests.yml").read_text())
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in on and "push" in on
    runs = [s["run"] for job in workflow["jobs"].values() for s in job["steps"] if "run" in s]
    assert ci == ["make test"] and runs == ci
    book = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    python = {s["with"]["python-version"] for j in (workflow, book) for s in j["jobs"]["test" if j is workflow else "build"]["steps"]
              if "setup-python" in s.get("uses", "")}
    assert len(python) == 1, f"the tests and book workflows use different Pythons: {python}"


def test_readme_links_the_project_files():
    readme = (ROOT / "README.md").read_text()
    for name in ("LICENSE", "LICENSE-BOOK.md", "CITATION.cff", "CONTRIBUTING.md"):
        assert f"]({name})" in readme, f"README.md does not link {name}"
        assert (ROOT / name).exists(), name


def test_pre_commit_strips_notebooks_and_runs_ruff():
    hooks = [h["id"] for r in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"] for h in r["hooks"]]
    assert "nbstripout" in hooks and "ruff" in hooks


def test_issue_templates_ask_for_evidence():
    erratum = (ROOT / ".github" / "ISSUE_TEMPLATE" / "erratum.md").read_text()
    for field in ("Chapter", "What it says", "What is right", "Evidence"):
        assert field in erratum
    assert (ROOT / ".github" / "ISSUE_TEMPLATE" / "bug.md").exists()
