"""Teacher-student distance analysis (an analogue of Dual Teacher's appendix Table A3, whose
exact definition is not in the official code we read; this probe measures the two natural
distances):

- parameter distance: L2 norm of the difference of the flattened parameters (weights and
  biases; BatchNorm running buffers excluded) of a teacher and the student;
- prediction gap on held-out images: the fraction of pixels where the argmax differs
  (disagreement) and the mean per-pixel KL(teacher || student) of the softmax outputs.
  Both networks predict in the same BatchNorm mode (the one the teachers use to make
  pseudo-labels), so identical weights give exactly zero gap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixkit.methods.semiseg.net import bn_mode


def flat_params(model: nn.Module) -> Tensor:
    """All parameters of ``model`` concatenated into one float64 vector (CPU)."""
    return torch.cat([p.detach().reshape(-1).double().cpu() for p in model.parameters()])


@torch.no_grad()
def param_distance(teacher: nn.Module, student: nn.Module) -> float:
    """L2 distance between the flattened parameters of two nets of the same architecture
    (squared differences summed per tensor on the nets' device, one host sync)."""
    ts, ss = list(teacher.parameters()), list(student.parameters())
    if len(ts) != len(ss) or any(a.shape != b.shape for a, b in zip(ts, ss, strict=True)):
        na, nb = sum(p.numel() for p in ts), sum(p.numel() for p in ss)
        raise ValueError(f"teacher has {na} parameters but student has {nb}")
    if not ts:
        return 0.0
    sq = torch.stack([(a.float() - b.float()).pow(2).sum() for a, b in zip(ts, ss, strict=True)])
    return float(sq.cpu().double().sum().sqrt())


@torch.no_grad()
def prediction_gap(
    teacher: nn.Module, student: nn.Module, images: Tensor, bn: str = "batch", chunk: int = 64
) -> dict[str, float]:
    """Disagreement and KL(teacher || student) per pixel on (B, C, H, W) float images."""
    disagree, kl, n = 0.0, 0.0, 0
    for i in range(0, images.shape[0], chunk):
        x = images[i : i + chunk]
        with bn_mode(teacher, bn):
            lt = F.log_softmax(teacher(x), 1)
        with bn_mode(student, bn):
            ls = F.log_softmax(student(x), 1)
        disagree += float((lt.argmax(1) != ls.argmax(1)).double().sum())
        kl += float((lt.exp() * (lt - ls)).sum(1).double().sum())
        n += lt.shape[0] * lt.shape[2] * lt.shape[3]
    return {"disagree": disagree / n, "kl": kl / n}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation, NaN for an empty sequence."""
    v = [float(x) for x in values if not math.isnan(float(x))]
    if not v:
        return math.nan, math.nan
    m = sum(v) / len(v)
    return m, math.sqrt(sum((x - m) ** 2 for x in v) / len(v))


def summarize_history(rows: Sequence[Mapping[str, float]], keys: Sequence[str]) -> dict:
    """``{key: {"mean": m, "std": s}}`` over the epochs of a per-epoch history."""
    out = {}
    for k in keys:
        m, s = mean_std([r[k] for r in rows if k in r])
        out[k] = {"mean": m, "std": s}
    return out


def plot_distance_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    ylabel: str = "‖θ_teacher − θ_student‖₂",
    title: str = "teacher-student parameter distance",
    epoch_steps: int | None = None,
) -> Path:
    """One line per ``label -> (steps, values)``; dotted verticals at epoch boundaries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixkit import plots

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (xs, ys) in curves.items():
        ax.plot(list(xs), list(ys), label=label, lw=1.4)
    if epoch_steps:
        xmax = max((max(xs) for xs, _ in curves.values() if len(xs)), default=0)
        for e in range(epoch_steps, int(xmax) + 1, epoch_steps):
            ax.axvline(e, color="0.85", lw=0.8, ls=":", zorder=0)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return plots.save_figure(fig, path)
