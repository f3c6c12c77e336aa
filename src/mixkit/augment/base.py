"""``MixTransform``: the shared draw/apply machinery of every mixer module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from mixkit import ops
from mixkit.augment.apply import (
    BoxBatch,
    Kernel,
    apply_boxes,
    apply_images,
    apply_masks,
    apply_targets,
    keep_type,
    mix_tensors,
)
from mixkit.augment.params import Kind, MixParams
from mixkit.augment.settings import check_choice, check_flag, check_fraction, settings_repr
from mixkit.ops import checks

MODES = ("batch", "elem")


class Mixed(NamedTuple):
    """Outputs of ``MixTransform.apply``; fields not given are None.

    images (B, C, H, W) (input dtype), labels (B, K) float32 targets, masks (B, H, W) int
    or (B, K, H, W) float (input dtype), boxes a ``BoxBatch`` with 2N slots per image."""

    images: Tensor | None
    labels: Tensor | None
    masks: Tensor | None
    boxes: BoxBatch | None
    params: MixParams


@dataclass
class Region:
    """What a subclass draws for n independent draws (n = B, or 1 in batch mode), CPU
    tensors: kind (n,) int64, lam (n,) float64 exact kept fraction, boxes (n, 4) int64 or
    None, mask (n, H, W) bool or None (ClassMix: on the label maps' device)."""

    kind: Tensor
    lam: Tensor
    boxes: Tensor | None = None
    mask: Tensor | None = None

    @classmethod
    def of_boxes(cls, kind: Kind, boxes: Tensor, height: int, width: int) -> Region:
        """A box region from (n, 4) int64 boxes, λ the kept pixel fraction."""
        lam = 1 - ops.box_area_fraction(boxes, height, width)
        return cls(kind_array(len(boxes), kind), lam, boxes)

    @classmethod
    def of_mask(cls, kind: Kind, mask: Tensor) -> Region:
        """A mask region from (n, H, W) bool, λ the kept pixel fraction (mask's device)."""
        lam = 1 - mask.flatten(1).double().mean(1)
        return cls(kind_array(mask.shape[0], kind), lam, mask=mask)


def kind_array(n: int, kind: Kind) -> Tensor:
    """(n,) int64 CPU tensor holding one ``Kind`` (a region's kind)."""
    return torch.full((n,), int(kind), dtype=torch.long)


def make_generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    """Accept a CPU ``torch.Generator``, an int seed, or None (torch's global RNG)."""
    if generator is None or isinstance(generator, torch.Generator):
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(
                "generator must be a CPU torch.Generator (params are drawn on the CPU), "
                f"got one on {generator.device}"
            )
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
    raise ValueError(f"generator must be a torch.Generator, an int seed or None, got {generator!r}")


def batch_hw(batch_shape: tuple[int, ...] | torch.Size) -> tuple[int, int, int]:
    shape = tuple(batch_shape)
    if len(shape) != 4 or any(not isinstance(s, int) or s < 0 for s in shape):
        raise ValueError(f"batch_shape must be (B, C, H, W), got {shape}")
    b, _, h, w = shape
    if b < 1 or h < 1 or w < 1:
        raise ValueError(f"batch_shape must have B, H, W >= 1, got {shape}")
    return b, h, w


@dataclass(eq=False, repr=False, kw_only=True)
class MixTransform(torch.nn.Module):
    """Base class: a random ``draw`` of ``MixParams`` and a deterministic ``apply``.

    Args:
        p: probability that a sample (``mode="elem"``) or the whole batch (``"batch"``) is
            mixed; each draw is an independent Bernoulli(p), so the rate is exactly p.
        mode: ``"elem"`` draws λ, box and the p-gate per sample (vectorised); ``"batch"``
            draws one for the whole batch (timm's default, torchvision's only mode).
        num_classes: K, required for integer class-id labels.
        label_smoothing: s; targets become ``(1-s)*y + s/K`` before mixing (timm).
        multilabel: labels (B, K) are independent 0/1 (or soft) entries, rows need not sum to 1.
        pairing: partner choice, one of ``ops.PAIRINGS`` (default a random B-cycle).
        ignore_index: mask value written where Cutout removes pixels; never treated as a class.
        min_visibility: boxes with a smaller visible fraction are dropped.
        generator: CPU ``torch.Generator`` or int seed; None uses torch's global RNG.
        check_finite: ``apply`` raises ValueError for float CPU images/masks holding NaN
            or Inf (one extra read of the batch); not checked on other devices (that would
            need a host read of device data); False mixes them as given.
        check_layout: images (B, C, H, W) with more than 4 channels but a last dim of 1, 3
            or 4 are a channels-last batch read the wrong way: ValueError suggesting
            ``images.permute(0, 3, 1, 2)``. Set False for real many-channel images with a
            tiny width. A shape check only; masks and probability maps are never checked.

    Outputs keep the tensor subclass of the inputs (torchvision ``tv_tensors.Image``,
    ``Mask``, ...). ``repr`` lists every argument that differs from its default.

    The settings are dataclass fields, so a subclass declares only its own: decorated with
    ``@dataclass(eq=False, repr=False)`` (a module hashes by identity and keeps its
    ``repr``), its fields come first in the signature (positional), these stay keyword-only,
    and its ``__post_init__`` calls ``super().__post_init__()`` before checking its own.
    """

    p: float = 1.0
    mode: str = "elem"
    num_classes: int | None = None
    label_smoothing: float = 0.0
    multilabel: bool = False
    pairing: str = "cycle"
    ignore_index: int = 255
    min_visibility: float = 0.25
    generator: torch.Generator | int | None = None
    check_finite: bool = True
    check_layout: bool = True

    def __post_init__(self) -> None:
        super().__init__()  # nn.Module's state; the fields above are plain attributes
        p, num_classes, ignore_index = self.p, self.num_classes, self.ignore_index
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        check_choice(self.mode, "mode", MODES)
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
        ):
            raise ValueError(f"num_classes must be an int >= 1 or None, got {num_classes!r}")
        check_fraction(self.label_smoothing, "label_smoothing", open_high=True)
        check_choice(self.pairing, "pairing", ops.PAIRINGS)
        check_fraction(self.min_visibility, "min_visibility")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise ValueError(f"ignore_index must be an int, got {ignore_index!r}")
        for flag in ("multilabel", "check_finite", "check_layout"):
            check_flag(getattr(self, flag), flag)
        self.p = float(p)
        self.label_smoothing = float(self.label_smoothing)
        self.min_visibility = float(self.min_visibility)
        self.generator = make_generator(self.generator)
        self.last_params: MixParams | None = None
        self._kernel: Kernel = mix_tensors  # mixkit.compile swaps in the compiled kernel

    blends = False  # whether draws can hold BLEND samples (then class-id masks are refused)
    mixes_masks = True  # False: images and labels only (masks and boxes refused)

    # ----------------------------------------------------------------- random draw
    def _draw_region(
        self, n: int, height: int, width: int, generator: torch.Generator | None, **context: Any
    ) -> Region:
        raise NotImplementedError

    def _extras(self) -> dict[str, Any]:
        """Scalar fields of MixParams set by the subclass (fill, resize_mode)."""
        return {}

    def draw(
        self,
        batch_shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | int | None = None,
        **context: Any,
    ) -> MixParams:
        """Draw the parameters for a batch of shape (B, C, H, W) (CPU tensors): a
        ``MixParams`` with (B,) int64 kind and perm, (B,) float32 lam, (B, 4) int64 boxes.

        ``generator`` overrides the module's generator for this draw.
        """
        b, h, w = batch_hw(batch_shape)
        gen = self.generator if generator is None else make_generator(generator)
        n = b if self.mode == "elem" else 1
        perm = ops.sample_pairing(b, self.pairing, gen)
        applied = ops.sample_bernoulli(self.p, n, gen)
        region = self._draw_region(n, h, w, gen, perm=perm, **context)
        return self._finish(region, applied, perm, b, (h, w))

    def _finish(
        self,
        region: Region,
        applied: Tensor,
        perm: Tensor,
        b: int,
        size: tuple[int, int],
        self_pairs: bool = True,
    ) -> MixParams:
        """Gate the region with ``applied`` (n,) bool, expand n = 1 draws to the batch of b,
        and (``self_pairs``) mark samples paired with themselves, which no mixer changes,
        NONE with λ = 1."""
        kind, lam = region.kind, region.lam
        boxes = region.boxes if region.boxes is not None else torch.zeros(1, 4, dtype=torch.long)
        kind, lam, boxes = (t.expand(b, *t.shape[1:]) for t in (kind, lam, boxes))
        keep = applied.expand(b)
        if self_pairs:
            keep = keep & (perm != torch.arange(b))
        kind = torch.where(keep, kind, int(Kind.NONE))
        lam = torch.where(keep.to(lam.device, non_blocking=True), lam, 1.0).float()
        boxes = boxes * keep.view(-1, 1)
        mask = region.mask
        if mask is not None:
            mask = mask.expand(b, *mask.shape[1:]) & keep.to(mask.device).view(-1, 1, 1)
        return MixParams(kind, lam, perm, boxes, size, mask, **self._extras())

    # ----------------------------------------------------------------- apply
    def apply(
        self,
        params: MixParams,
        images: Tensor | None = None,
        labels: Tensor | None = None,
        masks: Tensor | None = None,
        boxes: BoxBatch | tuple[Tensor, Tensor, Tensor] | None = None,
        *,
        out: Tensor | None = None,
        inplace: bool = False,
    ) -> Mixed:
        """Apply ``params`` to any of images (B, C, H, W), labels ((B,) int ids or (B, K)
        one-hot/soft/multi-label), masks ((B, H, W) int ids or (B, K, H, W) float) and
        boxes (``BoxBatch``). Labels come back as (B, K) float targets, on the images'
        device. ``out=`` writes the mixed images into a preallocated tensor (same shape,
        dtype and device as images), ``inplace=True`` overwrites ``images``; by default the
        inputs are never modified."""
        self._check_inputs(params, images=images, labels=labels, masks=masks)
        if not self.mixes_masks and (masks is not None or boxes is not None):
            raise ValueError(
                f"{type(self).__name__} mixes images and labels only (no masks or boxes)"
            )
        kernel = self._kernel
        mixed_images = None
        if images is not None:
            source = self._source(params, images)
            mixed = apply_images(
                params, images, out=out, inplace=inplace, kernel=kernel, source=source
            )
            mixed_images = keep_type(mixed, images)
        mixed_labels = None
        if labels is not None:
            mixed_labels = self._mix_targets(params, self._as_targets(labels, images))
        mixed_masks = None
        if masks is not None:
            class_ids = masks.ndim == 3 and not masks.is_floating_point()
            if self.blends and class_ids and masks.dtype != torch.bool:
                raise ValueError(
                    "masks: MixUp (BLEND) cannot mix integer class-id masks "
                    f"({type(self).__name__}); pass (B, K, H, W) float probability maps instead"
                )
            mixed_masks = apply_masks(params, masks, self.ignore_index, kernel=kernel)
            mixed_masks = keep_type(mixed_masks, masks)
        mixed_boxes = None
        if boxes is not None:
            mixed_boxes = apply_boxes(params, BoxBatch(*boxes), self.min_visibility)
        return Mixed(mixed_images, mixed_labels, mixed_masks, mixed_boxes, params)

    def _source(self, params: MixParams, images: Tensor) -> Tensor | None:
        """What is pasted into the images: None for the partners ``images[perm]``
        (RecursiveMix: its stored history)."""
        return None

    def _mix_targets(self, params: MixParams, targets: Tensor) -> Tensor:
        """(B, K) float targets mixed like the images (RecursiveMix: with the history's)."""
        return apply_targets(params, targets)

    def _remember(self, mixed: Mixed) -> None:
        """Called by ``forward`` with its result (RecursiveMix stores it as the history)."""

    def _check_inputs(self, params: MixParams, **tensors: Tensor | None) -> None:
        """Each given tensor has the params' batch size; images are channels first (unless
        ``check_layout=False``); float CPU images/masks are finite (unless
        ``check_finite=False``; not checked on other devices, where reading the result would
        need a sync). Raises ValueError naming the argument."""
        b = params.batch_size
        for name, t in tensors.items():
            if t is None:
                continue
            if not isinstance(t, Tensor) or t.ndim == 0 or t.shape[0] != b:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"{name} must have batch size {b} to match the params, got {got}")
            if name == "images":
                self._check_layout(t)
            if self.check_finite and name != "labels":
                checks.check_finite(t, name)

    def _check_layout(self, images: Tensor) -> None:
        """The channels-last guard on images (B, C, H, W): shape only, masks never."""
        if self.check_layout and images.ndim == 4:
            checks.check_channels_first(images.shape, "images")

    def _as_targets(self, labels: Tensor, images: Tensor | None) -> Tensor:
        """Labels ((B,) ids or (B, K)) as (B, K) float targets (smoothed), on the images'
        device (moved there first, so the one-hot runs on the device)."""
        if images is not None and labels.device != images.device:
            labels = labels.to(images.device, non_blocking=True)
        return ops.to_targets(
            labels, self.num_classes, multilabel=self.multilabel, smoothing=self.label_smoothing
        )

    def forward(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        masks: Tensor | None = None,
        boxes: BoxBatch | None = None,
        *,
        params: MixParams | None = None,
        generator: torch.Generator | int | None = None,
        out: Tensor | None = None,
        inplace: bool = False,
    ) -> Any:
        """Draw (unless ``params`` is given) and apply to images (B, C, H, W) float or uint8
        and optional labels ((B,) int64 or (B, K) float), masks and boxes (see ``apply``).
        Returns the mixed inputs in the order given: ``images`` alone, or a tuple
        ``(images, labels[, masks][, boxes])`` of the arguments that were not None. The
        draw is kept in ``self.last_params``."""
        if not isinstance(images, Tensor) or images.ndim != 4:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be a tensor of shape (B, C, H, W), got {got}")
        if images.shape[0] == 0:
            raise ValueError(f"images must hold at least one sample, got {tuple(images.shape)}")
        self._check_layout(images)  # before the draw: a refused batch consumes no randomness
        if params is None:
            params = self.draw(images.shape, generator, **self._context(labels, masks))
        self.last_params = params
        res = self.apply(params, images, labels, masks, boxes, out=out, inplace=inplace)
        self._remember(res)
        given = [res.images] + [
            r
            for r, a in ((res.labels, labels), (res.masks, masks), (res.boxes, boxes))
            if a is not None
        ]
        return given[0] if len(given) == 1 else tuple(given)

    def _context(self, labels: Tensor | None, masks: Tensor | None) -> dict[str, Any]:
        """Extra inputs a data-dependent draw needs (ClassMix uses the masks)."""
        return {}

    def extra_repr(self) -> str:
        """Every constructor argument that differs from its default (``settings_repr``)."""
        return settings_repr(self)
