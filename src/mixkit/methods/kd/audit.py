"""T. stddev audit of DA schemes for KD (``mixkit kd-audit``): stream the teacher's
probabilities on x and x′ and compute the statistics of :mod:`mixkit.methods.kd.audit_stats`.

Official recipe (Good-DA-in-KD ``helper/loops.py::train_distill``, ``utils.check_ce_var``,
scripts ``T_stddev_different_DA_*.sh``): teacher in eval mode, T = 1; over
E passes of the training set (batch 64, the standard crop+flip loader) append softmax(t(x))
and softmax(t(x′)) to one stream; every 640 vectors (10 appended batches) store their mean
m_k (K,); T. stddev = mean over classes of ``torch.std`` (unbiased, ddof = 1) over all m_k.
Lower is a better DA. Here the stream is cut into chunks of exactly ``group`` vectors (the
official code counts batches, so a short last batch makes a chunk smaller); the remainder
carries over between passes, as in the official code, and is dropped at the end.

Covariance (``utils.check_ce_var_v3``, the NeurIPS rebuttal metric): per-sample teacher–student
cross-entropy q = −Σ p_t log p_s on x and x′ in stream order, cut into rows of ``group``
values (official: rows of 6400 values, 100 rows).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from mixkit import accel, distributed, feeds, runs
from mixkit.methods.kd.audit_stats import ChunkMeans, ce_covariance, correlations, t_stddev
from mixkit.methods.kd.batches import predict_logits
from mixkit.methods.kd.checkpoints import load_student, load_teacher, resolve_run
from mixkit.methods.kd.config import AuditConfig
from mixkit.methods.kd.schemes import (
    Identity,
    Scheme,
    SchemeContext,
    build_scheme,
    entropy,
    teacher_logits_of_last,
)
from mixkit.train import write_json


def _teacher_views(
    teacher: nn.Module,
    scheme: Scheme,
    ctx: SchemeContext,
    xb: Tensor,
    t_cached: Tensor | None,
    generator: torch.Generator,
    channels_last: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Normalised x and x′ = scheme(x), and the teacher's logits on both (``t_cached``: the
    logits on x when x is fixed; x′'s are reused when the scheme computed them)."""
    xa = scheme(xb, generator, ctx)
    x = accel.to_memory_format(ctx.normalize(xb), channels_last)
    x_aug = accel.to_memory_format(ctx.normalize(xa), channels_last)
    t = t_cached if t_cached is not None else teacher(x)
    t_aug = t if isinstance(scheme, Identity) else teacher_logits_of_last(scheme)
    t_aug = teacher(x_aug) if t_aug is None else t_aug
    return x, x_aug, t, t_aug


def _audit_result(
    scheme: Scheme, probs: ChunkMeans, ces: ChunkMeans | None, group: int, epochs: int,
    ent_sum: float, n_aug: int,
) -> dict[str, Any]:  # fmt: skip
    """The audit row of a scheme from its accumulated streams."""
    means = probs.means
    if means.shape[0] < 2:
        raise ValueError(
            f"only {means.shape[0]} group(s) of {group} probability vectors: raise epochs "
            f"(now {epochs}) or lower group"
        )
    out: dict[str, Any] = {
        "scheme": scheme.name,
        "t_stddev": t_stddev(means),
        "groups": int(means.shape[0]),
        "mean_entropy_aug": ent_sum / max(n_aug, 1),
    }
    if ces is not None:
        rows = ces.rows[..., 0]
        out["ce_cov"] = ce_covariance(rows) if rows.shape[0] >= 2 else float("nan")
        out["mean_ce"] = float(rows.mean()) if rows.numel() else float("nan")
    return out


