r"""Train any recipe of the course from the command line, in one process or under ``torchrun``.

    python -m gencourse.train --list
    python -m gencourse.train dcgan --profile gpu --steps 20000 --out runs/
    python -m gencourse.train cvae --set beta=0.5 --set latent_dim=32
    torchrun --nproc_per_node=2 -m gencourse.train ddpm --profile cpu

Each recipe is the function a chapter calls (e.g. :func:`gencourse.recipes.dcgan.dcgan_mnist`), so
the command writes **the same checkpoint the chapter loads**: the file name hashes the recipe's
settings and the profile (:func:`gencourse.train.checkpoint_path`). A run with the chapter's
settings under a profile is found by that chapter under the same profile, with ``GENCOURSE_DATA``
pointing at ``--out`` when one was given; a run with overrides is found by the recipe function
called with the same overrides (``gc.recipes.dcgan.dcgan_mnist(steps=20000)``), and the command prints
that call. Under ``torchrun`` every rank trains its share of each global batch
(:mod:`gencourse.distributed`: ``batch_size`` is the global batch, a clear error when the
processes do not divide it) and only rank 0 writes the checkpoint and prints.

Exit status: 0 when trained (or found in the cache), 2 for bad arguments (unknown recipe,
unknown setting, a value that does not parse, a batch the processes do not divide).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """A trainable recipe: its chapter, what it is, its settings under the active profile
    (``settings(**overrides)``) and its load-or-train call (``run(retrain, progress, **overrides)``),
    and the Python call that loads the same checkpoint (``call``, a format string of the overrides)."""

    chapter: str
    description: str
    settings: Callable[..., dict]
    run: Callable[..., object]
    call: str


def _recipes() -> dict[str, Recipe]:
    from .recipes import autoregressive, conditional, dcgan, diffusion, flow, style, translation, vae, wgan

    out: dict[str, Recipe] = {}
    for name, what in (("vae", "VAE, latent dimension 16"), ("vae2d", "VAE with a 2-D latent space"), ("cvae", "conditional VAE")):
        out[name] = Recipe("04_vae", what, lambda n=name, **o: vae.vae_settings(n, **o),
                           lambda retrain, progress, n=name, **o: vae.vae_mnist(n, retrain=retrain, progress=progress, **o),
                           f'gc.recipes.vae.vae_mnist("{name}"{{args}})')
    for model in autoregressive.MODELS:
        out[model] = Recipe("05_autoregressive", f"autoregressive model {model!r}",
                            lambda m=model, **o: autoregressive.autoregressive_settings(m, **o),
                            lambda retrain, progress, m=model, **o: autoregressive.autoregressive_mnist(m, retrain=retrain, progress=progress, **o),
                            f'gc.recipes.autoregressive.autoregressive_mnist("{model}"{{args}})')
    out["dcgan"] = Recipe("07_dcgan", "DCGAN", dcgan.dcgan_settings,
                          lambda retrain, progress, **o: dcgan.dcgan_mnist(retrain=retrain, progress=progress, **o),
                          "gc.recipes.dcgan.dcgan_mnist({args})")
    out["wgan"] = Recipe("08_wgan", "WGAN-GP", wgan.wgan_settings,
                         lambda retrain, progress, **o: wgan.wgan_mnist(retrain=retrain, progress=progress, **o),
                         "gc.recipes.wgan.wgan_mnist({args})")
    for model in conditional.MODELS:
        out[model] = Recipe("09_conditional_gans", f"conditional GAN {model!r}",
                            lambda m=model, **o: conditional.conditional_settings(m, **o),
                            lambda retrain, progress, m=model, **o: conditional.conditional_mnist(m, retrain=retrain, progress=progress, **o),
                            f'gc.recipes.conditional.conditional_mnist("{model}"{{args}})')
    for variant in translation.VARIANTS:
        key = variant if variant not in out else f"{variant}_translation"
        out[key] = Recipe("10_translation", f"image-to-image translation {variant!r}",
                          lambda v=variant, **o: translation.translation_settings(v, **o),
                          lambda retrain, progress, v=variant, **o: translation.translation_model(v, retrain=retrain, progress=progress, **o),
                          f'gc.recipes.translation.translation_model("{variant}"{{args}})')
    out["stylegan"] = Recipe("11_style", "style-based generator (AdaIN)", style.style_settings,
                             lambda retrain, progress, **o: style.style_mnist(retrain=retrain, progress=progress, **o),
                             "gc.recipes.style.style_mnist({args})")
    out["ddpm"] = Recipe("12_diffusion", "class-conditional DDPM (classifier-free guidance)",
                         lambda **o: diffusion.ddpm_settings(**o),
                         lambda retrain, progress, **o: diffusion.ddpm_mnist(retrain=retrain, progress=progress, **o),
                         "gc.recipes.diffusion.ddpm_mnist({args})")
    out["flow"] = Recipe("13_flow_matching", "pixel-space flow matching", lambda **o: flow.flow_settings(**o),
                         lambda retrain, progress, **o: flow.flow_mnist(retrain=retrain, progress=progress, **o),
                         "gc.recipes.flow.flow_mnist({args})")
    out["latent_ae"] = Recipe("13_flow_matching", "the latent autoencoder of latent flow matching",
                              lambda **o: flow.latent_ae_settings(**o),
                              lambda retrain, progress, **o: flow.latent_autoencoder(retrain=retrain, progress=progress, **o),
                              "gc.recipes.flow.latent_autoencoder({args})")
    out["latent_flow"] = Recipe("13_flow_matching", "latent flow matching (trains latent_ae first when missing)",
                                lambda **o: flow.latent_flow_settings(**o),
                                lambda retrain, progress, **o: flow.latent_flow_mnist(retrain=retrain, progress=progress, **o),
                                "gc.recipes.flow.latent_flow_mnist({args})")
    return out


def _value(text: str):
    """A ``--set`` value: JSON when it parses (numbers, lists, true/false), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gencourse.train",
        description="Train a recipe of the course (the same function and checkpoint as its chapter), "
        "in one process or under torchrun --nproc_per_node=N (batch_size is then the global batch).",
    )
    parser.add_argument("recipe", nargs="?", help="the recipe to train (see --list)")
    parser.add_argument("--list", action="store_true", help="list the recipes and their settings under the profile, then exit")
    parser.add_argument("--profile", choices=["smoke", "cpu", "gpu"], default=None,
                        help="the profile (default: GENCOURSE_PROFILE, else gpu on a CUDA machine, else cpu)")
    parser.add_argument("--steps", type=int, default=None, help="override the number of training steps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting (repeatable; VALUE as JSON when it parses: 0.5, [16, 32], true)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="the cache folder for checkpoints and data (default: GENCOURSE_DATA, else ~/.cache/gencourse); "
                        "a chapter finds the checkpoint with GENCOURSE_DATA=DIR")
    parser.add_argument("--retrain", action="store_true", help="train even when the checkpoint exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _overrides(args) -> dict:
    overrides = {}
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        key, text = item.split("=", 1)
        overrides[key.strip()] = _value(text)
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be a positive number of steps, got {args.steps}")
        overrides["steps"] = args.steps
    return overrides


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.profile:
        os.environ["GENCOURSE_PROFILE"] = args.profile
    if args.out:
        os.environ["GENCOURSE_DATA"] = os.path.abspath(args.out)
    from . import config, distributed, train

    recipes = _recipes()
    if args.list:
        print(f"recipes under the {config.profile()} profile (settings: python -m gencourse.train --list --profile P):")
        for name, r in recipes.items():
            s = r.settings()
            brief = ", ".join(f"{k}={s[k]}" for k in ("steps", "batch_size") if k in s)
            print(f"  {name:<16} {r.chapter:<20} {r.description} ({brief})")
            print(f"  {'':<16} {json.dumps(s, sort_keys=True)}")
        return 0
    if not args.recipe:
        print("error: name a recipe (python -m gencourse.train --list shows them)", file=sys.stderr)
        return 2
    if args.recipe not in recipes:
        print(f"error: unknown recipe {args.recipe!r}; known: {', '.join(recipes)}", file=sys.stderr)
        return 2
    recipe = recipes[args.recipe]
    try:
        overrides = _overrides(args)
        settings = recipe.settings(**overrides)  # unknown settings raise here, before any process group
        distributed.setup()
        distributed.local_batch(int(settings.get("batch_size", distributed.world_size())))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        distributed.cleanup()
        return 2
    try:
        if distributed.is_main():
            ranks = f" on {distributed.world_size()} processes" if distributed.world_size() > 1 else ""
            print(f"{args.recipe} ({recipe.chapter}) under the {config.profile()} profile{ranks}: "
                  f"{json.dumps({k: settings[k] for k in sorted(settings)})}", flush=True)
        recipe.run(args.retrain or None, not args.quiet, **overrides)
        if distributed.is_main():
            run = train.last_run_info()
            print(f"checkpoint: {run['path']}")
            call = recipe.call.format(args="".join(f", {k}={v!r}" for k, v in overrides.items()))
            call = call.replace("(, ", "(")
            where = f"GENCOURSE_DATA={os.environ['GENCOURSE_DATA']} and " if args.out else ""
            print(f"load it in Python ({where}GENCOURSE_PROFILE={config.profile()}): {call}")
    finally:
        distributed.barrier()
        distributed.cleanup()
    return 0


__all__ = ["Recipe", "main"]
