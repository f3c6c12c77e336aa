"""On-disk segmentation data: VOC / Cityscapes / folder fixtures in their exact formats,
split lists in every supported format, the joint transform, collate, sliding-window
evaluation, mIoU on a fixture, and the ``semiseg-splits`` command."""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from mixkit.methods.semiseg.datasets import (
    CityscapesSegDataset,
    FolderSegDataset,
    JointTrainTransform,
    SegListDataset,
    VOCSegDataset,
    open_seg_dataset,
    read_mask,
    seg_collate,
    voc_palette,
)
from mixkit.methods.semiseg.evaluate import (
    evaluate_segmentation,
    sliding_window_logits,
    whole_image_logits,
    window_starts,
)
from mixkit.methods.semiseg.layouts import discover_items
from mixkit.methods.semiseg.metrics import confusion_matrix, iou_from_confusion, miou
from mixkit.methods.semiseg.splits import (
    choose_labeled,
    parse_split_line,
    read_split_list,
    write_split_list,
    write_splits,
)
from mixkit.recipes import semiseg_splits

FINE = [f"2007_{i:06d}" for i in range(1, 7)]  # ImageSets/Segmentation/train.txt
AUG = [f"2008_{i:06d}" for i in range(1, 11)]  # SBD-only ids (SegmentationClassAug)
VAL = [f"2009_{i:06d}" for i in range(1, 4)]  # ImageSets/Segmentation/val.txt
CITY_TRAIN = [("aachen", "aachen_000000_000019"), ("aachen", "aachen_000001_000019"),
              ("bochum", "bochum_000000_000313")]  # fmt: skip
CITY_VAL = [("frankfurt", "frankfurt_000000_000294")]


