"""The markdown of ``mixkit bench``: the op table (eager and compiled apply vs ``clone()``),
the compile times, the whole-call table vs the peers and the targets summary."""

from __future__ import annotations

import torch

from mixkit.bench.cases import CALL_OPS, MODES, OPS, SIZES, Case
from mixkit.bench.peers import PEERS, fastest_peer, peer_for
from mixkit.bench.targets import targets_summary
from mixkit.bench.timing import median, ratio

MALLOC_NOTE = (
    "The `MALLOC_*` variables (on the benchmark command only) keep glibc from trimming and "
    "unmapping freed memory between calls, which otherwise makes CPU timings noisy; "
    "`MALLOC_MMAP_MAX_=0` also serves blocks of 32 MiB or more (a 64x3x224x224 float32 "
    "batch is 38.5 MB) from the heap: glibc otherwise maps each one afresh and page-faults "
    "it on first touch. `--timer cpu` (process CPU time) is for a loaded shared machine; on "
    "a quiet machine use the default wall clock."
)
OP_NOTE = (
    "Median µs of `torch.utils.benchmark` `blocked_autorange` (median over rounds); `× clone` "
    "is the median per-round ratio to `x.clone()` of the same batch; GB/s counts one read + "
    "one write of the batch. `draw` is `module.draw(shape)` (CPU). `apply` is "
    "`augment.apply_images(params, x)` on pre-drawn params, returning a new tensor (the "
    "eager whole-batch kernel `mix_tensors`); `compiled` is the same call with "
    "`kernel=compiled_kernel`, the kernel `mixkit.compile(mixer)` installs "
    "(`torch.compile(dynamic=True, fullgraph=True)`, same bytes as eager), warmed up before "
    "the rounds; `out=` writes into a preallocated tensor and `inplace` overwrites the batch "
    '(both eager). Per-sample = `mode="elem"`. `segcutmix` is CutMix on the images and on '
    "(B, H, W) int64 label maps; `recursive` is RecursiveMix's apply with a stored batch as "
    "its history; `multibox` is `MultiBoxCutMix` with 3 boxes; `classmix` draws from label "
    "maps with blobs of 10 classes. `lerp floor` is `torch.lerp` of the batch with a second "
    "batch (a scalar weight): the least memory traffic of any MixUp (two batches read, one "
    "written). At 224x224 a box op in place touches only the box pixels."
)
COMPILE_NOTE = (
    "Compile: seconds of the first call of every compiled case (apply and whole call, both "
    "modes), timed once before the rounds. A graph is compiled per combination of kinds "
    "present, dtype, fill and resize mode, with dynamic shapes, so a later batch size "
    "reuses the float32 graphs of an earlier one; the first compiled case of the run also "
    "pays inductor's start-up."
)


def _us(s: float) -> str:
    us = s * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}"


def _gbs(nbytes: int, case: Case) -> str:
    return f"{2 * nbytes / median(case) / 1e9:.1f}"


def header(machine: str, command: str) -> list[str]:
    """The first lines of a benchmark section: the machine and the command that made it."""
    return [f"Machine: {machine}.", "", "Command:", "", "```", command, "```", ""]


def _op_rows(by: dict, size: str) -> list[str]:
    nbytes = SIZES[size].nbytes
    clone = by[(size, "clone", "-", "new", "torch")]
    copy = by[(size, "copy_", "-", "out=", "torch")]
    rows = [
        f"| {size} | clone | - | | {_us(median(clone))} | 1.00 | | | "
        f"{ratio(copy, clone):.2f} (copy_) | | {_gbs(nbytes, clone)} | |"
    ]
    lerp = {v: by.get((size, "lerp", "-", v, "torch")) for v in ("new", "out=", "inplace")}
    if all(lerp.values()):
        rows.append(
            f"| {size} | lerp floor | - | | {_us(median(lerp['new']))} | "
            f"{ratio(lerp['new'], clone):.2f} | | | {ratio(lerp['out='], clone):.2f} | "
            f"{ratio(lerp['inplace'], clone):.2f} | {_gbs(nbytes, lerp['new'])} | |"
        )
    for op in OPS:
        for mode in MODES:
            v = {k: by.get((size, op, mode, k, "mixkit")) for k in ("draw", "out=", "inplace")}
            apply = by.get((size, op, mode, "apply", "mixkit"))
            comp = by.get((size, op, mode, "compiled", "mixkit"))
            if apply is None:
                continue

            def rel(c: Case | None) -> str:
                return f"{ratio(c, clone):.2f}" if c else ""

            rows.append(
                f"| {size} | {op} | {mode} | {_us(median(v['draw'])) if v['draw'] else ''} | "
                f"{_us(median(apply))} | {rel(apply)} | "
                f"{_us(median(comp)) if comp else ''} | {rel(comp)} | "
                f"{rel(v['out='])} | {rel(v['inplace'])} | {_gbs(nbytes, apply)} | "
                f"{_gbs(nbytes, comp) if comp else ''} |"
            )
    return rows


