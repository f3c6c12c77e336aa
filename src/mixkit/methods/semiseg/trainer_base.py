"""The base semi-supervised trainer (:class:`SemisegTrainer`): networks, optimiser, random
generators, data streams, the epoch loop, evaluation and the whole checkpoint state
(``state_dict`` / ``load_state_dict``, so a run killed after any step resumes to the same
bytes). The method trainers subclass it; the shared loop is described in
:mod:`mixkit.methods.semiseg.trainers`."""

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
from mixkit.methods.semiseg.config import SemisegConfig
from mixkit.methods.semiseg.data import IGNORE, SegDataset
from mixkit.methods.semiseg.distance import param_distance, prediction_gap
from mixkit.methods.semiseg.metrics import ConfusionMeter
from mixkit.methods.semiseg.mix import SegMixer, build_seg_mixer
from mixkit.methods.semiseg.net import SegNet, bn_mode
from mixkit.methods.semiseg.pretrain import cached_pretrained, load_encoder
from mixkit.methods.semiseg.schedules import poly_lr
from mixkit.methods.semiseg.streams import IndexStream
from mixkit.methods.semiseg.views import normalise, weak_view
from mixkit.train import seed_everything


class StudentCall(nn.Module):
    """The student's training forward passes of one step in one call, so that
    DistributedDataParallel sees every use: ``net(x)`` for each input (separate BatchNorm
    batches, as separate calls), or ``decode(f + perturb(f))`` with a feature ``perturb``
    (PS-MT's T-VAT). Returns a tuple of logits."""

    def __init__(self, net: SegNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, *xs: Tensor, perturb: Callable[[Tensor], Tensor] | None = None
    ) -> tuple[Tensor, ...]:
        if perturb is None:
            return tuple(self.net(x) for x in xs)
        outs = []
        for x in xs:
            f = self.net.encode(x)
            outs.append(self.net.decode(f + perturb(f), (x.shape[-2], x.shape[-1])))
        return tuple(outs)


