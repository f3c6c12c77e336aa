"""Training and test batches for the trainers, from memory or from disk, on the device.

A :class:`Feed` hands out uint8 batches already on the training device; the standard
augmentations (:meth:`Feed.view`) and the normalisation run there, after the transfer
(:mod:`mixkit.device_aug`), drawn from a CPU generator the caller owns.

- :class:`MemoryFeed`: the embedded sets (``mnist5k``, ``digits``, ...) as in-memory uint8
  tensors; batch order from a permutation of the caller's shuffle generator, drawn at the
  start of each epoch (a resumed epoch restores the generator and skips batches).
- :class:`LoaderFeed`: ``cifar10`` / ``cifar100`` pickles and ``imagefolder`` trees read by
  DataLoader workers (:mod:`mixkit.datasets`, :mod:`mixkit.loaders`): pinned memory on CUDA,
  persistent workers, ``non_blocking`` copies; the order is a pure function of
  ``(seed, epoch)`` (:class:`mixkit.loaders.EpochSampler`), so it resumes too.

Under torchrun each rank gets its shard of one global order (``DistributedSampler``
semantics, :func:`mixkit.distributed.shard_order`) and every ``world_size``-th test image.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Subset

from mixkit import data, device_aug, distributed, loaders

# Train views of a uint8 batch (Feed.view): crop + flip, crop only, none.
AUGS = ("crop_flip", "crop", "none")
# Datasets read from disk by DataLoader workers; the others are embedded, held in memory.
ON_DISK = ("cifar10", "cifar100", "imagefolder")
# Evaluation crop fraction: images are decoded at image_size / CROP_FRAC (224 -> 256).
CROP_FRAC = 0.875


class Batch(NamedTuple):
    idx: Tensor  # (b,) int64 CPU: indices into the feed's training set
    x: Tensor  # (b, C, H, W) uint8 on the device
    y: Tensor  # (b,) int64 on the device


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
    (:func:`mixkit.distributed.shard_order`) in batches of ``batch_size`` (the per-rank
    batch)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if world_size > 1:
        order = distributed.shard_order(n, rank, world_size, order)
    yield from order.split(batch_size)


class Feed:
    """Base: dataset facts, the on-device views and the normalisation.

    ``crop``: ``"pad"`` (small images: pad-and-crop + flip) or ``"rrc"`` (imagefolder:
    random-resized crop + flip to ``image_size``; evaluation: resize + centre crop)."""

    name: str
    num_classes: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop: str = "pad"
    image_size: int | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def steps_per_epoch(self, batch_size: int, env: distributed.DistEnv) -> int:
        return math.ceil(math.ceil(len(self) / env.world_size) / batch_size)

    def view(self, x: Tensor, aug: str, generator: torch.Generator | None, pad: int = 4) -> Tensor:
        """The training view of uint8 (B, C, H, W) ``x`` on its device: ``aug`` in
        :data:`AUGS` (``"none"`` on imagefolder: the evaluation crop). uint8 out."""
        if aug not in AUGS:
            raise ValueError(f"aug must be one of {list(AUGS)}, got {aug!r}")
        if self.crop == "rrc":
            if aug == "none":
                return self.eval_view(x)
            return device_aug.random_resized_crop_flip(
                x, self.image_size, generator, flip=aug == "crop_flip"
            )
        if aug == "none":
            return x
        return device_aug.random_crop_flip(x, pad, generator, flip=aug == "crop_flip")

    def eval_view(self, x: Tensor) -> Tensor:
        """The evaluation view: resize + centre crop on imagefolder, else ``x`` itself."""
        if self.crop == "rrc":
            return device_aug.resize_center_crop(x, self.image_size, CROP_FRAC)
        return x

    def normalize(self, x: Tensor) -> Tensor:
        """uint8 (B, C, H, W) -> float32 ``(x / 255 - mean) / std`` on its device."""
        return device_aug.to_float(x, self.mean, self.std)

    def test_batches(
        self, batch_size: int, env: distributed.DistEnv, device: torch.device
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """(normalised float32, int64) evaluation batches of this rank's test shard."""
        for x, y in self._test_uint8(batch_size, env, device):
            yield self.normalize(self.eval_view(x)), y

    def _test_uint8(self, batch_size, env, device) -> Iterator[tuple[Tensor, Tensor]]:
        raise NotImplementedError

    def preview(self, n: int) -> data.Dataset:
        """The first ``n`` training images as an in-memory :class:`mixkit.data.Dataset`
        (train and test both), for the grids of mixed samples."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop any DataLoader workers."""


