"""Every fast path of the pixel ops (issue 6) gives outputs IDENTICAL to a plain reference
written here: partner batch by advanced indexing ``x[perm]``, per-sample loops that fill
a bool region and a resized canvas (``F.interpolate`` / ``F.grid_sample`` one sample at a
time), ``torch.where`` for selections and the float blend for MixUp. ``torch.equal`` for
floats (lerp with a 0/1 weight == where, for finite values) and uint8/int64 alike."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mixkit import bench, ops
from mixkit.augment import (
    ClassMix,
    CutMix,
    Cutout,
    FMix,
    Kind,
    MixUp,
    MixUpCutMix,
    RandomChoice,
    ResizeMix,
    apply_images,
    apply_masks,
)
from mixkit.augment.apply import mix_class_ids
from mixkit.augment.base import all_finite
from mixkit.ops import _fast

DTYPES = [torch.float32, torch.float64, torch.uint8]


# ----------------------------------------------------------------------------- reference
def make_images(b: int, h: int, w: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)
    return (x * 255).round().to(dtype) if dtype == torch.uint8 else (x * 4 - 2).to(dtype)


def ref_resize_one(src: torch.Tensor, box: list[int], size: tuple[int, int], mode: str):
    """src (C, Hs, Ws) resized into box on an HxW canvas (zeros outside)."""
    x1, y1, x2, y2 = box
    c, hs, ws = src.shape
    canvas = torch.zeros(c, *size, dtype=src.dtype)
    if x2 <= x1 or y2 <= y1:
        return canvas
    if mode == "nearest":
        crop = F.interpolate(src[None].double(), size=(y2 - y1, x2 - x1), mode="nearest")[0]
        canvas[:, y1:y2, x1:x2] = crop.to(src.dtype)  # nearest copies values: exact
        return canvas

    # bilinear, align_corners=False: source (i + 0.5) * in/out - 0.5 clamped at 0, in
    # grid_sample's [-1, 1] frame (float32), border padding.
    def axis(n: int, n_src: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float32)
        s = ((i + 0.5) * (n_src / torch.tensor(float(n))) - 0.5).clamp_min(0)
        return (s + 0.5) / n_src * 2 - 1

    gy, gx = axis(y2 - y1, hs), axis(x2 - x1, ws)
    grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), -1)[None]
    fsrc = src[None] if src.is_floating_point() else src[None].float()
    res = F.grid_sample(
        fsrc, grid.to(fsrc.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )[0]
    if not src.is_floating_point():
        res = res.round().clamp(0, 255).to(src.dtype)
    canvas[:, y1:y2, x1:x2] = res
    return canvas


def ref_mix(params, x: torch.Tensor, fill: float | None) -> torch.Tensor:
    """The plain reference of ``apply_images`` (x (B, C, H, W)) / int-map masks."""
    b, c, h, w = x.shape
    partner = x[params.perm]
    source = partner.clone()
    region = torch.zeros(b, 1, h, w, dtype=torch.bool)
    for i in range(b):
        k = int(params.kind[i])
        x1, y1, x2, y2 = params.boxes[i].tolist()
        if k in (Kind.CROP, Kind.RESIZE, Kind.FILL):
            region[i, :, y1:y2, x1:x2] = True
        if k == Kind.MASK:
            region[i, 0] = params.mask[i]
        if k == Kind.RESIZE:
            source[i] = ref_resize_one(partner[i], [x1, y1, x2, y2], (h, w), params.resize_mode)
        if k == Kind.FILL and fill is not None:
            source[i] = torch.full((), fill, dtype=x.dtype)
    if Kind.BLEND not in set(params.kind.tolist()):
        return torch.where(region, source, x)
    lam = params.lam.double() if x.dtype == torch.float64 else params.lam.float()
    weight = torch.where(
        (params.kind == Kind.BLEND).view(-1, 1, 1, 1),
        1 - lam.view(-1, 1, 1, 1),
        region.to(lam.dtype),
    )
    if x.is_floating_point():
        return ref_lerp(x, source, weight)
    w32 = weight.float()
    return (x.float() * (1 - w32) + source.float() * w32).round().clamp(0, 255).to(x.dtype)


def ref_lerp(x: torch.Tensor, p: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The float blend reference: ATen's lerp formula, every op rounded in x's dtype."""
    w = w.to(x.dtype)
    d = p - x
    return torch.where(w < 0.5, x + w * d, p - d * (1 - w))


def assert_identical(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a, b), f"max diff {(a.double() - b.double()).abs().max()}"


def assert_new_out_inplace(f, x: torch.Tensor, ref: torch.Tensor) -> None:
    """``f(x)``, ``f(x, out=...)`` and ``f(copy, inplace=True)`` all give ``ref``."""
    assert_identical(f(x), ref)
    assert_identical(f(x, out=torch.full_like(x, 3)), ref)
    work = x.clone()
    assert f(work, inplace=True) is work
    assert_identical(work, ref)


def require_native() -> None:
    """The C kernels are built wherever a C compiler is (``test_native_kernels_are_built``);
    only an install without one may skip their cases."""
    if _fast._native is None:
        pytest.skip("mixkit.ops._native was not built (no C compiler at install)")


@pytest.fixture(params=["native", "stream", "default", "tiny", "loop"])
def block_bytes(request, monkeypatch):
    """The C kernels (``ops._native``), with plain and with non-temporal stores (the path of
    large out-of-place outputs, ``STREAM_BYTES``); then, with them off, the torch paths:
    default blocks, one-to-two-sample blocks, and the sample-by-sample path that large
    (224x224) samples take (``LOOP_BYTES``)."""
    if request.param in ("native", "stream"):
        require_native()
        monkeypatch.setattr(_fast, "NATIVE", True)
        if request.param == "stream":
            monkeypatch.setattr(_fast, "STREAM_BYTES", 1)
        return request.param
    monkeypatch.setattr(_fast, "NATIVE", False)
    if request.param == "tiny":
        monkeypatch.setattr(_fast, "BLOCK_BYTES", 3 * 13 * 11 * 8 * 2 - 1)
    if request.param == "loop":
        monkeypatch.setattr(_fast, "LOOP_BYTES", 0)
    return request.param


