"""Derived benchmarks built offline from MNIST-5k and the photos bundled with scikit-image
and scikit-learn, in memory and deterministically from a seed.

``mnistm5k`` is MNIST-M (Ganin & Lempitsky, "Unsupervised Domain Adaptation by
Backpropagation", ICML 2015; Ganin et al., "Domain-Adversarial Training of Neural
Networks", JMLR 2016, section 5.1) rebuilt on MNIST-5k: every digit is blended over a
random crop of a colour photo by the paper's rule ``out_ijk = |I1_ijk - I2_ijk|`` (I1 the
photo patch, I2 the digit, k the channel), so the strokes invert the patch's colours and
the class is only readable against its context. The photos are split into disjoint pools
(:data:`PHOTOS`): train digits are blended only over train photos, test digits only over
test photos. :func:`textured_backgrounds` cuts crops from the same pools for
segmentation canvases (a photo at every pixel).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mixkit.data import Dataset, Split, _mnist5k_arrays, _stats

__all__ = [
    "textured_backgrounds",
    "build_mnistm",
    "load_mnistm5k",
]

# Disjoint photo pools. Only natural colour photographs that ship inside the packages (no
# download); skimage.data.cat is another name of chelsea, so it is not a second photo.
PHOTOS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "chelsea", "rocket", "motorcycle", "flower"),
    "test": ("coffee", "china"),
}
PHOTO_NAMES: tuple[str, ...] = PHOTOS["train"] + PHOTOS["test"]  # global photo ids
TEST_FRAC = 0.2  # the test fraction of mixkit.data.load_mnist5k (100 of 500 per class)
_SPLIT_ALIASES = {"train": "train", "test": "test", "val": "test"}


def _read_photo(name: str):
    """(H, W, 3) uint8 numpy array of one bundled photo."""
    if name == "motorcycle":
        import skimage.data as skdata

        return skdata.stereo_motorcycle()[0]  # left view only: the right one is the same scene
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data as skdata

    return getattr(skdata, name)()


@lru_cache(maxsize=len(PHOTO_NAMES))
def _photo(name: str) -> Tensor:
    arr = _read_photo(name)
    if arr.ndim != 3 or arr.shape[2] < 3 or str(arr.dtype) != "uint8":
        raise ValueError(f"photo {name!r} must be (H, W, 3) uint8, got {arr.dtype} {arr.shape}")
    return torch.from_numpy(arr[:, :, :3].copy()).permute(2, 0, 1).contiguous()


def photo(name: str) -> Tensor:
    """The bundled photo ``name`` (one of :data:`PHOTO_NAMES`) as a (3, H, W) uint8 tensor
    (a fresh copy; the decoded photo is cached for the process)."""
    if name not in PHOTO_NAMES:
        raise ValueError(f"photo name must be one of {list(PHOTO_NAMES)}, got {name!r}")
    return _photo(name).clone()


def _pool(split: str) -> list[int]:
    if split not in _SPLIT_ALIASES:
        raise ValueError(f"split must be 'train' or 'test' ('val' = 'test'), got {split!r}")
    return [PHOTO_NAMES.index(n) for n in PHOTOS[_SPLIT_ALIASES[split]]]


def _check_size(size: int) -> None:
    smallest = 300  # chelsea, the smallest photo side
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= smallest:
        raise ValueError(f"size must be an int in [8, {smallest}], got {size!r}")


def _check(n: int, size: int, generator: torch.Generator) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    _check_size(size)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


def photo_crops(
    n: int, size: int, generator: torch.Generator, split: str = "train"
) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` square crops of ``size`` photo pixels (no resampling) from the ``split`` pool.

    Draws, in this order from ``generator``: the photo of each crop, uniform over the pool
    (as ``rand.choice`` over the photos in the MNIST-M generator of pumpikano/tf-dann,
    ``create_mnistm.py``), then the top-left corner, uniform over the photo's valid
    positions. Returns crops (n, 3, size, size) uint8, photo ids (n,) int64 (indices into
    :data:`PHOTO_NAMES`) and corners (n, 2) int64 ``(x0, y0)``; crop i is
    ``photo(PHOTO_NAMES[ids[i]])[:, y0:y0 + size, x0:x0 + size]``.
    """
    _check(n, size, generator)
    pool = torch.tensor(_pool(split))
    ids = pool[torch.randint(0, len(pool), (n,), generator=generator)]
    u = torch.rand(n, 2, generator=generator)
    crops = torch.empty(n, 3, size, size, dtype=torch.uint8)
    xy = torch.empty(n, 2, dtype=torch.long)
    span = torch.arange(size)
    for k in pool.tolist():
        sel = torch.nonzero(ids == k).flatten()
        if sel.numel() == 0:
            continue
        img = _photo(PHOTO_NAMES[k])
        _, h, w = img.shape
        limit = torch.tensor([w - size, h - size])
        corner = torch.minimum((u[sel] * (limit + 1)).long(), limit)
        xy[sel] = corner
        rows = (corner[:, 1, None] + span)[:, :, None]  # (m, size, 1)
        cols = (corner[:, 0, None] + span)[:, None, :]  # (m, 1, size)
        crops[sel] = img[:, rows, cols].permute(1, 0, 2, 3)
    return crops, ids, xy


