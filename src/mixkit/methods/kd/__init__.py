"""Knowledge distillation with data augmentation (Good-DA-in-KD, NeurIPS 2022).

Modules: ``schemes`` / ``autoaugment`` (DA schemes for the distillation input x′, incl.
CutMixPick), ``loss`` (the KD loss), ``step`` (:class:`DistillStep`, one KD step over any
teacher / student module), ``checkpoints`` (any teacher: a run folder or a state_dict file),
``batches`` (cached teacher logits), ``trainer`` (the ``mixkit distill`` loop), ``audit_stats``
(T. stddev, CE covariance, rank correlations) and ``audit`` (the ``mixkit kd-audit`` runner);
``config`` holds both commands' configs. See docs/kd.md."""

from mixkit.methods.kd.audit import run_audit
from mixkit.methods.kd.audit_stats import (
    ChunkMeans,
    ce_covariance,
    correlations,
    kendall,
    pearson,
    spearman,
    t_stddev,
    t_stddev_of_stream,
)
from mixkit.methods.kd.checkpoints import TeacherSpec, load_teacher, resolve_teacher
from mixkit.methods.kd.config import AuditConfig, KDConfig
from mixkit.methods.kd.loss import kd_loss
from mixkit.methods.kd.schemes import SCHEMES, CutMixPick, SchemeContext, build_scheme, entropy
from mixkit.methods.kd.step import DistillOutput, DistillStep
from mixkit.methods.kd.trainer import run

__all__ = [
    "SCHEMES",
    "AuditConfig",
    "CutMixPick",
    "DistillOutput",
    "DistillStep",
    "KDConfig",
    "SchemeContext",
    "build_scheme",
    "kd_loss",
    "load_teacher",
    "resolve_teacher",
    "run",
    "run_audit",
    "t_stddev",
]
