"""On-disk segmentation datasets (Pascal VOC, Cityscapes, ``images/`` + ``masks/`` folders)
and the joint train transform.

A dataset takes the data ``root``, a list of ``(image_rel, mask_rel or None)`` items (from
:func:`mixkit.methods.semiseg.splits.read_split_list`), ``num_classes`` and a joint transform,
and returns ``(image, mask)``: image (3, H, W) uint8 RGB, mask (H, W) uint8 class ids with
255 = ignore (int64 when ``num_classes > 255``). Float conversion and normalisation happen on
the device. With ``with_masks=False`` (unlabeled data) no mask file is read and the mask is a
padding map: 0 on image pixels, 255 where the crop padded the image (the role of UniMatch's
254 fill for unlabeled crops, ``dataset/semi.py``).

Masks are class-index PNGs. VOC ``SegmentationClass/*.png`` are palette ("P") images whose
palette INDEX is the class (21 classes, 255 on object borders); they are read as indices,
never through their RGB colours, and must be mode "P" (an RGB rendering is rejected).
``SegmentationClassAug`` and Cityscapes ``*_gtFine_labelTrainIds.png`` are grayscale ("L")
or palette index PNGs.

Randomness: sample ``i`` in epoch ``e`` is transformed with ``torch.Generator().manual_seed(
stream_seed(seed, stream, e, i))``, so a sample's augmentation does not depend on the
number of DataLoader workers or on which worker loads it. :meth:`SegListDataset.set_epoch`
writes the epoch into shared memory, so persistent workers see it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from mixkit.collate import stream_seed
from mixkit.methods.semiseg.data import IGNORE
from mixkit.methods.semiseg.layouts import DATASETS, SplitItem
from mixkit.methods.semiseg.splits import read_split_list

MASK_MODES = ("P", "L", "I", "I;16")
JointTransform = Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, Tensor]]


def voc_palette() -> list[int]:
    """The 256-entry VOC colour map as 768 ints (r, g, b per index): the bits of the index
    spread over the high bits of the three channels (VOC devkit ``VOClabelcolormap.m``;
    PS-MT ``VocCode/DataLoader/voc.py`` ``get_voc_pallete``). Index 255 is (224, 224, 192)."""
    pal = []
    for j in range(256):
        r = g = b = 0
        lab, i = j, 0
        while lab:
            r |= ((lab >> 0) & 1) << (7 - i)
            g |= ((lab >> 1) & 1) << (7 - i)
            b |= ((lab >> 2) & 1) << (7 - i)
            lab >>= 3
            i += 1
        pal += [r, g, b]
    return pal


def read_image(path: str | Path) -> Tensor:
    """(3, H, W) uint8 RGB of an image file (grayscale / palette images are expanded)."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def read_mask(
    path: str | Path,
    num_classes: int,
    *,
    require_palette: bool = False,
    ignore_index: int = IGNORE,
) -> Tensor:
    """(H, W) class ids of an index PNG (uint8, int64 when ``num_classes > 255``).

    Palette ("P") masks give their palette indices, "L" / "I" masks their values. Raises
    ValueError naming the file for an RGB / other-mode mask, for a non-palette mask when
    ``require_palette`` (VOC ``SegmentationClass``), and for ids ``>= num_classes`` other
    than ``ignore_index``."""
    with Image.open(path) as im:
        mode = im.mode
        if mode not in MASK_MODES or (require_palette and mode != "P"):
            want = "a palette ('P') PNG" if require_palette else f"an index PNG {list(MASK_MODES)}"
            colour = mode in ("RGB", "RGBA")
            hint = " (an RGB colour rendering; save the class indices instead)" if colour else ""
            raise ValueError(f"mask {path} has PIL mode {mode!r}; expected {want}{hint}")
        arr = np.asarray(im)  # mode "P": the palette index of every pixel, not its colour
    small = arr.dtype == np.uint8 and num_classes <= 255 and 0 <= ignore_index <= 255
    t = torch.from_numpy(arr.astype(np.uint8 if small else np.int64))  # compare in range
    bad = t[((t >= num_classes) & (t != ignore_index)) | (t < 0)]
    if bad.numel():
        vals = torch.unique(bad)[:8].tolist()
        raise ValueError(
            f"mask {path} has class id(s) {vals} outside [0, {num_classes}) "
            f"(only {ignore_index} = ignore is allowed beyond num_classes={num_classes})"
        )
    return t.to(torch.uint8) if num_classes <= 255 and ignore_index <= 255 else t.long()


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) and not isinstance(v, bool) else tuple(v)
    if len(t) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in t):
        raise ValueError(f"{name} must be a positive int or (h, w) of positive ints, got {v!r}")
    return int(t[0]), int(t[1])


