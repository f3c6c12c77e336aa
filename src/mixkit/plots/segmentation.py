"""Segmentation figures: images with the ground truth and the prediction overlaid (per-image
pixel accuracy), and one draw of a segmentation mixer on images and label maps; both with a
legend of the classes present."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Patch
from torch import Tensor

from mixkit.augment.params import MixParams
from mixkit.plots.mixing import draw_region

_PALETTES = ("tab10", "tab20b", "tab20c")


def class_colours(num_classes: int) -> Tensor:
    """(K, 3) float32 RGB colours in [0, 1] for class ids 0..K-1: class 0 black, then the
    tab10 colours (its grey last: it reads like the whitened ignore band), then tab20b /
    tab20c, then evenly spaced hues."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    pal = [(0.0, 0.0, 0.0)]
    for name in _PALETTES:
        cmap = plt.get_cmap(name)
        order = [0, 1, 2, 3, 4, 5, 6, 8, 9, 7] if name == "tab10" else range(cmap.N)
        pal += [tuple(cmap(i)[:3]) for i in order]
    extra = num_classes - len(pal)
    if extra > 0:
        hsv = plt.get_cmap("hsv")
        pal += [tuple(hsv(i / extra)[:3]) for i in range(extra)]
    return torch.tensor(pal[:num_classes], dtype=torch.float32)


def _check(images: Tensor, maps: dict[str, Tensor]) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be (N, C, H, W), got {got}")
    n, _, h, w = images.shape
    for name, m in maps.items():
        if not isinstance(m, Tensor) or m.shape != (n, h, w) or m.is_floating_point():
            got = f"{m.dtype} {tuple(m.shape)}" if isinstance(m, Tensor) else type(m).__name__
            raise ValueError(f"{name} must be ({n}, {h}, {w}) integer class ids, got {got}")


def _rgb(image: Tensor) -> Tensor:
    """(C, H, W) uint8 or float [0, 1] -> (H, W, 3) float32 in [0, 1]."""
    img = image.detach().cpu().float()
    if image.dtype == torch.uint8:
        img = img / 255.0
    img = img.clamp(0, 1)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return img[:3].permute(1, 2, 0)


def _paint(
    image: Tensor | None, labels: Tensor, colours: Tensor, ignore: int, background: int | None
) -> Tensor:
    """(H, W, 3) float: class colours blended over ``image`` at 0.6 (``background`` pixels
    left as the image), ignore pixels whitened; without an image the plain colour map
    (ignore white)."""
    lab = labels.detach().cpu().long()
    ignored = lab == ignore
    colour = colours[lab.clamp(0, len(colours) - 1).masked_fill(ignored, 0)]
    colour[ignored] = 1.0
    if image is None:
        return colour
    alpha = torch.full(lab.shape, 0.6)
    if background is not None:
        alpha[lab == background] = 0.0
    alpha[ignored] = 0.5
    return image * (1 - alpha[..., None]) + colour * alpha[..., None]


def _legend(
    fig: Any,
    maps: Sequence[Tensor],
    colours: Tensor,
    names: Sequence[str] | None,
    ignore: int,
    background: int | None,
) -> list[str]:
    """A legend of the class ids present in ``maps`` (then the ignore index if present);
    returns its labels."""
    ids = torch.cat([m.detach().cpu().long().flatten() for m in maps]).unique().tolist()
    handles = []
    for c in ids:
        if c == ignore:
            continue
        if not 0 <= c < len(colours):
            raise ValueError(f"class id {c} is outside 0..{len(colours) - 1} (num_classes)")
        label = names[c] if names else str(c)
        if c == background:  # left uncoloured on the image
            patch = Patch(facecolor="none", edgecolor="0.4", hatch="////", label=label)
        else:
            patch = Patch(facecolor=tuple(colours[c].tolist()), edgecolor="0.4", label=label)
        handles.append(patch)
    if ignore in ids:
        handles.append(Patch(facecolor="white", edgecolor="0.4", label=f"ignore ({ignore})"))
    ncols = min(len(handles), 8) or 1
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=7)
    return [h.get_label() for h in handles]


def _num_classes(maps: Sequence[Tensor], names: Sequence[str] | None, ignore: int) -> int:
    if names:
        return len(names)
    ids = torch.cat([m.detach().cpu().long().flatten() for m in maps])
    ids = ids[ids != ignore]
    return int(ids.max()) + 1 if ids.numel() else 1


