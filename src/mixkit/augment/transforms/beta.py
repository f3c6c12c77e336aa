"""The λ ~ Beta(alpha, alpha) law that MixUp, CutMix (and multi-box CutMix) and FMix share."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mixkit import ops
from mixkit.augment.base import MixTransform
from mixkit.augment.settings import check_alpha, check_flag


@dataclass(eq=False, repr=False)
class BetaMix(MixTransform):
    """Base of the mixers whose λ is drawn from Beta(alpha, alpha) (:meth:`_draw_lam`).

    Args:
        alpha: Beta concentration, a finite number > 0 (the first positional argument of
            every subclass).
    """

    alpha: float = 1.0
    share_lam = False  # one λ for the whole batch, a region per sample (a field where offered)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.alpha = check_alpha(self.alpha)
        self.share_lam = check_flag(self.share_lam, "share_lam")

    def _draw_lam(self, n: int, generator: torch.Generator | None) -> Tensor:
        """(n,) float64 λ ~ Beta(alpha, alpha): n draws, or one repeated with ``share_lam``."""
        return ops.sample_beta(self.alpha, 1 if self.share_lam else n, generator).expand(n)
