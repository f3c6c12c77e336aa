"""Data-parallel training (``mixkit.distributed``): sampler semantics, per-rank seeds,
synchronised BatchNorm, and a real 2-process ``torchrun`` (gloo, CPU) classification run
compared with a 1-process run on the same global batch.

Comparison setting (documented in the test): ``--aug none`` and no crop/flip (per-rank
mixing draws legitimately differ from a single process's), BatchNorm synchronised across
ranks (``sync_bn``, the default; ``CPUSyncBatchNorm`` on CPU), so each 2-rank step sees the
same global batch statistics and the same averaged gradient as the 1-rank step. What remains
is float rounding: the first steps agree to ~1e-7 and the curve to ~1e-3 after 20 steps
(rounding is amplified by max-pool ties on the digits' flat background). Without sync BN
the very first step already differs by ~5e-3.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from mixkit import data, distributed, feeds, models
from mixkit.cli import main
from mixkit.distributed import CPUSyncBatchNorm, DistEnv
from mixkit.train import load_checkpoint

ARGS = ["--dataset", "digits", "--epochs", "1", "--batch-size", "64", "--aug", "none"]
ARGS += ["--no-progress", "--grid-samples", "0"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _losses(run: Path) -> list[float]:
    with (run / "steps.csv").open() as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


# ----------------------------------------------------------------------------- unit
class TestSampler:
    @pytest.mark.parametrize("n, world", [(7, 3), (10, 2), (9, 3), (2, 4), (1, 2)])
    def test_matches_torch_distributed_sampler(self, n, world):
        for rank in range(world):
            g = torch.Generator().manual_seed(5)
            mine = distributed.shard_order(n, rank, world, torch.randperm(n, generator=g))
            ref = list(DistributedSampler(range(n), world, rank, shuffle=True, seed=5))
            assert mine.tolist() == ref
            for drop in (False, True):
                ref = list(DistributedSampler(range(n), world, rank, shuffle=False, drop_last=drop))
                assert distributed.shard_order(n, rank, world, drop_last=drop).tolist() == ref

    def test_bad_rank(self):
        with pytest.raises(ValueError, match=r"rank must lie in \[0, world_size=2\), got 2"):
            distributed.shard_order(5, 2, 2)

    def test_one_rank_is_iterate_batches(self):
        split = data.Split(
            torch.randint(0, 255, (203, 1, 2, 3), dtype=torch.uint8), torch.arange(203)
        )
        a = list(feeds.index_batches(203, 50, _gen(3), rank=0, world_size=1))
        b = list(data.iterate_batches(split, 50, True, _gen(3)))
        assert len(a) == len(b) == 5
        for idx, (x, y) in zip(a, b, strict=True):
            assert torch.equal(split.x[idx], x) and torch.equal(idx, y)

    def test_union_of_rank_batches_is_the_global_batch(self):
        split = data.Split(torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1), torch.arange(40))
        glob = [y for _, y in data.iterate_batches(split, 8, True, _gen(0))]
        ranks = [list(feeds.index_batches(40, 4, _gen(0), rank=r, world_size=2)) for r in range(2)]
        assert len(glob) == len(ranks[0]) == len(ranks[1]) == 5
        for k, g in enumerate(glob):
            assert sorted(torch.cat([ranks[0][k], ranks[1][k]]).tolist()) == sorted(g.tolist())


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class TestSeedsAndEnv:
    def test_rank_seed(self):
        assert distributed.rank_seed(7, 0) == 7  # rank 0 = the plain run
        seeds = {distributed.rank_seed(7, r) for r in range(64)} | {distributed.rank_seed(8, 1)}
        assert len(seeds) == 65 and all(0 <= s < 2**63 for s in seeds)
        assert distributed.rank_seed(7, 3) == distributed.rank_seed(7, 3)

    def test_init_without_torchrun(self, monkeypatch):
        for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            monkeypatch.delenv(k, raising=False)
        env = distributed.init_from_env("cpu")
        assert (env.rank, env.world_size, env.is_main, env.distributed) == (0, 1, True, False)
        assert distributed.all_reduce_sum([1.5, 2], env) == [1.5, 2.0]
        assert distributed.all_gather_object({"a": 1}, env) == [{"a": 1}]
        distributed.shutdown(env)

    @pytest.mark.parametrize(
        "env, message",
        [
            ({"WORLD_SIZE": "2", "RANK": "2"}, r"RANK must lie in \[0, WORLD_SIZE=2\), got RANK=2"),
            ({"WORLD_SIZE": "two"}, "environment variable WORLD_SIZE must be an int, got 'two'"),
        ],
    )
    def test_bad_env(self, monkeypatch, env, message):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        with pytest.raises(ValueError, match=message):
            distributed.init_from_env("cpu")

    def test_cuda_requested_without_cuda(self, monkeypatch):
        if torch.cuda.is_available():
            pytest.skip("CUDA present")
        monkeypatch.delenv("WORLD_SIZE", raising=False)
        with pytest.raises(ValueError, match="CUDA is not available"):
            distributed.init_from_env("cuda")


class TestModules:
    def test_state_digest_sees_one_ulp(self):
        m = nn.Linear(3, 2)
        d = distributed.state_digest(m)
        assert distributed.state_digest(m) == d
        with torch.no_grad():
            m.weight[0, 0] = torch.nextafter(m.weight[0, 0], torch.tensor(10.0))
        assert distributed.state_digest(m) != d
        assert distributed.check_same_across_ranks(m, DistEnv()) == [distributed.state_digest(m)]

    def test_sync_batchnorm_conversion(self):
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(2))
        )
        model[1].running_mean.fill_(0.5)
        keys = list(model.state_dict())
        assert distributed.sync_batchnorm(model, DistEnv()) is model  # one rank: unchanged
        conv = distributed._convert_cpu(model)
        assert isinstance(conv[1], CPUSyncBatchNorm) and isinstance(conv[2][0], CPUSyncBatchNorm)
        assert list(conv.state_dict()) == keys and torch.equal(
            conv[1].running_mean, torch.full((4,), 0.5)
        )

    def test_cpu_sync_bn_without_group_is_batchnorm(self):
        ref, syn = nn.BatchNorm2d(3), CPUSyncBatchNorm(3)
        x = torch.randn(5, 3, 4, 6)
        assert torch.equal(ref(x), syn(x))
        assert torch.equal(ref.running_var, syn.running_var)
        with pytest.raises(ValueError, match="expected at least 2D input"):
            syn(torch.randn(3))


# ----------------------------------------------------------------------------- torchrun
@pytest.fixture
def one_thread():
    """The in-process reference runs on one intra-op thread like the torchrun ranks."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_torchrun_two_ranks_match_one_rank(tmp_path):
    """2 ranks x 32 = the 1-rank batch of 64: identical weights on both ranks (SHA-256 of
    each rank's state dict), rank-0-only outputs, and the same loss curve within tolerance."""
    two, one = tmp_path / "two", tmp_path / "one"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.Popen(
        [*cmd, "-m", "mixkit", "train", *ARGS, "--out", str(two)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:  # the 1-rank reference runs in this process meanwhile (one interpreter less)
        assert main(["train", *ARGS, "--out", str(one)]) == 0
    finally:
        log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, log[-3000:]

    summary = json.loads((two / "summary.json").read_text())
    assert summary["world_size"] == 2 and len(summary["weights_sha256"]) == 2
    assert summary["weights_sha256"][0] == summary["weights_sha256"][1]
    saved = load_checkpoint(two / "checkpoints" / "last.pt")
    model = models.build_model("smallcnn", 10, 1)
    model.load_state_dict(saved["model"])  # rank 0 wrote exactly what every rank holds
    assert distributed.state_digest(model) == summary["weights_sha256"][0]
    assert len(saved["ranks"]) == 2  # per-rank RNG states, written once by rank 0
    assert log.count("epoch 1/1") == 1  # rank-0-only logging

    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 23  # ceil(1437 / 64) steps either way
    # Exact up to float rounding for the first steps; the last batch is padded (sampler
    # semantics: one duplicated sample), so it is left out of the curve comparison.
    assert max(abs(x - y) for x, y in zip(a[:5], b[:5], strict=True)) < 1e-5
    assert max(abs(x - y) for x, y in zip(a[:-1], b[:-1], strict=True)) < 2e-2
    assert a[0] > a[-2] + 0.5  # the curve is a real training curve, not a constant


@pytest.mark.slow
def test_torchrun_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path):
    """2 ranks, CutMix + crop/flip (per-rank generators): kill the whole torchrun process
    group after a mid-epoch checkpoint, resume with torchrun, compare with an uninterrupted
    2-rank run (per-rank RNG states come back from the checkpoint's ``ranks`` list)."""
    import signal
    import time

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "mixkit", "train", "--dataset", "digits", "--epochs", "2", "--batch-size", "32"]
    cmd += ["--aug", "cutmix", "--crop-flip", "--no-progress", "--grid-samples", "0"]
    cmd += ["--checkpoint-every", "4"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    quiet = {"env": _env(), "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    reference = subprocess.Popen([*cmd, "--out", str(ref)], **quiet)
    victim = subprocess.Popen([*cmd, "--out", str(run)], start_new_session=True, **quiet)
    ckpt = run / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    saved = load_checkpoint(ckpt)
    assert saved["batch"] > 0 and saved["epoch"] == 0 and len(saved["ranks"]) == 2
    subprocess.run([*cmd, "--out", str(run), "--resume"], check=True, **quiet)
    assert reference.wait(timeout=600) == 0
    a = load_checkpoint(ref / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(ckpt)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (ref / "steps.csv").read_text() == (run / "steps.csv").read_text()


# ------------------------------------------------------------------ torchrun: distill, semiseg
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _torchrun(argv: list[str]) -> str:
    """Run ``mixkit ARGV`` on 2 ranks (gloo, CPU); returns the combined log."""
    proc = subprocess.run(
        [*TORCHRUN, "-m", "mixkit", *argv],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def _kd_teacher(folder: Path) -> nn.Module:
    """A ``mixkit train``-style run folder holding a tinycnn teacher (seeded random weights:
    enough to exercise the distillation wiring)."""
    import yaml

    from mixkit.train import atomic_save

    torch.manual_seed(123)
    teacher = models.build_model("tinycnn", 10, 1)
    atomic_save({"model": teacher.state_dict()}, folder / "checkpoints" / "last.pt")
    cfg = {"model": "tinycnn", "dataset": "digits", "seed": 0}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return teacher


def test_torchrun_distill_ranks_identical(tmp_path):
    """``mixkit distill`` on 2 ranks (CutMixPick, crop+flip: per-rank generators): both
    ranks end with the same student and teacher bytes, the digests are those of the model
    rank 0 saved, and only rank 0 writes and reports."""
    teacher = _kd_teacher(tmp_path / "teacher")
    out = tmp_path / "kd"
    argv = ["distill", "--teacher", str(tmp_path / "teacher"), "--student", "tinycnn"]
    argv += ["--da", "cutmix_pick", "--train-subset", "256", "--batch-size", "64"]
    argv += ["--epochs", "2", "--checkpoint-every", "3", "--no-progress", "--out", str(out)]
    log = _torchrun(argv)

    s = json.loads((out / "summary.json").read_text())
    assert s["world_size"] == 2 and s["train_size"] == 256
    (d0, d1), (t0, t1) = s["weights_sha256"], s["teacher_sha256"]
    assert d0 == d1 and t0 == t1 == distributed.state_digest(teacher)
    saved = load_checkpoint(out / "checkpoints" / "last.pt")
    student = models.build_model("tinycnn", 10, 1)
    student.load_state_dict(saved["model"])
    assert distributed.state_digest(student) == d0  # the digest is of the saved final model
    torch.manual_seed(0)
    assert distributed.state_digest(models.build_model("tinycnn", 10, 1)) != d0  # it trained
    assert saved["step"] == 8  # 2 epochs x (256 / 2 ranks / 32 per rank)
    ranks = saved["ranks"]
    assert len(ranks) == 2
    g0, g1 = (r["rng"]["generators"]["scheme"] for r in ranks)
    assert not torch.equal(g0, g1)  # per-rank scheme streams
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,train_loss")
    assert log.count("done: cutmix_pick_t -> tinycnn") == 1  # rank 0 reports alone


def test_torchrun_semiseg_dualteacher_student_and_teachers_identical(tmp_path):
    """``mixkit semiseg --method dualteacher`` on 2 ranks: the student and both EMA teachers
    hold the same bytes on every rank (SHA-256 per rank in summary.json, equal to the models
    rank 0 saved), the teachers moved away from each other, and rank 0 alone logs."""
    from mixkit.methods.semiseg.net import SegNet

    out = tmp_path / "dt"
    argv = ["semiseg", "--method", "dualteacher", "--epochs", "2", "--iters-per-epoch", "3"]
    argv += ["--pretrain-steps", "0"]
    argv += ["--n-train", "200", "--n-val", "40", "--width", "8", "--canvas", "32"]
    argv += ["--distance-images", "8", "--out", str(out)]
    log = _torchrun(argv)

    s = json.loads((out / "summary.json").read_text())
    assert s["world_size"] == 2 and s["steps"] == 6
    assert s["weights_sha256"][0] == s["weights_sha256"][1]
    teachers = s["teachers_sha256"]
    assert set(teachers) == {"t1", "t2"}
    assert all(d[0] == d[1] for d in teachers.values())
    saved = load_checkpoint(out / "checkpoints" / "last.pt")
    net = SegNet(11, 3, 8)
    net.load_state_dict(saved["model"])
    assert distributed.state_digest(net) == s["weights_sha256"][0]
    digests = {}
    for name in ("t1", "t2"):
        net.load_state_dict(saved["teachers"][name])
        digests[name] = distributed.state_digest(net)
        assert digests[name] == teachers[name][0]
    assert len(set(digests.values()) | {s["weights_sha256"][0]}) == 3  # teachers really moved
    ranks = saved["ranks"]
    assert len(ranks) == 2
    gens = [r["generators"] for r in ranks]
    assert torch.equal(gens[0]["labeled"], gens[1]["labeled"])  # one global data order
    assert not torch.equal(gens[0]["aug"], gens[1]["aug"])  # per-rank augmentation streams
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    assert log.count("epoch 1/2 [t1]") == 1 and log.count("done: dualteacher") == 1
