"""The least a whole mixer call can cost (issue 6): its C kernels plus its generator calls.

Per-sample MixUp and CutMix, ``module(images, labels)`` with (B,) class ids, next to
torchvision v2 (the fastest peer for these rows in BENCHMARKS.md section 1), timed in one
interleaved run (``torch.utils.benchmark``, median over rounds):

- ``call``: mixkit's whole call (draw, apply with the finite check, labels);
- ``kernels``: the output allocation and the two C calls alone (images with the fused
  finite check, labels), through ``mixkit.ops._fast`` and ``augment.apply.mix_class_ids``;
- ``generator``: the torch random calls of one draw, recorded once and replayed with the
  same arguments and generator (the replay is checked to leave the generator where a draw
  leaves it, so no call is missed);
- ``floor`` = kernels + generator: the call with no other Python or torch work.

``floor / torchvision`` above 0.33 means no implementation drawing from a
``torch.Generator`` on this machine can be 3x faster than torchvision for that row.
Writes BENCHMARKS.md section "## 1c. ..." unless ``--benchmarks ''``. Needs torchvision
(the ``peers`` extra, in the benchmark venv)::

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \\
    MALLOC_TOP_PAD_=268435456 MALLOC_MMAP_MAX_=0 \\
    python benchmarks/call_floor.py --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Callable, Iterator

import torch

from mixkit import bench
from mixkit.augment.apply import mix_class_ids
from mixkit.ops import _fast

SECTION = "## 1c. Floor of a whole call (issue 6)"
SIZES = ("128x3x32x32", "64x3x224x224")
OPS = ("mixup", "cutmix")
RANDOM_FNS = ("randperm", "rand", "randint", "_standard_gamma")


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[Callable, tuple, dict]]]:
    """Record every call of torch's random functions made inside the block."""
    calls: list[tuple[Callable, tuple, dict]] = []
    saved = {name: getattr(torch, name) for name in RANDOM_FNS}

    def recorder(fn: Callable) -> Callable:
        def call(*args, **kwargs):
            calls.append((fn, args, kwargs))
            return fn(*args, **kwargs)

        return call

    for name, fn in saved.items():
        setattr(torch, name, recorder(fn))
    try:
        yield calls
    finally:
        for name, fn in saved.items():
            setattr(torch, name, fn)


def generator_calls(module, shape: torch.Size) -> Callable[[], None]:
    """A callable replaying the random calls of one ``module.draw(shape)``."""
    gen = module.generator
    start = gen.get_state()
    with recording() as calls:
        module.draw(shape)
    after_draw = gen.get_state()
    if not calls:
        raise RuntimeError("the draw made no call to torch's random functions")

    def replay() -> None:
        for fn, args, kwargs in calls:
            fn(*args, **kwargs)

    gen.set_state(start)
    replay()
    if not torch.equal(gen.get_state(), after_draw):
        raise RuntimeError("the replayed calls do not advance the generator as the draw does")
    return replay


def kernels(op: str, module, x: torch.Tensor, labels: torch.Tensor) -> Callable[[], object]:
    """The allocation and C calls of one apply with the params of one draw."""
    params = module.draw(x.shape)
    if op == "mixup":
        weight = 1 - params.lam  # the blend weight of the partner, float32 like the images

        def images() -> torch.Tensor:
            out = torch.empty_like(x)
            _fast.native_blend(x, out, weight, params.perm, True)
            return out
    else:

        def images() -> torch.Tensor:
            out = torch.empty_like(x)
            return _fast.native_box("paste", x, out, params.boxes, params.perm, check=True)

    def both() -> tuple[torch.Tensor, torch.Tensor | None]:
        return images(), mix_class_ids(params, labels, bench.NUM_CLASSES)

    if not _fast.native_ok(x, torch.empty_like(x)) or both()[1] is None:
        raise RuntimeError("the C kernels are off (no compiler or MIXKIT_NATIVE=0)")
    return both


def cases(size: str) -> list[bench.Case]:
    from torchvision.transforms import v2

    t = bench._inputs(bench.SIZES[size], torch.device("cpu"), 0)
    x, labels = t["x"], t["labels"]
    out = []
    for op in OPS:
        peer = {"mixup": v2.MixUp, "cutmix": v2.CutMix}[op](
            alpha=1.0, num_classes=bench.NUM_CLASSES
        )
        module = bench._module(op, "elem", x.shape[2])
        fns = {
            "torchvision": lambda peer=peer: peer(x, labels),
            "call": lambda module=module: module(x, labels),
            "kernels": kernels(op, module, x, labels),
            "generator": generator_calls(module, x.shape),
        }
        out += [bench.Case(size, op, "elem", name, "", fn) for name, fn in fns.items()]
    return out


def render(all_cases: list[bench.Case], machine: str, command: str) -> str:
    rows = []
    summary = []
    by_key = {(c.size, c.op, c.variant): c for c in all_cases}
    for size in dict.fromkeys(c.size for c in all_cases):
        for op in OPS:
            tv, call, kern, gen = (
                by_key[size, op, v] for v in ("torchvision", "call", "kernels", "generator")
            )
            floor = [k + g for k, g in zip(kern.times, gen.times, strict=True)]
            call_ratio = bench._ratio(call, tv)
            floor_ratio = statistics.median(f / p for f, p in zip(floor, tv.times, strict=True))
            med = [statistics.median(c.times) for c in (tv, call, kern, gen)]
            cells = [bench._us(s) for s in (*med, statistics.median(floor))]
            rows.append(
                f"| {size} | {op} | {' | '.join(cells)} | {call_ratio:.2f} | {floor_ratio:.2f} |"
            )
            reach = "within reach" if floor_ratio <= 0.33 else "out of reach"
            summary.append(
                f"- {op} at {size}: floor / torchvision {floor_ratio:.2f}, call / torchvision "
                f"{call_ratio:.2f}: 3x faster than torchvision is {reach} of a call with no "
                "other overhead"
            )
    return "\n".join(
        [
            *bench.header(machine, command),
            'Per-sample (`mode="elem"`) `module(images, labels)` with (B,) class ids, '
            "median µs over the rounds. `kernels`: the output allocation and the two C calls "
            "of the apply (images with the fused NaN/Inf check, labels); `generator`: the "
            "torch random calls of one draw, recorded and replayed; `floor` = kernels + "
            "generator, the call without any other Python or torch work. Ratios are medians "
            "of per-round ratios to torchvision v2 (batch mode, its only mode; the fastest "
            "peer for these rows in section 1). Target of issue 6: ≤ 0.33.",
            "",
            "| batch | op | torchvision µs | call µs | kernels µs | generator µs | floor µs "
            "| call / torchvision | floor / torchvision |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            *summary,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (set explicitly)")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=SIZES)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.2, help="seconds per measurement")
    p.add_argument("--benchmarks", default="BENCHMARKS.md", help="'' to skip writing")
    args = p.parse_args(argv)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        print("torchvision is not installed (the peers extra): nothing to compare", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    all_cases = [c for size in args.sizes for c in cases(size)]
    bench.measure(all_cases, args.threads, args.rounds, args.min_time, print)
    flags = ["--threads", str(args.threads), "--sizes", *args.sizes]
    flags += ["--rounds", str(args.rounds), "--min-time", str(args.min_time)]
    command = bench.command_line("python benchmarks/call_floor.py", flags)
    text = render(all_cases, bench.machine_line(torch.device("cpu"), args.threads), command)
    bench.publish(text, args.benchmarks, SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
