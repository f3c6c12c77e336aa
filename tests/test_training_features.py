"""The trainers' device features and inputs: amp / channels_last / compile reach the model,
no host read per step (meta-device runs and a read counter), steps.csv every ``log_every``
steps across a resume, plug-in models with ``model_args`` and ``--weights``, on-disk CIFAR
and ImageFolder data through DataLoaders, the LR schedules, the layered config (dotted
``--set``, recipes) and run folders that are never overwritten."""

from __future__ import annotations

import csv
import dataclasses
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import torch
from _disk_fixtures import write_cifar, write_imagefolder
from torch.overrides import TorchFunctionMode

from mixkit import distributed, models
from mixkit import train as mixkit_train
from mixkit.config import TrainConfig, build_config, parse_milestones, parse_overrides
from mixkit.recipes import classify
from mixkit.train import build_optimizer, cosine_lr, load_checkpoint, load_pretrained, lr_at

TINY = dict(dataset="digits", model="tinycnn", epochs=1, progress=False, grid_samples=0)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, **kw})


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- plug-in models
PLUGIN = '''
import torch
from torch import nn

SEEN = []  # per forward: (autocast dtype or None, channels_last?, input dtype)


class Net(nn.Module):
    """A user's model: features/head split but no feature_dim (RecursiveMix infers it)."""

    def __init__(self, num_classes, in_channels, width=4):
        super().__init__()
        self.width = width
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)

    def features(self, x):
        amp = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        SEEN.append((amp, x.is_contiguous(memory_format=torch.channels_last), x.dtype))
        return torch.relu(self.conv(x))

    def head(self, f):
        return self.fc(f.mean((2, 3)))

    def forward(self, x):
        return self.head(self.features(x))


def net(num_classes, in_channels, width=4):
    return Net(num_classes, in_channels, width)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """``user_models:net`` importable from a temporary folder; returns the module."""
    (tmp_path / "user_models.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("user_models", None)
    import user_models

    yield user_models
    sys.modules.pop("user_models", None)


class TestPluginModels:
    def test_plugin_trains_one_epoch_with_model_args(self, tmp_path, plugin):
        cfg = build_config(
            TrainConfig, {**TINY, "out": str(tmp_path / "run"), "train_subset": 64},
            parse_overrides(["model=user_models:net", "model_args.width=6"]),
        )  # fmt: skip
        summary = classify.run(cfg)
        weights = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
        assert weights["conv.weight"].shape == (6, 1, 3, 3)  # model_args reached the model
        assert 0 <= summary["test_acc"] <= 1 and len(plugin.SEEN) > 0

    def test_recursivemix_infers_the_feature_width(self, tmp_path, plugin):
        cfg = _cfg(out=str(tmp_path / "rm"), model="user_models:net", aug="recursivemix",
            model_args={"width": 5}, train_subset=64, batch_size=32,
        )  # fmt: skip
        classify.run(cfg)
        ckpt = load_checkpoint(tmp_path / "rm" / "checkpoints" / "last.pt")
        assert ckpt["recursivemix"]["roi_head.fc.weight"].shape == (10, 5)

    def test_weights_keep_a_differing_head(self, tmp_path):
        source = models.build_model("tinycnn", 7, 1)  # another number of classes
        torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}},
                   tmp_path / "w.pt")  # fmt: skip
        target = models.build_model("tinycnn", 10, 1)
        head_before = target.fc.weight.clone()
        line = load_pretrained(target, tmp_path / "w.pt")
        assert torch.equal(target.body[0][0].weight, source.body[0][0].weight)
        assert torch.equal(target.fc.weight, head_before)
        assert "head 'fc' kept at its init" in line and "fc.weight (7, 16) vs (10, 16)" in line
        other = models.build_model("smallcnn", 10, 1)
        with pytest.raises(ValueError, match="shape-mismatched keys"):
            load_pretrained(other, tmp_path / "w.pt")
        with pytest.raises(FileNotFoundError, match="weights file not found"):
            load_pretrained(target, tmp_path / "missing.pt")

    def test_weights_flag_loads_before_training(self, tmp_path, capsys):
        torch.manual_seed(5)
        source = models.build_model("tinycnn", 10, 1)
        torch.save(source.state_dict(), tmp_path / "w.pt")
        cfg = _cfg(out=str(tmp_path / "run"), weights=str(tmp_path / "w.pt"),
                          train_subset=32, batch_size=32, lr=1e-9)  # fmt: skip
        classify.run(cfg)
        trained = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
        w = source.state_dict()["body.0.0.weight"]
        assert torch.allclose(trained["body.0.0.weight"], w, atol=1e-6)  # lr ~ 0: the file's
        assert "loaded" in capsys.readouterr().out


# ----------------------------------------------------------------------------- device features
class TestDeviceFeatures:
    @pytest.mark.parametrize("amp", ["bf16", "fp16"])
    def test_amp_reaches_the_model(self, tmp_path, plugin, amp):
        cfg = _cfg(out=str(tmp_path / amp), model="user_models:net", amp=amp,
                          train_subset=32, batch_size=32)  # fmt: skip
        summary = classify.run(cfg)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        assert plugin.SEEN and all(seen[0] == dtype for seen in plugin.SEEN)
        assert summary["test_loss"] == summary["test_loss"]  # finite, not NaN
        scaler = load_checkpoint(tmp_path / amp / "checkpoints" / "last.pt")["scaler"]
        assert ("scale" in scaler) == (amp == "fp16")  # a GradScaler for fp16 only

    def test_channels_last_batches(self, tmp_path, plugin):
        cfg = _cfg(
            out=str(tmp_path / "cl"),
            model="user_models:net",
            channels_last=True,
            aug="cutmix",
            train_subset=32,
            batch_size=32,
        )
        classify.run(cfg)
        assert plugin.SEEN and all(seen[1] for seen in plugin.SEEN)

    def test_compile_runs_a_step(self, tmp_path):
        """One compiled optimiser step equals the eager one (inductor, tiny model)."""
        torch._dynamo.reset()
        losses = {}
        for compiled in (False, True):
            cfg = _cfg(out=str(tmp_path / f"c{compiled}"), compile=compiled,
                              train_subset=16, batch_size=16)  # fmt: skip
            r = classify._setup(cfg, distributed.DistEnv())
            batch = next(r.feed.epoch(0, r.local_bs, r.env, r.env.device, r.shuffle_gen))
            graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
            classify._train_step(r, batch)
            losses[compiled] = r.epoch_sums.read()[0]["loss"]
            grew = torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs
            assert grew == compiled
        assert losses[True] == pytest.approx(losses[False], rel=1e-5)


class _HostReads(TorchFunctionMode):
    """Counts tensor -> Python reads (item, tolist, float, int, bool, format, numpy)."""

    READS = {"item", "tolist", "__float__", "__int__", "__bool__", "__format__", "numpy"}

    def __init__(self) -> None:
        super().__init__()
        self.count = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.READS:
            self.count[name] += 1
        return func(*args, **(kwargs or {}))


class TestNoHostSync:
    """On a meta device every host read raises, so steps that run there read nothing."""

    @pytest.mark.parametrize("aug", ["none", "cutmix", "mixup_cutmix", "resizemix", "fmix"])
    def test_train_steps_on_meta(self, tmp_path, aug):
        cfg = _cfg(aug=aug, crop_flip=True, out=str(tmp_path / aug),
                          train_subset=64, batch_size=16, log_every=10**6)  # fmt: skip
        env = distributed.DistEnv(device=torch.device("meta"))
        r = classify._setup(cfg, env)
        for batch in r.feed.epoch(0, r.local_bs, env, env.device, r.shuffle_gen):
            classify._train_step(r, batch)
        assert r.step == 4 and r.epoch_sums.total.is_meta and r.epoch_sums.count == 64

    def test_reads_do_not_grow_with_steps(self, tmp_path):
        def reads(n: int, log_every: int) -> int:
            cfg = _cfg(
                crop_flip=True,
                train_subset=n,
                batch_size=16,
                log_every=log_every,
                out=str(tmp_path / f"{n}_{log_every}"),
            )
            with _HostReads() as mode:
                classify.run(cfg)
            return sum(mode.count.values())

        few, many = reads(32, 1000), reads(96, 1000)  # 2 and 6 steps, one row each
        assert few == many
        assert reads(96, 1) > many  # the counter sees the per-step reads of log_every=1


# ----------------------------------------------------------------------------- steps.csv
def test_log_every_rows_and_resume(tmp_path, crash_at_step):
    """Rows every 3 steps and at the epoch end; a crash between a mid-window checkpoint and
    the next row resumes to the same rows, weights and metrics."""
    base = dict(TINY, epochs=2, train_subset=112, batch_size=16, log_every=3, aug="cutmix")
    ref, run = tmp_path / "ref", tmp_path / "run"
    classify.run(TrainConfig(**base, out=str(ref)))
    steps = [int(r["step"]) for r in _rows(ref / "steps.csv")]
    assert steps == [3, 6, 7, 9, 12, 14]  # multiples of 3 and each epoch end (7 steps each)
    undo = crash_at_step(9)
    with pytest.raises(RuntimeError, match="simulated crash"):
        classify.run(TrainConfig(**base, out=str(run), checkpoint_every=8))
    undo()
    classify.run(TrainConfig(**base, out=str(run), checkpoint_every=8, resume=True))
    assert _rows(run / "steps.csv") == _rows(ref / "steps.csv")
    assert [r["train_loss"] for r in _rows(run / "metrics.csv")] == [
        r["train_loss"] for r in _rows(ref / "metrics.csv")
    ]
    a = load_checkpoint(ref / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- on-disk data
class TestDiskData:
    def test_cifar_pickles_stream_through_workers(self, tmp_path):
        root = write_cifar(tmp_path / "c10", 10)
        cfg = _cfg(
            dataset="cifar10",
            data_root=str(root),
            crop_flip=True,
            aug="cutmix",
            batch_size=5,
            workers=2,
            out=str(tmp_path / "run"),
        )
        summary = classify.run(cfg)
        rows = _rows(tmp_path / "run" / "steps.csv")
        assert len(rows) == 4 and summary["dataset"] == "cifar10"  # 20 images / 5

    def test_imagefolder_random_resized_crop_and_subset(self, tmp_path):
        root = write_imagefolder(tmp_path / "if", n_train=6)
        cfg = _cfg(dataset="imagefolder", data_root=str(root), image_size=24,
                          crop_flip=True, train_subset=8, batch_size=4, workers=0,
                          out=str(tmp_path / "run"), grid_samples=2)  # fmt: skip
        classify.run(cfg)
        assert len(_rows(tmp_path / "run" / "steps.csv")) == 2  # stratified 8 of 12
        assert (tmp_path / "run" / "plots" / "mixed_samples.png").is_file()

    def test_cifar_resume_bitwise(self, tmp_path, monkeypatch):
        root = write_cifar(tmp_path / "c100", 100, n_train=24)
        base = dict(TINY, dataset="cifar100", data_root=str(root), epochs=2, batch_size=6,
                    crop_flip=True, aug="mixup", workers=0)  # fmt: skip
        classify.run(TrainConfig(**base, out=str(tmp_path / "ref")))
        real = mixkit_train.lr_at
        monkeypatch.setattr(mixkit_train, "lr_at", lambda lr, step, **k: 1 / 0 if step == 6 else
                            real(lr, step, **k))  # fmt: skip
        with pytest.raises(ZeroDivisionError):
            classify.run(TrainConfig(**base, out=str(tmp_path / "run"), checkpoint_every=5))
        monkeypatch.setattr(mixkit_train, "lr_at", real)
        classify.run(TrainConfig(**base, out=str(tmp_path / "run"), checkpoint_every=5,
                                 resume=True))  # fmt: skip
        assert _rows(tmp_path / "run" / "steps.csv") == _rows(tmp_path / "ref" / "steps.csv")


# ----------------------------------------------------------------------------- schedules
class TestSchedule:
    def test_step_schedule_drops_after_each_milestone_epoch(self):
        kw = dict(steps_per_epoch=10, total_steps=100, schedule="step", milestones=(3, 6),
                  gamma=0.1)  # fmt: skip
        lrs = [lr_at(1.0, s, **kw) for s in (0, 29, 30, 59, 60, 99)]
        assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
        warm = [lr_at(1.0, s, warmup_steps=4, **kw) for s in (0, 1, 3, 4)]
        assert warm == pytest.approx([0.25, 0.5, 1.0, 1.0])

    def test_cosine_is_the_per_step_cosine(self):
        for s in (0, 5, 37, 99):
            got = lr_at(0.2, s, steps_per_epoch=10, total_steps=100, warmup_steps=5)
            assert got == cosine_lr(0.2, s, 100, 5)

    def test_milestones_parse_and_check(self):
        assert parse_milestones("150,180, 210") == (150, 180, 210) and parse_milestones("") == ()
        with pytest.raises(ValueError, match="lr_milestones must be increasing"):
            TrainConfig(lr_milestones="180,150")
        with pytest.raises(ValueError, match="lr_milestones must be comma-separated"):
            TrainConfig(lr_milestones="a,b")
        assert build_config(TrainConfig, {"lr_milestones": [150, 225]}).lr_milestones == "150,225"

    def test_optimizer_options(self):
        net = models.build_model("tinycnn", 10, 1)
        default = build_optimizer(net, 0.1, 0.9, 5e-4)
        assert default.defaults["nesterov"] and default.param_groups[1]["weight_decay"] == 0
        official = build_optimizer(net, 0.1, 0.9, 5e-4, nesterov=False, weight_decay_all=True)
        assert not official.defaults["nesterov"] and len(official.param_groups[1]["params"]) == 0
        n_params = len(list(net.parameters()))
        assert len(official.param_groups[0]["params"]) == n_params


# ----------------------------------------------------------------------------- config layers
class TestConfigLayers:
    def test_dotted_set_merges_into_the_mapping(self):
        cfg = build_config(
            TrainConfig, {"model_args": {"depth": 20, "alpha": 48}},
            parse_overrides(["model_args.depth=11", "model_args.block.kind=basic"]),
        )  # fmt: skip
        assert cfg.model_args == {"depth": 11, "alpha": 48, "block": {"kind": "basic"}}
        assert build_config(TrainConfig, {"model_args": "{width: 3}"}).model_args == {"width": 3}

    def test_dotted_set_errors(self):
        with pytest.raises(ValueError, match="unknown config key 'modelargs' in 'modelargs.x'"):
            build_config(TrainConfig, parse_overrides(["modelargs.x=1"]))
        with pytest.raises(ValueError, match="'lr' is not a mapping field"):
            build_config(TrainConfig, parse_overrides(["lr.x=1"]))
        with pytest.raises(ValueError, match="expected a mapping"):
            build_config(TrainConfig, {"model_args": [1, 2]})

    def test_recipe_is_the_lowest_layer(self, tmp_path):
        cfg = build_config(TrainConfig, {"recipe": "rm_cifar10_pyramidnet200"}, {"lr": 0.1})
        assert (cfg.aug, cfg.lr, cfg.epochs, cfg.lr_milestones) == ("recursivemix", 0.1, 300,
                                                                    "150,225")  # fmt: skip
        with pytest.raises(ValueError, match="recipe must be one of"):
            build_config(TrainConfig, {"recipe": "nope"})
        with pytest.raises(ValueError, match="is for `mixkit distill`, not `mixkit train`"):
            build_config(TrainConfig, {"recipe": "kd_cifar100_vgg13_vgg8"})


# ----------------------------------------------------------------------------- run folders
class TestRunFolders:
    def test_numbered_folders_and_refusal(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        cfg = _cfg(train_subset=16, batch_size=16)
        outs = [classify.run(cfg)["out"] for _ in range(2)]
        assert outs == ["runs/train/exp", "runs/train/exp2"]
        again = dataclasses.replace(cfg, out="runs/train/exp")
        with pytest.raises(ValueError, match="already holds a run: pass --resume .* --overwrite"):
            classify.run(again)
        (tmp_path / "runs/train/exp/plots").mkdir()
        (tmp_path / "runs/train/exp/plots/stale.png").write_bytes(b"x")
        classify.run(dataclasses.replace(again, overwrite=True))
        assert not (tmp_path / "runs/train/exp/plots/stale.png").exists()
        with pytest.raises(ValueError, match="resume needs --out"):
            classify.run(dataclasses.replace(cfg, resume=True))
