"""The package's structure: lazy submodules, no upward dependencies, and what `import gencourse` costs."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import gencourse

ROOT = Path(gencourse.__file__).parent


def test_every_listed_submodule_exists_and_imports():
    for package in ("gencourse", "gencourse.models", "gencourse.recipes"):
        module = importlib.import_module(package)
        names = module.SUBMODULES if package == "gencourse" else module._SUBMODULES
        folder = Path(module.__file__).parent
        on_disk = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")} | {
            p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
        assert set(names) <= on_disk, f"{package} lists modules that do not exist: {set(names) - on_disk}"
        for name in names:
            if package == "gencourse" and name == "grading":
                continue  # a command-line entry point too; imported by its own tests
            assert getattr(module, name).__name__ == f"{package}.{name}"
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        gencourse.nonexistent  # noqa: B018


def _imports(path: Path) -> set[str]:
    """The gencourse modules a file imports, as absolute names."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {name for name in out if name.startswith("gencourse")}


def test_models_never_import_recipes_or_the_scoreboard():
    for path in (ROOT / "models").glob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(("gencourse.scoreboard", "gencourse.recipes"))}
        assert not bad, f"{path.name} imports {bad}: models hold networks only; recipes and the scoreboard depend on them"


def test_import_gencourse_is_cheap():
    code = "import sys, gencourse; print(sorted(m for m in ('matplotlib.pyplot', 'scipy', 'ot', 'ipywidgets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"import gencourse imported {out}: import it where it is used"
