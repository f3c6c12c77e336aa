"""RecursiveMix (Yang et al., NeurIPS 2022): mixed learning with history.

Each training batch gets the *previous mixed batch* (images, soft labels) resized into one box,
so a batch k steps back survives with label weight ``Π (1 - λ)`` over the k steps; a separate
ROI head, fed the 1x1 ROI-Aligned final feature map of the box, is trained to predict the
softmax of the logits the model gave the previous batch. Facts below cite the official code
(implus/RecursiveMix-pytorch @ed381bf, ``main.py::train`` and ``utils.py::recursive_mix``,
summarised in ``shared/REFERENCE.md`` §1).

Pieces:
    - :class:`RecursiveMix`: the stateful augment (a ``MixTransform``: ``draw``/``apply`` are
      pure, ``forward`` also stores the history).
    - :class:`RoIHead` and :func:`recursive_mix_loss`: the consistency term.
    - :class:`RecursiveMixStep`: one training step for any model exposing ``features(x)`` and
      ``head(f)`` (every ``mixkit.models`` model; wrap others with :class:`FeatureModel`).

Fixed bugs of the official code: ``np.int`` (NumPy >= 1.24); ``roi_feat.squeeze()`` that
breaks a batch of 1; the ROI box handed to ``roi_align`` with rows and columns swapped (the
paste indexes ``x[:, :, bbx1:bbx2, bby1:bby2]`` but the box is given as ``x1=bbx1``); here the
ROI box is the pasted box.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit import losses, ops
from mixkit.augment.base import Mixed, MixTransform, Region, batch_hw, make_generator
from mixkit.augment.params import Kind, MixParams
from mixkit.ops import sampling
from mixkit.roi_align import roi_align

__all__ = [
    "RecursiveMix",
    "RoIHead",
    "FeatureModel",
    "RecursiveMixStep",
    "RecursiveMixOutput",
    "recursive_mix_loss",
    "save_mix_grid_for",
    "INTERPOLATIONS",
]

INTERPOLATIONS = ("nearest", "bilinear")


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
        num_classes, label_smoothing, multilabel, generator: as in ``MixTransform``.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        interpolation: str = "nearest",
        per_sample: bool = False,
        *,
        p: float = 1.0,
        num_classes: int | None = None,
        label_smoothing: float = 0.0,
        multilabel: bool = False,
        generator: torch.Generator | int | None = None,
    ) -> None:
        super().__init__(
            p=p,
            mode="elem" if per_sample else "batch",
            num_classes=num_classes,
            label_smoothing=label_smoothing,
            multilabel=multilabel,
            generator=generator,
        )
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha <= 1:
            raise ValueError(f"alpha must be an area fraction in (0, 1], got {alpha!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}"
            )
        self.alpha = float(alpha)
        self.interpolation = interpolation
        self.per_sample = bool(per_sample)
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
        """(B', C, H, W) previous mixed batch, or None."""
        return self._images

    @property
    def history_targets(self) -> Tensor | None:
        """(B', K) previous mixed targets, or None."""
        return self._targets

    @property
    def history_logits(self) -> Tensor | None:
        """(B', K) logits the model gave the previous mixed batch (see :meth:`remember`)."""
        return self._logits

    def remember(self, logits: Tensor) -> None:
        """Store the model's (B, K) logits on the batch last returned by ``forward``."""
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
        # numpy arithmetic on torch's draws: the bytes of the torch formulas (ops.sampling).
        ratio = np.sqrt(sampling.draw_uniform(0.0, self.alpha, n, generator))
        half_h = np.floor(ratio * height).astype(np.int64) // 2
        half_w = np.floor(ratio * width).astype(np.int64) // 2
        boxes = sampling.draw_boxes_centred(2 * half_h, 2 * half_w, height, width, generator)
        return Region.of_boxes(Kind.RESIZE, boxes, height, width)

    def draw(
        self,
        batch_shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | int | None = None,
        **context: Any,
    ) -> MixParams:
        """Draw boxes/λ for a batch (B, C, H, W); identity params (λ=1) without history.

        ``perm`` is the identity: sample i receives history sample i. CPU tensors.
        """
        b, h, w = batch_hw(batch_shape)
        if self._images is None:
            return MixParams.identity(b, (h, w)).replace(**self._extras())
        gen = self.generator if generator is None else make_generator(generator)
        n = b if self.mode == "elem" else 1
        applied = sampling.draw_bernoulli(self.p, n, gen)
        region = self._draw_region(n, h, w, gen)
        return self._finish(region, applied, np.arange(b, dtype=np.int64), b, (h, w))

    # ----------------------------------------------------------------- apply
    def apply(
        self,
        params: MixParams,
        images: Tensor | None = None,
        labels: Tensor | None = None,
        masks: Tensor | None = None,
        boxes: Any = None,
        *,
        out: Tensor | None = None,
    ) -> Mixed:
        """Mix images (B, C, H, W) and labels ((B,) ids or (B, K)) with the stored history.
        Pure: the history is read, not updated. Labels come back as (B, K) float targets."""
        if masks is not None or boxes is not None:
            raise ValueError("RecursiveMix mixes images and labels only (no masks or boxes)")
        b = params.batch_size
        self._check_inputs(params, images=images, labels=labels)
        mixing = bool(params.applied.any())
        mixed_images = None
        if images is not None:
            ops.pixels._check_images(images)
            params.check(b, tuple(images.shape[-2:]))
            if mixing:
                source = self._history("images", self._images, b, images)
                mixed_images = ops.resize_paste(
                    images, source, params.boxes, params.resize_mode, out=out
                )
            else:
                mixed_images = images.clone() if out is None else out.copy_(images)
        mixed_labels = None
        if labels is not None:
            targets = self._as_targets(labels, images)
            if mixing:
                previous = self._history("targets", self._targets, b, targets)
                lam = params.label_lam.to(device=targets.device, dtype=targets.dtype)[:, None]
                targets = torch.lerp(previous, targets, lam)
            mixed_labels = targets
        return Mixed(mixed_images, mixed_labels, None, None, params)

    def forward(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        masks: Tensor | None = None,
        boxes: Any = None,
        *,
        params: MixParams | None = None,
        generator: torch.Generator | int | None = None,
    ) -> Any:
        """Draw, apply and store the mixed batch (and its targets) as the new history.

        Returns ``images`` or ``(images, targets)``; the draw is in ``self.last_params``. The
        stored logits are cleared: call :meth:`remember` with the model's logits on the
        returned batch for the consistency loss.
        """
        if not isinstance(images, Tensor) or images.ndim != 4:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be a tensor of shape (B, C, H, W), got {got}")
        if params is None:
            params = self.draw(images.shape, generator)
        res = self.apply(params, images, labels, masks, boxes)
        self.last_params = params
        # Official main.py::train stores the MIXED input and label (clone().detach()).
        self._images = res.images.detach().clone()
        self._targets = None if res.labels is None else res.labels.detach().clone()
        self._logits = None
        return res.images if labels is None else (res.images, res.labels)

    # ----------------------------------------------------------------- checkpoint
    def get_extra_state(self) -> dict[str, Tensor | None]:
        """History and generator state, saved by ``state_dict()`` under ``_extra_state``
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

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, interpolation={self.interpolation!r}, "
            f"per_sample={self.per_sample}, p={self.p}, num_classes={self.num_classes}"
        )


class RoIHead(nn.Module):
    """Official ``fc_roi``: ROI-Align the final feature map over the pasted box (1x1 output,
    ``aligned=True``, adaptive sampling, ``spatial_scale = feat_W / img_W``) and apply a
    linear layer. features (B, C, h, w), boxes (B, 4) xyxy image pixels -> (B, K) logits."""

    def __init__(self, feature_dim: int, num_classes: int, output_size: int = 1) -> None:
        super().__init__()
        if feature_dim < 1 or num_classes < 1 or output_size < 1:
            raise ValueError(
                "feature_dim, num_classes and output_size must be >= 1, got "
                f"{feature_dim}, {num_classes}, {output_size}"
            )
        self.output_size = output_size
        self.fc = nn.Linear(feature_dim * output_size * output_size, num_classes)

    def pool(self, features: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
        """(B, C, s, s) ROI-Aligned features of each sample's box."""
        b = features.shape[0]
        if boxes.shape != (b, 4):
            raise ValueError(f"boxes must have shape ({b}, 4), got {tuple(boxes.shape)}")
        index = torch.arange(b, device=features.device, dtype=features.dtype)[:, None]
        rois = torch.cat([index, boxes.to(device=features.device, dtype=features.dtype)], 1)
        scale = features.shape[-1] / image_size[1]
        return roi_align(features, rois, self.output_size, scale, sampling_ratio=-1, aligned=True)

    def forward(self, features: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
        # flatten(1), not the official squeeze(): a batch of 1 keeps its batch dimension.
        return self.fc(self.pool(features, boxes, image_size).flatten(1))


class FeatureModel(nn.Module):
    """Wrap a user's backbone and classifier head into the ``features``/``head`` interface.

    ``features``: module (B, C, H, W) -> (B, D, h, w) final feature map; ``head``: module
    (B, D, h, w) -> (B, K) (e.g. ``nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    nn.Linear(D, K))``); ``feature_dim`` = D.
    """

    def __init__(self, features: nn.Module, head: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.backbone = features
        self.classifier = head
        self.feature_dim = int(feature_dim)

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def head(self, f: Tensor) -> Tensor:
        return self.classifier(f)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def recursive_mix_loss(
    logits: Tensor,
    targets: Tensor,
    roi_logits: Tensor | None = None,
    history_logits: Tensor | None = None,
    lam: Tensor | float | None = None,
    omega: float = 0.1,
) -> Tensor:
    """``CE(logits, targets) + ω · mean_i[(1-λ_i) · CE(roi_logits_i, softmax(history_i))]``.

    Soft-target CE (sum over classes, mean over the batch: official
    ``LabelSmoothingLoss``); the consistency term is official ``main.py``'s
    ``criterion(out_roi, old_out.softmax(-1)[:bs]) * omega * (1 - lam)``, with a per-sample
    λ (B,) allowed. With ``omega == 0`` or no ROI logits the result is exactly the first term.

    Shapes: logits, roi_logits, history_logits (B, K); targets (B, K) or (B,) ids; lam (B,)
    or a float.
    """
    loss = losses.soft_target_cross_entropy(logits, targets)
    if omega < 0:
        raise ValueError(f"omega must be >= 0, got {omega!r}")
    if omega == 0 or roi_logits is None:
        return loss
    if history_logits is None or lam is None:
        raise ValueError("roi_logits need history_logits and lam for the consistency term")
    if history_logits.shape != roi_logits.shape:
        raise ValueError(
            f"history_logits must match roi_logits {tuple(roi_logits.shape)}, "
            f"got {tuple(history_logits.shape)}"
        )
    teacher = F.softmax(history_logits.detach().float(), dim=1).to(roi_logits.dtype)
    per_sample = losses.soft_target_cross_entropy(roi_logits, teacher, reduction="none")
    weight = 1 - torch.as_tensor(lam, dtype=per_sample.dtype, device=per_sample.device)
    return loss + omega * (weight * per_sample).mean()


class RecursiveMixOutput(NamedTuple):
    loss: Tensor  # () total loss
    logits: Tensor  # (B, K) model logits on the mixed batch
    targets: Tensor  # (B, K) mixed soft targets
    params: MixParams  # the draw (lam, boxes)


class RecursiveMixStep(nn.Module):
    """One RecursiveMix training step: mix with history, forward, loss, store the logits.

    ``step(model, images, labels).loss`` is then back-propagated by the caller. The ROI head
    is a module of this object: give its parameters to the optimiser (e.g.
    ``build_optimizer(nn.ModuleList([model, step]))``); ``state_dict()`` holds the ROI head
    and the mixer's history.

    Args:
        mixer: the :class:`RecursiveMix` augment (its ``num_classes`` is required).
        feature_dim: channels of ``model.features(x)``.
        omega: consistency weight ω (paper: 0.1 CIFAR-scale, 0.5 ImageNet-scale).
        share_head: apply the model's own ``head`` to the ROI feature instead of a separate
            ROI head (official ``--share_fc``; default False).
    """

    def __init__(
        self, mixer: RecursiveMix, feature_dim: int, omega: float = 0.1, share_head: bool = False
    ) -> None:
        super().__init__()
        if not isinstance(mixer, RecursiveMix):
            raise ValueError(f"mixer must be a RecursiveMix, got {type(mixer).__name__}")
        if mixer.num_classes is None:
            raise ValueError("mixer.num_classes is required for the ROI head")
        if isinstance(omega, bool) or not isinstance(omega, int | float) or omega < 0:
            raise ValueError(f"omega must be a number >= 0, got {omega!r}")
        self.mixer = mixer
        self.omega = float(omega)
        self.share_head = bool(share_head)
        self.roi_head = RoIHead(feature_dim, mixer.num_classes)

    def reset(self) -> None:
        """Start of an epoch: forget the history (first batch then has λ = 1)."""
        self.mixer.reset()

    def forward(self, model: nn.Module, images: Tensor, labels: Tensor) -> RecursiveMixOutput:
        if not (
            callable(getattr(model, "features", None)) and callable(getattr(model, "head", None))
        ):
            raise ValueError(
                "model must expose features(x) and head(f); wrap it with mixkit.recursive."
                "FeatureModel(backbone, head, feature_dim)"
            )
        previous_logits = self.mixer.history_logits
        x, targets = self.mixer(images, labels)
        params = self.mixer.last_params
        features = model.features(x)
        logits = model.head(features)
        roi_logits = history = None
        if self.omega > 0 and previous_logits is not None and bool(params.applied.any()):
            boxes = params.boxes.to(x.device)
            if self.share_head:
                roi_logits = model.head(self.roi_head.pool(features, boxes, x.shape[-2:]))
            else:
                roi_logits = self.roi_head(features, boxes, x.shape[-2:])
            history = previous_logits[: x.shape[0]].to(logits.device)
        lam = params.lam.to(logits.device)
        loss = recursive_mix_loss(logits, targets, roi_logits, history, lam, self.omega)
        self.mixer.remember(logits)
        return RecursiveMixOutput(loss, logits, targets, params)


def save_mix_grid_for(
    ds: Any, mixer: RecursiveMix, n: int, path: str | Path, *, seed: int = 0, steps: int = 3
) -> Path:
    """Grid of ``n`` training images after ``steps`` recursive mixes of consecutive chunks of
    the training set, with a fresh copy of ``mixer``'s settings (the mixer is untouched)."""
    from mixkit import plots

    if steps < 1 or n < 1:
        raise ValueError(f"n and steps must be >= 1, got n={n}, steps={steps}")
    fresh = RecursiveMix(
        mixer.alpha,
        mixer.interpolation,
        mixer.per_sample,
        p=mixer.p,
        num_classes=ds.num_classes,
        label_smoothing=mixer.label_smoothing,
        generator=torch.Generator().manual_seed(seed),
    )
    total = len(ds.train.y)
    for k in range(steps):
        idx = torch.arange(k * n, (k + 1) * n) % total
        images, targets = fresh(ds.train.x.index_select(0, idx), ds.train.y.index_select(0, idx))
    return plots.save_mix_grid(
        images,
        targets,
        fresh.last_params.lam,
        path,
        title=f"RecursiveMix after {steps} steps (λ = kept fraction of the newest batch)",
    )
