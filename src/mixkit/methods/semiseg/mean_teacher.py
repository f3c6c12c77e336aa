"""Mean teacher + mixing (French et al. 2020, "Semi-supervised semantic segmentation needs
strong, varied perturbations") as a building block: :class:`MeanTeacher`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mixkit.methods.semiseg.method_base import (
    TeacherMethod,
    UnsupBatch,
    check_images,
    check_unit,
    check_valid,
)
from mixkit.methods.semiseg.mix import SegMixer
from mixkit.methods.semiseg.teacher_updates import ema_update, frozen_copy

DEFAULT_THRESHOLD = 0.75


class MeanTeacher(TeacherMethod):
    """One EMA teacher labels the weak unlabeled view; the mixer mixes the images and the
    teacher's probability maps with one draw; the student fits the mixed argmax where the
    mixed confidence is at least ``threshold`` (CE summed over those pixels, divided by the
    number of valid pixels), times ``weight``.

    ``update(step)``: ``θ_t <- ema θ_t + (1 - ema) θ_s`` over parameters and (``ema_buffers``)
    the BatchNorm buffers.

    Default threshold 0.75: on the digit canvases (11 classes, 63 labeled, pretrained
    encoder) a 0.95 teacher passes no pixel in the first two epochs, so the first 100 steps
    get no unsupervised signal; 0.75 passes from the second epoch on and ended 1.3 mIoU
    higher (docs/semiseg.md, one seed). It lies between PS-MT's 0.6 and the 0.95 of Dual
    Teacher; ``stats["pass_rate"]`` reports the share of valid pixels kept.

    Example::

        m = MeanTeacher(student, ema=0.99, threshold=0.75, mixer="cutmix")
        loss_u, stats = m.unsup_loss(x_u, generator=g)   # x_u: float (B, 3, H, W) in [0, 1]
        (ce + loss_u).backward(); opt.step(); m.update(step)
    """

    name = "mt"

    def __init__(
        self,
        student: nn.Module,
        *,
        ema: float = 0.99,
        threshold: float = DEFAULT_THRESHOLD,
        weight: float = 1.0,
        mixer: SegMixer | str | None = "cutmix",
        ema_buffers: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(student, **kw)
        self.ema = check_unit("ema", ema)
        self.threshold = check_unit("threshold", threshold)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"weight must be a number >= 0, got {weight!r}")
        self.weight = float(weight)
        self.mixer = self._mixer(mixer)
        self.ema_buffers = bool(ema_buffers)
        self.teacher = frozen_copy(student)

    def teachers(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher}

    def active_at(self, epoch: int) -> str:
        return "teacher"

    @torch.no_grad()
    def prepare(
        self, x_u: Tensor, *, valid: Tensor | None = None, generator: torch.Generator | None = None
    ) -> UnsupBatch:
        """Teacher probabilities on ``x_u`` (float [0, 1] (B, 3, H, W)), mixed with the
        images; ``valid`` (B, H, W) bool: pixels that count (default all)."""
        check_images(x_u)
        valid = check_valid(valid, x_u)
        xu = self.normalise(x_u)
        probs = torch.softmax(self.teacher_logits(self.teacher, xu), 1)
        params = self.mixer.draw(xu.shape, generator, label_maps=probs.argmax(1))
        m = self.mixer.apply(params, images=xu, probs=probs, valid=valid)
        conf, pseudo = m.probs.max(1)
        keep = (conf >= self.threshold) & m.valid
        n_valid = m.valid.sum().float()
        rate = keep.sum().float() / n_valid.clamp_min(1)
        return UnsupBatch((m.images,), (pseudo,), (keep.float(),), (n_valid,), (self.weight,),
                          {"pass_rate": rate})  # fmt: skip

    def update(self, step: int) -> None:
        super().update(step)
        ema_update(self.teacher, self.student, self.ema, buffers=self.ema_buffers)
