"""AutoAugment (Cubuk et al. 2019) in pure torch, vectorised per sample.

The policy table and the magnitude grid follow torchvision's ``transforms/autoaugment.py``
(``AutoAugmentPolicy.CIFAR10``, 10 magnitude bins, signed ops get a random sign), which is
what the Good-DA-in-KD code calls for CIFAR (``helper/loops.py::get_mixed_input``). Unlike
torchvision, which draws ONE sub-policy for a whole batch tensor, each sample draws its own
sub-policy, probabilities and signs (``per_batch=True`` reproduces the one-draw behaviour).

Images are pixel images: (B, C, H, W) uint8 in [0, 255] or float in [0, 1]; the output has the
input's dtype and range. Internally ops work on float values in [0, 255] rounded to integer
levels after every op (the uint8 semantics of torchvision's tensor ops). Geometric ops use
nearest sampling and fill 0 (torchvision's defaults).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mixkit.ops.checks import check_unit_interval

# (op, probability, magnitude bin or None) pairs; torchvision AutoAugmentPolicy.CIFAR10.
CIFAR10_POLICY: tuple[tuple[tuple[str, float, int | None], ...], ...] = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)
POLICIES = {"cifar10": CIFAR10_POLICY}

_NUM_BINS = 10
_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"} | {
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
}


def magnitude_value(op: str, bin_: int | None, height: int, width: int) -> float:
    """Unsigned magnitude of bin ``bin_`` (0..9) of ``op`` (torchvision's magnitude grid)."""
    if bin_ is None:
        return 0.0
    t = bin_ / (_NUM_BINS - 1)
    if op in ("ShearX", "ShearY"):
        return 0.3 * t
    if op == "TranslateX":
        return float(int(150.0 / 331.0 * width * t))  # torchvision truncates: int(magnitude)
    if op == "TranslateY":
        return float(int(150.0 / 331.0 * height * t))
    if op == "Rotate":
        return 30.0 * t
    if op in ("Brightness", "Color", "Contrast", "Sharpness"):
        return 0.9 * t
    if op == "Posterize":
        return float(8 - round(bin_ / ((_NUM_BINS - 1) / 4)))
    if op == "Solarize":
        return 255.0 * (1 - t)
    return 0.0


# ----------------------------------------------------------------------------- ops
# Every op: x (n, C, H, W) float in [0, 255] (integer levels), m (n,) float -> same shape.


def _blend(a: Tensor, b: Tensor, factor: Tensor) -> Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp(0, 255)


def _gray(x: Tensor) -> Tensor:
    """(n, 1, H, W) luminance (ITU-R 601-2, as PIL/torchvision); identity for 1 channel."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 0.2989 * r + 0.587 * g + 0.114 * b


def _affine(x: Tensor, mats: Tensor) -> Tensor:
    """Inverse-map each output pixel centre (u, v) to ``mats @ (u, v, 1)`` in pixel coordinates
    (origin at the top-left corner), nearest sampling, fill 0. mats: (n, 2, 3)."""
    n, _, h, w = x.shape
    v, u = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=x.dtype) + 0.5,
        torch.arange(w, device=x.device, dtype=x.dtype) + 0.5,
        indexing="ij",
    )
    pts = torch.stack([u, v, torch.ones_like(u)], -1).view(1, h * w, 3)
    src = pts @ mats.to(x.dtype).transpose(1, 2)  # (n, HW, 2) input pixel coordinates
    grid = torch.stack([src[..., 0] * (2.0 / w) - 1, src[..., 1] * (2.0 / h) - 1], -1)
    return F.grid_sample(
        x, grid.view(n, h, w, 2), mode="nearest", padding_mode="zeros", align_corners=False
    )


def _mats(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device, dtype=dtype)
    return eye.expand(n, 2, 3).clone()


def _shear_x(x: Tensor, m: Tensor) -> Tensor:
    a = _mats(x.shape[0], x.device, x.dtype)
    a[:, 0, 1] = m  # PIL AFFINE (1, m, 0, 0, 1, 0): x_in = u + m v
    return _affine(x, a)


def _shear_y(x: Tensor, m: Tensor) -> Tensor:
    a = _mats(x.shape[0], x.device, x.dtype)
    a[:, 1, 0] = m
    return _affine(x, a)


def _translate_x(x: Tensor, m: Tensor) -> Tensor:
    a = _mats(x.shape[0], x.device, x.dtype)
    a[:, 0, 2] = -m  # content moves right by m pixels
    return _affine(x, a)


def _translate_y(x: Tensor, m: Tensor) -> Tensor:
    a = _mats(x.shape[0], x.device, x.dtype)
    a[:, 1, 2] = -m
    return _affine(x, a)


def _rotate(x: Tensor, m: Tensor) -> Tensor:
    """Counter-clockwise by ``m`` degrees about the image centre (torchvision ``rotate``)."""
    h, w = x.shape[-2:]
    th = m.to(x.dtype) * (math.pi / 180)
    c, s = torch.cos(th), torch.sin(th)
    cx, cy = w / 2, h / 2
    a = torch.stack(
        [
            torch.stack([c, -s, cx - c * cx + s * cy], -1),
            torch.stack([s, c, cy - s * cx - c * cy], -1),
        ],
        1,
    )
    return _affine(x, a)


def _brightness(x: Tensor, m: Tensor) -> Tensor:
    return _blend(x, torch.zeros_like(x), 1 + m)


def _color(x: Tensor, m: Tensor) -> Tensor:
    return _blend(x, _gray(x).expand_as(x), 1 + m)


def _contrast(x: Tensor, m: Tensor) -> Tensor:
    mean = _gray(x).mean((1, 2, 3), keepdim=True).expand_as(x)
    return _blend(x, mean, 1 + m)


def _sharpness(x: Tensor, m: Tensor) -> Tensor:
    """Blend with the PIL SMOOTH-filtered image (kernel [[1,1,1],[1,5,1],[1,1,1]]/13);
    the one-pixel border keeps the original values (torchvision ``adjust_sharpness``)."""
    n, c, h, w = x.shape
    if h < 3 or w < 3:
        return x
    k = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    k[1, 1] = 5.0
    k = (k / 13.0).expand(c, 1, 3, 3)
    smooth = F.conv2d(x, k, groups=c).round()
    degenerate = x.clone()
    degenerate[:, :, 1:-1, 1:-1] = smooth
    return _blend(x, degenerate, 1 + m)


def _posterize(x: Tensor, m: Tensor) -> Tensor:
    step = torch.pow(2.0, 8 - m.to(x.dtype)).view(-1, 1, 1, 1)  # keep the top m bits
    return torch.floor(x / step) * step


def _solarize(x: Tensor, m: Tensor) -> Tensor:
    return torch.where(x >= m.view(-1, 1, 1, 1).to(x.dtype), 255 - x, x)


def _autocontrast(x: Tensor, m: Tensor) -> Tensor:
    lo = x.amin((2, 3), keepdim=True)
    hi = x.amax((2, 3), keepdim=True)
    flat = hi <= lo
    scale = torch.where(flat, torch.ones_like(hi), 255.0 / (hi - lo).clamp_min(1e-6))
    lo = torch.where(flat, torch.zeros_like(lo), lo)
    return ((x - lo) * scale).clamp(0, 255)


def _equalize(x: Tensor, m: Tensor) -> Tensor:
    """Per-channel histogram equalisation (PIL ``ImageOps.equalize`` / torchvision
    ``_scale_channel``): step = (N - count of the top value) // 255,
    lut[v] = (cdf[v-1] + step // 2) // step; channels with step 0 are unchanged."""
    n, c, h, w = x.shape
    v = x.round().clamp(0, 255).long().view(n * c, h * w)
    hist = torch.zeros(n * c, 256, device=x.device, dtype=torch.long)
    hist.scatter_add_(1, v, torch.ones_like(v))
    top = hist.gather(1, v.amax(1, keepdim=True))
    step = (h * w - top) // 255  # (nc, 1)
    cdf = hist.cumsum(1)
    lut = (cdf + step // 2) // step.clamp_min(1)
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut[:, :-1]], 1).clamp(0, 255)
    out = torch.where(step > 0, lut.gather(1, v), v)
    return out.view(n, c, h, w).to(x.dtype)


def _invert(x: Tensor, m: Tensor) -> Tensor:
    return 255 - x


OPS = {
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateX": _translate_x,
    "TranslateY": _translate_y,
    "Rotate": _rotate,
    "Brightness": _brightness,
    "Color": _color,
    "Contrast": _contrast,
    "Sharpness": _sharpness,
    "Posterize": _posterize,
    "Solarize": _solarize,
    "AutoContrast": _autocontrast,
    "Equalize": _equalize,
    "Invert": _invert,
}
_OP_NAMES = tuple(OPS)


def check_pixel_batch(images: Tensor, kind: str = "tensor") -> None:
    """Raise ValueError unless ``images`` is a (B, C, H, W) uint8 or float tensor (``kind``
    names it in the message)."""
    if not isinstance(images, Tensor) or images.ndim != 4:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, C, H, W) {kind}, got {got}")
    if not (images.dtype == torch.uint8 or images.is_floating_point()):
        raise ValueError(f"images must be uint8 or float in [0, 1], got {images.dtype}")


