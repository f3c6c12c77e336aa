"""Semi-supervised semantic segmentation (``mixkit semiseg``), top to bottom:

data (the embedded digit canvases, or VOC / Cityscapes / a folder on disk named by split
lists) -> trainer (sup | mt | psmt | dualteacher, thin loops over the building blocks of
:mod:`mixkit.methods.semiseg`) -> per epoch: val mIoU, teacher-student distances,
metrics.csv row, checkpoints/last.pt -> summary.json and plots.

    mixkit semiseg --method dualteacher --split 1/16 --out runs/dt
    mixkit semiseg --config semiseg_psmt_voc_1-16 --set data_root=VOCdevkit/VOC2012

``--resume`` continues from ``OUT/checkpoints/last.pt`` (same config) to the same bytes.
``torchrun --nproc_per_node 2 -m mixkit semiseg ...`` trains data-parallel (the batch sizes
are global batches; see ``mixkit.methods.semiseg.trainers``); only rank 0 writes the run
folder, and ``summary.json`` records every rank's SHA-256 of the student and of each teacher.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import torch  # noqa: E402

from mixkit import distributed, plots, runs  # noqa: E402
from mixkit.methods.semiseg.config import SemisegConfig  # noqa: E402
from mixkit.methods.semiseg.data import (  # noqa: E402
    IGNORE,
    SegDataset,
    cached_seg_dataset,
    ensure_split,
    load_split,
)
from mixkit.methods.semiseg.distance import plot_distance_curves, summarize_history  # noqa: E402
from mixkit.methods.semiseg.net import bn_mode  # noqa: E402
from mixkit.methods.semiseg.pretrain import cached_pretrained  # noqa: E402
from mixkit.methods.semiseg.sources import CANVAS_CLASSES, DiskData, open_disk_data  # noqa: E402
from mixkit.methods.semiseg.trainers import SemisegTrainer, build_trainer  # noqa: E402
from mixkit.methods.semiseg.views import normalise  # noqa: E402
from mixkit.train import MetricsWriter, atomic_save, load_checkpoint, write_json  # noqa: E402

CLASS_NAMES = CANVAS_CLASSES
CSV_SKIP = {"val_iou"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from mixkit.cli import add_common_flags, add_config_flags

    p = sub.add_parser(
        "semiseg", help="semi-supervised segmentation: sup / mean teacher / PS-MT / Dual Teacher"
    )
    add_config_flags(p, SemisegConfig)
    add_common_flags(p)
    p.set_defaults(func=_cmd_semiseg)


def _cmd_semiseg(args: argparse.Namespace) -> int:
    from mixkit.cli import config_from_args

    cfg = config_from_args(args, SemisegConfig)
    s = run(cfg)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    print(
        f"done: {cfg.method} ({cfg.mix}) split {cfg.split}: val mIoU {s['val_miou']:.4f} "
        f"({s['train_time_s']} s) -> {s['out']}"
    )
    return 0


def load_data(cfg: SemisegConfig) -> SegDataset | DiskData:
    """The canvases (``dataset canvas``) or the on-disk datasets named by the split lists."""
    if cfg.dataset != "canvas":
        return open_disk_data(cfg)
    return cached_seg_dataset(
        cfg.n_train,
        cfg.n_val,
        cfg.canvas,
        cfg.max_digits,
        cfg.texture_p,
        cfg.data_seed,
        cfg.texture,
    )


def resolve_split(cfg: SemisegConfig, ds: SegDataset | DiskData) -> tuple[Path, Any, Any]:
    """(split file, labeled, unlabeled). Canvases: ``cfg.split_file`` if given, else the
    split file for (split, protocol, split_seed) under ``cfg.splits_dir`` (default
    ``OUT/splits``), written on first use, with index tensors. On-disk data: the labeled list
    and the labeled / unlabeled datasets."""
    if isinstance(ds, DiskData):
        return Path(ds.lists["labeled"]), ds.labeled, ds.unlabeled
    if cfg.split_file:
        path = Path(cfg.split_file)
        lab, unl = load_split(path, ds)
        return path, lab, unl
    folder = Path(cfg.splits_dir) if cfg.splits_dir else Path(cfg.out) / "splits"
    return ensure_split(ds, cfg.split, cfg.protocol, cfg.split_seed, folder)


def save_overlays(trainer: SemisegTrainer, ds: Any, path: Path, n: int = 8) -> Path:
    """Val images, ground truth and the student's prediction, with a class legend."""
    src = trainer.source
    images, labels = src.preview(n)
    x = normalise(images.to(trainer.device).float() / 255, src.mean, src.std)
    with torch.no_grad(), bn_mode(trainer.student, "eval"):
        pred = trainer.student(x).argmax(1).cpu()
    fig = plots.seg_overlay_figure(
        images, labels, pred, class_names=src.class_names, ignore_index=IGNORE,
        title=f"{trainer.method}: val images",
    )  # fmt: skip
    return plots.save_figure(fig, path)


