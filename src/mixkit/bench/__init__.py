"""Op-speed benchmark (``mixkit bench``): every mixing op, eager and compiled
(``mixkit.compile``), against ``clone()`` of the same batch and, when they import, the whole
call against timm ``Mixup``, torchvision v2 ``CutMix`` / ``MixUp`` and kornia
``RandomCutMixV2`` / ``RandomMixUpV2``, all measured in one interleaved run with
``torch.utils.benchmark``.

Modules: :mod:`~mixkit.bench.cases` (what is timed), :mod:`~mixkit.bench.peers`,
:mod:`~mixkit.bench.timing` (the protocol), :mod:`~mixkit.bench.render` (the markdown) and
:mod:`~mixkit.bench.targets` (the targets summary).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from mixkit.bench.cases import CALL_OPS, MODES, OPS, SIZES, Case, mixkit_cases
from mixkit.bench.peers import peer_cases
from mixkit.bench.render import header, render
from mixkit.bench.targets import TARGETS, targets_summary
from mixkit.bench.timing import TIMERS, measure
from mixkit.experiments.markdown import replace_section

SECTION = "## 1. Op speed"
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TRIM_THRESHOLD_": "1073741824",
    "MALLOC_TOP_PAD_": "268435456",
    "MALLOC_MMAP_MAX_": "0",
}


def build_cases(
    sizes: Iterable[str],
    device: torch.device,
    ops_: Iterable[str] = OPS,
    peers: bool = True,
    seed: int = 0,
) -> tuple[list[Case], dict[str, str]]:
    """Every case of the run (mixkit, then the peers that import), and the peers' versions."""
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


def publish(text: str, path: str, section: str) -> None:
    """Print a benchmark section and, unless ``path`` is empty, write it into that file."""
    print(text)
    if path:
        replace_section(path, section, text)
        print(f"wrote {path}", file=sys.stderr)


def machine_line(device: torch.device, threads: int) -> str:
    """The hardware, torch version and thread count a table was measured with."""
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
    return (
        f"{os.cpu_count()}-core CPU ({model}), torch {torch.__version__}, "
        f"{threads} thread{'s' if threads != 1 else ''}"
    )


def command_line(prog: str, argv: list[str]) -> str:
    """``prog argv`` prefixed with the ``MALLOC_*`` settings of this process, if set."""
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
    if timer not in TIMERS:
        raise ValueError(f"timer must be one of {TIMERS}, got {timer!r}")
    if timer == "cpu" and dev.type != "cpu":
        raise ValueError("timer 'cpu' measures host CPU time: use the wall timer on CUDA")
    unknown = set(ops_) - set(OPS)
    if unknown:
        raise ValueError(f"ops must be among {OPS}, got {sorted(unknown)}")
    torch.set_num_threads(threads)  # before anything compiles: the kernels use this count
    cases, versions = build_cases(sizes, dev, ops_, peers, seed)
    if log:
        log(f"{len(cases)} cases x {rounds} rounds on {dev}, {threads} thread(s)")
    measure(cases, threads, rounds, min_run_time, log, timer, dev)
    machine = machine_line(dev, threads) + ("" if timer == "wall" else ", process CPU time")
    text = render(cases, machine, command, dev, versions)
    if write:
        replace_section(write, SECTION, text)
    return text


def run_step_overhead(threads: int) -> int:
    """Run benchmarks/step_overhead.py (training-step overhead, section 2) if present."""
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "step_overhead.py"
    if not script.is_file():
        print(f"{script} not found: step-overhead benchmark skipped")
        return 0
    return subprocess.call([sys.executable, str(script), "--threads", str(threads)])
