"""Semi-supervised segmentation trainers: supervised-only, mean teacher + mixing, PS-MT and
Dual Teacher. Each exposes its whole state (student, teachers, optimisers, switch state,
random generators, data streams, epoch/step, history) through ``state_dict`` /
``load_state_dict``, so a run killed after any epoch resumes to the same bytes.

Loop shared by all methods (one "epoch" = ``cfg.iters_per_epoch`` iterations):

    on_epoch_start()                         # PS-MT: on-duty teacher; DT: active teacher/mix
    for i in range(iters_per_epoch):
        labeled batch (weak view) [+ unlabeled batch (weak view, own valid mask)]
        loss = method loss;  optimiser step (poly LR, power 0.9 as in both official codes)
        teacher update (method specific)
    validation mIoU, teacher-student distances, checkpoint

Data-parallel under ``torchrun`` (pass ``env`` from :func:`mixkit.distributed.init_from_env`;
the pattern of ``mixkit train``): ``batch_size`` / ``unlabeled_batch_size`` are global
batches, each rank takes its ``[rank::world]`` share of every global batch of the (same-seed)
labeled / unlabeled streams (``DistributedSampler`` semantics), augmentation / mixing / VAT
generators are per rank (:func:`mixkit.distributed.rank_seed`, rank 0 = the plain run), the
student's training forwards go through DistributedDataParallel (BatchNorm synchronised), the
logged losses are averaged over ranks, and the EMA teachers, updated from the synchronised
student, stay identical on every rank (PS-MT's warm-up teacher training is data-parallel too).
Validation runs the full val set on every rank (identical models, identical numbers).
"""

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
from mixkit.semiseg.config import METHODS, SemisegConfig
from mixkit.semiseg.data import IGNORE, SegDataset
from mixkit.semiseg.distance import param_distance, prediction_gap
from mixkit.semiseg.metrics import ConfusionMeter
from mixkit.semiseg.mix import SegMixer, build_seg_mixer
from mixkit.semiseg.net import SegNet, bn_mode
from mixkit.semiseg.pretrain import cached_pretrained, load_encoder
from mixkit.semiseg.views import normalise, strong_colour, weak_view
from mixkit.train import seed_everything

