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
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from mixkit.experiments import common
from mixkit.experiments.semiseg_report import items, report
from mixkit.options import option

SECTION = "## 5. Semi-supervised segmentation"


def _choices(name: str) -> Callable[[], tuple[str, ...]]:
    def get() -> tuple[str, ...]:
        from mixkit.methods.semiseg import config, data, mix

        table = {"methods": config.METHODS, "splits": data.FRACTIONS, "mixes": mix.MIXERS}
        return {**table, "textures": config.BACKGROUNDS}[name]

    return get


@dataclasses.dataclass
class SemisegExperimentConfig(common.ExperimentOutput):
    """Budget of the replication (field names are the CLI flags)."""

    methods: str = option(
        "sup,mt,psmt,dualteacher", "methods compared", choices=_choices("methods"), listed=True
    )
    splits: str = option("1/16,1/4", "labeled fractions", choices=_choices("splits"), listed=True)
    seeds: str = option("0,1,2", "comma-separated run seeds", check=common.int_list("seeds"))
    mixes: str = option(
        "cutmix,classmix,multibox,fmix", "mixers compared", choices=_choices("mixes"), listed=True
    )
    epochs: int = option(8, "epochs of every run", at_least=1)
    iters_per_epoch: int = option(50, "student updates per epoch", at_least=1)
    pretrain_steps: int = option(600, "encoder pretraining steps", at_least=0)
    probe_epochs: int = option(24, "epochs of the teacher-student distance probe", at_least=0)
    texture: str = option(
        "mixed",
        "canvas backgrounds of every run (photo: a photo crop at every pixel)",
        choices=_choices("textures"),
    )
    out: str = option("runs/experiment_semiseg", "folder of every run and the results")


def add_experiment(sub: argparse._SubParsersAction) -> None:
    help_text = "semi-supervised segmentation: sup / MT / PS-MT / Dual Teacher x splits x seeds"
    p = common.add_experiment_parser(
        sub, "semiseg", help_text, __doc__, SemisegExperimentConfig, _cmd
    )
    p.add_argument(
        "--run-set",
        action="append",
        metavar="KEY=VALUE",
        help="override a SemisegConfig key in every run (e.g. width=8)",
    )


def _cmd(args: argparse.Namespace) -> int:
    from mixkit.config import parse_overrides

    cfg = common.experiment_config(args, SemisegExperimentConfig, "semiseg", SECTION)
    if cfg.protocol and args.run_set:
        raise ValueError(
            f"--run-set also given while --protocol {cfg.protocol} governs every "
            "setting; drop it or edit the protocol"
        )
    overrides = parse_overrides(args.run_set)
    res = run_experiment(cfg, command=_command(args), run_overrides=overrides)
    print(res["markdown"])
    return 0


def _command(args: argparse.Namespace) -> str:
    run_sets = [f"--run-set {kv}" for kv in args.run_set or []]
    return common.experiment_command("semiseg", args, SemisegExperimentConfig, run_sets)


def _run_one(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """One run in a worker process with one torch thread; output to the run's log."""
    import contextlib
    import io

    import torch

    from mixkit.methods.semiseg.config import SemisegConfig
    from mixkit.recipes.semiseg import run

    torch.set_num_threads(1)
    cfg = SemisegConfig(**{**cfg_dict, "overwrite": True})  # a run to (re)compute
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
    result = report(cfg, plan, summaries, command, wall, out, next(iter(configs.values())))
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
            texture=cfg.texture,
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
    """``OUT/results.md`` and ``results.json``; with ``write_docs`` also the distance and
    val-mIoU figures, ``docs/semiseg.md`` and the BENCHMARKS.md section."""
    from mixkit.experiments.semiseg_docs import (
        save_distance_figure,
        save_miou_figure,
        write_doc_page,
    )

    docs = common.write_results(out, result["markdown"], result["data"], cfg)
    if docs is not None:
        save_distance_figure(plan, summaries, cfg, docs / "semiseg_distance.png")
        save_miou_figure(plan, out, cfg, docs / "semiseg_val_curves.png")
        write_doc_page(result["markdown"], docs / "semiseg.md")
        common.write_section(cfg, SECTION, result["benchmarks"])


# Fields that never change a run's numbers (bookkeeping only).
NON_NUMERIC = {"resume", "overwrite", "progress", "checkpoint_every", "device"}


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
