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
    r = _setup(cfg, env)
    if cfg.resume:
        _restore(r)
    _open_logs(r)
    r.start = time.time() - r.elapsed
    for epoch in range(r.start_epoch, cfg.epochs):
        _train_epoch(r, epoch)
        row = _test_epoch(r, epoch)
        _log_epoch(r, row)
        _save_checkpoint(r, epoch + 1, 0, r.shuffle_gen.get_state())
    return _finish(r)


@dataclasses.dataclass
class _Run:
    """One training run: what ``_setup`` builds, then the loop state a checkpoint holds
    (loader position, step, running loss, per-epoch metrics)."""

    cfg: TrainConfig
    env: distributed.DistEnv
    ds: data.Dataset
    model: torch.nn.Module
    mixer: augment.MixTransform | None
    rm: recursivemix.RecursiveMixStep | None
    optimizer: torch.optim.Optimizer
    loss_fn: torch.nn.Module
    shuffle_gen: torch.Generator
    crop_gen: torch.Generator
    generators: dict[str, torch.Generator]
    local_bs: int
    steps_per_epoch: int
    total_steps: int
    warmup: int
    test_split: data.Split
    epoch_state: torch.Tensor  # shuffle generator state at the start of the current epoch
    start_epoch: int = 0
    start_batch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    seen: int = 0
    elapsed: float = 0.0
    start: float = 0.0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    metrics: MetricsWriter | None = None
    step_writer: MetricsWriter | None = None

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"


