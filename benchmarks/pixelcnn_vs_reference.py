"""Chapter 05's gated PixelCNN against the published PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu, 2016), at equal CPU time.

    .venv/bin/python benchmarks/pixelcnn_vs_reference.py [--cpu-seconds 240] [--seed 0]

Both models learn binarised MNIST (:func:`gencourse.recipes.autoregressive.binarised_mnist`: the
embedded 4,000 training images, a pixel on when its grey value is at least 0.5) by maximum
likelihood, through the same loop on the same batches: batches of 32 drawn with replacement from one
generator seeded as the recipe seeds it, the loss the exact negative log-likelihood in nats per image
(:func:`gencourse.models.autoregressive.log_likelihood`), Adam at 3e-3 (the recipe's rate for the gated models), each for the same budget of
CPU time (``time.process_time``) on one CPU thread, so that the budget means the same thing on a busy
machine. The loop is the recipe's (:func:`gencourse.recipes.autoregressive.train_autoregressive`)
with one change, the same for both models: a **constant** learning rate. The recipe decays the rate
by a cosine over a fixed number of steps; under a budget of time the number of steps is not known in
advance and differs between the models (their steps cost differently), so neither gets a schedule.
The first step of this loop is checked against the recipe's first step in
``tests/test_pixelcnn_reference.py``. Quality: the exact held-out negative log-likelihood, nats per
image, mean over the 1,000 held-out images, at four points of the budget (the scoring is not counted);
at the end it is recomputed from the logits by a plain cross-entropy as a check.

* **chapter 05** (:func:`gencourse.recipes.autoregressive.autoregressive_settings` ``("gated")`` and
  :func:`~gencourse.recipes.autoregressive.build_autoregressive`, its step count and schedule
  replaced as said): :class:`gencourse.models.autoregressive.GatedPixelCNN`, h = 16, 5 gated layers
  (a 7 x 7 first layer, then 5 x 5), vertical and horizontal stacks (no blind spot), a 2-way softmax
  per pixel.
* **reference** PixelCNN, written out below (:class:`ReferencePixelCNN`) from the paper's section
  3.5, figure 5 and table 2: a 7 x 7 convolution with mask A from the image to 2h feature maps, then
  residual blocks, each ReLU -> 1 x 1 convolution (2h -> h) -> ReLU -> 3 x 3 convolution with mask B
  (h -> h) -> ReLU -> 1 x 1 convolution (h -> 2h), added to the block's input; then ReLU -> 1 x 1
  convolution (mask B) -> ReLU -> 1 x 1 convolution (mask B) to one logit per pixel and a sigmoid (the
  paper's output for MNIST; table 2: "ReLU followed by 1x1 conv, mask B (2 layers)", "Sigmoid
  (MNIST)"). The masks are :func:`gencourse.models.autoregressive.causal_mask` (one colour channel).
  Size: the paper's table 4 reports 81.30 nats for its PixelCNN on binarised MNIST without giving its
  width or depth; the one MNIST size it states is that of its best model, a Diagonal BiLSTM of
  7 layers with h = 16. The reference takes that size: h = 16 (2h = 32 maps between blocks) and
  7 layers before the output layers, the mask-A convolution and 6 residual blocks. The width of the
  first output layer, which the paper does not give, is 2h. Departures from the paper, all
  shared with the chapter's model: the input is the binary image mapped to {-1, 1} (as the library
  does) rather than {0, 1}; PyTorch's default initialisation; Adam at a constant 3e-3 (the recipe's rate for its gated models), batch 32 (the
  paper does not give its MNIST optimiser settings in the table, only the model); the data are
  binarised at a fixed threshold, not sampled (the paper's binarised MNIST of Salakhutdinov & Murray,
  2008, is a stochastic binarisation), and the training set is the embedded 4,000-image subset, so
  the numbers here are not comparable with the paper's 81.30 nats.

Copy-free baselines: 784 ln 2 nats (every pixel a fair coin), and a per-pixel independent Bernoulli
model fitted on the training images in closed form: :math:`\\hat p_j = (n_j + 1) / (N + 2)` (add-one
smoothing; the plain maximum-likelihood :math:`n_j / N` is 0 on pixels that are off in every
training image, and its held-out NLL is infinite as soon as one held-out image has such a pixel on;
it is reported too).

A clearly better chapter model means, decided before the run: at the end of the same CPU budget, a
held-out NLL at least 2 nats per image lower than the reference's.

Writes ``benchmarks/results/pixelcnn_vs_reference.json`` and ``.md``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import gencourse as gc
from gencourse.models import autoregressive as ar
from gencourse.recipes import autoregressive as recipe

RESULTS = Path(__file__).resolve().parent / "results"
MARKS = (30.0, 60.0, 120.0, 240.0)  # CPU seconds at which the models are scored (for the default budget)
MODELS = ("chapter", "reference")
MARGIN = 2.0  # nats per image: "clearly better"
BATCH_SIZE, LR = 32, 3e-3


# ----------------------------------------------------------------------------------------------
# the reference network: PixelCNN as the paper describes it
# ----------------------------------------------------------------------------------------------

class ReferenceBlock(nn.Module):
    """The paper's figure 5: ReLU -> 1 x 1 (2h -> h) -> ReLU -> 3 x 3 mask B (h -> h) -> ReLU -> 1 x 1 (h -> 2h), plus the input."""

    def __init__(self, h: int):
        super().__init__()
        self.reduce = ar.MaskedConv2d(2 * h, h, 1, "B")
        self.conv = ar.MaskedConv2d(h, h, 3, "B")
        self.expand = ar.MaskedConv2d(h, 2 * h, 1, "B")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.expand(F.relu(self.conv(F.relu(self.reduce(F.relu(x))))))


