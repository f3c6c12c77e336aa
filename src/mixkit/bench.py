"""Op-speed benchmark (issue 6): every mixing op against ``clone()`` of the same batch and,
when they import, against timm ``Mixup``, torchvision v2 ``CutMix``/``MixUp`` and kornia
``RandomCutMixV2``/``RandomMixUpV2``, all measured in one run with ``torch.utils.benchmark``.

Timing protocol (robust to a loaded machine): every case is measured once per round with
``Timer.blocked_autorange`` (``num_threads`` set explicitly); cases are interleaved within a
round and a case's time is the median over rounds of the per-round medians. A ratio
("x clone", "mixkit/peer") is the median over rounds of the per-round ratios, so both sides
of a ratio are measured back to back under the same load.

What is timed (B = batch, N = bytes of the batch):
- ``clone``: ``x.clone()``; ``copy_``: ``out.copy_(x)`` into a preallocated tensor (the
  device-to-device copy the GB/s column is compared with on CUDA).
- ``draw``: ``module.draw(shape)`` alone (CPU parameter draw).
- ``apply``: the deterministic op on pre-drawn params, returning a new tensor
  (``augment.apply_images``; ``segcutmix`` adds ``apply_masks`` on (B, H, W) int64 maps;
  ``recursive`` is ``ops.resize_paste`` of a stored batch, RecursiveMix's primitive);
  ``out=`` into a preallocated tensor; ``inplace`` overwrites the batch.
- ``forward``: the module call ``module(x, labels)`` -> (images, soft targets): draw + finite
  check + apply + labels, the unit the peers are compared on (timm mutates its input in place,
  so it is also compared with mixkit's ``forward(..., inplace=True)``); ``forward unchecked``
  is the in-place call with ``check_finite=False`` (a full read of the batch less: in place
  the check is a pass of its own), since no peer checks its input for NaN/Inf.
GB/s counts 2N bytes (one read and one write of the batch) per call.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils import benchmark

from mixkit import ops
from mixkit.augment import (
    ClassMix,
    CutMix,
    Cutout,
    MixTransform,
    MixUp,
    ResizeMix,
    apply_images,
    apply_masks,
)
from mixkit.markdown import replace_section
from mixkit.ops import _fast

__all__ = [
    "SIZES",
    "OPS",
    "MODES",
    "Case",
    "build_cases",
    "measure",
    "render",
    "machine_line",
    "replace_section",
    "run",
]

SECTION = "## 1. Op speed (issue 6)"
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TRIM_THRESHOLD_": "1073741824",
    "MALLOC_TOP_PAD_": "268435456",
    "MALLOC_MMAP_MAX_": "0",
}


@dataclass(frozen=True)
class Size:
    label: str
    shape: tuple[int, int, int, int]
    dtype: torch.dtype


SIZES: dict[str, Size] = {
    s.label: s
    for s in (
        Size("128x3x32x32", (128, 3, 32, 32), torch.float32),
        Size("64x3x224x224", (64, 3, 224, 224), torch.float32),
        Size("256x3x32x32-uint8", (256, 3, 32, 32), torch.uint8),
    )
}
OPS = ("mixup", "cutmix", "resizemix", "cutout", "classmix", "segcutmix", "recursive")
MODES = ("batch", "elem")
PEER_OPS = ("mixup", "cutmix", "resizemix")  # the ops with a speed target
NUM_CLASSES = 10


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

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.size, self.op, self.mode, self.variant, self.impl)


def _module(op: str, mode: str, height: int, check_finite: bool = True) -> MixTransform:
    kw = {"mode": mode, "num_classes": NUM_CLASSES, "generator": 0, "check_finite": check_finite}
    if op == "mixup":
        return MixUp(1.0, **kw)
    if op in ("cutmix", "segcutmix", "recursive"):
        return CutMix(1.0, **kw)
    if op == "resizemix":
        return ResizeMix(**kw)
    if op == "cutout":
        return Cutout(length=max(1, height // 2), **kw)
    if op == "classmix":
        return ClassMix(**kw)
    raise ValueError(f"op must be one of {OPS}, got {op!r}")


def _inputs(size: Size, device: torch.device, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = size.shape
    x = torch.rand(size.shape, generator=g)
    if size.dtype == torch.uint8:
        x = (x * 255).round().to(torch.uint8)
    else:
        x = x.to(size.dtype)
    # Label maps with a few blobs of classes (ClassMix draws from the classes present).
    seg = torch.randint(0, NUM_CLASSES, (b, 1, max(1, h // 8), max(1, w // 8)), generator=g)
    seg = torch.nn.functional.interpolate(seg.float(), size=(h, w), mode="nearest")[:, 0].long()
    labels = torch.randint(0, NUM_CLASSES, (b,), generator=g)
    return {
        "x": x.to(device),
        "stored": x.flip(0).contiguous().to(device),
        "seg": seg.to(device),
        "labels": labels.to(device),
    }


def mixkit_cases(size: Size, device: torch.device, ops_: Iterable[str], seed: int) -> list[Case]:
    """clone / copy_ baselines and every mixkit op, mode and variant for one batch size."""
    t = _inputs(size, device, seed)
    x, seg, labels, stored = t["x"], t["seg"], t["labels"], t["stored"]
    h = size.shape[2]
    out = torch.empty_like(x)
    work = x.clone()  # mutated by the in-place variants
    floor = stored.clone()  # mutated by the in-place lerp floor
    cases = [
        Case(size.label, "clone", "-", "new", "torch", lambda: x.clone()),
        Case(size.label, "copy_", "-", "out=", "torch", lambda: out.copy_(x)),
    ]
    if x.is_floating_point():  # MixUp's memory-traffic floor: read two batches, write one
        cases += [
            Case(size.label, "lerp", "-", "new", "torch", lambda: torch.lerp(x, stored, 0.5)),
            Case(
                size.label,
                "lerp",
                "-",
                "out=",
                "torch",
                lambda: torch.lerp(x, stored, 0.5, out=out),
            ),
            Case(size.label, "lerp", "-", "inplace", "torch", lambda: floor.lerp_(stored, 0.5)),
        ]
    for op in ops_:
        for mode in MODES:
            m = _module(op, mode, h)
            ctx = {"label_maps": seg.cpu()} if op == "classmix" else {}
            params = m.draw(x.shape, **ctx)

            def add(variant: str, fn: Callable[[], object], op: str = op, mode: str = mode):
                cases.append(Case(size.label, op, mode, variant, "mixkit", fn))

            if op in ("mixup", "cutmix", "resizemix", "cutout", "classmix"):
                add("draw", lambda m=m, ctx=ctx: m.draw(x.shape, **ctx))
            if op == "segcutmix":
                add("apply", lambda p=params: (apply_images(p, x), apply_masks(p, seg)))
                continue
            if op == "recursive":
                boxes = params.boxes
                add("apply", lambda b=boxes: ops.resize_paste(x, stored, b))
                add("out=", lambda b=boxes: ops.resize_paste(x, stored, b, out=out))
                add("inplace", lambda b=boxes: ops.resize_paste(work, stored, b, inplace=True))
                continue
            add("apply", lambda p=params: apply_images(p, x))
            if op in PEER_OPS or op == "cutout":
                add("out=", lambda p=params: apply_images(p, x, out=out))
                add("inplace", lambda p=params: apply_images(p, work, inplace=True))
            if op in PEER_OPS:
                add("forward", lambda m=m: m(x, labels))
                add("forward inplace", lambda m=m: m(work, labels, inplace=True))
                # No peer checks for NaN/Inf: the like-for-like call skips the finite check.
                mu = _module(op, mode, h, check_finite=False)
                add("forward unchecked", lambda m=mu: m(work, labels, inplace=True))
    return cases


def peer_cases(size: Size, device: torch.device, seed: int) -> tuple[list[Case], dict[str, str]]:
    """timm / torchvision / kornia cases that run on this batch (failures are skipped)."""
    t = _inputs(size, device, seed)
    x, labels = t["x"], t["labels"]
    versions: dict[str, str] = {}
    built: list[tuple[str, str, str, Callable[[], object]]] = []
    try:
        import timm
        from timm.data import Mixup

        versions["timm"] = timm.__version__
        work_timm = x.clone()  # timm mixes in place
        for op, (ma, ca) in {"mixup": (1.0, 0.0), "cutmix": (0.0, 1.0)}.items():
            for mode in MODES:
                mix = Mixup(
                    mixup_alpha=ma,
                    cutmix_alpha=ca,
                    mode=mode,
                    label_smoothing=0.0,
                    num_classes=NUM_CLASSES,
                )
                built.append(("timm", op, mode, lambda mix=mix: mix(work_timm, labels)))
    except ImportError:
        pass
    try:
        import torchvision
        from torchvision.transforms import v2

        versions["torchvision"] = torchvision.__version__
        for op, cls in {"mixup": v2.MixUp, "cutmix": v2.CutMix}.items():
            tr = cls(alpha=1.0, num_classes=NUM_CLASSES)
            built.append(("torchvision", op, "batch", lambda tr=tr: tr(x, labels)))
    except ImportError:
        pass
    try:
        import kornia
        from kornia.augmentation import RandomCutMixV2, RandomMixUpV2

        versions["kornia"] = kornia.__version__
        for op, cls in {"mixup": RandomMixUpV2, "cutmix": RandomCutMixV2}.items():
            for mode in MODES:
                tr = cls(same_on_batch=mode == "batch", data_keys=["input", "class"])
                built.append(("kornia", op, mode, lambda tr=tr: tr(x, labels)))
    except ImportError:
        pass
    cases = []
    for impl, op, mode, fn in built:
        try:  # e.g. MixUp on uint8, kornia on uint8, timm with an odd batch
            fn()
        except Exception:  # noqa: BLE001 - a peer that cannot run this batch is skipped
            continue
        cases.append(Case(size.label, op, mode, "forward", impl, fn))
    return cases, versions


def build_cases(
    sizes: Iterable[str],
    device: torch.device,
    ops_: Iterable[str] = OPS,
    peers: bool = True,
    seed: int = 0,
) -> tuple[list[Case], dict[str, str]]:
    cases: list[Case] = []
    versions: dict[str, str] = {}
    ops_ = tuple(ops_)
    for label in sizes:
        if label not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}, got {label!r}")
        cases += mixkit_cases(SIZES[label], device, ops_, seed)
        if peers:
            pc, v = peer_cases(SIZES[label], device, seed)
            cases += pc
            versions.update(v)
    return cases, versions


TIMERS = ("wall", "cpu")


def measure(
    cases: list[Case],
    threads: int,
    rounds: int,
    min_run_time: float,
    log: Callable[[str], None] | None = None,
    timer: str = "wall",
) -> None:
    """Fill ``case.times`` with one median per round (cases interleaved within a round).

    ``timer="wall"`` (default) is ``torch.utils.benchmark``'s wall clock (CUDA-synchronised);
    ``"cpu"`` is the process CPU time (``time.process_time``: user + system, all threads),
    which ignores time spent preempted by other processes on a loaded machine (CPU only).
    """
    if timer not in TIMERS:
        raise ValueError(f"timer must be one of {TIMERS}, got {timer!r}")
    kw = {"timer": time.process_time} if timer == "cpu" else {}
    torch.set_num_threads(threads)
    for c in cases:  # warm-up: scratch buffers, lazy imports, allocator
        c.fn()
    for r in range(rounds):
        for c in cases:
            t = benchmark.Timer(stmt="fn()", globals={"fn": c.fn}, num_threads=threads, **kw)
            c.times.append(t.blocked_autorange(min_run_time=min_run_time).median)
        if log:
            log(f"round {r + 1}/{rounds} done")


def _median(v: list[float]) -> float:
    return statistics.median(v)


def _ratio(a: Case, b: Case) -> float:
    """Median over rounds of a/b."""
    return statistics.median(x / y for x, y in zip(a.times, b.times, strict=True))


def _us(s: float) -> str:
    us = s * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}"


def header(machine: str, command: str) -> list[str]:
    """The first lines of a benchmark section: the machine and the command that made it."""
    return [f"Machine: {machine}.", "", "Command:", "", "```", command, "```", ""]


def publish(text: str, path: str, section: str) -> None:
    """Print a benchmark section and, unless ``path`` is empty, write it into that file."""
    print(text)
    if path:
        replace_section(path, section, text)
        print(f"wrote {path}", file=sys.stderr)


def render(
    cases: list[Case], machine: str, command: str, device: torch.device, versions: dict[str, str]
) -> str:
    """Markdown: machine line, command, the op table and the peer table."""
    by = {c.key: c for c in cases}
    sizes = list(dict.fromkeys(c.size for c in cases))
    lines = [
        *header(machine, command),
        "The `MALLOC_*` variables (on the benchmark command only) keep glibc from trimming and "
        "unmapping freed memory between calls, which otherwise makes CPU timings noisy; "
        "`MALLOC_MMAP_MAX_=0` also serves blocks of 32 MiB or more (a 64x3x224x224 float32 "
        "batch is 38.5 MB) from the heap: glibc otherwise maps each one afresh and "
        "page-faults it on first touch, and whether it did depended on the process's earlier "
        "allocations (`clone()` of that batch 4.3-5.1 ms vs 33-35 ms on the machine named above). "
        "`--timer cpu` (process CPU time) is for a loaded shared machine; on a quiet machine "
        "use the default wall clock.",
        "",
        "Median µs of `torch.utils.benchmark` `blocked_autorange` (median over rounds); "
        "`× clone` is the median per-round ratio to `x.clone()` of the same batch; GB/s counts "
        "one read + one write of the batch. `apply` returns a new tensor, `out=` writes into a "
        'preallocated one, `inplace` overwrites the batch. Per-sample = `mode="elem"`. '
        "`lerp floor` is `torch.lerp` of the batch with a second batch (a scalar weight): the "
        "least memory traffic of any MixUp (two batches read, one written) with torch's plain "
        "stores. At 224x224 a box op in place touches only the box pixels. With the C kernels "
        "on (`mixkit.ops._native`), CutMix, nearest ResizeMix, Cutout, ClassMix masks, "
        "segcutmix's label maps, `recursive` (nearest) and MixUp (float32, float64, uint8) "
        "are one pass per sample in C; out of place they visit the samples backwards along "
        "the cycles of the pairing (a sample just read as its own is the next one's partner, "
        "read again from cache) and check float32 / float64 images for NaN/Inf in the same "
        "pass, and outputs of 16 MiB or more (the 224x224 float rows) are written with "
        "non-temporal stores; bilinear resizes run on the torch paths.",
        "",
        "| batch | op | mode | draw µs | apply µs | apply × clone | out= × clone "
        "| inplace × clone | apply GB/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        nbytes = SIZES[size].shape[0] * _numel(SIZES[size].shape[1:]) * _itemsize(size)
        clone = by[(size, "clone", "-", "new", "torch")]
        copy = by[(size, "copy_", "-", "out=", "torch")]
        lines.append(
            f"| {size} | clone | - | | {_us(_median(clone.times))} | 1.00 | "
            f"{_ratio(copy, clone):.2f} (copy_) | | {2 * nbytes / _median(clone.times) / 1e9:.1f} |"
        )
        lerp = {v: by.get((size, "lerp", "-", v, "torch")) for v in ("new", "out=", "inplace")}
        if all(lerp.values()):
            lines.append(
                f"| {size} | lerp floor | - | | {_us(_median(lerp['new'].times))} | "
                f"{_ratio(lerp['new'], clone):.2f} | {_ratio(lerp['out='], clone):.2f} | "
                f"{_ratio(lerp['inplace'], clone):.2f} | "
                f"{2 * nbytes / _median(lerp['new'].times) / 1e9:.1f} |"
            )
        for op in OPS:
            for mode in MODES:
                apply = by.get((size, op, mode, "apply", "mixkit"))
                if apply is None:
                    continue
                draw = by.get((size, op, mode, "draw", "mixkit"))
                o = by.get((size, op, mode, "out=", "mixkit"))
                ip = by.get((size, op, mode, "inplace", "mixkit"))
                lines.append(
                    f"| {size} | {op} | {mode} | {_us(_median(draw.times)) if draw else ''} | "
                    f"{_us(_median(apply.times))} | {_ratio(apply, clone):.2f} | "
                    f"{f'{_ratio(o, clone):.2f}' if o else ''} | "
                    f"{f'{_ratio(ip, clone):.2f}' if ip else ''} | "
                    f"{2 * nbytes / _median(apply.times) / 1e9:.1f} |"
                )
    peers = sorted({c.impl for c in cases} - {"mixkit", "torch"})
    if peers:
        lines += [
            "",
            "Side by side, whole call `module(images, labels)` -> (mixed images, soft targets) "
            "(draw + apply + labels). Per-sample rows compare with the peers' per-sample mode "
            'where they have one (timm `mode="elem"`, kornia default) and their batch mode '
            'otherwise (torchvision); batch rows with timm `mode="batch"`, torchvision, kornia '
            "`same_on_batch=True`. timm mixes its input in place, so mixkit is shown both "
            "returning a new tensor and with `inplace=True`; no peer checks its input for "
            "NaN/Inf, so the `unchecked` columns are the in-place call with `check_finite=False` "
            "(mixkit's default check reads the whole batch once more in place; out of place the "
            "C kernels check float32 / float64 images in their own pass). Ratio = mixkit time / "
            "fastest peer time (target ≤ 0.33, i.e. ≥ 3× faster). Versions: "
            + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
            + ".",
            "",
            "| batch | op | mode | "
            + " | ".join(f"{p} µs" for p in peers)
            + " | mixkit µs | mixkit inplace µs | unchecked µs | mixkit/fastest"
            " | inplace/fastest | unchecked/fastest |",
            "|---|---|---|" + "---:|" * (len(peers) + 6),
        ]
        for size in sizes:
            for op in PEER_OPS:
                for mode in MODES:
                    mk = by.get((size, op, mode, "forward", "mixkit"))
                    mki = by.get((size, op, mode, "forward inplace", "mixkit"))
                    mku = by.get((size, op, mode, "forward unchecked", "mixkit"))
                    if mk is None:
                        continue
                    cells, best = [], None
                    for p in peers:
                        pc = by.get((size, op, mode, "forward", p))
                        if pc is None and mode == "elem":  # no per-sample mode: batch mode
                            pc = by.get((size, op, "batch", "forward", p))
                            if pc is not None and p != "torchvision":
                                pc = None
                        if pc is None:
                            cells.append("n/a")
                            continue
                        cells.append(_us(_median(pc.times)))
                        if best is None or _median(pc.times) < _median(best.times):
                            best = pc
                    r1 = f"{_ratio(mk, best):.2f}" if best else "no peer"
                    r2 = f"{_ratio(mki, best):.2f}" if (best and mki) else ""
                    r3 = f"{_ratio(mku, best):.2f}" if (best and mku) else ""
                    lines.append(
                        f"| {size} | {op} | {mode} | "
                        + " | ".join(cells)
                        + f" | {_us(_median(mk.times))} | "
                        f"{_us(_median(mki.times)) if mki else ''} | "
                        f"{_us(_median(mku.times)) if mku else ''} | {r1} | {r2} | {r3} |"
                    )
    lines += ["", *targets_summary(cases)]
    if device.type == "cuda":
        lines += ["", "GB/s: compare each row with the `copy_` device-to-device copy (same batch)."]
    elif not torch.cuda.is_available():
        lines += [
            "",
            "CUDA: not measured (no GPU on this machine); `--device cuda` gives the same table "
            "with achieved GB/s next to a device-to-device `copy_`.",
        ]
    return "\n".join(lines) + "\n"


# Issue 6 targets: per-sample ops vs clone (CPU) and vs the fastest peer.
CLONE_TARGETS = {"128x3x32x32": 5.0, "64x3x224x224": 1.0}
PEER_TARGET = 1 / 3


def targets_summary(cases: list[Case]) -> list[str]:
    """One line per issue-6 target with the measured ratio and met / NOT met."""
    by = {c.key: c for c in cases}
    out = ["Targets (issue 6), read off the tables above:", ""]
    for size, limit in CLONE_TARGETS.items():
        clone = by.get((size, "clone", "-", "new", "torch"))
        if clone is None:
            continue
        for op in PEER_OPS:
            a = by.get((size, op, "elem", "apply", "mixkit"))
            if a is None:
                continue
            r = _ratio(a, clone)
            variants = {
                v: _ratio(by[(size, op, "elem", v, "mixkit")], clone)
                for v in ("out=", "inplace")
                if (size, op, "elem", v, "mixkit") in by
            }
            extra = ", ".join(f"{v} {x:.2f}" for v, x in variants.items())
            if r <= limit:
                verdict = "met"
            else:
                ok = [v for v, x in variants.items() if x <= limit]
                verdict = (
                    f"NOT met returning a new tensor; met with {' and '.join(ok)}"
                    if ok
                    else "NOT met"
                )
            out.append(
                f"- per-sample {op} apply at {size}: {r:.2f}x clone (target <= {limit:g}: "
                f"{verdict}; {extra})"
            )
    peers = {c.impl for c in cases} - {"mixkit", "torch"}
    for size in CLONE_TARGETS:
        for op in ("mixup", "cutmix"):
            mk = by.get((size, op, "elem", "forward", "mixkit"))
            if mk is None or not peers:
                continue
            cands = [by.get((size, op, "elem", "forward", p)) for p in peers - {"torchvision"}]
            cands.append(by.get((size, op, "batch", "forward", "torchvision")))
            cands = [c for c in cands if c is not None]
            if not cands:
                continue
            best = min(cands, key=lambda c: _median(c.times))
            r = _ratio(mk, best)
            mki = by.get((size, op, "elem", "forward inplace", "mixkit"))
            rin = _ratio(mki, best) if mki else None
            ri = f"; inplace {rin:.2f}" if rin is not None else ""
            mku = by.get((size, op, "elem", "forward unchecked", "mixkit"))
            runc = _ratio(mku, best) if mku else None
            ri += f"; inplace unchecked {runc:.2f}" if runc is not None else ""
            if r <= PEER_TARGET:
                ok = "met"
            elif rin is not None and rin <= PEER_TARGET:  # timm itself mixes in place
                ok = "NOT met returning a new tensor; met with inplace"
            elif runc is not None and runc <= PEER_TARGET:
                ok = "NOT met with the finite check; met in place with check_finite=False"
            else:
                ok = "NOT met"
            out.append(
                f"- per-sample {op} at {size} vs fastest peer ({best.impl} {best.mode}): "
                f"mixkit/peer {r:.2f}{ri} (target <= 0.33: {ok})"
            )
    return out


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _itemsize(size: str) -> int:
    return torch.empty((), dtype=SIZES[size].dtype).element_size()


def machine_line(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    model = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    kernels = "on" if _fast.NATIVE else "off (torch paths)"
    return (
        f"{os.cpu_count()}-core CPU ({model}), torch {torch.__version__}, "
        f"{threads} thread{'s' if threads != 1 else ''}, C kernels {kernels}"
    )


def command_line(prog: str, argv: list[str]) -> str:
    env = " ".join(f"{k}={os.environ[k]}" for k in MALLOC_ENV if k in os.environ)
    return " ".join(p for p in (env, prog, *argv) if p)


def run(
    sizes: Iterable[str] = tuple(SIZES),
    ops_: Iterable[str] = OPS,
    *,
    device: str = "cpu",
    threads: int = 1,
    rounds: int = 3,
    min_run_time: float = 0.2,
    peers: bool = True,
    write: str | None = None,
    command: str = "mixkit bench",
    seed: int = 0,
    timer: str = "wall",
    log: Callable[[str], None] | None = print,
) -> str:
    """Build, time and render; optionally write the section into ``write`` (BENCHMARKS.md)."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch.cuda.is_available() is False")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    unknown = set(ops_) - set(OPS)
    if unknown:
        raise ValueError(f"ops must be among {OPS}, got {sorted(unknown)}")
    torch.set_num_threads(threads)
    cases, versions = build_cases(sizes, dev, ops_, peers, seed)
    if log:
        log(f"{len(cases)} cases x {rounds} rounds on {dev}, {threads} thread(s)")
    if timer == "cpu" and dev.type != "cpu":
        raise ValueError("timer 'cpu' measures host CPU time: use the wall timer on CUDA")
    measure(cases, threads, rounds, min_run_time, log, timer)
    machine = machine_line(dev, threads) + ("" if timer == "wall" else ", process CPU time")
    text = render(cases, machine, command, dev, versions)
    if write:
        replace_section(write, SECTION, text)
    return text


def run_step_overhead(threads: int) -> int:
    """Run benchmarks/step_overhead.py (training-step overhead, section 2) if present."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "step_overhead.py"
    if not script.is_file():
        print(f"{script} not found: step-overhead benchmark skipped")
        return 0
    return subprocess.call([sys.executable, str(script), "--threads", str(threads)])
