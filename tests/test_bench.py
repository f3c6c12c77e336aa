"""``mixkit bench``: a short run prints the tables and every line of the targets summary."""

from __future__ import annotations

import pytest
import torch

from mixkit import bench
from mixkit.cli import main


def test_bench_quick_run_prints_targets(capsys):
    argv = ["bench", "--sizes", "128x3x32x32", "--ops", "mixup", "cutmix"]
    argv += ["--rounds", "1", "--min-time", "0.01", "--no-peers"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| 128x3x32x32 | clone | - |" in out
    for op in ("mixup", "cutmix"):
        for mode in bench.MODES:
            assert f"| 128x3x32x32 | {op} | {mode} |" in out
    lines = out.splitlines()
    start = lines.index("Targets, read off the tables above:")
    targets = [ln for ln in lines[start + 1 :] if ln.startswith("- ")]
    assert len(targets) == len(bench.TARGETS)
    for t, line in zip(bench.TARGETS, targets, strict=True):
        assert line.startswith(f"- {t.describe()}")
        assert f"target <= {t.limit:g}" in line
    assert "issue" not in out.lower()


def test_bench_targets_verdicts():
    """Met / NOT met and the margin, from hand-made times."""
    mk = bench.Case("64x3x224x224", "mixup", "elem", "apply", "mixkit", lambda: None, [2.0])
    comp = bench.Case("64x3x224x224", "mixup", "elem", "compiled", "mixkit", lambda: None, [1.0])
    clone = bench.Case("64x3x224x224", "clone", "-", "new", "torch", lambda: None, [1.0])
    lines = bench.targets_summary([mk, comp, clone])
    eager = next(ln for ln in lines if "mixup at 64x3x224x224: eager apply" in ln)
    assert "2.00 (target <= 1.3: NOT met by 0.70 (54% over))" in eager
    compiled = next(ln for ln in lines if "mixup at 64x3x224x224: compiled apply" in ln)
    assert "1.00 (target <= 1.1: met by 0.10 (9% under))" in compiled
    call = next(ln for ln in lines if "mixup at 128x3x32x32: eager whole call" in ln)
    assert "not measured" in call


def test_bench_rejects_bad_arguments():
    with pytest.raises(ValueError, match="ops must be among"):
        bench.run(["128x3x32x32"], ["nope"], log=None)
    with pytest.raises(ValueError, match="timer must be one of"):
        bench.run(["128x3x32x32"], ["mixup"], timer="tsc", log=None)
    with pytest.raises(ValueError, match="size must be one of"):
        bench.build_cases(["1x1"], torch.device("cpu"))
