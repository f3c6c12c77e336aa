"""Split lists of on-disk segmentation data: read the formats the field ships, write seeded
labeled / unlabeled partitions of a user's data.

A list names one sample per line, paths relative to the data root; blank lines and lines
starting with ``#`` are skipped. :func:`read_split_list` detects the format of each line:

- ``unimatch`` — ``IMAGE MASK``: LiheYoung/UniMatch ``splits/pascal/1_16/labeled.txt``
  (``JPEGImages/X.jpg SegmentationClass/X.png``) and ``splits/cityscapes/1_16/labeled.txt``
  (``leftImg8bit/train/CITY/..._leftImg8bit.png gtFine/train/CITY/..._gtFine_labelTrainIds.png``);
  their ``unlabeled.txt`` has the same two columns (``dataset/semi.py`` reads the mask of an
  unlabeled sample only to find the crop padding).
- ``psmt`` — ``/IMAGE /MASK`` with a leading slash: yyliu01/PS-MT
  ``VocCode/DataLoader/voc_splits/*_train_{supervised,unsupervised}.txt``
  (``/JPEGImages/X.jpg /SegmentationClassAug/X.png``; ``VocCode/DataLoader/voc.py`` drops the
  first character and joins onto ``VOCdevkit/VOC2012``) and ``CityCode/DataLoader/city_splits``
  (``/images/city_gt_fine/train/X_leftImg8bit.png /annotation/city_gt_fine/train/X_gtFine.png``,
  a flattened copy of Cityscapes that ``CityCode/DataLoader/city.py`` reads as 19 train ids).
  Those Cityscapes lines are kept as written when ``ROOT/images/city_gt_fine`` exists, and
  mapped onto the official layout (``leftImg8bit/S/CITY/X_leftImg8bit.png``,
  ``gtFine/S/CITY/X_gtFine_labelTrainIds.png``) otherwise.
- ``ids`` — one id per line (VOC ``ImageSets/Segmentation/train.txt``): VOC ``X`` ->
  ``JPEGImages/X.jpg`` + ``SegmentationClass/X.png`` (``SegmentationClassAug/X.png`` when only
  that exists, or ``voc_mask_dir``); Cityscapes ``CITY_SEQ_FRAME`` -> the split folder holding
  ``leftImg8bit/*/CITY``; folder ``X`` -> ``images/X.{jpg,jpeg,png}`` + ``masks/X.png``.
- ``image`` — one image path (an unlabeled list without masks): the item's mask is None.

Items are ``(image_rel, mask_rel or None)`` pairs of POSIX paths relative to the root.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path, PurePosixPath

import torch

from mixkit.methods.semiseg.layouts import (
    CITY_SPLITS,
    DATASETS,
    IMAGE_EXTS,
    SplitItem,
    city_of,
    discover_items,
)

READ_FORMATS = ("auto", "unimatch", "psmt", "ids", "image")
WRITE_FORMATS = ("unimatch", "psmt", "ids")
PROTOCOLS = ("random", "high_quality", "high_quality_first")
DEFAULT_FRACTIONS = ("1/16", "1/8", "1/4", "1/2")


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _clean(token: str, where: str) -> str:
    """A relative POSIX path with no ``..`` (the leading PS-MT slash already removed)."""
    p = PurePosixPath(token.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"{where}: path {token!r} must be relative to the data root")
    return str(p)


def _from_id(tok: str, dataset: str, root: Path, voc_mask_dir: str | None, where: str) -> SplitItem:
    if "/" in tok or "." in tok:
        raise ValueError(f"{where}: {tok!r} is not a bare id (no '/' or extension expected)")
    if dataset == "voc":
        mask_dir = voc_mask_dir
        if mask_dir is None:
            fine = (root / "SegmentationClass" / f"{tok}.png").is_file()
            aug = (root / "SegmentationClassAug" / f"{tok}.png").is_file()
            mask_dir = "SegmentationClassAug" if aug and not fine else "SegmentationClass"
        return f"JPEGImages/{tok}.jpg", f"{mask_dir}/{tok}.png"
    if dataset == "cityscapes":
        stem = tok.removesuffix("_leftImg8bit")
        city = city_of(stem)
        for s in CITY_SPLITS:
            if city and (root / "leftImg8bit" / s / city).is_dir():
                return (
                    f"leftImg8bit/{s}/{city}/{stem}_leftImg8bit.png",
                    f"gtFine/{s}/{city}/{stem}_gtFine_labelTrainIds.png",
                )
        raise ValueError(f"{where}: no folder leftImg8bit/{{train,val,test}}/{city} for id {tok!r}")
    image = next(
        (f"images/{tok}{e}" for e in IMAGE_EXTS if (root / "images" / f"{tok}{e}").is_file()),
        f"images/{tok}.png",
    )
    return image, f"masks/{tok}.png"


def _psmt_city(image: str, mask: str, root: Path) -> tuple[str, str]:
    """PS-MT's flattened Cityscapes paths -> the official layout, unless the flat copy exists."""
    ip, mp = PurePosixPath(image), PurePosixPath(mask)
    if ip.parts[:2] != ("images", "city_gt_fine") or (root / "images" / "city_gt_fine").is_dir():
        return image, mask
    split, stem = ip.parts[2], ip.name.removesuffix("_leftImg8bit.png")
    city = city_of(stem)
    mstem = mp.name.removesuffix("_gtFine.png")
    return (
        f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png",
        f"gtFine/{split}/{city}/{mstem}_gtFine_labelTrainIds.png",
    )


