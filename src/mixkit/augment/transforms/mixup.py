"""MixUp (Zhang et al. 2018)."""

from __future__ import annotations

from mixkit.augment.base import Region, kind_array
from mixkit.augment.params import Kind
from mixkit.augment.transforms.beta import BetaMix


class MixUp(BetaMix):
    """MixUp: ``x = λ x_i + (1-λ) x_perm``, λ ~ Beta(alpha, alpha) per sample (``mode="elem"``)
    or per batch (``mode="batch"``). Labels are mixed with the same λ.

    Args:
        alpha: Beta concentration, a number > 0 (1.0 in the paper for CIFAR; timm 0.8).
        p, mode, num_classes, label_smoothing, multilabel, pairing, ignore_index,
            min_visibility, generator, check_finite, check_layout: as in ``MixTransform``.
    """

    blends = True

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        return Region(kind_array(n, Kind.BLEND), self._draw_lam(n, generator))
