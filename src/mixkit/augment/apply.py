"""Deterministic application of one ``MixParams`` to images, targets, masks and boxes.

One params object gives mutually consistent outputs: the pixels a box/mask op takes from
the partner are exactly the mask pixels taken from the partner's mask and the region used
to clip/drop boxes; ``lam`` is the exact kept pixel fraction.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import Tensor

from mixkit import ops
from mixkit.augment.params import Kind, MixParams
from mixkit.ops import _fast

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


def _present(params: MixParams) -> set[int]:
    """The kinds present (as ints; ``Kind`` members compare and hash equal). One CPU op."""
    return set(params.kind.tolist())


def _mix(
    params: MixParams, x: Tensor, dst: Tensor, fill: float | None, check_finite: bool = False
) -> Tensor:
    """Write ``x`` (B, C, H, W) float/uint8 images, or (B, 1, H, W) integer maps, mixed with
    ``params`` into ``dst`` (which may be ``x``).

    Semantics (the plain reference, kept bit for bit by ``ops._fast``): region pixels -- the
    box of CROP/RESIZE/FILL samples, ``params.mask`` of MASK samples -- are taken from the
    partner ``x[perm]`` (RESIZE: the partner resized into the box, FILL: ``fill``); BLEND
    samples are ``(1 - w)*x + w*x[perm]`` with ``w = 1 - lam`` (floats: ``_fast.lerp_exact``,
    ATen's lerp formula with every op rounded; integers: ``round(x*(1-w) + p*w)``).
    """
    present = _present(params)
    kinds = present - {Kind.NONE}
    # One mixer: its fast path checks the images, in the C kernel's own pass where it can.
    if check_finite and len(kinds) != 1:
        _fast.check_finite_images(x)
    if not kinds:
        return _fast.copy_into(x, dst)
    kind = params.kind
    gated = Kind.NONE in present
    if Kind.MASK in kinds and params.mask is None:
        raise ValueError("params.mask is required for MASK samples")
    if len(kinds) == 1:  # one mixer (any mode): the dedicated fast path
        k = next(iter(kinds))
        active = (kind == k) if gated else None
        if k == Kind.BLEND:
            lam = params.lam if active is None else torch.where(active, params.lam, 1.0)
            return _fast.mixup_into(x, dst, lam, params.perm, check_finite)
        if k == Kind.MASK:
            mask = params.mask if active is None else params.mask & active.view(-1, 1, 1)
            return _fast.mask_into(x, dst, mask, params.perm, check_finite)
        boxes = params.boxes if active is None else params.boxes * active.view(-1, 1)
        if k == Kind.CROP:
            return _fast.paste_into(x, dst, boxes, params.perm, None, check_finite)
        if k == Kind.RESIZE:
            mode = params.resize_mode
            return _fast.resize_into(x, dst, boxes, mode, params.perm, None, check_finite)
        if fill is None:
            if check_finite:
                _fast.check_finite_images(x)
            return _fast.copy_into(x, dst)
        return _fast.fill_into(x, dst, boxes, fill, check_finite)
    return _mix_general(params, x, dst, fill, present)


def _mix_general(
    params: MixParams, x: Tensor, dst: Tensor, fill: float | None, present: set[int]
) -> Tensor:
    """Several kinds in one batch (``RandomChoice`` per sample): one weight map (region
    0/1, BLEND ``1 - lam``) and a per-block source (partner, resized partner, fill)."""
    b, _, h, w = x.shape
    dev = x.device
    kind = params.kind
    select = Kind.BLEND not in present
    if x.is_floating_point():
        wdtype = x.dtype
    else:
        wdtype = x.dtype if select else torch.float32
    weight: Tensor | None = None
    if present & set(_BOX_KINDS):
        is_box = _is(params, *_BOX_KINDS)
        weight = _fast.box_weight(params.boxes * is_box.view(-1, 1), h, w, wdtype, dev)
    if Kind.MASK in present:
        mw = _fast.mask_weight(params.mask & (kind == Kind.MASK).view(-1, 1, 1), wdtype, dev)
        if weight is None:
            weight = mw
        else:
            weight = weight + mw if wdtype.is_floating_point else weight | mw
    if not select:
        # BLEND samples: 1 - lam (computed like ops.mixup), region samples: 0/1.
        lam = params.lam.to(_fast.blend_dtype(params.lam.dtype, x.dtype))
        bw = ((1 - lam) * (kind == Kind.BLEND)).to(dev).to(wdtype).view(-1, 1, 1, 1)
        weight = bw if weight is None else weight + bw
    assert weight is not None
    partner = _fast.partner_source(x, params.perm, dst)
    plan = None
    is_resize = kind == Kind.RESIZE
    if Kind.RESIZE in present:
        boxes = params.boxes
        if params.resize_mode == "nearest":  # identity map for the other samples
            full = torch.tensor([0, 0, w, h], dtype=boxes.dtype)
            boxes = torch.where(is_resize.view(-1, 1), boxes, full)
        plan = _fast.resize_plan(boxes, (h, w), (h, w), params.resize_mode, dev)
    fill_rows = kind == Kind.FILL if (Kind.FILL in present and fill is not None) else None
    fill_value = None
    if fill_rows is not None:
        fill_value = torch.full((), fill, dtype=x.dtype, device=dev)

    def source(s: int, e: int) -> Tensor:
        blk = partner(s, e)
        if plan is not None:
            resized = _fast.resize_block(blk, *plan(s, e), (h, w))
            if params.resize_mode != "nearest":
                resized = torch.where(is_resize[s:e].to(dev).view(-1, 1, 1, 1), resized, blk)
            blk = resized
        if fill_rows is not None:
            idx = fill_rows[s:e].nonzero().flatten()
            if idx.numel():
                blk.index_fill_(0, idx.to(dev), fill_value)
        return blk

    return _fast.mix_blocks(x, dst, weight, select, source)


def apply_images(
    params: MixParams,
    images: Tensor,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
    check_finite: bool = False,
) -> Tensor:
    """Mix a batch of images (B, C, H, W) float or uint8 with ``params``.

    Returns a new tensor; with ``out=`` the result is written into that preallocated tensor
    (same shape, dtype, device) and with ``inplace=True`` into ``images`` itself -- no
    allocation after the first call (``ops._fast``). Otherwise the input is never modified.
    ``check_finite``: ValueError when float images hold NaN or Inf, raised before the images
    are modified (a float32 / float64 MixUp, CutMix, nearest ResizeMix or Cutout out of place
    on the C kernels checks in the kernel's own pass; ``out`` may then hold the mix).
    """
    ops.pixels._check_images(images)
    params.check(images.shape[0], tuple(images.shape[-2:]))
    dst = _fast.destination(images, out, inplace)
    return _mix(params, images, dst, params.fill, check_finite)


def apply_targets(params: MixParams, targets: Tensor) -> Tensor:
    """Mix (B, K) float targets: ``label_lam * y + (1 - label_lam) * y[perm]``."""
    if targets.ndim != 2 or targets.shape[0] != params.batch_size:
        raise ValueError(
            f"targets must have shape ({params.batch_size}, K), got {tuple(targets.shape)}"
        )
    return ops.mix_targets(targets, params.label_lam, params.perm)


@functools.lru_cache(maxsize=64)
def _smoothed_pair(num_classes: int, smoothing: float) -> tuple[float, float]:
    """(on, off): the float32 values ``ops.smooth`` gives a one-hot row's class and the other
    classes, computed by ops.smooth itself so the C kernel uses its exact bytes."""
    row = ops.smooth(ops.one_hot(torch.zeros(1, dtype=torch.long), num_classes), smoothing)[0]
    return float(row[0]), float(row[1]) if num_classes > 1 else 0.0


def mix_class_ids(
    params: MixParams, labels: Tensor, num_classes: int, smoothing: float = 0.0
) -> Tensor | None:
    """``apply_targets(params, smooth(one_hot(labels)))`` in one C call for (B,) int64 class
    ids on the CPU (the same bytes: tests/test_fastpaths.py); None where the C kernels are
    off or the inputs are not of that form (the caller then takes the torch / numpy path).
    Raises ValueError for an id outside [0, num_classes)."""
    b = params.batch_size
    if not (
        _fast.NATIVE
        and labels.device.type == "cpu"
        and labels.dtype == torch.int64
        and labels.shape == (b,)
        and labels.is_contiguous()
        and params.lam.dtype == torch.float32
        and params.lam.is_contiguous()
        and params.kind.dtype == torch.int64
        and params.kind.is_contiguous()
        and params.perm.dtype == torch.int64
        and params.perm.is_contiguous()
    ):
        return None
    on, off = _smoothed_pair(num_classes, smoothing)
    out = torch.empty(b, num_classes)
    ptrs = (out.data_ptr(), labels.data_ptr(), params.perm.data_ptr(), params.lam.data_ptr())
    _fast._native.targets(*ptrs, params.kind.data_ptr(), b, num_classes, on, off)
    return out


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
    if Kind.BLEND in _present(params):
        raise ValueError(
            "masks: MixUp (BLEND) cannot mix integer class-id masks; "
            "pass (B, K, H, W) float probability maps instead"
        )
    if params.resize_mode != "nearest":  # class ids are never interpolated: nearest for maps
        params = params.replace(resize_mode="nearest")
    maps = masks.unsqueeze(1)
    return _mix(params, maps, torch.empty_like(maps), float(ignore_index)).squeeze(1)


def apply_boxes(params: MixParams, boxes: BoxBatch, min_visibility: float = 0.25) -> BoxBatch:
    """Mix detection boxes consistently with the images. boxes: ``BoxBatch`` of (B, N, 4)
    float xyxy pixels, (B, N) int64 labels, (B, N) bool valid. Returns a BoxBatch with 2N
    slots: the image's own boxes, then the partner's (dropped boxes: valid False, zeros).

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
    h, w = params.size
    x1, y1, x2, y2 = (xyxy[..., i] for i in range(4))
    ok = (0 <= x1) & (x1 <= x2) & (x2 <= w) & (0 <= y1) & (y1 <= y2) & (y2 <= h)
    if not bool((ok | ~valid.to(ok.device)).all()):
        raise ValueError(
            f"boxes.boxes must be xyxy pixels with 0 <= x1 <= x2 <= {w} and 0 <= y1 <= y2 <= {h} "
            "for every valid box (negative, oversized, flipped or NaN boxes found)"
        )
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
