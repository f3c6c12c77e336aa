"""The markdown report of ``mixkit experiment semiseg``: the main comparison (mIoU over
seeds per method and split) and its directions against supervised-only, the budget probe,
the CutMix-variations table, the teacher-student distance tables and the fact checks.
``report`` returns the markdown and the same numbers as data (``results.json``)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

METHOD_NAMES = {
    "sup": "supervised only",
    "mt": "mean teacher + CutMix",
    "psmt": "PS-MT",
    "dualteacher": "Dual Teacher",
}
# method -> names of its teachers in the run's metrics (dist_<name>, disagree_<name>, ...)
TEACHERS = (("mt", ("teacher",)), ("psmt", ("t1", "t2")), ("dualteacher", ("t1", "t2")))


def items(s: str) -> list[str]:
    """The entries of a comma-separated config field."""
    return [x.strip() for x in s.split(",") if x.strip()]


def _mean_std(v: list[float]) -> tuple[float, float]:
    v = [x for x in v if not math.isnan(x)]
    if not v:
        return math.nan, math.nan
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def _pm(v: list[float], scale: float = 100.0, digits: int = 1) -> str:
    m, s = _mean_std(v)
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def _by(plan, summaries, **match) -> list[dict[str, Any]]:
    """Summaries of the runs whose plan entry matches (``epochs`` defaults to the main
    budget, so budget-probe runs only appear when asked for)."""
    match.setdefault("epochs", plan[0]["epochs"])
    return [summaries[p["name"]] for p in plan if all(p[k] == v for k, v in match.items())]


def epoch_rows(out: Path, name: str) -> list[dict[str, Any]]:
    """The per-epoch rows of run ``name`` (metrics.csv)."""
    import csv

    rows = []
    with (out / "runs" / name / "metrics.csv").open() as f:
        for row in csv.DictReader(f):
            rows.append({k: (v if k == "active" else float(v)) for k, v in row.items() if v != ""})
    return rows


def distance_rows(plan, summaries, out: Path, split: str) -> list[dict[str, Any]]:
    """Per (method, teacher): mean over seeds of the per-run mean / std over semi epochs of
    the distance, disagreement and KL; plus, for the two-teacher methods, the teacher that
    was active in the epoch and the idle one."""
    rows = []
    for method, teachers in TEACHERS:
        names = [p["name"] for p in plan
                 if (p["method"], p["mix"], p["split"], p["epochs"])
                 == (method, "cutmix", split, plan[0]["epochs"])]  # fmt: skip
        if not names:
            continue
        per_run = [epoch_rows(out, n) for n in names]
        # semi-supervised epochs, the first one left out (teachers still near their init)
        per_run = [[r for r in rows_ if r["active"] not in ("", "warmup")][1:] for rows_ in per_run]
        epochs = sorted({int(r["epoch"]) for rr in per_run for r in rr})
        span = f"{epochs[0]}-{epochs[-1]}" if epochs else "none"
        groups: list[tuple[str, Any]] = [(t, lambda r, t=t: t) for t in teachers]
        if len(teachers) == 2:
            groups += [
                ("active", lambda r: r["active"]),
                ("idle", lambda r: "t2" if r["active"] == "t1" else "t1"),
            ]
        for label, pick in groups:
            row: dict[str, Any] = {"method": method, "teacher": label, "epochs": span}
            for key in ("dist", "disagree", "kl"):
                stats = [_mean_std([r[f"{key}_{pick(r)}"] for r in rr]) for rr in per_run]
                row[key] = (
                    statistics.fmean(m for m, _ in stats),
                    statistics.fmean(sd for _, sd in stats),
                )
            rows.append(row)
    return rows


def report(cfg, plan, summaries, command, wall, out, run_cfg) -> dict[str, Any]:
    """``{"markdown", "benchmarks", "data", "directions"}`` of the finished plan;
    ``run_cfg`` is one run's ``SemisegConfig`` (batch and data sizes, shared by all)."""
    from mixkit.experiments.common import machine as machine_line

    splits, seeds, methods = items(cfg.splits), items(cfg.seeds), items(cfg.methods)
    machine = machine_line()
    data: dict[str, Any] = {"main": {}, "mix": {}, "distance": {}}
    main_table = _main_table(plan, summaries, methods, splits, data)
    loss_table = _labeled_loss_table(plan, out, methods, splits, data)
    directions = _directions(methods, splits, data)
    mix_table = _mix_table(plan, summaries, items(cfg.mixes), splits[0], data)
    dist_table = _distance_tables(plan, summaries, out, splits, data)
    checks = _fact_checks(data["distance"].get(splits[0], []))
    probe_lines = _probe(cfg, plan, summaries, methods, splits[0], seeds[0], data)
    budget = (
        f"{cfg.epochs} epochs x {cfg.iters_per_epoch} iterations = "
        f"{cfg.epochs * cfg.iters_per_epoch} student steps for every run, "
        f"{run_cfg.batch_size} labeled + {run_cfg.unlabeled_batch_size} unlabeled canvases "
        f"per step, encoder pretrained for {cfg.pretrain_steps} steps on "
        "scikit-learn-digit canvases (no MNIST)"
    )
    train_s = sum(float(s.get("train_time_s", 0.0)) for s in summaries.values())
    speed = _speed(cfg, plan, summaries, data)
    md = "\n".join([
        f"Command: `{command}`", "",
        f"Machine: {machine}; {len(plan)} runs, {cfg.jobs} worker process(es), wall time "
        f"{wall / 60:.1f} min (runs reused from an earlier invocation count the time they took "
        f"then), per-run training time summed {train_s / 60:.1f} min. Seeds: "
        f"{', '.join(seeds)}.", "",
        f"Budget: {budget}. Data: {run_cfg.n_train} train / {run_cfg.n_val} val "
        f"{run_cfg.canvas}x{run_cfg.canvas} canvases with 1-{run_cfg.max_digits} MNIST-5k "
        f"digits on `{getattr(cfg, 'texture', 'mixed')}` backgrounds (11 classes, 255 "
        "boundary band), `random` split protocol, split files under "
        "`OUT/splits/`. Metric: val mIoU of the student at the final epoch.", "", speed, "",
        "#### Main comparison (mixer: CutMix)", "", main_table, "", "Directions:", "",
        *directions, "",
        "#### Labeled-batch loss, mean over the last epoch (mixer: CutMix)", "", loss_table, "",
        *probe_lines,
        "#### CutMix variations", "", mix_table, "",
        "#### Teacher-student distance", "", dist_table, "", *checks,
    ])  # fmt: skip
    data.update({"command": command, "machine": machine, "wall_s": wall, "budget": budget})
    return {"markdown": md, "benchmarks": md, "data": data, "directions": directions}


