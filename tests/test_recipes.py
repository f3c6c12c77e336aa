"""The bundled paper recipes (``mixkit recipes``): every one is listed with a one-line
description, cites the official source of each value, and runs 2 optimiser steps through
``mixkit train|distill --recipe NAME --data-root DIR`` on tiny fixtures in the real formats
(CIFAR pickles of 20 images, an ImageFolder tree of PNG + JPEG).

Shrunk for the CPU test budget, and only these: the batch size (10 CIFAR / 5 ImageFolder
images, so 2 steps), 1 epoch, no DataLoader workers, no grid; PyramidNet-200 runs at depth
11 (``--set model_args.depth=11``, alpha 240 kept); the ImageNet recipes crop 32x32
(``--image-size 32``; ResNet-50 itself is full size); the recipes' fp16 autocast runs as bf16
(``--amp bf16``: the CPU's fp16 convolutions are ~20x slower; the fp16 GradScaler path is
tested in test_training_features.py). Everything else is the recipe's own value
(schedules, models, DA schemes, loss weights)."""

from __future__ import annotations

import argparse
import re

import pytest
import torch
import yaml
from _disk_fixtures import write_cifar, write_imagefolder

from mixkit import models
from mixkit.cli import main
from mixkit.config import BUNDLED, build_config, recipe_command, recipe_names
from mixkit.methods.kd.config import KDConfig
from mixkit.recipes import recipes_cmd
from mixkit.train import load_checkpoint

PAPER = [n for n in recipe_names() if n.startswith(("kd_", "rm_", "cifar10_pyr", "imagenet_"))]
CITATION = re.compile(r"#.*\b[\w./-]+\.(py|sh|md|log):\d+")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_paper_settings_are_all_there():
    pairs = {(build_config_for(n)["teacher_model"], build_config_for(n)["student"])
             for n in PAPER if n.startswith("kd_")}  # fmt: skip
    assert pairs == {("resnet56", "resnet20"), ("wrn_40_2", "wrn_16_2"),
                     ("resnet32x4", "resnet8x4"), ("vgg13", "vgg8")}  # fmt: skip
    rm = {n: build_config_for(n) for n in PAPER if not n.startswith("kd_")}
    assert {(c["dataset"], c["aug"]) for c in rm.values()} == {
        (d, a) for d in ("cifar10", "imagefolder") for a in ("recursivemix", "cutmix", "mixup")
    }
    assert rm["rm_cifar10_pyramidnet200"]["rm_omega"] == 0.1
    assert rm["rm_imagenet_resnet50"]["rm_omega"] == 0.5


def build_config_for(name: str) -> dict:
    return yaml.safe_load((BUNDLED / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", PAPER)
def test_first_line_describes_and_every_value_cites_its_source(name):
    lines = (BUNDLED / f"{name}.yaml").read_text().splitlines()
    assert lines[0].startswith("# ") and len(lines[0]) > 30
    values = [line for line in lines if line and not line.startswith("#")]
    uncited = [line for line in values if not CITATION.search(line)]
    assert values and not uncited, uncited


def test_listing_one_line_per_recipe(capsys):
    parser = argparse.ArgumentParser()
    recipes_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["recipes"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(recipe_names())
    for line, name in zip(out, recipe_names(), strict=True):
        assert line.split()[:3] == [name, "mixkit", recipe_command(name)]
        assert recipes_cmd.describe(name) in line and recipes_cmd.describe(name)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "cifar10": write_cifar(root / "c10", 10),
        "cifar100": write_cifar(root / "c100", 100),
        "imagefolder": write_imagefolder(root / "if"),
    }


COMMON = ["--epochs", "1", "--workers", "0", "--no-progress"]


@pytest.mark.parametrize("name", [n for n in PAPER if recipe_command(n) == "train"])
def test_train_recipe_runs_two_steps(tmp_path, data, name):
    cfg = build_config_for(name)
    out = tmp_path / "run"
    argv = ["train", "--recipe", name, "--data-root", str(data[cfg["dataset"]]), *COMMON]
    argv += ["--grid-samples", "0", "--out", str(out)]
    if cfg["dataset"] == "imagefolder":
        argv += ["--batch-size", "5", "--image-size", "32"]
    else:
        argv += ["--batch-size", "10"]
    if cfg["model"] == "pyramidnet":
        argv += ["--set", "model_args.depth=11"]
    assert cfg["amp"] == "fp16"  # the official AMP
    assert main([*argv, "--amp", "bf16"]) == 0
    saved = load_checkpoint(out / "checkpoints" / "last.pt")
    assert saved["step"] == 2 and saved["config"]["recipe"] == name
    assert saved["config"]["lr"] == cfg["lr"] and saved["config"]["aug"] == cfg["aug"]
    assert saved["config"]["model_args"] == (
        None if cfg["model"] != "pyramidnet" else {**cfg["model_args"], "depth": 11}
    )


@pytest.mark.parametrize("name", [n for n in PAPER if recipe_command(n) == "distill"])
def test_distill_recipe_runs_two_steps(tmp_path, data, name):
    cfg = build_config_for(name)
    teacher = tmp_path / "teacher.pth"  # a bare state_dict, as RepDistiller's checkpoints
    torch.save({"model": models.build_model(cfg["teacher_model"], 100, 3).state_dict()}, teacher)
    out = tmp_path / "kd"
    argv = ["distill", "--recipe", name, "--teacher", str(teacher), *COMMON]
    argv += ["--data-root", str(data["cifar100"]), "--batch-size", "10", "--out", str(out)]
    assert main(argv) == 0
    saved = load_checkpoint(out / "checkpoints" / "last.pt")
    assert saved["step"] == 2 and saved["config"]["lr_milestones"] == "150,180,210"
    assert saved["config"]["da"] == "cutmix_pick_t" and saved["config"]["nesterov"] is False


def test_recipe_layers_flags_over_set_over_recipe():
    cfg = build_config(
        KDConfig,
        {"recipe": "kd_cifar100_resnet56_resnet20"},
        {"lr": 0.01, "epochs": 3},  # --set
        {"epochs": 5},  # flags
    )
    assert (cfg.lr, cfg.epochs, cfg.batch_size, cfg.student) == (0.01, 5, 64, "resnet20")
