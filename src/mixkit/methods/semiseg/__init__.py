"""Semi-supervised semantic segmentation with mixing.

Building blocks for any student ``nn.Module`` (logits (B, K, H, W)): :class:`MeanTeacher`,
:class:`PSMT` and :class:`DualTeacher` hold their teachers, EMA schedules and switch rules,
make pseudo-labels and the unsupervised loss (``m.unsup_loss(x_u, generator=g)``, then
``m.update(step)``). Around them: segmentation mixers (CutMix, ClassMix, multi-box CutMix,
FMix) that move images, teacher probability maps, labels and validity masks with one draw,
mIoU, an offline digit-canvas dataset with VOC-style split protocols, on-disk VOC /
Cityscapes / folder datasets, a DeepLab-lite net, and the ``mixkit semiseg`` trainers
(supervised, mean teacher, PS-MT, Dual Teacher) with the teacher-student distance analysis."""

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
from mixkit.methods.semiseg.dual_teacher import DualTeacher
from mixkit.methods.semiseg.mean_teacher import MeanTeacher
from mixkit.methods.semiseg.method_base import TeacherMethod, UnsupBatch
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
from mixkit.methods.semiseg.psmt import PSMT
from mixkit.methods.semiseg.teacher_updates import ema_update
from mixkit.methods.semiseg.trainer_base import SemisegTrainer
from mixkit.methods.semiseg.trainers import (
    TRAINERS,
    DualTeacherTrainer,
    MeanTeacherTrainer,
    PSMTTrainer,
    SupervisedTrainer,
    build_trainer,
)

__all__ = [
    "MIXERS",
    "PSMT",
    "ConfusionMeter",
    "DualTeacher",
    "MeanTeacher",
    "SegDataset",
    "SegMixer",
    "SegNet",
    "SemisegConfig",
    "SemisegTrainer",
    "TeacherMethod",
    "build_seg_dataset",
    "build_seg_mixer",
    "miou",
]
