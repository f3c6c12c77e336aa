"""The mixer modules, one file per family. Each subclass only draws its region
(``_draw_region``); ``MixTransform`` does the pairing, gating, apply and labels."""

from mixkit.augment.transforms.choice import MixUpCutMix, RandomChoice
from mixkit.augment.transforms.classmix import ClassMix
from mixkit.augment.transforms.cutmix import CutMix
from mixkit.augment.transforms.cutout import Cutout
from mixkit.augment.transforms.fmix import FMix
from mixkit.augment.transforms.mixup import MixUp
from mixkit.augment.transforms.multibox import MultiBoxCutMix
from mixkit.augment.transforms.recursivemix import RecursiveMix
from mixkit.augment.transforms.resizemix import ResizeMix
