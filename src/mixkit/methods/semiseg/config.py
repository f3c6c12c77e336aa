"""``SemisegConfig``: every knob of ``mixkit semiseg`` (field names are the CLI flags).

Defaults: the embedded digit canvases with the small SegNet (pretrained encoder), sized so
``mixkit semiseg --method dualteacher --split 1/16`` gives a model worth looking at in a few
minutes on 2 CPU cores. An "epoch" is ``iters_per_epoch`` iterations of ``batch_size``
labeled + ``unlabeled_batch_size`` unlabeled images — the unit at which the PS-MT and Dual
Teacher teachers switch — or, with ``iters_per_epoch 0``, one pass as the official codes
count it (PS-MT ``VocCode/main.py``: ``iter_per_epoch = len(unsupervised_loader)``; Dual
Teacher ``tools/train.py``: ``range(len(train_loader))``, the labeled loader). The paper
recipes (``--config semiseg_psmt_voc_1-16`` ...) set the official values on real data.
"""

from __future__ import annotations

import dataclasses

from mixkit.config import PrecisionOptions, ResumeOptions, RunOptions
from mixkit.methods.semiseg.data import BACKGROUNDS, FRACTIONS, PROTOCOLS
from mixkit.methods.semiseg.evaluate import EVAL_MODES
from mixkit.methods.semiseg.mean_teacher import DEFAULT_THRESHOLD
from mixkit.methods.semiseg.mix import MIXERS
from mixkit.methods.semiseg.schedules import LR_SCHEDULES
from mixkit.options import check_options, option

METHODS = ("sup", "mt", "psmt", "dualteacher")
DATASETS = ("canvas", "voc", "cityscapes", "folder")
UNIT = {"at_least": 0, "at_most": 1}


def check_model(value: str) -> None:
    """A registered segmentation model or a ``pkg.module:callable`` plug-in."""
    from mixkit.models import seg_names

    if not isinstance(value, str) or not (value in seg_names() or ":" in value):
        raise ValueError(
            f"model must be one of {seg_names()} or a plug-in 'pkg.module:callable', got {value!r}"
        )


