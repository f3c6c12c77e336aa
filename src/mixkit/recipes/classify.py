"""Classification with a mixing augmentation (``mixkit train``), top to bottom:

data (embedded uint8 in memory, or on-disk CIFAR / ImageFolder through DataLoader workers)
-> uint8 batch on the device -> [crop+flip | random-resized crop+flip] -> normalise -> mixer
-> model (any zoo or plug-in model, optional ``--weights``) -> soft-target CE under
``--amp`` -> SGD with a cosine or step LR; per-epoch test evaluation, metrics.csv,
steps.csv every ``log_every`` steps (the only per-step host reads), summary.json, a grid of
mixed samples and an atomic checkpoint (``--checkpoint-every N`` also mid-epoch;
``--resume`` continues from it to the same bytes). Under ``torchrun`` it trains
data-parallel. Without ``--out`` each run gets a new folder ``runs/train/expN``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mixkit import accel, augment, distributed, feeds, plots, resume, runs
from mixkit.config import TrainConfig
from mixkit.methods import recursivemix
from mixkit.recipes.classify_model import TrainLoss, build_mixer, build_model
from mixkit.train import (
    MetricsWriter,
    build_optimizer,
    evaluate,
    feature_width,
    load_checkpoint,
    seed_everything,
    write_json,
)

EVAL_BATCH = 512


# Config keys that may change between a run and its resumption (the rest must match).
RESUME_IGNORES = frozenset(
    {"resume", "checkpoint_every", "progress", "out", "device", "grid_samples", "overwrite"}
    | {"workers", "log_every", "recipe"}
)


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Train, evaluate and write the run folder (``cfg.out``, or a new ``runs/train/expN``;
    an existing run folder needs ``resume`` or ``overwrite``). Returns the summary dict
    (``out``: the folder).

    Under ``torchrun`` (``WORLD_SIZE > 1``) this is data-parallel: ``cfg.batch_size`` is the
    global batch, split evenly over the ranks; see :mod:`mixkit.distributed`."""
    return distributed.launch(_train, cfg)


def _train(cfg: TrainConfig, env: distributed.DistEnv) -> dict[str, Any]:
    distributed.check_global_batch(cfg.batch_size, env)
    out = runs.resolve_run_dir(
        cfg.out, "runs/train", resume=cfg.resume, overwrite=cfg.overwrite, env=env
    )
    r = _setup(dataclasses.replace(cfg, out=str(out)), env)
    if cfg.resume:
        _restore(r)
    _open_logs(r)
    r.start = time.time() - r.elapsed
    try:
        for epoch in range(r.start_epoch, cfg.epochs):
            _train_epoch(r, epoch)
            row = _test_epoch(r, epoch)
            _log_epoch(r, row)
            _save_checkpoint(r, epoch + 1, 0, r.shuffle_gen.get_state())
        return _finish(r)
    finally:
        r.feed.close()


@dataclasses.dataclass
class _Run:
    """One training run: what ``_setup`` builds, then the loop state a checkpoint holds
    (loader position, step, on-device loss sums, per-epoch metrics)."""

    cfg: TrainConfig
    env: distributed.DistEnv
    feed: feeds.Feed
    net: torch.nn.Module  # the model as built (its state_dict is the checkpoint's "model")
    model: torch.nn.Module  # net, or net adapted to features/head for RecursiveMix
    mixer: augment.MixTransform | None
    rm: recursivemix.RecursiveMixStep | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss_fn: torch.nn.Module
    shuffle_gen: torch.Generator
    crop_gen: torch.Generator
    generators: dict[str, torch.Generator]
    local_bs: int
    steps_per_epoch: int
    log_every: int
    epoch_sums: accel.DeviceSums  # loss x batch size of the current epoch (this rank)
    window: accel.DeviceSums  # the same since the last steps.csv row
    epoch_state: torch.Tensor  # shuffle generator state at the start of the current epoch
    start_epoch: int = 0
    start_batch: int = 0
    step: int = 0
    lr: float = 0.0
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

    def lr_of(self, step: int) -> float:
        return self.cfg.lr_of(step, self.steps_per_epoch)


