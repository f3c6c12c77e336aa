"""``mixkit experiment semiseg``: semi-supervised segmentation replication.

One command runs, at a fixed budget (same student steps for every run):

1. supervised vs mean teacher + CutMix vs PS-MT vs Dual Teacher, for each labeled fraction
   (default 1/16 and 1/4) and seed (default 0, 1, 2): mIoU mean ± std;
2. the CutMix-variations table: mean teacher with each mixer (CutMix, ClassMix, multi-box
   CutMix, FMix, no mixing) at the first fraction;
3. the teacher-student distance table (Dual Teacher appendix A3 analogue) with curves.

Runs go to ``OUT/runs/<name>/`` (reused when their ``summary.json`` exists, ``--force``
retrains); the report is ``OUT/results.md``; ``--write-docs`` also writes ``docs/semiseg.md``,
``docs/semiseg_distance.png`` and the BENCHMARKS.md section 5. The tables are built in
:mod:`mixkit.experiments.semiseg_report`, the doc page in :mod:`mixkit.experiments.semiseg_docs`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from mixkit.experiments.markdown import replace_section
from mixkit.experiments.semiseg_report import items, report

SECTION = "## 5. Semi-supervised segmentation"


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
        from mixkit.methods.semiseg.config import METHODS
        from mixkit.methods.semiseg.data import FRACTIONS
        from mixkit.methods.semiseg.mix import MIXERS

        for name, allowed in (("methods", METHODS), ("splits", FRACTIONS), ("mixes", MIXERS)):
            listed = items(getattr(self, name))
            bad = [x for x in listed if x not in allowed]
            if bad or not listed:
                raise ValueError(
                    f"{name} must list values from {list(allowed)}, got {bad or listed}"
                )
        try:
            seeds = [int(s) for s in items(self.seeds)]
        except ValueError:
            raise ValueError(f"seeds must be comma-separated ints, got {self.seeds!r}") from None
        if not seeds:
            raise ValueError("seeds must list at least one int")
        if self.probe_epochs < 0:
            raise ValueError(f"probe_epochs must be >= 0, got {self.probe_epochs!r}")
        for name in ("epochs", "iters_per_epoch", "jobs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")


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
    from mixkit.config import parse_overrides

    cfg = config_from_args(args, SemisegExperimentConfig)
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

    from mixkit.methods.semiseg.config import SemisegConfig
    from mixkit.recipes.semiseg import run

    torch.set_num_threads(1)
    cfg = SemisegConfig(**cfg_dict)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        summary = run(cfg)
    (Path(cfg.out) / "log.txt").write_text(buf.getvalue())
    return summary


def _plan(cfg: SemisegExperimentConfig) -> list[dict[str, Any]]:
    """Every run: the main grid (methods x splits x seeds with CutMix), the mixer grid
    (mean teacher x mixes x seeds at the first split) and the budget probe (every method,
    first split, first seed, ``probe_epochs`` epochs); duplicates merged."""
    splits, seeds = items(cfg.splits), [int(s) for s in items(cfg.seeds)]
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
        for method in items(cfg.methods):
            for seed in seeds:
                add(method, "cutmix", split, seed, "main")
    for mix in items(cfg.mixes):
        for seed in seeds:
            add("mt", mix, splits[0], seed, "mix")
    if cfg.probe_epochs:
        for method in items(cfg.methods):
            add(method, "cutmix", splits[0], seeds[0], "probe", cfg.probe_epochs)
    return list(plan.values())


def run_experiment(
    cfg: SemisegExperimentConfig, command: str = "", run_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run (or reuse) every run of the plan, then aggregate tables, curves and docs."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = _plan(cfg)
    configs = _run_configs(cfg, plan, out, dict(run_overrides or {}))
    start = time.time()
    _prepare_shared(configs)
    pretrain_s = time.time() - start
    summaries, todo = _finished_runs(cfg, configs)
    print(f"semiseg experiment: {len(configs)} runs, {len(todo)} to train", flush=True)
    t0 = time.time()
    summaries.update(_train_runs(cfg, configs, todo))
    wall = _add_wall_time(out / "timing.json", time.time() - t0 + pretrain_s, todo, configs)
    result = report(cfg, plan, summaries, command, wall, out)
    _write_outputs(cfg, out, plan, summaries, result)
    return result


def _run_configs(
    cfg: SemisegExperimentConfig, plan: list[dict[str, Any]], out: Path, overrides: dict
) -> dict[str, Any]:
    """run name -> SemisegConfig of each planned run (``--run-set`` overrides applied)."""
    from mixkit.methods.semiseg.config import SemisegConfig

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
    return configs


def _prepare_shared(configs: dict[str, Any]) -> None:
    """Shared artefacts made once here, so workers never race: data, split files, encoder."""
    from mixkit.methods.semiseg.data import ensure_split
    from mixkit.methods.semiseg.pretrain import cached_pretrained
    from mixkit.recipes.semiseg import load_data

    any_cfg = next(iter(configs.values()))
    ds = load_data(any_cfg)
    for c in configs.values():
        ensure_split(ds, c.split, c.protocol, c.split_seed, c.splits_dir)
    if any_cfg.pretrain_steps > 0:
        cached_pretrained(
            any_cfg.width, any_cfg.canvas, any_cfg.pretrain_steps, any_cfg.pretrain_seed,
            any_cfg.pretrain_cache,
        )  # fmt: skip


def _finished_runs(
    cfg: SemisegExperimentConfig, configs: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Summaries of the runs already finished with the same config, and the names to train."""
    import yaml

    todo = []
    summaries: dict[str, dict[str, Any]] = {}
    for name, c in configs.items():
        s_path = Path(c.out) / "summary.json"
        same_cfg = False
        if s_path.is_file() and not cfg.force:
            old = yaml.safe_load((Path(c.out) / "config.yaml").read_text())
            same_cfg = _same_config(old, c)
        if same_cfg:
            summaries[name] = json.loads(s_path.read_text())
        else:
            todo.append(name)
    return summaries, todo


