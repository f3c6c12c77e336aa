"""Segmentation metrics: confusion matrix and (mean) intersection-over-union, ignoring 255.

IoU_k = TP_k / (TP_k + FP_k + FN_k) from the confusion matrix accumulated over the whole
evaluation set (the ``eval_seg.scores`` / ``intersectionAndUnion`` convention of the official
codes: pixels whose ground truth is the ignore index are dropped; classes that never occur in
either prediction or ground truth have no IoU and are left out of the mean).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255
) -> Tensor:
    """(K, K) int64 matrix ``cm[t, p]`` = #pixels with ground truth t predicted as p.

    pred, target: integer tensors of the same shape (any), pred in ``[0, K)``. Target pixels
    equal to ``ignore_index`` are skipped; other target values must lie in ``[0, K)``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must match")
    if pred.is_floating_point() or target.is_floating_point():
        raise ValueError("pred and target must be integer class-id tensors")
    t = target.reshape(-1).long()
    p = pred.reshape(-1).long()
    keep = t != ignore_index
    t, p = t[keep], p[keep]
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"target ids must lie in [0, {num_classes}) or be {ignore_index}")
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise ValueError(f"pred ids must lie in [0, {num_classes})")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).view(
        num_classes, num_classes
    )


def iou_from_confusion(cm: Tensor) -> Tensor:
    """(K,) float64 IoU per class; NaN where the class is absent from both pred and target."""
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, math.nan))


def miou(cm: Tensor) -> float:
    """Mean IoU over the classes that occur (NaN-mean)."""
    iou = iou_from_confusion(cm)
    valid = ~torch.isnan(iou)
    return float(iou[valid].mean()) if bool(valid.any()) else math.nan


class ConfusionMeter:
    """Accumulates a confusion matrix over batches."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, pred: Tensor, target: Tensor) -> None:
        self.cm += confusion_matrix(pred.cpu(), target.cpu(), self.num_classes, self.ignore_index)

    def iou(self) -> Tensor:
        return iou_from_confusion(self.cm)

    def miou(self) -> float:
        return miou(self.cm)

    def pixel_acc(self) -> float:
        total = int(self.cm.sum())
        return float(self.cm.diagonal().sum()) / total if total else math.nan
