"""Estimated ``gpu``-profile training times, from FLOPs and operator counts measured on the CPU.

No chapter has run under the ``gpu`` profile yet (no GPU machine was available). Until one has,
this script estimates how long each recipe takes to train under ``gpu`` on Colab's usual GPU:

1. every recipe of ``python -m gencourse.train --list`` is built with its ``gpu`` settings (full
   MNIST is replaced by the embedded subset: the data's content does not change the arithmetic)
   and trained for ``K`` and ``2K`` steps on the CPU, counting operators and their FLOPs (the formulas of
   ``torch.utils.flop_counter``); the difference divided by ``K`` is one training step (set-up, data loading
   and the final sampling cancel out);
2. a step on the GPU is estimated as the larger of its FLOPs at an effective throughput and its
   operator launches at a fixed cost each (eager PyTorch launches one or more kernels per operator,
   and for networks this small the launches, not the arithmetic, often set the pace);
3. the recipe's estimate is its ``gpu`` number of steps times that step; a chapter's estimate is
   the sum over the recipes it trains (training only: not its sampling, metrics or toy models).

The two constants are assumptions, stated in the results: an NVIDIA T4 (Colab's free GPU) peaks at
8.1 TFLOP/s in float32; small convolutions reach a fraction of that (``EFFECTIVE_TFLOPS``); PyTorch's
eager overhead per operator is about 10 microseconds on a Colab host (``LAUNCH_US``).
``make runtimes`` under ``gpu`` on a CUDA machine replaces the estimates by measurements.

    python benchmarks/gpu_estimates.py            # writes results/gpu_estimates.{json,md} and runtimes.json
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

EFFECTIVE_TFLOPS = 2.0  # of a T4's 8.1 peak (float32), for small convolutional networks
LAUNCH_US = 10.0  # microseconds of eager overhead per operator
K = 2  # steps of the shorter run (the longer one takes 2K)
RESULTS = Path(__file__).with_name("results")


def _counter():
    """A dispatch mode that counts ATen operators (each at least one kernel launch on a GPU) and their
    FLOPs with the formulas of ``torch.utils.flop_counter`` (its ``FlopCounterMode`` tracks modules with
    hooks that ``autograd.grad`` inside a step, as in the gradient penalty, does not support)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Count(TorchDispatchMode):
        ops = 0
        flops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            Count.ops += 1
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                Count.flops += formula(*args, **kwargs, out_val=out)
            return out

    return Count


def measure(recipe, steps: int) -> tuple[float, int, float]:
    """FLOPs and operators of ``recipe`` trained from scratch for ``steps`` steps, and CPU seconds."""
    overrides = {"steps": steps}
    if "n_checkpoints" in recipe.settings():  # one evaluation at the end in both runs (it cancels)
        overrides["n_checkpoints"] = 1
    Count = _counter()
    start = time.process_time()
    with Count():
        recipe.run(True, False, **overrides)
    return float(Count.flops), Count.ops, time.process_time() - start


