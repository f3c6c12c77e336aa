"""Segmentation mixers: one ``MixParams`` draw applied to images, teacher probability maps,
integer label maps and validity masks alike (``mixkit.augment.apply_images`` /
``apply_masks``), so every pasted pixel of the image is exactly the pasted pixel of the
pseudo-label and of its confidence.

- ``cutmix``: the semi-supervised CutMix of PS-MT ``VocCode/train.py::cut_mix`` and Dual
  Teacher ``seg_core/augmentations.py::cut_mixer``: ONE λ ~ Beta(4, 4) per batch
  (``np.random.beta(4, 4)``), a box of area ``1 - λ`` at a per-sample position, partner from
  ``torch.randperm``. Official quirks not copied: box centres drawn in ``[W/8, W)`` (a bias
  towards the bottom-right) and ``cut_w // 2`` on both sides (box 1 px short); here centres
  are uniform over all pixels and boxes clipped, λ recomputed as the exact kept fraction.
  ``per_sample_lam=True`` draws λ per sample instead.
- ``classmix``: ClassMix (Olsson et al. 2021) on the teacher's argmax maps: the partner's
  pixels of half of the classes predicted in the partner are pasted. Dual Teacher
  ``get_bin_mask`` takes ``(n - n % 2) / 2`` = floor(n/2) classes (``half="floor"``, default);
  the ClassMix paper takes ``(n + n % 2) / 2`` = ceil (``half="ceil"``).
- ``multibox``: ``n_boxes`` CutMix boxes per sample, each of area ``(1 - λ) / n_boxes``
  (their union is pasted; overlaps make the pasted area smaller, λ is recomputed).
- ``fmix``: FMix (Harris et al. 2020) low-frequency mask covering exactly ``round((1-λ)HW)``
  pixels.
- ``none``: identity (the pseudo-label is used on the un-mixed image).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from mixkit import ops
from mixkit.augment import Kind, MixParams, apply_images, apply_masks

__all__ = [
    "MIXERS",
    "SegMixed",
    "SegMixer",
    "SegIdentity",
    "SegCutMix",
    "SegClassMix",
    "SegMultiBoxCutMix",
    "SegFMix",
    "select_half_classes",
    "build_seg_mixer",
]

MIXERS = ("none", "cutmix", "classmix", "multibox", "fmix")


class SegMixed(NamedTuple):
    """Outputs of ``SegMixer.apply``; fields not given are None.

    images (B, C, H, W) float; probs (B, K, H, W) float; labels (B, H, W) int;
    valid (B, H, W) bool.
    """

    images: Tensor | None
    probs: Tensor | None
    labels: Tensor | None
    valid: Tensor | None
    params: MixParams


def select_half_classes(
    label_maps: Tensor, num_classes: int, generator: torch.Generator | None, half: str = "floor"
) -> Tensor:
    """Pick half of the classes present in each map, uniformly without replacement.

    ``half="floor"``: ``floor(n/2)`` classes (Dual Teacher ``get_bin_mask``); ``"ceil"``:
    ``ceil(n/2)`` (ClassMix paper). Vectorised by ranking i.i.d. uniform scores among the
    present classes. label_maps (B, H, W) int (ids outside ``[0, K)`` are not classes)
    -> (B, K) bool (CPU).
    """
    if half not in ("floor", "ceil"):
        raise ValueError(f"half must be 'floor' or 'ceil', got {half!r}")
    present = ops.present_classes(label_maps, num_classes).cpu()
    n = present.sum(1)
    take = n // 2 if half == "floor" else (n + 1) // 2
    scores = torch.rand(present.shape, generator=generator)
    scores = torch.where(present, scores, torch.full_like(scores, 2.0))  # absent ones last
    rank = scores.argsort(1).argsort(1)
    return (rank < take[:, None]) & present


def _check_shape(batch_shape: Any) -> tuple[int, int, int]:
    shape = tuple(batch_shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"batch_shape must be (B, C, H, W) with sizes >= 1, got {shape}")
    return shape[0], shape[2], shape[3]


class SegMixer:
    """Base class: ``draw`` the params for a batch, ``apply`` them to any of its tensors.

    Args:
        alpha: λ ~ Beta(alpha, alpha) (4 in PS-MT and Dual Teacher).
        per_sample_lam: draw λ per sample instead of once per batch (official: per batch).
        pairing: partner choice (``mixkit.ops.PAIRINGS``); ``random`` = ``torch.randperm``
            as in both official codes (a sample paired with itself is left unmixed).
    """

    name = "base"

    def __init__(
        self, alpha: float = 4.0, per_sample_lam: bool = False, pairing: str = "random"
    ) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
            raise ValueError(f"alpha must be a number > 0, got {alpha!r}")
        if pairing not in ops.PAIRINGS:
            raise ValueError(f"pairing must be one of {ops.PAIRINGS}, got {pairing!r}")
        self.alpha = float(alpha)
        self.per_sample_lam = bool(per_sample_lam)
        self.pairing = pairing

    def _area(self, b: int, gen: torch.Generator | None) -> Tensor:
        """(B,) float64 pasted fraction 1 - λ, one draw per batch unless per_sample_lam."""
        lam = ops.sample_beta(self.alpha, b if self.per_sample_lam else 1, gen)
        return (1 - lam).expand(b).clone()

    def _region(
        self, b: int, h: int, w: int, perm: Tensor, gen: torch.Generator | None, **ctx: Any
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(kind (B,), boxes (B, 4) or None, mask (B, H, W) bool or None)."""
        raise NotImplementedError

    def draw(
        self,
        batch_shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None,
        label_maps: Tensor | None = None,
    ) -> MixParams:
        """Draw params for a (B, C, H, W) batch (CPU tensors). ``label_maps`` (B, H, W) int:
        the maps ClassMix picks classes from (teacher argmax)."""
        b, h, w = _check_shape(batch_shape)
        perm = ops.sample_pairing(b, self.pairing, generator)
        kind, boxes, mask = self._region(b, h, w, perm, generator, label_maps=label_maps)
        if boxes is None:
            boxes = torch.zeros(b, 4, dtype=torch.long)
        if kind.eq(Kind.CROP).any():
            region = ops.box_mask(boxes, h, w)[:, 0]
        else:
            region = torch.zeros(b, h, w, dtype=torch.bool)
        if mask is not None:
            region = torch.where((kind == Kind.MASK).view(-1, 1, 1), mask, region)
        # A sample paired with itself is unchanged: report it as NONE with λ = 1.
        own = perm == torch.arange(b)
        kind = torch.where(own, torch.full_like(kind, Kind.NONE), kind)
        lam = torch.where(own, 1.0, 1.0 - region.flatten(1).double().mean(1)).float()
        boxes = boxes * (kind == Kind.CROP).view(-1, 1)
        if mask is not None:
            mask = mask & (kind == Kind.MASK).view(-1, 1, 1)
        return MixParams(kind, lam, perm, boxes, (h, w), mask)

    def apply(
        self,
        params: MixParams,
        images: Tensor | None = None,
        probs: Tensor | None = None,
        labels: Tensor | None = None,
        valid: Tensor | None = None,
    ) -> SegMixed:
        """Apply one draw to images (B, C, H, W) float/uint8, probs (B, K, H, W) float
        (teacher probabilities or logits), labels (B, H, W) int and valid (B, H, W) bool.
        Inputs are never modified."""
        out_img = apply_images(params, images) if images is not None else None
        out_p = None
        if probs is not None:
            if probs.ndim != 4 or not probs.is_floating_point():
                raise ValueError(
                    f"probs must be (B, K, H, W) float, got {probs.dtype} {probs.shape}"
                )
            out_p = apply_masks(params, probs)
        out_l = apply_masks(params, labels) if labels is not None else None
        out_v = None
        if valid is not None:
            if valid.dtype != torch.bool or valid.ndim != 3:
                raise ValueError(f"valid must be (B, H, W) bool, got {valid.dtype} {valid.shape}")
            out_v = apply_masks(params, valid.to(torch.uint8)).bool()
        return SegMixed(out_img, out_p, out_l, out_v, params)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(alpha={self.alpha}, per_sample_lam={self.per_sample_lam}, "
            f"pairing={self.pairing!r})"
        )


