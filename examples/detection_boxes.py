"""CutMix and ResizeMix on a detection batch: images with xyxy boxes, mixed with one draw.

Canvases hold 2-3 MNIST digits (the embedded MNIST-5k, no download) with tight xyxy boxes.
``mixkit.augment`` mixes the images and the boxes with the same ``MixParams``:

- own boxes stay where they are and are dropped when less than ``min_visibility`` of their
  area is still visible after the paste;
- CutMix: the partner's boxes are clipped to the pasted region, dropped when less than
  ``min_visibility`` of them lies inside it;
- ResizeMix: the partner's boxes are scaled and shifted into the region with the image.

Run (writes docs/img/detection_boxes.png and prints every box)::

    python examples/detection_boxes.py --out docs/img/detection_boxes.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as mpatches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from mixkit import data, plots  # noqa: E402
from mixkit.augment import BoxBatch, CutMix, MixTransform, ResizeMix  # noqa: E402
from mixkit.augment.params import Kind  # noqa: E402

COLOURS = torch.tensor([[1.0, 0.3, 0.3], [0.3, 0.9, 0.3], [0.4, 0.6, 1.0], [1.0, 0.9, 0.3]])


def make_batch(
    b: int = 4, size: int = 64, max_objects: int = 3, seed: int = 0
) -> tuple[Tensor, BoxBatch]:
    """Canvases (B, 3, size, size) uint8 with 2..max_objects digits each and their boxes:
    ``BoxBatch(boxes (B, N, 4) float xyxy, labels (B, N) int64 digit, valid (B, N) bool)``."""
    g = torch.Generator().manual_seed(seed)
    digits = data.load_mnist5k(seed).train
    images = torch.zeros(b, 3, size, size)
    boxes = torch.zeros(b, max_objects, 4)
    labels = torch.zeros(b, max_objects, dtype=torch.long)
    valid = torch.zeros(b, max_objects, dtype=torch.bool)
    for i in range(b):
        count = int(torch.randint(2, max_objects + 1, (1,), generator=g))
        for j in range(count):
            k = int(torch.randint(0, len(digits), (1,), generator=g))
            scale = int(torch.randint(18, 30, (1,), generator=g))
            ink = torch.nn.functional.interpolate(
                digits.x[k : k + 1].float() / 255, size=(scale, scale), mode="bilinear"
            )[0, 0]
            for _ in range(50):  # place without overlapping the digits already there
                y0 = int(torch.randint(0, size - scale + 1, (1,), generator=g))
                x0 = int(torch.randint(0, size - scale + 1, (1,), generator=g))
                if not bool(images[i, :, y0 : y0 + scale, x0 : x0 + scale].any()):
                    break
            colour = COLOURS[(i + j) % len(COLOURS)].view(3, 1, 1)
            patch = images[i, :, y0 : y0 + scale, x0 : x0 + scale]
            images[i, :, y0 : y0 + scale, x0 : x0 + scale] = torch.maximum(patch, colour * ink)
            rows = (ink > 0.2).any(1).nonzero()
            cols = (ink > 0.2).any(0).nonzero()
            boxes[i, j] = torch.tensor(
                [x0 + cols.min(), y0 + rows.min(), x0 + cols.max() + 1, y0 + rows.max() + 1]
            ).float()
            labels[i, j] = int(digits.y[k])
            valid[i, j] = True
    grid = (torch.arange(size)[:, None] // 8 + torch.arange(size)[None, :] // 8) % 2
    images = torch.maximum(images, 0.12 * grid.float())  # faint checkerboard background
    return (images * 255).round().to(torch.uint8), BoxBatch(boxes, labels, valid)


def mix(mixer: MixTransform, images: Tensor, boxes: BoxBatch, seed: int):
    """One draw applied to the images and the boxes. Returns (params, images, BoxBatch)."""
    params = mixer.draw(images.shape, torch.Generator().manual_seed(seed))
    out = mixer.apply(params, images=images, boxes=boxes)
    return params, out.images, out.boxes


def check_consistency(params, images: Tensor, mixed: Tensor, before: BoxBatch, after: BoxBatch):
    """Assert the boxes agree with the pixels: every kept partner box of a CROP/RESIZE sample
    lies inside the pasted region, every own box that was dropped is mostly covered by it,
    and all kept boxes are inside the image."""
    h, w = params.size
    n = before.boxes.shape[1]
    for i in range(params.batch_size):
        x1, y1, x2, y2 = params.boxes[i].tolist()
        own_kept, partner_kept = after.valid[i, :n], after.valid[i, n:]
        for bx in after.boxes[i][after.valid[i]]:
            assert 0 <= bx[0] <= bx[2] <= w and 0 <= bx[1] <= bx[3] <= h
        if params.kind[i] in (Kind.CROP, Kind.RESIZE):
            for bx in after.boxes[i, n:][partner_kept]:
                assert x1 - 1e-4 <= bx[0] and bx[2] <= x2 + 1e-4
                assert y1 - 1e-4 <= bx[1] and bx[3] <= y2 + 1e-4
            dropped = before.valid[i] & ~own_kept
            for bx in before.boxes[i][dropped]:
                ix = max(0.0, min(float(bx[2]), x2) - max(float(bx[0]), x1))
                iy = max(0.0, min(float(bx[3]), y2) - max(float(bx[1]), y1))
                area = float((bx[2] - bx[0]) * (bx[3] - bx[1]))
                assert ix * iy / area > 0.75 - 1e-6  # < 25% visible -> dropped
        else:
            assert not bool(partner_kept.any())


def _draw(ax, image: Tensor, boxes: Tensor, labels: Tensor, colour: str, style: str = "-"):
    for bx, lab in zip(boxes.tolist(), labels.tolist(), strict=True):
        ax.add_patch(
            mpatches.Rectangle(
                (bx[0] - 0.5, bx[1] - 0.5),
                bx[2] - bx[0],
                bx[3] - bx[1],
                fill=False,
                edgecolor=colour,
                lw=1.4,
                ls=style,
            )
        )
        ax.text(bx[0], bx[1] - 1, str(lab), color=colour, fontsize=7, va="bottom")


def render(path: str | Path, seed: int = 0, b: int = 4) -> Path:
    """Draw originals, CutMix and ResizeMix results with their boxes into one PNG."""
    images, boxes = make_batch(b, seed=seed)
    n = boxes.boxes.shape[1]
    mixers = {
        "CutMix": CutMix(alpha=1.0, mode="elem", min_visibility=0.25),
        "ResizeMix": ResizeMix(scope=(0.3, 0.7), mode="elem", min_visibility=0.25),
    }
    fig, axes = plt.subplots(3, b, figsize=(2.3 * b, 7.4), squeeze=False)
    for i in range(b):
        ax = axes[0, i]
        ax.imshow(images[i].permute(1, 2, 0).numpy())
        v = boxes.valid[i]
        _draw(ax, images[i], boxes.boxes[i][v], boxes.labels[i][v], "white")
        ax.set_title(f"image {i}", fontsize=8)
    for r, (name, mixer) in enumerate(mixers.items(), start=1):
        params, mixed, out = mix(mixer, images, boxes, seed + r)
        check_consistency(params, images, mixed, boxes, out)
        for i in range(b):
            ax = axes[r, i]
            ax.imshow(mixed[i].permute(1, 2, 0).numpy())
            x1, y1, x2, y2 = params.boxes[i].tolist()
            ax.add_patch(
                mpatches.Rectangle(
                    (x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="cyan", lw=1, ls=":"
                )
            )
            own, part = out.valid[i, :n], out.valid[i, n:]
            dropped = boxes.valid[i] & ~own
            _draw(ax, mixed[i], out.boxes[i, :n][own], out.labels[i, :n][own], "white")
            _draw(ax, mixed[i], out.boxes[i, n:][part], out.labels[i, n:][part], "orange")
            _draw(ax, mixed[i], boxes.boxes[i][dropped], boxes.labels[i][dropped], "red", "--")
            ax.set_title(
                f"{name} ← image {int(params.perm[i])}\nλ={float(params.lam[i]):.2f}", fontsize=8
            )
            print(
                f"{name} image {i} <- {int(params.perm[i])}: region {[x1, y1, x2, y2]}, "
                f"kept own {own.sum().item()}/{boxes.valid[i].sum().item()}, "
                f"partner boxes {part.sum().item()}"
            )
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(
        "white: own boxes kept · orange: partner boxes (clipped / resized) · "
        "red dashed: dropped (<25% visible) · cyan dotted: pasted region",
        fontsize=8,
    )
    return plots.save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/img/detection_boxes.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"wrote {render(args.out, args.seed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
