r"""Scores from the feature network's class predictions: class coverage, Inception Score and the
accuracy of a class-conditional model."""

from __future__ import annotations

import math

import torch

from .features import N_CLASSES

__all__ = ["class_coverage", "inception_score", "conditional_accuracy", "confusion_matrix", "matched_accuracy", "N_CLASSES"]


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


def confusion_matrix(pred, true, n_pred: int, n_true: int) -> torch.Tensor:
    r"""Counts ``C[i, j]`` of items with predicted (or code) value ``i`` and true class ``j``:
    ``pred``, ``true`` integer tensors ``(N,)`` with values in ``0..n_pred-1`` and ``0..n_true-1``."""
    pred, true = torch.as_tensor(pred), torch.as_tensor(true)
    for name, v, k in (("pred", pred, n_pred), ("true", true, n_true)):
        if v.ndim != 1 or v.is_floating_point() or v.dtype == torch.bool or len(v) != len(pred) or len(v) == 0:
            raise ValueError(f"pred and true must be non-empty integer tensors of the same shape (N,), got {name} {v.dtype} {tuple(v.shape)}")
        if int(v.min()) < 0 or int(v.max()) >= k:
            raise ValueError(f"{name} must be in 0..{k - 1}, got values in {int(v.min())}..{int(v.max())}")
    counts = torch.zeros(n_pred * n_true, dtype=torch.long)
    counts.index_add_(0, pred.long().cpu() * n_true + true.long().cpu(), torch.ones(len(pred), dtype=torch.long))
    return counts.view(n_pred, n_true)


def matched_accuracy(pred, true, n_classes: int = N_CLASSES) -> dict:
    r"""The accuracy of an **unsupervised** labelling (e.g. InfoGAN's categorical code, chapter 09)
    under the best one-to-one matching of its values to the true classes:

    .. math:: \max_{\pi \in S_K} \frac1N \sum_i \mathbb 1[\pi(\text{pred}_i) = \text{true}_i],

    found by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment`` on the confusion
    matrix) instead of trying all :math:`K!` permutations. Chance is :math:`1/K` for a code
    independent of the class. Returns ``{"accuracy", "mapping"}``: ``mapping[i]`` is the class
    matched to value ``i``.
    """
    from scipy.optimize import linear_sum_assignment

    counts = confusion_matrix(pred, true, n_classes, n_classes)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    mapping = torch.full((n_classes,), -1, dtype=torch.long)
    mapping[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return {"accuracy": counts[rows, cols].sum().item() / counts.sum().item(), "mapping": mapping}