class MemoryFeed(Feed):
    """An in-memory :class:`mixkit.data.Dataset` (uint8 tensors)."""

    def __init__(self, ds: data.Dataset) -> None:
        self.ds = ds
        self.name, self.num_classes, self.in_channels = ds.name, ds.num_classes, ds.in_channels
        self.mean, self.std = ds.mean, ds.std
        self.train = ds.train

    def __len__(self) -> int:
        return len(self.train)

    def epoch(
        self, epoch: int, batch_size: int, env: distributed.DistEnv, device: torch.device,
        generator: torch.Generator | None = None, start_batch: int = 0,
    ) -> Iterator[Batch]:  # fmt: skip
        """This rank's batches of one pass: a permutation drawn from ``generator`` at the
        first ``next()`` (``epoch`` is not used: the generator carries the state)."""
        batches = index_batches(len(self), batch_size, generator, True, env.rank, env.world_size)
        for idx in itertools.islice(batches, start_batch, None):
            x, y = self.train.x.index_select(0, idx), self.train.y.index_select(0, idx)
            yield Batch(idx, *device_aug.to_device((x, y), device))

    def ordered(self, batch_size: int, device: torch.device) -> Iterator[Tensor]:
        """uint8 training batches in index order (no shuffle, no shard), on ``device``."""
        for i in range(0, len(self), batch_size):
            yield device_aug.to_device(self.train.x[i : i + batch_size], device)

    def _test_uint8(self, batch_size, env, device):
        test = self.ds.test
        if env.distributed:
            idx = torch.arange(len(test))[env.rank :: env.world_size]
            test = data.Split(test.x[idx], test.y[idx])
        for xb, yb in data.iterate_batches(test, batch_size):
            yield device_aug.to_device((xb, yb), device)

    def test_size(self, env: distributed.DistEnv) -> int:
        return len(range(env.rank, len(self.ds.test), env.world_size))

    def subset(self, n: int, seed: int = 0) -> MemoryFeed:
        """A feed over a class-stratified ``n``-image subset of the training split
        (:func:`mixkit.loaders.train_subset`); 0 or n >= size: this feed."""
        if n == 0 or n >= len(self):
            return self
        ds = data.Dataset(
            self.ds.name, loaders.train_subset(self.train, n, seed), self.ds.test,
            self.num_classes, self.mean, self.std,
        )  # fmt: skip
        return MemoryFeed(ds)

    def preview(self, n: int) -> data.Dataset:
        return self.ds


