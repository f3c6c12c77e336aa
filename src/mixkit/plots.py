"""Matplotlib figures: grids of mixed samples with their λ and top labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """``tight_layout``, write ``fig`` to ``path`` (parent folders created) and close it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


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
        # numpy, not a tensor: matplotlib's np.array(x, copy=...) on a tensor warns (numpy 2).
        img = img.clamp(0, 1).permute(1, 2, 0).numpy()
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
    return save_figure(fig, path)


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


def save_recursive_mix_grid(
    ds: Any, mixer: Any, n: int, path: str | Path, *, seed: int = 0, steps: int = 3
) -> Path:
    """Grid of ``n`` training images after ``steps`` recursive mixes of consecutive chunks of
    the training set, with a fresh copy of the ``RecursiveMix`` ``mixer``'s settings (the
    mixer is untouched: the copy has its own history and a generator seeded with ``seed``)."""
    if steps < 1 or n < 1:
        raise ValueError(f"n and steps must be >= 1, got n={n}, steps={steps}")
    fresh = type(mixer)(
        mixer.alpha,
        mixer.interpolation,
        mixer.per_sample,
        p=mixer.p,
        num_classes=ds.num_classes,
        label_smoothing=mixer.label_smoothing,
        generator=torch.Generator().manual_seed(seed),
    )
    total = len(ds.train.y)
    for k in range(steps):
        idx = torch.arange(k * n, (k + 1) * n) % total
        images, targets = fresh(ds.train.x.index_select(0, idx), ds.train.y.index_select(0, idx))
    return save_mix_grid(
        images,
        targets,
        fresh.last_params.lam,
        path,
        title=f"RecursiveMix after {steps} steps (λ = kept fraction of the newest batch)",
    )


def read_metrics(path: str | Path) -> dict[str, list[float]]:
    """Numeric columns of a ``metrics.csv`` written by any mixkit trainer: ``{column:
    values}`` (non-numeric columns, e.g. semiseg's ``active``, are left out; empty cells are
    NaN). Raises FileNotFoundError / ValueError for a missing or empty file."""
    import csv
    import math

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} holds no rows")
    out: dict[str, list[float]] = {}
    for key in rows[0]:
        values = []
        for r in rows:
            cell = (r.get(key) or "").strip()
            try:
                values.append(float(cell) if cell else math.nan)
            except ValueError:
                break
        else:
            out[key] = values
    return out


def _panel(key: str) -> str:
    k = key.lower()
    if "loss" in k:
        return "loss"
    if "acc" in k or "iou" in k:
        return "accuracy / mIoU"
    if k == "lr":
        return "learning rate"
    return "other"


def save_training_curves(
    metrics: str | Path | dict[str, list[float]], path: str | Path, *, title: str | None = None
) -> Path:
    """Training curves of a run: one panel each for losses, accuracies / mIoU, the learning
    rate and any other numeric column (distances, pass rates...), against ``epoch`` (else
    ``step``, else the row index). ``metrics``: a CSV path or :func:`read_metrics` output."""
    cols = read_metrics(metrics) if isinstance(metrics, str | Path) else dict(metrics)
    xkey = next((k for k in ("epoch", "step") if k in cols), None)
    n = len(next(iter(cols.values()), []))
    xs = cols[xkey] if xkey else list(range(1, n + 1))
    skip = {"epoch", "step", "time_s", "epoch_time_s", "wall_time_s"}
    panels: dict[str, list[str]] = {}
    for key in cols:
        if key not in skip:
            panels.setdefault(_panel(key), []).append(key)
    if not panels:
        raise ValueError("metrics hold no numeric column to plot")
    order = [p for p in ("loss", "accuracy / mIoU", "learning rate", "other") if p in panels]
    fig, axes = plt.subplots(1, len(order), figsize=(4.2 * len(order), 3.4), squeeze=False)
    for ax, name in zip(axes[0], order, strict=True):
        for key in panels[name]:
            ax.plot(xs, cols[key], marker="o" if n <= 30 else None, ms=3, lw=1.4, label=key)
        ax.set_xlabel(xkey or "row")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
