"""Losses for mixed (soft) targets and distillation."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "soft_target_cross_entropy",
    "binary_cross_entropy_soft",
    "kl_div_with_temperature",
    "SoftTargetCrossEntropy",
    "BinaryCrossEntropySoft",
]


def soft_target_cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """``-sum_k target_k log_softmax(logits)_k``. ``logits``: (B, K); ``target``: (B, K)
    probabilities or (B,) int class ids (then identical to ``F.cross_entropy``)."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be (B, K), got shape {tuple(logits.shape)}")
    if not target.is_floating_point():
        return F.cross_entropy(logits, target, reduction=reduction)
    if target.shape != logits.shape:
        raise ValueError(
            f"target must match logits shape {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    loss = -(target * F.log_softmax(logits, dim=1)).sum(1)
    return _reduce(loss, reduction)


def binary_cross_entropy_soft(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Per-class sigmoid BCE for multi-label / soft targets in [0, 1]; summed over classes,
    averaged over the batch. ``logits``/``target``: (B, K) float. Returns a float scalar
    (``reduction="none"``: (B,))."""
    if target.shape != logits.shape:
        raise ValueError(
            f"target must match logits shape {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    loss = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    return _reduce(loss.sum(1), reduction)


def kl_div_with_temperature(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 4.0,
    reduction: str = "mean",
) -> Tensor:
    """Hinton KD term ``T^2 * KL(softmax(t/T) || softmax(s/T))`` per sample (batch-mean).

    student_logits, teacher_logits: (B, K) float. Returns a float scalar (``"none"``: (B,))."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"teacher_logits must match student_logits shape {tuple(student_logits.shape)}, "
            f"got {tuple(teacher_logits.shape)}"
        )
    log_s = F.log_softmax(student_logits / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = (log_t.exp() * (log_t - log_s)).sum(1) * temperature**2
    return _reduce(kl, reduction)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class SoftTargetCrossEntropy(nn.Module):
    """Module form of :func:`soft_target_cross_entropy`: (B, K) float logits and (B, K)
    float targets (or (B,) int64 ids) -> float scalar (timm's ``SoftTargetCrossEntropy``)."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return soft_target_cross_entropy(logits, target)


class BinaryCrossEntropySoft(nn.Module):
    """Module form of :func:`binary_cross_entropy_soft`: (B, K) float logits and targets
    -> float scalar."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy_soft(logits, target)
