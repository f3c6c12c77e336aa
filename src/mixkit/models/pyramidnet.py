"""PyramidNet for CIFAR (Han et al. 2017), the RecursiveMix / CutMix CIFAR network, after
clovaai/CutMix-PyTorch ``pyramidnet.py`` and implus/RecursiveMix-pytorch
``models_cifar/pyramidnet.py`` (``pyramidnet_200_240``: depth 200, widening alpha 240,
bottleneck). Module names follow those files (the RecursiveMix ``fc_roi`` head is not part of
the network here; ``RecursiveMixStep`` owns its ROI head).

Architecture: conv3x3(16) - BN (no ReLU), three stages of n blocks (n = (depth-2)/9 for
bottlenecks, (depth-2)/6 for basic blocks) whose width grows by alpha/(3n) per block (rounded),
stages 2 and 3 start at stride 2; blocks are BN - conv - BN - ReLU - conv (- BN - ReLU - conv)
- BN with no final ReLU; the shortcut is identity (2x2 average pool, ceil mode, at stride 2)
zero-padded to the block's width; final BN - ReLU, global average pool, ``fc``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.models.base import Classifier, check_depth, check_sizes, init_fan_out


class _PyramidBlock(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int, bottleneck: bool) -> None:
        super().__init__()
        self.stride = stride
        out = planes * (4 if bottleneck else 1)
        self.bn1 = nn.BatchNorm2d(cin)
        if bottleneck:
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
            self.bn4 = nn.BatchNorm2d(out)
        else:
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes)
        self.bottleneck = bottleneck

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.bn3(out)
        if self.bottleneck:
            out = self.bn4(self.conv3(F.relu(out)))
        short = F.avg_pool2d(x, 2, 2, ceil_mode=True) if self.stride != 1 else x
        extra = out.shape[1] - short.shape[1]
        if extra > 0:  # zero channels appended to the shortcut (the "pyramidal" widening)
            short = F.pad(short, (0, 0, 0, 0, 0, extra))
        return out + short


class PyramidNet(Classifier):
    """PyramidNet-depth (alpha). x (B, C, H, W) -> features (B, feature_dim, H/4, W/4);
    ``feature_dim = round(16 + alpha) * 4`` with bottlenecks (1024 for alpha 240).

    Args:
        depth: 9n+2 (bottleneck) or 6n+2 (basic). alpha: total widening over the network.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        depth: int = 200,
        alpha: float = 240,
        bottleneck: bool = True,
    ) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        kind, per, expansion = ("bottleneck", 9, 4) if bottleneck else ("basic", 6, 1)
        n = check_depth(depth, per, blocks=kind)
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        add = alpha / (3 * n)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin, width = 16, 16.0
        for i, stride in enumerate((1, 2, 2)):
            blocks = []
            for j in range(n):
                width += add
                blocks.append(_PyramidBlock(cin, round(width), stride if j == 0 else 1, bottleneck))
                cin = round(width) * expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.bn_final = nn.BatchNorm2d(cin)
        self.relu_final = nn.ReLU(inplace=True)
        self.feature_dim = cin
        self.fc = nn.Linear(cin, num_classes)
        init_fan_out(self)

    def features(self, x: Tensor) -> Tensor:
        x = self.bn1(self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.relu_final(self.bn_final(x))


def pyramidnet(num_classes: int = 10, in_channels: int = 3, **kw) -> PyramidNet:
    """PyramidNet, default the RecursiveMix paper's PyramidNet-200 (alpha 240, bottleneck);
    ``depth=``, ``alpha=``, ``bottleneck=`` override."""
    return PyramidNet(num_classes, in_channels, **kw)
