"""Chapter 09's conditional GANs against the most-copied public MLP cGAN recipe, at equal CPU time.

    .venv/bin/python benchmarks/cgan_vs_mlp.py [--cpu-seconds 120] [--seed 0]

Every model trains on the embedded MNIST subset (4,000 labelled training images in [-1, 1]) with one
discriminator step and one generator step per iteration (:func:`gencourse.train.d_step` with
``y_real`` = the real images' labels and ``y_fake`` = labels drawn uniformly for the generator, then
:func:`gencourse.train.g_step` with fresh noise and labels, as
:func:`gencourse.recipes.conditional.train_conditional` does), batches of 64 drawn with replacement,
each for the same budget of CPU time (``time.process_time``) on one CPU thread, so that the budget
means the same thing on a busy machine. Quality is measured at four points of the budget (the
scoring is not counted) on 2,000 samples asked for the labels ``arange(2000) % 10`` (200 per
class), against the 1,000 held-out test images, with :func:`gencourse.metrics.evaluate`: FID,
conditional accuracy (the fraction of samples that the feature network classifies as the class
they were asked for), precision/recall and the entropy of the predicted classes (ln 10 = 2.303
when all ten digits are equally frequent); at the end of the budget also
:func:`gencourse.metrics.per_class_scores` (FID and recall of each class's samples against the
held-out images of that class: diversity within a class).

* **chapter 09** (:func:`gencourse.recipes.conditional.conditional_settings`,
  :func:`~gencourse.recipes.conditional.build_conditional`): ``"cgan"`` is chapter 07's DCGAN with
  the one-hot label joined to the noise (:class:`~gencourse.models.conditional.ConditionalGenerator`)
  and to the image as constant channels (:class:`~gencourse.models.conditional.ConcatDiscriminator`);
  ``"projection"`` has the same generator and the projection discriminator
  (:class:`~gencourse.models.conditional.ProjectionDiscriminator`). ``ngf = ndf = 16``, latent 64,
  non-saturating loss, Adam 5e-4 for both, β = (0.5, 0.999), DCGAN initialisation, samples from an
  EMA of G (decay 0.995) drawn with :func:`~gencourse.recipes.conditional.sample_conditional`.
* **public MLP recipe**, written from its description:
  :class:`~gencourse.models.conditional.PublicMLPConditionalGenerator` (a learned 10 × 10 label
  embedding joined to z of 100, 110 → 128 → 256 → 512 → 1024 → 784, batch norm with eps 0.8,
  LeakyReLU, Tanh) and :class:`~gencourse.models.conditional.PublicMLPConditionalDiscriminator`
  (the flattened image joined to a 10 × 10 label embedding, 794 → 512 → 512 → 512 → 1, dropout 0.4),
  least-squares loss (``kind="least_squares"``), Adam 2e-4, β = (0.5, 0.999), PyTorch's default
  initialisation, no EMA; samples from G itself (in eval mode, as for every model here).
  Two details differ from the recipe's code, for the sake of one loop for all models: its generator
  loss is ``MSELoss`` without the factor 1/2 of :func:`gencourse.losses.g_loss_least_squares` (a
  constant scale, which Adam's normalised steps almost ignore), and it takes the generator step
  first and reuses that fake batch for the discriminator step.

Writes ``benchmarks/results/cgan_vs_mlp.json`` and ``.md``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("GENCOURSE_PROFILE", "cpu")  # the embedded data and 2,000 evaluation samples

import torch

import gencourse as gc
from gencourse import metrics
from gencourse.models import conditional as cond
from gencourse.recipes import conditional as recipe

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = ("fid", "conditional_accuracy", "precision", "recall", "class_entropy")
N_EVAL = 2000
LABELS = torch.arange(N_EVAL) % 10


def score(G: torch.nn.Module, final: bool = False) -> dict:
    """The metrics of 2,000 samples asked for ``LABELS``; with ``final`` also the per-class FID and recall."""
    x = recipe.sample_conditional(G, LABELS, generator=torch.Generator().manual_seed(1234))
    r = metrics.evaluate(x, value_range="pm1", labels=LABELS, n=N_EVAL, clamp=True, memorisation=False)
    out = {k: round(float(r[k]), 4) for k in KEYS}
    if final:
        out.update(per_class(x, LABELS))
    return out


def per_class(x: torch.Tensor, labels: torch.Tensor) -> dict:
    pc = metrics.per_class_scores(x, labels, value_range="pm1", clamp=True)
    return {"per_class_fid": round(pc["fid"], 4), "per_class_recall": round(pc["recall"], 4),
            "per_class_fid_by_class": [round(v, 2) for v in pc["per_class"]["fid"].tolist()],
            "per_class_recall_by_class": [round(v, 3) for v in pc["per_class"]["recall"].tolist()]}


def train_for_cpu_seconds(name, G, D, x_train, y_train, *, lr_G, lr_D, betas, kind, budget, ema, seed, batch_size=64,
                          fractions=(0.25, 0.5, 0.75, 1.0)) -> dict:
    """One D step and one G step with labels (as ``train_conditional``) until ``budget`` CPU seconds of
    training; score at ``fractions`` of the budget (the scoring itself is not counted). ``ema`` is a
    :class:`gencourse.train.EMA` of G to sample from, or None to sample from G."""
    opt_G = torch.optim.Adam(G.parameters(), lr_G, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr_D, betas=betas)
    g = torch.Generator().manual_seed(seed + 1)
    B, d, K = batch_size, G.latent_dim, G.n_classes
    marks = [budget * f for f in fractions]
    cpu, wall, step, points = 0.0, 0.0, 0, []
    while marks:
        t_cpu, t_wall = time.process_time(), time.perf_counter()
        idx = torch.randint(0, len(x_train), (B,), generator=g)
        z, y_fake = torch.randn(B, d, generator=g), torch.randint(0, K, (B,), generator=g)
        out = gc.train.d_step(G, D, opt_D, x_train[idx], z, kind=kind, y_real=y_train[idx], y_fake=y_fake)
        z, y_fake = torch.randn(B, d, generator=g), torch.randint(0, K, (B,), generator=g)
        out.update(gc.train.g_step(G, D, opt_G, z, kind=kind, y=y_fake))
        if ema is not None:
            ema.update(G)
        step += 1
        cpu += time.process_time() - t_cpu
        wall += time.perf_counter() - t_wall
        if cpu >= marks[0]:
            marks.pop(0)
            row = {"step": step, "cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1),
                   "ms_cpu_per_step": round(1000 * cpu / step, 1), "loss_D": round(out["loss_D"], 4),
                   "loss_G": round(out["loss_G"], 4), **score(ema.module if ema is not None else G, final=not marks)}
            points.append(row)
            print(f"{name}: step {step}, {cpu:.0f} s CPU ({wall:.0f} s wall): FID {row['fid']:.1f}, "
                  f"conditional accuracy {row['conditional_accuracy']:.3f}", flush=True)
    return {"points": points, "final": points[-1]}


def chapter_model(model: str, seed: int, budget: float, x_train, y_train) -> dict:
    s = recipe.conditional_settings(model, seed=seed)
    built = recipe.build_conditional(s)
    G, D = built["G"], built["D"]
    return {
        "description": f"{type(G).__name__} + {type(D).__name__}, latent {s['latent_dim']}, ngf {s['ngf']}, ndf {s['ndf']}, "
                       f"non-saturating loss, Adam {s['lr_G']:g}/{s['lr_D']:g}, betas {tuple(s['betas'])}, EMA {s['ema_decay']}",
        "parameters_G": sum(p.numel() for p in G.parameters()), "parameters_D": sum(p.numel() for p in D.parameters()),
        **train_for_cpu_seconds(f"chapter 09 {model}", G, D, x_train, y_train, lr_G=s["lr_G"], lr_D=s["lr_D"],
                                betas=tuple(s["betas"]), kind="non_saturating", budget=budget, ema=built["_ema"],
                                seed=seed, batch_size=s["batch_size"]),
    }


def public_model(seed: int, budget: float, x_train, y_train) -> dict:
    torch.manual_seed(seed)
    G, D = cond.PublicMLPConditionalGenerator(), cond.PublicMLPConditionalDiscriminator()
    return {
        "description": "MLP generator [embedding 10, z 100]-128-256-512-1024-784 with batch norm, MLP discriminator "
                       "[784, embedding 10]-512-512-512-1 with dropout 0.4, least-squares loss, Adam 2e-4, betas (0.5, 0.999), no EMA",
        "parameters_G": sum(p.numel() for p in G.parameters()), "parameters_D": sum(p.numel() for p in D.parameters()),
        **train_for_cpu_seconds("public MLP", G, D, x_train, y_train, lr_G=2e-4, lr_D=2e-4, betas=(0.5, 0.999),
                                kind="least_squares", budget=budget, ema=None, seed=seed, batch_size=64),
    }


def clearly_better(a: dict, b: dict) -> bool:
    """``a`` clearly better than ``b``: FID below 0.7× ``b``'s and a higher conditional accuracy."""
    return bool(a["fid"] < 0.7 * b["fid"] and a["conditional_accuracy"] > b["conditional_accuracy"])