class ReferencePixelCNN(nn.Module):
    """PixelCNN for binary images (van den Oord et al., 2016, section 3.5, figure 5, table 2): a
    ``first_kernel`` x ``first_kernel`` mask-A convolution (1 -> 2h), ``n_blocks`` residual blocks
    (:class:`ReferenceBlock`), ReLU -> 1 x 1 mask B (2h -> ``out_hidden``) -> ReLU -> 1 x 1 mask B
    (-> 1): one Bernoulli logit per pixel. Input: binary levels ``(B, 1, H, W)``; output, as the
    library's models return it for :func:`gencourse.models.autoregressive.log_likelihood`: logits
    ``(B, 2, 1, H, W)``, level 0 at logit 0 and level 1 at the network's logit (a sigmoid)."""

    levels = 2
    n_classes = None

    def __init__(self, h: int = 16, n_blocks: int = 6, first_kernel: int = 7, out_hidden: int | None = None):
        super().__init__()
        self.h, self.n_blocks = h, n_blocks
        self.first = ar.MaskedConv2d(1, 2 * h, first_kernel, "A")
        self.blocks = nn.ModuleList(ReferenceBlock(h) for _ in range(n_blocks))
        self.out1 = ar.MaskedConv2d(2 * h, out_hidden or 2 * h, 1, "B")
        self.out2 = ar.MaskedConv2d(out_hidden or 2 * h, 1, 1, "B")

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            raise ValueError("the reference PixelCNN is unconditional: call it without labels")
        x = ar.check_levels(x, 2)
        if x.shape[1] != 1:
            raise ValueError(f"the reference PixelCNN models one binary channel, got shape {tuple(x.shape)}")
        return self.logits_from_inputs(x.to(self.first.weight.dtype) * 2.0 - 1.0)  # levels {0, 1} -> {-1, 1}

    def logits_from_inputs(self, u: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, 2, 1, H, W)`` from the real-valued input ``u`` ``(B, 1, H, W)`` (:func:`~gencourse.models.autoregressive.dependencies`)."""
        h = self.first(u)
        for block in self.blocks:
            h = block(h)
        logit = self.out2(F.relu(self.out1(F.relu(h)))).unsqueeze(1)  # (B, 1, 1, H, W)
        return torch.cat([torch.zeros_like(logit), logit], 1)


def layout(net: ReferencePixelCNN) -> list[tuple[int, int, int, str]]:
    """The masked convolutions of ``net`` in order: (in, out, kernel, mask type)."""
    return [(m.in_channels, m.out_channels, m.kernel_size[0], m.mask_type) for m in net.modules() if isinstance(m, ar.MaskedConv2d)]


# ----------------------------------------------------------------------------------------------
# baselines, training and scoring
# ----------------------------------------------------------------------------------------------

def bernoulli_nll(x_train: torch.Tensor, x_test: torch.Tensor, smoothing: float = 1.0) -> float:
    r"""Held-out NLL (nats per image, mean) of independent Bernoulli pixels fitted on ``x_train``:
    :math:`\hat p_j = (n_j + s) / (N + 2s)`, :math:`-\sum_j [x_j \ln \hat p_j + (1 - x_j) \ln(1 - \hat p_j)]`.
    ``smoothing = 0`` is the maximum-likelihood fit (infinite when a held-out pixel is on where no training one is)."""
    x_train, x_test = ar.check_levels(x_train, 2, name="x_train").double(), ar.check_levels(x_test, 2, name="x_test").double()
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"x_train and x_test must have the same image shape, got {tuple(x_train.shape[1:])} and {tuple(x_test.shape[1:])}")
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    p = (x_train.sum(0) + smoothing) / (len(x_train) + 2 * smoothing)
    with torch.no_grad():
        on, off = torch.log(p), torch.log1p(-p)
        ll = torch.where(x_test > 0, on, off)  # elementwise choice: a -inf enters only where it is used
    return -ll.flatten(1).sum(1).mean().item()


@torch.no_grad()
def heldout_nll(net: nn.Module, x_test: torch.Tensor) -> float:
    """Exact held-out NLL, nats per image (mean), by :func:`gencourse.models.autoregressive.log_likelihood`."""
    net.eval()
    out = -ar.log_likelihood(net, x_test).mean().item()
    net.train()
    return out


@torch.no_grad()
def heldout_nll_cross_entropy(net: nn.Module, x_test: torch.Tensor, batch_size: int = 500) -> float:
    """The same number by another route: the summed cross-entropy of the logits, divided by the number of images."""
    net.eval()
    total = 0.0
    for xb in x_test.split(batch_size):
        logits = net(xb)  # (B, 2, 1, H, W)
        total += F.cross_entropy(logits.double(), xb, reduction="sum").item()
    net.train()
    return total / len(x_test)


def make_step(net: nn.Module, x_train: torch.Tensor, *, batch_size: int = BATCH_SIZE, lr: float = LR, seed: int = 0):
    """One maximum-likelihood step per call, as the recipe's loop takes it (batches drawn with
    replacement from a generator seeded ``seed + 1``, Adam), at a constant rate. Returns the batch's NLL."""
    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step() -> float:
        idx = torch.randint(0, len(x_train), (batch_size,), generator=g)
        nll = -ar.log_likelihood(net, x_train[idx]).mean()
        opt.zero_grad(set_to_none=True)
        nll.backward()
        opt.step()
        return nll.item()

    return step


