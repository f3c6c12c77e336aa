"""``mixkit bench``: op-speed tables -- every op, eager and compiled, vs ``clone()`` and the
whole call vs timm / torchvision / kornia when they import. See ``mixkit.bench``.

Stable CPU numbers: run with glibc's allocator trimming off (on this command only)::

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \\
    MALLOC_TOP_PAD_=268435456 MALLOC_MMAP_MAX_=0 mixkit bench --threads 1 --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse

from mixkit import bench

# --sizes / --ops: flag name -> (its choices, all of them the default; what a value names).
_LISTS = {"sizes": (bench.SIZES, "batches"), "ops": (bench.OPS, "ops")}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="op-speed benchmark, eager and compiled (vs clone and timm/torchvision/kornia)",
    )
    for name, (values, what) in _LISTS.items():
        p.add_argument(
            f"--{name}",
            nargs="+",
            default=list(values),
            choices=list(values),
            help=f"{what} to time; default all",
        )
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads, set explicitly; default 1"
    )
    p.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="cpu or cuda (GB/s next to a device-to-device copy_); default cpu",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds, the median is reported; default 3",
    )
    p.add_argument(
        "--min-time",
        type=float,
        default=0.2,
        help="seconds per measurement (blocked_autorange); default 0.2",
    )
    p.add_argument(
        "--no-peers", dest="peers", action="store_false", help="skip timm, torchvision, kornia"
    )
    p.add_argument("--write", metavar="MD", default=None, help="write section 1 into MD")
    p.add_argument("--step", action="store_true", help="also run benchmarks/step_overhead.py")
    p.add_argument(
        "--timer",
        default="wall",
        choices=bench.TIMERS,
        help="wall clock or process CPU time (for a loaded shared machine); default wall",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the input batches; default 0")
    p.set_defaults(func=_cmd_bench)


def command(args: argparse.Namespace) -> str:
    """The canonical command line that reproduces this run (MALLOC_* vars included if set)."""
    argv = ["bench", "--threads", str(args.threads), "--rounds", str(args.rounds)]
    argv += ["--min-time", str(args.min_time)]
    for name, (values, _) in _LISTS.items():
        if getattr(args, name) != list(values):
            argv += [f"--{name}", *getattr(args, name)]
    if args.device != "cpu":
        argv += ["--device", args.device]
    if args.timer != "wall":
        argv += ["--timer", args.timer]
    if not args.peers:
        argv.append("--no-peers")
    if args.seed != 0:
        argv += ["--seed", str(args.seed)]
    if args.write:
        argv += ["--write", args.write]
    return bench.command_line("mixkit", argv)


def _cmd_bench(args: argparse.Namespace) -> int:
    text = bench.run(
        args.sizes,
        args.ops,
        device=args.device,
        threads=args.threads,
        rounds=args.rounds,
        min_run_time=args.min_time,
        peers=args.peers,
        write=args.write,
        command=command(args),
        seed=args.seed,
        timer=args.timer,
    )
    print(text)
    if args.write:
        print(f"wrote {bench.SECTION!r} in {args.write}")
    if args.step:
        return bench.run_step_overhead(args.threads)
    return 0
