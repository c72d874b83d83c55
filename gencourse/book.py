"""The book: chapter headers and footers, numbers glued into the prose, measured run times,
and the build that ``make book`` runs.

A number that a run produces is never typed into a chapter's text: the cell that computes it
calls :func:`glue` and the text refers to it with myst-nb's role, ``{glue:text}`fid:.1f```, so the
rendered page and the executed notebook agree on every machine (``tests/test_prose.py`` checks it).

``python -m gencourse.book build``     render ``_build/html`` under the active profile
``python -m gencourse.book runtimes``  time every chapter under the active profile, record it
                                       in ``gencourse/runtimes.json`` and the table of ``intro.md``
``python -m gencourse.book url``       print the repository's address (``_config.yml``) and the files
                                       whose copy of it disagrees; ``url NEW_URL [--branch B]``
                                       writes a new one into ``_config.yml`` and every copy
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import config, repo_url

__all__ = ["header", "versions", "footer", "glue", "training_note", "html_table", "load_runtimes", "runtime_table",
           "chapters", "build", "measure_runtimes", "repository_url"]

RUNTIMES = Path(__file__).with_name("runtimes.json")
TABLE_START, TABLE_END = "<!-- runtimes:start -->", "<!-- runtimes:end -->"


def load_runtimes() -> dict:
    """``{chapter: {"cpu": seconds | None, "gpu": seconds | None}}`` as last measured."""
    return json.loads(RUNTIMES.read_text()) if RUNTIMES.exists() else {}


def _fmt(seconds) -> str:
    if seconds is None:
        return "not measured"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


_CLOCKS: dict[str, tuple[float, float]] = {}


def header(chapter: str, seed: int = 0):
    """Seed everything, start the chapter's clock and print the profile, device and the run
    times that ``intro.md``'s table records for this chapter. What *this* run took is printed by
    :func:`footer` at the end of the chapter (and glued into its first paragraph).

    Returns the ``torch.Generator`` from :func:`gencourse.config.seed_everything`.
    """
    generator = config.seed_everything(seed)
    from . import plotting  # matplotlib only when a chapter starts

    plotting.book_style()
    _CLOCKS[chapter] = (time.perf_counter(), time.process_time())
    times = load_runtimes().get(chapter, {})
    print(
        f"gencourse · profile {config.profile()} · device {config.device()} · seed {seed}\n"
        f"executed with {versions()} on {time.strftime('%Y-%m-%d', time.gmtime())}\n"
        f"run time of this chapter in the intro's table (fresh cache, 2 CPU cores): cpu profile "
        f"{_fmt(times.get('cpu'))}, gpu profile {_fmt_gpu(times)}; this run's time is printed at the end"
    )
    return generator


def versions() -> str:
    """The versions a chapter runs with (Python, PyTorch, torchvision, gencourse), for its header:
    a reader with other versions sees what this page was executed with."""
    import platform

    import torch

    try:
        import torchvision

        tv = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency
        tv = "not installed"
    from . import __version__

    return f"Python {platform.python_version()}, torch {torch.__version__}, torchvision {tv}, gencourse {__version__}"


def _plain(value: Any) -> Any:
    """A tensor or numpy scalar as a Python number (its repr must be a literal for myst-nb)."""
    if hasattr(value, "numel") and hasattr(value, "item") and value.numel() == 1:  # torch.Tensor
        return value.item()
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Record ``value`` under ``name`` for the rendered book and return it unchanged (as a Python
    number when it was a 0-d tensor or numpy scalar).

    The chapter's text shows it with ``{glue:text}`name``` or a format, ``{glue:text}`name:.1f```,
    ``{glue:text}`name:.0%```. Calls :func:`myst_nb.glue` when myst-nb is installed and the code
    runs in a Jupyter kernel; elsewhere (Colab, a script) it does nothing else.
    """
    value = _plain(value)
    try:
        from IPython.core.interactiveshell import InteractiveShell
        from myst_nb import glue as _myst_glue
    except ImportError:
        return value
    if InteractiveShell.initialized():
        _myst_glue(name, value, display=display)
    return value


