"""Teacher and student checkpoints of KD runs: resolve a run folder or checkpoint, and load
the frozen teacher (with its own dataset split) or a distilled student."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from mixkit import data, models
from mixkit.train import load_checkpoint


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
    cfg = yaml.safe_load(cfg_path.read_text())
    if not isinstance(cfg, dict):
        raise ValueError(f"{what} run config {cfg_path} is not a mapping")
    return ckpt, run_dir, cfg


def _frozen(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_teacher(
    path: str | Path | None, device: str | torch.device = "cpu"
) -> tuple[models.Classifier, data.Dataset, dict[str, Any]]:
    """Teacher from a ``mixkit train`` checkpoint, in eval mode with frozen weights, and the
    dataset with the teacher's own split (its run's ``dataset``, ``data_root``, ``seed``)."""
    ckpt, _, tcfg = resolve_run(path, "teacher")
    for key in ("model", "dataset", "seed"):
        if key not in tcfg:
            raise ValueError(f"teacher run config lacks {key!r}: is it a `mixkit train` run?")
    ds = data.load_dataset(tcfg["dataset"], tcfg.get("data_root"), seed=int(tcfg["seed"]))
    model = models.build_model(tcfg["model"], ds.num_classes, ds.in_channels)
    model.load_state_dict(load_checkpoint(ckpt)["model"])
    return _frozen(model.to(device)), ds, tcfg


def load_student(
    path: str | Path | None, ds: data.Dataset, device: str | torch.device = "cpu"
) -> models.Classifier:
    """Student from a ``mixkit distill`` checkpoint (eval mode, frozen)."""
    ckpt, _, scfg = resolve_run(path, "student_ckpt")
    if "student" not in scfg:
        raise ValueError("student_ckpt run config lacks 'student': is it a `mixkit distill` run?")
    model = models.build_model(scfg["student"], ds.num_classes, ds.in_channels)
    model.load_state_dict(load_checkpoint(ckpt)["model"])
    return _frozen(model.to(device))
