"""The ``mixkit semiseg`` trainers: thin loops over the building blocks — supervised only,
:class:`~mixkit.methods.semiseg.MeanTeacher`, :class:`~mixkit.methods.semiseg.PSMT` and
:class:`~mixkit.methods.semiseg.DualTeacher` — on
:class:`~mixkit.methods.semiseg.trainer_base.SemisegTrainer`; :func:`build_trainer` picks one.
Each exposes its whole state (student, teachers, optimisers, switch state, generators, data
streams, epoch/step, history) through ``state_dict`` / ``load_state_dict``.

Loop shared by all methods (``SemisegTrainer.train_epoch`` / ``train_step``):

    block.start_epoch(e)                     # PS-MT: on-duty teacher; DT: active teacher/mix
    for i in range(epoch length):
        x_l, y_l = labeled batch;  x_u, valid = unlabeled batch (float [0, 1] on the device)
        batch = block.prepare(x_u, valid)    # teachers' pseudo-labels, views, mixing
        logits = student(x_l [+ batch.inputs[0]]), student(other inputs)   (one DDP call)
        loss = CE(logits_l, y_l) + block.loss(logits_u, batch)
        optimiser step (poly LR, power 0.9 as in both official codes);  block.update(step)
    validation mIoU, teacher-student distances, checkpoint

Data-parallel under ``torchrun`` (pass ``env`` from :func:`mixkit.distributed.init_from_env`):
``batch_size`` / ``unlabeled_batch_size`` are global batches, each rank takes its
``[rank::world]`` share of every global batch of the (same-seed) streams, augmentation /
mixing generators are per rank (:func:`mixkit.distributed.rank_seed`, rank 0 = the plain
run), the student's training forwards go through DistributedDataParallel (BatchNorm
synchronised), the logged values are averaged over ranks, and the EMA teachers, updated from
the synchronised student, stay identical on every rank.
"""

from __future__ import annotations

from typing import Any

import torch

from mixkit import distributed
from mixkit.methods.semiseg.build import StudentCall, new_optimizer
from mixkit.methods.semiseg.config import METHODS, SemisegConfig
from mixkit.methods.semiseg.dual_teacher import DualTeacher
from mixkit.methods.semiseg.mean_teacher import MeanTeacher
from mixkit.methods.semiseg.psmt import PSMT
from mixkit.methods.semiseg.trainer_base import SemisegTrainer, sup_ce
from mixkit.methods.semiseg.views import normalise, strong_colour


class SupervisedTrainer(SemisegTrainer):
    """Labeled images only: ``CE(S(x_l), y_l)`` (ignore 255)."""

    method = "sup"
    epoch_unit = "labeled"

    def train_step(self, i: int) -> dict[str, torch.Tensor]:
        xl, yl = self.source.labeled()
        x = normalise(xl, self.source.mean, self.source.std)
        with self.precision.autocast():
            (logits,) = self.student_forward(x)
        loss = sup_ce(logits, yl)
        self.optimise(self.optimizer, loss)
        return {"loss": loss.detach(), "loss_sup": loss.detach()}


class MeanTeacherTrainer(SemisegTrainer):
    """Mean teacher + ``cfg.mix`` (:class:`MeanTeacher`)."""

    method = "mt"

    def make_block(self) -> MeanTeacher:
        c = self.cfg
        return MeanTeacher(self.student, ema=c.mt_ema, threshold=c.mt_threshold,
                           weight=c.mt_weight, mixer=self.mixer, **self.block_kwargs())  # fmt: skip

    @property
    def teacher(self) -> torch.nn.Module:
        return self.block.teacher


