"""Pure batched pixel ops. No randomness: every op takes its parameters explicitly.

Conventions (all ops):
    images: (B, C, H, W) float or uint8, any device, any memory format; never mutated
        unless asked (``out=`` writes the result into that tensor, ``inplace=True`` into
        ``images``).
    perm:   (B,) int64 partner index: ``images[perm[i]]`` is mixed into ``images[i]``.
    boxes:  (B, 4) int64 ``x1, y1, x2, y2`` pixel boxes with exclusive ends, inside the image.
    lam:    (B,) fraction of sample i that stays from ``images[i]``.
The region taken from the partner is always where the returned mask is True. Each op is a
few whole-batch kernels (``index_select``, ``where``, ``gather``, elementwise arithmetic);
index and value checks on CPU tensors raise ``ValueError``, on other devices they run as
``torch._assert_async`` (``ops.checks``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mixkit.ops.checks import require

RESIZE_MODES = ("nearest", "bilinear")


def check_images(images: Tensor, name: str = "images") -> None:
    if not isinstance(images, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(images)}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(images.shape)}")
    if not (images.is_floating_point() or images.dtype == torch.uint8):
        raise ValueError(f"{name} must be a float or uint8 tensor, got {images.dtype}")


def _check_vector(t: Tensor, batch: int, name: str) -> None:
    if not isinstance(t, Tensor) or t.ndim != 1 or t.shape[0] != batch:
        got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{name} must have shape ({batch},) to match the batch, got {got}")


def check_boxes(boxes: Tensor, batch: int, height: int, width: int) -> None:
    """Region boxes: (B, 4) integer xyxy with 0 <= x1 <= x2 <= W and 0 <= y1 <= y2 <= H."""
    if boxes.shape != (batch, 4) or boxes.is_floating_point() or boxes.dtype == torch.bool:
        raise ValueError(
            f"boxes must be an integer tensor of shape ({batch}, 4), got {boxes.dtype} "
            f"{tuple(boxes.shape)}"
        )
    x1, y1, x2, y2 = boxes.unbind(1)
    ok = (0 <= x1) & (x1 <= x2) & (x2 <= width) & (0 <= y1) & (y1 <= y2) & (y2 <= height)
    require(
        ok,
        f"boxes must satisfy 0 <= x1 <= x2 <= {width} and 0 <= y1 <= y2 <= {height} "
        "(negative or oversized box)",
    )


def check_perm(perm: Tensor, batch: int) -> None:
    _check_vector(perm, batch, "perm")
    if perm.is_floating_point() or perm.dtype == torch.bool:
        raise ValueError(f"perm must be an integer tensor, got {perm.dtype}")
    require((perm >= 0) & (perm < batch), f"perm must hold indices in [0, {batch})")


def _partners(images: Tensor, perm: Tensor) -> Tensor:
    """``images[perm]`` (B, C, H, W) after checking ``perm`` (B,) int64 indices into the batch."""
    check_perm(perm, images.shape[0])
    return images.index_select(0, perm.to(images.device, non_blocking=True))


def destination(images: Tensor, out: Tensor | None, inplace: bool) -> Tensor | None:
    """Where a result is written: ``images`` (inplace), ``out`` (checked), or None (new)."""
    if inplace:
        if out is not None:
            raise ValueError("pass either out= or inplace=True, not both")
        return images
    if out is None:
        return None
    if (
        not isinstance(out, Tensor)
        or out.shape != images.shape
        or out.dtype != images.dtype
        or out.device != images.device
    ):
        got = (
            f"shape {tuple(out.shape)}, dtype {out.dtype}, device {out.device}"
            if isinstance(out, Tensor)
            else type(out).__name__
        )
        raise ValueError(
            f"out must match images (shape {tuple(images.shape)}, dtype {images.dtype}, "
            f"device {images.device}), got {got}"
        )
    return out


def lerp_exact(x: Tensor, source: Tensor, w: Tensor, out: Tensor | None = None) -> Tensor:
    """``(1 - w) * x + w * source`` for float tensors, as ATen's lerp formula
    ``w < 0.5 ? x + w*(s - x) : s - (s - x)*(1 - w)`` with every op rounded on its own: the
    same bytes on every CPU, on CUDA and under ``torch.compile`` (``torch.lerp``'s vector
    kernels fuse multiply-adds where the hardware has them). ``w`` broadcasts against x."""
    small = w < 0.5
    base = torch.where(small, x, source)
    coef = torch.where(small, w, w - 1)  # s + (w - 1)(s - x) = s - (1 - w)(s - x), exactly
    step = (source - x).mul_(coef)
    return torch.add(base, step, out=out) if out is not None else base.add_(step)


def round_blend(x: Tensor, source: Tensor, w: Tensor, out: Tensor | None = None) -> Tensor:
    """uint8 blend ``round(x*(1-w) + s*w)`` in float32 (w float32, broadcastable)."""
    mixed = (x.float() * (1 - w)).add_(source.float() * w).round_()
    return out.copy_(mixed) if out is not None else mixed.to(x.dtype)


def box_mask(boxes: Tensor, height: int, width: int, device: torch.device | None = None) -> Tensor:
    """Boolean mask of each box. boxes (B, 4) int64 xyxy -> (B, 1, H, W) bool."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (B, 4), got {tuple(boxes.shape)}")
    device = boxes.device if device is None else device
    boxes = boxes.to(device, non_blocking=True)
    ys = torch.arange(height, device=device)
    xs = torch.arange(width, device=device)
    rows = (ys >= boxes[:, 1:2]) & (ys < boxes[:, 3:4])  # (B, H)
    cols = (xs >= boxes[:, 0:1]) & (xs < boxes[:, 2:3])  # (B, W)
    return (rows[:, :, None] & cols[:, None, :]).unsqueeze(1)


