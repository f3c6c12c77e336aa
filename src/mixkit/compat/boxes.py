"""torchvision-style detection targets <-> :class:`mixkit.augment.BoxBatch`.

torchvision's detection models and ``transforms.v2`` keep one target dict per image,
``{"boxes": (N_i, 4), "labels": (N_i,)}`` with a different N_i per image, boxes as plain
tensors or ``tv_tensors.BoundingBoxes`` (which carry ``format`` and ``canvas_size``). The
mixers take one padded ``BoxBatch`` instead. :func:`to_box_batch` pads, :func:`from_box_batch`
unpads::

    boxes = to_box_batch(targets)                           # list of dicts -> BoxBatch
    images, soft, boxes = cutmix(images, labels, boxes=boxes)
    targets = from_box_batch(boxes, like=targets)           # back, in the input's format
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mixkit.augment.apply import BoxBatch, keep_type
from mixkit.compat.torchvision import label_key
from mixkit.ops.detection import BOX_FORMATS, convert_boxes


def _box_format(boxes: Tensor, default: str, where: str) -> str:
    """The format a ``BoundingBoxes`` carries (its ``format`` attribute, an enum whose name
    is e.g. ``XYWH``), else ``default``."""
    fmt = getattr(boxes, "format", None)
    if fmt is None:
        return default
    name = str(getattr(fmt, "name", fmt)).lower()
    if name not in BOX_FORMATS:
        raise ValueError(
            f"{where}: box format {name!r} cannot be mixed; expected one of {BOX_FORMATS} "
            "(rotated boxes are not supported)"
        )
    return name


def _split(target: Any, labels: Any, i: int) -> tuple[Tensor, Tensor]:
    """Image i's (N_i, 4) boxes and (N_i,) labels from a dict or a boxes tensor + labels."""
    where = f"targets[{i}]"
    if isinstance(target, Mapping):
        key = label_key(target)
        if "boxes" not in target or key is None:
            raise ValueError(
                f"{where} must be a dict with 'boxes' and 'labels', got {list(target)}"
            )
        boxes, lab = target["boxes"], target[key]
    elif isinstance(target, Tensor):
        if labels is None:
            raise ValueError("labels are required when targets are box tensors, not dicts")
        boxes, lab = target, labels[i]
    else:
        raise ValueError(
            f"{where} must be a dict {{'boxes', 'labels'}} or an (N, 4) box tensor, "
            f"got {type(target).__name__}"
        )
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 4:
        got = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{where}: boxes must be an (N, 4) tensor, got {got}")
    lab = torch.as_tensor(lab)
    if lab.shape != boxes.shape[:1] or lab.is_floating_point() or lab.dtype == torch.bool:
        raise ValueError(
            f"{where}: labels must be ({boxes.shape[0]},) integer class ids like the boxes, "
            f"got {lab.dtype} {tuple(lab.shape)}"
        )
    return boxes, lab


