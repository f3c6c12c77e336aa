"""Deterministic application of one ``MixParams`` to images, targets, masks and boxes.

One params object gives mutually consistent outputs: the pixels a box/mask op takes from
the partner are exactly the mask pixels taken from the partner's mask and the region used
to clip/drop boxes; ``lam`` is the exact kept pixel fraction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from mixkit import ops
from mixkit.augment.params import Kind, MixParams
from mixkit.ops import checks, pixels


class BoxBatch(NamedTuple):
    """Detection boxes of a batch, padded to N per image.

    boxes: (B, N, 4) float xyxy pixels; labels: (B, N) int64; valid: (B, N) bool.
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor


Kernel = Callable[..., Tensor]


def keep_type(out: Tensor, like: Tensor) -> Tensor:
    """``out`` as the tensor subclass of ``like`` (e.g. torchvision ``tv_tensors.Image`` /
    ``Video`` / ``Mask`` / ``BoundingBoxes``), same shape and dtype as ``out``; plain
    tensors pass through. torchvision's own types go through ``tv_tensors.wrap(out,
    like=like)`` (torchvision ``tv_tensors/__init__.py::wrap``, imported only then); any
    other subclass through ``out.as_subclass`` with ``like``'s attributes (its metadata, as
    ``wrap`` copies a box format and canvas size)."""
    cls = type(like)
    if cls is Tensor or type(out) is cls or not isinstance(like, Tensor):
        return out
    if cls.__module__.startswith("torchvision."):
        try:
            from torchvision import tv_tensors
        except ImportError:  # a pickled tv_tensor without torchvision: the fallback below
            pass
        else:
            if isinstance(like, tv_tensors.TVTensor):
                return tv_tensors.wrap(out, like=like)
    wrapped = out.as_subclass(cls)
    wrapped.__dict__.update(getattr(like, "__dict__", {}))
    return wrapped


_BOX_KINDS = (int(Kind.CROP), int(Kind.RESIZE), int(Kind.FILL))
_REGION_KINDS = frozenset((*_BOX_KINDS, int(Kind.MASK)))


def _is(kind: Tensor, *kinds: int) -> Tensor:
    """(B, 1, 1, 1) bool: sample i's kind is one of ``kinds`` (kind on the images' device)."""
    out = kind == kinds[0]
    for k in kinds[1:]:
        out = out | (kind == k)
    return out.view(-1, 1, 1, 1)


def mix_tensors(
    x: Tensor,
    kind: Tensor,
    lam: Tensor,
    perm: Tensor,
    boxes: Tensor,
    mask: Tensor | None,
    kinds: tuple[int, ...],
    fill: float | tuple[float, ...],
    resize_mode: str,
    source: Tensor | None = None,
    dst: Tensor | None = None,
) -> Tensor:
    """The apply kernel: mix ``x`` (B, C, H, W) float/uint8 images, or (B, 1, H, W) integer
    maps, with one draw. kind (B,) int64, lam (B,) float, perm (B,) int64, boxes (B, 4) int64
    and mask (B, H, W) bool live on x's device; ``kinds`` (the kinds present, read on the
    host), ``fill`` and ``resize_mode`` are static. Region pixels -- the box of CROP/RESIZE/
    FILL samples, ``mask`` of MASK samples -- come from the partner ``x[perm]`` (RESIZE: the
    partner resized into the box, FILL: ``fill``); BLEND samples are ``lerp_exact(x,
    x[perm], 1 - lam)``. ``source`` replaces ``x[perm]`` (RecursiveMix's history). A few
    whole-batch kernels, no host reads: the function ``mixkit.compile`` compiles.
    """
    present = frozenset(kinds) - {int(Kind.NONE)}
    if not present:
        return x.clone() if dst is None else dst.copy_(x)
    h, w = x.shape[-2:]
    partner = None
    if present - {int(Kind.FILL)}:
        partner = x.index_select(0, perm) if source is None else source
    blend_only = present == {int(Kind.BLEND)}
    out = x
    if present & _REGION_KINDS:
        region = None
        if present & set(_BOX_KINDS):
            in_box = _is(kind, *_BOX_KINDS).view(-1, 1)
            region = ops.box_mask(boxes * in_box, h, w)
        if int(Kind.MASK) in present:
            by_mask = mask.unsqueeze(1) & _is(kind, int(Kind.MASK))
            region = by_mask if region is None else region | by_mask
        src = partner
        if int(Kind.RESIZE) in present:
            resized = ops.resize_into_boxes(partner, boxes, (h, w), resize_mode)
            only = present == {int(Kind.RESIZE)}
            src = (
                resized
                if only
                else pixels.select(_is(kind, int(Kind.RESIZE)), resized, partner, None)
            )
        if int(Kind.FILL) in present:
            value = _fill_value(fill, x)
            src = (
                value if src is None else pixels.select(_is(kind, int(Kind.FILL)), value, src, None)
            )
        if int(Kind.BLEND) in present:  # the blend below still reads the partner
            out = pixels.select(region, src, x, None)
        else:  # our own partner copy can take the result: one batch allocated in all
            own = dst is None and source is None and src is partner
            out = pixels.select(region, src, x, partner if own else dst)
    if int(Kind.BLEND) in present:
        weight = pixels.blend_weight(lam, x)
        if not x.is_floating_point():
            blended = pixels.round_blend(x, partner, weight, dst if blend_only else None)
        elif source is None:
            blended = _blend_rows(x, perm, partner, weight, dst if blend_only else None)
        else:  # RecursiveMix's history: not ours to overwrite
            blended = pixels.lerp_exact(x, partner, weight, dst if blend_only else None)
        if blend_only:
            return blended
        out = pixels.select(_is(kind, int(Kind.BLEND)), blended, out, dst)
    return out