def train_for_cpu_seconds(name: str, net: nn.Module, x_train, x_test, *, seed: int, marks) -> dict:
    """Steps until the last of ``marks`` (CPU seconds of training); the held-out NLL at each mark."""
    step_fn = make_step(net, x_train, seed=seed)
    net.train()
    marks = list(marks)
    cpu, wall, step, points, recent = 0.0, 0.0, 0, [], []
    while marks:
        t_cpu, t_wall = time.process_time(), time.perf_counter()
        recent.append(step_fn())
        step += 1
        cpu += time.process_time() - t_cpu
        wall += time.perf_counter() - t_wall
        if cpu >= marks[0]:
            marks.pop(0)
            t_score = time.perf_counter()
            nll = heldout_nll(net, x_test)
            row = {"step": step, "images_seen": step * BATCH_SIZE, "cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1),
                   "ms_cpu_per_step": round(1000 * cpu / step, 1), "train_nll_recent": round(sum(recent) / len(recent), 2),
                   "heldout_nll": round(nll, 3), "scoring_wall_seconds": round(time.perf_counter() - t_score, 1)}
            recent = []
            points.append(row)
            print(f"{name}: step {step}, {cpu:.0f} s CPU ({wall:.0f} s wall): held-out NLL {nll:.2f} nats "
                  f"(training batches {row['train_nll_recent']:.2f})", flush=True)
    check = heldout_nll_cross_entropy(net, x_test)
    return {"points": points, "final": points[-1], "final_nll_by_cross_entropy": round(check, 3),
            "check_difference": abs(check - points[-1]["heldout_nll"])}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def chapter_model(seed: int) -> tuple[nn.Module, dict]:
    s = recipe.autoregressive_settings("gated", seed=seed)
    net = recipe.build_autoregressive(s)
    k = s["kernel"]
    return net, {"description": f"GatedPixelCNN h {s['h']}, {s['n_blocks']} gated layers (7 x 7 first, then {k} x {k}), "
                                f"vertical + horizontal stacks, 2-way softmax; batch {BATCH_SIZE}, Adam {LR:g} constant",
                 "parameters": n_params(net)}