class LoaderFeed(Feed):
    """On-disk train / test datasets (:class:`mixkit.loaders.DiskData`) read by DataLoaders
    with ``workers`` processes; ``pin_memory`` for CUDA transfers."""

    def __init__(
        self, disk: loaders.DiskData, *, seed: int, workers: int = 0, pin_memory: bool = False,
        image_size: int | None = None,
    ) -> None:  # fmt: skip
        self.disk, self.seed, self.workers, self.pin_memory = disk, seed, workers, pin_memory
        self.name, self.num_classes, self.in_channels = disk.name, disk.num_classes, 3
        self.mean, self.std = disk.mean, disk.std
        self.train, self.test = disk.train, disk.test
        if disk.name == "imagefolder":
            self.crop, self.image_size = "rrc", image_size
        self._loaders: dict[tuple, Any] = {}

    def __len__(self) -> int:
        return len(self.train)

    def _loader(self, role: str, batch_size: int, env: distributed.DistEnv | None = None):
        """The (cached) DataLoader of ``role``: ``"train"`` (shuffled, this rank's shard),
        ``"ordered"`` (the training set in index order) or ``"test"`` (this rank's share)."""
        env = env or distributed.DistEnv()
        key = (role, batch_size, env.rank, env.world_size)
        if key not in self._loaders:
            dataset, shuffle = (
                (self.test, False) if role == "test" else (self.train, role == "train")
            )
            if role == "test" and env.distributed:
                dataset = Subset(dataset, range(env.rank, len(dataset), env.world_size))
            self._loaders[key] = loaders.build_loader(
                dataset, batch_size, shuffle=shuffle, seed=self.seed if shuffle else None,
                num_workers=self.workers, pin_memory=self.pin_memory,
                num_replicas=env.world_size if shuffle else 1, rank=env.rank if shuffle else 0,
            )  # fmt: skip
        return self._loaders[key]

    def epoch(
        self, epoch: int, batch_size: int, env: distributed.DistEnv, device: torch.device,
        generator: torch.Generator | None = None, start_batch: int = 0,
    ) -> Iterator[Batch]:  # fmt: skip
        """This rank's batches of epoch ``epoch`` (order from ``(seed, epoch)``; the
        ``generator`` is not used). The ``start_batch`` skipped batches are still decoded."""
        loader = self._loader("train", batch_size, env)
        loaders.set_loader_epoch(loader, epoch)
        order = loader.sampler.indices(epoch)
        for b, (x, y) in enumerate(itertools.islice(loader, start_batch, None), start_batch):
            idx = torch.tensor(order[b * batch_size : (b + 1) * batch_size], dtype=torch.int64)
            yield Batch(idx, *device_aug.to_device((x, y), device))

    def ordered(self, batch_size: int, device: torch.device) -> Iterator[Tensor]:
        for x, _ in self._loader("ordered", batch_size):
            yield device_aug.to_device(x, device)

    def _test_uint8(self, batch_size, env, device):
        for batch in self._loader("test", batch_size, env):
            yield device_aug.to_device(batch, device)

    def test_size(self, env: distributed.DistEnv) -> int:
        return len(range(env.rank, len(self.test), env.world_size))

    def subset(self, n: int, seed: int = 0) -> LoaderFeed:
        if n == 0 or n >= len(self):
            return self
        disk = loaders.DiskData(
            self.disk.name, loaders.train_subset(self.train, n, seed), self.test,
            self.num_classes, self.mean, self.std, 3,
        )  # fmt: skip
        return LoaderFeed(
            disk, seed=self.seed, workers=self.workers, pin_memory=self.pin_memory,
            image_size=self.image_size,
        )  # fmt: skip

    def preview(self, n: int) -> data.Dataset:
        items = [self.train[i] for i in range(min(n, len(self.train)))]
        split = data.Split(torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items]))
        return data.Dataset(self.name, split, split, self.num_classes, self.mean, self.std)

    def close(self) -> None:
        self._loaders.clear()


def open_feed(
    dataset: str,
    data_root: str | None = None,
    *,
    seed: int = 0,
    image_size: int = 224,
    workers: int = 0,
    device: torch.device | str = "cpu",
) -> Feed:
    """The feed of a :data:`mixkit.data.DATASETS` name: the embedded sets in memory (split
    with ``seed``), the :data:`ON_DISK` ones through DataLoaders (imagefolder decoded at
    ``floor(image_size / 0.875)``, the evaluation resize)."""
    if dataset not in ON_DISK:  # the embedded sets (data.load_dataset checks the name)
        return MemoryFeed(data.load_dataset(dataset, data_root, seed=seed))
    if data_root is not None and not Path(data_root).is_dir():
        raise FileNotFoundError(f"data_root {data_root} does not exist")
    load = math.floor(image_size / CROP_FRAC) if dataset == "imagefolder" else None
    disk = loaders.open_splits(dataset, data_root, seed=seed, load_size=load)
    pin = torch.device(device).type == "cuda"
    return LoaderFeed(disk, seed=seed, workers=workers, pin_memory=pin, image_size=image_size)
