"""One RecursiveMix training step: mix with the history, forward, consistency loss, remember
the logits. :class:`RecursiveMixStep` works with any model exposing ``features(x)`` and
``head(f)`` (every ``mixkit.models`` model; wrap others with :class:`FeatureModel`)."""

from __future__ import annotations

from typing import NamedTuple

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


class RecursiveMixStep(nn.Module):
    """One RecursiveMix training step: mix with history, forward, loss, store the logits.

    ``step(model, images, labels).loss`` is then back-propagated by the caller. The ROI head
    is a module of this object: give its parameters to the optimiser (e.g.
    ``build_optimizer(nn.ModuleList([model, step]))``); ``state_dict()`` holds the ROI head
    and the mixer's history.

    Args:
        mixer: the :class:`RecursiveMix` augment (its ``num_classes`` is required).
        feature_dim: channels of ``model.features(x)``.
        omega: consistency weight ω (paper: 0.1 CIFAR-scale, 0.5 ImageNet-scale).
        share_head: apply the model's own ``head`` to the ROI feature instead of a separate
            ROI head (official ``--share_fc``; default False).
    """

    def __init__(
        self, mixer: RecursiveMix, feature_dim: int, omega: float = 0.1, share_head: bool = False
    ) -> None:
        super().__init__()
        if not isinstance(mixer, RecursiveMix):
            raise ValueError(f"mixer must be a RecursiveMix, got {type(mixer).__name__}")
        if mixer.num_classes is None:
            raise ValueError("mixer.num_classes is required for the ROI head")
        if isinstance(omega, bool) or not isinstance(omega, int | float) or omega < 0:
            raise ValueError(f"omega must be a number >= 0, got {omega!r}")
        self.mixer = mixer
        self.omega = float(omega)
        self.share_head = bool(share_head)
        self.roi_head = RoIHead(feature_dim, mixer.num_classes)

    def reset(self) -> None:
        """Start of an epoch: forget the history (first batch then has λ = 1)."""
        self.mixer.reset()

    def forward(self, model: nn.Module, images: Tensor, labels: Tensor) -> RecursiveMixOutput:
        if not (
            callable(getattr(model, "features", None)) and callable(getattr(model, "head", None))
        ):
            raise ValueError(
                "model must expose features(x) and head(f); wrap it with "
                "mixkit.methods.recursivemix.FeatureModel(backbone, head, feature_dim)"
            )
        previous_logits = self.mixer.history_logits
        x, targets = self.mixer(images, labels)
        params = self.mixer.last_params
        features = model.features(x)
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
