"""Run configuration: a dataclass per recipe, filled from defaults < YAML file < ``--set``
overrides < explicit CLI flags. Unknown keys are errors, never ignored."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mixkit.options import check_device, check_options, option

C = TypeVar("C")


def _augments() -> list[str]:
    from mixkit.augment import AUGMENTS

    return sorted(set(AUGMENTS) - {"classmix"} | {"recursivemix"})


def _datasets() -> tuple[str, ...]:
    from mixkit.data import DATASETS

    return DATASETS


@dataclasses.dataclass
class TrainConfig:
    """Classification training (``mixkit train``). Field names are the CLI flags."""

    dataset: str = option("mnist5k", "training data (embedded or on disk)", choices=_datasets)
    data_root: str | None = option(None, "folder of an on-disk dataset (cifar*, imagefolder)")
    model: str = option("smallcnn", "network: a mixkit.models name or pkg.module:callable")
    aug: str = option("none", "mixing augmentation", choices=_augments)
    alpha: float = option(1.0, "Beta(alpha, alpha) concentration of the mixing ratio", above=0)
    p: float = option(1.0, "probability that a batch is mixed", at_least=0, at_most=1)
    mode: str = option(
        "elem", "one mixing ratio per sample (elem) or per batch", choices=("elem", "batch")
    )
    switch_prob: float = option(0.5, "mixup_cutmix: probability of CutMix", at_least=0, at_most=1)
    label_smoothing: float = option(0.0, "label smoothing of the targets", at_least=0, below=1)
    cutout_length: int = option(8, "cutout: side of the erased square in pixels", at_least=1)
    resizemix_scope: tuple[float, float] = option(
        (0.1, 0.8), "resizemix: range of the pasted side as a fraction of the image side"
    )
    rm_alpha: float = option(0.5, "recursivemix: largest pasted area fraction", above=0, at_most=1)
    rm_omega: float = option(0.1, "recursivemix: weight of the ROI consistency loss", at_least=0)
    rm_interpolation: str = option(
        "nearest", "recursivemix: resize of the history", choices=("nearest", "bilinear")
    )
    rm_per_sample: bool = option(False, "recursivemix: one pasted box per sample, not per batch")
    crop_flip: bool = option(False, "random crop (pad 4) and horizontal flip before mixing")
    epochs: int = option(12, "training epochs", at_least=1)
    batch_size: int = option(128, "global batch size (split over torchrun ranks)", at_least=1)
    lr: float = option(0.1, "peak SGD learning rate (cosine schedule)", above=0)
    momentum: float = option(0.9, "SGD momentum", at_least=0, below=1)
    weight_decay: float = option(5e-4, "SGD weight decay", at_least=0)
    warmup_epochs: float = option(0.0, "linear learning-rate warm-up in epochs", at_least=0)
    seed: int = option(0, "seed of every random draw (data order, init, mixing)")
    device: str = option("cpu", "torch device to train on", check=check_device)
    out: str = option("runs/train", "run folder (checkpoints, metrics, plots)")
    progress: bool = option(True, "print a progress line per epoch")
    grid_samples: int = option(16, "mixed samples drawn in mixed_samples.png (0: none)", at_least=0)
    resume: bool = option(False, "continue from OUT/checkpoints/last.pt (mid-epoch included)")
    checkpoint_every: int = option(
        0, "also checkpoint every N optimiser steps (0: at epoch ends only)", at_least=0
    )
    sync_bn: bool = option(True, "under torchrun: BatchNorm statistics over the global batch")

    def __post_init__(self) -> None:
        # Checked here so a bad value fails before data loading, whatever the aug.
        check_options(self)


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
