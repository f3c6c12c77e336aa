"""The timing protocol of ``mixkit bench`` (robust to a loaded machine).

Every case is called a few times first (the compiled cases compile on their first call,
timed once and reported apart). Then every case is measured once per round with
``torch.utils.benchmark.Timer.blocked_autorange`` (``num_threads`` set explicitly); the
cases are interleaved within a round, and a case's time is the median over rounds of the
per-round medians. A ratio is the median over rounds of the per-round ratios, so both sides
of a ratio are measured back to back under the same load.
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable

import torch
from torch.utils import benchmark

from mixkit.bench.cases import Case

TIMERS = ("wall", "cpu")
WARMUP_CALLS = 3


def _cuda_wall() -> float:
    """Wall clock after ``torch.cuda.synchronize()``: a call's queued kernels are counted."""
    torch.cuda.synchronize()
    return timeit.default_timer()


def _clock(timer: str, device: torch.device) -> Callable[[], float]:
    if timer not in TIMERS:
        raise ValueError(f"timer must be one of {TIMERS}, got {timer!r}")
    if timer == "cpu":
        if device.type != "cpu":
            raise ValueError("timer 'cpu' measures host CPU time: use the wall timer on CUDA")
        return time.process_time
    return _cuda_wall if device.type == "cuda" else timeit.default_timer


def warm_up(cases: list[Case], device: torch.device) -> None:
    """Call every case ``WARMUP_CALLS`` times (scratch buffers, lazy imports, allocator,
    compilation); the first call's seconds go to ``case.first_call``."""
    clock = _cuda_wall if device.type == "cuda" else time.perf_counter
    for c in cases:
        start = clock()
        c.fn()
        c.first_call = clock() - start
        for _ in range(WARMUP_CALLS - 1):
            c.fn()


def measure(
    cases: list[Case],
    threads: int,
    rounds: int,
    min_run_time: float,
    log: Callable[[str], None] | None = None,
    timer: str = "wall",
    device: torch.device | str = "cpu",
) -> None:
    """Warm up, then fill ``case.times`` with one median per round (cases interleaved).

    ``timer="wall"`` (default) is the wall clock, after ``torch.cuda.synchronize()`` on
    CUDA; ``"cpu"`` is the process CPU time (``time.process_time``: user + system, all
    threads), which ignores time spent preempted by other processes (CPU only).
    """
    device = torch.device(device)
    clock = _clock(timer, device)
    torch.set_num_threads(threads)
    warm_up(cases, device)
    if log:
        log(
            f"warm-up done: {sum(c.first_call or 0.0 for c in cases if c.compiled):.1f} s "
            "in first calls of compiled cases"
        )
    for r in range(rounds):
        for c in cases:
            t = benchmark.Timer(stmt="fn()", globals={"fn": c.fn}, num_threads=threads, timer=clock)
            c.times.append(t.blocked_autorange(min_run_time=min_run_time).median)
        if log:
            log(f"round {r + 1}/{rounds} done")


def median(case: Case) -> float:
    """The case's time: median over rounds (seconds)."""
    return statistics.median(case.times)


def ratio(a: Case, b: Case) -> float:
    """Median over rounds of a's time / b's time."""
    return statistics.median(x / y for x, y in zip(a.times, b.times, strict=True))
