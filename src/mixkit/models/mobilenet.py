"""CIFAR MobileNetV2 of the KD benchmarks: HobbitLong/RepDistiller ``models/mobilenetv2.py``
``mobile_half`` (expansion T = 6, width multiplier 0.5), registered as ``mobilenetv2``.

Architecture (RepDistiller ``mobilenetv2.py``): conv3x3/2 - BN - ReLU (32w channels), inverted
residual stages (t, c, n, s) = (1,16,1,1) (T,24,2,1) (T,32,3,2) (T,64,4,2) (T,96,3,1)
(T,160,3,2) (T,320,1,1) with c scaled by w, 1x1 conv to 1280 channels - BN - ReLU, global
average pool, ``classifier = Sequential(Linear)``. Total stride 16 (2x2 maps at 32x32).
He fan_out init, linear N(0, 0.01).
"""

from __future__ import annotations

from torch import Tensor, nn

from mixkit.models.base import Classifier, check_sizes, init_fan_out


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expand - 3x3 depthwise (stride) - 1x1 linear project; identity add at stride 1
    with equal widths."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(Classifier):
    """RepDistiller ``MobileNetV2(T, feature_dim=num_classes, width_mult)``.
    x (B, C, H, W) -> features (B, 1280, H/16, W/16)."""

    classifier_attr = "classifier"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        expansion: int = 6,
        width_mult: float = 0.5,
    ) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        if not width_mult > 0 or isinstance(expansion, bool) or int(expansion) < 1:
            raise ValueError(
                f"width_mult must be > 0 and expansion >= 1, got {width_mult!r}, {expansion!r}"
            )
        t = int(expansion)
        setting = [(1, 16, 1, 1), (t, 24, 2, 1), (t, 32, 3, 2), (t, 64, 4, 2)]
        setting += [(t, 96, 3, 1), (t, 160, 3, 2), (t, 320, 1, 1)]
        cin = int(32 * width_mult)
        self.conv1 = _conv_bn_relu(in_channels, cin, 3, 2)
        self.blocks = nn.ModuleList()
        for e, c, n, s in setting:
            cout, layers = int(c * width_mult), []
            for stride in [s] + [1] * (n - 1):
                layers.append(InvertedResidual(cin, cout, stride, e))
                cin = cout
            self.blocks.append(nn.Sequential(*layers))
        self.feature_dim = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = _conv_bn_relu(cin, self.feature_dim, 1, 1)
        self.classifier = nn.Sequential(nn.Linear(self.feature_dim, num_classes))
        init_fan_out(self, linear_std=0.01)

    def features(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        for block in self.blocks:
            x = block(x)
        return self.conv2(x)


def mobilenetv2(num_classes: int = 10, in_channels: int = 3, **kw) -> MobileNetV2:
    """RepDistiller ``mobile_half``: MobileNetV2 with T = 6 and width 0.5."""
    return MobileNetV2(num_classes, in_channels, **kw)