def _index_mask(h: int, w: int, k: int, seed: int) -> np.ndarray:
    """(h, w) uint8 class ids in [0, k) with a 255 band on column 0 (a VOC-style border)."""
    g = np.random.default_rng(seed)
    m = g.integers(0, k, size=(h // 4 + 1, w // 4 + 1)).repeat(4, 0).repeat(4, 1)[:h, :w]
    m = m.astype(np.uint8)
    m[:, 0] = 255
    return m


def _save_palette(path: Path, ids: np.ndarray) -> None:
    im = Image.fromarray(ids, mode="P")
    im.putpalette(voc_palette())
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def _save_rgb(path: Path, h: int, w: int, seed: int, fmt: str) -> None:
    g = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(g.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, fmt)


@pytest.fixture()
def voc(tmp_path: Path) -> Path:
    """VOCdevkit/VOC2012: JPEGs, palette SegmentationClass (train + val), L-mode Aug masks
    (train + SBD + val, like the real 12031-file folder), and the id lists."""
    root = tmp_path / "VOC2012"
    for n, i in enumerate(FINE + AUG + VAL):
        h, w = 20 + n % 3, 24 + n % 5
        _save_rgb(root / "JPEGImages" / f"{i}.jpg", h, w, n, "JPEG")
        ids = _index_mask(h, w, 21, n)
        if i not in AUG:
            _save_palette(root / "SegmentationClass" / f"{i}.png", ids)
        (root / "SegmentationClassAug").mkdir(parents=True, exist_ok=True)
        Image.fromarray(ids, mode="L").save(root / "SegmentationClassAug" / f"{i}.png")
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("".join(f"{i}\n" for i in FINE))
    (sets / "val.txt").write_text("".join(f"{i}\n" for i in VAL))
    return root


@pytest.fixture()
def city(tmp_path: Path) -> Path:
    """Cityscapes: leftImg8bit PNGs and gtFine *_labelTrainIds.png grayscale masks."""
    root = tmp_path / "cityscapes"
    for split, rows in (("train", CITY_TRAIN), ("val", CITY_VAL)):
        for n, (c, stem) in enumerate(rows):
            _save_rgb(
                root / "leftImg8bit" / split / c / f"{stem}_leftImg8bit.png", 16, 32, n, "PNG"
            )
            m = root / "gtFine" / split / c / f"{stem}_gtFine_labelTrainIds.png"
            m.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_index_mask(16, 32, 19, 100 + n), mode="L").save(m)
    return root


# ------------------------------------------------------------------------------ split lists
def test_voc_lists_every_format(voc: Path, tmp_path: Path) -> None:
    uni = tmp_path / "uni.txt"
    uni.write_text(f"JPEGImages/{FINE[0]}.jpg SegmentationClass/{FINE[0]}.png\n")
    psmt = tmp_path / "psmt.txt"
    psmt.write_text(f"/JPEGImages/{AUG[0]}.jpg /SegmentationClassAug/{AUG[0]}.png\n")
    ids = voc / "ImageSets" / "Segmentation" / "train.txt"
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(
        f"# a comment\n\n{FINE[1]}\n{AUG[1]}\nJPEGImages/{AUG[2]}.jpg\n"
        f"/JPEGImages/{FINE[2]}.jpg /SegmentationClass/{FINE[2]}.png\n"
    )
    assert read_split_list(uni, "voc", voc) == [
        (f"JPEGImages/{FINE[0]}.jpg", f"SegmentationClass/{FINE[0]}.png")
    ]
    assert read_split_list(psmt, "voc", voc) == [
        (f"JPEGImages/{AUG[0]}.jpg", f"SegmentationClassAug/{AUG[0]}.png")
    ]
    got = read_split_list(ids, "voc", voc)
    assert got == [(f"JPEGImages/{i}.jpg", f"SegmentationClass/{i}.png") for i in FINE]
    assert read_split_list(mixed, "voc", voc) == [
        (f"JPEGImages/{FINE[1]}.jpg", f"SegmentationClass/{FINE[1]}.png"),
        (f"JPEGImages/{AUG[1]}.jpg", f"SegmentationClassAug/{AUG[1]}.png"),  # only Aug exists
        (f"JPEGImages/{AUG[2]}.jpg", None),
        (f"JPEGImages/{FINE[2]}.jpg", f"SegmentationClass/{FINE[2]}.png"),
    ]
    # Every list builds a dataset over the root (all files exist).
    for lst in (uni, psmt, ids):
        assert len(open_seg_dataset("voc", voc, lst)) >= 1
    assert len(open_seg_dataset("voc", voc, mixed, with_masks=False)) == 4
    with pytest.raises(
        ValueError, match=r"item 2 \(JPEGImages/2008_000003\.jpg\) of .*mixed\.txt has no mask"
    ):
        open_seg_dataset("voc", voc, mixed)


def test_cityscapes_lists_every_format(city: Path, tmp_path: Path) -> None:
    c, stem = CITY_TRAIN[2]
    want = (f"leftImg8bit/train/{c}/{stem}_leftImg8bit.png",
            f"gtFine/train/{c}/{stem}_gtFine_labelTrainIds.png")  # fmt: skip
    lines = {
        "uni": f"{want[0]} {want[1]}",
        "psmt": f"/images/city_gt_fine/train/{stem}_leftImg8bit.png "
        f"/annotation/city_gt_fine/train/{stem}_gtFine.png",
        "ids": stem,
    }
    for name, line in lines.items():
        p = tmp_path / f"{name}.txt"
        p.write_text(line + "\n")
        assert read_split_list(p, "cityscapes", city) == [want], name
    vc, vstem = CITY_VAL[0]
    assert parse_split_line(vstem, "cityscapes", city)[0].startswith(f"leftImg8bit/val/{vc}/")
    ds = open_seg_dataset("cityscapes", city, tmp_path / "psmt.txt")
    assert isinstance(ds, CityscapesSegDataset) and ds.num_classes == 19
    (city / "images" / "city_gt_fine").mkdir(parents=True)  # PS-MT's own flat copy exists:
    flat = read_split_list(tmp_path / "psmt.txt", "cityscapes", city)  # paths kept as written
    assert flat == [(f"images/city_gt_fine/train/{stem}_leftImg8bit.png",
                     f"annotation/city_gt_fine/train/{stem}_gtFine.png")]  # fmt: skip


def test_malformed_lines_name_file_and_line(voc: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{FINE[0]}\n\nJPEGImages/a.jpg SegmentationClass/a.png extra\n")
    with pytest.raises(ValueError, match=r"bad\.txt:3: malformed split line"):
        read_split_list(bad, "voc", voc)
    mixed = tmp_path / "slash.txt"
    mixed.write_text("/JPEGImages/a.jpg SegmentationClass/a.png\n")
    with pytest.raises(ValueError, match=r"slash\.txt:1: malformed"):
        read_split_list(mixed, "voc", voc)
    fmt = tmp_path / "fmt.txt"
    fmt.write_text(f"JPEGImages/{FINE[0]}.jpg SegmentationClass/{FINE[0]}.png\n")
    with pytest.raises(ValueError, match=r"fmt\.txt:1: .*format 'psmt'"):
        read_split_list(fmt, "voc", voc, format="psmt")
    esc = tmp_path / "esc.txt"
    esc.write_text("../x.jpg ../x.png\n")
    with pytest.raises(ValueError, match=r"esc\.txt:1: path '\.\./x\.jpg' must be relative"):
        read_split_list(esc, "voc", voc)
    ext = tmp_path / "ext.txt"
    ext.write_text("JPEGImages/a.jpg SegmentationClass/a.jpg\n")
    with pytest.raises(ValueError, match=r"ext\.txt:1: mask .* must be a \.png"):
        read_split_list(ext, "voc", voc)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_split_list(tmp_path / "nope.txt", "voc", voc)
    with pytest.raises(ValueError, match="dataset must be one of"):
        read_split_list(fmt, "coco", voc)


def test_missing_file_named_with_its_list(voc: Path, tmp_path: Path) -> None:
    lst = tmp_path / "labeled.txt"
    lst.write_text(f"{FINE[0]}\nJPEGImages/2012_999999.jpg SegmentationClass/2012_999999.png\n")
    items = read_split_list(lst, "voc", voc)  # parsing does not touch the files
    assert len(items) == 2
    with pytest.raises(
        FileNotFoundError, match=r"image .*2012_999999\.jpg named in .*labeled\.txt"
    ):
        open_seg_dataset("voc", voc, lst)
    (voc / "SegmentationClass" / f"{FINE[0]}.png").unlink()
    with pytest.raises(FileNotFoundError, match=rf"mask .*{FINE[0]}\.png named in the item list"):
        VOCSegDataset(voc, items[:1])
    # Unlabeled data never reads masks, so a missing mask is fine there.
    assert len(VOCSegDataset(voc, items[:1], with_masks=False)) == 1


# ----------------------------------------------------------------------------- loading
def test_voc_palette_masks_load_as_indices(voc: Path) -> None:
    i = FINE[3]
    with Image.open(voc / "SegmentationClass" / f"{i}.png") as im:
        assert im.mode == "P"
        rgb = np.asarray(im.convert("RGB"))
    ids = _index_mask(rgb.shape[0], rgb.shape[1], 21, FINE.index(i))
    ds = VOCSegDataset(voc, [(f"JPEGImages/{i}.jpg", f"SegmentationClass/{i}.png")])
    image, mask = ds[0]
    assert image.dtype == torch.uint8 and image.shape == (3, *ids.shape)
    assert mask.dtype == torch.uint8 and torch.equal(mask, torch.from_numpy(ids))
    assert int(mask.max()) == 255 and (mask[:, 1:] < 21).all()
    # The palette colours differ from the indices: an RGB read would not give the ids.
    pal = np.array(voc_palette()).reshape(256, 3)
    assert (pal[ids] == rgb).all() and not (rgb[..., 0] == ids).all()
    aug = VOCSegDataset(voc, [(f"JPEGImages/{i}.jpg", f"SegmentationClassAug/{i}.png")])
    assert torch.equal(aug[0][1], mask)  # the L-mode Aug copy holds the same ids


def test_cityscapes_and_folder_load(city: Path, tmp_path: Path) -> None:
    items, hq = discover_items("cityscapes", city, "train")
    assert len(items) == 3 and hq == set()
    ds = CityscapesSegDataset(city, items)
    image, mask = ds[1]
    c, stem = CITY_TRAIN[1]
    assert items[1][1] == f"gtFine/train/{c}/{stem}_gtFine_labelTrainIds.png"
    assert torch.equal(mask, torch.from_numpy(_index_mask(16, 32, 19, 101)))
    assert image.shape == (3, 16, 32)
    folder = tmp_path / "folder"
    _save_rgb(folder / "images" / "a.png", 10, 12, 0, "PNG")
    _save_rgb(folder / "images" / "b.jpg", 10, 12, 1, "JPEG")
    (folder / "masks").mkdir()
    Image.fromarray(_index_mask(10, 12, 3, 5), mode="L").save(folder / "masks" / "a.png")
    items, _ = discover_items("folder", folder)
    assert items == [("images/a.png", "masks/a.png"), ("images/b.jpg", None)]
    assert parse_split_line("b", "folder", folder) == ("images/b.jpg", "masks/b.png")
    fds = FolderSegDataset(folder, items[:1], 3)
    assert torch.equal(fds[0][1], torch.from_numpy(_index_mask(10, 12, 3, 5)))
    assert fds.verify() == 1
    unl = FolderSegDataset(folder, items, 3, with_masks=False)
    assert unl[0][1].shape == (10, 12) and int(unl[0][1].max()) == 0  # padding map, no labels
    assert unl[1][1].shape == (10, 12) and int(unl[1][1].max()) == 0


def test_four_bad_inputs(voc: Path) -> None:
    i = FINE[0]
    item = [(f"JPEGImages/{i}.jpg", f"SegmentationClassAug/{i}.png")]
    h, w = 20, 24
    # 1. a class id >= K that is not 255
    ids = _index_mask(h, w, 21, 0)
    ids[3, 3] = 21
    Image.fromarray(ids, mode="L").save(voc / "SegmentationClassAug" / f"{i}.png")
    with pytest.raises(ValueError, match=rf"mask .*{i}\.png has class id\(s\) \[21\] outside"):
        VOCSegDataset(voc, item)[0]
    # 2. image / mask size mismatch
    Image.fromarray(_index_mask(h, w + 1, 21, 0), mode="L").save(
        voc / "SegmentationClassAug" / f"{i}.png"
    )
    with pytest.raises(ValueError, match=rf"{i}\.png is \(20, 25\) \(H, W\) but image .*{i}\.jpg"):
        VOCSegDataset(voc, item)[0]
    # 3. a file named in a list but missing: test_missing_file_named_with_its_list
    # 4. an RGB (non-palette) VOC SegmentationClass mask, and an L one there
    pal = np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)
    path = voc / "SegmentationClass" / f"{i}.png"
    Image.fromarray(pal[_index_mask(h, w, 21, 0)], mode="RGB").save(path)
    fine = [(f"JPEGImages/{i}.jpg", f"SegmentationClass/{i}.png")]
    with pytest.raises(ValueError, match=rf"mask .*{i}\.png has PIL mode 'RGB'.*palette"):
        VOCSegDataset(voc, fine)[0]
    with pytest.raises(ValueError, match="mode 'RGB'.*RGB colour rendering"):
        read_mask(path, 21)  # RGB is rejected for every dataset
    Image.fromarray(_index_mask(h, w, 21, 0), mode="L").save(path)
    with pytest.raises(ValueError, match=r"mode 'L'; expected a palette \('P'\) PNG"):
        VOCSegDataset(voc, fine)[0]
    with pytest.raises(TypeError, match=r"items\[0\] must be"):
        VOCSegDataset(voc, [(1, 2)])
    with pytest.raises(ValueError, match="num_classes is required"):
        open_seg_dataset("folder", voc, voc / "ImageSets" / "Segmentation" / "train.txt")


# --------------------------------------------------------------------- joint transform
PALETTE4 = torch.tensor([[250, 10, 10], [10, 250, 10], [10, 10, 250], [240, 240, 20]])


def _content_sample(h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An image of 4-coloured blocks and the mask derived from its content."""
    g = torch.Generator().manual_seed(seed)
    cls = torch.randint(0, 4, (h // 5 + 1, w // 5 + 1), generator=g)
    cls = cls.repeat_interleave(5, 0).repeat_interleave(5, 1)[:h, :w]
    image = PALETTE4[cls].permute(2, 0, 1).to(torch.uint8).contiguous()
    return image, cls.to(torch.uint8)


def _decode(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) uint8 -> (H, W) nearest-colour class."""
    d = (image.float()[None] - PALETTE4.float()[:, :, None, None]).pow(2).sum(1)
    return d.argmin(0).to(torch.uint8)


def test_joint_crop_keeps_image_and_mask_aligned() -> None:
    image, mask = _content_sample(30, 41, 0)
    keep_i, keep_m = image.clone(), mask.clone()
    exact = JointTrainTransform(24, scale=(1.0, 1.0), flip_p=0.5)
    scaled = JointTrainTransform(32, scale=(0.5, 2.0))
    for k in range(12):
        g = torch.Generator().manual_seed(k)
        im, m = exact(image, mask, g)
        assert im.shape == (3, 24, 24) and m.shape == (24, 24)
        assert torch.equal(_decode(im), m)  # no resize: exactly aligned
        im, m = scaled(image, mask, torch.Generator().manual_seed(k))
        pad = m == 255
        assert (im[:, pad] == 0).all()  # padding: image 0, mask 255
        agree = (_decode(im) == m)[~pad].float().mean()
        assert agree > 0.85, (k, float(agree))
    assert torch.equal(image, keep_i) and torch.equal(mask, keep_m)  # inputs untouched
    # Pads image with 0 and mask with 255 when the image is smaller than the crop.
    im, m = JointTrainTransform(48, scale=(1.0, 1.0))(image, mask, torch.Generator())
    assert im.shape == (3, 48, 48) and (m == 255).sum() == 48 * 48 - 30 * 41
    assert (im[:, m == 255] == 0).all() and torch.equal(_decode(im)[m != 255], m[m != 255])


def test_joint_transform_is_misalignment_sensitive() -> None:
    """The agreement check above can fail: flipping only the image breaks it."""
    image, mask = _content_sample(30, 41, 1)
    im, m = JointTrainTransform(24, scale=(1.0, 1.0), flip_p=1.0)(image, mask, torch.Generator())
    assert torch.equal(_decode(im), m)
    assert (_decode(im.flip(-1)) == m).float().mean() < 0.7


def test_joint_transform_draws() -> None:
    t = JointTrainTransform(8, scale=(0.5, 2.0), flip_p=0.5)
    image, mask = _content_sample(20, 20, 2)
    a = t(image, mask, torch.Generator().manual_seed(3))
    b = t(image, mask, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])

    def sides(t: JointTrainTransform) -> set[int]:  # the resized long side, seen unpadded
        out = set()
        for k in range(60):
            _, m = t(image, mask, torch.Generator().manual_seed(k))
            out.add(int((m != 255).any(0).sum()))
        return out

    got = sides(JointTrainTransform(100, scale=(0.5, 2.0), flip_p=0.0))
    assert min(got) >= 10 and max(got) <= 40 and len(got) > 15  # randint(int(20*.5), int(20*2))
    got = sides(JointTrainTransform(100, scale=(0.5, 2.0), base_size=10, flip_p=0.0))
    assert min(got) >= 5 and max(got) <= 20 and len(got) > 8  # PS-MT: relative to base_size
    with pytest.raises(ValueError, match="crop_size must be"):
        JointTrainTransform(0)
    with pytest.raises(ValueError, match="scale must be"):
        JointTrainTransform(8, scale=(2.0, 0.5))


def _folder_content(tmp_path: Path, n: int) -> Path:
    root = tmp_path / "content"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        im, m = _content_sample(18 + i, 26 - i, 10 + i)
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(root / "images" / f"s{i}.png")
        Image.fromarray(m.numpy(), mode="L").save(root / "masks" / f"s{i}.png")
    return root


def test_dataset_seeds_do_not_depend_on_workers(tmp_path: Path) -> None:
    root = _folder_content(tmp_path, 6)
    items, _ = discover_items("folder", root)
    ds = FolderSegDataset(root, items, 4, JointTrainTransform(16), seed=7, stream="labeled")

    def run(workers: int, epochs: list[int]) -> list[torch.Tensor]:
        loader = DataLoader(ds, batch_size=2, num_workers=workers, persistent_workers=workers > 0,
                            collate_fn=seg_collate)  # fmt: skip
        out = []
        for e in epochs:
            ds.set_epoch(e)
            for images, masks in loader:
                agree = (_decode_batch(images) == masks)[masks != 255].float().mean()
                assert agree > 0.85
                out += [images, masks]
        return out

    ref = run(0, [0, 1])
    par = run(2, [0, 1])  # persistent workers see set_epoch through shared memory
    assert all(torch.equal(a, b) for a, b in zip(ref, par, strict=True))
    assert not torch.equal(ref[0], ref[6])  # epoch 1 draws differ from epoch 0
    other = FolderSegDataset(root, items, 4, JointTrainTransform(16), seed=7, stream="unlabeled")
    assert not torch.equal(other[0][0], (ds.set_epoch(0), ds[0][0])[1])


def _decode_batch(images: torch.Tensor) -> torch.Tensor:
    return torch.stack([_decode(im) for im in images])


def test_collate_pads_variable_sizes() -> None:
    a = (torch.full((3, 4, 5), 7, dtype=torch.uint8), torch.ones(4, 5, dtype=torch.uint8))
    b = (torch.full((3, 6, 3), 9, dtype=torch.uint8), torch.zeros(6, 3, dtype=torch.uint8))
    images, masks = seg_collate([a, b], size_divisor=4)
    assert images.shape == (2, 3, 8, 8) and masks.shape == (2, 8, 8)
    assert (images[0, :, :4, :5] == 7).all() and (images[0, :, 4:] == 0).all()
    assert (masks[0, :4, :5] == 1).all() and (masks[0, 4:] == 255).all()
    assert (masks[1, :, 3:] == 255).all() and (masks[1, :6, :3] == 0).all()
    with pytest.raises(ValueError, match="size_divisor"):
        seg_collate([a], size_divisor=0)


# ------------------------------------------------------------------- evaluation + mIoU
class _FixedNet(nn.Module):
    """Returns one-hot logits of a fixed prediction (ignores its input's values)."""

    def __init__(self, pred: torch.Tensor, k: int) -> None:
        super().__init__()
        self.pred, self.k = pred, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        oh = nn.functional.one_hot(self.pred.long(), self.k).permute(2, 0, 1).float()
        return oh[None].expand(x.shape[0], -1, -1, -1)


def test_miou_on_fixture_equals_hand_computed(voc: Path) -> None:
    target = np.array([[0, 0, 0, 1, 1, 255],
                       [0, 0, 1, 1, 1, 255],
                       [2, 2, 2, 1, 1, 255],
                       [2, 2, 2, 0, 0, 255]], dtype=np.uint8)  # fmt: skip
    pred = torch.tensor([[0, 0, 1, 1, 1, 0],
                         [0, 0, 1, 1, 1, 0],
                         [2, 2, 0, 1, 1, 0],
                         [2, 2, 2, 0, 1, 1]])  # fmt: skip
    i = FINE[0]
    _save_palette(voc / "SegmentationClass" / f"{i}.png", target)
    _save_rgb(voc / "JPEGImages" / f"{i}.jpg", 4, 6, 0, "JPEG")
    ds = VOCSegDataset(voc, [(f"JPEGImages/{i}.jpg", f"SegmentationClass/{i}.png")])
    # By hand, over the 20 non-ignored pixels: rows t, columns p.
    want = torch.zeros(21, 21, dtype=torch.long)
    want[:3, :3] = torch.tensor([[5, 2, 0], [0, 7, 0], [1, 0, 5]])
    cm = confusion_matrix(pred, ds[0][1], 21)
    assert torch.equal(cm, want)
    iou = iou_from_confusion(cm)
    hand = [Fraction(5, 5 + 2 + 1), Fraction(7, 7 + 2), Fraction(5, 5 + 1)]
    assert torch.allclose(iou[:3], torch.tensor([float(f) for f in hand], dtype=torch.float64))
    assert torch.isnan(iou[3:]).all()  # absent classes are left out of the mean
    assert miou(cm) == pytest.approx(float(sum(hand) / 3), abs=1e-12)
    loader = DataLoader(ds, batch_size=1, collate_fn=seg_collate)
    meter = evaluate_segmentation(_FixedNet(pred, 21), loader, 21, (0.5,) * 3, (0.2,) * 3)
    assert torch.equal(meter.cm, want)


def test_sliding_window_matches_whole_image_for_a_pixelwise_net() -> None:
    torch.manual_seed(0)
    net = nn.Conv2d(3, 5, 1)  # per-pixel: every window sees the same pixel evidence
    x = torch.randn(2, 3, 13, 17)
    whole = whole_image_logits(net, x)
    for crop, stride in ((8, 5), ((6, 9), (4, 9)), (32, 32), (13, 1)):
        with torch.no_grad():
            slid = sliding_window_logits(net, x, crop, stride, 5)
        assert slid.shape == whole.shape
        assert torch.allclose(slid, whole.detach(), atol=1e-6), (crop, stride)
    assert window_starts(17, 8, 5) == [0, 5, 9]  # the last window ends on the border
    assert window_starts(5, 8, 5) == [0]
    with pytest.raises(ValueError, match="stride .* must not exceed crop"):
        sliding_window_logits(net, x, 8, 9, 5)
    with pytest.raises(ValueError, match="net returned 5 channels"):
        sliding_window_logits(net, x, 8, 4, 3)


def test_sliding_window_averages_overlaps() -> None:
    """A net whose output depends on the window position: the mean over windows is exact."""
    x = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 3, 4, 10).contiguous()

    def net(w: torch.Tensor) -> torch.Tensor:  # channel 0: the window's first column value
        return w[:, :1, :1, :1].expand(-1, 1, w.shape[-2], w.shape[-1])

    out = sliding_window_logits(net, x, (4, 4), (4, 3), 1)[0, 0, 0]
    # windows start at 0, 3, 6: column 3 is covered by starts 0 and 3 -> (0 + 3) / 2.
    want = torch.tensor([0, 0, 0, 1.5, 3, 3, 4.5, 6, 6, 6])
    assert torch.allclose(out, want)


