"""ResizeMix (Qin et al. 2020)."""

from __future__ import annotations

from typing import Any

import torch

from mixkit import ops
from mixkit.augment.base import MixTransform, Region
from mixkit.augment.params import RESIZE_MODES, Kind


class ResizeMix(MixTransform):
    """ResizeMix: paste the whole partner, resized by τ ~ U(scope), into a box placed fully
    inside the image; λ = 1 - box area / image area (≈ 1 - τ²).

    Args:
        scope: range of the side ratio τ (paper and OpenMixup default (0.1, 0.8)).
        interpolation: ``nearest`` (default, OpenMixup) or ``bilinear``.
        **kwargs: the ``MixTransform`` arguments (``p``, ``mode``, ``num_classes``, ...).
    """

    def __init__(
        self, scope: tuple[float, float] = (0.1, 0.8), interpolation: str = "nearest", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
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

    def extra_repr(self) -> str:
        return f"scope={self.scope}, interpolation={self.interpolation!r}, {super().extra_repr()}"