class SegIdentity(SegMixer):
    """No mixing (control row of the CutMix-variations table)."""

    name = "none"

    def draw(self, batch_shape, generator, label_maps=None) -> MixParams:
        b, h, w = _check_shape(batch_shape)
        return MixParams.identity(b, (h, w))


class SegCutMix(SegMixer):
    """Per-sample CutMix boxes of area 1 - λ, λ ~ Beta(alpha, alpha) once per batch."""

    name = "cutmix"

    def _region(self, b, h, w, perm, gen, **ctx):
        boxes = ops.sample_boxes(self._area(b, gen), h, w, gen)
        return torch.full((b,), int(Kind.CROP), dtype=torch.long), boxes, None


class SegMultiBoxCutMix(SegMixer):
    """``n_boxes`` boxes per sample, each of area (1 - λ) / n_boxes; their union is pasted."""

    name = "multibox"

    def __init__(self, n_boxes: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(n_boxes, bool) or not isinstance(n_boxes, int) or n_boxes < 1:
            raise ValueError(f"n_boxes must be an int >= 1, got {n_boxes!r}")
        self.n_boxes = n_boxes

    def _region(self, b, h, w, perm, gen, **ctx):
        area = self._area(b, gen).repeat_interleave(self.n_boxes) / self.n_boxes
        boxes = ops.sample_boxes(area, h, w, gen)
        mask = ops.box_mask(boxes, h, w).view(b, self.n_boxes, h, w).any(1)
        return torch.full((b,), int(Kind.MASK), dtype=torch.long), None, mask


class SegFMix(SegMixer):
    """FMix mask covering exactly round((1 - λ) H W) pixels (``mixkit.ops.fmix_mask``)."""

    name = "fmix"

    def __init__(self, decay_power: float = 3.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not decay_power > 0:
            raise ValueError(f"decay_power must be > 0, got {decay_power!r}")
        self.decay_power = float(decay_power)

    def _region(self, b, h, w, perm, gen, **ctx):
        mask = ops.fmix_mask(self._area(b, gen), h, w, gen, self.decay_power)
        return torch.full((b,), int(Kind.MASK), dtype=torch.long), None, mask


class SegClassMix(SegMixer):
    """ClassMix: paste the partner's pixels of half of the partner's predicted classes.

    ``draw(shape, gen, label_maps=teacher_argmax)``; ``last_classes`` (B, K) bool keeps the
    classes pasted into each sample (chosen among its partner's classes).
    """

    name = "classmix"

    def __init__(self, num_classes: int, half: str = "floor", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        if half not in ("floor", "ceil"):
            raise ValueError(f"half must be 'floor' or 'ceil', got {half!r}")
        self.num_classes = num_classes
        self.half = half
        self.last_classes: Tensor | None = None

    def _region(self, b, h, w, perm, gen, *, label_maps=None, **ctx):
        if label_maps is None:
            raise ValueError("label_maps (B, H, W) are required to draw ClassMix params")
        if tuple(label_maps.shape) != (b, h, w):
            raise ValueError(
                f"label_maps must have shape {(b, h, w)}, got {tuple(label_maps.shape)}"
            )
        maps = label_maps.cpu()
        chosen = select_half_classes(maps, self.num_classes, gen, self.half)  # per own map
        classes = chosen.index_select(0, perm)  # the partner's chosen classes
        mask = ops.classmix_mask(maps.index_select(0, perm), classes)
        self.last_classes = classes
        return torch.full((b,), int(Kind.MASK), dtype=torch.long), None, mask


def build_seg_mixer(
    name: str,
    *,
    num_classes: int,
    alpha: float = 4.0,
    per_sample_lam: bool = False,
    pairing: str = "random",
    n_boxes: int = 3,
    classmix_half: str = "floor",
) -> SegMixer:
    """The mixer ``name`` (one of ``MIXERS``)."""
    common = {"alpha": alpha, "per_sample_lam": per_sample_lam, "pairing": pairing}
    if name == "none":
        return SegIdentity(**common)
    if name == "cutmix":
        return SegCutMix(**common)
    if name == "classmix":
        return SegClassMix(num_classes, classmix_half, **common)
    if name == "multibox":
        return SegMultiBoxCutMix(n_boxes, **common)
    if name == "fmix":
        return SegFMix(**common)
    raise ValueError(f"mix must be one of {list(MIXERS)}, got {name!r}")
