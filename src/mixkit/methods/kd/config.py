"""Configs of ``mixkit distill`` (``KDConfig``) and ``mixkit kd-audit`` (``AuditConfig``);
field names are the CLI flags. Defaults are the official Good-DA-in-KD ones
(``train_student.py``, ``helper/loops.py``) where the method defines them, and a CPU budget
otherwise (epochs, cosine schedule)."""

from __future__ import annotations

import dataclasses

from mixkit.methods.kd.autoaugment import POLICIES
from mixkit.methods.kd.schemes import CRITERIA, canonical_name

# Augmentation of x itself (the data loader's transform; official: crop+flip per sample).
BASE_AUGS = ("crop_flip", "crop", "none")


@dataclasses.dataclass
class SchemeOptions:
    """Options shared by every DA scheme (see ``mixkit.methods.kd.schemes.build_scheme``)."""

    per_batch: bool = False  # True: one draw per batch (official torchvision-on-batch quirk)
    crop_pad: int = 4
    cutout_length: int = 8
    autoaugment_policy: str = "cifar10"
    mix_alpha: float = 1.0
    pool_factor: int = 2
    pick_criterion: str = "teacher_entropy"  # official default is kld: pass it explicitly
    base_aug: str = "crop_flip"

    def scheme_options(self) -> dict:
        names = ("per_batch", "crop_pad", "cutout_length", "autoaugment_policy", "mix_alpha")
        opts = {k: getattr(self, k) for k in names}
        return {**opts, "pool_factor": self.pool_factor, "pick_criterion": self.pick_criterion}

    def _check_scheme_options(self) -> None:
        if self.crop_pad < 0:
            raise ValueError(f"crop_pad must be >= 0, got {self.crop_pad!r}")
        if self.cutout_length < 1:
            raise ValueError(f"cutout_length must be >= 1, got {self.cutout_length!r}")
        if self.autoaugment_policy not in POLICIES:
            raise ValueError(
                f"autoaugment_policy must be one of {sorted(POLICIES)}, "
                f"got {self.autoaugment_policy!r}"
            )
        if not self.mix_alpha > 0:
            raise ValueError(f"mix_alpha must be > 0, got {self.mix_alpha!r}")
        if self.pool_factor < 2:
            raise ValueError(f"pool_factor must be >= 2, got {self.pool_factor!r}")
        if self.pick_criterion not in CRITERIA:
            raise ValueError(
                f"pick_criterion must be one of {list(CRITERIA)}, got {self.pick_criterion!r}"
            )
        if self.base_aug not in BASE_AUGS:
            raise ValueError(f"base_aug must be one of {list(BASE_AUGS)}, got {self.base_aug!r}")


def _check_common(cfg) -> None:
    for name in ("epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be an int >= 1, got {getattr(cfg, name)!r}")
    if cfg.train_subset < 0:
        raise ValueError(f"train_subset must be >= 0 (0 = all), got {cfg.train_subset!r}")


@dataclasses.dataclass
class KDConfig(SchemeOptions):
    """Knowledge distillation with a DA scheme for x′ (``mixkit distill``).

    Loss (official flags ``-r 0.1 -a 0.9 --lw_mix [1,0,1] --t_output_as_target_for_input_mix``):
    ``ce_weight*CE(s(x), y) + kd_weight*(kl_weight*KL_T(x) + aug_kl_weight*KL_T(x′))``.
    """

    teacher: str | None = None  # checkpoint of a ``mixkit train`` run (or the run folder)
    student: str = "tinycnn"
    da: str = "cutmix_pick"
    temperature: float = 4.0
    ce_weight: float = 0.1
    kd_weight: float = 0.9
    kl_weight: float = 1.0
    aug_kl_weight: float = 1.0
    # False (official): s(x) and s(x′) are two forward passes, so BatchNorm normalises each
    # with its own batch statistics; True: one pass over cat(x, x′).
    joint_forward: bool = False
    train_subset: int = 0  # first N training images of the teacher's split (0 = all)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    eval_every: int = 1  # test evaluation every N epochs (and always after the last)
    seed: int = 0
    device: str = "cpu"
    out: str = "runs/distill"
    progress: bool = True
    resume: bool = False  # continue from OUT/checkpoints/last.pt (mid-epoch included)
    checkpoint_every: int = 0  # also checkpoint every N optimiser steps (0: epoch ends only)

    def __post_init__(self) -> None:
        self._check_scheme_options()
        _check_common(self)
        canonical_name(self.da)
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be an int >= 0, got {self.checkpoint_every!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        for name in ("ce_weight", "kd_weight", "kl_weight", "aug_kl_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be an int >= 1, got {self.eval_every!r}")


@dataclasses.dataclass
class AuditConfig(SchemeOptions):
    """T. stddev audit of DA schemes with a fixed teacher (``mixkit kd-audit``)."""

    teacher: str | None = None
    da: str = "identity,flip,crop_flip,cutout,autoaugment,mixup,cutmix,cutmix_pick_t"
    student_ckpt: str | None = None  # a ``mixkit distill`` checkpoint: covariance + S. entropy
    students: str | None = None  # folder of ``mixkit distill`` runs: scatter vs test loss
    epochs: int = 10  # official: 10 passes
    batch_size: int = 64  # official: 64
    group: int = 640  # official: every 10 appended batches of 64 probability vectors
    include_clean: bool = True  # official: p(x) and p(x′) are pooled in the stream
    temperature: float = 4.0  # only for pick_criterion=kld
    train_subset: int = 0
    jobs: int = 1  # schemes audited in parallel worker processes
    seed: int = 0
    device: str = "cpu"
    out: str = "runs/kd_audit"
    progress: bool = True

    def __post_init__(self) -> None:
        self._check_scheme_options()
        _check_common(self)
        if self.jobs < 1:
            raise ValueError(f"jobs must be an int >= 1, got {self.jobs!r}")
        if self.group < 2:
            raise ValueError(f"group must be an int >= 2, got {self.group!r}")
        names = [s.strip() for s in self.da.split(",") if s.strip()]
        if not names:
            raise ValueError(f"da must list at least one scheme, got {self.da!r}")
        for n in names:
            canonical_name(n)

    @property
    def schemes(self) -> list[str]:
        return [s.strip() for s in self.da.split(",") if s.strip()]
