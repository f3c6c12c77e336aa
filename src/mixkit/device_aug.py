"""Batched augmentation that runs on the images' device, plus the host-to-device hop.

Every random draw is a torch op on a CPU ``torch.Generator`` (as the mixers do, see
``mixkit.ops.sampling``): the same seed gives the same parameters on every device, and only
the finished, small parameter tensors travel to the images' device (``non_blocking=True``).
The pixel work is then pure tensor ops on that device, with no Python loop over the batch
and no device-to-host read, so it also runs on ``device="meta"``.

- CIFAR training: :func:`random_crop_flip` (zero-pad 4, random crop, horizontal flip).
- ImageNet training: :func:`random_resized_crop_flip` (:func:`rrc_params` +
  :func:`resized_crop` + flip); evaluation: :func:`resize_center_crop`.
- :func:`to_float` normalises on the device; :func:`to_device` moves a batch.
- :func:`device_transform` bundles one of these pipelines as ``fn(x, generator) -> float``.

Resizing is separable: per sample, an (out, in) weight matrix per axis, applied with
``einsum``. The weights are the triangle (bilinear) filter, widened by the down-scaling
factor when ``antialias`` (PIL's and torch's ``interpolate(..., antialias=True)`` rule), and
restricted to the crop, so one sample's result equals ``F.interpolate`` of its crop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "center_crop",
    "device_transform",
    "random_crop_flip",
    "random_resized_crop_flip",
    "resize_center_crop",
    "to_device",
    "to_float",
]

# The ImageNet channel statistics used by torchvision's and timm's presets
# (torchvision references/classification/presets.py, timm timm/data/constants.py).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_4d(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be (B, C, H, W), got shape {shape}")


def _check_images(x: Tensor) -> None:
    _check_4d(x)
    if not (x.dtype == torch.uint8 or x.is_floating_point()):
        raise ValueError(f"x must be uint8 or floating point, got {x.dtype}")


def _cpu_generator(generator: torch.Generator | None) -> None:
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")


def _size2(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in hw):
        raise ValueError(f"{name} must be an int >= 1 or (height, width), got {size!r}")
    return int(hw[0]), int(hw[1])


def to_device(batch: Any, device: str | torch.device, *, pin: bool | None = None) -> Any:
    """Move every tensor of ``batch`` (tensor, or tuple / list / dict of them, nested) to
    ``device`` with ``non_blocking=True``. ``pin`` (default: when ``device`` is CUDA) first
    page-locks CPU tensors that are not pinned yet (a DataLoader with ``pin_memory=True``
    already did), so the copy really overlaps. Other leaves are returned unchanged."""
    device = torch.device(device)
    pin = device.type == "cuda" if pin is None else bool(pin)

    def move(v: Any) -> Any:
        if isinstance(v, Tensor):
            if pin and v.device.type == "cpu" and not v.is_pinned():
                v = v.pin_memory()
            return v.to(device, non_blocking=True)
        if isinstance(v, tuple) and hasattr(v, "_fields"):  # namedtuple
            return type(v)(*(move(u) for u in v))
        if isinstance(v, (list, tuple)):
            return type(v)(move(u) for u in v)
        if isinstance(v, dict):
            return {k: move(u) for k, u in v.items()}
        return v

    return move(batch)


def to_float(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 (B, C, H, W) -> new float32 ``(x/255 - mean) / std`` on ``x``'s device (float
    input is taken as 0..255 too). ``mean`` / ``std``: C values (or 1, broadcast)."""
    _check_images(x)
    c = x.shape[1]
    for name, v in (("mean", mean), ("std", std)):
        if len(v) not in (1, c):
            raise ValueError(f"{name} must have 1 or {c} values (the channels), got {len(v)}")
    m = torch.tensor(tuple(mean), dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(tuple(std), dtype=torch.float32).view(1, -1, 1, 1)
    m, s = m.to(x.device, non_blocking=True), s.to(x.device, non_blocking=True)
    return x.to(torch.float32).div(255).sub_(m).div_(s)  # div makes a copy: x is not touched


def random_crop_flip(
    x: Tensor,
    pad: int,
    generator: torch.Generator | None = None,
    per_sample: bool = True,
    flip: bool = True,
) -> Tensor:
    """Zero-pad by ``pad`` and take a random HxW crop, then a random horizontal flip,
    vectorised with one gather (CIFAR: pad 4, clovaai/CutMix-PyTorch train.py).
    ``per_sample=False`` draws one offset/flip for the batch (the official KD code's
    behaviour). Draws, in order: dy (n,), dx (n,) in [0, 2*pad], then flip coins (n,), on
    the generator's device. x: (B, C, H, W) of any dtype (uint8, float, int64 masks);
    returns a new tensor like x."""
    _check_4d(x)
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    b, _, h, w = x.shape
    n = b if per_sample else 1
    gdev = generator.device if generator is not None else "cpu"
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gdev)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gdev)
    fl = torch.rand(n, generator=generator, device=gdev) < 0.5 if flip else None
    dy, dx = dy.to(x.device, non_blocking=True), dx.to(x.device, non_blocking=True)
    fl = fl.to(x.device, non_blocking=True) if fl is not None else None
    if n == 1 and b != 1:
        dy, dx = dy.expand(b), dx.expand(b)
        fl = fl.expand(b) if fl is not None else None
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None]).view(b, 1, h, 1)
    cols = torch.arange(w, device=x.device)[None].expand(b, w)
    if fl is not None:
        cols = torch.where(fl[:, None], w - 1 - cols, cols)
    cols = (dx[:, None] + cols).view(b, 1, 1, w)
    c = x.shape[1]
    xp = xp.gather(2, rows.expand(b, c, h, w + 2 * pad).contiguous())
    return xp.gather(3, cols.expand(b, c, h, w).contiguous())


