"""Label ops: one-hot, smoothing, convex mixing of (B, K) targets. All on the labels' device;
value checks raise on the CPU and run as ``torch._assert_async`` elsewhere (``ops.checks``)."""

from __future__ import annotations

import torch
from torch import Tensor

from mixkit.ops.checks import on_host, require
from mixkit.ops.pixels import lerp_exact


def one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B,) int64 class ids -> (B, K) one-hot. Raises ValueError if an id is outside [0, K)."""
    if labels.numel() and on_host(labels):
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"labels must be class ids in [0, num_classes={num_classes}), "
                f"got values in [{lo}, {hi}]: num_classes too small?"
            )
    elif labels.numel():
        require((labels >= 0) & (labels < num_classes), f"labels must be in [0, {num_classes})")
    out = torch.zeros(labels.shape[0], num_classes, dtype=dtype, device=labels.device)
    return out.scatter_(1, labels.long().view(-1, 1), 1.0)


def smooth(targets: Tensor, smoothing: float) -> Tensor:
    """Label smoothing: ``(1 - s) * y + s / K`` (timm's ``off_value = s/K``).
    (B, K) float -> (B, K) float."""
    if smoothing == 0:
        return targets
    return targets * (1.0 - smoothing) + smoothing / targets.shape[1]


def mix_targets(targets: Tensor, lam: Tensor, perm: Tensor) -> Tensor:
    """``lam[i] * y[i] + (1 - lam[i]) * y[perm[i]]``. targets (B, K) float, lam (B,) -> (B, K).

    Computed as ``lerp_exact(y[perm], y, lam)`` (every op rounded in the targets' dtype:
    the same bytes on every device)."""
    w = lam.to(device=targets.device, dtype=targets.dtype, non_blocking=True)[:, None]
    partner = targets.index_select(0, perm.to(targets.device, non_blocking=True))
    return lerp_exact(partner, targets, w)


def _check_soft(targets: Tensor, multilabel: bool) -> None:
    """(B, K) float targets hold probabilities; rows sum to 1 unless ``multilabel``."""
    if not targets.numel():
        return
    require(
        (targets >= 0) & (targets <= 1),
        "labels (B, K) must hold probabilities in [0, 1]",
    )
    if not multilabel:
        require(
            (targets.sum(1) - 1).abs() <= 1e-4,
            "labels (B, K) rows must sum to 1 (one-hot/soft targets); "
            "pass multilabel=True for multi-label targets",
        )


def to_targets(
    labels: Tensor,
    num_classes: int | None,
    *,
    multilabel: bool = False,
    smoothing: float = 0.0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Turn class ids (B,), one-hot / soft (B, K) or multi-label (B, K) targets into (B, K) float.

    Soft targets must have rows summing to 1 unless ``multilabel`` (entries in [0, 1]).
    """
    if not isinstance(labels, Tensor):
        raise ValueError(f"labels must be a torch.Tensor, got {type(labels)}")
    if labels.ndim == 1:
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"labels of shape (B,) must be integer class ids, got {labels.dtype}")
        if num_classes is None:
            raise ValueError("num_classes is required when labels are integer class ids (B,)")
        targets = one_hot(labels, num_classes, dtype)
    elif labels.ndim == 2:
        if num_classes is not None and labels.shape[1] != num_classes:
            raise ValueError(
                f"labels (B, K) must have K = num_classes = {num_classes}, "
                f"got K = {labels.shape[1]}"
            )
        targets = labels.to(dtype)
        _check_soft(targets, multilabel)
    else:
        raise ValueError(f"labels must have shape (B,) or (B, K), got {tuple(labels.shape)}")
    return smooth(targets, smoothing)
