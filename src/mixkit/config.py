"""Run configuration: a dataclass per recipe, filled from defaults < bundled ``recipe`` <
YAML file < ``--set`` overrides < explicit CLI flags. Unknown keys are errors, never ignored.

The options every trainer shares (mixed precision, channels_last, compile, host-read
cadence, the LR schedule, the optimiser's details, on-disk data, run folders) are the
dataclasses :class:`PrecisionOptions` / :class:`DeviceOptions`, :class:`ScheduleOptions`,
:class:`DataOptions` and :class:`RunOptions` / :class:`RecipeOptions`, mixed into
:class:`TrainConfig` and the KD configs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from mixkit.options import check_device, check_options, option

C = TypeVar("C")

BUNDLED = Path(__file__).parent / "recipes"
# Recipe name prefix -> the sub-command whose config the recipe fills (default: train).
RECIPE_COMMANDS = {"kd": "distill", "semiseg": "semiseg"}


def _augments() -> list[str]:
    from mixkit.augment import AUGMENTS

    return sorted(set(AUGMENTS) - {"classmix"} | {"recursivemix"})


def _datasets() -> tuple[str, ...]:
    from mixkit.data import DATASETS

    return DATASETS


def recipe_names() -> list[str]:
    """The bundled recipes (``mixkit/recipes/*.yaml``), sorted."""
    return sorted(p.stem for p in BUNDLED.glob("*.yaml"))


def recipe_command(name: str) -> str:
    """The sub-command a bundled recipe is for: ``distill`` for ``kd_*``, ``semiseg`` for
    ``semiseg_*``, else ``train``."""
    return RECIPE_COMMANDS.get(name.split("_", 1)[0], "train")


def check_mapping(value: Any) -> None:
    """Raise ValueError unless ``value`` is None or a mapping with string keys."""
    if value is not None and not (
        isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
    ):
        raise ValueError(f"expected a mapping of keyword arguments, got {value!r}")


def _check_milestones(value: str) -> None:
    parse_milestones(value)


def parse_milestones(value: str) -> tuple[int, ...]:
    """``"150,180,210"`` -> ``(150, 180, 210)``; ValueError unless increasing ints >= 1."""
    try:
        out = tuple(int(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"lr_milestones must be comma-separated epochs (e.g. 150,180,210), got {value!r}"
        ) from None
    if any(m < 1 for m in out) or list(out) != sorted(set(out)):
        raise ValueError(f"lr_milestones must be increasing epochs >= 1, got {value!r}")
    return out


@dataclasses.dataclass
class PrecisionOptions:
    """Numerics and memory layout on the device."""

    amp: str = option(
        "off",
        "mixed precision: torch.autocast on the device; fp16 adds a GradScaler",
        choices=("off", "fp16", "bf16"),
    )
    channels_last: bool = option(False, "model and batches in torch.channels_last memory format")


@dataclasses.dataclass
class DeviceOptions(PrecisionOptions):
    """How a trainer uses the device: precision, memory layout, compilation, host reads."""

    compile: bool = option(False, "torch.compile the model (the first steps pay the compile)")
    log_every: int = option(
        0,
        "read the loss back to the host every N steps (steps.csv row, progress bar); "
        "0: every step on CPU, every 50 on an accelerator",
        at_least=0,
    )


@dataclasses.dataclass
class ScheduleOptions:
    """SGD and its learning-rate schedule (the config also defines ``epochs``)."""

    lr: float = option(0.1, "peak SGD learning rate", above=0)
    momentum: float = option(0.9, "SGD momentum", at_least=0, below=1)
    weight_decay: float = option(5e-4, "SGD weight decay", at_least=0)
    warmup_epochs: float = option(0.0, "linear learning-rate warm-up in epochs", at_least=0)
    lr_schedule: str = option(
        "cosine",
        "learning-rate schedule after the warm-up: cosine per step, or step (x lr_gamma at "
        "each of lr_milestones)",
        choices=("cosine", "step"),
    )
    lr_milestones: str = option(
        "", "step schedule: comma-separated epochs where the LR is multiplied by lr_gamma",
        check=_check_milestones,
    )  # fmt: skip
    lr_gamma: float = option(0.1, "step schedule: LR factor at each milestone", above=0)
    nesterov: bool = option(True, "Nesterov momentum")
    weight_decay_all: bool = option(
        False, "weight decay on biases and norm parameters too (default: on weights only)"
    )

    def lr_of(self, step: int, steps_per_epoch: int) -> float:
        """The learning rate of optimiser step ``step`` (``mixkit.train.lr_at``)."""
        from mixkit.train import lr_at

        return lr_at(
            self.lr, step, steps_per_epoch=steps_per_epoch,
            total_steps=self.epochs * steps_per_epoch,
            warmup_steps=int(self.warmup_epochs * steps_per_epoch),
            schedule=self.lr_schedule, milestones=parse_milestones(self.lr_milestones),
            gamma=self.lr_gamma,
        )  # fmt: skip


@dataclasses.dataclass
class DataOptions:
    """On-disk datasets (cifar10, cifar100, imagefolder), read by DataLoader workers."""

    workers: int = option(4, "DataLoader worker processes for on-disk datasets", at_least=0)
    image_size: int = option(
        224,
        "imagefolder: side of the training crop and of the evaluation centre crop "
        "(images are decoded at image_size / 0.875)",
        at_least=8,
    )


@dataclasses.dataclass
class RunOptions:
    """The run: its seed, device and folder."""

    seed: int = option(0, "seed of the training draws (data order, init, mixing)")
    device: str = option("cpu", "torch device to run on", check=check_device)
    out: str | None = option(None, "run folder; default: a new numbered folder runs/<command>/expN")
    progress: bool = option(True, "print a progress line per epoch")
    overwrite: bool = option(False, "replace the run folder OUT if it holds a run already")


@dataclasses.dataclass
class ResumeOptions:
    """Crash-safe resume from the run folder's last checkpoint."""

    resume: bool = option(False, "continue from OUT/checkpoints/last.pt (mid-epoch included)")
    checkpoint_every: int = option(
        0, "also checkpoint every N optimiser steps (0: at epoch ends only)", at_least=0
    )


@dataclasses.dataclass
class RecipeOptions(RunOptions):
    """The run folder and the bundled recipe."""

    recipe: str | None = option(
        None, "bundled recipe (mixkit recipes lists them), below --config, --set and flags"
    )


@dataclasses.dataclass
class TrainConfig(DeviceOptions, ScheduleOptions, DataOptions, ResumeOptions, RecipeOptions):
    """Classification training (``mixkit train``). Field names are the CLI flags."""

    command_name: ClassVar[str] = "train"  # the sub-command its recipes are for
    dataset: str = option("mnist5k", "training data (embedded or on disk)", choices=_datasets)
    data_root: str | None = option(None, "folder of an on-disk dataset (cifar*, imagefolder)")
    train_subset: int = option(
        0, "train on a class-stratified subset of N training images (0: all)", at_least=0
    )
    model: str = option(
        "smallcnn",
        "network: a mixkit.models name, pkg.module:callable, timm:NAME, torchvision:NAME",
    )
    model_args: dict[str, Any] | None = option(
        None,
        "keyword arguments of the model constructor (a YAML mapping; or --set model_args.KEY=V)",
        check=check_mapping,
    )
    weights: str | None = option(
        None, "state_dict file loaded into the model before training (a differing head is kept)"
    )
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
    crop_flip: bool = option(
        False,
        "standard augmentation before mixing: random crop (pad 4) + flip; imagefolder: "
        "random-resized crop + flip",
    )
    flip: bool = option(
        True, "with --crop-flip: also flip horizontally (--no-flip for digits and text)"
    )
    epochs: int = option(12, "training epochs", at_least=1)
    batch_size: int = option(128, "global batch size (split over torchrun ranks)", at_least=1)
    grid_samples: int = option(16, "mixed samples drawn in mixed_samples.png (0: none)", at_least=0)
    sync_bn: bool = option(True, "under torchrun: BatchNorm statistics over the global batch")

    def __post_init__(self) -> None:
        # Checked here so a bad value fails before data loading, whatever the aug.
        check_options(self)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys from ``path`` or a bundled recipe name
    (``mixkit/recipes/NAME.yaml``, e.g. ``mnist_cutmix``)."""
    path = Path(path)
    if not path.is_file() and (BUNDLED / f"{path.name}.yaml").is_file():
        path = BUNDLED / f"{path.name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"config file not found: {path} (bundled recipes: {recipe_names()})"
        )
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


def load_recipe(name: str, command: str | None = None) -> dict[str, Any]:
    """The keys of bundled recipe ``name``; ValueError for an unknown name or, with
    ``command``, a recipe made for another sub-command."""
    if name not in recipe_names():
        raise ValueError(f"recipe must be one of {recipe_names()} (mixkit recipes), got {name!r}")
    if command is not None and recipe_command(name) != command:
        raise ValueError(
            f"recipe {name!r} is for `mixkit {recipe_command(name)}`, not `mixkit {command}`"
        )
    return load_yaml(BUNDLED / f"{name}.yaml")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["lr=0.1", "model_args.depth=20"]`` -> ``{"lr": 0.1, "model_args.depth": 20}``
    (values parsed as YAML; a dotted key sets one entry of a mapping field)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


def _is_mapping_field(field: dataclasses.Field) -> bool:
    return str(field.type).replace("typing.", "").startswith(("dict", "Mapping"))


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    default = field.default
    if _is_mapping_field(field):
        if isinstance(value, str):  # --model-args "{depth: 20}"
            value = yaml.safe_load(value)
        check_mapping(value)
        return None if value is None else dict(value)
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
        if isinstance(default, str) and isinstance(value, list | tuple):
            return ",".join(str(v) for v in value)  # YAML list for a comma-separated field
        return type(default)(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"config key {field.name!r} expects {type(default).__name__}, got {value!r}"
        ) from None


def _set_dotted(
    merged: dict[str, Any], fields: dict[str, dataclasses.Field], key: str, value: Any
) -> None:
    """``model_args.depth`` -> ``merged["model_args"]["depth"] = value`` (nested dots nest)."""
    parent, *path = key.split(".")
    if parent not in fields:
        raise ValueError(f"unknown config key {parent!r} in {key!r}; valid keys: {sorted(fields)}")
    if not _is_mapping_field(fields[parent]):
        mappings = sorted(n for n, f in fields.items() if _is_mapping_field(f))
        raise ValueError(
            f"config key {key!r}: {parent!r} is not a mapping field (mapping fields: {mappings})"
        )
    node = merged.setdefault(parent, {})
    if node is None:
        node = merged[parent] = {}
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"config key {key!r}: {part!r} already holds a value, not a mapping")
    node[path[-1]] = value


def build_config(cls: type[C], *layers: dict[str, Any]) -> C:
    """Merge mappings (later wins) into ``cls``; unknown keys raise ValueError. A ``recipe``
    key (from any layer, the last wins) adds that bundled recipe as the lowest layer (it
    must be made for ``cls.command_name``, the sub-command)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    recipe = None
    for layer in layers:
        for key, value in layer.items():
            if key.replace("-", "_") == "recipe":
                recipe = value
    if recipe is not None and "recipe" in fields:
        layers = (load_recipe(str(recipe), getattr(cls, "command_name", None)), *layers)
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            key = key.replace("-", "_")
            if "." in key:
                _set_dotted(merged, fields, key, value)
                continue
            if key not in fields:
                raise ValueError(f"unknown config key {key!r}; valid keys: {sorted(fields)}")
            value = _coerce(fields[key], value)
            if _is_mapping_field(fields[key]) and isinstance(merged.get(key), dict) and value:
                value = {**merged[key], **value}  # mappings merge key by key across layers
            merged[key] = value
    for key, f in fields.items():
        if _is_mapping_field(f) and key in merged:
            merged[key] = _coerce(f, merged[key])
    return cls(**merged)
