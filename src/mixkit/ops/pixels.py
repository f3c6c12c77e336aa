"""Pure batched pixel ops. No randomness: every op takes its parameters explicitly.

Conventions (all ops):
    images: (B, C, H, W) float or uint8, any device, any memory format; never mutated
        unless ``out`` is given (then the result is written there and returned).
    perm:   (B,) int64 partner index: ``images[perm[i]]`` is mixed into ``images[i]``.
    boxes:  (B, 4) int64 ``x1, y1, x2, y2`` pixel boxes with exclusive ends, inside the image.
    lam:    (B,) fraction of sample i that stays from ``images[i]``.
The region taken from the partner is always where the returned mask is True.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mixkit.ops import _fast

__all__ = [
    "box_mask",
    "blend",
    "mixup",
    "paste_region",
    "cutmix",
    "resize_into_boxes",
    "resize_paste",
    "resizemix",
    "cutout",
    "mask_mix",
    "native_kernels",
]


def _check_images(images: Tensor, name: str = "images") -> None:
    if not isinstance(images, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(images)}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(images.shape)}")
    if not (images.is_floating_point() or images.dtype == torch.uint8):
        raise ValueError(f"{name} must be a float or uint8 tensor, got {images.dtype}")


def _check_batch_vector(t: Tensor, batch: int, name: str) -> None:
    if t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(
            f"{name} must have shape ({batch},) to match the batch, got {tuple(t.shape)}"
        )


def _check_boxes(boxes: Tensor, batch: int, height: int, width: int) -> None:
    """Region boxes: (B, 4) integer xyxy with 0 <= x1 <= x2 <= W and 0 <= y1 <= y2 <= H."""
    if boxes.shape != (batch, 4) or boxes.is_floating_point() or boxes.dtype == torch.bool:
        raise ValueError(
            f"boxes must be an integer tensor of shape ({batch}, 4), got {boxes.dtype} "
            f"{tuple(boxes.shape)}"
        )
    x1, y1, x2, y2 = boxes.unbind(1)
    ok = (0 <= x1) & (x1 <= x2) & (x2 <= width) & (0 <= y1) & (y1 <= y2) & (y2 <= height)
    if not bool(ok.all()):
        raise ValueError(
            f"boxes must satisfy 0 <= x1 <= x2 <= {width} and 0 <= y1 <= y2 <= {height} "
            "(negative or oversized box)"
        )


def _check_perm(perm: Tensor, batch: int) -> None:
    _check_batch_vector(perm, batch, "perm")
    if bool(((perm < 0) | (perm >= batch)).any()):
        raise ValueError(f"perm must hold indices in [0, {batch}), got {perm.tolist()}")


def box_mask(boxes: Tensor, height: int, width: int, device: torch.device | None = None) -> Tensor:
    """Boolean mask of each box. boxes (B, 4) int64 xyxy -> (B, 1, H, W) bool."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (B, 4), got {tuple(boxes.shape)}")
    device = boxes.device if device is None else device
    boxes = boxes.to(device)
    ys = torch.arange(height, device=device)
    xs = torch.arange(width, device=device)
    rows = (ys >= boxes[:, 1:2]) & (ys < boxes[:, 3:4])  # (B, H)
    cols = (xs >= boxes[:, 0:1]) & (xs < boxes[:, 2:3])  # (B, W)
    return (rows[:, :, None] & cols[:, None, :]).unsqueeze(1)


