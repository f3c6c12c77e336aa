"""The replayable parameters of one mixing draw (kornia-style ``_params``, torchvision v2
``make_params``): everything random lives here, the apply step is deterministic."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from numbers import Integral

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


_INTEGER = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
_MAX_KIND = int(max(Kind))
_NUMPY_LAM = (torch.float32, torch.float64)
_MIN, _MAX = np.minimum, np.maximum  # min / max reductions; NaN propagates through both


def _integer(t: Tensor) -> bool:
    return t.dtype in _INTEGER


def _describe(t: object) -> str:
    return f"{t.dtype} {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__


@dataclass(frozen=True)
class MixParams:
    """One draw for a batch of B images of size (H, W). All tensors live on the CPU.
    The constructor and ``replace`` check every field (one ValueError naming the field).

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

    def __post_init__(self) -> None:
        """One ValueError naming the field for a hand-built draw the apply step cannot use
        (the C kernels read B values of each field; λ outside [0, 1] or NaN would extrapolate
        the blend or put NaN into images and targets)."""
        kind, lam, perm, boxes = self.kind, self.lam, self.perm, self.boxes
        if not isinstance(kind, Tensor) or kind.ndim != 1 or not _integer(kind):
            raise ValueError(f"kind must be a (B,) integer tensor, got {_describe(kind)}")
        b = kind.shape[0]
        if not isinstance(lam, Tensor) or lam.shape != (b,) or not lam.is_floating_point():
            raise ValueError(f"lam must be a {(b,)} float tensor, got {_describe(lam)}")
        if not isinstance(perm, Tensor) or perm.shape != (b,) or not _integer(perm):
            raise ValueError(f"perm must be a {(b,)} integer tensor, got {_describe(perm)}")
        if not isinstance(boxes, Tensor) or boxes.shape != (b, 4) or not _integer(boxes):
            raise ValueError(f"boxes must be a {(b, 4)} integer tensor, got {_describe(boxes)}")
        size = self.size
        if not (
            isinstance(size, tuple | list)
            and len(size) == 2
            and all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in size)
        ):
            raise ValueError(f"size must be (H, W), two ints >= 1, got {size!r}")
        mask = self.mask
        if mask is not None and (
            not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (b, *size)
        ):
            raise ValueError(
                f"mask must be None or a bool tensor of shape {(b, *size)}, got {_describe(mask)}"
            )
        if b == 0:
            return
        numpy_ok = numpy_ready(kind) and numpy_ready(lam)
        if numpy_ok and kind.dtype == torch.int64 and lam.dtype in _NUMPY_LAM:
            k, v = kind.numpy(), lam.numpy()
            kinds_ok = 0 <= int(_MIN.reduce(k)) and int(_MAX.reduce(k)) <= _MAX_KIND
            lam_ok = 0.0 <= float(_MIN.reduce(v)) and float(_MAX.reduce(v)) <= 1.0  # NaN: False
        else:
            kinds_ok = bool(((kind >= 0) & (kind <= _MAX_KIND)).all())
            lam_ok = bool(((lam >= 0) & (lam <= 1)).all())
        if not kinds_ok:
            bad = kind[(kind < 0) | (kind > _MAX_KIND)]
            raise ValueError(
                f"kind must hold Kind values 0..{_MAX_KIND}, got {bad.numel()} other values, "
                f"e.g. {bad[:4].tolist()}"
            )
        if not lam_ok:
            bad = lam[~((lam >= 0) & (lam <= 1))]
            raise ValueError(
                f"lam must lie in [0, 1] (no NaN), got {bad.numel()} values outside, "
                f"e.g. {bad[:4].tolist()}"
            )

    @classmethod
    def drawn(
        cls,
        kind: Tensor,
        lam: Tensor,
        perm: Tensor,
        boxes: Tensor,
        size: tuple[int, int],
        mask: Tensor | None = None,
        fill: float = 0.0,
        resize_mode: str = "nearest",
    ) -> MixParams:
        """The params of a built-in draw (``MixTransform._finish``), valid by construction:
        made without the field checks (~15 us a call on a 2-core CPU)."""
        params = object.__new__(cls)
        for name, value in (
            ("kind", kind),
            ("lam", lam),
            ("perm", perm),
            ("boxes", boxes),
            ("size", size),
            ("mask", mask),
            ("fill", fill),
            ("resize_mode", resize_mode),
        ):
            object.__setattr__(params, name, value)
        return params

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
