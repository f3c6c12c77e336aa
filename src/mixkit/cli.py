"""``mixkit`` command line. Flags map one-to-one onto config fields (``--batch-size`` ->
``batch_size``); ``--config FILE`` loads a YAML recipe and ``--set key=value`` overrides it.
Errors print one line and exit 2; ``--debug`` shows the traceback."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from mixkit import __version__
from mixkit.config import TrainConfig, build_config, load_yaml, parse_overrides
from mixkit.distributed import env_world_size
from mixkit.options import choices_of, help_line

DESCRIPTION = (
    "mixkit: mixed-sample learning (MixUp, CutMix, ResizeMix, FMix, RecursiveMix, KD with "
    "data augmentation, semi-supervised segmentation). Every flag maps onto a config field; "
    "--config FILE loads a YAML recipe and --set KEY=VALUE overrides any field."
)
# The TrainConfig fields ``mixkit show`` reads (it draws a grid of mixed samples, no training).
SHOW_FIELDS = (
    "dataset", "data_root", "aug", "alpha", "p", "mode", "switch_prob", "label_smoothing",
    "cutout_length", "resizemix_scope", "rm_alpha", "rm_interpolation", "rm_per_sample",
    "seed", "out", "grid_samples",
)  # fmt: skip


def plain_description(doc: str) -> str:
    """The first paragraph of a module docstring as plain text (no RST literals)."""
    first = doc.strip().split("\n\n")[0]
    return " ".join(first.replace("``", "").split())


def add_config_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> None:
    """One flag per field of the config dataclass ``cls`` (``only`` those, less ``skip``);
    the help line is the field's ``option`` text, choices and default. Defaults are None so
    only the flags given override the YAML and ``--set`` layers."""
    keep = None if only is None else set(only)
    skip = set(skip)
    for f in dataclasses.fields(cls):
        if f.name in skip or (keep is not None and f.name not in keep):
            continue
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"dest": f.name, "default": None, "help": help_line(f)}
        default = f.default
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple):
            kw.update(nargs=len(default), type=type(default[0]))
        else:
            kw["type"] = str if default is None else type(default)
            allowed = choices_of(f)
            if allowed is not None:  # checked by the config: one error line, as for YAML
                short = len(allowed) <= 8  # long lists are spelled out in the help line
                kw["metavar"] = "{" + ",".join(map(str, allowed)) + "}" if short else f.name.upper()
            if f.metadata.get("metavar"):
                kw["metavar"] = f.metadata["metavar"]
        parser.add_argument(flag, **kw)


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML recipe file")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixkit", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"mixkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p_train = sub.add_parser("train", help="train a classifier with a mixing augmentation")
    add_config_flags(p_train, TrainConfig)
    add_common_flags(p_train)

    p_show = sub.add_parser("show", help="render a grid of mixed samples without training")
    add_config_flags(p_show, TrainConfig, only=SHOW_FIELDS)
    add_common_flags(p_show)
    p_show.add_argument("--output", default=None, help="PNG path (default OUT/mixed_samples.png)")
    p_train.set_defaults(func=_cmd_train)
    p_show.set_defaults(func=_cmd_show)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def config_from_args(args: argparse.Namespace, cls: type) -> Any:
    layers: list[dict[str, Any]] = []
    if args.config:
        layers.append(load_yaml(args.config))
    layers.append(parse_overrides(args.set))
    names = {f.name for f in dataclasses.fields(cls)}
    layers.append({k: v for k, v in vars(args).items() if k in names and v is not None})
    return build_config(cls, *layers)


def given_flags(args: argparse.Namespace, cls: type) -> list[str]:
    """The ``add_config_flags`` flags of ``cls`` the user passed, as command-line text
    (``--name value``, ``--flag`` / ``--no-flag``): experiments record their exact command."""
    flags = []
    for f in dataclasses.fields(cls):
        v = getattr(args, f.name, None)
        if v is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(v, bool):
            flags.append(flag if v else "--no-" + flag[2:])
        else:
            flags.append(f"{flag} {v}")
    return flags


def _cmd_train(args: argparse.Namespace) -> int:
    from mixkit.recipes import classify

    cfg = config_from_args(args, TrainConfig)
    summary = classify.run(cfg)
    print(
        f"done: test_acc {summary['test_acc']:.4f}  test_loss {summary['test_loss']:.4f}  "
        f"({summary['train_time_s']} s) -> {summary.get('out', cfg.out)}"
    )
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mixkit import data, plots
    from mixkit.methods.recursivemix import RecursiveMix
    from mixkit.recipes.classify import build_mixer

    cfg = config_from_args(args, TrainConfig)
    ds = data.load_dataset(cfg.dataset, cfg.data_root, seed=cfg.seed)
    mixer = build_mixer(cfg, ds.num_classes)
    path = Path(args.output) if args.output else Path(cfg.out or "runs/show") / "mixed_samples.png"
    save_grid = plots.save_mix_grid_for
    if isinstance(mixer, RecursiveMix):  # needs a history: shows a few steps
        save_grid = plots.save_recursive_mix_grid
    save_grid(ds, mixer, max(cfg.grid_samples, 1), path, seed=cfg.seed)
    print(f"wrote {path}")
    return 0


# Each module defines ``add_parser(subparsers)`` that adds its sub-command(s) and calls
# ``set_defaults(func=handler)``; handler(args) -> exit code. Config flags: ``add_config_flags``.
COMMAND_MODULES: list[str] = [
    "mixkit.recipes.experiment",
    "mixkit.recipes.semiseg",
    "mixkit.recipes.semiseg_splits",
    "mixkit.recipes.distill",
    "mixkit.recipes.plot",
    "mixkit.recipes.bench",
    "mixkit.recipes.recipes_cmd",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as e:
        if getattr(args, "debug", False):
            raise
        message = " ".join(str(e).split())  # always one line
        print(f"mixkit {args.command}: error: {message}", file=sys.stderr)
        return 2


def entry() -> None:
    """The ``mixkit`` command and ``python -m mixkit``: run :func:`main` and exit with its code.

    A torchrun rank (``WORLD_SIZE > 1``) leaves with ``os._exit`` once its output is flushed:
    its process group is destroyed and every run file written and closed by then, and the
    interpreter's own exit-time teardown can abort a rank after a gloo group ("terminate
    called without an active exception" from a C++ destructor, no Python frame), failing a
    finished run (BENCHMARKS.md §2c)."""
    code = main()
    if env_world_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
