"""What ``mixkit train`` trains: the model (zoo or plug-in, optional pretrained weights,
RecursiveMix's ``features``/``head`` adapter), the mixer named by the config, and the loss
module DistributedDataParallel wraps."""

from __future__ import annotations

from typing import Any

import torch

from mixkit import accel, augment, distributed, feeds, losses, models
from mixkit.config import TrainConfig
from mixkit.methods import recursivemix
from mixkit.train import load_pretrained, seed_everything


def build_mixer(cfg: TrainConfig, num_classes: int) -> augment.MixTransform | None:
    """The mixer named by ``cfg.aug`` with the config's arguments (each maps to one kwarg)."""
    per_aug: dict[str, dict[str, Any]] = {
        "mixup": {"alpha": cfg.alpha},
        "cutmix": {"alpha": cfg.alpha},
        "fmix": {"alpha": cfg.alpha},
        "resizemix": {"scope": cfg.resizemix_scope},
        "cutout": {"length": cfg.cutout_length},
        "mixup_cutmix": {
            "mixup_alpha": cfg.alpha,
            "cutmix_alpha": cfg.alpha,
            "switch_prob": cfg.switch_prob,
        },
    }
    if cfg.aug == "recursivemix":  # stateful (history of batches), see mixkit.methods.recursivemix
        return recursivemix.RecursiveMix(
            cfg.rm_alpha,
            cfg.rm_interpolation,
            cfg.rm_per_sample,
            p=cfg.p,
            num_classes=num_classes,
            label_smoothing=cfg.label_smoothing,
            generator=torch.Generator().manual_seed(cfg.seed + 1),
        )
    if cfg.aug not in augment.AUGMENTS or cfg.aug == "classmix":
        valid = sorted(set(augment.AUGMENTS) - {"classmix"} | {"recursivemix"})
        raise ValueError(f"aug must be one of {valid} for classification, got {cfg.aug!r}")
    if cfg.aug == "none":
        return None
    return augment.build_augment(
        cfg.aug,
        p=cfg.p,
        mode=cfg.mode,
        num_classes=num_classes,
        label_smoothing=cfg.label_smoothing,
        generator=torch.Generator().manual_seed(cfg.seed + 1),
        **per_aug[cfg.aug],
    )


class TrainLoss(torch.nn.Module):
    """Model (+ RecursiveMix's ROI head) -> loss in one forward, so DistributedDataParallel
    sees every parameter that gets a gradient."""

    def __init__(self, model: torch.nn.Module, rm: recursivemix.RecursiveMixStep | None) -> None:
        super().__init__()
        self.model, self.rm = model, rm

    def forward(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.rm is not None:
            return self.rm(self.model, x, y).loss
        return losses.soft_target_cross_entropy(self.model(x), target)


def build_model(
    cfg: TrainConfig, feed: feeds.Feed, env: distributed.DistEnv
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(net, model): the named model with ``cfg.weights`` loaded, and the module trained
    (``features``/``head`` adapter for RecursiveMix), on the device, BatchNorm synced."""
    seed_everything(cfg.seed)  # same model init on every rank
    net = models.build_model(
        cfg.model, feed.num_classes, feed.in_channels, **(cfg.model_args or {})
    )
    if cfg.weights:
        message = load_pretrained(net, cfg.weights)
        if env.is_main:
            print(message, flush=True)
    model = models.as_feature_model(net) if cfg.aug == "recursivemix" else net
    model = model.to(env.device, memory_format=accel.memory_format(cfg.channels_last))
    if cfg.sync_bn:  # global-batch BN statistics across ranks (no-op on one rank)
        model = distributed.sync_batchnorm(model, env)
    return net, model
