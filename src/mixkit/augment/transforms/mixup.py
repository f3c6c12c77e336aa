"""MixUp (Zhang et al. 2018)."""

from __future__ import annotations

import torch

from mixkit.augment.base import Region, kind_array
from mixkit.augment.params import Kind
from mixkit.augment.settings import base_args
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

    def __init__(
        self,
        alpha: float = 1.0,
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
        self._set_beta(alpha)

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        return Region(kind_array(n, Kind.BLEND), self._draw_lam(n, generator))
