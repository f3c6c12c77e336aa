"""Drop-in adapters for timm and torchvision users, built on :mod:`mixkit.augment`.

- :class:`TimmMixup` (:mod:`mixkit.compat.timm`) takes timm ``Mixup``'s constructor arguments
  and call convention ``mixup_fn(x, target) -> (x, soft_target)`` (timm
  ``timm/data/mixup.py``), with: odd batch sizes allowed, no in-place change of ``x`` unless
  ``inplace=True``, vectorised ``elem`` and ``pair`` modes (timm loops over samples), draws
  from a ``torch.Generator`` you own, and λ always the exact kept-pixel fraction.
  ``mixup_fn.mixup_enabled = False`` (timm's ``--mixup-off-epoch``) also reaches DataLoader
  workers.
- :class:`CutMix` and :class:`MixUp` (:mod:`mixkit.compat.torchvision`) mirror
  ``torchvision.transforms.v2.CutMix/MixUp`` (``t(images, labels)``, also
  ``t((images, labels))``, ``t(images, {"labels": labels})`` or a dict, labels found as
  torchvision finds them), so they drop into a ``collate_fn``; ``tv_tensors.Image`` /
  ``Video`` come back as the same type; extra ``mode="elem"`` (per-sample λ and box,
  torchvision #8191) and a ``generator`` (torchvision #7027). For seeded mixing inside
  DataLoader workers that is fresh every epoch use :class:`mixkit.collate.MixCollate`.
- :func:`to_box_batch` / :func:`from_box_batch` (:mod:`mixkit.compat.boxes`) convert
  torchvision-style detection targets (``list[dict(boxes=, labels=)]``, plain boxes or
  ``BoundingBoxes``) to and from the padded ``BoxBatch`` the mixers take.

Every adapter exposes ``draw(batch_shape, generator) -> MixParams`` and accepts ``params=``
to replay a draw, like every ``mixkit.augment`` module.
"""

from mixkit.compat.boxes import from_box_batch, to_box_batch
from mixkit.compat.timm import TIMM_MODES, TimmMixup
from mixkit.compat.torchvision import CutMix, MixUp

__all__ = ["TimmMixup", "CutMix", "MixUp", "TIMM_MODES", "from_box_batch", "to_box_batch"]
