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
from mixkit.options import check_device, check_options, option

METHODS = ("sup", "mt", "psmt", "dualteacher")
UNIT = {"at_least": 0, "at_most": 1}


@dataclasses.dataclass
class SemisegConfig:
    """Semi-supervised segmentation run (``mixkit semiseg``)."""

    method: str = option(
        "mt", "sup (labeled only), mean teacher, PS-MT or Dual Teacher", choices=METHODS
    )
    split: str = option("1/16", "labeled fraction of the training set", choices=FRACTIONS)
    protocol: str = option("random", "how the labeled split is drawn", choices=PROTOCOLS)
    mix: str = option("cutmix", "mixer of the unlabeled batch", choices=MIXERS)
    # data (fixed across run seeds: the split is a file, as in the VOC protocols)
    canvas: int = option(48, "canvas side in pixels", at_least=1)
    n_train: int = option(1000, "training canvases", at_least=1)
    n_val: int = option(300, "validation canvases", at_least=1)
    max_digits: int = option(3, "most digits per canvas", at_least=1)
    texture_p: float = option(0.5, "probability of a photo-texture background", **UNIT)
    data_seed: int = option(0, "seed of the canvases")
    split_seed: int = option(0, "seed of the labeled split")
    split_file: str = option("", "labeled split file to use instead of drawing one")
    splits_dir: str = option("", "folder of the drawn split files (default OUT/splits)")
    # model and budget
    width: int = option(16, "SegNet base width", at_least=1)
    # encoder pretrained on scikit-learn digit canvases (an ImageNet-backbone analogue that
    # uses no MNIST data; 0 = random init); cached under pretrain_cache
    pretrain_steps: int = option(
        0, "encoder pretraining steps on sklearn digit canvases (0: random init)", at_least=0
    )
    pretrain_seed: int = option(0, "seed of the encoder pretraining")
    pretrain_cache: str = option("runs/semiseg_pretrain", "cache folder of pretrained encoders")
    epochs: int = option(8, "epochs of iters_per_epoch student updates", at_least=1)
    iters_per_epoch: int = option(50, "student updates per epoch", at_least=1)
    batch_size: int = option(8, "labeled images per step", at_least=1)
    unlabeled_batch_size: int = option(8, "unlabeled images per step", at_least=1)
    optimizer: str = option("adamw", "student optimiser", choices=("adamw", "sgd"))
    lr: float = option(0.006, "peak learning rate", above=0)
    weight_decay: float = option(0.0001, "weight decay", at_least=0)
    translate: int = option(4, "largest random shift in pixels of the weak view", at_least=0)
    # mixing (PS-MT / Dual Teacher: λ ~ Beta(4, 4) once per batch, randperm partners)
    mix_alpha: float = option(4.0, "Beta(alpha, alpha) of the mixing ratio", above=0)
    per_sample_lam: bool = option(False, "one mixing ratio per sample (official: per batch)")
    pairing: str = option(
        "random", "how mixing partners are chosen", choices=("cycle", "roll", "flip", "random")
    )
    multibox_n: int = option(3, "multibox: boxes per sample", at_least=1)
    classmix_half: str = option(
        "floor", "classmix: round half the present classes down or up", choices=("floor", "ceil")
    )
    teacher_bn: str = option(
        "batch",
        "teachers' BatchNorm: batch statistics or running (eval)",
        choices=("batch", "eval"),
    )
    # mean teacher + mix (French et al. 2020 style)
    mt_ema: float = option(0.99, "mean teacher: EMA decay", **UNIT)
    mt_threshold: float = option(
        0.95, "mean teacher: confidence threshold of a pseudo-label", **UNIT
    )
    mt_weight: float = option(1.0, "mean teacher: weight of the unsupervised loss", at_least=0)
    # PS-MT (VocCode/train.py, EntireModel.py, losses.py::semi_ce_loss)
    psmt_ema: float = option(0.996, "PS-MT: EMA decay of the teachers", **UNIT)
    psmt_threshold: float = option(0.6, "PS-MT: confidence threshold", **UNIT)
    psmt_weight: float = option(1.5, "PS-MT: weight of the unsupervised loss", at_least=0)
    psmt_rampup_epochs: float = option(
        2.0, "PS-MT: sigmoid ramp-up of the unsupervised weight in epochs", at_least=0
    )
    psmt_warmup_epochs: int = option(
        1, "PS-MT: supervised-only epochs before the teachers start", at_least=0
    )
    psmt_gamma: float = option(0.5, "PS-MT: weight of teacher 1 in the ensemble", **UNIT)
    psmt_assist_topk: int = option(0, "PS-MT: assist-mask top-k classes (0: off)", at_least=0)
    psmt_vat: bool = option(False, "PS-MT: virtual adversarial perturbation of the student view")
    vat_xi: float = option(1e-6, "PS-MT VAT: finite-difference step")
    vat_eps: float = option(2.0, "PS-MT VAT: perturbation norm", above=0)
    # Dual Teacher (tools/train.py::train_dual, seg_core/augmentations.py)
    dt_ema: float = option(0.99, "Dual Teacher: EMA decay", **UNIT)
    dt_threshold: float = option(0.95, "Dual Teacher: confidence threshold", **UNIT)
    dt_ic_weight: float = option(
        0.2, "Dual Teacher: weight of the inter-consistency loss", at_least=0
    )
    dt_ema_buffers: bool = option(False, "Dual Teacher: EMA also over BatchNorm buffers")
    # run
    seed: int = option(0, "seed of every training draw")
    device: str = option("cpu", "torch device", check=check_device)
    out: str = option("runs/semiseg", "run folder")
    distance_images: int = option(
        64, "val images of the teacher-student distance probe", at_least=0
    )
    distance_every: int = option(5, "distance probe every N epochs", at_least=1)
    resume: bool = option(False, "continue from OUT/checkpoints/last.pt")
    checkpoint_every: int = option(
        0, "also checkpoint every N steps mid-epoch (0: at epoch ends only)", at_least=0
    )
    progress: bool = option(False, "print a progress line per epoch")

    def __post_init__(self) -> None:
        check_options(self)
        if self.method == "psmt" and self.psmt_warmup_epochs >= self.epochs:
            raise ValueError(
                f"psmt_warmup_epochs ({self.psmt_warmup_epochs}) must be < epochs ({self.epochs})"
            )
