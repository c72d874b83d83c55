r"""Conditional GANs: cGAN, projection discriminator, ACGAN and InfoGAN for 28×28 images (chapter 09).

Every network here is chapter 07's DCGAN with a condition added, so that the four models of
chapter 09 differ only in **how** the label (or the code) enters:

===================================  ================================================================
network                              the condition
===================================  ================================================================
:class:`ConditionalGenerator`        :math:`G(z, y)`: the one-hot label joined to :math:`z`
                                     (Mirza & Osindero, 2014); used by cGAN, projection and ACGAN
:class:`ConcatDiscriminator`         :math:`D(x, y)`: the one-hot label joined to the image as
                                     :math:`K` constant channels (Mirza & Osindero, 2014)
:class:`ProjectionDiscriminator`     :math:`D(x, y) = \psi(\phi(x)) + e_y^\top \phi(x)` (Miyato &
                                     Koyama, 2018)
:class:`ACGANDiscriminator`          :math:`D(x)` returns a real/fake logit **and** class logits
                                     (Odena, Olah & Shlens, 2017)
:class:`InfoGANGenerator`            :math:`G(z, c)` with a categorical code and continuous codes
:class:`InfoGANDiscriminator`        :math:`D(x)` and the recognition network :math:`Q(c \mid x)`
                                     sharing one body (Chen et al., 2016)
===================================  ================================================================

The discriminators share one **body** :math:`\phi`: two strided convolutions as in chapter 07's
discriminator, then a 7×7 convolution to ``features`` channels and a LeakyReLU, giving a vector
:math:`\phi(x) \in \mathbb R^F`; the heads are linear. Discriminators return **logits** (the
sigmoid is in the loss, :mod:`gencourse.losses`).

Labels are ``int64`` tensors ``(B,)`` with values in ``0 .. K-1``; :func:`one_hot` checks them and
raises a ``ValueError`` for anything else (float labels, a wrong shape, a value out of range).
The losses of ACGAN and InfoGAN are in :mod:`gencourse.losses`, their one-step updates in
:mod:`gencourse.train`, and chapter 09's training recipe in :mod:`gencourse.recipes.conditional`.

:class:`PublicMLPConditionalGenerator` and :class:`PublicMLPConditionalDiscriminator` are the two
MLPs of the most-copied public cGAN recipe (label embeddings joined to the noise and to the
flattened image), kept for ``benchmarks/cgan_vs_mlp.py``; they take ``(z, y)`` and ``(x, y)`` like
the chapter's networks, so the same one-step updates train them.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import checks, distributed
from ..nn import down_block
from .gan import DCGANGenerator, _check_z

__all__ = [
    "one_hot",
    "check_labels",
    "ConditionalGenerator",
    "DiscriminatorBody",
    "ConcatDiscriminator",
    "ProjectionDiscriminator",
    "ACGANDiscriminator",
    "InfoGANGenerator",
    "InfoGANDiscriminator",
    "PublicMLPConditionalGenerator",
    "PublicMLPConditionalDiscriminator",
    "sample_codes",
    "generate",
]


def check_labels(y, n_classes: int, batch: int | None = None, name: str = "y") -> torch.Tensor:
    """Return ``y`` if it is an integer tensor ``(B,)`` (``B = batch`` when given) with values in
    ``0 .. n_classes - 1``; else raise a ``ValueError`` saying what was expected and what came."""
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must be an integer tensor of class indices with shape (B,), got {got}"
                         " (give class indices, not one-hot vectors)")
    if batch is not None and len(y) != batch:
        raise ValueError(f"{name} must have one label per image: shape ({batch},), got {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"{name} must hold class indices in 0..{n_classes - 1}, got values in {int(y.min())}..{int(y.max())}")
    return y


def one_hot(y: torch.Tensor, n_classes: int = 10) -> torch.Tensor:
    r"""The one-hot encoding :math:`e_y \in \{0, 1\}^K` of integer labels ``y`` ``(B,)``: a float
    tensor ``(B, K)`` with a single 1 per row, at column :math:`y_b`."""
    n_classes = checks.positive_int(n_classes, "n_classes")
    y = check_labels(y, n_classes)
    return nn.functional.one_hot(y.long(), n_classes).float()


class ConditionalGenerator(nn.Module):
    r"""The conditional generator :math:`G(z, y)` of Mirza & Osindero (2014) as a DCGAN: the input
    is the concatenation :math:`[z, e_y] \in \mathbb R^{d + K}` of the noise and the one-hot label,
    fed to chapter 07's :class:`gencourse.models.gan.DCGANGenerator` (whose first transposed
    convolution is the "project and reshape" of the joint vector).

    Args: ``latent_dim`` :math:`d`, ``n_classes`` :math:`K`, ``ngf`` (width unit), ``channels``.
    Input ``z`` ``(B, d)`` and ``y`` ``(B,)`` int; output ``(B, channels, 28, 28)`` in :math:`(-1, 1)`.
    """

    def __init__(self, latent_dim: int = 64, n_classes: int = 10, ngf: int = 16, channels: int = 1):
        super().__init__()
        self.latent_dim = checks.positive_int(latent_dim, "latent_dim")
        self.n_classes = checks.positive_int(n_classes, "n_classes")
        self.body = DCGANGenerator(latent_dim + n_classes, ngf, channels)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = _check_z(z, self.latent_dim)
        y = check_labels(y, self.n_classes, len(z))
        return self.body(torch.cat([z, one_hot(y, self.n_classes).to(z)], dim=1))  # (B, d + K) -> (B, C, 28, 28)


class DiscriminatorBody(nn.Module):
    r"""The feature map :math:`\phi: x \mapsto \mathbb R^F` shared by the discriminators of this module.

    ============================  ==========================
    layer                         output
    ============================  ==========================
    Conv 4×4, stride 2, pad 1     ``(B, ndf, 14, 14)``, LeakyReLU(0.2), no batch norm
    Conv 4×4, stride 2, pad 1     ``(B, 2·ndf, 7, 7)``, BN, LeakyReLU(0.2)
    Conv 7×7                      ``(B, F, 1, 1)``, LeakyReLU(0.2), flattened to ``(B, F)``
    ============================  ==========================

    ``in_channels`` is the image's channels, plus :math:`K` for :class:`ConcatDiscriminator`.
    """

    def __init__(self, in_channels: int = 1, ndf: int = 16, features: int = 64, slope: float = 0.2):
        super().__init__()
        self.in_channels = checks.positive_int(in_channels, "in_channels")
        self.features = checks.positive_int(features, "features")
        checks.positive_int(ndf, "ndf")
        self.net = nn.Sequential(
            down_block(in_channels, ndf, batch_norm=False, slope=slope),  # (B, ndf, 14, 14)
            down_block(ndf, 2 * ndf, slope=slope),  # (B, 2ndf, 7, 7)
            nn.Conv2d(2 * ndf, features, kernel_size=7),  # (B, F, 1, 1)
            nn.LeakyReLU(slope),
            nn.Flatten(),  # (B, F)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = checks.image_batch(x, (self.in_channels, 28, 28))
        return self.net(x)


class ConcatDiscriminator(nn.Module):
    r"""The cGAN discriminator of Mirza & Osindero (2014): the label enters **at the input**, as
    :math:`K` constant channels (channel :math:`y` all ones, the others zeros) joined to the image;
    then :class:`DiscriminatorBody` and a linear head :math:`\psi`: :math:`D(x, y) = \psi(\phi([x, e_y]))`.

    Input ``x`` ``(B, channels, 28, 28)``, ``y`` ``(B,)`` int; output logits ``(B,)``.
    """

    def __init__(self, n_classes: int = 10, ndf: int = 16, features: int = 64, channels: int = 1):
        super().__init__()
        self.n_classes = checks.positive_int(n_classes, "n_classes")
        self.channels = checks.positive_int(channels, "channels")
        self.body = DiscriminatorBody(channels + n_classes, ndf, features)
        self.head = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = checks.image_batch(x, (self.channels, 28, 28))
        y = check_labels(y, self.n_classes, len(x))
        maps = one_hot(y, self.n_classes).to(x)[:, :, None, None].expand(-1, -1, *x.shape[2:])  # (B, K, 28, 28)
        return self.head(self.body(torch.cat([x, maps], dim=1))).flatten()  # (B,)


class ProjectionDiscriminator(nn.Module):
    r"""The projection discriminator of Miyato & Koyama (2018):

    .. math:: D(x, y) = \psi\big(\phi(x)\big) + e_y^\top V \phi(x) = w^\top \phi(x) + b + v_y^\top \phi(x),

    where :math:`v_y` is row :math:`y` of an embedding :math:`V \in \mathbb R^{K \times F}`. It is
    the form of the optimal conditional discriminator
    :math:`\log \frac{p(x \mid y)}{q(x \mid y)} + \log \frac{p(y)}{q(y)}` when :math:`p(y \mid x)` and
    :math:`q(y \mid x)` are log-linear in :math:`\phi(x)`: the label meets the image's **features**, not its pixels.

    Input ``x`` ``(B, channels, 28, 28)``, ``y`` ``(B,)`` int; output logits ``(B,)``.
    """

    def __init__(self, n_classes: int = 10, ndf: int = 16, features: int = 64, channels: int = 1):
        super().__init__()
        self.n_classes = checks.positive_int(n_classes, "n_classes")
        self.body = DiscriminatorBody(channels, ndf, features)
        self.head = nn.Linear(features, 1)
        self.embed = nn.Embedding(n_classes, features)
        nn.init.normal_(self.embed.weight, std=features ** -0.5)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.body(x)  # (B, F)
        y = check_labels(y, self.n_classes, len(h))
        return self.head(h).flatten() + (self.embed(y) * h).sum(1)  # psi(phi) + <v_y, phi>


class ACGANDiscriminator(nn.Module):
    r"""The auxiliary-classifier discriminator of Odena, Olah & Shlens (2017): one body, two
    linear heads, and **no label at the input**: the source logit
    :math:`d(x)` (:math:`P(S = \text{real} \mid x) = \sigma(d(x))`) and class logits :math:`\ell(x) \in
    \mathbb R^K` (:math:`P(C = c \mid x) = \operatorname{softmax}(\ell(x))_c`).

    Input ``x`` ``(B, channels, 28, 28)``; output ``(source (B,), class_logits (B, K))``.
    """

    def __init__(self, n_classes: int = 10, ndf: int = 16, features: int = 64, channels: int = 1):
        super().__init__()
        self.n_classes = checks.positive_int(n_classes, "n_classes")
        self.body = DiscriminatorBody(channels, ndf, features)
        self.source = nn.Linear(features, 1)
        self.classes = nn.Linear(features, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.source(h).flatten(), self.classes(h)


class InfoGANGenerator(nn.Module):
    r"""The InfoGAN generator :math:`G(z, c)` (Chen et al., 2016): the input is
    :math:`[z, e_{c_\text{cat}}, c_\text{cont}]`, the noise, a one-hot **categorical code** with
    ``n_cat`` values and ``n_cont`` **continuous codes**, fed to chapter 07's DCGAN generator.
    Nothing tells the network what the codes mean: the mutual-information term makes them matter.

    Input ``z`` ``(B, d)``, ``c_cat`` ``(B,)`` int, ``c_cont`` ``(B, n_cont)``; output ``(B, channels, 28, 28)``.
    """

    def __init__(self, latent_dim: int = 64, n_cat: int = 10, n_cont: int = 2, ngf: int = 16, channels: int = 1):
        super().__init__()
        self.latent_dim = checks.positive_int(latent_dim, "latent_dim")
        self.n_cat = checks.positive_int(n_cat, "n_cat")
        self.n_cont = checks.positive_int(n_cont, "n_cont", low=0)
        self.body = DCGANGenerator(latent_dim + n_cat + n_cont, ngf, channels)

    def forward(self, z: torch.Tensor, c_cat: torch.Tensor, c_cont: torch.Tensor) -> torch.Tensor:
        z = _check_z(z, self.latent_dim)
        c_cat = check_labels(c_cat, self.n_cat, len(z), name="c_cat")
        if not isinstance(c_cont, torch.Tensor) or c_cont.shape != (len(z), self.n_cont):
            got = tuple(c_cont.shape) if isinstance(c_cont, torch.Tensor) else type(c_cont).__name__
            raise ValueError(f"c_cont must have shape (B, n_cont) = ({len(z)}, {self.n_cont}), got {got}")
        return self.body(torch.cat([z, one_hot(c_cat, self.n_cat).to(z), c_cont.to(z)], dim=1))


class InfoGANDiscriminator(nn.Module):
    r"""InfoGAN's discriminator and recognition network :math:`Q`, sharing :class:`DiscriminatorBody`
    (Chen et al., 2016, section 5: "Q shares all convolutional layers with D"):

    * :math:`d(x)`: the real/fake logit (a linear head);
    * :math:`Q(c \mid x)`: a hidden layer on :math:`\phi(x)`, then the logits of the categorical
      code ``(B, n_cat)`` and, per continuous code, the mean and log-variance of a Gaussian
      :math:`\mathcal N(\mu(x), \sigma^2(x))` ``(B, n_cont)`` each (the log-variance clamped to
      :math:`[-5, 3]` so that early training cannot divide by zero).

    Input ``x`` ``(B, channels, 28, 28)``; output ``(d (B,), cat_logits, mu, logvar)``.
    """

    def __init__(self, n_cat: int = 10, n_cont: int = 2, ndf: int = 16, features: int = 64, hidden: int = 64, channels: int = 1):
        super().__init__()
        self.n_cat = checks.positive_int(n_cat, "n_cat")
        self.n_cont = checks.positive_int(n_cont, "n_cont", low=0)
        self.body = DiscriminatorBody(channels, ndf, features)
        self.source = nn.Linear(features, 1)
        self.q = nn.Sequential(nn.Linear(features, checks.positive_int(hidden, "hidden")), nn.LeakyReLU(0.2),
                               nn.Linear(hidden, n_cat + 2 * n_cont))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.body(x)
        q = self.q(h)
        cat_logits, mu, logvar = q.split([self.n_cat, self.n_cont, self.n_cont], dim=1)
        return self.source(h).flatten(), cat_logits, mu, logvar.clamp(-5.0, 3.0)


class PublicMLPConditionalGenerator(nn.Module):
    r"""The generator of the most-copied public MLP cGAN recipe, written from its description: the
    label enters through a learned **embedding** :math:`E \in \mathbb R^{K \times K}` (``nn.Embedding(K, K)``),
    joined to the noise, :math:`[E_y, z] \in \mathbb R^{K + d}`, then an MLP
    :math:`K + d` → 128 → 256 → 512 → 1024 → 784 with LeakyReLU(0.2) after each hidden layer, batch
    norm (``eps = 0.8``, as that code passes 0.8 as BatchNorm1d's second argument) on the 256, 512 and
    1024 layers, and Tanh on the output, reshaped to an image. The MLP is
    :class:`gencourse.models.wgan.PublicMLPGenerator`'s with :math:`K` more inputs.

    Args: ``latent_dim`` :math:`d` (100 in the recipe), ``n_classes`` :math:`K`, ``hidden`` widths.
    Input ``z`` ``(B, d)`` and ``y`` ``(B,)`` int, as :class:`ConditionalGenerator`; output
    ``(B, 1, 28, 28)`` in :math:`(-1, 1)`.
    """

    def __init__(self, latent_dim: int = 100, n_classes: int = 10, hidden=(128, 256, 512, 1024)):
        super().__init__()
        self.latent_dim = checks.positive_int(latent_dim, "latent_dim")
        self.n_classes = checks.positive_int(n_classes, "n_classes")
        hidden = [checks.positive_int(h, "hidden") for h in hidden]
        if not hidden:
            raise ValueError("hidden must list at least one width, got none")
        self.label_emb = nn.Embedding(n_classes, n_classes)
        layers: list[nn.Module] = []
        sizes = [latent_dim + n_classes, *hidden]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i > 0:  # no batch norm on the first layer
                layers.append(nn.BatchNorm1d(n_out, 0.8))  # eps = 0.8, as in the recipe
            layers.append(nn.LeakyReLU(0.2))
        layers += [nn.Linear(sizes[-1], 28 * 28), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = _check_z(z, self.latent_dim)
        y = check_labels(y, self.n_classes, len(z))
        h = torch.cat([self.label_emb(y.long()), z], dim=1)  # (B, K + d): embedding first, as in the recipe
        return self.net(h).view(-1, 1, 28, 28)  # (B, 1, 28, 28)


class PublicMLPConditionalDiscriminator(nn.Module):
    r"""The discriminator of the public MLP cGAN recipe: the flattened image joined to a learned
    label embedding (``nn.Embedding(K, K)``), :math:`[x, E_y] \in \mathbb R^{784 + K}`, then
    :math:`784 + K` → 512 → 512 → 512 → 1 with LeakyReLU(0.2) after each hidden layer and
    Dropout(0.4) before the activation of the second and third. The output is a raw score, trained
    with the least-squares loss (:func:`gencourse.losses.d_loss_least_squares`; the recipe's
    ``MSELoss`` against targets 1 and 0).

    Args: ``n_classes`` :math:`K`, ``hidden`` width, ``dropout`` probability.
    Input ``x`` ``(B, 1, 28, 28)`` and ``y`` ``(B,)`` int, as :class:`ConcatDiscriminator`; output ``(B,)``.
    """

    def __init__(self, n_classes: int = 10, hidden: int = 512, dropout: float = 0.4):
        super().__init__()
        self.n_classes = checks.positive_int(n_classes, "n_classes")
        hidden = checks.positive_int(hidden, "hidden")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}")
        self.label_embedding = nn.Embedding(n_classes, n_classes)
        self.net = nn.Sequential(
            nn.Linear(28 * 28 + n_classes, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.Dropout(dropout), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.Dropout(dropout), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = checks.image_batch(x, (1, 28, 28))
        y = check_labels(y, self.n_classes, len(x))
        h = torch.cat([x.flatten(1), self.label_embedding(y.long())], dim=1)  # (B, 784 + K)
        return self.net(h).flatten()  # (B,)


def sample_codes(n: int, latent_dim: int, n_cat: int = 10, n_cont: int = 2, *, generator: torch.Generator | None = None,
                 device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""InfoGAN's prior: ``(z, c_cat, c_cont)`` with :math:`z \sim \mathcal N(0, I_d)`,
    :math:`c_\text{cat} \sim \text{Uniform}\{0..K-1\}` and :math:`c_\text{cont} \sim \text{Uniform}(-1, 1)^{n}`
    (Chen et al., 2016, section 6.1), drawn in that order from ``generator``."""
    n, latent_dim = checks.positive_int(n, "n"), checks.positive_int(latent_dim, "latent_dim")
    # distributed.*: in one process exactly torch.*; under torchrun, this rank's share of the global batch's codes
    z = distributed.randn((n, latent_dim), generator=generator)
    c_cat = distributed.randint(0, checks.positive_int(n_cat, "n_cat"), (n,), generator=generator)
    c_cont = 2 * distributed.rand((n, checks.positive_int(n_cont, "n_cont", low=0)), generator=generator) - 1
    return z.to(device), c_cat.to(device), c_cont.to(device)


@torch.no_grad()
def generate(G: nn.Module, y: torch.Tensor, *, z: torch.Tensor | None = None, generator: torch.Generator | None = None,
             batch_size: int = 1000) -> torch.Tensor:
    r"""Samples :math:`G(z, y_b)` of a :class:`ConditionalGenerator`, one per label in ``y`` ``(n,)``
    (``z`` drawn from ``generator`` unless given), in eval mode and in batches; returned on the CPU,
    in ``[-1, 1]``. The module's train/eval mode is restored afterwards."""
    y = check_labels(y, G.n_classes)
    device = next(G.parameters()).device
    if z is None:
        z = torch.randn(len(y), G.latent_dim, generator=generator)
    z = _check_z(z, G.latent_dim)
    if len(z) != len(y):
        raise ValueError(f"z and y must have the same length, got {len(z)} and {len(y)}")
    was_training = G.training
    G.eval()
    try:
        out = [G(zb.to(device), yb.to(device)).cpu() for zb, yb in zip(z.split(batch_size), y.split(batch_size))]
    finally:
        G.train(was_training)
    return torch.cat(out)