def _detect(tokens: list[str]) -> str | None:
    if len(tokens) == 2:
        slashes = [t.startswith("/") for t in tokens]
        return "psmt" if all(slashes) else ("unimatch" if not any(slashes) else None)
    if len(tokens) == 1:
        t = tokens[0]
        return "image" if ("/" in t or t.lower().endswith(IMAGE_EXTS)) else "ids"
    return None


def parse_split_line(
    line: str,
    dataset: str,
    root: str | Path,
    format: str = "auto",
    where: str = "line",
    voc_mask_dir: str | None = None,
) -> SplitItem:
    """One non-blank list line -> ``(image_rel, mask_rel or None)``; ``where`` names the
    line in errors (``FILE:LINE``)."""
    root = Path(root)
    tokens = line.split()
    kind = _detect(tokens)
    # An image-only line (no mask) is valid in either path format.
    if kind is None or not (format in ("auto", kind) or (kind == "image" and format != "ids")):
        want = "a known format" if format == "auto" else f"format {format!r}"
        raise ValueError(
            f"{where}: malformed split line {line.strip()!r}; expected {want}: 'IMAGE MASK' "
            "(UniMatch), '/IMAGE /MASK' (PS-MT), a bare id, or one image path"
        )
    if kind == "ids":
        return _from_id(tokens[0], dataset, root, voc_mask_dir, where)
    paths = [_clean(t[1:] if t.startswith("/") else t, where) for t in tokens]
    if not paths[0].lower().endswith(IMAGE_EXTS):
        raise ValueError(f"{where}: image {paths[0]!r} must end in one of {list(IMAGE_EXTS)}")
    if kind == "image":
        return paths[0], None
    if not paths[1].lower().endswith(".png"):
        raise ValueError(f"{where}: mask {paths[1]!r} must be a .png index image")
    if kind == "psmt" and dataset == "cityscapes":
        return _psmt_city(paths[0], paths[1], root)
    return paths[0], paths[1]


def read_split_list(
    path: str | Path,
    dataset: str,
    root: str | Path,
    format: str = "auto",
    voc_mask_dir: str | None = None,
) -> list[SplitItem]:
    """Read a split list (any format of the module docstring, detected line by line unless
    ``format`` names one). Returns the items in file order; errors name ``FILE:LINE``."""
    _check_choice("dataset", dataset, DATASETS)
    _check_choice("format", format, READ_FORMATS)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split list {path} not found")
    items: list[SplitItem] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        items.append(parse_split_line(line, dataset, root, format, f"{path}:{n}", voc_mask_dir))
    if not items:
        raise ValueError(f"split list {path} names no sample")
    return items