def markdown(out: dict) -> str:
    names = {"cgan": "chapter 09 cGAN", "projection": "chapter 09 projection", "mlp": "public MLP cGAN"}
    lines = [
        "# Conditional GANs at equal CPU time: chapter 09 against the public MLP cGAN recipe",
        "",
        f"{out['date']} · {out['machine']} · {out['cpu_seconds']:.0f} s of CPU time per model, one thread · seed "
        f"{out['seed']} · embedded MNIST subset, 4,000 labelled training images; evaluation on 2,000 samples "
        "(200 asked for each class) vs 1,000 held-out images. Produced by `benchmarks/cgan_vs_mlp.py`; wall time "
        "exceeds CPU time because the machine was shared with other jobs.",
        "",
        "| model | CPU s | wall s | steps | ms CPU / step | FID ↓ | conditional accuracy ↑ | precision ↑ | recall ↑ | class entropy ↑ |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, r in out["models"].items():
        for p in r["points"]:
            lines.append(f"| {names[key]} | {p['cpu_seconds']:.0f} | {p['wall_seconds']:.0f} | {p['step']} | "
                         f"{p['ms_cpu_per_step']:.0f} | {p['fid']:.1f} | {p['conditional_accuracy']:.3f} | {p['precision']:.2f} | "
                         f"{p['recall']:.2f} | {p['class_entropy']:.3f} |")
    real = out["real"]
    lines.append(f"| real images (2,000 training images, their labels) | – | – | – | – | {real['fid']:.2f} | "
                 f"{real['conditional_accuracy']:.3f} | {real['precision']:.2f} | {real['recall']:.2f} | {real['class_entropy']:.3f} |")
    lines += [
        "",
        "Within each class, at the end of the budget (`per_class_scores`: each class's samples against the "
        "held-out images of that class, about 100 per class, so FID is biased upward; compare only across rows):",
        "",
        "| model | per-class FID ↓ (mean) | per-class recall ↑ (mean) | worst class FID | lowest class recall |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, r in [*out["models"].items(), ("real", {"final": real})]:
        f = r["final"]
        fids, recalls = f["per_class_fid_by_class"], f["per_class_recall_by_class"]
        worst, low = max(range(10), key=fids.__getitem__), min(range(10), key=recalls.__getitem__)
        label = names.get(key, "real images")
        lines.append(f"| {label} | {f['per_class_fid']:.1f} | {f['per_class_recall']:.2f} | {fids[worst]:.1f} (digit {worst}) | "
                     f"{recalls[low]:.2f} (digit {low}) |")
    v = out["verdict"]
    lines += [
        "",
        *[f"* {names[k]}: {r['description']}; {r['parameters_G']:,} + {r['parameters_D']:,} parameters (G + D)."
          for k, r in out["models"].items()],
        "* Clearly better means: FID below 0.7× the public recipe's and a higher conditional accuracy, at the end of "
        "the same CPU budget.",
        "* Every generator is sampled in eval mode (batch norm with its running statistics), as in the other benchmarks; "
        "the public recipe's own code saves its samples in train mode (batch statistics). One seed, one run: the numbers "
        "carry the seed-to-seed spread of GAN training, which this file does not measure.",
    ]
    for key in v["chapter_models"]:
        c, m = out["models"][key]["final"], out["models"]["mlp"]["final"]
        lines.append(
            f"* {names[key]}: FID {c['fid']:.1f} vs {m['fid']:.1f} (the public recipe's FID is "
            f"{v[key]['fid_ratio_mlp_over_chapter']:.2f}× the chapter's), conditional accuracy {c['conditional_accuracy']:.3f} vs "
            f"{m['conditional_accuracy']:.3f}: clearly better: **{'yes' if v[key]['clearly_better'] else 'no'}**.")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-seconds", type=float, default=120.0, help="CPU-time budget of each model (default 120)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=["cgan", "projection", "mlp"], choices=["cgan", "projection", "mlp"],
                        help="models to train (the verdict needs 'mlp' and at least one chapter model)")
    args = parser.parse_args(argv)
    if "mlp" not in args.models or len(args.models) < 2:
        parser.error("--models needs 'mlp' and at least one of 'cgan', 'projection'")
    gc.config.threads(1)
    x_train, y_train = gc.data.mnist_tensors("train", value_range="pm1", verbose=False)
    r = metrics.evaluate(x_train[:N_EVAL], value_range="pm1", labels=y_train[:N_EVAL], n=N_EVAL, memorisation=False)
    real = {**{k: round(float(r[k]), 4) for k in KEYS}, **per_class(x_train[:N_EVAL], y_train[:N_EVAL])}
    print(f"real images: FID {real['fid']:.2f}, conditional accuracy {real['conditional_accuracy']:.3f}", flush=True)

    models = {}
    for key in args.models:
        if key == "mlp":
            models[key] = public_model(args.seed, args.cpu_seconds, x_train, y_train)
        else:
            models[key] = chapter_model(key, args.seed, args.cpu_seconds, x_train, y_train)
    m = models["mlp"]["final"]
    chapter = [k for k in models if k != "mlp"]
    verdict = {"chapter_models": chapter}
    for key in chapter:
        c = models[key]["final"]
        verdict[key] = {"fid_ratio_mlp_over_chapter": round(m["fid"] / c["fid"], 2),
                        "conditional_accuracy_difference": round(c["conditional_accuracy"] - m["conditional_accuracy"], 4),
                        "lower_fid": bool(c["fid"] < m["fid"]),
                        "higher_conditional_accuracy": bool(c["conditional_accuracy"] > m["conditional_accuracy"]),
                        "clearly_better": clearly_better(c, m)}
    out = {"benchmark": "cgan_vs_mlp", "cpu_seconds": args.cpu_seconds, "threads": 1, "seed": args.seed, "n_eval": N_EVAL,
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), torch {torch.__version__}",
           "date": time.strftime("%Y-%m-%d"), "real": real, "models": models, "verdict": verdict}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cgan_vs_mlp.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "cgan_vs_mlp.md").write_text(markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
