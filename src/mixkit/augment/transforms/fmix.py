"""FMix (Harris et al. 2020)."""

from __future__ import annotations

import torch

from mixkit import ops
from mixkit.augment.base import Region
from mixkit.augment.params import Kind
from mixkit.augment.settings import base_args, check_alpha
from mixkit.augment.transforms.beta import BetaMix


class FMix(BetaMix):
    """FMix: a thresholded low-frequency mask covering exactly ``round((1-λ) H W)`` pixels,
    λ ~ Beta(alpha, alpha).

    Args:
        alpha: Beta concentration, a number > 0.
        decay_power: spectrum decay ``1 / f**decay_power`` (3 in the paper).
        share_lam: one λ for the batch, a mask per sample (the semi-supervised mixers).
        p, mode, num_classes, label_smoothing, multilabel, pairing, ignore_index,
            min_visibility, generator, check_finite, check_layout: as in ``MixTransform``.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        decay_power: float = 3.0,
        share_lam: bool = False,
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
        self._set_beta(alpha, share_lam)
        self.decay_power = check_alpha(decay_power, "decay_power")

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        lam = self._draw_lam(n, generator)
        mask = ops.fmix_mask(1 - lam, height, width, generator, self.decay_power)
        return Region.of_mask(Kind.MASK, mask)
