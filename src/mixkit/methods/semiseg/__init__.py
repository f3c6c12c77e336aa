"""Semi-supervised semantic segmentation with mixing: an offline digit-segmentation dataset
with VOC-style split protocols, a DeepLab-lite net, segmentation mixers (CutMix, ClassMix,
multi-box CutMix, FMix) that move images, teacher probability maps, labels and validity
masks with one draw, mIoU, and four trainers — supervised, mean teacher + mixing, PS-MT and
Dual Teacher — plus the teacher-student distance analysis."""

from mixkit.methods.semiseg.config import METHODS, SemisegConfig
from mixkit.methods.semiseg.data import (
    FRACTIONS,
    IGNORE,
    NUM_CLASSES,
    PROTOCOLS,
    SegDataset,
    SegSplit,
    build_seg_dataset,
    ensure_split,
    load_split,
    make_split,
    write_split,
)
from mixkit.methods.semiseg.metrics import (
    ConfusionMeter,
    confusion_matrix,
    iou_from_confusion,
    miou,
)
from mixkit.methods.semiseg.mix import (
    MIXERS,
    SegMixed,
    SegMixer,
    build_seg_mixer,
)
from mixkit.methods.semiseg.net import SegNet, bn_mode
from mixkit.methods.semiseg.teacher_updates import ema_update
from mixkit.methods.semiseg.trainers import (
    TRAINERS,
    DualTeacherTrainer,
    MeanTeacherTrainer,
    PSMTTrainer,
    SemisegTrainer,
    SupervisedTrainer,
    build_trainer,
)

__all__ = [
    "IGNORE",
    "MIXERS",
    "ConfusionMeter",
    "DualTeacherTrainer",
    "MeanTeacherTrainer",
    "PSMTTrainer",
    "SegDataset",
    "SegMixer",
    "SegNet",
    "SegSplit",
    "SemisegConfig",
    "SupervisedTrainer",
    "build_seg_dataset",
    "build_seg_mixer",
    "build_trainer",
    "ema_update",
    "load_split",
    "make_split",
    "miou",
]
