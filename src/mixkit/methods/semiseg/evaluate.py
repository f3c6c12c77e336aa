"""Whole-image and sliding-window evaluation of a segmentation net on full-size images.

- Whole image: one forward pass per image at its own size; logits resized to (H, W) when
  the net returns another size.
- Sliding window: ``crop``-sized windows every ``stride`` pixels, the last row / column of
  windows aligned to the image's bottom / right border; images smaller than the crop are
  zero-padded (the normalised image, i.e. the mean colour) bottom/right and the padding cut
  from the logits; overlapping logits are averaged (PS-MT ``CityCode/Utils/sliding_evaluator.py``
  sums window logits over the same grid; UniMatch ``supervised.py`` ``evaluate`` slides
  ``crop``-sized windows with stride ``int(crop * 2 / 3)`` for Cityscapes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.methods.semiseg.data import IGNORE
from mixkit.methods.semiseg.metrics import ConfusionMeter

EVAL_MODES = ("whole", "sliding")


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) and not isinstance(v, bool) else tuple(v)
    if len(t) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in t):
        raise ValueError(f"{name} must be a positive int or (h, w) of positive ints, got {v!r}")
    return int(t[0]), int(t[1])


def _forward(net: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    out = net(x)
    if out.shape[-2:] != x.shape[-2:]:
        out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return out.float()


def whole_image_logits(net: Callable[[Tensor], Tensor], image: Tensor) -> Tensor:
    """(B, K, H, W) float32 logits of a normalised float image batch (B, 3, H, W)."""
    if image.ndim != 4 or not image.is_floating_point():
        raise ValueError(
            f"image must be a float (B, C, H, W) tensor, got {image.dtype} {tuple(image.shape)}"
        )
    return _forward(net, image)


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Window offsets along one axis: every ``stride``, the last one ending at ``size``."""
    if size <= crop:
        return [0]
    n = math.ceil((size - crop) / stride) + 1
    return [min(i * stride, size - crop) for i in range(n)]


def sliding_window_logits(
    net: Callable[[Tensor], Tensor],
    image: Tensor,
    crop: int | Sequence[int],
    stride: int | Sequence[int],
    num_classes: int,
) -> Tensor:
    """(B, K, H, W) float32 mean logits of ``crop`` windows every ``stride`` pixels.

    image: normalised float (B, 3, H, W) on the net's device. ``stride <= crop`` so that
    every pixel is covered; the net must return K = ``num_classes`` channels."""
    if image.ndim != 4 or not image.is_floating_point():
        raise ValueError(
            f"image must be a float (B, C, H, W) tensor, got {image.dtype} {tuple(image.shape)}"
        )
    ch, cw = _pair(crop, "crop")
    sh, sw = _pair(stride, "stride")
    if sh > ch or sw > cw:
        raise ValueError(
            f"stride {(sh, sw)} must not exceed crop {(ch, cw)} (pixels would be skipped)"
        )
    b, _, h, w = image.shape
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    x = F.pad(image, (0, pw, 0, ph)) if ph or pw else image
    hp, wp = x.shape[-2:]
    total = torch.zeros(b, num_classes, hp, wp, device=image.device)
    count = torch.zeros(1, 1, hp, wp, device=image.device)
    for top in window_starts(hp, ch, sh):
        for left in window_starts(wp, cw, sw):
            out = _forward(net, x[:, :, top : top + ch, left : left + cw])
            if out.shape[1] != num_classes:
                raise ValueError(
                    f"net returned {out.shape[1]} channels, num_classes is {num_classes}"
                )
            total[:, :, top : top + ch, left : left + cw] += out
            count[:, :, top : top + ch, left : left + cw] += 1
    return (total / count)[:, :, :h, :w]


@torch.no_grad()
def evaluate_segmentation(
    net: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    device: str | torch.device = "cpu",
    mode: str = "whole",
    crop: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
    ignore_index: int = IGNORE,
) -> ConfusionMeter:
    """Confusion matrix of ``net`` (in eval mode) over ``loader``'s ``(images uint8
    (B, 3, H, W), masks (B, H, W))`` batches (:func:`~mixkit.methods.semiseg.datasets.
    seg_collate`); images become ``(x / 255 - mean) / std`` on ``device``. ``mode``:
    ``whole`` or ``sliding`` (needs ``crop``; ``stride`` defaults to ``int(crop * 2 / 3)``,
    UniMatch's)."""
    if mode not in EVAL_MODES:
        raise ValueError(f"mode must be one of {list(EVAL_MODES)}, got {mode!r}")
    if mode == "sliding" and crop is None:
        raise ValueError("mode 'sliding' needs crop (the training crop size)")
    if mode == "sliding" and stride is None:
        stride = tuple(max(int(c * 2 / 3), 1) for c in _pair(crop, "crop"))
    m = torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    meter = ConfusionMeter(num_classes, ignore_index)
    was_training = net.training
    net.eval()
    try:
        for images, masks in loader:
            x = (images.to(device).float() / 255 - m) / s
            if mode == "whole":
                logits = whole_image_logits(net, x)
            else:
                logits = sliding_window_logits(net, x, crop, stride, num_classes)
            meter.update(logits.argmax(1), masks)
    finally:
        net.train(was_training)
    return meter
