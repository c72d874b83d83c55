r"""One line for the chapters: every metric of a batch of samples against held-out real images."""

from __future__ import annotations

import torch

from .. import config
from .classifier import class_coverage, conditional_accuracy, inception_score
from .features import FeatureNet, check_images, embed, feature_net, n_samples, reference_embedding
from .fid import frechet_distance, kid
from .neighbours import nn_train_ratio, precision_recall

__all__ = ["evaluate", "per_class_scores"]

# ----------------------------------------------------------------------------------------------
# one line for the chapters
# ----------------------------------------------------------------------------------------------


@config.threads(1)
def evaluate(
    samples,
    *,
    value_range: str,
    labels=None,
    n: int | None = None,
    clamp: bool = False,
    net: FeatureNet | None = None,
    k: int = 3,
    memorisation: bool = True,
) -> dict:
    r"""Evaluate ``n`` samples of a model against held-out real MNIST images, with every metric.

    Args:
        samples: images ``(N, 1, 28, 28)``; the first ``n`` are used (``N >= n`` required).
        value_range: ``"01"`` or ``"pm1"``: the range of ``samples`` (required, never guessed).
        labels: for a class-conditional model, the classes the samples were asked for ``(N,)``;
            adds ``conditional_accuracy``.
        n: number of samples; default :func:`n_samples` of the profile (smoke 200, cpu 2,000,
            gpu 10,000). Compare models only at equal ``n``: FID falls as ``n`` grows.
        clamp: clip samples that overshoot the range instead of raising.
        net: the feature network (default :func:`feature_net`).
        k: neighbours of the k-NN manifolds of precision and recall.
        memorisation: also compute ``nn_train_ratio`` (distances to the training set in pixel space).

    Returns:
        ``{"fid", "kid", "precision", "recall", "class_entropy", "class_kl_uniform",
        "inception_score", "conditional_accuracy" (with labels), "nn_train_ratio" (with
        memorisation), "n", "n_reference"}``. The reference is the profile's held-out test split
        (1,000 images under smoke/cpu, 10,000 under gpu). FID and KID use all ``n`` samples and all
        reference images; precision and recall use the first :math:`\min(n, n_\text{ref})` of each,
        so that both k-NN manifolds are built from equally many points.
    """
    n = n_samples() if n is None else n
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    x = check_images(samples, value_range, name="samples", clamp=clamp)
    if len(x) < n:
        raise ValueError(
            f"samples must hold at least n = {n} images (the number the {config.profile()!r} profile fixes, so that "
            f"scores are comparable), got {len(x)}; generate more, or pass n={len(x)} and compare only at that n"
        )
    x = x[:n]
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.ndim != 1 or len(labels) < n:
            raise ValueError(f"labels must have shape (N,) with N >= n = {n}, got {tuple(labels.shape)}")
        labels = labels[:n]
    net = feature_net(verbose=False) if net is None else net
    f_ref, _ = reference_embedding(net=net)
    f_gen, logits = embed(x, value_range="01", net=net)
    m = min(n, len(f_ref))
    precision, recall = precision_recall(f_ref[:m], f_gen[:m], k=k)
    coverage = class_coverage(logits)
    out = {
        "fid": frechet_distance(f_gen, f_ref),
        "kid": kid(f_gen, f_ref),
        "precision": precision,
        "recall": recall,
        "class_entropy": coverage["class_entropy"],
        "class_kl_uniform": coverage["class_kl_uniform"],
        "inception_score": inception_score(logits),
    }
    if labels is not None:
        out["conditional_accuracy"] = conditional_accuracy(logits, labels)
    if memorisation:
        out["nn_train_ratio"] = nn_train_ratio(x)
    out["n"], out["n_reference"] = n, len(f_ref)
    return out


@config.threads(1)
def per_class_scores(samples, labels, *, value_range: str, clamp: bool = False, net: FeatureNet | None = None, k: int = 3) -> dict:
    r"""Diversity **within** each class of a class-conditional model (chapter 09): for each class
    :math:`c`, the samples asked for :math:`c` against the held-out real images of class :math:`c`
    (their true labels), in the feature network's space:

    * ``fid``: the FID of the two sets (about 100 real images per class under smoke/cpu, 1,000
      under gpu, so the values are biased upward: compare models only at equal sample sizes);
    * ``recall``: the fraction of the real images of class :math:`c` inside the k-NN manifold of
      the samples of :math:`c` (Kynkäänniemi et al., 2019): it falls when a class collapses to a
      few styles even if every sample is a clean digit of the right class;
    * ``precision``: the fraction of samples of :math:`c` inside the real images' manifold.

    ``samples`` ``(N, 1, 28, 28)``, ``labels`` ``(N,)`` int, every class present at least
    :math:`k + 1` times. Uses as many samples of each class as there are real images of it (or all
    samples of the class, if fewer). Returns ``{"fid", "recall", "precision"}`` (means over the
    classes) and ``"per_class"``: a dict of tensors ``(K,)`` with the same keys.
    """
    x = check_images(samples, value_range, name="samples", clamp=clamp)
    labels = torch.as_tensor(labels)
    if labels.shape != (len(x),) or labels.is_floating_point():
        raise ValueError(f"labels must be integers of shape (N,) = ({len(x)},), got {labels.dtype} {tuple(labels.shape)}")
    net = feature_net(verbose=False) if net is None else net
    f_ref, _ = reference_embedding(net=net)
    from ..data import mnist_tensors

    y_ref = mnist_tensors("test", verbose=False)[1]
    f_gen, _ = embed(x, value_range="01", net=net)
    out = {"fid": [], "recall": [], "precision": []}
    for c in range(int(y_ref.max()) + 1):
        real, fake = f_ref[y_ref == c], f_gen[labels.cpu() == c]
        if len(fake) <= k or len(real) <= k:
            raise ValueError(f"class {c} has {len(fake)} samples and {len(real)} real images; need more than k = {k} of each")
        m = min(len(real), len(fake))
        precision, recall = precision_recall(real[:m], fake[:m], k=k)
        out["fid"].append(frechet_distance(fake[:m], real[:m]))
        out["recall"].append(recall)
        out["precision"].append(precision)
    per_class = {key: torch.tensor(v, dtype=torch.float64) for key, v in out.items()}
    return {**{key: v.mean().item() for key, v in per_class.items()}, "per_class": per_class}