def _setup(cfg: TrainConfig, env: distributed.DistEnv) -> _Run:
    """Run directory, data, model, mixer, optimizer and the seeded generators."""
    feed = feeds.open_feed(
        cfg.dataset, cfg.data_root, seed=cfg.seed, image_size=cfg.image_size,
        workers=cfg.workers, device=env.device,
    ).subset(cfg.train_subset, cfg.seed)  # fmt: skip
    distributed.start_run_dir(Path(cfg.out), cfg, env)
    net, model = build_model(cfg, feed, env)
    if env.rank:  # per-rank streams (dropout, mixer, crops); rank 0 keeps the plain-run seeds
        seed_everything(distributed.rank_seed(cfg.seed, env.rank))
    mixer = build_mixer(cfg, feed.num_classes)
    if env.rank and mixer is not None and mixer.generator is not None:
        mixer.generator.manual_seed(distributed.rank_seed(cfg.seed + 1, env.rank))
    # RecursiveMix: history + ROI consistency head, one step call (mixkit.methods.recursivemix)
    rm = None
    if isinstance(mixer, recursivemix.RecursiveMix):
        width = feature_width(model, feed.preview(1).train.x[:1], feed.normalize, env.device)
        rm = recursivemix.RecursiveMixStep(mixer, width, cfg.rm_omega).to(env.device)
    if cfg.compile:
        accel.compile_model(model, split=rm is not None)
    trained = model if rm is None else torch.nn.ModuleList([model, rm])
    optimizer = build_optimizer(
        trained, cfg.lr, cfg.momentum, cfg.weight_decay,
        nesterov=cfg.nesterov, weight_decay_all=cfg.weight_decay_all,
    )  # fmt: skip
    loss_fn = distributed.wrap_ddp(TrainLoss(model, rm), env, find_unused_parameters=rm is not None)
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)  # one global permutation: same seed
    crop_gen = torch.Generator().manual_seed(distributed.rank_seed(cfg.seed + 2, env.rank))
    local_bs = cfg.batch_size // env.world_size
    return _Run(
        cfg=cfg, env=env, feed=feed, net=net, model=model, mixer=mixer, rm=rm,
        optimizer=optimizer, scaler=accel.grad_scaler(env.device, cfg.amp), loss_fn=loss_fn,
        shuffle_gen=shuffle_gen, crop_gen=crop_gen,
        generators={"crop": crop_gen, **resume.module_generators(mixer, "mixer.")},
        local_bs=local_bs, steps_per_epoch=feed.steps_per_epoch(local_bs, env),
        log_every=accel.log_interval(cfg.log_every, env.device),
        epoch_sums=accel.DeviceSums(["loss"], env.device),
        window=accel.DeviceSums(["loss"], env.device),
        epoch_state=shuffle_gen.get_state(),
    )  # fmt: skip


def _restore(r: _Run) -> None:
    """``--resume``: weights, optimizer, loop state and, per rank, every RNG / generator
    state and loss sum from the checkpoint (mixkit.resume); the config must match."""
    ckpt = load_checkpoint(r.ckpt_path)
    resume.restore_training(
        ckpt, r.ckpt_path, dataclasses.asdict(r.cfg), RESUME_IGNORES, r.env.world_size,
        (r.net, r.optimizer, r.scaler),
    )  # fmt: skip
    mine = ckpt["ranks"][r.env.rank]
    if r.rm is not None:
        r.rm.load_state_dict(mine["recursivemix"])
    resume.restore_rng(mine["rng"], r.generators)
    r.epoch_sums.load_state_dict(mine["sums"])
    r.window.load_state_dict(mine["window"])
    r.start_epoch, r.start_batch, r.step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
    r.elapsed, r.epoch_state = ckpt["elapsed_s"], ckpt["shuffle_state"]
    r.history = list(ckpt["metrics"])


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
        r.epoch_sums.reset()
        if r.rm is not None:
            r.rm.reset()  # official RecursiveMix: history restarts every epoch (λ=1 first)
    else:
        r.shuffle_gen.set_state(r.epoch_state)
    batches = r.feed.epoch(epoch, r.local_bs, r.env, r.env.device, r.shuffle_gen, first)
    bar = tqdm(
        batches,
        total=r.steps_per_epoch,
        initial=first,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not (cfg.progress and r.env.is_main),
        leave=False,
    )
    for b, batch in enumerate(bar, start=first):
        _train_step(r, batch)
        if r.step % r.log_every == 0 or b + 1 == r.steps_per_epoch:
            _log_steps(r, epoch, bar)
        if cfg.checkpoint_every and r.step % cfg.checkpoint_every == 0:
            if b + 1 < r.steps_per_epoch:  # the epoch-end checkpoint follows otherwise
                _save_checkpoint(r, epoch, b + 1, r.epoch_state)


