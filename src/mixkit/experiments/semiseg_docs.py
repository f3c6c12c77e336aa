"""What ``mixkit experiment semiseg --write-docs`` writes into docs/: the results block of
``docs/semiseg.md`` (between ``DOC_START`` and ``DOC_END``), the teacher-student
distance figure ``docs/semiseg_distance.png`` and the per-epoch val mIoU figure
``docs/semiseg_val_curves.png``."""

from __future__ import annotations

from pathlib import Path

from mixkit.experiments.markdown import replace_block
from mixkit.experiments.semiseg_report import METHOD_NAMES, epoch_rows, items


def write_doc_page(results: str, path: Path) -> None:
    """The report markdown ``results`` (and the distance figure) between the result markers
    of ``path``; the rest of the page is left as it is."""
    body = results.strip() + (
        "\n![teacher-student distance](semiseg_distance.png)\n\n"
        "Student val mIoU after each epoch, mean over seeds (band: lowest to highest seed):\n\n"
        "![val mIoU per epoch](semiseg_val_curves.png)"
    )
    replace_block(path, DOC_START, DOC_END, body)


def save_distance_figure(plan, summaries, cfg, path: Path) -> None:
    """Parameter-distance curves of the first seed at the first split for MT, PS-MT and DT."""
    from mixkit.methods.semiseg.distance import plot_distance_curves

    split = items(cfg.splits)[0]
    seed = int(items(cfg.seeds)[0])
    curves = {}
    for method, label in (("mt", "MT"), ("psmt", "PS-MT"), ("dualteacher", "Dual Teacher")):
        runs = [
            summaries[p["name"]]
            for p in plan
            if p["method"] == method and p["mix"] == "cutmix" and p["split"] == split
            and p["seed"] == seed
        ]  # fmt: skip
        if not runs or not runs[0]["curve"]:
            continue
        curve = runs[0]["curve"]
        for t in [k for k in curve[0] if k != "step"]:
            curves[f"{label} {t}"] = ([p["step"] for p in curve], [p[t] for p in curve])
    if curves:
        plot_distance_curves(
            curves, path, epoch_steps=cfg.iters_per_epoch,
            title=f"teacher-student parameter distance (split {split}, seed {seed})",
        )  # fmt: skip


def save_miou_figure(plan, out: Path, cfg, path: Path) -> None:
    """Student val mIoU per epoch of every method with the CutMix mixer, one panel per
    split: the mean over seeds as a line, the seed range as a band."""
    import matplotlib.pyplot as plt

    from mixkit.plots import save_figure  # selects the Agg backend

    splits = items(cfg.splits)
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 3.6), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        for method in items(cfg.methods):
            names = [p["name"] for p in plan if (p["method"], p["mix"], p["split"])
                     == (method, "cutmix", split) and p["epochs"] == cfg.epochs]  # fmt: skip
            runs = [[r["val_miou"] * 100 for r in epoch_rows(out, n)] for n in names]
            if not runs:
                continue
            epochs = range(1, min(map(len, runs)) + 1)
            per_epoch = [[run[e - 1] for run in runs] for e in epochs]
            mean = [sum(v) / len(v) for v in per_epoch]
            line = ax.plot(epochs, mean, marker="o", ms=3, label=METHOD_NAMES[method])[0]
            lo, hi = [min(v) for v in per_epoch], [max(v) for v in per_epoch]
            ax.fill_between(epochs, lo, hi, color=line.get_color(), alpha=0.15)
        ax.set(title=f"{split} labeled", xlabel="epoch", ylabel="val mIoU %")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


DOC_START = "<!-- semiseg-experiment:start -->"
DOC_END = "<!-- semiseg-experiment:end -->"
