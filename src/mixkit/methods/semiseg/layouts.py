"""On-disk layouts of segmentation data: which files make up a dataset's samples.

- ``voc``: ``VOCdevkit/VOC2012`` — ``JPEGImages/X.jpg``, ``SegmentationClass/X.png`` (palette
  PNGs, the 1464 train + 1449 val finely annotated images listed in
  ``ImageSets/Segmentation/{train,val}.txt``) and optionally ``SegmentationClassAug/X.png``
  (the SBD-augmented index masks; 10582 train images once the val ids are removed).
- ``cityscapes``: ``leftImg8bit/{train,val}/CITY/X_leftImg8bit.png`` and
  ``gtFine/{train,val}/CITY/X_gtFine_labelTrainIds.png`` (19 train ids, 255 ignore; made by
  cityscapesScripts ``createTrainIdLabelImgs``).
- ``folder``: ``images/X.{jpg,jpeg,png}`` and ``masks/X.png`` (same stem).
"""

from __future__ import annotations

from pathlib import Path

DATASETS = ("voc", "cityscapes", "folder")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
CITY_SPLITS = ("train", "val", "test")
# One sample: (image path, mask path or None), POSIX and relative to the data root.
SplitItem = tuple[str, str | None]


def city_of(stem: str) -> str:
    """``aachen_000000_000019`` -> ``aachen`` (Cityscapes names are CITY_SEQ_FRAME)."""
    return "_".join(stem.split("_")[:-2])


def _read_ids(path: Path) -> list[str]:
    return [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]


def _discover_voc(root: Path, subset: str) -> tuple[list[SplitItem], set[str]]:
    sets = root / "ImageSets" / "Segmentation"
    listed = sets / f"{subset}.txt"
    if not listed.is_file():
        raise FileNotFoundError(f"VOC id list {listed} not found (is --data-root VOC2012?)")
    fine = _read_ids(listed)
    items: list[SplitItem] = [(f"JPEGImages/{i}.jpg", f"SegmentationClass/{i}.png") for i in fine]
    hq = {im for im, _ in items}
    aug_dir = root / "SegmentationClassAug"
    if subset == "train" and aug_dir.is_dir():
        val = set(_read_ids(sets / "val.txt")) if (sets / "val.txt").is_file() else set()
        skip = val | set(fine)
        extra = sorted(p.stem for p in aug_dir.glob("*.png") if p.stem not in skip)
        items += [(f"JPEGImages/{i}.jpg", f"SegmentationClassAug/{i}.png") for i in extra]
    return items, hq


def _discover_city(root: Path, subset: str) -> tuple[list[SplitItem], set[str]]:
    masks = sorted((root / "gtFine" / subset).glob("*/*_gtFine_labelTrainIds.png"))
    if not masks:
        raise FileNotFoundError(
            f"no gtFine/{subset}/*/*_gtFine_labelTrainIds.png under {root}; create the train-id "
            "masks with cityscapesScripts (createTrainIdLabelImgs)"
        )
    items = []
    for m in masks:
        city, stem = m.parent.name, m.name.removesuffix("_gtFine_labelTrainIds.png")
        items.append(
            (f"leftImg8bit/{subset}/{city}/{stem}_leftImg8bit.png", m.relative_to(root).as_posix())
        )
    return items, set()


def _discover_folder(root: Path) -> tuple[list[SplitItem], set[str]]:
    images = sorted(p for p in (root / "images").glob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not images:
        raise FileNotFoundError(f"no images ({'/'.join(IMAGE_EXTS)}) under {root / 'images'}")
    seen: dict[str, Path] = {}
    items: list[SplitItem] = []
    for p in images:
        if p.stem in seen:
            raise ValueError(f"images {seen[p.stem]} and {p} share the stem {p.stem!r}")
        seen[p.stem] = p
        mask = root / "masks" / f"{p.stem}.png"
        items.append((f"images/{p.name}", f"masks/{p.stem}.png" if mask.is_file() else None))
    return items, set()


def discover_items(
    dataset: str, root: str | Path, subset: str = "train"
) -> tuple[list[SplitItem], set[str]]:
    """All samples of ``subset`` under ``root`` and the images of its high-quality subset.

    voc: the ``ImageSets/Segmentation/{subset}.txt`` ids (the 1464 finely annotated train
    images: the high-quality set) then, for ``train``, every other ``SegmentationClassAug``
    id not in ``val.txt`` (the 10582-image augmented set); cityscapes: every
    ``gtFine/{subset}/*/*_gtFine_labelTrainIds.png``; folder: ``images/*`` with the mask
    ``masks/STEM.png`` or None when it is absent (unlabeled-only). Sorted, deterministic."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {list(DATASETS)}, got {dataset!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} is not a directory")
    if dataset == "voc":
        return _discover_voc(root, subset)
    if dataset == "cityscapes":
        return _discover_city(root, subset)
    return _discover_folder(root)