def _train_step(r: _Run, batch: feeds.Batch) -> None:
    """[crop+flip] -> normalise -> mixer -> loss (autocast) -> SGD step; the loss is only
    added to the on-device sums (no host read)."""
    cfg, device = r.cfg, r.env.device
    view = ("crop_flip" if cfg.flip else "crop") if cfg.crop_flip else "none"
    xb = r.feed.view(batch.x, view, r.crop_gen)
    x, y = accel.to_memory_format(r.feed.normalize(xb), cfg.channels_last), batch.y
    r.lr = r.lr_of(r.step)
    for group in r.optimizer.param_groups:
        group["lr"] = r.lr
    target = y
    if r.mixer is not None and r.rm is None:
        x, target = r.mixer(x, y)
        x = accel.to_memory_format(x, cfg.channels_last)
    with accel.autocast(device, cfg.amp):
        loss = r.loss_fn(x, y, target)
    r.optimizer.zero_grad(set_to_none=True)
    r.scaler.scale(loss).backward()
    r.scaler.step(r.optimizer)
    r.scaler.update()
    r.step += 1
    r.epoch_sums.add([loss], len(y))
    r.window.add([loss], len(y))


def _log_steps(r: _Run, epoch: int, bar: tqdm) -> None:
    """One steps.csv row: the mean loss since the last row (a host read, summed over the
    ranks), the LR of the last step."""
    sums, n = r.window.read(r.env)
    r.window.reset()
    bar.set_postfix(loss=f"{sums['loss'] / n:.4f}")
    if r.env.is_main:
        row = {"step": r.step, "epoch": epoch + 1, "loss": sums["loss"] / n, "lr": r.lr}
        r.step_writer.write(row)


def _test_epoch(r: _Run, epoch: int) -> dict[str, Any]:
    """Test accuracy and loss (summed over the ranks' test shards) -> the epoch's row."""
    cfg, env = r.cfg, r.env
    batches = r.feed.test_batches(EVAL_BATCH, env, env.device)
    local = evaluate(r.model, batches, env.device, amp=cfg.amp, channels_last=cfg.channels_last)
    n_test = r.feed.test_size(env)
    acc_sum, test_loss_sum, n_all = distributed.all_reduce_sum(
        [local["acc"] * n_test, local["loss"] * n_test, n_test], env
    )
    sums, seen = r.epoch_sums.read(env)
    row = {
        "epoch": epoch + 1,
        "train_loss": sums["loss"] / seen,
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
    """Collective (every rank gathers its RNG states and loss sums); rank 0 writes
    ``last.pt`` atomically."""
    mine = {
        "rng": resume.capture_rng(r.generators),
        "sums": r.epoch_sums.state_dict(),
        "window": r.window.state_dict(),
    }
    extra = {} if r.rm is None else {"recursivemix": r.rm.state_dict()}
    mine.update(extra)
    resume.save_training(
        r.ckpt_path, r.env, mine, (r.net, r.optimizer, r.scaler),
        (epochs_done, batch, r.step, shuffle_state),
        (dataclasses.asdict(r.cfg), r.history, time.time() - r.start), extra,
    )  # fmt: skip


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
        "out": cfg.out,
    }
    distributed.finish_summary(summary, env, r.start, r.net)
    if env.is_main:
        write_json(summary, r.out / "summary.json")
        if cfg.grid_samples > 0:
            save_grid = plots.save_mix_grid_for if r.rm is None else plots.save_recursive_mix_grid
            path = r.out / "plots" / "mixed_samples.png"
            preview = r.feed.preview(3 * cfg.grid_samples)  # RecursiveMix shows 3 steps
            save_grid(preview, r.mixer, cfg.grid_samples, path, seed=cfg.seed)
    return summary
