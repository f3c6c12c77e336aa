"""``mixkit experiment semiseg``: semi-supervised segmentation replication (issue 5).

One command runs, at a fixed budget (same student steps for every run):

1. supervised vs mean teacher + CutMix vs PS-MT vs Dual Teacher, for each labeled fraction
   (default 1/16 and 1/4) and seed (default 0, 1, 2): mIoU mean ± std;
2. the CutMix-variations table: mean teacher with each mixer (CutMix, ClassMix, multi-box
   CutMix, FMix, no mixing) at the first fraction;
3. the teacher-student distance table (Dual Teacher appendix A3 analogue) with curves.

Runs go to ``OUT/runs/<name>/`` (reused when their ``summary.json`` exists, ``--force``
retrains); the report is ``OUT/results.md``; ``--write-docs`` also writes ``docs/semiseg.md``,
``docs/semiseg_distance.png`` and the BENCHMARKS.md section 5.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from mixkit.markdown import replace_section

__all__ = ["SemisegExperimentConfig", "add_experiment", "run_experiment", "replace_section"]

SECTION = "## 5. Semi-supervised segmentation (issue 5)"
METHOD_NAMES = {
    "sup": "supervised only",
    "mt": "mean teacher + CutMix",
    "psmt": "PS-MT",
    "dualteacher": "Dual Teacher",
}


@dataclasses.dataclass
class SemisegExperimentConfig:
    """Budget of the replication (field names are the CLI flags)."""

    methods: str = "sup,mt,psmt,dualteacher"
    splits: str = "1/16,1/4"
    seeds: str = "0,1,2"
    mixes: str = "cutmix,classmix,multibox,fmix"
    epochs: int = 8
    iters_per_epoch: int = 50
    pretrain_steps: int = 600
    probe_epochs: int = 24
    jobs: int = 2
    out: str = "runs/experiment_semiseg"
    write_docs: bool = False
    docs_dir: str = "docs"
    benchmarks: str = "BENCHMARKS.md"
    force: bool = False

    def __post_init__(self) -> None:
        from mixkit.semiseg.config import METHODS
        from mixkit.semiseg.data import FRACTIONS
        from mixkit.semiseg.mix import MIXERS

        for name, allowed in (("methods", METHODS), ("splits", FRACTIONS), ("mixes", MIXERS)):
            items = _items(getattr(self, name))
            bad = [x for x in items if x not in allowed]
            if bad or not items:
                raise ValueError(
                    f"{name} must list values from {list(allowed)}, got {bad or items}"
                )
        try:
            seeds = [int(s) for s in _items(self.seeds)]
        except ValueError:
            raise ValueError(f"seeds must be comma-separated ints, got {self.seeds!r}") from None
        if not seeds:
            raise ValueError("seeds must list at least one int")
        if self.probe_epochs < 0:
            raise ValueError(f"probe_epochs must be >= 0, got {self.probe_epochs!r}")
        for name in ("epochs", "iters_per_epoch", "jobs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")


def _items(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def add_experiment(sub: argparse._SubParsersAction) -> None:
    from mixkit.cli import add_common_flags, add_config_flags

    p = sub.add_parser(
        "semiseg",
        help="semi-supervised segmentation: sup / MT / PS-MT / Dual Teacher x splits x seeds",
        description=__doc__.splitlines()[0],
    )
    add_config_flags(p, SemisegExperimentConfig)
    add_common_flags(p)
    p.add_argument(
        "--run-set",
        action="append",
        metavar="KEY=VALUE",
        help="override a SemisegConfig key in every run (e.g. width=8)",
    )
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    from mixkit.cli import config_from_args

    cfg = config_from_args(args, SemisegExperimentConfig)
    from mixkit.config import parse_overrides

    overrides = parse_overrides(args.run_set)
    res = run_experiment(cfg, command=_command(args), run_overrides=overrides)
    print(res["markdown"])
    return 0


def _command(args: argparse.Namespace) -> str:
    from mixkit.cli import given_flags

    flags = given_flags(args, SemisegExperimentConfig)
    flags += [f"--run-set {kv}" for kv in args.run_set or []]
    return "OMP_NUM_THREADS=1 mixkit experiment semiseg " + " ".join(flags)


def _run_one(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """One run in a worker process with one torch thread; output to the run's log."""
    import contextlib
    import io

    import torch

    from mixkit.recipes.semiseg import run
    from mixkit.semiseg.config import SemisegConfig

    torch.set_num_threads(1)
    cfg = SemisegConfig(**cfg_dict)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        summary = run(cfg)
    (Path(cfg.out) / "log.txt").write_text(buf.getvalue())
    return summary