def check_pixel_range(images: Tensor) -> None:
    """ValueError for float images outside [0, 1] (normalised inputs would be clamped to
    [0, 1] silently). CPU: checked now; other devices: ``torch._assert_async`` (no sync)."""
    check_unit_interval(
        images,
        "images: float images must be unnormalised pixels in [0, 1] (AutoAugment works on "
        "pixel levels; normalise after augmenting, or pass uint8)",
    )


def _to_levels(images: Tensor) -> Tensor:
    return images.float() if images.dtype == torch.uint8 else (images.float() * 255).round()


def _from_levels(x: Tensor, like: Tensor) -> Tensor:
    x = x.round().clamp(0, 255)
    return x.to(torch.uint8) if like.dtype == torch.uint8 else (x / 255).to(like.dtype)


def apply_op(images: Tensor, op: str, magnitude: float | Tensor) -> Tensor:
    """Apply one op with a (signed) magnitude (scalar or (B,)) to every sample. Keeps dtype."""
    check_pixel_batch(images)
    check_pixel_range(images)
    if op not in OPS:
        raise ValueError(f"op must be one of {sorted(OPS)}, got {op!r}")
    m = torch.as_tensor(magnitude, dtype=torch.float32, device=images.device)
    m = m.expand(images.shape[0]) if m.ndim == 0 else m
    return _from_levels(OPS[op](_to_levels(images), m), images)


