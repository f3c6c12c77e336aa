"""Classification data read from disk by DataLoader workers, as ``torch.utils.data.Dataset``s.

Every dataset returns ``(uint8 (C, H, W) tensor, int label)`` of one fixed size, so the
default collate stacks uint8 batches (4x cheaper than float32 to move between processes and
to the device). Design: the workers only *decode* to that fixed size; every random
augmentation runs batched on the device afterwards (:mod:`mixkit.device_aug`), drawn from
a CPU generator the caller owns::

    train = ImageFolderDataset(root, "train", load_size=256)  # short side 256, centre crop
    loader = build_loader(train, 256, shuffle=True, seed=0, num_workers=8, pin_memory=True)
    aug = device_transform("imagenet", train=True, size=224, mean=train.mean, std=train.std)
    gen = torch.Generator().manual_seed(0)                    # CPU: draws the crop params
    for epoch in range(epochs):
        for x, y in loader:                                   # uint8 (B, 3, 256, 256), int64
            x, y = to_device((x, y), "cuda")
            x = aug(x, gen)                                   # RRC + flip to 224, float32

(``build_loader``: :mod:`mixkit.loaders`; ``device_transform``, ``to_device``:
:mod:`mixkit.device_aug`.) The RRC then sees the decoded ``load_size`` square, not the
full-resolution file: a larger ``load_size`` keeps more detail, ``fit="squash"`` keeps the
whole field of view at the cost of the aspect ratio.

- :class:`ImageFolderDataset`: ``root/{train,val|test}/CLASS/*.png|jpg|...``, read lazily
  with Pillow, one file per ``__getitem__``.
- :class:`CIFARDataset`: the official python pickles. A pickle can only be read whole, so
  the batches are decoded once at construction into one uint8 tensor (CIFAR-10 train: 154 MB);
  forked workers share it, spawned ones receive it through shared memory.
- :class:`TensorImageDataset`: a wrapper of in-memory tensors (the embedded sets).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from mixkit import data as _data
from mixkit.device_aug import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "CIFARDataset",
    "ImageFolderDataset",
    "TensorImageDataset",
    "decode_image",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")


def _channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean / std of uint8 (N, C, H, W) in [0, 1] (std clamped >= 1e-3)."""
    xf = x.to(torch.float64).div(255)
    mean = xf.mean((0, 2, 3))
    std = xf.std((0, 2, 3)).nan_to_num(1.0).clamp_min(1e-3)  # nan: a single pixel
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


class _InMemory(Dataset):
    """Images held as one uint8 (N, C, H, W) tensor ``images`` with int64 (N,) ``labels``:
    ``ds[i]`` is ``(images[i], int(labels[i]))`` (a view; the collate copies)."""

    images: Tensor
    labels: Tensor

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    def __len__(self) -> int:
        return int(self.labels.numel())

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.images[i], int(self.labels[i])