class SemisegTrainer:
    """Base trainer. Subclasses define ``train_step`` and, when they have teachers,
    ``teachers`` / ``on_epoch_start`` / ``active``."""

    method = "base"
    GENERATORS = ("labeled", "unlabeled", "aug", "mix", "vat")
    SHARED_GENERATORS = ("labeled", "unlabeled")  # same seed on every rank (global order)

    def __init__(
        self,
        cfg: SemisegConfig,
        ds: SegDataset,
        labeled: Tensor,
        unlabeled: Tensor,
        env: distributed.DistEnv | None = None,
    ) -> None:
        self.cfg = cfg
        self.ds = ds
        self.env = env = env if env is not None else distributed.DistEnv()
        for name in ("batch_size", "unlabeled_batch_size"):
            if getattr(cfg, name) % env.world_size:
                raise ValueError(
                    f"{name} is the global batch and must be divisible by the "
                    f"{env.world_size} ranks, got {getattr(cfg, name)}"
                )
        self.device = env.device if env.distributed else torch.device(cfg.device)
        seed_everything(cfg.seed)  # model initialisation only; all later draws use generators
        # global-batch BN statistics across ranks (no-op on one rank); before the optimiser
        self.student = distributed.sync_batchnorm(self._new_net(), env)
        if env.rank:  # per-rank global RNGs; rank 0 keeps the plain-run state
            seed_everything(distributed.rank_seed(cfg.seed, env.rank))
        self.optimizer = self._new_optimizer(self.student)
        self.gens = {
            name: torch.Generator().manual_seed(
                cfg.seed * 7919 + k
                if name in self.SHARED_GENERATORS
                else distributed.rank_seed(cfg.seed * 7919 + k, env.rank)
            )
            for k, name in enumerate(self.GENERATORS)
        }
        shard = {"rank": env.rank, "world_size": env.world_size}
        self.labeled = IndexStream(labeled, cfg.batch_size, self.gens["labeled"], **shard)
        self.unlabeled = IndexStream(
            unlabeled, cfg.unlabeled_batch_size, self.gens["unlabeled"], "unlabeled", **shard
        )
        # training forwards of the student (DistributedDataParallel after ``distribute``)
        self.student_forward: nn.Module = StudentCall(self.student)
        self.epoch = 0
        self.step = 0
        self.rows: list[dict[str, Any]] = []
        self.curve: list[dict[str, float]] = []
        # mid-epoch position (crash-safe resume): iterations done, running sums, seconds
        self.iter, self._sums, self._elapsed = 0, {}, 0.0
        self.total_steps = cfg.epochs * cfg.iters_per_epoch
        self.mixer = self._build_mixer(cfg.mix)
        n = min(cfg.distance_images, len(ds.val))
        self.probe = self._float(ds.val.images[:n]) if n > 0 else None

    # ------------------------------------------------------------------ building blocks
    def _new_net(self) -> SegNet:
        """A SegNet; with ``pretrain_steps`` its encoder comes from the pretrained weights
        (decoder random, as the official random-decoder/pretrained-backbone setups)."""
        c = self.cfg
        net = SegNet(self.ds.num_classes, 3, c.width)
        if c.pretrain_steps > 0:
            state = cached_pretrained(
                c.width, c.canvas, c.pretrain_steps, c.pretrain_seed, c.pretrain_cache
            )
            load_encoder(net, state)
        return net.to(self.device)

    def _new_optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        decay = [p for p in net.parameters() if p.ndim > 1]
        no_decay = [p for p in net.parameters() if p.ndim <= 1]  # no decay on norm/bias
        groups = [
            {"params": decay, "weight_decay": self.cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if self.cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.cfg.lr, momentum=0.9)
        return torch.optim.AdamW(groups, lr=self.cfg.lr)

    def _build_mixer(self, name: str) -> SegMixer:
        c = self.cfg
        return build_seg_mixer(
            name,
            num_classes=self.ds.num_classes,
            alpha=c.mix_alpha,
            per_sample_lam=c.per_sample_lam,
            pairing=c.pairing,
            n_boxes=c.multibox_n,
            classmix_half=c.classmix_half,
        )

    def _float(self, images_u8: Tensor) -> Tensor:
        x = images_u8.to(self.device).float().div_(255)
        return normalise(x, self.ds.mean, self.ds.std)

    def _norm(self, x01: Tensor) -> Tensor:
        return normalise(x01, self.ds.mean, self.ds.std)

    def labeled_batch(self) -> tuple[Tensor, Tensor]:
        """Weak view of the next labeled batch: (x01 float [0, 1], labels int64 with 255)."""
        idx = self.labeled.next()
        x, y, _ = weak_view(
            self.ds.train.images[idx], self.ds.train.labels[idx], self.cfg.translate,
            self.gens["aug"],
        )  # fmt: skip
        return x.to(self.device).float().div_(255), y.to(self.device).long()

    def unlabeled_batch(self) -> tuple[Tensor, Tensor]:
        """Weak view of the next unlabeled batch: (x01, valid (B, H, W) bool — False on the
        padded border; the unlabeled batch's OWN ignore mask, its labels are never read)."""
        idx = self.unlabeled.next()
        x, _, valid = weak_view(
            self.ds.train.images[idx], None, self.cfg.translate, self.gens["aug"]
        )
        return x.to(self.device).float().div_(255), valid.to(self.device)

    def set_lr(self, optimizer: torch.optim.Optimizer) -> float:
        lr = poly_lr(self.cfg.lr, self.step, self.total_steps)
        for g in optimizer.param_groups:
            g["lr"] = lr
        return lr

    def distribute(self) -> None:
        """Wrap the student's training forward in DistributedDataParallel (no-op on one
        rank). Called once the teachers exist (``build_trainer`` does)."""
        self.student_forward = distributed.wrap_ddp(self.student_forward, self.env)

    @staticmethod
    def optimise(optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def predict(self, net: nn.Module, x: Tensor, bn: str | None = None) -> Tensor:
        """Softmax of a teacher in the configured BN mode (``cfg.teacher_bn``)."""
        with bn_mode(net, bn or self.cfg.teacher_bn):
            return F.softmax(net(x), 1)

    # ------------------------------------------------------------------ method hooks
    def teachers(self) -> dict[str, nn.Module]:
        return {}

    def active(self) -> str:
        """Name of the teacher being updated this epoch ('' if none)."""
        return ""

    def on_epoch_start(self) -> None:
        pass

    def train_step(self, i: int) -> dict[str, float]:
        raise NotImplementedError

    # ------------------------------------------------------------------ loop
    def train_epoch(
        self,
        progress: Callable[[int], None] | None = None,
        on_step: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Run one epoch (or the rest of a resumed one), evaluate, and append/return its
        metrics row. ``on_step()`` is called after every step but the epoch's last (the
        recipe writes mid-epoch checkpoints there; ``state_dict`` holds the position)."""
        start = time.time() - self._elapsed
        self.student.train()
        if self.iter == 0:  # a resumed epoch has already run on_epoch_start
            self.on_epoch_start()
            self._sums = {}
        active = self.active()
        sums: dict[str, float] = self._sums
        world = self.env.world_size
        for i in range(self.iter, self.cfg.iters_per_epoch):
            logs = self.train_step(i)
            self.step += 1
            # mean over ranks (every rank returns the same keys); 1 rank: the values as-is
            values = distributed.all_reduce_sum(list(logs.values()), self.env)
            for k, v in zip(logs, values, strict=True):
                sums[k] = sums.get(k, 0.0) + (v / world if world > 1 else v)
            if self.teachers() and self.step % self.cfg.distance_every == 0:
                self._record_curve()
            if progress is not None:
                progress(i)
            self.iter = i + 1
            if on_step is not None and self.iter < self.cfg.iters_per_epoch:
                self._elapsed = time.time() - start
                on_step()
        self.iter, self._sums, self._elapsed = 0, {}, 0.0
        self.epoch += 1
        row: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "active": active}
        for k in self.LOG_KEYS:
            row[k] = sums.get(k, 0.0) / self.cfg.iters_per_epoch
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        ev = self.evaluate(self.student, "eval")
        row["val_miou"] = ev["miou"]
        row["val_pixel_acc"] = ev["pixel_acc"]
        row["val_iou"] = ev["iou"]
        last = self.epoch >= self.cfg.epochs
        for name, t in self.teachers().items():
            # teachers' own mIoU (in their pseudo-labelling BN mode) at the final epoch only
            row[f"{name}_miou"] = (
                self.evaluate(t, self.cfg.teacher_bn)["miou"] if last else math.nan
            )
            row.update(self.distance_to(name, t))
        row["epoch_time_s"] = round(time.time() - start, 3)
        self.rows.append(row)
        return row

    LOG_KEYS: tuple[str, ...] = ("loss", "loss_sup", "loss_unsup", "loss_ic", "pass_rate")

    @torch.no_grad()
    def evaluate(self, net: nn.Module, bn: str = "eval", chunk: int = 100) -> dict[str, Any]:
        """mIoU / per-class IoU / pixel accuracy of ``net`` on the val canvases."""
        meter = ConfusionMeter(self.ds.num_classes, IGNORE)
        for i in range(0, len(self.ds.val), chunk):
            x = self._float(self.ds.val.images[i : i + chunk])
            with bn_mode(net, bn):
                pred = net(x).argmax(1)
            meter.update(pred, self.ds.val.labels[i : i + chunk])
        return {
            "miou": meter.miou(),
            "pixel_acc": meter.pixel_acc(),
            "iou": [None if math.isnan(v) else float(v) for v in meter.iou().tolist()],
        }

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
    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "model": self.student.state_dict(),
            "teachers": {k: t.state_dict() for k, t in self.teachers().items()},
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "active": self.active(),
            "generators": {k: g.get_state() for k, g in self.gens.items()},
            "streams": {
                "labeled": self.labeled.state_dict(),
                "unlabeled": self.unlabeled.state_dict(),
            },
            "rows": copy.deepcopy(self.rows),
            "curve": copy.deepcopy(self.curve),
            "extra": self._extra_state(),
            "iter": self.iter,
            "sums": dict(self._sums),
            "epoch_elapsed": self._elapsed,
            "rng": resume.capture_rng(),  # global RNGs too, in case a layer draws from them
        }

    def rank_state(self) -> dict[str, Any]:
        """This rank's random state (its generators and global RNGs); a checkpoint holds every
        rank's as ``ranks`` (gathered by the recipe), restored by :meth:`load_state_dict`."""
        return {
            "generators": {k: g.get_state() for k, g in self.gens.items()},
            "rng": resume.capture_rng(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.method:
            raise ValueError(
                f"checkpoint is for method {state.get('method')!r}, not {self.method!r}"
            )
        self.student.load_state_dict(state["model"])
        self._load_extra_state(state["extra"])  # may create teachers/optimisers first
        teachers = self.teachers()
        if set(state["teachers"]) != set(teachers):
            raise ValueError(
                f"checkpoint teachers {sorted(state['teachers'])} != {sorted(teachers)}"
            )
        for k, t in teachers.items():
            t.load_state_dict(state["teachers"][k])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        for k, g in self.gens.items():
            g.set_state(state["generators"][k])
        self.labeled.load_state_dict(state["streams"]["labeled"])
        self.unlabeled.load_state_dict(state["streams"]["unlabeled"])
        self.rows = copy.deepcopy(state["rows"])
        self.curve = copy.deepcopy(state["curve"])
        self.iter, self._sums = int(state.get("iter", 0)), dict(state.get("sums", {}))
        self._elapsed = float(state.get("epoch_elapsed", 0.0))
        if "rng" in state:
            resume.restore_rng(state["rng"])
        ranks = state.get("ranks")
        if ranks is None and self.env.distributed:
            raise ValueError("checkpoint holds no per-rank state: written by a 1-rank run?")
        if ranks is not None:
            if len(ranks) != self.env.world_size:
                raise ValueError(
                    f"checkpoint was written by {len(ranks)} ranks, this run has "
                    f"{self.env.world_size}"
                )
            mine = ranks[self.env.rank]
            for k, g in self.gens.items():
                g.set_state(mine["generators"][k])
            resume.restore_rng(mine["rng"])
