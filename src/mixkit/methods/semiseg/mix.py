"""Segmentation mixing: a ``mixkit.augment`` mixer whose one draw moves images, teacher
probability maps, integer label maps and validity masks alike, so every pasted pixel of the
image is exactly the pasted pixel of the pseudo-label and of its confidence.

``build_seg_mixer(name)`` picks the mixer of the semi-supervised recipes:

- ``cutmix``: ``CutMix(share_lam=True)``, the semi-supervised CutMix of PS-MT
  ``VocCode/train.py::cut_mix`` and Dual Teacher ``seg_core/augmentations.py::cut_mixer``: ONE
  λ ~ Beta(4, 4) per batch (``np.random.beta(4, 4)``), a box of area ``1 - λ`` at a
  per-sample position, partner from ``torch.randperm``. The box follows the official
  ``rand_bbox_1`` (:class:`RandBbox1CutMix`): centre drawn in ``[S/8, S)`` on each axis (a
  bias towards the bottom-right), side ``2 * (int(S * sqrt(1 - λ)) // 2)``, clipped; λ is
  the exact kept fraction. ``box="uniform"`` centres boxes over all pixels with the rounded
  side of ``augment.CutMix``; ``per_sample_lam=True`` draws λ per sample instead.
- ``classmix``: ``ClassMix`` on the teacher's argmax maps. Dual Teacher ``get_bin_mask``
  takes ``(n - n % 2) / 2`` = floor(n/2) classes (``half="floor"``, the default here); the
  ClassMix paper takes ceil (``half="ceil"``).
- ``multibox``: ``MultiBoxCutMix``, ``n_boxes`` boxes per sample of area ``(1 - λ) / n_boxes``.
- ``fmix``: ``FMix`` masks covering exactly ``round((1-λ)HW)`` pixels.
- ``none``: identity (the pseudo-label is used on the un-mixed image).

A sample paired with itself (``pairing="random"``) is reported NONE with λ = 1.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from mixkit import augment
from mixkit.augment import MixParams, MixTransform
from mixkit.augment.transforms.cutmix import OfficialBoxCutMix

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


class SegMixer:
    """A mixer (``None``: no mixing) applied to the four tensors of a segmentation batch."""

    def __init__(self, name: str, mixer: MixTransform | None) -> None:
        self.name = name
        self.mixer = mixer

    def draw(
        self,
        batch_shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None,
        label_maps: Tensor | None = None,
    ) -> MixParams:
        """Params for a (B, C, H, W) batch. ``label_maps`` (B, H, W) int: the maps ClassMix
        picks classes from (teacher argmax), ignored by the other mixers."""
        shape = tuple(batch_shape)
        if len(shape) != 4 or min(shape) < 1:
            raise ValueError(f"batch_shape must be (B, C, H, W) with sizes >= 1, got {shape}")
        if self.mixer is None:
            return MixParams.identity(shape[0], shape[2:])
        context = {"label_maps": label_maps} if isinstance(self.mixer, augment.ClassMix) else {}
        return self.mixer.draw(shape, generator, **context)

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
        if probs is not None and (probs.ndim != 4 or not probs.is_floating_point()):
            raise ValueError(f"probs must be (B, K, H, W) float, got {probs.dtype} {probs.shape}")
        if valid is not None and (valid.dtype != torch.bool or valid.ndim != 3):
            raise ValueError(f"valid must be (B, H, W) bool, got {valid.dtype} {valid.shape}")
        kernel = augment.apply.mix_tensors if self.mixer is None else self.mixer._kernel

        def masks(t: Tensor | None) -> Tensor | None:
            return None if t is None else augment.apply_masks(params, t, kernel=kernel)

        out_img = None
        if images is not None:
            out_img = augment.apply_images(params, images, kernel=kernel)
        out_v = None if valid is None else masks(valid.to(torch.uint8)).bool()
        return SegMixed(out_img, masks(probs), masks(labels), out_v, params)

    def __repr__(self) -> str:
        return f"SegMixer({self.name!r}, {self.mixer!r})"


class RandBbox1CutMix(OfficialBoxCutMix):
    """CutMix with the box law of ``rand_bbox_1`` (Dual Teacher
    ``seg_core/augmentations.py``, PS-MT ``VocCode/train.py``): the centre is drawn from
    ``randint(side // 8, side)`` on each axis, the side is ``2 * (int(side * sqrt(1 - λ)) //
    2)``, the box is clipped."""

    def _centre_from(self, height: int, width: int) -> tuple[int, int]:
        return height // 8, width // 8


def build_seg_mixer(
    name: str,
    *,
    num_classes: int,
    alpha: float = 4.0,
    per_sample_lam: bool = False,
    pairing: str = "random",
    n_boxes: int = 3,
    classmix_half: str = "floor",
    box: str = "official",
) -> SegMixer:
    """The mixer ``name`` (one of ``MIXERS``). alpha: λ ~ Beta(alpha, alpha) (4 in PS-MT and
    Dual Teacher); per_sample_lam: a λ per sample (official: one per batch); pairing:
    ``mixkit.ops.PAIRINGS`` (``random`` = ``torch.randperm`` as in both official codes);
    box: the cutmix box law, ``official`` (:class:`RandBbox1CutMix`) or ``uniform``."""
    if box not in ("official", "uniform"):
        raise ValueError(f"box must be 'official' or 'uniform', got {box!r}")
    share = {"share_lam": not per_sample_lam, "pairing": pairing, "check_finite": False}
    if name == "none":
        return SegMixer(name, None)
    if name == "cutmix":
        cls = RandBbox1CutMix if box == "official" else augment.CutMix
        return SegMixer(name, cls(alpha, **share))
    if name == "classmix":
        mixer = augment.ClassMix(num_classes, classmix_half, pairing=pairing, check_finite=False)
        return SegMixer(name, mixer)
    if name == "multibox":
        return SegMixer(name, augment.MultiBoxCutMix(alpha, num_boxes=n_boxes, **share))
    if name == "fmix":
        return SegMixer(name, augment.FMix(alpha, **share))
    raise ValueError(f"mix must be one of {list(MIXERS)}, got {name!r}")
