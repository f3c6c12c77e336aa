"""Teachers and students of KD runs: resolve ``--teacher`` (a ``mixkit train`` run folder,
its checkpoint, or any checkpoint / state_dict file with ``--teacher-model``), load the frozen
teacher, and load a distilled student."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from mixkit import models
from mixkit.train import load_checkpoint


def _run_config(cfg_path: Path, what: str) -> dict[str, Any]:
    cfg = yaml.safe_load(cfg_path.read_text())
    if not isinstance(cfg, dict):
        raise ValueError(f"{what} run config {cfg_path} is not a mapping")
    return cfg


def resolve_run(path: str | Path | None, what: str) -> tuple[Path, Path, dict[str, Any]]:
    """``(checkpoint, run_dir, run config)`` of a run folder or of ``RUN/checkpoints/*.pt``."""
    if path is None or str(path) == "":
        raise ValueError(f"{what} is required (a checkpoint of a mixkit run, or its folder)")
    p = Path(path)
    if p.is_dir():
        run_dir, ckpt = p, p / "checkpoints" / "last.pt"
    else:
        ckpt = p
        run_dir = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    if not ckpt.is_file():
        raise FileNotFoundError(f"{what} checkpoint not found: {ckpt}")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(
            f"{what} run config not found: {cfg_path} (expected the run folder of {ckpt})"
        )
    return ckpt, run_dir, _run_config(cfg_path, what)


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
    """Where a teacher's weights are, what network they fit and which data it is judged on
    (``split_seed``: the seed of the embedded sets' train/test split)."""

    ckpt: Path
    model: str
    model_args: dict[str, Any]
    dataset: str
    data_root: str | None
    split_seed: int
    run_dir: Path | None  # None: a bare checkpoint / state_dict file


def _owning_run(p: Path) -> Path | None:
    """The run folder of checkpoint file ``p`` (``RUN/checkpoints/x.pt`` or ``RUN/x.pt`` next
    to a ``config.yaml``), else None."""
    for run_dir in (p.parent.parent, p.parent) if p.parent.name == "checkpoints" else (p.parent,):
        if (run_dir / "config.yaml").is_file():
            return run_dir
    return None


def resolve_teacher(
    path: str | Path | None,
    *,
    teacher_model: str | None = None,
    teacher_args: dict[str, Any] | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    seed: int = 0,
) -> TeacherSpec:
    """The :class:`TeacherSpec` of ``--teacher``: a ``mixkit train`` run folder or a
    checkpoint inside one (model, dataset and split seed from its ``config.yaml``; ``dataset``
    must then agree, ``data_root`` may point to moved data), or a bare checkpoint /
    state_dict file, which needs ``teacher_model`` and ``dataset`` (split with ``seed``)."""
    if path is None or str(path) == "":
        raise ValueError(
            "teacher is required: a mixkit train run folder, its checkpoint, or a "
            "checkpoint / state_dict file with --teacher-model"
        )
    p = Path(path)
    run_dir = p if p.is_dir() else (_owning_run(p) if p.is_file() else None)
    if run_dir is not None:
        return _from_run(p, teacher_model, teacher_args, dataset, data_root)
    if not p.is_file():
        raise FileNotFoundError(f"teacher checkpoint not found: {p}")
    if teacher_model is None:
        raise ValueError(
            f"teacher {p} is a bare checkpoint (no mixkit run config beside it): pass "
            "--teacher-model NAME (a mixkit.models name or a plug-in) and --dataset"
        )
    if dataset is None:
        raise ValueError(f"teacher {p} is a bare checkpoint: pass --dataset (its data)")
    return TeacherSpec(p, teacher_model, dict(teacher_args or {}), dataset, data_root, seed, None)


def _from_run(
    path: Path,
    teacher_model: str | None,
    teacher_args: dict[str, Any] | None,
    dataset: str | None,
    data_root: str | None,
) -> TeacherSpec:
    ckpt, run_dir, tcfg = resolve_run(path, "teacher")
    for key in ("model", "dataset", "seed"):
        if key not in tcfg:
            raise ValueError(f"teacher run config lacks {key!r}: is it a `mixkit train` run?")
    for name, given, saved in (("teacher_model", teacher_model, tcfg["model"]),
                               ("dataset", dataset, tcfg["dataset"])):  # fmt: skip
        if given is not None and given != saved:
            raise ValueError(
                f"{name} {given!r} differs from the teacher run's {saved!r} ({run_dir}); leave "
                f"it out, or pass the checkpoint of another run"
            )
    args = {**(tcfg.get("model_args") or {}), **(teacher_args or {})}
    root = data_root if data_root is not None else tcfg.get("data_root")
    return TeacherSpec(ckpt, tcfg["model"], args, tcfg["dataset"], root, int(tcfg["seed"]), run_dir)


def frozen(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with every parameter's ``requires_grad`` off (in place)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_teacher(
    spec: TeacherSpec, num_classes: int, in_channels: int, device: str | torch.device = "cpu"
) -> nn.Module:
    """The teacher of ``spec`` with its weights (every key must fit), frozen, on ``device``."""
    model = models.build_model(spec.model, num_classes, in_channels, **spec.model_args)
    models.load_weights(model, spec.ckpt, strict=True)
    return frozen(model.to(device))


def load_student(
    path: str | Path | None,
    num_classes: int,
    in_channels: int,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Student from a ``mixkit distill`` checkpoint (eval mode, frozen)."""
    ckpt, _, scfg = resolve_run(path, "student_ckpt")
    if "student" not in scfg:
        raise ValueError("student_ckpt run config lacks 'student': is it a `mixkit distill` run?")
    args = scfg.get("student_args") or {}
    model = models.build_model(scfg["student"], num_classes, in_channels, **args)
    model.load_state_dict(load_checkpoint(ckpt)["model"])
    return frozen(model.to(device))
