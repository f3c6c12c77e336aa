"""Matplotlib figures: grids of mixed samples with their λ and top labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

__all__ = ["save_mix_grid", "save_mix_grid_for", "label_text"]


def label_text(target: Tensor, top: int = 2, names: list[str] | None = None) -> str:
    """'7:0.62 3:0.38' for a (K,) soft target (top classes with non-zero weight)."""
    vals, idx = target.float().topk(min(top, target.numel()))
    parts = []
    for v, i in zip(vals.tolist(), idx.tolist(), strict=True):
        if v > 1e-6:
            parts.append(f"{names[i] if names else i}:{v:.2f}")
    return " ".join(parts)


def save_mix_grid(
    images: Tensor,
    targets: Tensor | None,
    lam: Tensor | None,
    path: str | Path,
    *,
    ncols: int = 8,
    names: list[str] | None = None,
    title: str | None = None,
) -> Path:
    """Save a PNG grid of (B, C, H, W) images (uint8, or float in [0, 1]) titled with the
    top labels of ``targets`` (B, K) and ``lam`` (B,)."""
    images = images.detach().cpu()
    b = images.shape[0]
    ncols = max(1, min(ncols, b))
    nrows = -(-b // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.8 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= b:
            continue
        img = images[i].float()
        if images.dtype == torch.uint8:
            img = img / 255.0
        img = img.clamp(0, 1).permute(1, 2, 0)
        if img.shape[2] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img)
        lines = []
        if targets is not None:
            lines.append(label_text(targets[i], names=names))
        if lam is not None:
            lines.append(f"λ={float(lam[i]):.2f}")
        ax.set_title("\n".join(lines), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_mix_grid_for(ds: Any, mixer: Any, n: int, path: str | Path, *, seed: int = 0) -> Path:
    """Mix the first ``n`` training images of dataset ``ds`` (uint8) with ``mixer`` (or none)
    and save the grid. The mixer's own generator is not advanced: a seeded one is used."""
    from mixkit import ops

    x = ds.train.x[:n]
    y = ds.train.y[:n]
    if mixer is None:
        targets = ops.one_hot(y, ds.num_classes)
        return save_mix_grid(x, targets, None, path, title="no mixing")
    params = mixer.draw(x.shape, torch.Generator().manual_seed(seed))
    mixed = mixer.apply(params, x, y)
    return save_mix_grid(
        mixed.images,
        mixed.labels,
        params.lam,
        path,
        title=f"{type(mixer).__name__} (λ = kept fraction)",
    )