@dataclasses.dataclass
class SemisegConfig(PrecisionOptions, ResumeOptions, RunOptions):
    """Semi-supervised segmentation run (``mixkit semiseg``)."""

    method: str = option(
        "mt", "sup (labeled only), mean teacher, PS-MT or Dual Teacher", choices=METHODS
    )
    split: str = option("1/16", "canvas: labeled fraction of the training set", choices=FRACTIONS)
    protocol: str = option("random", "canvas: how the labeled split is drawn", choices=PROTOCOLS)
    mix: str = option("cutmix", "mixer of the unlabeled batch", choices=MIXERS)
    # data: the embedded canvases, or a dataset on disk named by split lists
    dataset: str = option(
        "canvas", "canvas (embedded digit canvases) or an on-disk dataset", choices=DATASETS
    )
    data_root: str = option("", "root of an on-disk dataset (e.g. VOCdevkit/VOC2012)")
    labeled_list: str = option("", "split list of the labeled images (relative to data_root)")
    unlabeled_list: str = option("", "split list of the unlabeled images (masks never read)")
    val_list: str = option("", "split list of the val images (default: the layout's val set)")
    num_classes: int = option(
        0, "classes of a folder dataset (0: 21 voc, 19 cityscapes)", at_least=0
    )
    crop_size: int = option(512, "on-disk data: square training crop in pixels", at_least=1)
    base_size: int = option(
        0, "on-disk data: long side scaled to 0.5-2x this before cropping (0: image's own)",
        at_least=0,
    )  # fmt: skip
    workers: int = option(0, "DataLoader worker processes of on-disk data", at_least=0)
    # canvases (fixed across run seeds: the split is a file, as in the VOC protocols)
    canvas: int = option(48, "canvas side in pixels", at_least=1)
    n_train: int = option(1000, "training canvases", at_least=1)
    n_val: int = option(300, "validation canvases", at_least=1)
    max_digits: int = option(3, "most digits per canvas", at_least=1)
    texture_p: float = option(0.5, "probability of a photo-texture background", **UNIT)
    texture: str = option(
        "mixed",
        "canvas backgrounds: mixed (flat or photo, texture_p) or photo (a photo crop at every "
        "pixel; train and val canvases from disjoint photos)",
        choices=BACKGROUNDS,
    )
    data_seed: int = option(0, "seed of the canvases / of the on-disk augmentation draws")
    split_seed: int = option(0, "seed of the labeled split")
    split_file: str = option("", "labeled split file to use instead of drawing one")
    splits_dir: str = option("", "folder of the drawn split files (default OUT/splits)")
    # model
    model: str = option(
        "segnet", "segmentation net: segnet, deeplabv3plus_resnet50/101 or pkg.module:callable",
        check=check_model,
    )  # fmt: skip
    backbone_weights: str = option("", "local torchvision-key ResNet weights of the backbone")
    width: int = option(16, "segnet: base width", at_least=1)
    # segnet on the canvases: encoder pretrained on scikit-learn digit canvases (an
    # ImageNet-backbone analogue that uses no MNIST data); cached under pretrain_cache
    pretrain_steps: int = option(
        600, "canvas + segnet: encoder pretraining steps on sklearn digits (0: random init)",
        at_least=0,
    )  # fmt: skip
    pretrain_seed: int = option(0, "seed of the encoder pretraining")
    pretrain_cache: str = option("runs/semiseg_pretrain", "cache folder of pretrained encoders")
    # budget and optimisation
    epochs: int = option(24, "epochs (see iters_per_epoch)", at_least=1)
    iters_per_epoch: int = option(
        50, "student updates per epoch (0: one pass, as the official codes)", at_least=0
    )
    batch_size: int = option(8, "labeled images per step (global)", at_least=1)
    unlabeled_batch_size: int = option(8, "unlabeled images per step (global)", at_least=1)
    optimizer: str = option("adamw", "student optimiser", choices=("adamw", "sgd"))
    lr: float = option(0.006, "peak learning rate", above=0)
    weight_decay: float = option(0.0001, "weight decay (none on norms and biases)", at_least=0)
    lr_schedule: str = option("poly", "poly (1 - t/T)^lr_power, or constant", choices=LR_SCHEDULES)
    lr_power: float = option(0.9, "power of the poly schedule", above=0)
    lr_warmup_steps: int = option(0, "linear learning-rate warm-up steps", at_least=0)
    head_lr_mult: float = option(
        1.0, "learning-rate multiplier of the parameters outside the backbone", above=0
    )
    translate: int = option(
        4, "canvas: largest random shift in pixels of the weak view", at_least=0
    )
    # mixing (PS-MT / Dual Teacher: λ ~ Beta(4, 4) once per batch, randperm partners)
    mix_alpha: float = option(4.0, "Beta(alpha, alpha) of the mixing ratio", above=0)
    per_sample_lam: bool = option(False, "one mixing ratio per sample (official: per batch)")
    pairing: str = option(
        "random", "how mixing partners are chosen", choices=("cycle", "roll", "flip", "random")
    )
    multibox_n: int = option(3, "multibox: boxes per sample", at_least=1)
    cutmix_box: str = option(
        "official",
        "cutmix box law: official (rand_bbox_1: centre from side/8, even side) or "
        "uniform (centre over every pixel)",
        choices=("official", "uniform"),
    )
    classmix_half: str = option(
        "floor", "classmix: round half the present classes down or up", choices=("floor", "ceil")
    )
    teacher_bn: str = option(
        "batch", "teachers' BatchNorm: batch statistics or running (eval)",
        choices=("batch", "eval"),
    )  # fmt: skip
    # mean teacher + mix (French et al. 2020 style)
    mt_ema: float = option(0.99, "mean teacher: EMA decay", **UNIT)
    mt_threshold: float = option(
        DEFAULT_THRESHOLD, "mean teacher: confidence threshold of a pseudo-label", **UNIT
    )
    mt_weight: float = option(1.0, "mean teacher: weight of the unsupervised loss", at_least=0)
    # PS-MT (VocCode/train.py, EntireModel.py, losses.py::semi_ce_loss)
    psmt_ema: float = option(0.996, "PS-MT: EMA keep rate of the on-duty teacher", **UNIT)
    psmt_threshold: float = option(0.6, "PS-MT: confidence threshold", **UNIT)
    psmt_weight: float = option(1.5, "PS-MT: weight of the unsupervised loss", at_least=0)
    psmt_rampup_epochs: float = option(
        2.0, "PS-MT: cosine ramp-up of the unsupervised weight in epochs", at_least=0
    )
    psmt_warmup_epochs: int = option(
        1, "PS-MT: supervised-only epochs (within epochs) before the teachers start", at_least=0
    )
    psmt_gamma: float = option(0.5, "PS-MT: weight of teacher 1 in the ensemble", **UNIT)
    psmt_assist_topk: int = option(
        7, "PS-MT: assist-mask top-k classes (official VocCode/train.py: 7; 0: off)", at_least=0
    )
    psmt_vat: bool = option(False, "PS-MT: virtual adversarial perturbation of the student view")
    vat_xi: float = option(1e-6, "PS-MT VAT: finite-difference step")
    vat_eps: float = option(2.0, "PS-MT VAT: perturbation norm", above=0)
    # Dual Teacher (tools/train.py::train_dual, seg_core/augmentations.py)
    dt_ema: float = option(0.99, "Dual Teacher: EMA decay", **UNIT)
    dt_threshold: float = option(0.95, "Dual Teacher: confidence threshold", **UNIT)
    dt_ic_weight: float = option(
        0.2, "Dual Teacher: weight of the implicit-consistency loss", at_least=0
    )
    dt_cutmix_confidence: str = option(
        "unmixed",
        "Dual Teacher: confidence map counted for the CutMix weight (official: unmixed)",
        choices=("unmixed", "mixed"),
    )
    dt_ema_buffers: bool = option(False, "Dual Teacher: EMA also over BatchNorm buffers")
    # evaluation and logging
    eval_mode: str = option(
        "whole", "on-disk val: whole image or sliding window", choices=EVAL_MODES
    )
    eval_stride: int = option(
        0, "sliding-window stride in pixels (0: 2/3 of crop_size)", at_least=0
    )
    eval_every: int = option(1, "evaluate every N epochs (and after the last)", at_least=1)
    log_every: int = option(0, "print running means every N steps (0: per epoch only)", at_least=0)
    # run (seed, device, out, overwrite, resume: RunOptions, ResumeOptions)
    distance_images: int = option(
        64, "val images of the teacher-student distance probe", at_least=0
    )
    distance_every: int = option(5, "distance curve point every N steps", at_least=1)
    progress: bool = option(False, "print a progress line per epoch")  # quiet by default

    def __post_init__(self) -> None:
        check_options(self)
        if self.method == "psmt" and self.psmt_warmup_epochs >= self.epochs:
            raise ValueError(
                f"psmt_warmup_epochs ({self.psmt_warmup_epochs}) must be < epochs ({self.epochs})"
            )
        if self.dataset == "folder" and self.num_classes < 1:
            raise ValueError("num_classes must be >= 1 for dataset 'folder'")
        if self.dataset != "canvas" and not self.data_root:
            raise ValueError(f"data_root is required for dataset {self.dataset!r}")
        if self.eval_stride > self.crop_size:
            raise ValueError(
                f"eval_stride ({self.eval_stride}) must not exceed crop_size ({self.crop_size})"
            )
