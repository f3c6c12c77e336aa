"""The peers of ``mixkit bench``: timm ``Mixup``, torchvision v2 ``CutMix`` / ``MixUp`` and
kornia ``RandomCutMixV2`` / ``RandomMixUpV2``, each timed on the whole call (images, labels)
-> (mixed images, soft targets) when it imports and runs on the batch."""

from __future__ import annotations

from collections.abc import Callable

import torch

from mixkit.bench.cases import MODES, NUM_CLASSES, Case, Size, inputs
from mixkit.bench.timing import median

PEERS = ("kornia", "timm", "torchvision")
BATCH_ONLY = ("torchvision",)  # peers without a per-sample mode


def _timm(x: torch.Tensor, labels: torch.Tensor, built: list, versions: dict) -> None:
    import timm
    from timm.data import Mixup

    versions["timm"] = timm.__version__
    work = x.clone()  # timm mixes its input in place
    for op, (ma, ca) in {"mixup": (1.0, 0.0), "cutmix": (0.0, 1.0)}.items():
        for mode in MODES:
            mix = Mixup(
                mixup_alpha=ma,
                cutmix_alpha=ca,
                mode=mode,
                label_smoothing=0.0,
                num_classes=NUM_CLASSES,
            )
            built.append(("timm", op, mode, lambda mix=mix: mix(work, labels)))


def _torchvision(x: torch.Tensor, labels: torch.Tensor, built: list, versions: dict) -> None:
    import torchvision
    from torchvision.transforms import v2

    versions["torchvision"] = torchvision.__version__
    for op, cls in {"mixup": v2.MixUp, "cutmix": v2.CutMix}.items():
        tr = cls(alpha=1.0, num_classes=NUM_CLASSES)
        built.append(("torchvision", op, "batch", lambda tr=tr: tr(x, labels)))


def _kornia(x: torch.Tensor, labels: torch.Tensor, built: list, versions: dict) -> None:
    import kornia
    from kornia.augmentation import RandomCutMixV2, RandomMixUpV2

    versions["kornia"] = kornia.__version__
    for op, cls in {"mixup": RandomMixUpV2, "cutmix": RandomCutMixV2}.items():
        for mode in MODES:
            tr = cls(same_on_batch=mode == "batch", data_keys=["input", "class"])
            built.append(("kornia", op, mode, lambda tr=tr: tr(x, labels)))


def peer_cases(size: Size, device: torch.device, seed: int) -> tuple[list[Case], dict[str, str]]:
    """The peer cases that import and run on this batch (the others are skipped), and the
    versions of the peers that import."""
    t = inputs(size, device, seed)
    versions: dict[str, str] = {}
    built: list[tuple[str, str, str, Callable[[], object]]] = []
    for add in (_timm, _torchvision, _kornia):
        try:
            add(t["x"], t["labels"], built, versions)
        except ImportError:
            continue
    cases = []
    for impl, op, mode, fn in built:
        try:  # e.g. MixUp or kornia on uint8
            fn()
        except Exception:  # noqa: BLE001 - a peer that cannot run this batch is skipped
            continue
        cases.append(Case(size.label, op, mode, "call", impl, fn))
    return cases, versions


def peer_for(by: dict, size: str, op: str, mode: str, impl: str) -> Case | None:
    """``impl``'s case to compare a mixkit row of ``mode`` with: the same mode, or for a
    per-sample row of a batch-only peer its batch mode."""
    case = by.get((size, op, mode, "call", impl))
    if case is None and mode == "elem" and impl in BATCH_ONLY:
        case = by.get((size, op, "batch", "call", impl))
    return case


def fastest_peer(by: dict, size: str, op: str, mode: str) -> Case | None:
    """The peer case with the smallest median time for this row, or None."""
    found = [c for p in PEERS if (c := peer_for(by, size, op, mode, p)) is not None]
    if not found:
        return None
    return min(found, key=median)
