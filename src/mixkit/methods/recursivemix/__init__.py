"""RecursiveMix (Yang et al., NeurIPS 2022): mixed learning with history.

Each training batch gets the *previous mixed batch* (images, soft labels) resized into one box;
a separate ROI head, fed the 1x1 ROI-Aligned final feature map of the box, is trained to
predict the softmax of the logits the model gave the previous batch.

Modules:
    - :class:`RecursiveMix`, the stateful augment (in ``mixkit.augment``, with the other mixers).
    - :mod:`~mixkit.methods.recursivemix.loss`: :class:`RoIHead` and
      :func:`recursive_mix_loss`, the consistency term.
    - :mod:`~mixkit.methods.recursivemix.step`: :class:`RecursiveMixStep` (one training step)
      and :class:`FeatureModel` (the ``features``/``head`` wrapper).
    - :mod:`~mixkit.methods.recursivemix.roi_align`: pure-torch ROI-Align.
"""

from mixkit.augment.transforms.recursivemix import INTERPOLATIONS, RecursiveMix
from mixkit.methods.recursivemix.loss import RoIHead, recursive_mix_loss
from mixkit.methods.recursivemix.roi_align import roi_align
from mixkit.methods.recursivemix.step import FeatureModel, RecursiveMixOutput, RecursiveMixStep

__all__ = [
    "FeatureModel",
    "RecursiveMix",
    "RecursiveMixOutput",
    "RecursiveMixStep",
    "RoIHead",
    "recursive_mix_loss",
    "roi_align",
]