class PSMTTrainer(SemisegTrainer):
    """PS-MT (:class:`PSMT`). Warm-up epochs: T1, T2 (weak view) and the student (strong
    view) each take a supervised step on their own labeled batch with their own optimiser
    (``Base/base_trainer.py::train`` runs a warm-up pass per net); the learning rate stays at
    its base value until the schedule starts with the first semi-supervised epoch."""

    method = "psmt"

    def make_block(self) -> PSMT:
        c = self.cfg
        semi = self.epoch_length(c.psmt_warmup_epochs)
        block = PSMT(
            self.student, ema=c.psmt_ema, threshold=c.psmt_threshold, weight=c.psmt_weight,
            rampup_steps=c.psmt_rampup_epochs * semi, gamma=c.psmt_gamma,
            assist_topk=c.psmt_assist_topk, warmup_epochs=c.psmt_warmup_epochs,
            mixer=self.mixer, vat=c.psmt_vat, vat_xi=c.vat_xi, vat_eps=c.vat_eps,
            **self.block_kwargs(),
        )  # fmt: skip
        block.begin_warmup(lambda t: new_optimizer(c, t))
        self.teacher_forward = {
            k: StudentCall(t, c.channels_last) for k, t in block.teachers().items()
        }
        return block

    def epoch_length(self, epoch: int) -> int:
        warm = epoch < self.cfg.psmt_warmup_epochs  # warm-up passes over the labeled set
        unit = "labeled" if warm else "unlabeled"
        return self.cfg.iters_per_epoch or max(self.source.per_pass[unit], 1)

    def lr_start(self) -> int:
        return sum(self.epoch_length(e) for e in range(self.cfg.psmt_warmup_epochs))

    def distribute(self) -> None:
        super().distribute()
        if self.block.teacher_optimizers is not None:  # the teachers still train: DDP too
            for k, fwd in self.teacher_forward.items():
                self.teacher_forward[k] = distributed.wrap_ddp(fwd, self.env)

    def train_step(self, i: int) -> dict[str, torch.Tensor]:
        if not self.block.in_warmup():
            return super().train_step(i)
        blk = self.block
        assert blk.teacher_optimizers is not None
        for name, opt in blk.teacher_optimizers.items():
            xl, yl = self.source.labeled()
            with self.precision.autocast():
                (logits,) = self.teacher_forward[name](blk.normalise(xl))
            self.optimise(opt, sup_ce(logits, yl), key=name)
        xl, yl = self.source.labeled()
        xs = blk.normalise(strong_colour(xl, self.gens["aug"]))
        with self.precision.autocast():
            (logits,) = self.student_forward(xs)
        loss = sup_ce(logits, yl)
        self.optimise(self.optimizer, loss)
        blk.update(self.step + 1)
        return {"loss": loss.detach(), "loss_sup": loss.detach()}


class DualTeacherTrainer(SemisegTrainer):
    """Dual Teacher (:class:`DualTeacher`): box mixer ``cfg.mix`` and ClassMix in turn."""

    method = "dualteacher"
    epoch_unit = "labeled"  # tools/train.py: ``for i in range(len(train_loader))``

    def make_block(self) -> DualTeacher:
        c = self.cfg
        return DualTeacher(
            self.student, ema=c.dt_ema, threshold=c.dt_threshold, ic_weight=c.dt_ic_weight,
            mixer=self.mixer, classmix=self._build_mixer("classmix"),
            ema_buffers=c.dt_ema_buffers, cutmix_confidence=c.dt_cutmix_confidence,
            **self.block_kwargs(),
        )  # fmt: skip


TRAINERS: dict[str, type[SemisegTrainer]] = {
    "sup": SupervisedTrainer,
    "mt": MeanTeacherTrainer,
    "psmt": PSMTTrainer,
    "dualteacher": DualTeacherTrainer,
}
assert set(TRAINERS) == set(METHODS)


def build_trainer(
    cfg: SemisegConfig, ds: Any, labeled: Any, unlabeled: Any,
    env: distributed.DistEnv | None = None,
) -> SemisegTrainer:  # fmt: skip
    """The trainer of ``cfg.method`` on ``ds`` — the canvases (``SegDataset`` with index
    tensors ``labeled`` / ``unlabeled``) or on-disk data (``DiskData`` with its datasets) —
    data-parallel over ``env``'s ranks when given (collective then: every rank calls it)."""
    if cfg.method not in TRAINERS:
        raise ValueError(f"method must be one of {list(TRAINERS)}, got {cfg.method!r}")
    trainer = TRAINERS[cfg.method](cfg, ds, labeled, unlabeled, env=env)
    trainer.distribute()
    return trainer