@torch.no_grad()
def audit_scheme(
    teacher: nn.Module,
    feed: feeds.MemoryFeed | feeds.LoaderFeed,
    scheme: Scheme,
    ctx: SchemeContext,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    group: int = 640,
    include_clean: bool = True,
    base_aug: str = "crop_flip",
    crop_pad: int = 4,
    seed: int = 0,
    student: nn.Module | None = None,
    device: str | torch.device = "cpu",
    amp: str = "off",
    channels_last: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """T. stddev of ``scheme`` over ``epochs`` passes of the feed's training set (and the CE
    covariance when ``student`` is given), under ``amp`` autocast.

    The shuffle, loader transform and scheme draws use generators seeded from ``seed``, so
    every scheme sees the same batches (common random numbers)."""
    shuffle_gen = torch.Generator().manual_seed(seed)
    base_gen = torch.Generator().manual_seed(seed + 1)
    scheme_gen = torch.Generator().manual_seed(seed + 2)
    teacher.eval()
    device = torch.device(device)
    cached = predict_logits(teacher, feed, device, amp=amp) if base_aug == "none" else None
    probs = ChunkMeans(group)
    ces = ChunkMeans(group, keep_rows=True) if student is not None else None
    ent_sum, n_aug = 0.0, 0
    env = distributed.DistEnv()
    bar = tqdm(total=epochs * feed.steps_per_epoch(batch_size, env), desc=scheme.name,
               disable=not progress, leave=False)  # fmt: skip
    for epoch in range(epochs):
        for batch in feed.epoch(epoch, batch_size, env, device, shuffle_gen):
            xb = feed.view(batch.x, base_aug, base_gen, crop_pad)
            t_cached = None if cached is None else cached.index_select(0, batch.idx).to(device)
            with accel.autocast(device, amp):
                x, x_aug, t, t_aug = _teacher_views(
                    teacher, scheme, ctx, xb, t_cached, scheme_gen, channels_last
                )
            if include_clean:
                probs.add(F.softmax(t.float(), 1))
            probs.add(F.softmax(t_aug.float(), 1))
            ent_sum += float(entropy(t_aug).sum())
            n_aug += t_aug.shape[0]
            if ces is not None:
                for xx, tt in ((x, t), (x_aug, t_aug)):
                    with accel.autocast(device, amp):
                        logp_s = F.log_softmax(student(xx).float(), 1)
                    ces.add(-(F.softmax(tt.float(), 1) * logp_s).sum(1))
            bar.update(1)
    bar.close()
    return _audit_result(scheme, probs, ces, group, epochs, ent_sum, n_aug)


def collect_student_runs(
    folder: str | Path, teacher_digest: str | None = None
) -> dict[str, list[float]]:
    """``{scheme: [test_loss, ...]}`` from every ``summary.json`` of ``mixkit distill`` runs
    under ``folder``. With ``teacher_digest`` (the SHA-256 of the audited teacher's weights,
    :func:`mixkit.distributed.state_digest`) every run must have been distilled from that
    teacher: a ValueError names the runs of other (or unrecorded) teachers."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"students folder not found: {root}")
    found: dict[str, list[float]] = defaultdict(list)
    foreign = []
    for f in sorted(root.rglob("summary.json")):
        s = json.loads(f.read_text())
        if "da" not in s or s.get("test_loss") is None:
            continue
        if teacher_digest is not None and s.get("teacher_digest") != teacher_digest:
            foreign.append(str(f.parent))
            continue
        found[s["da"]].append(float(s["test_loss"]))
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" (+{len(foreign) - 5} more)" if len(foreign) > 5 else ""
        )
        raise ValueError(
            f"students folder {root} holds {len(foreign)} run(s) distilled from another "
            f"teacher (or one not recorded) than the audited one: {shown}; audit each "
            "teacher's students in a folder of their own"
        )
    if not found:
        raise ValueError(f"students folder {root} holds no `mixkit distill` summary.json")
    return dict(found)


def _audit_one(cfg: AuditConfig, name: str) -> dict[str, Any]:
    """Audit one scheme (loads teacher/student itself, so it can run in a worker process)."""
    if cfg.jobs > 1:
        torch.set_num_threads(1)
    device = torch.device(cfg.device)
    spec = cfg.teacher_spec()
    feed = feeds.open_feed(
        spec.dataset, spec.data_root, seed=spec.split_seed, image_size=cfg.image_size,
        workers=cfg.workers, device=device,
    )  # fmt: skip
    teacher = load_teacher(spec, feed.num_classes, feed.in_channels, device)
    student = None
    if cfg.student_ckpt:
        student = load_student(cfg.student_ckpt, feed.num_classes, feed.in_channels, device)
    if cfg.channels_last:
        for model in (teacher, student):
            if model is not None:
                model.to(memory_format=torch.channels_last)
    ctx = SchemeContext(feed.mean, feed.std, teacher, student, cfg.temperature)
    t0 = time.time()
    try:
        row = audit_scheme(
            teacher, feed.subset(cfg.train_subset, spec.split_seed),
            build_scheme(name, **cfg.scheme_options()), ctx, epochs=cfg.epochs,
            batch_size=cfg.batch_size, group=cfg.group, include_clean=cfg.include_clean,
            base_aug=cfg.base_aug, crop_pad=cfg.crop_pad, seed=cfg.seed, student=student,
            device=device, amp=cfg.amp, channels_last=cfg.channels_last,
            progress=cfg.progress and cfg.jobs == 1,
        )  # fmt: skip
    finally:
        feed.close()
    row["time_s"] = round(time.time() - t0, 2)
    if cfg.progress:
        print(f"{row['scheme']:>16}  T. stddev {row['t_stddev']:.6f}  ({row['time_s']} s)")
    return row


def _audit_all(cfg: AuditConfig) -> list[dict[str, Any]]:
    """One row per scheme of ``cfg.schemes`` (``cfg.jobs`` spawned worker processes)."""
    if cfg.jobs > 1 and len(cfg.schemes) > 1:
        with ProcessPoolExecutor(cfg.jobs, mp_context=get_context("spawn")) as pool:
            return list(pool.map(_audit_one, [cfg] * len(cfg.schemes), cfg.schemes))
    return [_audit_one(cfg, name) for name in cfg.schemes]


def _add_student_losses(rows: list[dict[str, Any]], runs: dict[str, list[float]]) -> None:
    """Mean / std (ddof 1) of the students' test losses, and their count, per scheme row."""
    for row in rows:
        if row["scheme"] in runs:
            losses = np.asarray(runs[row["scheme"]])
            row["test_loss_mean"] = float(losses.mean())
            row["test_loss_std"] = float(losses.std(ddof=1)) if len(losses) > 1 else 0.0
            row["runs"] = len(losses)


def _teacher_digest(cfg: AuditConfig) -> str:
    """SHA-256 of the audited teacher's weights (what ``mixkit distill`` records)."""
    spec = cfg.teacher_spec()
    feed = feeds.open_feed(spec.dataset, spec.data_root, seed=spec.split_seed, workers=0)
    try:
        return distributed.state_digest(load_teacher(spec, feed.num_classes, feed.in_channels))
    finally:
        feed.close()


def run_audit(cfg: AuditConfig) -> dict[str, Any]:
    """Audit every scheme of ``cfg.da`` (``cfg.jobs`` worker processes); write
    ``audit.json``, ``audit.md``, ``audit.csv`` and, with ``cfg.students`` (runs of this
    teacher only), ``tstddev_vs_test_loss.png`` into the run folder (``cfg.out``, or a new
    ``runs/kd_audit/expN``). Returns the result dict (``out``: the folder)."""
    from mixkit.experiments import kd_audit_report as report

    spec = cfg.teacher_spec()  # fail early
    if cfg.student_ckpt:
        resolve_run(cfg.student_ckpt, "student_ckpt")
    student_runs = None
    if cfg.students:
        student_runs = collect_student_runs(cfg.students, _teacher_digest(cfg))
    out = runs.resolve_run_dir(cfg.out, "runs/kd_audit", overwrite=cfg.overwrite)
    cfg = dataclasses.replace(cfg, out=str(out))
    start = time.time()
    rows = _audit_all(cfg)
    if student_runs is not None:
        _add_student_losses(rows, student_runs)
    result: dict[str, Any] = {
        "rows": rows,
        "teacher": str(cfg.teacher),
        "teacher_model": spec.model,
        "dataset": spec.dataset,
        "epochs": cfg.epochs,
        "group": cfg.group,
        "time_s": round(time.time() - start, 2),
        "out": str(out),
    }
    with_loss = [r for r in rows if "test_loss_mean" in r]
    md = [report.audit_table(rows)]
    if len(with_loss) >= 3:
        corr = correlations(
            [r["t_stddev"] for r in with_loss],
            [r["test_loss_mean"] for r in with_loss],
            seed=cfg.seed,
        )
        result["correlation"] = corr
        title = f"{spec.model} teacher, {spec.dataset}"
        scatter = report.save_scatter(with_loss, corr, out / "tstddev_vs_test_loss.png", title)
        result["scatter"] = str(scatter)
        md += ["", report.correlation_table(corr)]
    (out / "audit.md").write_text("\n".join(md) + "\n")
    keys = sorted({k for r in rows for k in r})
    lines = [",".join(keys)] + [",".join(str(r.get(k, "")) for k in keys) for r in rows]
    (out / "audit.csv").write_text("\n".join(lines) + "\n")
    write_json(result, out / "audit.json")
    return result
