"""``mixkit experiment kd``: Good-DA-in-KD replication at MNIST-5k scale (issue 4).

1. One teacher trained with ``mixkit train`` (``mixkit.recipes.classify.run``).
2. A student distilled with each DA scheme for x′ over several seeds (``mixkit.kd.trainer``).
3. The T. stddev audit of every scheme with the fixed teacher (``mixkit.kd.audit``); the
   student of ``--audit-student`` (seed 0) serves CutMixPick (S. ent.) and the covariance.
4. Pearson / Spearman / Kendall between T. stddev and the mean student test loss, a table and
   a scatter plot: ``OUT/results.md`` and, with ``--write-docs``, the result block of
   ``docs/kd.md``, ``docs/kd_tstddev_scatter.png`` and the BENCHMARKS.md section 4.

Paper claims checked (REFERENCE.md §2): T. stddev(CutMix) < T. stddev(identity), CutMixPick
(T. ent.) has the lowest T. stddev, and T. stddev correlates with the student test loss.
Finished runs keep their ``summary.json`` and are reused by a rerun (``--force`` retrains).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from mixkit.markdown import replace_section

__all__ = ["add_experiment", "KDExperimentConfig", "run_experiment", "replace_section", "SECTION"]

SECTION = "## 4. Knowledge distillation: T. stddev audit (issue 4)"
DOC_START = "<!-- kd-experiment:start -->"
DOC_END = "<!-- kd-experiment:end -->"
ALL_SCHEMES = "identity,flip,crop_flip,cutout,autoaugment,mixup,cutmix,cutmix_pick_s,cutmix_pick_t"


@dataclasses.dataclass
class KDExperimentConfig:
    """Budget of the replication (field names are the CLI flags)."""

    dataset: str = "mnist5k"
    teacher_model: str = "smallcnn"
    teacher_epochs: int = 6
    student: str = "tinycnn"
    da: str = ALL_SCHEMES
    seeds: str = "0,1,2"
    train_subset: int = 300
    student_epochs: int = 40
    batch_size: int = 64
    lr: float = 0.05
    base_aug: str = "none"
    crop_pad: int = 4
    cutout_length: int = 8
    per_batch: bool = False
    audit_epochs: int = 3
    group: int = 128
    audit_subset: int = 0
    audit_student: str = "identity"
    jobs: int = 2
    out: str = "runs/kd_experiment"
    write_docs: bool = False
    docs_dir: str = "docs"
    benchmarks: str = "BENCHMARKS.md"
    force: bool = False

    def __post_init__(self) -> None:
        from mixkit.kd.schemes import canonical_name

        for name in self.schemes:
            canonical_name(name)
        if len(self.seed_list) < 1:
            raise ValueError(f"seeds must list at least one int, got {self.seeds!r}")
        if self.jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {self.jobs!r}")

    @property
    def schemes(self) -> list[str]:
        return [s.strip() for s in self.da.split(",") if s.strip()]

    @property
    def seed_list(self) -> list[int]:
        try:
            return [int(s) for s in str(self.seeds).split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"seeds must be comma-separated ints, got {self.seeds!r}") from None


def add_experiment(sub: argparse._SubParsersAction) -> None:
    from mixkit.cli import add_common_flags, add_config_flags

    p = sub.add_parser(
        "kd",
        help="KD with DA: T. stddev vs student test loss over schemes x seeds (issue 4)",
        description=__doc__.splitlines()[0],
    )
    add_config_flags(p, KDExperimentConfig)
    add_common_flags(p)
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    from mixkit.cli import config_from_args

    cfg = config_from_args(args, KDExperimentConfig)
    res = run_experiment(cfg, command=_command(args))
    print(res["markdown"])
    return 0


def _command(args: argparse.Namespace) -> str:
    from mixkit.cli import given_flags

    flags = given_flags(args, KDExperimentConfig)
    return "OMP_NUM_THREADS=1 mixkit experiment kd " + " ".join(flags)


def _distill_one(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """One student run in a fresh process with one torch thread."""
    import torch

    from mixkit.kd.config import KDConfig
    from mixkit.kd.trainer import run

    torch.set_num_threads(1)
    return run(KDConfig(**cfg_dict))


def _mean_std(v: list[float]) -> tuple[float, float]:
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def _replace_block(path: Path, body: str) -> None:
    text = path.read_text() if path.is_file() else ""
    block = f"{DOC_START}\n{body.strip()}\n{DOC_END}"
    if DOC_START in text and DOC_END in text:
        pre, rest = text.split(DOC_START, 1)
        _, post = rest.split(DOC_END, 1)
        text = pre + block + post
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def run_experiment(cfg: KDExperimentConfig, command: str = "") -> dict[str, Any]:
    import torch

    from mixkit.config import TrainConfig
    from mixkit.kd import audit
    from mixkit.kd.config import KDConfig
    from mixkit.kd.schemes import build_scheme
    from mixkit.recipes import classify

    torch.set_num_threads(1)
    out = Path(cfg.out)
    start = time.time()
    # 1. teacher
    tdir = out / "teacher"
    if cfg.force or not (tdir / "summary.json").is_file():
        classify.run(
            TrainConfig(
                dataset=cfg.dataset,
                model=cfg.teacher_model,
                epochs=cfg.teacher_epochs,
                out=str(tdir),
                progress=False,
                grid_samples=0,
            )
        )
    teacher_summary = json.loads((tdir / "summary.json").read_text())
    teacher_ckpt = tdir / "checkpoints" / "last.pt"
    t_teacher = time.time() - start

    # 2. students: scheme x seed
    names = {s: build_scheme(s, pick_criterion="teacher_entropy").name for s in cfg.schemes}
    jobs = []
    for scheme in cfg.schemes:
        for seed in cfg.seed_list:
            run_dir = out / "students" / f"{names[scheme]}_s{seed}"
            if not cfg.force and (run_dir / "summary.json").is_file():
                continue
            jobs.append(
                dataclasses.asdict(
                    KDConfig(
                        teacher=str(teacher_ckpt),
                        student=cfg.student,
                        da=scheme,
                        train_subset=cfg.train_subset,
                        epochs=cfg.student_epochs,
                        eval_every=cfg.student_epochs,  # test loss of the last epoch only
                        batch_size=cfg.batch_size,
                        lr=cfg.lr,
                        base_aug=cfg.base_aug,
                        crop_pad=cfg.crop_pad,
                        cutout_length=cfg.cutout_length,
                        per_batch=cfg.per_batch,
                        seed=seed,
                        out=str(run_dir),
                        progress=False,
                    )
                )
            )
    t0 = time.time()
    if cfg.jobs > 1 and len(jobs) > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with ProcessPoolExecutor(cfg.jobs, mp_context=get_context("spawn")) as pool:
            list(pool.map(_distill_one, jobs))
    else:
        for j in jobs:
            _distill_one(j)
    t_students = time.time() - t0
    losses: dict[str, list[float]] = {}
    accs: dict[str, list[float]] = {}
    for scheme in cfg.schemes:
        for seed in cfg.seed_list:
            s = json.loads(
                (out / "students" / f"{names[scheme]}_s{seed}" / "summary.json").read_text()
            )
            losses.setdefault(names[scheme], []).append(float(s["test_loss"]))
            accs.setdefault(names[scheme], []).append(float(s["test_acc"]))

    # 3. audit (teacher only; the audit student serves S. ent. CutMixPick and the covariance)
    t0 = time.time()
    audit_name = names.get(cfg.audit_student, cfg.audit_student)
    audit_student = out / "students" / f"{audit_name}_s{cfg.seed_list[0]}"
    acfg = audit.AuditConfig(
        teacher=str(teacher_ckpt),
        da=",".join(cfg.schemes),
        student_ckpt=str(audit_student / "checkpoints" / "last.pt"),
        students=str(out / "students"),
        epochs=cfg.audit_epochs,
        group=cfg.group,
        base_aug=cfg.base_aug,
        crop_pad=cfg.crop_pad,
        cutout_length=cfg.cutout_length,
        per_batch=cfg.per_batch,
        train_subset=cfg.audit_subset,
        jobs=cfg.jobs,
        out=str(out / "audit"),
        progress=False,
    )
    res = audit.run_audit(acfg)
    t_audit = time.time() - t0
    rows = res["rows"]
    for r in rows:
        r["test_acc_mean"], r["test_acc_std"] = _mean_std(accs[r["scheme"]])
        r["test_loss_seeds"] = losses[r["scheme"]]
    total = time.time() - start

    # 4. report
    md = _report(
        cfg,
        rows,
        res,
        teacher_summary,
        command,
        {"teacher": t_teacher, "students": t_students, "audit": t_audit, "total": total},
    )
    (out / "results.md").write_text(md + "\n")
    audit.write_json(
        {
            "rows": rows,
            "correlation": res.get("correlation"),
            "teacher": teacher_summary,
            "time_s": round(total, 1),
        },
        out / "results.json",
    )
    if cfg.write_docs:
        docs = Path(cfg.docs_dir)
        docs.mkdir(parents=True, exist_ok=True)
        if "scatter" in res:
            shutil.copyfile(res["scatter"], docs / "kd_tstddev_scatter.png")
        _replace_block(docs / "kd.md", md.replace("SCATTER", "kd_tstddev_scatter.png"))
        if cfg.benchmarks:
            replace_section(
                cfg.benchmarks,
                SECTION,
                md.replace("SCATTER", f"{docs.as_posix()}/kd_tstddev_scatter.png"),
            )
    return {"rows": rows, "correlation": res.get("correlation"), "markdown": md}


def _report(
    cfg: KDExperimentConfig,
    rows: list[dict[str, Any]],
    res: dict[str, Any],
    teacher: dict[str, Any],
    command: str,
    times: dict[str, float],
) -> str:
    import torch

    from mixkit.kd.audit import correlation_table

    by = {r["scheme"]: r for r in rows}
    lines = [
        f"Machine: 2-core CPU, torch {torch.__version__}, `OMP_NUM_THREADS=1`. "
        f"Wall time {times['total'] / 60:.1f} min (teacher {times['teacher']:.0f} s, "
        f"students {times['students']:.0f} s, audit {times['audit']:.0f} s; runs reused from "
        "an earlier invocation count 0 s).",
        "",
        "```",
        command or "OMP_NUM_THREADS=1 mixkit experiment kd --write-docs",
        "```",
        "",
        f"Teacher: `{cfg.teacher_model}` trained {cfg.teacher_epochs} epochs on {cfg.dataset} "
        f"(full train split), test acc {teacher['test_acc']:.4f}, test loss "
        f"{teacher['test_loss']:.4f}. Student: `{cfg.student}`, distilled {cfg.student_epochs} "
        f"epochs on the first {cfg.train_subset or 'all'} training images, batch "
        f"{cfg.batch_size}, SGD lr {cfg.lr} cosine, loss 0.1·CE + 0.9·(KL₄(x) + KL₄(x′)); "
        f"seeds {cfg.seeds}; x loader transform `{cfg.base_aug}`; "
        f"{'one draw per batch' if cfg.per_batch else 'per-sample draws'}. Audit: teacher "
        f"eval, T=1, {cfg.audit_epochs} passes over {cfg.audit_subset or 'all'} training "
        f"images, batch {cfg.batch_size}, groups of "
        f"{cfg.group} vectors (x and x′ pooled), audit seed 0; CutMixPick (S. ent.) and the "
        f"CE covariance use the `{cfg.audit_student}` seed-{cfg.seed_list[0]} student.",
        "",
        _table_with_acc(rows),
        "",
    ]
    if "correlation" in res:
        lines += [
            f"Correlation between T. stddev and mean student test loss over {len(rows)} schemes:",
            "",
            correlation_table(res["correlation"]),
            "",
            "![T. stddev vs student test loss](SCATTER)",
            "",
        ]
    checks = []
    if "cutmix" in by and "identity" in by:
        ok = by["cutmix"]["t_stddev"] < by["identity"]["t_stddev"]
        checks.append(
            f"- T. stddev(CutMix) < T. stddev(identity): **{'yes' if ok else 'NO'}** "
            f"({by['cutmix']['t_stddev']:.6f} vs {by['identity']['t_stddev']:.6f})."
        )
    if "cutmix_pick_t" in by:
        low = min(rows, key=lambda r: r["t_stddev"])
        ok = low["scheme"] == "cutmix_pick_t"
        checks.append(
            f"- CutMixPick (T. ent.) lowest T. stddev: **{'yes' if ok else 'NO'}** "
            f"(lowest: {low['scheme']} {low['t_stddev']:.6f}; cutmix_pick_t "
            f"{by['cutmix_pick_t']['t_stddev']:.6f})."
        )
        lowl = min(rows, key=lambda r: r["test_loss_mean"])
        checks.append(
            f"- Lowest student test loss: {lowl['scheme']} ({lowl['test_loss_mean']:.4f}); "
            f"cutmix_pick_t {by['cutmix_pick_t']['test_loss_mean']:.4f}."
        )
    if "correlation" in res:
        rho = res["correlation"]["spearman"]["r"]
        checks.append(
            f"- Spearman ρ = {rho:.3f} (goal ≥ 0.7: **{'met' if rho >= 0.7 else 'NOT met'}**)."
        )
    return "\n".join(lines + checks)


def _table_with_acc(rows: list[dict[str, Any]]) -> str:
    head = [
        "scheme",
        "T. stddev",
        "mean T. entropy (x′)",
        "CE cov (×1e6)",
        "S. test loss (mean ± std)",
        "S. test acc (mean ± std)",
        "S. test loss per seed",
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: r["t_stddev"], reverse=True):
        cov = r.get("ce_cov", float("nan"))
        out.append(
            f"| {r['scheme']} | {r['t_stddev']:.6f} | {r['mean_entropy_aug']:.4f} | "
            f"{'n/a' if math.isnan(cov) else f'{cov * 1e6:.3f}'} | "
            f"{r['test_loss_mean']:.4f} ± {r['test_loss_std']:.4f} | "
            f"{r['test_acc_mean']:.4f} ± {r['test_acc_std']:.4f} | "
            f"{' / '.join(f'{v:.4f}' for v in r['test_loss_seeds'])} |"
        )
    return "\n".join(out)
