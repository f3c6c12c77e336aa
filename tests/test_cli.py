"""End-to-end tests of the ``mixkit`` CLI, config layering and the classification recipe."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import pickle
import re
import subprocess
import sys

import pytest
import torch

from mixkit import __version__
from mixkit.cli import build_parser, main
from mixkit.config import TrainConfig, build_config, load_yaml, parse_overrides
from mixkit.options import available_devices
from mixkit.train import atomic_save, load_checkpoint

FAST = ["--dataset", "digits", "--epochs", "1", "--batch-size", "64", "--no-progress"]


def _run(tmp_path, *extra: str) -> int:
    return main(["train", *FAST, "--out", str(tmp_path), *extra])


class TestConfig:
    def test_layers_later_wins_and_coerces(self, tmp_path):
        f = tmp_path / "r.yaml"
        f.write_text("aug: cutmix\nlr: 0.2\nepochs: 3\n")
        cfg = build_config(TrainConfig, load_yaml(f), parse_overrides(["lr=0.5"]), {"epochs": "4"})
        assert (cfg.aug, cfg.lr, cfg.epochs) == ("cutmix", 0.5, 4)

    def test_unknown_key(self):
        with pytest.raises(ValueError, match="unknown config key 'lrr'"):
            build_config(TrainConfig, {"lrr": 0.1})

    def test_bad_type(self):
        with pytest.raises(ValueError, match="config key 'epochs' expects int"):
            build_config(TrainConfig, {"epochs": "many"})

    def test_set_needs_equals(self):
        with pytest.raises(ValueError, match="--set expects key=value"):
            parse_overrides(["lr"])

    def test_missing_file_and_bundled_recipe(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="config file not found"):
            load_yaml(tmp_path / "nope.yaml")
        assert load_yaml("mnist_cutmix")["aug"] == "cutmix"

    def test_yaml_must_be_mapping(self, tmp_path):
        f = tmp_path / "r.yaml"
        f.write_text("- a\n- b\n")
        with pytest.raises(ValueError, match="must hold a mapping"):
            load_yaml(f)


class TestTrainCommand:
    def test_writes_run_directory(self, tmp_path, capsys):
        assert _run(tmp_path, "--aug", "cutmix", "--epochs", "3", "--lr", "0.1") == 0
        for name in (
            "config.yaml",
            "metrics.csv",
            "summary.json",
            "checkpoints/last.pt",
            "plots/mixed_samples.png",
        ):
            assert (tmp_path / name).is_file(), name
        summary = json.loads((tmp_path / "summary.json").read_text())
        rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
        assert len(rows) == 3 and float(rows[-1]["test_acc"]) == pytest.approx(summary["test_acc"])
        assert 0.0 <= summary["test_acc"] <= 1.0 and summary["aug"] == "cutmix"
        # digits is easy: three epochs with CutMix must beat chance (10 %) by far.
        assert summary["test_acc"] > 0.5
        assert "test_acc" in capsys.readouterr().out

    def test_same_seed_same_weights(self, tmp_path):
        assert _run(tmp_path / "a", "--aug", "mixup") == 0
        assert _run(tmp_path / "b", "--aug", "mixup") == 0
        a = load_checkpoint(tmp_path / "a/checkpoints/last.pt")["model"]
        b = load_checkpoint(tmp_path / "b/checkpoints/last.pt")["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert _run(tmp_path / "c", "--aug", "mixup", "--seed", "1") == 0
        c = load_checkpoint(tmp_path / "c/checkpoints/last.pt")["model"]
        assert not all(torch.equal(a[k], c[k]) for k in a)

    @pytest.mark.parametrize(
        "args, message",
        [
            (["--aug", "mixupp"], "aug must be one of"),
            (["--set", "bogus=1"], "unknown config key 'bogus'"),
            (["--p", "1.5"], "p must be a number in [0, 1]"),
            (["--alpha", "0"], "alpha must be a number > 0"),
            (["--dataset", "cifar10"], "root"),
            (["--config", "/nonexistent.yaml"], "config file not found"),
        ],
    )
    def test_errors_are_one_line(self, tmp_path, capsys, args, message):
        assert _run(tmp_path, *args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "Traceback" not in err and len(err.splitlines()) == 1

    def test_debug_shows_traceback(self, tmp_path):
        with pytest.raises(ValueError, match="aug must be one of"):
            _run(tmp_path, "--aug", "mixupp", "--debug")


class TestShowCommand:
    def test_renders_png(self, tmp_path):
        out = tmp_path / "grid.png"
        assert main(["show", "--dataset", "digits", "--aug", "cutmix", "--output", str(out)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class TestCheckpoint:
    def test_roundtrip_and_truncation(self, tmp_path):
        path = tmp_path / "ck.pt"
        atomic_save({"model": {"w": torch.arange(5.0)}}, path)
        assert torch.equal(load_checkpoint(path)["model"]["w"], torch.arange(5.0))
        assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp file left
        path.write_bytes(path.read_bytes()[:40])
        with pytest.raises(ValueError, match="corrupt"):
            load_checkpoint(path)
        with pytest.raises(FileNotFoundError, match="checkpoint not found"):
            load_checkpoint(tmp_path / "missing.pt")

    def test_malicious_pickle_refused(self, tmp_path):
        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        path = tmp_path / "evil.pt"
        with path.open("wb") as f:
            pickle.dump({"model": Evil()}, f)
        with pytest.raises(ValueError, match="corrupt or not a mixkit checkpoint"):
            load_checkpoint(path)
        assert not marker.exists()


def test_version_flag():
    out = subprocess.run(
        [sys.executable, "-m", "mixkit", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"mixkit {__version__}"


@pytest.mark.parametrize("world_size", ["1", "2"])
def test_entry_exit_code_and_flushed_output(world_size):
    # A torchrun rank leaves through os._exit: the code and the buffered output survive.
    env = {**os.environ, "WORLD_SIZE": world_size, "RANK": "0"}
    out = subprocess.run(
        [sys.executable, "-m", "mixkit", "train", "--epochs", "0"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == "mixkit train: error: epochs must be an int >= 1, got 0"
    listed = subprocess.run(
        [sys.executable, "-m", "mixkit", "recipes"], capture_output=True, text=True, env=env
    )  # stdout is block-buffered into a pipe: lost without the flush before os._exit
    assert listed.returncode == 0 and "mnist_cutmix" in listed.stdout


def _subparsers(parser, prefix=("mixkit",)):
    """(command words, parser) of ``parser`` and every sub-command below it."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, (*prefix, name))


