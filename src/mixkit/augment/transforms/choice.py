"""Per-sample or per-batch choice between mixers; timm's MixUp/CutMix switch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field
from typing import Any

import torch
from torch import Tensor

from mixkit.augment.base import MixTransform, Region
from mixkit.augment.settings import check_fraction, is_weight
from mixkit.augment.transforms.cutmix import CutMix
from mixkit.augment.transforms.mixup import MixUp


@dataclass(eq=False, repr=False)
class RandomChoice(MixTransform):
    """Pick one of several mixers per sample (``mode="elem"``) or per batch, with ``probs``.

    The sub-transforms only provide regions (their own ``p`` still gates); labels, pairing
    and gating come from this module. Different ``fill``/``interpolation`` settings across
    sub-transforms are not supported (the first one's are used).

    Args:
        transforms: the mixers to choose from (a non-empty sequence of ``MixTransform``).
        probs: their weights (normalised to sum 1); None picks them uniformly.
        p, mode, num_classes, label_smoothing, multilabel, pairing, ignore_index,
            min_visibility, generator, check_finite, check_layout: as in ``MixTransform``.
    """

    transforms: InitVar[Sequence[MixTransform]]
    probs: InitVar[Sequence[float] | None] = None

    def __post_init__(
        self, transforms: Sequence[MixTransform], probs: Sequence[float] | None
    ) -> None:
        super().__post_init__()
        if len(transforms) == 0 or not all(isinstance(t, MixTransform) for t in transforms):
            raise ValueError("transforms must be a non-empty sequence of MixTransform")
        if probs is None:
            probs = [1.0 / len(transforms)] * len(transforms)
        weights = all(is_weight(q) for q in probs)
        if len(probs) != len(transforms) or not weights or sum(probs) <= 0:
            raise ValueError(
                f"probs must be {len(transforms)} non-negative weights with a positive sum, "
                f"got {probs!r}"
            )
        self.transforms = torch.nn.ModuleList(transforms)
        self.blends = any(t.blends for t in transforms)
        total = float(sum(probs))
        self.probs = [float(q) / total for q in probs]

    def _extras(self) -> dict[str, Any]:
        extras: dict[str, Any] = {}
        for t in self.transforms:
            for k, v in t._extras().items():
                extras.setdefault(k, v)
        return extras

    def _context(self, labels: Tensor | None, masks: Tensor | None) -> dict[str, Any]:
        """The union of what the sub-transforms' draws need (ClassMix: the label maps)."""
        context: dict[str, Any] = {}
        for t in self.transforms:
            context.update(t._context(labels, masks))
        return context

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        choice = torch.multinomial(
            torch.tensor(self.probs), n, replacement=True, generator=generator
        )
        kind = torch.zeros(n, dtype=torch.long)
        lam = torch.ones(n, dtype=torch.float64)
        boxes = torch.zeros(n, 4, dtype=torch.long)
        mask = None
        for i, t in enumerate(self.transforms):
            sub_applied = torch.rand(n, dtype=torch.float64, generator=generator) < t.p
            r = t._draw_region(n, height, width, generator, **context)
            take = (choice == i) & sub_applied
            kind = torch.where(take, r.kind, kind)
            lam = torch.where(take.to(r.lam.device), r.lam.double(), lam.to(r.lam.device))
            if r.boxes is not None:
                boxes = torch.where(take.view(-1, 1), r.boxes, boxes)
            if r.mask is not None:
                pick = take.to(r.mask.device).view(-1, 1, 1)
                mask = r.mask & pick if mask is None else torch.where(pick, r.mask, mask)
        return Region(kind, lam, boxes, mask)


@dataclass(eq=False, repr=False)
class MixUpCutMix(RandomChoice):
    """timm-style switch: CutMix with probability ``switch_prob``, else MixUp.

    Args:
        mixup_alpha: MixUp Beta parameter (timm ``Mixup``); 0 disables MixUp.
        cutmix_alpha: CutMix Beta parameter; 0 disables CutMix (not both 0).
        switch_prob: probability of CutMix instead of MixUp when both are enabled.
        correct_lam: as in ``CutMix``.
        p, mode, num_classes, label_smoothing, multilabel, pairing, ignore_index,
            min_visibility, generator, check_finite, check_layout: as in ``MixTransform``.
    """

    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    switch_prob: float = 0.5
    correct_lam: bool = True
    transforms: Sequence[MixTransform] = field(init=False)  # built from the settings above
    probs: list[float] = field(init=False)

    def __post_init__(self) -> None:  # type: ignore[override]
        mixup_alpha, cutmix_alpha = self.mixup_alpha, self.cutmix_alpha
        switch_prob = self.switch_prob
        check_fraction(switch_prob, "switch_prob")
        alphas = (mixup_alpha, cutmix_alpha)
        if not all(is_weight(a) for a in alphas) or mixup_alpha == cutmix_alpha == 0:
            raise ValueError(
                "mixup_alpha and cutmix_alpha must be >= 0 and not both 0, "
                f"got {mixup_alpha!r}, {cutmix_alpha!r}"
            )
        transforms: list[MixTransform] = []
        probs: list[float] = []
        if mixup_alpha > 0:
            transforms.append(MixUp(mixup_alpha))
            probs.append(1.0 - switch_prob if cutmix_alpha > 0 else 1.0)
        if cutmix_alpha > 0:
            transforms.append(CutMix(cutmix_alpha, correct_lam=self.correct_lam))
            probs.append(switch_prob if mixup_alpha > 0 else 1.0)
        if sum(probs) == 0:  # both enabled, switch_prob picks one side entirely
            probs = [1.0] * len(probs)
        super().__post_init__(transforms, probs)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.switch_prob = float(switch_prob)
