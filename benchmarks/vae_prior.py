"""Chapter 04's VAE and conditional VAE: samples from N(0, I) against samples from a Gaussian
mixture fitted to the training codes after training (the same trained decoder), over 3 seeds.

    .venv/bin/python benchmarks/vae_prior.py [--seeds 0 1 2] [--threads 1] [--table]

For each seed the ``cpu`` recipe (:func:`gencourse.recipes.vae.vae_mnist`, seed overridden) is
trained (or loaded from the cache), then for each prior:

* FID, precision, recall and the nearest-neighbour ratio of 2,000 samples against the held-out
  images (:func:`gencourse.metrics.evaluate`; 2,000 real images score about 2.7);
* the held-out NLL by importance sampling (:func:`gencourse.models.autoencoder.evaluate`,
  ``K = 100`` codes per image, the first 1,000 held-out images) and the ELBO, both for the model
  *with that prior*: a fitted prior is a new model, with its own likelihood.

The mixtures (:func:`gencourse.recipes.vae.fit_prior`) are fitted to one code
:math:`z \\sim q_\\phi(z \\mid x)` per training image; for the conditional VAE one mixture per class.
Results: ``benchmarks/results/vae_prior.json`` and ``.md`` (mean and standard deviation over the seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("GENCOURSE_PROFILE", "cpu")

import torch

import gencourse as gc
from gencourse.models import autoencoder as ae
from gencourse.recipes import vae as recipe

RESULTS = Path(__file__).resolve().parent / "results"
PRIORS = {"vae": ("N(0, I)", 1, 10, 20), "cvae": ("N(0, I)", 1, 10)}
N_SAMPLES, K, N_EVAL = 2000, 100, 1000


def score(model, prior) -> dict:
    cond = model.n_classes > 0
    labels = torch.arange(N_SAMPLES) % 10 if cond else None
    x = model.sample(N_SAMPLES, labels, generator=torch.Generator().manual_seed(0), prior=prior).cpu()
    m = gc.metrics.evaluate(x, value_range="01", labels=labels, n=N_SAMPLES)
    xt, yt = gc.data.mnist("test").tensors
    held = ae.evaluate(model, xt[:N_EVAL], yt[:N_EVAL] if cond else None, K=K, generator=torch.Generator().manual_seed(0), prior=prior)
    return {"fid": m["fid"], "precision": m["precision"], "recall": m["recall"], "nn_train_ratio": m["nn_train_ratio"],
            "nll": held["nll"], "elbo": held["elbo"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table", action="store_true", help="only rewrite the .md from the recorded .json")
    args = parser.parse_args()
    if args.table:
        recorded = json.loads((RESULTS / "vae_prior.json").read_text())
        (RESULTS / "vae_prior.md").write_text(table(recorded["runs"], recorded["meta"]))
        return 0
    torch.set_num_threads(args.threads)
    runs = []
    for name, priors in PRIORS.items():
        for seed in args.seeds:
            model, history = recipe.vae_mnist(name, seed=seed, progress=False)
            for spec in priors:
                start = time.perf_counter()
                prior = None if spec == "N(0, I)" else recipe.fit_prior(model, spec)
                fit_s = time.perf_counter() - start
                row = {"model": name, "seed": seed, "prior": spec if prior is None else f"mixture, k = {spec}",
                       "train_seconds": history.seconds, "fit_seconds": fit_s, **score(model, prior)}
                runs.append(row)
                print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "threads": args.threads, "seeds": args.seeds, "n_samples": N_SAMPLES, "K": K, "n_eval": N_EVAL}
    (RESULTS / "vae_prior.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    (RESULTS / "vae_prior.md").write_text(table(runs, meta))
    return 0


def _ms(values, fmt):
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(mean)} ± {fmt.format(sd)}"


def table(runs: list[dict], meta: dict) -> str:
    lines = [
        "# Chapter 04: sampling the VAEs from a mixture fitted to their codes",
        "",
        f"`benchmarks/vae_prior.py`, {meta['date']}, {meta['machine']}, {meta['threads']} thread(s); the `cpu` recipes, "
        f"seeds {', '.join(map(str, meta['seeds']))}: mean ± standard deviation over the seeds. The decoder is the same in every "
        f"row of a model; only the distribution of the codes changes. FID, precision, recall and the nearest-neighbour ratio "
        f"(training / held-out distances; below 1: samples nearer the training images) of {meta['n_samples']:,} samples "
        f"against the held-out images (2,000 real images score about 2.7). NLL and ELBO: nats per held-out image "
        f"(first {meta['n_eval']:,}, K = {meta['K']}), of the model with that prior.",
        "",
        "| model | prior | FID ↓ | × real | precision | recall | NN ratio | held-out NLL ↓ | held-out ELBO ↑ | fit (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = []
    for r in runs:
        if (r["model"], r["prior"]) not in keys:
            keys.append((r["model"], r["prior"]))
    for model, prior in keys:
        rs = [r for r in runs if r["model"] == model and r["prior"] == prior]
        col = lambda k, rs=rs: [r[k] for r in rs]  # noqa: E731
        lines.append(
            f"| {model.upper()} | {prior} | {_ms(col('fid'), '{:.1f}')} | {statistics.fmean(col('fid')) / 2.7:.1f} | "
            f"{_ms(col('precision'), '{:.2f}')} | {_ms(col('recall'), '{:.2f}')} | {_ms(col('nn_train_ratio'), '{:.2f}')} | "
            f"{_ms(col('nll'), '{:.2f}')} | {_ms(col('elbo'), '{:.2f}')} | {statistics.fmean(col('fit_seconds')):.1f} |"
        )
    lines += [
        "",
        "Read: the same decoders score an FID 2.6 (CVAE) to 3.4 (VAE) times lower with codes from the fitted mixture, with higher precision "
        "(fewer blends of two digits), and the models with the fitted prior have a lower held-out NLL than with N(0, I). "
        "More components lower the FID further but move the samples towards the training images (the NN ratio falls) and, "
        "for the conditional VAE, raise the NLL above the one-Gaussian prior's: the recipes use 10 components for the VAE and one Gaussian per class "
        "for the CVAE (`gencourse.recipes.vae.PRIOR_COMPONENTS`).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
