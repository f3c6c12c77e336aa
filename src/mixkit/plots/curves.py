"""Training curves of a run directory's ``metrics.csv`` (one row per epoch) and ``steps.csv``
(one row per step: plotted against the global step, epochs as light vertical lines)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from mixkit.plots.common import save_figure


def read_metrics(path: str | Path) -> dict[str, list[float]]:
    """Numeric columns of a ``metrics.csv`` / ``steps.csv`` written by any mixkit trainer:
    ``{column: values}`` (non-numeric columns, e.g. semiseg's ``active``, are left out; empty
    cells are NaN). Raises FileNotFoundError / ValueError for a missing or empty file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} holds no rows")
    out: dict[str, list[float]] = {}
    for key in rows[0]:
        values = []
        for r in rows:
            cell = (r.get(key) or "").strip()
            try:
                values.append(float(cell) if cell else math.nan)
            except ValueError:
                break
        else:
            out[key] = values
    return out


def curve_x(cols: dict[str, list[float]]) -> tuple[str, list[float], list[float]]:
    """The x axis of a metrics table: ``(label, xs, epoch_lines)``.

    Rows logged per step (a ``step`` column, and an ``epoch`` column that repeats) are
    plotted against the global step, with a line between the last step of each epoch and
    the first of the next (``epoch_lines``). Rows logged per epoch use ``epoch``; else
    ``step``; else the row number 1..n (then ``epoch_lines`` is empty)."""
    n = len(next(iter(cols.values()), []))
    epochs, steps = cols.get("epoch"), cols.get("step")
    per_step = steps is not None and (epochs is None or len(set(epochs)) < len(epochs))
    if per_step:
        lines = []
        if epochs is not None:
            lines = [
                (steps[i - 1] + steps[i]) / 2 for i in range(1, n) if epochs[i] != epochs[i - 1]
            ]
        return "global step", list(steps), lines
    if epochs is not None:
        return "epoch", list(epochs), []
    return "row", [float(i) for i in range(1, n + 1)], []


def _panel(key: str) -> str:
    k = key.lower()
    if "loss" in k:
        return "loss"
    if "acc" in k or "iou" in k:
        return "accuracy / mIoU"
    if k == "lr":
        return "learning rate"
    return "other"


def _panel_title(name: str, keys: list[str]) -> str:
    if name != "accuracy / mIoU":
        return name
    iou = any("iou" in k.lower() for k in keys)
    acc = any("acc" in k.lower() for k in keys)
    return name if iou and acc else ("mIoU" if iou else "accuracy")


def _running_mean(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _epoch_axis(ax: Any, xs: list[float], lines: list[float], epochs: list[float]) -> None:
    """Light vertical lines at the epoch boundaries and the epoch numbers on a top axis."""
    for x in lines:
        ax.axvline(x, color="0.8", lw=0.7, zorder=0)
    bounds = [xs[0], *lines, xs[-1]]
    mids = [(a + b) / 2 for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    labels = sorted(set(epochs), key=epochs.index)
    every = max(1, math.ceil(len(mids) / 10))
    top = ax.secondary_xaxis("top")
    top.set_xticks(mids[::every], [f"{int(e)}" for e in labels[::every]], fontsize=7)
    top.set_xlabel("epoch", fontsize=8)


def training_curves_figure(
    metrics: str | Path | dict[str, list[float]], *, title: str | None = None
) -> Any:
    """Figure of a run's curves: one panel each for losses, accuracies / mIoU, the learning
    rate and any other numeric column (distances, pass rates...), against :func:`curve_x`'s
    x (per-step tables: the global step, epochs as light vertical lines and numbered on top;
    noisy per-step series also get a trailing mean). ``metrics``: a CSV path or
    :func:`read_metrics` output. Raises ValueError when there is nothing to plot."""
    cols = read_metrics(metrics) if isinstance(metrics, str | Path) else dict(metrics)
    xlabel, xs, lines = curve_x(cols)
    per_step = xlabel == "global step"
    skip = {"epoch", "step", "time_s", "epoch_time_s", "wall_time_s"}
    panels: dict[str, list[str]] = {}
    for key in cols:
        if key not in skip:
            panels.setdefault(_panel(key), []).append(key)
    if not panels:
        raise ValueError("metrics hold no numeric column to plot")
    order = [p for p in ("loss", "accuracy / mIoU", "learning rate", "other") if p in panels]
    fig, axes = plt.subplots(
        1, len(order), figsize=(4.4 * len(order), 3.6), squeeze=False, layout="constrained"
    )
    n = len(xs)
    window = max(5, n // 40)
    for ax, name in zip(axes[0], order, strict=True):
        for key in panels[name]:
            ys = cols[key]
            smooth = per_step and name != "learning rate" and n > 4 * window
            if smooth and not any(math.isnan(v) for v in ys):
                (raw,) = ax.plot(xs, ys, lw=0.6, alpha=0.35, label=f"{key} (per step)")
                ax.plot(xs, _running_mean(ys, window), lw=1.5, color=raw.get_color(),
                        label=f"{key} (mean of {window} steps)")  # fmt: skip
            else:
                ax.plot(xs, ys, marker="o" if n <= 30 else None, ms=3, lw=1.4, label=key)
        if per_step and n > 1 and "epoch" in cols:
            _epoch_axis(ax, xs, lines, cols["epoch"])
        elif not per_step:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_title(_panel_title(name, panels[name]), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_training_curves(
    metrics: str | Path | dict[str, list[float]], path: str | Path, *, title: str | None = None
) -> Path:
    """Write :func:`training_curves_figure` to ``path`` (PNG)."""
    return save_figure(training_curves_figure(metrics, title=title), path)
