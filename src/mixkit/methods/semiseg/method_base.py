"""The shared part of the teacher-student building blocks (:class:`TeacherMethod`): the
student, normalisation, teacher prediction in a BatchNorm mode, the pseudo-label batch
(:class:`UnsupBatch`) and its loss, and the state of the teachers.

A block is used in three calls per step::

    batch = m.prepare(x_u, valid=valid, generator=g)   # teachers label, views and mixing
    logits = [student(x) for x in batch.inputs]        # or one forward with the labeled batch
    loss_u, stats = m.loss(logits, batch)              # weighted, ready to add to the CE

or ``loss_u, stats = m.unsup_loss(x_u, generator=g)`` for the three at once, then
``m.update(step)`` after the optimiser step and ``m.start_epoch(e)`` at each epoch start.
Images are float ``[0, 1]`` (B, 3, H, W) (the colour views need them there); the nets see
``(x - mean) / std`` when ``mean`` / ``std`` are given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.methods.semiseg.mix import SegMixer, build_seg_mixer
from mixkit.methods.semiseg.net import bn_mode
from mixkit.methods.semiseg.views import normalise

BN_MODES = ("batch", "eval")


class UnsupBatch(NamedTuple):
    """What ``prepare`` hands to the student and to ``loss``.

    inputs: the student's inputs, normalised float (B, C, H, W), one forward each.
    targets: per input, (B, H, W) int64 pseudo-labels.
    weights: per input, (B, H, W) float per-pixel loss weights (0 = not counted).
    denoms: per input, 0-dim float: the sum of weighted CE is divided by ``max(denom, 1)``.
    scales: per input, the loss weight of that term (e.g. the ramp-up).
    stats: detached 0-dim tensors to log (``pass_rate``: share of the valid pixels kept).
    """

    inputs: tuple[Tensor, ...]
    targets: tuple[Tensor, ...]
    weights: tuple[Tensor, ...]
    denoms: tuple[Tensor, ...]
    scales: tuple[float, ...]
    stats: dict[str, Tensor]


def check_unit(name: str, value: float) -> float:
    """``value`` as a float in [0, 1], else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_images(x: Tensor, name: str = "x_u") -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be float (B, C, H, W) images in [0, 1], got {got}")


def check_valid(valid: Tensor | None, x: Tensor) -> Tensor:
    """``valid`` (B, H, W) bool, or all True for the batch ``x`` when None."""
    b, _, h, w = x.shape
    if valid is None:
        return torch.ones(b, h, w, dtype=torch.bool, device=x.device)
    if valid.dtype != torch.bool or tuple(valid.shape) != (b, h, w):
        raise ValueError(f"valid must be ({b}, {h}, {w}) bool, got {valid.dtype} {valid.shape}")
    return valid


