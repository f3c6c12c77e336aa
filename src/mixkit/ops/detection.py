"""Detection-box geometry for mixing. Boxes are float xyxy pixel coordinates (B, N, 4);
region boxes are the (B, 4) int64 paste boxes of the pixel ops."""

from __future__ import annotations

import torch
from torch import Tensor


def box_areas(boxes: Tensor) -> Tensor:
    """(..., 4) float xyxy boxes -> (...) float areas (0 for degenerate boxes)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp_min(0) * (boxes[..., 3] - boxes[..., 1]).clamp_min(
        0
    )


def intersect_region(boxes: Tensor, region: Tensor) -> Tensor:
    """Clip every float xyxy box (B, N, 4) to its sample's int64 region (B, 4).
    Returns (B, N, 4) float."""
    r = region.to(boxes).unsqueeze(1)
    lo = torch.maximum(boxes[..., :2], r[..., :2])
    hi = torch.minimum(boxes[..., 2:], r[..., 2:])
    return torch.cat([lo, torch.maximum(hi, lo)], dim=-1)


def visible_fraction_box(boxes: Tensor, region: Tensor) -> Tensor:
    """Fraction of each box (B, N, 4) NOT covered by its sample's region (B, 4). (B, N).

    Computed as ``(area - covered) / area`` (one rounding), not ``1 - covered / area``: the
    latter rounds e.g. 4/10 visible to 0.39999998 in float32, below a 0.4 threshold.
    """
    area = box_areas(boxes)
    covered = box_areas(intersect_region(boxes, region))
    return torch.where(area > 0, (area - covered) / area.clamp_min(1e-12), torch.zeros_like(area))


def visible_fraction_mask(boxes: Tensor, mask: Tensor) -> Tensor:
    """Fraction of each box's pixels where ``mask`` (B, H, W) bool is False. (B, N).

    Boxes are snapped outward to the pixel grid; uses a summed-area table (vectorised).
    """
    b, h, w = mask.shape
    table = torch.zeros(b, h + 1, w + 1, dtype=torch.float64, device=mask.device)
    table[:, 1:, 1:] = (~mask).double().cumsum(1).cumsum(2)
    x1 = boxes[..., 0].floor().clamp(0, w).long()
    y1 = boxes[..., 1].floor().clamp(0, h).long()
    x2 = boxes[..., 2].ceil().clamp(0, w).long()
    y2 = boxes[..., 3].ceil().clamp(0, h).long()
    flat = table.view(b, -1)

    def at(y: Tensor, x: Tensor) -> Tensor:
        return flat.gather(1, (y * (w + 1) + x).view(b, -1)).view_as(y)

    free = at(y2, x2) - at(y1, x2) - at(y2, x1) + at(y1, x1)
    pixels = ((x2 - x1) * (y2 - y1)).double()
    return torch.where(pixels > 0, free / pixels.clamp_min(1), torch.zeros_like(free)).to(
        boxes.dtype
    )


def resize_boxes_into(boxes: Tensor, source_size: tuple[int, int], region: Tensor) -> Tensor:
    """Map boxes of a (Hs, Ws) source image into the region it is resized to. (B, N, 4)."""
    hs, ws = source_size
    r = region.to(boxes).unsqueeze(1)
    sx = (r[..., 2] - r[..., 0]) / ws
    sy = (r[..., 3] - r[..., 1]) / hs
    return torch.stack(
        [
            r[..., 0] + boxes[..., 0] * sx,
            r[..., 1] + boxes[..., 1] * sy,
            r[..., 0] + boxes[..., 2] * sx,
            r[..., 1] + boxes[..., 3] * sy,
        ],
        dim=-1,
    )


BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def convert_boxes(boxes: Tensor, source: str, target: str) -> Tensor:
    """(..., 4) boxes from the ``source`` to the ``target`` format, each one of
    ``BOX_FORMATS`` (torchvision's ``BoundingBoxFormat`` names): ``xyxy`` corners, ``xywh``
    top-left corner and size, ``cxcywh`` centre and size. Returns a new (..., 4) float tensor
    (float32 for integer input)."""
    for name, fmt in (("source", source), ("target", target)):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"{name} box format must be one of {BOX_FORMATS}, got {fmt!r}")
    b = boxes if boxes.is_floating_point() else boxes.float()
    head, tail = b[..., :2], b[..., 2:]
    if source == "xywh":
        lo, hi = head, head + tail
    elif source == "cxcywh":
        lo, hi = head - tail / 2, head + tail / 2
    else:
        lo, hi = head, tail
    if target == "xyxy":
        return torch.cat([lo, hi], -1)
    if target == "xywh":
        return torch.cat([lo, hi - lo], -1)
    return torch.cat([(lo + hi) / 2, hi - lo], -1)
