"""``mixkit experiment kd``: Good-DA-in-KD replication at MNIST-5k scale.

1. One teacher trained with ``mixkit train`` (``mixkit.recipes.classify.run``).
2. A student distilled with each DA scheme for x′ over several seeds
   (``mixkit.methods.kd.trainer``).
3. The T. stddev audit of every scheme with the fixed teacher (``mixkit.methods.kd.audit``); the
   student of ``--audit-student`` (seed 0) serves CutMixPick (S. ent.) and the covariance.
4. Pearson / Spearman / Kendall between T. stddev and the mean student test loss, a table and
   a scatter plot: ``OUT/results.md`` and, with ``--write-docs``, the result block of
   ``docs/kd.md``, ``docs/kd_tstddev_scatter.png`` and the BENCHMARKS.md section 4.

Paper claims checked (official code ``MingSun-Tse/Good-DA-in-KD``: ``figs/*.svg`` and
``scripts/T_stddev_different_DA_*.sh``): T. stddev(CutMix) < T. stddev(identity), CutMixPick
(T. ent.) has the lowest T. stddev, and T. stddev correlates with the student test loss.
Finished runs keep their ``summary.json`` and are reused by a rerun (``--force`` retrains).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from mixkit.experiments import common
from mixkit.experiments.kd_report import report
from mixkit.experiments.markdown import replace_block
from mixkit.options import comma_list, option

SECTION = "## 4. Knowledge distillation: T. stddev audit"
DOC_START = "<!-- kd-experiment:start -->"
DOC_END = "<!-- kd-experiment:end -->"
ALL_SCHEMES = "identity,flip,crop_flip,cutout,autoaugment,mixup,cutmix,cutmix_pick_s,cutmix_pick_t"


def _scheme_names() -> list[str]:
    from mixkit.methods.kd.schemes import scheme_names

    return scheme_names()


def _base_augs() -> tuple[str, ...]:
    from mixkit.methods.kd.config import BASE_AUGS

    return BASE_AUGS


@dataclasses.dataclass
class KDExperimentConfig(common.ExperimentOutput):
    """Budget of the replication (field names are the CLI flags)."""

    dataset: str = option("mnist5k", "data of the teacher and the students")
    teacher_model: str = option("smallcnn", "teacher network")
    teacher_epochs: int = option(6, "teacher training epochs", at_least=1)
    student: str = option("tinycnn", "student network")
    da: str = option(ALL_SCHEMES, "DA schemes distilled with", choices=_scheme_names, listed=True)
    seeds: str = option("0,1,2", "comma-separated student seeds", check=common.int_list("seeds"))
    train_subset: int = option(
        300, "students see a class-stratified subset of N training images", at_least=0
    )
    student_epochs: int = option(40, "student training epochs", at_least=1)
    batch_size: int = option(64, "batch size of teacher, students and audit", at_least=1)
    lr: float = option(0.05, "students' peak learning rate", above=0)
    base_aug: str = option("none", "augmentation of x itself", choices=_base_augs)
    crop_pad: int = option(4, "crop schemes: zero padding", at_least=0)
    cutout_length: int = option(8, "cutout: side of the erased square", at_least=1)
    per_batch: bool = option(False, "one DA draw per batch (official behaviour)")
    audit_epochs: int = option(3, "passes of the T. stddev audit", at_least=1)
    group: int = option(128, "probability vectors per stddev group", at_least=2)
    audit_subset: int = option(
        0, "audit on a class-stratified subset of N training images (0: all)", at_least=0
    )
    audit_student: str = option(
        "identity", "scheme of the student whose checkpoint the audit reads", choices=_scheme_names
    )
    out: str = option("runs/kd_experiment", "folder of every run and the results")

    @property
    def schemes(self) -> list[str]:
        return comma_list(self.da)

    @property
    def seed_list(self) -> list[int]:
        return [int(s) for s in comma_list(self.seeds)]


def add_experiment(sub: argparse._SubParsersAction) -> None:
    help_text = "KD with DA: T. stddev vs student test loss over schemes x seeds"
    common.add_study(sub, "kd", help_text, __doc__, KDExperimentConfig, SECTION, run_experiment)


def _distill_one(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """One student run in a fresh process with one torch thread."""
    import torch

    from mixkit.methods.kd.config import KDConfig
    from mixkit.methods.kd.trainer import run

    torch.set_num_threads(1)
    return run(KDConfig(**cfg_dict))


def _mean_std(v: list[float]) -> tuple[float, float]:
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def run_experiment(cfg: KDExperimentConfig, command: str = "") -> dict[str, Any]:
    """Teacher, students (scheme x seed), audit, then the report and the doc blocks."""
    import torch

    from mixkit.methods.kd.schemes import build_scheme

    out = Path(cfg.out)
    start = time.time()
    torch.set_num_threads(cfg.jobs)  # the teacher trains alone: the workers' threads
    teacher, teacher_ckpt = _train_teacher(cfg, out / "teacher")
    torch.set_num_threads(1)
    t_teacher = time.time() - start

    names = {s: build_scheme(s, pick_criterion="teacher_entropy").name for s in cfg.schemes}
    t0 = time.time()
    _distill_students(cfg, _student_jobs(cfg, names, teacher_ckpt, out / "students"))
    t_students = time.time() - t0

    t0 = time.time()
    res = _audit(cfg, names, teacher_ckpt, out)
    t_audit = time.time() - t0
    rows = res["rows"]
    _add_student_results(cfg, names, rows, out / "students")
    total = time.time() - start

    times = {"teacher": t_teacher, "students": t_students, "audit": t_audit, "total": total}
    md = report(cfg, rows, res, teacher, command, times)
    _write_results(cfg, out, md, rows, res, teacher, total)
    return {"rows": rows, "correlation": res.get("correlation"), "markdown": md}


def _train_teacher(cfg: KDExperimentConfig, tdir: Path) -> tuple[dict[str, Any], Path]:
    """Train the teacher with ``mixkit train`` unless a finished run is there; returns its
    summary and checkpoint path."""
    from mixkit.config import TrainConfig
    from mixkit.recipes import classify

    if cfg.force or not (tdir / "summary.json").is_file():
        classify.run(
            TrainConfig(
                dataset=cfg.dataset,
                model=cfg.teacher_model,
                epochs=cfg.teacher_epochs,
                crop_flip=cfg.base_aug != "none",  # the students' augmentation of x
                flip=cfg.base_aug == "crop_flip",
                out=str(tdir),
                overwrite=True,  # a rerun replaces an unfinished teacher run
                progress=False,
                grid_samples=0,
            )
        )
    return json.loads((tdir / "summary.json").read_text()), tdir / "checkpoints" / "last.pt"


def _scheme_fields(cfg: KDExperimentConfig) -> dict[str, Any]:
    """The scheme options the students and the audit share (``SchemeOptions`` fields)."""
    names = ("base_aug", "crop_pad", "cutout_length", "per_batch")
    return {k: getattr(cfg, k) for k in names}


def _student_jobs(
    cfg: KDExperimentConfig, names: dict[str, str], teacher_ckpt: Path, students: Path
) -> list[dict[str, Any]]:
    """KDConfig dicts of the student runs (scheme x seed) not finished yet."""
    from mixkit.methods.kd.config import KDConfig

    jobs = []
    for scheme in cfg.schemes:
        for seed in cfg.seed_list:
            run_dir = students / f"{names[scheme]}_s{seed}"
            if not cfg.force and (run_dir / "summary.json").is_file():
                continue
            kd = KDConfig(
                overwrite=True,  # only unfinished (or --force) runs get here
                teacher=str(teacher_ckpt),
                student=cfg.student,
                da=scheme,
                train_subset=cfg.train_subset,
                epochs=cfg.student_epochs,
                eval_every=cfg.student_epochs,  # test loss of the last epoch only
                batch_size=cfg.batch_size,
                lr=cfg.lr,
                **_scheme_fields(cfg),
                seed=seed,
                out=str(run_dir),
                progress=False,
            )
            jobs.append(dataclasses.asdict(kd))
    return jobs


def _distill_students(cfg: KDExperimentConfig, jobs: list[dict[str, Any]]) -> None:
    """Run the student jobs, ``cfg.jobs`` processes at a time."""
    if cfg.jobs > 1 and len(jobs) > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with ProcessPoolExecutor(cfg.jobs, mp_context=get_context("spawn")) as pool:
            list(pool.map(_distill_one, jobs))
    else:
        for j in jobs:
            _distill_one(j)


def _audit(
    cfg: KDExperimentConfig, names: dict[str, str], teacher_ckpt: Path, out: Path
) -> dict[str, Any]:
    """The T. stddev audit of every scheme with the fixed teacher; the audit student (first
    seed) serves CutMixPick (S. ent.) and the CE covariance."""
    from mixkit.methods.kd import audit
    from mixkit.methods.kd.config import AuditConfig

    audit_name = names.get(cfg.audit_student, cfg.audit_student)
    audit_student = out / "students" / f"{audit_name}_s{cfg.seed_list[0]}"
    acfg = AuditConfig(
        overwrite=True,  # the audit is recomputed on every experiment run
        teacher=str(teacher_ckpt),
        da=",".join(cfg.schemes),
        student_ckpt=str(audit_student / "checkpoints" / "last.pt"),
        students=str(out / "students"),
        epochs=cfg.audit_epochs,
        group=cfg.group,
        **_scheme_fields(cfg),
        train_subset=cfg.audit_subset,
        jobs=cfg.jobs,
        out=str(out / "audit"),
        progress=False,
    )
    return audit.run_audit(acfg)


def _add_student_results(
    cfg: KDExperimentConfig, names: dict[str, str], rows: list[dict[str, Any]], students: Path
) -> None:
    """Per audit row: the students' test accuracy (mean, std) and test loss per seed."""
    losses: dict[str, list[float]] = {}
    accs: dict[str, list[float]] = {}
    for scheme in cfg.schemes:
        for seed in cfg.seed_list:
            s = json.loads((students / f"{names[scheme]}_s{seed}" / "summary.json").read_text())
            losses.setdefault(names[scheme], []).append(float(s["test_loss"]))
            accs.setdefault(names[scheme], []).append(float(s["test_acc"]))
    for r in rows:
        r["test_acc_mean"], r["test_acc_std"] = _mean_std(accs[r["scheme"]])
        r["test_loss_seeds"] = losses[r["scheme"]]


def _write_results(
    cfg: KDExperimentConfig,
    out: Path,
    md: str,
    rows: list[dict[str, Any]],
    res: dict[str, Any],
    teacher: dict[str, Any],
    total: float,
) -> None:
    """``OUT/results.md`` and ``results.json``; with ``write_docs`` also the result block of
    ``docs/kd.md``, the scatter plot and the BENCHMARKS.md section."""
    numbers = {"rows": rows, "correlation": res.get("correlation"), "teacher": teacher}
    docs = common.write_results(out, md, {**numbers, "time_s": round(total, 1)}, cfg)
    if docs is None:
        return
    if "scatter" in res:
        shutil.copyfile(res["scatter"], docs / "kd_tstddev_scatter.png")
    body = md.replace("SCATTER", "kd_tstddev_scatter.png")
    replace_block(docs / "kd.md", DOC_START, DOC_END, body)
    if cfg.benchmarks:
        scatter = f"{docs.as_posix()}/kd_tstddev_scatter.png"
        common.write_section(cfg, SECTION, md.replace("SCATTER", scatter))
