"""Supervised-only baseline trainer (labeled canvases only)."""

from __future__ import annotations

import torch.nn.functional as F

from mixkit.methods.semiseg.data import IGNORE
from mixkit.methods.semiseg.trainer_base import SemisegTrainer


class SupervisedTrainer(SemisegTrainer):
    """Labeled canvases only: ``CE(S(x_l), y_l)`` (ignore 255)."""

    method = "sup"

    def train_step(self, i: int) -> dict[str, float]:
        xl, yl = self.labeled_batch()
        self.set_lr(self.optimizer)
        (logits,) = self.student_forward(self._norm(xl))
        loss = F.cross_entropy(logits, yl, ignore_index=IGNORE)
        self.optimise(self.optimizer, loss)
        return {"loss": loss.item(), "loss_sup": loss.item()}
