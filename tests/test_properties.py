"""Property-based tests (hypothesis) for every op in ``mixkit.ops`` and every augment in
``mixkit.augment`` (+ RecursiveMix): shapes, dtypes float32/float64/uint8, B from 1 to 64,
H != W, alpha / p ranges, every label kind (int ids, one-hot, soft, multi-label, smoothed).

Properties: label mass 1; λ = the exact fraction of pixels still from the original image
(measured on the pixels: channel 0 of each image is a per-sample tag); convexity; mask class
ids preserved and taken exactly where the image pixels are; box consistency; determinism
under a seed; no mutation of the inputs (and ``inplace=True`` writes into them).

Profiles (``tests/_hypothesis_profiles.py``): ``ci`` by default (fast, derandomised) and
``slow`` (10 000 examples per test)::

    MIXKIT_HYPOTHESIS_PROFILE=slow python -m pytest tests/test_properties.py -m slow
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _hypothesis_profiles import SETTINGS, SLOW
from hypothesis import given
from hypothesis import strategies as st

from mixkit import augment, ops
from mixkit.augment import BoxBatch, Kind, RecursiveMix

pytestmark = [pytest.mark.slow] if SLOW else []

DTYPES = (torch.float32, torch.float64, torch.uint8)
LABEL_KINDS = ("int", "onehot", "soft", "multilabel", "smoothed")
BOX_KINDS = (Kind.CROP, Kind.RESIZE, Kind.FILL)
REGION_KINDS = (*BOX_KINDS, Kind.MASK)
IGNORE = 255

seeds = st.integers(0, 2**32 - 1)
probs = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))
alphas = st.floats(0.05, 8.0)


@st.composite
def shapes(draw, max_b: int = 64, max_hw: int = 24) -> tuple[int, int, int, int]:
    """(B, C, H, W): B in [1, 64], C in [2, 3], H and W in [1, 24] drawn independently."""
    return (
        draw(st.integers(1, max_b)),
        draw(st.integers(2, 3)),
        draw(st.integers(1, max_hw)),
        draw(st.integers(1, max_hw)),
    )


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tagged(b: int, c: int, h: int, w: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Channel 0 = i + 1 for sample i (never 0, the Cutout fill), other channels random."""
    g = _gen(seed)
    if dtype == torch.uint8:
        rest = torch.randint(0, 256, (b, c - 1, h, w), generator=g, dtype=torch.uint8)
    else:
        rest = torch.rand(b, c - 1, h, w, generator=g, dtype=torch.float64).to(dtype)
    tag = (torch.arange(b) + 1).view(b, 1, 1, 1).expand(b, 1, h, w).to(dtype)
    return torch.cat([tag, rest], 1)


def make_labels(kind: str, b: int, k: int, seed: int) -> torch.Tensor:
    g = _gen(seed + 1)
    ids = torch.randint(0, k, (b,), generator=g)
    if kind in ("int", "smoothed"):
        return ids
    if kind == "onehot":
        return F.one_hot(ids, k).float()
    if kind == "soft":
        r = torch.rand(b, k, generator=g, dtype=torch.float64) + 1e-3
        return (r / r.sum(1, keepdim=True)).float()
    return (torch.rand(b, k, generator=g) < 0.4).float()  # multilabel


def make_maps(b: int, h: int, w: int, k: int, seed: int, ignore: bool = True) -> torch.Tensor:
    """(B, H, W) int64 class ids in [0, k), a few pixels set to the ignore index."""
    g = _gen(seed + 2)
    maps = torch.randint(0, k, (b, h, w), generator=g)
    if ignore:
        maps = torch.where(torch.rand(b, h, w, generator=g) < 0.1, IGNORE, maps)
    return maps