def _blend_rows(x: Tensor, perm: Tensor, partner: Tensor, w: Tensor, dst: Tensor | None) -> Tensor:
    """``pixels.lerp_exact(x, x[perm], w)`` for a per-sample weight w (B, 1, 1, 1), the same
    ops and bytes, with the per-sample choice of the formula's base (x[i] or x[perm[i]])
    made by indexing rows instead of a broadcast ``where`` (a slow scalar loop on the CPU);
    ``partner`` (our own ``x[perm]`` copy) becomes the step."""
    small = w.view(-1) < 0.5
    rows = torch.where(small, torch.arange(x.shape[0], device=x.device), perm)
    base = x.index_select(0, rows)
    coef = torch.where(small, w.view(-1), w.view(-1) - 1).view(-1, 1, 1, 1)
    step = partner.sub_(x).mul_(coef)
    return torch.add(base, step, out=dst) if dst is not None else base.add_(step)


def _fill_value(fill: float | tuple[float, ...], x: Tensor) -> Tensor:
    """The FILL value as a tensor broadcastable to x: a scalar, or (1, C, 1, 1)."""
    if isinstance(fill, tuple | list):
        if len(fill) != x.shape[1]:
            raise ValueError(f"fill has {len(fill)} values but the images {x.shape[1]} channels")
        return torch.tensor(fill, dtype=x.dtype).view(1, -1, 1, 1).to(x.device, non_blocking=True)
    return torch.full((), fill, dtype=x.dtype, device=x.device)


def apply_tensor(
    params: MixParams,
    x: Tensor,
    *,
    dst: Tensor | None = None,
    source: Tensor | None = None,
    kernel: Kernel = mix_tensors,
    fill: float | tuple[float, ...] | None = None,
) -> Tensor:
    """Run ``kernel`` on x with ``params`` moved to x's device (``non_blocking``).
    ``kernel`` is ``mix_tensors`` or its compiled form (then ``dst`` is filled by a copy)."""
    kinds = tuple(sorted(params.kinds()))
    if int(Kind.MASK) in kinds and params.mask is None:
        raise ValueError("params.mask is required for MASK samples")
    moved = params.to(x.device)
    kind = params.kind.to(x.device, non_blocking=True)
    fill = params.fill if fill is None else fill
    args = (x, kind, moved.lam, moved.perm, moved.boxes, moved.mask, kinds, fill)
    if kernel is mix_tensors:  # eager: write into dst directly
        return kernel(*args, params.resize_mode, source, dst)
    out = kernel(*args, params.resize_mode, source)
    return out if dst is None else dst.copy_(out)


def apply_images(
    params: MixParams,
    images: Tensor,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
    check_finite: bool = False,
    kernel: Kernel = mix_tensors,
    source: Tensor | None = None,
) -> Tensor:
    """Mix a batch of images (B, C, H, W) float or uint8 with ``params``; ``source``
    (B, C, Hs, Ws) replaces the partners ``images[perm]`` (RecursiveMix's history).

    Returns a new tensor; with ``out=`` the result is written into that preallocated tensor
    (same shape, dtype, device) and with ``inplace=True`` into ``images`` itself. Otherwise
    the input is never modified. ``check_finite``: ValueError when float CPU images hold NaN
    or Inf, raised before anything is written (not checked on other devices).
    """
    pixels.check_images(images)
    params.check(images.shape[0], tuple(images.shape[-2:]))
    dst = pixels.destination(images, out, inplace)
    if check_finite:
        checks.check_finite(images, "images")
    return apply_tensor(params, images, dst=dst, source=source, kernel=kernel)


