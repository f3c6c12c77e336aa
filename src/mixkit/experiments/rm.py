"""``mixkit experiment rm``: RecursiveMix replication at MNIST-5k / digits scale.

Baseline, MixUp, CutMix and RecursiveMix are trained with ``mixkit train`` (recipe
``mixkit.recipes.classify``) over several seeds at one fixed epoch budget per dataset; the
last-epoch test accuracies are summarised as mean ± sample std in a markdown table
(``docs/rm_replication.md``), a bar plot (``docs/rm_replication.png``) and the BENCHMARKS.md
section "## 3. RecursiveMix replication". Each finished run keeps its
``summary.json``; a rerun with the same settings reuses it (``--force`` retrains).

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
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from mixkit.experiments.markdown import replace_section

SECTION = "## 3. RecursiveMix replication"
# method name -> TrainConfig overrides
METHODS: dict[str, dict[str, Any]] = {
    "baseline": {"aug": "none"},
    "mixup": {"aug": "mixup"},
    "cutmix": {"aug": "cutmix"},
    "recursivemix": {"aug": "recursivemix"},
}
DEFAULT_EPOCHS = {"mnist5k": 10, "digits": 30}
DATASETS = ("mnist5k", "digits")


def add_experiment(sub: argparse._SubParsersAction) -> None:
    from mixkit.cli import plain_description

    p = sub.add_parser(
        "rm",
        help="RecursiveMix vs baseline/MixUp/CutMix over seeds (table + plot)",
        description=plain_description(__doc__),
    )
    p.add_argument(
        "--datasets",
        nargs="+",
        default=list(DATASETS),
        choices=DATASETS,
        help=f"embedded datasets to run on; default {' '.join(DATASETS)}",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=list(METHODS),
        help=f"methods compared; default {' '.join(METHODS)}",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds; default 0 1 2")
    p.add_argument(
        "--epochs",
        nargs="+",
        default=None,
        metavar="N|DATASET=N",
        help="epoch budget: one N for all datasets or DATASET=N pairs "
        f"(default {' '.join(f'{k}={v}' for k, v in DEFAULT_EPOCHS.items())})",
    )
    p.add_argument("--model", default="smallcnn", help="network of every run; default smallcnn")
    p.add_argument(
        "--alpha", type=float, default=1.0, help="MixUp/CutMix Beta(alpha, alpha); default 1.0"
    )
    p.add_argument(
        "--mode",
        default="batch",
        choices=("batch", "elem"),
        help="MixUp/CutMix: one λ per batch or per sample; default batch",
    )
    p.add_argument(
        "--rm-alpha", type=float, default=0.5, help="RecursiveMix largest area; default 0.5"
    )
    p.add_argument(
        "--rm-omega", type=float, default=0.1, help="RecursiveMix ROI loss weight; default 0.1"
    )
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes; default 1")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run; default 1")
    p.add_argument(
        "--out", default="runs/rm_experiment", help="run folders; default runs/rm_experiment"
    )
    p.add_argument("--docs-dir", default="docs", help="where the table and plot go; default docs")
    p.add_argument(
        "--benchmarks",
        default="BENCHMARKS.md",
        help="file whose section 3 is rewritten ('' = skip); default BENCHMARKS.md",
    )
    p.add_argument("--force", action="store_true", help="retrain runs that already finished")
    p.set_defaults(func=run_experiment)


def _epochs(spec: list[str] | None, datasets: list[str]) -> dict[str, int]:
    budget = {d: DEFAULT_EPOCHS[d] for d in datasets}
    for item in spec or []:
        name, _, value = item.rpartition("=")
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"--epochs expects N or DATASET=N, got {item!r}") from None
        if n < 1:
            raise ValueError(f"--epochs must be >= 1, got {item!r}")
        if not name:
            budget = {d: n for d in datasets}
        elif name in budget:
            budget[name] = n
        else:
            raise ValueError(f"--epochs names dataset {name!r}, not one of {datasets}")
    return budget


def _train_one(cfg_dict: dict[str, Any], threads: int) -> dict[str, Any]:
    """Worker: one ``mixkit train`` run (reuses a finished run with identical config)."""
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
        if all(saved.get(k, wanted[k]) == wanted[k] for k in cfg_dict if k in wanted) and all(
            k in saved for k in cfg_dict
        ):
            return json.loads(summary_path.read_text())
    torch.set_num_threads(threads)
    cfg_dict["overwrite"] = True  # not finished with this config: train it again
    return classify.run(TrainConfig(**cfg_dict))


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _command(args: argparse.Namespace, budget: dict[str, int]) -> str:
    parts = [
        f"OMP_NUM_THREADS={args.threads} mixkit experiment rm",
        "--datasets " + " ".join(args.datasets),
        "--methods " + " ".join(args.methods),
        "--seeds " + " ".join(map(str, args.seeds)),
        "--epochs " + " ".join(f"{d}={n}" for d, n in budget.items()),
        f"--model {args.model} --alpha {args.alpha} --mode {args.mode}",
        f"--rm-alpha {args.rm_alpha} --rm-omega {args.rm_omega}",
        f"--jobs {args.jobs} --threads {args.threads}",
    ]
    return " ".join(parts)


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


def run_experiment(args: argparse.Namespace) -> int:
    budget = _epochs(args.epochs, args.datasets)
    if args.jobs < 1 or args.threads < 1:
        raise ValueError(f"--jobs and --threads must be >= 1, got {args.jobs}, {args.threads}")
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds must be distinct, got {args.seeds}")
    jobs: list[tuple[str, str, int, dict[str, Any]]] = []
    for ds in args.datasets:
        for m in args.methods:
            for seed in args.seeds:
                cfg = {
                    "dataset": ds,
                    "model": args.model,
                    "epochs": budget[ds],
                    "seed": seed,
                    "alpha": args.alpha,
                    "mode": args.mode,
                    "rm_alpha": args.rm_alpha,
                    "rm_omega": args.rm_omega,
                    "progress": False,
                    "grid_samples": 0,
                    "out": str(Path(args.out) / ds / m / f"seed{seed}"),
                    "_force": args.force,
                    **METHODS[m],
                }
                jobs.append((ds, m, seed, cfg))
    if args.jobs == 1:
        summaries = [_train_one(dict(cfg), args.threads) for *_, cfg in jobs]
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_train_one, dict(cfg), args.threads) for *_, cfg in jobs]
            summaries = [f.result() for f in futures]
    # Summed training time of the runs (stable when finished runs are reused).
    train_s = sum(float(s.get("train_time_s", 0.0)) for s in summaries)
    acc: dict[str, dict[str, list[float]]] = {
        ds: {m: [] for m in args.methods} for ds in args.datasets
    }
    for (ds, m, seed, _), s in zip(jobs, summaries, strict=True):
        acc[ds][m].append(float(s["test_acc"]))
        print(f"{ds:8s} {m:13s} seed {seed}: test_acc {s['test_acc']:.4f}", flush=True)

    docs = Path(args.docs_dir)
    plot_path = docs / "rm_replication.png"
    _plot(acc, args.methods, plot_path)
    body = _report(args, budget, acc, train_s, plot_path.name)
    (docs / "rm_replication.md").write_text(
        "# RecursiveMix replication\n\n" + body + f"\n![bar plot]({plot_path.name})\n"
    )
    print(body)
    if args.benchmarks:
        rel = os.path.relpath(plot_path, Path(args.benchmarks).resolve().parent)
        replace_section(args.benchmarks, SECTION, body + f"\n![RecursiveMix replication]({rel})\n")
    print(
        f"wrote {docs / 'rm_replication.md'}, {plot_path}"
        + (f", {args.benchmarks}" if args.benchmarks else "")
    )
    return 0


def _report(
    args: argparse.Namespace,
    budget: dict[str, int],
    acc: dict[str, dict[str, list[float]]],
    train_s: float,
    plot_name: str,
) -> str:
    import torch

    seeds = " ".join(map(str, args.seeds))
    lines = [
        f"Machine: {os.cpu_count()}-core CPU, torch {torch.__version__}. "
        f"Training time summed over the {sum(len(v) for d in acc.values() for v in d.values())} "
        f"runs: {train_s / 60:.1f} min ({args.jobs} parallel runs x {args.threads} thread, "
        "shared machine).",
        "",
        "```bash",
        _command(args, budget),
        "```",
        "",
        f"Model `{args.model}`, SGD+Nesterov lr 0.1 cosine, batch 128, weight decay 5e-4, no "
        f"crop/flip; budget {', '.join(f'{d} {n} epochs' for d, n in budget.items())}; seeds "
        f"{seeds} (the seed also draws the train/test split). MixUp/CutMix Beta({args.alpha}, "
        f"{args.alpha}), {args.mode} λ; RecursiveMix α={args.rm_alpha}, ω={args.rm_omega}, "
        "nearest resize, one box per batch, history reset every epoch. Last-epoch test "
        f"accuracy (%), mean ± sample std over {len(args.seeds)} seeds:",
        "",
        "| method | " + " | ".join(acc) + " |",
        "|---|" + "---|" * len(acc),
    ]
    for m in args.methods:
        cells = []
        for ds in acc:
            mean, std = _mean_std([100 * v for v in acc[ds][m]])
            cells.append(f"{mean:.2f} ± {std:.2f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed (" + seeds + "):", ""]
    lines += ["| method | " + " | ".join(acc) + " |", "|---|" + "---|" * len(acc)]
    for m in args.methods:
        cells = [" / ".join(f"{100 * v:.1f}" for v in acc[ds][m]) for ds in acc]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    order = [m for m in ("recursivemix", "cutmix", "baseline") if m in args.methods]
    if len(order) == 3:
        lines += ["", "Paper direction RM ≥ CutMix ≥ baseline (on the means):", ""]
        for ds in acc:
            means = {m: statistics.fmean(acc[ds][m]) * 100 for m in order}
            holds = means["recursivemix"] >= means["cutmix"] >= means["baseline"]
            rel = " vs ".join(f"{m} {means[m]:.2f}" for m in order)
            lines.append(f"- {ds}: {'holds' if holds else 'does NOT hold'} ({rel})")
    lines.append("")
    lines.append(f"Plot: `{plot_name}` (bars = mean, error bars = std, dots = seeds).")
    return "\n".join(lines) + "\n"