def modules(mode: str):
    return [
        MixUp(mode=mode, p=0.7),
        CutMix(mode=mode, p=0.7),
        CutMix(mode=mode),
        CutMix(mode=mode, correct_lam=False),
        ResizeMix(mode=mode, p=0.8),
        ResizeMix(mode=mode, interpolation="bilinear"),
        Cutout(length=5, value=0.7, mode=mode, p=0.6),
        FMix(mode=mode),
        ClassMix(5, mode=mode),
        MixUpCutMix(mode=mode),
        RandomChoice([CutMix(), ResizeMix(), Cutout(length=4, value=3), FMix()], mode=mode),
        RandomChoice([CutMix(), ResizeMix(interpolation="bilinear"), MixUp()], mode=mode),
    ]


# ----------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_apply_images_new_out_inplace_identical(dtype, mode, block_bytes):
    b, h, w = 6, 13, 11
    x = make_images(b, h, w, dtype, seed=1)
    seg = torch.randint(0, 5, (b, h, w), generator=torch.Generator().manual_seed(2))
    for seed, m in enumerate(modules(mode)):
        ctx = {"label_maps": seg} if isinstance(m, ClassMix) else {}
        params = m.draw(x.shape, generator=seed, **ctx)
        ref = ref_mix(params, x, params.fill)
        before = x.clone()
        assert_identical(apply_images(params, x), ref)
        assert torch.equal(x, before)  # never mutated by default
        out = torch.full_like(x, 7)
        assert apply_images(params, x, out=out) is out
        assert_identical(out, ref)
        work = x.clone()
        assert apply_images(params, work, inplace=True) is work
        assert_identical(work, ref)
        if Kind.BLEND not in set(params.kind.tolist()):  # int maps: same regions, nearest
            nearest = params.replace(resize_mode="nearest")
            assert_identical(apply_masks(params, seg), ref_mix(nearest, seg[:, None], 255)[:, 0])
            seg8 = seg.to(torch.uint8)
            assert_identical(apply_masks(params, seg8), ref_mix(nearest, seg8[:, None], 255)[:, 0])


def test_apply_images_memory_formats_and_views():
    x = make_images(6, 13, 11, torch.float32, seed=3)
    for m in modules("elem"):
        if isinstance(m, ClassMix):
            continue
        params = m.draw(x.shape, generator=4)
        ref = ref_mix(params, x, params.fill)
        cl = x.contiguous(memory_format=torch.channels_last)
        assert_identical(apply_images(params, cl), ref)
        big = torch.zeros(6, 5, 15, 14)
        view = big[:, 1:4, 1:14, 2:13]  # non-contiguous
        view.copy_(x)
        assert_identical(apply_images(params, view), ref)
        assert_identical(apply_images(params, view, inplace=True), ref)
        assert torch.equal(big[:, 1:4, 1:14, 2:13], ref) and big[:, 0].abs().sum() == 0


def test_module_forward_inplace_and_out():
    x = make_images(8, 16, 16, torch.float32, seed=5)
    y = torch.arange(8) % 4
    m = CutMix(mode="elem", num_classes=4, generator=3)
    ref_x, ref_t = m(x, y)
    params = m.last_params
    work = x.clone()
    got_x, got_t = m(work, y, params=params, inplace=True)
    assert got_x is work and torch.equal(got_x, ref_x) and torch.equal(got_t, ref_t)
    out = torch.empty_like(x)
    got_x, _ = m(x, y, params=params, out=out)
    assert got_x is out and torch.equal(out, ref_x)
    with pytest.raises(ValueError, match="either out= or inplace=True"):
        m(x, y, params=params, out=out, inplace=True)
    with pytest.raises(ValueError, match="out must match images"):
        m(x, y, params=params, out=torch.empty(8, 3, 16, 15))


# ----------------------------------------------------------------------------- ops
@pytest.mark.parametrize("dtype", DTYPES)
def test_ops_identical_to_reference(dtype, block_bytes):
    b, h, w = 6, 13, 11
    g = torch.Generator().manual_seed(7)
    x = make_images(b, h, w, dtype, seed=8)
    perm = torch.randperm(b, generator=g)
    lam = torch.rand(b, generator=g)
    lam[0], lam[1] = 0.0, 1.0
    per_sample = CutMix(mode="elem").draw(x.shape, generator=9).boxes
    per_sample[2] = torch.tensor([3, 4, 3, 9])  # an empty box
    shared = per_sample[3:4].expand(b, 4).clone()
    src = make_images(b, 7, 19, dtype, seed=10)  # any size (RecursiveMix history)
    partner = x[perm]
    for boxes in (per_sample, shared, torch.zeros(b, 4, dtype=torch.long)):
        region = torch.zeros(b, 1, h, w, dtype=torch.bool)
        for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            region[i, :, y1:y2, x1:x2] = True
        assert torch.equal(ops.box_mask(boxes, h, w), region)
        assert_identical(ops.cutmix(x, boxes, perm), torch.where(region, partner, x))
        assert_identical(ops.paste_region(x, partner, boxes), torch.where(region, partner, x))
        fill = torch.full((), 1.5, dtype=dtype)
        assert_identical(ops.cutout(x, boxes, 1.5), torch.where(region, fill, x))
        for mode in ("nearest", "bilinear"):
            rz = torch.stack(
                [ref_resize_one(partner[i], boxes[i].tolist(), (h, w), mode) for i in range(b)]
            )
            assert_identical(ops.resizemix(x, boxes, perm, mode), torch.where(region, rz, x))
            rs = torch.stack(
                [ref_resize_one(src[i], boxes[i].tolist(), (h, w), mode) for i in range(b)]
            )
            ref = torch.where(region, rs, x)
            assert_identical(ops.resize_paste(x, src, boxes, mode), ref)
            work = x.clone()
            assert ops.resize_paste(work, src, boxes, mode, inplace=True) is work
            assert_identical(work, ref)
        # in place with the source aliasing the destination (snapshot taken)
        work = x.clone()
        ops.paste_region(work, work.flip(0), boxes, inplace=True)
        assert_identical(work, torch.where(region, x.flip(0), x))
        work = x.clone()
        ops.cutmix(work, boxes, perm, inplace=True)
        assert_identical(work, torch.where(region, partner, x))
    mask = torch.rand(b, h, w, generator=g) < 0.4
    assert_identical(ops.mask_mix(x, mask, perm), torch.where(mask[:, None], partner, x))
    ref_w = (1 - lam.double() if dtype == torch.float64 else 1 - lam).view(-1, 1, 1, 1)
    if dtype.is_floating_point:
        ref = ref_lerp(x, partner, ref_w)
    else:
        ref = (x.float() * (1 - ref_w) + partner.float() * ref_w).round().clamp(0, 255).to(dtype)
    assert_identical(ops.mixup(x, lam, perm), ref)
    work = x.clone()
    assert_identical(ops.mixup(work, lam, perm, inplace=True), ref)
    assert_identical(ops.blend(x, partner, mask[:, None]), torch.where(mask[:, None], partner, x))
    assert_identical(ops.blend(x, partner, mask[0]), torch.where(mask[0], partner, x))  # (H, W)
    wf = torch.rand(b, 1, h, w, generator=g)
    if dtype.is_floating_point:
        ref = ref_lerp(x, partner, wf)
    else:
        ref = (x.float() * (1 - wf) + partner.float() * wf).round().clamp(0, 255).to(dtype)
    assert_identical(ops.blend(x, partner, wf), ref)


