"""Shared training utilities: seeding, optimiser/schedule, evaluation, metrics logging and
atomic checkpoints. Recipes in ``mixkit.recipes`` are built from these."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mixkit import accel, models

__all__ = [
    "seed_everything",
    "build_optimizer",
    "cosine_lr",
    "evaluate",
    "atomic_save",
    "load_checkpoint",
]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch's global RNG (model init). Mixers use their own generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(
    model: torch.nn.Module,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    *,
    nesterov: bool = True,
    weight_decay_all: bool = False,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum unless ``nesterov=False``; no Nesterov without momentum); no
    weight decay on biases and norm parameters unless ``weight_decay_all``. ``fused``
    (default: when every parameter is on CUDA) uses torch's fused kernel, which also takes a
    ``GradScaler``'s inf check without a host read."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 and not weight_decay_all else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if fused is None:
        params = decay + no_decay
        fused = bool(params) and all(p.device.type == "cuda" for p in params)
    return torch.optim.SGD(
        groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0, fused=fused or None
    )


def cosine_lr(base_lr: float, step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Linear warm-up then cosine decay to 0 over ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1 + math.cos(math.pi * min(1.0, progress)))


def lr_at(
    base_lr: float,
    step: int,
    *,
    steps_per_epoch: int,
    total_steps: int,
    warmup_steps: int = 0,
    schedule: str = "cosine",
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> float:
    """The learning rate of optimiser step ``step`` (0-based): linear warm-up over
    ``warmup_steps``, then ``"cosine"`` (:func:`cosine_lr`, per step) or ``"step"``:
    ``base_lr * gamma ** k`` with k the milestones <= the 0-based epoch of the step, i.e.
    the LR drops after ``m`` epochs for each milestone m (RepDistiller
    ``helper/util.py::adjust_learning_rate``, ``epoch > m`` with 1-based epochs)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "cosine":
        return cosine_lr(base_lr, step, total_steps, warmup_steps)
    if schedule != "step":
        raise ValueError(f"schedule must be 'cosine' or 'step', got {schedule!r}")
    epoch = step // max(1, steps_per_epoch)
    return base_lr * gamma ** sum(1 for m in milestones if m <= epoch)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    device: torch.device | str,
    *,
    amp: str = "off",
    channels_last: bool = False,
) -> dict[str, float]:
    """Top-1 accuracy and mean cross-entropy over (float images (B, C, H, W), int64 labels
    (B,)) batches, under ``amp`` autocast and in channels_last layout when asked. The sums
    stay on the device: one host read at the end."""
    was_training = model.training
    model.eval()
    device = torch.device(device)
    acc_dtype = torch.float32 if device.type == "mps" else torch.float64
    loss_sum = torch.zeros((), dtype=acc_dtype, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    for x, y in batches:
        x = accel.to_memory_format(x.to(device, non_blocking=True), channels_last)
        y = y.to(device, non_blocking=True)
        with accel.autocast(device, amp):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").to(acc_dtype)
        correct += (logits.argmax(1) == y).sum()
        total += y.numel()
    model.train(was_training)
    if total == 0:
        raise ValueError("evaluate needs at least one sample")
    return {"acc": int(correct) / total, "loss": float(loss_sum) / total}


@torch.no_grad()
def feature_width(
    model: torch.nn.Module,
    sample: Tensor,
    normalize: Callable[[Tensor], Tensor],
    device: torch.device | str,
) -> int:
    """Channels C of ``model.features(x)``: its ``feature_dim`` attribute, or measured on
    ``normalize(sample)`` (a uint8 (1, C_in, H, W) image) in eval mode, so no BatchNorm
    statistic moves and no random number is drawn."""
    width = getattr(model, "feature_dim", None)
    if isinstance(width, int) and not isinstance(width, bool) and width > 0:
        return width
    was_training = model.training
    model.eval()
    try:
        f = model.features(normalize(sample.to(device)))
    finally:
        model.train(was_training)
    if f.ndim != 4:
        raise ValueError(f"model.features(x) must be (B, C, h, w), got shape {tuple(f.shape)}")
    return int(f.shape[1])


def _head_prefix(model: torch.nn.Module) -> str | None:
    """State-dict prefix of the classifier layer: mixkit's ``classifier_attr``, else the
    last ``nn.Linear`` registered."""
    attr = getattr(model, "classifier_attr", None)
    if isinstance(attr, str) and isinstance(getattr(model, attr, None), torch.nn.Module):
        return attr + "."
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n]
    return linears[-1] + "." if linears else None


