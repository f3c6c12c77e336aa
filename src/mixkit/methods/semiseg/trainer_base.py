"""The base semi-supervised trainer (:class:`SemisegTrainer`): the student, its optimiser and
learning-rate schedule, mixed precision, the random generators, the data source, the
method's building block (``self.block``: a :class:`~mixkit.methods.semiseg.MeanTeacher`,
``PSMT`` or ``DualTeacher``), the epoch loop, evaluation and the whole checkpoint state
(``state_dict`` / ``load_state_dict``: a run killed after any step resumes to the same
bytes). The method trainers of :mod:`mixkit.methods.semiseg.trainers` subclass it.

Logged values stay on the device as tensors during an epoch (no host synchronisation per
step); they are read every ``log_every`` steps and at the epoch's end."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit import distributed, resume
from mixkit.methods.semiseg.build import (
    Precision,
    StudentCall,
    build_student,
    new_optimizer,
    set_lr,
)
from mixkit.methods.semiseg.config import SemisegConfig
from mixkit.methods.semiseg.data import IGNORE
from mixkit.methods.semiseg.distance import param_distance, prediction_gap
from mixkit.methods.semiseg.method_base import TeacherMethod
from mixkit.methods.semiseg.mix import SegMixer, build_seg_mixer
from mixkit.methods.semiseg.schedules import lr_at
from mixkit.methods.semiseg.sources import make_source
from mixkit.train import seed_everything

LOG_KEYS = ("loss", "loss_sup", "loss_unsup", "loss_ic", "pass_rate")


def sup_ce(logits: Tensor, labels: Tensor) -> Tensor:
    """Pixel CE (ignore 255) of float logits (B, K, h, w) against labels (B, H, W)."""
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE)


class SemisegTrainer:
    """Base trainer. Subclasses set ``method``, build ``self.block`` in ``make_block`` (None:
    supervised only) and may override ``train_step``."""

    method = "base"
    GENERATORS = ("labeled", "unlabeled", "aug", "method")
    SHARED_GENERATORS = ("labeled", "unlabeled")  # same seed on every rank (global order)
    epoch_unit = "unlabeled"  # the stream one epoch passes over when iters_per_epoch = 0

    def __init__(
        self, cfg: SemisegConfig, ds: Any, labeled: Any, unlabeled: Any,
        env: distributed.DistEnv | None = None,
    ) -> None:  # fmt: skip
        self.cfg = cfg
        self.env = env = env if env is not None else distributed.DistEnv()
        for name in ("batch_size", "unlabeled_batch_size"):
            if getattr(cfg, name) % env.world_size:
                raise ValueError(f"{name} is the global batch and must be divisible by the "
                                 f"{env.world_size} ranks, got {getattr(cfg, name)}")  # fmt: skip
        self.device = env.device if env.distributed else torch.device(cfg.device)
        self.gens = {
            name: torch.Generator().manual_seed(
                cfg.seed * 7919 + k if name in self.SHARED_GENERATORS
                else distributed.rank_seed(cfg.seed * 7919 + k, env.rank)
            )
            for k, name in enumerate(self.GENERATORS)
        }  # fmt: skip
        self.ds = ds
        self.source = make_source(cfg, ds, labeled, unlabeled, self.device, self.gens,
                                  env.rank, env.world_size)  # fmt: skip
        seed_everything(cfg.seed)  # model initialisation only; all later draws use generators
        net = build_student(cfg, self.source.num_classes).to(self.device)
        if cfg.channels_last:
            net = net.to(memory_format=torch.channels_last)
        # global-batch BN statistics across ranks (no-op on one rank); before the optimiser
        self.student = distributed.sync_batchnorm(net, env)
        if env.rank:  # per-rank global RNGs; rank 0 keeps the plain-run state
            seed_everything(distributed.rank_seed(cfg.seed, env.rank))
        self.optimizer = new_optimizer(cfg, self.student)
        self.precision = Precision(cfg.amp, self.device)
        self.student_forward: nn.Module = StudentCall(self.student, cfg.channels_last)
        self.mixer = self._build_mixer(cfg.mix)
        self.block: TeacherMethod | None = self.make_block()
        if self.block is not None:
            self.block.channels_last = cfg.channels_last
            self.block.autocast = self.precision.autocast
        self.epoch, self.step, self.iter = 0, 0, 0
        self.rows: list[dict[str, Any]] = []
        self.curve: list[dict[str, float]] = []
        self._sums: dict[str, Tensor] = {}
        self._elapsed = 0.0
        self.total_steps = sum(self.epoch_length(e) for e in range(cfg.epochs))
        self.probe = self.source.probe(cfg.distance_images)

    # ------------------------------------------------------------------ building blocks
    def make_block(self) -> TeacherMethod | None:
        return None

    def block_kwargs(self) -> dict[str, Any]:
        """Arguments every block gets: classes, normalisation, teacher BN mode."""
        s = self.source
        return {"num_classes": s.num_classes, "mean": s.mean, "std": s.std,
                "teacher_bn": self.cfg.teacher_bn}  # fmt: skip

    def _build_mixer(self, name: str) -> SegMixer:
        c = self.cfg
        return build_seg_mixer(
            name, num_classes=self.source.num_classes, alpha=c.mix_alpha,
            per_sample_lam=c.per_sample_lam, pairing=c.pairing, n_boxes=c.multibox_n,
            classmix_half=c.classmix_half, box=c.cutmix_box,
        )  # fmt: skip

    def epoch_length(self, epoch: int) -> int:
        """Steps of ``epoch``: ``iters_per_epoch``, or one pass over ``epoch_unit``."""
        return self.cfg.iters_per_epoch or max(self.source.per_pass[self.epoch_unit], 1)

    def lr_start(self) -> int:
        """Steps run at the base learning rate before the schedule starts."""
        return 0

    def set_lr(self, optimizer: torch.optim.Optimizer) -> float:
        c = self.cfg
        lr = lr_at(c.lr, self.step, self.total_steps, schedule=c.lr_schedule, power=c.lr_power,
                   warmup=c.lr_warmup_steps, start=self.lr_start())  # fmt: skip
        set_lr(optimizer, lr)
        return lr

    def distribute(self) -> None:
        """Wrap the student's training forward in DistributedDataParallel (no-op on one
        rank). Called once the teachers exist (``build_trainer`` does)."""
        self.student_forward = distributed.wrap_ddp(self.student_forward, self.env)

    def optimise(
        self, optimizer: torch.optim.Optimizer, loss: Tensor, key: str = "student"
    ) -> None:
        self.set_lr(optimizer)
        self.precision.step(optimizer, loss, key)

    # ------------------------------------------------------------------ method hooks
    def teachers(self) -> dict[str, nn.Module]:
        return {} if self.block is None else self.block.teachers()

    def active(self) -> str:
        """Name of the teacher labelling this epoch ('' if none)."""
        return "" if self.block is None else self.block.active_at(self.epoch)

    def on_epoch_start(self) -> None:
        if self.block is not None:
            self.block.start_epoch(self.epoch)

    def train_step(self, i: int) -> dict[str, Tensor]:
        """One step with the block: labeled + unlabeled batch, teachers' pseudo-labels,
        student forward(s), CE + unsupervised loss, optimiser step, teacher update."""
        blk = self.block
        if blk is None:
            raise NotImplementedError
        xl, yl = self.source.labeled()
        xl = blk.normalise(blk.labeled_view(xl, self.gens["aug"]))
        xu, valid = self.source.unlabeled()
        ub = blk.prepare(xu, valid=valid, generator=self.gens["method"])  # nets autocast inside
        r = blk.perturbation()
        with self.precision.autocast():
            if blk.joint:
                first, *rest = self.student_forward(torch.cat([xl, ub.inputs[0]]),
                                                    *ub.inputs[1:], perturb=r)  # fmt: skip
                sup_logits, outs = first[: xl.shape[0]], [first[xl.shape[0] :], *rest]
            else:
                sup_logits, *outs = self.student_forward(xl, *ub.inputs, perturb=r)
        sup = sup_ce(sup_logits, yl)
        loss_u, stats = blk.loss(outs, ub)
        loss = sup + loss_u
        self.optimise(self.optimizer, loss)
        blk.update(self.step + 1)
        return {"loss": loss.detach(), "loss_sup": sup.detach(), **stats}

    # ------------------------------------------------------------------ loop
    def running_means(self) -> dict[str, float]:
        """Means of the logged values over the current epoch so far (host sync)."""
        n = max(self.iter, 1)
        return {k: float(v) / n for k, v in self._sums.items()}

    def train_epoch(
        self, progress: Callable[[int], None] | None = None,
        on_step: Callable[[], None] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Run one epoch (or the rest of a resumed one), evaluate, and append/return its
        metrics row. ``on_step()`` is called after every step but the epoch's last (the
        recipe writes mid-epoch checkpoints and log lines there)."""
        start = time.time() - self._elapsed
        self.student.train()
        if self.iter == 0:  # a resumed epoch has already run on_epoch_start
            self.on_epoch_start()
            self._sums = {}
        active, length = self.active(), self.epoch_length(self.epoch)
        for i in range(self.iter, length):
            logs = self.train_step(i)
            self.step += 1
            for k, v in logs.items():
                v = v.detach().float()
                self._sums[k] = self._sums[k] + v if k in self._sums else v
            if self.teachers() and self.step % self.cfg.distance_every == 0:
                self._record_curve()
            if progress is not None:
                progress(i)
            self.iter = i + 1
            if on_step is not None and self.iter < length:
                self._elapsed = time.time() - start
                on_step()
        return self._finish_epoch(active, length, start)

    def _finish_epoch(self, active: str, length: int, start: float) -> dict[str, Any]:
        keys = list(LOG_KEYS)
        sums = [float(self._sums[k]) if k in self._sums else 0.0 for k in keys]
        sums = distributed.all_reduce_sum(sums, self.env)  # the mean over ranks
        self.iter, self._sums, self._elapsed = 0, {}, 0.0
        self.epoch += 1
        row: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "active": active}
        for k, v in zip(keys, sums, strict=True):
            row[k] = v / self.env.world_size / length
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        last = self.epoch >= self.cfg.epochs
        evaluated = last or self.epoch % self.cfg.eval_every == 0
        ev = self.evaluate(self.student, "eval") if evaluated else {}
        row["val_miou"] = ev.get("miou", math.nan)
        row["val_pixel_acc"] = ev.get("pixel_acc", math.nan)
        row["val_iou"] = ev.get("iou")
        for name, t in self.teachers().items():
            # teachers' own mIoU (in their pseudo-labelling BN mode) at the final epoch only
            row[f"{name}_miou"] = (
                self.evaluate(t, self.cfg.teacher_bn)["miou"] if last else math.nan
            )
            row.update(self.distance_to(name, t))
        row["epoch_time_s"] = round(time.time() - start, 3)
        self.rows.append(row)
        return row

    @torch.no_grad()
    def evaluate(self, net: nn.Module, bn: str = "eval") -> dict[str, Any]:
        """mIoU / per-class IoU / pixel accuracy of ``net`` on the val set."""
        with self.precision.autocast():
            return self.source.evaluate(net, bn)

    def distance_to(self, name: str, teacher: nn.Module) -> dict[str, float]:
        out = {f"dist_{name}": param_distance(teacher, self.student)}
        if self.probe is not None:
            gap = prediction_gap(teacher, self.student, self.probe, self.cfg.teacher_bn)
            out[f"disagree_{name}"] = gap["disagree"]
            out[f"kl_{name}"] = gap["kl"]
        return out

    def _record_curve(self) -> None:
        point = {"step": float(self.step)}
        for name, t in self.teachers().items():
            point[name] = param_distance(t, self.student)
        self.curve.append(point)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        block = None if self.block is None else self.block.state_dict()
        teachers = {} if block is None else block.pop("teachers")  # stored once
        return {
            "method": self.method,
            "model": self.student.state_dict(),
            "teachers": teachers,
            "block": block,
            "optimizer": self.optimizer.state_dict(),
            "precision": self.precision.state_dict(),
            "epoch": self.epoch, "step": self.step, "iter": self.iter, "active": self.active(),
            "generators": {k: g.get_state() for k, g in self.gens.items()},
            "streams": self.source.state_dict(),
            "rows": copy.deepcopy(self.rows), "curve": copy.deepcopy(self.curve),
            "sums": {k: v.detach().cpu() for k, v in self._sums.items()},
            "epoch_elapsed": self._elapsed,
            "rng": resume.capture_rng(),  # global RNGs too, in case a layer draws from them
        }  # fmt: skip

    def rank_state(self) -> dict[str, Any]:
        """This rank's random state (its generators and global RNGs); a checkpoint holds every
        rank's as ``ranks`` (gathered by the recipe), restored by :meth:`load_state_dict`."""
        return {"generators": {k: g.get_state() for k, g in self.gens.items()},
                "rng": resume.capture_rng()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.method:
            raise ValueError(
                f"checkpoint is for method {state.get('method')!r}, not {self.method!r}"
            )
        self.student.load_state_dict(state["model"])
        if self.block is not None:
            self.block.load_state_dict({**state["block"], "teachers": state["teachers"]})
        self.optimizer.load_state_dict(state["optimizer"])
        self.precision.load_state_dict(state.get("precision", {}))
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.iter = int(state.get("iter", 0))
        for k, g in self.gens.items():
            g.set_state(state["generators"][k])
        self.source.load_state_dict(state["streams"])
        self.rows, self.curve = copy.deepcopy(state["rows"]), copy.deepcopy(state["curve"])
        self._sums = {k: v.to(self.device) for k, v in state.get("sums", {}).items()}
        self._elapsed = float(state.get("epoch_elapsed", 0.0))
        if "rng" in state:
            resume.restore_rng(state["rng"])
        self._load_ranks(state.get("ranks"))

    def _load_ranks(self, ranks: list[dict[str, Any]] | None) -> None:
        if ranks is None and self.env.distributed:
            raise ValueError("checkpoint holds no per-rank state: written by a 1-rank run?")
        if ranks is None:
            return
        if len(ranks) != self.env.world_size:
            raise ValueError(f"checkpoint was written by {len(ranks)} ranks, this run has "
                             f"{self.env.world_size}")  # fmt: skip
        mine = ranks[self.env.rank]
        for k, g in self.gens.items():
            g.set_state(mine["generators"][k])
        resume.restore_rng(mine["rng"])