# ------------------------------------------------------------------------- writing splits
def _lines(p: Path) -> list[str]:
    return p.read_text().splitlines()


def test_write_splits_random_and_nested(voc: Path, tmp_path: Path) -> None:
    out = tmp_path / "splits"
    rep = write_splits(voc, out, ("1/16", "1/4", "1/2"), seed=0, dataset="voc")
    pool, _ = discover_items("voc", voc)
    assert len(pool) == len(FINE) + len(AUG) == 16
    prev: set[str] = set()
    for frac, r in rep.items():
        lab, unl = _lines(Path(r["labeled"])), _lines(Path(r["unlabeled"]))
        assert len(lab) == math.ceil(16 * Fraction(frac)) == r["num_labeled"]
        assert sorted(lab + unl) == sorted(f"{i} {m}" for i, m in pool) and not set(lab) & set(unl)
        assert prev <= set(lab)  # nested: one permutation for every fraction
        prev = set(lab)
    assert (out / "1_16" / "labeled.txt").is_file() and (out / "1_2" / "unlabeled.txt").is_file()
    assert _lines(out / "val.txt") == [f"JPEGImages/{i}.jpg SegmentationClass/{i}.png" for i in VAL]
    again = write_splits(voc, tmp_path / "again", ("1/4",), seed=0, dataset="voc")
    other = write_splits(voc, tmp_path / "other", ("1/4",), seed=1, dataset="voc")
    first = Path(rep["1/4"]["labeled"]).read_bytes()
    assert Path(again["1/4"]["labeled"]).read_bytes() == first
    assert Path(other["1/4"]["labeled"]).read_bytes() != first


