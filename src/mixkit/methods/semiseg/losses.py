"""Loss reductions shared by the semi-supervised trainers."""

from __future__ import annotations

from torch import Tensor


def masked_mean(values: Tensor, mask: Tensor, denom: Tensor | None = None) -> Tensor:
    """sum(values * mask) / max(denom or mask.sum(), 1)."""
    d = mask.sum() if denom is None else denom
    return (values * mask).sum() / d.clamp_min(1)