def save_mix_example(trainer: SemisegTrainer, ds: Any, path: Path, n: int = 8) -> Path:
    """One draw of the run's mixer on val images and their labels (ground truth used as the
    'pseudo-label' so the paste region is visible), pasted regions outlined."""
    images, labels = trainer.source.preview(n)
    labels = labels.long()
    params = trainer.mixer.draw(images.shape, torch.Generator().manual_seed(0), label_maps=labels)
    m = trainer.mixer.apply(params, images=images, labels=labels)
    fig = plots.seg_mix_figure(
        m.images, m.labels, params, class_names=trainer.source.class_names,
        ignore_index=IGNORE, title=f"mixer: {trainer.mixer!r}",
    )  # fmt: skip
    return plots.save_figure(fig, path)


RESUME_FREE = {"epochs", "resume", "progress", "out", "overwrite", "device", "checkpoint_every",
               "workers", "log_every"}  # fmt: skip


def _check_resume(cfg: SemisegConfig, saved: dict[str, Any]) -> None:
    """A checkpoint resumes only the configuration that wrote it (``epochs`` may grow)."""
    now = dataclasses.asdict(cfg)
    diff = sorted(k for k in now if k not in RESUME_FREE and k in saved and saved[k] != now[k])
    if diff:
        raise ValueError(
            "cannot resume: the checkpoint was written with a different config for "
            + ", ".join(f"{k} ({saved[k]!r} != {now[k]!r})" for k in diff)
        )


def _ticker(bar: Any) -> Any:
    return lambda i: bar.update(1)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _main_first(env: distributed.DistEnv, fn: Callable[[], Any]) -> Any:
    """``fn()`` on rank 0 first, then on the other ranks (file caches written once)."""
    result = fn() if env.is_main else None
    distributed.all_gather_object(None, env)  # barrier
    return result if env.is_main else fn()


def run(cfg: SemisegConfig) -> dict[str, Any]:
    """Train and evaluate one configuration; writes the run directory ``cfg.out``.

    Under ``torchrun`` (``WORLD_SIZE > 1``) this is data-parallel over the ranks; see
    :mod:`mixkit.methods.semiseg.trainers` and :mod:`mixkit.distributed`."""
    return distributed.launch(_run, cfg)


def _run(cfg: SemisegConfig, env: distributed.DistEnv) -> dict[str, Any]:
    out = runs.resolve_run_dir(
        cfg.out, "runs/semiseg", resume=cfg.resume, overwrite=cfg.overwrite, env=env
    )
    cfg, main = dataclasses.replace(cfg, out=str(out)), env.is_main
    distributed.start_run_dir(out, cfg, env)
    ds, split_path, labeled, unlabeled = _prepare_data(cfg, env)
    trainer = build_trainer(cfg, ds, labeled, unlabeled, env)
    ckpt_path = out / "checkpoints" / "last.pt"
    if cfg.resume and ckpt_path.is_file():
        _restore(cfg, env, trainer, ckpt_path)
    metrics = _open_metrics(out / "metrics.csv", trainer) if main else None

    def on_step() -> None:  # mid-epoch checkpoints: --resume continues from the same step
        if cfg.checkpoint_every and trainer.step % cfg.checkpoint_every == 0:
            _save_checkpoint(cfg, env, trainer, ckpt_path)
        if main and cfg.log_every and trainer.step % cfg.log_every == 0:
            _print_running(cfg, trainer)

    start = time.time()
    try:
        while trainer.epoch < cfg.epochs:
            row = _train_epoch(cfg, trainer, on_step, progress=cfg.progress and main)
            _save_checkpoint(cfg, env, trainer, ckpt_path)
            if main:
                metrics.write({k: v for k, v in row.items() if k not in CSV_SKIP})
                _print_epoch(cfg, row)
    finally:
        trainer.source.close()
    wall_s = time.time() - start
    summary = _summary(cfg, env, trainer, ds, split_path, labeled, unlabeled, wall_s)
    if main:
        _write_outputs(cfg, trainer, ds, summary)
    return summary


