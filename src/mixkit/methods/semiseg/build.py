"""Pieces the semi-supervised trainers are built from: the student network (any registered
or plug-in segmentation model), its optimiser with backbone / head learning rates, the
training forward pass (:class:`StudentCall`) and mixed precision (:class:`Precision`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.methods.semiseg.pretrain import cached_pretrained, load_encoder

AMP_MODES = ("off", "fp16", "bf16")


def build_student(cfg: Any, num_classes: int) -> nn.Module:
    """``cfg.model`` with ``num_classes`` outputs: ``segnet`` (``cfg.width``; on the canvases
    with ``pretrain_steps`` its encoder comes from the cached sklearn-digit pretraining, the
    decoder random, as the official pretrained-backbone / random-decoder setups), a
    registered model (``deeplabv3plus_resnet50`` ...; ``backbone_weights``: a local
    torchvision-key ResNet file) or a ``pkg.module:callable`` plug-in."""
    from mixkit.models import build_seg_model

    weights = cfg.backbone_weights or None
    if cfg.model != "segnet":
        return build_seg_model(cfg.model, num_classes, backbone_weights=weights)
    net = build_seg_model("segnet", num_classes, width=cfg.width)
    if cfg.pretrain_steps > 0 and cfg.dataset == "canvas":
        state = cached_pretrained(
            cfg.width, cfg.canvas, cfg.pretrain_steps, cfg.pretrain_seed, cfg.pretrain_cache
        )
        load_encoder(net, state)
    return net


def param_groups(net: nn.Module, weight_decay: float, head_lr_mult: float) -> list[dict]:
    """Parameter groups: no weight decay on 1-d tensors (norms, biases); parameters outside
    the ``backbone`` child get ``lr_mult = head_lr_mult`` (Dual Teacher ``tools/train.py``:
    head lr x10; PS-MT: the same lr everywhere)."""
    has_backbone = isinstance(getattr(net, "backbone", None), nn.Module)
    if head_lr_mult != 1 and not has_backbone:
        raise ValueError(
            f"head_lr_mult={head_lr_mult} needs a model with a 'backbone' submodule "
            f"({type(net).__name__} has none); use 1"
        )
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in net.named_parameters():
        if p.requires_grad:
            groups.setdefault((name.startswith("backbone."), p.ndim > 1), []).append(p)
    out = []
    for (backbone, decay), params in sorted(groups.items(), reverse=True):
        mult = 1.0 if backbone or not has_backbone else float(head_lr_mult)
        out.append({"params": params, "weight_decay": weight_decay if decay else 0.0,
                    "lr_mult": mult})  # fmt: skip
    return out


def new_optimizer(cfg: Any, net: nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum 0.9, PS-MT ``configs/config_deeplab_v3+.json``) or AdamW."""
    groups = param_groups(net, cfg.weight_decay, cfg.head_lr_mult)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)


class StudentCall(nn.Module):
    """The student's training forward passes of one step in one call, so that
    DistributedDataParallel sees every use: ``net(x)`` for each input (separate BatchNorm
    batches, as separate calls), or ``decode(f + perturb(f, size), size)`` with a feature
    perturbation (PS-MT's T-VAT). Returns float32 logits at each input's size."""

    def __init__(self, net: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.net = net
        self.channels_last = channels_last

    def _fmt(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(
        self, *xs: Tensor, perturb: Callable[[Tensor, tuple[int, int]], Tensor] | None = None
    ) -> tuple[Tensor, ...]:
        outs = []
        for x in xs:
            size = (x.shape[-2], x.shape[-1])
            if perturb is None:
                out = self.net(self._fmt(x))
            else:
                f = self.net.encode(self._fmt(x))
                out = self.net.decode(f + perturb(f, size), size)
            if out.shape[-2:] != size:
                out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
            outs.append(out.float())
        return tuple(outs)


class Precision:
    """Mixed precision of one run: ``autocast()`` for the forward passes (``fp16`` /
    ``bf16``; ``off``: a no-op) and ``step(optimizer, loss)`` with a GradScaler per optimiser
    for fp16 (bf16 needs none)."""

    def __init__(self, mode: str, device: torch.device) -> None:
        if mode not in AMP_MODES:
            raise ValueError(f"amp must be one of {list(AMP_MODES)}, got {mode!r}")
        self.mode, self.device = mode, torch.device(device)
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mode)
        self.scalers: dict[str, torch.amp.GradScaler] = {}

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _scaler(self, key: str) -> torch.amp.GradScaler | None:
        if self.mode != "fp16":
            return None
        if key not in self.scalers:
            self.scalers[key] = torch.amp.GradScaler(self.device.type)
        return self.scalers[key]

    def step(self, optimizer: torch.optim.Optimizer, loss: Tensor, key: str = "student") -> None:
        """zero_grad, backward, step (scaled under fp16)."""
        optimizer.zero_grad(set_to_none=True)
        scaler = self._scaler(key)
        if scaler is None:
            loss.backward()
            optimizer.step()
            return
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {k: s.state_dict() for k, s in self.scalers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, s in state.items():
            scaler = self._scaler(k)
            if scaler is not None:
                scaler.load_state_dict(s)
