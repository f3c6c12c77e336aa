"""Learning-rate and loss-weight schedules of the semi-supervised trainers."""

from __future__ import annotations

import math

LR_SCHEDULES = ("poly", "constant")


def poly_lr(base_lr: float, step: int, total: int, power: float = 0.9) -> float:
    """``base * (1 - step/total) ** power`` (PS-MT ``Utils/lr_scheduler.py::Poly``, power
    0.9; Dual Teacher ``seg_core/optimizer.py::PolyWarmupAdamW`` with its config's power)."""
    return base_lr * (1 - min(step, total) / max(total, 1)) ** power


def lr_at(
    base_lr: float,
    step: int,
    total: int,
    *,
    schedule: str = "poly",
    power: float = 0.9,
    warmup: int = 0,
    start: int = 0,
) -> float:
    """Learning rate of optimiser step ``step`` (0-based) of ``total``.

    Steps before ``start`` run at ``base_lr`` (PS-MT's warm-up epochs: its scheduler steps
    only in the semi-supervised epochs). From ``start`` on, ``s = step - start`` of
    ``total - start``: a linear warm-up ``base * s / warmup`` for ``s < warmup`` (Dual Teacher
    ``PolyWarmupAdamW``, ratio 1e-6 ~ 0), then ``poly`` (``base (1 - s/T) ** power``) or
    ``constant``."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {schedule!r}")
    if step < start:
        return base_lr
    s, span = step - start, max(total - start, 1)
    if warmup > 0 and s < warmup:
        return base_lr * (1 - (1 - s / warmup) * (1 - 1e-6))
    return base_lr if schedule == "constant" else poly_lr(base_lr, s, span, power)


def cosine_rampup(current: float, length: float) -> float:
    """PS-MT ``Utils/ramps.py::cosine_rampup``: ``1 - (cos(pi c / L) + 1) / 2``, clipped."""
    if length <= 0:
        return 1.0
    c = min(max(current, 0.0), length)
    return 1.0 - 0.5 * (math.cos(math.pi * c / length) + 1.0)
