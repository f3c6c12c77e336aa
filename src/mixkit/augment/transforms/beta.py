"""The λ ~ Beta(alpha, alpha) law that MixUp, CutMix (and multi-box CutMix) and FMix share."""

from __future__ import annotations

import torch
from torch import Tensor

from mixkit import ops
from mixkit.augment.base import MixTransform
from mixkit.augment.settings import check_alpha


class BetaMix(MixTransform):
    """Base of the mixers whose λ is drawn from Beta(alpha, alpha): their ``__init__`` calls
    :meth:`_set_beta` after ``MixTransform.__init__``, their draw :meth:`_draw_lam`."""

    alpha: float
    share_lam = False  # MixUp: always one λ per draw

    def _set_beta(self, alpha: float, share_lam: bool = False) -> None:
        """Check and store ``alpha`` (a finite number > 0) and ``share_lam`` (one λ for the
        whole batch but a region per sample)."""
        self.alpha = check_alpha(alpha)
        self.share_lam = bool(share_lam)

    def _draw_lam(self, n: int, generator: torch.Generator | None) -> Tensor:
        """(n,) float64 λ ~ Beta(alpha, alpha): n draws, or one repeated with ``share_lam``."""
        return ops.sample_beta(self.alpha, 1 if self.share_lam else n, generator).expand(n)
