r"""Scores from the feature network's class predictions: class coverage, Inception Score and the
accuracy of a class-conditional model."""

from __future__ import annotations

import math

import torch

from .features import N_CLASSES

__all__ = ["class_coverage", "inception_score", "conditional_accuracy", "N_CLASSES"]


def _check_logits(logits, name: str = "logits") -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] < 1:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"{name} must be a tensor of shape (N, K) of class logits, got {shape}")
    return logits.detach().double()


# ----------------------------------------------------------------------------------------------
# classifier-based scores
# ----------------------------------------------------------------------------------------------


def class_coverage(logits, n_classes: int = N_CLASSES) -> dict:
    r"""How evenly the samples cover the classes, from the classifier's predictions ``argmax`` of
    ``logits`` ``(N, K)``. With :math:`h_c` the fraction of samples predicted as class :math:`c`:

    .. math:: H(h) = -\sum_c h_c \ln h_c \;\; (\text{nats}, \le \ln K), \qquad
              \mathrm{KL}(h \,\|\, \mathcal U_K) = \ln K - H(h).

    Returns ``{"class_entropy", "class_kl_uniform", "class_histogram"}`` (histogram a list of K floats).
    """
    logits = _check_logits(logits)
    if logits.shape[1] != n_classes:
        raise ValueError(f"logits must have {n_classes} columns (one per class), got shape {tuple(logits.shape)}")
    h = torch.bincount(logits.argmax(1), minlength=n_classes).double() / len(logits)
    entropy = max(0.0, -(h[h > 0] * h[h > 0].log()).sum().item())
    return {"class_entropy": entropy, "class_kl_uniform": math.log(n_classes) - entropy, "class_histogram": h.tolist()}


def inception_score(logits) -> float:
    r"""The Inception Score (Salimans et al., 2016) with the MNIST classifier, on all samples at once:

    .. math:: \mathrm{IS} = \exp\Big(\frac1N\sum_i \mathrm{KL}\big(p(y|x_i) \,\big\|\, \hat p(y)\big)\Big),
              \qquad \hat p(y) = \frac1N\sum_i p(y|x_i).

    Between 1 and K = 10: high when each sample is classified confidently (fidelity) and the classes
    are balanced (diversity). It never looks at real images. ``logits`` ``(N, K)``; returns a float.
    (The original averages over 10 splits of the samples; one split is used here.)
    """
    logits = _check_logits(logits)
    log_p = logits.log_softmax(1)  # (N, K) log p(y|x_i)
    log_marginal = log_p.exp().mean(0).log()  # (K,) log p(y)
    kl = (log_p.exp() * (log_p - log_marginal)).sum(1)  # (N,)
    return kl.mean().exp().item()


def conditional_accuracy(logits, labels) -> float:
    """Fraction of samples of a class-conditional model that the classifier assigns to the class
    they were asked for: ``mean(argmax(logits) == labels)``; ``logits`` ``(N, K)``, ``labels`` ``(N,)`` int."""
    logits = _check_logits(logits)
    labels = torch.as_tensor(labels)
    if labels.shape != (len(logits),) or labels.is_floating_point():
        raise ValueError(f"labels must be integers of shape (N,) = ({len(logits)},), got {labels.dtype} {tuple(labels.shape)}")
    return (logits.argmax(1).cpu() == labels.cpu()).double().mean().item()
