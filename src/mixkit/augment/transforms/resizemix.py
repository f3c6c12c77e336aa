"""ResizeMix (Qin et al. 2020)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mixkit import ops
from mixkit.augment.base import MixTransform, Region
from mixkit.augment.params import RESIZE_MODES, Kind
from mixkit.augment.settings import check_choice


@dataclass(eq=False, repr=False)
class ResizeMix(MixTransform):
    """ResizeMix: paste the whole partner, resized by τ ~ U(scope), into a box placed fully
    inside the image; λ = 1 - box area / image area (≈ 1 - τ²).

    Args:
        scope: range of the side ratio τ (paper and OpenMixup default (0.1, 0.8)).
        interpolation: ``nearest`` (default, OpenMixup) or ``bilinear``.
        p, mode, num_classes, label_smoothing, multilabel, pairing, ignore_index,
            min_visibility, generator, check_finite, check_layout: as in ``MixTransform``.
    """

    scope: tuple[float, float] = (0.1, 0.8)
    interpolation: str = "nearest"

    def __post_init__(self) -> None:
        super().__post_init__()
        scope = self.scope
        try:
            lo, hi = (float(v) for v in scope)
        except (TypeError, ValueError):
            raise ValueError(f"scope must be two numbers (low, high), got {scope!r}") from None
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"scope must satisfy 0 < low <= high <= 1, got {scope!r}")
        check_choice(self.interpolation, "interpolation", RESIZE_MODES)
        self.scope = (lo, hi)

    def _extras(self) -> dict[str, Any]:
        return {"resize_mode": self.interpolation}

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        tau = ops.sample_uniform(self.scope[0], self.scope[1], n, generator)
        h = torch.round(tau * height).long().clamp(1, height)
        w = torch.round(tau * width).long().clamp(1, width)
        boxes = ops.sample_boxes_inside(h, w, height, width, generator)
        return Region.of_boxes(Kind.RESIZE, boxes, height, width)
