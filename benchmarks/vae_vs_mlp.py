"""Chapter 04's convolutional VAE against the classic MLP VAE, at equal CPU time, on the same data.

    .venv/bin/python benchmarks/vae_vs_mlp.py [--budget SECONDS] [--K SAMPLES] [--threads N]

Both models are trained on the embedded MNIST subset (4,000 training images, the data of the
``cpu`` profile) for the same budget of **CPU time** (``time.process_time``, evaluation excluded),
then scored on the 1,000 held-out images with the same code (:func:`gencourse.models.autoencoder.evaluate`):

* the held-out negative ELBO (nats per image; the mean over ``K`` samples of :math:`-\\log w_k`),
* the held-out NLL by importance sampling, :math:`-\\mathcal L_K` (the IWAE bound with ``K`` samples).

The likelihood is the same for both: Bernoulli on the grey values, summed over the 784 pixels
(binary cross-entropy), so the numbers are comparable with each other (not with binarised MNIST).

The baseline is the VAE of the PyTorch example ``examples/vae/main.py`` as published, written out
here from its well-known architecture: fc 784-400 ReLU, fc 400-20 for :math:`\\mu` and 400-20 for
:math:`\\log\\sigma^2`, fc 20-400 ReLU, fc 400-784 sigmoid; Adam with learning rate 1e-3 (constant);
batch 128; loss = BCE summed over pixels and batch + KL. The chapter's model is
``gencourse.recipes.vae.vae_settings("vae")`` (conv 16-32 encoder, d = 16, Adam 2e-3 decayed
along a cosine), with the cosine decay spread over the CPU-time budget instead of a step count.

PyTorch runs with ``--threads`` threads (default 1): on a machine shared with other jobs, OpenMP
threads that wait for each other spin and burn CPU time that does no work, and with one thread the
CPU time measures the work alone. Results go to ``benchmarks/results/vae_vs_mlp.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import gencourse as gc
from gencourse.models import autoencoder as ae
from gencourse.recipes import vae as vae_recipe

RESULTS = Path(__file__).resolve().parent / "results"


class MLPVAE(nn.Module):
    """The VAE of the PyTorch example (784-400-20, ReLU, sigmoid output), with the method names of
    :class:`gencourse.models.autoencoder.VAE` so that the same evaluation code scores it."""

    def __init__(self, latent_dim: int = 20, hidden: int = 400):
        super().__init__()
        self.latent_dim = latent_dim
        self.fc1 = nn.Linear(784, hidden)
        self.fc21 = nn.Linear(hidden, latent_dim)
        self.fc22 = nn.Linear(hidden, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden)
        self.fc4 = nn.Linear(hidden, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x.view(-1, 784)))
        return self.fc21(h1), self.fc22(h1)

    def decode_logits(self, z):
        return self.fc4(F.relu(self.fc3(z))).view(-1, 1, 28, 28)

    def decode(self, z):
        return torch.sigmoid(self.decode_logits(z))

    def loss(self, x, generator):
        """The example's loss, as published: BCE of sigmoid outputs summed over pixels and batch + KL."""
        mu, logvar = self.encode(x)
        z = ae.reparameterize(mu, logvar, generator=generator)
        recon = self.decode(z)
        bce = F.binary_cross_entropy(recon.view(-1, 784), x.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return bce + kld, len(x)


def batches(n: int, batch_size: int, generator: torch.Generator):
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i : i + batch_size]


