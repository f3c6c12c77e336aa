"""The figures of :mod:`mixkit.plots`: curves against the global step with the epochs
marked, mixed-sample grids whose outlines are exactly the pasted boxes / mask borders
(RecursiveMix: the nested boxes of earlier steps), and segmentation overlays whose legend
lists the classes present."""

from __future__ import annotations

import types

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.collections import LineCollection
from matplotlib.patches import Rectangle

from mixkit import plots
from mixkit.augment import ClassMix, CutMix, FMix, MultiBoxCutMix, RecursiveMix, ResizeMix


def _png_size(path):
    """(height, width) in pixels of a written PNG, after checking it is a sane figure."""
    assert path.stat().st_size > 3000, path
    h, w = mpimg.imread(path).shape[:2]
    assert 150 <= h <= 3000 and 300 <= w <= 4000, (path, h, w)
    return h, w


# --------------------------------------------------------------------------- curves
def _steps_table(per_epoch, epochs):
    steps = list(range(1, per_epoch * epochs + 1))
    return {
        "step": [float(s) for s in steps],
        "epoch": [float(1 + (s - 1) // per_epoch) for s in steps],
        "loss": [1.0 / s for s in steps],
        "lr": [0.1] * len(steps),
    }


@pytest.mark.parametrize("per_epoch, epochs", [(5, 3), (40, 4)])  # plain and smoothed
def test_step_curves_use_the_global_step(per_epoch, epochs):
    cols = _steps_table(per_epoch, epochs)
    label, xs, lines = plots.curve_x(cols)
    assert label == "global step" and xs == cols["step"]
    # the boundary between the last step of epoch e and the first of e + 1
    assert lines == [per_epoch * e + 0.5 for e in range(1, epochs)]
    fig = plots.training_curves_figure(cols)
    loss_ax, lr_ax = fig.axes[:2]
    curves = [ln for ln in loss_ax.lines if ln.get_label().startswith("loss")]
    assert curves, "no loss curve drawn"
    for ln in curves + [ln for ln in lr_ax.lines if ln.get_label() == "lr"]:
        assert list(ln.get_xdata()) == cols["step"]  # not the epoch number
    verticals = sorted(
        float(ln.get_xdata()[0])
        for ln in loss_ax.lines
        if len(ln.get_xdata()) == 2 and ln.get_xdata()[0] == ln.get_xdata()[1]
    )
    assert verticals == lines
    assert loss_ax.get_xlabel() == "global step"
    plt.close(fig)


def test_epoch_rows_use_the_epoch():
    cols = {"epoch": [1.0, 2.0, 3.0], "step": [10.0, 20.0, 30.0], "val_miou": [0.1, 0.2, 0.3]}
    assert plots.curve_x(cols) == ("epoch", [1.0, 2.0, 3.0], [])
    assert plots.curve_x({"loss": [3.0, 2.0]}) == ("row", [1.0, 2.0], [])
    fig = plots.training_curves_figure(cols)
    (ln,) = fig.axes[0].lines
    assert list(ln.get_xdata()) == [1.0, 2.0, 3.0] and fig.axes[0].get_title() == "mIoU"
    plt.close(fig)


# --------------------------------------------------------------------------- mixed grids
def _tagged(b, h=12, w=17):
    """(B, 1, H, W) float images whose sample i is the constant (i + 1) / (B + 1): a pasted
    pixel never equals the original one."""
    return (
        (torch.arange(1, b + 1, dtype=torch.float32) / (b + 1))
        .view(b, 1, 1, 1)
        .expand(b, 1, h, w)
        .clone()
    )


def _rectangles(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


@pytest.mark.parametrize("mixer_cls", [CutMix, ResizeMix])
def test_box_outline_is_the_pasted_box(mixer_cls):
    x = _tagged(6)
    mixer = mixer_cls(num_classes=6, mode="elem", generator=3)
    out, targets = mixer(x, torch.arange(6))
    params = mixer.last_params
    fig = plots.mix_grid_figure(out, targets, params.lam, params=params, ncols=3)
    for i, ax in enumerate(fig.axes[:6]):
        changed = (out[i, 0] != x[i, 0]).nonzero()
        rects = _rectangles(ax)
        if not len(changed):
            assert rects == []
            continue
        (r,) = rects
        # the box of pixels that changed, xyxy with exclusive ends
        y1, x1 = changed.min(0).values.tolist()
        y2, x2 = (changed.max(0).values + 1).tolist()
        assert (r.get_x(), r.get_y()) == (x1 - 0.5, y1 - 0.5)
        assert (r.get_width(), r.get_height()) == (x2 - x1, y2 - y1)
        assert tuple(params.boxes[i].tolist()) == (x1, y1, x2, y2)
        title = ax.get_title()
        assert f"λ={float(params.lam[i]):.2f}" in title
        assert plots.label_text(targets[i]) in title and len(title.split("\n")[0].split()) <= 2
    plt.close(fig)


def test_mix_grid_bad_input():
    x = _tagged(4)
    params = CutMix(num_classes=4, generator=0).draw(x.shape)
    with pytest.raises(ValueError, match=r"images must be \(B, 1 or 3, H, W\)"):
        plots.mix_grid_figure(x[0], None, None)
    with pytest.raises(ValueError, match=r"targets must be \(4, K\)"):
        plots.mix_grid_figure(x, torch.ones(3, 4), None)
    with pytest.raises(ValueError, match=r"lam must be \(4,\)"):
        plots.mix_grid_figure(x, None, torch.ones(5))
    with pytest.raises(ValueError, match="params were drawn for batch 4"):
        plots.mix_grid_figure(x[:2], None, None, params=params)
    with pytest.raises(ValueError, match=r"nested_boxes must hold \(4, 4\)"):
        plots.mix_grid_figure(x, None, None, nested_boxes=[torch.zeros(2, 4, dtype=torch.long)])


def _edges_by_pixels(mask):
    """The unit edges between mask and non-mask pixels, found pixel by pixel (nested lists)."""
    h, w = len(mask), len(mask[0])
    edges = set()
    for y in range(h):
        for x in range(w):
            if not mask[y][x]:
                continue
            for dy, dx, edge in (
                (-1, 0, ((x - 0.5, y - 0.5), (x + 0.5, y - 0.5))),
                (1, 0, ((x - 0.5, y + 0.5), (x + 0.5, y + 0.5))),
                (0, -1, ((x - 0.5, y - 0.5), (x - 0.5, y + 0.5))),
                (0, 1, ((x + 0.5, y - 0.5), (x + 0.5, y + 0.5))),
            ):
                ny, nx = y + dy, x + dx
                if not (0 <= ny < h and 0 <= nx < w) or not mask[ny][nx]:
                    edges.add(edge)
    return edges


@pytest.mark.parametrize("mixer_cls", [FMix, MultiBoxCutMix])
def test_mask_outline_is_the_mask_border(mixer_cls):
    x = _tagged(4, 9, 11)
    mixer = mixer_cls(num_classes=4, mode="elem", generator=1)
    out, targets = mixer(x, torch.arange(4))
    params = mixer.last_params
    fig = plots.mix_grid_figure(out, targets, params.lam, params=params)
    for i, ax in enumerate(fig.axes[:4]):
        pasted = out[i, 0] != x[i, 0]
        assert torch.equal(pasted, params.mask[i])
        drawn = [c for c in ax.collections if isinstance(c, LineCollection)]
        if not bool(pasted.any()):
            assert drawn == []
            continue
        (lines,) = drawn
        got = {tuple(map(tuple, seg.tolist())) for seg in lines.get_segments()}
        assert got == _edges_by_pixels(pasted.tolist())
    plt.close(fig)


def test_recursive_boxes_follow_the_nested_pixels():
    b, h, w = 4, 20, 28
    mixer = RecursiveMix(alpha=1.0, per_sample=True, num_classes=3, generator=5)
    drawn = []
    for step in range(3):  # step k's fresh images are the constant k + 1
        x = torch.full((b, 1, h, w), float(step + 1))
        out, _ = mixer(x, torch.zeros(b, dtype=torch.long))
        drawn.append(mixer.last_params)
    newest, nested, oldest = plots.recursive_boxes(drawn)
    assert not bool(oldest.any())  # the first step had no history: nothing nested deeper
    for i in range(b):
        expect = torch.full((h, w), 3.0)
        x1, y1, x2, y2 = newest[i].tolist()
        expect[y1:y2, x1:x2] = 2.0
        x1, y1, x2, y2 = nested[i].tolist()
        expect[y1:y2, x1:x2] = 1.0
        assert torch.equal(out[i, 0], expect), i
    assert bool((nested[:, 2:] > nested[:, :2]).all()), "pick a seed with nested boxes"
    fig = plots.mix_grid_figure(out, None, None, nested_boxes=[newest, nested])
    for i, ax in enumerate(fig.axes[:b]):
        got = [(r.get_x() + 0.5, r.get_y() + 0.5, r.get_width(), r.get_height()) for r in
               _rectangles(ax)]  # fmt: skip
        want = [(bx[0], bx[1], bx[2] - bx[0], bx[3] - bx[1]) for bx in
                (newest[i].tolist(), nested[i].tolist())]  # fmt: skip
        assert got == want
    plt.close(fig)


def test_recursive_mix_grid_png(tmp_path):
    g = torch.Generator().manual_seed(0)
    split = types.SimpleNamespace(
        x=torch.randint(0, 256, (40, 1, 16, 16), dtype=torch.uint8, generator=g),
        y=torch.randint(0, 10, (40,), generator=g),
    )
    ds = types.SimpleNamespace(train=split, num_classes=10)
    mixer = RecursiveMix(0.5)
    path = plots.save_recursive_mix_grid(ds, mixer, 8, tmp_path / "rm.png", seed=0)
    _png_size(path)
    assert not mixer.has_history  # the grid used a fresh copy


# --------------------------------------------------------------------------- segmentation
NAMES = ["background"] + [f"digit {d}" for d in range(10)]


def _seg_batch():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 10, 12), dtype=torch.uint8, generator=g)
    gt = torch.zeros(3, 10, 12, dtype=torch.long)
    gt[:, 2:6, 3:8] = 4
    gt[0, 6, :] = 255
    pred = gt.clone()
    pred[pred == 255] = 0
    pred[1, :3, :3] = 7
    return images, gt, pred


def test_seg_overlay_legend_lists_the_present_classes(tmp_path):
    images, gt, pred = _seg_batch()
    fig = plots.seg_overlay_figure(images, gt, pred, class_names=NAMES)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "background", "digit 3", "digit 6", "ignore (255)"
    ]  # fmt: skip
    # ids 0, 4, 7 present (names are digit + 1) and the ignore band
    # image 1: 120 pixels, none ignored; 9 background pixels predicted 7, 20 digit pixels right
    assert fig.axes[3 * 2 + 1].get_title() == f"acc {111 / 120:.2f} (fg 1.00)"  # row 3, col 2
    assert fig.axes[3 * 2].get_title() == "acc 1.00 (fg 1.00)"  # image 0: its ignore row left out
    plt.close(fig)
    fig = plots.seg_overlay_figure(images, gt, pred, class_names=NAMES)
    path = plots.save_figure(fig, tmp_path / "o.png")
    _png_size(path)
    no_names = plots.seg_overlay_figure(images.float() / 255, gt, pred)
    assert [t.get_text() for t in no_names.legends[0].get_texts()] == [
        "0", "4", "7", "ignore (255)"
    ]  # fmt: skip
    plt.close(no_names)