def _prepare_data(cfg: SemisegConfig, env: distributed.DistEnv) -> tuple[Any, Path, Any, Any]:
    """Data, the split file and (under torchrun) the pretrained-encoder cache: the caches
    are written by rank 0 only, then read by the others."""
    ds = _main_first(env, lambda: load_data(cfg))
    split_path, labeled, unlabeled = _main_first(env, lambda: resolve_split(cfg, ds))
    if (
        cfg.pretrain_steps > 0
        and cfg.model == "segnet"
        and cfg.dataset == "canvas"
        and env.distributed
    ):
        _main_first(
            env,
            lambda: cached_pretrained(
                cfg.width, cfg.canvas, cfg.pretrain_steps, cfg.pretrain_seed, cfg.pretrain_cache
            ),
        )
    return ds, split_path, labeled, unlabeled


def _restore(
    cfg: SemisegConfig, env: distributed.DistEnv, trainer: SemisegTrainer, ckpt_path: Path
) -> None:
    ckpt = load_checkpoint(ckpt_path)
    _check_resume(cfg, ckpt.get("config", {}))
    trainer.load_state_dict(ckpt)
    if env.is_main:
        print(f"resumed from {ckpt_path} at epoch {trainer.epoch}", flush=True)


def _open_metrics(path: Path, trainer: SemisegTrainer) -> MetricsWriter:
    """A fresh metrics.csv holding the history the checkpoint carries (none for a new run)."""
    path.unlink(missing_ok=True)
    metrics = MetricsWriter(path)
    for row in trainer.rows:
        metrics.write({k: v for k, v in row.items() if k not in CSV_SKIP})
    return metrics


def _save_checkpoint(
    cfg: SemisegConfig, env: distributed.DistEnv, trainer: SemisegTrainer, ckpt_path: Path
) -> None:
    """Collective: every rank's random state is gathered, rank 0 writes ``last.pt``."""
    ranks = distributed.all_gather_object(trainer.rank_state(), env)
    if env.is_main:
        state = {**trainer.state_dict(), "ranks": ranks, "config": dataclasses.asdict(cfg)}
        atomic_save(state, ckpt_path)


def _train_epoch(
    cfg: SemisegConfig, trainer: SemisegTrainer, on_step: Callable[[], None], progress: bool
) -> dict[str, Any]:
    """One epoch of the trainer (with a progress bar when asked); returns its metrics row."""
    if not progress:
        return trainer.train_epoch(None, on_step)
    from tqdm import tqdm

    bar = tqdm(
        total=trainer.epoch_length(trainer.epoch), desc=f"epoch {trainer.epoch + 1}", leave=False
    )
    row = trainer.train_epoch(_ticker(bar), on_step)
    bar.close()
    return row


def _fmt_losses(values: dict[str, Any]) -> str:
    """``loss .. sup .. unsup .. [ic ..] pass ..`` (the unsupervised terms only when logged)."""
    parts = [f"loss {values['loss']:.4f}", f"sup {values['loss_sup']:.4f}"]
    for key, name in (("loss_unsup", "unsup"), ("loss_ic", "ic"), ("pass_rate", "pass")):
        if key in values and (key != "loss_ic" or values[key]):
            parts.append(f"{name} {values[key]:.{2 if key == 'pass_rate' else 4}f}")
    return "  ".join(parts)


def _print_running(cfg: SemisegConfig, trainer: SemisegTrainer) -> None:
    means = trainer.running_means()
    if means:
        print(f"step {trainer.step}/{trainer.total_steps} [{trainer.active() or '-'}]  "
              f"{_fmt_losses(means)}", flush=True)  # fmt: skip


