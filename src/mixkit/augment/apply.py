"""Deterministic application of one ``MixParams`` to images, targets, masks and boxes.

One params object gives mutually consistent outputs: the pixels a box/mask op takes from
the partner are exactly the mask pixels taken from the partner's mask and the region used
to clip/drop boxes; ``lam`` is the exact kept pixel fraction.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from mixkit import ops
from mixkit.augment.params import Kind, MixParams

__all__ = ["BoxBatch", "apply_images", "apply_targets", "apply_masks", "apply_boxes"]

_BOX_KINDS = (Kind.CROP, Kind.RESIZE, Kind.FILL)


class BoxBatch(NamedTuple):
    """Detection boxes of a batch, padded to N per image.

    boxes: (B, N, 4) float xyxy pixels; labels: (B, N) int64; valid: (B, N) bool.
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor


def _is(params: MixParams, *kinds: Kind) -> Tensor:
    out = torch.zeros_like(params.kind, dtype=torch.bool)
    for k in kinds:
        out |= params.kind == k
    return out


def _region(params: MixParams, device: torch.device) -> Tensor:
    """(B, 1, H, W) bool: pixels taken from the partner (or filled) for region kinds."""
    h, w = params.size
    present = params.kinds()
    region = torch.zeros(params.batch_size, 1, h, w, dtype=torch.bool, device=device)
    if present & set(_BOX_KINDS):
        region = ops.box_mask(params.boxes, h, w, device) & _is(params, *_BOX_KINDS).to(
            device
        ).view(-1, 1, 1, 1)
    if Kind.MASK in present:
        if params.mask is None:
            raise ValueError("params.mask is required for MASK samples")
        is_mask = (params.kind == Kind.MASK).to(device).view(-1, 1, 1, 1)
        region = region | (params.mask.to(device).unsqueeze(1) & is_mask)
    return region


