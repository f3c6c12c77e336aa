"""Seeded DataLoaders over the datasets of :mod:`mixkit.datasets`, and stratified subsets.

- :func:`build_loader`: a ``DataLoader`` of uint8 (B, C, H, W) + int64 (B,) batches whose
  order is a pure function of ``(seed, epoch)`` (:class:`EpochSampler`), so a run resumed
  at epoch e sees the batches of an uninterrupted run, with or without (persistent)
  workers. :func:`set_loader_epoch` selects the epoch explicitly.
- :func:`stratified_indices` / :func:`train_subset`: a per-class proportional subset for
  data-scarce runs (``--train-subset``).
- :func:`open_splits`: train + test datasets of any :data:`mixkit.data.DATASETS` name.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from mixkit import data as _data
from mixkit.collate import stream_seed
from mixkit.datasets import CIFARDataset, ImageFolderDataset, TensorImageDataset

__all__ = [
    "EpochSampler",
    "build_loader",
    "open_splits",
    "set_loader_epoch",
    "stratified_indices",
    "train_subset",
]


def _int(name: str, v: Any, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    return v


def collate_chw(batch: Sequence[tuple[Tensor, int]]) -> tuple[Tensor, Tensor]:
    """Stack ``[(image (C, H, W) tensor, int label), ...]`` (what every
    :mod:`mixkit.datasets` class returns) into images (B, C, H, W) of their dtype (uint8)
    and int64 labels (B,)."""
    if len(batch) == 0:
        raise ValueError("batch must hold at least one (image, label) sample")
    images = [s[0] for s in batch]
    first = images[0]
    for i, t in enumerate(images):
        if not isinstance(t, Tensor) or t.ndim != 3 or t.shape != first.shape:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(
                f"sample {i}: images must be (C, H, W) tensors of one shape, got {got} vs "
                f"{tuple(first.shape)} (decode to a fixed size, e.g. load_size=)"
            )
    return torch.stack(images), torch.as_tensor([int(s[1]) for s in batch], dtype=torch.int64)


class EpochSampler(Sampler[int]):
    """Indices of epoch e: ``randperm(n)`` from ``Generator().manual_seed(stream_seed(seed,
    "order", e))`` (``arange(n)`` when not ``shuffle``), then this rank's shard.

    Each ``iter()`` uses the current epoch and advances it by one (so a loop over epochs
    needs no call); :meth:`set_epoch` selects one (resume). With ``num_replicas`` R the
    order is padded by wrapping to a multiple of R and rank r takes every R-th index from r
    (``DistributedSampler``'s layout), ``ceil(n / R)`` indices per rank.
    """

    def __init__(
        self, n: int, seed: int, *, shuffle: bool = True, num_replicas: int = 1, rank: int = 0
    ) -> None:
        self.n, self.seed = _int("n", n, 0), _int("seed", seed, 0)
        self.num_replicas = _int("num_replicas", num_replicas, 1)
        if _int("rank", rank, 0) >= num_replicas:
            raise ValueError(f"rank must be < num_replicas={num_replicas}, got {rank}")
        self.rank, self.shuffle, self._epoch = rank, bool(shuffle), 0

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter()`` uses."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        self._epoch = _int("epoch", epoch, 0)

    def indices(self, epoch: int) -> list[int]:
        """This rank's indices of ``epoch`` (no state change)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(stream_seed(self.seed, "order", epoch))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = len(self) * self.num_replicas
        while order and len(order) < total:
            order += order[: total - len(order)]
        return order[self.rank : total : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        epoch, self._epoch = self._epoch, self._epoch + 1
        return iter(self.indices(epoch))

    def __len__(self) -> int:
        return math.ceil(self.n / self.num_replicas)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool | None = None,
    drop_last: bool = False,
    collate_fn: Callable[[list], Any] | None = None,
    prefetch_factor: int | None = None,
    num_replicas: int = 1,
    rank: int = 0,
) -> DataLoader:
    """A DataLoader of ``(uint8 (B, C, H, W), int64 (B,))`` batches (``collate_fn`` default
    :func:`collate_chw`; pass a :class:`mixkit.collate.MixCollate` to mix in the workers).

    Order: with ``seed``, an :class:`EpochSampler` (epoch-keyed, resumable, shardable over
    ``num_replicas``); with ``generator`` instead, torch's ``RandomSampler`` drawing from it
    (same generator state => same batches). ``shuffle=True`` needs exactly one of the two.
    The workers' base seed is drawn from a generator seeded from ``seed`` (or ``generator``),
    never from torch's global RNG. ``persistent_workers`` defaults to ``num_workers > 0``.
    """
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"dataset must be a map-style Dataset, got {type(dataset).__name__}")
    _int("batch_size", batch_size, 1)
    _int("num_workers", num_workers, 0)
    if seed is not None and generator is not None:
        raise ValueError("pass seed or generator, not both")
    if shuffle and seed is None and generator is None:
        raise ValueError("shuffle=True needs seed (an int) or generator (a torch.Generator)")
    if generator is not None and num_replicas != 1:
        raise ValueError("num_replicas > 1 needs seed (the shards share one order), not generator")
    if persistent_workers is None:
        persistent_workers = num_workers > 0
    elif persistent_workers and num_workers == 0:
        raise ValueError("persistent_workers=True needs num_workers > 0")
    if prefetch_factor is not None and num_workers == 0:
        raise ValueError("prefetch_factor needs num_workers > 0")
    sampler = None
    if generator is None and (shuffle or num_replicas > 1):
        sampler = EpochSampler(
            len(dataset),
            _int("seed", seed or 0, 0),
            shuffle=shuffle,
            num_replicas=num_replicas,
            rank=rank,
        )
    loader_gen = generator
    if loader_gen is None:
        loader_gen = torch.Generator().manual_seed(stream_seed(seed or 0, "workers"))
    extra = {} if prefetch_factor is None else {"prefetch_factor": prefetch_factor}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=bool(shuffle) if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_chw if collate_fn is None else collate_fn,
        pin_memory=bool(pin_memory),
        drop_last=bool(drop_last),
        generator=loader_gen,
        persistent_workers=bool(persistent_workers),
        **extra,
    )


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on the loader's sampler and collate_fn where they have one
    (:class:`EpochSampler`, ``DistributedSampler``, :class:`mixkit.collate.MixCollate`)."""
    _int("epoch", epoch, 0)
    for part in (loader.sampler, loader.collate_fn):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)


def stratified_indices(labels: Tensor | Sequence[int], n: int, seed: int = 0) -> Tensor:
    """(n,) int64 indices, sorted, of a per-class proportional subset of ``labels``.

    Class c with N_c of the N labels gets ``floor(n * N_c / N)`` (exact integer arithmetic),
    and the ``n`` minus their sum left over go one each to the largest remainders (ties: the
    smaller class id), the largest-remainder (Hamilton) rule. Within each class the picks
    are the first of ``torch.randperm(N_c)`` from ``Generator().manual_seed(seed)``, drawn
    class after class in ascending id order.
    """
    y = torch.as_tensor(labels)
    if y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D sequence of ints, got {y.dtype} {tuple(y.shape)}")
    total = int(y.numel())
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= total:
        raise ValueError(f"n must be an int in [1, {total}] (the number of labels), got {n!r}")
    classes, counts = torch.unique(y, return_counts=True)
    share = n * counts
    alloc, rem = share // total, share % total
    left = n - int(alloc.sum())
    order = torch.sort(-rem, stable=True).indices  # largest remainder first, ties by class
    alloc[order[:left]] += 1
    g = torch.Generator().manual_seed(_int("seed", seed, 0))
    picks = []
    for c, k, cnt in zip(classes.tolist(), alloc.tolist(), counts.tolist(), strict=True):
        members = torch.nonzero(y == c).flatten()
        picks.append(members[torch.randperm(cnt, generator=g)[:k]])
    return torch.cat(picks).sort().values


class LabeledSubset(Subset):
    """A ``Subset`` that keeps the base dataset's ``num_classes`` / ``mean`` / ``std`` /
    ``classes`` (read through) and exposes the subset's ``targets``."""

    def __getattr__(self, name: str) -> Any:
        if name in ("num_classes", "mean", "std", "classes", "class_to_idx"):
            return getattr(self.dataset, name)
        raise AttributeError(name)

    @property
    def targets(self) -> list[int]:
        base = self.dataset.targets
        return [int(base[i]) for i in self.indices]


