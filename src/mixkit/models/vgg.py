"""CIFAR VGGs with batch norm and the names of HobbitLong/RepDistiller ``models/vgg.py``
(``vgg8/11/13/16/19`` map to RepDistiller's ``vgg*_bn``; its ``model_dict`` does the same).

Architecture (RepDistiller ``vgg.py``): five blocks of 3x3 conv(+bias)-BN-ReLU, the last ReLU
of each block applied outside it, 2x2 max-pools after blocks 0-2 (after block 3 too when the
input is 64 pixels high, RepDistiller's Tiny-ImageNet case), global average pool, one linear
layer ``classifier`` (no FC stack). Config "S" = vgg8. He fan_out init, linear N(0, 0.01).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.models.base import Classifier, check_sizes, init_fan_out

VGG_CFGS: dict[str, list[list[int]]] = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "vgg19": [
        [64, 64],
        [128, 128],
        [256, 256, 256, 256],
        [512, 512, 512, 512],
        [512, 512, 512, 512],
    ],
}


def _block(widths: list[int], cin: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for v in widths:
        layers.append(nn.Conv2d(cin, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        cin = v
    return nn.Sequential(*layers[:-1])  # the block's last ReLU is applied by the caller


class VGG(Classifier):
    """RepDistiller ``VGG(cfg, batch_norm)``. x (B, C, H, W) -> features (B, 512, H/8, W/8)
    (H/16 at H == 64)."""

    classifier_attr = "classifier"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        cfg: str = "vgg13",
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        if cfg not in VGG_CFGS:
            raise ValueError(f"cfg must be one of {sorted(VGG_CFGS)}, got {cfg!r}")
        widths, cin = VGG_CFGS[cfg], in_channels
        for i, w in enumerate(widths):
            setattr(self, f"block{i}", _block(w, cin, batch_norm))
            cin = w[-1]
        self.feature_dim = widths[-1][-1]
        self.classifier = nn.Linear(self.feature_dim, num_classes)
        init_fan_out(self, linear_std=0.01)

    def features(self, x: Tensor) -> Tensor:
        tiny_imagenet = x.shape[2] == 64
        x = F.relu(self.block0(x))
        for i in (1, 2, 3):
            x = F.relu(getattr(self, f"block{i}")(F.max_pool2d(x, 2, 2)))
        if tiny_imagenet:
            x = F.max_pool2d(x, 2, 2)
        return F.relu(self.block4(x))


def _factory(cfg: str):
    def build(num_classes: int = 10, in_channels: int = 3, **kw) -> VGG:
        return VGG(num_classes, in_channels, cfg, **kw)

    build.__doc__ = f"RepDistiller {cfg} (= its {cfg}_bn)."
    return build


VGGS = {name: _factory(name) for name in VGG_CFGS}
