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

from torch import Tensor, nn

from mixkit.models.base import check_depth, check_sizes, init_fan_out
from mixkit.models.resnet import BasicBlock, Bottleneck, ResNetStages


class CifarResNet(ResNetStages):
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
        n = check_depth(depth, per, blocks=block)
        if len(num_filters) != 4 or any(int(c) < 1 for c in num_filters):
            raise ValueError(f"num_filters must be 4 positive widths, got {num_filters!r}")
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