# Partners for a batch of 7 samples, every shape of permutation (and one that is not).
PAIRINGS_7 = {
    "cycle": [3, 6, 0, 5, 1, 2, 4],  # one 7-cycle
    "cycles": [2, 0, 1, 4, 5, 3, 6],  # a 3-cycle, a 3-cycle, a fixed point
    "fixed": list(range(7)),
    "flip": list(range(6, -1, -1)),
    "repeated": [1, 1, 0, 3, 6, 2, 2],
}


def pairing_cases(x: torch.Tensor, perm: torch.Tensor, seed: int) -> list:
    """Every pixel op on a (7, C, H, W) batch with partners ``perm``: per-sample boxes (one
    the whole image, one empty), MixUp weights, a mask, a separate source of another size."""
    b, _, h, w = x.shape
    boxes = CutMix(mode="elem").draw(x.shape, generator=seed).boxes
    boxes[4] = torch.tensor([0, 0, w, h])  # the whole image
    boxes[5] = torch.tensor([3, 4, 3, 9])  # empty
    lam = torch.rand(b, generator=torch.Generator().manual_seed(seed + 1))
    mask = torch.rand(b, h, w, generator=torch.Generator().manual_seed(seed + 2)) < 0.5
    src = make_images(b, 5, 17, x.dtype, seed=seed + 3)
    return [
        lambda t, **kw: ops.cutmix(t, boxes, perm, **kw),
        lambda t, **kw: ops.resizemix(t, boxes, perm, "nearest", **kw),
        lambda t, **kw: ops.resizemix(t, boxes, perm, "bilinear", **kw),
        lambda t, **kw: ops.resize_paste(t, src, boxes, "nearest", **kw),
        lambda t, **kw: ops.cutout(t, boxes, 2.0, **kw),
        lambda t, **kw: ops.mixup(t, lam, perm, **kw),
        lambda t, **kw: ops.mask_mix(t, mask, perm, **kw),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pairing", list(PAIRINGS_7))
def test_sample_by_sample_in_place_follows_the_cycles(dtype, pairing, monkeypatch):
    """In place, large samples are mixed along the cycles of perm (one saved region per
    cycle); a perm with a repeated partner falls back to the block path. Same bytes."""
    x = make_images(7, 12, 10, dtype, seed=11)
    cases = pairing_cases(x, torch.tensor(PAIRINGS_7[pairing]), seed=12)
    monkeypatch.setattr(_fast, "NATIVE", False)
    refs = [f(x) for f in cases]  # the block path (samples below LOOP_BYTES)
    paths = [("loop", False)] + ([("native", True)] if _fast._native is not None else [])
    for path, native in paths:
        monkeypatch.setattr(_fast, "NATIVE", native)
        monkeypatch.setattr(_fast, "LOOP_BYTES", 0 if path == "loop" else 1 << 17)
        for f, ref in zip(cases, refs, strict=True):
            assert_new_out_inplace(f, x, ref)


@pytest.fixture
def torch_threads():
    """Sets torch's intra-op thread count for the test, restoring it afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [2, 3, 8])
@pytest.mark.parametrize("pairing", list(PAIRINGS_7))
@pytest.mark.parametrize("stream", [False, True])
def test_native_kernels_split_between_threads_give_the_same_bytes(
    threads, pairing, stream, torch_threads, monkeypatch
):
    """A batch split between threads (each a range of the visiting order; in place, cycles cut
    between threads read the cut partner from a copy taken first): the same bytes as the torch
    reference for every op, new / out= / in place, whatever the pairing; 8 threads for 7
    samples is one per sample."""
    require_native()
    torch_threads(threads)
    monkeypatch.setattr(_fast, "THREAD_BYTES", 1)
    monkeypatch.setattr(_fast, "STREAM_BYTES", 1 if stream else 1 << 62)
    b, h, w = 7, 12, 10
    x = make_images(b, h, w, torch.float32, seed=71)
    perm = torch.tensor(PAIRINGS_7[pairing])
    cases = pairing_cases(x, perm, seed=72)
    monkeypatch.setattr(_fast, "NATIVE", False)
    refs = [f(x) for f in cases]
    monkeypatch.setattr(_fast, "NATIVE", True)
    assert _fast.native_threads(x) == threads
    for f, ref in zip(cases, refs, strict=True):
        assert_new_out_inplace(f, x, ref)
    for make in (CutMix, ResizeMix, Cutout, MixUp):  # the fused check, in every range
        params = make(mode="elem").draw(x.shape, generator=76).replace(perm=perm)
        for i in range(b):
            y = x.clone()
            y[i, 2, h - 1, w - 1] = float("nan")
            with pytest.raises(ValueError, match="images hold NaN or Inf"):
                apply_images(params, y, check_finite=True)


def test_native_threads_argument_is_checked():
    require_native()
    x = torch.zeros(2, 1, 4, 4)
    ptrs = (x.data_ptr(), x.data_ptr(), torch.zeros(2, 4, dtype=torch.long).data_ptr(), 0)
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        _fast._native.fill(*ptrs, 2, 1, 4, 4, 4, False, False, 0)


@pytest.mark.parametrize("native", [False, True])
def test_sample_by_sample_rejects_a_perm_out_of_range(native, monkeypatch):
    if native:
        require_native()
    monkeypatch.setattr(_fast, "NATIVE", native)
    monkeypatch.setattr(_fast, "LOOP_BYTES", 0)
    x = make_images(3, 8, 8, torch.float32)
    before = x.clone()
    params = CutMix(mode="elem").draw(x.shape, generator=0)
    for bad in ([1, 2, -1], [1, 2, 3]):
        with pytest.raises(ValueError, match=r"perm must hold indices in \[0, 3\)"):
            apply_images(params.replace(perm=torch.tensor(bad)), x, inplace=True)
    assert torch.equal(x, before)  # checked before any write


# ----------------------------------------------------------------------------- C kernels
def test_native_kernels_are_built_where_a_compiler_exists():
    """setup.py builds ops._native as optional: a failed build would silently leave only the
    torch paths. Wherever a C compiler exists (CI), it must have been built and be in use."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) on this machine: the torch paths are used")
    assert _fast._native is not None, "pip install -e . did not build mixkit.ops._native"
    assert _fast.NATIVE == (os.environ.get("MIXKIT_NATIVE", "1") != "0") == ops.native_kernels()


@pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8]
)
@pytest.mark.parametrize("stream", [False, True])
def test_native_kernels_move_bytes_of_every_element_size(dtype, stream, monkeypatch):
    """The C kernels move elements of 1, 2, 4 and 8 bytes (int64 maps via apply_masks): the
    same bytes as the torch paths, new / out= / in place, per-sample and shared boxes, masks,
    MixUp of the dtypes it takes; with plain and with non-temporal stores."""
    require_native()
    monkeypatch.setattr(_fast, "STREAM_BYTES", 1 if stream else 1 << 62)
    b, h, w = 5, 9, 14
    x = make_images(b, h, w, torch.float64, seed=21).to(dtype)
    perm = torch.tensor([3, 0, 4, 1, 2])
    boxes = CutMix(mode="elem").draw(x.shape, generator=22).boxes
    boxes[1] = torch.tensor([0, 0, w, h])
    boxes[2] = torch.tensor([5, 2, 5, 8])  # empty
    src = make_images(b, 4, 23, torch.float64, seed=23).to(dtype)  # any size (history)
    partner = x.flip(0).contiguous()
    mask = torch.rand(b, h, w, generator=torch.Generator().manual_seed(26)) < 0.5
    cases = [
        lambda t, **kw: ops.cutmix(t, boxes, perm, **kw),
        lambda t, **kw: ops.cutmix(t, boxes[3:4].expand(b, 4), perm, **kw),
        lambda t, **kw: ops.resizemix(t, boxes, perm, "nearest", **kw),
        lambda t, **kw: ops.resize_paste(t, src, boxes, "nearest", **kw),
        lambda t, **kw: ops.paste_region(t, partner, boxes, **kw),
        lambda t, **kw: ops.cutout(t, boxes, 3.0, **kw),
        lambda t, **kw: ops.mask_mix(t, mask, perm, **kw),
        lambda t, **kw: ops.mixup(t, lam, perm, **kw),
    ]
    lam = torch.tensor([0.0, 1.0, 0.5, 0.3, 0.8], dtype=torch.float64)
    monkeypatch.setattr(_fast, "NATIVE", False)
    refs = [f(x) for f in cases]
    maps = torch.randint(0, 9, (b, h, w), generator=torch.Generator().manual_seed(24))
    params = CutMix(mode="elem").draw(x.shape, generator=25)
    ref_maps = apply_masks(params, maps)
    monkeypatch.setattr(_fast, "NATIVE", True)
    for f, ref in zip(cases, refs, strict=True):
        assert_new_out_inplace(f, x, ref)
    assert_identical(apply_masks(params, maps), ref_maps)


def test_native_kernels_reject_bad_boxes_before_writing(monkeypatch):
    """apply_images does not re-check MixParams boxes, perm or mask: the C kernels check
    shapes and ranges (one ValueError naming the argument, nothing written) instead of
    reading out of bounds."""
    require_native()
    monkeypatch.setattr(_fast, "NATIVE", True)
    x = make_images(3, 8, 8, torch.float32)
    before = x.clone()
    for bad in ([0, 0, 9, 4], [-1, 0, 4, 4], [4, 0, 2, 4]):
        boxes = torch.tensor([[0, 0, 4, 4], bad, [1, 1, 2, 2]])
        for op in ("paste", "resize", "fill"):
            fill = torch.full((), 1.0)
            with pytest.raises(ValueError, match=r"boxes must satisfy 0 <= x1 <= x2 <= 8 .* at 1"):
                _fast.native_box(op, x, x, boxes, torch.tensor([1, 2, 0]), value=fill)
        assert torch.equal(x, before)
    perm = torch.tensor([1, 2, 0])
    with pytest.raises(ValueError, match=r"perm must have shape \(3,\), got \(2,\)"):
        _fast.native_box("paste", x, x, boxes[:1].expand(3, 4), perm[:2])
    with pytest.raises(ValueError, match=r"boxes must have shape \(3, 4\), got \(2, 4\)"):
        _fast.native_box("resize", x, x, boxes[:2], perm)
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(3, 8, 8\)"):
        _fast.native_mask(x, x, torch.ones(3, 8, 7, dtype=torch.bool), perm)
    with pytest.raises(ValueError, match=r"perm must hold indices in \[0, 3\), got 3 at 0"):
        _fast.native_mask(x, x, torch.ones(3, 8, 8, dtype=torch.bool), torch.tensor([3, 0, 1]))
    assert torch.equal(x, before)
    bx, pm = boxes[:1].expand(3, 4).contiguous(), torch.tensor([1, 2, 0])
    ptrs = (x.data_ptr(), x.data_ptr(), x.data_ptr(), pm.data_ptr(), bx.data_ptr(), 0)
    with pytest.raises(ValueError, match="element size must be 1, 2, 4 or 8 bytes, got 3"):
        _fast._native.paste(*ptrs, 3, 3, 8, 8, 3, False, False)
    with pytest.raises(ValueError, match="in place with a perm needs a one-sample scratch"):
        _fast._native.paste(*ptrs, 3, 3, 8, 8, 4, False, False)  # scratch 0
    assert torch.equal(x, before)
    wt = torch.full((3,), 0.5)
    blend_ptrs = (x.data_ptr(), x.data_ptr(), pm.data_ptr(), wt.data_ptr(), 0)
    for es, floating in ((2, True), (4, False)):
        msg = f"blend takes uint8 or float32 / float64 images, got element size {es}"
        with pytest.raises(ValueError, match=msg):
            _fast._native.blend(*blend_ptrs, 3, 3, 8, 8, es, floating, False, False)
    assert torch.equal(x, before)


