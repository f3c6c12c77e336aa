"""Params/apply mixing modules: one random draw, applied consistently to images, labels,
segmentation masks and detection boxes."""

from mixkit.augment.apply import BoxBatch, apply_boxes, apply_images, apply_masks, apply_targets
from mixkit.augment.base import MODES, Mixed, MixTransform, Region, make_generator
from mixkit.augment.compile import compile
from mixkit.augment.params import Kind, MixParams
from mixkit.augment.registry import AUGMENTS, build_augment
from mixkit.augment.transforms import (
    ClassMix,
    CutMix,
    Cutout,
    FMix,
    MixUp,
    MixUpCutMix,
    MultiBoxCutMix,
    RandomChoice,
    RecursiveMix,
    ResizeMix,
)

__all__ = [
    "AUGMENTS",
    "BoxBatch",
    "ClassMix",
    "CutMix",
    "Cutout",
    "FMix",
    "Kind",
    "MixParams",
    "MixTransform",
    "MixUp",
    "MixUpCutMix",
    "MultiBoxCutMix",
    "Mixed",
    "RandomChoice",
    "RecursiveMix",
    "ResizeMix",
    "apply_boxes",
    "apply_images",
    "apply_masks",
    "apply_targets",
    "build_augment",
    "compile",
]