def _main_table(plan, summaries, methods, splits, data) -> str:
    """mIoU mean ± std (and per seed) per method and split, mixer CutMix."""
    lines = ["| method | " + " | ".join(f"mIoU % @ {s} labeled" for s in splits) + " |"]
    lines.append("|---|" + "---|" * len(splits))
    for m in methods:
        cells = []
        for sp in splits:
            runs = _by(plan, summaries, method=m, mix="cutmix", split=sp)
            v = [r["val_miou"] for r in runs]
            data["main"].setdefault(m, {})[sp] = v
            cells.append(_pm(v) + " (" + ", ".join(f"{x * 100:.1f}" for x in v) + ")")
        lines.append(f"| {METHOD_NAMES[m]} | " + " | ".join(cells) + " |")
    first = _by(plan, summaries, split=splits[0])[0]
    n_total = first["num_labeled"] + first["num_unlabeled"]
    n_lab = {sp: _by(plan, summaries, split=sp)[0]["num_labeled"] for sp in splits}
    lines.append("")
    lines.append(
        "Mean ± std over seeds (per-seed values in brackets); labeled canvases: "
        + ", ".join(f"{sp} = {n}" for sp, n in n_lab.items())
        + f" of {n_total}."
    )
    return "\n".join(lines)


def _labeled_loss_table(plan, out: Path, methods, splits, data) -> str:
    """Supervised (labeled-batch) loss, averaged over the last epoch, mean over seeds (per
    seed in brackets), per method and split: how far each method has fitted the labels."""
    lines = ["| method | " + " | ".join(f"loss @ {s} labeled" for s in splits) + " |"]
    lines.append("|---|" + "---|" * len(splits))
    data["loss_sup"] = {}
    for m in methods:
        cells = []
        for sp in splits:
            names = [p["name"] for p in plan
                     if (p["method"], p["mix"], p["split"]) == (m, "cutmix", sp)]  # fmt: skip
            v = [epoch_rows(out, n)[-1]["loss_sup"] for n in names]
            data["loss_sup"].setdefault(m, {})[sp] = v
            mean = statistics.fmean(v) if v else math.nan
            cells.append(f"{mean:.3f} (" + ", ".join(f"{x:.3f}" for x in v) + ")")
        lines.append(f"| {METHOD_NAMES[m]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _directions(methods, splits, data) -> list[str]:
    """Per semi-supervised method: its mean gain over supervised-only and seeds won."""
    directions = []
    if "sup" not in methods:
        return directions
    for m in methods:
        if m == "sup":
            continue
        parts = []
        for sp in splits:
            a, b = data["main"][m][sp], data["main"]["sup"][sp]
            d = (_mean_std(a)[0] - _mean_std(b)[0]) * 100
            wins = sum(x > y for x, y in zip(a, b, strict=True))
            word = "above" if d > 0 else "below"
            parts.append(f"{sp}: {d:+.1f} points, {word} supervised ({wins}/{len(a)} seeds higher)")
        directions.append(f"- {METHOD_NAMES[m]}: " + "; ".join(parts))
    return directions + _decisions(methods, splits[0], data)


def _decisions(methods, split, data) -> list[str]:
    """The pre-registered rule (docs/replication.md) at the first split, on the means:
    MT + CutMix ≥ supervised, and Dual Teacher ≥ PS-MT."""
    out = []
    for a, b in (("mt", "sup"), ("dualteacher", "psmt")):
        if a in methods and b in methods:
            ma, mb = (_mean_std(data["main"][k][split])[0] * 100 for k in (a, b))
            verdict = "holds" if ma >= mb else "does NOT hold"
            out.append(f"- Paper direction {METHOD_NAMES[a]} ≥ {METHOD_NAMES[b]} at {split}: "
                       f"**{verdict}** ({ma:.2f} vs {mb:.2f}).")  # fmt: skip
    return out


def _mix_table(plan, summaries, mixes, split, data) -> str:
    """Mean teacher with each mixer at ``split``: student and teacher mIoU."""
    lines = [f"| mixer (mean teacher, {split} labeled) | student mIoU % | teacher mIoU % |",
             "|---|---|---|"]  # fmt: skip
    for mix in mixes:
        runs = _by(plan, summaries, method="mt", mix=mix, split=split)
        v = [r["val_miou"] for r in runs]
        tv = [r["teacher_miou"]["teacher"] for r in runs]
        data["mix"][mix] = {"student": v, "teacher": tv}
        lines.append(f"| {mix} | {_pm(v)} | {_pm(tv)} |")
    return "\n".join(lines)


def _distance_tables(plan, summaries, out, splits, data) -> str:
    """One teacher-student distance table per split."""
    tables = []
    for sp in splits:
        rows = distance_rows(plan, summaries, out, sp)
        data["distance"][sp] = rows
        spans = "; ".join(
            dict.fromkeys(f"{METHOD_NAMES[r['method']]} epochs {r['epochs']}" for r in rows)
        )
        t = [f"Split {sp}: mean over seeds of the per-run mean ± std over epochs, measured at "
             "each epoch end, over the semi-supervised epochs except the first (PS-MT: also "
             f"after its warm-up) -- {spans}. `active` = the teacher updated during that "
             "epoch, `idle` = the frozen one.", "",
             "| method | teacher | ‖θ_T − θ_S‖₂ | pixel disagreement % | KL(T‖S) per pixel ×100 |",
             "|---|---|---|---|---|"]  # fmt: skip
        for r in rows:
            cells = [f"{r['dist'][0]:.3f} ± {r['dist'][1]:.3f}"]
            cells += [f"{r[k][0] * 100:.2f} ± {r[k][1] * 100:.2f}" for k in ("disagree", "kl")]
            t.append(
                f"| {METHOD_NAMES[r['method']]} | {r['teacher']} | " + " | ".join(cells) + " |"
            )
        tables.append("\n".join(t))
    return "\n\n".join(tables)


def _probe(cfg, plan, summaries, methods, split, seed, data) -> list[str]:
    """Budget probe: each method's mIoU after the main budget and after ``probe_epochs``."""
    if not cfg.probe_epochs:
        return []
    steps = cfg.probe_epochs * cfg.iters_per_epoch
    lines = [
        f"#### Budget probe ({split} labeled, seed {seed})", "",
        f"| method | mIoU % after {cfg.epochs * cfg.iters_per_epoch} steps | mIoU % after "
        f"{steps} steps |", "|---|---|---|",
    ]  # fmt: skip
    data["probe"] = {}
    for m in methods:
        short = _by(plan, summaries, method=m, mix="cutmix", split=split, seed=int(seed))
        long = _by(plan, summaries, method=m, mix="cutmix", split=split, seed=int(seed),
                   epochs=cfg.probe_epochs)  # fmt: skip
        a, b = short[0]["val_miou"], long[0]["val_miou"]
        data["probe"][m] = {"short": a, "long": b}
        lines.append(f"| {METHOD_NAMES[m]} | {a * 100:.1f} | {b * 100:.1f} |")
    lines.append("")
    return lines


def _speed(cfg, plan, summaries, data) -> str:
    """Throughput from the runs themselves: training seconds per epoch, per method."""
    per_epoch: dict[str, list[float]] = {}
    for p in plan:
        s = summaries[p["name"]]
        if "train_time_s" in s and s.get("epochs"):
            per_epoch.setdefault(p["method"], []).append(s["train_time_s"] / s["epochs"])
    data["seconds_per_epoch"] = {m: statistics.fmean(v) for m, v in per_epoch.items()}
    return (
        f"Speed: training seconds per epoch ({cfg.iters_per_epoch} steps), mean over the runs "
        f"(1 thread each, {cfg.jobs} runs at a time): "
        + ", ".join(f"{METHOD_NAMES[m]} {v:.1f} s" for m, v in data["seconds_per_epoch"].items())
        + "."
    )


def _fact_checks(rows: list[dict[str, Any]]) -> list[str]:
    """The teacher-student distances of the first split stated from the numbers: Dual
    Teacher's active and idle teachers (the active one re-copied from the student at the
    start of its shift, official ``naver-ai/dual-teacher`` ``tools/train.py::train_dual``)
    against a single EMA teacher (0.99), and PS-MT's on-duty teacher."""
    get = {(r["method"], r["teacher"]): r["dist"][0] for r in rows}
    out = []
    mt = get.get(("mt", "teacher"))
    act, idle = get.get(("dualteacher", "active")), get.get(("dualteacher", "idle"))
    if mt is not None and act is not None and idle is not None:
        out.append(
            f"- Dual Teacher distance vs a single EMA teacher (0.99): active teacher "
            f"{act:.3f}, idle teacher {idle:.3f}, mean teacher {mt:.3f} — the active one is "
            f"{'larger' if act > mt else 'smaller'} and the idle one "
            f"{'larger' if idle > mt else 'smaller'} than the mean teacher's."
        )
        out.append(
            f"- At each switch the pseudo-labelling teacher changes from the active one "
            f"({act:.3f}) to the idle one ({idle:.3f}, {idle / max(act, 1e-12):.1f}x) and is "
            "then re-copied from the student (distance 0 after the first step); see the curves."
        )
    pa = get.get(("psmt", "active"))
    if pa is not None:
        out.append(f"- PS-MT on-duty teacher distance {pa:.3f} (EMA 0.996).")
    return out
