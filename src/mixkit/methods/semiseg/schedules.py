"""Learning-rate and loss-weight schedules of the semi-supervised trainers."""

from __future__ import annotations

import math


def poly_lr(base_lr: float, step: int, total: int, power: float = 0.9) -> float:
    """``base * (1 - step/total) ** power`` (PS-MT ``Poly``, Dual Teacher ``PolyWarmupAdamW``)."""
    return base_lr * (1 - min(step, total) / max(total, 1)) ** power


def cosine_rampup(current: float, length: float) -> float:
    """PS-MT ``Utils/ramps.py::cosine_rampup``: ``1 - (cos(pi c / L) + 1) / 2``, clipped."""
    if length <= 0:
        return 1.0
    c = min(max(current, 0.0), length)
    return 1.0 - 0.5 * (math.cos(math.pi * c / length) + 1.0)
