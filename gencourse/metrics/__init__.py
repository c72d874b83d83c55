r"""Evaluating generative models of MNIST, offline (chapter 14).

Inception-based scores need ImageNet weights (a download) and measure ImageNet features, not
digits. This module trains its own **feature network**, a small CNN classifier of MNIST, and
computes the usual metrics in its penultimate layer (128 features):

==========================  ===========================================================  ==========
metric                      definition                                                    better
==========================  ===========================================================  ==========
``fid``                     Fréchet distance of Gaussians fitted to the two feature sets  lower
``kid``                     unbiased MMD² with the kernel :math:`(x\cdot y/d + 1)^3`       lower
``precision``               fraction of samples inside the k-NN manifold of real images   higher
``recall``                  fraction of real images inside the k-NN manifold of samples   higher
``class_entropy``           entropy (nats) of the predicted-class histogram; max ln 10    higher
``class_kl_uniform``        :math:`\ln 10 -` ``class_entropy``: KL(histogram ‖ uniform)   lower
``inception_score``         :math:`\exp \mathbb E_x \mathrm{KL}(p(y|x) \,\|\, p(y))`, max 10 higher
``conditional_accuracy``    classifier agrees with the requested label (with ``labels``)  higher
``nn_train_ratio``          median distance to the nearest training image, samples over   ≈ 1
                            held-out images (≈ 0: the model copies its training set)
==========================  ===========================================================  ==========

One line evaluates a batch of samples against held-out real images, on the number of samples
that the profile fixes (:func:`n_samples`: smoke 200, cpu 2,000, gpu 10,000)::

    scores = gc.metrics.evaluate(samples, value_range="pm1")          # samples (N, 1, 28, 28)
    scores = gc.metrics.evaluate(samples, value_range="01", labels=y)  # class-conditional model

Images are given in :math:`[0, 1]` (``value_range="01"``) or :math:`[-1, 1]` (``"pm1"``): an
explicit argument, never guessed. Values outside the range raise a ``ValueError`` unless
``clamp=True`` (model samples that overshoot slightly).

The feature network is always trained on the training split of the embedded 4,000-image subset
(the same under every profile, so numbers are comparable everywhere), deterministically, on the
CPU, in well under a minute, and cached under ``$GENCOURSE_DATA/checkpoints`` with a hash of its
configuration in the file name (a changed configuration never loads a stale file). The reference
features of the held-out images are cached too.

The package's modules: :mod:`.features` (the feature network, input checks), :mod:`.fid` (FID,
KID), :mod:`.neighbours` (nearest neighbours, precision and recall, memorisation, mode coverage),
:mod:`.classifier` (class coverage, Inception Score, conditional accuracy), :mod:`.scores`
(:func:`evaluate`), :mod:`.corruptions`, :mod:`.likelihood` and :mod:`.pixels` (L1 and PSNR of a
translation to its target, chapter 10); every public name is here too.

Also here: the corruptions of the sanity experiments (:func:`blur`, :func:`add_noise`),
the bias of FID with the sample size (:func:`fid_vs_n`, :func:`fid_infinity`), and the
conversions between nats and bits per dimension (:func:`bits_per_dim`).

References: Heusel et al. (2017), *GANs trained by a two time-scale update rule converge to a local
Nash equilibrium* (FID); Dowson & Landau (1982), *The Fréchet distance between multivariate normal
distributions*; Bińkowski et al. (2018), *Demystifying MMD GANs* (KID); Gretton et al. (2012), *A
kernel two-sample test* (unbiased MMD²); Kynkäänniemi et al. (2019), *Improved precision and recall
metric for assessing generative models*; Salimans et al. (2016), *Improved techniques for training
GANs* (Inception Score); Chong & Forsyth (2020), *Effectively unbiased FID and Inception Score and
where to find them* (FID bias, :math:`\mathrm{FID}_\infty`); Theis, van den Oord & Bethge (2016),
*A note on the evaluation of generative models* (likelihood vs samples, dequantisation).
"""

from . import classifier, corruptions, features, fid, likelihood, neighbours, pixels, scores
from .classifier import *  # noqa: F403
from .corruptions import *  # noqa: F403
from .features import *  # noqa: F403
from .fid import *  # noqa: F403
from .likelihood import *  # noqa: F403
from .neighbours import *  # noqa: F403
from .pixels import *  # noqa: F403
from .scores import *  # noqa: F403

__all__ = [
    *features.__all__,
    *fid.__all__,
    *neighbours.__all__,
    *classifier.__all__,
    *scores.__all__,
    *corruptions.__all__,
    *likelihood.__all__,
    *pixels.__all__,
]
