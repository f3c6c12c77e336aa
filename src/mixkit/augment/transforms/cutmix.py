"""CutMix (Yun et al. 2019)."""

from __future__ import annotations

from dataclasses import dataclass

from mixkit import ops
from mixkit.augment.base import Region
from mixkit.augment.params import Kind
from mixkit.augment.settings import check_flag
from mixkit.augment.transforms.beta import BetaMix


@dataclass(eq=False, repr=False)
class CutMix(BetaMix):
    """CutMix: paste the partner's pixels in a box of area ~ (1-λ), λ ~ Beta(alpha, alpha).
    The reported λ is always the exact kept pixel fraction.

    Args:
        alpha: Beta concentration, a number > 0 (1.0 in the paper).
        correct_lam: True (timm/torchvision behaviour): centre uniform over all pixels and the
            box clipped at the border, λ recomputed from the clipped box. False: the box is
            placed fully inside the image (never clipped) so its area follows the drawn λ up
            to integer rounding; λ is still the realised fraction.
        share_lam: one λ for the whole batch but a box position per sample (the
            semi-supervised CutMix of PS-MT ``VocCode/train.py::cut_mix`` and Dual Teacher
            ``seg_core/augmentations.py::cut_mixer``, ``np.random.beta`` once per batch).
        p, mode, num_classes, label_smoothing, multilabel, pairing, ignore_index,
            min_visibility, generator, check_finite, check_layout: as in ``MixTransform``.
    """

    correct_lam: bool = True
    share_lam: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_flag(self.correct_lam, "correct_lam")

    def _draw_boxes(self, n, k, height, width, generator):
        """(n * k, 4) int64 boxes, k per sample, of area (1 - λ) / k each (λ per sample,
        or one for the batch with ``share_lam``)."""
        lam = self._draw_lam(n, generator)
        area = 1 - lam if k == 1 else (1 - lam).repeat_interleave(k) / k
        h, w = ops.cut_size(area, height, width)
        place = ops.sample_boxes_centred if self.correct_lam else ops.sample_boxes_inside
        return place(h, w, height, width, generator)

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        boxes = self._draw_boxes(n, 1, height, width, generator)
        return Region.of_boxes(Kind.CROP, boxes, height, width)


class OfficialBoxCutMix(CutMix):
    """``CutMix`` with the box law of the official ``rand_bbox`` (CutMix-PyTorch
    ``train.py``, Good-DA-in-KD ``helper/loops.py``): sides ``2 * (int(side * sqrt(1 - λ))
    // 2)``, centre uniform over all pixels, clipped. ``CutMix`` rounds the side and keeps odd
    sides, which pastes more (E[1 - λ] at 32x32, λ ~ Beta(1, 1): 0.319 against the official
    0.299). Subclasses move the lowest centre with ``_centre_from``."""

    def _centre_from(self, height: int, width: int) -> tuple[int, int]:
        return (0, 0)

    def _draw_boxes(self, n, k, height, width, generator):
        lam = self._draw_lam(n, generator)
        area = 1 - lam if k == 1 else (1 - lam).repeat_interleave(k) / k
        box_h, box_w = ops.official_cut_size(area, height, width)
        start = self._centre_from(height, width)
        return ops.sample_boxes_centred(box_h, box_w, height, width, generator, centre_from=start)
