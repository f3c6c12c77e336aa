"""Knowledge distillation with data augmentation (Good-DA-in-KD, NeurIPS 2022):
DA schemes for the distillation input x′ (incl. CutMixPick), the KD trainer and the
T. stddev audit. See docs/kd.md."""

from mixkit.kd.audit import (
    ChunkMeans,
    ce_covariance,
    correlations,
    kendall,
    pearson,
    run_audit,
    spearman,
    t_stddev,
    t_stddev_of_stream,
)
from mixkit.kd.config import AuditConfig, KDConfig
from mixkit.kd.schemes import SCHEMES, CutMixPick, SchemeContext, build_scheme, entropy
from mixkit.kd.trainer import kd_loss, load_teacher, run

__all__ = [
    "SCHEMES",
    "AuditConfig",
    "ChunkMeans",
    "CutMixPick",
    "KDConfig",
    "SchemeContext",
    "build_scheme",
    "ce_covariance",
    "correlations",
    "entropy",
    "kd_loss",
    "kendall",
    "load_teacher",
    "pearson",
    "run",
    "run_audit",
    "spearman",
    "t_stddev",
    "t_stddev_of_stream",
]