def train_subset(data: Any, n: int, seed: int = 0) -> Any:
    """A stratified ``n``-sample subset (:func:`stratified_indices`) of ``data``:

    - a :class:`mixkit.data.Split` -> a new ``Split`` (rows in index order);
    - a Dataset with ``targets`` (every :mod:`mixkit.datasets` class) -> :class:`LabeledSubset`;
    - a label tensor / sequence -> the (n,) int64 indices.
    """
    if isinstance(data, _data.Split):
        idx = stratified_indices(data.y, n, seed)
        return _data.Split(data.x.index_select(0, idx), data.y.index_select(0, idx))
    if isinstance(data, Dataset):
        if not hasattr(data, "targets"):
            raise TypeError(f"dataset {type(data).__name__} has no 'targets' to stratify on")
        return LabeledSubset(data, stratified_indices(data.targets, n, seed).tolist())
    if isinstance(data, (Tensor, Sequence)):
        return stratified_indices(data, n, seed)
    raise TypeError(f"data must be a Split, a Dataset with targets or labels, got {type(data)}")


@dataclasses.dataclass
class DiskData(_data.TrainTest):
    """Train and test datasets of one name, with the normalisation of the train split."""

    train: Dataset
    test: Dataset
    in_channels: int


def open_splits(
    name: str,
    root: str | Path | None = None,
    *,
    seed: int = 0,
    load_size: int | None = None,
    eval_load_size: int | None = None,
    fit: str = "crop",
    draft: bool = False,
) -> DiskData:
    """Datasets for ``name`` in :data:`mixkit.data.DATASETS`: the embedded sets wrapped as
    :class:`TensorImageDataset` (split with ``seed``), ``cifar10`` / ``cifar100`` as
    :class:`CIFARDataset` (``root``: see there), ``imagefolder`` as two
    :class:`ImageFolderDataset` (``train/`` and ``val/`` or ``test/``) decoded to
    ``load_size`` (train) and ``eval_load_size`` (default ``load_size``)."""
    if name in ("mnist5k", "digits", "mnistm5k"):
        ds = _data.load_dataset(name, root, seed=seed)
        train, test = (TensorImageDataset.from_split(s, ds) for s in (ds.train, ds.test))
        return DiskData(name, train, test, ds.num_classes, ds.mean, ds.std, ds.in_channels)
    if name not in _data.DATASETS:
        raise ValueError(f"dataset must be one of {list(_data.DATASETS)}, got {name!r}")
    if root is None:
        raise ValueError(f"data_root is required for {name}")
    if name in ("cifar10", "cifar100"):
        k = int(name[5:])
        train, test = CIFARDataset(root, True, k), CIFARDataset(root, False, k)
        return DiskData(name, train, test, k, train.mean, train.std, 3)
    if load_size is None:
        raise ValueError("load_size is required for imagefolder (images must share one size)")
    kw = {"fit": fit, "draft": draft}
    train = ImageFolderDataset(root, "train", load_size=load_size, **kw)
    test = ImageFolderDataset(root, "eval", load_size=eval_load_size or load_size, **kw)
    return DiskData(name, train, test, train.num_classes, train.mean, train.std, 3)
