"""ImageNet ResNets whose ``state_dict()`` keys and shapes equal torchvision's
(``torchvision/models/resnet.py``), so local torchvision weight files load directly:
``resnet18``, ``resnet50``, ``resnet101``.

Architecture (torchvision ``resnet.py``, "ResNet v1.5"): conv7x7/2(64) - BN - ReLU -
maxpool3x3/2, four stages (64/128/256/512 planes; stages 2-4 start at stride 2), global
average pool, ``fc``. Bottleneck blocks (expansion 4) put the stride on the 3x3 conv; the
shortcut is conv1x1(stride) + BN where the shape changes. ``replace_stride_with_dilation``
turns a stage's stride into dilation (the first block of that stage keeps the previous
dilation), as torchvision does for DeepLab. He fan_out conv init, BN 1/0, optional
zero-init of each block's last BN (``zero_init_residual``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mixkit.models.base import Classifier, check_sizes, init_fan_out


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False)


class _Residual(nn.Module):
    """``relu(body(x) + shortcut)``, the shortcut ``downsample(x)`` where the shape changes,
    else ``x``. Subclasses register their layers in ``_build`` (torchvision / RepDistiller
    module names and order, ``downsample`` last) and compute the body in ``_body``."""

    expansion: int
    relu: nn.ReLU

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self._build(cin, planes, stride, dilation)
        self.downsample = downsample

    def _build(self, cin: int, planes: int, stride: int, dilation: int) -> None:
        raise NotImplementedError

    def _body(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        out = self._body(x)
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class BasicBlock(_Residual):
    """3x3(stride)-BN-ReLU-3x3-BN + shortcut, ReLU (torchvision and RepDistiller
    ``BasicBlock``)."""

    expansion = 1

    def _build(self, cin: int, planes: int, stride: int, dilation: int) -> None:
        if dilation > 1:  # torchvision raises too: basic blocks have no dilated variant
            raise ValueError("replace_stride_with_dilation needs bottleneck blocks (resnet50+)")
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)

    def _body(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(_Residual):
    """1x1-3x3(stride, dilation)-1x1 with 4x expansion, the stride on the 3x3 (torchvision
    "ResNet v1.5" and RepDistiller ``Bottleneck``)."""

    expansion = 4

    def _build(self, cin: int, planes: int, stride: int, dilation: int) -> None:
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)

    def _body(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class ResNetStages(Classifier):
    """Base of the ImageNet and CIFAR ResNets: :meth:`_make_layer` builds one stage from
    ``self.inplanes`` channels (torchvision and RepDistiller ``_make_layer``)."""

    inplanes: int
    dilation = 1

    def _make_layer(self, kind: type, planes: int, n: int, stride: int, dilate: bool = False):
        """``n`` blocks of ``kind`` to ``planes * kind.expansion`` channels, the first at
        ``stride`` with a conv1x1(stride) + BN ``downsample`` where the shape changes.
        ``dilate`` turns the stride into dilation (the first block keeps the previous one)."""
        previous = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * kind.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * kind.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * kind.expansion),
            )
        blocks = [kind(self.inplanes, planes, stride, downsample, previous)]
        self.inplanes = planes * kind.expansion
        blocks += [kind(self.inplanes, planes, dilation=self.dilation) for _ in range(1, n)]
        return nn.Sequential(*blocks)


class ResNet(ResNetStages):
    """torchvision-compatible ResNet. x (B, C, H, W) -> features (B, 512*expansion, H/32, W/32)
    (H/16 with layer4 dilated).

    Args:
        block: ``"basic"`` or ``"bottleneck"``. layers: blocks per stage.
        replace_stride_with_dilation: three bools for layer2..layer4.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        block: str = "bottleneck",
        layers: Sequence[int] = (3, 4, 6, 3),
        replace_stride_with_dilation: Sequence[bool] = (False, False, False),
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        kinds = {"basic": BasicBlock, "bottleneck": Bottleneck}
        if block not in kinds or len(layers) != 4 or len(replace_stride_with_dilation) != 3:
            raise ValueError(
                "block must be 'basic' or 'bottleneck', layers 4 ints and "
                f"replace_stride_with_dilation 3 bools; got {block!r}, {layers!r}, "
                f"{replace_stride_with_dilation!r}"
            )
        kind = kinds[block]
        self.inplanes, self.dilation = 64, 1
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(kind, 64, layers[0], 1, False)
        dil = [bool(d) for d in replace_stride_with_dilation]
        self.layer2 = self._make_layer(kind, 128, layers[1], 2, dil[0])
        self.layer3 = self._make_layer(kind, 256, layers[2], 2, dil[1])
        self.layer4 = self._make_layer(kind, 512, layers[3], 2, dil[2])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = 512 * kind.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes)
        init_fan_out(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def stages(self, x: Tensor) -> list[Tensor]:
        """The outputs of layer1..layer4: strides 4, 8, 16, 32 (less where dilated)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            out.append(x)
        return out

    def features(self, x: Tensor) -> Tensor:
        return self.stages(x)[-1]

    def head(self, f: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(f), 1))


def resnet18(num_classes: int = 1000, in_channels: int = 3, **kw) -> ResNet:
    """torchvision resnet18: basic blocks [2, 2, 2, 2], 11,689,512 parameters at 1000 classes."""
    return ResNet(num_classes, in_channels, "basic", (2, 2, 2, 2), **kw)


def resnet50(num_classes: int = 1000, in_channels: int = 3, **kw) -> ResNet:
    """torchvision resnet50: bottlenecks [3, 4, 6, 3], 25,557,032 parameters at 1000 classes."""
    return ResNet(num_classes, in_channels, "bottleneck", (3, 4, 6, 3), **kw)


def resnet101(num_classes: int = 1000, in_channels: int = 3, **kw) -> ResNet:
    """torchvision resnet101: bottlenecks [3, 4, 23, 3]."""
    return ResNet(num_classes, in_channels, "bottleneck", (3, 4, 23, 3), **kw)


IMAGENET_RESNETS = {"resnet18": resnet18, "resnet50": resnet50, "resnet101": resnet101}
