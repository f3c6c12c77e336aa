"""KD trainer with a DA scheme for the distillation input x′ (``mixkit distill``), top to bottom:

teacher checkpoint (+ its run's config.yaml: model, dataset, split seed) -> the teacher's
train split [first ``train_subset``] -> per batch: x = base_aug(x_raw), x′ = scheme(x)
-> teacher (eval, frozen) on x and x′ -> student on x and x′ (two forward passes, as the
official code) -> ``kd_loss`` -> SGD + cosine LR -> per epoch: test CE/accuracy,
metrics.csv, checkpoints/last.pt; summary.json at the end.

Under ``torchrun`` it trains data-parallel (:mod:`mixkit.distributed`, the pattern of
``mixkit train``): ``batch_size`` is the global batch split over the ranks, every rank loads
the same frozen teacher, the student is wrapped in DistributedDataParallel with synchronised
BatchNorm, and only rank 0 writes the run folder.

Source: Good-DA-in-KD ``helper/loops.py::train_distill`` and ``distiller_zoo/KD.py``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from mixkit import data, distributed, models, resume
from mixkit.methods.kd.batches import base_augment, index_batches, predict_logits, subset
from mixkit.methods.kd.checkpoints import load_teacher
from mixkit.methods.kd.config import KDConfig
from mixkit.methods.kd.loss import kd_loss
from mixkit.methods.kd.schemes import Identity, SchemeContext, build_scheme, teacher_logits_of_last
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

LOSS_KEYS = ("loss", "ce", "kl", "kl_aug")


class _StudentPass(nn.Module):
    """The student on x and x′ in one call (two passes as the official code, or one over
    ``cat(x, x′)`` with ``joint``), so DistributedDataParallel sees both uses of a step."""

    def __init__(self, student: nn.Module, joint: bool) -> None:
        super().__init__()
        self.student, self.joint = student, joint

    def forward(self, x: Tensor, x_aug: Tensor) -> tuple[Tensor, Tensor]:
        if self.joint:
            s, s_aug = self.student(torch.cat([x, x_aug])).split([len(x), len(x_aug)])
            return s, s_aug
        return self.student(x), self.student(x_aug)


# Config keys that may change between a run and its resumption (the rest must match).
RESUME_IGNORES = frozenset({"resume", "checkpoint_every", "progress", "out", "device"})


def run(cfg: KDConfig) -> dict[str, Any]:
    """Distil a student and write the run folder ``cfg.out``. Returns the summary dict.

    Under ``torchrun`` (``WORLD_SIZE > 1``) this is data-parallel: ``cfg.batch_size`` is the
    global batch, split evenly over the ranks; see :mod:`mixkit.distributed`."""
    return distributed.launch(_run, cfg)


def _run(cfg: KDConfig, env: distributed.DistEnv) -> dict[str, Any]:
    job = _Distillation(cfg, env)
    teacher_test = job.test(job.teacher)
    job.restore_or_start()
    result = job.train()
    return job.finish(result, teacher_test)


class _Distillation:
    """One rank's state of a ``mixkit distill`` run: teacher, student, optimiser, generators,
    loader position and epoch rows; the methods are the stages of :func:`run`."""

    def __init__(self, cfg: KDConfig, env: distributed.DistEnv) -> None:
        self.cfg, self.env = cfg, env
        self.out, self.main = Path(cfg.out), env.is_main
        distributed.check_global_batch(cfg.batch_size, env)
        self.device = env.device if env.distributed else torch.device(cfg.device)
        # Every rank loads the same checkpoint: identical frozen teachers (checked at the end).
        self.teacher, self.ds, self.tcfg = load_teacher(cfg.teacher, self.device)
        distributed.start_run_dir(self.out, cfg, env)
        self.student = self._build_student()
        self.scheme = build_scheme(cfg.da, **cfg.scheme_options())
        ds = self.ds
        self.ctx = SchemeContext(ds.mean, ds.std, self.teacher, self.student, cfg.temperature)
        self.train_split = subset(ds.train, cfg.train_subset)
        # Generators: shuffle (one global permutation: same seed on every rank), x's loader
        # transform and the scheme draws (independent per-rank streams; rank 0 = plain run).
        self.shuffle_gen = torch.Generator().manual_seed(cfg.seed)
        base_seed, scheme_seed = (distributed.rank_seed(cfg.seed + k, env.rank) for k in (1, 2))
        self.base_gen = torch.Generator().manual_seed(base_seed)
        self.scheme_gen = torch.Generator().manual_seed(scheme_seed)
        # Per rank: every RNG/generator state (the checkpoint's ``ranks`` list, rank 0 writes).
        self.generators = {"base": self.base_gen, "scheme": self.scheme_gen}
        # Without a loader transform x is fixed, so the frozen teacher's logits on x are cached.
        self.cached = None
        if cfg.base_aug == "none":
            self.cached = predict_logits(self.teacher, self.train_split.x, self.ctx, self.device)
        self.optimizer = build_optimizer(self.student, cfg.lr, cfg.momentum, cfg.weight_decay)
        self.student_pass = distributed.wrap_ddp(_StudentPass(self.student, cfg.joint_forward), env)
        self.local_bs = cfg.batch_size // env.world_size
        n_local = len(distributed.shard_order(len(self.train_split), env.rank, env.world_size))
        self.steps_per_epoch = -(-n_local // self.local_bs)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.warmup = int(cfg.warmup_epochs * self.steps_per_epoch)
        self.test_split = self._local_test_split()
        self.ckpt_path = self.out / "checkpoints" / "last.pt"
        # Loader position (epoch, batch, shuffle state at the epoch start), running sums of
        # a resumed epoch, epoch rows and the time spent so far.
        self.start_epoch = self.start_batch = self.step = 0
        self.elapsed, self.history = 0.0, []
        self.partial: tuple[dict[str, float], int] | None = None
        self.epoch_state = self.shuffle_gen.get_state()
        self.metrics: MetricsWriter | None = None
        self.start = 0.0

    # ------------------------------------------------------------------ setup
    def _build_student(self) -> nn.Module:
        cfg, env = self.cfg, self.env
        seed_everything(cfg.seed)  # same student init on every rank
        student = models.build_model(cfg.student, self.ds.num_classes, self.ds.in_channels)
        # global-batch BN statistics across ranks (no-op on one rank)
        student = distributed.sync_batchnorm(student.to(self.device), env)
        if env.rank:  # per-rank global RNGs; rank 0 keeps the plain-run seeds
            seed_everything(distributed.rank_seed(cfg.seed, env.rank))
        return student

    def _local_test_split(self) -> data.Split:
        """The test split, or (data-parallel) every world_size-th test image of this rank;
        :meth:`test` reduces the sums."""
        test = self.ds.test
        if not self.env.distributed:
            return test
        idx = torch.arange(len(test))[self.env.rank :: self.env.world_size]
        return data.Split(test.x[idx], test.y[idx])

    # ------------------------------------------------------------------ evaluation
    def _test_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        for xb, yb in data.iterate_batches(self.test_split, 512):
            yield self.ctx.normalize(xb), yb

    def test(self, model: nn.Module) -> dict[str, float]:
        """Test CE / accuracy of ``model`` (over all ranks' shares when data-parallel)."""
        local = evaluate(model, self._test_batches(), self.device)
        if not self.env.distributed:
            return local
        n = len(self.test_split)
        acc, loss, n_all = distributed.all_reduce_sum(
            [local["acc"] * n, local["loss"] * n, n], self.env
        )
        return {"acc": acc / n_all, "loss": loss / n_all}

    # ------------------------------------------------------------------ checkpoints
    def restore_or_start(self) -> None:
        """With ``cfg.resume`` restore the position from the checkpoint (:mod:`mixkit.resume`:
        loader position, running sums, epoch rows, every RNG/generator state; same config
        required); then (rank 0) rewrite metrics.csv with exactly the rows so far."""
        if self.cfg.resume:
            self._restore(load_checkpoint(self.ckpt_path))
        if self.main:
            (self.out / "metrics.csv").unlink(missing_ok=True)
            self.metrics = MetricsWriter(self.out / "metrics.csv")
            for row in self.history:
                self.metrics.write(row)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        if "rng" not in ckpt or "config" not in ckpt:
            raise ValueError(f"checkpoint {self.ckpt_path} holds no resume state (older mixkit?)")
        resume.check_resume_config(ckpt["config"], dataclasses.asdict(self.cfg), RESUME_IGNORES)
        ranks = ckpt.get("ranks", [{"rng": ckpt["rng"]}])  # older 1-rank checkpoints
        if len(ranks) != self.env.world_size:
            raise ValueError(
                f"resume: checkpoint {self.ckpt_path} was written by {len(ranks)} ranks, "
                f"this run has {self.env.world_size}"
            )
        self.student.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        resume.restore_rng(ranks[self.env.rank]["rng"], self.generators)
        self.start_epoch, self.start_batch, self.step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
        self.epoch_state = ckpt["shuffle_state"]
        self.history, self.elapsed = list(ckpt["metrics"]), ckpt["elapsed_s"]
        self.partial = (dict(ckpt["sums"]), ckpt["seen"])

    def save(
        self, epochs_done: int, batch: int, shuffle_state: Tensor, sums: dict, seen: int
    ) -> None:
        """Write checkpoints/last.pt (collective: every rank gathers its RNG states)."""
        ranks = distributed.all_gather_object(
            {"rng": resume.capture_rng(self.generators)}, self.env
        )
        if not self.main:
            return
        state = {
            "model": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": epochs_done,
            "step": self.step,
            "batch": batch,
            "shuffle_state": shuffle_state,
            "sums": dict(sums),
            "seen": seen,
            "metrics": self.history,
            "rng": ranks[0]["rng"],
            "ranks": ranks,
            "config": dataclasses.asdict(self.cfg),
            "elapsed_s": time.time() - self.start,
        }
        atomic_save(state, self.ckpt_path)

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

    def _epoch_start(self, first: int) -> tuple[dict[str, float], int]:
        """Running sums and sample count at the epoch start; a resumed epoch replays its
        permutation (the batches before ``first`` are skipped) and keeps its sums."""
        if first and self.partial is not None:
            self.shuffle_gen.set_state(self.epoch_state)
            return self.partial
        self.epoch_state = self.shuffle_gen.get_state()
        return dict.fromkeys(LOSS_KEYS, 0.0), 0

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch (or the rest of a resumed one): steps, mid-epoch checkpoints, test,
        metrics row, epoch-end checkpoint. Returns the test result (NaN if not evaluated)."""
        cfg = self.cfg
        self.student.train()
        first = self.start_batch if epoch == self.start_epoch else 0
        sums, seen = self._epoch_start(first)
        batches = index_batches(
            len(self.train_split), self.local_bs, self.shuffle_gen,
            rank=self.env.rank, world_size=self.env.world_size,
        )  # fmt: skip
        bar = tqdm(
            itertools.islice(batches, first, None),
            initial=first,
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not (cfg.progress and self.main),
            leave=False,
        )
        for b, idx in enumerate(bar, start=first):
            parts = self.train_step(idx)
            seen += self._accumulate(parts, len(idx), sums)
            bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                if b + 1 < self.steps_per_epoch:  # the epoch-end checkpoint follows otherwise
                    self.save(epoch, b + 1, self.epoch_state, sums, seen)
        result = self._end_epoch(epoch, sums, seen)
        self.save(epoch + 1, 0, self.shuffle_gen.get_state(), {}, 0)
        return result

    @torch.no_grad()
    def _teacher_logits(self, idx: Tensor, x: Tensor, x_aug: Tensor) -> tuple[Tensor, Tensor]:
        """The frozen teacher's logits on x (cached when x is fixed) and on x′ (reused from
        the scheme when it already computed them, e.g. CutMixPick)."""
        if self.cached is not None:
            t = self.cached.index_select(0, idx).to(self.device)
        else:
            t = self.teacher(x)
        t_aug = t if isinstance(self.scheme, Identity) else teacher_logits_of_last(self.scheme)
        return t, self.teacher(x_aug) if t_aug is None else t_aug

    def train_step(self, idx: Tensor) -> dict[str, Tensor]:
        """One optimiser step on the batch of training indices ``idx``; the loss parts."""
        cfg, train = self.cfg, self.train_split
        xb = base_augment(train.x.index_select(0, idx), cfg.base_aug, cfg.crop_pad, self.base_gen)
        xb, y = xb.to(self.device), train.y.index_select(0, idx).to(self.device)
        xa = self.scheme(xb, self.scheme_gen, self.ctx)  # pixel x′ (may need teacher/student)
        x, x_aug = self.ctx.normalize(xb), self.ctx.normalize(xa)
        t, t_aug = self._teacher_logits(idx, x, x_aug)
        for group in self.optimizer.param_groups:
            group["lr"] = cosine_lr(cfg.lr, self.step, self.total_steps, self.warmup)
        s, s_aug = self.student_pass(x, x_aug)
        parts = kd_loss(
            s,
            t,
            y,
            s_aug,
            t_aug,
            temperature=cfg.temperature,
            ce_weight=cfg.ce_weight,
            kd_weight=cfg.kd_weight,
            kl_weight=cfg.kl_weight,
            aug_kl_weight=cfg.aug_kl_weight,
        )
        self.optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        self.optimizer.step()
        self.step += 1
        return parts

    def _accumulate(self, parts: dict[str, Tensor], n: int, sums: dict[str, float]) -> int:
        """Add the step's loss parts x batch size, summed over ranks, to ``sums``; returns
        the number of samples of the global step."""
        *step_sums, n_all = distributed.all_reduce_sum(
            [float(parts[k].detach()) * n for k in sums] + [n], self.env
        )
        for k, v in zip(sums, step_sums, strict=True):
            sums[k] += v
        return int(n_all)

    def _end_epoch(self, epoch: int, sums: dict[str, float], seen: int) -> dict[str, float]:
        """Test (every ``eval_every`` epochs and at the last), append and write the row."""
        cfg = self.cfg
        if epoch + 1 == cfg.epochs or (epoch + 1) % cfg.eval_every == 0:
            result = self.test(self.student)
        else:
            result = {"loss": float("nan"), "acc": float("nan")}
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
        cfg, env = self.cfg, self.env
        summary = {
            "test_acc": result.get("acc"),
            "test_loss": result.get("loss"),
            "teacher_test_acc": teacher_test["acc"],
            "teacher_test_loss": teacher_test["loss"],
            "da": self.scheme.name,
            "student": cfg.student,
            "teacher_model": self.tcfg["model"],
            "dataset": self.tcfg["dataset"],
            "train_size": len(self.train_split),
            "epochs": cfg.epochs,
            "seed": cfg.seed,
        }
        distributed.finish_summary(summary, env, self.start, self.student, self.teacher)
        if self.main:
            write_json(summary, self.out / "summary.json")
        return summary
