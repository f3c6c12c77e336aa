"""The replayable parameters of one mixing draw (kornia-style ``_params``, torchvision v2
``make_params``): everything random lives here, the apply step is deterministic."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch
from torch import Tensor

from mixkit.ops.sampling import numpy_ready

__all__ = ["Kind", "MixParams"]


class Kind(IntEnum):
    """How sample i is mixed with its partner."""

    NONE = 0  # unchanged (not applied: p gate)
    BLEND = 1  # MixUp: global convex combination, weight lam
    CROP = 2  # CutMix: partner's pixels inside the box
    RESIZE = 3  # ResizeMix: whole partner resized into the box
    FILL = 4  # Cutout: constant inside the box, label unchanged
    MASK = 5  # ClassMix / FMix: partner's pixels where mask is True


@dataclass(frozen=True)
class MixParams:
    """One draw for a batch of B images of size (H, W). All tensors live on the CPU.

    Attributes:
        kind: (B,) int64 ``Kind`` per sample.
        lam: (B,) float32 fraction of sample i that stays from image i: the exact fraction of
            pixels kept for region kinds, the blend weight for BLEND, 1 for NONE.
        perm: (B,) int64 partner index: ``images[perm[i]]`` is mixed into ``images[i]``.
        boxes: (B, 4) int64 region ``x1, y1, x2, y2`` (exclusive ends); empty when unused.
        size: (H, W) the draw was made for.
        mask: (B, H, W) bool region for MASK samples (True = from partner), else None.
        fill: value written by FILL (Cutout).
        resize_mode: ``nearest`` or ``bilinear`` for RESIZE.
    """

    kind: Tensor
    lam: Tensor
    perm: Tensor
    boxes: Tensor
    size: tuple[int, int]
    mask: Tensor | None = None
    fill: float = 0.0
    resize_mode: str = "nearest"

    @property
    def batch_size(self) -> int:
        return int(self.kind.shape[0])

    @property
    def applied(self) -> Tensor:
        """(B,) bool: whether sample i was mixed."""
        return self.kind != Kind.NONE

    @property
    def label_lam(self) -> Tensor:
        """(B,) float32 weight of the own label: ``lam``, or 1 for NONE and FILL (Cutout)."""
        if numpy_ready(self.kind) and numpy_ready(self.lam):  # the same values, cheaper
            kind, lam = self.kind.numpy(), self.lam.numpy()
            keep = (kind == int(Kind.NONE)) | (kind == int(Kind.FILL))
            return torch.from_numpy(np.where(keep, lam.dtype.type(1), lam))
        keep = (self.kind == int(Kind.NONE)) | (self.kind == int(Kind.FILL))
        return self.lam.masked_fill(keep, 1.0)

    def kinds(self) -> set[Kind]:
        """The kinds present in the batch."""
        return {Kind(k) for k in self.kind.unique().tolist()}

    def replace(self, **changes: object) -> MixParams:
        return dataclasses.replace(self, **changes)

    @staticmethod
    def identity(batch_size: int, size: tuple[int, int]) -> MixParams:
        """Parameters that leave every sample unchanged: (B,) int64 kind NONE and perm
        ``arange(B)``, (B,) float32 lam 1, (B, 4) int64 zero boxes."""
        return MixParams(
            kind=torch.zeros(batch_size, dtype=torch.long),
            lam=torch.ones(batch_size),
            perm=torch.arange(batch_size),
            boxes=torch.zeros(batch_size, 4, dtype=torch.long),
            size=size,
        )

    def check(self, batch_size: int, size: tuple[int, int], name: str = "images") -> None:
        """Raise ValueError if these params were not drawn for this batch shape."""
        if batch_size != self.batch_size or tuple(size) != tuple(self.size):
            raise ValueError(
                f"{name} has batch {batch_size} and size {tuple(size)} but params were drawn for "
                f"batch {self.batch_size} and size {tuple(self.size)}"
            )