def resize_pair(image: Tensor, mask: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Image bilinear (antialiased, as PIL's BILINEAR), mask nearest (PIL's NEAREST centre
    sampling = ``nearest-exact``); uint8 in, same dtypes out."""
    if tuple(image.shape[-2:]) == size:
        return image, mask
    x = F.interpolate(image[None].float(), size, mode="bilinear", align_corners=False,
                      antialias=True)  # fmt: skip
    m = F.interpolate(mask[None, None].float(), size, mode="nearest-exact")
    return x[0].round().clamp(0, 255).to(image.dtype), m[0, 0].to(mask.dtype)


class JointTrainTransform:
    """Random scale + crop + horizontal flip, applied identically to image and mask.

    Scale: the long side becomes ``randint(int(L * lo), int(L * hi))`` (inclusive), L = the
    image's long side, or ``base_size`` when given (UniMatch ``dataset/transform.py`` resize
    with ratio_range (0.5, 2.0); PS-MT ``Base/base_dataset.py`` ``_resize`` with base_size),
    aspect kept. Crop: pad bottom/right to the crop size (image ``image_fill`` = 0, mask
    ``mask_fill`` = 255, as UniMatch ``crop``), then a uniform ``crop_size`` window. Flip
    with probability ``flip_p``. Always four draws from the generator: side, top, left, flip.
    """

    def __init__(
        self,
        crop_size: int | Sequence[int],
        scale: tuple[float, float] = (0.5, 2.0),
        flip_p: float = 0.5,
        base_size: int | None = None,
        image_fill: int = 0,
        mask_fill: int = IGNORE,
    ) -> None:
        self.crop = _pair(crop_size, "crop_size")
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"flip_p must lie in [0, 1], got {flip_p!r}")
        if base_size is not None and (not isinstance(base_size, int) or base_size < 1):
            raise ValueError(f"base_size must be a positive int or None, got {base_size!r}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.flip_p, self.base_size = float(flip_p), base_size
        self.image_fill, self.mask_fill = int(image_fill), int(mask_fill)

    def __call__(
        self, image: Tensor, mask: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """image (3, H, W) uint8, mask (H, W) -> (3, ch, cw), (ch, cw); inputs untouched."""
        h, w = image.shape[-2:]
        long = self.base_size or max(h, w)
        lo, hi = max(int(long * self.scale[0]), 1), max(int(long * self.scale[1]), 1)
        side = int(torch.randint(lo, hi + 1, (1,), generator=generator))
        oh, ow = (side, int(w * side / h + 0.5)) if h > w else (int(h * side / w + 0.5), side)
        image, mask = resize_pair(image, mask, (max(oh, 1), max(ow, 1)))
        ch, cw = self.crop
        ph, pw = max(ch - image.shape[-2], 0), max(cw - image.shape[-1], 0)
        if ph or pw:
            image = F.pad(image, (0, pw, 0, ph), value=self.image_fill)
            mask = F.pad(mask, (0, pw, 0, ph), value=self.mask_fill)
        top = int(torch.randint(0, image.shape[-2] - ch + 1, (1,), generator=generator))
        left = int(torch.randint(0, image.shape[-1] - cw + 1, (1,), generator=generator))
        flip = bool(torch.rand(1, generator=generator) < self.flip_p)
        image = image[:, top : top + ch, left : left + cw]
        mask = mask[top : top + ch, left : left + cw]
        if flip:
            image, mask = image.flip(-1), mask.flip(-1)
        return image.contiguous(), mask.contiguous()

    def __repr__(self) -> str:
        return (
            f"JointTrainTransform(crop_size={self.crop}, scale={self.scale}, "
            f"flip_p={self.flip_p}, base_size={self.base_size})"
        )


def _check_items(items: Sequence[SplitItem]) -> list[SplitItem]:
    if isinstance(items, (str, Path)) or not isinstance(items, Sequence):
        raise TypeError(f"items must be a list of (image_rel, mask_rel or None), got {items!r}")
    out = []
    for k, it in enumerate(items):
        ok = isinstance(it, (tuple, list)) and len(it) == 2 and isinstance(it[0], str)
        if not ok or not (it[1] is None or isinstance(it[1], str)):
            raise TypeError(f"items[{k}] must be (image_rel str, mask_rel str or None), got {it!r}")
        out.append((it[0], it[1]))
    if not out:
        raise ValueError("items is empty: the dataset has no sample")
    return out


class SegListDataset(Dataset):
    """Samples named by a list of ``(image_rel, mask_rel or None)`` under ``root``.

    Args:
        root: data root the item paths are relative to.
        items: the samples (e.g. :func:`read_split_list`).
        num_classes: K; mask ids must be in ``[0, K)`` or 255 (default: 21 VOC, 19
            Cityscapes; required for folders).
        transform: joint ``transform(image, mask, generator) -> (image, mask)``
            (:class:`JointTrainTransform`), or None for the whole image (evaluation).
        with_masks: read the masks (False for unlabeled data: padding map, see module doc).
        seed, stream: key of the per-sample generators (give the labeled and the unlabeled
            datasets different streams).
        palette_dirs: mask folders whose PNGs must be palette ("P") images (default: VOC
            ``SegmentationClass``).
        source: where the items came from (named in errors), e.g. the list file.

    Missing files (images, and masks when ``with_masks``) are reported when the dataset is
    built; mask modes, ids and sizes when a sample is loaded (:meth:`verify` checks all).
    """

    default_num_classes: int | None = None
    default_palette_dirs: tuple[str, ...] = ()

    def __init__(
        self,
        root: str | Path,
        items: Sequence[SplitItem],
        num_classes: int | None = None,
        transform: JointTransform | None = None,
        *,
        with_masks: bool = True,
        seed: int = 0,
        stream: str = "train",
        palette_dirs: Sequence[str] | None = None,
        source: str | Path | None = None,
    ) -> None:
        num_classes = self.default_num_classes if num_classes is None else num_classes
        if num_classes is None:
            raise ValueError(f"num_classes is required for {type(self).__name__}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        if transform is not None and not callable(transform):
            raise TypeError(
                f"transform must be callable(image, mask, generator), got {transform!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"data root {self.root} is not a directory")
        self.items = _check_items(items)
        self.num_classes, self.transform = num_classes, transform
        self.with_masks, self.seed, self.stream = bool(with_masks), seed, str(stream)
        self.palette_dirs = tuple(
            self.default_palette_dirs if palette_dirs is None else palette_dirs
        )
        self.source = "the item list" if source is None else str(source)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._check_files()

    def _check_files(self) -> None:
        missing = []
        for k, (image, mask) in enumerate(self.items):
            if self.with_masks and mask is None:
                raise ValueError(
                    f"item {k} ({image}) of {self.source} has no mask; a labeled dataset needs "
                    "one per image (with_masks=False for unlabeled data)"
                )
            if not (self.root / image).is_file():
                missing.append(f"image {self.root / image}")
            if self.with_masks and mask is not None and not (self.root / mask).is_file():
                missing.append(f"mask {self.root / mask}")
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise FileNotFoundError(f"{missing[0]} named in {self.source} is missing{more}")

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (call before iterating each epoch)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self._epoch[0] = epoch

    def generator(self, index: int) -> torch.Generator:
        """The generator of sample ``index`` in the current epoch."""
        key = stream_seed(self.seed, self.stream, self.epoch, index)
        return torch.Generator().manual_seed(key)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[Tensor, Tensor]:
        """Sample ``index`` as stored (no transform), with every check."""
        image_rel, mask_rel = self.items[index]
        image = read_image(self.root / image_rel)
        h, w = image.shape[-2:]
        if not self.with_masks:
            dtype = torch.uint8 if self.num_classes <= 255 else torch.int64
            return image, torch.zeros(h, w, dtype=dtype)
        palette = Path(mask_rel).parent.name in self.palette_dirs
        mask = read_mask(self.root / mask_rel, self.num_classes, require_palette=palette)
        if tuple(mask.shape) != (h, w):
            raise ValueError(
                f"mask {self.root / mask_rel} is {tuple(mask.shape)} (H, W) but image "
                f"{self.root / image_rel} is {(h, w)}"
            )
        return image, mask

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, mask = self.load(index)
        if self.transform is not None:
            image, mask = self.transform(image, mask, self.generator(index))
        return image, mask

    def verify(self) -> int:
        """Load every sample once (all checks); returns the number of samples."""
        for i in range(len(self)):
            self.load(i)
        return len(self)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, "
            f"num_classes={self.num_classes}, with_masks={self.with_masks})"
        )


class VOCSegDataset(SegListDataset):
    """Pascal VOC 2012 (``VOCdevkit/VOC2012``): 21 classes; ``SegmentationClass`` masks must
    be palette PNGs (read as indices), ``SegmentationClassAug`` masks index PNGs."""

    default_num_classes, default_palette_dirs = 21, ("SegmentationClass",)


class CityscapesSegDataset(SegListDataset):
    """Cityscapes fine: 19 train ids (``*_gtFine_labelTrainIds.png``), 255 ignore."""

    default_num_classes = 19


class FolderSegDataset(SegListDataset):
    """``images/X.{jpg,jpeg,png}`` + ``masks/X.png`` (index PNGs); ``num_classes`` required."""


DATASET_CLASSES = {"voc": VOCSegDataset, "cityscapes": CityscapesSegDataset,
                   "folder": FolderSegDataset}  # fmt: skip


def open_seg_dataset(
    dataset: str,
    root: str | Path,
    list_path: str | Path,
    *,
    num_classes: int | None = None,
    transform: JointTransform | None = None,
    format: str = "auto",
    **kw: Any,
) -> SegListDataset:
    """Read ``list_path`` (:func:`read_split_list`) and build the ``dataset`` over ``root``.
    ``num_classes`` defaults to 21 (voc) / 19 (cityscapes) and is required for folder;
    ``kw`` go to :class:`SegListDataset` (``with_masks``, ``seed``, ``stream``)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {list(DATASETS)}, got {dataset!r}")
    cls = DATASET_CLASSES[dataset]
    if num_classes is None and cls.default_num_classes is None:
        raise ValueError(f"num_classes is required for the {dataset} dataset")
    items = read_split_list(list_path, dataset, root, format)
    return cls(root, items, num_classes, transform, source=list_path, **kw)