def test_write_splits_high_quality_protocols(voc: Path, tmp_path: Path) -> None:
    fine = {f"JPEGImages/{i}.jpg" for i in FINE}
    rep = write_splits(voc, tmp_path / "hqf", ("1/4", "1/2"), protocol="high_quality_first")
    lab4 = {ln.split()[0] for ln in _lines(Path(rep["1/4"]["labeled"]))}
    lab2 = {ln.split()[0] for ln in _lines(Path(rep["1/2"]["labeled"]))}
    assert len(lab4) == 4 and lab4 <= fine  # k <= 1464-analogue: fine images only
    assert len(lab2) == 8 and fine <= lab2  # k > #fine: every fine image + augmented ones
    assert rep["1/2"]["num_high_quality_labeled"] == len(FINE)
    rep = write_splits(voc, tmp_path / "hq", ("1/2",), protocol="high_quality")
    lab = {ln.split()[0] for ln in _lines(Path(rep["1/2"]["labeled"]))}
    assert len(lab) == 3 and lab <= fine  # ceil(6 / 2) from the fine set only
    assert rep["1/2"]["num_unlabeled"] == 13
    items, _ = discover_items("voc", voc)
    with pytest.raises(ValueError, match="needs a high-quality subset"):
        write_splits(items, tmp_path / "x", ("1/2",), protocol="high_quality_first")
    got = choose_labeled(["a", "b", "c", "d"], {"c"}, Fraction(1, 2), "high_quality_first",
                         torch.Generator().manual_seed(0))  # fmt: skip
    assert got[0] == "c" and len(got) == 2


