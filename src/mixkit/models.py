"""Small classifiers. Each exposes ``features(x) -> (B, C, h, w)`` (the last feature map),
``head(f) -> (B, K)`` (pool + linear) and ``feature_dim`` so RecursiveMix's ROI head and
KD can reuse any backbone; ``forward = head(features(x))``.

- ``smallcnn``: 3 conv blocks, for 28x28 MNIST-scale data (~1 s/epoch on MNIST-5k, 2 cores).
- ``resnet20``: the narrow CIFAR ResNet of He et al. 2016 (16/32/64 channels, 3x3 blocks).
- ``preact_resnet18``: PreAct ResNet-18 (He et al. 2016, identity mappings) as used by the
  CutMix/RecursiveMix CIFAR experiments, 64..512 channels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Classifier",
    "SmallCNN",
    "ResNet20",
    "PreActResNet18",
    "MODELS",
    "build_model",
]


class Classifier(nn.Module):
    """Base: subclasses define ``features``; the head is global-average-pool + linear."""

    feature_dim: int

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def head(self, f: Tensor) -> Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(f, 1), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
    )


class SmallCNN(Classifier):
    """conv32-conv32/2-conv64/2-conv64 with BN; features at 1/4 resolution (7x7 for 28x28)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
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


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(out)) + self.short(x))


class ResNet20(Classifier):
    """CIFAR ResNet-(6n+2): 3 stages of n basic blocks with 16/32/64 x ``width`` channels."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, depth: int = 20, width: int = 1
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"depth must be 6n+2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        chans = [16 * width, 32 * width, 64 * width]
        self.stem = _conv_bn(in_channels, chans[0])
        layers, cin = [], chans[0]
        for i, c in enumerate(chans):
            for j in range(n):
                layers.append(_BasicBlock(cin, c, 2 if (i > 0 and j == 0) else 1))
                cin = c
        self.layers = nn.Sequential(*layers)
        self.feature_dim = chans[-1]
        self.fc = nn.Linear(chans[-1], num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.layers(self.stem(x))


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


MODELS: dict[str, Callable[..., Classifier]] = {
    "smallcnn": SmallCNN,
    # KD student: SmallCNN at width 8, ~4.4k parameters (15x fewer than smallcnn).
    "tinycnn": lambda num_classes=10, in_channels=3: SmallCNN(num_classes, in_channels, width=8),
    "resnet20": ResNet20,
    "resnet8": lambda num_classes=10, in_channels=3: ResNet20(num_classes, in_channels, depth=8),
    "preact_resnet18": PreActResNet18,
}


def build_model(name: str, num_classes: int, in_channels: int = 3) -> Classifier:
    """Instantiate one of :data:`MODELS`."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return MODELS[name](num_classes=num_classes, in_channels=in_channels)