def _print_epoch(cfg: SemisegConfig, row: dict[str, Any]) -> None:
    """One line per epoch; values not measured this epoch (NaN) are left out."""
    shown = {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
    if row.get("active") in ("", "warmup"):
        shown = {k: v for k, v in shown.items() if k not in ("loss_unsup", "pass_rate")}
    val = f"val mIoU {row['val_miou']:.4f}" if "val_miou" in shown else "val mIoU -"
    extra = "".join(f"  {k} {v:.3f}" for k, v in shown.items()
                    if k.endswith("_miou") and k != "val_miou")  # fmt: skip
    print(
        f"epoch {row['epoch']}/{cfg.epochs} [{row['active'] or '-'}]  {_fmt_losses(shown)}"
        f"  {val}{extra}  ({row['epoch_time_s']:.1f} s)",
        flush=True,
    )


def _count(x: Any) -> int:
    return int(x.numel()) if isinstance(x, torch.Tensor) else len(x)


def _summary(
    cfg: SemisegConfig, env: distributed.DistEnv, trainer: SemisegTrainer, ds: Any,
    split_path: Path, labeled: Any, unlabeled: Any, wall_s: float,
) -> dict[str, Any]:  # fmt: skip
    """summary.json: the split, the final and best mIoU, teacher mIoU and distances; under
    torchrun also every rank's SHA-256 of the student and of each teacher."""
    final = trainer.rows[-1]
    teachers = list(trainer.teachers())
    semi_rows = [r for r in trainer.rows if r["active"] not in ("", "warmup")]
    keys = [f"{p}_{t}" for t in teachers for p in ("dist", "disagree", "kl")]
    measured = [r["val_miou"] for r in trainer.rows if not math.isnan(r["val_miou"])]
    summary = {
        "method": cfg.method, "mix": cfg.mix, "dataset": cfg.dataset, "model": cfg.model,
        "split": cfg.split if cfg.dataset == "canvas" else cfg.labeled_list,
        "protocol": cfg.protocol, "seed": cfg.seed,
        "split_file": str(split_path), "split_sha256": _sha256(split_path),
        "dataset_fingerprint": ds.fingerprint,
        "num_labeled": _count(labeled), "num_unlabeled": _count(unlabeled),
        "epochs": cfg.epochs, "iters_per_epoch": cfg.iters_per_epoch, "steps": trainer.step,
        "val_miou": final["val_miou"], "val_pixel_acc": final["val_pixel_acc"],
        "val_iou": dict(zip(trainer.source.class_names, final["val_iou"], strict=True)),
        "best_val_miou": max(measured),
        "teacher_miou": {t: final[f"{t}_miou"] for t in teachers},
        "distance": summarize_history(semi_rows, keys) if teachers else {},
        "curve": trainer.curve,
        "train_time_s": round(sum(r["epoch_time_s"] for r in trainer.rows), 2),
        "wall_time_s": round(wall_s, 2), "world_size": env.world_size, "out": cfg.out,
    }  # fmt: skip
    if env.distributed:  # every rank must end with the same bytes (SHA-256 per rank)
        summary["weights_sha256"] = distributed.check_same_across_ranks(trainer.student, env)
        summary["teachers_sha256"] = {
            name: distributed.check_same_across_ranks(t, env, name)
            for name, t in trainer.teachers().items()
        }
    return summary


def _write_outputs(
    cfg: SemisegConfig, trainer: SemisegTrainer, ds: Any, summary: dict[str, Any]
) -> None:
    """summary.json and the plots: overlays, one mixer draw, the distance curves."""
    out = Path(cfg.out)
    write_json(summary, out / "summary.json")
    save_overlays(trainer, ds, out / "plots" / "overlay.png")
    save_mix_example(trainer, ds, out / "plots" / "mix_example.png")
    teachers = list(trainer.teachers())
    if teachers and trainer.curve:
        curves = {
            t: ([p["step"] for p in trainer.curve], [p[t] for p in trainer.curve]) for t in teachers
        }
        plot_distance_curves(
            curves,
            out / "plots" / "distance.png",
            title=f"{cfg.method}: teacher-student parameter distance",
            epoch_steps=trainer.epoch_length(0),
        )