def train_for(name, model, x_train, x_test, budget, lr, cosine, K_probe, seed):
    """Train ``model`` for ``budget`` CPU seconds; probe the held-out numbers at 25/50/75 % of the budget."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    it = batches(len(x_train), 128, gen)
    used, steps, probes, recent = 0.0, 0, [], []
    marks = [0.25, 0.5, 0.75]
    wall = time.perf_counter()
    start = time.process_time()
    while used < budget:
        if cosine:
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(1.0, used / budget)))  # cosine over the CPU budget
        x = x_train[next(it)]
        if isinstance(model, MLPVAE):
            total, B = model.loss(x, gen)
            loss = total.item() / B  # per image, for the record; the gradient step uses the published sum
            opt.zero_grad()
            total.backward()
            opt.step()
        else:
            loss = gc.train.vae_step(model, opt, x, generator=gen)["loss"]
        recent.append(float(loss))
        steps += 1
        used = time.process_time() - start
        if marks and used >= marks[0] * budget:
            paused = time.process_time()
            res = ae.evaluate(model, x_test, K=K_probe, generator=torch.Generator().manual_seed(seed))
            probes.append({"fraction": marks.pop(0), "steps": steps, "test_neg_elbo": -res["elbo"], f"test_nll_K{K_probe}": res["nll"]})
            print(f"  {name}: {probes[-1]}", flush=True)
            start += time.process_time() - paused  # evaluation does not count
    return {
        "steps": steps, "epochs": steps * 128 / len(x_train), "cpu_seconds": used, "wall_seconds": time.perf_counter() - wall,
        "train_neg_elbo_last100": sum(recent[-100:]) / len(recent[-100:]), "probes": probes,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=150.0, help="CPU seconds of training per model (default 150)")
    parser.add_argument("--K", type=int, default=500, help="importance samples per held-out image (default 500)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS), help="folder for vae_vs_mlp.json and .md")
    args = parser.parse_args(argv)
    gc.config.threads(args.threads)
    x_train = gc.data.mnist("train", source="embedded").tensors[0]
    x_test = gc.data.mnist("test", source="embedded").tensors[0]

    settings = vae_recipe.vae_settings("vae")
    torch.manual_seed(args.seed)
    models = {
        "MLP VAE 784-400-20 (PyTorch example)": (MLPVAE(), 1e-3, False),
        "chapter 04 conv VAE (d=16)": (vae_recipe.build_vae({**settings, "seed": args.seed}).cpu(), settings["lr"], True),
    }
    rows = {}
    for name, (model, lr, cosine) in models.items():
        print(f"{name}: training for {args.budget:.0f} CPU seconds", flush=True)
        model.train()
        rec = train_for(name, model, x_train, x_test, args.budget, lr, cosine, K_probe=16, seed=args.seed)
        model.eval()
        t = time.process_time()
        res = ae.evaluate(model, x_test, K=args.K, generator=torch.Generator().manual_seed(args.seed))
        rec.update({"test_neg_elbo": -res["elbo"], "test_nll": res["nll"], "gap": res["gap"], "test_kl": res["kl"],
                    "test_rec": res["rec"], "eval_cpu_seconds": time.process_time() - t})
        rows[name] = rec
        print(f"{name}: {rec['steps']} steps ({rec['epochs']:.0f} epochs), held-out -ELBO {rec['test_neg_elbo']:.2f}, "
              f"NLL (IWAE, K={args.K}) {rec['test_nll']:.2f} nats", flush=True)

    result = {
        "benchmark": "vae_vs_mlp", "budget_cpu_seconds": args.budget, "K": args.K, "threads": args.threads, "seed": args.seed,
        "data": "embedded MNIST subset: 4,000 train / 1,000 held-out images, pixels in [0, 1]",
        "likelihood": "Bernoulli on grey values, summed over 784 pixels (nats per image)",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}",
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"), "models": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vae_vs_mlp.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# Chapter 04's VAE against the classic MLP VAE at equal CPU time",
        "",
        f"`benchmarks/vae_vs_mlp.py --budget {args.budget:g} --K {args.K} --threads {args.threads}` ({result['date']}, "
        f"{result['machine']}, torch {result['torch']}). Each model trains for {args.budget:g} s of CPU time (`time.process_time`, "
        f"{args.threads} thread(s), evaluation excluded) on the 4,000 training images of the embedded subset; numbers are on the "
        f"1,000 held-out images, in nats per image (Bernoulli likelihood of the grey values, summed over pixels; lower is better).",
        "",
        f"| model | parameters | steps (epochs) | train -ELBO (last 100 steps) | held-out -ELBO | held-out NLL (IWAE, K = {args.K}) | gap |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['parameters']:,} | {r['steps']:,} ({r['epochs']:.0f}) | {r['train_neg_elbo_last100']:.1f} | "
                     f"{r['test_neg_elbo']:.2f} | {r['test_nll']:.2f} | {r['gap']:.2f} |")
    lines += ["", "Held-out numbers during training (K = 16 for the NLL):", "",
              "| model | fraction of the budget | steps | held-out -ELBO | held-out NLL (K = 16) |", "| --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        for p in r["probes"]:
            lines.append(f"| {name} | {p['fraction']:.0%} | {p['steps']:,} | {p['test_neg_elbo']:.2f} | {p['test_nll_K16']:.2f} |")
    names = list(rows)
    d_nll = rows[names[0]]["test_nll"] - rows[names[1]]["test_nll"]
    d_elbo = rows[names[0]]["test_neg_elbo"] - rows[names[1]]["test_neg_elbo"]
    verdict = "better" if d_nll > 0 and d_elbo > 0 else "NOT better"
    lines += ["", f"The chapter's model is {verdict}: its held-out NLL is lower by {d_nll:.1f} nats and its held-out -ELBO "
              f"by {d_elbo:.1f} nats (a negative difference would mean higher).",
              "", "The budget is CPU time, not wall-clock time: the machine may be shared with other jobs, which "
              "slows the wall clock but not the CPU time of a single-threaded run."]
    (out / "vae_vs_mlp.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
