"""Fast kernels behind the pixel ops and ``augment.apply_images`` (issue 6). Private.

Everything here computes exactly what the plain reference computes (materialise the partner
batch ``images.index_select(0, perm)``, build a bool ``box_mask``, ``torch.where`` or a float
blend) -- tests/test_fastpaths.py checks ``torch.equal`` against such a reference -- but:

- the partner batch is never materialised in full on the CPU: samples are processed in blocks
  of about ``BLOCK_BYTES``; a block of partners is gathered into a reused scratch buffer that
  stays in cache and is consumed at once by one fused ``torch.lerp(..., out=dst_block)``;
- box / mask selections are a float 0/1 weight for ``torch.lerp`` (a broadcast bool
  ``torch.where`` is 10-20x slower on CPU). For finite values lerp with weight 0 or 1 returns
  exactly ``start`` or ``end`` (ATen: ``w < 0.5 ? a + w*(b-a) : b - (b-a)*(1-w)``); a NaN/Inf
  partner pixel can leak through a 0 weight, which is why ``MixTransform`` checks finiteness;
- integer images (uint8 images, int64 label maps) select exactly with a bit mask:
  ``x ^ ((x ^ src) & m)`` with ``m`` all-ones inside the region;
- a region shared by the whole batch (``mode="batch"``) is a slice copy of just the box;
- large samples (at least ``LOOP_BYTES``, e.g. 224x224) go sample by sample: MixUp lerps each
  sample with its partner where it lies (no partner copy), a box op copies
  or resizes only the box pixels; in place, samples are visited along the cycles of ``perm``
  so each reads a partner not yet overwritten, with only the region of each cycle's first
  sample saved (MixUp in place too): an in-place CutMix moves only the box bytes;
- with the optional C kernels built (``mixkit.ops._native``, see setup.py), a box or mask
  op on contiguous CPU tensors (CutMix, nearest ResizeMix / RecursiveMix, Cutout, ClassMix /
  FMix masks, int label maps) is one pass per sample: the pixels outside the region copied,
  the region's pixels moved from the partner (as they lie, or at nearest-resize indices) --
  values are only moved, so any dtype is exact; MixUp of float32 / float64 / uint8 images is
  one C pass computing the reference formula (``lerp_exact``, uint8 its float32 formula);
  out-of-place outputs of at least ``STREAM_BYTES`` are written with non-temporal stores;
  ``MIXKIT_NATIVE=0`` turns them off;
- float blends (MixUp) are ``lerp_exact``: ATen's lerp formula with every op rounded, the
  same bytes on every CPU and from the C kernel (``torch.lerp`` fuses an FMA where the CPU
  has one);
- box weights come from two small (B, H) / (B, W) indicator vectors (one broadcast product),
  ``arange`` vectors are cached per device;
- ``out=`` writes into the caller's buffer and ``inplace=True`` into the images themselves
  (the partners are read from a snapshot kept in a reused scratch buffer): no allocation
  after the first call.

Scratch buffers are per thread and grow to the largest batch seen (``clear_workspace()``
frees them). On CUDA the caching allocator already reuses memory: no blocks, no scratch.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mixkit.ops.sampling import numpy_ready

try:  # optional C kernels (setup.py builds them when a C compiler is present)
    from mixkit.ops import _native
except ImportError:  # pragma: no cover - depends on the install
    _native = None

__all__ = ["BLOCK_BYTES", "NATIVE", "clear_workspace"]

# Use the C kernels (tests switch this off to exercise the torch paths).
NATIVE = _native is not None and os.environ.get("MIXKIT_NATIVE", "1") != "0"

# Bytes of images per block on the CPU: large enough that the per-block dispatch overhead is
# negligible (CIFAR batches are one or two blocks), small enough that the partner block, the
# own block and the destination block stay in the L2/L3 cache (tuned on a 2-core EPYC).
BLOCK_BYTES = 1 << 21

# Samples of at least this many bytes are mixed one by one on the CPU (``per_sample``).
LOOP_BYTES = 1 << 17

# Out-of-place outputs of at least this many bytes are written by the C kernels with
# non-temporal stores (no read of each destination line before it is written; the output
# does not stay in cache, so smaller batches, which the next op reads from cache, are not).
STREAM_BYTES = 1 << 24

# The C kernels split a batch between up to ``torch.get_num_threads()`` threads, one per this
# many bytes of output: starting a thread costs ~0.1 ms on a 2-core VM, so a 1.5 MB CIFAR
# batch stays on one (2 threads were 1.8-2.6x slower there), while 64x3x224x224 float32 (38.5 MB)
# uses up to 4 (per-sample MixUp into a preallocated batch, 2 threads: 3.3 ms vs 4.9 ms).
THREAD_BYTES = 1 << 23

# The error of a failed finite check (``check_finite=True``), formatted with the argument.
NONFINITE = "{name} hold NaN or Inf values; pass check_finite=False to mix them"

# Scratch tensors larger than this are allocated per call instead of kept.
MAX_CACHED_BYTES = 1 << 28

SourceFn = Callable[[int, int], Tensor | float]


class _Scratch(threading.local):
    def __init__(self) -> None:
        self.buffers: dict[tuple[str, torch.dtype], Tensor] = {}
        self.aranges: dict[tuple[int, str], Tensor] = {}


_SCRATCH = _Scratch()


def clear_workspace() -> None:
    """Free this thread's scratch buffers (partner blocks, ``inplace`` snapshots)."""
    _SCRATCH.buffers.clear()
    _SCRATCH.aranges.clear()


