"""The mixkit model zoo.

Every classifier exposes ``features(x) -> (B, C, h, w)`` (the last feature map),
``head(f) -> (B, K)`` (pool + linear) and ``feature_dim = C``; ``forward = head(features(x))``,
so RecursiveMix's ROI head and KD reuse any backbone. Build by name with :func:`build_model`
(:func:`names` lists them) or plug in ``"pkg.module:callable"``, ``"timm:NAME"``,
``"torchvision:NAME"``.

Modules, one per family:
    - :mod:`~mixkit.models.small`: ``smallcnn``, ``tinycnn``, ``preact_resnet18``.
    - :mod:`~mixkit.models.cifar_resnet`: RepDistiller CIFAR ResNets ``resnet8`` ...
      ``resnet110``, ``resnet8x4``, ``resnet32x4``.
    - :mod:`~mixkit.models.wrn`: ``wrn_16_1``, ``wrn_16_2``, ``wrn_40_1``, ``wrn_40_2``.
    - :mod:`~mixkit.models.vgg`: ``vgg8`` ... ``vgg19`` (with BN).
    - :mod:`~mixkit.models.mobilenet`: ``mobilenetv2``;
      :mod:`~mixkit.models.shufflenet`: ``shufflenetv1``, ``shufflenetv2``.
    - :mod:`~mixkit.models.pyramidnet`: ``pyramidnet`` (default PyramidNet-200, alpha 240).
    - :mod:`~mixkit.models.resnet`: torchvision-key ``resnet18``, ``resnet50``, ``resnet101``.
    - :mod:`~mixkit.models.deeplab`: DeepLabv3+ (:func:`build_seg_model`).
    - :mod:`~mixkit.models.weights`: :func:`load_weights` for local state dict files.
    - :mod:`~mixkit.models.adapt`: :func:`as_feature_model` for plug-in models.
"""

from mixkit.models.adapt import as_feature_model, has_feature_split
from mixkit.models.base import Classifier
from mixkit.models.cifar_resnet import CifarResNet, ResNet20
from mixkit.models.deeplab import ASPP, DeepLabV3Plus
from mixkit.models.mobilenet import MobileNetV2
from mixkit.models.pyramidnet import PyramidNet
from mixkit.models.registry import (
    MODELS,
    SEG_MODELS,
    build_model,
    build_seg_model,
    names,
    seg_names,
)
from mixkit.models.resnet import ResNet
from mixkit.models.shufflenet import ShuffleNetV1, ShuffleNetV2
from mixkit.models.small import PreActResNet18, SmallCNN
from mixkit.models.vgg import VGG
from mixkit.models.weights import LoadResult, load_weights, read_state_dict
from mixkit.models.wrn import WideResNet

__all__ = [
    "MODELS",
    "SEG_MODELS",
    "Classifier",
    "DeepLabV3Plus",
    "PyramidNet",
    "ResNet",
    "as_feature_model",
    "build_model",
    "build_seg_model",
    "load_weights",
    "names",
    "seg_names",
]
