"""CIFAR ResNets of the KD benchmarks (He et al. 2016, option-B shortcuts), with the names,
widths and module names of HobbitLong/RepDistiller ``models/resnet.py`` (so RepDistiller
teacher checkpoints load by key): ``resnet8/14/20/32/44/56/110`` (16/16/32/64 filters),
``resnet8x4``/``resnet32x4`` (32/64/128/256 filters).

Architecture (RepDistiller ``resnet.py``): conv3x3(16) - BN - ReLU, then three stages of n
blocks (first block of stages 2 and 3 at stride 2), a 1x1 conv + BN shortcut whenever the
stride or width changes, global average pool, linear. Depth 6n+2 with basic blocks, 9n+2 with
bottlenecks (expansion 4). He fan_out init.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.models.base import Classifier, check_sizes, init_fan_out


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    """3x3-BN-ReLU-3x3-BN + shortcut, ReLU (RepDistiller ``BasicBlock``)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.downsample is None else self.downsample(x)
        return F.relu(out + short)


class Bottleneck(nn.Module):
    """1x1-3x3(stride)-1x1 with 4x expansion (RepDistiller ``Bottleneck``)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        short = x if self.downsample is None else self.downsample(x)
        return F.relu(out + short)


class CifarResNet(Classifier):
    """RepDistiller ``ResNet(depth, num_filters, block_name)`` for 32x32 inputs.

    Args:
        num_classes: K. in_channels: image channels (RepDistiller: 3).
        depth: 6n+2 (``block="basic"``) or 9n+2 (``block="bottleneck"``).
        num_filters: stem width and the widths of the three stages.
    Shapes: x (B, C, H, W) -> features (B, num_filters[3] * expansion, H/4, W/4).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        depth: int = 20,
        num_filters: Sequence[int] = (16, 16, 32, 64),
        block: str = "basic",
    ) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        blocks = {"basic": (BasicBlock, 6), "bottleneck": (Bottleneck, 9)}
        if block not in blocks:
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
        kind, per = blocks[block]
        if (
            isinstance(depth, bool)
            or not isinstance(depth, int)
            or (depth - 2) % per
            or depth < 2 + per
        ):
            raise ValueError(
                f"depth must be {per}n+2 with n >= 1 for {block} blocks, got {depth!r}"
            )
        if len(num_filters) != 4 or any(int(c) < 1 for c in num_filters):
            raise ValueError(f"num_filters must be 4 positive widths, got {num_filters!r}")
        n = (depth - 2) // per
        self.inplanes = int(num_filters[0])
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(kind, int(num_filters[1]), n, 1)
        self.layer2 = self._make_layer(kind, int(num_filters[2]), n, 2)
        self.layer3 = self._make_layer(kind, int(num_filters[3]), n, 2)
        self.feature_dim = int(num_filters[3]) * kind.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes)
        init_fan_out(self)

    def _make_layer(self, kind: type, planes: int, n: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * kind.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * kind.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * kind.expansion),
            )
        layers = [kind(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * kind.expansion
        layers += [kind(self.inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def features(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))


class ResNet20(CifarResNet):
    """Basic-block CIFAR ResNet-(6n+2) with (16, 16, 32, 64) x ``width`` filters (default 20)."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, depth: int = 20, width: int = 1
    ) -> None:
        w = int(width)
        super().__init__(num_classes, in_channels, depth, (16 * w, 16 * w, 32 * w, 64 * w))


def _factory(depth: int, filters: tuple[int, int, int, int], doc: str):
    def build(num_classes: int = 10, in_channels: int = 3, **kw) -> CifarResNet:
        return CifarResNet(num_classes, in_channels, depth, filters, **kw)

    build.__doc__ = doc
    return build


_SLIM, _X4 = (16, 16, 32, 64), (32, 64, 128, 256)
CIFAR_RESNETS = {
    f"resnet{d}": _factory(d, _SLIM, f"RepDistiller resnet{d}: depth {d}, 16/32/64 filters.")
    for d in (8, 14, 20, 32, 44, 56, 110)
}
CIFAR_RESNETS["resnet8x4"] = _factory(8, _X4, "RepDistiller resnet8x4: depth 8, 32/64/128/256.")
CIFAR_RESNETS["resnet32x4"] = _factory(32, _X4, "RepDistiller resnet32x4: depth 32, 32/64/128/256.")
