"""Multi-box CutMix: several CutMix boxes per sample (kornia's ``RandomCutMixV2(num_mix=)``;
the semi-supervised variants table). The worked example of "Write your own mixer"."""

from __future__ import annotations

from dataclasses import dataclass

from mixkit import ops
from mixkit.augment.base import Region
from mixkit.augment.params import Kind
from mixkit.augment.settings import check_count
from mixkit.augment.transforms.cutmix import CutMix


@dataclass(eq=False, repr=False)
class MultiBoxCutMix(CutMix):
    """Paste the partner's pixels in the union of ``num_boxes`` boxes per sample, each of
    area ``(1 - λ) / num_boxes``, λ ~ Beta(alpha, alpha). Overlapping boxes paste less than
    1 - λ: the reported λ is the realised kept fraction of the union (a MASK region, so
    images, labels, masks and boxes follow one draw).

    Args:
        alpha, correct_lam, share_lam: as in ``CutMix``.
        num_boxes: boxes per sample, an int >= 1 (1 pastes what ``CutMix`` pastes, as a mask).
        p, mode, num_classes, label_smoothing, multilabel, pairing, ignore_index,
            min_visibility, generator, check_finite, check_layout: as in ``MixTransform``.
    """

    num_boxes: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_count(self.num_boxes, "num_boxes")

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        k = self.num_boxes
        boxes = self._draw_boxes(n, k, height, width, generator)
        union = ops.box_mask(boxes, height, width).view(n, k, height, width).any(1)
        return Region.of_mask(Kind.MASK, union)