def test_caller_masks_and_weights_are_not_modified():
    x = make_images(4, 8, 8, torch.uint8)
    mask = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(0)) < 0.5
    before = mask.clone()
    ops.mask_mix(x, mask, torch.tensor([1, 2, 3, 0]))
    ops.blend(x, x.flip(0), mask[:, None])
    assert torch.equal(mask, before) and mask.view(torch.uint8).max() <= 1


def test_bad_out_and_inplace_arguments():
    x = make_images(4, 8, 8, torch.float32)
    boxes = torch.tensor([[0, 0, 4, 4]] * 4)
    perm = torch.tensor([1, 2, 3, 0])
    with pytest.raises(ValueError, match="either out= or inplace=True"):
        ops.cutmix(x, boxes, perm, out=torch.empty_like(x), inplace=True)
    with pytest.raises(ValueError, match=r"out must match images .*dtype torch.float64"):
        ops.cutmix(x, boxes, perm, out=torch.empty_like(x, dtype=torch.float64))
    with pytest.raises(ValueError, match="mode must be 'nearest' or 'bilinear'"):
        ops.resize_paste(x, x, boxes, "bicubic")


def test_scratch_buffers_are_reused_and_cleared():
    x = make_images(4, 8, 8, torch.float32)
    perm = torch.tensor([1, 2, 3, 0])
    ops.mixup(x, torch.full((4,), 0.3), perm)
    buf = _fast._SCRATCH.buffers[("partner", torch.float32)]
    ops.mixup(x, torch.full((4,), 0.3), perm)
    assert _fast._SCRATCH.buffers[("partner", torch.float32)] is buf  # no new allocation
    _fast.clear_workspace()
    assert not _fast._SCRATCH.buffers


def test_all_finite():
    assert all_finite(torch.rand(5, 3))
    assert all_finite(torch.full((4,), 3e38))  # sum overflows: exact fallback says finite
    assert all_finite(torch.full((4,), 6e4, dtype=torch.float16))
    for bad in (math.nan, math.inf, -math.inf):
        t = torch.rand(50)
        t[17] = bad
        assert not all_finite(t)
        assert not all_finite(t.double())


# ----------------------------------------------------------------------------- bench
def test_bench_cases_render_and_section(tmp_path):
    cases, versions = bench.build_cases(
        ["128x3x32x32"], torch.device("cpu"), ("cutmix", "recursive"), peers=False
    )
    keys = {c.key for c in cases}
    assert ("128x3x32x32", "cutmix", "elem", "inplace", "mixkit") in keys
    assert ("128x3x32x32", "recursive", "batch", "out=", "mixkit") in keys
    clone = next(c for c in cases if c.op == "clone")
    cut = next(c for c in cases if c.key[1:4] == ("cutmix", "elem", "apply"))
    bench.measure([clone, cut], threads=1, rounds=1, min_run_time=0.01)
    assert len(clone.times) == 1 and clone.times[0] > 0
    for c in cases:  # synthetic times: the table is a pure function of them
        c.times = [2e-4] if c.op != "clone" else [1e-4]
    text = bench.render(cases, "test machine", "mixkit bench", torch.device("cpu"), versions)
    assert "| 128x3x32x32 | cutmix | elem | 200 | 200 | 2.00 |" in text
    assert "| 128x3x32x32 | lerp floor | - | | 200 | 2.00 | 2.00 | 2.00 | 15.7 |" in text
    for c in cases:  # apply 6x clone, out= 5.5x, in place 3x: the verdict names the variant
        c.times = [{"apply": 6e-4, "out=": 5.5e-4, "inplace": 3e-4}.get(c.variant, 1e-4)]
    summary = "\n".join(bench.targets_summary(cases))
    assert (
        "per-sample cutmix apply at 128x3x32x32: 6.00x clone (target <= 5: NOT met returning "
        "a new tensor; met with inplace; out= 5.50, inplace 3.00)" in summary
    )
    md = tmp_path / "B.md"
    md.write_text("# T\n\n## 1. Op speed (issue 6)\n\nold\n\n## 2. Next\n\nkeep\n")
    bench.replace_section(md, bench.SECTION, text)
    new = md.read_text()
    assert "old" not in new and "## 2. Next\n\nkeep\n" in new and "test machine" in new
    with pytest.raises(ValueError, match="size must be one of"):
        bench.build_cases(["1x1"], torch.device("cpu"))
    with pytest.raises(ValueError, match="timer must be one of"):
        bench.measure([clone], 1, 1, 0.01, timer="gpu")