def buffer(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A contiguous scratch tensor (content undefined), reused between calls on the CPU."""
    numel = math.prod(shape)
    if device.type != "cpu" or numel * dtype.itemsize > MAX_CACHED_BYTES:
        return torch.empty(shape, dtype=dtype, device=device)
    key = (name, dtype)
    buf = _SCRATCH.buffers.get(key)
    if buf is None or buf.numel() < numel:
        buf = torch.empty(numel, dtype=dtype)
        _SCRATCH.buffers[key] = buf
    return buf[:numel].view(shape)


def arange(n: int, device: torch.device) -> Tensor:
    """Cached ``torch.arange(n)`` (int64); never write to it."""
    key = (n, str(device))
    t = _SCRATCH.aranges.get(key)
    if t is None:
        t = torch.arange(n, device=device)
        _SCRATCH.aranges[key] = t
    return t


def blocks(batch: int, sample_bytes: int, device: torch.device) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` covering the batch; one block off the CPU."""
    if device.type != "cpu":
        return [(0, batch)]
    step = max(1, BLOCK_BYTES // max(sample_bytes, 1))
    return [(s, min(s + step, batch)) for s in range(0, batch, step)]


def overlaps(a: Tensor, b: Tensor) -> bool:
    """Conservative: the two tensors share a storage."""
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def destination(images: Tensor, out: Tensor | None, inplace: bool) -> Tensor:
    """Where a result goes: ``images`` (inplace), ``out`` (checked) or a new tensor."""
    if inplace:
        if out is not None:
            raise ValueError("pass either out= or inplace=True, not both")
        return images
    if out is None:
        return torch.empty_like(images)
    if (
        not isinstance(out, Tensor)
        or out.shape != images.shape
        or out.dtype != images.dtype
        or out.device != images.device
    ):
        got = (
            f"shape {tuple(out.shape)}, dtype {out.dtype}, device {out.device}"
            if isinstance(out, Tensor)
            else type(out).__name__
        )
        raise ValueError(
            f"out must match images (shape {tuple(images.shape)}, dtype {images.dtype}, "
            f"device {images.device}), got {got}"
        )
    return out


def sample_numel(images: Tensor) -> int:
    """Elements of one sample of a (B, ...) batch (``images[0].numel()`` without a view)."""
    return math.prod(images.shape[1:])


def all_finite(t: Tensor) -> bool:
    """True when the float tensor holds no NaN/Inf. One reduction pass, no allocation: a
    finite sum implies finite elements (NaN/Inf propagate); only a non-finite sum (an Inf/NaN,
    or an overflow of huge values) pays the exact elementwise check."""
    acc = torch.float64 if t.dtype == torch.float64 else torch.float32
    # math.isfinite on the Python float: torch.isfinite of a 0-dim tensor is a composite of
    # several ops (~25 us on a 2-core CPU), the float check is ~0.5 us.
    if math.isfinite(t.sum(dtype=acc).item()):
        return True
    return bool(torch.isfinite(t).all())


def check_finite_images(images: Tensor) -> None:
    """ValueError (``NONFINITE``) when float ``images`` hold NaN or Inf."""
    if images.is_floating_point() and not all_finite(images):
        raise ValueError(NONFINITE.format(name="images"))


def copy_into(images: Tensor, dst: Tensor) -> Tensor:
    return dst if dst is images else dst.copy_(images)


def uniform_box(boxes: Tensor) -> tuple[int, int, int, int] | None:
    """The common box when every row of (B, 4) ``boxes`` is the same (CPU only), else None."""
    if boxes.device.type != "cpu" or boxes.shape[0] == 0:
        return None
    if boxes.shape[0] > 1 and not torch.equal(boxes[1:], boxes[:-1]):
        return None
    x1, y1, x2, y2 = boxes[0].tolist()
    return int(x1), int(y1), int(x2), int(y2)


# ----------------------------------------------------------------------------- weights
def box_weight(
    boxes: Tensor, height: int, width: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """(B, 1, H, W) box indicator: 0/1 in a float ``dtype``; for an integer ``dtype`` a
    select mask with all bits set inside the box (-1, or 255 for uint8) and 0 outside."""
    ar = arange(max(height, width), device)
    ge = ar >= boxes.to(device)[:, :, None]  # (B, 4, L): x>=x1, y>=y1, x>=x2, y>=y2
    inside = ge[:, :2] > ge[:, 2:]  # (B, 2, L): x1 <= x < x2, y1 <= y < y2
    if dtype.is_floating_point:
        v = inside.to(dtype)
        return v[:, 1, None, :height, None] * v[:, 0, None, None, :width]
    v = inside.to(dtype).neg_()
    return v[:, 1, None, :height, None] & v[:, 0, None, None, :width]


def mask_weight(mask: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(B, H, W) bool region -> (B, 1, H, W) weight like ``box_weight``."""
    m = mask.to(device)
    m = m.view(torch.uint8) if m.dtype == torch.bool else m.to(torch.uint8)
    w = m.to(dtype, copy=True)  # never negate the caller's mask in place
    if not dtype.is_floating_point:
        w = w.neg_()
    return w.unsqueeze(1)


# ----------------------------------------------------------------------------- engine
def combine(x: Tensor, src: Tensor | float, w: Tensor, dst: Tensor, select: bool) -> None:
    """``dst = x`` where w == 0 and ``src`` where w selects; a float ``w`` blends.

    Float x: selected with ``torch.lerp`` and the 0/1 weight (exact for finite values),
    blended with ``lerp_exact``. Integer x with ``select``: bit select with the all-ones
    mask w. Integer x blended: ``round(x*(1-w) + src*w)`` in float32.
    """
    if x.is_floating_point():
        if not isinstance(src, Tensor):
            src = torch.tensor(src, dtype=x.dtype, device=x.device)
        if select:
            torch.lerp(x, src, w, out=dst)
        else:
            lerp_exact(x, src, w, dst)
        return
    if select:
        if not isinstance(src, Tensor):
            src = torch.full((), src, dtype=x.dtype, device=x.device)
        tmp = buffer("select", tuple(x.shape), x.dtype, x.device)
        torch.bitwise_xor(x, src, out=tmp)
        tmp.bitwise_and_(w)
        torch.bitwise_xor(x, tmp, out=dst)
        return
    # Same float32 operations, in the same order, as x.float()*(1-w) + src.float()*w, in
    # reused cache-resident buffers (no per-call float temporaries).
    wf = w.float()
    if not isinstance(src, Tensor):
        src = torch.full((), src, dtype=x.dtype, device=x.device)
    xf = buffer("blend_own", tuple(x.shape), torch.float32, x.device)
    pf = buffer("blend_src", tuple(x.shape), torch.float32, x.device)
    xf.copy_(x).mul_(1 - wf)
    pf.copy_(src).mul_(wf)
    dst.copy_(xf.add_(pf).round_().clamp_(0, 255))


def lerp_exact(x: Tensor, src: Tensor, w: Tensor, dst: Tensor) -> Tensor:
    """Float blend ``(1 - w)*x + w*src`` into ``dst`` (which may be ``x``): ATen's lerp formula
    (aten/src/ATen/native/Lerp.h) ``w < 0.5 ? x + w*(src - x) : src - (src - x)*(1 - w)``
    with the difference, the product and the sum each rounded in x's dtype (torch.lerp's
    vector kernels fuse the last two into an FMA on CPUs that have one, so its bytes depend
    on the CPU; these do not, and the C MixUp kernel computes the same). w = 0 gives x and
    w = 1 gives src exactly (finite values); ``w`` broadcasts against x."""
    w = w.to(x.dtype)
    small = w < 0.5
    # (base, coeff) = (x, w) or (src, w - 1): src + (src - x)*(w - 1) has the roundings of
    # src - (src - x)*(1 - w) (negation is exact).
    coeff = torch.where(small, w, w - 1)
    diff = torch.sub(src, x)
    diff.mul_(coeff)
    if small.device.type == "cpu" and bool(small.all()):  # no device sync on CUDA
        base = x
    elif small.device.type == "cpu" and not bool(small.any()):
        base = src
    else:
        base = torch.where(small, x, src)
    return torch.add(base, diff, out=dst)


def mix_blocks(
    images: Tensor, dst: Tensor, weight: Tensor, select: bool, source: SourceFn
) -> Tensor:
    """Run ``combine`` block by block; ``source(s, e)`` gives the source of samples s..e-1.

    weight: (B or 1, 1, H or 1, W or 1).
    """
    b = images.shape[0]
    per_sample = weight.shape[0] != 1
    # Integer blends work in float32 buffers: size the blocks by those.
    item = images.element_size() if images.is_floating_point() or select else 4
    sample_bytes = sample_numel(images) * item
    spans = blocks(b, sample_bytes, images.device)
    if len(spans) == 1:  # the whole batch is one block: no slicing
        combine(images, source(0, b), weight, dst, select)
        return dst
    for s, e in spans:
        w = weight[s:e] if per_sample else weight
        combine(images[s:e], source(s, e), w, dst[s:e], select)
    return dst


def partner_source(images: Tensor, perm: Tensor, dst: Tensor) -> SourceFn:
    """Blocks of ``images[perm]`` gathered into a reused scratch block. When ``dst`` shares
    memory with ``images`` (inplace) the whole partner batch is gathered first (one pass),
    before any block is overwritten."""
    perm = perm.to(images.device)
    if overlaps(dst, images):
        full = buffer("partner_all", tuple(images.shape), images.dtype, images.device)
        torch.index_select(images, 0, perm, out=full)
        return lambda s, e: full[s:e]
    base = images

    def block(s: int, e: int) -> Tensor:
        buf = buffer("partner", (e - s, *images.shape[1:]), images.dtype, images.device)
        return torch.index_select(base, 0, perm[s:e], out=buf)

    return block


def given_source(source: Tensor, dst: Tensor) -> Tensor:
    """``source`` as read by the blocks: a snapshot if it shares memory with ``dst``."""
    if overlaps(dst, source):
        snap = buffer("snapshot", tuple(source.shape), source.dtype, source.device)
        source = snap.copy_(source)
    return source


# ----------------------------------------------------------------------------- C kernels
def native_ok(images: Tensor, dst: Tensor, source: Tensor | None = None) -> bool:
    """The C kernels apply: contiguous CPU tensors, ``dst`` is ``images`` or apart from it,
    a separate ``source`` of the same dtype apart from ``dst``."""
    if not (
        NATIVE
        and images.device.type == "cpu"
        and images.numel() > 0
        and images.element_size() in (1, 2, 4, 8)
        and images.is_contiguous()
        and dst.is_contiguous()
        and (dst is images or not overlaps(dst, images))
    ):
        return False
    return source is None or (
        source.device.type == "cpu"
        and source.dtype == images.dtype
        and source.is_contiguous()
        and source.numel() > 0
        and not overlaps(dst, source)
    )


def _index(t: Tensor, shape: tuple[int, ...], name: str) -> Tensor:
    """An int64 contiguous CPU copy (or view) of ``t``, which must have ``shape`` (the C
    kernels read exactly that many values)."""
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if t.dtype == torch.int64 and t.device.type == "cpu" and t.is_contiguous():
        return t  # already what the kernels read (no dispatch)
    return t.to(device="cpu", dtype=torch.int64).contiguous()


def check_mask(mask: Tensor, shape: tuple[int, int, int]) -> None:
    """A (B, H, W) bool region mask, else one ValueError (``ops.mask_mix``, the C kernel)."""
    if mask.dtype != torch.bool or tuple(mask.shape) != shape:
        raise ValueError(
            f"mask must be a bool tensor of shape {shape}, got {mask.dtype} {tuple(mask.shape)}"
        )


def cycle_scratch(images: Tensor, dst: Tensor) -> int:
    """Address of the C kernels' one-sample scratch (the saved first sample of each cycle in
    place); 0 out of place, where the kernels do not use it."""
    if dst is not images:
        return 0
    return buffer("cycle", (sample_numel(images),), images.dtype, images.device).data_ptr()


def native_threads(dst: Tensor) -> int:
    """Threads for a C kernel writing ``dst``: one per ``THREAD_BYTES`` of it, at most
    ``torch.get_num_threads()`` (and the kernel uses at most one per sample)."""
    share = dst.numel() * dst.element_size() // THREAD_BYTES
    return max(1, min(torch.get_num_threads(), share))


def streamed(images: Tensor, dst: Tensor) -> bool:
    """The C kernels write ``dst`` with non-temporal stores: out of place, at least
    ``STREAM_BYTES``."""
    return dst is not images and dst.numel() * dst.element_size() >= STREAM_BYTES


def fused_check(images: Tensor, dst: Tensor, native: bool, check_finite: bool) -> bool:
    """Whether the C kernel (``native``) checks the images for NaN / Inf in its own pass:
    float32 / float64 images out of place (each sample is scanned as it is read, or right
    after, from cache). When ``check_finite`` is set and it cannot, the images are checked
    here (ValueError ``NONFINITE``), before anything is written."""
    fused = (
        check_finite
        and native
        and dst is not images
        and images.dtype in (torch.float32, torch.float64)
    )
    if check_finite and not fused:
        check_finite_images(images)
    return fused


def native_box(
    op: str,
    images: Tensor,
    dst: Tensor,
    boxes: Tensor,
    perm: Tensor | None = None,
    source: Tensor | None = None,
    value: Tensor | None = None,
    check: bool = False,
) -> Tensor:
    """Run the C kernel ``op`` ("paste", "resize" nearest, "fill" with the 0-dim ``value``)
    into ``dst``; the caller checked ``native_ok``. A perm or box out of range: ValueError.
    ``check`` (``fused_check``): ValueError (``NONFINITE``) when the kernel's pass found a
    NaN / Inf in the images (dst has then been written)."""
    assert _native is not None
    b, c, h, w = images.shape
    es = images.element_size()
    bx = _index(boxes, (b, 4), "boxes")
    stream = streamed(images, dst)
    if op == "fill":
        assert value is not None
        ptrs = (dst.data_ptr(), images.data_ptr(), bx.data_ptr(), value.data_ptr())
        if not _native.fill(*ptrs, b, c, h, w, es, stream, check, native_threads(dst)):
            raise ValueError(NONFINITE.format(name="images"))
        return dst
    pm = None if perm is None else _index(perm, (b,), "perm")
    src = images if source is None else source
    args = (
        dst.data_ptr(),
        images.data_ptr(),
        src.data_ptr(),
        0 if pm is None else pm.data_ptr(),
        bx.data_ptr(),
        cycle_scratch(src, dst),
        b,
        c,
        h,
        w,
    )
    threads = native_threads(dst)
    if op == "paste":
        ok = _native.paste(*args, es, stream, check, threads)
    else:
        ok = _native.resize(*args, *src.shape[-2:], es, stream, check, threads)
    if not ok:
        raise ValueError(NONFINITE.format(name="images"))
    return dst


def native_mask(images: Tensor, dst: Tensor, mask: Tensor, perm: Tensor) -> Tensor:
    """The C mask kernel: ``images[perm]`` where the (B, H, W) bool ``mask`` is set (the
    caller checked ``native_ok`` and the mask). A perm out of range: ValueError."""
    assert _native is not None
    b, c, h, w = images.shape
    check_mask(mask, (b, h, w))
    m = mask.to("cpu").contiguous()
    pm = _index(perm, (b,), "perm")
    scratch = cycle_scratch(images, dst)
    ptrs = (dst.data_ptr(), images.data_ptr(), pm.data_ptr(), m.data_ptr(), scratch)
    _native.mask(*ptrs, b, c, h, w, images.element_size(), native_threads(dst))
    return dst


BLEND_DTYPES = (torch.uint8, torch.float32, torch.float64)
NUMPY_FLOATS = {torch.float32: np.float32, torch.float64: np.float64}


def native_blend(
    images: Tensor, dst: Tensor, weight: Tensor, perm: Tensor, check: bool = False
) -> bool:
    """The C MixUp kernel with the (B,) partner weights ``w``: float32 / float64 images
    ``lerp_exact(x, x[perm], w)``, uint8 images ``round(x*(1-w) + x[perm]*w)`` in float32
    (the caller checked ``native_ok`` and ``images.dtype in BLEND_DTYPES``). ``check`` (float
    images out of place only): the same pass checks the images for NaN / Inf.
    Returns False when the check found one, else True."""
    assert _native is not None
    b, c, h, w = images.shape
    pm = _index(perm, (b,), "perm")
    floating = images.is_floating_point()
    wt = weight if weight.ndim == 1 else weight.reshape(-1)  # (no dispatch when flat)
    wdtype = images.dtype if floating else torch.float32
    if wt.dtype != wdtype or wt.device.type != "cpu" or not wt.is_contiguous():
        wt = wt.to("cpu", wdtype).contiguous()
    if wt.shape != (b,):
        raise ValueError(f"weight must hold {b} values, got {tuple(weight.shape)}")
    ptrs = (dst.data_ptr(), images.data_ptr(), pm.data_ptr(), wt.data_ptr())
    es = images.element_size()
    stream = streamed(images, dst)
    scratch = cycle_scratch(images, dst)
    threads = native_threads(dst)
    return _native.blend(*ptrs, scratch, b, c, h, w, es, floating, stream, check, threads)


# ----------------------------------------------------------------------------- large samples
def loop_ok(images: Tensor) -> bool:
    """Mix sample by sample: CPU samples of at least ``LOOP_BYTES`` (the per-sample dispatch
    cost is then small next to the bytes, and only the box pixels need to be touched)."""
    return (
        images.device.type == "cpu"
        and images.shape[0] > 0
        and sample_numel(images) * images.element_size() >= LOOP_BYTES
    )


def cycles(perm: list[int]) -> list[list[int]] | None:
    """The cycles ``[i, perm[i], perm[perm[i]], ...]`` of a permutation; None if ``perm``
    is not one (a repeated partner)."""
    n = len(perm)
    seen = [False] * n
    out = []
    for start in range(n):
        if seen[start]:
            continue
        cycle, i = [], start
        while not seen[i]:
            seen[i] = True
            cycle.append(i)
            i = perm[i]
        if i != start:
            return None
        out.append(cycle)
    return out


OneFn = Callable[[int, Tensor, Tensor, Tensor], None]


def per_sample(
    images: Tensor,
    dst: Tensor,
    perm: Tensor | None,
    source: Tensor | None,
    one: OneFn,
    region: Callable[[int], tuple[slice, ...]],
    prefill: bool,
) -> Tensor | None:
    """Mix sample by sample: ``one(i, own, out, src)`` writes sample i into ``out`` (= dst[i])
    from its own sample ``own`` (images[i]) and its source sample ``src`` (C, Hs, Ws), reading
    only ``src[region(i)]``. ``prefill``: dst starts as a copy of images (box kinds).

    In place (dst is images) the samples are visited along the cycles of ``perm``, each
    reading a partner that is not yet overwritten; the first sample of a cycle is read last,
    so its region is saved first in a one-sample scratch buffer (no full-batch snapshot).
    Returns None where this cannot be done (dst overlaps images/source without being
    images, or perm is not a permutation): the caller then takes the block path. A perm
    index outside [0, B) raises ValueError.
    """
    b = images.shape[0]
    if source is not None:
        if overlaps(dst, source) or (dst is not images and overlaps(dst, images)):
            return None
        if prefill:
            copy_into(images, dst)
        for i in range(b):
            one(i, images[i], dst[i], source[i])
        return dst
    assert perm is not None
    p = perm.tolist()
    if p and (min(p) < 0 or max(p) >= b):  # Python indexing would wrap a negative index
        raise ValueError(f"perm must hold indices in [0, {b}), got {p}")
    if dst is not images:
        if overlaps(dst, images):
            return None
        if prefill:
            dst.copy_(images)
        for i in range(b):
            one(i, images[i], dst[i], images[p[i]])
        return dst
    order = cycles(p)
    if order is None:
        return None
    snap = buffer("cycle", tuple(images.shape[1:]), images.dtype, images.device)
    for cycle in order:
        last = cycle[-1]
        r = region(last)
        snap[r].copy_(images[cycle[0]][r])
        for i in cycle[:-1]:
            one(i, images[i], images[i], images[p[i]])
        one(last, images[last], images[last], snap)
    return dst


# ----------------------------------------------------------------------------- ops
def blend_dtype(lam_dtype: torch.dtype, images_dtype: torch.dtype) -> torch.dtype:
    """Dtype in which ``1 - lam`` is computed: at least lam's and float32, float64 for
    float64 images (then cast to the images' dtype; float32 for integer images)."""
    ct = torch.promote_types(lam_dtype, torch.float32)
    return torch.promote_types(ct, images_dtype) if images_dtype.is_floating_point else ct


def mixup_into(
    images: Tensor, dst: Tensor, lam: Tensor, perm: Tensor, check_finite: bool = False
) -> Tensor:
    """MixUp ``lerp_exact(x, x[perm], 1 - lam)`` into dst (weight in the reference dtypes).

    ``check_finite``: ValueError (``NONFINITE``) when float images hold NaN / Inf, checked in
    the C kernel's own pass out of place (dst, never the images, has then been written; see
    ``fused_check``), else before mixing."""
    wdtype = images.dtype if images.is_floating_point() else torch.float32
    ct = blend_dtype(lam.dtype, images.dtype)
    native = images.dtype in BLEND_DTYPES and native_ok(images, dst)
    if native and numpy_ready(lam) and ct in NUMPY_FLOATS and wdtype in NUMPY_FLOATS:
        # The same IEEE ops in numpy (1 - lam in ct, then cast), without torch's dispatch.
        w = np.subtract(1, lam.numpy(), dtype=NUMPY_FLOATS[ct])
        flat = torch.from_numpy(w.astype(NUMPY_FLOATS[wdtype], copy=False))
    else:
        # torch.rsub(t, 1) is 1 - t without Tensor.__rsub__'s Python wrapper; (B,) weights.
        flat = torch.rsub(lam.to(ct), 1).to(images.device, wdtype)
    fused = fused_check(images, dst, native, check_finite)
    if native:
        if not native_blend(images, dst, flat, perm, fused):
            raise ValueError(NONFINITE.format(name="images"))
        return dst
    weight = flat.view(-1, 1, 1, 1)
    if images.is_floating_point() and loop_ok(images):
        # Large samples: one blend per sample reading the partner where it lies (no partner
        # copy); in place along the cycles of perm, no full-batch partner snapshot.

        def one(i: int, own: Tensor, out: Tensor, src: Tensor) -> None:
            lerp_exact(own, src, flat[i], out)

        res = per_sample(images, dst, perm, None, one, lambda i: (...,), prefill=False)
        if res is not None:
            return res
    return mix_blocks(images, dst, weight, False, partner_source(images, perm, dst))


def paste_into(
    images: Tensor,
    dst: Tensor,
    boxes: Tensor,
    perm: Tensor | None,
    source: Tensor | None,
    check_finite: bool = False,
) -> Tensor:
    """Box paste from ``images[perm]`` (perm given) or from ``source`` (same shape).
    ``check_finite``: as in ``mixup_into`` (``fused_check``; the images only)."""
    native = native_ok(images, dst, source)
    fused = fused_check(images, dst, native, check_finite)
    if native:
        return native_box("paste", images, dst, boxes, perm, source, check=fused)
    h, w = images.shape[-2:]
    box = uniform_box(boxes)
    if box is not None:
        x1, y1, x2, y2 = box
        if x2 <= x1 or y2 <= y1:
            return copy_into(images, dst)
        src = images if source is None else source
        region = src[:, :, y1:y2, x1:x2]
        patch = buffer(
            "patch", (images.shape[0], images.shape[1], y2 - y1, x2 - x1), src.dtype, images.device
        )
        if perm is None:
            patch.copy_(region)
        else:
            torch.index_select(region, 0, perm.to(images.device), out=patch)
        copy_into(images, dst)
        dst[:, :, y1:y2, x1:x2].copy_(patch)
        return dst
    if loop_ok(images) and (source is None or source.dtype == images.dtype):
        # Large samples: copy only the box pixels, sample by sample.
        regions = box_slices(boxes)

        def one(i: int, own: Tensor, out: Tensor, src: Tensor) -> None:
            r = regions[i]
            if r is not None:
                out[r].copy_(src[r])

        res = per_sample(images, dst, perm, source, one, lambda i: regions[i] or (...,), True)
        if res is not None:
            return res
    weight = box_weight(boxes, h, w, images.dtype, images.device)
    if perm is not None:
        fn = partner_source(images, perm, dst)
    else:
        src_t = given_source(source, dst)

        def fn(s: int, e: int) -> Tensor:
            return src_t[s:e]

    return mix_blocks(images, dst, weight, True, fn)


def box_slices(boxes: Tensor) -> list[tuple[slice, slice, slice] | None]:
    """Per sample ``(:, y1:y2, x1:x2)`` of (B, 4) xyxy boxes; None for an empty box."""
    return [
        (slice(None), slice(y1, y2), slice(x1, x2)) if x2 > x1 and y2 > y1 else None
        for x1, y1, x2, y2 in boxes.tolist()
    ]


def fill_into(
    images: Tensor, dst: Tensor, boxes: Tensor, value: float, check_finite: bool = False
) -> Tensor:
    """Cutout: the box filled with ``torch.full((), value, dtype=images.dtype)``.
    ``check_finite``: as in ``mixup_into``."""
    h, w = images.shape[-2:]
    fill = torch.full((), value, dtype=images.dtype, device=images.device)
    native = native_ok(images, dst)
    fused = fused_check(images, dst, native, check_finite)
    if native:
        return native_box("fill", images, dst, boxes, value=fill, check=fused)
    box = uniform_box(boxes)
    if box is not None:
        x1, y1, x2, y2 = box
        copy_into(images, dst)
        if x2 > x1 and y2 > y1:
            dst[:, :, y1:y2, x1:x2].fill_(fill)
        return dst
    if loop_ok(images) and not (dst is not images and overlaps(dst, images)):
        copy_into(images, dst)
        for i, r in enumerate(box_slices(boxes)):
            if r is not None:
                dst[i][r].fill_(fill)
        return dst
    weight = box_weight(boxes, h, w, images.dtype, images.device)
    return mix_blocks(images, dst, weight, True, lambda s, e: fill)


def mask_into(
    images: Tensor, dst: Tensor, mask: Tensor, perm: Tensor, check_finite: bool = False
) -> Tensor:
    """Partner pixels where the (B, H, W) bool ``mask`` is True. ``check_finite``: the
    images are checked before mixing (the mask kernel has no fused check)."""
    if check_finite:
        check_finite_images(images)
    if native_ok(images, dst):
        return native_mask(images, dst, mask, perm)
    weight = mask_weight(mask, images.dtype, images.device)
    return mix_blocks(images, dst, weight, True, partner_source(images, perm, dst))


def bilinear_axis(n_dst: int, start: Tensor, length: Tensor, n_src: int) -> Tensor:
    """grid_sample coordinates of a bilinear resize (align_corners=False) into [start,
    start+length): source ``(i - start + 0.5) * in/out - 0.5`` clamped at 0, normalised to
    [-1, 1]. start/length (B,) -> (B, n_dst) float32."""
    i = torch.arange(n_dst, device=start.device, dtype=torch.float32)
    scale = n_src / length.clamp_min(1).to(torch.float32)
    src = ((i[None, :] - start[:, None].float() + 0.5) * scale[:, None] - 0.5).clamp_min(0)
    return (src + 0.5) / n_src * 2 - 1


def resize_block(
    src: Tensor, sy: Tensor | None, sx: Tensor | None, grid: Tensor | None, out_hw: tuple[int, int]
) -> Tensor:
    """Resize each sample of ``src`` (e, C, Hs, Ws) into its box on an HxW canvas (pixels
    outside the box unspecified): nearest gather at flat index ``sy + sx`` ((e, H) row
    offsets ``row * Ws`` and (e, W) columns; one element gather, the fastest CPU form), or
    ``grid_sample`` with an (e, H, W, 2) grid (integers rounded back like the reference)."""
    e, c, hs, ws = src.shape
    h, w = out_hw
    if grid is None:
        index = (sy[:, :, None] + sx[:, None, :]).view(e, 1, h * w).expand(e, c, h * w)
        buf = buffer("resized", (e, c, h * w), src.dtype, src.device)
        return torch.gather(src.reshape(e, c, hs * ws), 2, index, out=buf).view(e, c, h, w)
    fsrc = src if src.is_floating_point() else src.float()
    res = F.grid_sample(
        fsrc, grid.to(fsrc.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )
    return res if src.is_floating_point() else res.round_().clamp_(0, 255).to(src.dtype)


def resize_axes(
    boxes: Tensor, size: tuple[int, int], src_hw: tuple[int, int], mode: str, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Per canvas row and column, where the box resize reads the source: (B, H) and (B, W)
    source indices (nearest) or grid_sample coordinates (bilinear).

    Nearest matches ``F.interpolate(mode="nearest")``: ``min(floor(i * (in/out)), in-1)`` in
    float32, i the offset into the box (0 before it)."""
    h, w = size
    hs, ws = src_hw
    boxes = boxes.to(device)
    if mode == "nearest":  # both axes in one pass (fewer small ops)
        start, end = boxes[:, :2], boxes[:, 2:]  # (B, 2): x then y
        src = torch.tensor([float(ws), float(hs)], dtype=torch.float32, device=device)
        scale = src / (end - start).clamp_min(1).to(torch.float32)
        offset = (arange(max(h, w), device) - start[:, :, None]).clamp_min(0).to(torch.float32)
        top = torch.tensor([ws - 1, hs - 1], device=device).view(1, 2, 1)
        index = torch.minimum(torch.floor(offset * scale[:, :, None]).long(), top)
        return index[:, 1, :h], index[:, 0, :w]
    x1, y1, x2, y2 = boxes.unbind(1)
    if mode == "bilinear":
        return bilinear_axis(h, y1, y2 - y1, hs), bilinear_axis(w, x1, x2 - x1, ws)
    raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")


def resize_plan(
    boxes: Tensor, size: tuple[int, int], src_hw: tuple[int, int], mode: str, device: torch.device
) -> Callable[[int, int], tuple[Tensor | None, Tensor | None, Tensor | None]]:
    """Per-block resize arguments ``(sy, sx, grid)`` for ``resize_block``."""
    ry, rx = resize_axes(boxes, size, src_hw, mode, device)
    if mode == "nearest":
        sy = ry * src_hw[1]  # row offsets
        return lambda s, e: (sy[s:e], rx[s:e], None)

    def plan(s: int, e: int) -> tuple[None, None, Tensor]:
        grid = torch.stack(torch.broadcast_tensors(rx[s:e, None, :], ry[s:e, :, None]), dim=-1)
        return None, None, grid

    return plan


def resize_into(
    images: Tensor,
    dst: Tensor,
    boxes: Tensor,
    mode: str,
    perm: Tensor | None,
    source: Tensor | None,
    check_finite: bool = False,
) -> Tensor:
    """Paste ``images[perm]`` (or ``source``, any size) resized into each box.
    ``check_finite``: as in ``mixup_into`` (``fused_check``; the images only)."""
    h, w = images.shape[-2:]
    src = images if source is None else source
    native = mode == "nearest" and native_ok(images, dst, source)
    fused = fused_check(images, dst, native, check_finite)
    if native:
        return native_box("resize", images, dst, boxes, perm, source, check=fused)
    hs, ws = src.shape[-2:]
    box = uniform_box(boxes) if mode == "nearest" else None
    if box is not None:
        x1, y1, x2, y2 = box
        if x2 <= x1 or y2 <= y1:
            return copy_into(images, dst)
        # The shared box moved to the origin: its rows and columns only.
        origin = torch.tensor([[0, 0, x2 - x1, y2 - y1]])
        sy, sx = resize_axes(origin, (y2 - y1, x2 - x1), (hs, ws), mode, images.device)
        sy, sx = sy[0], sx[0]
        b, c = images.shape[:2]
        rows = buffer("rows", (b, c, y2 - y1, ws), src.dtype, images.device)
        torch.index_select(src, 2, sy, out=rows)  # whole rows: a fast row copy
        if perm is not None:
            gathered = buffer("partner", tuple(rows.shape), src.dtype, images.device)
            rows = torch.index_select(rows, 0, perm.to(images.device), out=gathered)
        # Columns: gather with an expanded index (2x faster than index_select on the last dim).
        patch = buffer("patch", (b, c, y2 - y1, x2 - x1), src.dtype, images.device)
        torch.gather(rows, 3, sx.view(1, 1, 1, -1).expand(patch.shape), out=patch)
        copy_into(images, dst)
        dst[:, :, y1:y2, x1:x2].copy_(patch)
        return dst
    if loop_ok(images) and src.dtype == images.dtype:  # large samples: only the box pixels
        ry, rx = resize_axes(boxes, (h, w), (hs, ws), mode, images.device)
        writer = resize_one(boxes, ry, rx, mode)
        res = per_sample(images, dst, perm, source, writer, lambda i: (...,), True)
        if res is not None:
            return res
    weight = box_weight(boxes, h, w, images.dtype, images.device)
    plan = resize_plan(boxes, (h, w), (hs, ws), mode, images.device)
    if perm is not None:
        partner = partner_source(images, perm, dst)
    else:
        src_t = given_source(src, dst)

        def partner(s: int, e: int) -> Tensor:
            return src_t[s:e]

    def fn(s: int, e: int) -> Tensor:
        blk = partner(s, e)
        if blk.dtype != images.dtype:
            blk = blk.to(images.dtype)
        return resize_block(blk, *plan(s, e), (h, w))

    return mix_blocks(images, dst, weight, True, fn)


def resize_one(boxes: Tensor, ry: Tensor, rx: Tensor, mode: str) -> OneFn:
    """``per_sample``'s writer for a box resize: only the box pixels are written; nearest =
    row ``index_select`` + column ``gather`` straight into the box, bilinear = ``grid_sample``
    on the box grid. ry/rx: ``resize_axes`` (same coordinates as the block path)."""
    regions = box_slices(boxes)

    def one(i: int, own: Tensor, out: Tensor, src: Tensor) -> None:
        r = regions[i]
        if r is None:
            return
        ys, xs = r[1], r[2]
        box = out[r]
        if mode == "nearest":
            rows = torch.index_select(src, 1, ry[i, ys])
            torch.gather(rows, 2, rx[i, None, None, xs].expand(box.shape), out=box)
        else:
            grid = torch.stack(torch.broadcast_tensors(rx[i, None, xs], ry[i, ys, None]), dim=-1)
            box.copy_(resize_block(src[None], None, None, grid[None], (0, 0))[0])

    return one
