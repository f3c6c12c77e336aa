"""The classifier contract shared by every ``mixkit.models`` network, and init helpers.

A :class:`Classifier` exposes ``features(x) -> (B, C, h, w)`` (the last feature map, after the
final activation), ``head(f) -> (B, K)`` (global average pool + linear) and
``feature_dim = C``; ``forward(x) == head(features(x))``. RecursiveMix's ROI head and the KD
schemes rely on exactly this split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Classifier(nn.Module):
    """Base: subclasses define ``features`` and the linear layer; the head is GAP + linear.

    The linear layer is the attribute named by ``classifier_attr`` (``"fc"`` by default; the
    RepDistiller VGG / MobileNetV2 / ShuffleNets call it ``classifier`` / ``linear``, kept so
    their checkpoints load unchanged).
    """

    feature_dim: int
    classifier_attr: str = "fc"

    def features(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) float -> (B, feature_dim, h, w) last feature map."""
        raise NotImplementedError

    def head(self, f: Tensor) -> Tensor:
        """(B, feature_dim, h, w) -> (B, K) logits: global average pool, flatten, linear."""
        return getattr(self, self.classifier_attr)(torch.flatten(F.adaptive_avg_pool2d(f, 1), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def check_sizes(num_classes: int, in_channels: int) -> None:
    """One ValueError naming the argument when a class or channel count is not a positive int."""
    for name, v in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be >= 1 (an int), got {v!r}")


def check_depth(depth: int, per: int, offset: int = 2, blocks: str | None = None) -> int:
    """The blocks per stage n of a network ``depth = per * n + offset`` layers deep (n >= 1);
    else one ValueError naming ``depth`` (and the ``blocks`` kind, when given)."""
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or (depth - offset) % per
        or depth < offset + per
    ):
        kind = f" for {blocks} blocks" if blocks else ""
        raise ValueError(f"depth must be {per}n+{offset} with n >= 1{kind}, got {depth!r}")
    return (depth - offset) // per


def init_he(
    module: nn.Module,
    mode: str = "fan_out",
    linear_std: float | None = None,
    zero_conv_bias: bool = True,
) -> None:
    """He-normal (``mode`` fan_out or fan_in, ReLU) convs, their bias zeroed unless
    ``zero_conv_bias=False`` (then PyTorch's default is kept), BN/GN weight 1 bias 0; Linear
    layers get N(0, linear_std) weights and zero bias when ``linear_std`` is given (else
    PyTorch default). Modules in ``module.modules()`` order (the order of the draws)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None and zero_conv_bias:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def init_fan_out(module: nn.Module, linear_std: float | None = None) -> None:
    """:func:`init_he` with fan_out: He-normal convs with zero bias, BN/GN 1/0, Linear
    N(0, linear_std) with zero bias when ``linear_std`` is given.

    The ``normal_(0, sqrt(2 / (k*k*out_channels)))`` of RepDistiller ``wrn.py`` / ``vgg.py`` /
    ``mobilenetv2.py`` and CutMix-PyTorch ``pyramidnet.py`` is this same fan_out He init
    (torchvision ``resnet.py`` and RepDistiller ``resnet.py`` call ``kaiming_normal_`` directly).
    """
    init_he(module, "fan_out", linear_std)