def _accuracy(gt: Tensor, pred: Tensor, ignore: int, background: int | None) -> str:
    """'acc 0.97 (fg 0.42)': pixel accuracy over the non-ignored pixels and over the
    non-background ones (the foreground is what a mostly-background canvas hides)."""
    valid = gt != ignore
    if not bool(valid.any()):
        return ""
    text = f"acc {float((pred[valid] == gt[valid]).float().mean()):.2f}"
    fg = valid & (gt != background) if background is not None else valid
    if background is not None and bool(fg.any()):
        text += f" (fg {float((pred[fg] == gt[fg]).float().mean()):.2f})"
    return text


def _grid(rows: int, n: int, row_names: Sequence[str]) -> tuple[Any, Any]:
    """A rows x n grid of bare axes, row i labelled ``row_names[i]``."""
    fig, axes = plt.subplots(
        rows, n, figsize=(1.55 * n + 0.4, 1.7 * rows + 0.7), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for r, name in enumerate(row_names):
        axes[r, 0].set_ylabel(name, fontsize=8)
    return fig, axes


def _seg_grid(
    images: Tensor,
    maps: dict[str, Tensor],
    class_names: Sequence[str] | None,
    ignore: int,
    row_names: Sequence[str],
    params: MixParams | None = None,
) -> tuple[Any, Any, Tensor]:
    """Check the (N, C, H, W) images, their named (N, H, W) label ``maps`` and ``params``;
    then the figure, its len(row_names) x N axes and the (K, 3) colours of the classes."""
    _check(images, maps)
    if params is not None:
        params.check(images.shape[0], tuple(images.shape[2:]))
    colours = class_colours(_num_classes(list(maps.values()), class_names, ignore))
    fig, axes = _grid(len(row_names), images.shape[0], row_names)
    return fig, axes, colours


def seg_overlay_figure(
    images: Tensor,
    gt: Tensor,
    pred: Tensor,
    *,
    class_names: Sequence[str] | None = None,
    ignore_index: int = 255,
    background: int | None = 0,
    title: str | None = None,
) -> Any:
    """Three rows over N columns: the (N, C, H, W) images (uint8, or float in [0, 1]), the
    (N, H, W) integer ground truth ``gt`` and the prediction ``pred`` overlaid in the
    :func:`class_colours` (``background`` uncoloured, ``ignore_index`` whitened), each
    prediction titled with its pixel accuracy over the non-ignored pixels and over the
    foreground (non-background) ones, and a legend of the classes present in ``gt`` and
    ``pred``."""
    rows = ("image", "ground truth", "prediction")
    fig, axes, colours = _seg_grid(
        images, {"gt": gt, "pred": pred}, class_names, ignore_index, rows
    )
    for i in range(images.shape[0]):
        img = _rgb(images[i])
        axes[0, i].imshow(img.numpy(), interpolation="nearest")
        for r, lab in ((1, gt[i]), (2, pred[i])):
            painted = _paint(img, lab, colours, ignore_index, background)
            axes[r, i].imshow(painted.numpy(), interpolation="nearest")
        axes[2, i].set_title(_accuracy(gt[i], pred[i], ignore_index, background), fontsize=7)
    _legend(fig, [gt, pred], colours, class_names, ignore_index, background)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def seg_mix_figure(
    images: Tensor,
    labels: Tensor,
    params: MixParams,
    *,
    class_names: Sequence[str] | None = None,
    ignore_index: int = 255,
    title: str | None = None,
) -> Any:
    """Two rows over N columns: (N, C, H, W) mixed images (uint8, or float in [0, 1]) titled
    with λ and their (N, H, W) integer mixed label maps in the :func:`class_colours`; the
    pasted region of ``params`` outlined on both, and a legend of the classes present."""
    rows = ("mixed image", "mixed labels")
    fig, axes, colours = _seg_grid(
        images, {"labels": labels}, class_names, ignore_index, rows, params
    )
    for i in range(images.shape[0]):
        axes[0, i].imshow(_rgb(images[i]).numpy(), interpolation="nearest")
        painted = _paint(None, labels[i], colours, ignore_index, None)
        axes[1, i].imshow(painted.numpy(), interpolation="nearest")
        for r in range(2):
            draw_region(axes[r, i], params, i)
        axes[0, i].set_title(f"λ={float(params.lam[i]):.2f}", fontsize=7)
    _legend(fig, [labels], colours, class_names, ignore_index, None)
    note = "orange outline: pasted region"
    fig.suptitle(f"{title}; {note}" if title else note, fontsize=9)
    return fig