def test_bench_peer_verdict_names_the_in_place_variant():
    """mixkit/peer is read on the new-tensor call; when only ``inplace=True`` (timm's own
    behaviour) reaches the target, the line says so instead of a bare met / NOT met."""

    def case(op, mode, variant, impl, t):
        return bench.Case("64x3x224x224", op, mode, variant, impl, lambda: None, [t])

    def line(new, inplace, unchecked=None):
        cases = [
            case("clone", "-", "new", "torch", 1.0),
            case("cutmix", "elem", "forward", "mixkit", new),
            case("cutmix", "elem", "forward inplace", "mixkit", inplace),
            *(
                [case("cutmix", "elem", "forward unchecked", "mixkit", unchecked)]
                if unchecked
                else []
            ),
            case("cutmix", "elem", "forward", "timm", 10.0),
            case("cutmix", "batch", "forward", "torchvision", 20.0),
        ]
        return next(s for s in bench.targets_summary(cases) if "vs fastest peer" in s)

    assert line(3.0, 2.0).endswith(
        "(timm elem): mixkit/peer 0.30; inplace 0.20 (target <= 0.33: met)"
    )
    assert line(5.0, 3.0).endswith(
        "mixkit/peer 0.50; inplace 0.30 (target <= 0.33: NOT met returning a new tensor; "
        "met with inplace)"
    )
    assert line(5.0, 4.0).endswith("inplace 0.40 (target <= 0.33: NOT met)")
    assert line(5.0, 4.0, 3.0).endswith(
        "inplace 0.40; inplace unchecked 0.30 (target <= 0.33: NOT met with the finite check; "
        "met in place with check_finite=False)"
    )
    assert line(5.0, 4.0, 3.5).endswith("inplace unchecked 0.35 (target <= 0.33: NOT met)")


