"""Where a run's batches come from: the embedded digit canvases (:class:`CanvasSource`) or
an on-disk VOC / Cityscapes / folder dataset (:class:`DiskSource`, :func:`open_disk_data`).

A source gives the trainer float ``[0, 1]`` images on the device — ``labeled()`` ->
``(x (B, 3, H, W) float, y (B, H, W) int64 with 255 = ignore)`` and ``unlabeled()`` ->
``(x, valid (B, H, W) bool)``, ``valid`` being False where the view padded the image — plus
the validation mIoU, a few fixed images for the distance probe and the plots, and its
resumable position (``state_dict``)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from mixkit.methods.semiseg.data import IGNORE, SegDataset
from mixkit.methods.semiseg.datasets import (
    DATASET_CLASSES,
    JointTrainTransform,
    SegListDataset,
    open_seg_dataset,
    resize_pair,
    seg_collate,
)
from mixkit.methods.semiseg.evaluate import evaluate_segmentation
from mixkit.methods.semiseg.layouts import discover_items
from mixkit.methods.semiseg.metrics import ConfusionMeter
from mixkit.methods.semiseg.net import bn_mode
from mixkit.methods.semiseg.streams import IndexStream, LoaderStream
from mixkit.methods.semiseg.views import normalise, weak_view

# ImageNet statistics of the pretrained backbones (PS-MT VocCode/DataLoader/voc.py MEAN/STD;
# Dual Teacher local_configs/_base_/datasets/ade20k_repeat.py img_norm_cfg).
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VOC_CLASSES = (
    "background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog "
    "horse motorbike person pottedplant sheep sofa train tvmonitor"
).split()
CITY_CLASSES = (
    "road sidewalk building wall fence pole traffic_light traffic_sign vegetation terrain "
    "sky person rider car truck bus train motorcycle bicycle"
).split()
CANVAS_CLASSES = ["background"] + [str(d) for d in range(10)]


def _result(meter: ConfusionMeter) -> dict[str, Any]:
    iou = [None if math.isnan(v) else float(v) for v in meter.iou().tolist()]
    return {"miou": meter.miou(), "pixel_acc": meter.pixel_acc(), "iou": iou}


class _TwoStreams:
    """A source's labeled and unlabeled batch streams (``lab``, ``unl``): their resume state."""

    lab: Any
    unl: Any

    def state_dict(self) -> dict[str, Any]:
        return {"labeled": self.lab.state_dict(), "unlabeled": self.unl.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lab.load_state_dict(state["labeled"])
        self.unl.load_state_dict(state["unlabeled"])


class CanvasSource(_TwoStreams):
    """The in-memory canvases: shuffled index streams and the weak view (a random shift by up
    to ``translate`` pixels); ``aug`` draws the shifts."""

    def __init__(
        self, ds: SegDataset, labeled: Tensor, unlabeled: Tensor, cfg: Any, device: torch.device,
        gens: dict[str, torch.Generator], rank: int = 0, world_size: int = 1,
    ) -> None:  # fmt: skip
        self.ds, self.device, self.translate, self.aug = ds, device, cfg.translate, gens["aug"]
        self.num_classes, self.class_names = ds.num_classes, CANVAS_CLASSES
        self.mean, self.std = ds.mean, ds.std
        shard = {"rank": rank, "world_size": world_size}
        self.lab = IndexStream(labeled, cfg.batch_size, gens["labeled"], **shard)
        self.unl = IndexStream(unlabeled, cfg.unlabeled_batch_size, gens["unlabeled"],
                               "unlabeled", **shard)  # fmt: skip
        self.per_pass = {"labeled": labeled.numel() // cfg.batch_size,
                         "unlabeled": unlabeled.numel() // cfg.unlabeled_batch_size}  # fmt: skip

    def labeled(self) -> tuple[Tensor, Tensor]:
        idx = self.lab.next()
        x, y, _ = weak_view(self.ds.train.images[idx], self.ds.train.labels[idx],
                            self.translate, self.aug)  # fmt: skip
        return x.to(self.device).float().div_(255), y.to(self.device).long()

    def unlabeled(self) -> tuple[Tensor, Tensor]:
        idx = self.unl.next()
        x, _, valid = weak_view(self.ds.train.images[idx], None, self.translate, self.aug)
        return x.to(self.device).float().div_(255), valid.to(self.device)

    def _float(self, images_u8: Tensor) -> Tensor:
        return normalise(images_u8.to(self.device).float().div_(255), self.mean, self.std)

    @torch.no_grad()
    def evaluate(self, net: nn.Module, bn: str = "eval", chunk: int = 100) -> dict[str, Any]:
        """mIoU / per-class IoU / pixel accuracy of ``net`` on the val canvases."""
        meter = ConfusionMeter(self.num_classes, IGNORE)
        for i in range(0, len(self.ds.val), chunk):
            with bn_mode(net, bn):
                pred = net(self._float(self.ds.val.images[i : i + chunk])).argmax(1)
            meter.update(pred, self.ds.val.labels[i : i + chunk])
        return _result(meter)

    def preview(self, n: int) -> tuple[Tensor, Tensor]:
        """The first ``n`` val canvases: (images uint8 (n, 3, S, S), labels (n, S, S))."""
        return self.ds.val.images[:n], self.ds.val.labels[:n]

    def probe(self, n: int) -> Tensor | None:
        """Normalised float images of the distance probe (None for n = 0)."""
        n = min(n, len(self.ds.val))
        return self._float(self.ds.val.images[:n]) if n > 0 else None

    def close(self) -> None:
        pass


@dataclasses.dataclass
class DiskData:
    """The on-disk datasets of a run (``open_disk_data``): ``labeled`` / ``unlabeled`` with
    the joint train transform (``unlabeled`` reads no mask), ``val`` whole images."""

    dataset: str
    root: Path
    num_classes: int
    class_names: list[str]
    labeled: SegListDataset
    unlabeled: SegListDataset
    val: SegListDataset
    lists: dict[str, str]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the list files' bytes (what the run trained and evaluated on)."""
        h = hashlib.sha256()
        for key in ("labeled", "unlabeled", "val"):
            path = self.lists.get(key)
            h.update(Path(path).read_bytes() if path else b"(discovered)")
        return h.hexdigest()


def _list_path(cfg: Any, field: str) -> Path:
    value = getattr(cfg, field)
    if not value:
        raise ValueError(f"{field} is required for dataset {cfg.dataset!r} (a split list; "
                         "write one with mixkit semiseg-splits)")  # fmt: skip
    p = Path(value)
    return p if p.is_absolute() or p.is_file() else Path(cfg.data_root) / p


def open_disk_data(cfg: Any) -> DiskData:
    """The labeled / unlabeled / val datasets named by ``cfg`` (``data_root`` and the split
    lists, paths relative to ``data_root`` unless they exist as given; no ``val_list``: the
    layout's val set, e.g. VOC ``ImageSets/Segmentation/val.txt``)."""
    if not cfg.data_root:
        raise ValueError(f"data_root is required for dataset {cfg.dataset!r}")
    root, k = Path(cfg.data_root), cfg.num_classes or None
    tf = JointTrainTransform(cfg.crop_size, base_size=cfg.base_size or None)
    lists = {"labeled": str(_list_path(cfg, "labeled_list")),
             "unlabeled": str(_list_path(cfg, "unlabeled_list"))}  # fmt: skip
    common = {"num_classes": k, "transform": tf, "seed": cfg.data_seed}
    lab = open_seg_dataset(cfg.dataset, root, lists["labeled"], stream="labeled", **common)
    unl = open_seg_dataset(cfg.dataset, root, lists["unlabeled"], stream="unlabeled",
                           with_masks=False, **common)  # fmt: skip
    if cfg.val_list:
        lists["val"] = str(_list_path(cfg, "val_list"))
        val = open_seg_dataset(cfg.dataset, root, lists["val"], num_classes=k, stream="val")
    else:
        items, _ = discover_items(cfg.dataset, root, "val")
        val = DATASET_CLASSES[cfg.dataset](root, items, k, None, stream="val", source=root)
    names = {"voc": VOC_CLASSES, "cityscapes": CITY_CLASSES}.get(cfg.dataset)
    n = lab.num_classes
    names = list(names) if names and len(names) == n else [str(i) for i in range(n)]
    return DiskData(cfg.dataset, root, n, names, lab, unl, val, lists)


class DiskSource(_TwoStreams):
    """Batches of :class:`DiskData` through :class:`LoaderStream` (``workers`` processes);
    validation whole-image or sliding-window (``eval_mode``) on the val list."""

    def __init__(
        self, data: DiskData, cfg: Any, device: torch.device, rank: int = 0, world_size: int = 1
    ) -> None:
        self.data, self.device, self.cfg = data, device, cfg
        self.num_classes, self.class_names = data.num_classes, data.class_names
        self.mean, self.std = data.mean, data.std
        kw = {"workers": cfg.workers, "rank": rank, "world_size": world_size,
              "pin_memory": device.type == "cuda"}  # fmt: skip
        self.lab = LoaderStream(data.labeled, cfg.batch_size, cfg.seed, "labeled", **kw)
        self.unl = LoaderStream(data.unlabeled, cfg.unlabeled_batch_size, cfg.seed, "unlabeled",
                                **kw)  # fmt: skip
        self.per_pass = {"labeled": self.lab.per_pass, "unlabeled": self.unl.per_pass}

    def _to(self, t: Tensor) -> Tensor:
        return t.to(self.device, non_blocking=True)

    def labeled(self) -> tuple[Tensor, Tensor]:
        images, masks = self.lab.next()
        return self._to(images).float().div_(255), self._to(masks).long()

    def unlabeled(self) -> tuple[Tensor, Tensor]:
        images, pad = self.unl.next()  # pad: 255 where the crop padded the image
        return self._to(images).float().div_(255), self._to(pad) != IGNORE

    @torch.no_grad()
    def evaluate(self, net: nn.Module, bn: str = "eval") -> dict[str, Any]:
        """mIoU on the val list (``net`` in eval mode; ``bn`` is not used here)."""
        c = self.cfg
        loader = DataLoader(self.data.val, batch_size=1, num_workers=c.workers,
                            collate_fn=seg_collate)  # fmt: skip
        stride = c.eval_stride or None
        meter = evaluate_segmentation(
            net, loader, self.num_classes, self.mean, self.std, device=self.device,
            mode=c.eval_mode, crop=c.crop_size if c.eval_mode == "sliding" else None,
            stride=stride,
        )  # fmt: skip
        return _result(meter)

    def preview(self, n: int) -> tuple[Tensor, Tensor]:
        """The first ``n`` val images and masks resized to the crop size (uint8)."""
        size = (self.cfg.crop_size, self.cfg.crop_size)
        pairs = [
            resize_pair(*self.data.val.load(i), size) for i in range(min(n, len(self.data.val)))
        ]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def probe(self, n: int) -> Tensor | None:
        if n <= 0:
            return None
        images, _ = self.preview(n)
        return normalise(self._to(images).float().div_(255), self.mean, self.std)

    def close(self) -> None:
        self.lab.close()
        self.unl.close()


def make_source(
    cfg: Any, ds: SegDataset | DiskData, labeled: Any, unlabeled: Any, device: torch.device,
    gens: dict[str, torch.Generator], rank: int = 0, world_size: int = 1,
) -> CanvasSource | DiskSource:  # fmt: skip
    """The source of ``ds``: canvases with index tensors, or on-disk data."""
    if isinstance(ds, SegDataset):
        return CanvasSource(ds, labeled, unlabeled, cfg, device, gens, rank, world_size)
    return DiskSource(ds, cfg, device, rank, world_size)