def test_labeled_counts_match_published_splits() -> None:
    """k = ceil(N * f) reproduces the published split sizes (PS-MT split_reminder.txt and
    city_splits; VOC aug 10582, VOC fine 1464, Cityscapes 2975 train images)."""
    published = {10582: [662, 1323, 2646, 5291], 1464: [92, 183, 366, 732],
                 2975: [186, 372, 744, 1488]}  # fmt: skip
    for n, counts in published.items():
        names = [str(i) for i in range(n)]
        for f, want in zip((16, 8, 4, 2), counts, strict=True):
            got = choose_labeled(names, set(), Fraction(1, f), "random", torch.Generator())
            assert len(got) == want and len(set(got)) == want, (n, f)


def test_written_formats_read_back(voc: Path, city: Path, tmp_path: Path) -> None:
    pool, _ = discover_items("voc", voc)
    for fmt in ("unimatch", "psmt", "ids"):
        p = write_split_list(pool, tmp_path / f"{fmt}.txt", fmt, "voc")
        assert read_split_list(p, "voc", voc) == pool, fmt
    assert (
        _lines(tmp_path / "psmt.txt")[0]
        == f"/JPEGImages/{FINE[0]}.jpg /SegmentationClass/{FINE[0]}.png"
    )
    assert _lines(tmp_path / "ids.txt")[0] == FINE[0]
    cpool, _ = discover_items("cityscapes", city)
    p = write_split_list(cpool, tmp_path / "c.txt", "psmt", "cityscapes")
    assert read_split_list(p, "cityscapes", city) == cpool
    with pytest.raises(ValueError, match="format 'ids' writes VOC"):
        write_split_list(cpool, tmp_path / "c_ids.txt", "ids", "cityscapes")
    with pytest.raises(ValueError, match="protocol must be one of"):
        write_splits(voc, tmp_path / "y", protocol="best")
    with pytest.raises(ValueError, match="fraction must lie in"):
        write_splits(voc, tmp_path / "y", ("3/2",))


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mixkit")
    sub = parser.add_subparsers(dest="command", required=True)
    semiseg_splits.add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_semiseg_splits_command(city: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    flags = ["--out", str(out), "--fractions", "1/2,1", "--seed", "3", "--protocol", "random"]
    rc = _cli(["semiseg-splits", "--dataset", "cityscapes", "--data-root", str(city), *flags])
    assert rc == 0
    text = capsys.readouterr().out
    assert "1/2: 2 labeled (0 high-quality), 1 unlabeled" in text
    assert len(_lines(out / "1" / "labeled.txt")) == 3 and _lines(out / "1" / "unlabeled.txt") == []
    assert len(_lines(out / "val.txt")) == 1
    ds = open_seg_dataset("cityscapes", city, out / "1_2" / "labeled.txt")
    assert isinstance(ds, SegListDataset) and len(ds) == 2
    with pytest.raises(SystemExit):
        _cli(["semiseg-splits", "--dataset", "voc", "--data-root", str(city), "--out", str(out),
              "--protocol", "best"])  # fmt: skip
    parser = argparse.ArgumentParser(prog="mixkit")
    semiseg_splits.add_parser(parser.add_subparsers())
    sp = parser._subparsers._group_actions[0].choices["semiseg-splits"]
    for action in sp._actions:
        assert action.help, action.dest  # every flag documented
