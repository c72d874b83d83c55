"""Repository hygiene: packaging, notebooks, book configuration, README and CI agree."""

import json
import re
from pathlib import Path

import pytest
import tomllib
import yaml

from gencourse import book

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in ("book", "dev"):
        wanted |= set(project["optional-dependencies"][extra])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {r for r in pip if not r.startswith("-e")}
    def norm(reqs):  # {(normalised name, version specifier)}
        return {(_name(r), re.sub(r"^[A-Za-z0-9_.\-]+", "", r).replace(" ", "")) for r in reqs}

    assert norm(listed) == norm(wanted)
    assert "-e ." in pip


def test_torch_is_a_range_and_jupyter_book_is_v1():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch>=2.2" in deps["dependencies"] and "torchvision>=0.17" in deps["dependencies"]
    assert "jupyter-book>=1.0.4.post1,<2" in deps["optional-dependencies"]["book"]


def _notebooks():
    return sorted(p for d in ("chapters", "solutions", "exercises") for p in (ROOT / d).glob("*.ipynb"))


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebooks_are_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them before committing"


def test_toc_and_chapters_agree():
    names = book.chapters(ROOT)
    assert names and names[0] == "00_generative_models"
    on_disk = sorted(p.stem for p in (ROOT / "chapters").glob("*.ipynb"))
    assert sorted(names) == on_disk


@pytest.mark.parametrize("name", book.chapters(ROOT))
def test_chapter_starts_with_colab_cell_and_header(name):
    nb = json.loads((ROOT / "chapters" / f"{name}.ipynb").read_text())
    assert nb["cells"][0]["cell_type"] == "markdown" and nb["cells"][0]["source"][0].startswith(f"# {name[:2]} ")
    colab = nb["cells"][1]
    src = "".join(colab["source"])
    assert colab["metadata"].get("tags") == ["remove-cell"] and '"google.colab" in sys.modules' in src
    after = src.split("install", 1)[1].replace("torch, torchvision, ipywidgets, matplotlib", "")
    assert not re.search(r"\b(torch|torchvision|ipywidgets|matplotlib)\b(?!\))", after)
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert f'gc.book.header("{book.chapter_name(name)}"' in code


def test_runtime_table_in_intro_is_up_to_date():
    runtimes = book.load_runtimes()
    names = book.chapters(ROOT)
    assert {book.chapter_name(n) for n in names} <= set(runtimes), "every chapter needs an entry in gencourse/runtimes.json"
    intro = (ROOT / "intro.md").read_text()
    table = intro.split(book.TABLE_START)[1].split(book.TABLE_END)[0].strip()
    assert table == book.runtime_table(runtimes, names), "run `make runtimes` or update intro.md"


def test_runtime_table_marks_gpu_estimates_and_prefers_measurements():
    names = ["12_diffusion"]
    estimated = book.runtime_table({"diffusion": {"cpu": 510.0, "gpu": None, "gpu_estimate": 1550.0}}, names)
    assert "| 8.5 min | not measured (training estimated at ~25.8 min) |" in estimated
    measured = book.runtime_table({"diffusion": {"cpu": 510.0, "gpu": 300.0, "gpu_estimate": 1550.0}}, names)
    assert measured.endswith("| 8.5 min | 5.0 min |")
    assert book.runtime_table({"diffusion": {"cpu": None, "gpu": None}}, names).endswith("| not measured | not measured |")


def test_book_configuration():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["only_build_toc_files"] is True
    assert cfg["execute"]["execute_notebooks"] == "cache" and cfg["execute"]["timeout"] >= 600
    assert cfg["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert cfg["repository"]["branch"] == "main"
    assert cfg["launch_buttons"]["colab_url"].startswith("https://colab")
    assert cfg["html"]["use_repository_button"] is True
    assert {"exercises/*", "solutions/*", ".venv/*"} <= set(cfg["exclude_patterns"])


def test_readme_and_ci_use_the_same_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "make book" in first_block and "make test" in first_block
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)
    makefile = (ROOT / "Makefile").read_text()
    for target in ("book", "test", "lab", "exercises"):
        assert re.search(rf"^{target}: \$\(STAMP\)", makefile, flags=re.M), target