def reference_model(seed: int, h: int = 16, n_blocks: int = 6) -> tuple[nn.Module, dict]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ReferencePixelCNN(h=h, n_blocks=n_blocks)
    return net, {"description": f"PixelCNN: 7 x 7 mask A (1 -> {2 * h}), {n_blocks} residual blocks 1 x 1 ({2 * h} -> {h}) -> 3 x 3 mask B "
                                f"-> 1 x 1 ({h} -> {2 * h}), ReLU, 1 x 1 ({2 * h} -> {2 * h}) -> 1 x 1 (-> 1), sigmoid; "
                                f"batch {BATCH_SIZE}, Adam {LR:g} constant",
                 "layout": [list(t) for t in layout(net)], "parameters": n_params(net)}


def clearly_better(chapter_nll: float, reference_nll: float, margin: float = MARGIN) -> bool:
    """The verdict decided before the run: the chapter's final held-out NLL at least ``margin`` nats below the reference's."""
    return bool(chapter_nll <= reference_nll - margin)


# ----------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------

NAMES = {"chapter": "chapter 05 gated PixelCNN", "reference": "reference PixelCNN (paper)"}


def markdown(out: dict) -> str:
    lines = [
        "# PixelCNN at equal CPU time: chapter 05's gated PixelCNN against the published PixelCNN (van den Oord et al., 2016)",
        "",
        f"{out['date']} · {out['machine']} · {out['cpu_seconds']:.0f} s of CPU time per model, one thread · seed {out['seed']} · "
        f"profile `{out['profile']}` · binarised MNIST (threshold 0.5), {out['n_train']:,} training images, exact NLL of the "
        f"{out['n_test']:,} held-out images. Produced by `benchmarks/pixelcnn_vs_reference.py` (its docstring gives the reference's "
        "layout and every departure from the paper); wall time exceeds CPU time because the machine was shared with other jobs.",
        "",
        "| model | CPU s | wall s | steps | images seen | ms CPU / step | training NLL (recent batches) | held-out NLL, nats ↓ |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, r in out["models"].items():
        for p in r["points"]:
            lines.append(f"| {NAMES[key]} | {p['cpu_seconds']:.0f} | {p['wall_seconds']:.0f} | {p['step']:,} | {p['images_seen']:,} | "
                         f"{p['ms_cpu_per_step']:.0f} | {p['train_nll_recent']:.2f} | {p['heldout_nll']:.2f} |")
    b = out["baselines"]
    mle = b["bernoulli_mle"]
    lines += [
        f"| independent Bernoulli pixels, add-one fit on the training set | – | – | – | – | – | – | {b['bernoulli_add_one']:.2f} |",
        f"| independent Bernoulli pixels, maximum-likelihood fit | – | – | – | – | – | – | "
        f"{'∞' if math.isinf(mle) else f'{mle:.2f}'} |",
        f"| uniform (784 ln 2) | – | – | – | – | – | – | {b['uniform']:.2f} |",
        "",
    ]
    for key, r in out["models"].items():
        lines.append(f"* {NAMES[key]}: {r['description']}; {r['parameters']:,} parameters. Final held-out NLL recomputed from the logits "
                     f"by a plain cross-entropy: {r['final_nll_by_cross_entropy']:.3f} (difference {r['check_difference']:.1e}).")
    v = out["verdict"]
    c, r = out["models"]["chapter"]["final"], out["models"]["reference"]["final"]
    lines += [
        f"* Same loop, same batches (one generator, seeded as the recipe seeds it), batch 32, Adam {LR:g} at a **constant** rate for both "
        "(the recipe's cosine schedule needs a step count, which a time budget does not fix); CPU time counts the training steps only.",
        "* The reference's size: h = 16 and 7 layers (the mask-A convolution and 6 residual blocks), the size the paper gives for its "
        "MNIST Diagonal BiLSTM; the paper's table 4 reports its PixelCNN (81.30 nats on stochastically binarised MNIST) without a size. "
        "The numbers here (threshold binarisation, 4,000 training images, minutes of CPU) are not comparable with the paper's.",
        f"* Clearly better means, fixed before the run: at the end of the same CPU budget, a held-out NLL at least {out['margin']:g} nats "
        "per image below the reference's. One seed, one run.",
        f"* Held-out NLL at the end: chapter {c['heldout_nll']:.2f} vs reference {r['heldout_nll']:.2f} nats "
        f"(chapter lower by {v['nll_difference']:.2f}); steps {c['step']:,} vs {r['step']:,}; lower at every checkpoint: "
        f"{'yes' if v['lower_at_every_checkpoint'] else 'no'}; clearly better: **{'yes' if v['clearly_better'] else 'no'}**.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-seconds", type=float, default=MARKS[-1], help=f"CPU-time budget of each model (default {MARKS[-1]:g})")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cpu_seconds <= 0:
        parser.error("--cpu-seconds must be positive")
    os.environ.setdefault("GENCOURSE_PROFILE", "cpu")  # the embedded MNIST subset
    marks = [args.cpu_seconds * m / MARKS[-1] for m in MARKS]
    gc.config.threads(1)
    x_train, _ = recipe.binarised_mnist("train")
    x_test, _ = recipe.binarised_mnist("test")
    baselines = {"bernoulli_add_one": round(bernoulli_nll(x_train, x_test, 1.0), 3), "bernoulli_mle": bernoulli_nll(x_train, x_test, 0.0),
                 "uniform": round(784 * math.log(2), 3)}
    print(f"baselines: {baselines}", flush=True)

    models = {}
    for key, build in (("chapter", chapter_model), ("reference", reference_model)):
        net, info = build(args.seed)
        models[key] = {**info, **train_for_cpu_seconds(NAMES[key], net, x_train, x_test, seed=args.seed, marks=marks)}
    c, r = models["chapter"], models["reference"]
    verdict = {"nll_difference": round(r["final"]["heldout_nll"] - c["final"]["heldout_nll"], 3),
               "lower_at_every_checkpoint": all(a["heldout_nll"] < b["heldout_nll"] for a, b in zip(c["points"], r["points"])),
               "clearly_better": clearly_better(c["final"]["heldout_nll"], r["final"]["heldout_nll"])}
    mle = baselines["bernoulli_mle"]
    out = {"benchmark": "pixelcnn_vs_reference", "cpu_seconds": args.cpu_seconds, "threads": 1, "seed": args.seed,
           "profile": gc.config.profile(), "n_train": len(x_train), "n_test": len(x_test), "batch_size": BATCH_SIZE, "lr": LR,
           "schedule": "constant", "margin": MARGIN,
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), torch {torch.__version__}", "date": time.strftime("%Y-%m-%d"),
           "baselines": baselines, "models": models, "verdict": verdict}
    text = markdown(out)
    out["baselines"]["bernoulli_mle"] = "inf" if math.isinf(mle) else round(mle, 3)  # JSON has no infinity
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pixelcnn_vs_reference.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "pixelcnn_vs_reference.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
