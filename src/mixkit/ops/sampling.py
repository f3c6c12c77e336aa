"""Random draws used by the mixers. Every function takes an explicit ``torch.Generator``.

All draws happen on the CPU (like kornia's ``set_rng_device_and_dtype`` default) so the
same seed gives the same parameters whatever device the images live on.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "sample_beta",
    "sample_uniform",
    "sample_bernoulli",
    "sample_pairing",
    "sample_boxes",
    "sample_boxes_inside",
    "sample_boxes_centred",
    "cut_size",
    "box_area_fraction",
    "PAIRINGS",
]

PAIRINGS = ("cycle", "roll", "flip", "random")


def numpy_ready(t: Tensor) -> bool:
    """Whether ``t.numpy()`` gives the tensor's values as they are: a CPU tensor that does not
    require grad (the numpy shortcuts of the ops take only those)."""
    return t.device.type == "cpu" and not t.requires_grad


def as_numpy(t: Tensor | np.ndarray) -> np.ndarray:
    """The values of a tensor as a numpy array (shared memory for a CPU tensor)."""
    if isinstance(t, np.ndarray):
        return t
    if numpy_ready(t):
        return t.numpy()
    return t.detach().cpu().numpy()


# The draws below take the random numbers from torch (the caller's generator, so the stream
# and the bytes are torch's) and do the arithmetic on them in numpy: the same IEEE float64 /
# int64 operations, so the same bytes as the torch formulas (tests/test_ops.py keeps those
# as the reference), at ~1 us per numpy op instead of ~5 us per small torch op on a 2-core
# CPU. The ``draw_*`` functions return numpy arrays (used by the mixers, which convert once);
# the ``sample_*`` functions return (CPU) tensors.


_TINY = np.finfo(np.float64).tiny


@functools.lru_cache(maxsize=64)
def _shape_tensor(alpha: float, beta: float, n: int) -> Tensor:
    """(2n,) float64: n times alpha, then n times beta, the gamma draws' shape argument
    (read-only, reused)."""
    shape = torch.empty(2 * n, dtype=torch.float64)
    shape[:n], shape[n:] = alpha, beta
    return shape


def draw_beta(
    alpha: float, n: int, generator: torch.Generator | None, beta: float | None = None
) -> np.ndarray:
    """``sample_beta`` as a (n,) float64 numpy array."""
    b = alpha if beta is None else beta
    # One call for both gammas: torch's CPU gamma kernel draws element after element, so the
    # 2n draws are the bytes (and the generator position) of two calls of n (tests/test_ops.py).
    gamma = torch._standard_gamma(_shape_tensor(float(alpha), float(b), n), generator=generator)
    ga, gb = gamma.numpy()[:n], gamma.numpy()[n:]
    # For tiny alpha torch clamps underflowing gammas to the smallest normal double, so both
    # can sit at that floor: their ratio is then meaningless (it used to come out as 2e-8
    # through a clamp of the sum) and Beta is, to double precision, a coin between 0 and 1.
    floor = _TINY
    u = torch.rand(n, dtype=torch.float64, generator=generator).numpy()  # the coin, always drawn
    total = ga + gb
    with np.errstate(all="ignore"):  # as silent as torch (inf / inf is NaN there too)
        ratio = ga / np.maximum(total, floor)
    # Both at the floor implies a sum <= 2 * floor: one reduction decides whether to look.
    if n and np.minimum.reduce(total) <= 2 * floor:
        both_under = (ga <= floor) & (gb <= floor)
        ratio = np.where(both_under, (u < 0.5).astype(np.float64), ratio)
    return ratio


def sample_beta(
    alpha: float, n: int, generator: torch.Generator | None, beta: float | None = None
) -> Tensor:
    """Draw ``n`` samples of Beta(alpha, beta) (beta defaults to alpha). Returns (n,) float64.

    Uses Beta = Ga/(Ga+Gb) with ``torch._standard_gamma``, which (unlike
    ``torch.distributions.Beta``) accepts a generator.
    """
    return torch.from_numpy(draw_beta(alpha, n, generator, beta))


def draw_uniform(low: float, high: float, n: int, generator: torch.Generator | None) -> np.ndarray:
    """``sample_uniform`` as a (n,) float64 numpy array."""
    u = torch.rand(n, dtype=torch.float64, generator=generator).numpy()
    return low + (high - low) * u


def sample_uniform(low: float, high: float, n: int, generator: torch.Generator | None) -> Tensor:
    """(n,) float64 uniform on [low, high)."""
    return torch.from_numpy(draw_uniform(low, high, n, generator))


def draw_bernoulli(p: float, n: int, generator: torch.Generator | None) -> np.ndarray:
    """``sample_bernoulli`` as a (n,) bool numpy array."""
    return torch.rand(n, dtype=torch.float64, generator=generator).numpy() < p


def sample_bernoulli(p: float, n: int, generator: torch.Generator | None) -> Tensor:
    """(n,) bool, each True with probability ``p`` (exactly False for p=0, True for p=1)."""
    return torch.from_numpy(draw_bernoulli(p, n, generator))


def draw_pairing(n: int, kind: str, generator: torch.Generator | None) -> np.ndarray:
    """``sample_pairing`` as a (n,) int64 numpy array."""
    if kind == "roll":
        return np.roll(np.arange(n, dtype=np.int64), 1)
    if kind == "flip":
        return np.arange(n - 1, -1, -1, dtype=np.int64)
    if kind == "random":
        return torch.randperm(n, generator=generator).numpy()
    if kind == "cycle":
        order = torch.randperm(n, generator=generator).numpy()
        perm = np.empty(n, dtype=np.int64)
        if n:
            perm[order[:-1]] = order[1:]  # each sample's partner is the next one in the cycle
            perm[order[-1]] = order[0]
        return perm
    raise ValueError(f"pairing must be one of {PAIRINGS}, got {kind!r}")


def sample_pairing(n: int, kind: str, generator: torch.Generator | None) -> Tensor:
    """Partner index for each sample: ``images[perm[i]]`` is mixed into ``images[i]``. (n,) int64.

    - ``cycle``: a uniformly random n-cycle, so no sample is paired with itself when n > 1
      (works for odd n, unlike timm's flip, and does not rely on a pre-shuffled batch,
      unlike torchvision's roll).
    - ``roll``: ``i -> i-1`` (torchvision v2 ``batch.roll(1, 0)``).
    - ``flip``: ``i -> n-1-i`` (timm ``x.flip(0)``); the middle sample of an odd batch pairs
      with itself.
    - ``random``: ``torch.randperm`` (kornia); fixed points are possible.
    """
    return torch.from_numpy(draw_pairing(n, kind, generator))


def clamp(a: np.ndarray, low: float, high: float) -> np.ndarray:
    """``torch.clamp(a, low, high)`` (NaN stays NaN) with two ufuncs: ``np.clip`` costs
    several times more per call on small arrays."""
    return np.minimum(np.maximum(a, low), high)


def box_sides(area: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``cut_size`` on a numpy array: (B,) int64 heights and widths."""
    ratio = np.sqrt(clamp(np.asarray(area, dtype=np.float64), 0, 1))
    h = clamp(np.round(ratio * height).astype(np.int64), 0, height)
    w = clamp(np.round(ratio * width).astype(np.int64), 0, width)
    return h, w


def cut_size(area: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Side lengths of a box covering fraction ``area`` (B,) of an HxW image, same aspect.

    ``h = round(H*sqrt(area))``, ``w = round(W*sqrt(area))`` (CutMix, Yun et al. 2019, eq. 2;
    rounding rather than truncation so the box is not biased small). Returns int64 (B,), (B,).
    """
    h, w = box_sides(as_numpy(area), height, width)
    return torch.from_numpy(h), torch.from_numpy(w)


def sample_boxes(
    area: Tensor, height: int, width: int, generator: torch.Generator | None
) -> Tensor:
    """CutMix boxes covering fraction ``area`` (B,) before clipping; see ``sample_boxes_centred``.

    Returns (B, 4) int64 boxes ``x1, y1, x2, y2`` with exclusive ends.
    """
    h, w = box_sides(as_numpy(area), height, width)
    return torch.from_numpy(draw_boxes_centred(h, w, height, width, generator))


def draw_boxes_centred(
    box_h: np.ndarray, box_w: np.ndarray, height: int, width: int, generator: torch.Generator | None
) -> np.ndarray:
    """``sample_boxes_centred`` on numpy sides: (B, 4) int64 numpy boxes."""
    n = box_h.shape[0]
    cy = torch.randint(0, height, (n,), generator=generator).numpy()
    cx = torch.randint(0, width, (n,), generator=generator).numpy()
    boxes = np.empty((n, 4), dtype=np.int64)
    boxes[:, 0] = cx - box_w // 2
    boxes[:, 1] = cy - box_h // 2
    boxes[:, 2] = boxes[:, 0] + box_w
    boxes[:, 3] = boxes[:, 1] + box_h
    return clamp(boxes, 0, np.array([width, height, width, height], dtype=np.int64))


def sample_boxes_centred(
    box_h: Tensor, box_w: Tensor, height: int, width: int, generator: torch.Generator | None
) -> Tensor:
    """Boxes of side (box_h, box_w) with centre uniform over ALL pixels, clipped to the image.

    The centre ``(cy, cx)`` is drawn with ``torch.randint(0, H)`` / ``(0, W)``: every row and
    column, the last included (the upper bound of randint is exclusive; timm #2739 and kornia
    #4730 missed the last positions). The top-left is ``c - size//2``, then the box is clipped
    as in CutMix's reference ``rand_bbox`` (Yun et al. 2019), so the realised area can be
    smaller than requested: λ must be recomputed from the box. Returns (B, 4) int64 xyxy.
    """
    h, w = as_numpy(box_h).astype(np.int64), as_numpy(box_w).astype(np.int64)
    return torch.from_numpy(draw_boxes_centred(h, w, height, width, generator))


def draw_boxes_inside(
    box_h: np.ndarray, box_w: np.ndarray, height: int, width: int, generator: torch.Generator | None
) -> np.ndarray:
    """``sample_boxes_inside`` on numpy sides: (B, 4) int64 numpy boxes."""
    n = box_h.shape[0]
    u = torch.rand(n, 2, dtype=torch.float64, generator=generator).numpy()
    y1 = np.floor(u[:, 0] * (height - box_h + 1).astype(np.float64)).astype(np.int64)
    x1 = np.floor(u[:, 1] * (width - box_w + 1).astype(np.float64)).astype(np.int64)
    # u < 1 strictly, so floor(u * k) <= k - 1 always; the clamp only guards rounding.
    boxes = np.empty((n, 4), dtype=np.int64)
    boxes[:, 0] = np.minimum(x1, width - box_w)
    boxes[:, 1] = np.minimum(y1, height - box_h)
    boxes[:, 2] = boxes[:, 0] + box_w
    boxes[:, 3] = boxes[:, 1] + box_h
    return boxes


def sample_boxes_inside(
    box_h: Tensor, box_w: Tensor, height: int, width: int, generator: torch.Generator | None
) -> Tensor:
    """Boxes of the given sizes placed fully inside the image, top-left uniform over all
    ``(H-h+1) x (W-w+1)`` valid positions (the last one included). Returns (B, 4) int64 xyxy.
    """
    h, w = as_numpy(box_h).astype(np.int64), as_numpy(box_w).astype(np.int64)
    return torch.from_numpy(draw_boxes_inside(h, w, height, width, generator))


def area_fraction(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """``box_area_fraction`` of (B, 4) numpy boxes: (B,) float64."""
    bw = np.maximum(boxes[:, 2] - boxes[:, 0], 0)
    bh = np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    return (bw * bh).astype(np.float64) / float(height * width)


def box_area_fraction(boxes: Tensor, height: int, width: int) -> Tensor:
    """Fraction of the HxW image covered by each (B, 4) xyxy box. (B,) float64."""
    return torch.from_numpy(area_fraction(as_numpy(boxes), height, width))
