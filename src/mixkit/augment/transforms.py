"""The mixer modules. Each subclass only draws its region; ``MixTransform`` does the rest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixkit import ops
from mixkit.augment.base import MixTransform, Region, check_alpha, check_fraction, kind_array
from mixkit.augment.params import Kind
from mixkit.ops import sampling

__all__ = [
    "MixUp",
    "CutMix",
    "ResizeMix",
    "Cutout",
    "FMix",
    "ClassMix",
    "RandomChoice",
    "MixUpCutMix",
]


class MixUp(MixTransform):
    """MixUp (Zhang et al. 2018): ``x = λ x_i + (1-λ) x_perm``, λ ~ Beta(alpha, alpha)."""

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = check_alpha(alpha)

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        return Region(kind_array(n, Kind.BLEND), sampling.draw_beta(self.alpha, n, generator))


class CutMix(MixTransform):
    """CutMix (Yun et al. 2019): paste the partner's pixels in a box of area ~ (1-λ),
    λ ~ Beta(alpha, alpha). The reported λ is always the exact kept pixel fraction.

    Args:
        correct_lam: True (timm/torchvision behaviour): centre uniform over all pixels and the
            box clipped at the border, λ recomputed from the clipped box. False: the box is
            placed fully inside the image (never clipped) so its area follows the drawn λ up
            to integer rounding; λ is still the realised fraction.
    """

    def __init__(self, alpha: float = 1.0, correct_lam: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = check_alpha(alpha)
        self.correct_lam = bool(correct_lam)

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        area = 1 - sampling.draw_beta(self.alpha, n, generator)
        h, w = sampling.box_sides(area, height, width)
        place = sampling.draw_boxes_centred if self.correct_lam else sampling.draw_boxes_inside
        return Region.of_boxes(Kind.CROP, place(h, w, height, width, generator), height, width)


class ResizeMix(MixTransform):
    """ResizeMix (Qin et al. 2020): paste the whole partner, resized by τ ~ U(scope), into a
    box placed fully inside the image; λ = 1 - box area / image area (≈ 1 - τ²).

    Args:
        scope: range of the side ratio τ (paper and OpenMixup default (0.1, 0.8)).
        interpolation: ``nearest`` (default, OpenMixup) or ``bilinear``.
    """

    def __init__(
        self, scope: tuple[float, float] = (0.1, 0.8), interpolation: str = "nearest", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        try:
            lo, hi = (float(v) for v in scope)
        except (TypeError, ValueError):
            raise ValueError(f"scope must be two numbers (low, high), got {scope!r}") from None
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"scope must satisfy 0 < low <= high <= 1, got {scope!r}")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(
                f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}"
            )
        self.scope = (lo, hi)
        self.interpolation = interpolation

    def _extras(self) -> dict[str, Any]:
        return {"resize_mode": self.interpolation}

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        tau = sampling.draw_uniform(self.scope[0], self.scope[1], n, generator)
        h = sampling.clamp(np.round(tau * height).astype(np.int64), 1, height)
        w = sampling.clamp(np.round(tau * width).astype(np.int64), 1, width)
        boxes = sampling.draw_boxes_inside(h, w, height, width, generator)
        return Region.of_boxes(Kind.RESIZE, boxes, height, width)


class Cutout(MixTransform):
    """Cutout (DeVries & Taylor 2017): fill a ``length x length`` square (centre uniform over
    all pixels, clipped) with ``value``; labels are unchanged, λ is the kept pixel fraction.

    Args:
        length: side of the square in pixels (16 for CIFAR-10 in the paper, 8 in the KD paper).
        value: fill value (0 = the dataset mean for normalised inputs).
    """

    def __init__(self, length: int = 16, value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be an int >= 1, got {length!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"value must be a number, got {value!r}")
        self.length = length
        self.value = float(value)

    def _extras(self) -> dict[str, Any]:
        return {"fill": self.value}

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        # No clamp of the side to the image: a square larger than the image, centred anywhere
        # and clipped, covers it all (DeVries & Taylor's reference clips only the corners).
        side = np.full(n, self.length, dtype=np.int64)
        boxes = sampling.draw_boxes_centred(side, side, height, width, generator)
        return Region.of_boxes(Kind.FILL, boxes, height, width)


class FMix(MixTransform):
    """FMix (Harris et al. 2020): a thresholded low-frequency mask covering exactly
    ``round((1-λ) H W)`` pixels, λ ~ Beta(alpha, alpha)."""

    def __init__(self, alpha: float = 1.0, decay_power: float = 3.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = check_alpha(alpha)
        self.decay_power = check_alpha(decay_power, "decay_power")

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        area = 1 - ops.sample_beta(self.alpha, n, generator)
        mask = ops.fmix_mask(area, height, width, generator, self.decay_power)
        lam = 1 - mask.flatten(1).double().mean(1)
        return Region(kind_array(n, Kind.MASK), lam, mask=mask)


class ClassMix(MixTransform):
    """ClassMix (Olsson et al. 2021): paste the pixels of half (ceil) of the classes present
    in the partner's label map. Needs the label maps: ``forward(images, masks=maps)`` uses the
    masks; ``draw(shape, label_maps=maps)`` for the explicit form (e.g. teacher argmax maps).
    The draw is per sample in both modes; ``p`` gates per sample (elem) or per batch."""

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        if num_classes is None:
            raise ValueError("num_classes is required for ClassMix")
        super().__init__(num_classes=num_classes, **kwargs)

    def _context(self, labels: Tensor | None, masks: Tensor | None) -> dict[str, Any]:
        return {} if masks is None or masks.ndim != 3 else {"label_maps": masks}

    def _draw_region(
        self,
        n,
        height,
        width,
        generator,
        *,
        perm: Tensor,
        label_maps: Tensor | None = None,
        **context,
    ) -> Region:
        if label_maps is None:
            raise ValueError("label_maps (B, H, W) are required to draw ClassMix params")
        b = perm.shape[0]
        if tuple(label_maps.shape) != (b, height, width):
            raise ValueError(
                f"label_maps must have shape {(b, height, width)}, got {tuple(label_maps.shape)}"
            )
        classes = ops.sample_classmix_classes(label_maps, self.num_classes, generator)
        partner_maps = label_maps.index_select(0, perm.to(label_maps.device))
        mask = ops.classmix_mask(
            partner_maps, classes.index_select(0, perm).to(label_maps.device)
        ).cpu()
        lam = 1 - mask.flatten(1).double().mean(1)
        # The masks are per sample in both modes; in batch mode only the p-gate is shared.
        return Region(kind_array(b, Kind.MASK), lam, mask=mask)


class RandomChoice(MixTransform):
    """Pick one of several mixers per sample (``mode="elem"``) or per batch, with ``probs``.

    The sub-transforms only provide regions (their own ``p`` still gates); labels, pairing
    and gating come from this module. Different ``fill``/``interpolation`` settings across
    sub-transforms are not supported (the first one's are used).
    """

    def __init__(
        self,
        transforms: Sequence[MixTransform],
        probs: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(transforms) == 0 or not all(isinstance(t, MixTransform) for t in transforms):
            raise ValueError("transforms must be a non-empty sequence of MixTransform")
        if probs is None:
            probs = [1.0 / len(transforms)] * len(transforms)
        numbers = all(
            isinstance(q, int | float) and not isinstance(q, bool) and 0 <= q < float("inf")
            for q in probs
        )
        if len(probs) != len(transforms) or not numbers or sum(probs) <= 0:
            raise ValueError(
                f"probs must be {len(transforms)} non-negative weights with a positive sum, "
                f"got {probs!r}"
            )
        self.transforms = torch.nn.ModuleList(transforms)
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
        regions = []
        for t in self.transforms:
            sub_applied = torch.rand(n, dtype=torch.float64, generator=generator) < t.p
            r = t._draw_region(n, height, width, generator, **context)
            r_kind, r_lam = torch.as_tensor(r.kind), torch.as_tensor(r.lam)
            kind = torch.where(sub_applied, r_kind, torch.full_like(r_kind, int(Kind.NONE)))
            lam = torch.where(
                sub_applied, r_lam.double(), torch.ones_like(r_lam, dtype=torch.float64)
            )
            boxes = None if r.boxes is None else torch.as_tensor(r.boxes)
            regions.append(Region(kind, lam, boxes, r.mask))
        pick = [choice == i for i in range(len(regions))]

        def merge(get, empty):
            out = empty
            for sel, r in zip(pick, regions, strict=True):
                v = get(r)
                if v is not None:
                    out = torch.where(sel.view(-1, *([1] * (v.ndim - 1))), v, out)
            return out

        kind = merge(lambda r: r.kind, torch.zeros(n, dtype=torch.long))
        lam = merge(lambda r: r.lam, torch.ones(n, dtype=torch.float64))
        boxes = merge(lambda r: r.boxes, torch.zeros(n, 4, dtype=torch.long))
        mask = None
        if any(r.mask is not None for r in regions):
            mask = merge(lambda r: r.mask, torch.zeros(n, height, width, dtype=torch.bool))
        return Region(kind, lam, boxes, mask)


class MixUpCutMix(RandomChoice):
    """timm-style switch: CutMix with probability ``switch_prob``, else MixUp.

    Args mirror timm ``Mixup``: ``mixup_alpha``, ``cutmix_alpha`` (0 disables one of them),
    ``switch_prob``, ``correct_lam``; plus all ``MixTransform`` arguments.
    """

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        switch_prob: float = 0.5,
        correct_lam: bool = True,
        **kwargs: Any,
    ) -> None:
        check_fraction(switch_prob, "switch_prob")
        alphas_ok = all(
            isinstance(a, int | float) and not isinstance(a, bool) and 0 <= a < float("inf")
            for a in (mixup_alpha, cutmix_alpha)
        )
        if not alphas_ok or mixup_alpha == cutmix_alpha == 0:
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
            transforms.append(CutMix(cutmix_alpha, correct_lam=correct_lam))
            probs.append(switch_prob if mixup_alpha > 0 else 1.0)
        if sum(probs) == 0:  # both enabled, switch_prob picks one side entirely
            probs = [1.0] * len(probs)
        super().__init__(transforms, probs, **kwargs)
        self.switch_prob = switch_prob