def _train_runs(
    cfg: SemisegExperimentConfig, configs: dict[str, Any], todo: list[str]
) -> dict[str, dict[str, Any]]:
    """Train the runs of ``todo``, ``cfg.jobs`` worker processes at a time."""
    summaries: dict[str, dict[str, Any]] = {}
    if not todo:
        return summaries
    with ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=get_context("spawn")) as pool:
        futs = {n: pool.submit(_run_one, dataclasses.asdict(configs[n])) for n in todo}
        for n, f in futs.items():
            summaries[n] = f.result()
            print(f"  {n}: mIoU {summaries[n]['val_miou']:.4f}", flush=True)
    return summaries


def _add_wall_time(path: Path, seconds: float, todo: list[str], configs: dict) -> float:
    """Wall time spent training across invocations (a rerun that reuses finished runs adds
    only its own time), so the report states what producing every number cost."""
    timing = (
        json.loads(path.read_text())
        if path.is_file() and todo != list(configs)
        else {"wall_s": 0.0}
    )
    timing["wall_s"] += seconds
    path.write_text(json.dumps(timing) + "\n")
    return timing["wall_s"]


def _write_outputs(
    cfg: SemisegExperimentConfig,
    out: Path,
    plan: list[dict[str, Any]],
    summaries: dict[str, dict[str, Any]],
    result: dict[str, Any],
) -> None:
    """``OUT/results.md`` and ``results.json``; with ``write_docs`` also the distance
    figure, ``docs/semiseg.md`` and the BENCHMARKS.md section."""
    from mixkit.experiments.semiseg_docs import save_distance_figure, write_doc_page
    from mixkit.train import write_json

    (out / "results.md").write_text(result["markdown"] + "\n")
    write_json(result["data"], out / "results.json")
    if cfg.write_docs:
        docs = Path(cfg.docs_dir)
        docs.mkdir(parents=True, exist_ok=True)
        save_distance_figure(plan, summaries, cfg, docs / "semiseg_distance.png")
        write_doc_page(result["markdown"], docs / "semiseg.md")
        replace_section(cfg.benchmarks, SECTION, result["benchmarks"])


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
