"""The results plumbing shared by the benchmarks that append one JSON line per run to
``results/<name>.jsonl`` and rebuild ``results/<name>.md`` from all the lines with ``--table``
(``diffusion_prediction.py``, ``flow_time_sampling.py``, ``gan_selection.py``)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def append(name: str, row: dict) -> None:
    """Print ``row`` as one JSON line and append it to ``results/<name>.jsonl``."""
    print(json.dumps(row), flush=True)
    with open(RESULTS / f"{name}.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def rows(name: str) -> list[dict]:
    """Every recorded line of ``results/<name>.jsonl``."""
    return [json.loads(line) for line in (RESULTS / f"{name}.jsonl").read_text().splitlines() if line.strip()]


def grouped(runs: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    """``runs`` grouped by the values of ``keys``, in the order of their first run."""
    groups: dict = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return groups


def machines_line(runs: list[dict]) -> str:
    """``"Machines: ..."``: the machines and CPU capabilities that the runs recorded."""
    machines = sorted({f"{r['machine']} {r['cpu']}" for r in runs})
    return f"Machines: {', '.join(machines)}."


def mean_sd(values, fmt: str) -> str:
    """``"mean ± standard deviation"`` of ``values`` formatted with ``fmt`` (sd 0 for one value)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.format(sd)}"


def main(argv: list[str], name: str, table: Callable[[], str], run: Callable[[str], None]) -> int:
    """``--table``: write ``table()`` to ``results/<name>.md`` and print it; else ``run(arg)`` for each argument."""
    if argv == ["--table"]:
        text = table()
        (RESULTS / f"{name}.md").write_text(text)
        print(text)
        return 0
    for arg in argv:
        run(arg)
    return 0
