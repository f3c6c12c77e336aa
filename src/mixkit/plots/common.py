"""Shared pieces of the figures: saving, tile titles, showing an image and the exact pixel
geometry of outlines (boxes and mask borders) on an ``imshow``-ed image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import Tensor

# Outline of the pasted region, then of older RecursiveMix boxes nested inside it: bright
# colours that stand out on black MNIST digits and on colour images alike.
OUTLINE_COLOURS = ("#ff9f1c", "#2ec4ff", "#ff4fd8", "#9dff5c")
STYLES = ("-", "--", ":", "-.")


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Lay out (``tight_layout`` unless the figure has a layout engine, e.g. constrained),
    write ``fig`` to ``path`` (parent folders created) and close it."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def label_text(target: Tensor, top: int = 2, names: Sequence[str] | None = None) -> str:
    """'7:0.62 3:0.38' for a (K,) float soft target: its ``top`` classes with non-zero weight."""
    vals, idx = target.float().topk(min(top, target.numel()))
    parts = []
    for v, i in zip(vals.tolist(), idx.tolist(), strict=True):
        if v > 1e-6:
            parts.append(f"{names[i] if names else i}:{v:.2f}")
    return " ".join(parts)


def show_image(ax: Any, image: Tensor) -> None:
    """imshow a (C, H, W) uint8 or float [0, 1] image (numpy, not a tensor: matplotlib's
    ``np.array(x, copy=...)`` on a tensor warns under numpy 2)."""
    img = image.detach().cpu().float()
    if image.dtype == torch.uint8:
        img = img / 255.0
    img = img.clamp(0, 1).permute(1, 2, 0).numpy()
    if img.shape[2] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(img, interpolation="nearest")


def box_rectangle(box: Tensor | Sequence[int]) -> tuple[float, float, int, int]:
    """``(x, y, width, height)`` of the rectangle that outlines a (4,) int64 xyxy box with
    exclusive ends on an ``imshow``-ed image, where pixel j spans j - 0.5 .. j + 0.5."""
    x1, y1, x2, y2 = (int(v) for v in box)
    return x1 - 0.5, y1 - 0.5, x2 - x1, y2 - y1


def mask_edges(mask: Tensor) -> Tensor:
    """(M, 2, 2) float64 segments ``((x0, y0), (x1, y1))`` along the border between the True
    and False pixels of an (H, W) bool mask (outside the image counts as False), in
    ``imshow`` coordinates: the exact pixel outline of the mask."""
    m = mask.detach().cpu().bool()
    if m.ndim != 2:
        raise ValueError(f"mask must be (H, W) bool, got shape {tuple(m.shape)}")
    h, w = m.shape
    pad = torch.zeros(h + 2, w + 2, dtype=torch.bool)
    pad[1:-1, 1:-1] = m
    ys, xs = (pad[:-1, 1:-1] != pad[1:, 1:-1]).nonzero(as_tuple=True)  # edge above row ys
    horizontal = torch.stack([xs - 0.5, ys - 0.5, xs + 0.5, ys - 0.5], 1)
    ys, xs = (pad[1:-1, :-1] != pad[1:-1, 1:]).nonzero(as_tuple=True)  # edge left of col xs
    vertical = torch.stack([xs - 0.5, ys - 0.5, xs - 0.5, ys + 0.5], 1)
    return torch.cat([horizontal, vertical]).double().view(-1, 2, 2)