def seg_collate(
    batch: Sequence[tuple[Tensor, Tensor]], size_divisor: int = 1
) -> tuple[Tensor, Tensor]:
    """Stack ``[(image, mask), ...]`` into (B, 3, H, W) uint8 and (B, H, W), padding each
    sample bottom/right to the largest size in the batch (rounded up to ``size_divisor``):
    image 0, mask 255, so padded pixels are never scored. Whole-image evaluation with
    batch size 1 avoids the padding (``functools.partial(seg_collate, size_divisor=8)``)."""
    if not batch:
        raise ValueError("batch is empty")
    if isinstance(size_divisor, bool) or not isinstance(size_divisor, int) or size_divisor < 1:
        raise ValueError(f"size_divisor must be an int >= 1, got {size_divisor!r}")
    hmax = max(int(im.shape[-2]) for im, _ in batch)
    wmax = max(int(im.shape[-1]) for im, _ in batch)
    hmax, wmax = -(-hmax // size_divisor) * size_divisor, -(-wmax // size_divisor) * size_divisor
    images, masks = [], []
    for im, m in batch:
        ph, pw = hmax - im.shape[-2], wmax - im.shape[-1]
        images.append(F.pad(im, (0, pw, 0, ph), value=0) if ph or pw else im)
        masks.append(F.pad(m, (0, pw, 0, ph), value=IGNORE) if ph or pw else m)
    return torch.stack(images), torch.stack(masks)
