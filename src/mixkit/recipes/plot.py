"""``mixkit plot RUN_DIR [RUN_DIR ...]``: regenerate the PNGs of run directories.

What each run directory gets (under ``RUN_DIR/plots/``):

- every run with a ``metrics.csv``: ``training_curves.png``, one point per epoch; with a
  ``steps.csv`` also ``training_steps.png``, the per-step loss and learning rate against the
  global step, epochs as light vertical lines;
- ``mixkit train`` runs: ``mixed_samples.png``, the mixed-sample grid with λ, the top-2
  labels and the pasted region outlined (rebuilt from ``config.yaml``: same dataset, mixer
  and seed; RecursiveMix shows three recursive steps with the nested boxes);
- ``mixkit semiseg`` runs: the teacher-student ``distance.png`` (from ``summary.json``) and
  the ``overlay.png`` (ground truth and prediction with a class legend) / ``mix_example.png``
  segmentation figures (from the checkpoint);
- ``mixkit kd-audit`` folders: the T. stddev vs student test-loss scatter.

The semiseg and KD figures come from the plot functions of :mod:`mixkit.methods.semiseg` /
:mod:`mixkit.methods.kd`; a module may also define ``plot_run(run_dir) -> list[Path]``, which then
replaces the built-in steps for its runs. A figure whose function is missing from the
installed mixkit is skipped with a message naming it. A folder that is not a run directory
is searched for run directories below it (e.g. an experiment folder).
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

KINDS = ("train", "distill", "semiseg", "kd-audit", "run")
# Modules searched for a ``plot_run(run_dir)`` hook, per run kind.
HOOKS: dict[str, tuple[str, ...]] = {
    "distill": ("mixkit.methods.kd", "mixkit.recipes.distill"),
    "kd-audit": ("mixkit.methods.kd", "mixkit.recipes.distill"),
    "semiseg": ("mixkit.methods.semiseg", "mixkit.recipes.semiseg"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="regenerate the PNGs of run directories")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directory (or a parent)")
    p.add_argument("--debug", action="store_true", help="show tracebacks on error")
    p.set_defaults(func=_cmd_plot)


def _cmd_plot(args: argparse.Namespace) -> int:
    written = 0
    for folder in args.run_dirs:
        runs = find_runs(folder)
        for run in runs:
            paths = plot_run(run, log=print)
            written += len(paths)
    print(f"wrote {written} PNG file(s)")
    return 0


def _read_config(run: Path) -> dict[str, Any]:
    path = run / "config.yaml"
    if not path.is_file():
        return {}
    cfg = yaml.safe_load(path.read_text())
    return cfg if isinstance(cfg, dict) else {}


def detect_kind(run_dir: str | Path) -> str | None:
    """``train`` / ``distill`` / ``semiseg`` / ``kd-audit`` / ``run`` (metrics only), or None
    when ``run_dir`` is not a run directory."""
    run = Path(run_dir)
    if (run / "audit.json").is_file():
        return "kd-audit"
    cfg = _read_config(run)
    if "teacher" in cfg and "da" in cfg:
        return "distill"
    if "method" in cfg and "split" in cfg:
        return "semiseg"
    if "aug" in cfg and "model" in cfg:
        return "train"
    if (run / "metrics.csv").is_file():
        return "run"
    return None


def find_runs(folder: str | Path) -> list[Path]:
    """``folder`` if it is a run directory, else every run directory below it (sorted).
    Raises FileNotFoundError if there is none."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"run directory not found: {root}")
    if detect_kind(root) is not None:
        return [root]
    found = {
        p.parent
        for name in ("metrics.csv", "audit.json")
        for p in root.rglob(name)
        if detect_kind(p.parent) is not None
    }
    if not found:
        raise FileNotFoundError(
            f"{root} is not a run directory (no metrics.csv, config.yaml or audit.json) "
            "and holds none"
        )
    return sorted(found)


def _hook(kind: str) -> Callable[[Path], list[Path]] | None:
    for name in HOOKS.get(kind, ()):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        fn = getattr(module, "plot_run", None)
        if callable(fn):
            return fn
    return None


def _lookup(module: str, name: str) -> Callable[..., Any] | None:
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def plot_run(run_dir: str | Path, log: Callable[[str], Any] = print) -> list[Path]:
    """Regenerate every figure of one run directory; returns the written paths."""
    run = Path(run_dir)
    kind = detect_kind(run)
    if kind is None:
        raise FileNotFoundError(f"{run} is not a run directory (no metrics.csv/config.yaml)")
    from mixkit import plots

    out = run / "plots"
    written: list[Path] = []

    def wrote(path: Path) -> None:
        written.append(Path(path))
        log(f"wrote {path}")

    def skip(what: str, why: str) -> None:
        log(f"{run}: {what} skipped: {why}")

    if (run / "metrics.csv").is_file():
        wrote(
            plots.save_training_curves(
                run / "metrics.csv", out / "training_curves.png", title=f"{run.name} ({kind})"
            )
        )
    if (run / "steps.csv").is_file():
        wrote(
            plots.save_training_curves(
                run / "steps.csv", out / "training_steps.png", title=f"{run.name}: every step"
            )
        )
    hook = _hook(kind)
    if hook is not None:
        for path in hook(run):
            wrote(path)
        return written
    if kind == "train":
        _plot_train(run, out, wrote, skip)
    elif kind == "semiseg":
        _plot_semiseg(run, out, wrote, skip)
    elif kind == "kd-audit":
        _plot_kd_audit(run, wrote, skip)
    return written


