"""Data-parallel training under ``torchrun`` (gloo on CPU, nccl on CUDA), kept reproducible.

- :func:`init_from_env` reads torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and starts the
  process group; without them (a plain ``mixkit train``) it returns a 1-rank :class:`DistEnv`
  and every helper below is a no-op, so one code path serves both.
- Random streams: the data permutation is drawn from the *same* seed on every rank (one
  global permutation, as ``torch.utils.data.DistributedSampler`` does with ``seed + epoch``);
  per-sample randomness (mixers, crops, dropout) comes from :func:`rank_seed` ``(seed, rank)``,
  which is ``seed`` itself on rank 0, so a 1-rank run draws exactly what a plain run draws.
- :func:`shard_order`: ``DistributedSampler`` semantics on the global permutation (the one
  :func:`mixkit.feeds.index_batches` draws): pad it to a multiple of the world size by
  repeating its head, rank ``r`` takes ``perm[r::world]``. With a global batch ``B``
  split as ``B / world`` per rank, the union of the ranks' k-th batches is the k-th batch of
  the 1-rank run (except a padded last batch).
- BatchNorm: per-rank batch statistics differ from the global batch's. :func:`sync_batchnorm`
  swaps every BatchNorm for torch's ``SyncBatchNorm`` on CUDA and for
  :class:`CPUSyncBatchNorm` (same maths over gloo; torch's refuses CPU tensors) on CPU, so a
  2-rank step equals the 1-rank step on the same global batch up to float rounding.
- :func:`all_reduce_sum` for metrics, :func:`all_gather_object` for per-rank resume state,
  :func:`broadcast_module` / :func:`check_same_across_ranks` for EMA teachers and final
  weights (a SHA-256 over the state dict's bytes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn

T = TypeVar("T")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: ``rank`` of ``world_size`` (``local_rank`` on its node), the
    device it trains on and whether a process group is running."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, plots and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an int, got {value!r}") from None


def env_world_size() -> int:
    """torchrun's ``WORLD_SIZE`` (1 when unset); ValueError naming it when not an int."""
    return _env_int("WORLD_SIZE", 1)


def init_from_env(device: str | torch.device = "cpu") -> DistEnv:
    """Start the process group from torchrun's environment (backend ``nccl`` for a CUDA
    ``device``, else ``gloo``). CUDA ranks use ``cuda:LOCAL_RANK``. Without torchrun (or with
    ``WORLD_SIZE=1``) nothing is started and a 1-rank env on ``device`` is returned."""
    world = env_world_size()
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK must lie in [0, WORLD_SIZE={world}), got RANK={rank}")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available")
        dev = torch.device("cuda", local if world > 1 else (dev.index or 0))
        torch.cuda.set_device(dev)
    if world == 1:
        return DistEnv(device=dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend, rank=rank, world_size=world, **kwargs)
    return DistEnv(rank, world, local, dev, True)


def shutdown(env: DistEnv) -> None:
    """Destroy the process group started by :func:`init_from_env` (no-op for 1 rank)."""
    if env.initialized and dist.is_initialized():
        dist.destroy_process_group()


def launch(fn: Callable[[Any, DistEnv], T], cfg: Any) -> T:
    """Run a recipe body ``fn(cfg, env)`` inside the process group of ``cfg.device``
    (started from torchrun's environment, a 1-rank no-op otherwise) and always shut it down."""
    env = init_from_env(cfg.device)
    try:
        result = fn(cfg, env)
        # Tear down together: rank 0 finishes later (evaluation, plots, files); a rank that
        # destroys its gloo group while a peer still holds the connection can make the
        # peer's process abort at exit ("terminate called without an active exception").
        # Only on success: after an error the peers may be inside another collective.
        if env.initialized and dist.is_initialized():
            dist.barrier()
        return result
    finally:
        shutdown(env)


def start_run_dir(out: Path, cfg: Any, env: DistEnv) -> None:
    """Rank 0 creates the run directory and writes ``config.yaml`` (every config field)."""
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))


def check_global_batch(batch_size: int, env: DistEnv) -> None:
    """``batch_size`` is the global batch: it must split evenly over the ranks."""
    if batch_size % env.world_size:
        raise ValueError(
            f"batch_size is the global batch and must be divisible by the {env.world_size} "
            f"ranks, got {batch_size}"
        )