def _item_id(item: SplitItem, dataset: str) -> str:
    image, mask = item
    stem = PurePosixPath(image).stem.removesuffix("_leftImg8bit")
    if dataset == "voc" and image == f"JPEGImages/{stem}.jpg":
        if mask is None or mask in (
            f"SegmentationClass/{stem}.png",
            f"SegmentationClassAug/{stem}.png",
        ):
            return stem
    raise ValueError(f"format 'ids' writes VOC JPEGImages/ids only; cannot express {image!r}")


def format_split_line(item: SplitItem, format: str = "unimatch", dataset: str = "voc") -> str:
    """The list line of ``item`` in ``format`` (``unimatch`` / ``psmt`` / ``ids``)."""
    _check_choice("format", format, WRITE_FORMATS)
    if format == "ids":
        return _item_id(item, dataset)
    lead = "/" if format == "psmt" else ""
    return " ".join(lead + p for p in item if p is not None)


def write_split_list(
    items: Iterable[SplitItem], path: str | Path, format: str = "unimatch", dataset: str = "voc"
) -> Path:
    """Write ``items`` one per line (atomically: a temporary file renamed into place)."""
    path = Path(path)
    text = "".join(format_split_line(it, format, dataset) + "\n" for it in items)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------- writing splits
def parse_fraction(text: str) -> Fraction:
    """``"1/16"`` -> Fraction(1, 16); must lie in (0, 1]."""
    try:
        f = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError) as e:
        raise ValueError(f"fraction must look like '1/16', got {text!r}") from e
    if not 0 < f <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {text!r}")
    return f


def fraction_dirname(f: Fraction) -> str:
    """Fraction(1, 16) -> ``1_16`` (UniMatch's ``splits/pascal/1_16`` naming)."""
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}_{f.denominator}"


def choose_labeled(
    candidates: Sequence[str], high_quality: set[str], fraction: Fraction, protocol: str,
    generator: torch.Generator,
) -> list[str]:  # fmt: skip
    """The labeled images of one split, in draw order.

    k = ceil(N * fraction) (N = #candidates, or #high-quality for ``high_quality``), which
    gives the published counts: VOC aug 662/1323/2646/5291 of 10582, VOC fine 92/183/366/732
    of 1464, Cityscapes 186/372/744/1488 of 2975 (PS-MT ``voc_splits/split_reminder.txt``,
    ``city_splits``). ``random``: a uniform draw; ``high_quality``: drawn from the
    high-quality set only; ``high_quality_first``: the high-quality images first (shuffled),
    then the others (shuffled) — PS-MT's blender lists ``voc_splits/{6620,13230,26460,
    52910}_train_supervised.txt`` (README: built on top of the high-quality labels): 662 and
    1323 lie inside the 1464 fine images, 5291 holds all 1464 plus 3827 augmented ones."""
    perm = torch.randperm(len(candidates), generator=generator).tolist()
    order = [candidates[i] for i in perm]
    hq_order = [c for c in order if c in high_quality]
    if protocol == "random":
        pool = order
    elif protocol == "high_quality":
        pool = hq_order
    else:
        pool = hq_order + [c for c in order if c not in high_quality]
    if protocol != "random" and not hq_order:
        raise ValueError(
            f"protocol {protocol!r} needs a high-quality subset (VOC ImageSets/Segmentation/"
            "train.txt, or high_quality= for a list of items); this data has none"
        )
    k = math.ceil(len(pool) * fraction)
    return pool[:k]


def _resolve_pool(
    items_or_root: str | Path | Sequence[SplitItem],
    dataset: str,
    high_quality: Iterable[str] | None,
) -> tuple[list[SplitItem], set[str], list[SplitItem] | None]:
    """(pool items, high-quality image set, val items or None) of ``write_splits``' input."""
    val: list[SplitItem] | None = None
    if isinstance(items_or_root, (str, Path)):
        pool, hq = discover_items(dataset, items_or_root, "train")
        with contextlib.suppress(FileNotFoundError):  # no val set: no val.txt
            val = discover_items(dataset, items_or_root, "val")[0] if dataset != "folder" else None
    else:
        pool = [(str(i), None if m is None else str(m)) for i, m in items_or_root]
        hq = set()
    if high_quality is not None:
        hq = {str(h) for h in high_quality}
    images = [im for im, _ in pool]
    if len(set(images)) != len(images):
        raise ValueError("items_or_root names an image twice; each sample must appear once")
    return pool, hq, val


