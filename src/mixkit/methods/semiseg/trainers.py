"""Semi-supervised segmentation trainers: supervised-only (:mod:`.supervised`), mean teacher +
mixing (:mod:`.mean_teacher`), PS-MT (:mod:`.psmt`) and Dual Teacher (:mod:`.dual_teacher`),
all built on :class:`~mixkit.methods.semiseg.trainer_base.SemisegTrainer`; this module holds
the registry and :func:`build_trainer`. Each exposes its whole state (student, teachers,
optimisers, switch state, random generators, data streams, epoch/step, history) through
``state_dict`` / ``load_state_dict``, so a run killed after any epoch resumes to the same
bytes.

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

from torch import Tensor

from mixkit import distributed
from mixkit.methods.semiseg.config import METHODS, SemisegConfig
from mixkit.methods.semiseg.data import SegDataset
from mixkit.methods.semiseg.dual_teacher import DualTeacherTrainer
from mixkit.methods.semiseg.mean_teacher import MeanTeacherTrainer
from mixkit.methods.semiseg.psmt import PSMTTrainer
from mixkit.methods.semiseg.supervised import SupervisedTrainer
from mixkit.methods.semiseg.trainer_base import SemisegTrainer

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