def _plot_train(run: Path, out: Path, wrote: Callable, skip: Callable) -> None:
    from mixkit import data, plots
    from mixkit.config import TrainConfig, build_config
    from mixkit.methods.recursivemix import RecursiveMix
    from mixkit.recipes.classify import build_mixer

    cfg = build_config(TrainConfig, _read_config(run))
    try:
        ds = data.load_dataset(cfg.dataset, cfg.data_root, seed=cfg.seed)
    except FileNotFoundError as e:
        skip("mixed_samples.png", f"dataset not available ({e})")
        return
    mixer = build_mixer(cfg, ds.num_classes)
    save_grid = plots.save_mix_grid_for
    if isinstance(mixer, RecursiveMix):
        save_grid = plots.save_recursive_mix_grid
    n = cfg.grid_samples if cfg.grid_samples > 0 else 16  # the run may have skipped its grid
    wrote(save_grid(ds, mixer, n, out / "mixed_samples.png", seed=cfg.seed))


def _plot_semiseg(run: Path, out: Path, wrote: Callable, skip: Callable) -> None:
    summary_path = run / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    plot_distance = _lookup("mixkit.methods.semiseg.distance", "plot_distance_curves")
    curve = summary.get("curve") or []
    if not curve:
        skip("distance.png", "summary.json holds no teacher-student distance curve")
    elif plot_distance is None:
        fn = "mixkit.methods.semiseg.distance.plot_distance_curves"
        skip("distance.png", f"{fn} is not available")
    else:
        teachers = [k for k in curve[0] if k != "step"]
        curves = {t: ([p["step"] for p in curve], [p[t] for p in curve]) for t in teachers}
        cfg = _read_config(run)
        wrote(
            plot_distance(
                curves,
                out / "distance.png",
                title=f"{summary.get('method', cfg.get('method'))}: teacher-student parameter "
                "distance",
                epoch_steps=cfg.get("iters_per_epoch"),
            )
        )
    names = ("load_data", "resolve_split", "save_overlays", "save_mix_example")
    fns = {n: _lookup("mixkit.recipes.semiseg", n) for n in names}
    build_trainer = _lookup("mixkit.methods.semiseg.trainers", "build_trainer")
    missing = [n for n, f in fns.items() if f is None] + (
        [] if build_trainer else ["build_trainer"]
    )
    ckpt = run / "checkpoints" / "last.pt"
    if missing:
        skip("overlay.png, mix_example.png", f"mixkit.methods.semiseg lacks {', '.join(missing)}")
        return
    if not ckpt.is_file():
        skip("overlay.png, mix_example.png", f"no checkpoint at {ckpt}")
        return
    from mixkit.config import build_config
    from mixkit.methods.semiseg.config import SemisegConfig
    from mixkit.train import load_checkpoint

    cfg = build_config(SemisegConfig, _read_config(run))
    ds = fns["load_data"](cfg)
    _, labeled, unlabeled = fns["resolve_split"](cfg, ds)
    trainer = build_trainer(cfg, ds, labeled, unlabeled)
    trainer.load_state_dict(load_checkpoint(ckpt))
    wrote(fns["save_overlays"](trainer, ds, out / "overlay.png"))
    wrote(fns["save_mix_example"](trainer, ds, out / "mix_example.png"))


def _plot_kd_audit(run: Path, wrote: Callable, skip: Callable) -> None:
    result = json.loads((run / "audit.json").read_text())
    rows = [r for r in result.get("rows", []) if "test_loss_mean" in r]
    scatter = _lookup("mixkit.experiments.kd_audit_report", "save_scatter")
    if "correlation" not in result or len(rows) < 3:
        skip("tstddev_vs_test_loss.png", "audit.json has no student test losses (--students)")
    elif scatter is None:
        fn = "mixkit.experiments.kd_audit_report.save_scatter"
        skip("tstddev_vs_test_loss.png", f"{fn} is not available")
    else:
        title = f"{result.get('teacher_model', '?')} teacher, {result.get('dataset', '?')}"
        wrote(scatter(rows, result["correlation"], run / "tstddev_vs_test_loss.png", title))
