"""Training-step overhead of mixing, and the RecursiveMix step budget.

Times one SGD training step (forward, soft-target CE, backward, optimiser step) of the
``smallcnn`` at batch 128 on 1x28x28 and 3x32x32 inputs with ``torch.utils.benchmark``:

- plain: no mixing;
- CutMix: ``mixkit.augment.CutMix`` + the same step;
- RecursiveMix: ``mixkit.methods.recursivemix.RecursiveMixStep`` (resize-paste of the
  previous batch, 1x1 ROI-Align + ROI head + consistency loss), in steady state (history
  always present);
- mixing only: the mixer call alone (images + labels), as a fraction of the plain step.

Both the per-batch box (paper / official code) and the per-sample variant are measured. To
be robust to other load on a shared machine, the variants are interleaved over ``--rounds``
rounds and the median over rounds is reported (the RM/CutMix ratio is the median of the
per-round ratios). Writes the table to BENCHMARKS.md section "## 2. Training-step overhead"
unless ``--benchmarks ''``.

    OMP_NUM_THREADS=1 python benchmarks/step_overhead.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch.utils import benchmark

from mixkit import bench, losses, models
from mixkit.augment import CutMix
from mixkit.methods.recursivemix import RecursiveMix, RecursiveMixStep
from mixkit.train import build_optimizer

SECTION = "## 2. Training-step overhead"


def _shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must be CxHxW, got {text!r}") from None
    return c, h, w


def build_variants(shape: tuple[int, int, int], batch: int, per_sample: bool, seed: int = 0):
    """name -> zero-argument callable running one step (or one mixing call)."""
    c, h, w = shape
    torch.manual_seed(seed)
    model = models.build_model("smallcnn", 10, c)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, c, h, w, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    mode = "elem" if per_sample else "batch"
    cutmix = CutMix(alpha=1.0, mode=mode, num_classes=10, generator=1)
    rm = RecursiveMixStep(
        RecursiveMix(0.5, per_sample=per_sample, num_classes=10, generator=1),
        model.feature_dim,
        omega=0.1,
    )
    opt_plain = build_optimizer(model, 0.01)
    opt_rm = build_optimizer(torch.nn.ModuleList([model, rm]), 0.01)
    model.train()

    def update(opt, loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def plain():
        update(opt_plain, losses.soft_target_cross_entropy(model(x), y))

    def cutmix_step():
        xm, t = cutmix(x, y)
        update(opt_plain, losses.soft_target_cross_entropy(model(xm), t))

    def rm_step():
        update(opt_rm, rm(model, x, y).loss)

    def cutmix_only():
        cutmix(x, y)

    def rm_only():
        rm.mixer(x, y)

    rm_step()  # fill the history: every timed RM call mixes (steady state)
    return {
        "plain": plain,
        "cutmix": cutmix_step,
        "recursivemix": rm_step,
        "cutmix_mix_only": cutmix_only,
        "recursivemix_mix_only": rm_only,
    }


def measure(fns, threads: int, rounds: int, min_run_time: float) -> dict[str, list[float]]:
    """Per-round median seconds of each callable (variants interleaved within a round)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        for _ in range(3):
            fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
            times[name].append(t.blocked_autorange(min_run_time=min_run_time).median)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (set explicitly)")
    p.add_argument("--batch", type=int, default=128, help="batch size (128)")
    p.add_argument(
        "--shapes",
        nargs="+",
        type=_shape,
        default=[(1, 28, 28), (3, 32, 32)],
        help="input shapes CxHxW (1x28x28 3x32x32)",
    )
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median; 5)")
    p.add_argument("--min-run-time", type=float, default=1.0, help="seconds per measurement")
    p.add_argument(
        "--benchmarks",
        default="BENCHMARKS.md",
        help="markdown file to write section 2 into; '' to skip",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    start = time.time()
    rows = []
    ratios = {}
    for shape in args.shapes:
        for per_sample in (False, True):
            fns = build_variants(shape, args.batch, per_sample)
            t = measure(fns, args.threads, args.rounds, args.min_run_time)
            med = {k: statistics.median(v) for k, v in t.items()}
            ratio = statistics.median(
                r / c for r, c in zip(t["recursivemix"], t["cutmix"], strict=True)
            )
            label = "x".join(map(str, shape)) + (
                ", per-sample box" if per_sample else ", batch box"
            )
            ratios[label] = ratio
            for name in ("plain", "cutmix", "recursivemix"):
                only = med.get(f"{name}_mix_only")
                rel = med[name] / med["plain"]
                rows.append(
                    f"| {label} | {name} | {1e3 * med[name]:.2f} | {rel:.3f} | "
                    + (
                        f"{1e3 * only:.2f} | {100 * only / med['plain']:.1f}% |"
                        if only is not None
                        else "– | – |"
                    )
                )
            rows.append(f"| {label} | **RM step / CutMix step** | | **{ratio:.3f}** | | |")
            print(rows[-4:], flush=True)
    load_after = os.getloadavg()[0]
    argv = ["--threads", str(args.threads), "--batch", str(args.batch), "--shapes"]
    argv += ["x".join(map(str, shape)) for shape in args.shapes]
    argv += ["--rounds", str(args.rounds), "--min-run-time", str(args.min_run_time)]
    prog = f"OMP_NUM_THREADS={args.threads} python benchmarks/step_overhead.py"
    cmd = bench.command_line(prog, argv)  # MALLOC_* settings included when set
    body = "\n".join(
        [
            f"Machine: {os.cpu_count()}-core CPU, torch {torch.__version__}, "
            f"torch.set_num_threads({args.threads}); 1-min load average "
            f"{load_before:.2f} before / {load_after:.2f} after (shared machine); "
            f"{(time.time() - start) / 60:.1f} min.",
            "",
            "```bash",
            cmd,
            "```",
            "",
            f"One SGD step of `smallcnn` (forward, soft-target CE, backward, step) at batch "
            f"{args.batch}; `torch.utils.benchmark` median, median over {args.rounds} interleaved "
            "rounds. CutMix α=1; RecursiveMix α=0.5, ω=0.1, nearest resize, steady state "
            '(history present, ROI head + consistency loss every step). "mixing only" is '
            "the mixer call alone (images + labels).",
            "",
            "| input | step | time (ms) | × plain step | mixing only (ms) | mixing / plain step |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "RecursiveMix budget: RecursiveMix step ≤ 1.10 × CutMix step — "
            + "; ".join(
                f"{k}: {v:.3f} ({'met' if v <= 1.10 else 'NOT met'})" for k, v in ratios.items()
            )
            + ".",
            "",
        ]
    )
    bench.publish(body, args.benchmarks, SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
