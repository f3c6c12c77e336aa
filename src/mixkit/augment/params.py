"""The replayable parameters of one mixing draw (kornia-style ``_params``, torchvision v2
``make_params``): everything random lives here, the apply step is deterministic."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from numbers import Integral

import torch
from torch import Tensor

from mixkit.ops.checks import on_host, require


class Kind(IntEnum):
    """How sample i is mixed with its partner."""

    NONE = 0  # unchanged (not applied: p gate, or paired with itself)
    BLEND = 1  # MixUp: global convex combination, weight lam
    CROP = 2  # CutMix: partner's pixels inside the box
    RESIZE = 3  # ResizeMix: whole partner resized into the box
    FILL = 4  # Cutout: constant inside the box, label unchanged
    MASK = 5  # ClassMix / FMix / multi-box CutMix: partner's pixels where mask is True


_INTEGER = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
_MAX_KIND = int(max(Kind))
RESIZE_MODES = ("nearest", "bilinear")


def _integer(t: object) -> bool:
    return isinstance(t, Tensor) and t.dtype in _INTEGER


def _describe(t: object) -> str:
    return f"{t.dtype} {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__


@dataclass(frozen=True)
class MixParams:
    """One draw for a batch of B images of size (H, W). The constructor and ``replace``
    check every field (one ValueError naming the field; value checks of tensors on a device
    other than the CPU run as ``torch._assert_async``).

    ``kind`` always lives on the CPU: it is the structure of the draw, read on the host to
    choose the kernels. The other tensors are on the CPU after a draw (ClassMix: ``lam`` and
    ``mask`` on the label maps' device) and are moved to the images' device with
    ``non_blocking=True`` when applied.

    Attributes:
        kind: (B,) int64 CPU ``Kind`` per sample.
        lam: (B,) float32 fraction of sample i that stays from image i: the exact fraction of
            pixels kept for region kinds, the blend weight for BLEND, 1 for NONE.
        perm: (B,) int64 partner index: ``images[perm[i]]`` is mixed into ``images[i]``.
        boxes: (B, 4) int64 region ``x1, y1, x2, y2`` (exclusive ends); zeros when unused.
        size: (H, W) the draw was made for.
        mask: (B, H, W) bool region for MASK samples (True = from partner), else None.
        fill: value written by FILL (Cutout): a number, or one number per channel.
        resize_mode: ``nearest`` or ``bilinear`` for RESIZE.
    """

    kind: Tensor
    lam: Tensor
    perm: Tensor
    boxes: Tensor
    size: tuple[int, int]
    mask: Tensor | None = None
    fill: float | tuple[float, ...] = 0.0
    resize_mode: str = "nearest"

    def __post_init__(self) -> None:
        """One ValueError naming the field for a hand-built draw the apply step cannot use
        (λ outside [0, 1] or NaN would extrapolate the blend or put NaN into the outputs)."""
        kind, lam, perm, boxes = self.kind, self.lam, self.perm, self.boxes
        if not _integer(kind) or kind.ndim != 1:
            raise ValueError(f"kind must be a (B,) integer tensor, got {_describe(kind)}")
        if not on_host(kind):
            raise ValueError(f"kind must be a CPU tensor (read on the host), got {kind.device}")
        b = kind.shape[0]
        if not isinstance(lam, Tensor) or lam.shape != (b,) or not lam.is_floating_point():
            raise ValueError(f"lam must be a {(b,)} float tensor, got {_describe(lam)}")
        if not _integer(perm) or perm.shape != (b,):
            raise ValueError(f"perm must be a {(b,)} integer tensor, got {_describe(perm)}")
        if not _integer(boxes) or boxes.shape != (b, 4):
            raise ValueError(f"boxes must be a {(b, 4)} integer tensor, got {_describe(boxes)}")
        size = self.size
        if not (
            isinstance(size, tuple | list)
            and len(size) == 2
            and all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in size)
        ):
            raise ValueError(f"size must be (H, W), two ints >= 1, got {size!r}")
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        mask = self.mask
        if mask is not None and (
            not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (b, *size)
        ):
            raise ValueError(
                f"mask must be None or a bool tensor of shape {(b, *size)}, got {_describe(mask)}"
            )
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if b:
            self._check_values()

    def _check_values(self) -> None:
        kind, lam, perm = self.kind, self.lam, self.perm
        b = kind.shape[0]
        bad_kind = (kind < 0) | (kind > _MAX_KIND)
        if bool(bad_kind.any()):
            bad = kind[bad_kind]
            raise ValueError(
                f"kind must hold Kind values 0..{_MAX_KIND}, got {bad.numel()} other values, "
                f"e.g. {bad[:4].tolist()}"
            )
        lam_ok = (lam >= 0) & (lam <= 1)  # NaN: False
        if not on_host(lam):
            require(lam_ok, "lam must lie in [0, 1] (no NaN)")
        elif not bool(lam_ok.all()):
            bad = lam[~lam_ok]
            raise ValueError(
                f"lam must lie in [0, 1] (no NaN), got {bad.numel()} values outside, "
                f"e.g. {bad[:4].tolist()}"
            )
        require((perm >= 0) & (perm < b), f"perm must hold indices in [0, {b})")

    @property
    def batch_size(self) -> int:
        return int(self.kind.shape[0])

    @property
    def applied(self) -> Tensor:
        """(B,) bool CPU: whether sample i was mixed."""
        return self.kind != Kind.NONE

    @property
    def label_lam(self) -> Tensor:
        """(B,) float32 weight of the own label: ``lam``, or 1 for NONE and FILL (Cutout)."""
        keep = (self.kind == int(Kind.NONE)) | (self.kind == int(Kind.FILL))
        return self.lam.masked_fill(keep.to(self.lam.device, non_blocking=True), 1.0)

    def kinds(self) -> frozenset[Kind]:
        """The kinds present in the batch (read from the CPU ``kind``: no device sync)."""
        return frozenset(Kind(k) for k in self.kind.unique().tolist())

    def to(self, device: torch.device | str) -> MixParams:
        """These params with (B,) float32 ``lam``, (B,) int64 ``perm``, (B, 4) int64 ``boxes``
        and (B, H, W) bool ``mask`` on ``device`` (``non_blocking=True``); ``kind`` stays on
        the CPU."""

        device = torch.device(device)
        tensors = [t for t in (self.lam, self.perm, self.boxes, self.mask) if t is not None]
        if all(t.device == device for t in tensors):
            return self  # already there: no copy and no second check

        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return dataclasses.replace(
            self, lam=move(self.lam), perm=move(self.perm), boxes=move(self.boxes),
            mask=move(self.mask),
        )  # fmt: skip

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
