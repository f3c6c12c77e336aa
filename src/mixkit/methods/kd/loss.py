"""The KD loss of Good-DA-in-KD (official ``distiller_zoo/KD.py::DistillKL`` and
``helper/loops.py::train_distill``): CE on the labels plus temperature-scaled KL to the
teacher on the clean input x and on the DA input x′."""

from __future__ import annotations

import torch
from torch import Tensor

from mixkit import losses


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    student_aug_logits: Tensor | None = None,
    teacher_aug_logits: Tensor | None = None,
    *,
    temperature: float = 4.0,
    ce_weight: float = 0.1,
    kd_weight: float = 0.9,
    kl_weight: float = 1.0,
    aug_kl_weight: float = 1.0,
) -> dict[str, Tensor]:
    """``ce_weight*CE(s(x), y) + kd_weight*(kl_weight*KL_T(x) + aug_kl_weight*KL_T(x′))``.

    KL_T is ``T² * KL(softmax(t/T) || softmax(s/T))`` summed over classes and averaged over
    the batch (official ``DistillKL``); x′ is supervised only by the teacher's logits on x′
    (``--t_output_as_target_for_input_mix``), never by labels. Logits: (B, K) and (B′, K);
    labels: (B,) int64. Returns ``loss`` plus the unweighted ``ce``, ``kl``, ``kl_aug``.
    """
    if (student_aug_logits is None) != (teacher_aug_logits is None):
        raise ValueError("student_aug_logits and teacher_aug_logits must be given together")
    ce = losses.soft_target_cross_entropy(student_logits, labels)
    kl = losses.kl_div_with_temperature(student_logits, teacher_logits.detach(), temperature)
    kl_aug = torch.zeros((), device=student_logits.device)
    if student_aug_logits is not None:
        kl_aug = losses.kl_div_with_temperature(
            student_aug_logits, teacher_aug_logits.detach(), temperature
        )
    loss = ce_weight * ce + kd_weight * (kl_weight * kl + aug_kl_weight * kl_aug)
    return {"loss": loss, "ce": ce, "kl": kl, "kl_aug": kl_aug}
