"""Crash-safe resume (``mixkit.resume`` + ``mixkit train --checkpoint-every N --resume``):
a run killed with SIGKILL after a mid-epoch checkpoint and resumed ends with weights,
per-step losses and metrics bitwise identical to an uninterrupted run with the same seed."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mixkit import augment, resume
from mixkit import train as mixkit_train
from mixkit.config import TrainConfig
from mixkit.recipes import classify
from mixkit.train import load_checkpoint


def _draws(gens: dict[str, torch.Generator]) -> list:
    return [
        torch.rand(3).tolist(),
        np.random.rand(3).tolist(),
        np.random.normal(),  # numpy's cached gaussian is part of its state
        [random.random() for _ in range(3)],
        random.gauss(0, 1),
        {k: torch.rand(2, generator=g).tolist() for k, g in gens.items()},
    ]


class TestRNGState:
    def test_roundtrip_all_sources(self, tmp_path):
        gens = {"a": torch.Generator().manual_seed(1), "b": torch.Generator().manual_seed(2)}
        np.random.normal()  # leave a cached gaussian in numpy's state
        random.gauss(0, 1)
        state = resume.capture_rng(gens)
        torch.save(state, tmp_path / "s.pt")  # must survive weights_only loading
        state = torch.load(tmp_path / "s.pt", weights_only=True)
        first = _draws(gens)
        resume.restore_rng(state, gens)
        assert _draws(gens) == first
        assert _draws(gens) != first  # the streams really advance

    def test_missing_generator(self):
        state = resume.capture_rng({"a": torch.Generator()})
        with pytest.raises(ValueError, match=r"lacks generators \['crop'\] \(has \['a'\]\)"):
            resume.restore_rng(state, {"a": torch.Generator(), "crop": torch.Generator()})

    def test_module_generators_walks_nested_mixers(self):
        shared = torch.Generator()
        mixer = augment.RandomChoice(
            [augment.MixUp(generator=shared), augment.CutMix(generator=3)], generator=shared
        )
        found = resume.module_generators(mixer, "mixer.")
        assert list(found) == ["mixer.generator", "mixer.transforms.1.generator"]
        assert found["mixer.generator"] is shared
        assert resume.module_generators(None) == {}


class TestConfigAndLogs:
    def test_config_must_match(self):
        a = {"lr": 0.1, "aug": "cutmix", "out": "x", "scope": (0.1, 0.8)}
        resume.check_resume_config(a, {**a, "out": "y", "scope": [0.1, 0.8]}, frozenset({"out"}))
        with pytest.raises(ValueError, match=r"lr: checkpoint 0.1 vs now 0.2, seed: checkpoint"):
            resume.check_resume_config(a, {**a, "lr": 0.2, "seed": 1}, frozenset({"out"}))

    def test_truncate_csv(self, tmp_path):
        path = tmp_path / "steps.csv"
        path.write_text("step,loss\n1,0.5\n2,0.4\n3,0.3\n")
        assert resume.truncate_csv(path, "step", 2) == 2
        assert path.read_text().splitlines() == ["step,loss", "1,0.5", "2,0.4"]
        assert resume.truncate_csv(tmp_path / "missing.csv", "step", 2) == 0


# ----------------------------------------------------------------------------- in-process crash
@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread for the in-process runs (2-core CI under load: no oversubscription)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FAST = dict(dataset="digits", epochs=2, batch_size=128, progress=False, grid_samples=0)


def _same_weights(a: Path, b: Path) -> bool:
    x = load_checkpoint(a / "checkpoints" / "last.pt")["model"]
    y = load_checkpoint(b / "checkpoints" / "last.pt")["model"]
    return list(x) == list(y) and all(torch.equal(x[k], y[k]) for k in x)


def _column(run: Path, name: str, column: str) -> list[str]:
    with (run / name).open() as f:
        return [r[column] for r in csv.DictReader(f)]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"aug": "cutmix", "crop_flip": True}, id="cutmix-cropflip"),
        pytest.param({"aug": "recursivemix"}, id="recursivemix-history"),
    ],
)
def test_crash_between_checkpoints_resumes_bitwise(tmp_path, monkeypatch, extra):
    """Crash at step 8 (checkpoint at step 5, mid-epoch 1 of 12 steps), resume, and compare
    with an uninterrupted run: same weights, same per-step losses, same epoch metrics."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    classify.run(TrainConfig(**FAST, **extra, out=str(ref)))

    real_lr = mixkit_train.lr_at

    def crashing_lr(base, step, **schedule):
        if step == 7:  # the 8th step: 2 steps after the step-5 checkpoint
            raise RuntimeError("simulated crash")
        return real_lr(base, step, **schedule)

    monkeypatch.setattr(mixkit_train, "lr_at", crashing_lr)  # via cfg.lr_of
    cfg = TrainConfig(**FAST, **extra, out=str(run), checkpoint_every=5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        classify.run(cfg)
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (0, 5, 5)
    assert len(_column(run, "steps.csv", "step")) == 7  # steps 6-7 logged after the checkpoint
    assert not _same_weights(ref, run)
    monkeypatch.setattr(mixkit_train, "lr_at", real_lr)
    classify.run(TrainConfig(**FAST, **extra, out=str(run), checkpoint_every=5, resume=True))

    assert _same_weights(ref, run)
    assert _column(run, "steps.csv", "loss") == _column(ref, "steps.csv", "loss")
    for col in ("epoch", "train_loss", "test_loss", "test_acc", "lr"):
        assert _column(run, "metrics.csv", col) == _column(ref, "metrics.csv", col)


def test_resume_refuses_a_changed_config(tmp_path):
    classify.run(TrainConfig(**{**FAST, "epochs": 1}, out=str(tmp_path)))
    with pytest.raises(ValueError, match="lr: checkpoint 0.1 vs now 0.05"):
        classify.run(TrainConfig(**{**FAST, "epochs": 1}, out=str(tmp_path), lr=0.05, resume=True))


def test_resume_of_a_finished_run_is_a_no_op(tmp_path):
    cfg = TrainConfig(**{**FAST, "epochs": 1}, out=str(tmp_path))
    first = classify.run(cfg)
    again = classify.run(TrainConfig(**{**FAST, "epochs": 1}, out=str(tmp_path), resume=True))
    assert again["test_acc"] == first["test_acc"] and _column(tmp_path, "metrics.csv", "epoch") == [
        "1"
    ]


# ----------------------------------------------------------------------------- SIGKILL
ARGS = ["--dataset", "digits", "--epochs", "2", "--batch-size", "32", "--aug", "cutmix"]
ARGS += ["--crop-flip", "--no-progress", "--grid-samples", "0", "--checkpoint-every", "4"]


def _train(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same threads => same float reductions
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "mixkit", "train", *ARGS, "--out", str(out), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_after_checkpoint(victim: subprocess.Popen, ckpt: Path) -> None:
    """SIGKILL ``victim`` as soon as its first checkpoint file appears."""
    deadline = time.time() + 240
    while not ckpt.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def _wait_ok(*procs: subprocess.Popen) -> None:
    for p in procs:
        err = p.communicate(timeout=300)[1]
        assert p.returncode == 0, err.decode()[-2000:]


def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    reference = _train(ref)  # the uninterrupted run, concurrently
    victim = _train(run)
    ckpt = run / "checkpoints" / "last.pt"
    _kill_after_checkpoint(victim, ckpt)
    saved = load_checkpoint(ckpt)
    assert saved["batch"] > 0 and saved["epoch"] == 0, "expected a mid-epoch checkpoint"

    resumed = _train(run, "--resume")
    _wait_ok(reference, resumed)
    assert _same_weights(ref, run)
    assert _column(run, "steps.csv", "loss") == _column(ref, "steps.csv", "loss")
    assert len(_column(run, "steps.csv", "step")) == 90  # 2 x ceil(1437 / 32), none twice
    for col in ("train_loss", "test_loss", "test_acc"):
        assert _column(run, "metrics.csv", col) == _column(ref, "metrics.csv", col)


# ----------------------------------------------------------------------------- semiseg (teachers)
SEMI = dict(
    n_train=64, n_val=16, width=4, epochs=2, iters_per_epoch=4, batch_size=4,
    unlabeled_batch_size=4, split="1/4", distance_images=8, distance_every=1, mt_threshold=0.0,
    dt_threshold=0.0, psmt_threshold=0.0, pretrain_steps=0,
)  # fmt: skip


def _teacher_state(run: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    flat = {f"student.{k}": v for k, v in ckpt["model"].items()}
    for name, sd in ckpt["teachers"].items():
        flat.update({f"{name}.{k}": v for k, v in sd.items()})
    return flat


@pytest.mark.parametrize("method", ["mt", "psmt", "dualteacher"])
def test_semiseg_crash_mid_epoch_resumes_bitwise(tmp_path, monkeypatch, method):
    """Student AND teachers (EMA, on-duty switch, PS-MT warm-up optimisers) after a crash in
    epoch 2 (checkpoint at step 6 = iteration 2 of 4, crash at step 7) and a resume equal an
    uninterrupted run's bytes."""
    from mixkit.methods.semiseg import trainer_base
    from mixkit.methods.semiseg.config import SemisegConfig
    from mixkit.recipes import semiseg

    ref, run = tmp_path / "ref", tmp_path / "run"
    semiseg.run(SemisegConfig(**SEMI, method=method, out=str(ref)))
    real = trainer_base.lr_at

    def crashing(base, step, total, **schedule):
        if step == 6:
            raise RuntimeError("simulated crash")
        return real(base, step, total, **schedule)

    monkeypatch.setattr(trainer_base, "lr_at", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        semiseg.run(SemisegConfig(**SEMI, method=method, out=str(run), checkpoint_every=3))
    saved = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (saved["epoch"], saved["iter"], saved["step"]) == (1, 2, 6)
    monkeypatch.setattr(trainer_base, "lr_at", real)
    semiseg.run(SemisegConfig(**SEMI, method=method, out=str(run), checkpoint_every=3, resume=True))

    a, b = _teacher_state(ref), _teacher_state(run)
    assert list(a) == list(b) and len(a) > len(
        load_checkpoint(ref / "checkpoints" / "last.pt")["model"]
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    for col in ("loss", "loss_unsup", "val_miou"):
        assert _column(run, "metrics.csv", col) == _column(ref, "metrics.csv", col)


def test_semiseg_sigkill_on_voc_fixture_then_resume_is_bitwise_identical(tmp_path):
    """Dual Teacher on the on-disk VOC fixture (plug-in net, 2 DataLoader workers, random
    scale / crop / flip) under SIGKILL after a mid-epoch checkpoint: the resumed run ends
    with the student's and both teachers' bytes of an uninterrupted run."""
    from test_semiseg_methods import PLUGIN, make_voc

    root = make_voc(tmp_path / "VOC2012")
    args = [
        "--dataset", "voc", "--data-root", str(root), "--labeled-list", "splits/labeled.txt",
        "--unlabeled-list", "splits/unlabeled.txt", "--crop-size", "33", "--batch-size", "2",
        "--unlabeled-batch-size", "2", "--model", PLUGIN, "--method", "dualteacher",
        "--epochs", "2", "--iters-per-epoch", "8", "--checkpoint-every", "2", "--workers", "2",
        "--dt-threshold", "0", "--distance-images", "2",
    ]  # fmt: skip
    ref, run = tmp_path / "ref", tmp_path / "run"

    def start(out: Path, *extra: str) -> subprocess.Popen:
        tests = str(Path(__file__).parent)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": tests}
        for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            env.pop(k, None)
        cmd = [sys.executable, "-m", "mixkit", "semiseg", *args, "--out", str(out), *extra]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    reference, victim = start(ref), start(run)
    ckpt = run / "checkpoints" / "last.pt"
    _kill_after_checkpoint(victim, ckpt)
    saved = load_checkpoint(ckpt)
    assert saved["iter"] > 0 and saved["epoch"] == 0, "expected a mid-epoch checkpoint"
    resumed = start(run, "--resume")
    _wait_ok(reference, resumed)
    a, b = _teacher_state(ref), _teacher_state(run)
    assert list(a) == list(b) and any(k.startswith("t2.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for col in ("loss", "loss_unsup", "val_miou"):
        assert _column(run, "metrics.csv", col) == _column(ref, "metrics.csv", col)


# ----------------------------------------------------------------------------- KD (frozen teacher)
@pytest.mark.parametrize("da", ["cutmix_pick", "autoaugment"])
def test_kd_crash_mid_epoch_resumes_bitwise(tmp_path, crash_at_step, da):
    """``mixkit distill``: crash 2 steps after a mid-epoch checkpoint, resume, same bytes."""
    from mixkit.methods.kd import trainer as kd
    from mixkit.methods.kd.config import KDConfig

    teacher = tmp_path / "teacher"
    classify.run(TrainConfig(**{**FAST, "epochs": 1}, out=str(teacher)))
    base = dict(teacher=str(teacher), da=da, epochs=2, batch_size=128, progress=False)
    ref, run = tmp_path / "ref", tmp_path / "run"
    kd.run(KDConfig(**base, out=str(ref)))
    undo = crash_at_step(7)
    with pytest.raises(RuntimeError, match="simulated crash"):
        kd.run(KDConfig(**base, out=str(run), checkpoint_every=5))
    saved = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (saved["epoch"], saved["batch"], saved["step"]) == (0, 5, 5)
    undo()
    kd.run(KDConfig(**base, out=str(run), checkpoint_every=5, resume=True))
    assert _same_weights(ref, run)
    for col in ("train_loss", "train_kl_aug", "test_loss", "test_acc"):
        assert _column(run, "metrics.csv", col) == _column(ref, "metrics.csv", col)
