"""How often a finished 2-rank ``mixkit distill`` run still fails at process exit.

Each round runs the distillation of ``tests/test_distributed.py::
test_torchrun_distill_ranks_identical`` (tinycnn teacher with seeded random weights, 256
digits, 2 epochs, CutMixPick) under ``torch.distributed.run --nproc_per_node 2`` on the CPU
and counts the rounds whose exit code is not 0; the log of each failed round is kept. Run two
copies at once to load a 2-core machine the way the test suite does.

    python benchmarks/torchrun_exit.py --rounds 40 --work /tmp/torchrun_exit
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from mixkit import models
from mixkit.train import atomic_save


def _teacher(folder: Path) -> None:
    torch.manual_seed(123)
    teacher = models.build_model("tinycnn", 10, 1)
    atomic_save({"model": teacher.state_dict()}, folder / "checkpoints" / "last.pt")
    cfg = {"model": "tinycnn", "dataset": "digits", "seed": 0}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="2-rank runs to make")
    parser.add_argument("--work", default="/tmp/torchrun_exit", help="folder for runs and logs")
    args = parser.parse_args()
    work = Path(args.work)
    _teacher(work / "teacher")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    failed = 0
    for k in range(args.rounds):
        out = work / f"run{k}"
        cmd = [
            *launcher, "--nproc_per_node", "2", "-m", "mixkit", "distill",
            "--teacher", str(work / "teacher"), "--student", "tinycnn", "--da", "cutmix_pick",
            "--train-subset", "256", "--batch-size", "64", "--epochs", "2",
            "--checkpoint-every", "3", "--no-progress", "--overwrite", "--out", str(out),
        ]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            failed += 1
            (work / f"failed{k}.log").write_text(proc.stdout + proc.stderr)
        print(f"round {k + 1}/{args.rounds}: exit {proc.returncode}", flush=True)
    print(f"torch {torch.__version__}: {failed} of {args.rounds} runs failed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
