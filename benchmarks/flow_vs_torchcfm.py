"""Chapter 13's pixel-space flow-matching model against ``torchcfm``'s conditional MNIST example, at equal CPU time.

    .venv/bin/python benchmarks/flow_vs_torchcfm.py [--budget SECONDS] [--n SAMPLES] [--threads N] [--jobs 1|2]
                                                    [--seed S] [--out DIR] [--parts DIR]

Both models train for the same budget of **CPU time** (``time.process_time``) on the same data, the
4,000 training images of the ``cpu`` profile (``gencourse.data.mnist("train", value_range="pm1")``,
in :math:`[-1, 1]`), then draw ``--n`` samples, ``n / 10`` of each class (labels
``torch.arange(n) % 10``), from the same noise (one generator seeded with ``--seed``, drawn batch after
batch of 500 as :func:`gencourse.recipes.flow.sample_flow` draws it). The samples are scored by
:func:`gencourse.metrics.evaluate` against the 1,000 held-out images (FID and KID in the feature space
of gencourse's MNIST classifier, precision/recall, class entropy, conditional accuracy); the sampling
CPU time and the number of network evaluations (NFE) are recorded too.

* **gencourse** (chapter 13): :func:`gencourse.recipes.flow.flow_settings` of the ``cpu`` profile,
  built by :func:`~gencourse.recipes.flow.build_flow_unet` (the class-conditional
  :class:`~gencourse.nn.DiffusionUNet` with a continuous time input, channels 32/64 on 14×14 and 7×7
  after folding 2×2 pixels into channels), trained by the steps of
  :func:`~gencourse.recipes.flow.train_flow` (:func:`gencourse.train.flow_train_step`: batch 32 drawn
  with replacement, labels dropped to the null label with probability 0.2, the CFM loss with the
  linear path, Adam 2e-3, EMA 0.995) with the learning rate of :func:`gencourse.train.lr_cosine`
  (warm-up 100 steps, cosine decay) spread over the CPU budget: the total number of steps is
  estimated at every step from the CPU time per step so far. Sampled by
  :func:`~gencourse.recipes.flow.sample_flow` with the chapter's sampler
  :data:`gencourse.recipes.flow.SAMPLER` (read at run time), then, like for like with torchcfm, with
  the same fixed-step solver without guidance (w = 0) and with torchcfm's adaptive sampler (w = 0).
* **torchcfm** (Tong et al., ``pip install torchcfm``, MIT; never a dependency of gencourse), the
  recipe of its example ``examples/images/conditional_mnist.ipynb`` (section "Class Conditional
  CFM"): ``UNetModel(dim=(1, 28, 28), num_channels=32, num_res_blocks=1, num_classes=10,
  class_cond=True)``, ``ConditionalFlowMatcher(sigma=0.0)``, ``torch.optim.Adam(model.parameters())``
  (the default learning rate 1e-3, no schedule, no EMA), batch 128 (``DataLoader(shuffle=True,
  drop_last=True)``: here one random permutation of the 4,000 images per epoch), the loss
  ``t, xt, ut = FM.sample_location_and_conditional_flow(x0, x1)``, ``vt = model(t, xt, y)``,
  ``torch.mean((vt - ut) ** 2)``. Sampled as the example samples: ``torchdiffeq.odeint`` with
  ``method="dopri5"``, ``atol = rtol = 1e-4`` from t = 0 to 1 (NFE counted by a wrapper), and with
  the chapter's fixed-step solver (:func:`gencourse.flow.integrate`) for a like-for-like row.

Both losses are the mean squared error per pixel between the predicted velocity and
:math:`x_1 - x_0` on the path :math:`x_t = (1 - t)\\,x_0 + t\\,x_1` (t = 0 noise, t = 1 data), so the
training losses are on the same scale (gencourse's includes the 20 % of unconditional examples).

A clearly better chapter model means, decided before the run: an FID at least 1.5× lower than
torchcfm's, each model with its own documented sampler.

PyTorch runs with ``--threads`` threads (default 1): on a machine shared with other jobs, OpenMP
threads that wait for each other spin and burn CPU time that does no work; with one thread the CPU
time measures the work alone. ``--jobs 2`` trains the two models in two processes at once (each
measures its own CPU time), then splits the sampling over two processes. Results go to
``benchmarks/results/flow_vs_torchcfm.json``, ``.md`` and ``.png`` (samples of each model and sampler).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import gencourse as gc
from gencourse import flow as F
from gencourse.recipes import flow as R

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "flow_vs_torchcfm"
SAMPLE_BATCH = 500  # R.sample_flow's batch size
ODE_TOL = 1e-4  # atol = rtol of torchcfm's example
THEIRS_BATCH = 128
EXAMPLE = "atong01/conditional-flow-matching, examples/images/conditional_mnist.ipynb"


def machine() -> str:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {cpu or platform.platform()}"


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _train_record(model, losses: list, steps: int, B: int, n_train: int, used: float, wall: float) -> dict:
    """The training facts both models report (``wall``: ``time.perf_counter()`` at the start)."""
    last = losses[-100:]
    return {"steps": steps, "epochs": steps * B / n_train, "batch_size": B, "cpu_seconds": used, "n_train": n_train,
            "wall_seconds": time.perf_counter() - wall, "loss_last100": sum(last) / len(last), "loss_steps": len(last),
            "parameters": sum(p.numel() for p in model.parameters()), "sec_per_step": used / steps}


def lr_over_budget(step: int, used: float, budget: float, warmup: int) -> float:
    """:func:`gencourse.train.lr_cosine` at ``step`` of an estimated total: the steps that fit in the CPU
    budget at the CPU time per step so far (the warm-up does not need the estimate)."""
    total = step + 1 if step < warmup or used <= 0 else max(step + 1, round(step * budget / used))
    return gc.train.lr_cosine(step, total, warmup)


def theirs_model() -> torch.nn.Module:
    from torchcfm.models.unet import UNetModel

    return UNetModel(dim=(1, 28, 28), num_channels=32, num_res_blocks=1, num_classes=10, class_cond=True)


def training_data() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = gc.data.mnist("train", value_range="pm1").tensors
    return x, y


def train_ours(budget: float, seed: int) -> dict:
    settings = R.flow_settings(profile="cpu", seed=seed)
    model = R.build_flow_unet(settings).cpu()
    ema = gc.train.EMA(model, decay=settings["ema_decay"])
    x, y = training_data()
    g = torch.Generator().manual_seed(settings["seed"])
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    B, steps, losses = settings["batch_size"], 0, []
    start, wall, used = time.process_time(), time.perf_counter(), 0.0
    model.train()
    while used < budget:  # the steps of R.train_flow, with the cosine decay spread over the CPU budget
        idx = torch.randint(len(x), (B,), generator=g)
        out = gc.train.flow_train_step(
            model, opt, x[idx], y=y[idx], p_uncond=settings["p_uncond"], null_label=settings["n_classes"],
            coupling=settings["coupling"], lr=settings["lr"] * lr_over_budget(steps, used, budget, settings["warmup"]),
            ema=ema, generator=g,
        )
        losses.append(out["loss"])
        steps += 1
        used = time.process_time() - start
    rec = _train_record(model, losses, steps, B, len(x), used, wall)
    return {"train": rec, "settings": settings, "state": ema.module.state_dict()}


def train_theirs(budget: float, seed: int) -> dict:
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

    torch.manual_seed(seed)  # torchcfm draws t and x0 from the global generator, as the example does
    model = theirs_model()
    opt = torch.optim.Adam(model.parameters())
    FM = ConditionalFlowMatcher(sigma=0.0)
    x, y = training_data()
    g = torch.Generator().manual_seed(seed)  # the shuffling of the "DataLoader"
    B, steps, losses, order, pos = THEIRS_BATCH, 0, [], torch.empty(0, dtype=torch.long), 0
    start, wall, used = time.process_time(), time.perf_counter(), 0.0
    model.train()
    while used < budget:  # the training loop of the example
        if pos + B > len(order):  # a new epoch: shuffle=True, drop_last=True
            order, pos = torch.randperm(len(x), generator=g), 0
        idx = order[pos:pos + B]
        pos += B
        opt.zero_grad()
        x1, y1 = x[idx], y[idx]
        x0 = torch.randn_like(x1)
        t, xt, ut = FM.sample_location_and_conditional_flow(x0, x1)
        vt = model(t, xt, y1)
        loss = torch.mean((vt - ut) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        steps += 1
        used = time.process_time() - start
    rec = _train_record(model, losses, steps, B, len(x), used, wall)
    return {"train": rec, "state": model.state_dict()}


def sample_rows() -> list[dict]:
    """The sampler rows: the chapter's sampler for gencourse, torchcfm's for torchcfm, and each one's
    sampler applied to the other model (without guidance, which torchcfm's model was not trained for)."""
    s = dict(R.SAMPLER)
    fixed = f"{s['method'].capitalize()}, {s['n_steps']} steps"
    dopri = f"dopri5, atol = rtol = {ODE_TOL:g}"
    rows = [{"key": "ours_chapter", "model": "ours", "method": s["method"], "n_steps": s["n_steps"], "w": s["w"],
             "label": f"gencourse, chapter sampler ({fixed}, w = {s['w']:g})"}]
    if s["w"] != 0:
        rows.append({"key": "ours_fixed_w0", "model": "ours", "method": s["method"], "n_steps": s["n_steps"], "w": 0.0,
                     "label": f"gencourse, {fixed}, w = 0"})
    rows += [
        {"key": "ours_dopri5", "model": "ours", "method": "dopri5", "n_steps": None, "w": 0.0,
         "label": f"gencourse, {dopri}, w = 0"},
        {"key": "theirs_dopri5", "model": "theirs", "method": "dopri5", "n_steps": None, "w": 0.0,
         "label": f"torchcfm, example's sampler ({dopri})"},
        {"key": "theirs_fixed", "model": "theirs", "method": s["method"], "n_steps": s["n_steps"], "w": 0.0,
         "label": f"torchcfm, {fixed}"},
    ]
    return rows


def noise_and_labels(n: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The labels and the starting noise of every row, batch by batch, drawn as R.sample_flow draws them."""
    labels = torch.arange(n) % 10
    g = torch.Generator().manual_seed(seed)
    ys = list(labels.split(SAMPLE_BATCH))
    return [torch.randn(len(y), 1, 28, 28, generator=g) for y in ys], ys


def task_cost(row: dict, batch_size: int) -> float:
    """A rough CPU cost, for spreading the tasks over the processes (torchcfm's network costs ~30× more)."""
    nfe = 100 if row["method"] == "dopri5" else row["n_steps"] * F.SOLVERS[row["method"]][1]
    return nfe * (2 if row["w"] else 1) * (30 if row["model"] == "theirs" else 1) * batch_size


def tasks_of(rows: list[dict], n: int) -> list[tuple[str, int | None, float]]:
    """(row key, batch index or None for the whole row, cost). The chapter's sampler runs through
    R.sample_flow on all batches at once; the other rows are split into batches."""
    sizes = [len(y) for y in torch.arange(n).split(SAMPLE_BATCH)]
    out = []
    for row in rows:
        if row["model"] == "ours" and row["method"] in F.SOLVERS:
            out.append((row["key"], None, task_cost(row, n)))
        else:
            out += [(row["key"], b, task_cost(row, size)) for b, size in enumerate(sizes)]
    return out


def load_models(parts: Path) -> dict:
    models = {}
    ours = torch.load(parts / "ours.pt", weights_only=False)
    net = R.build_flow_unet(ours["settings"]).cpu()
    net.load_state_dict(ours["state"])
    models["ours"] = net.eval().requires_grad_(False)
    theirs = torch.load(parts / "theirs.pt", weights_only=False)
    net = theirs_model()
    net.load_state_dict(theirs["state"])
    models["theirs"] = net.eval().requires_grad_(False)
    return models


def velocity(row: dict, net, y: torch.Tensor, counter: list):
    """``v(x, t)`` with ``t`` a float tensor of shape ``()`` or ``(B,)``; counts its calls in ``counter``."""
    ours = row["model"] == "ours"
    field = gc.diffusion.guided_model(net, y, row["w"], net.null_label) if ours else None

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        counter[0] += 1
        t = t.to(x.dtype).expand(x.shape[0]) if t.dim() == 0 else t
        return field(x, t) if ours else net(t, x, y)

    return v


@torch.no_grad()
def run_task(row: dict, b: int | None, models: dict, n: int, seed: int) -> dict:
    import torchdiffeq

    net = models[row["model"]]
    x0s, ys = noise_and_labels(n, seed)
    if b is None:  # the chapter's sampler, by the chapter's function
        start = time.process_time()
        x = R.sample_flow(net, torch.cat(ys), w=row["w"], n_steps=row["n_steps"], method=row["method"],
                          generator=torch.Generator().manual_seed(seed), batch_size=SAMPLE_BATCH)
        seconds = time.process_time() - start
        return {"x": x, "cpu_seconds": seconds, "nfe": [row["n_steps"] * F.SOLVERS[row["method"]][1]] * len(ys)}
    counter = [0]
    v = velocity(row, net, ys[b], counter)
    start = time.process_time()
    if row["method"] == "dopri5":  # as in torchcfm's example
        x = torchdiffeq.odeint(lambda t, x: v(x, t), x0s[b], torch.linspace(0, 1, 2), atol=ODE_TOL, rtol=ODE_TOL,
                               method="dopri5")[-1]
    else:
        x = F.integrate(v, x0s[b], row["n_steps"], method=row["method"])
    seconds = time.process_time() - start
    return {"x": x.clamp(-1, 1), "cpu_seconds": seconds, "nfe": [counter[0]]}


def task_path(parts: Path, key: str, b: int | None) -> Path:
    return parts / f"sample_{key}_{'all' if b is None else b}.pt"


def worker(args) -> None:
    gc.config.threads(args.threads)
    parts = Path(args.parts)
    if args.only in ("ours", "theirs"):
        print(f"{args.only}: training for {args.budget:.0f} CPU seconds", flush=True)
        part = (train_ours if args.only == "ours" else train_theirs)(args.budget, args.seed)
        r = part["train"]
        print(f"{args.only}: {r['steps']} steps in {r['cpu_seconds']:.0f} CPU s ({r['sec_per_step']:.3f} s a step), "
              f"loss {r['loss_last100']:.4f}", flush=True)
        torch.save(part, parts / f"{args.only}.pt")
        return
    rows = {r["key"]: r for r in sample_rows()}
    models = load_models(parts)
    for task in args.tasks.split(","):
        key, b = task.split(":")
        b = None if b == "all" else int(b)
        out = run_task(rows[key], b, models, args.n, args.seed)
        torch.save(out, task_path(parts, key, b))
        print(f"sampled {key} batch {'all' if b is None else b}: {out['cpu_seconds']:.0f} CPU s, NFE {out['nfe']}",
              flush=True)


def run_all(cmds: list[list[str]], jobs: int) -> list[int]:
    if jobs == 2:
        procs = [subprocess.Popen(cmd) for cmd in cmds]
        return [p.wait() for p in procs]
    return [subprocess.call(cmd) for cmd in cmds]


def split_tasks(tasks: list[tuple[str, int | None, float]], jobs: int) -> list[list[str]]:
    """Longest task first, each to the process with the least work so far."""
    bins, load = [[] for _ in range(jobs)], [0.0] * jobs
    for key, b, cost in sorted(tasks, key=lambda t: -t[2]):
        i = load.index(min(load))
        bins[i].append(f"{key}:{'all' if b is None else b}")
        load[i] += cost
    return [b for b in bins if b]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240.0, help="CPU seconds of training per model (default 240)")
    parser.add_argument("--n", type=int, default=1000, help="samples per sampler for the metrics (default 1000)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads per process (default 1)")
    parser.add_argument("--jobs", type=int, default=2, choices=(1, 2), help="processes at once (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS), help=f"folder for {NAME}.json, .md and .png")
    parser.add_argument("--parts", help="folder for the raw results (trained models, sample batches); whatever is "
                        "already there is not computed again (default: a new temporary folder)")
    parser.add_argument("--only", choices=("ours", "theirs", "sample"), help=argparse.SUPPRESS)
    parser.add_argument("--tasks", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("GENCOURSE_PROFILE", "cpu")
    if args.only:
        worker(args)
        return 0

    wall_start = time.perf_counter()
    gc.config.threads(args.threads)
    gc.metrics.feature_net(verbose=True)  # train and cache it once, before the workers start
    gc.metrics.reference_embedding()
    parts = Path(args.parts) if args.parts else Path(tempfile.mkdtemp(prefix="flow_bench_"))
    parts.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, __file__, "--budget", str(args.budget), "--n", str(args.n), "--threads", str(args.threads),
            "--seed", str(args.seed), "--parts", str(parts)]
    cmds = [base + ["--only", w] for w in ("ours", "theirs") if not (parts / f"{w}.pt").exists()]
    codes = run_all(cmds, args.jobs)
    wall_train = time.perf_counter() - wall_start
    rows = sample_rows()
    tasks = [t for t in tasks_of(rows, args.n) if not task_path(parts, t[0], t[1]).exists()]
    if not any(codes) and tasks:
        codes = run_all([base + ["--only", "sample", "--tasks", ",".join(b)] for b in split_tasks(tasks, args.jobs)],
                        args.jobs)
    if any(codes):
        print(f"a worker failed (exit codes {codes})", file=sys.stderr)
        return 1
    wall_sampling = time.perf_counter() - wall_start - wall_train

    labels = torch.arange(args.n) % 10
    trained = {w: torch.load(parts / f"{w}.pt", weights_only=False)["train"] for w in ("ours", "theirs")}
    grids = {}
    for row in rows:
        paths = [task_path(parts, row["key"], b) for _, b, _ in tasks_of([row], args.n)]
        pieces = [torch.load(p, weights_only=False) for p in paths]
        x = torch.cat([p["x"] for p in pieces])
        seconds = sum(p["cpu_seconds"] for p in pieces)
        nfe = [k for p in pieces for k in p["nfe"]]
        scores = gc.metrics.evaluate(x, value_range="pm1", labels=labels, n=args.n, memorisation=False, clamp=True)
        row.update({"sample_cpu_seconds": seconds, "sample_cpu_seconds_per_1000": seconds * 1000 / args.n,
                    "nfe_per_batch": nfe, "nfe_mean": sum(nfe) / len(nfe), **scores})
        grids[row["label"]] = x[:100]
    wall_total = time.perf_counter() - wall_start

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(grids), figsize=(3.6 * len(grids), 4.2))
    for ax, (label, x) in zip(axes, grids.items()):
        gc.plotting.image_grid(x, nrow=10, ax=ax, value_range="pm1", title=label.replace(", ", ",\n", 1))
        ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(out / f"{NAME}.png", dpi=80)

    sampler = dict(R.SAMPLER)
    names = {"ours": "gencourse", "theirs": "torchcfm"}
    result = {
        "benchmark": NAME, "budget_cpu_seconds": args.budget, "n": args.n, "threads": args.threads, "jobs": args.jobs,
        "seed": args.seed, "chapter_sampler": sampler, "ode_tol": ODE_TOL,
        "data": f"embedded MNIST subset: {trained['ours']['n_train']:,} train / 1,000 held-out images",
        "machine": machine(), "torch": torch.__version__, "torchcfm": version("torchcfm"),
        "torchdiffeq": version("torchdiffeq"), "date": time.strftime("%Y-%m-%d %H:%M"),
        "wall_seconds": {"training": wall_train, "sampling": wall_sampling, "total": wall_total},
        "torchcfm_recipe": EXAMPLE,
        "training": {names[w]: r for w, r in trained.items()}, "rows": rows,
    }
    (out / f"{NAME}.json").write_text(json.dumps(result, indent=1) + "\n")

    command = (f"GENCOURSE_PROFILE={os.environ['GENCOURSE_PROFILE']} .venv/bin/python benchmarks/{NAME}.py "
               f"--budget {args.budget:g} --n {args.n} --threads {args.threads} --jobs {args.jobs} --seed {args.seed}")
    fixed = f"{sampler['method']}, {sampler['n_steps']} steps"
    ours_r, theirs_r = trained["ours"], trained["theirs"]
    lines = [
        "# Chapter 13's flow-matching model against torchcfm at equal CPU time",
        "",
        f"`{command}` ({result['date']}, {result['machine']}, torch {result['torch']}, torchcfm {result['torchcfm']}, "
        f"torchdiffeq {result['torchdiffeq']}; {wall_total / 60:.0f} min wall clock). Each model trains for "
        f"{args.budget:g} s of CPU time (`time.process_time`, {args.threads} thread(s)) on the same "
        f"{ours_r['n_train']:,} training images (the embedded subset, in [-1, 1]), then draws {args.n} samples "
        f"({args.n // 10} of each class, the same starting noise for every row); the metrics are those of "
        "`gencourse.metrics.evaluate` against the 1,000 held-out images.",
        "",
        "**gencourse** (chapter 13, `gencourse.recipes.flow`): `flow_settings(profile=\"cpu\")` and "
        "`build_flow_unet`, the class-conditional `DiffusionUNet` with a continuous time input (channels 32/64 "
        "on 14×14 and 7×7 after folding 2×2 pixels into channels), trained by the steps of `train_flow` "
        "(`gencourse.train.flow_train_step`: "
        "batch 32 drawn with replacement, labels dropped with probability 0.2 for classifier-free guidance, the "
        "conditional flow-matching loss on the linear path, Adam 2e-3 with a warm-up of 100 steps and the cosine "
        "decay of `gencourse.train.lr_cosine` spread over the CPU budget, EMA 0.995), sampled from the EMA weights "
        f"by `sample_flow` with the chapter's sampler `SAMPLER = {sampler}` "
        f"({sampler['n_steps'] * F.SOLVERS[sampler['method']][1]} evaluations of the guided field, each a "
        "double batch), and for comparison with the same solver at w = 0 and with torchcfm's adaptive solver.",
        "",
        f"**torchcfm** {result['torchcfm']} (MIT), by the recipe of its example `{EXAMPLE.split(', ')[1]}` "
        f"(repository {EXAMPLE.split(', ')[0]}, section \"Class Conditional CFM\"): `UNetModel(dim=(1, 28, 28), "
        "num_channels=32, num_res_blocks=1, num_classes=10, class_cond=True)` (channel multipliers 1/2/2 and, by "
        "the wrapper's default `attention_resolutions=\"16\"`, i.e. downsampling 28 // 16 = 1, self-attention at the "
        "full 28×28 resolution), `ConditionalFlowMatcher(sigma=0.0)`, `torch.optim.Adam(model.parameters())` "
        "(learning rate 1e-3, no schedule, no EMA), batch 128 with shuffling and `drop_last` (one permutation of the "
        "training images per epoch), the loss `t, xt, ut = FM.sample_location_and_conditional_flow(x0, x1)`, "
        "`torch.mean((model(t, xt, y) - ut) ** 2)`; sampled as the example samples, `torchdiffeq.odeint(..., "
        f"torch.linspace(0, 1, 2), atol={ODE_TOL:g}, rtol={ODE_TOL:g}, method=\"dopri5\")` (network evaluations "
        f"counted), and with the chapter's fixed-step solver ({fixed}) through `gencourse.flow.integrate`.",
        "",
        "| model | parameters | steps (epochs) | CPU s per step | training loss (mean of last steps) "
        "| training CPU s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for w, r in trained.items():
        lines.append(f"| {names[w]} | {r['parameters']:,} | {r['steps']:,} ({r['epochs']:.1f}) "
                     f"| {r['sec_per_step']:.3f} | {r['loss_last100']:.4f} (last {r['loss_steps']}) "
                     f"| {r['cpu_seconds']:.0f} |")
    lines += ["", "Both losses: the mean squared error per pixel between the predicted velocity and x1 − x0.", "",
              "| samples | NFE | FID ↓ | KID ↓ | precision ↑ | recall ↑ | class entropy ↑ (max 2.30) "
              "| cond. acc. ↑ | sampling CPU s per 1000 |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        nfe = f"{r['nfe_mean']:.0f}" if len(set(r["nfe_per_batch"])) == 1 else \
            f"{r['nfe_mean']:.0f} ({'/'.join(str(k) for k in r['nfe_per_batch'])})"
        lines.append(f"| {r['label']} | {nfe} | {r['fid']:.1f} | {r['kid']:.3f} | {r['precision']:.2f} "
                     f"| {r['recall']:.2f} | {r['class_entropy']:.2f} | {r['conditional_accuracy']:.2f} | "
                     f"{r['sample_cpu_seconds_per_1000']:.0f} |")
    by = {r["key"]: r for r in rows}
    ours, theirs = by["ours_chapter"], by["theirs_dopri5"]
    ratio = theirs["fid"] / ours["fid"]
    verdict = "clearly better (FID at least 1.5× lower)" if ratio >= 1.5 else \
        ("better, but not clearly (FID less than 1.5× lower)" if ratio > 1 else "NOT better")
    ours_fixed = by.get("ours_fixed_w0", by["ours_chapter"])
    same = [(by["ours_dopri5"], by["theirs_dopri5"], "dopri5"), (ours_fixed, by["theirs_fixed"], fixed)]
    like = "; ".join(f"{s}: {a['fid']:.1f} against {b['fid']:.1f}" for a, b, s in same)
    lines += ["", f"At equal CPU time ({args.budget:g} s: {ours_r['steps']:,} steps against {theirs_r['steps']:,}), "
              f"chapter 13's model is {verdict}: FID {ours['fid']:.1f} with its sampler ({ours['nfe_mean']:.0f} "
              f"guided evaluations, {ours['sample_cpu_seconds_per_1000']:.0f} CPU s per 1000 samples) against "
              f"{theirs['fid']:.1f} for torchcfm with its example's sampler ({theirs['nfe_mean']:.0f} evaluations, "
              f"{theirs['sample_cpu_seconds_per_1000']:.0f} CPU s per 1000), {ratio:.1f}× lower, conditional accuracy "
              f"{ours['conditional_accuracy']:.2f} against {theirs['conditional_accuracy']:.2f}; like for like without "
              f"guidance, FID {like}.",
              "", f"Samples (the first 100 of each row, one class per column): `{NAME}.png`. The budget is CPU "
              "time, not wall-clock time: the machine may be shared with other jobs, which slows the wall clock "
              "but not the CPU time of a single-threaded run."]
    (out / f"{NAME}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
