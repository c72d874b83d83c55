"""Training speed of the recipes with 1 and 2 CPU processes (``torchrun``, DistributedDataParallel, gloo),
each process on one thread (the recipes train on one), at the same global batch (the ``cpu`` profile's settings).

    .venv/bin/python benchmarks/distributed_speed.py [--recipes ddpm dcgan] [--steps 300]

Each run is ``python -m gencourse.train RECIPE --profile cpu --steps N --retrain`` in a fresh cache
folder (the embedded MNIST subset), timed by the training loop's own clock (the ``N steps in X s``
line; data loading and process start excluded). Writes ``benchmarks/results/distributed_speed.{json,md}``.
Not part of the test suite; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "distributed_speed"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(recipe: str, steps: int, processes: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GENCOURSE_PROFILE": "cpu"}
        args = ["-m", "gencourse.train", recipe, "--steps", str(steps), "--retrain", "--quiet", "--out", cache]
        if processes == 1:
            cmd = [sys.executable, *args]
        else:
            cmd = [str(Path(sys.executable).with_name("torchrun")), f"--nproc_per_node={processes}", f"--master_port={_port()}", *args]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    m = re.search(r": (\d+) steps in ([\d.]+) s", out)
    seconds = float(m.group(2))
    return {"recipe": recipe, "processes": processes, "threads_per_process": threads, "steps": steps,
            "seconds": seconds, "steps_per_second": round(steps / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", nargs="+", default=["ddpm", "dcgan"])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    for recipe in args.recipes:
        for processes, threads in ((1, 1), (2, 1)):
            row = run(recipe, args.steps, processes, threads)
            print(json.dumps(row), flush=True)
            rows.append(row)
    RESULTS.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["# Training speed with 1 and 2 CPU processes", "",
             "`benchmarks/distributed_speed.py`: `python -m gencourse.train RECIPE --profile cpu --steps N` against",
             "`torchrun --nproc_per_node=2 -m gencourse.train ...` (DistributedDataParallel, gloo), one thread per process,",
             "the same global batch (so each of the two processes forwards half of it), on a 2-core machine. Seconds of the",
             "training loop (process start and data loading excluded). Measured on "
             f"{time.strftime('%Y-%m-%d')}, load average before the runs {load_before:.2f}.", "",
             "| recipe | processes | steps | seconds | steps per second | speed-up |", "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        base = next(r for r in rows if r["recipe"] == row["recipe"] and r["processes"] == 1)
        lines.append(f"| {row['recipe']} | {row['processes']} | {row['steps']} | {row['seconds']:.1f} | {row['steps_per_second']:.2f} | "
                     f"{base['seconds'] / row['seconds']:.2f}x |")
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