def apply_targets(params: MixParams, targets: Tensor) -> Tensor:
    """Mix (B, K) float targets: ``label_lam * y + (1 - label_lam) * y[perm]``."""
    if targets.ndim != 2 or targets.shape[0] != params.batch_size:
        raise ValueError(
            f"targets must have shape ({params.batch_size}, K), got {tuple(targets.shape)}"
        )
    return ops.mix_targets(targets, params.label_lam, params.perm)


def apply_masks(
    params: MixParams, masks: Tensor, ignore_index: int = 255, *, kernel: Kernel = mix_tensors
) -> Tensor:
    """Mix segmentation masks consistently with the images.

    masks: (B, H, W) integer class ids (region kinds only; Cutout regions become
    ``ignore_index``), or (B, K, H, W) float probability maps (mixed like images; Cutout
    leaves them unchanged). Returns the same shape and dtype.
    """
    if masks.ndim == 4 and masks.is_floating_point():
        params.check(masks.shape[0], tuple(masks.shape[-2:]), "masks")
        if Kind.FILL in params.kinds():
            no_fill = params.kind == Kind.FILL
            params = params.replace(kind=params.kind.masked_fill(no_fill, int(Kind.NONE)))
        return apply_tensor(params, masks, kernel=kernel)
    if masks.ndim != 3 or masks.is_floating_point() or masks.dtype == torch.bool:
        raise ValueError(
            "masks must be an integer tensor (B, H, W) of class ids or a float tensor "
            f"(B, K, H, W) of probabilities, got {masks.dtype} {tuple(masks.shape)}"
        )
    params.check(masks.shape[0], tuple(masks.shape[-2:]), "masks")
    if Kind.BLEND in params.kinds():
        raise ValueError(
            "masks: MixUp (BLEND) cannot mix integer class-id masks; "
            "pass (B, K, H, W) float probability maps instead"
        )
    if params.resize_mode != "nearest":  # class ids are never interpolated: nearest for maps
        params = params.replace(resize_mode="nearest")
    maps = masks.unsqueeze(1)
    return apply_tensor(params, maps, kernel=kernel, fill=float(ignore_index)).squeeze(1)


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
    checks.require(
        ok | ~valid.to(ok.device),
        f"boxes.boxes must be xyxy pixels with 0 <= x1 <= x2 <= {w} and 0 <= y1 <= y2 <= {h} "
        "for every valid box (negative, oversized, flipped or NaN boxes found)",
    )
    device = xyxy.device
    kinds = params.kinds()
    kind = params.kind.to(device, non_blocking=True)[:, None]
    region = params.boxes.to(device, non_blocking=True)
    ones = torch.ones(xyxy.shape[:2], device=device)

    own_vis = torch.where(
        (kind == Kind.CROP) | (kind == Kind.RESIZE) | (kind == Kind.FILL),
        ops.visible_fraction_box(xyxy, region),
        ones,
    )
    perm = params.perm.to(device, non_blocking=True)
    p_xyxy, p_labels, p_valid = (t.index_select(0, perm) for t in (xyxy, labels, valid))
    p_out = p_xyxy
    p_inside = ones
    if Kind.CROP in kinds:
        clipped = ops.intersect_region(p_xyxy, region)
        inside = ops.box_areas(clipped) / ops.box_areas(p_xyxy).clamp_min(1e-12)
        p_out = torch.where(kind[..., None] == Kind.CROP, clipped, p_out)
        p_inside = torch.where(kind == Kind.CROP, inside, p_inside)
    if Kind.RESIZE in kinds:
        moved = ops.resize_boxes_into(p_xyxy, params.size, region)
        p_out = torch.where(kind[..., None] == Kind.RESIZE, moved, p_out)
    if Kind.MASK in kinds:
        mask = params.mask.to(device, non_blocking=True)
        own_vis = torch.where(kind == Kind.MASK, ops.visible_fraction_mask(xyxy, mask), own_vis)
        under = 1 - ops.visible_fraction_mask(p_xyxy, mask)
        p_inside = torch.where(kind == Kind.MASK, under, p_inside)
    has_partner = (kind != Kind.NONE) & (kind != Kind.FILL)
    own_keep = valid & (own_vis >= min_visibility)
    p_keep = p_valid & has_partner & (p_inside >= min_visibility) & (ops.box_areas(p_out) > 0)
    out_boxes = torch.cat([xyxy, p_out], 1) * torch.cat([own_keep, p_keep], 1)[..., None]
    return BoxBatch(out_boxes, torch.cat([labels, p_labels], 1), torch.cat([own_keep, p_keep], 1))
