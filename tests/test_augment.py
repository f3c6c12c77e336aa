"""Tests of the ``mixkit.augment`` modules (params/apply split): one class per transform.

``_Contract`` holds the checks every mixer must pass; each ``Test<Transform>`` subclass sets
the factory and adds its own checks. Expected outputs come from ``_naive_apply``, a
per-sample loop written from the documented semantics of each ``Kind``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    DTYPES,
    HW,
    chi2_uniform_ok,
    from_original,
    from_partner,
    seg_maps,
    tagged_images,
)

from mixkit import ops
from mixkit.augment import (
    AUGMENTS,
    BoxBatch,
    ClassMix,
    CutMix,
    Cutout,
    FMix,
    Kind,
    MixParams,
    MixUp,
    MixUpCutMix,
    MultiBoxCutMix,
    RandomChoice,
    ResizeMix,
    build_augment,
)

K = 28  # classes; seg_maps(7) uses ids 0..27
REGION_KINDS = (Kind.CROP, Kind.RESIZE, Kind.FILL, Kind.MASK)

pytestmark = pytest.mark.usefixtures("one_thread")


def _region_of(params: MixParams, i: int) -> torch.Tensor:
    """(H, W) bool: the pixels of sample i taken from the partner (or filled)."""
    h, w = params.size
    k = Kind(int(params.kind[i]))
    r = torch.zeros(h, w, dtype=torch.bool)
    if k in (Kind.CROP, Kind.RESIZE, Kind.FILL):
        x1, y1, x2, y2 = params.boxes[i].tolist()
        r[y1:y2, x1:x2] = True
    elif k == Kind.MASK:
        r = params.mask[i].clone()
    return r


def _naive_apply(params: MixParams, x: torch.Tensor) -> torch.Tensor:
    """Per-sample reference of ``apply_images`` in float64 (uint8 results rounded)."""
    out = x.double().clone()
    xd = x.double()
    for i in range(params.batch_size):
        k = Kind(int(params.kind[i]))
        j = int(params.perm[i])
        lam = float(params.lam[i])
        x1, y1, x2, y2 = params.boxes[i].tolist()
        if k == Kind.BLEND:
            out[i] = lam * xd[i] + (1 - lam) * xd[j]
        elif k == Kind.CROP:
            out[i, :, y1:y2, x1:x2] = xd[j, :, y1:y2, x1:x2]
        elif k == Kind.RESIZE and y2 > y1 and x2 > x1:
            kw = {} if params.resize_mode == "nearest" else {"align_corners": False}
            out[i, :, y1:y2, x1:x2] = F.interpolate(
                xd[j : j + 1], size=(y2 - y1, x2 - x1), mode=params.resize_mode, **kw
            )[0]
        elif k == Kind.FILL:
            out[i, :, y1:y2, x1:x2] = params.fill
        elif k == Kind.MASK:
            out[i] = torch.where(params.mask[i], xd[j], xd[i])
    if x.dtype == torch.uint8:
        out = out.round().clamp(0, 255)
    return out


def _one_hot(labels: torch.Tensor, k: int = K) -> torch.Tensor:
    return F.one_hot(labels, k).float()


def _labels(b: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, K, (b,), generator=torch.Generator().manual_seed(seed))


class _Contract:
    """Checks shared by every mixer. Subclasses set ``make`` and the capability flags."""

    exact_pixels = True  # False: BLEND or bilinear samples, compared with a tolerance
    label_mixing = True  # False: Cutout (labels unchanged)
    int_masks = True  # False: MixUp (class-id masks cannot be blended)
    batch_shares_region = True  # batch mode: one λ/box for all samples
    batch_draws = 300  # draws in the batch-mode test

    def make(self, **kw):
        raise NotImplementedError

    def draw(self, t, b: int, seed, h: int = HW[0], w: int = HW[1], c: int = 3):
        return t.draw((b, c, h, w), seed)

    # ------------------------------------------------------------------ images
    def test_output_is_stated_combination(self, dtype, batch, channels_last):
        t = self.make(num_classes=K)
        x = tagged_images(batch, dtype=dtype, channels_last=channels_last)
        before = x.clone()
        params = self.draw(t, batch, 3)
        out = t.apply(params, x).images
        assert torch.equal(x, before), "input mutated"
        assert out.dtype == dtype and out.shape == x.shape
        ref = _naive_apply(params, x)
        if self.exact_pixels:
            assert torch.equal(out.double(), ref)
        else:
            tol = 1.0 if dtype == torch.uint8 else 1e-3
            assert float((out.double() - ref).abs().max()) <= tol
        # channels_last gives the same values
        if channels_last:
            flat = t.apply(params, x.contiguous()).images
            assert torch.equal(out, flat)

    def test_lam_equals_measured_pixel_fraction(self, dtype, batch):
        t = self.make(num_classes=K)
        h, w = HW
        x = tagged_images(batch, dtype=dtype)
        for seed in range(4):
            params = self.draw(t, batch, seed)
            out = t.apply(params, x).images
            kept = from_original(out, x).flatten(1).sum(1)
            for i in range(batch):
                k = Kind(int(params.kind[i]))
                lam = float(params.lam[i])
                if k == Kind.NONE:
                    assert lam == 1.0 and int(kept[i]) == h * w
                if k not in REGION_KINDS:
                    continue
                region = int(_region_of(params, i).sum())
                assert round(lam * h * w) == h * w - region
                assert abs(lam - (h * w - region) / (h * w)) < 1e-6
                if int(params.perm[i]) != i or k == Kind.FILL:  # measurable from the pixels
                    assert int(kept[i]) == h * w - region, (k, i)
                    assert abs(lam - int(kept[i]) / (h * w)) < 1e-6

    # ------------------------------------------------------------------ labels
    def test_label_rows_sum_to_one_and_follow_lam(self, batch):
        ids = _labels(batch)
        forms = {
            "int": ids,
            "smoothed": ids,
            "onehot": _one_hot(ids),
            "soft": torch.softmax(torch.randn(batch, K, generator=torch.Generator()), 1),
        }
        for form, given in forms.items():
            t = self.make(num_classes=K, label_smoothing=0.1 if form == "smoothed" else 0.0)
            y = given.float() if given.ndim == 2 else _one_hot(ids)
            if form == "smoothed":
                y = y * 0.9 + 0.1 / K
            params = self.draw(t, batch, 5)
            mixed = t.apply(params, tagged_images(batch), labels=given).labels
            assert mixed.shape == (batch, K) and mixed.dtype == torch.float32
            torch.testing.assert_close(mixed.sum(1), torch.ones(batch), rtol=0, atol=1e-5)
            lam = params.label_lam.double()[:, None]
            expected = lam * y.double() + (1 - lam) * y.double()[params.perm]
            torch.testing.assert_close(mixed.double(), expected, rtol=0, atol=1e-6)
            if form == "smoothed":
                assert float(mixed.min()) >= 0.1 / K - 1e-7
            if not self.label_mixing:
                torch.testing.assert_close(mixed, y)

    def test_multilabel_targets_are_the_convex_combination(self, batch):
        t = self.make(num_classes=K, multilabel=True)
        y = (torch.rand(batch, K, generator=torch.Generator().manual_seed(1)) < 0.3).float()
        params = self.draw(t, batch, 6)
        mixed = t.apply(params, tagged_images(batch), labels=y).labels
        lam = params.label_lam[:, None]
        torch.testing.assert_close(mixed, lam * y + (1 - lam) * y[params.perm])
        assert float(mixed.min()) >= 0 and float(mixed.max()) <= 1
        # multi-label rows do not sum to 1; their sums are the same convex combination
        s = y.sum(1)
        torch.testing.assert_close(
            mixed.sum(1), params.label_lam * s + (1 - params.label_lam) * s[params.perm]
        )

    # ------------------------------------------------------------------ randomness
    def test_same_seed_same_bytes_different_seed_differs(self):
        x = tagged_images(7)
        y = _labels(7)
        a = self.make(num_classes=K, generator=11)
        b = self.make(num_classes=K, generator=11)
        kw = self.forward_kw(7)
        ra, rb = a(x, y, **kw), b(x, y, **kw)
        for u, v in zip(ra, rb, strict=True):
            assert torch.equal(u, v)
        c = self.make(num_classes=K, generator=12)
        assert not torch.equal(ra[0], c(x, y, **kw)[0])
        # the module generator advances: a second call differs from the first
        assert not torch.equal(ra[0], a(x, y, **kw)[0])
        # an explicit generator overrides the module's, reproducibly
        g1 = a.draw(x.shape, torch.Generator().manual_seed(5), **self.draw_kw(7))
        g2 = b.draw(x.shape, 5, **self.draw_kw(7))
        assert torch.equal(g1.lam, g2.lam) and torch.equal(g1.perm, g2.perm)

    def forward_kw(self, b: int) -> dict:
        return {}

    def draw_kw(self, b: int) -> dict:
        return {}

    def test_p0_is_identity(self, batch):
        t = self.make(num_classes=K, p=0.0, generator=0)
        ids = _labels(batch)
        for dtype, mode in itertools.product(DTYPES, ("elem", "batch")):
            x = tagged_images(batch, dtype=dtype)
            t.mode = mode
            out, y = t(x, ids, **self.forward_kw(batch))[:2]
            assert torch.equal(out, x) and out is not x
            assert torch.equal(y, _one_hot(ids))
            assert not bool(t.last_params.applied.any())

    def test_p_rate_elem(self):
        t = self.make(num_classes=K, p=0.3, generator=2)
        n = 0
        hits = 0
        for _ in range(5):
            params = self.draw(t, 1000, None, h=4, w=5)
            hits += int(params.applied.sum())
            n += 1000
            assert bool((params.lam[~params.applied] == 1).all())
        assert abs(hits / n - 0.3) <= 0.03, hits / n

    def test_batch_mode_all_or_nothing(self):
        t = self.make(num_classes=K, p=0.5, mode="batch", generator=3)
        applied_batches = 0
        n = self.batch_draws
        for _ in range(n):
            params = self.draw(t, 7, None)
            a = params.applied
            assert bool(a.all()) or not bool(a.any())
            applied_batches += int(a.all())
            if bool(a.all()):
                assert bool((params.kind == params.kind[0]).all())
                if self.batch_shares_region:
                    assert bool((params.lam == params.lam[0]).all())
                    assert bool((params.boxes == params.boxes[0]).all())
        # binomial(n, 1/2): allow 3.5 standard deviations
        assert abs(applied_batches / n - 0.5) < 3.5 * math.sqrt(0.25 / n)

    def test_elem_mode_draws_per_sample(self):
        t = self.make(num_classes=K, mode="elem", generator=4)
        params = self.draw(t, 7, None)
        assert len(set(params.lam.tolist())) > 1

    def test_odd_and_tiny_batches(self):
        t = self.make(num_classes=K, generator=0)
        for b in (1, 2, 3, 5):
            x = tagged_images(b)
            out, y = t(x, _labels(b), **self.forward_kw(b))[:2]
            assert out.shape == x.shape and y.shape == (b, K)
            torch.testing.assert_close(y.sum(1), torch.ones(b))
            ref = _naive_apply(t.last_params, x)
            torch.testing.assert_close(out.double(), ref, atol=1e-3, rtol=0)

    # ------------------------------------------------------------------ masks
    def test_segmentation_masks_follow_the_image(self, batch):
        t = self.make(num_classes=K, generator=1, ignore_index=255)
        x = tagged_images(batch)
        maps = seg_maps(batch)
        if not self.int_masks:
            with pytest.raises(ValueError, match="masks: MixUp"):
                t(x, masks=maps)
            return
        params = self.draw(t, batch, 7)
        res = t.apply(params, x, masks=maps)
        out_m = res.masks
        assert out_m.dtype == maps.dtype and out_m.shape == maps.shape
        allowed = set(maps.unique().tolist()) | {255}
        assert set(out_m.unique().tolist()) <= allowed
        perm = params.perm
        for i in range(batch):
            k = Kind(int(params.kind[i]))
            own_ids = maps[i].unique()
            mask_from_own = torch.isin(out_m[i], own_ids)
            if k == Kind.FILL:
                assert torch.equal(out_m[i] == 255, _region_of(params, i))
                assert torch.equal(~(out_m[i] == 255), from_original(res.images, x)[i])
            elif int(perm[i]) != i:
                # pixels from the partner in the mask == pixels from the partner in the image
                assert torch.equal(mask_from_own, from_original(res.images, x)[i])
                if k != Kind.RESIZE:  # resized partner tags are exact only for nearest
                    assert torch.equal(~mask_from_own, from_partner(res.images, x, perm)[i])
            if k == Kind.RESIZE and int(params.boxes[i, 2] - params.boxes[i, 0]) > 0:
                x1, y1, x2, y2 = params.boxes[i].tolist()
                j = int(perm[i])
                ref = F.interpolate(maps[j : j + 1, None].float(), size=(y2 - y1, x2 - x1))
                assert torch.equal(out_m[i, y1:y2, x1:x2], ref[0, 0].long())

    def test_ignore_index_is_preserved(self):
        t = self.make(num_classes=K, generator=2, ignore_index=255)
        maps = seg_maps(7)
        maps[:, 0, :] = 255  # first row ignored everywhere
        if not self.int_masks:
            return
        params = self.draw(t, 7, 8)
        out = t.apply(params, tagged_images(7), masks=maps).masks
        assert set(out.unique().tolist()) <= set(maps.unique().tolist()) | {255}
        assert bool((out[:, 0, :] == 255).all())

    def test_probability_maps_mix_like_images(self):
        t = self.make(num_classes=K, generator=3)
        x = tagged_images(7)
        probs = torch.softmax(torch.randn(7, 4, *HW, generator=torch.Generator()), 1)
        params = self.draw(t, 7, 9)
        res = t.apply(params, x, masks=probs)
        torch.testing.assert_close(res.masks.sum(1), torch.ones(7, *HW))
        fill_free = params.replace(
            kind=torch.where(params.kind == Kind.FILL, Kind.NONE, params.kind)
        )
        torch.testing.assert_close(
            res.masks.double(), _naive_apply(fill_free, probs), rtol=1e-5, atol=1e-6
        )

    def test_non_integer_masks_rejected(self):
        t = self.make(num_classes=K)
        x = tagged_images(7)
        params = self.draw(t, 7, 0)
        with pytest.raises(ValueError, match="masks must be an integer tensor"):
            t.apply(params, x, masks=torch.zeros(7, *HW))
        with pytest.raises(ValueError, match="masks must be an integer tensor"):
            t.apply(params, x, masks=torch.zeros(7, *HW, dtype=torch.bool))

    # ------------------------------------------------------------------ errors
    def test_invalid_arguments(self):
        with pytest.raises(ValueError, match="p must be a probability"):
            self.make(p=1.5)
        with pytest.raises(ValueError, match="p must be a probability"):
            self.make(p=-0.1)
        with pytest.raises(ValueError, match="mode must be one of"):
            self.make(mode="pair")
        with pytest.raises(ValueError, match="label_smoothing must be in"):
            self.make(label_smoothing=1.0)
        with pytest.raises(ValueError, match="label_smoothing must be in"):
            self.make(label_smoothing="0.1")
        with pytest.raises(ValueError, match="min_visibility must be in"):
            self.make(min_visibility=float("nan"))
        with pytest.raises(ValueError, match="ignore_index must be an int"):
            self.make(ignore_index="255")
        with pytest.raises(ValueError, match="pairing must be one of"):
            self.make(pairing="zip")
        with pytest.raises(ValueError, match="min_visibility must be in"):
            self.make(min_visibility=2.0)
        with pytest.raises(ValueError, match="generator must be"):
            self.make(generator="seed")
        with pytest.raises(ValueError, match="num_classes must be an int"):
            self.make(num_classes=0)

    def test_invalid_inputs(self):
        t = self.make(num_classes=K, generator=0)
        x = tagged_images(7)
        kw = self.forward_kw(7)
        with pytest.raises(ValueError, match=r"images must be a tensor of shape \(B, C, H, W\)"):
            t(x[0], _labels(7), **kw)
        with pytest.raises(ValueError, match="labels must have batch size 7"):
            t(x, _labels(6), **kw)
        with pytest.raises(ValueError, match="num_classes too small"):
            self.make(num_classes=3, generator=0)(x, torch.arange(7), **kw)
        if type(self).__name__ != "TestClassMix":
            with pytest.raises(ValueError, match="num_classes is required"):
                self.make(generator=0)(x, _labels(7))
        params = self.draw(t, 7, 0)
        with pytest.raises(ValueError, match="params were drawn for"):
            t.apply(params, tagged_images(7, w=HW[1] + 1))
        with pytest.raises(ValueError, match="images must have batch size 7"):
            t.apply(params, tagged_images(5))
        with pytest.raises(ValueError, match=r"batch_shape must be \(B, C, H, W\)"):
            t.draw((7, 3, 4))


# ====================================================================== transforms


class TestMixUp(_Contract):
    exact_pixels = False
    int_masks = False

    def make(self, **kw):
        return MixUp(alpha=kw.pop("alpha", 1.0), **kw)

    def test_per_sample_lambda_convex_combination_float64(self):
        t = self.make(num_classes=K, generator=0)
        x = tagged_images(7, dtype=torch.float64)
        out, y = t(x, _labels(7))
        p = t.last_params
        lam = p.lam.double().view(-1, 1, 1, 1)
        # λ is stored as float32 (MixParams); the combination is exact up to float32 rounding
        # of the weight 1 - λ (relative error <= 2**-24 of |x - x[perm]|).
        ref = lam * x + (1 - lam) * x[p.perm]
        assert bool(((out - ref).abs() <= 1e-7 * (x - x[p.perm]).abs() + 1e-12).all())
        assert bool((p.kind == Kind.BLEND).all())

    def test_lambda_distribution(self):
        """λ ~ Beta(alpha, alpha): mean 1/2, variance 1/(4(2a+1))."""
        p = self.make(alpha=0.4, generator=0).draw((4000, 1, 2, 2))
        assert abs(float(p.lam.mean()) - 0.5) < 0.02
        assert abs(float(p.lam.var()) - 1 / (4 * 1.8)) < 0.01

    def test_alpha_must_be_positive(self):
        for bad in (0, -1.0, float("nan"), float("inf"), "1", True):
            with pytest.raises(ValueError, match="alpha must be a number > 0"):
                MixUp(alpha=bad)


class TestCutMix(_Contract):
    correct_lam = True

    def make(self, **kw):
        return CutMix(alpha=kw.pop("alpha", 1.0), correct_lam=self.correct_lam, **kw)

    def test_alpha_must_be_positive(self):
        for bad in (0, -0.5):
            with pytest.raises(ValueError, match="alpha must be a number > 0"):
                CutMix(alpha=bad)

    def test_box_aspect(self):
        """correct_lam=False boxes are never clipped: side ratios equal up to rounding."""
        h, w = HW
        p = self.make(generator=0).draw((2000, 1, h, w))
        bh = (p.boxes[:, 3] - p.boxes[:, 1]).double() / h
        bw = (p.boxes[:, 2] - p.boxes[:, 0]).double() / w
        unclipped = (bh - bw).abs() <= 0.5 / h + 0.5 / w + 1e-9
        if self.correct_lam:
            assert float(unclipped.double().mean()) < 0.9  # border clipping happens
        else:
            assert bool(unclipped.all())
            assert bool((p.boxes[:, 2] <= w).all() and (p.boxes[:, 3] <= h).all())

    def test_mean_area_follows_beta(self):
        """E[1-λ] = 1/2 for Beta(1,1) before clipping; clipping lowers it (correct_lam)."""
        p = self.make(generator=1).draw((4000, 1, 32, 32))
        mean_cut = float(1 - p.lam.mean())
        if self.correct_lam:
            assert 0.25 < mean_cut < 0.45
        else:
            assert abs(mean_cut - 0.5) < 0.03


class TestCutMixNoCorrection(TestCutMix):
    correct_lam = False


class TestMultiBoxCutMix(_Contract):
    def make(self, **kw):
        return MultiBoxCutMix(alpha=kw.pop("alpha", 1.0), num_boxes=3, **kw)

    def test_region_is_the_union_of_the_boxes(self):
        """The pasted region is a union of 3 axis-aligned boxes whose areas sum to about
        1 - λ_drawn: at most 3 boxes' worth of pixels, and at least one box's worth."""
        t = self.make(generator=0, correct_lam=False)
        p = t.draw((400, 1, 32, 32))
        pasted = 1 - p.lam.double()
        assert bool((p.kind == Kind.MASK).all()) and p.mask is not None
        assert torch.allclose(pasted, p.mask.flatten(1).double().mean(1))
        # unclipped boxes of area (1 - λ)/3 each: the union's mean is below Beta(1,1)'s 1/2
        assert 0.3 < float(pasted.mean()) < 0.5
        one = MultiBoxCutMix(num_boxes=1, generator=0, correct_lam=False).draw((400, 1, 32, 32))
        ref = CutMix(generator=0, correct_lam=False).draw((400, 1, 32, 32))
        assert torch.equal(one.mask, ops.box_mask(ref.boxes, 32, 32)[:, 0])

    def test_bad_num_boxes(self):
        for bad in (0, 1.5, True):
            with pytest.raises(ValueError, match="num_boxes must be an int >= 1"):
                MultiBoxCutMix(num_boxes=bad)


class TestResizeMix(_Contract):
    interpolation = "nearest"

    def make(self, **kw):
        return ResizeMix(interpolation=self.interpolation, **kw)

    def test_box_inside_and_scope(self):
        h, w = 20, 30
        p = self.make(scope=(0.2, 0.5), generator=0).draw((2000, 1, h, w))
        bh = p.boxes[:, 3] - p.boxes[:, 1]
        bw = p.boxes[:, 2] - p.boxes[:, 0]
        assert int(bh.min()) >= 4 and int(bh.max()) <= 10
        assert int(bw.min()) >= 6 and int(bw.max()) <= 15
        assert bool((p.boxes[:, 2] <= w).all() and (p.boxes[:, 3] <= h).all())

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="scope must satisfy"):
            ResizeMix(scope=(0.0, 0.5))
        with pytest.raises(ValueError, match="scope must satisfy"):
            ResizeMix(scope=(0.6, 0.5))
        with pytest.raises(ValueError, match="scope must be two numbers"):
            ResizeMix(scope=0.5)
        with pytest.raises(ValueError, match="interpolation must be"):
            ResizeMix(interpolation="cubic")


class TestResizeMixBilinear(TestResizeMix):
    interpolation = "bilinear"
    exact_pixels = False


class TestCutout(_Contract):
    label_mixing = False

    def make(self, **kw):
        return Cutout(length=kw.pop("length", 5), **kw)

    def test_centre_uniform_including_last_row_and_column(self):
        """length=1 boxes are their centre pixel: chi-square over all 4x6 positions."""
        h, w = 4, 6
        p = Cutout(length=1, generator=0).draw((9600, 1, h, w))
        counts = torch.bincount(p.boxes[:, 1] * w + p.boxes[:, 0], minlength=h * w)
        assert counts.numel() == h * w and int(counts.min()) > 0
        assert int(counts.view(h, w)[-1].sum()) > 0 and int(counts.view(h, w)[:, -1].sum()) > 0
        ok, stat = chi2_uniform_ok(counts)
        assert ok, stat

    def test_fill_value_and_labels_unchanged(self):
        t = Cutout(length=4, value=-3.0, num_classes=K, generator=0)
        x = tagged_images(7)
        ids = _labels(7)
        out, y = t(x, ids)
        p = t.last_params
        for i in range(7):
            r = _region_of(p, i)
            assert bool((out[i][:, r] == -3.0).all())
            assert torch.equal(out[i][:, ~r], x[i][:, ~r])
        torch.testing.assert_close(y, _one_hot(ids))

    def test_length_larger_than_image_is_clipped(self):
        p = Cutout(length=50, generator=0).draw((3, 1, 5, 7))
        assert torch.equal(p.lam, torch.zeros(3))  # every box covers the whole image

    def test_bad_length(self):
        for bad in (0, 2.5, True):
            with pytest.raises(ValueError, match="length must be an int >= 1"):
                Cutout(length=bad)
        with pytest.raises(ValueError, match="value must be a number"):
            Cutout(value="0")


class TestFMix(_Contract):
    def make(self, **kw):
        return FMix(alpha=kw.pop("alpha", 1.0), **kw)

    def test_batch_mode_one_mask(self):
        p = self.make(mode="batch", generator=0).draw((5, 1, *HW))
        assert bool((p.mask == p.mask[0]).all()) and bool((p.lam == p.lam[0]).all())

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="alpha must be a number > 0"):
            FMix(alpha=0)
        with pytest.raises(ValueError, match="decay_power must be a number > 0"):
            FMix(decay_power=-1)


class TestClassMix(_Contract):
    batch_shares_region = False  # the class masks are per sample in both modes

    def make(self, **kw):
        kw.setdefault("num_classes", K)
        if kw["num_classes"] is None:
            kw.pop("num_classes")
            return ClassMix(None, **kw)
        return ClassMix(**kw)

    def draw(self, t, b: int, seed, h: int = HW[0], w: int = HW[1], c: int = 3):
        maps = seg_maps(b, h, w) % K
        return t.draw((b, c, h, w), seed, label_maps=maps)

    def forward_kw(self, b: int) -> dict:
        return {"masks": seg_maps(b)}

    def draw_kw(self, b: int) -> dict:
        return {"label_maps": seg_maps(b)}

    def test_same_seed_same_bytes_different_seed_differs(self):
        x = tagged_images(7)
        maps = seg_maps(7)
        a, b = ClassMix(K, generator=11), ClassMix(K, generator=11)
        ra, rb = a(x, masks=maps), b(x, masks=maps)
        assert torch.equal(ra[0], rb[0]) and torch.equal(ra[1], rb[1])
        assert not torch.equal(ra[0], ClassMix(K, generator=12)(x, masks=maps)[0])

    def test_pastes_half_of_the_partner_classes(self):
        t = ClassMix(K, generator=0)
        maps = seg_maps(7)
        x = tagged_images(7)
        out, out_m = t(x, masks=maps)
        p = t.last_params
        for i in range(7):
            j = int(p.perm[i])
            pasted = set(out_m[i][from_partner(out, x, p.perm)[i]].unique().tolist())
            assert pasted <= set(maps[j].unique().tolist())
            assert len(pasted) == 2  # ceil(4 / 2) of the partner's 4 classes
            assert torch.equal(p.mask[i], torch.isin(maps[j], torch.tensor(sorted(pasted))))

    def test_needs_label_maps_and_num_classes(self):
        with pytest.raises(ValueError, match="num_classes is required"):
            ClassMix(None)
        with pytest.raises(ValueError, match="label_maps .* are required"):
            ClassMix(K).draw((2, 3, 4, 4))
        with pytest.raises(ValueError, match="label_maps must have shape"):
            ClassMix(K).draw((2, 3, 4, 4), label_maps=torch.zeros(2, 4, 5, dtype=torch.long))
        with pytest.raises(ValueError, match="label_maps must be an integer tensor"):
            ClassMix(K).draw((2, 3, 4, 4), label_maps=torch.zeros(2, 4, 4))


class TestRandomChoice(_Contract):
    def make(self, **kw):
        return RandomChoice(
            [CutMix(), ResizeMix(), FMix(), Cutout(length=4)], probs=[1, 1, 1, 1], **kw
        )

    def test_all_kinds_drawn_with_their_probabilities(self):
        t = RandomChoice([CutMix(), Cutout(length=4)], probs=[3, 1], generator=0)
        p = t.draw((4000, 1, *HW))
        frac_crop = float((p.kind == Kind.CROP).double().mean())
        assert abs(frac_crop - 0.75) < 0.03
        assert int((p.kind == Kind.FILL).sum()) + int((p.kind == Kind.CROP).sum()) == 4000

    @pytest.mark.parametrize("mode", ["elem", "batch"])
    def test_with_classmix_forward_uses_the_masks(self, mode):
        """RandomChoice passes the label maps on to a ClassMix sub-transform (its draw
        needs them); masks and images stay consistent."""
        t = RandomChoice([CutMix(), ClassMix(K)], mode=mode, num_classes=K, generator=0)
        x, maps = tagged_images(7), seg_maps(7)
        kinds = set()
        for _ in range(8):
            out, out_m = t(x, masks=maps)
            p = t.last_params
            kinds |= set(p.kind.tolist())
            for i in range(7):
                own = torch.isin(out_m[i], maps[i].unique())
                assert torch.equal(own, from_original(out, x)[i])
        assert kinds == {int(Kind.CROP), int(Kind.MASK)}

    def test_sub_transform_p_gates(self):
        t = RandomChoice([CutMix(p=0.0)], generator=0)
        assert not bool(t.draw((50, 1, *HW)).applied.any())

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="transforms must be a non-empty sequence"):
            RandomChoice([])
        with pytest.raises(ValueError, match="transforms must be a non-empty sequence"):
            RandomChoice([torch.nn.Identity()])
        with pytest.raises(ValueError, match="probs must be 2 non-negative weights"):
            RandomChoice([CutMix(), MixUp()], probs=[1.0])
        with pytest.raises(ValueError, match="probs must be 2 non-negative weights"):
            RandomChoice([CutMix(), MixUp()], probs=[1.0, -1.0])
        with pytest.raises(ValueError, match="probs must be 2 non-negative weights"):
            RandomChoice([CutMix(), MixUp()], probs=[float("nan"), 1.0])
        with pytest.raises(ValueError, match="probs must be 1 non-negative weights"):
            RandomChoice([CutMix()], probs=["1"])


class TestMixUpCutMix(_Contract):
    exact_pixels = False
    int_masks = False

    def make(self, **kw):
        return MixUpCutMix(**kw)

    def test_segmentation_masks_follow_the_image(self, batch):
        """BLEND samples refuse class-id masks; with only CutMix (mixup_alpha=0) they work."""
        t = MixUpCutMix(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=K, generator=0)
        x = tagged_images(batch)
        out, out_m = t(x, masks=seg_maps(batch))
        p = t.last_params
        for i in range(batch):
            if int(p.perm[i]) != i:
                own = torch.isin(out_m[i], seg_maps(batch)[i].unique())
                assert torch.equal(own, from_original(out, x)[i])
        with pytest.raises(ValueError, match="masks: MixUp"):
            MixUpCutMix(num_classes=K, switch_prob=0.0, generator=0)(x, masks=seg_maps(batch))

    @pytest.mark.parametrize("switch_prob", [0.0, 0.3, 1.0])
    def test_switch_prob(self, switch_prob):
        p = MixUpCutMix(switch_prob=switch_prob, generator=0).draw((4000, 1, 4, 4))
        frac = float((p.kind == Kind.CROP).double().mean())
        assert abs(frac - switch_prob) < 0.03
        assert int((p.kind == Kind.BLEND).sum()) + int((p.kind == Kind.CROP).sum()) == 4000

    def test_batch_mode_one_kind(self):
        t = MixUpCutMix(mode="batch", generator=0)
        kinds = set()
        for _ in range(40):
            p = t.draw((5, 1, 4, 4))
            assert bool((p.kind == p.kind[0]).all())
            kinds.add(int(p.kind[0]))
        assert kinds == {int(Kind.BLEND), int(Kind.CROP)}

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="switch_prob must be in"):
            MixUpCutMix(switch_prob=1.5)
        with pytest.raises(ValueError, match="mixup_alpha and cutmix_alpha"):
            MixUpCutMix(mixup_alpha=0, cutmix_alpha=0)
        with pytest.raises(ValueError, match="mixup_alpha and cutmix_alpha"):
            MixUpCutMix(mixup_alpha=-1)
        with pytest.raises(ValueError, match="mixup_alpha and cutmix_alpha"):
            MixUpCutMix(mixup_alpha=float("nan"))  # used to silently disable MixUp
        with pytest.raises(ValueError, match="switch_prob must be in"):
            MixUpCutMix(switch_prob="0.5")


# ====================================================================== detection boxes


def _bb(boxes, labels=None, valid=None) -> BoxBatch:
    boxes = torch.tensor(boxes, dtype=torch.float32)
    if labels is None:
        labels = torch.arange(boxes.shape[0] * boxes.shape[1]).view(boxes.shape[:2])
    if valid is None:
        valid = torch.ones(boxes.shape[:2], dtype=torch.bool)
    return BoxBatch(boxes, labels, valid)


class TestDetectionBoxes:
    def _params(self, kind, boxes, size=(10, 10), mask=None):
        return MixParams(
            kind=torch.tensor(kind),
            lam=torch.ones(len(kind)),
            perm=torch.tensor([1, 0]),
            boxes=torch.tensor(boxes),
            size=size,
            mask=mask,
        )

    def test_crop_keeps_clips_and_drops_hand_computed(self):
        params = self._params([Kind.CROP, Kind.NONE], [[0, 0, 5, 10], [0, 0, 0, 0]])
        boxes = _bb(
            [
                [[0, 0, 4, 4], [3, 0, 7, 2], [6, 6, 9, 9]],  # own boxes of sample 0
                [[2, 2, 8, 4], [6, 0, 9, 3], [0, 0, 1, 1]],  # sample 1 = partner of 0
            ],
            valid=torch.tensor([[True, True, True], [True, True, False]]),
        )
        out = CutMix(min_visibility=0.25).apply(params, boxes=boxes).boxes
        assert out.boxes.shape == (2, 6, 4)
        # sample 0: own A fully covered (drop), B half visible (keep), C untouched (keep);
        # partner D clipped to [2,2,5,4] (half inside, keep), E outside (drop), F invalid.
        assert out.valid[0].tolist() == [False, True, True, True, False, False]
        assert out.boxes[0, 1].tolist() == [3, 0, 7, 2]
        assert out.boxes[0, 3].tolist() == [2, 2, 5, 4]
        assert out.labels[0].tolist() == [0, 1, 2, 3, 4, 5]
        # sample 1 (not mixed): its valid boxes stay, no partner boxes
        assert out.valid[1].tolist() == [True, True, False, False, False, False]
        assert out.boxes[1, :2].tolist() == [[2, 2, 8, 4], [6, 0, 9, 3]]
        # a stricter threshold drops the half-visible ones
        strict = CutMix(min_visibility=0.6).apply(params, boxes=boxes).boxes
        assert strict.valid[0].tolist() == [False, False, True, False, False, False]

    def test_resize_scales_partner_boxes_into_the_region(self):
        params = self._params([Kind.RESIZE, Kind.NONE], [[2, 2, 7, 7], [0, 0, 0, 0]])
        boxes = _bb([[[0, 0, 10, 10], [8, 8, 10, 10]], [[0, 0, 10, 10], [0, 0, 5, 5]]])
        out = ResizeMix().apply(params, boxes=boxes).boxes
        assert out.valid[0].tolist() == [True, True, True, True]
        assert out.boxes[0, 2].tolist() == [2, 2, 7, 7]
        assert out.boxes[0, 3].tolist() == [2, 2, 4.5, 4.5]

    def test_fill_drops_covered_and_adds_nothing(self):
        params = self._params([Kind.FILL, Kind.FILL], [[0, 0, 5, 5], [5, 5, 10, 10]])
        boxes = _bb([[[0, 0, 4, 4], [0, 0, 10, 10]], [[0, 0, 4, 4], [6, 6, 8, 8]]])
        out = Cutout().apply(params, boxes=boxes).boxes
        assert out.valid.tolist() == [[False, True, False, False], [True, False, False, False]]

    def test_blend_keeps_both_sets(self):
        params = self._params([Kind.BLEND, Kind.BLEND], [[0, 0, 0, 0]] * 2)
        boxes = _bb([[[0, 0, 4, 4]], [[1, 1, 2, 2]]])
        out = MixUp().apply(params, boxes=boxes).boxes
        assert out.valid.all()
        assert out.boxes[0, 1].tolist() == [1, 1, 2, 2] and out.labels[0].tolist() == [0, 1]

    def test_mask_visibility_counts_pixels(self):
        mask = torch.zeros(2, 10, 10, dtype=torch.bool)
        mask[0, :, :3] = True
        params = self._params([Kind.MASK, Kind.NONE], [[0, 0, 0, 0]] * 2, mask=mask)
        boxes = _bb([[[0, 0, 4, 4], [0, 0, 2, 2]], [[0, 0, 4, 1], [5, 5, 9, 9]]])
        out = FMix(min_visibility=0.5).apply(params, boxes=boxes).boxes
        # own: [0,0,4,4] 1/4 visible (drop); [0,0,2,2] covered (drop)
        # partner: [0,0,4,1] 3/4 under the mask (keep, unclipped); [5,5,9,9] outside (drop)
        assert out.valid[0].tolist() == [False, False, True, False]
        assert out.boxes[0, 2].tolist() == [0, 0, 4, 1]

    def test_random_cutmix_consistent_with_the_image_region(self):
        """Keep decisions recomputed from the pixels the image actually took from the partner."""
        h, w, b, n = 16, 20, 7, 6
        g = torch.Generator().manual_seed(0)
        x1 = torch.randint(0, w - 2, (b, n), generator=g)
        y1 = torch.randint(0, h - 2, (b, n), generator=g)
        x2 = (x1 + torch.randint(1, 10, (b, n), generator=g)).clamp(max=w)
        y2 = (y1 + torch.randint(1, 10, (b, n), generator=g)).clamp(max=h)
        xyxy = torch.stack([x1, y1, x2, y2], -1).float()
        bb = BoxBatch(xyxy, torch.zeros(b, n, dtype=torch.long), torch.ones(b, n, dtype=torch.bool))
        t = CutMix(min_visibility=0.4, generator=3)
        x = tagged_images(b, h=h, w=w)
        out, boxes = t(x, boxes=bb)
        p = t.last_params
        taken = ~from_original(out, x)
        for i in range(b):
            j = int(p.perm[i])
            for m in range(n):
                a, c, d, e = (int(v) for v in xyxy[i, m])
                vis = float((~taken[i, c:e, a:d]).double().mean())
                assert bool(boxes.valid[i, m]) == (vis >= 0.4), (i, m, vis)
                a, c, d, e = (int(v) for v in xyxy[j, m])
                inside = float(taken[i, c:e, a:d].double().mean())
                assert bool(boxes.valid[i, n + m]) == (inside >= 0.4 and inside > 0), (i, m)
                if bool(boxes.valid[i, n + m]):
                    cx1, cy1, cx2, cy2 = (int(v) for v in boxes.boxes[i, n + m])
                    assert bool(taken[i, cy1:cy2, cx1:cx2].all())
                    assert (cx2 - cx1) * (cy2 - cy1) == int(taken[i, c:e, a:d].sum())

    def test_bad_boxes(self):
        params = self._params([Kind.CROP, Kind.NONE], [[0, 0, 5, 10], [0, 0, 0, 0]])
        with pytest.raises(ValueError, match=r"boxes.boxes must have shape \(2, N, 4\)"):
            CutMix().apply(params, boxes=_bb([[[0, 0, 1, 1]]]))
        with pytest.raises(ValueError, match="boxes.boxes must be xyxy pixels"):
            CutMix().apply(params, boxes=_bb([[[0, 0, 11, 1]], [[0, 0, 1, 1]]]))
        with pytest.raises(ValueError, match="boxes.labels and boxes.valid"):
            CutMix().apply(
                params,
                boxes=BoxBatch(torch.zeros(2, 1, 4), torch.zeros(2, 1), torch.zeros(2, 1)),
            )


# ====================================================================== misc module API


class TestModuleAPI:
    def test_forward_return_structure_and_replay(self):
        t = CutMix(num_classes=K, generator=0)
        x = tagged_images(7)
        assert isinstance(t(x), torch.Tensor)
        out, y = t(x, _labels(7))
        p = t.last_params
        out2, y2 = t(x, _labels(7), params=p)  # replay the same draw
        assert torch.equal(out, out2) and torch.equal(y, y2)
        out3, y3, m3 = t(x, _labels(7), seg_maps(7))
        assert m3.shape == (7, *HW)

    def test_out_argument(self):
        t = MixUp(num_classes=K, generator=0)
        x = tagged_images(7)
        p = t.draw(x.shape)
        buf = torch.empty_like(x)
        res = t.apply(p, x, out=buf)
        assert res.images is buf and torch.equal(buf, t.apply(p, x).images)

    def test_params_identity_and_label_lam(self):
        p = MixParams.identity(3, (4, 5))
        assert not bool(p.applied.any()) and p.kinds() == {Kind.NONE}
        x = tagged_images(3, h=4, w=5)
        assert torch.equal(CutMix().apply(p, x).images, x)
        q = p.replace(
            kind=torch.tensor([Kind.FILL, Kind.CROP, Kind.NONE]), lam=torch.tensor([0.2, 0.3, 1])
        )
        assert q.label_lam.tolist() == pytest.approx([1.0, 0.3, 1.0])

    def test_empty_batch_rejected(self):
        with pytest.raises(ValueError, match="images must hold at least one sample"):
            CutMix()(torch.zeros(0, 3, 4, 4))

    def test_registry(self):
        assert set(AUGMENTS) >= {"none", "mixup", "cutmix", "resizemix", "cutout", "fmix"}
        assert build_augment("none") is None
        assert isinstance(build_augment("cutmix", alpha=0.5), CutMix)
        with pytest.raises(ValueError, match="aug must be one of"):
            build_augment("mosaic")
        with pytest.raises(ValueError, match="does not accept"):
            build_augment("mixup", length=3)

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    def test_cuda_matches_cpu(self):
        x = tagged_images(7)
        for t in (MixUp(generator=0), CutMix(generator=0), ResizeMix(generator=0)):
            p = t.draw(x.shape)
            cpu = t.apply(p, x).images
            gpu = t.apply(p, x.cuda()).images
            torch.testing.assert_close(gpu.cpu(), cpu)