def main() -> int:
    cache = tempfile.mkdtemp(prefix="gpu_estimates_")
    os.environ["GENCOURSE_DATA"] = cache
    os.environ["GENCOURSE_PROFILE"] = "gpu"
    import torch

    from gencourse import book
    from gencourse.cli import _recipes
    from gencourse.data import images

    torch.set_num_threads(1)
    # full MNIST stands in for the embedded subset: same shapes and dtype
    images._torchvision_tensors = lambda split, root, download: images._embedded_split(split)
    from gencourse.recipes import flow

    ae = flow.latent_autoencoder
    names = sys.argv[1:] or list(_recipes())
    old = json.loads((RESULTS / "gpu_estimates.json").read_text()) if (RESULTS / "gpu_estimates.json").exists() else {}
    rows = [r for r in old.get("recipes", []) if r["recipe"] not in names]  # a partial run updates its rows
    for name, recipe in _recipes().items():
        if name not in names:
            continue
        settings = recipe.settings()
        # latent flow matching trains its autoencoder (its own recipe) first: K steps of it in
        # every run, so that it cancels in the difference
        flow.latent_autoencoder = (lambda **kw: ae(**{**kw, "steps": K})) if name == "latent_flow" else ae
        measure(recipe, 1)  # trains what the recipe needs once (e.g. the FID's feature network)
        f1, o1, s1 = measure(recipe, K)
        f2, o2, s2 = measure(recipe, 2 * K)
        flops, ops = (f2 - f1) / K, (o2 - o1) / K
        step = max(flops / (EFFECTIVE_TFLOPS * 1e12), ops * LAUNCH_US * 1e-6)
        total = step * settings["steps"]
        rows.append({"recipe": name, "chapter": recipe.chapter, "steps": settings["steps"],
                     "batch_size": settings.get("batch_size"), "gflops_per_step": flops / 1e9,
                     "ops_per_step": ops, "cpu_seconds_per_step": (s2 - s1) / K,
                     "bound": "compute" if flops / (EFFECTIVE_TFLOPS * 1e12) >= ops * LAUNCH_US * 1e-6 else "launches",
                     "estimated_seconds": total})
        print(f"{name:<16} {flops / 1e9:9.2f} GFLOP/step {ops:8.0f} ops/step  x {settings['steps']:>6} steps"
              f"  ~ {total:7.0f} s", flush=True)
    order = list(_recipes())
    rows.sort(key=lambda r: order.index(r["recipe"]))
    chapters: dict[str, float] = {}
    for r in rows:
        chapters[r["chapter"]] = chapters.get(r["chapter"], 0.0) + r["estimated_seconds"]
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "torch": torch.__version__, "effective_tflops": EFFECTIVE_TFLOPS, "launch_us": LAUNCH_US, "K": K}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu_estimates.json").write_text(json.dumps({"meta": meta, "recipes": rows, "chapters": chapters},
                                                           indent=1) + "\n")
    lines = [
        "# Estimated `gpu`-profile training times",
        "",
        f"`benchmarks/gpu_estimates.py`, {meta['date']}, torch {meta['torch']}. **Estimates, not measurements**: "
        "no GPU was available. Each recipe's `gpu` settings were trained on the CPU for "
        f"{K} and {2 * K} steps with an operator counter and the FLOP formulas of `torch.utils.flop_counter`; the difference is one "
        "step. A step on the GPU is taken as the larger of its FLOPs at "
        f"{EFFECTIVE_TFLOPS:g} TFLOP/s (a quarter of a T4's float32 peak) and its operators at {LAUNCH_US:g} µs "
        "each (eager PyTorch's launch overhead). Training only: sampling, metrics and the chapters' toy models "
        "are not included. `GENCOURSE_PROFILE=gpu make runtimes` on a CUDA machine replaces them.",
        "",
        "| recipe | chapter | batch | GFLOP / step | operators / step | bound by | `gpu` steps | estimated training |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['recipe']} | {r['chapter']} | {r['batch_size']} | {r['gflops_per_step']:.2f} | "
                     f"{r['ops_per_step']:.0f} | {r['bound']} | {r['steps']:,} | {book._fmt(r['estimated_seconds'])} |")
    lines += ["", "| chapter | estimated training under `gpu` |", "| --- | --- |"]
    lines += [f"| {c} | {book._fmt(s)} |" for c, s in chapters.items()]
    (RESULTS / "gpu_estimates.md").write_text("\n".join(lines) + "\n")
    if {r['recipe'] for r in rows} == set(_recipes()):
        runtimes = book.load_runtimes()
        for chapter, seconds in chapters.items():
            runtimes.setdefault(book.chapter_name(chapter), {"cpu": None, "gpu": None})["gpu_estimate"] = round(seconds, 1)
        book.RUNTIMES.write_text(json.dumps(runtimes, indent=1, sort_keys=True) + "\n")
        book.write_intro_table(Path(__file__).resolve().parents[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