class TensorImageDataset(_InMemory):
    """In-memory images: ``images`` uint8 (N, C, H, W), ``labels`` int (N,).

    ``ds[i]`` is ``(images[i], int(labels[i]))`` (a view; the collate copies). ``mean`` /
    ``std`` default to the images' own channel statistics.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        num_classes: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, Tensor) else images
            raise ValueError(f"images must be a (N, C, H, W) uint8 tensor, got {got}")
        labels = torch.as_tensor(labels)
        if labels.shape != (images.shape[0],) or labels.is_floating_point():
            raise ValueError(
                f"labels must be ({images.shape[0]},) integers, got {labels.dtype} "
                f"{tuple(labels.shape)}"
            )
        self.images, self.labels = images, labels.long()
        if num_classes is None:
            num_classes = int(labels.max()) + 1 if labels.numel() else 0
        self.num_classes = int(num_classes)
        if mean is None or std is None:
            mean, std = _channel_stats(images)
        self.mean, self.std = tuple(mean), tuple(std)

    @classmethod
    def from_split(cls, split: _data.Split, dataset: _data.Dataset) -> TensorImageDataset:
        """Wrap one :class:`mixkit.data.Split` with the statistics of its ``dataset``."""
        return cls(
            split.x, split.y, num_classes=dataset.num_classes, mean=dataset.mean, std=dataset.std
        )


_CIFAR = {
    10: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"),
    100: ("cifar-100-python", ["train"], ["test"], "fine_labels"),
}


class CIFARDataset(_InMemory):
    """CIFAR-10 / CIFAR-100 from the official python pickles.

    ``root`` is either the extracted folder itself (``cifar-10-batches-py/`` holding
    ``data_batch_1..5`` + ``test_batch``; ``cifar-100-python/`` holding ``train`` + ``test``)
    or its parent (the folder the archive was extracted into). Each file is a dict with
    ``b"data"`` (N, 3072) uint8 (R, G, B planes of 32x32, row-major) and ``b"labels"``
    (CIFAR-10) / ``b"fine_labels"`` (CIFAR-100), read with the restricted unpickler of
    :mod:`mixkit.data` (dicts, lists, bytes, numbers and numpy arrays only).

    ``ds[i]`` is ``(uint8 (3, 32, 32), int)``, ``images`` (also ``data``) the uint8
    (N, 3, 32, 32) tensor; ``mean`` / ``std`` are this split's channel statistics (normalise
    with the *train* split's). Raises FileNotFoundError naming the missing folder or files,
    ValueError naming a corrupt file.
    """

    def __init__(self, root: str | Path, train: bool = True, num_classes: int = 10) -> None:
        if num_classes not in _CIFAR:
            raise ValueError(f"num_classes must be 10 or 100, got {num_classes!r}")
        folder_name, train_files, test_files, key = _CIFAR[num_classes]
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"CIFAR root {root} does not exist")
        folder = root / folder_name if (root / folder_name).is_dir() else root
        names = train_files if train else test_files
        missing = [str(folder / n) for n in names if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"CIFAR-{num_classes} files missing: {missing} (root must be {folder_name}/ "
                f"or the folder that holds it)"
            )
        xs, ys = [], []
        for n in names:
            x, y = _data._cifar_arrays(folder / n, key)
            if y.size and (y.min() < 0 or y.max() >= num_classes):
                raise ValueError(f"CIFAR file {folder / n}: labels must lie in [0, {num_classes})")
            xs.append(x)
            ys.append(y)
        self.root, self.train, self.num_classes = folder, bool(train), num_classes
        self.images = torch.from_numpy(np.ascontiguousarray(np.concatenate(xs)))
        self.labels = torch.from_numpy(np.concatenate(ys).astype(np.int64))
        self.mean, self.std = _channel_stats(self.images)

    @property
    def data(self) -> Tensor:
        """The uint8 (N, 3, 32, 32) images (torchvision's attribute name)."""
        return self.images


def _resample() -> int:
    from PIL import Image

    return getattr(Image, "Resampling", Image).BILINEAR


def decode_image(
    path: str | Path, load_size: int | None = None, fit: str = "crop", draft: bool = False
) -> Tensor:
    """Read one image file as uint8 (3, H, W) RGB (grey / palette / alpha converted).

    ``load_size`` S gives a fixed S x S result: ``fit="crop"`` resizes the shorter side to S
    (longer ``int(S * long / short)``, torchvision ``Resize(S)``) then takes the centre S x S
    (offsets ``round((L - S) / 2)``, torchvision ``CenterCrop``); ``fit="squash"`` resizes
    to S x S ignoring the aspect. Resizing is Pillow bilinear, what torchvision uses on PIL
    images. ``draft`` lets the JPEG decoder downscale by a power of 2 first (faster, pixels
    differ slightly). Raises ValueError naming the file when it cannot be read.
    """
    from PIL import Image

    if fit not in ("crop", "squash"):
        raise ValueError(f"fit must be 'crop' or 'squash', got {fit!r}")
    try:
        with Image.open(path) as im:
            if draft and load_size is not None:
                im.draft("RGB", (load_size, load_size))
            im = im.convert("RGB")
            if load_size is not None:
                im = _fit(im, load_size, fit)
            arr = np.asarray(im, dtype=np.uint8)
    except Exception as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _fit(im, s: int, fit: str):
    """A PIL image resized / cropped to s x s (see :func:`decode_image`)."""
    w, h = im.size
    if fit == "squash":
        return im if (w, h) == (s, s) else im.resize((s, s), _resample())
    short, long = min(w, h), max(w, h)
    if short != s:
        new_long = int(s * long / short)
        w, h = (s, new_long) if w <= h else (new_long, s)
        im = im.resize((w, h), _resample())
    top, left = int(round((h - s) / 2)), int(round((w - s) / 2))
    return im.crop((left, top, left + s, top + s))


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _list_images(
    split_dir: Path, classes: list[str], exts: set[str]
) -> tuple[list[str], list[int]]:
    """Paths relative to ``split_dir`` (sorted within each class) and their class ids."""
    files: list[str] = []
    labels: list[int] = []
    for k, c in enumerate(classes):
        folder = split_dir / c
        if not folder.is_dir():
            raise FileNotFoundError(f"class folder {folder} is missing")
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in exts and p.is_file())
        if not found:
            raise ValueError(f"class folder {folder} holds no image ({sorted(exts)})")
        files += [str(p.relative_to(split_dir)) for p in found]
        labels += [k] * len(found)
    return files, labels


