"""Small classifiers kept from the first mixkit release (their state_dict keys are unchanged).

- ``smallcnn``: 3 conv blocks, for 28x28 MNIST-scale data (~1 s/epoch on MNIST-5k, 2 cores).
- ``tinycnn``: SmallCNN at width 8 (~4.4k parameters), the KD student of the MNIST recipes.
- ``preact_resnet18``: PreAct ResNet-18 (He et al. 2016, identity mappings) as used by the
  CutMix/RecursiveMix CIFAR experiments, 64..512 channels.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.models.base import Classifier, check_sizes


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
    )


class SmallCNN(Classifier):
    """conv32-conv32/2-conv64/2-conv64 with BN; features at 1/4 resolution (7x7 for 28x28)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        w = width
        self.body = nn.Sequential(
            _conv_bn(in_channels, w),
            _conv_bn(w, w, 2),
            _conv_bn(w, 2 * w),
            _conv_bn(2 * w, 2 * w, 2),
        )
        self.feature_dim = 2 * w
        self.fc = nn.Linear(2 * w, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)


class _PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.b1 = nn.BatchNorm2d(cin)
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.short = (
            nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.b1(x))
        short = self.short(out) if self.short is not None else x
        out = self.c1(out)
        out = self.c2(F.relu(self.b2(out)))
        return out + short


class PreActResNet18(Classifier):
    """PreAct ResNet-18 for 32x32 inputs: [2, 2, 2, 2] blocks, 64/128/256/512 channels."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        self.stem = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        layers, cin = [], 64
        for i, c in enumerate([64, 128, 256, 512]):
            for j in range(2):
                layers.append(_PreActBlock(cin, c, 2 if (i > 0 and j == 0) else 1))
                cin = c
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.feature_dim = 512
        self.fc = nn.Linear(512, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.layers(self.stem(x))))


def smallcnn(num_classes: int = 10, in_channels: int = 1, **kw: int) -> SmallCNN:
    """SmallCNN, width 32 (``width=`` overrides)."""
    return SmallCNN(num_classes, in_channels, **kw)


def tinycnn(num_classes: int = 10, in_channels: int = 3) -> SmallCNN:
    """KD student: SmallCNN at width 8, ~4.4k parameters (15x fewer than smallcnn)."""
    return SmallCNN(num_classes, in_channels, width=8)


def preact_resnet18(num_classes: int = 10, in_channels: int = 3) -> PreActResNet18:
    return PreActResNet18(num_classes, in_channels)
