"""Shared helpers for the op / transform tests: tagged images whose provenance is measurable."""

from __future__ import annotations

import math

import pytest
import torch

DTYPES = [torch.float32, torch.float64, torch.uint8]
HW = (12, 17)  # H != W on purpose


def tagged_images(
    b: int,
    c: int = 3,
    h: int = HW[0],
    w: int = HW[1],
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> torch.Tensor:
    """(B, C, H, W) images whose channel 0 is a per-sample constant tag ``10 + 30*i`` (mod 250,
    never 0), so ``out[:, 0] == x[:, 0]`` tells exactly which pixels still come from the
    original sample (a pasted partner pixel or a Cutout fill of 0 never matches). The other
    channels hold a distinct-valued pattern (all values unique for float dtypes)."""
    assert c >= 2
    tag = (10 + 30 * torch.arange(b)) % 250 + 1
    pattern = torch.arange(b * (c - 1) * h * w, dtype=torch.float64).view(b, c - 1, h, w)
    if dtype == torch.uint8:
        pattern = pattern % 251 + 1
    else:
        pattern = pattern / 7.0 + 300.0
    x = torch.cat([tag.double().view(b, 1, 1, 1).expand(b, 1, h, w), pattern], 1).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def chi2_uniform_ok(counts: torch.Tensor) -> tuple[bool, float]:
    """Chi-square goodness of fit of ``counts`` against the uniform distribution at the
    0.1 % level. Uses scipy when present; otherwise the Wilson-Hilferty approximation of the
    chi-square quantile, df*(1 - 2/(9df) + z*sqrt(2/(9df)))**3 with z = 3.0902 (the standard
    normal 99.9 % quantile); it is within 0.5 % of the exact quantile for df >= 10."""
    counts = counts.double().flatten()
    expected = counts.sum() / counts.numel()
    stat = float(((counts - expected) ** 2 / expected).sum())
    df = counts.numel() - 1
    try:
        from scipy.special import chdtrc  # chi-square survival function (lighter than stats)
    except ImportError:
        a = 2.0 / (9.0 * df)
        crit = df * (1 - a + 3.0902 * math.sqrt(a)) ** 3
        return stat < crit, stat
    return float(chdtrc(df, stat)) > 1e-3, stat


def from_original(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: which pixels of ``out`` still come from the same sample of ``x``."""
    return out[:, 0] == x[:, 0]


def from_partner(out: torch.Tensor, x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: which pixels of ``out`` come from sample ``perm[i]`` of ``x``."""
    return out[:, 0] == x[perm, 0]


def seg_maps(b: int, h: int = HW[0], w: int = HW[1], ids_per_sample: int = 4) -> torch.Tensor:
    """(B, H, W) int64 label maps; sample i uses only ids ``[k*i, k*i + k)`` (disjoint sets,
    k = ids_per_sample), laid out in vertical and horizontal stripes so every id occurs."""
    k = ids_per_sample
    ys = torch.arange(h)[:, None]
    xs = torch.arange(w)[None, :]
    local = (ys * 2 // h * 2 + xs * 2 // w) % k  # 4 quadrants -> ids 0..3
    return (k * torch.arange(b)).view(b, 1, 1) + local.expand(b, h, w)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tiny-tensor tests on one intra-op thread, then restore the setting.

    On an oversubscribed CPU, OpenMP's second thread spin-waits: a PreAct ResNet-18 forward
    of one 28x28 image took 0.7-1.5 s with 2 threads vs 0.15 s with 1, and a 12x17
    ``irfft2`` 40 ms vs 0.015 ms (load average 11 on 2 cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(params=DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture(params=[1, 7], ids=lambda b: f"B{b}")
def batch(request) -> int:
    return request.param


@pytest.fixture(params=[False, True], ids=["contig", "chlast"])
def channels_last(request) -> bool:
    return request.param


@pytest.fixture
def crash_at_step(monkeypatch):
    """``undo = crash_at_step(n)``: the learning-rate lookup (``mixkit.train.lr_at``) of
    optimiser step ``n`` (0-based) raises ``RuntimeError("simulated crash")``, as a process
    killed mid-run would stop; ``undo()`` restores it for the resumed run."""
    from mixkit import train

    real = train.lr_at

    def install(n: int):
        def crashing(lr, step, **schedule):
            if step == n:
                raise RuntimeError("simulated crash")
            return real(lr, step, **schedule)

        monkeypatch.setattr(train, "lr_at", crashing)
        return lambda: monkeypatch.setattr(train, "lr_at", real)

    return install
