"""Report writers of the KD T. stddev audit (``mixkit kd-audit``): the markdown tables of
``audit.md`` and the T. stddev vs student test loss scatter."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mixkit import plots


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