_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def select(region: Tensor, source: Tensor | float, images: Tensor, dst: Tensor | None) -> Tensor:
    """``where(region, source, images)`` (region bool broadcastable to images), written into
    ``dst`` when given (each output element reads only its own position, so ``dst`` may be
    ``images``). Computed on the bit patterns, ``x ^ ((x ^ s) & -region)``: exact for every
    value (NaN, -0.0), vectorised on the CPU where ``torch.where`` runs a slow scalar loop,
    and fused into one kernel under ``torch.compile``."""
    if not isinstance(source, Tensor):
        source = torch.full((), source, dtype=images.dtype, device=images.device)
    bits = _BITS[images.element_size()]
    xb, sb = images.view(bits), source.to(images.dtype).view(bits)
    keep = region.to(bits).neg_()  # all bits set where the source is taken
    mixed = torch.bitwise_xor(xb, sb).bitwise_and_(keep)
    if dst is None:
        return mixed.bitwise_xor_(xb).view(images.dtype)
    torch.bitwise_xor(mixed, xb, out=dst.view(bits))
    return dst


def blend(
    images: Tensor,
    source: Tensor,
    weight: Tensor,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """``(1 - weight) * images + weight * source`` with a weight broadcastable to (B,1,H,W).

    A boolean weight selects pixels (an exact copy of ``source`` cast to the images' dtype);
    a float weight interpolates (``lerp_exact`` for float images; uint8:
    ``round(x*(1-w) + s*w)`` in float32). source: broadcastable to images.
    """
    check_images(images)
    dst = destination(images, out, inplace)
    w = weight.to(images.device, non_blocking=True)
    if w.ndim < 4:
        w = w.reshape((1,) * (4 - w.ndim) + tuple(w.shape))
    source = source.to(device=images.device, dtype=images.dtype)
    if w.dtype == torch.bool:
        return select(w, source, images, dst)
    if images.is_floating_point():
        return lerp_exact(images, source, w.to(images.dtype), dst)
    return round_blend(images, source, w.float(), dst)


def blend_weight(lam: Tensor, images: Tensor) -> Tensor:
    """(B, 1, 1, 1) weight ``1 - lam`` of the partner, on the images' device: computed in
    float32 (float64 for float64 images), then cast to the images' dtype (uint8: float32)."""
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    w = 1 - lam.to(images.device, dtype, non_blocking=True)
    if images.is_floating_point():
        w = w.to(images.dtype)
    return w.view(-1, 1, 1, 1)


def mixup(
    images: Tensor,
    lam: Tensor,
    perm: Tensor,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """MixUp (Zhang et al. 2018): ``lam[i]*x[i] + (1-lam[i])*x[perm[i]]``. (B,C,H,W) -> same.

    ``blend`` of the partners with ``w = 1 - lam`` (``lerp_exact``; uint8:
    ``round(x*(1-w) + x[perm]*w)`` in float32)."""
    check_images(images)
    _check_vector(lam, images.shape[0], "lam")
    require((lam >= 0) & (lam <= 1), "lam must lie in [0, 1] (no NaN)")
    partner = _partners(images, perm)
    return blend(images, partner, blend_weight(lam, images), out=out, inplace=inplace)


def paste_region(
    images: Tensor,
    source: Tensor,
    boxes: Tensor,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """Copy ``source[i, :, y1:y2, x1:x2]`` into ``images[i]`` at the same place.

    images, source (B, C, H, W) of one shape; boxes (B, 4) int64 -> (B, C, H, W)."""
    check_images(images)
    if source.shape != images.shape:
        raise ValueError(
            f"source must match images {tuple(images.shape)}, got {tuple(source.shape)}"
        )
    b, _, h, w = images.shape
    check_boxes(boxes, b, h, w)
    dst = destination(images, out, inplace)
    source = source.to(device=images.device, dtype=images.dtype)
    return select(box_mask(boxes, h, w, images.device), source, images, dst)


def cutmix(
    images: Tensor,
    boxes: Tensor,
    perm: Tensor,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """CutMix (Yun et al. 2019): paste the partner's pixels inside each box.

    images (B, C, H, W) float or uint8, boxes (B, 4) int64 xyxy, perm (B,) int64 ->
    (B, C, H, W) of the images' dtype: ``paste_region`` of the partners."""
    check_images(images)
    return paste_region(images, _partners(images, perm), boxes, out=out, inplace=inplace)


def _nearest_index(n_dst: int, start: Tensor, length: Tensor, n_src: int) -> Tensor:
    """Source index of a nearest resize from ``n_src`` to ``length`` for dst positions
    ``0..n_dst-1`` placed at ``start``: ``F.interpolate(mode="nearest")``'s
    ``min(floor(i * (in/out)), in-1)`` in float32. start, length (B,) -> (B, n_dst) int64
    (clamped into range outside the box)."""
    i = torch.arange(n_dst, device=start.device)
    scale = float(n_src) / length.clamp_min(1).to(torch.float32)
    offset = (i[None, :] - start[:, None]).clamp_min(0).to(torch.float32)
    return torch.floor(offset * scale[:, None]).long().clamp(0, n_src - 1)


def _bilinear_axis(n_dst: int, start: Tensor, length: Tensor, n_src: int):
    """Source taps of ``F.interpolate(mode="bilinear", align_corners=False)`` from ``n_src``
    to ``length`` placed at ``start``: the coordinate ``(i - start + 0.5) * in/out - 0.5``
    clamped at 0, its floor ``i0``, ``i1 = min(i0 + 1, in - 1)`` and the weight of ``i1``.
    start, length (B,) -> (B, n_dst) int64, int64, float32."""
    i = torch.arange(n_dst, device=start.device, dtype=torch.float32)
    scale = n_src / length.clamp_min(1).to(torch.float32)
    src = ((i[None, :] - start[:, None].float() + 0.5) * scale[:, None] - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(n_src - 1)
    return i0, (i0 + 1).clamp_max(n_src - 1), src - i0


def _gather(flat: Tensor, rows: Tensor, cols: Tensor, ws: int) -> Tensor:
    """flat (B, C, Hs*Ws) at rows (B, H) x cols (B, W) -> (B, C, H, W)."""
    b, c, _ = flat.shape
    index = (rows[:, :, None] * ws + cols[:, None, :]).view(b, 1, -1).expand(b, c, -1)
    return flat.gather(2, index).view(b, c, rows.shape[1], cols.shape[1])


def resize_into_boxes(
    source: Tensor, boxes: Tensor, size: tuple[int, int], mode: str = "nearest"
) -> Tensor:
    """Resize each ``source[i]`` (B, C, Hs, Ws) to its box and place it on an HxW canvas.

    Pixels outside the box are unspecified (combine with ``box_mask``). ``nearest`` equals
    ``F.interpolate(source[i:i+1], size=box_hw, mode="nearest")`` pixel for pixel and keeps
    the dtype (use it for label maps); ``bilinear`` matches ``F.interpolate(...,
    mode="bilinear", align_corners=False)`` up to float rounding. Returns (B, C, H, W).
    """
    height, width = size
    b, c, hs, ws = source.shape
    x1, y1, x2, y2 = boxes.to(source.device, non_blocking=True).unbind(1)
    if mode == "nearest":
        sy = _nearest_index(height, y1, y2 - y1, hs)
        sx = _nearest_index(width, x1, x2 - x1, ws)
        index = (sy[:, :, None] * ws + sx[:, None, :]).view(b, 1, height * width).expand(b, c, -1)
        return source.reshape(b, c, hs * ws).gather(2, index).view(b, c, height, width)
    if mode == "bilinear":
        # Four gathers and separately rounded products (not grid_sample): the same bytes
        # eager, compiled and on every device.
        r0, r1, wy = _bilinear_axis(height, y1, y2 - y1, hs)
        c0, c1, wx = _bilinear_axis(width, x1, x2 - x1, ws)
        flat = source.reshape(b, c, hs * ws)
        if not source.is_floating_point():
            flat = flat.float()
        wy, wx = wy.to(flat.dtype)[:, None, :, None], wx.to(flat.dtype)[:, None, None, :]
        top = lerp_exact(_gather(flat, r0, c0, ws), _gather(flat, r0, c1, ws), wx)
        bottom = lerp_exact(_gather(flat, r1, c0, ws), _gather(flat, r1, c1, ws), wx)
        res = lerp_exact(top, bottom, wy)
        return res if source.is_floating_point() else res.round_().clamp_(0, 255).to(source.dtype)
    raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")


def resize_paste(
    images: Tensor,
    source: Tensor,
    boxes: Tensor,
    mode: str = "nearest",
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """Paste the whole ``source[i]`` (B, C, Hs, Ws; any size) resized into box i of images[i]
    (B, C, H, W); boxes (B, 4) int64 -> (B, C, H, W). ``resize_into_boxes`` + a box select."""
    check_images(images)
    check_images(source, "source")
    if source.shape[:2] != images.shape[:2]:
        raise ValueError(
            f"source must have the batch and channels of images {tuple(images.shape[:2])}, "
            f"got {tuple(source.shape[:2])}"
        )
    b, _, h, w = images.shape
    check_boxes(boxes, b, h, w)
    if mode not in RESIZE_MODES:
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    dst = destination(images, out, inplace)
    source = source.to(device=images.device, dtype=images.dtype)
    resized = resize_into_boxes(source, boxes, (h, w), mode)
    return select(box_mask(boxes, h, w, images.device), resized, images, dst)


def resizemix(
    images: Tensor,
    boxes: Tensor,
    perm: Tensor,
    mode: str = "nearest",
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """ResizeMix (Qin et al. 2020): paste the whole partner image, resized, into each box.
    images (B, C, H, W) float or uint8, boxes (B, 4) int64, perm (B,) int64 -> same:
    ``resize_paste`` of the partners."""
    check_images(images)
    return resize_paste(images, _partners(images, perm), boxes, mode, out=out, inplace=inplace)


def cutout(
    images: Tensor,
    boxes: Tensor,
    value: float = 0.0,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """Cutout (DeVries & Taylor 2017): fill each box with ``value``.

    images (B, C, H, W) float or uint8, boxes (B, 4) int64 xyxy -> (B, C, H, W), same dtype."""
    check_images(images)
    b, _, h, w = images.shape
    check_boxes(boxes, b, h, w)
    dst = destination(images, out, inplace)
    return select(box_mask(boxes, h, w, images.device), float(value), images, dst)


def check_mask(mask: Tensor, shape: tuple[int, int, int]) -> None:
    """A (B, H, W) bool region mask, else one ValueError."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != shape:
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask)
        raise ValueError(f"mask must be a bool tensor of shape {shape}, got {got}")


def mask_mix(
    images: Tensor,
    mask: Tensor,
    perm: Tensor,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """Take the partner's pixels where ``mask`` (B, H, W) bool is True (ClassMix, FMix).

    images (B, C, H, W), perm (B,) int64 -> (B, C, H, W): ``blend`` of the partners with the
    mask as a boolean weight."""
    check_images(images)
    b, _, h, w = images.shape
    check_mask(mask, (b, h, w))
    partner = _partners(images, perm)
    return blend(images, partner, mask.unsqueeze(1), out=out, inplace=inplace)
