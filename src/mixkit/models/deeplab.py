"""DeepLabv3+ (Chen et al. 2018) with a torchvision-key ResNet-50/101 backbone, as used by the
semi-supervised segmentation methods (PS-MT, Dual Teacher on VOC/Cityscapes).

Layout after yyliu01/PS-MT ``VocCode/Model/Deeplabv3_plus/encoder_decoder.py``
(``EncoderNetwork`` + ``Head`` + ``ASPP`` then ``DecoderNetwork``/``upsample``):

- backbone: ResNet with layer4's stride replaced by dilation (output stride 16, torchvision
  ``replace_stride_with_dilation=[False, False, True]``; stride 8 dilates layer3 too). PS-MT's
  own backbone differs here: a 3-conv "deep stem" and multi-grid dilations 2/4/8 in layer4;
  the plain torchvision stem is kept so torchvision ImageNet weights load by key.
- ASPP (PS-MT ``ASPP``): a 1x1 and three 3x3 dilated convs (rates 6/12/18 at stride 16,
  doubled at stride 8) to 256 channels each, concatenated, BN - LeakyReLU, 1x1 to 256; an image
  pooling branch (global mean - 1x1 - BN - LeakyReLU - 1x1) broadcast-added; BN - LeakyReLU.
- encoder output (PS-MT ``Head.forward``): ASPP features bilinearly upsampled
  (``align_corners=True``) to layer1's size, concatenated with layer1 reduced to 48 channels
  (1x1 - BN - ReLU): ``encode(x)`` -> (B, 304, H/4, W/4).
- decoder (PS-MT ``upsample``): two 3x3 conv(256) - BN - ReLU, 1x1 classifier (with bias),
  bilinear upsampling to the input size (``align_corners=True``): ``decode(f, size)``.
- init: head and decoder convs He-normal fan_in (PS-MT ``base_trainer.py`` ``init_weight``),
  BN 1/0; the backbone as torchvision.

The ``encode``/``decode`` split and ``feature_dim`` match ``SegNet``, so the T-VAT feature
perturbation of PS-MT works on either. In training mode the image-pooling BN needs a batch of
at least 2 (as in PS-MT).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.models.base import check_sizes, init_he
from mixkit.models.resnet import ResNet
from mixkit.models.weights import load_weights

_BACKBONE_LAYERS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}


class ASPP(nn.Module):
    """PS-MT ``ASPP``: (B, C_in, h, w) -> (B, out_channels, h, w)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        rates: Sequence[int] = (6, 12, 18),
        hidden_channels: int = 256,
    ) -> None:
        super().__init__()
        convs = [nn.Conv2d(in_channels, hidden_channels, 1, bias=False)]
        convs += [
            nn.Conv2d(in_channels, hidden_channels, 3, padding=r, dilation=r, bias=False)
            for r in rates
        ]
        self.map_convs = nn.ModuleList(convs)
        self.map_bn = nn.BatchNorm2d(hidden_channels * len(convs))
        self.red_conv = nn.Conv2d(hidden_channels * len(convs), out_channels, 1, bias=False)
        self.global_pooling_conv = nn.Conv2d(in_channels, hidden_channels, 1, bias=False)
        self.global_pooling_bn = nn.BatchNorm2d(hidden_channels)
        self.pool_red_conv = nn.Conv2d(hidden_channels, out_channels, 1, bias=False)
        self.red_bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.leaky_relu(self.map_bn(torch.cat([m(x) for m in self.map_convs], 1)))
        out = self.red_conv(out)
        pool = self.global_pooling_conv(x.mean((2, 3), keepdim=True))
        pool = self.pool_red_conv(F.leaky_relu(self.global_pooling_bn(pool)))
        return F.leaky_relu(self.red_bn(out + pool))  # pool broadcasts over (h, w)


def _cbr(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class DeepLabV3Plus(nn.Module):
    """DeepLabv3+ with a ResNet backbone. x (B, C, H, W) float -> logits (B, K, H, W).

    Args:
        num_classes: K. in_channels: image channels.
        backbone: ``"resnet50"`` or ``"resnet101"``.
        backbone_weights: a local torchvision-key ResNet state dict file (``fc.*`` ignored);
            None: random init. Nothing is downloaded.
        output_stride: 16 (layer4 dilated) or 8 (layer3 and layer4 dilated).
        aspp_rates: None: (6, 12, 18) at stride 16, (12, 24, 36) at stride 8.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        backbone: str = "resnet50",
        backbone_weights: str | Path | None = None,
        output_stride: int = 16,
        aspp_rates: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        if backbone not in _BACKBONE_LAYERS:
            raise ValueError(
                f"backbone must be one of {sorted(_BACKBONE_LAYERS)}, got {backbone!r}"
            )
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}")
        dilate = (False, output_stride == 8, True)
        net = ResNet(1000, in_channels, "bottleneck", _BACKBONE_LAYERS[backbone], dilate)
        del net.fc, net.avgpool  # unused by segmentation (and unused parameters upset DDP)
        self.backbone = net
        if backbone_weights is not None:
            load_weights(self.backbone, backbone_weights, skip=("fc.",))
        scale = 16 // output_stride
        rates = tuple(aspp_rates) if aspp_rates is not None else (6 * scale, 12 * scale, 18 * scale)
        self.aspp = ASPP(2048, 256, rates)
        self.reduce = _cbr(256, 48, 1)
        self.last_conv = nn.Sequential(_cbr(304, 256, 3), _cbr(256, 256, 3))
        self.classifier = nn.Conv2d(256, num_classes, 1)
        self.feature_dim = 304
        self.num_classes = num_classes
        for part in (self.aspp, self.reduce, self.last_conv, self.classifier):
            init_he(part, "fan_in", zero_conv_bias=False)  # the classifier keeps its bias init

    def encode(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> encoder features (B, 304, ceil(H/4), ceil(W/4))."""
        b = self.backbone
        low = b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(x)))))
        high = self.aspp(b.layer4(b.layer3(b.layer2(low))))
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=True)
        return torch.cat([high, self.reduce(low)], 1)

    def decode(self, f: Tensor, size: tuple[int, int]) -> Tensor:
        """Encoder features (B, 304, h, w) -> logits (B, K, *size)."""
        logits = self.classifier(self.last_conv(f))
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x), (x.shape[-2], x.shape[-1]))


def deeplabv3plus_resnet50(num_classes: int, in_channels: int = 3, **kw) -> DeepLabV3Plus:
    """DeepLabv3+ with a ResNet-50 backbone (output stride 16)."""
    return DeepLabV3Plus(num_classes, in_channels, "resnet50", **kw)


def deeplabv3plus_resnet101(num_classes: int, in_channels: int = 3, **kw) -> DeepLabV3Plus:
    """DeepLabv3+ with a ResNet-101 backbone (output stride 16)."""
    return DeepLabV3Plus(num_classes, in_channels, "resnet101", **kw)