def test_native_uint8_mixup_rounds_like_the_float32_reference(monkeypatch):
    """The C uint8 MixUp computes round(x*(1-w) + p*w) in float32 with ties to even, as the
    torch reference does: every (x, p) byte pair, weights with exact .5 ties and 0 / 1."""
    require_native()
    vals = torch.arange(256, dtype=torch.uint8)
    own = vals.repeat_interleave(256).view(1, 1, 256, 256)  # x varies along rows
    partner = vals.repeat(256).view(1, 1, 256, 256)  # p varies along columns
    lam = torch.tensor([0.0, 1.0, 0.5, 0.25, 0.75, 0.3, 1 / 3, 0.999])
    x = torch.cat([own, partner]).repeat(len(lam) // 2, 1, 1, 1)  # (8, 1, 256, 256)
    perm = torch.arange(len(lam)).view(-1, 2).flip(1).reshape(-1)  # pairs (0,1), (2,3), ...
    monkeypatch.setattr(_fast, "NATIVE", False)
    ref = ops.mixup(x, lam, perm)
    monkeypatch.setattr(_fast, "NATIVE", True)
    assert_identical(ops.mixup(x, lam, perm), ref)
    work = x.clone()
    assert_identical(ops.mixup(work, lam, perm, inplace=True), ref)
    assert ref[2, 0, 1, 2] == 2 and ref[2, 0, 0, 1] == 0  # 1.5 -> 2 and 0.5 -> 0: ties to even


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("stream", [True, False])
def test_native_mixup_finds_every_non_finite_pixel(dtype, bad, stream, monkeypatch):
    """The float MixUp out of place checks its own pixels in the same pass (streamed) or
    right after it: one NaN / Inf at any position (scalar head, vector body, scalar tail;
    blend weights below and above 0.5) is found, a finite batch passes, and the mix is the
    same as unchecked."""
    require_native()
    monkeypatch.setattr(_fast, "STREAM_BYTES", 1 if stream else 1 << 62)
    b, c, h, w = 3, 1, 7, 9  # 63 elements per sample: odd tails after the vectors

    def misaligned(t: torch.Tensor) -> torch.Tensor:  # one element off the allocation
        return torch.cat([t.view(-1)[:1], t.view(-1)])[1:].view(t.shape)

    x = misaligned(make_images(b, h, w, torch.float64, seed=41).to(dtype))
    perm = torch.tensor([2, 0, 1])
    weight = torch.tensor([0.25, 0.75, 0.5], dtype=dtype)
    ref = misaligned(torch.empty_like(x))
    assert _fast.native_blend(x, ref, weight, perm, False) is True
    out = misaligned(torch.empty_like(x))
    assert _fast.native_blend(x, out, weight, perm, True) is True
    assert_identical(out, ref)
    assert_identical(ref, ref_lerp(x, x[perm], weight.view(-1, 1, 1, 1)))
    for pos in range(x.numel()):
        y = x.clone()
        y.view(-1)[pos] = bad
        assert _fast.native_blend(y, misaligned(torch.empty_like(y)), weight, perm, True) is False
    ptrs = (x.data_ptr(), x.data_ptr(), perm.data_ptr(), weight.data_ptr())
    msg = "the finite check runs only on float32 / float64 images out of place"
    with pytest.raises(ValueError, match=msg):  # in place
        _fast._native.blend(*ptrs, 0, b, c, h, w, x.element_size(), True, True, True)
    with pytest.raises(ValueError, match="the finite check takes float images"):
        _fast._native.blend(*ptrs, 0, b, c, h, w, 1, False, True, True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("w", [9, 4100])  # rows composed in the L1 buffer / longer than it
@pytest.mark.parametrize("stream", [True, False])
def test_native_box_ops_find_every_non_finite_pixel(dtype, w, stream, monkeypatch):
    """CutMix / nearest ResizeMix / Cutout out of place check every own pixel in their pass
    (streamed) or right after it: outside the box, inside it (read only for the check), in a
    whole-image box and in an empty box's sample. One NaN / Inf anywhere is found; a finite
    batch passes with the unchecked bytes."""
    require_native()
    monkeypatch.setattr(_fast, "STREAM_BYTES", 1 if stream else 1 << 62)
    b, c, h = 3, 2, 5
    x = make_images(b, h, w, torch.float64, seed=61).to(dtype)
    perm = torch.tensor([2, 0, 1])
    boxes = torch.tensor([[1, 1, w - 2, 4], [0, 0, w, h], [3, 2, 3, 2]])  # inner, whole, empty
    fill = torch.full((), 2.0, dtype=dtype)

    def run(op: str, t: torch.Tensor, check: bool) -> torch.Tensor:
        out = torch.empty_like(t)
        if op == "fill":
            return _fast.native_box(op, t, out, boxes, value=fill, check=check)
        return _fast.native_box(op, t, out, boxes, perm, check=check)

    n = x.numel()
    positions = range(n) if n < 1000 else sorted({*range(0, n, 97), *range(w - 3, n, c * h * w)})
    for op in ("paste", "resize", "fill"):
        ref = run(op, x, False)
        assert_identical(run(op, x, True), ref)
        assert not torch.equal(ref, x)  # the box ops did mix
        for pos in positions:
            y = x.clone()
            y.view(-1)[pos] = float("nan") if pos % 2 else -float("inf")
            with pytest.raises(ValueError, match="images hold NaN or Inf values"):
                run(op, y, True)
    ptrs = (x.data_ptr(), x.data_ptr(), x.data_ptr(), perm.data_ptr(), boxes.data_ptr(), 0)
    msg = "the finite check runs only on float32 / float64 images out of place"
    with pytest.raises(ValueError, match=msg):  # 2-byte elements
        _fast._native.paste(0, *ptrs[1:], b, c, h, w, 2, True, True)
    with pytest.raises(ValueError, match=msg):  # in place
        _fast._native.paste(*ptrs, b, c, h, w, x.element_size(), False, True)


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.machine() == "x86_64"),
    reason="-U__SSE2__ emulates a build without SSE2 only with gcc/clang on x86-64 Linux",
)
def test_native_kernels_built_without_sse2_give_the_same_bytes(tmp_path, monkeypatch):
    """Where SSE2 is absent (aarch64, MSVC) the kernels copy with memcpy instead of
    non-temporal stores and a streamed float MixUp blends in chunks with its own finite scan.
    That build (here: -U__SSE2__) gives the same bytes and finds the same NaN / Inf."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) on this machine: the torch paths are used")
    src = Path(_fast.__file__).with_name("_native.c")
    so = tmp_path / f"_native{sysconfig.get_config_var('EXT_SUFFIX')}"
    flags = ["-O2", "-shared", "-fPIC", "-pthread", "-std=c99", "-fno-fast-math"]
    flags.append("-ffp-contract=off")
    include = f"-I{sysconfig.get_paths()['include']}"
    subprocess.run([cc, *flags, "-U__SSE2__", include, str(src), "-o", str(so)], check=True)
    loader = importlib.machinery.ExtensionFileLoader("mixkit.ops._native", str(so))
    spec = importlib.util.spec_from_file_location("mixkit.ops._native", str(so), loader=loader)
    plain = importlib.util.module_from_spec(spec)
    loader.exec_module(plain)
    b, h, w = 5, 9, 14
    perm = torch.tensor([3, 0, 4, 1, 2])
    lam = torch.tensor([0.0, 1.0, 0.5, 0.3, 0.8], dtype=torch.float64)
    boxes = CutMix(mode="elem").draw((b, 3, h, w), generator=52).boxes
    for dtype in (torch.float32, torch.float64, torch.uint8):
        x = make_images(b, h, w, torch.float64, seed=51).to(dtype)
        cases = [
            lambda t, **kw: ops.cutmix(t, boxes, perm, **kw),
            lambda t, **kw: ops.resizemix(t, boxes, perm, "nearest", **kw),
            lambda t, **kw: ops.cutout(t, boxes, 3.0, **kw),
            lambda t, **kw: ops.mixup(t, lam, perm, **kw),
        ]
        monkeypatch.setattr(_fast, "NATIVE", False)
        refs = [f(x) for f in cases]
        monkeypatch.setattr(_fast, "NATIVE", True)
        monkeypatch.setattr(_fast, "_native", plain)
        monkeypatch.setattr(_fast, "STREAM_BYTES", 1)
        for f, ref in zip(cases, refs, strict=True):
            assert_new_out_inplace(f, x, ref)
        if dtype.is_floating_point:
            weight = (1 - lam).to(dtype)
            box = boxes[3]  # a NaN inside sample 3's box: read only by the check
            for pos in (0, 7, int(3 * x[0].numel() + box[1] * w + box[0]), x.numel() - 1):
                y = x.clone()
                y.view(-1)[pos] = float("nan")
                assert not _fast.native_blend(y, torch.empty_like(y), weight, perm, True)
                for op in ("paste", "resize"):
                    with pytest.raises(ValueError, match="images hold NaN or Inf"):
                        _fast.native_box(op, y, torch.empty_like(y), boxes, perm, check=True)
            assert _fast.native_blend(x, torch.empty_like(x), weight, perm, True)
        monkeypatch.undo()


@pytest.mark.parametrize("src_hw", [(13, 11), (7, 19), (40, 3), (1, 1)])
def test_native_nearest_index_matches_for_every_box_size(src_hw, monkeypatch):
    """The C nearest index (float32 scale, truncation as floor) equals the torch path's for
    every box size on a 13x11 canvas, up- and down-sampling, at every offset's row/column."""
    require_native()
    h, w = 13, 11
    sizes = [(bh, bw) for bh in range(1, h + 1) for bw in range(1, w + 1)]
    g = torch.Generator().manual_seed(31)
    boxes = []
    for bh, bw in sizes:
        y1 = int(torch.randint(0, h - bh + 1, (1,), generator=g))
        x1 = int(torch.randint(0, w - bw + 1, (1,), generator=g))
        boxes.append([x1, y1, x1 + bw, y1 + bh])
    boxes = torch.tensor(boxes)
    x = make_images(len(sizes), h, w, torch.float32, seed=32)
    src = make_images(len(sizes), *src_hw, torch.float32, seed=33)
    monkeypatch.setattr(_fast, "NATIVE", False)
    ref = ops.resize_paste(x, src, boxes, "nearest")
    monkeypatch.setattr(_fast, "NATIVE", True)
    assert_identical(ops.resize_paste(x, src, boxes, "nearest"), ref)