class ImageFolderDataset(Dataset):
    """``root/SPLIT/CLASS/**/IMAGE`` read lazily with Pillow.

    Args:
        root: the folder holding ``train/`` and ``val/`` or ``test/``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"eval"`` (``val/`` if present, else
            ``test/``).
        load_size: decode every image to ``load_size`` x ``load_size`` (see
            :func:`decode_image`), so batches stack; None keeps each file's size (only
            usable with ``batch_size=1`` or a custom collate).
        fit, draft: passed to :func:`decode_image`.
        extensions: file suffixes read (case-insensitive); other files are skipped.

    Classes are the sorted sub-folders of ``train/`` (for every split, so labels agree);
    files are sorted by path. Every class folder must exist in ``split`` and hold at least
    one image. ``ds[i]`` is ``(uint8 (3, S, S), int)``; ``mean`` / ``std`` are the ImageNet
    statistics. Attributes: ``classes``, ``class_to_idx``, ``samples`` [(path, label)],
    ``targets``, ``num_classes``, ``split_dir``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        load_size: int | None = None,
        fit: str = "crop",
        draft: bool = False,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        if split not in ("train", "val", "test", "eval"):
            raise ValueError(f"split must be 'train', 'val', 'test' or 'eval', got {split!r}")
        if load_size is not None and (
            isinstance(load_size, bool) or not isinstance(load_size, int) or load_size < 1
        ):
            raise ValueError(f"load_size must be an int >= 1 or None, got {load_size!r}")
        if fit not in ("crop", "squash"):
            raise ValueError(f"fit must be 'crop' or 'squash', got {fit!r}")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"ImageFolder root {root} does not exist")
        if not (root / "train").is_dir():
            raise FileNotFoundError(f"ImageFolder root {root} lacks the train/ folder")
        if split == "eval":
            split = "val" if (root / "val").is_dir() else "test"
        split_dir = root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"ImageFolder root {root} lacks the {split}/ folder")
        classes = _class_folders(root / "train")
        if not classes:
            raise ValueError(f"{root / 'train'} has no class folders")
        extra = sorted(set(_class_folders(split_dir)) - set(classes))
        if extra:
            raise ValueError(f"{split_dir} has class folders absent from train/: {extra}")
        files, labels = _list_images(split_dir, classes, {e.lower() for e in extensions})
        self.root, self.split_dir, self.classes = root, split_dir, classes
        self.class_to_idx = {c: k for k, c in enumerate(classes)}
        # One numpy buffer each (no per-item Python objects): forked workers reading them
        # do not touch reference counts, so the pages stay shared (no copy-on-read growth).
        self._files = np.array([os.fsencode(f) for f in files], dtype=np.bytes_)
        self._labels = np.asarray(labels, dtype=np.int64)
        self.num_classes = len(classes)
        self.load_size, self.fit, self.draft = load_size, fit, bool(draft)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD

    @property
    def targets(self) -> list[int]:
        return self._labels.tolist()

    @property
    def samples(self) -> list[tuple[Path, int]]:
        """[(file path, class id)] in dataset order."""
        return [(self._path(i), int(k)) for i, k in enumerate(self._labels)]

    def _path(self, i: int) -> Path:
        return self.split_dir / os.fsdecode(bytes(self._files[i]))

    def __len__(self) -> int:
        return int(self._labels.size)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        img = decode_image(self._path(i), self.load_size, self.fit, self.draft)
        return img, int(self._labels[i])
