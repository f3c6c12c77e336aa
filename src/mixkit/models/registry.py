"""Model names -> constructors, and plug-in models by import path, timm or torchvision.

``build_model(name, num_classes, in_channels, **model_args)`` accepts

- a built-in name (:func:`names`), called as ``MODELS[name](num_classes=K, in_channels=C,
  **model_args)``;
- ``"pkg.module:callable"``: ``callable(num_classes=K, in_channels=C, **model_args)``;
- ``"timm:NAME"``: ``timm.create_model(NAME, pretrained=False, num_classes=K, in_chans=C,
  **model_args)``;
- ``"torchvision:NAME"``: ``torchvision.models.get_model(NAME, weights=None, num_classes=K,
  **model_args)`` (3-channel inputs only).

Plug-ins are returned as built; :func:`mixkit.models.as_feature_model` adds the
``features``/``head`` split RecursiveMix needs. ``build_seg_model`` does the same for
segmentation networks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from mixkit.models.cifar_resnet import CIFAR_RESNETS
from mixkit.models.deeplab import deeplabv3plus_resnet50, deeplabv3plus_resnet101
from mixkit.models.mobilenet import mobilenetv2
from mixkit.models.pyramidnet import pyramidnet
from mixkit.models.resnet import IMAGENET_RESNETS
from mixkit.models.shufflenet import shufflenetv1, shufflenetv2
from mixkit.models.small import preact_resnet18, smallcnn, tinycnn
from mixkit.models.vgg import VGGS
from mixkit.models.wrn import WRNS

PLUGIN_FORMS = "'pkg.module:callable', 'timm:NAME' or 'torchvision:NAME'"
_PEERS = 'pip install "mixkit[peers]"'

MODELS: dict[str, Callable[..., nn.Module]] = {
    "smallcnn": smallcnn,
    "tinycnn": tinycnn,
    "preact_resnet18": preact_resnet18,
    **CIFAR_RESNETS,
    **WRNS,
    **VGGS,
    "mobilenetv2": mobilenetv2,
    "shufflenetv1": shufflenetv1,
    "shufflenetv2": shufflenetv2,
    "pyramidnet": pyramidnet,
    **IMAGENET_RESNETS,
}


def _segnet(num_classes: int, in_channels: int = 3, **kw: Any) -> nn.Module:
    from mixkit.methods.semiseg.net import SegNet  # lazy: methods import mixkit.models

    return SegNet(num_classes, in_channels, **kw)


SEG_MODELS: dict[str, Callable[..., nn.Module]] = {
    "deeplabv3plus_resnet50": deeplabv3plus_resnet50,
    "deeplabv3plus_resnet101": deeplabv3plus_resnet101,
    "segnet": _segnet,
}


def names() -> list[str]:
    """The built-in classifier names, sorted."""
    return sorted(MODELS)


def seg_names() -> list[str]:
    """The built-in segmentation model names, sorted."""
    return sorted(SEG_MODELS)


def _check_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (an int), got {num_classes!r}")


def _import(package: str, name: str) -> Any:
    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise ImportError(f"model {name!r} needs {package.split('.')[0]}: {_PEERS}") from e


def _callable_at(spec: str) -> Callable[..., nn.Module]:
    """``"pkg.module:attr.path"`` -> the object (ValueError for a bad module or attribute)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"model plug-in must be 'pkg.module:callable', got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ValueError(f"model {spec!r}: cannot import module {module_name!r} ({e})") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"model {spec!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"model {spec!r}: {attr!r} is not callable")
    return obj


def _plugin(name: str, num_classes: int, in_channels: int, model_args: dict) -> nn.Module:
    kind, _, rest = name.partition(":")
    if kind == "timm":
        timm = _import("timm", name)
        return timm.create_model(
            rest, pretrained=False, num_classes=num_classes, in_chans=in_channels, **model_args
        )
    if kind == "torchvision":
        tv_models = _import("torchvision.models", name)
        if in_channels != 3:
            raise ValueError(
                f"model {name!r}: torchvision models take 3-channel images, got "
                f"in_channels={in_channels} (use timm:NAME or a built-in model)"
            )
        return tv_models.get_model(rest, weights=None, num_classes=num_classes, **model_args)
    fn = _callable_at(name)
    return fn(num_classes=num_classes, in_channels=in_channels, **model_args)


def build_model(name: str, num_classes: int, in_channels: int = 3, **model_args: Any) -> nn.Module:
    """Instantiate a classifier: a built-in :func:`names` entry or a plug-in (module doc).

    Built-ins expose ``features(x) -> (B, C, h, w)``, ``head(f) -> (B, K)`` and
    ``feature_dim``. ``model_args`` go to the constructor (e.g. ``depth=110, alpha=84`` for
    ``pyramidnet``).
    """
    _check_classes(num_classes)
    if not isinstance(name, str):
        raise ValueError(f"model must be a name string, got {type(name).__name__}")
    if ":" in name:
        return _plugin(name, num_classes, in_channels, model_args)
    if name not in MODELS:
        raise ValueError(
            f"model must be one of {names()} or a plug-in {PLUGIN_FORMS}, got {name!r}"
        )
    return MODELS[name](num_classes=num_classes, in_channels=in_channels, **model_args)


def build_seg_model(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    backbone_weights: str | None = None,
    **kw: Any,
) -> nn.Module:
    """Instantiate a segmentation network: logits (B, K, H, W) at the input size.

    Built-ins (:func:`seg_names`): ``deeplabv3plus_resnet50``, ``deeplabv3plus_resnet101``
    (``backbone_weights``: a local torchvision-key ResNet state dict file) and ``segnet``
    (the small CPU net of ``mixkit.methods.semiseg``). ``"pkg.module:callable"`` plug-ins get
    ``callable(num_classes=K, in_channels=C, **kw)`` (plus ``backbone_weights`` when given).
    """
    _check_classes(num_classes)
    if not isinstance(name, str):
        raise ValueError(f"seg model must be a name string, got {type(name).__name__}")
    extra = {} if backbone_weights is None else {"backbone_weights": backbone_weights}
    if ":" in name and not name.startswith(("timm:", "torchvision:")):
        return _callable_at(name)(num_classes=num_classes, in_channels=in_channels, **extra, **kw)
    if name not in SEG_MODELS:
        raise ValueError(
            f"seg model must be one of {seg_names()} or a plug-in 'pkg.module:callable', "
            f"got {name!r}"
        )
    if name == "segnet" and backbone_weights is not None:
        raise ValueError("backbone_weights: segnet has no pretrained backbone; leave it None")
    return SEG_MODELS[name](num_classes=num_classes, in_channels=in_channels, **extra, **kw)