def hflip(x: Tensor, flags: Tensor) -> Tensor:
    """New (B, C, H, W) tensor: sample i mirrored left-right where ``flags[i]`` (bool (B,),
    any device; moved with ``non_blocking``), else copied unchanged."""
    _check_4d(x)
    if flags.shape != (x.shape[0],) or flags.dtype != torch.bool:
        got = f"{flags.dtype} {tuple(flags.shape)}"
        raise ValueError(f"flags must be ({x.shape[0]},) bool, got {got}")
    f = flags.to(x.device, non_blocking=True).view(-1, 1, 1, 1)
    return torch.where(f, x.flip(-1), x)


def rrc_params(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    attempts: int = 10,
) -> Tensor:
    """Random-resized-crop boxes for ``n`` images of ``height`` x ``width``: (n, 4) int64 CPU
    rows ``(top, left, h, w)``.

    Semantics of ``RandomResizedCrop.get_params`` (pytorch/vision
    torchvision/transforms/transforms.py): per attempt, area fraction ~ U(scale), log
    aspect ~ U(log ratio), ``w = round(sqrt(A*f*r))``, ``h = round(sqrt(A*f/r))`` (round
    half to even, as Python's ``round``); the first of
    ``attempts`` (10) draws with ``0 < w <= width`` and ``0 < h <= height`` wins and its
    offset is uniform over the valid positions. If none fits: a centred crop of the whole
    image, its aspect clamped into ``ratio`` (``h = round(w / min(ratio))`` when too tall,
    ``w = round(h * max(ratio))`` when too wide; offsets ``(H - h) // 2``, ``(W - w) // 2``).

    Vectorised: all attempts are drawn at once, so the stream differs from torchvision's
    (same distribution). Draws, float64 on the CPU generator: area fractions (n, attempts),
    log ratios (n, attempts), then offset uniforms (n, 2), always all of them.
    """
    _cpu_generator(generator)
    for name, v in (("n", n), ("height", height), ("width", width), ("attempts", attempts)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "n" else 1):
            raise ValueError(f"{name} must be an int >= {0 if name == 'n' else 1}, got {v!r}")
    for name, (lo, hi) in (("scale", scale), ("ratio", ratio)):
        if not (0 < lo <= hi):
            raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}")
    area = float(height * width)
    frac = scale[0] + (scale[1] - scale[0]) * torch.rand(
        n, attempts, dtype=torch.float64, generator=generator
    )
    lo_r, hi_r = math.log(ratio[0]), math.log(ratio[1])
    log_r = torch.rand(n, attempts, dtype=torch.float64, generator=generator)
    aspect = torch.exp(lo_r + (hi_r - lo_r) * log_r)
    u = torch.rand(n, 2, dtype=torch.float64, generator=generator)
    w = torch.round(torch.sqrt(area * frac * aspect))
    h = torch.round(torch.sqrt(area * frac / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.where(ok, torch.arange(attempts), attempts).amin(1)  # attempts: none fit
    found = first < attempts
    pick = first.clamp(max=attempts - 1)[:, None]
    w, h = w.gather(1, pick)[:, 0].long(), h.gather(1, pick)[:, 0].long()
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    h, w = torch.where(found, h, fh), torch.where(found, w, fw)
    top = torch.floor(u[:, 0] * (height - h + 1)).long().minimum(height - h)
    left = torch.floor(u[:, 1] * (width - w + 1)).long().minimum(width - w)
    top = torch.where(found, top, (height - fh) // 2)
    left = torch.where(found, left, (width - fw) // 2)
    return torch.stack([top, left, h, w], 1)


def _axis_weights(start: Tensor, length: Tensor, n_in: int, n_out: int, antialias: bool) -> Tensor:
    """(B, n_out, n_in) float32 resampling weights of the crops [start, start+length) (B,)."""
    scale = length / n_out
    support = scale.clamp(min=1.0) if antialias else torch.ones_like(scale)
    out_c = torch.arange(n_out, device=start.device, dtype=torch.float32) + 0.5
    centre = start[:, None] + out_c[None] * scale[:, None]  # (B, n_out) in input pixel units
    k = torch.arange(n_in, device=start.device, dtype=torch.float32) + 0.5  # pixel centres
    dist = (k[None, None] - centre[:, :, None]).abs() / support[:, None, None]
    inside = (k[None] >= start[:, None]) & (k[None] < (start + length)[:, None])
    wgt = (1 - dist).clamp_min(0) * inside[:, None]
    return wgt / wgt.sum(-1, keepdim=True).clamp_min(1e-12)


def _back_to(out: Tensor, dtype: torch.dtype) -> Tensor:
    if dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out.to(dtype)


def resized_crop(
    x: Tensor, boxes: Tensor, size: int | Sequence[int], antialias: bool = True
) -> Tensor:
    """Crop box i ``(top, left, h, w)`` of sample i and resize it (bilinear) to ``size``.

    x: (B, C, H, W) uint8 or float; boxes: (B, 4) int (any device; moved with
    ``non_blocking``); returns (B, C, *size) of x's dtype (uint8: rounded). Per sample this
    equals ``F.interpolate(crop, size, mode="bilinear", align_corners=False,
    antialias=antialias)`` of the sliced crop (torchvision's ``resized_crop`` on tensors).
    """
    _check_images(x)
    oh, ow = _size2(size)
    b, _, hh, ww = x.shape
    if boxes.shape != (b, 4) or boxes.is_floating_point():
        got = f"{boxes.dtype} {tuple(boxes.shape)}"
        raise ValueError(f"boxes must be ({b}, 4) integer (top, left, h, w), got {got}")
    if boxes.device.type == "cpu" and b > 0:  # CPU boxes are checked without a device sync
        t, l_, h, w = boxes.unbind(1)
        if bool(((t < 0) | (l_ < 0) | (h < 1) | (w < 1) | (t + h > hh) | (l_ + w > ww)).any()):
            raise ValueError(f"boxes must lie inside the {hh}x{ww} images with h, w >= 1")
    bx = boxes.to(x.device, non_blocking=True).to(torch.float32)
    wy = _axis_weights(bx[:, 0], bx[:, 2], hh, oh, antialias)
    wx = _axis_weights(bx[:, 1], bx[:, 3], ww, ow, antialias)
    xf = x.to(torch.float32)
    out = torch.einsum("bchw,bsw->bchs", xf, wx)
    out = torch.einsum("bth,bchs->bcts", wy, out)
    return _back_to(out, x.dtype)


def random_resized_crop_flip(
    x: Tensor,
    size: int | Sequence[int],
    generator: torch.Generator | None = None,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    antialias: bool = True,
    return_params: bool = False,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """ImageNet training crop: per sample :func:`rrc_params` box, :func:`resized_crop` to
    ``size``, then a horizontal flip with probability 1/2 (torchvision ``RandomResizedCrop``
    + ``RandomHorizontalFlip``). Draws: the boxes, then (B,) flip uniforms (always drawn).
    x: (B, C, H, W) uint8 or float; returns (B, C, *size) of x's dtype, and with
    ``return_params`` also the (B, 4) CPU boxes and (B,) CPU bool flips."""
    _check_images(x)
    b, _, hh, ww = x.shape
    boxes = rrc_params(b, hh, ww, scale, ratio, generator)
    flips = torch.rand(b, dtype=torch.float64, generator=generator) < 0.5
    if not flip:
        flips = torch.zeros_like(flips)
    out = resized_crop(x, boxes, size, antialias)
    if flip:
        out = hflip(out, flips)
    return (out, boxes, flips) if return_params else out


def center_crop(x: Tensor, size: int | Sequence[int]) -> Tensor:
    """Centre ``size`` crop of every sample, a new tensor. Offsets ``round((H - h) / 2)``
    (half to even), as pytorch/vision torchvision/transforms/functional.py ``center_crop``."""
    _check_images(x)
    oh, ow = _size2(size)
    hh, ww = x.shape[-2:]
    if oh > hh or ow > ww:
        raise ValueError(f"size {(oh, ow)} must not exceed the image size {(hh, ww)}")
    top, left = int(round((hh - oh) / 2)), int(round((ww - ow) / 2))
    return x[:, :, top : top + oh, left : left + ow].clone()


def resize_center_crop(
    x: Tensor, size: int, crop_frac: float = 0.875, antialias: bool = True
) -> Tensor:
    """Evaluation view: resize the shorter side to ``floor(size / crop_frac)`` (bilinear;
    longer side ``int(new_short * long / short)``, no resize when already that size, as
    torchvision ``Resize(int)``), then :func:`center_crop` ``size`` x ``size``. The default
    0.875 gives 256 -> 224 (clovaai/CutMix-PyTorch train.py ``Resize(256)`` +
    ``CenterCrop(224)``; timm timm/data/transforms_factory.py ``floor(img_size / crop_pct)``)."""
    _check_images(x)
    if not (0 < crop_frac <= 1):
        raise ValueError(f"crop_frac must be in (0, 1], got {crop_frac}")
    _size2(size)
    short_to = math.floor(size / crop_frac)
    b, _, hh, ww = x.shape
    short, long = min(hh, ww), max(hh, ww)
    if short != short_to:
        new_long = int(short_to * long / short)
        nh, nw = (short_to, new_long) if hh <= ww else (new_long, short_to)
        boxes = torch.tensor([[0, 0, hh, ww]], dtype=torch.long).expand(b, 4)
        x = resized_crop(x, boxes, (nh, nw), antialias)
    return center_crop(x, size)


def device_transform(
    kind: str,
    *,
    train: bool,
    mean: Sequence[float],
    std: Sequence[float],
    size: int | None = None,
    pad: int = 4,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    crop_frac: float = 0.875,
) -> Callable[[Tensor, torch.Generator | None], Tensor]:
    """``fn(x, generator) -> float32`` for uint8 (B, C, H, W) batches already on the device.

    - ``"none"``: :func:`to_float` only.
    - ``"cifar"``: train :func:`random_crop_flip` (``pad``); eval: unchanged; then normalise.
    - ``"imagenet"`` (``size`` required): train :func:`random_resized_crop_flip` to
      ``size``; eval :func:`resize_center_crop`; then normalise.
    """
    if kind not in ("none", "cifar", "imagenet"):
        raise ValueError(f"kind must be 'none', 'cifar' or 'imagenet', got {kind!r}")
    if kind == "imagenet":
        _size2(size if size is not None else 0, "size")
    mean, std = tuple(mean), tuple(std)

    def fn(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if kind == "cifar" and train:
            x = random_crop_flip(x, pad, generator)
        elif kind == "imagenet":
            x = (
                random_resized_crop_flip(x, size, generator, scale=scale, ratio=ratio)
                if train
                else resize_center_crop(x, size, crop_frac)
            )
        return to_float(x, mean, std)

    return fn