def _mean_std(v: list[float]) -> tuple[float, float]:
    v = [x for x in v if not math.isnan(x)]
    if not v:
        return math.nan, math.nan
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def _pm(v: list[float], scale: float = 100.0, digits: int = 1) -> str:
    m, s = _mean_std(v)
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def _plan(cfg: SemisegExperimentConfig) -> list[dict[str, Any]]:
    """Every run: the main grid (methods x splits x seeds with CutMix), the mixer grid
    (mean teacher x mixes x seeds at the first split) and the budget probe (every method,
    first split, first seed, ``probe_epochs`` epochs); duplicates merged."""
    splits, seeds = _items(cfg.splits), [int(s) for s in _items(cfg.seeds)]
    plan: dict[str, dict[str, Any]] = {}

    def add(method: str, mix: str, split: str, seed: int, role: str, epochs: int = 0) -> None:
        epochs = epochs or cfg.epochs
        name = f"{method}_{mix}_{split.replace('/', '-')}_s{seed}"
        if epochs != cfg.epochs:
            name += f"_e{epochs}"
        entry = plan.setdefault(
            name, {"name": name, "method": method, "mix": mix, "split": split, "seed": seed,
                   "epochs": epochs, "roles": []}
        )  # fmt: skip
        entry["roles"].append(role)

    for split in splits:
        for method in _items(cfg.methods):
            for seed in seeds:
                add(method, "cutmix", split, seed, "main")
    for mix in _items(cfg.mixes):
        for seed in seeds:
            add("mt", mix, splits[0], seed, "mix")
    if cfg.probe_epochs:
        for method in _items(cfg.methods):
            add(method, "cutmix", splits[0], seeds[0], "probe", cfg.probe_epochs)
    return list(plan.values())


