r"""Data-parallel training with PyTorch's own engine: ``torchrun`` and DistributedDataParallel.

The course's recipes (:mod:`gencourse.recipes`) train the same way in one process and in ``N``::

    python -m gencourse.train dcgan --profile cpu                          # one process
    torchrun --nproc_per_node=2 -m gencourse.train dcgan --profile cpu     # two processes

**The convention.** ``batch_size`` in a recipe's settings is the **global** batch: with ``N``
processes each rank forwards ``batch_size / N`` samples (:func:`local_batch` says so clearly when
``N`` does not divide it), DistributedDataParallel averages the gradients over the ranks, and every
loss is a mean over its samples, so one step of ``N`` ranks is one step of the single process on the
same global batch: same learning rate, same number of steps, same checkpoint name. Every rank draws
the global batch's random numbers from the same seeded generator (indices of the images, latent
codes, time steps, noise, label dropout, the interpolation weights of the gradient penalty) and keeps
its own slice (:func:`shard`, and :func:`randn` / :func:`rand` / :func:`randint` inside
:func:`sharded_draws`): the ranks see different samples, and together exactly the single process's
batch. Tested on two CPU processes (gloo): the parameters agree on both ranks after every step and
equal the single process's to float tolerance.

**What differs.** Layers that mix the samples of a batch see the rank's share only: batch
normalisation (the DCGAN's generator and discriminator, chapter 07; its running statistics are
broadcast from rank 0, as DDP does by default) and the minibatch standard deviation of the
style-based discriminator (chapter 11). Minibatch optimal-transport couplings (chapter 13) are
solved per rank. Those recipes train correctly under ``N`` processes but not bit-for-bit as one.

**Which network is wrapped.** Only the network a step updates runs through its DDP wrapper
(:func:`wrap`); the other one of a GAN runs unwrapped (:func:`unwrap`): the discriminator's step
draws the fakes from the bare generator, and the generator's step scores them with the bare
discriminator (frozen), so no rank waits for gradients that never come. The gradient penalty
(chapter 08) takes :func:`torch.autograd.grad` with ``create_graph=True`` inside each process (the
norm is per sample, so it needs no other rank) and the final ``backward()`` carries its second-order
terms to DDP's all-reduce. The EMA is of the unwrapped module. Only rank 0 writes checkpoints
(:func:`gencourse.train.load_or_train`) and prints progress.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import os

import torch
from torch import nn

__all__ = [
    "setup", "cleanup", "is_initialized", "local", "rank", "world_size", "is_main", "barrier", "local_batch", "shard",
    "mean_over_ranks", "wrap", "wrap_call", "wrap_method", "unwrap", "sharded_draws", "randn", "rand", "randint",
]


_LOCAL: contextvars.ContextVar[bool] = contextvars.ContextVar("gencourse_local", default=False)


def is_initialized() -> bool:
    """True when a ``torch.distributed`` process group is running (e.g. under ``torchrun``) and the
    code is not inside :func:`local`."""
    return not _LOCAL.get() and torch.distributed.is_available() and torch.distributed.is_initialized()


@contextlib.contextmanager
def local():
    """Within the block, this process acts alone, as without a process group (rank 0 of 1): no
    wrapping, sharding, all-reduce or barrier. For work one rank does by itself in the middle of
    training, e.g. rank 0 measuring FID at a checkpoint (which may train the feature network):
    collectives there would wait forever for ranks that are not there."""
    token = _LOCAL.set(True)
    try:
        yield
    finally:
        _LOCAL.reset(token)


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return torch.distributed.get_rank() if is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return torch.distributed.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the process that writes files and prints."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (nothing without a process group)."""
    if is_initialized():
        torch.distributed.barrier()


def setup(backend: str | None = None) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes in the environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), with ``backend`` ``"gloo"`` on CPU and
    ``"nccl"`` on CUDA by default; under CUDA each rank uses the GPU ``LOCAL_RANK``. Without those
    variables (a plain ``python`` run) nothing happens. Returns ``(rank, world_size)``."""
    if is_initialized():
        return rank(), world_size()
    n = int(os.environ.get("WORLD_SIZE", "1"))
    if n <= 1:
        return 0, 1
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={n} but {', '.join(missing)} not set: start the processes with torchrun")
    cuda = torch.cuda.is_available()  # as gencourse.config.device()
    backend = backend or ("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return rank(), world_size()


def cleanup() -> None:
    """Leave the process group (nothing without one)."""
    if is_initialized():
        torch.distributed.destroy_process_group()


def mean_over_ranks(values: dict) -> dict:
    """The floats of ``values`` averaged over the ranks (one all-reduce), so that a recorded loss is
    the global batch's, as in one process; ``values`` itself without a process group."""
    if world_size() == 1 or not values:
        return values
    keys = [k for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    on = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=on)
    torch.distributed.all_reduce(t)
    return {**values, **{k: v / world_size() for k, v in zip(keys, t.tolist())}}