def test_seg_overlay_colours_and_errors():
    colours = plots.class_colours(30)
    assert colours.shape == (30, 3) and torch.equal(colours[0], torch.zeros(3))
    assert len({tuple(c) for c in colours.tolist()}) == 30
    images, gt, pred = _seg_batch()
    with pytest.raises(ValueError, match=r"gt must be \(3, 10, 12\) integer class ids"):
        plots.seg_overlay_figure(images, gt[:2], pred)
    with pytest.raises(ValueError, match="pred must be"):
        plots.seg_overlay_figure(images, gt, pred.float())
    with pytest.raises(ValueError, match="class id 7 is outside"):
        plots.seg_overlay_figure(images, gt, pred, class_names=NAMES[:5])
    with pytest.raises(ValueError, match="num_classes must be an int >= 1"):
        plots.class_colours(0)


def test_seg_mix_grid_outlines_and_legend(tmp_path):
    images, gt, _ = _seg_batch()
    maps = gt.clone()
    maps[2, 7:, 8:] = 2
    mixer = ClassMix(num_classes=11, generator=0)
    params = mixer.draw(images.shape, label_maps=maps)
    mixed = mixer.apply(params, images, masks=maps)
    fig = plots.seg_mix_figure(mixed.images, mixed.masks, params, class_names=NAMES)
    present = sorted(set(mixed.masks.unique().tolist()) - {255})
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    ignore = ["ignore (255)"] if bool((mixed.masks == 255).any()) else []
    assert labels == [NAMES[c] for c in present] + ignore
    for i in range(3):
        n_outlines = sum(isinstance(c, LineCollection) for c in fig.axes[i].collections)
        assert n_outlines == int(bool(params.mask[i].any()))
    plt.close(fig)
    fig = plots.seg_mix_figure(mixed.images, mixed.masks, params)
    _png_size(plots.save_figure(fig, tmp_path / "m.png"))
