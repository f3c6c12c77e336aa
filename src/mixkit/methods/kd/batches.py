"""Data helpers shared by the KD trainer and the T. stddev audit: index batches of a pass
(optionally one rank's shard), the loader transform of x, split subsets and chunked teacher
logits."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from mixkit import data, distributed
from mixkit.methods.kd.schemes import SchemeContext


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: Tensor, ctx: SchemeContext, device: str | torch.device, chunk: int = 512
) -> Tensor:
    """Logits of pixel images x (N, C, H, W) in chunks, model in eval mode. (N, K) on CPU."""
    was = model.training
    model.eval()
    out = [model(ctx.normalize(x[i : i + chunk].to(device))).cpu() for i in range(0, len(x), chunk)]
    model.train(was)
    return torch.cat(out)


def index_batches(
    n: int,
    batch_size: int,
    generator: torch.Generator | None,
    shuffle: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[Tensor]:
    """Index batches of one pass, the same draw as ``data.iterate_batches`` (one randperm).
    With ``world_size > 1``: rank ``rank``'s shard of that permutation
    (``DistributedSampler`` semantics, :func:`mixkit.distributed.shard_order`) in batches of
    ``batch_size`` (the per-rank batch)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if world_size > 1:
        order = distributed.shard_order(n, rank, world_size, order)
    yield from order.split(batch_size)


def base_augment(x: Tensor, base_aug: str, pad: int, generator: torch.Generator | None) -> Tensor:
    """The loader's transform of x: per-sample crop (+ flip) or nothing."""
    if base_aug == "none":
        return x
    return data.random_crop_flip(x, pad, generator, per_sample=True, flip=base_aug == "crop_flip")


def subset(split: data.Split, n: int) -> data.Split:
    """The first ``n`` images of a split (the split is already shuffled); 0 = all."""
    if n == 0 or n >= len(split):
        return split
    return data.Split(split.x[:n], split.y[:n])
