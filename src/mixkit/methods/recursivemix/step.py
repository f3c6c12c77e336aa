"""One RecursiveMix training step: mix with the history, forward, consistency loss, remember
the logits. :class:`RecursiveMixStep` works with any model exposing ``features(x)`` and
``head(f)`` (every ``mixkit.models`` model; adapt timm / torchvision ResNets with
``mixkit.models.as_feature_model``, wrap others with :class:`FeatureModel`). The ROI head's
input width is read from the model or inferred from the first feature map."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from mixkit.augment.params import MixParams
from mixkit.augment.transforms.recursivemix import RecursiveMix
from mixkit.methods.recursivemix.loss import RoIHead, recursive_mix_loss


class FeatureModel(nn.Module):
    """Wrap a user's backbone and classifier head into the ``features``/``head`` interface.

    ``features``: module (B, C, H, W) -> (B, D, h, w) final feature map; ``head``: module
    (B, D, h, w) -> (B, K) (e.g. ``nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    nn.Linear(D, K))``); ``feature_dim`` = D.
    """

    def __init__(self, features: nn.Module, head: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.backbone = features
        self.classifier = head
        self.feature_dim = int(feature_dim)

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def head(self, f: Tensor) -> Tensor:
        return self.classifier(f)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class RecursiveMixOutput(NamedTuple):
    loss: Tensor  # () total loss
    logits: Tensor  # (B, K) model logits on the mixed batch
    targets: Tensor  # (B, K) mixed soft targets
    params: MixParams  # the draw (lam, boxes)


class _LazyRoIHead(RoIHead):
    """:class:`RoIHead` whose linear layer learns its input width at the first call."""

    def __init__(self, num_classes: int, output_size: int = 1) -> None:
        with torch.device("meta"):  # placeholder width 1, replaced below (no RNG draw)
            super().__init__(1, num_classes, output_size)
        self.fc = nn.LazyLinear(num_classes)


_NEEDS_SPLIT = (
    "model must expose features(x) -> (B, C, h, w) and head(f) -> (B, K); adapt timm or "
    "torchvision ResNet models with mixkit.models.as_feature_model(model), wrap others with "
    "mixkit.methods.recursivemix.FeatureModel(backbone, head, feature_dim)"
)


def _check_split(model: nn.Module) -> None:
    if not (callable(getattr(model, "features", None)) and callable(getattr(model, "head", None))):
        raise ValueError(f"{_NEEDS_SPLIT}; got {type(model).__name__}")


class RecursiveMixStep(nn.Module):
    """One RecursiveMix training step: mix with history, forward, loss, store the logits.

    ``step(model, images, labels).loss`` is then back-propagated by the caller. The ROI head
    is a module of this object: give its parameters to the optimiser (e.g.
    ``build_optimizer(nn.ModuleList([model, step]))``); ``state_dict()`` holds the ROI head
    and the mixer's history.

    Args:
        mixer: the :class:`RecursiveMix` augment (its ``num_classes`` is required).
        feature_dim: channels C of ``model.features(x)``; checked against the model at every
            call. None: inferred at the first call (a lazy linear layer). Until then its
            weight has no shape: DistributedDataParallel refuses it and shape-based parameter
            groups (``mixkit.train.build_optimizer`` puts 1-D tensors in its no-decay group)
            misfile it, so build those after one step, or use :meth:`for_model`, which reads
            ``model.feature_dim`` now.
        omega: consistency weight ω (paper: 0.1 CIFAR-scale, 0.5 ImageNet-scale).
        share_head: apply the model's own ``head`` to the ROI feature instead of a separate
            ROI head (official ``--share_fc``; default False).
    """

    def __init__(
        self,
        mixer: RecursiveMix,
        feature_dim: int | None = None,
        omega: float = 0.1,
        share_head: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(mixer, RecursiveMix):
            raise ValueError(f"mixer must be a RecursiveMix, got {type(mixer).__name__}")
        if mixer.num_classes is None:
            raise ValueError("mixer.num_classes is required for the ROI head")
        if isinstance(omega, bool) or not isinstance(omega, int | float) or omega < 0:
            raise ValueError(f"omega must be a number >= 0, got {omega!r}")
        if feature_dim is not None and (
            isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1
        ):
            raise ValueError(f"feature_dim must be an int >= 1 or None, got {feature_dim!r}")
        self.mixer = mixer
        self.omega = float(omega)
        self.share_head = bool(share_head)
        if feature_dim is None:
            self.roi_head: RoIHead = _LazyRoIHead(mixer.num_classes)
        else:
            self.roi_head = RoIHead(feature_dim, mixer.num_classes)

    @classmethod
    def for_model(
        cls, model: nn.Module, mixer: RecursiveMix, omega: float = 0.1, share_head: bool = False
    ) -> RecursiveMixStep:
        """A step sized for ``model``: its ``feature_dim`` attribute when it has one (the ROI
        head is then built now), else inferred at the first call."""
        _check_split(model)
        width = getattr(model, "feature_dim", None)
        return cls(mixer, width if isinstance(width, int) else None, omega, share_head)

    def reset(self) -> None:
        """Start of an epoch: forget the history (first batch then has λ = 1)."""
        self.mixer.reset()

    def _check_width(self, model: nn.Module, features: Tensor) -> None:
        """Size a lazy ROI head from ``features`` (B, C, h, w); a clear error on a mismatch."""
        if features.ndim != 4:
            raise ValueError(
                f"model.features(x) must be (B, C, h, w), got shape {tuple(features.shape)}"
            )
        c, s = features.shape[1], self.roi_head.output_size
        declared = getattr(model, "feature_dim", None)
        if isinstance(declared, int) and declared != c:
            raise ValueError(
                f"{type(model).__name__}.feature_dim is {declared} but its features(x) has "
                f"{c} channels"
            )
        fc = self.roi_head.fc
        if isinstance(fc, nn.LazyLinear) and fc.has_uninitialized_params():
            with torch.no_grad():  # materialise now, so the head is sized after one call
                fc(torch.zeros(1, c * s * s, device=fc.weight.device, dtype=fc.weight.dtype))
            fc = self.roi_head.fc
        if fc.in_features != c * s * s:
            raise ValueError(
                f"RecursiveMixStep was built with feature_dim={fc.in_features // (s * s)} but "
                f"model.features(x) has {c} channels; pass feature_dim={c} or leave it out "
                "(it is then inferred from the model)"
            )

    def forward(self, model: nn.Module, images: Tensor, labels: Tensor) -> RecursiveMixOutput:
        _check_split(model)
        previous_logits = self.mixer.history_logits
        x, targets = self.mixer(images, labels)
        params = self.mixer.last_params
        features = model.features(x)
        self._check_width(model, features)
        logits = model.head(features)
        roi_logits = history = None
        if self.omega > 0 and previous_logits is not None and bool(params.applied.any()):
            boxes = params.boxes.to(x.device)
            if self.share_head:
                roi_logits = model.head(self.roi_head.pool(features, boxes, x.shape[-2:]))
            else:
                roi_logits = self.roi_head(features, boxes, x.shape[-2:])
            history = previous_logits[: x.shape[0]].to(logits.device)
        lam = params.lam.to(logits.device)
        loss = recursive_mix_loss(logits, targets, roi_logits, history, lam, self.omega)
        self.mixer.remember(logits)
        return RecursiveMixOutput(loss, logits, targets, params)
