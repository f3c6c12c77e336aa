"""timm ``Mixup`` drop-in (:class:`TimmMixup`), built on :mod:`mixkit.augment`.

:class:`TimmMixup` takes timm ``Mixup``'s constructor arguments and call convention
``mixup_fn(x, target) -> (x, soft_target)`` (timm ``timm/data/mixup.py``), with: odd batch
sizes allowed, no in-place change of ``x`` unless ``inplace=True``, vectorised ``elem`` and
``pair`` modes (timm loops over samples), draws from a ``torch.Generator`` you own, and λ
always the exact kept-pixel fraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mixkit import ops
from mixkit.augment.apply import apply_images, keep_type
from mixkit.augment.base import batch_hw, make_generator
from mixkit.augment.params import Kind, MixParams
from mixkit.augment.settings import settings_repr
from mixkit.ops import checks

TIMM_MODES = ("batch", "pair", "elem")


def _check_number(value: Any, name: str, low: float, high: float | None = None) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be a number {rng}, got {value!r}")
    return float(value)


def _check_minmax(cutmix_minmax: Sequence[float] | None) -> tuple[float, float] | None:
    """``(min, max)`` box side ratios with 0 <= min <= max <= 1, or None."""
    if cutmix_minmax is None:
        return None
    mm = tuple(cutmix_minmax)
    if len(mm) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in mm):
        raise ValueError(f"cutmix_minmax must be (min, max) ratios, got {cutmix_minmax!r}")
    lo, hi = float(mm[0]), float(mm[1])
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"cutmix_minmax must satisfy 0 <= min <= max <= 1, got {cutmix_minmax!r}")
    return lo, hi


class TimmMixup:
    """timm ``Mixup`` drop-in: MixUp / CutMix with timm's arguments, targets and smoothing.

    ``mixup_fn(x, target) -> (x_mixed, soft_target)`` with x (B, C, H, W) float (or uint8)
    and target (B,) int64 class ids (or (B, K) one-hot/soft rows, or (B, K) multi-label
    with ``multi_label=True``); soft_target is (B, K) float32 on ``target``'s device.

    Semantics (timm ``timm/data/mixup.py``), per unit (the batch, a pair or a sample):
    mixing happens with probability ``prob``; if both alphas are > 0, CutMix is picked with
    probability ``switch_prob`` else MixUp; λ ~ Beta(alpha, alpha) of the picked method.
    Partners are ``flip`` (sample i with B-1-i, timm's ``x.flip(0)``); in an odd batch the
    middle sample is its own partner, i.e. stays unmixed (pass ``pairing="cycle"`` to mix
    every sample with another one). Targets: one-hot with timm's label smoothing,
    off = s/K and on = 1 - s + s/K (multi-label: ``y(1-s) + s/2``), then mixed with λ.

    Args:
        mixup_alpha: MixUp Beta parameter; MixUp is active if > 0.
        cutmix_alpha: CutMix Beta parameter; CutMix is active if > 0.
        cutmix_minmax: (min, max) box side ratios: CutMix draws each side uniformly in
            ``[int(H*min), int(H*max)]`` (max included; timm's ``np.random.randint`` leaves
            it out) and places the box fully inside the image; λ is the kept fraction.
            Setting it forces ``cutmix_alpha=1.0`` (used only to activate CutMix), as timm.
        prob: probability of mixing each unit.
        switch_prob: probability of CutMix instead of MixUp when both are active.
        mode: ``"batch"`` (one draw per batch), ``"pair"`` (one draw per pair i, B-1-i;
            both get the same λ and box, swapped) or ``"elem"`` (one draw per sample).
        correct_lam: True (timm default): the box centre is uniform over all pixels and the
            box clipped at the border, λ recomputed from the clipped box. False: the box is
            placed fully inside the image so no clipping happens and λ needs no correction
            (timm would keep the *uncorrected* λ for a clipped box, so its labels disagree
            with its pixels; mixkit's λ always equals the kept pixel fraction).
        label_smoothing: s in [0, 1) (timm default 0.1).
        num_classes: K (timm default 1000).
        multi_label: targets are dense (B, K) multi-label rows (timm >= 1.0.20).
        inplace: write the mixed pixels into ``x`` (timm's behaviour); default False
            returns a new tensor and leaves ``x`` untouched.
        pairing: ``"flip"`` (timm, default), ``"cycle"``, ``"roll"`` or ``"random"``
            (see ``mixkit.ops.sample_pairing``); ``mode="pair"`` needs ``"flip"``.
        generator: CPU ``torch.Generator`` or int seed; None uses torch's global RNG
            (timm uses numpy's global RNG).
        check_layout: ValueError for a channels-last x (see ``MixTransform``); False for
            real many-channel inputs.

    Attributes:
        mixup_enabled: set False to stop mixing (timm ``train.py``'s ``--mixup-off-epoch``
            sets ``mixup_fn.mixup_enabled = False``); targets are then only smoothed. Held
            in shared memory, so the switch also reaches DataLoader workers (persistent
            ones included) that run this mixer in a ``collate_fn`` such as ``MixCollate``,
            from their next batch on.
        last_params: the ``MixParams`` of the last call (replay with ``params=``).
    """

    def __init__(
        self,
        mixup_alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        cutmix_minmax: Sequence[float] | None = None,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        mode: str = "batch",
        correct_lam: bool = True,
        label_smoothing: float = 0.1,
        num_classes: int = 1000,
        multi_label: bool = False,
        *,
        inplace: bool = False,
        pairing: str = "flip",
        generator: torch.Generator | int | None = None,
        check_layout: bool = True,
    ) -> None:
        self.mixup_alpha = _check_number(mixup_alpha, "mixup_alpha", 0.0)
        self.cutmix_alpha = _check_number(cutmix_alpha, "cutmix_alpha", 0.0)
        self.cutmix_minmax = _check_minmax(cutmix_minmax)
        if self.cutmix_minmax is not None:
            self.cutmix_alpha = 1.0  # timm: minmax forces cutmix_alpha=1.0 (activates CutMix)
        if self.mixup_alpha == 0 and self.cutmix_alpha == 0:
            raise ValueError(
                "one of mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax must be set, "
                f"got mixup_alpha={mixup_alpha!r}, cutmix_alpha={cutmix_alpha!r}"
            )
        self.mix_prob = _check_number(prob, "prob", 0.0, 1.0)
        self.switch_prob = _check_number(switch_prob, "switch_prob", 0.0, 1.0)
        if mode not in TIMM_MODES:
            raise ValueError(f"mode must be one of {TIMM_MODES}, got {mode!r}")
        if pairing not in ops.PAIRINGS:
            raise ValueError(f"pairing must be one of {ops.PAIRINGS}, got {pairing!r}")
        if mode == "pair" and pairing != "flip":
            raise ValueError(
                f"mode='pair' mixes sample i with B-1-i: pairing must be 'flip', got {pairing!r}"
            )
        self.label_smoothing = _check_number(label_smoothing, "label_smoothing", 0.0)
        if self.label_smoothing >= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.multi_label = bool(multi_label)
        self.mode = mode
        self.correct_lam = bool(correct_lam)
        self.inplace = bool(inplace)
        self.pairing = pairing
        self.generator = make_generator(generator)
        self.check_layout = bool(check_layout)
        # one bool in shared memory: workers holding a copy of this mixer read the switch
        self._enabled = torch.ones(1, dtype=torch.bool).share_memory_()
        self.last_params: MixParams | None = None

    @property
    def mixup_enabled(self) -> bool:
        """Whether calls mix (False: timm's ``--mixup-off-epoch`` state, smoothing only)."""
        return bool(self._enabled[0])

    @mixup_enabled.setter
    def mixup_enabled(self, value: bool) -> None:
        self._enabled[0] = bool(value)

    # ----------------------------------------------------------------- random draw
    def _draw_units(self, n: int, h: int, w: int, gen: torch.Generator | None) -> tuple:
        """kind (n,) int64, lam (n,) float64, boxes (n, 4) int64 for n independent units."""
        gate = ops.sample_bernoulli(self.mix_prob, n, gen) & self.mixup_enabled
        both = self.mixup_alpha > 0 and self.cutmix_alpha > 0
        if both:
            use_cut = ops.sample_bernoulli(self.switch_prob, n, gen)
        else:
            use_cut = torch.full((n,), self.cutmix_alpha > 0, dtype=torch.bool)
        lam = torch.ones(n, dtype=torch.float64)
        boxes = torch.zeros(n, 4, dtype=torch.long)
        if self.mixup_alpha > 0:
            lam = torch.where(use_cut, lam, ops.sample_beta(self.mixup_alpha, n, gen))
        if self.cutmix_alpha > 0:
            if self.cutmix_minmax is not None:
                # Darknet-style min/max box (timm ``rand_bbox_minmax``): sides uniform in
                # [int(H*min), int(H*max)], top-left uniform over all valid positions.
                lo, hi = self.cutmix_minmax
                bh = torch.randint(int(h * lo), int(h * hi) + 1, (n,), generator=gen)
                bw = torch.randint(int(w * lo), int(w * hi) + 1, (n,), generator=gen)
                cut = ops.sample_boxes_inside(bh, bw, h, w, gen)
            else:
                area = 1 - ops.sample_beta(self.cutmix_alpha, n, gen)
                if self.correct_lam:  # CutMix rand_bbox: uniform centre, clipped box
                    cut = ops.sample_boxes(area, h, w, gen)
                else:  # fully inside: the drawn area is realised (up to rounding)
                    bh, bw = ops.cut_size(area, h, w)
                    cut = ops.sample_boxes_inside(bh, bw, h, w, gen)
            lam = torch.where(use_cut, 1 - ops.box_area_fraction(cut, h, w), lam)
            boxes = torch.where(use_cut[:, None], cut, boxes)
        kind = torch.where(use_cut, int(Kind.CROP), int(Kind.BLEND))
        kind = torch.where(gate, kind, int(Kind.NONE))
        lam = torch.where(gate, lam, torch.ones_like(lam))
        boxes = boxes * gate[:, None]
        return kind, lam, boxes

    def draw(
        self,
        batch_shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | int | None = None,
    ) -> MixParams:
        """Draw the parameters for a batch of shape (B, C, H, W) (CPU tensors)."""
        b, h, w = batch_hw(batch_shape)
        gen = self.generator if generator is None else make_generator(generator)
        perm = ops.sample_pairing(b, self.pairing, gen)
        if self.mode == "batch":
            kind, lam, boxes = self._draw_units(1, h, w, gen)
            kind, lam, boxes = kind.expand(b), lam.expand(b), boxes.expand(b, 4)
        elif self.mode == "elem":
            kind, lam, boxes = self._draw_units(b, h, w, gen)
        else:  # pair: i and B-1-i share one draw; an odd batch's middle sample stays unmixed
            half = b // 2
            k, lm, bx = self._draw_units(half, h, w, gen)
            mid = b - 2 * half
            kind = torch.cat([k, torch.zeros(mid, dtype=torch.long), k.flip(0)])
            lam = torch.cat([lm, torch.ones(mid, dtype=torch.float64), lm.flip(0)])
            boxes = torch.cat([bx, torch.zeros(mid, 4, dtype=torch.long), bx.flip(0)])
        return MixParams(kind.clone(), lam.float(), perm, boxes.clone(), (h, w))

    # ----------------------------------------------------------------- apply
    def targets(self, target: Tensor) -> Tensor:
        """Unmixed (B, K) float32 targets with timm's label smoothing."""
        s, k = self.label_smoothing, self.num_classes
        if not isinstance(target, Tensor):
            raise ValueError(f"target must be a torch.Tensor, got {type(target).__name__}")
        if self.multi_label:
            if target.ndim != 2 or target.shape[1] != k:
                raise ValueError(
                    f"multi_label target must be dense (B, num_classes={k}), "
                    f"got {tuple(target.shape)}"
                )
            y = ops.to_targets(target, k, multilabel=True)
            return y * (1.0 - s) + 0.5 * s  # timm: multi-label smoothing towards 0.5
        return ops.to_targets(target, k, smoothing=s)  # off = s/K, on = 1 - s + s/K

    def apply(self, params: MixParams, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Apply a draw: x (B, C, H, W) float/uint8, target (B,) int64 or (B, K) float.
        Returns (mixed x, (B, K) float32 soft targets)."""
        if not isinstance(x, Tensor) or x.ndim != 4:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (B, C, H, W), got {got}")
        if not isinstance(target, Tensor) or target.ndim == 0 or target.shape[0] != x.shape[0]:
            got = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
            raise ValueError(f"target must have batch size {x.shape[0]} like x, got {got}")
        if self.check_layout:
            checks.check_channels_first(x.shape, "x")
        mixed = apply_images(params, x, out=x if self.inplace else None)
        soft = ops.mix_targets(self.targets(target), params.label_lam, params.perm)
        return keep_type(mixed, x), soft

    def __call__(
        self,
        x: Tensor,
        target: Tensor,
        *,
        params: MixParams | None = None,
        generator: torch.Generator | int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Draw (unless ``params`` is given) and apply; returns ``(x_mixed, soft_target)``."""
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[0] == 0:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a non-empty tensor of shape (B, C, H, W), got {got}")
        if self.check_layout:  # before the draw: a refused batch consumes no randomness
            checks.check_channels_first(x.shape, "x")
        if params is None:
            params = self.draw(x.shape, generator)
        self.last_params = params
        return self.apply(params, x, target)

    def __repr__(self) -> str:
        """Every argument that differs from timm's default, and ``mixup_enabled=False``."""
        shown = settings_repr(self, {"prob": "mix_prob"})
        if not self.mixup_enabled:
            shown = f"{shown}, mixup_enabled=False" if shown else "mixup_enabled=False"
        return f"TimmMixup({shown})"
