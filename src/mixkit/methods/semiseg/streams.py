"""Endless shuffled index streams of the labeled / unlabeled canvases, with data-parallel
shards."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


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