def _setup(cfg: TrainConfig, env: distributed.DistEnv) -> _Run:
    """Run directory, data, model, mixer, optimizer and the seeded generators."""
    distributed.check_global_batch(cfg.batch_size, env)
    distributed.start_run_dir(Path(cfg.out), cfg, env)
    seed_everything(cfg.seed)  # same model init on every rank
    ds = data.load_dataset(cfg.dataset, cfg.data_root, seed=cfg.seed)
    model = models.build_model(cfg.model, ds.num_classes, ds.in_channels).to(env.device)
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
        rm = recursivemix.RecursiveMixStep(mixer, model.feature_dim, cfg.rm_omega).to(env.device)
    trained = model if rm is None else torch.nn.ModuleList([model, rm])
    optimizer = build_optimizer(trained, cfg.lr, cfg.momentum, cfg.weight_decay)
    loss_fn = distributed.wrap_ddp(
        _TrainLoss(model, rm), env, find_unused_parameters=rm is not None
    )
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)  # one global permutation: same seed
    crop_gen = torch.Generator().manual_seed(distributed.rank_seed(cfg.seed + 2, env.rank))
    local_bs = cfg.batch_size // env.world_size
    n_local = len(distributed.shard_order(len(ds.train), env.rank, env.world_size))
    steps_per_epoch = -(-n_local // local_bs)
    test_split = ds.test
    if env.distributed:  # each rank evaluates every world_size-th test image; sums reduced
        idx = torch.arange(len(ds.test))[env.rank :: env.world_size]
        test_split = data.Split(ds.test.x[idx], ds.test.y[idx])
    return _Run(
        cfg=cfg,
        env=env,
        ds=ds,
        model=model,
        mixer=mixer,
        rm=rm,
        optimizer=optimizer,
        loss_fn=loss_fn,
        shuffle_gen=shuffle_gen,
        crop_gen=crop_gen,
        generators={"crop": crop_gen, **resume.module_generators(mixer, "mixer.")},
        local_bs=local_bs,
        steps_per_epoch=steps_per_epoch,
        total_steps=cfg.epochs * steps_per_epoch,
        warmup=int(cfg.warmup_epochs * steps_per_epoch),
        test_split=test_split,
        epoch_state=shuffle_gen.get_state(),
    )


def _restore(r: _Run) -> None:
    """``--resume``: weights, optimizer, loop state and, per rank, every RNG / generator
    state from the checkpoint (mixkit.resume); the config must match."""
    ckpt = load_checkpoint(r.ckpt_path)
    if "ranks" not in ckpt or "config" not in ckpt:
        raise ValueError(f"checkpoint {r.ckpt_path} holds no resume state (older mixkit?)")
    resume.check_resume_config(ckpt["config"], dataclasses.asdict(r.cfg), RESUME_IGNORES)
    if len(ckpt["ranks"]) != r.env.world_size:
        raise ValueError(
            f"resume: checkpoint {r.ckpt_path} was written by {len(ckpt['ranks'])} ranks, "
            f"this run has {r.env.world_size}"
        )
    r.model.load_state_dict(ckpt["model"])
    r.optimizer.load_state_dict(ckpt["optimizer"])
    mine = ckpt["ranks"][r.env.rank]
    if r.rm is not None:
        r.rm.load_state_dict(mine["recursivemix"])
    resume.restore_rng(mine["rng"], r.generators)
    r.start_epoch, r.start_batch, r.step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
    r.loss_sum, r.seen, r.elapsed = ckpt["train_loss_sum"], ckpt["train_seen"], ckpt["elapsed_s"]
    r.epoch_state, r.history = ckpt["shuffle_state"], list(ckpt["metrics"])


def _open_logs(r: _Run) -> None:
    """metrics.csv and steps.csv (rank 0) hold exactly the rows up to the checkpoint (none
    for a fresh run)."""
    if not r.env.is_main:
        return
    steps_log = r.out / "steps.csv"
    (r.out / "metrics.csv").unlink(missing_ok=True)
    r.metrics = MetricsWriter(r.out / "metrics.csv")
    for row in r.history:
        r.metrics.write(row)
    if r.cfg.resume:
        resume.truncate_csv(steps_log, "step", r.step)
    else:
        steps_log.unlink(missing_ok=True)
    r.step_writer = MetricsWriter(steps_log)


def _train_epoch(r: _Run, epoch: int) -> None:
    """One pass over this rank's shard; a resumed epoch replays its permutation and skips
    the batches already trained on."""
    cfg = r.cfg
    r.model.train()
    first = r.start_batch if epoch == r.start_epoch else 0
    if first == 0:
        r.epoch_state = r.shuffle_gen.get_state()
        r.loss_sum, r.seen = 0.0, 0
        if r.rm is not None:
            r.rm.reset()  # official RecursiveMix: history restarts every epoch (λ=1 first)
    else:
        r.shuffle_gen.set_state(r.epoch_state)
    batches = distributed.iterate_shard(
        r.ds.train, r.local_bs, r.env, shuffle=True, generator=r.shuffle_gen, start_batch=first
    )
    bar = tqdm(
        batches,
        total=r.steps_per_epoch,
        initial=first,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not (cfg.progress and r.env.is_main),
        leave=False,
    )
    for b, (xb, yb) in enumerate(bar, start=first):
        _train_step(r, xb, yb, epoch)
        bar.set_postfix(loss=f"{r.loss_sum / r.seen:.4f}")
        if cfg.checkpoint_every and r.step % cfg.checkpoint_every == 0:
            if b + 1 < r.steps_per_epoch:  # the epoch-end checkpoint follows otherwise
                _save_checkpoint(r, epoch, b + 1, r.epoch_state)


def _train_step(r: _Run, xb: torch.Tensor, yb: torch.Tensor, epoch: int) -> None:
    """[crop+flip] -> float -> mixer -> loss -> SGD step at the cosine LR; logs the step."""
    cfg, device = r.cfg, r.env.device
    if cfg.crop_flip:
        xb = data.random_crop_flip(xb, 4, r.crop_gen)
    x = data.to_float(xb.to(device), r.ds.mean, r.ds.std)
    y = yb.to(device)
    lr = cosine_lr(cfg.lr, r.step, r.total_steps, r.warmup)
    for group in r.optimizer.param_groups:
        group["lr"] = lr
    target = y
    if r.mixer is not None and r.rm is None:
        x, target = r.mixer(x, y)
    loss = r.loss_fn(x, y, target)
    r.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    r.optimizer.step()
    r.step += 1
    step_sum, n = distributed.all_reduce_sum([float(loss.detach()) * len(y), len(y)], r.env)
    r.loss_sum += step_sum
    r.seen += int(n)
    if r.env.is_main:
        r.step_writer.write({"step": r.step, "epoch": epoch + 1, "loss": step_sum / n, "lr": lr})


def _test_epoch(r: _Run, epoch: int) -> dict[str, Any]:
    """Test accuracy and loss (summed over the ranks' test shards) -> the epoch's row."""

    def test_batches():
        for xb, yb in data.iterate_batches(r.test_split, 512, shuffle=False):
            yield data.to_float(xb, r.ds.mean, r.ds.std), yb

    local = evaluate(r.model, test_batches(), r.env.device)
    n_test = len(r.test_split)
    acc_sum, test_loss_sum, n_all = distributed.all_reduce_sum(
        [local["acc"] * n_test, local["loss"] * n_test, n_test], r.env
    )
    row = {
        "epoch": epoch + 1,
        "train_loss": r.loss_sum / r.seen,
        "test_loss": test_loss_sum / n_all,
        "test_acc": acc_sum / n_all,
        "lr": r.optimizer.param_groups[0]["lr"],
        "time_s": round(time.time() - r.start, 3),
    }
    r.history.append(row)
    return row


def _log_epoch(r: _Run, row: dict[str, Any]) -> None:
    if not r.env.is_main:
        return
    r.metrics.write(row)
    print(
        f"epoch {row['epoch']}/{r.cfg.epochs}  train_loss {row['train_loss']:.4f}  "
        f"test_loss {row['test_loss']:.4f}  test_acc {row['test_acc']:.4f}",
        flush=True,
    )


def _save_checkpoint(r: _Run, epochs_done: int, batch: int, shuffle_state: torch.Tensor) -> None:
    """Collective (every rank gathers its RNG states); rank 0 writes ``last.pt`` atomically."""
    mine = {"rng": resume.capture_rng(r.generators)}
    if r.rm is not None:
        mine["recursivemix"] = r.rm.state_dict()
    ranks = distributed.all_gather_object(mine, r.env)
    if not r.env.is_main:
        return
    state = {
        "model": r.model.state_dict(),
        "optimizer": r.optimizer.state_dict(),
        "epoch": epochs_done,
        "batch": batch,
        "step": r.step,
        "shuffle_state": shuffle_state,
        "train_loss_sum": r.loss_sum,
        "train_seen": r.seen,
        "elapsed_s": time.time() - r.start,
        "metrics": r.history,
        "config": dataclasses.asdict(r.cfg),
        "ranks": ranks,
        **({} if r.rm is None else {"recursivemix": r.rm.state_dict()}),
    }
    atomic_save(state, r.ckpt_path)


def _finish(r: _Run) -> dict[str, Any]:
    """summary.json (rank 0), the per-rank weight check under torchrun and the grid of
    mixed samples."""
    cfg, env = r.cfg, r.env
    last = r.history[-1] if r.history else {}
    summary = {
        "test_acc": last.get("test_acc"),
        "test_loss": last.get("test_loss"),
        "epochs": cfg.epochs,
        "aug": cfg.aug,
        "dataset": cfg.dataset,
        "model": cfg.model,
        "seed": cfg.seed,
    }
    distributed.finish_summary(summary, env, r.start, r.model)
    if env.is_main:
        write_json(summary, r.out / "summary.json")
        if cfg.grid_samples > 0:
            save_grid = plots.save_mix_grid_for if r.rm is None else plots.save_recursive_mix_grid
            path = r.out / "plots" / "mixed_samples.png"
            save_grid(r.ds, r.mixer, cfg.grid_samples, path, seed=cfg.seed)
    return summary
