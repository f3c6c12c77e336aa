"""Cutout (DeVries & Taylor 2017)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mixkit import ops
from mixkit.augment.base import MixTransform, Region
from mixkit.augment.params import Kind
from mixkit.augment.settings import check_count, is_number


@dataclass(eq=False, repr=False)
class Cutout(MixTransform):
    """Cutout: fill a ``length x length`` square (centre uniform over all pixels, clipped)
    with ``value``; labels are unchanged, λ is the kept pixel fraction.

    Args:
        length: side of the square in pixels (16 for CIFAR-10 in the paper, 8 in the KD paper).
        value: fill value, a number (0 = the dataset mean for normalised inputs) or one
            number per channel (e.g. the dataset mean of pixel images).
        p, mode, num_classes, label_smoothing, multilabel, pairing, ignore_index,
            min_visibility, generator, check_finite, check_layout: as in ``MixTransform``.
    """

    length: int = 16
    value: float | Sequence[float] = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_count(self.length, "length")
        value = self.value
        if isinstance(value, Sequence) and value and all(is_number(v) for v in value):
            self.value = tuple(float(v) for v in value)
        elif is_number(value):
            self.value = float(value)
        else:
            raise ValueError(f"value must be a number or a sequence of numbers, got {value!r}")

    def _extras(self) -> dict[str, Any]:
        return {"fill": self.value}

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        # No clamp of the side to the image: a square larger than the image, centred anywhere
        # and clipped, covers it all (DeVries & Taylor's reference clips only the corners).
        side = torch.full((n,), self.length, dtype=torch.long)
        boxes = ops.sample_boxes_centred(side, side, height, width, generator)
        return Region.of_boxes(Kind.FILL, boxes, height, width)
