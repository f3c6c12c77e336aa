"""KD trainer with a DA scheme for the distillation input x′ (``mixkit distill``), top to bottom:

teacher (a ``mixkit train`` run: its model, dataset and split seed; or any checkpoint /
state_dict file with ``teacher_model`` + ``dataset``) -> the teacher's train split
[stratified ``train_subset``] -> per batch, on the device: x = base_aug(x_raw), then
:class:`~mixkit.methods.kd.step.DistillStep`: x′ = scheme(x), teacher (eval, frozen) on x and
x′, student on x and x′ (two forward passes, as the official code), ``kd_loss`` -> SGD with a
cosine or step LR (``amp``, ``channels_last``, ``compile`` as ``mixkit train``) -> per
epoch: test CE/accuracy, metrics.csv, checkpoints/last.pt; summary.json at the end (with the
teacher's SHA-256, which ``mixkit kd-audit --students`` checks).

Under ``torchrun`` it trains data-parallel (:mod:`mixkit.distributed`, the pattern of
``mixkit train``): ``batch_size`` is the global batch split over the ranks, every rank loads
the same frozen teacher, the student is wrapped in DistributedDataParallel with synchronised
BatchNorm, and only rank 0 writes the run folder.

Source: Good-DA-in-KD ``helper/loops.py::train_distill`` and ``distiller_zoo/KD.py``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from mixkit import accel, distributed, feeds, models, resume, runs
from mixkit.methods.kd.batches import predict_logits
from mixkit.methods.kd.checkpoints import load_teacher
from mixkit.methods.kd.config import KDConfig
from mixkit.methods.kd.step import DistillStep
from mixkit.train import (
    MetricsWriter,
    build_optimizer,
    evaluate,
    load_checkpoint,
    seed_everything,
    write_json,
)

LOSS_KEYS = ("loss", "ce", "kl", "kl_aug")
EVAL_BATCH = 512


class _StepModule(nn.Module):
    """The student and one :class:`DistillStep` in one forward, so DistributedDataParallel
    sees both student passes of a step."""

    def __init__(self, student: nn.Module, step: DistillStep) -> None:
        super().__init__()
        self.student, self.step = student, step

    def forward(
        self, x: Tensor, y: Tensor, teacher_logits: Tensor | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.step(self.student, x, y, teacher_logits)
        return out.loss, out.parts


# Config keys that may change between a run and its resumption (the rest must match).
RESUME_IGNORES = frozenset(
    {"resume", "checkpoint_every", "progress", "out", "device", "overwrite", "workers"}
    | {"log_every", "recipe"}
)


def run(cfg: KDConfig) -> dict[str, Any]:
    """Distil a student and write the run folder (``cfg.out``, or a new
    ``runs/distill/expN``; an existing run folder needs ``resume`` or ``overwrite``). Returns
    the summary dict.

    Under ``torchrun`` (``WORLD_SIZE > 1``) this is data-parallel: ``cfg.batch_size`` is the
    global batch, split evenly over the ranks; see :mod:`mixkit.distributed`."""
    return distributed.launch(_run, cfg)


def _run(cfg: KDConfig, env: distributed.DistEnv) -> dict[str, Any]:
    job = _Distillation(cfg, env)
    try:
        teacher_test = job.test(job.teacher)
        job.restore_or_start()
        result = job.train()
        return job.finish(result, teacher_test)
    finally:
        job.feed.close()


class _Distillation:
    """One rank's state of a ``mixkit distill`` run: teacher, student, optimiser, generators,
    loader position and epoch rows; the methods are the stages of :func:`run`."""

    def __init__(self, cfg: KDConfig, env: distributed.DistEnv) -> None:
        distributed.check_global_batch(cfg.batch_size, env)
        self.env, self.main = env, env.is_main
        self.device = env.device
        spec = cfg.teacher_spec()  # fails before the run folder is touched
        out = runs.resolve_run_dir(
            cfg.out, "runs/distill", resume=cfg.resume, overwrite=cfg.overwrite, env=env
        )
        self.cfg = cfg = dataclasses.replace(cfg, out=str(out))
        self.out, self.spec = out, spec
        feed = feeds.open_feed(
            spec.dataset, spec.data_root, seed=spec.split_seed, image_size=cfg.image_size,
            workers=cfg.workers, device=self.device,
        )  # fmt: skip
        self.feed = feed.subset(cfg.train_subset, spec.split_seed)
        # Every rank loads the same checkpoint: identical frozen teachers (checked at the end).
        self.teacher = load_teacher(spec, feed.num_classes, feed.in_channels, self.device)
        distributed.start_run_dir(self.out, cfg, env)
        self.student = self._build_student()
        self._build_step()
        self.optimizer = build_optimizer(
            self.student, cfg.lr, cfg.momentum, cfg.weight_decay,
            nesterov=cfg.nesterov, weight_decay_all=cfg.weight_decay_all,
        )  # fmt: skip
        self.scaler = accel.grad_scaler(self.device, cfg.amp)
        self.step_module = distributed.wrap_ddp(_StepModule(self.student, self.distill), env)
        self.local_bs = cfg.batch_size // env.world_size
        self.steps_per_epoch = self.feed.steps_per_epoch(self.local_bs, env)
        self.log_every = accel.log_interval(cfg.log_every, self.device)
        self.sums = accel.DeviceSums(LOSS_KEYS, self.device)
        self.ckpt_path = self.out / "checkpoints" / "last.pt"
        # Loader position (epoch, batch, shuffle state at the epoch start), epoch rows and
        # the time spent so far.
        self.start_epoch = self.start_batch = self.step = 0
        self.elapsed, self.history, self.start = 0.0, [], 0.0
        self.epoch_state = self.shuffle_gen.get_state()
        self.metrics: MetricsWriter | None = None

    # ------------------------------------------------------------------ setup
    def _build_student(self) -> nn.Module:
        cfg, env, feed = self.cfg, self.env, self.feed
        seed_everything(cfg.seed)  # same student init on every rank
        student = models.build_model(
            cfg.student, feed.num_classes, feed.in_channels, **(cfg.student_args or {})
        )
        student = student.to(self.device, memory_format=accel.memory_format(cfg.channels_last))
        # global-batch BN statistics across ranks (no-op on one rank)
        student = distributed.sync_batchnorm(student, env)
        if env.rank:  # per-rank global RNGs; rank 0 keeps the plain-run seeds
            seed_everything(distributed.rank_seed(cfg.seed, env.rank))
        if cfg.compile:
            accel.compile_model(student)
            accel.compile_model(self.teacher)
        if cfg.channels_last:
            self.teacher.to(memory_format=torch.channels_last)
        return student

    def _build_step(self) -> None:
        """Generators and the :class:`DistillStep`. Shuffle: one global permutation (the same
        seed on every rank); x's loader transform and the scheme draws: independent per-rank
        streams (rank 0 = the plain run)."""
        cfg, env = self.cfg, self.env
        self.shuffle_gen = torch.Generator().manual_seed(cfg.seed)
        base_seed, scheme_seed = (distributed.rank_seed(cfg.seed + k, env.rank) for k in (1, 2))
        self.base_gen = torch.Generator().manual_seed(base_seed)
        self.scheme_gen = torch.Generator().manual_seed(scheme_seed)
        # Per rank: every RNG/generator state (the checkpoint's ``ranks`` list, rank 0 writes).
        self.generators = {"base": self.base_gen, "scheme": self.scheme_gen}
        self.distill = DistillStep(
            self.teacher, cfg.da, mean=self.feed.mean, std=self.feed.std,
            temperature=cfg.temperature, ce_weight=cfg.ce_weight, kd_weight=cfg.kd_weight,
            kl_weight=cfg.kl_weight, aug_kl_weight=cfg.aug_kl_weight,
            joint_forward=cfg.joint_forward, generator=self.scheme_gen,
            channels_last=cfg.channels_last, **cfg.scheme_options(),
        )  # fmt: skip
        self.scheme = self.distill.scheme
        # Without a loader transform x is fixed, so the frozen teacher's logits on x are cached.
        self.cached = None
        if cfg.base_aug == "none":
            self.cached = predict_logits(self.teacher, self.feed, self.device, amp=cfg.amp)

    # ------------------------------------------------------------------ evaluation
    def test(self, model: nn.Module) -> dict[str, float]:
        """Test CE / accuracy of ``model`` (over all ranks' shares when data-parallel)."""
        cfg, env = self.cfg, self.env
        batches = self.feed.test_batches(EVAL_BATCH, env, self.device)
        local = evaluate(model, batches, self.device, amp=cfg.amp, channels_last=cfg.channels_last)
        if not env.distributed:
            return local
        n = self.feed.test_size(env)
        acc, loss, n_all = distributed.all_reduce_sum([local["acc"] * n, local["loss"] * n, n], env)
        return {"acc": acc / n_all, "loss": loss / n_all}

    # ------------------------------------------------------------------ checkpoints
    def restore_or_start(self) -> None:
        """With ``cfg.resume`` restore the position from the checkpoint (:mod:`mixkit.resume`:
        loader position, loss sums, epoch rows, every RNG/generator state; same config
        required); then (rank 0) rewrite metrics.csv with exactly the rows so far."""
        if self.cfg.resume:
            self._restore(load_checkpoint(self.ckpt_path))
        if self.main:
            (self.out / "metrics.csv").unlink(missing_ok=True)
            self.metrics = MetricsWriter(self.out / "metrics.csv")
            for row in self.history:
                self.metrics.write(row)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        resume.restore_training(
            ckpt, self.ckpt_path, dataclasses.asdict(self.cfg), RESUME_IGNORES,
            self.env.world_size, (self.student, self.optimizer, self.scaler),
        )  # fmt: skip
        ranks = ckpt["ranks"]
        mine = ranks[self.env.rank]
        resume.restore_rng(mine["rng"], self.generators)
        self.sums.load_state_dict(mine["sums"])
        self.start_epoch, self.start_batch, self.step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
        self.epoch_state = ckpt["shuffle_state"]
        self.history, self.elapsed = list(ckpt["metrics"]), ckpt["elapsed_s"]

    def save(self, epochs_done: int, batch: int, shuffle_state: Tensor) -> None:
        """Write checkpoints/last.pt (collective: every rank gathers its RNG states and sums)."""
        mine = {"rng": resume.capture_rng(self.generators), "sums": self.sums.state_dict()}
        resume.save_training(
            self.ckpt_path, self.env, mine, (self.student, self.optimizer, self.scaler),
            (epochs_done, batch, self.step, shuffle_state),
            (dataclasses.asdict(self.cfg), self.history, time.time() - self.start),
        )  # fmt: skip

    # ------------------------------------------------------------------ training
    def train(self) -> dict[str, float]:
        """Train the remaining epochs; returns the last test result (``acc``, ``loss``)."""
        self.start = time.time() - self.elapsed
        result: dict[str, float] = {}
        if self.history:
            result = {"acc": self.history[-1]["test_acc"], "loss": self.history[-1]["test_loss"]}
        for epoch in range(self.start_epoch, self.cfg.epochs):
            result = self.train_epoch(epoch)
        return result

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch (or the rest of a resumed one): steps, mid-epoch checkpoints, test,
        metrics row, epoch-end checkpoint. Returns the test result (NaN if not evaluated).
        A resumed epoch replays its permutation and keeps its loss sums."""
        cfg = self.cfg
        self.student.train()
        first = self.start_batch if epoch == self.start_epoch else 0
        if first:
            self.shuffle_gen.set_state(self.epoch_state)
        else:
            self.epoch_state = self.shuffle_gen.get_state()
            self.sums.reset()
        batches = self.feed.epoch(
            epoch, self.local_bs, self.env, self.device, self.shuffle_gen, first
        )
        bar = tqdm(
            batches, initial=first, total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and self.main),
            leave=False,
        )  # fmt: skip
        for b, batch in enumerate(bar, start=first):
            self.train_step(batch)
            if not bar.disable and self.step % self.log_every == 0:  # a local host read
                sums, seen = self.sums.read()
                bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                if b + 1 < self.steps_per_epoch:  # the epoch-end checkpoint follows otherwise
                    self.save(epoch, b + 1, self.epoch_state)
        result = self._end_epoch(epoch)
        self.save(epoch + 1, 0, self.shuffle_gen.get_state())
        return result

    def lr_of(self, step: int) -> float:
        return self.cfg.lr_of(step, self.steps_per_epoch)

    def train_step(self, batch: feeds.Batch) -> dict[str, Tensor]:
        """One optimiser step on ``batch``; the loss parts (added to the on-device sums)."""
        cfg = self.cfg
        xb = self.feed.view(batch.x, cfg.base_aug, self.base_gen, cfg.crop_pad)
        cached = None if self.cached is None else self.cached.index_select(0, batch.idx)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_of(self.step)
        with accel.autocast(self.device, cfg.amp):
            loss, parts = self.step_module(xb, batch.y, cached)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        self.sums.add([parts[k] for k in LOSS_KEYS], len(batch.y))
        return parts

    def _end_epoch(self, epoch: int) -> dict[str, float]:
        """Test (every ``eval_every`` epochs and at the last), append and write the row."""
        cfg = self.cfg
        if epoch + 1 == cfg.epochs or (epoch + 1) % cfg.eval_every == 0:
            result = self.test(self.student)
        else:
            result = {"loss": float("nan"), "acc": float("nan")}
        sums, seen = self.sums.read(self.env)
        row = {
            "epoch": epoch + 1,
            **{f"train_{k}": v / seen for k, v in sums.items()},
            "test_loss": result["loss"],
            "test_acc": result["acc"],
            "lr": self.optimizer.param_groups[0]["lr"],
            "time_s": round(time.time() - self.start, 3),
        }
        self.history.append(row)
        if self.metrics is not None:
            self.metrics.write(row)
        if cfg.progress and self.main:
            print(
                f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.4f}  "
                f"test_loss {result['loss']:.4f}  test_acc {result['acc']:.4f}",
                flush=True,
            )
        return result

    # ------------------------------------------------------------------ summary
    def finish(self, result: dict[str, float], teacher_test: dict[str, float]) -> dict[str, Any]:
        """summary.json (rank 0) and, data-parallel, the same-bytes check of every rank."""
        cfg, env, spec = self.cfg, self.env, self.spec
        summary = {
            "test_acc": result.get("acc"),
            "test_loss": result.get("loss"),
            "teacher_test_acc": teacher_test["acc"],
            "teacher_test_loss": teacher_test["loss"],
            "da": self.scheme.name,
            "student": cfg.student,
            "teacher": str(cfg.teacher),
            "teacher_model": spec.model,
            "teacher_digest": distributed.state_digest(self.teacher),  # kd-audit checks it
            "dataset": spec.dataset,
            "train_size": len(self.feed),
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            "out": cfg.out,
        }
        distributed.finish_summary(summary, env, self.start, self.student, self.teacher)
        if self.main:
            write_json(summary, self.out / "summary.json")
        return summary
