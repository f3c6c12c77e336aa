"""CIFAR ShuffleNets of the KD benchmarks, after HobbitLong/RepDistiller
``models/ShuffleNetv1.py`` (``ShuffleV1``, registered as ``shufflenetv1``) and
``models/ShuffleNetv2.py`` (``ShuffleV2``, registered as ``shufflenetv2``), module names kept.

Both use a 1x1 conv(24) - BN - ReLU stem (no stride, no max-pool), three stride-2 stages and
global average pooling; total stride 8 (4x4 maps at 32x32), PyTorch default init.

- V1 (Zhang et al. 2018), groups 3, stage widths 240/480/960, 4/8/4 units; a unit is
  grouped 1x1 - channel shuffle - 3x3 depthwise - grouped 1x1; stride-2 units concatenate a
  3x3/2 average-pooled shortcut, others add it; the first unit after the stem uses 1 group in
  its first 1x1.
- V2 (Ma et al. 2018), size 1: widths 116/232/464, 3/7/3 basic units after each down-sampling
  unit, final 1x1 conv to 1024; basic units split the channels in half, transform one half and
  shuffle the concatenation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.models.base import Classifier, check_sizes


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """(N, C, H, W) -> (N, C, H, W) with channels reordered [N, g, C/g] -> [N, C/g, g]."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _conv_bns(unit: nn.Module, *layers: tuple[int, int, int, int, int]) -> None:
    """Register ``conv1, bn1, conv2, bn2, ...`` (RepDistiller's names) on ``unit``: one
    bias-free k x k conv (padding k // 2) + BN per ``(cin, cout, k, stride, groups)``."""
    for i, (cin, cout, k, stride, groups) in enumerate(layers, 1):
        conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        unit.add_module(f"conv{i}", conv)
        unit.add_module(f"bn{i}", nn.BatchNorm2d(cout))


class _V1Unit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, groups: int) -> None:
        super().__init__()
        mid = cout // 4
        self.g1 = 1 if cin == 24 else groups
        self.stride = stride
        _conv_bns(
            self, (cin, mid, 1, 1, self.g1), (mid, mid, 3, stride, mid), (mid, cout, 1, 1, groups)
        )

    def forward(self, x: Tensor) -> Tensor:
        out = channel_shuffle(F.relu(self.bn1(self.conv1(x))), self.g1)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            return F.relu(torch.cat([out, F.avg_pool2d(x, 3, 2, 1)], 1))
        return F.relu(out + x)


class ShuffleNetV1(Classifier):
    """x (B, C, H, W) -> features (B, out_planes[2], H/8, W/8)."""

    classifier_attr = "linear"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        out_planes: tuple[int, int, int] = (240, 480, 960),
        num_blocks: tuple[int, int, int] = (4, 8, 4),
        groups: int = 3,
    ) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        self.conv1 = nn.Conv2d(in_channels, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        for i, (cout, n) in enumerate(zip(out_planes, num_blocks, strict=True)):
            # the stride-2 unit's output is concatenated with its cin-channel shortcut
            units = [_V1Unit(cin, cout - cin, 2, groups)]
            units += [_V1Unit(cout, cout, 1, groups) for _ in range(1, n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*units))
            cin = cout
        self.feature_dim = cin
        self.linear = nn.Linear(cin, num_classes)

    def features(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(out)))


class _V2Basic(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels // 2
        _conv_bns(self, (c, c, 1, 1, 1), (c, c, 3, 1, c), (c, c, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1] // 2
        x1, x2 = x[:, :c], x[:, c:]
        out = F.relu(self.bn1(self.conv1(x2)))
        out = F.relu(self.bn3(self.conv3(self.bn2(self.conv2(out)))))
        return channel_shuffle(torch.cat([x1, out], 1), 2)


class _V2Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        left = [(cin, cin, 3, 2, cin), (cin, mid, 1, 1, 1)]  # conv1, conv2
        right = [(cin, mid, 1, 1, 1), (mid, mid, 3, 2, mid), (mid, mid, 1, 1, 1)]  # conv3-5
        _conv_bns(self, *left, *right)

    def forward(self, x: Tensor) -> Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x)))))
        right = F.relu(self.bn5(self.conv5(right)))
        return channel_shuffle(torch.cat([left, right], 1), 2)


SHUFFLEV2_SIZES: dict[float, tuple[tuple[int, int, int, int], tuple[int, int, int]]] = {
    0.5: ((48, 96, 192, 1024), (3, 7, 3)),
    1.0: ((116, 232, 464, 1024), (3, 7, 3)),
    1.5: ((176, 352, 704, 1024), (3, 7, 3)),
    2.0: ((224, 488, 976, 2048), (3, 7, 3)),
}


class ShuffleNetV2(Classifier):
    """x (B, C, H, W) -> features (B, 1024, H/8, W/8) at ``net_size`` 1."""

    classifier_attr = "linear"

    def __init__(self, num_classes: int = 10, in_channels: int = 3, net_size: float = 1.0):
        super().__init__()
        check_sizes(num_classes, in_channels)
        if net_size not in SHUFFLEV2_SIZES:
            raise ValueError(f"net_size must be one of {sorted(SHUFFLEV2_SIZES)}, got {net_size!r}")
        widths, blocks = SHUFFLEV2_SIZES[net_size]
        self.conv1 = nn.Conv2d(in_channels, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        for i, (cout, n) in enumerate(zip(widths[:3], blocks, strict=True)):
            units = [_V2Down(cin, cout)] + [_V2Basic(cout) for _ in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*units))
            cin = cout
        self.conv2 = nn.Conv2d(cin, widths[3], 1, bias=False)
        self.bn2 = nn.BatchNorm2d(widths[3])
        self.feature_dim = widths[3]
        self.linear = nn.Linear(widths[3], num_classes)

    def features(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.relu(self.bn2(self.conv2(out)))


def shufflenetv1(num_classes: int = 10, in_channels: int = 3, **kw) -> ShuffleNetV1:
    """RepDistiller ``ShuffleV1``: groups 3, widths 240/480/960, 4/8/4 units."""
    return ShuffleNetV1(num_classes, in_channels, **kw)


def shufflenetv2(num_classes: int = 10, in_channels: int = 3, **kw) -> ShuffleNetV2:
    """RepDistiller ``ShuffleV2``: net size 1 (116/232/464, 1024)."""
    return ShuffleNetV2(num_classes, in_channels, **kw)