def training_note(what: str, history) -> str:
    """One sentence on where a model of this run came from, from ``history.run`` (filled by
    :func:`gencourse.train.load_or_train`): trained in this run, or loaded from the cache, with the
    wall time, date and profile of the run that trained it."""
    run = getattr(history, "run", None) or {}
    seconds = _fmt(run.get("train_seconds", getattr(history, "seconds", None)))
    if run.get("trained"):
        where = " (in a worker process)" if run.get("worker_process") else ""
        return f"{what} was trained in this run{where} in {seconds}"
    if not run:
        return f"{what}: training took {seconds}"
    when = f" on {run['date']}" if run.get("date") else ""
    under = f" under the {run['profile']} profile" if run.get("profile") else ""
    return f"{what} was loaded from the cache (trained in {seconds}{when}{under})"


def footer(chapter: str, notes: Sequence[str] = ()) -> str:
    """Print and glue (as ``run_note``) what this run of the chapter took: wall-clock and CPU time
    since :func:`header`, the profile, and a :func:`training_note` for each cached model."""
    start_wall, start_cpu = _CLOCKS.get(chapter, (time.perf_counter(), time.process_time()))
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    note = f"this page was executed under the {config.profile()} profile in {_fmt(wall)} of wall-clock time"
    note += "".join(f"; {n}" for n in notes)
    print(f"chapter run time: {wall:.0f} s wall-clock, {cpu:.0f} s CPU time (profile {config.profile()})")
    for n in notes:
        print(n)
    glue("run_note", note)
    glue("run_seconds", round(wall))
    return note


