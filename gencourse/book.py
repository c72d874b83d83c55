"""The book: chapter headers, measured run times, and the build that ``make book`` runs.

``python -m gencourse.book build``     render ``_build/html`` under the active profile
``python -m gencourse.book runtimes``  time every chapter under the active profile, record it
                                       in ``gencourse/runtimes.json`` and the table of ``intro.md``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import config

__all__ = ["header", "load_runtimes", "runtime_table", "chapters", "build", "measure_runtimes"]

RUNTIMES = Path(__file__).with_name("runtimes.json")
TABLE_START, TABLE_END = "<!-- runtimes:start -->", "<!-- runtimes:end -->"


def load_runtimes() -> dict:
    """``{chapter: {"cpu": seconds | None, "gpu": seconds | None}}`` as last measured."""
    return json.loads(RUNTIMES.read_text()) if RUNTIMES.exists() else {}


def _fmt(seconds) -> str:
    if seconds is None:
        return "not measured"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def header(chapter: str, seed: int = 0):
    """Seed everything and print the profile, device and the chapter's measured run times.

    Returns the ``torch.Generator`` from :func:`gencourse.config.seed_everything`.
    """
    generator = config.seed_everything(seed)
    times = load_runtimes().get(chapter, {})
    print(
        f"gencourse · profile {config.profile()} · device {config.device()} · seed {seed}\n"
        f"measured run time of this chapter: cpu profile {_fmt(times.get('cpu'))} (2 CPU cores), "
        f"gpu profile {_fmt(times.get('gpu'))}"
    )
    return generator


def chapter_name(stem: str) -> str:
    """A chapter's name from its file name: ``"12_diffusion"`` -> ``"diffusion"``. The number is
    only the chapter's place in the book; run times, grading ids and checkpoints use the name."""
    return re.sub(r"^\d+_", "", stem)


def chapters(root: Path = Path(".")) -> list[str]:
    """Chapter names (``00_generative_models``, ...) in the order of ``_toc.yml``."""
    toc = (root / "_toc.yml").read_text()
    return re.findall(r"file:\s*chapters/(\S+?)(?:\.ipynb)?\s*$", toc, flags=re.M)


def runtime_table(runtimes: dict, names: list[str]) -> str:
    """The Markdown table of run times that ``intro.md`` shows."""
    rows = ["| chapter | `cpu` profile (2 CPU cores) | `gpu` profile |", "| --- | --- | --- |"]
    for name in names:
        t = runtimes.get(chapter_name(name), {})
        rows.append(f"| [{name}](chapters/{name}.ipynb) | {_fmt(t.get('cpu'))} | {_fmt(t.get('gpu'))} |")
    return "\n".join(rows)


def write_intro_table(root: Path = Path(".")) -> None:
    intro = root / "intro.md"
    text = intro.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"{intro} must contain the markers {TABLE_START} and {TABLE_END}")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    table = runtime_table(load_runtimes(), chapters(root))
    intro.write_text(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}")


def measure_runtimes(root: Path = Path("."), names: list[str] | None = None, timeout: int = 3600) -> dict:
    """Execute chapters in a fresh kernel under the active profile and record their run times."""
    import nbformat
    from nbclient import NotebookClient

    prof = config.profile()
    runtimes = load_runtimes()
    for name in names or chapters(root):
        path = root / "chapters" / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds = round(time.perf_counter() - start, 1)
        runtimes.setdefault(chapter_name(name), {"cpu": None, "gpu": None})
        if prof in ("cpu", "gpu"):
            runtimes[chapter_name(name)][prof] = seconds
        print(f"{name}: {seconds:.1f} s under the {prof} profile ({os.cpu_count()} CPUs, {platform.machine()})")
    if prof in ("cpu", "gpu"):
        RUNTIMES.write_text(json.dumps(runtimes, indent=1, sort_keys=True) + "\n")
        write_intro_table(root)
    return runtimes


def build(root: Path = Path("."), output: Path | None = None, profile: str | None = None) -> int:
    """Render the book into ``<output>/_build/html`` (default: ``./_build/html``), executing the
    chapters under ``profile`` (default: the active one) with ``-W`` (warnings are errors).

    Executed notebooks are cached per build folder; when the profile differs from the last
    build's, the cache is cleared so that no page shows results of another profile.
    """
    prof = config.check_profile(profile) if profile else config.profile()
    out = Path(output) if output else root
    build_dir = out / "_build"
    marker = build_dir / ".gencourse-profile"
    rebuild_all = not marker.exists() or marker.read_text().strip() != prof
    if rebuild_all:
        shutil.rmtree(build_dir / ".jupyter_cache", ignore_errors=True)
        shutil.rmtree(build_dir / "jupyter_execute", ignore_errors=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "-W", "-n", "--keep-going"]
    if output:
        cmd += ["--path-output", str(out)]
    if rebuild_all:
        cmd.append("--all")
    env = {**os.environ, config.ENV_PROFILE: prof}
    print(f"gencourse: building the book under the {prof} profile: {' '.join(cmd)}", flush=True)
    rc = subprocess.call(cmd, env=env)
    if rc == 0:
        build_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(prof + "\n")
        print(f"gencourse: the book is in {build_dir / 'html' / 'index.html'}")
    return rc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gencourse.book", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="render the book under the active profile")
    b.add_argument("--output", help="folder that receives _build/ (default: the repository)")
    b.add_argument("--profile", help=f"one of {', '.join(config.PROFILES)} (default: the active profile)")
    r = sub.add_parser("runtimes", help="time each chapter under the active profile")
    r.add_argument("chapters", nargs="*", help="chapter names (default: all in _toc.yml)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            return build(Path("."), Path(args.output) if args.output else None, args.profile)
        measure_runtimes(Path("."), args.chapters or None)
        return 0
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
