"""Weak and strong views of a segmentation batch (vectorised, seeded by a ``torch.Generator``).

- Weak view: a random translation by up to ``pad`` pixels (zero-pad + crop, no flip: a flipped
  digit is another glyph). Labels are shifted with the image and the padded border becomes
  ignore (255); for unlabeled images the border is marked invalid in their own ``valid`` mask
  (the "unlabeled batch's own ignore mask" used by Dual Teacher's implicit-consistency term).
- Strong view: the colour perturbation of PS-MT / Dual Teacher — ColorJitter(brightness=.5,
  contrast=.5, saturation=.5, hue=.25) with probability ``jitter_p`` (Dual Teacher
  ``tools/train.py``: always; PS-MT ``Base/base_dataset.py::data_aug``: 0.8),
  RandomGrayscale(p=.2) and a Gaussian blur (kernel 5) with probability ``blur_p`` and σ in
  ``blur_sigma`` (PS-MT: 0.5, (0.1, 2.0), kernel 1-5). Colour ops never move pixels, so
  labels / teacher maps of the weak view stay aligned.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mixkit.data import random_crop_flip
from mixkit.methods.semiseg.data import IGNORE


def weak_view(
    images: Tensor, labels: Tensor | None, pad: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Random translation of a uint8 batch.

    images (B, 3, H, W) uint8; labels (B, H, W) uint8 or None.
    Returns (images uint8, labels uint8 with the padded border = 255 (all 255 when labels is
    None), valid (B, H, W) bool: False on the padded border).
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W) uint8, got {images.dtype} {images.shape}")
    b, c, h, w = images.shape
    lab = labels if labels is not None else torch.full((b, h, w), IGNORE, dtype=torch.uint8)
    # Pack image, inverted label and a validity plane so one gather moves them together:
    # zero padding then decodes to label 255 and valid = False.
    packed = torch.cat(
        [images, (255 - lab)[:, None], torch.full((b, 1, h, w), 255, dtype=torch.uint8)], 1
    )
    moved = random_crop_flip(packed, pad, generator, per_sample=True, flip=False)
    return moved[:, :c], 255 - moved[:, c], moved[:, c + 1] > 0


def _gray(x: Tensor) -> Tensor:
    """ITU-R 601 luma (torchvision ``rgb_to_grayscale``). (B, 3, H, W) -> (B, 1, H, W)."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).clamp(0, 1)


# RGB -> YIQ (NTSC) and back; the inverse is computed once on the CPU so no device call has
# to check a factorisation (a host synchronisation on CUDA).
_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
)
_YIQ_INV = torch.linalg.inv(_YIQ)


def _hue_rotate(x: Tensor, hue: Tensor) -> Tensor:
    """Rotate the chroma of RGB images by ``hue`` (B,) turns in YIQ space (a vectorised
    approximation of torchvision's HSV hue shift)."""
    m = _YIQ.to(x.dtype).to(x.device, non_blocking=True)
    m_inv = _YIQ_INV.to(x.dtype).to(x.device, non_blocking=True)
    yiq = torch.einsum("ij,bjhw->bihw", m, x)
    ang = (2 * math.pi * hue).to(x.dtype).to(x.device).view(-1, 1, 1)
    cos, sin = ang.cos(), ang.sin()
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], 1)
    return torch.einsum("ij,bjhw->bihw", m_inv, yiq)


def _blur(x: Tensor, sigma: Tensor, apply: Tensor) -> Tensor:
    """Per-sample separable Gaussian blur (kernel 5) where ``apply`` (B,) is True."""
    b, c, h, w = x.shape
    r = 2
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma.to(x.dtype).to(x.device)[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)  # (B, 5)
    k = k.repeat_interleave(c, 0)  # one kernel per (sample, channel)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(b * c, 1, -1, 1), groups=b * c)
    return torch.where(apply.to(x.device).view(-1, 1, 1, 1), y.view(b, c, h, w), x)


def strong_colour(
    images: Tensor,
    generator: torch.Generator | None,
    *,
    brightness: float = 0.5,
    contrast: float = 0.5,
    saturation: float = 0.5,
    hue: float = 0.25,
    jitter_p: float = 1.0,
    gray_p: float = 0.2,
    blur_p: float = 0.5,
    blur_sigma: tuple[float, float] = (0.1, 1.0),
) -> Tensor:
    """Colour-perturb float images in [0, 1] (B, 3, H, W); per-sample draws (the official
    code draws ColorJitter once per batch when called on a batch tensor; per-sample draws
    are the per-image pipeline of Dual Teacher's ``batch_transform``). Returns a new tensor."""
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"images must be (B, 3, H, W) float in [0, 1], got {images.shape}")
    b = images.shape[0]
    u = torch.rand(b, 8, dtype=torch.float64, generator=generator)
    bri = (1 - brightness + 2 * brightness * u[:, 0]).view(-1, 1, 1, 1)
    con = (1 - contrast + 2 * contrast * u[:, 1]).view(-1, 1, 1, 1)
    sat = (1 - saturation + 2 * saturation * u[:, 2]).view(-1, 1, 1, 1)
    hue_t = -hue + 2 * hue * u[:, 3]
    jit = (u[:, 4] < jitter_p).view(-1, 1, 1, 1)
    gray = (u[:, 5] < gray_p).view(-1, 1, 1, 1)
    blur = u[:, 6] < blur_p
    sigma = blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * u[:, 7]
    dev, dt = images.device, images.dtype

    def t(v: Tensor) -> Tensor:
        return v.to(dt).to(dev)

    x = (images * t(bri)).clamp(0, 1)
    mean = _gray(x).mean((1, 2, 3), keepdim=True)
    x = ((x - mean) * t(con) + mean).clamp(0, 1)
    g = _gray(x)
    x = ((x - g) * t(sat) + g).clamp(0, 1)
    x = _hue_rotate(x, hue_t).clamp(0, 1)
    x = torch.where(jit.to(dev), x, images)
    x = torch.where(gray.to(dev), _gray(x).expand_as(x), x)
    return _blur(x, sigma, blur)


def normalise(x01: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Float [0, 1] -> ``(x - mean) / std`` per channel."""
    m = torch.tensor(mean, dtype=x01.dtype, device=x01.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x01.dtype, device=x01.device).view(1, -1, 1, 1)
    return (x01 - m) / s