def blend(
    images: Tensor,
    source: Tensor,
    weight: Tensor,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """``(1 - weight) * images + weight * source`` with a weight broadcastable to (B,1,H,W).

    A boolean weight selects pixels (exact copy of ``source`` cast to images' dtype; for float
    images through ``lerp`` with a 0/1 weight, exact for finite values); a float weight
    interpolates (ATen's lerp formula ``w < 0.5 ? x + w*(s - x) : s - (s - x)*(1 - w)`` with
    every op rounded in the images' dtype, so the bytes do not depend on the CPU's FMA;
    uint8: ``round(x*(1-w) + s*w)`` in float32).
    """
    dst = _fast.destination(images, out, inplace)
    w = weight.to(images.device)
    if w.ndim < 4:
        w = w.reshape((1,) * (4 - w.ndim) + tuple(w.shape))
    select = w.dtype == torch.bool
    if select:
        w = w.view(torch.uint8).to(images.dtype, copy=True)
        if not images.is_floating_point():
            w = w.neg_()
        if source.dtype != images.dtype:
            source = source.to(images.dtype)
    else:
        w = w.to(images.dtype) if images.is_floating_point() else w.float()
    src = _fast.given_source(source.to(images.device), dst)
    per_sample = src.ndim == 4 and src.shape[0] == images.shape[0] and images.shape[0] > 1
    return _fast.mix_blocks(images, dst, w, select, lambda s, e: src[s:e] if per_sample else src)


def mixup(
    images: Tensor,
    lam: Tensor,
    perm: Tensor,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """MixUp (Zhang et al. 2018): ``lam[i]*x[i] + (1-lam[i])*x[perm[i]]``. (B,C,H,W) -> same.

    Computed with ``w = 1 - lam`` as ATen's lerp formula with every op rounded (see ``blend``;
    one C pass per sample on the CPU), without materialising ``x[perm]`` (uint8:
    ``round(x*(1-w) + x[perm]*w)`` in float32)."""
    _check_images(images)
    _check_batch_vector(lam, images.shape[0], "lam")
    if not bool(((lam >= 0) & (lam <= 1)).all()):
        raise ValueError(f"lam must lie in [0, 1] (no NaN), got {lam.tolist()}")
    _check_perm(perm, images.shape[0])
    return _fast.mixup_into(images, _fast.destination(images, out, inplace), lam, perm)


def paste_region(
    images: Tensor,
    source: Tensor,
    boxes: Tensor,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """Copy ``source[i, :, y1:y2, x1:x2]`` into ``images[i]`` at the same place.

    source: (B, C, H, W), same shape as images.
    """
    _check_images(images)
    if source.shape != images.shape:
        raise ValueError(
            f"source must match images {tuple(images.shape)}, got {tuple(source.shape)}"
        )
    h, w = images.shape[-2:]
    _check_boxes(boxes, images.shape[0], h, w)
    dst = _fast.destination(images, out, inplace)
    source = source.to(device=images.device, dtype=images.dtype)
    return _fast.paste_into(images, dst, boxes, None, source)


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
    (B, C, H, W) of the images' dtype. A box shared by the batch is a slice copy of the
    box only; per-sample boxes are a blocked select that never materialises ``x[perm]``."""
    _check_images(images)
    _check_perm(perm, images.shape[0])
    _check_boxes(boxes, images.shape[0], *images.shape[-2:])
    dst = _fast.destination(images, out, inplace)
    return _fast.paste_into(images, dst, boxes, perm, None)


def _nearest_source_index(dst: Tensor, start: Tensor, length: Tensor, src_size: int) -> Tensor:
    """Source index of nearest resize from ``src_size`` to ``length`` for dst positions.

    Matches ``F.interpolate(mode="nearest")``: ``min(floor(i * (in/out)), in-1)`` in float32.
    dst: (S,), start/length: (B,) -> (B, S) int64 (clamped into range outside the box).
    """
    scale = torch.tensor(
        float(src_size), dtype=torch.float32, device=dst.device
    ) / length.clamp_min(1).to(torch.float32)
    offset = (dst[None, :] - start[:, None]).clamp_min(0).to(torch.float32)
    return torch.floor(offset * scale[:, None]).long().clamp(0, src_size - 1)


def resize_into_boxes(
    source: Tensor, boxes: Tensor, size: tuple[int, int], mode: str = "nearest"
) -> Tensor:
    """Resize each ``source[i]`` (B, C, Hs, Ws) to its box and place it on an HxW canvas.

    Pixels outside the box are unspecified (combine with ``box_mask``). ``nearest`` equals
    ``F.interpolate(source[i:i+1], size=box_hw, mode="nearest")`` pixel for pixel and keeps
    the dtype (use it for label maps); ``bilinear`` matches ``F.interpolate(...,
    mode="bilinear", align_corners=False)`` up to float rounding. Vectorised: no loop over B.
    Returns (B, C, H, W).
    """
    height, width = size
    b, c, hs, ws = source.shape
    boxes = boxes.to(source.device)
    x1, y1, x2, y2 = boxes.unbind(1)
    if mode == "nearest":
        sy = _nearest_source_index(torch.arange(height, device=source.device), y1, y2 - y1, hs)
        sx = _nearest_source_index(torch.arange(width, device=source.device), x1, x2 - x1, ws)
        index = (sy[:, :, None] * ws + sx[:, None, :]).view(b, 1, height * width).expand(b, c, -1)
        flat = source.reshape(b, c, hs * ws)
        return flat.gather(2, index).view(b, c, height, width)
    if mode == "bilinear":
        # Source coordinate (align_corners=False): (i - start + 0.5) * in/out - 0.5, then to
        # grid_sample's normalised [-1, 1] frame; border padding clamps like interpolate.
        def axis(n_dst: int, start: Tensor, length: Tensor, n_src: int) -> Tensor:
            i = torch.arange(n_dst, device=source.device, dtype=torch.float32)
            scale = n_src / length.clamp_min(1).to(torch.float32)
            src = ((i[None, :] - start[:, None].float() + 0.5) * scale[:, None] - 0.5).clamp_min(0)
            return (src + 0.5) / n_src * 2 - 1

        gy = axis(height, y1, y2 - y1, hs)
        gx = axis(width, x1, x2 - x1, ws)
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
        src = source if source.is_floating_point() else source.float()
        res = F.grid_sample(
            src, grid.to(src.dtype), mode="bilinear", padding_mode="border", align_corners=False
        )
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
    """Paste the whole ``source[i]`` (B, C, Hs, Ws; any size) resized into box i of images[i].

    The primitive behind ResizeMix and RecursiveMix. Equals ``resize_into_boxes`` + a box
    select; a box shared by the batch (nearest) resizes only the box, per-sample boxes run
    block by block.
    """
    _check_images(images)
    _check_images(source, "source")
    if source.shape[:2] != images.shape[:2]:
        raise ValueError(
            f"source must have the batch and channels of images {tuple(images.shape[:2])}, "
            f"got {tuple(source.shape[:2])}"
        )
    h, w = images.shape[-2:]
    _check_boxes(boxes, images.shape[0], h, w)
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    dst = _fast.destination(images, out, inplace)
    return _fast.resize_into(images, dst, boxes, mode, None, source.to(images.device))


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

    images (B, C, H, W) float or uint8, boxes (B, 4) int64 xyxy, perm (B,) int64 ->
    (B, C, H, W) of the images' dtype."""
    _check_images(images)
    _check_perm(perm, images.shape[0])
    _check_boxes(boxes, images.shape[0], *images.shape[-2:])
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    dst = _fast.destination(images, out, inplace)
    return _fast.resize_into(images, dst, boxes, mode, perm, None)


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
    _check_images(images)
    h, w = images.shape[-2:]
    _check_boxes(boxes, images.shape[0], h, w)
    return _fast.fill_into(images, _fast.destination(images, out, inplace), boxes, value)


def mask_mix(
    images: Tensor,
    mask: Tensor,
    perm: Tensor,
    *,
    out: Tensor | None = None,
    inplace: bool = False,
) -> Tensor:
    """Take the partner's pixels where ``mask`` (B, H, W) bool is True (ClassMix, FMix)."""
    _check_images(images)
    b, _, h, w = images.shape
    _fast.check_mask(mask, (b, h, w))
    _check_perm(perm, b)
    return _fast.mask_into(images, _fast.destination(images, out, inplace), mask, perm)


def native_kernels() -> bool:
    """True when the optional C kernels are in use: CutMix / ``paste_region``, nearest
    ResizeMix / ``resize_paste``, Cutout, ``mask_mix`` (ClassMix, FMix), integer label maps
    and uint8 MixUp on contiguous CPU tensors. ``pip install`` builds them when a C compiler
    is present; ``MIXKIT_NATIVE=0`` turns them off. Either way the results are the same bytes
    (the pure-torch paths are the fallback)."""
    return _fast.NATIVE
