"""Grids of mixed samples: λ and the top-2 labels per tile, the pasted region outlined (a
rectangle for box mixers, the pixel outline of the mask for mask mixers) and, for
RecursiveMix, the boxes of earlier steps nested inside the newest one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.patheffects as pe
import matplotlib.pyplot as plt
import torch
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from torch import Tensor

from mixkit.augment.params import Kind, MixParams
from mixkit.plots.common import (
    OUTLINE_COLOURS,
    STYLES,
    box_rectangle,
    label_text,
    mask_edges,
    save_figure,
    show_image,
)

_BOX_KINDS = (int(Kind.CROP), int(Kind.RESIZE), int(Kind.FILL))
# A thin black halo under every outline keeps it visible on bright or busy images too.
_HALO = [pe.Stroke(linewidth=2.8, foreground="black", alpha=0.7), pe.Normal()]


def recursive_boxes(steps: Sequence[MixParams]) -> list[Tensor]:
    """Where the boxes of successive RecursiveMix draws (oldest first) lie in the newest
    mixed batch: a list of (B, 4) int64 xyxy boxes, the newest draw's box first, then the
    previous draw's box as it was resized into it, and so on (all-zero rows once a draw did
    not mix: older content is gone). Exact for ``nearest`` resizing (torch's
    ``floor(j * in / out)`` source index), within a pixel for ``bilinear``."""
    if not steps:
        raise ValueError("steps must hold at least one MixParams")
    last = steps[-1]
    h, w = last.size
    alive = last.kind != int(Kind.NONE)
    outer = last.boxes.cpu() * alive.view(-1, 1)
    out = [outer]
    for p in reversed(steps[:-1]):
        alive = alive & (p.kind != int(Kind.NONE))
        inner = p.boxes.cpu()
        spans = []
        for lo, hi, size, a in ((0, 2, w, inner[:, 0::2]), (1, 3, h, inner[:, 1::2])):
            length = outer[:, hi] - outer[:, lo]  # (B,)
            j = torch.arange(size)
            scale = size / length.clamp_min(1).float()
            src = torch.floor(j[None].float() * scale[:, None]).long().clamp_max(size - 1)
            inside = (j[None] < length[:, None]) & (src >= a[:, :1]) & (src < a[:, 1:])
            first = torch.where(inside, j, size).min(1).values
            last_j = torch.where(inside, j, -1).max(1).values
            spans.append((outer[:, lo] + first, outer[:, lo] + last_j + 1))
        (x1, x2), (y1, y2) = spans
        ok = alive & (x2 > x1) & (y2 > y1)
        outer = torch.stack([x1, y1, x2, y2], 1) * ok.view(-1, 1)
        out.append(outer)
    return out


def _draw_box(ax: Any, box: Tensor, level: int) -> None:
    x, y, bw, bh = box_rectangle(box)
    if bw <= 0 or bh <= 0:
        return
    colour = OUTLINE_COLOURS[level % len(OUTLINE_COLOURS)]
    ls = STYLES[level % len(STYLES)]
    rect = Rectangle((x, y), bw, bh, fill=False, ec=colour, lw=1.4, ls=ls, clip_on=False)
    rect.set_path_effects(_HALO)
    ax.add_patch(rect)


def draw_region(ax: Any, params: MixParams, i: int) -> None:
    """Outline sample i's pasted region on ``ax``: a rectangle for box kinds (CutMix,
    ResizeMix, Cutout, RecursiveMix), the mask's pixel outline for MASK kinds (FMix,
    ClassMix, multi-box CutMix); nothing for BLEND (MixUp) and unmixed samples."""
    kind = int(params.kind[i])
    if kind in _BOX_KINDS:
        _draw_box(ax, params.boxes[i], 0)
    elif kind == int(Kind.MASK) and params.mask is not None:
        segments = mask_edges(params.mask[i]).numpy()
        ax.add_collection(
            LineCollection(
                segments, colors=OUTLINE_COLOURS[0], lw=1.2, clip_on=False, path_effects=_HALO
            )
        )


def _check_grid(
    images: Tensor,
    targets: Tensor | None,
    lam: Tensor | None,
    params: MixParams | None,
    nested_boxes: Sequence[Tensor],
) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be (B, 1 or 3, H, W), got {got}")
    b = images.shape[0]
    if targets is not None and (targets.ndim != 2 or targets.shape[0] != b):
        raise ValueError(f"targets must be ({b}, K) like the images, got {tuple(targets.shape)}")
    if lam is not None and tuple(lam.shape) != (b,):
        raise ValueError(f"lam must be ({b},) like the images, got {tuple(lam.shape)}")
    if params is not None:
        params.check(b, tuple(images.shape[2:]))
    for boxes in nested_boxes:
        if tuple(boxes.shape) != (b, 4):
            raise ValueError(f"nested_boxes must hold ({b}, 4) boxes, got {tuple(boxes.shape)}")


def mix_grid_figure(
    images: Tensor,
    targets: Tensor | None,
    lam: Tensor | None,
    *,
    params: MixParams | None = None,
    nested_boxes: Sequence[Tensor] = (),
    ncols: int = 8,
    names: Sequence[str] | None = None,
    title: str | None = None,
) -> Any:
    """Grid of (B, C, H, W) images (uint8, or float in [0, 1]); each tile titled with the top
    2 labels of ``targets`` (B, K) float and ``lam`` (B,), with ``params``' pasted region
    outlined (:func:`draw_region`) and ``nested_boxes`` ((B, 4) int64 each, e.g. older
    RecursiveMix boxes) outlined in the next colours. Constrained layout: titles never
    overlap the row above. Raises ValueError for inputs of other shapes."""
    _check_grid(images, targets, lam, params, nested_boxes)
    b = images.shape[0]
    ncols = max(1, min(ncols, b))
    nrows = -(-b // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.6 * ncols, 1.85 * nrows + 0.3), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    kinds = set(params.kind.tolist()) if params is not None else set()
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= b:
            continue
        show_image(ax, images[i])
        if params is not None:
            draw_region(ax, params, i)
        for level, boxes in enumerate(nested_boxes, start=int(params is not None)):
            _draw_box(ax, boxes[i], level)
        lines = [label_text(targets[i], names=names)] if targets is not None else []
        if lam is not None:
            kind = f" ({Kind(int(params.kind[i])).name.lower()})" if len(kinds) > 1 else ""
            lines.append(f"λ={float(lam[i]):.2f}{kind}")
        ax.set_title("\n".join(lines), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _outline_legend(fig: Any, labels: Sequence[str]) -> None:
    handles = [
        Line2D([], [], color=OUTLINE_COLOURS[i % len(OUTLINE_COLOURS)], ls=STYLES[i % len(STYLES)])
        for i in range(len(labels))
    ]
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=7)


def save_mix_grid_for(ds: Any, mixer: Any, n: int, path: str | Path, *, seed: int = 0) -> Path:
    """Mix the first ``n`` training images of dataset ``ds`` (uint8) with ``mixer`` (or none)
    and save the grid, pasted regions outlined. The mixer's own generator is not advanced:
    a generator seeded with ``seed`` makes the draw."""
    from mixkit import ops

    x = ds.train.x[:n]
    y = ds.train.y[:n]
    if mixer is None:
        targets = ops.one_hot(y, ds.num_classes)
        return save_figure(mix_grid_figure(x, targets, None, title="no mixing"), path)
    params = mixer.draw(x.shape, torch.Generator().manual_seed(seed))
    mixed = mixer.apply(params, x, y)
    fig = mix_grid_figure(
        mixed.images, mixed.labels, params.lam, params=params,
        title=f"{type(mixer).__name__}: λ = share of the original image, top-2 labels",
    )  # fmt: skip
    if any(int(k) != int(Kind.BLEND) and int(k) != int(Kind.NONE) for k in params.kind):
        _outline_legend(fig, ["pasted region"])
    return save_figure(fig, path)


def save_recursive_mix_grid(
    ds: Any, mixer: Any, n: int, path: str | Path, *, seed: int = 0, steps: int = 3
) -> Path:
    """Grid of ``n`` training images after ``steps`` recursive mixes of consecutive chunks of
    the training set, with a fresh copy of the ``RecursiveMix`` ``mixer``'s settings (the
    mixer is untouched: the copy has its own history and a generator seeded with ``seed``).
    The newest box is outlined, and inside it the boxes of the earlier steps
    (:func:`recursive_boxes`)."""
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
    drawn = []
    for k in range(steps):
        idx = torch.arange(k * n, (k + 1) * n) % total
        images, targets = fresh(ds.train.x.index_select(0, idx), ds.train.y.index_select(0, idx))
        drawn.append(fresh.last_params)
    boxes = recursive_boxes(drawn)
    fig = mix_grid_figure(
        images, targets, fresh.last_params.lam, nested_boxes=boxes,
        title=f"RecursiveMix after {steps} steps: λ = kept fraction of the newest batch",
    )  # fmt: skip
    levels = sum(bool(b.any()) for b in boxes)
    if levels:
        names = ["previous batch"] + [f"batch {k + 1} steps back" for k in range(1, levels)]
        _outline_legend(fig, names)
    return save_figure(fig, path)
