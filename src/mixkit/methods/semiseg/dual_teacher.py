"""Dual Teacher trainer (Na et al. NeurIPS 2023): two teachers in alternating shifts, box mix
and ClassMix, and implicit consistency."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mixkit.methods.semiseg.data import IGNORE
from mixkit.methods.semiseg.losses import masked_mean
from mixkit.methods.semiseg.teacher_updates import ema_update, frozen_copy
from mixkit.methods.semiseg.trainer_base import SemisegTrainer
from mixkit.methods.semiseg.views import strong_colour


class DualTeacherTrainer(SemisegTrainer):
    """Dual Teacher (Na et al. NeurIPS 2023; ``tools/train.py::train_dual``,
    ``seg_core/augmentations.py``).

    - Epoch e uses teacher T1 with the box mixer (``cfg.mix``, CutMix by default) when e is
      even and T2 with ClassMix when odd; only that teacher is updated.
    - After each step i of the epoch (i resets every epoch): ``a = min(1 - 1/(i+1), dt_ema)``
      and ``T <- a T + (1 - a) S`` — at i = 0, a = 0, so the active teacher is RE-COPIED from
      the student at the start of its shift. Parameters only, unless ``dt_ema_buffers``.
    - Strong view ``x_s`` = ColorJitter(.5, .5, .5, .25) + RandomGrayscale(.2) of the weak
      unlabeled view.
    - Box-mix shift: mix the weak unlabeled images with the teacher's probabilities, then
      per-sample jitter (p .8, ±.25) and blur (p .5, σ .15-1.15) of the mixed image
      (``batch_transform``; the flip is left out for digits); loss = mean over valid pixels of
      ``w_i * CE`` with ``w_i`` the image's fraction of pixels with confidence >= 0.95
      (``compute_unsupervised_loss``).
    - ClassMix shift: mix the strong view; loss = ``w * CE`` averaged over valid pixels with
      ``w`` the batch fraction of confident pixels (``compute_classmix`` / ``ClassMixLoss``).
    - Implicit consistency: ``Σ CE(S(x_s), argmax T(x_u)) [conf >= 0.95] / #valid``, weight
      0.2, where "valid" is the UNLABELED batch's own mask (the official ``compute_ic``
      reads ``label_u`` from the labeled batch — a bug fixed here).
    """

    method = "dualteacher"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.t1 = frozen_copy(self.student)
        self.t2 = frozen_copy(self.student)
        self.classmix = self._build_mixer("classmix")

    def teachers(self) -> dict[str, nn.Module]:
        return {"t1": self.t1, "t2": self.t2}

    def active(self) -> str:
        return "t1" if self.epoch % 2 == 0 else "t2"

    def train_step(self, i: int) -> dict[str, float]:
        c = self.cfg
        xl, yl = self.labeled_batch()
        xu01, valid = self.unlabeled_batch()
        xu = self._norm(xu01)
        xs = self._norm(strong_colour(xu01, self.gens["aug"], blur_p=0.0))
        teacher = self.teachers()[self.active()]
        probs = self.predict(teacher, xu)
        conf_u, pseudo_u = probs.max(1)
        if self.active() == "t1":  # box-mix shift
            params = self.mixer.draw(xu.shape, self.gens["mix"], label_maps=pseudo_u)
            m = self.mixer.apply(params, images=xu01, probs=probs, valid=valid)
            mixed = strong_colour(
                m.images, self.gens["aug"], brightness=0.25, contrast=0.25, saturation=0.25,
                hue=0.25, jitter_p=0.8, gray_p=0.0, blur_p=0.5, blur_sigma=(0.15, 1.15),
            )  # fmt: skip
            mixed = self._norm(mixed)
            conf, pseudo = m.probs.max(1)
            sure = (conf >= c.dt_threshold) & m.valid
            w = sure.flatten(1).sum(1) / m.valid.flatten(1).sum(1).clamp_min(1)
            weight = w.view(-1, 1, 1).expand_as(conf)
        else:  # ClassMix shift
            params = self.classmix.draw(xs.shape, self.gens["mix"], label_maps=pseudo_u)
            m = self.classmix.apply(params, images=xs, probs=probs, valid=valid)
            mixed = m.images
            conf, pseudo = m.probs.max(1)
            sure = (conf >= c.dt_threshold) & m.valid
            weight = (sure.sum() / m.valid.sum().clamp_min(1)).expand_as(conf)
        self.set_lr(self.optimizer)
        bl = xl.shape[0]
        # both student passes in one (DDP) call: separate BatchNorm batches as before
        logits, logits_s = self.student_forward(torch.cat([self._norm(xl), mixed]), xs)
        sup = F.cross_entropy(logits[:bl], yl, ignore_index=IGNORE)
        ce = F.cross_entropy(logits[bl:], pseudo, reduction="none") * weight
        lmix = masked_mean(ce, m.valid)
        ce_ic = F.cross_entropy(logits_s, pseudo_u, reduction="none")
        lic = masked_mean(ce_ic, (conf_u >= c.dt_threshold) & valid, valid.sum())
        loss = sup + lmix + c.dt_ic_weight * lic
        self.optimise(self.optimizer, loss)
        a = min(1.0 - 1.0 / (i + 1), c.dt_ema)
        ema_update(teacher, self.student, a, buffers=c.dt_ema_buffers)
        rate = float(sure.sum()) / max(int(m.valid.sum()), 1)
        return {"loss": loss.item(), "loss_sup": sup.item(), "loss_unsup": lmix.item(),
                "loss_ic": lic.item(), "pass_rate": rate}  # fmt: skip
