"""The timed cases of ``mixkit bench``: baselines, every mixkit op eager and compiled, and
the whole call ``module(images, labels)`` (the peers are in :mod:`mixkit.bench.peers`).

What is timed (B = batch, N = bytes of the batch):
- ``clone``: ``x.clone()``; ``copy_``: ``out.copy_(x)`` into a preallocated tensor (the
  device-to-device copy the GB/s column is compared with on CUDA); ``lerp``: ``torch.lerp``
  of the batch with a second batch (float only), the least memory traffic of any MixUp.
- ``draw``: ``module.draw(shape)`` alone (the CPU parameter draw).
- ``apply``: the deterministic op on pre-drawn params, returning a new tensor
  (``augment.apply_images``; ``segcutmix`` adds ``apply_masks`` on (B, H, W) int64 maps;
  ``recursive`` mixes with a stored batch, RecursiveMix's history); ``compiled``: the same
  with the kernel ``mixkit.compile`` installs; ``out=`` into a preallocated tensor;
  ``inplace`` overwrites the batch (both eager).
- ``call`` / ``call compiled``: ``module(x, labels)`` -> (images, soft targets): draw +
  finite check + apply + labels, the unit the peers are compared on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from mixkit import augment
from mixkit.augment.apply import apply_tensor, mix_tensors
from mixkit.augment.compile import compiled_kernel


@dataclass(frozen=True)
class Size:
    label: str
    shape: tuple[int, int, int, int]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        b, c, h, w = self.shape
        return b * c * h * w * torch.empty((), dtype=self.dtype).element_size()


SIZES: dict[str, Size] = {
    s.label: s
    for s in (
        Size("128x3x32x32", (128, 3, 32, 32), torch.float32),
        Size("64x3x224x224", (64, 3, 224, 224), torch.float32),
        Size("256x3x32x32-uint8", (256, 3, 32, 32), torch.uint8),
    )
}
OPS = ("mixup", "cutmix", "resizemix", "cutout", "classmix", "segcutmix", "recursive", "multibox")
MODES = ("batch", "elem")
CALL_OPS = ("mixup", "cutmix", "resizemix")  # whole calls timed (the peers have mixup, cutmix)
NUM_CLASSES = 10
APPLY_VARIANTS = ("apply", "compiled", "out=", "inplace")


@dataclass
class Case:
    """One timed callable. ``impl``: mixkit / torch / timm / torchvision / kornia."""

    size: str
    op: str
    mode: str
    variant: str
    impl: str
    fn: Callable[[], object]
    times: list[float] = field(default_factory=list)
    first_call: float | None = None  # seconds of the first call (compiles, if compiled)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.size, self.op, self.mode, self.variant, self.impl)

    @property
    def compiled(self) -> bool:
        return self.impl == "mixkit" and self.variant in ("compiled", "call compiled")


def module(op: str, mode: str, height: int) -> augment.MixTransform:
    """The mixer behind ``op`` with its defaults (``segcutmix`` is CutMix on images + maps)."""
    kw = {"mode": mode, "num_classes": NUM_CLASSES, "generator": 0}
    if op == "mixup":
        return augment.MixUp(1.0, **kw)
    if op in ("cutmix", "segcutmix"):
        return augment.CutMix(1.0, **kw)
    if op == "resizemix":
        return augment.ResizeMix(**kw)
    if op == "cutout":
        return augment.Cutout(length=max(1, height // 2), **kw)
    if op == "classmix":
        return augment.ClassMix(**kw)
    if op == "multibox":
        return augment.MultiBoxCutMix(1.0, num_boxes=3, **kw)
    if op == "recursive":
        return augment.RecursiveMix(
            0.5, per_sample=mode == "elem", num_classes=NUM_CLASSES, generator=0
        )
    raise ValueError(f"op must be one of {OPS}, got {op!r}")


def inputs(size: Size, device: torch.device, seed: int) -> dict[str, torch.Tensor]:
    """Images x, a second batch ``stored``, (B, H, W) int64 label maps with blobs of
    classes (ClassMix draws from the classes present) and (B,) int64 labels, on ``device``."""
    g = torch.Generator().manual_seed(seed)
    b, _, h, w = size.shape
    x = torch.rand(size.shape, generator=g)
    x = (x * 255).round().to(torch.uint8) if size.dtype == torch.uint8 else x.to(size.dtype)
    seg = torch.randint(0, NUM_CLASSES, (b, 1, max(1, h // 8), max(1, w // 8)), generator=g)
    seg = torch.nn.functional.interpolate(seg.float(), size=(h, w), mode="nearest")[:, 0].long()
    labels = torch.randint(0, NUM_CLASSES, (b,), generator=g)
    return {
        "x": x.to(device),
        "stored": x.flip(0).contiguous().to(device),
        "seg": seg.to(device),
        "labels": labels.to(device),
    }


def _baselines(label: str, x: torch.Tensor, stored: torch.Tensor) -> list[Case]:
    out = torch.empty_like(x)
    floor = stored.clone()  # mutated by the in-place lerp
    cases = [
        Case(label, "clone", "-", "new", "torch", lambda: x.clone()),
        Case(label, "copy_", "-", "out=", "torch", lambda: out.copy_(x)),
    ]
    if x.is_floating_point():  # MixUp's memory-traffic floor: read two batches, write one
        cases += [
            Case(label, "lerp", "-", "new", "torch", lambda: torch.lerp(x, stored, 0.5)),
            Case(label, "lerp", "-", "out=", "torch", lambda: torch.lerp(x, stored, 0.5, out=out)),
            Case(label, "lerp", "-", "inplace", "torch", lambda: floor.lerp_(stored, 0.5)),
        ]
    return cases


def _op_fns(op: str, m: augment.MixTransform, t: dict[str, torch.Tensor]):
    """variant -> callable for one mixer (eager and compiled apply, out=, inplace, draw)."""
    x, seg, stored = t["x"], t["seg"], t["stored"]
    out = torch.empty_like(x)
    work = x.clone()  # mutated by the in-place variants
    fns: dict[str, Callable[[], object]] = {}
    if op == "recursive":
        m(stored, t["labels"])  # the stored batch becomes the history
        params = m.draw(x.shape)
        src = m.history_images

        def rec(kernel=mix_tensors, dst=None, images=x):
            return apply_tensor(params, images, dst=dst, source=src, kernel=kernel)

        fns["draw"] = lambda: m.draw(x.shape)
        fns["apply"] = rec
        fns["compiled"] = lambda: rec(compiled_kernel)
        fns["out="] = lambda: rec(dst=out)
        fns["inplace"] = lambda: rec(dst=work, images=work)
        return fns
    ctx = {"label_maps": seg} if op == "classmix" else {}
    params = m.draw(x.shape, **ctx)
    if op == "segcutmix":
        images, masks = augment.apply_images, augment.apply_masks
        fns["apply"] = lambda: (images(params, x), masks(params, seg))
        fns["compiled"] = lambda: (
            images(params, x, kernel=compiled_kernel),
            masks(params, seg, kernel=compiled_kernel),
        )
        return fns
    apply = augment.apply_images
    fns["draw"] = lambda: m.draw(x.shape, **ctx)
    fns["apply"] = lambda: apply(params, x)
    fns["compiled"] = lambda: apply(params, x, kernel=compiled_kernel)
    fns["out="] = lambda: apply(params, x, out=out)
    fns["inplace"] = lambda: apply(params, work, inplace=True)
    return fns


def mixkit_cases(size: Size, device: torch.device, ops_: Iterable[str], seed: int) -> list[Case]:
    """Baselines and every mixkit op, mode and variant for one batch size."""
    t = inputs(size, device, seed)
    x, labels = t["x"], t["labels"]
    h = size.shape[2]
    cases = _baselines(size.label, x, t["stored"])
    for op in ops_:
        for mode in MODES:
            fns = _op_fns(op, module(op, mode, h), t)
            for variant in ("draw", *APPLY_VARIANTS):
                if variant in fns:
                    cases.append(Case(size.label, op, mode, variant, "mixkit", fns[variant]))
            if op in CALL_OPS:
                eager = module(op, mode, h)
                compiled = augment.compile(module(op, mode, h))
                cases += [
                    Case(size.label, op, mode, "call", "mixkit", lambda m=eager: m(x, labels)),
                    Case(
                        size.label,
                        op,
                        mode,
                        "call compiled",
                        "mixkit",
                        lambda m=compiled: m(x, labels),
                    ),
                ]
    return cases
