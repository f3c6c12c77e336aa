"""MixUp (Zhang et al. 2018)."""

from __future__ import annotations

from typing import Any

from mixkit import ops
from mixkit.augment.base import MixTransform, Region, check_alpha, kind_array
from mixkit.augment.params import Kind


class MixUp(MixTransform):
    """MixUp: ``x = λ x_i + (1-λ) x_perm``, λ ~ Beta(alpha, alpha) per sample (``mode="elem"``)
    or per batch (``mode="batch"``). Labels are mixed with the same λ.

    Args:
        alpha: Beta concentration, a number > 0 (1.0 in the paper for CIFAR; timm 0.8).
        **kwargs: the ``MixTransform`` arguments (``p``, ``mode``, ``num_classes``,
            ``label_smoothing``, ``multilabel``, ``pairing``, ``generator``, ...).
    """

    blends = True

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = check_alpha(alpha)

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        return Region(kind_array(n, Kind.BLEND), ops.sample_beta(self.alpha, n, generator))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, {super().extra_repr()}"
