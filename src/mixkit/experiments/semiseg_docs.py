"""What ``mixkit experiment semiseg --write-docs`` writes into docs/: the results block of
``docs/semiseg.md`` (between ``DOC_START`` and ``DOC_END``) and the teacher-student
distance figure ``docs/semiseg_distance.png``."""

from __future__ import annotations

from pathlib import Path

from mixkit.experiments.markdown import replace_block
from mixkit.experiments.semiseg_report import items


def write_doc_page(results: str, path: Path) -> None:
    """The report markdown ``results`` (and the distance figure) between the result markers
    of ``path``; the rest of the page is left as it is."""
    body = results.strip() + "\n![teacher-student distance](semiseg_distance.png)"
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


DOC_START = "<!-- semiseg-experiment:start -->"
DOC_END = "<!-- semiseg-experiment:end -->"
