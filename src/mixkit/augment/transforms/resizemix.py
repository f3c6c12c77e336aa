"""ResizeMix (Qin et al. 2020)."""

from __future__ import annotations

from typing import Any

import torch

from mixkit import ops
from mixkit.augment.base import MixTransform, Region
from mixkit.augment.params import RESIZE_MODES, Kind
from mixkit.augment.settings import base_args


class ResizeMix(MixTransform):
    """ResizeMix: paste the whole partner, resized by τ ~ U(scope), into a box placed fully
    inside the image; λ = 1 - box area / image area (≈ 1 - τ²).

    Args:
        scope: range of the side ratio τ (paper and OpenMixup default (0.1, 0.8)).
        interpolation: ``nearest`` (default, OpenMixup) or ``bilinear``.
        p, mode, num_classes, label_smoothing, multilabel, pairing, ignore_index,
            min_visibility, generator, check_finite, check_layout: as in ``MixTransform``.
    """

    def __init__(
        self,
        scope: tuple[float, float] = (0.1, 0.8),
        interpolation: str = "nearest",
        *,
        p: float = 1.0,
        mode: str = "elem",
        num_classes: int | None = None,
        label_smoothing: float = 0.0,
        multilabel: bool = False,
        pairing: str = "cycle",
        ignore_index: int = 255,
        min_visibility: float = 0.25,
        generator: torch.Generator | int | None = None,
        check_finite: bool = True,
        check_layout: bool = True,
    ) -> None:
        super().__init__(**base_args(locals()))
        try:
            lo, hi = (float(v) for v in scope)
        except (TypeError, ValueError):
            raise ValueError(f"scope must be two numbers (low, high), got {scope!r}") from None
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"scope must satisfy 0 < low <= high <= 1, got {scope!r}")
        if interpolation not in RESIZE_MODES:
            raise ValueError(
                f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}"
            )
        self.scope = (lo, hi)
        self.interpolation = interpolation

    def _extras(self) -> dict[str, Any]:
        return {"resize_mode": self.interpolation}

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        tau = ops.sample_uniform(self.scope[0], self.scope[1], n, generator)
        h = torch.round(tau * height).long().clamp(1, height)
        w = torch.round(tau * width).long().clamp(1, width)
        boxes = ops.sample_boxes_inside(h, w, height, width, generator)
        return Region.of_boxes(Kind.RESIZE, boxes, height, width)