class TestHelp:
    """Every flag of every sub-command explains itself: meaning, choices, default."""

    def test_every_flag_has_meaning_choices_and_default(self):
        checked = 0
        for words, parser in _subparsers(build_parser()):
            text = parser.format_help()
            assert not re.search(r"\bissue\b", text, re.I), " ".join(words)
            assert "``" not in text, " ".join(words)
            for action in parser._actions:
                if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                    continue
                if isinstance(action, argparse._VersionAction):
                    continue
                where = f"{' '.join(words)} {action.option_strings}"
                assert action.help and len(action.help) > 8, where
                choices = action.choices
                if choices is None and str(action.metavar or "").startswith("{"):
                    choices = str(action.metavar)[1:-1].split(",")
                for choice in choices or ():
                    assert str(choice) in text, f"{where}: choice {choice!r} not in the help"
                takes_value = action.nargs != 0 and not isinstance(
                    action, argparse.BooleanOptionalAction
                )
                config_flag = action.default is None and action.dest in _config_dests()
                config_flag = config_flag and not action.required
                if (takes_value and action.default is not None) or config_flag:
                    assert "default" in action.help, where
                checked += takes_value
        assert checked > 150  # the walk really saw the sub-commands' flags

    def test_top_level_description_is_whole_and_plain(self):
        text = " ".join(build_parser().format_help().split())
        assert "``" not in text and "Every flag maps onto a config field" in text

    def test_show_accepts_only_the_flags_it_uses(self, capsys):
        for flag in (["--lr", "1"], ["--resume"], ["--sync-bn"]):
            with pytest.raises(SystemExit) as e:
                build_parser().parse_args(["show", *flag])
            assert e.value.code == 2
            assert "unrecognized arguments" in capsys.readouterr().err

    @pytest.mark.parametrize("device", ["mps", "gpu", "cuda:7"])
    def test_unavailable_device_is_one_line(self, tmp_path, capsys, device):
        if device in available_devices():
            pytest.skip(f"{device} exists here")
        assert _run(tmp_path, "--device", device) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "device must be one of ['cpu'" in err


def _config_dests() -> set[str]:
    """Fields of every config dataclass behind a sub-command (their flags default to None)."""
    from mixkit.experiments.kd import KDExperimentConfig
    from mixkit.experiments.semiseg import SemisegExperimentConfig
    from mixkit.methods.kd.config import AuditConfig, KDConfig
    from mixkit.methods.semiseg.config import SemisegConfig

    classes = (TrainConfig, KDConfig, AuditConfig, SemisegConfig)
    classes += (KDExperimentConfig, SemisegExperimentConfig)
    return {f.name for cls in classes for f in dataclasses.fields(cls)}
