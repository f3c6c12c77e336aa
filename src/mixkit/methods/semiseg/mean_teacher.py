"""Mean teacher + mixing trainer (French et al. 2020)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mixkit.methods.semiseg.data import IGNORE
from mixkit.methods.semiseg.losses import masked_mean
from mixkit.methods.semiseg.teacher_updates import ema_update, frozen_copy
from mixkit.methods.semiseg.trainer_base import SemisegTrainer


class MeanTeacherTrainer(SemisegTrainer):
    """Mean teacher + mixing (French et al. 2020, "Semi-supervised semantic segmentation needs
    strong, varied perturbations"): an EMA teacher (α = ``mt_ema``, params and BN buffers)
    predicts on the weak unlabeled view; the mixer mixes the images and the teacher's
    probability maps with the same params; the student fits the mixed argmax where the mixed
    confidence >= ``mt_threshold`` (loss averaged over the valid pixels)."""

    method = "mt"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = frozen_copy(self.student)

    def teachers(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher}

    def active(self) -> str:
        return "teacher"

    def train_step(self, i: int) -> dict[str, float]:
        c = self.cfg
        xl, yl = self.labeled_batch()
        xu01, valid = self.unlabeled_batch()
        xu = self._norm(xu01)
        probs = self.predict(self.teacher, xu)
        params = self.mixer.draw(xu.shape, self.gens["mix"], label_maps=probs.argmax(1))
        m = self.mixer.apply(params, images=xu, probs=probs, valid=valid)
        self.set_lr(self.optimizer)
        (logits,) = self.student_forward(torch.cat([self._norm(xl), m.images]))
        bl = xl.shape[0]
        sup = F.cross_entropy(logits[:bl], yl, ignore_index=IGNORE)
        conf, pseudo = m.probs.max(1)
        keep = (conf >= c.mt_threshold) & m.valid
        ce = F.cross_entropy(logits[bl:], pseudo, reduction="none")
        unsup = masked_mean(ce, keep, m.valid.sum())
        loss = sup + c.mt_weight * unsup
        self.optimise(self.optimizer, loss)
        ema_update(self.teacher, self.student, c.mt_ema, buffers=True)
        rate = float(keep.sum()) / max(int(m.valid.sum()), 1)
        return {"loss": loss.item(), "loss_sup": sup.item(), "loss_unsup": unsup.item(),
                "pass_rate": rate}  # fmt: skip