def rank_seed(seed: int, rank: int) -> int:
    """Seed of a per-rank random stream: ``seed`` on rank 0 (a 1-rank run draws what a plain
    run draws), else 63 bits of ``numpy.random.SeedSequence([seed, rank])`` (independent
    streams, unlike ``seed + rank`` whose neighbouring runs overlap)."""
    if rank == 0:
        return int(seed)
    state = np.random.SeedSequence([int(seed) % 2**63, int(rank)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def shard_order(
    n: int, rank: int, world_size: int, order: Tensor | None = None, drop_last: bool = False
) -> Tensor:
    """Indices rank ``rank`` visits among ``n`` items (``DistributedSampler``): ``order``
    (default ``arange(n)``) padded by repeating its head to a multiple of ``world_size``
    (or cut to one when ``drop_last``), then every ``world_size``-th item from ``rank``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
    order = torch.arange(n) if order is None else order
    if drop_last:
        order = order[: n - n % world_size]
    elif n % world_size:
        pad = world_size - n % world_size
        order = torch.cat([order, order.repeat(-(-pad // max(n, 1)))[:pad]])
    return order[rank::world_size]


def all_reduce_sum(values: Sequence[float], env: DistEnv) -> list[float]:
    """Sum each value over ranks (float64; returned unchanged on one rank)."""
    if not env.distributed:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device(env))
    dist.all_reduce(t)
    return t.cpu().tolist()


def all_gather_object(obj: Any, env: DistEnv) -> list[Any]:
    """Every rank's ``obj`` as a list indexed by rank (``[obj]`` on one rank)."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def _comm_device(env: DistEnv) -> torch.device:
    return env.device if env.device.type == "cuda" else torch.device("cpu")


@torch.no_grad()
def broadcast_module(module: nn.Module, env: DistEnv, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers into every rank's ``module`` (e.g. an EMA
    teacher after loading, so all ranks start from identical bytes)."""
    if not env.distributed:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src)


def state_digest(module: nn.Module) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and raw bytes)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        if not isinstance(t, Tensor):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def finish_summary(
    summary: dict[str, Any],
    env: DistEnv,
    start: float,
    model: nn.Module,
    teacher: nn.Module | None = None,
) -> dict[str, Any]:
    """Complete a run's ``summary`` in place: ``world_size``, ``train_time_s`` since ``start``
    and, under torchrun, the SHA-256 per rank of ``model`` (and of a frozen ``teacher``)."""
    summary["world_size"] = env.world_size
    summary["train_time_s"] = round(time.time() - start, 2)
    if env.distributed:  # every rank must end with the same bytes (SHA-256 per rank)
        summary["weights_sha256"] = check_same_across_ranks(model, env)
        if teacher is not None:
            summary["teacher_sha256"] = check_same_across_ranks(teacher, env, "teacher")
    return summary


def check_same_across_ranks(module: nn.Module, env: DistEnv, name: str = "model") -> list[str]:
    """The :func:`state_digest` of ``module`` on every rank; ValueError naming the ranks
    whose bytes differ from rank 0's (collective: every rank must call it)."""
    digests = all_gather_object(state_digest(module), env)
    bad = [r for r, d in enumerate(digests) if d != digests[0]]
    if bad:
        raise ValueError(f"{name} differs across ranks: ranks {bad} differ from rank 0")
    return digests


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): the gradient of every rank's input is the sum of
    all ranks' output gradients (what ``SyncBatchNorm``'s backward does)."""

    @staticmethod
    def forward(ctx: Any, t: Tensor) -> Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the *global* batch over all ranks,
    for any device and backend (gloo included). Mean and variance are two-pass: all-reduce
    of per-channel sums and counts, then of squared deviations, each through a
    differentiable all-reduce whose backward all-reduces the gradients (as
    ``SyncBatchNorm`` does). Running stats use the unbiased global variance like
    ``F.batch_norm``. Same parameters and buffers as ``BatchNorm*d`` (checkpoints load into
    either). Falls back to ``F.batch_norm`` in eval mode or without a process group."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (N, C, ...), got {input.dim()}D")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(input)
        if dist.get_world_size() == 1:
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = torch.full((1,), input.numel() / max(input.shape[1], 1), dtype=input.dtype)
        stats = _AllReduceSum.apply(torch.cat([input.sum(dims), count.to(input.device)]))
        n = stats[-1]
        mean = stats[:-1] / n
        centred = input - mean.view(shape)
        var = _AllReduceSum.apply(centred.pow(2).sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var * (n / (n - 1).clamp_min(1))
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(unbiased.detach(), m)
        return out


def sync_batchnorm(module: nn.Module, env: DistEnv) -> nn.Module:
    """Synchronised BatchNorm for data-parallel training: torch's ``SyncBatchNorm`` on CUDA,
    :class:`CPUSyncBatchNorm` elsewhere. Returns ``module`` unchanged on one rank."""
    if not env.distributed:
        return module
    if env.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_cpu(module)


def _convert_cpu(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, CPUSyncBatchNorm
    ):
        out = CPUSyncBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        out.load_state_dict(module.state_dict())
        out.train(module.training)
        out = out.to(next(module.buffers(), torch.empty(0)).device)
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child))
    return out


def wrap_ddp(module: nn.Module, env: DistEnv, find_unused_parameters: bool = False) -> nn.Module:
    """``DistributedDataParallel`` around ``module`` (gradients averaged over ranks during
    backward; rank 0's parameters and buffers broadcast at construction). Returns ``module``
    itself on one rank."""
    if not env.distributed:
        return module
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        module, device_ids=ids, find_unused_parameters=find_unused_parameters
    )