def make_probs(b: int, h: int, w: int, k: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, K, H, W) float probability maps (sum to 1 over K)."""
    r = torch.rand(b, k, h, w, generator=_gen(seed + 3), dtype=torch.float64) + 1e-3
    return (r / r.sum(1, keepdim=True)).to(dtype)


def make_boxes(b: int, h: int, w: int, k: int, seed: int) -> BoxBatch:
    """(B, N, 4) valid float xyxy boxes inside the image (N in [0, 4]), some slots invalid."""
    g = _gen(seed + 4)
    n = int(torch.randint(0, 5, (1,), generator=g))
    xs = torch.rand(b, n, 2, generator=g).sort(-1).values * w
    ys = torch.rand(b, n, 2, generator=g).sort(-1).values * h
    boxes = torch.stack([xs[..., 0], ys[..., 0], xs[..., 1], ys[..., 1]], -1)
    labels = torch.randint(0, k, (b, n), generator=g)
    valid = torch.rand(b, n, generator=g) < 0.8
    return BoxBatch(boxes, labels, valid)


def _clone(t):
    if isinstance(t, torch.Tensor):
        return t.clone()
    if isinstance(t, tuple):
        return type(t)(*(x.clone() for x in t))
    return t


def _equal(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return all(_equal(x, y) for x, y in zip(a, b, strict=True))


def _kind_is(params, *kinds: Kind) -> torch.Tensor:
    return torch.isin(params.kind, torch.tensor([int(k) for k in kinds]))


def region_of(params) -> torch.Tensor:
    """(B, H, W) bool: pixels taken from the partner (or filled), from the params alone."""
    h, w = params.size
    region = ops.box_mask(params.boxes, h, w)[:, 0] & _kind_is(params, *BOX_KINDS)[:, None, None]
    if params.mask is not None:
        region |= params.mask & (params.kind == Kind.MASK)[:, None, None]
    return region


def expected_source(params, x: torch.Tensor, fill: float) -> torch.Tensor:
    """What region pixels hold: the partner, its resized copy, or the fill value."""
    partner = x[params.perm]
    src = partner
    if bool((params.kind == Kind.RESIZE).any()):
        resized = ops.resize_into_boxes(partner, params.boxes, params.size, params.resize_mode)
        src = torch.where((params.kind == Kind.RESIZE).view(-1, 1, 1, 1), resized, src)
    if bool((params.kind == Kind.FILL).any()):
        filled = torch.full_like(src, fill)
        src = torch.where((params.kind == Kind.FILL).view(-1, 1, 1, 1), filled, src)
    return src


# ----------------------------------------------------------------------------- shared checks
def check_params(
    params, b: int, h: int, w: int, kinds: set[Kind], p: float, partner: bool = True
) -> None:
    """``partner=False``: RecursiveMix, whose identity perm pairs sample i with history i."""
    assert params.kind.shape == params.lam.shape == params.perm.shape == (b,)
    assert params.boxes.shape == (b, 4) and tuple(params.size) == (h, w)
    assert sorted(params.perm.tolist()) == list(range(b))  # a permutation
    assert set(params.kind.tolist()) <= {int(k) for k in kinds | {Kind.NONE}}
    assert bool(((params.lam >= 0) & (params.lam <= 1)).all())
    assert bool((params.lam[params.kind == Kind.NONE] == 1).all())
    if p == 0.0:
        assert bool((params.kind == Kind.NONE).all())
    self_paired = params.perm == torch.arange(b)  # unchanged by any mixer: NONE, λ = 1
    self_paired &= partner
    assert bool((params.kind[self_paired] == Kind.NONE).all())
    if p == 1.0:
        assert bool((params.kind[~self_paired] != Kind.NONE).all())
    bx = params.boxes
    assert bool(((bx[:, 0] <= bx[:, 2]) & (bx[:, 1] <= bx[:, 3])).all())
    assert bool(((bx >= 0).all(1) & (bx[:, 2] <= w) & (bx[:, 3] <= h)).all())


def check_images(params, x: torch.Tensor, out: torch.Tensor, fill: float) -> torch.Tensor:
    """λ = exact kept pixel fraction (measured on the tag channel), pixels outside the region
    unchanged, region pixels from the partner / resized partner / fill, MixUp convex.
    Returns the region (B, H, W)."""
    assert out.shape == x.shape and out.dtype == x.dtype
    b = x.shape[0]
    region = region_of(params)
    is_region = _kind_is(params, *REGION_KINDS)
    # λ from the params' own region
    frac = 1 - region.flatten(1).double().mean(1)
    assert torch.allclose(params.lam.double()[is_region], frac[is_region], atol=1e-6)
    # λ measured on the pixels: the tag survives exactly where the original pixel is kept
    own = out[:, 0] == x[:, 0]
    distinct = (params.perm != torch.arange(b)) | (params.kind == Kind.FILL)
    sel = is_region & distinct
    assert torch.equal(own[sel], ~region[sel])
    measured = own.flatten(1).double().mean(1)
    assert torch.allclose(params.lam.double()[sel], measured[sel], atol=1e-6)
    # region kinds and NONE: exact selection between the original and the source
    src = expected_source(params, x, fill)
    expected = torch.where(region[:, None], src, x)
    exact = ~(params.kind == Kind.BLEND)
    if params.resize_mode == "bilinear":
        exact &= params.kind != Kind.RESIZE
        bil = params.kind == Kind.RESIZE
        diff = (out[bil].double() - expected[bil].double()).abs()
        assert diff.numel() == 0 or float(diff.max()) <= (1.0 if x.dtype == torch.uint8 else 1e-5)
    assert torch.equal(out[exact], expected[exact])
    # MixUp: lerp(x, partner, 1 - λ), within [min, max] of the two pixels (convexity)
    blend = params.kind == Kind.BLEND
    if bool(blend.any()):
        xb, pb = x[blend].double(), x[params.perm][blend].double()
        lam = params.lam[blend].double().view(-1, 1, 1, 1)
        ref = lam * xb + (1 - lam) * pb
        # uint8 is blended in float32 then rounded: half-way cases may round either side
        f32 = 4 * torch.finfo(torch.float32).eps * float(ref.abs().max())
        tol = 0.5 + f32 if x.dtype == torch.uint8 else 1e-6 + 1e-5 * float(ref.abs().max())
        got = out[blend].double()
        assert float((got - ref).abs().max()) <= tol
        lo, hi = torch.minimum(xb, pb), torch.maximum(xb, pb)
        assert bool(((got >= lo - tol) & (got <= hi + tol)).all())
    return region


def check_targets(params, labels, out_y, kind: str, k: int, smoothing: float) -> None:
    multilabel = kind == "multilabel"
    t = ops.to_targets(labels, k, multilabel=multilabel, smoothing=smoothing)
    assert out_y.shape == (labels.shape[0], k) and out_y.dtype == torch.float32
    lam = params.label_lam.double()[:, None]
    ref = lam * t.double() + (1 - lam) * t.double()[params.perm]
    assert torch.allclose(out_y.double(), ref, atol=1e-6)
    assert bool(((out_y >= -1e-6) & (out_y <= 1 + 1e-6)).all())  # convex combination
    if not multilabel:
        assert torch.allclose(
            out_y.sum(1).double(), torch.ones(len(out_y), dtype=torch.float64), atol=1e-5
        )
    if kind == "int":  # the own class keeps exactly λ when the partner's class differs
        own = out_y.gather(1, labels.view(-1, 1))[:, 0].double()
        differs = labels != labels[params.perm]
        assert torch.allclose(own[differs], params.label_lam.double()[differs], atol=1e-6)


def check_int_masks(params, maps, out_m, region) -> None:
    """Class ids preserved, taken exactly where the image pixels are taken (nearest resize)."""
    assert out_m.shape == maps.shape and out_m.dtype == maps.dtype
    assert set(out_m.unique().tolist()) <= set(maps.unique().tolist()) | {IGNORE}
    mp = params.replace(resize_mode="nearest")
    src = expected_source(mp, maps.unsqueeze(1), float(IGNORE))[:, 0]
    assert torch.equal(out_m, torch.where(region, src, maps))


def check_prob_masks(params, probs, out_m) -> None:
    assert out_m.shape == probs.shape and out_m.dtype == probs.dtype
    tol = 1e-4 if probs.dtype == torch.float32 else 1e-9
    assert torch.allclose(out_m.sum(1).double(), torch.ones_like(out_m[:, 0]).double(), atol=tol)
    assert bool((out_m >= -tol).all())


def check_boxes(params, boxes: BoxBatch, out_b: BoxBatch, h: int, w: int) -> None:
    xyxy, labels, valid = boxes
    b, n = labels.shape
    assert out_b.boxes.shape == (b, 2 * n, 4) and out_b.valid.dtype == torch.bool
    assert torch.equal(out_b.labels, torch.cat([labels, labels[params.perm]], 1))
    ob, ov = out_b.boxes, out_b.valid
    inside = (
        (ob[..., 0] >= 0) & (ob[..., 1] >= 0) & (ob[..., 2] <= w + 1e-4) & (ob[..., 3] <= h + 1e-4)
    )
    ordered = (ob[..., 0] <= ob[..., 2]) & (ob[..., 1] <= ob[..., 3])
    assert bool((inside & ordered)[ov].all())
    own_valid = ov[:, :n]
    assert bool((~own_valid | valid).all())  # never revives an invalid box
    assert torch.equal(ob[:, :n][own_valid], xyxy.float()[own_valid])  # own boxes unmoved
    partner_ok = ~_kind_is(params, Kind.NONE, Kind.FILL)[:, None]
    assert bool((~ov[:, n:] | (partner_ok & valid[params.perm])).all())
    crop = (params.kind == Kind.CROP)[:, None] & ov[:, n:]
    r = params.boxes.float()[:, None].expand(b, n, 4)
    pb = ob[:, n:]
    within = (pb[..., 0] >= r[..., 0]) & (pb[..., 1] >= r[..., 1])
    within &= (pb[..., 2] <= r[..., 2]) & (pb[..., 3] <= r[..., 3])
    assert bool(within[crop].all())


# ----------------------------------------------------------------------------- augments
def _mixer_kwargs(name: str, draw) -> dict:
    if name in ("mixup", "cutmix", "fmix"):
        kw = {"alpha": draw(alphas)}
        if name == "cutmix":
            kw["correct_lam"] = draw(st.booleans())
        if name == "fmix":
            kw["decay_power"] = draw(st.floats(0.5, 5.0))
        return kw
    if name == "resizemix":
        lo = draw(st.floats(0.01, 1.0))
        return {
            "scope": (lo, draw(st.floats(lo, 1.0))),
            "interpolation": draw(st.sampled_from(["nearest", "bilinear"])),
        }
    if name == "cutout":
        return {"length": draw(st.integers(1, 30))}
    if name == "mixup_cutmix":
        return {
            "mixup_alpha": draw(st.one_of(st.just(0.0), alphas)),
            "cutmix_alpha": draw(alphas),
            "switch_prob": draw(probs),
            "correct_lam": draw(st.booleans()),
        }
    return {}


def _build(name: str, kwargs: dict, common: dict) -> augment.MixTransform:
    if name == "random_choice":  # every region kind; a Cutout sub-transform gated by its own p
        subs = [
            augment.CutMix(common.get("alpha", 1.0)),
            augment.ResizeMix(),
            augment.Cutout(length=5, p=kwargs.get("sub_p", 1.0)),
            augment.FMix(),
        ]
        return augment.RandomChoice(
            subs, kwargs.get("weights"), **{k: v for k, v in common.items() if k != "alpha"}
        )
    return augment.build_augment(name, **kwargs, **common)


MIXER_KINDS = {
    "mixup": {Kind.BLEND},
    "cutmix": {Kind.CROP},
    "resizemix": {Kind.RESIZE},
    "cutout": {Kind.FILL},
    "fmix": {Kind.MASK},
    "mixup_cutmix": {Kind.BLEND, Kind.CROP},
    "random_choice": {Kind.CROP, Kind.RESIZE, Kind.FILL, Kind.MASK},
}


@pytest.mark.parametrize("name", list(MIXER_KINDS))
@SETTINGS
@given(data=st.data())
def test_augment_properties(name, data):
    b, c, h, w = data.draw(shapes())
    dtype = data.draw(st.sampled_from(DTYPES))
    seed = data.draw(seeds)
    label_kind = data.draw(st.sampled_from(LABEL_KINDS))
    k = data.draw(st.integers(2, 12))
    smoothing = data.draw(st.floats(0.0, 0.5)) if label_kind == "smoothed" else 0.0
    p = data.draw(probs)
    kwargs = _mixer_kwargs(name, data.draw)
    if name == "random_choice":
        kwargs = {
            "sub_p": data.draw(probs),
            "weights": data.draw(st.lists(st.floats(0.1, 5.0), min_size=4, max_size=4)),
        }
    common = {
        "p": p,
        "mode": data.draw(st.sampled_from(augment.MODES)),
        "pairing": data.draw(st.sampled_from(ops.PAIRINGS)),
        "num_classes": k,
        "label_smoothing": smoothing,
        "multilabel": label_kind == "multilabel",
        "generator": seed,
    }
    blends = Kind.BLEND in MIXER_KINDS[name]
    x = tagged(b, c, h, w, dtype, seed)
    labels = make_labels(label_kind, b, k, seed)
    masks = (
        make_probs(b, h, w, k, seed, torch.float64 if dtype == torch.float64 else torch.float32)
        if blends
        else make_maps(b, h, w, k, seed)
    )
    boxes = make_boxes(b, h, w, k, seed)
    before = [_clone(t) for t in (x, labels, masks, boxes)]

    mixer = _build(name, kwargs, common)
    out_x, out_y, out_m, out_b = mixer(x, labels, masks, boxes)
    params = mixer.last_params
    sub_p = kwargs.get("sub_p", 1.0)
    check_params(params, b, h, w, MIXER_KINDS[name], p if sub_p == 1.0 else min(p, 0.5))
    fill = float(getattr(mixer, "value", 0.0))
    region = check_images(params, x, out_x, fill)
    check_targets(params, labels, out_y, label_kind, k, smoothing)
    if blends:
        check_prob_masks(params, masks, out_m)
    else:
        check_int_masks(params, masks, out_m, region)
    check_boxes(params, boxes, out_b, h, w)
    # no mutation of the inputs
    assert all(_equal(a, b) for a, b in zip(before, (x, labels, masks, boxes), strict=True))
    # determinism: same seed, same bytes
    again = _build(name, kwargs, common)(x, labels, masks, boxes)
    assert _equal(again[0], out_x) and _equal(again[1], out_y) and _equal(again[2], out_m)
    assert _equal(again[3], out_b)
    # inplace=True writes the same result into the caller's tensor
    x2 = x.clone()
    res = mixer.apply(params, x2, inplace=True)
    assert res.images.data_ptr() == x2.data_ptr() and torch.equal(x2, out_x)


@SETTINGS
@given(
    shape=shapes(max_b=24),
    k=st.integers(1, 8),
    p=probs,
    mode=st.sampled_from(augment.MODES),
    seed=seeds,
    with_labels=st.booleans(),
)
def test_classmix_properties(shape, k, p, mode, seed, with_labels):
    b, c, h, w = shape
    x = tagged(b, c, h, w, torch.float32, seed)
    maps = make_maps(b, h, w, k, seed)
    labels = make_labels("int", b, k, seed)
    before = [_clone(t) for t in (x, maps, labels)]
    mixer = augment.ClassMix(num_classes=k, p=p, mode=mode, generator=seed)
    out = mixer(x, labels, maps) if with_labels else mixer(x, masks=maps)
    out_x, out_m = out[0], out[-1]
    params = mixer.last_params
    check_params(params, b, h, w, {Kind.MASK}, p)
    region = check_images(params, x, out_x, 0.0)
    check_int_masks(params, maps, out_m, region)
    if with_labels:
        check_targets(params, labels, out[1], "int", k, 0.0)
    # the region is ceil(n/2) whole classes of the partner's map, never an ignore pixel
    partner = maps[params.perm]
    for i in torch.nonzero(params.kind == Kind.MASK)[:, 0].tolist():
        present = [cl for cl in partner[i].unique().tolist() if 0 <= cl < k]
        picked = [cl for cl in present if bool(region[i][partner[i] == cl].all())]
        assert all(
            not bool(region[i][partner[i] == cl].any()) for cl in present if cl not in picked
        )
        assert len(picked) == (len(present) + 1) // 2
        assert not bool(region[i][partner[i] == IGNORE].any())
    assert all(_equal(a, b) for a, b in zip(before, (x, maps, labels), strict=True))
    again = augment.ClassMix(num_classes=k, p=p, mode=mode, generator=seed)(x, masks=maps)
    assert torch.equal(again[0], out_x) and torch.equal(again[1], out_m)


@SETTINGS
@given(
    shape=shapes(),
    dtype=st.sampled_from(DTYPES),
    alpha=st.floats(0.01, 1.0),
    p=probs,
    per_sample=st.booleans(),
    interpolation=st.sampled_from(["nearest", "bilinear"]),
    label_kind=st.sampled_from(("int", "onehot", "soft", "smoothed")),
    smoothing=st.floats(0.0, 0.5),
    shrink=st.integers(0, 3),
    seed=seeds,
)
def test_recursivemix_properties(
    shape, dtype, alpha, p, per_sample, interpolation, label_kind, smoothing, shrink, seed
):
    """Three steps (the last batch possibly smaller): λ = 1 without history, then the exact
    kept fraction; targets λ y + (1 - λ) y_prev with mass 1; deterministic; inputs intact."""
    b, c, h, w = shape
    k = 5
    s = smoothing if label_kind == "smoothed" else 0.0

    def make():
        return RecursiveMix(
            alpha, interpolation, per_sample, p=p, num_classes=k, label_smoothing=s, generator=seed
        )

    steps = [(b, seed), (b, seed + 7), (max(1, b - shrink), seed + 9)]
    runs = []
    for mixer in (make(), make()):
        outs = []
        prev_x = prev_y = None
        for j, (n, sd) in enumerate(steps):
            x = tagged(n, c, h, w, dtype, sd)
            x[:, 0] += 70 * j  # tags differ from the history's
            y = make_labels(label_kind, n, k, sd)
            before = (x.clone(), y.clone())
            out_x, out_y = mixer(x, y)
            params = mixer.last_params
            assert torch.equal(before[0], x) and torch.equal(before[1], y)
            t = ops.to_targets(y, k, smoothing=s)
            if prev_x is None:
                assert bool((params.kind == Kind.NONE).all()) and torch.equal(out_x, x)
                assert torch.allclose(out_y, t)
            else:
                check_params(params, n, h, w, {Kind.RESIZE}, p, partner=False)
                own = out_x[:, 0] == x[:, 0]
                region = region_of(params)
                assert torch.equal(own, ~region)
                assert torch.allclose(
                    params.lam.double(), own.flatten(1).double().mean(1), atol=1e-6
                )
                lam = params.label_lam[:, None]
                assert torch.allclose(out_y, lam * t + (1 - lam) * prev_y[:n], atol=1e-6)
                outside = ~region[:, None].expand_as(x)
                assert torch.equal(out_x[outside], x[outside])
                if interpolation == "nearest":  # pasted pixels come from the history, resized
                    src = ops.resize_into_boxes(prev_x[:n], params.boxes, (h, w), "nearest")
                    assert torch.equal(out_x[~outside], src[~outside])
            assert torch.allclose(out_y.sum(1), torch.ones(n), atol=1e-5)
            prev_x, prev_y = out_x, out_y
            outs.append((out_x, out_y))
        runs.append(outs)
    assert all(
        torch.equal(a[0], b_[0]) and torch.equal(a[1], b_[1]) for a, b_ in zip(*runs, strict=True)
    )


# ----------------------------------------------------------------------------- ops: sampling
@SETTINGS
@given(
    alpha=st.floats(0.01, 20.0),
    beta=st.one_of(st.none(), st.floats(0.01, 20.0)),
    low=st.floats(-5, 5),
    width=st.floats(0, 5),
    p=probs,
    n=st.integers(1, 64),
    seed=seeds,
)
def test_scalar_samplers(alpha, beta, low, width, p, n, seed):
    lam = ops.sample_beta(alpha, n, _gen(seed), beta)
    assert lam.shape == (n,) and lam.dtype == torch.float64
    assert bool(((lam >= 0) & (lam <= 1)).all())
    assert torch.equal(lam, ops.sample_beta(alpha, n, _gen(seed), beta))
    u = ops.sample_uniform(low, low + width, n, _gen(seed))
    assert bool(((u >= low) & (u <= low + width)).all()) and u.dtype == torch.float64
    coin = ops.sample_bernoulli(p, n, _gen(seed))
    assert coin.dtype == torch.bool and coin.shape == (n,)
    if p == 0.0:
        assert not bool(coin.any())
    if p == 1.0:
        assert bool(coin.all())
    assert torch.equal(coin, ops.sample_bernoulli(p, n, _gen(seed)))


@SETTINGS
@given(n=st.integers(1, 64), kind=st.sampled_from(ops.PAIRINGS), seed=seeds)
def test_sample_pairing(n, kind, seed):
    perm = ops.sample_pairing(n, kind, _gen(seed))
    assert perm.dtype == torch.int64 and sorted(perm.tolist()) == list(range(n))
    assert torch.equal(perm, ops.sample_pairing(n, kind, _gen(seed)))
    if kind == "cycle" and n > 1:  # one n-cycle: no fixed point, every sample reached
        i, seen = 0, set()
        for _ in range(n):
            seen.add(i)
            i = int(perm[i])
        assert i == 0 and len(seen) == n
    if kind == "roll":
        assert perm.tolist() == torch.arange(n).roll(1).tolist()
    if kind == "flip":
        assert perm.tolist() == list(range(n - 1, -1, -1))


@SETTINGS
@given(n=st.integers(1, 64), h=st.integers(1, 40), w=st.integers(1, 40), seed=seeds, data=st.data())
def test_box_samplers(n, h, w, seed, data):
    area = torch.tensor(
        data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), dtype=torch.float64
    )
    bh, bw = ops.cut_size(area, h, w)
    assert bool(((bh >= 0) & (bh <= h) & (bw >= 0) & (bw <= w)).all())
    assert torch.equal(bh, torch.round(area.sqrt() * h).long())
    for boxes in (
        ops.sample_boxes(area, h, w, _gen(seed)),
        ops.sample_boxes_centred(bh, bw, h, w, _gen(seed)),
        ops.sample_boxes_inside(bh, bw, h, w, _gen(seed)),
    ):
        assert boxes.shape == (n, 4) and boxes.dtype == torch.int64
        assert bool(
            (
                (boxes[:, 0] >= 0) & (boxes[:, 1] >= 0) & (boxes[:, 2] <= w) & (boxes[:, 3] <= h)
            ).all()
        )
        assert bool(((boxes[:, 2] - boxes[:, 0] <= bw) & (boxes[:, 3] - boxes[:, 1] <= bh)).all())
        assert bool(((boxes[:, 0] <= boxes[:, 2]) & (boxes[:, 1] <= boxes[:, 3])).all())
        frac = ops.box_area_fraction(boxes, h, w)
        mask = ops.box_mask(boxes, h, w)
        assert mask.shape == (n, 1, h, w)
        assert torch.allclose(frac, mask.flatten(1).double().mean(1), atol=1e-12)
    inside = ops.sample_boxes_inside(bh, bw, h, w, _gen(seed))  # exact size, never clipped
    assert torch.equal(inside[:, 2] - inside[:, 0], bw) and torch.equal(
        inside[:, 3] - inside[:, 1], bh
    )
    assert torch.equal(inside, ops.sample_boxes_inside(bh, bw, h, w, _gen(seed)))


# ----------------------------------------------------------------------------- ops: pixels
@st.composite
def pixel_case(draw):
    b, c, h, w = draw(shapes())
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(seeds)
    x = tagged(b, c, h, w, dtype, seed)
    g = _gen(seed + 5)
    x1 = torch.randint(0, w + 1, (b,), generator=g)
    y1 = torch.randint(0, h + 1, (b,), generator=g)
    x2 = x1 + (torch.rand(b, generator=g) * (w - x1 + 1)).long().clamp(max=w - x1)
    y2 = y1 + (torch.rand(b, generator=g) * (h - y1 + 1)).long().clamp(max=h - y1)
    boxes = torch.stack([x1, y1, x2, y2], 1)
    if draw(st.booleans()):  # one box for the whole batch (the batch-mode fast path)
        boxes = boxes[:1].expand(b, 4).clone()
    perm = torch.randperm(b, generator=g)
    return x, boxes, perm, seed


@SETTINGS
@given(case=pixel_case(), lam_data=st.data(), inplace=st.booleans())
def test_mixup_and_blend(case, lam_data, inplace):
    x, _, perm, seed = case
    b = x.shape[0]
    lam = torch.tensor(
        lam_data.draw(
            st.lists(
                st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)), min_size=b, max_size=b
            )
        )
    )
    before = x.clone()
    out = ops.mixup(x, lam, perm)
    assert torch.equal(x, before) and out.dtype == x.dtype and out.shape == x.shape
    xd, pd = x.double(), x[perm].double()
    ref = lam.double().view(-1, 1, 1, 1) * xd + (1 - lam.double().view(-1, 1, 1, 1)) * pd
    # lam is float32, so 1 - lam carries float32 rounding whatever the image dtype; uint8 is
    # blended in float32 then rounded, so half-way cases may round either side
    f32 = 4 * torch.finfo(torch.float32).eps * float(ref.abs().max())
    eps = 0.5 + f32 if x.dtype == torch.uint8 else f32
    tol = eps + 1e-9
    assert float((out.double() - ref).abs().max()) <= tol
    lo, hi = torch.minimum(xd, pd), torch.maximum(xd, pd)
    assert bool(((out.double() >= lo - tol) & (out.double() <= hi + tol)).all())  # convex
    ones = lam == 1
    assert torch.equal(out[ones], x[ones])  # λ = 1: the original, bit for bit
    zeros = lam == 0
    assert torch.equal(out[zeros], x[perm][zeros])
    if inplace:
        y = x.clone()
        assert ops.mixup(y, lam, perm, inplace=True).data_ptr() == y.data_ptr() and torch.equal(
            y, out
        )
    sel = torch.rand(x.shape[0], 1, *x.shape[-2:], generator=_gen(seed)) < 0.5
    picked = ops.blend(x, x[perm], sel)
    assert torch.equal(picked, torch.where(sel, x[perm], x)) and torch.equal(x, before)


@SETTINGS
@given(
    case=pixel_case(),
    mode=st.sampled_from(["nearest", "bilinear"]),
    value=st.floats(0, 200),
    inplace=st.booleans(),
)
def test_region_ops(case, mode, value, inplace):
    x, boxes, perm, _ = case
    b, c, h, w = x.shape
    before = x.clone()
    region = ops.box_mask(boxes, h, w)
    assert int(region.sum()) == int(
        ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()
    )
    partner = x[perm]
    cut = ops.cutmix(x, boxes, perm)
    assert torch.equal(cut, torch.where(region, partner, x))
    assert torch.equal(ops.paste_region(x, partner, boxes), cut)
    fill = (
        torch.full((), value, dtype=torch.float64).to(x.dtype)
        if x.is_floating_point()
        else torch.tensor(round(value), dtype=torch.uint8)
    )
    filled = ops.cutout(x, boxes, float(fill))
    assert torch.equal(filled, torch.where(region, fill, x))
    resized = ops.resize_into_boxes(partner, boxes, (h, w), mode)
    rm = ops.resizemix(x, boxes, perm, mode)
    assert torch.equal(rm[~region.expand_as(x)], x[~region.expand_as(x)])  # outside untouched
    tol = 0 if mode == "nearest" else (1 if x.dtype == torch.uint8 else 1e-5)
    inside = region.expand_as(x)
    diff = (rm[inside].double() - resized[inside].double()).abs()
    assert diff.numel() == 0 or float(diff.max()) <= tol
    assert torch.equal(ops.resize_paste(x, partner, boxes, mode), rm)
    # the resize equals F.interpolate per sample (nearest exactly; bilinear, float, closely)
    for i in range(min(b, 4)):
        x1, y1, x2, y2 = boxes[i].tolist()
        if x2 > x1 and y2 > y1 and (mode == "nearest" or x.is_floating_point()):
            kw = {} if mode == "nearest" else {"align_corners": False}
            ref = F.interpolate(
                partner[i : i + 1].double(), size=(y2 - y1, x2 - x1), mode=mode, **kw
            )
            got = resized[i : i + 1, :, y1:y2, x1:x2].double()
            assert float((got - ref).abs().max()) <= (0 if mode == "nearest" else 1e-4)
    mask = torch.rand(b, h, w, generator=_gen(int(perm.sum()))) < 0.3
    assert torch.equal(ops.mask_mix(x, mask, perm), torch.where(mask[:, None], partner, x))
    assert torch.equal(x, before)  # nothing mutated
    if inplace:
        y = x.clone()
        assert ops.cutmix(y, boxes, perm, inplace=True).data_ptr() == y.data_ptr()
        assert torch.equal(y, cut)
        out = torch.empty_like(x)
        assert ops.resizemix(x, boxes, perm, mode, out=out) is out and torch.equal(out, rm)


# ----------------------------------------------------------------------------- ops: labels / masks
@SETTINGS
@given(
    b=st.integers(1, 64),
    k=st.integers(1, 20),
    s=st.floats(0, 0.99),
    seed=seeds,
    kind=st.sampled_from(LABEL_KINDS),
)
def test_label_ops(b, k, s, seed, kind):
    labels = make_labels(kind if k > 1 or kind != "soft" else "onehot", b, k, seed)
    multilabel = kind == "multilabel"
    smoothing = s if kind == "smoothed" else 0.0
    before = labels.clone()
    t = ops.to_targets(labels, k, multilabel=multilabel, smoothing=smoothing)
    assert t.shape == (b, k) and t.dtype == torch.float32 and torch.equal(labels, before)
    if labels.ndim == 1:
        oh = ops.one_hot(labels, k)
        assert torch.equal(oh.argmax(1), labels) and torch.equal(oh.sum(1), torch.ones(b))
        assert torch.allclose(t, ops.smooth(oh, smoothing)) and torch.allclose(
            t, oh * (1 - smoothing) + smoothing / k
        )
    if not multilabel:
        assert torch.allclose(t.sum(1), torch.ones(b), atol=1e-5)
    lam = torch.rand(b, generator=_gen(seed))
    perm = torch.randperm(b, generator=_gen(seed))
    mixed = ops.mix_targets(t, lam, perm)
    ref = lam[:, None].double() * t.double() + (1 - lam[:, None].double()) * t[perm].double()
    assert torch.allclose(mixed.double(), ref, atol=1e-6)
    if not multilabel:
        assert torch.allclose(mixed.sum(1), torch.ones(b), atol=1e-5)
    assert bool(((mixed >= -1e-6) & (mixed <= 1 + 1e-6)).all())


@SETTINGS
@given(
    b=st.integers(1, 32),
    h=st.integers(1, 24),
    w=st.integers(1, 24),
    k=st.integers(1, 10),
    seed=seeds,
)
def test_classmix_mask_ops(b, h, w, k, seed):
    maps = make_maps(b, h, w, k, seed)
    present = ops.present_classes(maps, k)
    for i in range(b):
        ids = {int(v) for v in maps[i].unique() if 0 <= int(v) < k}
        assert set(torch.nonzero(present[i])[:, 0].tolist()) == ids
    chosen = ops.sample_classmix_classes(maps, k, _gen(seed))
    assert chosen.shape == (b, k) and chosen.dtype == torch.bool
    assert bool((~chosen | present).all())
    assert torch.equal(chosen.sum(1), (present.sum(1) + 1) // 2)
    assert torch.equal(chosen, ops.sample_classmix_classes(maps, k, _gen(seed)))
    mask = ops.classmix_mask(maps, chosen)
    ref = chosen.gather(1, maps.clamp(0, k - 1).flatten(1)).view(b, h, w) & (maps < k)
    assert torch.equal(mask, ref)


@SETTINGS
@given(
    n=st.integers(1, 32),
    h=st.integers(1, 32),
    w=st.integers(1, 32),
    decay=st.floats(0.5, 5),
    seed=seeds,
    data=st.data(),
)
def test_fmix_mask(n, h, w, decay, seed, data):
    area = torch.tensor(
        data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), dtype=torch.float64
    )
    mask = ops.fmix_mask(area, h, w, _gen(seed), decay)
    assert mask.shape == (n, h, w) and mask.dtype == torch.bool
    assert torch.equal(mask.flatten(1).sum(1), torch.round(area * h * w).long())  # exact count
    assert torch.equal(mask, ops.fmix_mask(area, h, w, _gen(seed), decay))


# ----------------------------------------------------------------------------- ops: detection
@SETTINGS
@given(b=st.integers(1, 16), h=st.integers(1, 40), w=st.integers(1, 40), seed=seeds)
def test_detection_ops(b, h, w, seed):
    boxes = make_boxes(b, h, w, 3, seed).boxes
    g = _gen(seed + 9)
    x1 = torch.randint(0, w + 1, (b,), generator=g)
    y1 = torch.randint(0, h + 1, (b,), generator=g)
    region = torch.stack(
        [
            x1,
            y1,
            x1 + torch.randint(0, w + 1, (b,), generator=g).clamp(max=w - x1),
            y1 + torch.randint(0, h + 1, (b,), generator=g).clamp(max=h - y1),
        ],
        1,
    )
    areas = ops.box_areas(boxes)
    assert bool((areas >= 0).all())
    clipped = ops.intersect_region(boxes, region)
    r = region.float()[:, None]
    assert bool(
        (
            (clipped[..., :2] >= r[..., :2]) & (clipped[..., 2:] <= r[..., 2:])
            | (ops.box_areas(clipped) == 0)[..., None]
        ).all()
    )
    assert bool((ops.box_areas(clipped) <= areas + 1e-4).all())
    vis = ops.visible_fraction_box(boxes, region)
    assert bool(((vis >= 0) & (vis <= 1)).all())
    pos = areas > 0
    assert torch.allclose(vis[pos], 1 - ops.box_areas(clipped)[pos] / areas[pos], atol=1e-5)
    empty = torch.zeros(b, h, w, dtype=torch.bool)
    vm = ops.visible_fraction_mask(boxes, empty)
    assert bool(((vm >= 0) & (vm <= 1)).all())
    snapped_pos = (boxes[..., 2].ceil() > boxes[..., 0].floor()) & (
        boxes[..., 3].ceil() > boxes[..., 1].floor()
    )
    assert bool((vm[snapped_pos] == 1).all())
    assert bool((ops.visible_fraction_mask(boxes, ~empty)[snapped_pos] == 0).all())
    full = torch.tensor([[0.0, 0.0, w, h]]).expand(b, 1, 4)
    moved = ops.resize_boxes_into(full, (h, w), region)
    assert torch.allclose(moved[:, 0], region.float(), atol=1e-4)
    inner = ops.resize_boxes_into(boxes, (h, w), region)
    assert bool(
        ((inner[..., :2] >= r[..., :2] - 1e-3) & (inner[..., 2:] <= r[..., 2:] + 1e-3)).all()
    )


def test_profile_is_applied():
    """The ci profile is the default and is fast; the slow one has >= 10 000 examples."""
    assert SETTINGS.max_examples == (10_000 if SLOW else 16) and SETTINGS.deadline is None
    assert math.isfinite(SETTINGS.max_examples)
