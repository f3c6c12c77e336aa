"""Wide ResNets for CIFAR (Zagoruyko & Komodakis 2016) with the names and module names of
HobbitLong/RepDistiller ``models/wrn.py``: ``wrn_16_1``, ``wrn_16_2``, ``wrn_40_1``,
``wrn_40_2`` (``wrn_{depth}_{widen}``).

Architecture (RepDistiller ``wrn.py``): conv3x3(16), three stages of n = (depth-4)/6
pre-activation blocks with 16k/32k/64k channels (stride 1/2/2), a 1x1 conv shortcut where the
width changes (its input is the pre-activated x, as in the original), final BN-ReLU, global
average pool, linear. He fan_out init, zero linear bias. ``drop_rate`` is the dropout between
the two convs of a block (RepDistiller default 0).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.models.base import Classifier, check_depth, check_sizes, init_fan_out


class _WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop_rate = float(drop_rate)
        self.equal_in_out = cin == cout
        # name kept from RepDistiller so its checkpoints load by key
        self.convShortcut = (
            None if self.equal_in_out else nn.Conv2d(cin, cout, 1, stride, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        act = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(act)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        return out + (x if self.convShortcut is None else self.convShortcut(act))


class _NetworkBlock(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[
                _WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, drop_rate)
                for i in range(n)
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(Classifier):
    """WRN-depth-k. x (B, C, H, W) -> features (B, 64k, H/4, W/4)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        depth: int = 16,
        widen_factor: int = 1,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        check_sizes(num_classes, in_channels)
        n = check_depth(depth, 6, offset=4)
        if isinstance(widen_factor, bool) or not isinstance(widen_factor, int) or widen_factor < 1:
            raise ValueError(f"widen_factor must be an int >= 1, got {widen_factor!r}")
        k = widen_factor
        ch = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(in_channels, ch[0], 3, 1, 1, bias=False)
        self.block1 = _NetworkBlock(n, ch[0], ch[1], 1, drop_rate)
        self.block2 = _NetworkBlock(n, ch[1], ch[2], 2, drop_rate)
        self.block3 = _NetworkBlock(n, ch[2], ch[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.feature_dim = ch[3]
        self.fc = nn.Linear(ch[3], num_classes)
        init_fan_out(self)
        nn.init.zeros_(self.fc.bias)

    def features(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.relu(self.bn1(out))


def _factory(depth: int, k: int):
    def build(num_classes: int = 10, in_channels: int = 3, **kw) -> WideResNet:
        return WideResNet(num_classes, in_channels, depth, k, **kw)

    build.__doc__ = f"RepDistiller wrn_{depth}_{k}: WRN-{depth}-{k}."
    return build


WRNS = {f"wrn_{d}_{k}": _factory(d, k) for d, k in ((16, 1), (16, 2), (40, 1), (40, 2))}
