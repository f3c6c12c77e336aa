"""T. stddev audit of DA schemes for KD (``mixkit kd-audit``) and rank correlations.

Official recipe (Good-DA-in-KD ``helper/loops.py::train_distill``, ``utils.check_ce_var``,
scripts ``T_stddev_different_DA_*.sh``; REFERENCE.md §2): teacher in eval mode, T = 1; over
E passes of the training set (batch 64, the standard crop+flip loader) append softmax(t(x))
and softmax(t(x′)) to one stream; every 640 vectors (10 appended batches) store their mean
m_k (K,); T. stddev = mean over classes of ``torch.std`` (unbiased, ddof = 1) over all m_k.
Lower is a better DA. Here the stream is cut into chunks of exactly ``group`` vectors (the
official code counts batches, so a short last batch makes a chunk smaller); the remainder
carries over between passes, as in the official code, and is dropped at the end.

Covariance (``utils.check_ce_var_v3``, the NeurIPS rebuttal metric): per-sample teacher–student
cross-entropy q = −Σ p_t log p_s on x and x′ in stream order, cut into rows of ``group``
values; each column is divided by its max over rows (official normalisation) and the value is
Σ_{i>j} Cov(q_i, q_j) / n² over rows (official: rows of 6400 values, 100 rows).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from mixkit import data, plots
from mixkit.kd.config import AuditConfig
from mixkit.kd.schemes import (
    Identity,
    Scheme,
    SchemeContext,
    build_scheme,
    entropy,
    teacher_logits_of_last,
)
from mixkit.kd.trainer import (
    base_augment,
    index_batches,
    load_student,
    load_teacher,
    resolve_run,
    subset,
)
from mixkit.kd.trainer import predict_logits as _predict
from mixkit.train import write_json

__all__ = [
    "ChunkMeans",
    "t_stddev",
    "t_stddev_of_stream",
    "ce_covariance",
    "audit_scheme",
    "pearson",
    "spearman",
    "kendall",
    "correlations",
    "collect_student_runs",
    "save_scatter",
    "run_audit",
]


class ChunkMeans:
    """Cut a stream of row vectors into consecutive chunks of exactly ``group`` rows.

    ``add(v)`` with v (n, K); ``means`` (G, K) float64 chunk means; ``rows`` (G, group, K)
    when ``keep_rows`` (used for the per-sample CE covariance)."""

    def __init__(self, group: int, keep_rows: bool = False) -> None:
        if group < 1:
            raise ValueError(f"group must be >= 1, got {group}")
        self.group = group
        self.keep_rows = keep_rows
        self._buf: list[Tensor] = []
        self._n = 0
        self._means: list[Tensor] = []
        self._rows: list[Tensor] = []

    def add(self, v: Tensor) -> None:
        v = v.detach().double().cpu()
        if v.ndim == 1:
            v = v[:, None]
        self._buf.append(v)
        self._n += v.shape[0]
        if self._n < self.group:
            return
        buf = torch.cat(self._buf)
        full = (buf.shape[0] // self.group) * self.group
        chunks = buf[:full].view(-1, self.group, buf.shape[1])
        self._means.extend(chunks.mean(1))
        if self.keep_rows:
            self._rows.extend(chunks)
        rest = buf[full:]
        self._buf, self._n = ([rest] if rest.shape[0] else []), rest.shape[0]

    @property
    def means(self) -> Tensor:
        return torch.stack(self._means) if self._means else torch.zeros(0, 0, dtype=torch.float64)

    @property
    def rows(self) -> Tensor:
        return torch.stack(self._rows) if self._rows else torch.zeros(0, 0, 0, dtype=torch.float64)


def t_stddev(group_means: Tensor) -> float:
    """Mean over classes of the unbiased std over groups of (G, K) mean probability vectors."""
    if group_means.ndim != 2 or group_means.shape[0] < 2:
        raise ValueError(
            f"group_means must be (G, K) with G >= 2 groups, got {tuple(group_means.shape)}"
        )
    return float(group_means.double().std(0, unbiased=True).mean())


def t_stddev_of_stream(probs: Tensor, group: int) -> float:
    """T. stddev of an (N, K) stream of probability vectors cut into chunks of ``group``."""
    acc = ChunkMeans(group)
    acc.add(probs)
    return t_stddev(acc.means)


def ce_covariance(rows: Tensor, normalize: bool = True) -> float:
    """Σ_{i>j} Cov(q_i, q_j) / n² of (R, n) rows of per-sample cross-entropies (covariance
    over rows, ddof = 1); columns divided by their max over rows first when ``normalize``."""
    if rows.ndim != 2 or rows.shape[0] < 2:
        raise ValueError(f"rows must be (R, n) with R >= 2, got {tuple(rows.shape)}")
    q = rows.double()
    if normalize:
        q = q / q.amax(0, keepdim=True).clamp_min(1e-12)
    n = q.shape[1]
    total = q.sum(1).var(unbiased=True)  # = Σ_ij Cov_ij
    diag = q.var(0, unbiased=True).sum()
    return float((total - diag) / 2 / n**2)


@torch.no_grad()
def audit_scheme(
    teacher: nn.Module,
    train: data.Split,
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
    progress: bool = False,
) -> dict[str, Any]:
    """T. stddev of ``scheme`` (and the CE covariance when ``student`` is given).

    The shuffle, loader transform and scheme draws use generators seeded from ``seed``, so
    every scheme sees the same batches (common random numbers)."""
    shuffle_gen = torch.Generator().manual_seed(seed)
    base_gen = torch.Generator().manual_seed(seed + 1)
    scheme_gen = torch.Generator().manual_seed(seed + 2)
    teacher.eval()
    cached = _predict(teacher, train.x, ctx, device) if base_aug == "none" else None
    probs = ChunkMeans(group)
    ces = ChunkMeans(group, keep_rows=True) if student is not None else None
    ent_sum, n_aug = 0.0, 0
    steps = epochs * -(-len(train) // batch_size)
    bar = tqdm(total=steps, desc=scheme.name, disable=not progress, leave=False)
    for _ in range(epochs):
        for idx in index_batches(len(train), batch_size, shuffle_gen):
            xb = base_augment(train.x.index_select(0, idx), base_aug, crop_pad, base_gen)
            xb = xb.to(device)
            xa = scheme(xb, scheme_gen, ctx)
            x, x_aug = ctx.normalize(xb), ctx.normalize(xa)
            t = cached.index_select(0, idx).to(device) if cached is not None else teacher(x)
            t_aug = t if isinstance(scheme, Identity) else teacher_logits_of_last(scheme)
            t_aug = teacher(x_aug) if t_aug is None else t_aug
            if include_clean:
                probs.add(F.softmax(t.float(), 1))
            probs.add(F.softmax(t_aug.float(), 1))
            ent_sum += float(entropy(t_aug).sum())
            n_aug += t_aug.shape[0]
            if ces is not None:
                for xx, tt in ((x, t), (x_aug, t_aug)):
                    logp_s = F.log_softmax(student(xx).float(), 1)
                    ces.add(-(F.softmax(tt.float(), 1) * logp_s).sum(1))
            bar.update(1)
    bar.close()
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


# ----------------------------------------------------------------------------- correlations
def _ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks, ties get their average rank. (n,) -> (n,) float64."""
    _, inv, counts = np.unique(a, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return (upper - (counts - 1) / 2.0)[inv]


def _pearson_rows(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    xc = x - x.mean()
    yc = ys - ys.mean(axis=-1, keepdims=True)
    den = np.sqrt((xc**2).sum() * (yc**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (yc * xc).sum(axis=-1) / den, np.nan)


def _kendall_rows(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(x.shape[0], 1)
    dx = np.sign(x[j] - x[i])
    dy = np.sign(ys[..., j] - ys[..., i])
    den = np.sqrt((dx != 0).sum() * (dy != 0).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (dx * dy).sum(axis=-1) / den, np.nan)


def _as_pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or xa.shape != ya.shape or xa.shape[0] < 2:
        raise ValueError(f"x and y must be 1-D of equal length >= 2, got {xa.shape}, {ya.shape}")
    return xa, ya


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r (nan if x or y is constant)."""
    xa, ya = _as_pair(x, y)
    return float(_pearson_rows(xa, ya))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: Pearson's r of the (average-tie) ranks."""
    xa, ya = _as_pair(x, y)
    return float(_pearson_rows(_ranks(xa), _ranks(ya)))


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b (ties corrected): Σ sign(dx)sign(dy) / sqrt(n_x n_y), n_· = untied pairs."""
    xa, ya = _as_pair(x, y)
    return float(_kendall_rows(xa, ya))


def correlations(
    x: Sequence[float], y: Sequence[float], n_perm: int = 20000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Pearson, Spearman and Kendall with two-sided permutation p-values: exact (all n!
    permutations of y) for n <= 8, else ``n_perm`` seeded random permutations."""
    xa, ya = _as_pair(x, y)
    n = xa.shape[0]
    if n <= 8:
        perms = np.array(list(itertools.permutations(range(n))))
        exact = True
    else:
        rng = np.random.default_rng(seed)
        perms = np.argsort(rng.random((n_perm, n)), axis=1)
        exact = False
    rx, ry = _ranks(xa), _ranks(ya)
    stats = {
        "pearson": (lambda ys: _pearson_rows(xa, ys), ya),
        "spearman": (lambda ys: _pearson_rows(rx, ys), ry),
        "kendall": (lambda ys: _kendall_rows(xa, ys), ya),
    }
    out: dict[str, dict[str, float]] = {}
    for name, (fn, yv) in stats.items():
        obs = float(fn(yv))
        null = np.abs(fn(yv[perms]))
        hits = int((null >= abs(obs) - 1e-12).sum())
        p = hits / len(perms) if exact else (hits + 1) / (len(perms) + 1)
        out[name] = {"r": obs, "p": float(p) if not math.isnan(obs) else float("nan")}
    return out


# ----------------------------------------------------------------------------- reporting
def collect_student_runs(folder: str | Path) -> dict[str, list[float]]:
    """``{scheme: [test_loss, ...]}`` from every ``summary.json`` of ``mixkit distill`` runs
    under ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"students folder not found: {root}")
    runs: dict[str, list[float]] = defaultdict(list)
    for f in sorted(root.rglob("summary.json")):
        s = json.loads(f.read_text())
        if "da" in s and s.get("test_loss") is not None:
            runs[s["da"]].append(float(s["test_loss"]))
    if not runs:
        raise ValueError(f"students folder {root} holds no `mixkit distill` summary.json")
    return dict(runs)


def save_scatter(
    rows: list[dict[str, Any]], corr: dict[str, dict[str, float]], path: str | Path, title: str
) -> Path:
    """PNG: T. stddev (x) vs mean student test loss (y, ± std over seeds), one point per
    scheme, with the three correlations in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    xs = [r["t_stddev"] for r in rows]
    ys = [r["test_loss_mean"] for r in rows]
    es = [r["test_loss_std"] for r in rows]
    ax.errorbar(xs, ys, yerr=es, fmt="o", capsize=3, color="tab:blue")
    for r in rows:
        ax.annotate(
            r["scheme"],
            (r["t_stddev"], r["test_loss_mean"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xlabel("T. stddev (teacher mean-probability std, T=1)")
    ax.set_ylabel("student test loss (CE)")
    c = corr
    ax.set_title(
        f"{title}\nPearson {c['pearson']['r']:.3f}  Spearman {c['spearman']['r']:.3f}  "
        f"Kendall {c['kendall']['r']:.3f}",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    return plots.save_figure(fig, path)


def _fmt(v: float, spec: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def audit_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of audit rows (student columns when present)."""
    has_cov = any("ce_cov" in r for r in rows)
    has_loss = any("test_loss_mean" in r for r in rows)
    head = ["scheme", "T. stddev", "groups", "mean T. entropy (x′)"]
    head += ["CE cov (×1e6)", "mean T–S CE"] if has_cov else []
    head += ["S. test loss (mean ± std)", "runs"] if has_loss else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["scheme"],
            f"{r['t_stddev']:.6f}",
            str(r["groups"]),
            f"{r['mean_entropy_aug']:.4f}",
        ]
        if has_cov:
            cells += [
                _fmt(r.get("ce_cov", float("nan")) * 1e6, ".3f"),
                _fmt(r.get("mean_ce", float("nan")), ".4f"),
            ]
        if has_loss:
            cells += (
                [f"{r['test_loss_mean']:.4f} ± {r['test_loss_std']:.4f}", str(r["runs"])]
                if "test_loss_mean" in r
                else ["n/a", "0"]
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def correlation_table(corr: dict[str, dict[str, float]]) -> str:
    lines = ["| statistic | value | p (two-sided permutation) |", "|---|---|---|"]
    for name in ("pearson", "spearman", "kendall"):
        lines.append(f"| {name.capitalize()} | {corr[name]['r']:.3f} | {corr[name]['p']:.4f} |")
    return "\n".join(lines)


def _audit_one(cfg: AuditConfig, name: str) -> dict[str, Any]:
    """Audit one scheme (loads teacher/student itself, so it can run in a worker process)."""
    if cfg.jobs > 1:
        torch.set_num_threads(1)
    device = torch.device(cfg.device)
    teacher, ds, _ = load_teacher(cfg.teacher, device)
    student = load_student(cfg.student_ckpt, ds, device) if cfg.student_ckpt else None
    ctx = SchemeContext(ds.mean, ds.std, teacher, student, cfg.temperature)
    t0 = time.time()
    row = audit_scheme(
        teacher,
        subset(ds.train, cfg.train_subset),
        build_scheme(name, **cfg.scheme_options()),
        ctx,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        group=cfg.group,
        include_clean=cfg.include_clean,
        base_aug=cfg.base_aug,
        crop_pad=cfg.crop_pad,
        seed=cfg.seed,
        student=student,
        device=device,
        progress=cfg.progress and cfg.jobs == 1,
    )
    row["time_s"] = round(time.time() - t0, 2)
    if cfg.progress:
        print(f"{row['scheme']:>16}  T. stddev {row['t_stddev']:.6f}  ({row['time_s']} s)")
    return row


def run_audit(cfg: AuditConfig) -> dict[str, Any]:
    """Audit every scheme of ``cfg.da`` (``cfg.jobs`` worker processes); write
    ``audit.json``, ``audit.md``, ``audit.csv`` and, with ``cfg.students``,
    ``tstddev_vs_test_loss.png``. Returns the result dict."""
    out = Path(cfg.out)
    _, _, tcfg = resolve_run(cfg.teacher, "teacher")
    if cfg.student_ckpt:
        resolve_run(cfg.student_ckpt, "student_ckpt")  # fail early
    student_runs = collect_student_runs(cfg.students) if cfg.students else None
    start = time.time()
    if cfg.jobs > 1 and len(cfg.schemes) > 1:
        with ProcessPoolExecutor(cfg.jobs, mp_context=get_context("spawn")) as pool:
            rows = list(pool.map(_audit_one, [cfg] * len(cfg.schemes), cfg.schemes))
    else:
        rows = [_audit_one(cfg, name) for name in cfg.schemes]
    for row in rows:
        if student_runs is not None and row["scheme"] in student_runs:
            losses = np.asarray(student_runs[row["scheme"]])
            row["test_loss_mean"] = float(losses.mean())
            row["test_loss_std"] = float(losses.std(ddof=1)) if len(losses) > 1 else 0.0
            row["runs"] = len(losses)
    result: dict[str, Any] = {
        "rows": rows,
        "teacher": str(cfg.teacher),
        "teacher_model": tcfg["model"],
        "dataset": tcfg["dataset"],
        "epochs": cfg.epochs,
        "group": cfg.group,
        "time_s": round(time.time() - start, 2),
    }
    with_loss = [r for r in rows if "test_loss_mean" in r]
    md = [audit_table(rows)]
    if len(with_loss) >= 3:
        corr = correlations(
            [r["t_stddev"] for r in with_loss],
            [r["test_loss_mean"] for r in with_loss],
            seed=cfg.seed,
        )
        result["correlation"] = corr
        result["scatter"] = str(
            save_scatter(
                with_loss,
                corr,
                out / "tstddev_vs_test_loss.png",
                f"{tcfg['model']} teacher, {tcfg['dataset']}",
            )
        )
        md += ["", correlation_table(corr)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit.md").write_text("\n".join(md) + "\n")
    keys = sorted({k for r in rows for k in r})
    lines = [",".join(keys)] + [",".join(str(r.get(k, "")) for k in keys) for r in rows]
    (out / "audit.csv").write_text("\n".join(lines) + "\n")
    write_json(result, out / "audit.json")
    return result
