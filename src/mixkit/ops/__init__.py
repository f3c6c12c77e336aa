"""Pure batched tensor ops (no hidden randomness): sampling helpers take a CPU generator,
pixel/label/mask ops take explicit parameters and run on the inputs' device with no host
reads of device data."""

from mixkit.ops.detection import (
    box_areas,
    intersect_region,
    resize_boxes_into,
    visible_fraction_box,
    visible_fraction_mask,
)
from mixkit.ops.labels import mix_targets, one_hot, smooth, to_targets
from mixkit.ops.masks import classmix_mask, fmix_mask, present_classes, sample_classmix_classes
from mixkit.ops.pixels import (
    blend,
    box_mask,
    cutmix,
    cutout,
    mask_mix,
    mixup,
    paste_region,
    resize_into_boxes,
    resize_paste,
    resizemix,
)
from mixkit.ops.sampling import (
    PAIRINGS,
    box_area_fraction,
    cut_size,
    official_cut_size,
    sample_bernoulli,
    sample_beta,
    sample_boxes,
    sample_boxes_centred,
    sample_boxes_inside,
    sample_pairing,
    sample_uniform,
)

__all__ = [
    "blend",
    "box_mask",
    "classmix_mask",
    "cutmix",
    "cutout",
    "fmix_mask",
    "mask_mix",
    "mix_targets",
    "mixup",
    "official_cut_size",
    "one_hot",
    "paste_region",
    "resize_into_boxes",
    "resize_paste",
    "resizemix",
    "sample_beta",
    "sample_boxes",
    "sample_boxes_centred",
    "sample_boxes_inside",
    "sample_classmix_classes",
    "sample_pairing",
    "smooth",
    "to_targets",
]