def _compile_rows(cases: list[Case], sizes: list[str]) -> list[str]:
    first: dict[tuple[str, str], float] = {}
    for c in cases:
        if c.compiled and c.first_call is not None:
            first[(c.op, c.size)] = first.get((c.op, c.size), 0.0) + c.first_call
    if not first:
        return []
    rows = [
        COMPILE_NOTE,
        "",
        "| op | " + " | ".join(f"{s} s" for s in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for op in OPS:
        if any((op, s) in first for s in sizes):
            cells = [f"{first[(op, s)]:.2f}" if (op, s) in first else "" for s in sizes]
            rows.append(f"| {op} | " + " | ".join(cells) + " |")
    rows += ["", f"Total: {sum(first.values()):.1f} s of first calls.", ""]
    return rows


def _call_rows(by: dict, sizes: list[str], peers: list[str]) -> list[str]:
    rows = []
    for size in sizes:
        for op in CALL_OPS:
            for mode in MODES:
                mk = by.get((size, op, mode, "call", "mixkit"))
                mkc = by.get((size, op, mode, "call compiled", "mixkit"))
                if mk is None:
                    continue
                cells = []
                for p in peers:
                    pc = peer_for(by, size, op, mode, p)
                    cells.append(_us(median(pc)) if pc else "n/a")
                best = fastest_peer(by, size, op, mode)
                r1 = f"{ratio(mk, best):.2f}" if best else "no peer"
                r2 = f"{ratio(mkc, best):.2f}" if best and mkc else ""
                rows.append(
                    f"| {size} | {op} | {mode} | "
                    + "".join(f"{c} | " for c in cells)
                    + f"{_us(median(mk))} | {_us(median(mkc)) if mkc else ''} | {r1} | {r2} |"
                )
    return rows


def _call_section(by: dict, sizes: list[str], versions: dict[str, str]) -> list[str]:
    peers = [p for p in PEERS if p in versions]
    if not any(k[3] == "call" and k[4] == "mixkit" for k in by):
        return []
    ran = ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "none (--no-peers)"
    return [
        "Side by side, the whole call `module(images, labels)` -> (mixed images, soft targets) "
        "with (B,) class ids: draw + finite check + apply + labels; mixkit with its defaults "
        "(`check_finite=True`: one extra read of a float batch on the CPU; no peer checks its "
        "input), eager and after `mixkit.compile(module)`. Per-sample rows compare with the "
        'peers\' per-sample mode where they have one (timm `mode="elem"`, kornia default) and '
        'their batch mode otherwise (torchvision); batch rows with timm `mode="batch"`, '
        "torchvision, kornia `same_on_batch=True`. timm mixes its input in place. Ratio = "
        "mixkit time / fastest peer time (median of per-round ratios). Peers: " + ran + ".",
        "",
        "| batch | op | mode | "
        + "".join(f"{p} µs | " for p in peers)
        + "eager µs | compiled µs | eager / fastest | compiled / fastest |",
        "|---|---|---|" + "---:|" * (len(peers) + 4),
        *_call_rows(by, sizes, peers),
        "",
    ]


def render(
    cases: list[Case], machine: str, command: str, device: torch.device, versions: dict[str, str]
) -> str:
    """Markdown: machine line, command, the op table, compile times, the whole-call table
    and the targets summary."""
    by = {c.key: c for c in cases}
    sizes = list(dict.fromkeys(c.size for c in cases))
    lines = [
        *header(machine, command),
        MALLOC_NOTE,
        "",
        OP_NOTE,
        "",
        "| batch | op | mode | draw µs | apply µs | apply × clone | compiled µs "
        "| compiled × clone | out= × clone | inplace × clone | apply GB/s | compiled GB/s |",
        "|---|---|---|" + "---:|" * 9,
    ]
    for size in sizes:
        lines += _op_rows(by, size)
    lines += ["", *_compile_rows(cases, sizes), *_call_section(by, sizes, versions)]
    lines += targets_summary(cases)
    if device.type == "cuda":
        lines += ["", "GB/s: compare each row with the `copy_` device-to-device copy (same batch)."]
    elif not torch.cuda.is_available():
        lines += [
            "",
            "CUDA: not measured (no GPU on this machine); `--device cuda` gives the same tables "
            "with achieved GB/s next to a device-to-device `copy_`.",
        ]
    return "\n".join(lines) + "\n"