def autoaugment(
    images: Tensor,
    generator: torch.Generator | None = None,
    policy: str = "cifar10",
    per_batch: bool = False,
) -> Tensor:
    """AutoAugment each sample of (B, C, H, W) pixel images with its own random sub-policy.

    Draws (on the CPU, from ``generator``): sub-policy id, the two op probabilities and the two
    signs per sample, or once for the batch when ``per_batch``. Returns a new tensor of the
    input's dtype; samples whose ops were all skipped are returned unchanged (bit-exact).
    """
    check_pixel_batch(images)
    check_pixel_range(images)
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {sorted(POLICIES)}, got {policy!r}")
    table = POLICIES[policy]
    b, _, h, w = images.shape
    n = 1 if per_batch else b
    sub = torch.randint(len(table), (n,), generator=generator)
    u = torch.rand(n, 2, generator=generator)
    sign = torch.randint(2, (n, 2), generator=generator) * 2 - 1
    if per_batch:
        sub, u, sign = sub.expand(b), u.expand(b, 2), sign.expand(b, 2)
    op_id = torch.tensor([[_OP_NAMES.index(s[0]) for s in sp] for sp in table])[sub]  # (B, 2)
    prob = torch.tensor([[s[1] for s in sp] for sp in table])[sub]
    mag = torch.tensor(
        [[magnitude_value(s[0], s[2], h, w) for s in sp] for sp in table], dtype=torch.float32
    )[sub]
    signed = torch.tensor([n_ in _SIGNED for n_ in _OP_NAMES])[op_id]
    mag = torch.where(signed, mag * sign, mag)
    applied = u <= prob  # torchvision: ``probs[i] <= p``
    work = _to_levels(images)
    touched = applied.any(1)
    for stage in range(2):
        for k, name in enumerate(_OP_NAMES):  # loop over op types, never over samples
            idx = torch.nonzero(applied[:, stage] & (op_id[:, stage] == k)).flatten()
            if idx.numel() == 0:
                continue
            dev_idx = idx.to(images.device)
            res = OPS[name](work.index_select(0, dev_idx), mag[idx, stage].to(images.device))
            work = work.index_copy(0, dev_idx, res.round().clamp(0, 255))
    out = _from_levels(work, images)
    keep = (~touched).to(images.device).view(-1, 1, 1, 1)
    return torch.where(keep, images, out)
