"""A small DeepLabv3+-style segmentation net for 48x48 canvases (CPU-sized).

``SegNet.encode(x) -> f`` is the encoder (backbone + ASPP-lite + low-level fusion, the
DeepLabv3+ ``Head`` of PS-MT's ``encoder_decoder.py``) and ``SegNet.decode(f, size)`` the
decoder (conv + classifier + bilinear upsampling). ``forward(x) = decode(encode(x))``. The
split is the feature hook PS-MT's T-VAT needs: it perturbs the student's encoder features
``f`` and feeds them to the teachers' decoders (PS-MT ``VATDecoderNetwork``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _ASPPLite(nn.Module):
    """1x1 branch, one dilated 3x3 branch and an image-pooling branch, fused by 1x1."""

    def __init__(self, cin: int, cout: int, dilation: int = 2) -> None:
        super().__init__()
        self.b1 = _cbr(cin, cout, 1)
        self.b2 = _cbr(cin, cout, 3, dilation=dilation)
        self.pool = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
        self.fuse = _cbr(3 * cout, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        g = self.pool(x.mean((2, 3), keepdim=True)).expand(-1, -1, x.shape[2], x.shape[3])
        return self.fuse(torch.cat([self.b1(x), self.b2(x), g], 1))


class SegNet(nn.Module):
    """DeepLab-lite: stride-2 low-level features, stride-4 context, ASPP-lite, fusion.

    Args:
        num_classes: K output channels.
        in_channels: image channels.
        width: base channel count w (encoder features have ``feature_dim = 3w`` channels at
            1/2 resolution).
    Shapes: x (B, C, H, W) float -> logits (B, K, H, W).
    """

    def __init__(self, num_classes: int = 11, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1 or width < 1:
            raise ValueError(
                "num_classes, in_channels and width must be >= 1, "
                f"got {num_classes}, {in_channels}, {width}"
            )
        w = width
        self.stem = _cbr(in_channels, w, stride=2)  # 1/2
        self.low = _cbr(w, w)  # 1/2, low-level features
        self.down = _cbr(w, 2 * w, stride=2)  # 1/4
        self.context = _cbr(2 * w, 2 * w, dilation=2)
        self.aspp = _ASPPLite(2 * w, 2 * w, dilation=3)
        self.feature_dim = 3 * w
        self.head = _cbr(3 * w, 2 * w)
        self.classifier = nn.Conv2d(2 * w, num_classes, 1)
        self.num_classes = num_classes

    def encode(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> encoder features (B, 3w, ceil(H/2), ceil(W/2))."""
        low = self.low(self.stem(x))
        high = self.aspp(self.context(self.down(low)))
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([high, low], 1)

    def decode(self, f: Tensor, size: tuple[int, int]) -> Tensor:
        """Encoder features -> logits (B, K, *size)."""
        logits = self.classifier(self.head(f))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x), (x.shape[-2], x.shape[-1]))


@contextlib.contextmanager
def bn_mode(model: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Run ``model`` for inference in a BatchNorm mode, restoring its state afterwards.

    - ``"eval"``: running statistics (``model.eval()``).
    - ``"batch"``: the statistics of the current batch, as the official PS-MT and Dual Teacher
      codes get by predicting with teachers in train mode, but WITHOUT updating the running
      buffers (``track_running_stats`` is switched off for the call), so an inactive teacher
      is left bit-for-bit unchanged by its forward passes.
    """
    if mode not in ("eval", "batch"):
        raise ValueError(f"bn mode must be 'eval' or 'batch', got {mode!r}")
    was_training = model.training
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tracked = [m.track_running_stats for m in bns]
    try:
        if mode == "eval":
            model.eval()
        else:
            model.train()
            for m in bns:
                m.track_running_stats = False
        yield model
    finally:
        for m, t in zip(bns, tracked, strict=True):
            m.track_running_stats = t
        model.train(was_training)
