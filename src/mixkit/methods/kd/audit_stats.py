"""Statistics of the T. stddev audit: chunk means of a probability stream, T. stddev, the
teacher–student CE covariance, and rank correlations with permutation p-values.

T. stddev (Good-DA-in-KD ``utils.check_ce_var``, called by
``helper/loops.py::train_distill``): every ``group`` vectors of the stream of teacher
probabilities store their mean m_k (K,); T. stddev = mean over classes
of ``torch.std`` (unbiased, ddof = 1) over all m_k. Lower is a better DA.

Covariance (``utils.check_ce_var_v3``, the NeurIPS rebuttal metric): per-sample
teacher–student cross-entropies q cut into rows of ``group`` values; each column is divided
by its max over rows (official normalisation) and the value is Σ_{i>j} Cov(q_i, q_j) / n²
over rows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


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


# ----------------------------------------------------------------------------- rank correlations
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
