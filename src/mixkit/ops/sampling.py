"""Random draws used by the mixers. Every function takes an explicit ``torch.Generator``.

All draws are torch ops on the CPU (like kornia's ``set_rng_device_and_dtype`` default), so
the same seed gives the same parameters whatever device the images live on; the mixers
move the finished parameters to the images' device with ``non_blocking=True``.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

PAIRINGS = ("cycle", "roll", "flip", "random")

_TINY = torch.finfo(torch.float64).tiny


@functools.lru_cache(maxsize=64)
def _gamma_shape(alpha: float, beta: float, n: int) -> Tensor:
    """(2n,) float64: n times alpha then n times beta, the gamma draws' shape (reused)."""
    shape = torch.empty(2 * n, dtype=torch.float64)
    shape[:n], shape[n:] = alpha, beta
    return shape


def sample_beta(
    alpha: float, n: int, generator: torch.Generator | None, beta: float | None = None
) -> Tensor:
    """Draw ``n`` samples of Beta(alpha, beta) (beta defaults to alpha). Returns (n,) float64.

    Beta = Ga / (Ga + Gb) with ``torch._standard_gamma``, which (unlike
    ``torch.distributions.Beta``) accepts a generator. Both gammas come from one call: torch's
    CPU gamma kernel draws element after element, so this is the stream of two calls of n.
    For tiny alpha both gammas can underflow to the smallest normal double; their ratio is
    then meaningless and Beta is, to double precision, a fair coin between 0 and 1, taken
    from a uniform that is always drawn (so the stream does not depend on the values).
    """
    b = alpha if beta is None else beta
    gamma = torch._standard_gamma(_gamma_shape(float(alpha), float(b), n), generator=generator)
    ga, gb = gamma[:n], gamma[n:]
    coin = torch.rand(n, dtype=torch.float64, generator=generator)
    ratio = ga / (ga + gb).clamp_min(_TINY)
    both_under = (ga <= _TINY) & (gb <= _TINY)
    return torch.where(both_under, (coin < 0.5).double(), ratio)


def sample_uniform(low: float, high: float, n: int, generator: torch.Generator | None) -> Tensor:
    """(n,) float64 uniform on [low, high)."""
    return low + (high - low) * torch.rand(n, dtype=torch.float64, generator=generator)


def sample_bernoulli(p: float, n: int, generator: torch.Generator | None) -> Tensor:
    """(n,) bool, each True with probability ``p`` (exactly False for p=0, True for p=1)."""
    return torch.rand(n, dtype=torch.float64, generator=generator) < p


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
    if kind == "roll":
        return torch.arange(n).roll(1)
    if kind == "flip":
        return torch.arange(n - 1, -1, -1)
    if kind == "random":
        return torch.randperm(n, generator=generator)
    if kind == "cycle":
        order = torch.randperm(n, generator=generator)
        perm = torch.empty(n, dtype=torch.long)
        perm[order] = order.roll(-1)  # each sample's partner is the next one in the cycle
        return perm
    raise ValueError(f"pairing must be one of {PAIRINGS}, got {kind!r}")


def cut_size(area: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Side lengths of a box covering fraction ``area`` (B,) of an HxW image, same aspect.

    ``h = round(H*sqrt(area))``, ``w = round(W*sqrt(area))`` (CutMix, Yun et al. 2019, eq. 2;
    rounding rather than truncation so the box is not biased small). Returns int64 (B,), (B,).
    """
    ratio = area.double().clamp(0, 1).sqrt()
    h = torch.round(ratio * height).long().clamp(0, height)
    w = torch.round(ratio * width).long().clamp(0, width)
    return h, w


def official_cut_size(area: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Side lengths of the official ``rand_bbox`` (clovaai/CutMix-PyTorch ``train.py``,
    Good-DA-in-KD ``helper/loops.py``, RecursiveMix ``utils.py``) for fraction ``area`` (B,):
    ``cut = int(side * sqrt(area))`` and the box ``c -/+ cut // 2``, so the side is
    ``2 * (cut // 2)``: truncated, then rounded down to even. Boxes of these sides from
    :func:`sample_boxes_centred` follow the official law. Returns int64 (B,), (B,)."""
    ratio = area.double().clamp(0, 1).sqrt()
    half_h = torch.floor(ratio * height).long() // 2
    half_w = torch.floor(ratio * width).long() // 2
    return 2 * half_h, 2 * half_w


def sample_boxes(
    area: Tensor, height: int, width: int, generator: torch.Generator | None
) -> Tensor:
    """CutMix boxes covering fraction ``area`` (B,) before clipping; see ``sample_boxes_centred``.

    Returns (B, 4) int64 boxes ``x1, y1, x2, y2`` with exclusive ends.
    """
    return sample_boxes_centred(*cut_size(area, height, width), height, width, generator)


def sample_boxes_centred(
    box_h: Tensor,
    box_w: Tensor,
    height: int,
    width: int,
    generator: torch.Generator | None,
    *,
    centre_from: tuple[int, int] = (0, 0),
) -> Tensor:
    """Boxes of side (box_h, box_w) with centre uniform over ALL pixels, clipped to the image.

    The centre ``(cy, cx)`` is drawn with ``torch.randint(0, H)`` / ``(0, W)``: every row and
    column, the last included (the upper bound of randint is exclusive; timm #2739 and kornia
    #4730 missed the last positions). The top-left is ``c - size//2``, then the box is clipped
    as in CutMix's reference ``rand_bbox`` (Yun et al. 2019), so the realised area can be
    smaller than requested: λ must be recomputed from the box. ``centre_from`` (row, column)
    raises the lowest centre (``rand_bbox_1`` of Dual Teacher / PS-MT draws it from
    ``side // 8``). Returns (B, 4) int64 xyxy.
    """
    n = box_h.shape[0]
    box_h, box_w = box_h.long(), box_w.long()
    cy = torch.randint(centre_from[0], height, (n,), generator=generator)
    cx = torch.randint(centre_from[1], width, (n,), generator=generator)
    y1, x1 = cy - box_h // 2, cx - box_w // 2
    boxes = torch.stack([x1, y1, x1 + box_w, y1 + box_h], dim=1)
    return torch.minimum(boxes.clamp_(min=0), _upper(height, width))


@functools.lru_cache(maxsize=64)
def _upper(height: int, width: int) -> Tensor:
    return torch.tensor([width, height, width, height])


def sample_boxes_inside(
    box_h: Tensor, box_w: Tensor, height: int, width: int, generator: torch.Generator | None
) -> Tensor:
    """Boxes of the given sizes placed fully inside the image, top-left uniform over all
    ``(H-h+1) x (W-w+1)`` valid positions (the last one included). Returns (B, 4) int64 xyxy.
    """
    box_h, box_w = box_h.long(), box_w.long()
    u = torch.rand(box_h.shape[0], 2, dtype=torch.float64, generator=generator)
    y1 = torch.floor(u[:, 0] * (height - box_h + 1).double()).long()
    x1 = torch.floor(u[:, 1] * (width - box_w + 1).double()).long()
    # u < 1 strictly, so floor(u * k) <= k - 1; the minimum only guards rounding.
    y1, x1 = torch.minimum(y1, height - box_h), torch.minimum(x1, width - box_w)
    return torch.stack([x1, y1, x1 + box_w, y1 + box_h], dim=1)


def box_area_fraction(boxes: Tensor, height: int, width: int) -> Tensor:
    """Fraction of the HxW image covered by each (B, 4) xyxy box. (B,) float64."""
    area = (boxes[:, 2] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 1]).clamp_min(0)
    return area.double() / float(height * width)
