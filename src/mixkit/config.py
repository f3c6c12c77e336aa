"""Run configuration: a dataclass per recipe, filled from defaults < YAML file < ``--set``
overrides < explicit CLI flags. Unknown keys are errors, never ignored."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


@dataclasses.dataclass
class TrainConfig:
    """Classification training (``mixkit train``). Field names are the CLI flags."""

    dataset: str = "mnist5k"
    data_root: str | None = None
    model: str = "smallcnn"
    aug: str = "none"
    alpha: float = 1.0
    p: float = 1.0
    mode: str = "elem"
    switch_prob: float = 0.5
    label_smoothing: float = 0.0
    cutout_length: int = 8
    resizemix_scope: tuple[float, float] = (0.1, 0.8)
    rm_alpha: float = 0.5
    rm_omega: float = 0.1
    rm_interpolation: str = "nearest"
    rm_per_sample: bool = False
    crop_flip: bool = False
    epochs: int = 12
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    seed: int = 0
    device: str = "cpu"
    out: str = "runs/train"
    progress: bool = True
    grid_samples: int = 16
    resume: bool = False  # continue from OUT/checkpoints/last.pt (mid-epoch included)
    checkpoint_every: int = 0  # also checkpoint every N optimiser steps (0: epoch ends only)
    sync_bn: bool = True  # under torchrun: BatchNorm statistics over the global batch

    def __post_init__(self) -> None:
        # Checked here so a bad value fails before data loading, whatever the aug.
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {self.p!r}")
        for name in ("alpha", "lr", "rm_alpha"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a number > 0, got {getattr(self, name)!r}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be an int >= 0, got {self.checkpoint_every!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.mode not in ("elem", "batch"):
            raise ValueError(f"mode must be 'elem' or 'batch', got {self.mode!r}")
        if self.rm_omega < 0:
            raise ValueError(f"rm_omega must be >= 0, got {self.rm_omega!r}")
        if self.rm_alpha > 1:
            raise ValueError(f"rm_alpha is an area fraction in (0, 1], got {self.rm_alpha!r}")
        if self.rm_interpolation not in ("nearest", "bilinear"):
            raise ValueError(
                f"rm_interpolation must be 'nearest' or 'bilinear', got {self.rm_interpolation!r}"
            )


BUNDLED = Path(__file__).parent / "recipes"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys from ``path`` or a bundled recipe name
    (``mixkit/recipes/NAME.yaml``, e.g. ``mnist_cutmix``)."""
    path = Path(path)
    if not path.is_file() and (BUNDLED / f"{path.name}.yaml").is_file():
        path = BUNDLED / f"{path.name}.yaml"
    if not path.is_file():
        bundled = sorted(p.stem for p in BUNDLED.glob("*.yaml"))
        raise FileNotFoundError(f"config file not found: {path} (bundled recipes: {bundled})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:  # one line: the problem and where (the CLI prints one line)
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or " ".join(str(e).split())
        raise ValueError(f"config file {path} is not valid YAML{where}: {problem}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(
            f"config file {path} must hold a mapping of keys, got {type(data).__name__}"
        )
    return data


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["lr=0.1", "aug=cutmix"]`` -> ``{"lr": 0.1, "aug": "cutmix"}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    default = field.default
    if value is None or default is None:
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError
            return bool(value)
        if isinstance(default, tuple):
            return tuple(type(d)(v) for d, v in zip(default, value, strict=True))
        return type(default)(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"config key {field.name!r} expects {type(default).__name__}, got {value!r}"
        ) from None


def build_config(cls: type[C], *layers: dict[str, Any]) -> C:
    """Merge mappings (later wins) into ``cls``; unknown keys raise ValueError."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            key = key.replace("-", "_")
            if key not in fields:
                raise ValueError(f"unknown config key {key!r}; valid keys: {sorted(fields)}")
            merged[key] = _coerce(fields[key], value)
    return cls(**merged)
