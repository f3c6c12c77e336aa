"""Give a plug-in classifier the ``features`` / ``head`` / ``feature_dim`` split.

:func:`as_feature_model` returns a model that already has ``features`` and ``head`` unchanged
and wraps two common layouts:

- timm models: ``forward_features(x)`` then ``forward_head(f)``, width ``num_features``
  (timm ``models/_features.py`` / every timm model's ``forward``);
- torchvision ResNet-style models: ``conv1 bn1 relu maxpool layer1..layer4`` then
  ``avgpool`` + ``fc`` (torchvision ``models/resnet.py::ResNet._forward_impl``).

The wrapper holds the model as ``.model``, so its state_dict keys gain a ``model.`` prefix:
load pretrained weights into the model before wrapping it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_RESNET_PARTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def has_feature_split(model: nn.Module) -> bool:
    """True when ``model`` has callable ``features`` and ``head``."""
    return callable(getattr(model, "features", None)) and callable(getattr(model, "head", None))


class _Wrapped(nn.Module):
    def __init__(self, model: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.model = model
        self.feature_dim = int(feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class _TimmFeatures(_Wrapped):
    def features(self, x: Tensor) -> Tensor:
        f = self.model.forward_features(x)
        if f.ndim != 4:
            raise ValueError(
                f"{type(self.model).__name__}.forward_features gives a {f.ndim}-D tensor; a "
                "(B, C, h, w) feature map is needed (convolutional timm models give one)"
            )
        return f

    def head(self, f: Tensor) -> Tensor:
        return self.model.forward_head(f)


class _ResNetFeatures(_Wrapped):
    def features(self, x: Tensor) -> Tensor:
        for name in _RESNET_PARTS:
            x = getattr(self.model, name)(x)
        return x

    def head(self, f: Tensor) -> Tensor:
        return self.model.fc(torch.flatten(self.model.avgpool(f), 1))


def as_feature_model(model: nn.Module) -> nn.Module:
    """``model`` itself if it has ``features`` and ``head``, else a wrapper adding them
    (timm or torchvision-ResNet layouts); a TypeError for any other model."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if has_feature_split(model):
        return model
    if callable(getattr(model, "forward_features", None)) and callable(
        getattr(model, "forward_head", None)
    ):
        return _TimmFeatures(model, getattr(model, "num_features", 0))
    fc = getattr(model, "fc", None)
    if all(hasattr(model, n) for n in (*_RESNET_PARTS, "avgpool")) and isinstance(fc, nn.Linear):
        return _ResNetFeatures(model, fc.in_features)
    raise TypeError(
        f"cannot split {type(model).__name__} into features/head: it needs features(x) -> "
        "(B, C, h, w) and head(f) -> (B, K), timm's forward_features/forward_head, or a "
        "torchvision ResNet layout; wrap it with "
        "mixkit.methods.recursivemix.FeatureModel(backbone, head, feature_dim)"
    )
