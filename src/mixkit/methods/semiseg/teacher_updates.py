"""Teacher updates of the semi-supervised trainers: EMA of the student's weights and frozen
copies of the student."""

from __future__ import annotations

import copy

import torch
from torch import nn


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float, buffers: bool) -> None:
    """``θ_t <- α θ_t + (1 - α) θ_s`` for every parameter; BatchNorm running buffers too when
    ``buffers`` (integer buffers such as ``num_batches_tracked`` are copied). α = 0 copies
    the student exactly."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
    if buffers:
        for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
            if t.is_floating_point():
                t.mul_(alpha).add_(s, alpha=1.0 - alpha)
            else:
                t.copy_(s)


def frozen_copy(student: nn.Module) -> nn.Module:
    """A copy of ``student`` with ``requires_grad`` off: a teacher updated by EMA only."""
    t = copy.deepcopy(student)
    for p in t.parameters():
        p.requires_grad_(False)
    return t
