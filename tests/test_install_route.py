"""The route a Colab reader takes: gencourse installed from a wheel into an environment that
already has torch, without the repository anywhere on the path, used from an unrelated folder.
Nothing may reach for a file of the repository that the wheel does not ship."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

AUDIT = textwrap.dedent(
    """
    import os, sys
    _root, _log = os.environ.get("GENCOURSE_AUDIT_ROOT"), os.environ.get("GENCOURSE_AUDIT_LOG")
    _skip = os.environ.get("GENCOURSE_AUDIT_SKIP", "\0")  # the installed packages (a venv may sit in the repo)
    if _root and _log:
        def _hook(event, args, _root=_root, _log=_log, _skip=_skip):
            if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
                path = os.path.abspath(os.fsdecode(args[0]))
                if path.startswith(_root + os.sep) and not path.startswith(_skip + os.sep):
                    with open(_log, "a") as f:  # the log lives outside the repository
                        f.write(path + "\\n")
        sys.addaudithook(_hook)
    """
)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """A fresh venv whose only gencourse is the wheel; torch and the other dependencies come
    from this environment's site-packages, added as a plain path (so the editable install's
    finder, a .pth file there, is not activated)."""
    tmp = tmp_path_factory.mktemp("wheel-route")
    dist, src = tmp / "dist", tmp / "src"  # built from a copy: setuptools writes build/ beside the source
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "_build", "build", "*.egg-info",
                                                            "__pycache__", ".pytest_cache", "grading-reports"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist), str(src)], check=True, timeout=600)
    (wheel,) = dist.glob("gencourse-*.whl")
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "zz_host_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (purelib / "sitecustomize.py").write_text(AUDIT)
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(purelib), str(wheel)],
                   check=True, timeout=600)
    return tmp, python


def _run(python, args, tmp, **kw):
    log = tmp / "opened.log"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(GENCOURSE_AUDIT_ROOT=str(ROOT), GENCOURSE_AUDIT_LOG=str(log),
               GENCOURSE_AUDIT_SKIP=str(Path(sys.prefix).resolve()), GENCOURSE_PROFILE="smoke",
               GENCOURSE_DATA=str(tmp / "cache"), HOME=str(tmp / "home"), MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    work = tmp / "elsewhere"
    work.mkdir(exist_ok=True)
    out = subprocess.run([str(python), *args], cwd=work, env=env, capture_output=True, text=True, **kw)
    opened = sorted(set(log.read_text().split())) if log.exists() else []
    return out, opened


def test_the_wheel_is_imported_not_the_repository(wheel_env):
    tmp, python = wheel_env
    out, opened = _run(python, ["-c", "import gencourse, json; print(json.dumps(gencourse.__file__))"], tmp, timeout=300)
    assert out.returncode == 0, out.stderr
    assert not json.loads(out.stdout.strip()).startswith(str(ROOT)), out.stdout
    assert opened == [], f"the installed package read files of the repository: {opened[:5]}"


def test_chapter_00_and_its_checks_run_from_the_wheel(wheel_env):
    """Chapter 00 (executed by the wheel's Python in an unrelated folder) and the public checks
    of every chapter's exercises, as a student on Colab would call them."""
    tmp, python = wheel_env
    nb = tmp / "elsewhere" / "00.ipynb"
    (tmp / "elsewhere").mkdir(exist_ok=True)
    nb.write_bytes((ROOT / "chapters" / "00_generative_models.ipynb").read_bytes())
    code = textwrap.dedent(
        f"""
        import nbformat
        from nbclient import NotebookClient
        nb = nbformat.read({str(nb)!r}, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3").execute()
        from gencourse.grading import known_ids, check
        ids = known_ids()
        assert len(ids) > 30 and "generative_models.exp_icdf" in ids, ids
        import torch
        check("generative_models.exp_icdf", lambda u, rate: -torch.log1p(-u) / rate)
        print("ok", len(ids))
        """
    )
    out, opened = _run(python, ["-c", code], tmp, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ok" in out.stdout
    assert opened == [], f"chapter 00 or the checks read files of the repository: {opened[:5]}"
