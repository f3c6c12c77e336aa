"""RecursiveMix (Yang et al., NeurIPS 2022), the augment: each batch gets the *previous
mixed batch* (images, soft labels) resized into one box, so a batch k steps back survives with
label weight ``Π (1 - λ)`` over the k steps. Facts below cite the official code
(implus/RecursiveMix-pytorch @ed381bf, ``main.py::train`` and ``utils.py::recursive_mix``,
and ``utils.py::rand_bbox``).

:class:`RecursiveMix` is a ``MixTransform``: ``draw``/``apply`` are pure, ``forward`` also
stores the history. The ROI consistency term lives in :mod:`mixkit.methods.recursivemix.loss`
and the training step in :mod:`mixkit.methods.recursivemix.step`; this module depends on
:mod:`mixkit.augment` and :mod:`mixkit.ops` only.

Fixed bug of the official code: ``np.int`` (removed in NumPy 1.24).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mixkit import ops
from mixkit.augment.base import Mixed, MixTransform, Region, batch_hw, make_generator
from mixkit.augment.params import RESIZE_MODES, Kind, MixParams
from mixkit.augment.settings import check_choice, check_flag, is_number
from mixkit.ops import pixels

INTERPOLATIONS = RESIZE_MODES


@dataclass(eq=False, repr=False)
class RecursiveMix(MixTransform):
    """Paste the previous mixed batch, resized, into a box of each new batch.

    Per call (official ``utils.py::recursive_mix``): area fraction ``r ~ U(0, alpha)``; box
    sides ``floor(H·√r)``, ``floor(W·√r)``, centre uniform over all pixels, realised as
    ``c ± side//2`` and clipped to the image (the official/CutMix ``rand_bbox``, so an odd
    side loses a pixel: E[1-λ] ≈ 0.166 at 32x32 for alpha=0.5); the whole previous batch
    ``prev[i]`` is resized into sample i's box (no permutation); λ = 1 - clipped box area /
    image area; targets ``λ·y + (1-λ)·y_prev`` where ``y_prev`` is the previous *mixed*
    target, hence the recursion.

    State: the previous mixed images (B', C, H, W), targets (B', K) and, once
    :meth:`remember` is called, the model's logits on them (B', K). With no history (first
    batch, or after :meth:`reset`, which the paper calls at every epoch start) λ = 1 and the
    batch is returned unchanged. A batch smaller than the stored one (a short last batch)
    uses the first B stored samples (official ``old_x[:bs]``); a larger one is an error.

    Args:
        alpha: upper bound of the pasted area fraction, in (0, 1] (paper default 0.5).
        interpolation: ``nearest`` (official default) or ``bilinear`` (``align_corners=False``;
            the official bilinear path uses ``align_corners=True``).
        per_sample: one box per sample (vectorised; beyond the paper) instead of one box and
            one λ for the whole batch (paper).
        p: probability that a batch (or a sample, if ``per_sample``) is mixed (paper: 1).
        num_classes, label_smoothing, multilabel, generator, check_finite, check_layout: as
            in ``MixTransform``.
    """

    alpha: float = 0.5
    interpolation: str = "nearest"
    per_sample: bool = False
    # fixed by the method: the mode follows per_sample, the partner is the history
    mode: str = field(default="batch", init=False)
    pairing: str = field(default="cycle", init=False)
    ignore_index: int = field(default=255, init=False)
    min_visibility: float = field(default=0.25, init=False)

    def __post_init__(self) -> None:
        self.mode = "elem" if check_flag(self.per_sample, "per_sample") else "batch"
        super().__post_init__()
        alpha = self.alpha
        if not is_number(alpha) or not 0 < alpha <= 1:
            raise ValueError(f"alpha must be an area fraction in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        check_choice(self.interpolation, "interpolation", INTERPOLATIONS)
        self._images: Tensor | None = None
        self._targets: Tensor | None = None
        self._logits: Tensor | None = None

    # ----------------------------------------------------------------- history
    def reset(self) -> None:
        """Forget the history (call at every epoch start: official ``old_inputs = None``)."""
        self._images = self._targets = self._logits = None

    @property
    def has_history(self) -> bool:
        return self._images is not None

    @property
    def history_images(self) -> Tensor | None:
        """(B', C, H, W) previous mixed batch (float or uint8, as given), or None."""
        return self._images

    @property
    def history_targets(self) -> Tensor | None:
        """(B', K) float32 previous mixed targets, or None."""
        return self._targets

    @property
    def history_logits(self) -> Tensor | None:
        """(B', K) float logits the model gave the previous mixed batch (see :meth:`remember`)."""
        return self._logits

    def remember(self, logits: Tensor) -> None:
        """Store the model's (B, K) float logits on the batch last returned by ``forward``."""
        if self._images is None:
            raise ValueError("remember(logits) must follow a forward() call that stored a batch")
        b = self._images.shape[0]
        if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != b:
            got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"logits must have shape ({b}, K) like the stored batch, got {got}")
        self._logits = logits.detach().clone()

    def _history(self, name: str, stored: Tensor | None, b: int, like: Tensor) -> Tensor:
        """First ``b`` stored rows, checked against ``like`` (the current batch)."""
        if stored is None:
            raise ValueError(f"RecursiveMix has no history {name} to mix with")
        if stored.shape[0] < b:
            raise ValueError(
                f"batch of {b} is larger than the stored history of {stored.shape[0]}: call "
                "reset() at every epoch start (a last batch may only be smaller)"
            )
        if stored.shape[1:] != like.shape[1:]:
            raise ValueError(
                f"{name} have shape {tuple(like.shape[1:])} per sample but the history has "
                f"{tuple(stored.shape[1:])}: call reset() when the input shape changes"
            )
        return stored[:b].to(like.device)

    # ----------------------------------------------------------------- draw
    def _extras(self) -> dict[str, Any]:
        return {"resize_mode": self.interpolation}

    def _draw_region(self, n, height, width, generator, **context) -> Region:
        # Official utils.py::recursive_mix rand_bbox: cut_rat = sqrt(U(0, alpha)),
        # cut = int(side * cut_rat), box = clip(c -/+ cut // 2) with c ~ randint(side).
        area = ops.sample_uniform(0.0, self.alpha, n, generator)
        box_h, box_w = ops.official_cut_size(area, height, width)
        boxes = ops.sample_boxes_centred(box_h, box_w, height, width, generator)
        return Region.of_boxes(Kind.RESIZE, boxes, height, width)

    def draw(
        self,
        batch_shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | int | None = None,
        **context: Any,
    ) -> MixParams:
        """Draw boxes/λ for a batch (B, C, H, W): int64 boxes, float32 λ; identity params
        (λ=1) without history.

        ``perm`` is the identity: sample i receives history sample i. CPU tensors.
        """
        b, h, w = batch_hw(batch_shape)
        if self._images is None:
            return MixParams.identity(b, (h, w)).replace(**self._extras())
        gen = self.generator if generator is None else make_generator(generator)
        n = b if self.mode == "elem" else 1
        applied = ops.sample_bernoulli(self.p, n, gen)
        region = self._draw_region(n, h, w, gen)
        return self._finish(region, applied, torch.arange(b), b, (h, w), self_pairs=False)

    # ----------------------------------------------------------------- apply
    mixes_masks = False

    def _source(self, params: MixParams, images: Tensor) -> Tensor | None:
        """The first B stored images (B, C, H, W), or None when nothing is mixed (``kind``
        is a CPU tensor: no device sync)."""
        if not bool(params.applied.any()):
            return None
        return self._history("images", self._images, params.batch_size, images)

    def _mix_targets(self, params: MixParams, targets: Tensor) -> Tensor:
        """``λ·y + (1-λ)·y_prev`` with the previous mixed (B, K) float targets."""
        if not bool(params.applied.any()):
            return targets
        previous = self._history("targets", self._targets, params.batch_size, targets)
        lam = params.label_lam.to(targets.device, targets.dtype, non_blocking=True)
        return pixels.lerp_exact(previous, targets, lam[:, None])

    def _remember(self, mixed: Mixed) -> None:
        """Store the mixed batch and its targets as the new history; clear the logits.
        Official ``main.py::train`` stores the MIXED input and label (``clone().detach()``);
        call :meth:`remember` with the model's logits on the batch for the ROI loss."""
        self._images = mixed.images.detach().clone()
        self._targets = None if mixed.labels is None else mixed.labels.detach().clone()
        self._logits = None

    # ----------------------------------------------------------------- checkpoint
    def get_extra_state(self) -> dict[str, Tensor | None]:
        """History and generator state, saved by ``state_dict()`` under ``_extra_state``:
        (B', C, H, W) images, (B', K) float32 targets and logits, the uint8 generator state
        (tensors and None only, so ``torch.load(weights_only=True)`` reads it back)."""
        return {
            "images": self._images,
            "targets": self._targets,
            "logits": self._logits,
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def set_extra_state(self, state: Any) -> None:
        keys = {"images", "targets", "logits", "generator"}
        if not isinstance(state, dict) or set(state) != keys:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(
                f"RecursiveMix state must be a dict with keys {sorted(keys)}, got {got}"
            )
        images, targets, logits = state["images"], state["targets"], state["logits"]
        for name, t in (("targets", targets), ("logits", logits)):
            if t is not None and (images is None or t.ndim != 2 or t.shape[0] != images.shape[0]):
                raise ValueError(f"RecursiveMix state: {name} must be (B, K) matching the images")
        self._images, self._targets, self._logits = images, targets, logits
        if state["generator"] is not None and self.generator is not None:
            self.generator.set_state(state["generator"].cpu())
