"""Classification with a mixing augmentation (``mixkit train``), top to bottom:

data (uint8 in memory) -> [crop+flip] -> float -> mixer -> model -> soft-target CE -> SGD
with cosine LR; per-epoch test evaluation, metrics.csv, summary.json, a grid of mixed
samples and an atomic checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from mixkit import augment, data, losses, models, plots
from mixkit.config import TrainConfig
from mixkit.train import (
    MetricsWriter,
    atomic_save,
    build_optimizer,
    cosine_lr,
    evaluate,
    seed_everything,
    write_json,
)

__all__ = ["build_mixer", "run"]


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
    if cfg.aug not in augment.AUGMENTS or cfg.aug == "classmix":
        valid = sorted(set(augment.AUGMENTS) - {"classmix"})
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


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Train, evaluate and write the run directory ``cfg.out``. Returns the summary dict."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)

    ds = data.load_dataset(cfg.dataset, cfg.data_root, seed=cfg.seed)
    model = models.build_model(cfg.model, ds.num_classes, ds.in_channels).to(device)
    mixer = build_mixer(cfg, ds.num_classes)
    optimizer = build_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)
    crop_gen = torch.Generator().manual_seed(cfg.seed + 2)
    steps_per_epoch = -(-len(ds.train.y) // cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    metrics = MetricsWriter(out / "metrics.csv")

    def test_batches():
        for xb, yb in data.iterate_batches(ds.test, 512, shuffle=False):
            yield data.to_float(xb, ds.mean, ds.std), yb

    step, start = 0, time.time()
    result: dict[str, float] = {}
    for epoch in range(cfg.epochs):
        model.train()
        loss_sum, seen = 0.0, 0
        batches = data.iterate_batches(
            ds.train, cfg.batch_size, shuffle=True, generator=shuffle_gen
        )
        bar = tqdm(
            batches,
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not cfg.progress,
            leave=False,
        )
        for xb, yb in bar:
            if cfg.crop_flip:
                xb = data.random_crop_flip(xb, 4, crop_gen)
            x = data.to_float(xb.to(device), ds.mean, ds.std)
            y = yb.to(device)
            target = y if mixer is None else None
            if mixer is not None:
                x, target = mixer(x, y)
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(cfg.lr, step, total_steps, warmup)
            loss = losses.soft_target_cross_entropy(model(x), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += float(loss.detach()) * len(y)
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
        result = evaluate(model, test_batches(), device)
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen,
            "test_loss": result["loss"],
            "test_acc": result["acc"],
            "lr": optimizer.param_groups[0]["lr"],
            "time_s": round(time.time() - start, 3),
        }
        metrics.write(row)
        print(
            f"epoch {epoch + 1}/{cfg.epochs}  train_loss {row['train_loss']:.4f}  "
            f"test_loss {result['loss']:.4f}  test_acc {result['acc']:.4f}",
            flush=True,
        )
        atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "step": step,
            },
            out / "checkpoints" / "last.pt",
        )

    summary = {
        "test_acc": result.get("acc"),
        "test_loss": result.get("loss"),
        "epochs": cfg.epochs,
        "aug": cfg.aug,
        "dataset": cfg.dataset,
        "model": cfg.model,
        "seed": cfg.seed,
        "train_time_s": round(time.time() - start, 2),
    }
    write_json(summary, out / "summary.json")
    if cfg.grid_samples > 0:
        plots.save_mix_grid_for(
            ds, mixer, cfg.grid_samples, out / "plots" / "mixed_samples.png", seed=cfg.seed
        )
    return summary
