"""Label ops: one-hot, smoothing, convex mixing of (B, K) targets."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mixkit.ops import _fast
from mixkit.ops.sampling import as_numpy, numpy_ready

__all__ = ["one_hot", "smooth", "mix_targets", "to_targets"]


# CPU label ops run in numpy (the same values; ~1 us per op instead of ~5 us per small torch
# op on a 2-core CPU); other devices and dtypes in torch.


def one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B,) int64 class ids -> (B, K) one-hot. Raises ValueError if an id is outside [0, K)."""
    numpy = numpy_ready(labels) and dtype in _fast.NUMPY_FLOATS
    if labels.numel():
        if numpy:
            ids = labels.numpy()
            lo, hi = int(ids.min()), int(ids.max())
        else:
            lo, hi = (int(v) for v in torch.stack(torch.aminmax(labels)).tolist())  # one sync
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"labels must be class ids in [0, num_classes={num_classes}), "
                f"got values in [{lo}, {hi}]: num_classes too small?"
            )
    if numpy:
        ids = labels.numpy().astype(np.int64, copy=False)
        out = np.zeros((ids.shape[0], num_classes), dtype=_fast.NUMPY_FLOATS[dtype])
        out[np.arange(ids.shape[0]), ids] = 1
        return torch.from_numpy(out)
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

    Computed as ``lerp(y[perm], y, lam)`` with ATen's lerp formula, every difference,
    product and sum rounded in the targets' dtype (as ``_fast.lerp_exact`` for images):
    the same bytes on every CPU, unlike ``torch.lerp``, whose vector kernels use FMA where
    the CPU has it. One-hot rows give the same bytes either way."""
    if numpy_ready(targets) and targets.dtype in _fast.NUMPY_FLOATS:
        y = targets.numpy()
        w = np.asarray(as_numpy(lam), dtype=y.dtype)[:, None]
        partner = y[as_numpy(perm)]
        small = w < 0.5
        # (base, coeff) = (partner, w) or (y, w - 1): y + (y - partner)*(w - 1) has the
        # roundings of y - (y - partner)*(1 - w) (negation is exact).
        base = np.where(small, partner, y)
        return torch.from_numpy(base + np.where(small, w, w - 1) * (y - partner))
    w = lam.to(device=targets.device, dtype=targets.dtype)[:, None]
    partner = targets.index_select(0, perm.to(targets.device))
    return _fast.lerp_exact(partner, targets, w, torch.empty_like(targets))


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
        if targets.numel():
            if bool(((targets < 0) | (targets > 1)).any()) or not bool(
                torch.isfinite(targets).all()
            ):
                raise ValueError("labels (B, K) must hold probabilities in [0, 1]")
            if not multilabel and not torch.allclose(
                targets.sum(1), torch.ones((), dtype=dtype, device=targets.device), atol=1e-4
            ):
                raise ValueError(
                    "labels (B, K) rows must sum to 1 (one-hot/soft targets); "
                    "pass multilabel=True for multi-label targets"
                )
    else:
        raise ValueError(f"labels must have shape (B,) or (B, K), got {tuple(labels.shape)}")
    return smooth(targets, smoothing)
