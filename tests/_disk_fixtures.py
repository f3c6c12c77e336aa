"""Tiny on-disk datasets in the real formats, for the trainer and recipe tests: CIFAR-10 /
CIFAR-100 python pickles (bytes keys, (N, 3072) uint8 rows) and an ImageFolder tree
``train/`` + ``val/`` of PNG and JPEG files of varying sizes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def _batch(n: int, k: int, seed: int, key: bytes) -> dict:
    rng = np.random.default_rng(seed)
    labels = [i % k for i in range(n)]  # every class of the first n present once per cycle
    return {
        b"batch_label": b"fixture",
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        key: labels,
        b"filenames": [f"f{seed}_{i}.png".encode() for i in range(n)],
    }


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar(root: Path, num_classes: int, n_train: int = 20, n_test: int = 10) -> Path:
    """``root/cifar-10-batches-py/`` (5 train batches + test_batch) or
    ``root/cifar-100-python/`` (train + test); returns ``root``."""
    if num_classes == 10:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        per = n_train // 5
        for i in range(1, 6):
            _dump(folder / f"data_batch_{i}", _batch(per, 10, i, b"labels"))
        _dump(folder / "test_batch", _batch(n_test, 10, 9, b"labels"))
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        _dump(folder / "train", _batch(n_train, 100, 1, b"fine_labels"))
        _dump(folder / "test", _batch(n_test, 100, 2, b"fine_labels"))
    return root


def write_imagefolder(root: Path, classes=("ant", "bee"), n_train: int = 5, n_val: int = 2) -> Path:
    """``root/{train,val}/CLASS/*.png|jpg``, sizes 40..47 x 36..43, RGB; returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                h, w = 40 + (i % 8), 36 + (i * 3) % 8
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                ext = "png" if i % 2 == 0 else "jpg"
                Image.fromarray(pixels).save(root / split / c / f"{i}.{ext}")
    return root