# ----------------------------------------------------------------------------- labels
def ref_targets(params, labels: torch.Tensor, k: int, smoothing: float) -> torch.Tensor:
    """Torch reference of mixed class-id targets: one-hot by scatter, smoothing, then ATen's
    lerp formula with every op rounded (``_fast.lerp_exact``) and ``label_lam``."""
    t = torch.zeros(labels.shape[0], k).scatter_(1, labels.view(-1, 1), 1.0)
    t = t * (1.0 - smoothing) + smoothing / k if smoothing else t
    keep = (params.kind == int(Kind.NONE)) | (params.kind == int(Kind.FILL))
    w = torch.where(keep, 1.0, params.lam).view(-1, 1)
    return _fast.lerp_exact(t[params.perm], t, w, torch.empty_like(t))


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.37])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_class_id_targets_match_the_torch_reference(smoothing, k, monkeypatch):
    """(B,) class ids through forward: the C call (``mix_class_ids``), the numpy path
    (``MIXKIT_NATIVE=0``) and the torch reference give the same bytes, for every mixer,
    gated samples (p < 1, weight 1) and Cutout (label kept) included."""
    require_native()
    b = 11
    x = make_images(b, 6, 5, torch.float32, seed=81)
    mixers = [MixUp(0.4), CutMix(), Cutout(length=3), MixUpCutMix(), ResizeMix()]
    for seed in range(4):
        labels = torch.randint(0, k, (b,), generator=torch.Generator().manual_seed(seed))
        for m in mixers:
            for p in (1.0, 0.5):
                m.p, m.num_classes, m.label_smoothing = p, k, smoothing
                params = m.draw(x.shape, generator=seed)
                ref = ref_targets(params, labels, k, smoothing)
                monkeypatch.setattr(_fast, "NATIVE", True)
                assert mix_class_ids(params, labels, k, smoothing) is not None  # the C call
                got = m(x, labels, params=params)[1]
                assert got.dtype == torch.float32 and got.numpy().tobytes() == ref.numpy().tobytes()
                monkeypatch.setattr(_fast, "NATIVE", False)
                assert_identical(m(x, labels, params=params)[1], ref)


@pytest.mark.parametrize("native", [False, True])
def test_class_id_targets_reject_ids_out_of_range(native, monkeypatch):
    monkeypatch.setattr(_fast, "NATIVE", native and _fast._native is not None)
    m = CutMix(num_classes=4)
    x = torch.rand(3, 1, 4, 4)
    for bad, got in (([0, 4, 1], r"\[0, 4\]"), ([-2, 1, 3], r"\[-2, 3\]")):
        with pytest.raises(ValueError, match=rf"num_classes=4\), got values in {got}"):
            m(x, torch.tensor(bad))


def test_native_targets_rejects_a_perm_out_of_range():
    require_native()
    out, labels = torch.empty(2, 3), torch.tensor([0, 1])
    lam, kind = torch.ones(2), torch.ones(2, dtype=torch.long)
    perm = torch.tensor([1, 2])
    ptrs = (out.data_ptr(), labels.data_ptr(), perm.data_ptr(), lam.data_ptr(), kind.data_ptr())
    with pytest.raises(ValueError, match=r"perm must hold indices in \[0, 2\), got 2 at 1"):
        _fast._native.targets(*ptrs, 2, 3, 1.0, 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mix_targets_numpy_path_is_the_exact_lerp(dtype):
    """ops.mix_targets on CPU (numpy) equals the torch ``lerp_exact`` of soft targets byte for
    byte (weights on both sides of 0.5, 0 and 1), and torch.lerp on one-hot rows."""
    g = torch.Generator().manual_seed(90)
    soft = torch.softmax(torch.randn(64, 7, generator=g, dtype=dtype), 1)
    lam = torch.cat([torch.tensor([0.0, 1.0, 0.5]), torch.rand(61, generator=g)]).to(dtype)
    perm = torch.randperm(64, generator=g)
    ref = _fast.lerp_exact(soft[perm], soft, lam.view(-1, 1), torch.empty_like(soft))
    assert_identical(ops.mix_targets(soft, lam, perm), ref)
    hard = ops.one_hot(torch.randint(0, 7, (64,), generator=g), 7, dtype)
    assert_identical(ops.mix_targets(hard, lam, perm), torch.lerp(hard[perm], hard, lam[:, None]))


def _call_floor():
    """benchmarks/call_floor.py as a module (the benchmarks are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "call_floor.py"
    spec = importlib.util.spec_from_file_location("call_floor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("op", ["mixup", "cutmix"])
def test_call_floor_measures_the_call_s_own_work(op, monkeypatch):
    """The floor's two parts do what one call does: the replayed random calls leave the
    generator where a draw leaves it (a draw missing one of them is refused), and the
    kernels give the call's images and targets for the same params."""
    floor = _call_floor()
    x = torch.rand(6, 3, 8, 10, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 3, 9, 2, 2, 7])
    module = bench._module(op, "elem", 8)
    replay = floor.generator_calls(module, x.shape)
    state = module.generator.get_state()
    module.draw(x.shape)
    after_draw = module.generator.get_state()
    module.generator.set_state(state)
    replay()
    assert torch.equal(module.generator.get_state(), after_draw)
    monkeypatch.setattr(floor, "RANDOM_FNS", ("randperm", "rand", "randint"))  # gamma missed
    with pytest.raises(RuntimeError, match="do not advance the generator"):
        floor.generator_calls(module, x.shape)
    monkeypatch.undo()
    if not _fast.NATIVE:
        with pytest.raises(RuntimeError, match="C kernels are off"):
            floor.kernels(op, module, x, labels)
        return
    state = module.generator.get_state()
    images, targets = floor.kernels(op, module, x, labels)()
    module.generator.set_state(state)
    params = module.draw(x.shape)
    want = module.apply(params, x, labels)
    assert torch.equal(images, want.images) and torch.equal(targets, want.labels)
