"""Configs of ``mixkit distill`` (``KDConfig``) and ``mixkit kd-audit`` (``AuditConfig``);
field names are the CLI flags. Defaults are the official Good-DA-in-KD ones
(``train_student.py``, ``helper/loops.py``) where the method defines them, and a CPU budget
otherwise (epochs, cosine schedule; ``mixkit recipes`` lists the official CIFAR-100 settings).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from mixkit.config import (
    DataOptions,
    DeviceOptions,
    PrecisionOptions,
    RecipeOptions,
    ResumeOptions,
    RunOptions,
    ScheduleOptions,
    check_mapping,
)
from mixkit.feeds import AUGS
from mixkit.methods.kd.autoaugment import POLICIES
from mixkit.methods.kd.schemes import CRITERIA, scheme_names
from mixkit.options import check_options, option

# Augmentation of x itself (the data loader's transform; official: crop+flip per sample).
BASE_AUGS = AUGS


def _check_dataset(value: str | None) -> None:
    from mixkit.data import DATASETS

    if value is not None and value not in DATASETS:
        raise ValueError(f"dataset must be one of {list(DATASETS)} or unset, got {value!r}")


@dataclasses.dataclass
class SchemeOptions:
    """Options shared by every DA scheme (see ``mixkit.methods.kd.schemes.build_scheme``)."""

    per_batch: bool = option(
        False, "one draw per batch for every scheme (official torchvision-on-batch behaviour)"
    )
    crop_pad: int = option(4, "crop schemes: zero padding before the random crop", at_least=0)
    cutout_length: int = option(8, "cutout: side of the erased square in pixels", at_least=1)
    autoaugment_policy: str = option(
        "cifar10", "autoaugment: policy table", choices=lambda: sorted(POLICIES)
    )
    mix_alpha: float = option(1.0, "mixup/cutmix schemes: Beta(alpha, alpha)", above=0)
    pool_factor: int = option(2, "cutmix_pick: candidates drawn per kept sample", at_least=2)
    pick_criterion: str = option(
        "teacher_entropy",
        "cutmix_pick: how candidates are ranked (official default: kld)",
        choices=CRITERIA,
    )
    base_aug: str = option(
        "crop_flip",
        "augmentation of x itself before the scheme (imagefolder: random-resized crop)",
        choices=BASE_AUGS,
    )

    def scheme_options(self) -> dict:
        names = ("per_batch", "crop_pad", "cutout_length", "autoaugment_policy", "mix_alpha")
        opts = {k: getattr(self, k) for k in names}
        return {**opts, "pool_factor": self.pool_factor, "pick_criterion": self.pick_criterion}


@dataclasses.dataclass
class TeacherOptions(DataOptions):
    """The teacher and its data: a ``mixkit train`` run supplies model, dataset and split
    seed; a bare checkpoint / state_dict file needs ``teacher_model`` and ``dataset``."""

    teacher: str | None = option(
        None, "teacher: a mixkit train run folder, its checkpoint, or a state_dict file"
    )
    teacher_model: str | None = option(
        None, "teacher network for a bare --teacher file (a mixkit.models name or plug-in)"
    )
    teacher_args: dict[str, Any] | None = option(
        None, "keyword arguments of the teacher's constructor (YAML mapping)", check=check_mapping
    )
    dataset: str | None = option(
        None,
        "data: mnist5k, digits, cifar10, cifar100 or imagefolder (a teacher run: its own)",
        check=_check_dataset,
    )
    data_root: str | None = option(None, "folder of an on-disk dataset (a teacher run: its own)")

    def teacher_spec(self):
        """The :class:`~mixkit.methods.kd.checkpoints.TeacherSpec` of these options."""
        from mixkit.methods.kd.checkpoints import resolve_teacher

        return resolve_teacher(
            self.teacher, teacher_model=self.teacher_model, teacher_args=self.teacher_args,
            dataset=self.dataset, data_root=self.data_root, seed=self.seed,
        )  # fmt: skip


@dataclasses.dataclass
class KDConfig(
    DeviceOptions, ScheduleOptions, ResumeOptions, RecipeOptions, TeacherOptions, SchemeOptions
):
    """Knowledge distillation with a DA scheme for x′ (``mixkit distill``).

    Loss (official flags ``-r 0.1 -a 0.9 --lw_mix [1,0,1] --t_output_as_target_for_input_mix``):
    ``ce_weight*CE(s(x), y) + kd_weight*(kl_weight*KL_T(x) + aug_kl_weight*KL_T(x′))``.
    """

    command_name: ClassVar[str] = "distill"  # the sub-command its recipes are for
    student: str = option("tinycnn", "student network: a mixkit.models name or pkg.module:callable")
    student_args: dict[str, Any] | None = option(
        None, "keyword arguments of the student's constructor (YAML mapping)", check=check_mapping
    )
    da: str = option("cutmix_pick", "DA scheme making x′", choices=scheme_names)
    temperature: float = option(4.0, "softmax temperature T of the KL terms", above=0)
    ce_weight: float = option(0.1, "weight of CE(s(x), y)", at_least=0)
    kd_weight: float = option(0.9, "weight of the KL terms", at_least=0)
    kl_weight: float = option(1.0, "weight of KL_T(x) inside the KD term", at_least=0)
    aug_kl_weight: float = option(1.0, "weight of KL_T(x′) inside the KD term", at_least=0)
    joint_forward: bool = option(
        False, "one student pass over cat(x, x′) (official: two passes, own BatchNorm stats)"
    )
    train_subset: int = option(
        0, "distil on a class-stratified subset of N training images (0: all)", at_least=0
    )
    epochs: int = option(10, "student training epochs", at_least=1)
    batch_size: int = option(64, "global batch size", at_least=1)
    lr: float = option(0.05, "peak SGD learning rate", above=0)
    eval_every: int = option(
        1, "test evaluation every N epochs (and always after the last)", at_least=1
    )

    def __post_init__(self) -> None:
        check_options(self)


@dataclasses.dataclass
class AuditConfig(PrecisionOptions, RunOptions, TeacherOptions, SchemeOptions):
    """T. stddev audit of DA schemes with a fixed teacher (``mixkit kd-audit``)."""

    command_name: ClassVar[str] = "kd-audit"
    da: str = option(
        "identity,flip,crop_flip,cutout,autoaugment,mixup,cutmix,cutmix_pick_t",
        "comma-separated DA schemes to audit",
        choices=scheme_names,
        listed=True,
    )
    student_ckpt: str | None = option(
        None, "a mixkit distill checkpoint: adds the covariance and S. entropy columns"
    )
    students: str | None = option(
        None,
        "folder of mixkit distill runs of this teacher: scatter of T. stddev vs their test "
        "loss (runs distilled from another teacher are refused)",
    )
    epochs: int = option(10, "passes over the training data (official: 10)", at_least=1)
    batch_size: int = option(64, "batch size (official: 64)", at_least=1)
    group: int = option(
        640, "probability vectors per stddev group (official: 10 batches of 64)", at_least=2
    )
    include_clean: bool = option(True, "pool p(x) with p(x′) in the stream (official)")
    temperature: float = option(4.0, "temperature for pick_criterion=kld", above=0)
    train_subset: int = option(
        0, "audit on a class-stratified subset of N training images (0: all)", at_least=0
    )
    jobs: int = option(1, "schemes audited in parallel worker processes", at_least=1)
    progress: bool = option(True, "print a progress line per scheme")

    def __post_init__(self) -> None:
        check_options(self)

    @property
    def schemes(self) -> list[str]:
        return [s.strip() for s in self.da.split(",") if s.strip()]
