"""Classification with a mixing augmentation (``mixkit train``), top to bottom:

data (uint8 in memory) -> [crop+flip] -> float -> mixer -> model -> soft-target CE -> SGD
with cosine LR; per-epoch test evaluation, metrics.csv, summary.json, a grid of mixed
samples and an atomic checkpoint (``--checkpoint-every N`` also mid-epoch; ``--resume``
continues from it to the same bytes). Under ``torchrun`` it trains data-parallel.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mixkit import augment, data, distributed, losses, models, plots, resume
from mixkit.config import TrainConfig
from mixkit.methods import recursivemix
from mixkit.train import (
    MetricsWriter,
    atomic_save,
    build_optimizer,
    cosine_lr,
    evaluate,
    load_checkpoint,
    seed_everything,
    write_json,
)


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


class _TrainLoss(torch.nn.Module):
    """Model (+ RecursiveMix's ROI head) -> loss in one forward, so DistributedDataParallel
    sees every parameter that gets a gradient."""

    def __init__(self, model: torch.nn.Module, rm: recursivemix.RecursiveMixStep | None) -> None:
        super().__init__()
        self.model, self.rm = model, rm

    def forward(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.rm is not None:
            return self.rm(self.model, x, y).loss
        return losses.soft_target_cross_entropy(self.model(x), target)


# Config keys that may change between a run and its resumption (the rest must match).
RESUME_IGNORES = frozenset(
    {"resume", "checkpoint_every", "progress", "out", "device", "grid_samples"}
)


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Train, evaluate and write the run directory ``cfg.out``. Returns the summary dict.

    Under ``torchrun`` (``WORLD_SIZE > 1``) this is data-parallel: ``cfg.batch_size`` is the
    global batch, split evenly over the ranks; see :mod:`mixkit.distributed`."""
    return distributed.launch(_train, cfg)


def _train(cfg: TrainConfig, env: distributed.DistEnv) -> dict[str, Any]:
    out, main = Path(cfg.out), env.is_main
    distributed.check_global_batch(cfg.batch_size, env)
    distributed.start_run_dir(out, cfg, env)
    seed_everything(cfg.seed)  # same model init on every rank
    device = env.device

    ds = data.load_dataset(cfg.dataset, cfg.data_root, seed=cfg.seed)
    model = models.build_model(cfg.model, ds.num_classes, ds.in_channels).to(device)
    if cfg.sync_bn:  # global-batch BN statistics across ranks (no-op on one rank)
        model = distributed.sync_batchnorm(model, env)
    if env.rank:  # per-rank streams (dropout, mixer, crops); rank 0 keeps the plain-run seeds
        seed_everything(distributed.rank_seed(cfg.seed, env.rank))
    mixer = build_mixer(cfg, ds.num_classes)
    if env.rank and mixer is not None and mixer.generator is not None:
        mixer.generator.manual_seed(distributed.rank_seed(cfg.seed + 1, env.rank))
    # RecursiveMix: history + ROI consistency head, one step call (mixkit.methods.recursivemix)
    rm = None
    if isinstance(mixer, recursivemix.RecursiveMix):
        rm = recursivemix.RecursiveMixStep(mixer, model.feature_dim, cfg.rm_omega).to(device)
    trained = model if rm is None else torch.nn.ModuleList([model, rm])
    optimizer = build_optimizer(trained, cfg.lr, cfg.momentum, cfg.weight_decay)
    loss_fn = distributed.wrap_ddp(
        _TrainLoss(model, rm), env, find_unused_parameters=rm is not None
    )
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)  # one global permutation: same seed
    crop_gen = torch.Generator().manual_seed(distributed.rank_seed(cfg.seed + 2, env.rank))
    generators = {"crop": crop_gen, **resume.module_generators(mixer, "mixer.")}
    local_bs = cfg.batch_size // env.world_size
    n_local = len(distributed.shard_order(len(ds.train), env.rank, env.world_size))
    steps_per_epoch = -(-n_local // local_bs)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    test_split = ds.test
    if env.distributed:  # each rank evaluates every world_size-th test image; sums reduced
        idx = torch.arange(len(ds.test))[env.rank :: env.world_size]
        test_split = data.Split(ds.test.x[idx], ds.test.y[idx])

    def test_batches():
        for xb, yb in data.iterate_batches(test_split, 512, shuffle=False):
            yield data.to_float(xb, ds.mean, ds.std), yb

    # Resume state: loader position (epoch, batch, shuffle state at the epoch start), step,
    # running loss, per-epoch metrics, and per rank all RNG/generator states (mixkit.resume).
    ckpt_path = out / "checkpoints" / "last.pt"
    start_epoch, start_batch, step, loss_sum, seen, elapsed = 0, 0, 0, 0.0, 0, 0.0
    history: list[dict[str, Any]] = []
    epoch_state = shuffle_gen.get_state()
    if cfg.resume:
        ckpt = load_checkpoint(ckpt_path)
        if "ranks" not in ckpt or "config" not in ckpt:
            raise ValueError(f"checkpoint {ckpt_path} holds no resume state (older mixkit?)")
        resume.check_resume_config(ckpt["config"], dataclasses.asdict(cfg), RESUME_IGNORES)
        if len(ckpt["ranks"]) != env.world_size:
            raise ValueError(
                f"resume: checkpoint {ckpt_path} was written by {len(ckpt['ranks'])} ranks, "
                f"this run has {env.world_size}"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        mine = ckpt["ranks"][env.rank]
        if rm is not None:
            rm.load_state_dict(mine["recursivemix"])
        resume.restore_rng(mine["rng"], generators)
        start_epoch, start_batch, step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
        loss_sum, seen, elapsed = ckpt["train_loss_sum"], ckpt["train_seen"], ckpt["elapsed_s"]
        epoch_state, history = ckpt["shuffle_state"], list(ckpt["metrics"])
    steps_log = out / "steps.csv"
    if main:  # logs hold exactly the rows up to the checkpoint (none for a fresh run)
        (out / "metrics.csv").unlink(missing_ok=True)
        metrics = MetricsWriter(out / "metrics.csv")
        for row in history:
            metrics.write(row)
        if cfg.resume:
            resume.truncate_csv(steps_log, "step", step)
        else:
            steps_log.unlink(missing_ok=True)
        step_writer = MetricsWriter(steps_log)

    def save_checkpoint(epochs_done: int, batch: int, shuffle_state: torch.Tensor) -> None:
        mine = {"rng": resume.capture_rng(generators)}
        if rm is not None:
            mine["recursivemix"] = rm.state_dict()
        ranks = distributed.all_gather_object(mine, env)  # collective: every rank calls it
        if main:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epochs_done,
                "batch": batch,
                "step": step,
                "shuffle_state": shuffle_state,
                "train_loss_sum": loss_sum,
                "train_seen": seen,
                "elapsed_s": time.time() - start,
                "metrics": history,
                "config": dataclasses.asdict(cfg),
                "ranks": ranks,
                **({} if rm is None else {"recursivemix": rm.state_dict()}),
            }
            atomic_save(state, ckpt_path)

    start = time.time() - elapsed
    result: dict[str, float] = {}
    if history:
        result = {"acc": history[-1]["test_acc"], "loss": history[-1]["test_loss"]}
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        first = start_batch if epoch == start_epoch else 0
        if first == 0:
            epoch_state = shuffle_gen.get_state()
            loss_sum, seen = 0.0, 0
            if rm is not None:
                rm.reset()  # official RecursiveMix: history restarts every epoch (λ=1 first)
        else:  # replay the epoch's permutation, then skip the batches already trained on
            shuffle_gen.set_state(epoch_state)
        batches = distributed.iterate_shard(
            ds.train, local_bs, env, shuffle=True, generator=shuffle_gen, start_batch=first
        )
        bar = tqdm(
            batches,
            total=steps_per_epoch,
            initial=first,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not (cfg.progress and main),
            leave=False,
        )
        for b, (xb, yb) in enumerate(bar, start=first):
            if cfg.crop_flip:
                xb = data.random_crop_flip(xb, 4, crop_gen)
            x = data.to_float(xb.to(device), ds.mean, ds.std)
            y = yb.to(device)
            lr = cosine_lr(cfg.lr, step, total_steps, warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            target = y
            if mixer is not None and rm is None:
                x, target = mixer(x, y)
            loss = loss_fn(x, y, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            step_sum, n = distributed.all_reduce_sum([float(loss.detach()) * len(y), len(y)], env)
            loss_sum += step_sum
            seen += int(n)
            if main:
                step_writer.write(
                    {"step": step, "epoch": epoch + 1, "loss": step_sum / n, "lr": lr}
                )
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                if b + 1 < steps_per_epoch:  # the epoch-end checkpoint follows otherwise
                    save_checkpoint(epoch, b + 1, epoch_state)
        local = evaluate(model, test_batches(), device)
        n_test = len(test_split)
        acc_sum, test_loss_sum, n_all = distributed.all_reduce_sum(
            [local["acc"] * n_test, local["loss"] * n_test, n_test], env
        )
        result = {"acc": acc_sum / n_all, "loss": test_loss_sum / n_all}
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen,
            "test_loss": result["loss"],
            "test_acc": result["acc"],
            "lr": optimizer.param_groups[0]["lr"],
            "time_s": round(time.time() - start, 3),
        }
        history.append(row)
        if main:
            metrics.write(row)
            print(
                f"epoch {epoch + 1}/{cfg.epochs}  train_loss {row['train_loss']:.4f}  "
                f"test_loss {result['loss']:.4f}  test_acc {result['acc']:.4f}",
                flush=True,
            )
        save_checkpoint(epoch + 1, 0, shuffle_gen.get_state())

    summary = {
        "test_acc": result.get("acc"),
        "test_loss": result.get("loss"),
        "epochs": cfg.epochs,
        "aug": cfg.aug,
        "dataset": cfg.dataset,
        "model": cfg.model,
        "seed": cfg.seed,
        "world_size": env.world_size,
        "train_time_s": round(time.time() - start, 2),
    }
    if env.distributed:  # every rank must end with the same bytes (SHA-256 per rank)
        summary["weights_sha256"] = distributed.check_same_across_ranks(model, env)
    if main:
        write_json(summary, out / "summary.json")
        if cfg.grid_samples > 0:
            save_grid = plots.save_mix_grid_for if rm is None else plots.save_recursive_mix_grid
            path = out / "plots" / "mixed_samples.png"
            save_grid(ds, mixer, cfg.grid_samples, path, seed=cfg.seed)
    return summary