def local_batch(batch_size: int) -> int:
    """The per-rank share of a global batch: ``batch_size / world_size()``. A ``ValueError`` when the
    number of processes does not divide the batch (say which sizes would)."""
    n = world_size()
    if batch_size % n:
        ok = [k for k in range(1, batch_size + 1) if batch_size % k == 0]
        raise ValueError(f"the global batch size {batch_size} is not divisible by the {n} processes: "
                         f"run with a number of processes in {ok}, or change batch_size")
    return batch_size // n


def shard(x: torch.Tensor) -> torch.Tensor:
    """This rank's slice of a global batch (along the first axis): rows ``[r B/N, (r+1) B/N)``.
    The tensor itself without a process group."""
    n = world_size()
    if n == 1:
        return x
    b = local_batch(x.shape[0])
    r = rank()
    return x[r * b:(r + 1) * b]


def wrap(module: nn.Module, **kwargs) -> nn.Module:
    """``module`` in :class:`~torch.nn.parallel.DistributedDataParallel` under a process group of
    two or more ranks (its gradients are then averaged over the ranks at ``backward()``); the module
    itself otherwise. A module without trainable parameters is never wrapped."""
    if world_size() == 1 or not any(p.requires_grad for p in module.parameters()):
        return module
    if isinstance(module, nn.parallel.DistributedDataParallel):
        return module
    device_ids = [module_device.index] if (module_device := next(module.parameters()).device).type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, **kwargs)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (the module itself otherwise)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


class _Call(nn.Module):
    """``fn(module, ...)`` as a module's forward, so that DDP can wrap a computation that is not
    ``module``'s own forward (a loss method, a generator's mapping then synthesis)."""

    def __init__(self, module: nn.Module, fn):
        super().__init__()
        self.inner, self.fn = module, fn

    def forward(self, *args, **kwargs):
        return self.fn(self.inner, *args, **kwargs)


def wrap_call(module: nn.Module, fn):
    """A callable ``f(*args, **kwargs) = fn(module, *args, **kwargs)`` whose gradients (to
    ``module``'s parameters) DDP averages over the ranks under a process group of two or more; in one
    process, ``fn`` with ``module`` bound. DDP averages only what runs through its wrapper's
    ``forward``: a loss computed by calling the bare module's methods would train each rank apart."""
    if world_size() == 1:
        return lambda *args, **kwargs: fn(module, *args, **kwargs)
    return wrap(_Call(module, fn))


def wrap_method(module: nn.Module, method: str):
    """``module.<method>`` (e.g. a VAE's ``loss_terms``) through DDP as :func:`wrap_call` does; the
    bound method itself in one process."""
    if world_size() == 1:
        return getattr(module, method)
    return wrap_call(module, lambda m, *args, **kwargs: getattr(m, method)(*args, **kwargs))


_SHARDED: contextvars.ContextVar[bool] = contextvars.ContextVar("gencourse_sharded_draws", default=False)


@contextlib.contextmanager
def sharded_draws():
    """Within the block (a training step), :func:`randn`, :func:`rand` and :func:`randint` of a
    per-sample shape ``(b, ...)`` draw the global batch's ``(N b, ...)`` numbers and return this
    rank's slice: every rank's generator makes the same calls as the single process's."""
    token = _SHARDED.set(True)
    try:
        yield
    finally:
        _SHARDED.reset(token)


def _draw(fn, shape, **kwargs) -> torch.Tensor:
    shape = tuple(shape)
    n = world_size()
    if n == 1 or not _SHARDED.get() or not shape:
        return fn(shape, **kwargs)
    full = fn((shape[0] * n, *shape[1:]), **kwargs)
    r = rank()
    return full[r * shape[0]:(r + 1) * shape[0]]


def randn(shape, **kwargs) -> torch.Tensor:
    """``torch.randn(shape, **kwargs)`` for the rank's ``shape[0]`` samples of a global batch (see
    :func:`sharded_draws`); exactly ``torch.randn`` in one process."""
    return _draw(torch.randn, shape, **kwargs)


def rand(shape, **kwargs) -> torch.Tensor:
    """``torch.rand`` like :func:`randn`."""
    return _draw(torch.rand, shape, **kwargs)


def randint(low: int, high: int, shape, **kwargs) -> torch.Tensor:
    """``torch.randint(low, high, shape, **kwargs)`` like :func:`randn`."""
    return _draw(lambda s, **kw: torch.randint(low, high, s, **kw), shape, **kwargs)