def html_table(rows: Sequence, columns: Sequence, align: str | None = None) -> HTMLTable:
    """A table that renders as a table in Jupyter, Colab and the built book (an HTML table, with a
    plain-text fallback).

    ``columns`` are titles, with ``rows`` sequences of cells; or ``(key, title, format)`` triples
    (e.g. :data:`gencourse.scoreboard.COLUMNS`), with ``rows`` dicts whose ``row[key]`` is formatted
    by ``format.format(value)`` ("–" when missing or NaN). ``align`` is a string of ``l``/``r``/``c``,
    one letter per column (default: the first column left, the others right).
    """
    def cell(value, fmt="{}"):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return fmt.format(value)

    if columns and not isinstance(columns[0], str):
        header = [title for _, title, _ in columns]
        body = [[cell(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
    else:
        header, body = list(columns), [[cell(v) for v in row] for row in rows]
    return HTMLTable(body, [str(h) for h in header], align)


class HTMLTable:
    """The object :func:`html_table` returns; ``display(table)`` shows it."""

    def __init__(self, rows: list[list[str]], header: list[str], align: str | None = None):
        self.rows, self.header = rows, header
        self.align = align or "l" + "r" * (len(header) - 1)

    def _repr_html_(self) -> str:
        import html

        side = {"l": "left", "r": "right", "c": "center"}

        def cells(values, tag):
            return "".join(f'<{tag} style="text-align: {side[a]}">{html.escape(v)}</{tag}>'
                           for v, a in zip(values, self.align))

        body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in self.rows)
        return f'<table class="table"><thead><tr>{cells(self.header, "th")}</tr></thead><tbody>{body}</tbody></table>'

    def __repr__(self) -> str:
        widths = [max(len(x) for x in col) for col in zip(self.header, *self.rows)]
        line = lambda values: "  ".join(v.ljust(w) if a == "l" else v.rjust(w)  # noqa: E731
                                        for v, w, a in zip(values, widths, self.align))
        return "\n".join([line(self.header), line(["-" * w for w in widths]), *map(line, self.rows)])


def chapter_name(stem: str) -> str:
    """A chapter's name from its file name: ``"12_diffusion"`` -> ``"diffusion"``. The number is
    only the chapter's place in the book; run times, grading ids and checkpoints use the name."""
    return re.sub(r"^\d+_", "", stem)


def chapters(root: Path = Path(".")) -> list[str]:
    """Chapter names (``00_generative_models``, ...) in the order of ``_toc.yml``."""
    toc = (root / "_toc.yml").read_text()
    return re.findall(r"file:\s*chapters/(\S+?)(?:\.ipynb)?\s*$", toc, flags=re.M)


def _fmt_gpu(times: dict) -> str:
    """The ``gpu`` entry: the measured time, else the estimate of ``benchmarks/gpu_estimates.py`` marked as one."""
    if times.get("gpu") is not None or times.get("gpu_estimate") is None:
        return _fmt(times.get("gpu"))
    return f"not measured (training estimated at ~{_fmt(times['gpu_estimate'])})"


def runtime_table(runtimes: dict, names: list[str]) -> str:
    """The Markdown table of run times that ``intro.md`` shows."""
    rows = ["| chapter | `cpu` profile (2 CPU cores) | `gpu` profile |", "| --- | --- | --- |"]
    for name in names:
        t = runtimes.get(chapter_name(name), {})
        rows.append(f"| [{name}](chapters/{name}.ipynb) | {_fmt(t.get('cpu'))} | {_fmt_gpu(t)} |")
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
    before = os.environ.get(config.ENV_BOOK_BUILD)
    for name in names or chapters(root):
        path = root / "chapters" / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        os.environ[config.ENV_BOOK_BUILD] = "1"  # as in a book build: explorers open no widgets (a widget stalls nbclient)
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
        finally:
            if before is None:
                os.environ.pop(config.ENV_BOOK_BUILD, None)
            else:
                os.environ[config.ENV_BOOK_BUILD] = before
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
    # the kernels know they run for a static page: explorers open no widgets (gencourse.widgets)
    env = {**os.environ, config.ENV_PROFILE: prof, config.ENV_BOOK_BUILD: "1"}
    print(f"gencourse: building the book under the {prof} profile: {' '.join(cmd)}", flush=True)
    rc = subprocess.call(cmd, env=env)
    if rc == 0:
        build_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(prof + "\n")
        print(f"gencourse: the book is in {build_dir / 'html' / 'index.html'}")
    return rc


def repository_url(root: Path = Path("."), url: str | None = None, branch: str | None = None) -> int:
    """The ``url`` command. Without ``url`` and ``branch``: print the address that ``_config.yml``
    records and every file whose copy disagrees (exit status 1 if one does). With them: write them
    into ``_config.yml`` and every copy (:func:`gencourse.repo_url.set_url`) and print what changed."""
    if url is None and branch is None:
        current, current_branch = repo_url.read_config(root)
        print(f"repository: {current} (branch {current_branch}), from {repo_url.CONFIG}")
        wrong = repo_url.disagreements(root)
        for line in wrong:
            print(f"  disagrees: {line}")
        print(f"{len(wrong)} file(s) disagree; run `python -m gencourse.book url {current}` to rewrite them" if wrong
              else f"all {len(repo_url.copy_files(root))} files agree")
        return 1 if wrong else 0
    for path in repo_url.set_url(root, url, branch):
        print(f"wrote {path}")
    current, current_branch = repo_url.read_config(root)
    if repo_url.pages_url(current) is None:
        print(f"note: {current} is not a GitHub address; the book's address (url:) in CITATION.cff was left as it is")
    print(f"repository: {current} (branch {current_branch})")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gencourse.book", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="render the book under the active profile")
    b.add_argument("--output", help="folder that receives _build/ (default: the repository)")
    b.add_argument("--profile", help=f"one of {', '.join(config.PROFILES)} (default: the active profile)")
    r = sub.add_parser("runtimes", help="time each chapter under the active profile")
    r.add_argument("chapters", nargs="*", help="chapter names (default: all in _toc.yml)")
    u = sub.add_parser("url", help="print the repository's address and the files that disagree, or change it everywhere")
    u.add_argument("new_url", nargs="?", help="the new address, e.g. https://github.com/<you>/gencourse")
    u.add_argument("--branch", help="the branch that Colab installs from (default: the one in _config.yml)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            return build(Path("."), Path(args.output) if args.output else None, args.profile)
        if args.command == "url":
            return repository_url(Path("."), args.new_url, args.branch)
        measure_runtimes(Path("."), args.chapters or None)
        return 0
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