class TeacherMethod:
    """Base of :class:`MeanTeacher`, :class:`PSMT`, :class:`DualTeacher`.

    Args:
        student: any module mapping (B, C, H, W) to logits (B, K, H, W) (another spatial
            size is resized bilinearly); the teachers are copies of it.
        num_classes: K (ClassMix needs it; otherwise read from the logits).
        mean, std: per-channel normalisation of the nets' inputs (None: none).
        teacher_bn: ``batch`` (batch statistics, buffers untouched, as the official codes
            predict with teachers in train mode) or ``eval`` (running statistics).
    """

    name = "base"
    joint = True  # the labeled batch and inputs[0] go through one student forward

    def __init__(
        self,
        student: nn.Module,
        *,
        num_classes: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        teacher_bn: str = "batch",
    ) -> None:
        if not isinstance(student, nn.Module):
            raise TypeError(f"student must be an nn.Module, got {type(student).__name__}")
        if teacher_bn not in BN_MODES:
            raise ValueError(f"teacher_bn must be one of {list(BN_MODES)}, got {teacher_bn!r}")
        if num_classes is not None and (isinstance(num_classes, bool) or num_classes < 1):
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together")
        self.student = student
        self.num_classes = num_classes
        self.mean = None if mean is None else tuple(float(v) for v in mean)
        self.std = None if std is None else tuple(float(v) for v in std)
        self.teacher_bn = teacher_bn
        self.channels_last = False  # inputs of the nets in channels-last memory format
        # context of the nets' forward passes (mixed precision: torch.autocast); the views,
        # mixing and losses run outside it, in float32
        self.autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
        self.step, self.epoch = 0, 0

    # ------------------------------------------------------------------ helpers
    def _mixer(self, mixer: SegMixer | str | None) -> SegMixer:
        if isinstance(mixer, SegMixer):
            return mixer
        if mixer == "classmix" and self.num_classes is None:
            raise ValueError("num_classes is required for the classmix mixer")
        return build_seg_mixer("none" if mixer is None else mixer,
                               num_classes=self.num_classes or 1)  # fmt: skip

    def normalise(self, x01: Tensor) -> Tensor:
        """Float [0, 1] images -> what the nets see."""
        return x01 if self.mean is None else normalise(x01, self.mean, self.std)

    def _fmt(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def logits_of(self, net: nn.Module, x: Tensor) -> Tensor:
        """float32 logits (B, K, H, W) of ``net`` at the size of ``x``."""
        with self.autocast():
            out = net(self._fmt(x))
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out.float()

    @torch.no_grad()
    def teacher_logits(self, teacher: nn.Module, x: Tensor) -> Tensor:
        """A teacher's float32 logits on normalised ``x``, in the ``teacher_bn`` mode."""
        with bn_mode(teacher, self.teacher_bn):
            return self.logits_of(teacher, x)

    def labeled_view(self, x_l: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The view of the labeled images the student trains on (float [0, 1])."""
        return x_l

    def perturbation(self) -> Callable[[Tensor, tuple[int, int]], Tensor] | None:
        """A feature perturbation ``r(f, size)`` for the student's ``decode(f + r(f, size),
        size)`` (None: a plain forward)."""
        return None

    # ------------------------------------------------------------------ method interface
    def teachers(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    @property
    def active(self) -> str:
        """The teacher labelling the current epoch."""
        return self.active_at(self.epoch)

    def active_at(self, epoch: int) -> str:
        """The teacher labelling epoch ``epoch`` under the switch rule."""
        return ""

    def start_epoch(self, epoch: int) -> None:
        """Apply the switch rule of epoch ``epoch`` (0-based)."""
        self.epoch = int(epoch)

    def prepare(
        self, x_u: Tensor, *, valid: Tensor | None = None, generator: torch.Generator | None = None
    ) -> UnsupBatch:
        raise NotImplementedError

    def update(self, step: int) -> None:
        """Teacher update after optimiser step number ``step`` (1 after the first)."""
        self.step = int(step)

    # ------------------------------------------------------------------ losses
    def loss(self, logits: Sequence[Tensor], batch: UnsupBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """``Σ_j scale_j Σ(w_j CE(logits_j, target_j)) / max(denom_j, 1)`` and the stats
        (``loss_unsup``: term 0 unscaled, ``loss_ic``: term 1 unscaled when present)."""
        if len(logits) != len(batch.inputs):
            raise ValueError(f"expected {len(batch.inputs)} logits tensors, got {len(logits)}")
        total: Tensor | None = None
        stats = dict(batch.stats)
        terms = zip(logits, batch.targets, batch.weights, batch.denoms, batch.scales, strict=True)
        for j, (z, t, w, d, s) in enumerate(terms):
            z = z.float()
            if z.shape[-2:] != t.shape[-2:]:
                z = F.interpolate(z, size=t.shape[-2:], mode="bilinear", align_corners=False)
            term = (F.cross_entropy(z, t, reduction="none") * w).sum() / d.clamp_min(1)
            stats["loss_unsup" if j == 0 else "loss_ic"] = term.detach()
            total = s * term if total is None else total + s * term
        assert total is not None
        return total, stats

    def forward_student(self, x: Tensor) -> Tensor:
        """The student's logits on normalised ``x`` (with the perturbation, if any)."""
        r = self.perturbation()
        if r is None:
            return self.logits_of(self.student, x)
        size = (x.shape[-2], x.shape[-1])
        with self.autocast():
            f = self.student.encode(self._fmt(x))
            return self.student.decode(f + r(f, size), size).float()

    def unsup_loss(
        self, x_u: Tensor, *, valid: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``prepare`` + one student forward per input + ``loss``: the weighted unsupervised
        loss (0-dim, differentiable w.r.t. the student) and detached stats."""
        batch = self.prepare(x_u, valid=valid, generator=generator)
        return self.loss([self.forward_student(x) for x in batch.inputs], batch)

    # ------------------------------------------------------------------ state
    def _own_state(self) -> dict[str, Any]:
        return {}

    def _load_own_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """Teachers' weights and the switch / schedule state (torch.save-able)."""
        return {
            "method": self.name,
            "teachers": {k: t.state_dict() for k, t in self.teachers().items()},
            "step": self.step,
            **self._own_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.name:
            raise ValueError(f"state is for method {state.get('method')!r}, not {self.name!r}")
        teachers = self.teachers()
        if set(state["teachers"]) != set(teachers):
            raise ValueError(f"state teachers {sorted(state['teachers'])} != {sorted(teachers)}")
        self._load_own_state(state)  # may change which teachers train (PS-MT warm-up)
        for k, t in teachers.items():
            t.load_state_dict(state["teachers"][k])
        self.step = int(state["step"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(active={self.active!r}, step={self.step})"
