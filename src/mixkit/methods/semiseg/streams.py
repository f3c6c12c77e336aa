"""Endless shuffled batch streams with data-parallel shards: :class:`IndexStream` (indices of
the in-memory canvases) and :class:`LoaderStream` (an on-disk dataset through a
``DataLoader``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from mixkit.collate import stream_seed
from mixkit.methods.semiseg.datasets import SegListDataset, seg_collate


class IndexStream:
    """Endless shuffled stream of dataset indices in batches (remainder dropped per pass).
    With ``world_size > 1``, ``batch`` is the global batch and :meth:`next` returns rank
    ``rank``'s share ``global_batch[rank::world_size]`` (every rank draws the same
    permutation from an identically seeded generator)."""

    def __init__(
        self,
        indices: Tensor,
        batch: int,
        generator: torch.Generator,
        name: str = "labeled",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.name = name
        self.indices = indices.long()
        self.batch = batch
        self.generator = generator
        self.rank, self.world_size = rank, world_size
        self.order: Tensor | None = None
        self.pos = 0

    def next(self) -> Tensor:
        n = self.indices.numel()
        if n < self.batch:
            raise ValueError(
                f"the {self.name} set has {n} canvases and cannot fill batches of "
                f"{self.batch}; lower the batch size or change the split"
            )
        if self.order is None or self.pos + self.batch > n:
            self.order = self.indices[torch.randperm(n, generator=self.generator)]
            self.pos = 0
        out = self.order[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return out[self.rank :: self.world_size] if self.world_size > 1 else out

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order, self.pos = state["order"], int(state["pos"])


class _PassKeyed(Dataset):
    """A :class:`SegListDataset` indexed by ``(pass, index)``: sample ``index`` loaded and
    transformed with the generator seeded by ``stream_seed(seed, stream, pass, index)`` (the
    dataset's own per-epoch key with the pass as the epoch), so the draws do not depend on
    the number of workers nor on prefetching."""

    def __init__(self, dataset: SegListDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor]:
        p, i = key
        ds = self.dataset
        image, mask = ds.load(i)
        if ds.transform is not None:
            g = torch.Generator().manual_seed(stream_seed(ds.seed, ds.stream, p, i))
            image, mask = ds.transform(image, mask, g)
        return image, mask


class LoaderStream:
    """Endless batches of an on-disk dataset through a ``DataLoader`` (``workers``
    processes), resumable to the batch.

    Batch ``k`` is a pure function of ``(seed, name, k)``: pass ``p = k // per_pass`` walks a
    ``torch.randperm`` seeded by ``stream_seed(seed, name, p)`` (remainder dropped, as
    ``drop_last=True``), and each sample's augmentation is keyed by ``(pass, index)``. The
    state is the number of batches consumed; with ``world_size > 1`` each rank loads its
    share ``global_batch[rank::world_size]``."""

    def __init__(
        self,
        dataset: SegListDataset,
        batch: int,
        seed: int,
        name: str,
        *,
        workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pin_memory: bool = False,
    ) -> None:
        n = len(dataset)
        if n < batch:
            raise ValueError(
                f"the {name} set has {n} images and cannot fill batches of {batch}; lower the "
                "batch size or use another split list"
            )
        self.dataset, self.batch, self.seed, self.name = dataset, batch, seed, name
        self.workers, self.rank, self.world_size = workers, rank, world_size
        self.pin_memory = pin_memory
        self.per_pass = n // batch
        self.consumed = 0
        self._it: Any = None

    def _keys(self, start: int) -> Iterator[list[tuple[int, int]]]:
        k, order, cached = start, None, -1
        n = len(self.dataset)
        while True:
            p, pos = divmod(k, self.per_pass)
            if p != cached:
                g = torch.Generator().manual_seed(stream_seed(self.seed, self.name, p))
                order, cached = torch.randperm(n, generator=g), p
            idx = order[pos * self.batch : (pos + 1) * self.batch][self.rank :: self.world_size]
            yield [(p, int(i)) for i in idx]
            k += 1

    def next(self) -> tuple[Tensor, Tensor]:
        """(images uint8 (B, 3, h, w), masks (B, h, w)) of the next batch (this rank's share)."""
        if self._it is None:
            loader = DataLoader(
                _PassKeyed(self.dataset), batch_sampler=self._keys(self.consumed),
                num_workers=self.workers, collate_fn=seg_collate, pin_memory=self.pin_memory,
            )  # fmt: skip
            self._it = iter(loader)
        out = next(self._it)
        self.consumed += 1
        return out

    def close(self) -> None:
        """Stop the worker processes (a later :meth:`next` starts new ones)."""
        self._it = None

    def state_dict(self) -> dict[str, Any]:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.consumed = int(state["consumed"])
        self._it = None
