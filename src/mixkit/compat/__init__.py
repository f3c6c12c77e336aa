"""Drop-in adapters for timm and torchvision users, built on :mod:`mixkit.augment`.

- :class:`TimmMixup` (:mod:`mixkit.compat.timm`) takes timm ``Mixup``'s constructor arguments
  and call convention ``mixup_fn(x, target) -> (x, soft_target)`` (timm
  ``timm/data/mixup.py``), with: odd batch sizes allowed, no in-place change of ``x`` unless
  ``inplace=True``, vectorised ``elem`` and ``pair`` modes (timm loops over samples), draws
  from a ``torch.Generator`` you own, and λ always the exact kept-pixel fraction.
- :class:`CutMix` and :class:`MixUp` (:mod:`mixkit.compat.torchvision`) mirror
  ``torchvision.transforms.v2.CutMix/MixUp`` (``t(images, labels)``, also
  ``t((images, labels))`` or a dict), so they drop into a ``collate_fn``; extra
  ``mode="elem"`` (per-sample λ and box, torchvision #8191) and a ``generator`` (torchvision
  #7027). For seeded mixing inside DataLoader workers that is fresh every epoch use
  :class:`mixkit.collate.MixCollate`.

Every adapter exposes ``draw(batch_shape, generator) -> MixParams`` and accepts ``params=``
to replay a draw, like every ``mixkit.augment`` module.
"""

from mixkit.compat.timm import TIMM_MODES, TimmMixup
from mixkit.compat.torchvision import CutMix, MixUp

__all__ = ["TimmMixup", "CutMix", "MixUp", "TIMM_MODES"]