def run_experiment(
    cfg: SemisegExperimentConfig, command: str = "", run_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run (or reuse) every run of the plan, then aggregate tables, curves and docs."""
    from mixkit.recipes.semiseg import load_data
    from mixkit.semiseg.config import SemisegConfig
    from mixkit.semiseg.data import ensure_split
    from mixkit.semiseg.pretrain import cached_pretrained

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = dict(run_overrides or {})
    plan = _plan(cfg)
    configs: dict[str, SemisegConfig] = {}
    for p in plan:
        fields = dict(
            method=p["method"], mix=p["mix"], split=p["split"], seed=p["seed"],
            epochs=p["epochs"], iters_per_epoch=cfg.iters_per_epoch,
            pretrain_steps=cfg.pretrain_steps, pretrain_cache=str(out / "pretrain"),
            splits_dir=str(out / "splits"), out=str(out / "runs" / p["name"]),
        )  # fmt: skip
        fields.update(overrides)
        configs[p["name"]] = SemisegConfig(**fields)
    # Shared artefacts made once here, so workers never race: data, split files, encoder.
    start = time.time()
    any_cfg = next(iter(configs.values()))
    ds = load_data(any_cfg)
    for c in configs.values():
        ensure_split(ds, c.split, c.protocol, c.split_seed, c.splits_dir)
    if any_cfg.pretrain_steps > 0:
        cached_pretrained(
            any_cfg.width, any_cfg.canvas, any_cfg.pretrain_steps, any_cfg.pretrain_seed,
            any_cfg.pretrain_cache,
        )  # fmt: skip
    pretrain_s = time.time() - start
    todo = []
    summaries: dict[str, dict[str, Any]] = {}
    for name, c in configs.items():
        s_path = Path(c.out) / "summary.json"
        same_cfg = False
        if s_path.is_file() and not cfg.force:
            import yaml

            old = yaml.safe_load((Path(c.out) / "config.yaml").read_text())
            same_cfg = _same_config(old, c)
        if same_cfg:
            summaries[name] = json.loads(s_path.read_text())
        else:
            todo.append(name)
    print(f"semiseg experiment: {len(configs)} runs, {len(todo)} to train", flush=True)
    t0 = time.time()
    if todo:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=ctx) as pool:
            futs = {n: pool.submit(_run_one, dataclasses.asdict(configs[n])) for n in todo}
            for n, f in futs.items():
                summaries[n] = f.result()
                print(f"  {n}: mIoU {summaries[n]['val_miou']:.4f}", flush=True)
    # Wall time spent training across invocations (a rerun that reuses finished runs adds
    # only its own time), so the report states what producing every number cost.
    timing_path = out / "timing.json"
    timing = (
        json.loads(timing_path.read_text())
        if timing_path.is_file() and todo != list(configs)
        else {"wall_s": 0.0}
    )
    timing["wall_s"] += time.time() - t0 + pretrain_s
    timing_path.write_text(json.dumps(timing) + "\n")
    wall = timing["wall_s"]
    report = _report(cfg, plan, summaries, command, wall, out)
    (out / "results.md").write_text(report["markdown"] + "\n")
    write_json_safe(report["data"], out / "results.json")
    if cfg.write_docs:
        docs = Path(cfg.docs_dir)
        docs.mkdir(parents=True, exist_ok=True)
        _distance_figure(plan, summaries, cfg, docs / "semiseg_distance.png")
        _doc_page(report, docs / "semiseg.md")
        replace_section(cfg.benchmarks, SECTION, report["benchmarks"])
    return report


# Fields that never change a run's numbers (bookkeeping only).
NON_NUMERIC = {"resume", "progress", "checkpoint_every", "device"}


def _same_config(saved: dict[str, Any], cfg: Any) -> bool:
    """Whether a finished run (its saved config.yaml) is the run ``cfg`` asks for: equal on
    every field that affects the numbers; a field the saved config predates must still be
    at its default."""
    now = json.loads(json.dumps(dataclasses.asdict(cfg)))
    defaults = json.loads(json.dumps(dataclasses.asdict(type(cfg)())))
    for k, v in now.items():
        if k in NON_NUMERIC:
            continue
        if k in saved:
            if saved[k] != v:
                return False
        elif v != defaults[k]:
            return False
    return True


def write_json_safe(obj: Any, path: Path) -> None:
    from mixkit.train import write_json

    write_json(obj, path)


# ------------------------------------------------------------------------------ report
def _by(plan, summaries, **match) -> list[dict[str, Any]]:
    """Summaries of the runs whose plan entry matches (``epochs`` defaults to the main
    budget, so budget-probe runs only appear when asked for)."""
    match.setdefault("epochs", plan[0]["epochs"])
    return [summaries[p["name"]] for p in plan if all(p[k] == v for k, v in match.items())]


def _epoch_rows(out: Path, name: str) -> list[dict[str, Any]]:
    """The per-epoch rows of run ``name`` (metrics.csv)."""
    import csv

    rows = []
    with (out / "runs" / name / "metrics.csv").open() as f:
        for row in csv.DictReader(f):
            rows.append({k: (v if k == "active" else float(v)) for k, v in row.items() if v != ""})
    return rows


TEACHERS = (("mt", ("teacher",)), ("psmt", ("t1", "t2")), ("dualteacher", ("t1", "t2")))


def _distance_rows(plan, summaries, out: Path, split: str) -> list[dict[str, Any]]:
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
        per_run = [_epoch_rows(out, n) for n in names]
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


def _report(cfg, plan, summaries, command, wall, out) -> dict[str, Any]:
    splits = _items(cfg.splits)
    seeds = _items(cfg.seeds)
    methods = _items(cfg.methods)
    machine = f"2-core CPU, torch {_torch_version()}"
    lines = []
    data: dict[str, Any] = {"main": {}, "mix": {}, "distance": {}}
    # ---- main table
    head = "| method | " + " | ".join(f"mIoU % @ {s} labeled" for s in splits) + " |"
    lines += [head, "|---|" + "---|" * len(splits)]
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
    main_table = "\n".join(lines)
    directions = []
    if "sup" in methods:
        for m in methods:
            if m == "sup":
                continue
            parts = []
            for sp in splits:
                a, b = data["main"][m][sp], data["main"]["sup"][sp]
                d = (_mean_std(a)[0] - _mean_std(b)[0]) * 100
                wins = sum(x > y for x, y in zip(a, b, strict=True))
                word = "above" if d > 0 else "below"
                parts.append(
                    f"{sp}: {d:+.1f} points, {word} supervised ({wins}/{len(a)} seeds higher)"
                )
            directions.append(f"- {METHOD_NAMES[m]}: " + "; ".join(parts))
    # ---- mix table
    mix_lines = [f"| mixer (mean teacher, {splits[0]} labeled) | student mIoU % | teacher mIoU % |",
                 "|---|---|---|"]  # fmt: skip
    for mix in _items(cfg.mixes):
        runs = _by(plan, summaries, method="mt", mix=mix, split=splits[0])
        v = [r["val_miou"] for r in runs]
        tv = [r["teacher_miou"]["teacher"] for r in runs]
        data["mix"][mix] = {"student": v, "teacher": tv}
        mix_lines.append(f"| {mix} | {_pm(v)} | {_pm(tv)} |")
    mix_table = "\n".join(mix_lines)
    # ---- distance tables
    dist_tables = []
    for sp in splits:
        rows = _distance_rows(plan, summaries, out, sp)
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
        dist_tables.append("\n".join(t))
    dist_table = "\n\n".join(dist_tables)
    checks = _fact_checks(data["distance"].get(splits[0], []))
    probe_lines = []
    if cfg.probe_epochs:
        steps = cfg.probe_epochs * cfg.iters_per_epoch
        probe_lines = [
            f"#### Budget probe ({splits[0]} labeled, seed {seeds[0]})", "",
            f"| method | mIoU % after {cfg.epochs * cfg.iters_per_epoch} steps | mIoU % after "
            f"{steps} steps |", "|---|---|---|",
        ]  # fmt: skip
        data["probe"] = {}
        for m in methods:
            short = _by(plan, summaries, method=m, mix="cutmix", split=splits[0],
                        seed=int(seeds[0]))  # fmt: skip
            long = _by(plan, summaries, method=m, mix="cutmix", split=splits[0],
                       seed=int(seeds[0]), epochs=cfg.probe_epochs)  # fmt: skip
            a, b = short[0]["val_miou"], long[0]["val_miou"]
            data["probe"][m] = {"short": a, "long": b}
            probe_lines.append(f"| {METHOD_NAMES[m]} | {a * 100:.1f} | {b * 100:.1f} |")
        probe_lines.append("")
    budget = (
        f"{cfg.epochs} epochs x {cfg.iters_per_epoch} iterations = "
        f"{cfg.epochs * cfg.iters_per_epoch} student steps for every run, 8 labeled + 8 "
        f"unlabeled canvases per step, encoder pretrained for {cfg.pretrain_steps} steps on "
        "scikit-learn-digit canvases (no MNIST)"
    )
    train_s = sum(float(s.get("train_time_s", 0.0)) for s in summaries.values())
    # Throughput from the runs themselves: training seconds per epoch, per method.
    per_epoch: dict[str, list[float]] = {}
    for p in plan:
        s = summaries[p["name"]]
        if "train_time_s" in s and s.get("epochs"):
            per_epoch.setdefault(p["method"], []).append(s["train_time_s"] / s["epochs"])
    data["seconds_per_epoch"] = {m: statistics.fmean(v) for m, v in per_epoch.items()}
    speed = (
        f"Speed: training seconds per epoch ({cfg.iters_per_epoch} steps), mean over the runs "
        f"(1 thread each, {cfg.jobs} runs at a time): "
        + ", ".join(f"{METHOD_NAMES[m]} {v:.1f} s" for m, v in data["seconds_per_epoch"].items())
        + "."
    )
    md = "\n".join([
        f"Command: `{command}`", "",
        f"Machine: {machine}; {len(plan)} runs, {cfg.jobs} worker process(es), wall time "
        f"{wall / 60:.1f} min (runs of an interrupted invocation not counted; the machine was "
        f"shared with other jobs), per-run training time summed {train_s / 60:.1f} min. Seeds: "
        f"{', '.join(seeds)}.", "",
        f"Budget: {budget}. Data: 1000 train / 300 val 48x48 canvases with 1-3 MNIST-5k "
        "digits (11 classes, 255 boundary band), `random` split protocol, split files under "
        "`OUT/splits/`. Metric: val mIoU of the student at the final epoch.", "", speed, "",
        "#### Main comparison (mixer: CutMix)", "", main_table, "", "Directions:", "",
        *directions, "",
        *probe_lines,
        "#### CutMix variations", "", mix_table, "",
        "#### Teacher-student distance", "", dist_table, "", *checks,
    ])  # fmt: skip
    data.update({"command": command, "machine": machine, "wall_s": wall, "budget": budget})
    return {"markdown": md, "benchmarks": md, "data": data, "directions": directions}


def _fact_checks(rows: list[dict[str, Any]]) -> list[str]:
    """REFERENCE.md §3 CPU-checkable fact 3 on the first split, stated from the numbers."""
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


def _torch_version() -> str:
    import torch

    return torch.__version__


def _distance_figure(plan, summaries, cfg, path: Path) -> None:
    """Parameter-distance curves of seed 0 at the first split for MT, PS-MT and DT."""
    from mixkit.semiseg.distance import plot_distance_curves

    split = _items(cfg.splits)[0]
    seed = int(_items(cfg.seeds)[0])
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


def _doc_page(report: dict[str, Any], path: Path) -> None:
    text = DOC_TEMPLATE.format(results=report["markdown"])
    path.write_text(text)


DOC_TEMPLATE = """# Semi-supervised semantic segmentation (issue 5)

`mixkit semiseg` trains a small segmentation net on digit canvases with a few labeled images
and many unlabeled ones, with four methods:

- **sup**: labeled canvases only.
- **mt**: mean teacher + a mixer. The teacher is an EMA of the student (0.99) and labels
  the weak view. The mixer is applied to the images and the teacher's probability maps with
  the same draw. The loss is CE on confident pixels (≥ 0.95).
- **psmt**: PS-MT. Two teachers take turns, one per epoch, and only the one on duty gets
  the EMA update (0.996). The pseudo-labels are the mean of both teachers on the weak
  view. The loss is a strict confidence-weighted CE (threshold 0.6) with a cosine ramp-up.
  T-VAT on the encoder features is available as `--psmt-vat`.
- **dualteacher**: Dual Teacher. Two temporary teachers switch every epoch, paired with
  CutMix and ClassMix in turn. The active teacher is re-copied from the student at the
  start of its shift by `a = min(1 − 1/(i+1), 0.99)`. There is also an implicit-consistency
  term on the strong colour view (threshold 0.95, weight 0.2). EMA of the BN buffers is
  available as `--dt-ema-buffers`.

The algorithms, their defaults and the official code's quirks are in
`shared/REFERENCE.md` §3–4. Each claim in the code is cited by file, e.g.
`VocCode/train.py::cut_mix` or `seg_core/augmentations.py::compute_ic`.

## Data and split protocols

`mixkit.semiseg.data.build_seg_dataset` builds each canvas offline and deterministically
from a seed:

- The canvas is 48×48 and holds 1–3 MNIST-5k digits at random positions and scales (19–30
  px). Half the canvases have a plain tinted background. The other half have a crop of a
  scikit-image photo (`skimage.data`).
- Labels: `digit + 1` on the stroke (ink ≥ 0.5), 0 for background, and 255 on the one-pixel
  ring around the strokes (the VOC boundary band).
- Train canvases use only MNIST-5k train digits, and val canvases only test digits, so the
  two sets share no source digit. A test checks this by hashing the digits.

Split files are JSON lists of labeled and unlabeled indices, stamped with the dataset
fingerprint. The runs reference them by path and sha256 in `summary.json`. There are
three protocols:

- `random`: the CPS-style blended lists.
- `hq`: labeled canvases are drawn only from the high-quality subset, i.e. the
  single-digit canvases, whose labels are clean with no occlusion. This mirrors the VOC
  1464 protocol.
- `hq_first`: labeled canvases are taken from the high-quality subset first, then at
  random (PS-MT's "blended, high-quality first" lists).

Fractions are 1/16, 1/8, 1/4, 1/2 and 1.

## Mixers (`mixkit.semiseg.mix`)

A single `MixParams` draw moves the images, the teacher's probability maps or logits, the
integer label maps and the validity masks together. It goes through
`mixkit.augment.apply_images` / `apply_masks`, and the tests check that every pasted pixel
matches across all four. The mixers:

- **CutMix**: one λ ~ Beta(4, 4) per batch, with a per-sample box position and a
  `randperm` partner, as in both official codes. The official code draws box centres in
  `[W/8, W)` and leaves boxes 1 px short. Neither quirk is copied here, and λ is
  recomputed from the box.
- **ClassMix**: the partner's pixels are pasted for half of the classes the teacher
  predicts in it. The default takes `floor(n/2)` classes as Dual Teacher's `get_bin_mask`
  does; the ClassMix paper's `ceil` is available as `--classmix-half ceil`.
- **Multi-box CutMix**: 3 boxes, each of area (1 − λ)/3.
- **FMix**: a low-frequency mask covering exactly (1 − λ)HW pixels.
- **none**: no mixing.

## Deviations from the official code (all deliberate, all at CPU scale)

- **Net**: DeepLab-lite with about 45k parameters. In place of ImageNet pretraining, the
  encoder is pretrained on canvases drawn from scikit-learn's 8×8 digits (a different
  digit source, no MNIST). Decoders start random, as in the official code.
- **PS-MT teachers**: the official teachers start from a different random init than the
  student and get 5 warm-up epochs. At keep rate 0.996 the EMA needs ~1000 steps to forget
  that init, which is more than this whole budget. So here both teachers start as copies of
  the student's initial weights, then warm up for 1 epoch on their own labeled batches. A
  pilot with separately initialised teachers ended with teacher mIoU falling during
  training (13.7 → 8.4) and a student at 27.5 (seed 0, 1/16).
- **Epochs**: an "epoch" is a fixed number of iterations, so every method and split gets
  the same number of student steps. PS-MT's ramp-up is 2 epochs (the official is 12 of 80).
- **Teacher BatchNorm**: teachers predict with batch statistics, as the official codes do
  (they call the teachers in train mode), but without writing their running buffers. An
  inactive teacher therefore stays bit-for-bit frozen.
- **Dual Teacher**:
  - Implicit consistency uses the unlabeled batch's own validity mask. The official
    `label_u` reads the labeled batch's ground truth.
  - CutMix confidence weights come from the mixed confidence maps. The official code uses
    the unmixed ones.
  - The CutMix-shift loss averages over valid pixels. The official code averages over
    pixels with a loss > 0.
  - No horizontal flip (a flipped digit is a different glyph).
- **Colour jitter**: drawn per sample. The official code calls it on a batch tensor, which
  gives one draw per batch. Hue is rotated in YIQ space.

## Results

{results}
![teacher-student distance](semiseg_distance.png)
"""