def _write_fraction(
    pool: list[SplitItem], labeled: set[str], hq: set[str], folder: Path, format: str, dataset: str
) -> dict:
    lab = [it for it in pool if it[0] in labeled]
    unl = [it for it in pool if it[0] not in labeled]
    write_split_list(lab, folder / "labeled.txt", format, dataset)
    write_split_list(unl, folder / "unlabeled.txt", format, dataset)
    return {
        "dir": str(folder),
        "labeled": str(folder / "labeled.txt"),
        "unlabeled": str(folder / "unlabeled.txt"),
        "num_labeled": len(lab),
        "num_unlabeled": len(unl),
        "num_high_quality_labeled": len(labeled & hq),
    }


def write_splits(
    items_or_root: str | Path | Sequence[SplitItem],
    out_dir: str | Path,
    fractions: Sequence[str] = DEFAULT_FRACTIONS,
    seed: int = 0,
    protocol: str = "random",
    format: str = "unimatch",
    *,
    dataset: str = "voc",
    high_quality: Iterable[str] | None = None,
) -> dict[str, dict]:
    """Write ``OUT/<1_16>/labeled.txt`` + ``unlabeled.txt`` per fraction, ``OUT/val.txt``
    when the root has a val set and ``OUT/splits.json`` (provenance).

    Args:
        items_or_root: a data root (samples from :func:`discover_items`) or a list of
            ``(image_rel, mask_rel or None)`` items; items without a mask are never labeled.
        fractions: labeled fractions such as ``"1/16"`` (k: see :func:`choose_labeled`).
        seed: seeds one ``torch.Generator`` permutation shared by every fraction, so the
            labeled sets are nested (1/16 inside 1/8 inside ...).
        protocol: ``random`` | ``high_quality`` | ``high_quality_first``.
        format: ``unimatch`` (``IMAGE MASK``) | ``psmt`` (``/IMAGE /MASK``) | ``ids`` (VOC).
        dataset: ``voc`` | ``cityscapes`` | ``folder`` (the layout of a root).
        high_quality: image paths of the high-quality subset (default for a VOC root: the
            ``ImageSets/Segmentation/train.txt`` images).

    Returns ``{fraction: {"dir", "labeled", "unlabeled", "num_labeled", "num_unlabeled",
    "num_high_quality_labeled"}}``. Unlabeled lines keep their mask path (as UniMatch's
    ``unlabeled.txt``); a trainer must not read it (``with_masks=False``).
    """
    _check_choice("dataset", dataset, DATASETS)
    _check_choice("protocol", protocol, PROTOCOLS)
    _check_choice("format", format, WRITE_FORMATS)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if isinstance(fractions, str) or not fractions:
        raise ValueError(
            f"fractions must be a non-empty sequence like ('1/16',), got {fractions!r}"
        )
    fracs = [parse_fraction(f) for f in fractions]
    pool, hq, val = _resolve_pool(items_or_root, dataset, high_quality)
    candidates = [im for im, m in pool if m is not None]
    if not candidates:
        raise ValueError("no sample with a mask: nothing can be labeled")
    out = Path(out_dir)
    report: dict[str, dict] = {}
    for text, f in zip(fractions, fracs, strict=True):
        gen = torch.Generator().manual_seed(seed)
        labeled = set(choose_labeled(candidates, hq, f, protocol, gen))
        report[str(text)] = _write_fraction(
            pool, labeled, hq, out / fraction_dirname(f), format, dataset
        )
    if val:
        write_split_list(val, out / "val.txt", format, dataset)
    meta = {"dataset": dataset, "protocol": protocol, "seed": seed, "format": format,
            "num_samples": len(pool), "num_high_quality": len(hq), "splits": report}  # fmt: skip
    (out / "splits.json").write_text(json.dumps(meta, indent=1) + "\n")
    return report
