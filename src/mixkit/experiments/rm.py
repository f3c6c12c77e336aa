"""``mixkit experiment rm``: RecursiveMix against baseline, MixUp and CutMix over seeds.

Every method is trained with ``mixkit train`` (recipe ``mixkit.recipes.classify``) over
several seeds at one epoch budget; the last-epoch test accuracies are summarised as mean ±
sample std in ``OUT/results.md`` with a bar plot and the baseline's train/test loss curves
(the regime the budget was chosen for); ``--write-docs`` also writes
``docs/rm_replication.md`` and the BENCHMARKS.md section "## 3. RecursiveMix replication".
Each finished run keeps its ``summary.json``; a rerun with the same settings reuses it
(``--force`` retrains).

The paper's claim checked here: accuracy RM ≥ CutMix ≥ baseline (ImageNet ResNet-50:
79.20 / 78.60 / 76.32, ``implus/RecursiveMix-pytorch`` README.md). MixUp/CutMix use one λ per
batch (``--mode batch``) like the official code's ``utils.py::mixup/cutmix``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from mixkit.experiments import common
from mixkit.options import comma_list, option

SECTION = "## 3. RecursiveMix replication"
# method name -> TrainConfig overrides
METHODS: dict[str, dict[str, Any]] = {
    "baseline": {"aug": "none"},
    "mixup": {"aug": "mixup"},
    "cutmix": {"aug": "cutmix"},
    "recursivemix": {"aug": "recursivemix"},
}
DATASETS = ("mnistm5k", "mnist5k", "digits")


@dataclasses.dataclass
class RMExperimentConfig(common.ExperimentOutput):
    """Budget of the replication (field names are the CLI flags)."""

    datasets: str = option("mnistm5k,mnist5k", "embedded datasets", choices=DATASETS, listed=True)
    methods: str = option(
        ",".join(METHODS), "methods compared", choices=tuple(METHODS), listed=True
    )
    seeds: str = option("0,1,2", "comma-separated run seeds", check=common.int_list("seeds"))
    epochs: int = option(30, "epochs of every run", at_least=1)
    model: str = option("resnet8", "network of every run (a mixkit.models name)")
    batch_size: int = option(128, "batch size of every run", at_least=1)
    lr: float = option(0.1, "peak SGD learning rate (cosine, Nesterov)", above=0)
    weight_decay: float = option(5e-4, "SGD weight decay", at_least=0)
    crop: bool = option(True, "random crop after zero padding 4 before mixing")
    flip: bool = option(False, "with --crop: also flip horizontally (off: digits change)")
    alpha: float = option(1.0, "MixUp/CutMix Beta(alpha, alpha)", above=0)
    mode: str = option(
        "batch", "MixUp/CutMix: one λ per batch or per sample", choices=("batch", "elem")
    )
    rm_alpha: float = option(0.5, "RecursiveMix largest pasted area", above=0, at_most=1)
    rm_omega: float = option(0.1, "RecursiveMix ROI loss weight", at_least=0)
    out: str = option("runs/rm_experiment", "folder of every run and the results")

    @property
    def seed_list(self) -> list[int]:
        return [int(s) for s in comma_list(self.seeds)]

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(set(self.seed_list)) != len(self.seed_list):
            raise ValueError(f"seeds must be distinct, got {self.seeds!r}")


def add_experiment(sub: argparse._SubParsersAction) -> None:
    help_text = "RecursiveMix vs baseline/MixUp/CutMix over seeds (table + plot)"
    common.add_study(sub, "rm", help_text, __doc__, RMExperimentConfig, SECTION, run_experiment)


def _train_one(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """Worker: one ``mixkit train`` run with one torch thread (reuses a finished run with
    the same settings)."""
    import torch
    import yaml

    from mixkit.config import TrainConfig
    from mixkit.recipes import classify

    out = Path(cfg_dict["out"])
    summary_path = out / "summary.json"
    if not cfg_dict.pop("_force") and summary_path.is_file() and (out / "config.yaml").is_file():
        saved = yaml.safe_load((out / "config.yaml").read_text()) or {}
        wanted = yaml.safe_load(yaml.safe_dump(dataclasses.asdict(TrainConfig(**cfg_dict))))
        # Every setting the experiment chooses must match; keys added to TrainConfig after
        # the run was made keep their defaults and are not compared.
        if all(saved.get(k) == wanted[k] for k in cfg_dict if k in wanted):
            return json.loads(summary_path.read_text())
    torch.set_num_threads(1)
    cfg_dict["overwrite"] = True  # not finished with these settings: train it again
    return classify.run(TrainConfig(**cfg_dict))


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _jobs(cfg: RMExperimentConfig) -> list[tuple[str, str, int, dict[str, Any]]]:
    """(dataset, method, seed, TrainConfig dict) of every run."""
    jobs = []
    for ds in comma_list(cfg.datasets):
        for m in comma_list(cfg.methods):
            for seed in cfg.seed_list:
                train = {
                    "dataset": ds,
                    "model": cfg.model,
                    "epochs": cfg.epochs,
                    "batch_size": cfg.batch_size,
                    "lr": cfg.lr,
                    "weight_decay": cfg.weight_decay,
                    "crop_flip": cfg.crop,
                    "flip": cfg.flip,
                    "seed": seed,
                    "alpha": cfg.alpha,
                    "mode": cfg.mode,
                    "rm_alpha": cfg.rm_alpha,
                    "rm_omega": cfg.rm_omega,
                    "progress": False,
                    "grid_samples": 0,
                    "out": str(Path(cfg.out) / ds / m / f"seed{seed}"),
                    "_force": cfg.force,
                    **METHODS[m],
                }
                jobs.append((ds, m, seed, train))
    return jobs


def run_experiment(cfg: RMExperimentConfig, command: str = "") -> dict[str, Any]:
    """Train (or reuse) every run, then write the table, the plots and the docs."""
    jobs = _jobs(cfg)
    start = time.time()
    if cfg.jobs == 1:
        summaries = [_train_one(dict(train)) for *_, train in jobs]
    else:
        with ProcessPoolExecutor(cfg.jobs, mp_context=get_context("spawn")) as pool:
            summaries = list(pool.map(_train_one, [dict(train) for *_, train in jobs]))
    wall = time.time() - start
    datasets, methods = comma_list(cfg.datasets), comma_list(cfg.methods)
    acc: dict[str, dict[str, list[float]]] = {ds: {m: [] for m in methods} for ds in datasets}
    for (ds, m, seed, _), s in zip(jobs, summaries, strict=True):
        acc[ds][m].append(float(s["test_acc"]))
        print(f"{ds:8s} {m:13s} seed {seed}: test_acc {s['test_acc']:.4f}", flush=True)
    # Summed training time of the runs (stable when finished runs are reused).
    train_s = sum(float(s.get("train_time_s", 0.0)) for s in summaries)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(acc, methods, out / "rm_replication.png")
    curves = {ds: out / ds / "baseline" / f"seed{cfg.seed_list[0]}" / "metrics.csv"
              for ds in datasets if "baseline" in methods}  # fmt: skip
    curves = {ds: path for ds, path in curves.items() if path.is_file()}
    if curves:
        plot_loss_curves(curves, out / "rm_baseline_curve.png")
    _plot_test_curves(cfg, datasets, methods, out / "rm_test_curves.png")
    md = _report(cfg, command, acc, train_s, wall, bool(curves))
    docs = common.write_results(out, md, {"test_acc": acc, "wall_s": round(wall, 1)}, cfg)
    if docs is not None:
        import shutil

        for name in ("rm_replication.png", "rm_baseline_curve.png", "rm_test_curves.png"):
            if (out / name).is_file():
                shutil.copyfile(out / name, docs / name)
        (docs / "rm_replication.md").write_text("# RecursiveMix replication\n\n" + md)
        if cfg.benchmarks:
            rel = os.path.relpath(docs, Path(cfg.benchmarks).resolve().parent)
            common.write_section(cfg, SECTION, md.replace("](rm_", f"]({rel}/rm_"))
    return {"test_acc": acc, "markdown": md}


def _plot(acc: dict[str, dict[str, list[float]]], methods: list[str], path: Path) -> None:
    import matplotlib.pyplot as plt

    from mixkit import plots  # selects the Agg backend

    datasets = list(acc)
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    colors = ["#888888", "#4c72b0", "#dd8452", "#55a868"]
    for ax, ds in zip(axes[0], datasets, strict=True):
        lows = []
        for i, m in enumerate(methods):
            vals = [100 * v for v in acc[ds][m]]
            mean, std = _mean_std(vals)
            ax.bar(i, mean, yerr=std, color=colors[i % len(colors)], capsize=4, alpha=0.85)
            ax.scatter([i] * len(vals), vals, color="black", s=10, zorder=3)
            lows.append(min(vals) - std)
        ax.set_xticks(range(len(methods)), methods, rotation=15)
        highs = [max(100 * v for v in acc[ds][m]) for m in methods]
        ax.set_ylim(max(0.0, min(lows) - 1.0), min(100.0, max(highs) + 1.0) + 0.2)
        ax.set_ylabel("last-epoch test accuracy (%)")
        ax.set_title(f"{ds} (mean ± std, dots = seeds)", fontsize=9)
    plots.save_figure(fig, path)


def plot_loss_curves(curves: dict[str, Path], path: Path) -> None:
    """Train and test loss per epoch of runs (label -> their ``metrics.csv``), one panel
    each: the regime a budget was chosen for."""
    import csv

    import matplotlib.pyplot as plt

    from mixkit import plots  # selects the Agg backend

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.2), squeeze=False)
    for ax, (label, csv_path) in zip(axes[0], curves.items(), strict=True):
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        epochs = [int(r["epoch"]) for r in rows]
        for key, color in (("train_loss", "#4c72b0"), ("test_loss", "#dd8452")):
            ax.plot(epochs, [float(r[key]) for r in rows], color=color, label=key)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=8)
    plots.save_figure(fig, path)


def _plot_test_curves(
    cfg: RMExperimentConfig, datasets: list[str], methods: list[str], path: Path
) -> None:
    """Test loss and accuracy per epoch of every method (first seed), a column per dataset;
    nothing when the runs left no ``metrics.csv``."""
    import csv

    import matplotlib.pyplot as plt

    from mixkit import plots  # selects the Agg backend

    seed = cfg.seed_list[0]
    found = {(ds, m): Path(cfg.out) / ds / m / f"seed{seed}" / "metrics.csv"
             for ds in datasets for m in methods}  # fmt: skip
    if not all(p.is_file() for p in found.values()):
        return
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.2 * len(datasets), 6), squeeze=False)
    for col, ds in enumerate(datasets):
        for m in methods:
            with open(found[ds, m], newline="") as f:
                rows = list(csv.DictReader(f))
            epochs = [int(r["epoch"]) for r in rows]
            axes[0][col].plot(epochs, [float(r["test_loss"]) for r in rows], label=m)
            axes[1][col].plot(epochs, [100 * float(r["test_acc"]) for r in rows], label=m)
        axes[0][col].set_yscale("log")
        axes[0][col].set_title(f"{ds}: test loss (seed {seed})", fontsize=9)
        axes[1][col].set_title(f"{ds}: test accuracy % (seed {seed})", fontsize=9)
        axes[1][col].set_xlabel("epoch")
        axes[0][col].legend(fontsize=7)
    plots.save_figure(fig, path)


def _report(
    cfg: RMExperimentConfig,
    command: str,
    acc: dict[str, dict[str, list[float]]],
    train_s: float,
    wall: float,
    curve: bool,
) -> str:
    methods, n_runs = comma_list(cfg.methods), sum(len(v) for d in acc.values() for v in d.values())
    seeds = " ".join(map(str, cfg.seed_list))
    aug = ("crop (pad 4)" + (" + flip" if cfg.flip else ", no flip")) if cfg.crop else "no crop"
    lines = [
        f"Machine: {common.machine()}. Wall time "
        f"{wall / 60:.1f} min; training time summed over the {n_runs} runs "
        f"{train_s / 60:.1f} min ({cfg.jobs} parallel runs x 1 thread; reused runs count their "
        "first training time).",
        "",
        "```bash",
        command or "OMP_NUM_THREADS=1 mixkit experiment rm --write-docs",
        "```",
        "",
        f"Model `{cfg.model}`, SGD+Nesterov lr {cfg.lr} cosine, batch {cfg.batch_size}, weight "
        f"decay {cfg.weight_decay}, {aug}; {cfg.epochs} epochs; seeds {seeds} (the seed also "
        f"draws the train/test split of the MNIST datasets). MixUp/CutMix Beta({cfg.alpha}, "
        f"{cfg.alpha}), {cfg.mode} λ; RecursiveMix α={cfg.rm_alpha}, ω={cfg.rm_omega}, nearest "
        "resize, one box per batch, history reset every epoch. Last-epoch test accuracy (%), "
        f"mean ± sample std over {len(cfg.seed_list)} seeds:",
        "",
        "| method | " + " | ".join(acc) + " |",
        "|---|" + "---|" * len(acc),
    ]
    for m in methods:
        cells = []
        for ds in acc:
            mean, std = _mean_std([100 * v for v in acc[ds][m]])
            cells.append(f"{mean:.2f} ± {std:.2f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed (" + seeds + "):", ""]
    lines += ["| method | " + " | ".join(acc) + " |", "|---|" + "---|" * len(acc)]
    for m in methods:
        cells = [" / ".join(f"{100 * v:.1f}" for v in acc[ds][m]) for ds in acc]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    order = [m for m in ("recursivemix", "cutmix", "baseline") if m in methods]
    if len(order) == 3:
        lines += ["", "Paper direction RM ≥ CutMix ≥ baseline (on the means):", ""]
        for ds in acc:
            means = {m: statistics.fmean(acc[ds][m]) * 100 for m in order}
            holds = means["recursivemix"] >= means["cutmix"] >= means["baseline"]
            rel = " vs ".join(f"{m} {means[m]:.2f}" for m in order)
            lines.append(f"- {ds}: {'holds' if holds else 'does NOT hold'} ({rel})")
    lines += ["", "![bar plot](rm_replication.png)"]
    if curve:
        lines += ["", f"Baseline train/test loss per epoch (seed {cfg.seed_list[0]}):", "",
                  "![baseline loss curves](rm_baseline_curve.png)"]  # fmt: skip
    if (Path(cfg.out) / "rm_test_curves.png").is_file():
        lines += ["", "Test loss and accuracy per epoch of every method:", "",
                  "![test curves](rm_test_curves.png)"]  # fmt: skip
    return "\n".join(lines) + "\n"
