"""Offline semantic-segmentation data built from real MNIST-5k digits, and VOC-style splits.

Each canvas (3 x S x S uint8, S = 48 by default) holds 1..``max_digits`` MNIST-5k digits at
random positions and scales, drawn in order (later digits occlude earlier ones) on either a
plain dark background or a texture cropped from a scikit-image photo (``skimage.data``;
bundled with scikit-image, no download). Per-pixel labels: ``digit class + 1`` where the
digit's stroke intensity is >= 0.5, ``0`` background and ``255`` (ignore) on the one-pixel
band just outside every stroke, the analogue of the VOC boundary band.

Train canvases use only digits of MNIST-5k's train split and val canvases only digits of its
test split, so the two sets share no source digit. Everything is a pure function of the seed.

Split protocols (the VOC ones, as in the PS-MT and Dual Teacher papers' VOC tables):

- ``random``: ``round(N * f)`` labeled canvases drawn uniformly (CPS-style "blended" lists);
- ``hq``: ``round(N_hq * f)`` labeled canvases drawn from the high-quality subset only (the
  VOC "original" 1464-image protocol: 92/183/366/732/1464); high-quality = single-digit
  canvases, whose labels are clean (no occlusion between digits);
- ``hq_first``: ``round(N * f)`` labeled canvases taken from the high-quality subset first,
  then at random from the rest (PS-MT's "blended, high-quality first" lists);

the unlabeled set is always every other train canvas. Splits are written as JSON files of
indices, stamped with the dataset fingerprint so a split cannot be applied to other data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mixkit.data import load_mnist5k
from mixkit.derived import textured_backgrounds

IGNORE = 255
NUM_CLASSES = 11  # background + digits 0..9
FRACTIONS = ("1/16", "1/8", "1/4", "1/2", "1")
PROTOCOLS = ("random", "hq", "hq_first")
BACKGROUNDS = ("mixed", "photo")  # flat or photo (texture_p) / a photo at every pixel
TEXTURES = (
    "camera",
    "coins",
    "moon",
    "grass",
    "gravel",
    "brick",
    "text",
    "page",
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
)


@dataclasses.dataclass
class SegSplit:
    """A set of canvases.

    images: (N, 3, S, S) uint8; labels: (N, S, S) uint8 ids in ``0..10`` or 255;
    digits: (N, max_digits) int64 index of each source digit in its MNIST-5k split
    (-1 = unused slot); num_digits: (N,) int64.
    """

    images: Tensor
    labels: Tensor
    digits: Tensor
    num_digits: Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def hq(self) -> Tensor:
        """(N,) bool: the high-quality subset (single-digit canvases, clean labels)."""
        return self.num_digits == 1


@dataclasses.dataclass
class SegDataset:
    train: SegSplit
    val: SegSplit
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    params: dict[str, Any]
    fingerprint: str
    # The MNIST-5k digits (N, 1, 28, 28) uint8 and classes (N,) the canvases were drawn from.
    source_train: Tensor
    source_val: Tensor
    source_train_y: Tensor
    source_val_y: Tensor

    @property
    def size(self) -> int:
        return int(self.train.images.shape[-1])


@lru_cache(maxsize=1)
def _texture_bank() -> list[Tensor]:
    """The scikit-image photos as (3, h, w) float32 in [0, 1]."""
    try:
        import skimage.data as skdata
    except ImportError as e:  # pragma: no cover - scikit-image is a declared dependency
        raise ValueError(
            "texture_p > 0 needs scikit-image (skimage.data photos); install it or pass texture_p=0"
        ) from e
    bank = []
    for name in TEXTURES:
        arr = torch.from_numpy(getattr(skdata, name)().copy()).float() / 255.0
        img = arr[None].expand(3, -1, -1) if arr.ndim == 2 else arr[..., :3].permute(2, 0, 1)
        bank.append(img.contiguous())
    return bank


def _backgrounds(
    n: int, size: int, texture_p: float, gen: torch.Generator, photo: str | None = None
) -> Tensor:
    """(n, 3, size, size) float backgrounds in [0, 0.5]: plain tinted or photo crops; with
    ``photo`` ("train" / "test") a crop of that disjoint photo pool at every pixel."""
    if photo is not None:  # mixkit.derived.textured_backgrounds, texture_p unused
        return 0.5 * textured_backgrounds(n, size, gen, split=photo, zoom=(2.0, 6.0))
    tint = 0.05 + 0.3 * torch.rand(n, 3, 1, 1, generator=gen)
    noise = 0.04 * torch.rand(n, 1, size, size, generator=gen)
    out = (tint + noise).expand(n, 3, size, size).clone()
    use_tex = torch.rand(n, generator=gen) < texture_p
    src = torch.randint(0, len(TEXTURES), (n,), generator=gen)
    zoom = 2.0 + 4.0 * torch.rand(n, generator=gen)  # crop side = zoom * size photo pixels
    pos = torch.rand(n, 2, generator=gen)
    gain = (0.3 + 0.2 * torch.rand(n, 1, 1, 1, generator=gen)) * (
        0.6 + 0.4 * torch.rand(n, 3, 1, 1, generator=gen)
    )
    bank = _texture_bank() if bool(use_tex.any()) else []
    for k, img in enumerate(bank):  # one batched grid_sample per photo, not per canvas
        sel = torch.nonzero(use_tex & (src == k)).flatten()
        if sel.numel() == 0:
            continue
        _, h, w = img.shape
        side = (zoom[sel] * size).clamp(max=min(h, w) - 1)
        sx, sy = side / w, side / h  # crop half-extent in normalised coords
        theta = torch.zeros(sel.numel(), 2, 3)
        theta[:, 0, 0] = sx
        theta[:, 1, 1] = sy
        theta[:, 0, 2] = -1 + sx + pos[sel, 0] * (2 - 2 * sx)
        theta[:, 1, 2] = -1 + sy + pos[sel, 1] * (2 - 2 * sy)
        grid = F.affine_grid(theta, [sel.numel(), 3, size, size], align_corners=False)
        crops = F.grid_sample(img[None].expand(sel.numel(), -1, -1, -1), grid, align_corners=False)
        out[sel] = crops * gain[sel]
    return out.clamp(0, 0.5)


def _render(
    digits: Tensor,
    classes: Tensor,
    n: int,
    size: int,
    max_digits: int,
    texture_p: float,
    scale: tuple[float, float],
    gen: torch.Generator,
    photo: str | None = None,
) -> SegSplit:
    """Draw n canvases from the digit pool ``digits`` (M, 1, 28, 28) uint8 with class ids
    ``classes`` (M,). The draws are batched over canvases; the only loop is over the <= 3
    digit slots, composited in drawing order."""
    m = digits.shape[0]
    num = torch.randint(1, max_digits + 1, (n,), generator=gen)
    slots = n * max_digits
    # Source digits: a permutation of the pool, cycled if there are more slots than digits.
    reps = -(-slots // m)
    order = torch.cat([torch.randperm(m, generator=gen) for _ in range(reps)])[:slots]
    used = torch.arange(max_digits)[None] < num[:, None]
    idx = torch.where(used, order.view(n, max_digits), torch.full((n, max_digits), -1))
    # Geometry: digit box of side `side` pixels, fully inside the canvas.
    side = (scale[0] + (scale[1] - scale[0]) * torch.rand(n, max_digits, generator=gen)) * size
    pos = torch.rand(n, max_digits, 2, generator=gen)
    x0 = pos[..., 0] * (size - side)
    y0 = pos[..., 1] * (size - side)
    # Inverse affine map canvas -> digit in normalised coordinates (align_corners=False).
    s = size / side
    theta = torch.zeros(slots, 2, 3)
    theta[:, 0, 0] = s.flatten()
    theta[:, 1, 1] = s.flatten()
    theta[:, 0, 2] = (s * (1 - (2 * x0 + side) / size)).flatten()
    theta[:, 1, 2] = (s * (1 - (2 * y0 + side) / size)).flatten()
    src = digits.index_select(0, idx.clamp_min(0).flatten()).float() / 255.0
    grid = F.affine_grid(theta, [slots, 1, size, size], align_corners=False)
    ink = F.grid_sample(src, grid, align_corners=False, padding_mode="zeros")
    ink = (ink.view(n, max_digits, size, size) * used[..., None, None]).clamp(0, 1)
    cls = classes.index_select(0, idx.clamp_min(0).flatten()).view(n, max_digits) + 1
    colour = 0.6 + 0.4 * torch.rand(n, max_digits, 3, generator=gen)
    image = _backgrounds(n, size, texture_p, gen, photo)
    label = torch.zeros(n, size, size, dtype=torch.long)
    for j in range(max_digits):
        v = ink[:, j : j + 1]
        image = image * (1 - v) + colour[:, j, :, None, None] * v
        label = torch.where(ink[:, j] >= 0.5, cls[:, j, None, None], label)
    # Ignore band: the one-pixel ring just outside the strokes (VOC-style boundary).
    stroke = (label > 0).float()[:, None]
    ring = (F.max_pool2d(stroke, 3, 1, 1) > 0)[:, 0] & (label == 0)
    label = torch.where(ring, torch.full_like(label, IGNORE), label)
    images = (image * 255).round().clamp(0, 255).to(torch.uint8)
    return SegSplit(images, label.to(torch.uint8), idx, num)


def _fingerprint(parts: list[Tensor], params: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for t in parts:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def build_seg_dataset(
    n_train: int = 1000,
    n_val: int = 300,
    size: int = 48,
    max_digits: int = 3,
    texture_p: float = 0.5,
    seed: int = 0,
    scale: tuple[float, float] = (0.4, 0.62),
    texture: str = "mixed",
) -> SegDataset:
    """Build the digit-segmentation dataset (deterministic from ``seed``).

    Args:
        n_train, n_val: number of canvases.
        size: canvas side S in pixels (>= 16).
        max_digits: digits per canvas are uniform in ``1..max_digits``.
        texture_p: probability that a canvas background is a scikit-image photo crop.
        seed: drives the MNIST-5k split, the digit choice and every draw.
        scale: digit side as a fraction of S (0.4..0.62 of 48 = 19..30 px).
        texture: "mixed" (flat or photo, ``texture_p``) or "photo" (a photo at every pixel).
    """
    for name, v, lo in (
        ("n_train", n_train, 1),
        ("n_val", n_val, 1),
        ("max_digits", max_digits, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    if not 0.0 <= texture_p <= 1.0:
        raise ValueError(f"texture_p must be in [0, 1], got {texture_p!r}")
    if texture not in BACKGROUNDS:
        raise ValueError(f"texture must be one of {list(BACKGROUNDS)}, got {texture!r}")
    if not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale!r}")
    mnist = _mnist(seed)
    gen = torch.Generator().manual_seed(seed)
    photo, common = texture == "photo", (size, max_digits, texture_p, scale, gen)
    train = _render(mnist.train.x, mnist.train.y, n_train, *common, "train" if photo else None)
    val = _render(mnist.test.x, mnist.test.y, n_val, *common, "test" if photo else None)
    xf = train.images.float() / 255.0
    mean = tuple(float(v) for v in xf.mean((0, 2, 3)))
    std = tuple(float(v) for v in xf.std((0, 2, 3)).clamp_min(1e-3))
    params = {
        "n_train": n_train,
        "n_val": n_val,
        "size": size,
        "max_digits": max_digits,
        "texture_p": texture_p,
        "seed": seed,
        "scale": list(scale),
    }
    if texture != "mixed":  # only then, so the fingerprints of existing split files hold
        params["texture"] = texture
    fp = _fingerprint([train.images, train.labels, val.images, val.labels], params)
    return SegDataset(
        train, val, NUM_CLASSES, mean, std, params, fp,
        mnist.train.x, mnist.test.x, mnist.train.y, mnist.test.y,
    )  # fmt: skip


@lru_cache(maxsize=2)
def _mnist(seed: int):
    """MNIST-5k (``mixkit.data.load_mnist5k``), loaded once per process and seed."""
    return load_mnist5k(seed)


@lru_cache(maxsize=2)
def cached_seg_dataset(
    n_train: int,
    n_val: int,
    size: int,
    max_digits: int,
    texture_p: float,
    seed: int,
    texture: str = "mixed",
) -> SegDataset:
    """``build_seg_dataset`` memoised per process (experiment workers reuse it)."""
    return build_seg_dataset(n_train, n_val, size, max_digits, texture_p, seed, texture=texture)


# ---------------------------------------------------------------------------- splits
def parse_fraction(split: str) -> float:
    """``"1/16"`` -> 0.0625. Accepts the names in ``FRACTIONS``."""
    if split not in FRACTIONS:
        raise ValueError(f"split must be one of {list(FRACTIONS)}, got {split!r}")
    num, _, den = split.partition("/")
    return float(num) / float(den or 1)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def make_split(ds: SegDataset, split: str, protocol: str = "random", seed: int = 0) -> dict:
    """Choose the labeled canvases of ``ds.train``. Returns the split record (JSON-able):
    ``labeled`` / ``unlabeled`` sorted index lists plus provenance."""
    frac = parse_fraction(split)
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
    n = len(ds.train)
    hq = ds.train.hq
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    hq_first = torch.cat([perm[hq[perm]], perm[~hq[perm]]])  # HQ canvases first, shuffled
    if protocol == "random":
        k = _round_half_up(n * frac)
        labeled = perm[:k]
    elif protocol == "hq":
        k = _round_half_up(int(hq.sum()) * frac)
        labeled = hq_first[:k]
    else:
        k = _round_half_up(n * frac)
        labeled = hq_first[:k]
    if k < 1:
        raise ValueError(f"split {split!r} with protocol {protocol!r} leaves no labeled canvas")
    mask = torch.zeros(n, dtype=torch.bool)
    mask[labeled] = True
    return {
        "split": split,
        "protocol": protocol,
        "seed": seed,
        "fingerprint": ds.fingerprint,
        "dataset": ds.params,
        "num_labeled": int(mask.sum()),
        "num_hq_labeled": int((mask & hq).sum()),
        "labeled": torch.nonzero(mask).flatten().tolist(),
        "unlabeled": torch.nonzero(~mask).flatten().tolist(),
    }


def write_split(record: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)
    return path


def load_split(path: str | Path, ds: SegDataset) -> tuple[Tensor, Tensor]:
    """Read a split file; checks it was made for ``ds``. Returns (labeled, unlabeled) int64."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    try:
        rec = json.loads(path.read_text())
        labeled, unlabeled = rec["labeled"], rec["unlabeled"]
        fp = rec["fingerprint"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"split file {path} is not a mixkit split file: {e}") from e
    if fp != ds.fingerprint:
        raise ValueError(
            f"split file {path} was made for dataset {fp[:12]}, not this one "
            f"({ds.fingerprint[:12]}); regenerate it"
        )
    lab = torch.tensor(labeled, dtype=torch.long)
    unl = torch.tensor(unlabeled, dtype=torch.long)
    n = len(ds.train)
    both = torch.cat([lab, unl])
    if both.numel() != n or torch.unique(both).numel() != n or (both.min() < 0) or both.max() >= n:
        raise ValueError(f"split file {path}: labeled + unlabeled must partition 0..{n - 1}")
    return lab, unl


def split_filename(split: str, protocol: str, seed: int, fingerprint: str) -> str:
    return f"{protocol}_{split.replace('/', '-')}_seed{seed}_{fingerprint[:10]}.json"


def ensure_split(
    ds: SegDataset, split: str, protocol: str, seed: int, folder: str | Path
) -> tuple[Path, Tensor, Tensor]:
    """Write the split file under ``folder`` if missing, then load it (path, labeled, unlabeled)."""
    path = Path(folder) / split_filename(split, protocol, seed, ds.fingerprint)
    if not path.is_file():
        write_split(make_split(ds, split, protocol, seed), path)
    lab, unl = load_split(path, ds)
    return path, lab, unl
