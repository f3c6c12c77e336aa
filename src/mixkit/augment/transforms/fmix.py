"""FMix (Harris et al. 2020)."""

from __future__ import annotations

from dataclasses import dataclass

from mixkit import ops
from mixkit.augment.base import Region
from mixkit.augment.params import Kind
from mixkit.augment.settings import check_alpha
from mixkit.augment.transforms.beta import BetaMix


@dataclass(eq=False, repr=False)
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

    decay_power: float = 3.0
    share_lam: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.decay_power = check_alpha(self.decay_power, "decay_power")

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        lam = self._draw_lam(n, generator)
        mask = ops.fmix_mask(1 - lam, height, width, generator, self.decay_power)
        return Region.of_mask(Kind.MASK, mask)