def load_pretrained(model: torch.nn.Module, path: str | Path) -> str:
    """Load the state dict file ``path`` (torchvision keys for the torchvision-style models;
    ``module.`` / ``_orig_mod.`` prefixes stripped) into ``model`` in place. The classifier
    is left at its init when its shape differs (another number of classes); every other key
    must fit (one ValueError listing what does not). Returns the line to log."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p}")
    state = models.read_state_dict(p)
    own = model.state_dict()
    head = _head_prefix(model)
    differs = [
        k for k, v in state.items()
        if head and k.startswith(head) and k in own and v.shape != own[k].shape
    ]  # fmt: skip
    skip = (head,) if differs else ()
    models.load_weights(model, state, strict=True, skip=skip)
    loaded = sum(1 for k in state if not (skip and k.startswith(head)))
    line = f"weights {p}: loaded {loaded} tensors into {type(model).__name__}"
    if differs:
        shapes = ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in differs)
        line += f"; head {head[:-1]!r} kept at its init (file vs model shape: {shapes})"
    return line


def _tensorboard_writer(path: Path, enabled: bool | None) -> Any:
    """A ``SummaryWriter`` in ``path.parent / "tensorboard"`` when TensorBoard logging is on
    (``enabled``, or env ``MIXKIT_TENSORBOARD=1`` when None) and the optional ``tensorboard``
    package imports; otherwise None (one warning if it was asked for but is missing)."""
    if enabled is None:
        enabled = os.environ.get("MIXKIT_TENSORBOARD", "").lower() in ("1", "true", "yes", "on")
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        import warnings

        warnings.warn(
            "TensorBoard logging was requested but the optional 'tensorboard' package is not "
            "installed (pip install tensorboard); writing the CSV only",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return SummaryWriter(log_dir=str(path.parent / "tensorboard"), filename_suffix="." + path.stem)


class MetricsWriter:
    """Append rows of scalars to ``metrics.csv`` (header from the first row's keys).

    ``tensorboard=True`` (or env ``MIXKIT_TENSORBOARD=1`` when None) also logs every numeric
    value as a TensorBoard scalar ``<csv stem>/<key>`` (step: the row's ``step``, else its
    ``epoch``, else the row count) under ``<csv folder>/tensorboard``; needs the optional
    ``tensorboard`` package and is skipped with a warning without it."""

    def __init__(self, path: str | Path, tensorboard: bool | None = None) -> None:
        self.path = Path(path)
        self.fields: list[str] | None = None
        if self.path.exists():
            with self.path.open() as f:
                header = f.readline().strip()
            self.fields = header.split(",") if header else None
        self._tb = _tensorboard_writer(self.path, tensorboard)
        self._rows = 0

    def write(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.fields is None:
            self.fields = list(row)
            with self.path.open("w", newline="") as f:
                csv.DictWriter(f, self.fields).writeheader()
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)
        self._rows += 1
        if self._tb is not None:
            step = int(row.get("step", row.get("epoch", self._rows)))
            for key, value in row.items():
                if key not in ("step", "epoch") and isinstance(value, int | float):
                    if not isinstance(value, bool):
                        self._tb.add_scalar(f"{self.path.stem}/{key}", value, step)
            self._tb.flush()

    def close(self) -> None:
        """Close the TensorBoard writer (the CSV is closed after every row)."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temp file in the same folder, fsync, then rename over ``path``:
    a crash leaves either the old or the new file, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no pickle code execution).

    Raises FileNotFoundError for a missing file and ValueError for a corrupt/foreign one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, refused global...
        detail = " ".join(str(e).split())  # one line; torch's weights_only advice is dropped
        if "Weights only load failed" in detail:
            core = detail.split("trusted source.", 1)[-1].split(" Check the documentation")[0]
            core = core.split("WeightsUnpickler error:", 1)[-1].strip()
            detail = f"refused by weights_only loading: {core}"
        msg = f"checkpoint {path} is corrupt or not a mixkit checkpoint: {detail}"
        raise ValueError(msg) from e
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"checkpoint {path} has no 'model' entry: not a mixkit checkpoint")
    return ckpt


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented, key-sorted JSON via a temp file and rename (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
