"""Region masks for mask-based mixing: ClassMix and FMix-style low-frequency masks."""

from __future__ import annotations

import torch
from torch import Tensor

HALVES = ("ceil", "floor")


def _check_label_maps(label_maps: Tensor) -> None:
    if label_maps.ndim != 3 or label_maps.is_floating_point() or label_maps.dtype == torch.bool:
        raise ValueError(
            f"label_maps must be an integer tensor (B, H, W) of class ids, "
            f"got {label_maps.dtype} {tuple(label_maps.shape)}"
        )


def present_classes(label_maps: Tensor, num_classes: int) -> Tensor:
    """Which classes occur in each map. (B, H, W) int -> (B, K) bool.

    Ids outside ``[0, num_classes)`` (e.g. the ignore index 255) are not classes.
    """
    _check_label_maps(label_maps)
    b = label_maps.shape[0]
    flat = label_maps.reshape(b, -1).long()
    valid = (flat >= 0) & (flat < num_classes)
    slot = torch.where(valid, flat, torch.full_like(flat, num_classes))
    hits = torch.zeros(b, num_classes + 1, device=label_maps.device)
    hits.scatter_(1, slot, 1.0)
    return hits[:, :num_classes] > 0


def sample_classmix_classes(
    label_maps: Tensor, num_classes: int, generator: torch.Generator | None, half: str = "ceil"
) -> Tensor:
    """Pick half of the n classes present in each map, uniformly without replacement.

    ``half="ceil"``: ``ceil(n/2)`` classes (ClassMix, Olsson et al. 2021:
    ``np.random.choice(n, (n + n % 2) // 2, replace=False)``); ``"floor"``: ``floor(n/2)``
    (Dual Teacher ``get_bin_mask``). Vectorised: i.i.d. uniform scores, drawn on the CPU
    from ``generator``, are ranked among the present classes on the maps' device (no host
    read). label_maps (B, H, W) int -> (B, K) bool on the maps' device.
    """
    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}, got {half!r}")
    present = present_classes(label_maps, num_classes)
    n = present.sum(1)
    take = (n + 1) // 2 if half == "ceil" else n // 2
    scores = torch.rand(present.shape, generator=generator)
    scores = scores.to(present.device, non_blocking=True)
    scores = torch.where(present, scores, torch.full_like(scores, 2.0))  # absent classes last
    rank = scores.argsort(1).argsort(1)
    return (rank < take[:, None]) & present


def classmix_mask(label_maps: Tensor, classes: Tensor) -> Tensor:
    """Pixels whose class is selected.

    label_maps (B, H, W) int, classes (B, K) bool -> (B, H, W) bool.

    Ids outside ``[0, K)`` (ignore index) are never selected.
    """
    _check_label_maps(label_maps)
    if classes.ndim != 2 or classes.dtype != torch.bool or classes.shape[0] != label_maps.shape[0]:
        raise ValueError(
            f"classes must be a bool tensor (B, K) with B={label_maps.shape[0]}, "
            f"got {classes.dtype} {tuple(classes.shape)}"
        )
    b, h, w = label_maps.shape
    k = classes.shape[1]
    flat = label_maps.reshape(b, -1).long()
    valid = (flat >= 0) & (flat < k)
    picked = classes.to(label_maps.device).gather(1, flat.clamp(0, k - 1)) & valid
    return picked.view(b, h, w)


def fmix_mask(
    area: Tensor,
    height: int,
    width: int,
    generator: torch.Generator | None,
    decay_power: float = 3.0,
) -> Tensor:
    """FMix-style binary masks (Harris et al. 2020): threshold low-frequency noise.

    Complex Gaussian noise in Fourier space is scaled by ``1 / f**decay_power`` (f clamped at
    ``1/max(H, W)``), transformed back, and the ``round(area*H*W)`` largest values of each
    sample become the mask, so each mask covers exactly that many pixels.

    Args:
        area: (B,) requested fraction of pixels taken from the partner.
    Returns:
        (B, H, W) bool (CPU), True = pixel from the partner.
    """
    b = area.shape[0]
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    freq = (fx**2 + fy**2).sqrt().clamp_min(1.0 / max(height, width))
    scale = freq.pow(-decay_power)
    noise = torch.randn(b, 2, *scale.shape, dtype=torch.float64, generator=generator)
    spectrum = torch.complex(noise[:, 0] * scale, noise[:, 1] * scale)
    field = torch.fft.irfft2(spectrum, s=(height, width)).reshape(b, -1)
    count = torch.round(area.double().clamp(0, 1) * height * width).long()
    order = field.argsort(1, descending=True)
    ranks = torch.arange(height * width).expand(b, -1)
    mask = torch.zeros(b, height * width, dtype=torch.bool)
    mask.scatter_(1, order, ranks < count[:, None])
    return mask.view(b, height, width)