def _per_sample(select: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``a`` where select[i] else ``b``, for (B, ...) tensors."""
    return torch.where(select.to(a.device).view(-1, *([1] * (a.ndim - 1))), a, b)


def _source(params: MixParams, partner: Tensor, fill: Tensor | float | None) -> Tensor:
    """What region pixels are taken from: partner, resized partner, or the fill value."""
    present = params.kinds()
    source = partner
    if Kind.RESIZE in present:
        resized = ops.resize_into_boxes(partner, params.boxes, params.size, params.resize_mode)
        only = present <= {Kind.RESIZE, Kind.NONE}
        source = resized if only else _per_sample(params.kind == Kind.RESIZE, resized, source)
    if Kind.FILL in present and fill is not None:
        value = torch.full((), fill, dtype=partner.dtype, device=partner.device).expand_as(partner)
        only = present <= {Kind.FILL, Kind.NONE}
        source = value if only else _per_sample(params.kind == Kind.FILL, value, source)
    return source


def apply_images(params: MixParams, images: Tensor, *, out: Tensor | None = None) -> Tensor:
    """Mix a batch of images (B, C, H, W) float or uint8 with ``params``. Returns a new tensor
    (or ``out``); the input is never modified."""
    ops.pixels._check_images(images)
    params.check(images.shape[0], tuple(images.shape[-2:]))
    present = params.kinds()
    if present <= {Kind.NONE}:
        return images.clone() if out is None else out.copy_(images)
    partner = images.index_select(0, params.perm.to(images.device))
    source = _source(params, partner, params.fill)
    region = _region(params, images.device)
    if Kind.BLEND in present:
        blend_w = (1 - params.lam).to(images.device).view(-1, 1, 1, 1)
        weight = torch.where(
            (params.kind == Kind.BLEND).to(images.device).view(-1, 1, 1, 1),
            blend_w,
            region.to(blend_w.dtype),
        )
        return ops.blend(images, source, weight, out=out)
    return ops.blend(images, source, region, out=out)


def apply_targets(params: MixParams, targets: Tensor) -> Tensor:
    """Mix (B, K) float targets: ``label_lam * y + (1 - label_lam) * y[perm]``."""
    if targets.ndim != 2 or targets.shape[0] != params.batch_size:
        raise ValueError(
            f"targets must have shape ({params.batch_size}, K), got {tuple(targets.shape)}"
        )
    return ops.mix_targets(targets, params.label_lam, params.perm)


def apply_masks(params: MixParams, masks: Tensor, ignore_index: int = 255) -> Tensor:
    """Mix segmentation masks consistently with the images.

    masks: (B, H, W) integer class ids (region kinds only; Cutout regions become
    ``ignore_index``), or (B, K, H, W) float probability maps (mixed like images; Cutout
    leaves them unchanged). Returns the same shape and dtype.
    """
    if masks.ndim == 4 and masks.is_floating_point():
        params.check(masks.shape[0], tuple(masks.shape[-2:]), "masks")
        no_fill = params.kind == Kind.FILL
        if bool(no_fill.any()):
            params = params.replace(kind=torch.where(no_fill, Kind.NONE, params.kind))
        return apply_images(params, masks)
    if masks.ndim != 3 or masks.is_floating_point() or masks.dtype == torch.bool:
        raise ValueError(
            "masks must be an integer tensor (B, H, W) of class ids or a float tensor "
            f"(B, K, H, W) of probabilities, got {masks.dtype} {tuple(masks.shape)}"
        )
    params.check(masks.shape[0], tuple(masks.shape[-2:]), "masks")
    present = params.kinds()
    if Kind.BLEND in present:
        raise ValueError(
            "masks: MixUp (BLEND) cannot mix integer class-id masks; "
            "pass (B, K, H, W) float probability maps instead"
        )
    if present <= {Kind.NONE}:
        return masks.clone()
    partner = masks.index_select(0, params.perm.to(masks.device)).unsqueeze(1)
    source = _source(params, partner, float(ignore_index))
    region = _region(params, masks.device)
    return torch.where(region, source, masks.unsqueeze(1)).squeeze(1)


def apply_boxes(params: MixParams, boxes: BoxBatch, min_visibility: float = 0.25) -> BoxBatch:
    """Mix detection boxes consistently with the images. Returns a BoxBatch with 2N slots:
    the image's own boxes, then the partner's.

    - Own boxes stay unchanged and are dropped (valid=False) when less than
      ``min_visibility`` of their area remains visible after the paste.
    - CROP: partner boxes are clipped to the box region; RESIZE: scaled and shifted into it;
      MASK: kept unclipped. Each is dropped when less than ``min_visibility`` of it is inside
      the pasted region. BLEND keeps both sets; FILL and NONE add no partner boxes.
    """
    xyxy, labels, valid = boxes
    b = params.batch_size
    if xyxy.ndim != 3 or xyxy.shape[0] != b or xyxy.shape[2] != 4:
        raise ValueError(f"boxes.boxes must have shape ({b}, N, 4), got {tuple(xyxy.shape)}")
    if labels.shape != xyxy.shape[:2] or valid.shape != xyxy.shape[:2] or valid.dtype != torch.bool:
        raise ValueError(
            f"boxes.labels and boxes.valid (bool) must have shape {tuple(xyxy.shape[:2])}, "
            f"got {tuple(labels.shape)} and {valid.dtype} {tuple(valid.shape)}"
        )
    xyxy = xyxy.float()
    device = xyxy.device
    kind = params.kind.to(device)[:, None]
    region = params.boxes.to(device)
    ones = torch.ones(xyxy.shape[:2], device=device)

    own_vis = torch.where(
        (kind == Kind.CROP) | (kind == Kind.RESIZE) | (kind == Kind.FILL),
        ops.visible_fraction_box(xyxy, region),
        ones,
    )
    perm = params.perm.to(device)
    p_xyxy, p_labels, p_valid = (t.index_select(0, perm) for t in (xyxy, labels, valid))
    p_out = p_xyxy
    p_inside = ones
    if Kind.CROP in params.kinds():
        clipped = ops.intersect_region(p_xyxy, region)
        inside = ops.box_areas(clipped) / ops.box_areas(p_xyxy).clamp_min(1e-12)
        p_out = torch.where(kind[..., None] == Kind.CROP, clipped, p_out)
        p_inside = torch.where(kind == Kind.CROP, inside, p_inside)
    if Kind.RESIZE in params.kinds():
        moved = ops.resize_boxes_into(p_xyxy, params.size, region)
        p_out = torch.where(kind[..., None] == Kind.RESIZE, moved, p_out)
    if Kind.MASK in params.kinds():
        mask = params.mask.to(device)
        own_vis = torch.where(kind == Kind.MASK, ops.visible_fraction_mask(xyxy, mask), own_vis)
        under = 1 - ops.visible_fraction_mask(p_xyxy, mask)
        p_inside = torch.where(kind == Kind.MASK, under, p_inside)
    has_partner = (kind != Kind.NONE) & (kind != Kind.FILL)
    own_keep = valid & (own_vis >= min_visibility)
    p_keep = p_valid & has_partner & (p_inside >= min_visibility) & (ops.box_areas(p_out) > 0)
    out_boxes = torch.cat([xyxy, p_out], 1) * torch.cat([own_keep, p_keep], 1)[..., None]
    return BoxBatch(out_boxes, torch.cat([labels, p_labels], 1), torch.cat([own_keep, p_keep], 1))
