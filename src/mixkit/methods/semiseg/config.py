"""``SemisegConfig``: every knob of ``mixkit semiseg`` (field names are the CLI flags).

Defaults are the official ones where the method defines them (PS-MT ``VocCode/train.py``,
Dual Teacher ``tools/train.py``) and a CPU-sized budget otherwise: an "epoch" is
``iters_per_epoch`` iterations of
``batch_size`` labeled + ``unlabeled_batch_size`` unlabeled canvases — the unit at which the
PS-MT and Dual Teacher teachers switch — not a pass over the data, so every method and split
gets the same number of student updates.
"""

from __future__ import annotations

import dataclasses

from mixkit.methods.semiseg.data import FRACTIONS, PROTOCOLS
from mixkit.methods.semiseg.mix import MIXERS

METHODS = ("sup", "mt", "psmt", "dualteacher")


@dataclasses.dataclass
class SemisegConfig:
    """Semi-supervised segmentation run (``mixkit semiseg``)."""

    method: str = "mt"
    split: str = "1/16"
    protocol: str = "random"
    mix: str = "cutmix"
    # data (fixed across run seeds: the split is a file, as in the VOC protocols)
    canvas: int = 48
    n_train: int = 1000
    n_val: int = 300
    max_digits: int = 3
    texture_p: float = 0.5
    data_seed: int = 0
    split_seed: int = 0
    split_file: str = ""
    splits_dir: str = ""
    # model and budget
    width: int = 16
    # encoder pretrained on scikit-learn digit canvases (an ImageNet-backbone analogue that
    # uses no MNIST data; 0 = random init); cached under pretrain_cache
    pretrain_steps: int = 0
    pretrain_seed: int = 0
    pretrain_cache: str = "runs/semiseg_pretrain"
    epochs: int = 8
    iters_per_epoch: int = 50
    batch_size: int = 8
    unlabeled_batch_size: int = 8
    optimizer: str = "adamw"
    lr: float = 0.006
    weight_decay: float = 0.0001
    translate: int = 4
    # mixing (PS-MT / Dual Teacher: λ ~ Beta(4, 4) once per batch, randperm partners)
    mix_alpha: float = 4.0
    per_sample_lam: bool = False
    pairing: str = "random"
    multibox_n: int = 3
    classmix_half: str = "floor"
    teacher_bn: str = "batch"
    # mean teacher + mix (French et al. 2020 style)
    mt_ema: float = 0.99
    mt_threshold: float = 0.95
    mt_weight: float = 1.0
    # PS-MT (VocCode/train.py, EntireModel.py, losses.py::semi_ce_loss)
    psmt_ema: float = 0.996
    psmt_threshold: float = 0.6
    psmt_weight: float = 1.5
    psmt_rampup_epochs: float = 2.0
    psmt_warmup_epochs: int = 1
    psmt_gamma: float = 0.5
    psmt_assist_topk: int = 0
    psmt_vat: bool = False
    vat_xi: float = 1e-6
    vat_eps: float = 2.0
    # Dual Teacher (tools/train.py::train_dual, seg_core/augmentations.py)
    dt_ema: float = 0.99
    dt_threshold: float = 0.95
    dt_ic_weight: float = 0.2
    dt_ema_buffers: bool = False
    # run
    seed: int = 0
    device: str = "cpu"
    out: str = "runs/semiseg"
    distance_images: int = 64
    distance_every: int = 5
    resume: bool = False
    checkpoint_every: int = 0  # also checkpoint every N steps mid-epoch (0: epoch ends only)
    progress: bool = False

    def __post_init__(self) -> None:
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be an int >= 0, got {self.checkpoint_every!r}")
        choices = {
            "method": METHODS,
            "split": FRACTIONS,
            "protocol": PROTOCOLS,
            "mix": MIXERS,
            "optimizer": ("adamw", "sgd"),
            "pairing": ("cycle", "roll", "flip", "random"),
            "classmix_half": ("floor", "ceil"),
            "teacher_bn": ("batch", "eval"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}"
                )
        positive_ints = (
            "canvas", "n_train", "n_val", "max_digits", "width", "epochs", "iters_per_epoch",
            "batch_size", "unlabeled_batch_size", "multibox_n", "distance_every",
        )  # fmt: skip
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        for name in ("lr", "mix_alpha", "vat_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("mt_ema", "psmt_ema", "dt_ema", "texture_p", "psmt_gamma"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("mt_threshold", "psmt_threshold", "dt_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("weight_decay", "translate", "psmt_rampup_epochs", "psmt_warmup_epochs",
                     "psmt_assist_topk", "mt_weight", "psmt_weight", "dt_ic_weight",
                     "distance_images", "pretrain_steps"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.method == "psmt" and self.psmt_warmup_epochs >= self.epochs:
            raise ValueError(
                f"psmt_warmup_epochs ({self.psmt_warmup_epochs}) must be < epochs ({self.epochs})"
            )