__all__ = [
    "ema_update",
    "poly_lr",
    "cosine_rampup",
    "SemisegTrainer",
    "SupervisedTrainer",
    "MeanTeacherTrainer",
    "PSMTTrainer",
    "DualTeacherTrainer",
    "TRAINERS",
    "build_trainer",
]


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float, buffers: bool) -> None:
    """``θ_t <- α θ_t + (1 - α) θ_s`` for every parameter; BatchNorm running buffers too when
    ``buffers`` (integer buffers such as ``num_batches_tracked`` are copied). α = 0 copies
    the student exactly."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
    if buffers:
        for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
            if t.is_floating_point():
                t.mul_(alpha).add_(s, alpha=1.0 - alpha)
            else:
                t.copy_(s)


def poly_lr(base_lr: float, step: int, total: int, power: float = 0.9) -> float:
    """``base * (1 - step/total) ** power`` (PS-MT ``Poly``, Dual Teacher ``PolyWarmupAdamW``)."""
    return base_lr * (1 - min(step, total) / max(total, 1)) ** power


def cosine_rampup(current: float, length: float) -> float:
    """PS-MT ``Utils/ramps.py::cosine_rampup``: ``1 - (cos(pi c / L) + 1) / 2``, clipped."""
    if length <= 0:
        return 1.0
    c = min(max(current, 0.0), length)
    return 1.0 - 0.5 * (math.cos(math.pi * c / length) + 1.0)


class _Stream:
    """Endless shuffled stream of dataset indices in batches (remainder dropped per pass).
    With ``world_size > 1``, ``batch`` is the global batch and :meth:`next` returns rank
    ``rank``'s share ``global_batch[rank::world_size]`` (every rank draws the same
    permutation from an identically seeded generator)."""

    def __init__(
        self,
        indices: Tensor,
        batch: int,
        generator: torch.Generator,
        name: str = "labeled",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.name = name
        self.indices = indices.long()
        self.batch = batch
        self.generator = generator
        self.rank, self.world_size = rank, world_size
        self.order: Tensor | None = None
        self.pos = 0

    def next(self) -> Tensor:
        n = self.indices.numel()
        if n < self.batch:
            raise ValueError(
                f"the {self.name} set has {n} canvases and cannot fill batches of "
                f"{self.batch}; lower the batch size or change the split"
            )
        if self.order is None or self.pos + self.batch > n:
            self.order = self.indices[torch.randperm(n, generator=self.generator)]
            self.pos = 0
        out = self.order[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return out[self.rank :: self.world_size] if self.world_size > 1 else out

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order, self.pos = state["order"], int(state["pos"])


class _StudentCall(nn.Module):
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


def _masked_mean(values: Tensor, mask: Tensor, denom: Tensor | None = None) -> Tensor:
    """sum(values * mask) / max(denom or mask.sum(), 1)."""
    d = mask.sum() if denom is None else denom
    return (values * mask).sum() / d.clamp_min(1)


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
        self.labeled = _Stream(labeled, cfg.batch_size, self.gens["labeled"], **shard)
        self.unlabeled = _Stream(
            unlabeled, cfg.unlabeled_batch_size, self.gens["unlabeled"], "unlabeled", **shard
        )
        # training forwards of the student (DistributedDataParallel after ``distribute``)
        self.student_forward: nn.Module = _StudentCall(self.student)
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


class SupervisedTrainer(SemisegTrainer):
    """Labeled canvases only: ``CE(S(x_l), y_l)`` (ignore 255)."""

    method = "sup"

    def train_step(self, i: int) -> dict[str, float]:
        xl, yl = self.labeled_batch()
        self.set_lr(self.optimizer)
        (logits,) = self.student_forward(self._norm(xl))
        loss = F.cross_entropy(logits, yl, ignore_index=IGNORE)
        self.optimise(self.optimizer, loss)
        return {"loss": loss.item(), "loss_sup": loss.item()}


def _student_teacher_copy(student: nn.Module) -> nn.Module:
    t = copy.deepcopy(student)
    for p in t.parameters():
        p.requires_grad_(False)
    return t


class MeanTeacherTrainer(SemisegTrainer):
    """Mean teacher + mixing (French et al. 2020, "Semi-supervised semantic segmentation needs
    strong, varied perturbations"): an EMA teacher (α = ``mt_ema``, params and BN buffers)
    predicts on the weak unlabeled view; the mixer mixes the images and the teacher's
    probability maps with the same params; the student fits the mixed argmax where the mixed
    confidence >= ``mt_threshold`` (loss averaged over the valid pixels)."""

    method = "mt"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = _student_teacher_copy(self.student)

    def teachers(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher}

    def active(self) -> str:
        return "teacher"

    def train_step(self, i: int) -> dict[str, float]:
        c = self.cfg
        xl, yl = self.labeled_batch()
        xu01, valid = self.unlabeled_batch()
        xu = self._norm(xu01)
        probs = self.predict(self.teacher, xu)
        params = self.mixer.draw(xu.shape, self.gens["mix"], label_maps=probs.argmax(1))
        m = self.mixer.apply(params, images=xu, probs=probs, valid=valid)
        self.set_lr(self.optimizer)
        (logits,) = self.student_forward(torch.cat([self._norm(xl), m.images]))
        bl = xl.shape[0]
        sup = F.cross_entropy(logits[:bl], yl, ignore_index=IGNORE)
        conf, pseudo = m.probs.max(1)
        keep = (conf >= c.mt_threshold) & m.valid
        ce = F.cross_entropy(logits[bl:], pseudo, reduction="none")
        unsup = _masked_mean(ce, keep, m.valid.sum())
        loss = sup + c.mt_weight * unsup
        self.optimise(self.optimizer, loss)
        ema_update(self.teacher, self.student, c.mt_ema, buffers=True)
        rate = float(keep.sum()) / max(int(m.valid.sum()), 1)
        return {"loss": loss.item(), "loss_sup": sup.item(), "loss_unsup": unsup.item(),
                "pass_rate": rate}  # fmt: skip


def _l2_normalise(d: Tensor) -> Tensor:
    """Per-sample L2 normalisation over all non-batch dims (PS-MT ``_l2_normalize``)."""
    return d / (d.flatten(1).norm(dim=1).view(-1, *([1] * (d.ndim - 1))) + 1e-8)


class PSMTTrainer(SemisegTrainer):
    """PS-MT (Liu et al. CVPR 2022; ``VocCode/train.py``, ``EntireModel.py``,
    ``Utils/losses.py::semi_ce_loss``).

    - Warm-up (``psmt_warmup_epochs``): student and both teachers trained separately on the
      labeled data with their own optimisers (``Base/base_trainer.py::train``).
    - Then each epoch one teacher is on duty (T1 on the 1st semi epoch, T2 on the 2nd, ...);
      only it is EMA-updated (keep rate ``psmt_ema`` = 0.996, over the whole state dict, BN
      buffers included, as ``update_teachers`` does).
    - Pseudo-target: ``γ t1 + (1-γ) t2`` of the teachers' logits on the weak view (optional
      ``assist_mask_calculate`` with ``psmt_assist_topk``); the student sees the strong colour
      view of the unlabeled batch, mixed together with the target logits.
    - Strict confidence-weighted CE: ``w = max softmax(target)``; mean over pixels with
      ``w >= psmt_threshold`` of ``w * CE(student, argmax target)``; weight
      ``psmt_weight * cosine_rampup`` over ``psmt_rampup_epochs`` semi epochs.
    - ``psmt_vat``: T-VAT on the student's encoder features (one power iteration, ``xi``,
      ``eps``; direction from the teachers' mean decoder output, teacher decoders in eval).
    """

    method = "psmt"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The official teachers are built with pretrained_model=None, i.e. a different random
        # init from the student; at 0.996 the EMA needs ~1000 steps to forget it, longer than
        # this CPU budget, and averaging two unrelated nets is useless meanwhile. So both
        # teachers start as copies of the student's initial weights and then warm up
        # separately on their own labeled batches (diversity from data order).
        self.t1 = copy.deepcopy(self.student)
        self.t2 = copy.deepcopy(self.student)
        self.opt_t1: torch.optim.Optimizer | None = self._new_optimizer(self.t1)
        self.opt_t2: torch.optim.Optimizer | None = self._new_optimizer(self.t2)
        self.ramp = 0.0
        # warm-up training forwards of the teachers (DistributedDataParallel after distribute)
        self.teacher_forward: dict[str, nn.Module] = {
            "t1": _StudentCall(self.t1),
            "t2": _StudentCall(self.t2),
        }

    def distribute(self) -> None:
        super().distribute()
        if self.opt_t1 is not None:  # the teachers still train (warm-up): data-parallel too
            for k, fwd in self.teacher_forward.items():
                self.teacher_forward[k] = distributed.wrap_ddp(fwd, self.env)

    def teachers(self) -> dict[str, nn.Module]:
        return {"t1": self.t1, "t2": self.t2}

    def in_warmup(self, epoch: int | None = None) -> bool:
        return (self.epoch if epoch is None else epoch) < self.cfg.psmt_warmup_epochs

    def active(self) -> str:
        if self.in_warmup():
            return "warmup"
        return "t1" if (self.epoch - self.cfg.psmt_warmup_epochs) % 2 == 0 else "t2"

    def on_epoch_start(self) -> None:
        if not self.in_warmup() and self.opt_t1 is not None:
            # Warm-up over: the teachers become EMA-only (official ``del self.optimizer1/2``).
            self.opt_t1 = self.opt_t2 = None
            for t in (self.t1, self.t2):
                for p in t.parameters():
                    p.requires_grad_(False)

    def _vat(self, f: Tensor) -> Tensor:
        """PS-MT ``get_r_adv_t``: adversarial feature noise for the student's features f."""
        c = self.cfg
        x = f.detach()
        size = (self.ds.size, self.ds.size)
        with bn_mode(self.t1, "eval"), bn_mode(self.t2, "eval"):
            with torch.no_grad():
                target = F.softmax((self.t1.decode(x, size) + self.t2.decode(x, size)) / 2, 1)
            d = torch.rand(x.shape, generator=self.gens["vat"]).sub(0.5).to(x.device)
            d = _l2_normalise(d).requires_grad_(True)
            xp = x + c.vat_xi * d
            logit_hat = (self.t1.decode(xp, size) + self.t2.decode(xp, size)) / 2
            adv = F.kl_div(F.log_softmax(logit_hat, 1), target, reduction="batchmean")
            (grad,) = torch.autograd.grad(adv, d)
        return _l2_normalise(grad) * c.vat_eps

    def _student_logits(self, x: Tensor) -> Tensor:
        (logits,) = self.student_forward(x, perturb=self._vat if self.cfg.psmt_vat else None)
        return logits

    def _assist(self, core: Tensor, assist: Tensor) -> Tensor:
        """Keep the off-duty teacher's top-k classes per pixel, fill the rest from the on-duty
        teacher (``assist_mask_calculate``)."""
        k = self.cfg.psmt_assist_topk
        top = assist.topk(k, dim=1).indices
        keep = torch.zeros_like(assist, dtype=torch.bool).scatter_(1, top, True)
        return torch.where(keep, assist, core)

    def train_step(self, i: int) -> dict[str, float]:
        if self.in_warmup():
            return self._warmup_step()
        c = self.cfg
        # strong colour view for the labeled images too ("strong aug for all the supervised
        # images", VocCode/train.py::_train_epoch)
        xl, yl = self.labeled_batch()
        xl = strong_colour(xl, self.gens["aug"])
        xu01, valid = self.unlabeled_batch()
        xu = self._norm(xu01)
        with torch.no_grad(), bn_mode(self.t1, c.teacher_bn), bn_mode(self.t2, c.teacher_bn):
            l1, l2 = self.t1(xu), self.t2(xu)
        on_duty = self.active()
        if c.psmt_assist_topk > 0:
            if on_duty == "t1":
                l2 = self._assist(l1, l2)
            else:
                l1 = self._assist(l2, l1)
        target = c.psmt_gamma * l1 + (1 - c.psmt_gamma) * l2  # logits
        xs = self._norm(strong_colour(xu01, self.gens["aug"]))
        params = self.mixer.draw(xs.shape, self.gens["mix"], label_maps=target.argmax(1))
        m = self.mixer.apply(params, images=xs, probs=target, valid=valid)
        self.set_lr(self.optimizer)
        bl = xl.shape[0]
        logits = self._student_logits(torch.cat([self._norm(xl), m.images]))
        sup = F.cross_entropy(logits[:bl], yl, ignore_index=IGNORE)
        weight, pseudo = F.softmax(m.probs, 1).max(1)
        keep = (weight >= c.psmt_threshold) & m.valid
        ce = F.cross_entropy(logits[bl:], pseudo, reduction="none") * weight
        unsup = _masked_mean(ce, keep)
        semi_iter = (self.epoch - c.psmt_warmup_epochs) * c.iters_per_epoch + i
        self.ramp = cosine_rampup(semi_iter, c.psmt_rampup_epochs * c.iters_per_epoch)
        loss = sup + c.psmt_weight * self.ramp * unsup
        self.optimise(self.optimizer, loss)
        ema_update(self.teachers()[on_duty], self.student, c.psmt_ema, buffers=True)
        rate = float(keep.sum()) / max(int(m.valid.sum()), 1)
        return {"loss": loss.item(), "loss_sup": sup.item(), "loss_unsup": unsup.item(),
                "pass_rate": rate}  # fmt: skip

    def _warmup_step(self) -> dict[str, float]:
        """One supervised step for each of T1, T2 (weak view) and the student (strong view),
        each on its own labeled batch (the official warm-up runs a separate pass per net)."""
        self.set_lr(self.optimizer)
        for name, opt in (("t1", self.opt_t1), ("t2", self.opt_t2)):
            assert opt is not None
            xl, yl = self.labeled_batch()
            self.set_lr(opt)
            (logits,) = self.teacher_forward[name](self._norm(xl))
            loss = F.cross_entropy(logits, yl, ignore_index=IGNORE)
            self.optimise(opt, loss)
        xl, yl = self.labeled_batch()
        xs = strong_colour(xl, self.gens["aug"])
        (logits,) = self.student_forward(self._norm(xs))
        loss = F.cross_entropy(logits, yl, ignore_index=IGNORE)
        self.optimise(self.optimizer, loss)
        return {"loss": loss.item(), "loss_sup": loss.item()}

    def _extra_state(self) -> dict[str, Any]:
        return {
            "opt_t1": None if self.opt_t1 is None else self.opt_t1.state_dict(),
            "opt_t2": None if self.opt_t2 is None else self.opt_t2.state_dict(),
            "ramp": self.ramp,
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.ramp = float(state["ramp"])
        if state["opt_t1"] is None:
            self.opt_t1 = self.opt_t2 = None
            for t in (self.t1, self.t2):
                for p in t.parameters():
                    p.requires_grad_(False)
        else:
            assert self.opt_t1 is not None and self.opt_t2 is not None
            self.opt_t1.load_state_dict(state["opt_t1"])
            self.opt_t2.load_state_dict(state["opt_t2"])


class DualTeacherTrainer(SemisegTrainer):
    """Dual Teacher (Na et al. NeurIPS 2023; ``tools/train.py::train_dual``,
    ``seg_core/augmentations.py``).

    - Epoch e uses teacher T1 with the box mixer (``cfg.mix``, CutMix by default) when e is
      even and T2 with ClassMix when odd; only that teacher is updated.
    - After each step i of the epoch (i resets every epoch): ``a = min(1 - 1/(i+1), dt_ema)``
      and ``T <- a T + (1 - a) S`` — at i = 0, a = 0, so the active teacher is RE-COPIED from
      the student at the start of its shift. Parameters only, unless ``dt_ema_buffers``.
    - Strong view ``x_s`` = ColorJitter(.5, .5, .5, .25) + RandomGrayscale(.2) of the weak
      unlabeled view.
    - Box-mix shift: mix the weak unlabeled images with the teacher's probabilities, then
      per-sample jitter (p .8, ±.25) and blur (p .5, σ .15-1.15) of the mixed image
      (``batch_transform``; the flip is left out for digits); loss = mean over valid pixels of
      ``w_i * CE`` with ``w_i`` the image's fraction of pixels with confidence >= 0.95
      (``compute_unsupervised_loss``).
    - ClassMix shift: mix the strong view; loss = ``w * CE`` averaged over valid pixels with
      ``w`` the batch fraction of confident pixels (``compute_classmix`` / ``ClassMixLoss``).
    - Implicit consistency: ``Σ CE(S(x_s), argmax T(x_u)) [conf >= 0.95] / #valid``, weight
      0.2, where "valid" is the UNLABELED batch's own mask (the official ``compute_ic``
      reads ``label_u`` from the labeled batch — a bug fixed here).
    """

    method = "dualteacher"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.t1 = _student_teacher_copy(self.student)
        self.t2 = _student_teacher_copy(self.student)
        self.classmix = self._build_mixer("classmix")

    def teachers(self) -> dict[str, nn.Module]:
        return {"t1": self.t1, "t2": self.t2}

    def active(self) -> str:
        return "t1" if self.epoch % 2 == 0 else "t2"

    def train_step(self, i: int) -> dict[str, float]:
        c = self.cfg
        xl, yl = self.labeled_batch()
        xu01, valid = self.unlabeled_batch()
        xu = self._norm(xu01)
        xs = self._norm(strong_colour(xu01, self.gens["aug"], blur_p=0.0))
        teacher = self.teachers()[self.active()]
        probs = self.predict(teacher, xu)
        conf_u, pseudo_u = probs.max(1)
        if self.active() == "t1":  # box-mix shift
            params = self.mixer.draw(xu.shape, self.gens["mix"], label_maps=pseudo_u)
            m = self.mixer.apply(params, images=xu01, probs=probs, valid=valid)
            mixed = strong_colour(
                m.images, self.gens["aug"], brightness=0.25, contrast=0.25, saturation=0.25,
                hue=0.25, jitter_p=0.8, gray_p=0.0, blur_p=0.5, blur_sigma=(0.15, 1.15),
            )  # fmt: skip
            mixed = self._norm(mixed)
            conf, pseudo = m.probs.max(1)
            sure = (conf >= c.dt_threshold) & m.valid
            w = sure.flatten(1).sum(1) / m.valid.flatten(1).sum(1).clamp_min(1)
            weight = w.view(-1, 1, 1).expand_as(conf)
        else:  # ClassMix shift
            params = self.classmix.draw(xs.shape, self.gens["mix"], label_maps=pseudo_u)
            m = self.classmix.apply(params, images=xs, probs=probs, valid=valid)
            mixed = m.images
            conf, pseudo = m.probs.max(1)
            sure = (conf >= c.dt_threshold) & m.valid
            weight = (sure.sum() / m.valid.sum().clamp_min(1)).expand_as(conf)
        self.set_lr(self.optimizer)
        bl = xl.shape[0]
        # both student passes in one (DDP) call: separate BatchNorm batches as before
        logits, logits_s = self.student_forward(torch.cat([self._norm(xl), mixed]), xs)
        sup = F.cross_entropy(logits[:bl], yl, ignore_index=IGNORE)
        ce = F.cross_entropy(logits[bl:], pseudo, reduction="none") * weight
        lmix = _masked_mean(ce, m.valid)
        ce_ic = F.cross_entropy(logits_s, pseudo_u, reduction="none")
        lic = _masked_mean(ce_ic, (conf_u >= c.dt_threshold) & valid, valid.sum())
        loss = sup + lmix + c.dt_ic_weight * lic
        self.optimise(self.optimizer, loss)
        a = min(1.0 - 1.0 / (i + 1), c.dt_ema)
        ema_update(teacher, self.student, a, buffers=c.dt_ema_buffers)
        rate = float(sure.sum()) / max(int(m.valid.sum()), 1)
        return {"loss": loss.item(), "loss_sup": sup.item(), "loss_unsup": lmix.item(),
                "loss_ic": lic.item(), "pass_rate": rate}  # fmt: skip


TRAINERS: dict[str, type[SemisegTrainer]] = {
    "sup": SupervisedTrainer,
    "mt": MeanTeacherTrainer,
    "psmt": PSMTTrainer,
    "dualteacher": DualTeacherTrainer,
}
assert set(TRAINERS) == set(METHODS)


def build_trainer(
    cfg: SemisegConfig,
    ds: SegDataset,
    labeled: Tensor,
    unlabeled: Tensor,
    env: distributed.DistEnv | None = None,
) -> SemisegTrainer:
    """The trainer of ``cfg.method`` (data-parallel over ``env``'s ranks when given;
    collective then: every rank must call it)."""
    if cfg.method not in TRAINERS:
        raise ValueError(f"method must be one of {list(TRAINERS)}, got {cfg.method!r}")
    trainer = TRAINERS[cfg.method](cfg, ds, labeled, unlabeled, env=env)
    trainer.distribute()
    return trainer
