"""ClassMix (Olsson et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from mixkit import ops
from mixkit.augment.base import MixTransform, Region
from mixkit.augment.params import Kind
from mixkit.augment.settings import check_choice
from mixkit.ops.masks import HALVES


@dataclass(eq=False, repr=False)
class ClassMix(MixTransform):
    """ClassMix: paste the partner's pixels of half of the classes present in the partner's
    label map. Needs the label maps: ``forward(images, masks=maps)`` uses the masks;
    ``draw(shape, label_maps=maps)`` for the explicit form (e.g. teacher argmax maps). The
    class choice runs on the maps' device (scores from the CPU generator, no host read), so
    the params' ``lam`` and ``mask`` live there. The draw is per sample in both modes; ``p``
    gates per sample (elem) or per batch.

    Args:
        num_classes: K; ids outside [0, K) (the ignore index) are never classes.
        half: ``"ceil"`` (the paper, ``(n + n % 2) / 2`` classes) or ``"floor"`` (Dual
            Teacher ``get_bin_mask``, ``(n - n % 2) / 2``).
        p, mode, label_smoothing, multilabel, pairing, ignore_index,
            min_visibility, generator, check_finite, check_layout: as in ``MixTransform``.
    """

    num_classes: int = field()  # required here (no inherited default)
    half: str = "ceil"

    def __post_init__(self) -> None:
        if self.num_classes is None:
            raise ValueError("num_classes is required for ClassMix")
        check_choice(self.half, "half", HALVES)
        super().__post_init__()
        self.last_classes: Tensor | None = None

    def _context(self, labels: Tensor | None, masks: Tensor | None) -> dict[str, Any]:
        return {} if masks is None or masks.ndim != 3 else {"label_maps": masks}

    def _draw_region(
        self, n, height, width, generator, *, perm: Tensor, label_maps: Tensor | None = None, **ctx
    ) -> Region:
        if label_maps is None:
            raise ValueError("label_maps (B, H, W) are required to draw ClassMix params")
        b = perm.shape[0]
        if not isinstance(label_maps, Tensor) or tuple(label_maps.shape) != (b, height, width):
            got = tuple(label_maps.shape) if isinstance(label_maps, Tensor) else label_maps
            raise ValueError(f"label_maps must have shape {(b, height, width)}, got {got}")
        chosen = ops.sample_classmix_classes(label_maps, self.num_classes, generator, self.half)
        on_maps = perm.to(label_maps.device, non_blocking=True)
        classes = chosen.index_select(0, on_maps)  # the partner's chosen classes
        self.last_classes = classes
        mask = ops.classmix_mask(label_maps.index_select(0, on_maps), classes)
        return Region.of_mask(Kind.MASK, mask)
