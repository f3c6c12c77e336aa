"""RecursiveMix's ROI consistency term: a head on the ROI-Aligned feature of the pasted box
is trained to predict the softmax of the logits the model gave the previous batch (official
``main.py::train``, ``fc_roi``).

Fixed bug of the official code: ``roi_feat.squeeze()`` drops the batch dimension of a batch
of 1. The ROI box is the pasted box, as in the official code: its paste
``x[:, :, bby1:bby2, bbx1:bbx2]`` and ROI box ``[bbx1, bby1, bbx2, bby2]`` agree (rows from
y, columns from x); the ``x[:, :, bbx1:bbx2, bby1:bby2]`` indexing belongs to the original
CutMix code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit import losses
from mixkit.methods.recursivemix.roi_align import roi_align


class RoIHead(nn.Module):
    """Official ``fc_roi``: ROI-Align the final feature map over the pasted box (1x1 output,
    ``aligned=True``, adaptive sampling, ``spatial_scale = feat_W / img_W``) and apply a
    linear layer. features (B, C, h, w), boxes (B, 4) xyxy image pixels -> (B, K) logits."""

    def __init__(self, feature_dim: int, num_classes: int, output_size: int = 1) -> None:
        super().__init__()
        if feature_dim < 1 or num_classes < 1 or output_size < 1:
            raise ValueError(
                "feature_dim, num_classes and output_size must be >= 1, got "
                f"{feature_dim}, {num_classes}, {output_size}"
            )
        self.output_size = output_size
        self.fc = nn.Linear(feature_dim * output_size * output_size, num_classes)

    def pool(self, features: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
        """(B, C, s, s) ROI-Aligned features of each sample's box."""
        b = features.shape[0]
        if boxes.shape != (b, 4):
            raise ValueError(f"boxes must have shape ({b}, 4), got {tuple(boxes.shape)}")
        index = torch.arange(b, device=features.device, dtype=features.dtype)[:, None]
        rois = torch.cat([index, boxes.to(device=features.device, dtype=features.dtype)], 1)
        scale = features.shape[-1] / image_size[1]
        return roi_align(features, rois, self.output_size, scale, sampling_ratio=-1, aligned=True)

    def forward(self, features: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
        # flatten(1), not the official squeeze(): a batch of 1 keeps its batch dimension.
        return self.fc(self.pool(features, boxes, image_size).flatten(1))


def recursive_mix_loss(
    logits: Tensor,
    targets: Tensor,
    roi_logits: Tensor | None = None,
    history_logits: Tensor | None = None,
    lam: Tensor | float | None = None,
    omega: float = 0.1,
) -> Tensor:
    """``CE(logits, targets) + ω · mean_i[(1-λ_i) · CE(roi_logits_i, softmax(history_i))]``.

    Soft-target CE (sum over classes, mean over the batch: official
    ``LabelSmoothingLoss``); the consistency term is official ``main.py``'s
    ``criterion(out_roi, old_out.softmax(-1)[:bs]) * omega * (1 - lam)``, with a per-sample
    λ (B,) allowed. With ``omega == 0`` or no ROI logits the result is exactly the first term.

    Shapes: logits, roi_logits, history_logits (B, K); targets (B, K) or (B,) ids; lam (B,)
    or a float.
    """
    loss = losses.soft_target_cross_entropy(logits, targets)
    if omega < 0:
        raise ValueError(f"omega must be >= 0, got {omega!r}")
    if omega == 0 or roi_logits is None:
        return loss
    if history_logits is None or lam is None:
        raise ValueError("roi_logits need history_logits and lam for the consistency term")
    if history_logits.shape != roi_logits.shape:
        raise ValueError(
            f"history_logits must match roi_logits {tuple(roi_logits.shape)}, "
            f"got {tuple(history_logits.shape)}"
        )
    teacher = F.softmax(history_logits.detach().float(), dim=1).to(roi_logits.dtype)
    per_sample = losses.soft_target_cross_entropy(roi_logits, teacher, reduction="none")
    weight = 1 - torch.as_tensor(lam, dtype=per_sample.dtype, device=per_sample.device)
    return loss + omega * (weight * per_sample).mean()