def to_box_batch(
    targets: Sequence[Mapping[str, Any]] | Sequence[Tensor],
    labels: Sequence[Tensor] | None = None,
    *,
    box_format: str = "xyxy",
    num_slots: int | None = None,
) -> BoxBatch:
    """Pad per-image detection targets into a ``BoxBatch`` for the mixers.

    Args:
        targets: B torchvision-style dicts ``{"boxes": (N_i, 4), "labels": (N_i,) int}``
            (the labels key found as torchvision finds it), or B (N_i, 4) box tensors with
            ``labels`` B (N_i,) int tensors. Boxes are plain tensors in ``box_format`` or
            ``tv_tensors.BoundingBoxes`` in their own ``format``.
        box_format: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"`` pixels, for plain box tensors.
        num_slots: N, the slots per image (default: the largest N_i).

    Returns:
        BoxBatch of (B, N, 4) float32 xyxy pixels, (B, N) int64 labels and (B, N) bool
        valid (padding: zeros, False), on the first image's boxes' device.
    """
    if isinstance(targets, Tensor | Mapping) or not isinstance(targets, Sequence) or not targets:
        raise ValueError("targets must be a non-empty list of per-image dicts or box tensors")
    if labels is not None and len(labels) != len(targets):
        raise ValueError(f"labels must hold {len(targets)} tensors like targets, got {len(labels)}")
    pairs = [_split(t, labels, i) for i, t in enumerate(targets)]
    counts = [int(b.shape[0]) for b, _ in pairs]
    n = max(counts) if num_slots is None else num_slots
    if isinstance(n, bool) or not isinstance(n, int) or n < max(counts):
        raise ValueError(f"num_slots must be an int >= the most boxes of an image ({max(counts)})")
    device = pairs[0][0].device
    xyxy = torch.zeros(len(pairs), n, 4, device=device)
    ids = torch.zeros(len(pairs), n, dtype=torch.long, device=device)
    valid = torch.zeros(len(pairs), n, dtype=torch.bool, device=device)
    for i, (boxes, lab) in enumerate(pairs):
        fmt = _box_format(boxes, box_format, f"targets[{i}]")
        k = counts[i]
        xyxy[i, :k] = convert_boxes(boxes.as_subclass(Tensor), fmt, "xyxy").to(device)
        ids[i, :k] = lab.to(device)
        valid[i, :k] = True
    return BoxBatch(xyxy, ids, valid)


def from_box_batch(
    box_batch: BoxBatch | tuple[Tensor, Tensor, Tensor],
    *,
    box_format: str = "xyxy",
    like: Sequence[Mapping[str, Any]] | Sequence[Tensor] | None = None,
) -> list[dict[str, Tensor]]:
    """Unpad a ``BoxBatch`` into B torchvision-style target dicts.

    Args:
        box_batch: (B, N, 4) float xyxy boxes, (B, N) int64 labels, (B, N) bool valid (a
            mixer's output has 2N slots: the image's own boxes, then its partner's).
        box_format: the output format of the boxes (``"xyxy"``, ``"xywh"``, ``"cxcywh"``).
        like: the targets given to :func:`to_box_batch`; each image's boxes then come back
            in its boxes' format and type (``tv_tensors.BoundingBoxes`` keep ``format`` and
            ``canvas_size``). Other keys (``area``, ``iscrowd``, ...) are not carried over.

    Returns:
        B dicts ``{"boxes": (n_i, 4) float, "labels": (n_i,) int64}``, the valid slots in slot
        order. Reads ``valid`` on the host (the lengths are data-dependent: a sync on GPUs).
    """
    xyxy, ids, valid = box_batch
    if xyxy.ndim != 3 or xyxy.shape[2] != 4 or ids.shape != xyxy.shape[:2]:
        raise ValueError(
            "box_batch must be (B, N, 4) boxes with (B, N) labels and valid, got "
            f"{tuple(xyxy.shape)}, {tuple(ids.shape)}, {tuple(valid.shape)}"
        )
    if valid.shape != ids.shape or valid.dtype != torch.bool:
        raise ValueError(
            f"box_batch.valid must be (B, N) bool, got {valid.dtype} {tuple(valid.shape)}"
        )
    if like is not None and len(like) != xyxy.shape[0]:
        raise ValueError(f"like must hold {xyxy.shape[0]} targets like box_batch, got {len(like)}")
    out = []
    for i in range(xyxy.shape[0]):
        keep = valid[i]
        boxes, lab = xyxy[i][keep], ids[i][keep]
        ref = None
        if like is not None:
            ref = like[i]["boxes"] if isinstance(like[i], Mapping) else like[i]
        fmt = box_format if ref is None else _box_format(ref, box_format, f"like[{i}]")
        boxes = convert_boxes(boxes, "xyxy", fmt)
        out.append({"boxes": boxes if ref is None else keep_type(boxes, ref), "labels": lab})
    return out