def textured_backgrounds(
    n: int,
    size: int,
    generator: torch.Generator,
    split: str = "train",
    zoom: tuple[float, float] = (1.0, 1.0),
    return_ids: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """(n, 3, size, size) float32 backgrounds in [0, 1], a photo crop at every pixel.

    The photos come from the ``split`` pool of :data:`PHOTOS` (``"train"``; ``"test"`` or
    ``"val"`` for held-out canvases), so train and val canvases never share a photo. Each
    crop covers ``z * size`` photo pixels, ``z`` uniform in ``zoom`` (``1 <= low <= high``),
    bilinearly resampled to ``size`` (``zoom=(1, 1)``: the exact pixels of
    :func:`photo_crops`). Draws from ``generator``: photo ids, positions, then ``z`` when
    ``zoom != (1, 1)``. With ``return_ids`` also the (n,) int64 photo ids.
    """
    lo, hi = (float(v) for v in zoom)
    if not 1.0 <= lo <= hi:
        raise ValueError(f"zoom must satisfy 1 <= low <= high, got {zoom!r}")
    if lo == hi == 1.0:
        crops, ids, _ = photo_crops(n, size, generator, split)
        out = crops.float().div_(255)
        return (out, ids) if return_ids else out
    _check(n, size, generator)
    pool = torch.tensor(_pool(split))
    ids = pool[torch.randint(0, len(pool), (n,), generator=generator)]
    pos = torch.rand(n, 2, generator=generator)
    z = lo + (hi - lo) * torch.rand(n, generator=generator)
    out = torch.empty(n, 3, size, size)
    for k in pool.tolist():
        sel = torch.nonzero(ids == k).flatten()
        if sel.numel() == 0:
            continue
        img = _photo(PHOTO_NAMES[k]).float().div_(255)
        _, h, w = img.shape
        side = (z[sel] * size).clamp(max=min(h, w))
        sx, sy = side / w, side / h  # half-extent of the crop in normalised coordinates
        theta = torch.zeros(sel.numel(), 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = sx, sy
        theta[:, 0, 2] = -1 + sx + pos[sel, 0] * (2 - 2 * sx)
        theta[:, 1, 2] = -1 + sy + pos[sel, 1] * (2 - 2 * sy)
        grid = F.affine_grid(theta, [sel.numel(), 3, size, size], align_corners=False)
        src = img[None].expand(sel.numel(), -1, -1, -1)
        out[sel] = F.grid_sample(src, grid, align_corners=False).clamp_(0, 1)
    return (out, ids) if return_ids else out


def digit_canvas(digits: Tensor, size: int = 32) -> Tensor:
    """(N, 1, 28, 28) uint8 digits -> (N, 1, size, size) uint8: zero-padded around the
    centre when ``size >= 28`` (the digit keeps its 28 px, as MNIST-M keeps MNIST's
    scale), area-downsampled when smaller."""
    if not isinstance(digits, Tensor) or digits.dtype != torch.uint8 or digits.ndim != 4:
        raise ValueError(f"digits must be a (N, 1, H, W) uint8 tensor, got {type(digits)}")
    h, w = digits.shape[-2:]
    if size >= max(h, w):
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(digits, (left, size - w - left, top, size - h - top))
    small = F.interpolate(digits.float(), size=(size, size), mode="area")
    return small.round().clamp(0, 255).to(torch.uint8)


def blend_mnistm(digits: Tensor, patches: Tensor) -> Tensor:
    """MNIST-M's difference blend ``|patch - digit|`` per channel.

    digits: (N, 1, S, S) uint8 grey ink (0 = background, broadcast over the 3 channels);
    patches: (N, 3, S, S) uint8. Returns (N, 3, S, S) uint8: the patch where there is no
    ink, ``255 - patch`` under full ink, in between on anti-aliased edges. The rule is the
    paper's formula (JMLR 2016, section 5.1); the tf-dann generator (``create_mnistm.py``)
    binarises the digit (``x > 0``) first, here the MNIST grey levels are kept.
    """
    if digits.dtype != torch.uint8 or patches.dtype != torch.uint8:
        raise ValueError(f"digits and patches must be uint8, got {digits.dtype}, {patches.dtype}")
    if digits.ndim != 4 or digits.shape[1] != 1 or patches.ndim != 4 or patches.shape[1] != 3:
        raise ValueError(
            f"digits must be (N, 1, S, S) and patches (N, 3, S, S), got "
            f"{tuple(digits.shape)} and {tuple(patches.shape)}"
        )
    if digits.shape[0] != patches.shape[0] or digits.shape[2:] != patches.shape[2:]:
        raise ValueError(f"digits {tuple(digits.shape)} and patches {tuple(patches.shape)} differ")
    return (patches.to(torch.int16) - digits.to(torch.int16)).abs_().to(torch.uint8)


def stratified_split(
    y: Tensor, test_frac: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Train and test indices (int64) of labels ``y`` (N,) int64: one ``randperm(N)``, then
    the first ``round(N_c * test_frac)`` of each class (ascending ids) go to test; each
    side is then shuffled by a second and a third permutation, all from ``generator``."""
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac!r}")
    order = torch.randperm(len(y), generator=generator)
    train, test = [], []
    for c in torch.unique(y).tolist():
        members = order[y[order] == c]
        k = int(round(len(members) * test_frac))
        test.append(members[:k])
        train.append(members[k:])
    tr, te = torch.cat(train), torch.cat(test)
    tr = tr[torch.randperm(len(tr), generator=generator)]
    return tr, te[torch.randperm(len(te), generator=generator)]


@dataclasses.dataclass
class MnistMParts:
    """One MNIST-M build with its provenance.

    x_*: (N, 3, S, S) uint8 images; y_*: (N,) int64 classes; digit_*: (N,) int64 index of
    the source digit in the 5000 MNIST-5k digits; photo_*: (N,) int64 photo id (into
    :data:`PHOTO_NAMES`); corner_*: (N, 2) int64 ``(x0, y0)`` of the crop in that photo.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    digit_train: Tensor
    digit_test: Tensor
    photo_train: Tensor
    photo_test: Tensor
    corner_train: Tensor
    corner_test: Tensor


def compose_mnistm(seed: int = 0, size: int = 32) -> MnistMParts:
    """Build MNIST-M on MNIST-5k, deterministically from ``seed``.

    One ``torch.Generator().manual_seed(seed)`` draws, in order: the stratified 80/20 split
    of the 5000 digits (:func:`stratified_split`, 400/100 per class), the train crops
    (:func:`photo_crops` from the train photos), then the test crops (test photos). Each
    digit is placed on a ``size`` canvas (:func:`digit_canvas`) and blended over its crop
    (:func:`blend_mnistm`).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    _check_size(size)
    x_np, y_np = _mnist5k_arrays()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    gen = torch.Generator().manual_seed(seed)
    tr, te = stratified_split(y, TEST_FRAC, gen)
    parts = {}
    for name, idx in (("train", tr), ("test", te)):
        crops, ids, xy = photo_crops(len(idx), size, gen, name)
        parts[name] = (blend_mnistm(digit_canvas(x[idx], size), crops), y[idx].clone(), ids, xy)
    (xa, ya, pa, ca), (xb, yb, pb, cb) = parts["train"], parts["test"]
    return MnistMParts(xa, ya, xb, yb, tr, te, pa, pb, ca, cb)


def build_mnistm(seed: int = 0, size: int = 32) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)`` of :func:`compose_mnistm`: 4000 and 1000
    images (N, 3, size, size) uint8 with (N,) int64 labels."""
    p = compose_mnistm(seed, size)
    return p.x_train, p.y_train, p.x_test, p.y_test


def load_mnistm5k(seed: int = 0, size: int = 32) -> Dataset:
    """``mnistm5k`` as a :class:`mixkit.data.Dataset` (3 x size x size uint8, 10 classes),
    with the per-channel mean/std of its train split."""
    xa, ya, xb, yb = build_mnistm(seed, size)
    train, test = Split(xa, ya), Split(xb, yb)
    mean, std = _stats(train.x)
    return Dataset("mnistm5k", train, test, 10, mean, std)


def save_grid(x: Tensor, y: Tensor, path: str | Path, cols: int = 8) -> None:
    """Save images x (N, 3, H, W) uint8 with labels y (N,) int64 as a PNG grid (matplotlib,
    label above each image); ``path`` a str or Path."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left alone

    n = int(x.shape[0])
    rows = -(-n // cols)
    fig = Figure(figsize=(cols * 1.1, rows * 1.25))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(x[i].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(str(int(y[i])), fontsize=9, pad=2)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=100)
