"""Tests of the pure batched ops in ``mixkit.ops`` (sampling, pixels, labels, masks, boxes).

Numeric expectations come from naive per-sample reference loops written here.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import DTYPES, HW, chi2_uniform_ok, from_original, tagged_images

from mixkit import ops

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _boxes(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    area = ops.sample_uniform(0.1, 0.9, b, _gen(seed))
    return ops.sample_boxes(area, h, w, _gen(seed + 1))


def _kept_count(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixels outside each (B, 4) box, as int64."""
    return h * w - (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _naive_paste(x: torch.Tensor, src: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        out[i, :, y1:y2, x1:x2] = src[i, :, y1:y2, x1:x2]
    return out


# ============================================================== sampling


class TestSampleBeta:
    def test_range_mean_and_determinism(self):
        a = ops.sample_beta(0.5, 4000, _gen(1))
        assert a.dtype == torch.float64 and a.shape == (4000,)
        assert bool(((a >= 0) & (a <= 1)).all())
        assert abs(float(a.mean()) - 0.5) < 0.03  # Beta(a, a) has mean 1/2
        # Var Beta(a,a) = 1 / (4 (2a + 1)) = 1/8 for a = 0.5
        assert abs(float(a.var()) - 0.125) < 0.01
        assert torch.equal(a, ops.sample_beta(0.5, 4000, _gen(1)))
        assert not torch.equal(a, ops.sample_beta(0.5, 4000, _gen(2)))

    def test_asymmetric_mean(self):
        a = ops.sample_beta(2.0, 4000, _gen(0), beta=6.0)
        assert abs(float(a.mean()) - 0.25) < 0.02  # a / (a + b)

    def test_tiny_alpha_is_a_fair_coin(self):
        a = ops.sample_beta(1e-6, 2000, _gen(0))
        assert bool(((a < 1e-3) | (a > 1 - 1e-3)).all())
        assert 0.4 < float((a > 0.5).double().mean()) < 0.6

    @pytest.mark.parametrize("alpha, beta", [(1.0, None), (0.2, None), (1e-6, None), (2.0, 0.5)])
    def test_bytes_and_stream_match_the_torch_formula(self, alpha, beta):
        """The draw is Ga / (Ga + Gb) (a coin where both gammas sit at the float64 floor),
        written here with torch ops: the same bytes, and the generator left at the same
        position (the arithmetic runs in numpy, the draws do not change)."""
        b = alpha if beta is None else beta
        g = _gen(5)
        ga = torch._standard_gamma(torch.full((300,), alpha, dtype=torch.float64), generator=g)
        gb = torch._standard_gamma(torch.full((300,), b, dtype=torch.float64), generator=g)
        coin = (torch.rand(300, dtype=torch.float64, generator=g) < 0.5).double()
        floor = torch.finfo(torch.float64).tiny
        both = (ga <= floor) & (gb <= floor)
        ref = torch.where(both, coin, ga / (ga + gb).clamp_min(floor))
        g2 = _gen(5)
        got = ops.sample_beta(alpha, 300, g2, beta)
        assert got.dtype == torch.float64 and got.numpy().tobytes() == ref.numpy().tobytes()
        assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=g2))
        if alpha == 1e-6:
            assert bool(both.any())  # the coin branch is exercised


class TestSamplePairing:
    @pytest.mark.parametrize("n", [1, 2, 7, 8])
    @pytest.mark.parametrize("kind", ops.PAIRINGS)
    def test_is_a_permutation(self, kind, n):
        p = ops.sample_pairing(n, kind, _gen(0))
        assert p.dtype == torch.int64 and sorted(p.tolist()) == list(range(n))

    @pytest.mark.parametrize("n", [2, 3, 7])
    def test_cycle_has_no_fixed_point_and_is_one_cycle(self, n):
        for seed in range(20):
            p = ops.sample_pairing(n, "cycle", _gen(seed))
            assert not bool((p == torch.arange(n)).any())
            seen, i = set(), 0
            while i not in seen:
                seen.add(i)
                i = int(p[i])
            assert len(seen) == n

    def test_roll_matches_torch_roll_and_flip(self):
        x = torch.arange(7) * 10
        assert torch.equal(x[ops.sample_pairing(7, "roll", None)], x.roll(1, 0))
        assert torch.equal(x[ops.sample_pairing(7, "flip", None)], x.flip(0))

    def test_cycle_is_seeded(self):
        assert torch.equal(
            ops.sample_pairing(9, "cycle", _gen(3)), ops.sample_pairing(9, "cycle", _gen(3))
        )
        assert any(
            not torch.equal(
                ops.sample_pairing(9, "cycle", _gen(3)), ops.sample_pairing(9, "cycle", _gen(s))
            )
            for s in range(4, 8)
        )

    def test_bad_kind(self):
        with pytest.raises(ValueError, match="pairing must be one of"):
            ops.sample_pairing(4, "zip", None)

    @pytest.mark.parametrize("kind", ops.PAIRINGS)
    def test_empty_batch(self, kind):
        p = ops.sample_pairing(0, kind, _gen(0))
        assert p.dtype == torch.int64 and p.shape == (0,)


# The torch formulas the numpy draws replaced (the generator calls are the same; only the
# arithmetic on their results moved to numpy): the reference for bytes and stream position.
def _ref_cycle(n, g):
    order = torch.randperm(n, generator=g)
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-1)
    return perm


def _ref_cut_size(area, height, width):
    ratio = area.double().clamp(0, 1).sqrt()
    return (
        torch.round(ratio * height).long().clamp(0, height),
        torch.round(ratio * width).long().clamp(0, width),
    )


def _ref_centred(box_h, box_w, height, width, g):
    n = box_h.shape[0]
    cy = torch.randint(0, height, (n,), generator=g)
    cx = torch.randint(0, width, (n,), generator=g)
    y1, x1 = cy - box_h // 2, cx - box_w // 2
    boxes = torch.stack([x1, y1, x1 + box_w, y1 + box_h], dim=1)
    upper = torch.tensor([width, height, width, height])
    return torch.minimum(boxes.clamp_(min=0), upper)


def _ref_inside(box_h, box_w, height, width, g):
    u = torch.rand(box_h.shape[0], 2, dtype=torch.float64, generator=g)
    y1 = torch.floor(u[:, 0] * (height - box_h + 1).double()).long()
    x1 = torch.floor(u[:, 1] * (width - box_w + 1).double()).long()
    y1, x1 = torch.minimum(y1, height - box_h), torch.minimum(x1, width - box_w)
    return torch.stack([x1, y1, x1 + box_w, y1 + box_h], dim=1)


def _ref_area(boxes, height, width):
    area = (boxes[:, 2] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 1]).clamp_min(0)
    return area.double() / float(height * width)


def _same(got: torch.Tensor, ref: torch.Tensor) -> bool:
    return got.dtype == ref.dtype and got.numpy().tobytes() == ref.numpy().tobytes()


class TestDrawsMatchTheTorchFormulas:
    """The draws take their random numbers from torch and do the arithmetic in numpy: the
    bytes and the generator's position equal those of the torch formulas above."""

    @pytest.mark.parametrize("n", [1, 2, 9, 128])
    @pytest.mark.parametrize("hw", [(1, 1), (13, 7), (32, 32)])
    def test_pairing_boxes_and_area(self, n, hw):
        h, w = hw
        for seed in range(4):
            g, r = _gen(seed), _gen(seed)
            assert _same(ops.sample_pairing(n, "cycle", g), _ref_cycle(n, r))
            area = torch.cat([torch.tensor([0.0, 1.0, 0.5]), torch.rand(n, generator=_gen(9))])
            area = area[:n].double()
            got_h, got_w = ops.cut_size(area, h, w)
            ref_h, ref_w = _ref_cut_size(area, h, w)
            assert _same(got_h, ref_h) and _same(got_w, ref_w)
            centred = ops.sample_boxes_centred(ref_h, ref_w, h, w, g)
            assert _same(centred, _ref_centred(ref_h, ref_w, h, w, r))
            inside = ops.sample_boxes_inside(ref_h, ref_w, h, w, g)
            assert _same(inside, _ref_inside(ref_h, ref_w, h, w, r))
            assert _same(ops.box_area_fraction(centred, h, w), _ref_area(centred, h, w))
            u = ops.sample_uniform(0.1, 0.8, n, g)
            assert _same(u, 0.1 + (0.8 - 0.1) * torch.rand(n, dtype=torch.float64, generator=r))
            coin = ops.sample_bernoulli(0.3, n, g)
            assert _same(coin, torch.rand(n, dtype=torch.float64, generator=r) < 0.3)
            assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=r))

    @pytest.mark.parametrize("mode", ["elem", "batch"])
    @pytest.mark.parametrize("p", [1.0, 0.5])
    def test_mixer_draws(self, mode, p):
        """CutMix / ResizeMix / Cutout params from the module equal the torch formulas."""
        from mixkit.augment import CutMix, Cutout, ResizeMix

        b, h, w = 9, 13, 7
        n = b if mode == "elem" else 1
        for seed in range(5):
            for name in ("cutmix", "cutmix_inside", "resizemix", "cutout"):
                g = _gen(seed)
                perm = _ref_cycle(b, g)
                applied = torch.rand(n, dtype=torch.float64, generator=g) < p
                if name.startswith("cutmix"):
                    m = CutMix(2.0, correct_lam=name == "cutmix", mode=mode, p=p)
                    area = 1 - ops.sample_beta(2.0, n, g)
                    sides = _ref_cut_size(area, h, w)
                    place = _ref_centred if name == "cutmix" else _ref_inside
                    boxes = place(*sides, h, w, g)
                elif name == "resizemix":
                    m = ResizeMix(mode=mode, p=p)
                    tau = 0.1 + (0.8 - 0.1) * torch.rand(n, dtype=torch.float64, generator=g)
                    bh = torch.round(tau * h).long().clamp(1, h)
                    bw = torch.round(tau * w).long().clamp(1, w)
                    boxes = _ref_inside(bh, bw, h, w, g)
                else:
                    m = Cutout(length=5, mode=mode, p=p)
                    side = torch.full((n,), 5, dtype=torch.long)
                    boxes = _ref_centred(side, side, h, w, g)
                lam = torch.where(applied, 1 - _ref_area(boxes, h, w), 1.0)
                boxes = boxes * applied.view(-1, 1)
                got = m.draw((b, 3, h, w), generator=_gen(seed))
                assert _same(got.perm, perm)
                assert _same(got.boxes, boxes.expand(b, 4).contiguous())
                assert _same(got.lam, lam.expand(b).float().contiguous())


class TestSampleBoxes:
    def test_cut_size_rounds(self):
        h, w = ops.cut_size(torch.tensor([0.0, 0.25, 1.0, 0.5]), 10, 15)
        assert h.tolist() == [0, 5, 10, round(10 * math.sqrt(0.5))]
        assert w.tolist() == [0, 8, 15, round(15 * math.sqrt(0.5))]  # 7.5 -> 8 (round half even)

    @pytest.mark.parametrize("size", [1, 2])
    def test_centres_uniform_over_all_pixels_chi_square(self, size):
        """The centre of a box of side 1 is its top-left; of side 2 it is x2 - 1 (never
        clipped on that side). 5x6 image, 30 cells, 12000 draws."""
        h, w, n = 5, 6, 12000
        side = torch.full((n,), size, dtype=torch.long)
        boxes = ops.sample_boxes_centred(side, side, h, w, _gen(123))
        cx = boxes[:, 2] - (size - size // 2)
        cy = boxes[:, 3] - (size - size // 2)
        assert bool(((cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)).all())
        counts = torch.bincount(cy * w + cx, minlength=h * w)
        assert counts.numel() == h * w
        assert int(counts.view(h, w)[-1].sum()) > 0 and int(counts.view(h, w)[:, -1].sum()) > 0
        assert int(counts.min()) > 0
        ok, stat = chi2_uniform_ok(counts)
        assert ok, f"chi-square {stat:.1f} over {h * w} cells"

    def test_inside_top_left_uniform_over_all_valid_positions(self):
        h, w, n = 7, 9, 12000
        bh = torch.full((n,), 3, dtype=torch.long)
        bw = torch.full((n,), 4, dtype=torch.long)
        boxes = ops.sample_boxes_inside(bh, bw, h, w, _gen(7))
        assert bool(
            (boxes[:, 2] - boxes[:, 0] == 4).all() and (boxes[:, 3] - boxes[:, 1] == 3).all()
        )
        assert int(boxes[:, 2].max()) == w and int(boxes[:, 3].max()) == h  # last position hit
        ny, nx = h - 3 + 1, w - 4 + 1
        counts = torch.bincount(boxes[:, 1] * nx + boxes[:, 0], minlength=ny * nx)
        assert counts.numel() == ny * nx and int(counts.min()) > 0
        ok, stat = chi2_uniform_ok(counts)
        assert ok, f"chi-square {stat:.1f}"

    def test_full_and_empty_inside(self):
        boxes = ops.sample_boxes_inside(torch.tensor([5, 0]), torch.tensor([8, 0]), 5, 8, _gen())
        assert boxes[0].tolist() == [0, 0, 8, 5]
        assert int(boxes[1, 2] - boxes[1, 0]) == 0

    def test_centred_boxes_clip_and_area_fraction(self):
        boxes = ops.sample_boxes(torch.full((500,), 0.5), 10, 14, _gen(2))
        assert bool((boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 14).all())
        assert bool((boxes[:, 1] >= 0).all() and (boxes[:, 3] <= 10).all())
        frac = ops.box_area_fraction(boxes, 10, 14)
        expected = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / 140.0
        assert torch.allclose(frac, expected.double())
        assert float(frac.max()) <= round(10 * 0.5**0.5) * round(14 * 0.5**0.5) / 140 + 1e-12
        assert float(frac.min()) < 0.3  # some boxes were clipped at the border

    def test_seeded(self):
        a = _boxes(50, 9, 13, seed=4)
        assert torch.equal(a, _boxes(50, 9, 13, seed=4))
        assert not torch.equal(a, _boxes(50, 9, 13, seed=5))

    def test_bernoulli_and_uniform(self):
        assert not bool(ops.sample_bernoulli(0.0, 1000, _gen()).any())
        assert bool(ops.sample_bernoulli(1.0, 1000, _gen()).all())
        rate = float(ops.sample_bernoulli(0.3, 20000, _gen()).double().mean())
        assert abs(rate - 0.3) < 0.015
        u = ops.sample_uniform(0.2, 0.5, 1000, _gen())
        assert float(u.min()) >= 0.2 and float(u.max()) < 0.5


# ============================================================== pixels


class TestBoxMask:
    def test_exclusive_ends(self):
        m = ops.box_mask(torch.tensor([[1, 2, 3, 4], [0, 0, 0, 0]]), 5, 6)
        assert m.shape == (2, 1, 5, 6) and m.dtype == torch.bool
        ref = torch.zeros(5, 6, dtype=torch.bool)
        ref[2:4, 1:3] = True
        assert torch.equal(m[0, 0], ref) and not bool(m[1].any())

    def test_bad_shape(self):
        with pytest.raises(ValueError, match="boxes must have shape"):
            ops.box_mask(torch.zeros(2, 3, dtype=torch.long), 4, 4)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("b", [1, 7])
@pytest.mark.parametrize("channels_last", [False, True])
class TestMixupOp:
    def test_convex_combination_per_sample_lambda(self, dtype, b, channels_last):
        x = tagged_images(b, dtype=dtype, channels_last=channels_last)
        lam = ops.sample_uniform(0, 1, b, _gen(1))
        perm = ops.sample_pairing(b, "cycle", _gen(2))
        before = x.clone()
        out = ops.mixup(x, lam, perm)
        assert torch.equal(x, before)  # no in-place mutation
        assert out.dtype == dtype and out.shape == x.shape
        ref = lam.view(-1, 1, 1, 1) * x.double() + (1 - lam.view(-1, 1, 1, 1)) * x[perm].double()
        if dtype == torch.uint8:
            assert float((out.double() - ref.round()).abs().max()) <= 1.0
            assert float((out.double() - ref).abs().max()) <= 0.5 + 1e-3
        else:
            tol = 1e-12 if dtype == torch.float64 else 1e-4
            torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)


class TestMixupOpErrors:
    def test_bad_lam(self):
        x = torch.rand(3, 1, 4, 5)
        with pytest.raises(ValueError, match="lam must lie in"):
            ops.mixup(x, torch.tensor([0.5, 1.5, 0.2]), torch.tensor([1, 2, 0]))
        with pytest.raises(ValueError, match="lam must lie in"):
            ops.mixup(x, torch.tensor([0.5, float("nan"), 0.2]), torch.tensor([1, 2, 0]))
        with pytest.raises(ValueError, match=r"lam must have shape \(3,\)"):
            ops.mixup(x, torch.tensor([0.5, 0.5]), torch.tensor([1, 2, 0]))

    def test_bad_perm(self):
        x = torch.rand(3, 1, 4, 5)
        with pytest.raises(ValueError, match=r"perm must have shape \(3,\)"):
            ops.mixup(x, torch.ones(3), torch.tensor([1, 0]))
        with pytest.raises(ValueError, match="perm must hold indices"):
            ops.mixup(x, torch.ones(3), torch.tensor([1, 2, 3]))

    def test_bad_images(self):
        with pytest.raises(ValueError, match=r"images must have shape \(B, C, H, W\)"):
            ops.mixup(torch.rand(3, 4, 5), torch.ones(3), torch.arange(3))
        with pytest.raises(ValueError, match="images must be a float or uint8"):
            ops.mixup(torch.ones(3, 1, 4, 5, dtype=torch.int32), torch.ones(3), torch.arange(3))
        with pytest.raises(ValueError, match="images must be a torch.Tensor"):
            ops.mixup([[1.0]], torch.ones(3), torch.arange(3))

    def test_out_argument(self):
        x = torch.rand(3, 2, 4, 5)
        out = torch.empty_like(x)
        res = ops.mixup(x, torch.full((3,), 0.25), torch.tensor([2, 0, 1]), out=out)
        assert res is out
        torch.testing.assert_close(out, 0.25 * x + 0.75 * x[[2, 0, 1]])
        with pytest.raises(ValueError, match="out must match images"):
            ops.mixup(x, torch.ones(3), torch.arange(3), out=torch.empty(3, 2, 4, 4))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("b", [1, 7])
@pytest.mark.parametrize("channels_last", [False, True])
class TestCutmixOp:
    def test_pixels_inside_from_partner_outside_original(self, dtype, b, channels_last):
        h, w = HW
        x = tagged_images(b, dtype=dtype, channels_last=channels_last)
        boxes = _boxes(b, h, w)
        perm = ops.sample_pairing(b, "roll", None)
        before = x.clone()
        out = ops.cutmix(x, boxes, perm)
        assert torch.equal(x, before)
        assert out.dtype == dtype
        assert torch.equal(out, _naive_paste(x, x[perm], boxes))
        if b > 1:  # kept fraction = 1 - box area
            kept = from_original(out, x).flatten(1).sum(1)
            assert torch.equal(kept, _kept_count(boxes, h, w))


class TestCutmixOpErrors:
    def test_bad_boxes(self):
        x = torch.rand(2, 1, 6, 8)
        perm = torch.tensor([1, 0])
        with pytest.raises(ValueError, match=r"boxes must be an integer tensor of shape \(2, 4\)"):
            ops.cutmix(x, torch.zeros(2, 4), perm)
        with pytest.raises(ValueError, match=r"boxes must be an integer tensor of shape \(2, 4\)"):
            ops.cutmix(x, torch.zeros(3, 4, dtype=torch.long), perm)
        with pytest.raises(ValueError, match="boxes must satisfy"):
            ops.cutmix(x, torch.tensor([[0, 0, 9, 2], [0, 0, 1, 1]]), perm)
        with pytest.raises(ValueError, match="boxes must satisfy"):
            ops.cutmix(x, torch.tensor([[3, 0, 2, 2], [0, 0, 1, 1]]), perm)
        with pytest.raises(ValueError, match="boxes must satisfy"):
            ops.cutmix(x, torch.tensor([[-1, 0, 2, 2], [0, 0, 1, 1]]), perm)

    def test_paste_region_shape_mismatch(self):
        with pytest.raises(ValueError, match="source must match images"):
            ops.paste_region(
                torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 5), torch.zeros(2, 4, dtype=torch.long)
            )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("b", [1, 7])
@pytest.mark.parametrize("channels_last", [False, True])
class TestResizemixOp:
    def test_nearest_equals_interpolate_per_sample(self, dtype, b, channels_last):
        h, w = HW
        x = tagged_images(b, dtype=dtype, channels_last=channels_last)
        tau = ops.sample_uniform(0.1, 0.9, b, _gen(3))
        bh = torch.round(tau * h).long().clamp(1, h)
        bw = torch.round(tau * w).long().clamp(1, w)
        boxes = ops.sample_boxes_inside(bh, bw, h, w, _gen(4))
        perm = ops.sample_pairing(b, "cycle", _gen(5))
        out = ops.resizemix(x, boxes, perm)
        ref = x.clone()
        for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            src = x[perm[i] : perm[i] + 1].double()
            ref[i, :, y1:y2, x1:x2] = F.interpolate(src, size=(y2 - y1, x2 - x1)).to(dtype)[0]
        assert torch.equal(out, ref)

    def test_bilinear_close_to_interpolate(self, dtype, b, channels_last):
        h, w = HW
        x = tagged_images(b, dtype=dtype, channels_last=channels_last)
        boxes = ops.sample_boxes_inside(torch.full((b,), 7), torch.full((b,), 5), h, w, _gen(6))
        perm = ops.sample_pairing(b, "roll", None)
        out = ops.resizemix(x, boxes, perm, mode="bilinear")
        for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            src = x[perm[i] : perm[i] + 1].double()
            ref = F.interpolate(src, size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=False)
            got = out[i, :, y1:y2, x1:x2].double()
            tol = 1.0 if dtype == torch.uint8 else 1e-3
            assert float((got - ref[0]).abs().max()) <= tol
            outside = torch.ones(h, w, dtype=torch.bool)
            outside[y1:y2, x1:x2] = False
            assert torch.equal(out[i][:, outside], x[i][:, outside])


class TestResizePasteOp:
    def test_source_of_other_size(self):
        x = torch.zeros(2, 1, 8, 10)
        src = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
        boxes = torch.tensor([[2, 0, 10, 8], [0, 0, 4, 4]])
        out = ops.resize_paste(x, src, boxes)
        assert torch.equal(out[0, 0, :, 2:], F.interpolate(src[:1], size=(8, 8))[0, 0])
        assert torch.equal(out[0, 0, :, :2], torch.zeros(8, 2))
        assert torch.equal(out[1, 0, :4, :4], src[1, 0])

    def test_errors(self):
        x = torch.zeros(2, 1, 8, 10)
        with pytest.raises(ValueError, match="source must have the batch and channels"):
            ops.resize_paste(x, torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, dtype=torch.long))
        with pytest.raises(ValueError, match="mode must be 'nearest' or 'bilinear'"):
            ops.resize_paste(
                x, torch.zeros(2, 1, 4, 4), torch.tensor([[0, 0, 2, 2]] * 2), mode="bicubic"
            )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("b", [1, 7])
@pytest.mark.parametrize("channels_last", [False, True])
class TestCutoutOp:
    def test_fill_inside_original_outside(self, dtype, b, channels_last):
        h, w = HW
        x = tagged_images(b, dtype=dtype, channels_last=channels_last)
        boxes = _boxes(b, h, w, seed=8)
        out = ops.cutout(x, boxes, value=0.0)
        assert torch.equal(out, _naive_paste(x, torch.zeros_like(x), boxes))
        assert torch.equal(from_original(out, x).flatten(1).sum(1), _kept_count(boxes, h, w))
        out7 = ops.cutout(x, boxes, value=7.0)
        assert torch.equal(out7, _naive_paste(x, torch.full_like(x, 7), boxes))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("b", [1, 7])
class TestMaskMixOp:
    def test_partner_where_mask(self, dtype, b):
        h, w = HW
        x = tagged_images(b, dtype=dtype)
        mask = torch.rand(b, h, w, generator=_gen(9)) < 0.4
        perm = ops.sample_pairing(b, "cycle", _gen(1))
        out = ops.mask_mix(x, mask, perm)
        assert torch.equal(out, torch.where(mask[:, None], x[perm], x))

    def test_bad_mask(self, dtype, b):
        x = tagged_images(b, dtype=dtype)
        with pytest.raises(ValueError, match="mask must be a bool tensor"):
            ops.mask_mix(x, torch.zeros(b, *HW), torch.arange(b))
        with pytest.raises(ValueError, match="mask must be a bool tensor"):
            ops.mask_mix(x, torch.zeros(b, 3, 3, dtype=torch.bool), torch.arange(b))


# ============================================================== labels


class TestLabelOps:
    def test_one_hot(self):
        y = ops.one_hot(torch.tensor([2, 0, 4]), 5)
        assert y.tolist() == [[0, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]
        with pytest.raises(ValueError, match="num_classes too small"):
            ops.one_hot(torch.tensor([0, 5]), 5)
        with pytest.raises(ValueError, match="num_classes"):
            ops.one_hot(torch.tensor([-1, 2]), 5)

    def test_smooth_rows_sum_to_one(self):
        y = ops.smooth(ops.one_hot(torch.tensor([1, 3]), 4), 0.2)
        torch.testing.assert_close(y.sum(1), torch.ones(2))
        torch.testing.assert_close(y[0], torch.tensor([0.05, 0.85, 0.05, 0.05]))

    def test_mix_targets_convex_and_rows_sum_to_one(self):
        y = ops.one_hot(torch.tensor([0, 1, 2, 3, 1, 0, 2]), 4, torch.float64)
        lam = ops.sample_uniform(0, 1, 7, _gen(2))
        perm = ops.sample_pairing(7, "cycle", _gen(3))
        m = ops.mix_targets(y, lam, perm)
        torch.testing.assert_close(m, lam[:, None] * y + (1 - lam[:, None]) * y[perm])
        torch.testing.assert_close(m.sum(1), torch.ones(7, dtype=torch.float64))

    @pytest.mark.parametrize("b", [1, 7])
    def test_to_targets_forms(self, b):
        ids = torch.arange(b) % 3
        hard = ops.to_targets(ids, 3)
        assert hard.shape == (b, 3) and torch.equal(hard.argmax(1), ids)
        assert torch.equal(ops.to_targets(hard, 3), hard)
        soft = torch.softmax(torch.randn(b, 3, generator=_gen()), 1)
        torch.testing.assert_close(ops.to_targets(soft, None), soft)
        sm = ops.to_targets(ids, 3, smoothing=0.3)
        torch.testing.assert_close(sm.sum(1), torch.ones(b))
        assert float(sm.min()) == pytest.approx(0.1)
        multi = (torch.rand(b, 3, generator=_gen()) < 0.5).float()
        torch.testing.assert_close(ops.to_targets(multi, 3, multilabel=True), multi)

    def test_to_targets_errors(self):
        with pytest.raises(ValueError, match="num_classes is required"):
            ops.to_targets(torch.tensor([0, 1]), None)
        with pytest.raises(ValueError, match="num_classes too small"):
            ops.to_targets(torch.tensor([0, 3]), 3)
        with pytest.raises(ValueError, match="must be integer class ids"):
            ops.to_targets(torch.tensor([0.0, 1.0]), 3)
        with pytest.raises(ValueError, match="must have K = num_classes = 4"):
            ops.to_targets(torch.eye(3), 4)
        with pytest.raises(ValueError, match="rows must sum to 1"):
            ops.to_targets(torch.tensor([[1.0, 1.0, 0.0]]), 3)
        with pytest.raises(ValueError, match=r"must hold probabilities in \[0, 1\]"):
            ops.to_targets(torch.tensor([[1.5, -0.5]]), 2)
        with pytest.raises(ValueError, match="labels must have shape"):
            ops.to_targets(torch.zeros(2, 2, 2), 2)
        with pytest.raises(ValueError, match="labels must be a torch.Tensor"):
            ops.to_targets([0, 1], 2)


# ============================================================== region masks


class TestClassMixMaskOps:
    def _maps(self) -> torch.Tensor:
        g = _gen(11)
        maps = torch.randint(0, 6, (5, 9, 11), generator=g)
        maps[0] = 2  # a single class
        maps[1, :, :4] = 255  # ignore index
        return maps

    def test_present_classes(self):
        maps = self._maps()
        present = ops.present_classes(maps, 6)
        for i in range(5):
            ids = set(maps[i].unique().tolist()) - {255}
            assert set(present[i].nonzero().flatten().tolist()) == ids

    def test_sample_picks_ceil_half_of_present(self):
        maps = self._maps()
        present = ops.present_classes(maps, 6)
        for seed in range(10):
            chosen = ops.sample_classmix_classes(maps, 6, _gen(seed))
            assert bool((chosen <= present).all())
            assert torch.equal(chosen.sum(1), (present.sum(1) + 1) // 2)

    def test_mask_equals_isin(self):
        maps = self._maps()
        chosen = ops.sample_classmix_classes(maps, 6, _gen(0))
        m = ops.classmix_mask(maps, chosen)
        for i in range(5):
            ids = chosen[i].nonzero().flatten()
            assert torch.equal(m[i], torch.isin(maps[i], ids))
        assert not bool(m[1, :, :4].any())  # ignore pixels never selected

    def test_errors(self):
        with pytest.raises(ValueError, match="label_maps must be an integer tensor"):
            ops.present_classes(torch.zeros(2, 3, 3), 4)
        with pytest.raises(ValueError, match="label_maps must be an integer tensor"):
            ops.present_classes(torch.zeros(3, 3, dtype=torch.long), 4)
        with pytest.raises(ValueError, match="classes must be a bool tensor"):
            ops.classmix_mask(torch.zeros(2, 3, 3, dtype=torch.long), torch.zeros(2, 4))


class TestFMixMaskOp:
    @pytest.mark.parametrize("b", [1, 7])
    def test_exact_pixel_count_and_seeded(self, b):
        h, w = HW
        area = ops.sample_uniform(0, 1, b, _gen(1))
        m = ops.fmix_mask(area, h, w, _gen(2))
        assert m.shape == (b, h, w) and m.dtype == torch.bool
        assert torch.equal(m.flatten(1).sum(1), torch.round(area * h * w).long())
        assert torch.equal(m, ops.fmix_mask(area, h, w, _gen(2)))
        assert not torch.equal(m, ops.fmix_mask(area, h, w, _gen(3)))

    def test_low_frequency(self):
        """Neighbouring pixels agree far more often than in a random mask of the same size."""
        area = torch.full((64,), 0.5)
        m = ops.fmix_mask(area, 32, 32, _gen(0))
        agree = (m[:, 1:] == m[:, :-1]).double().mean()
        rnd = torch.rand(64, 32, 32, generator=_gen(1)) < 0.5
        agree_rnd = (rnd[:, 1:] == rnd[:, :-1]).double().mean()
        assert float(agree) > 0.85 and float(agree_rnd) < 0.6


# ============================================================== detection geometry


class TestDetectionOps:
    def test_areas_and_intersection(self):
        b = torch.tensor([[[0.0, 0.0, 4.0, 2.0], [3.0, 3.0, 1.0, 5.0]]])
        assert ops.box_areas(b).tolist() == [[8.0, 0.0]]
        inter = ops.intersect_region(b, torch.tensor([[2, 1, 10, 10]]))
        assert inter[0, 0].tolist() == [2.0, 1.0, 4.0, 2.0]
        assert float(ops.box_areas(inter)[0, 1]) == 0.0

    def test_visible_fraction_box_hand_computed(self):
        boxes = torch.tensor([[[0.0, 0.0, 4.0, 4.0], [6.0, 6.0, 8.0, 8.0]]])
        region = torch.tensor([[2, 0, 8, 8]])  # covers x >= 2
        vis = ops.visible_fraction_box(boxes, region)
        torch.testing.assert_close(vis, torch.tensor([[0.5, 0.0]]))

    def test_visible_fraction_mask_matches_pixel_count(self):
        g = _gen(5)
        mask = torch.rand(3, 10, 12, generator=g) < 0.5
        x1 = torch.randint(0, 6, (3, 4), generator=g)
        y1 = torch.randint(0, 5, (3, 4), generator=g)
        boxes = torch.stack([x1, y1, x1 + 1 + x1 % 5, y1 + 2 + y1 % 4], -1).float()
        vis = ops.visible_fraction_mask(boxes, mask)
        for i in range(3):
            for j in range(4):
                a, c, bx, d = (int(v) for v in boxes[i, j])
                expected = float((~mask[i, c:d, a:bx]).double().mean())
                assert float(vis[i, j]) == pytest.approx(expected)

    def test_resize_boxes_into(self):
        boxes = torch.tensor([[[0.0, 0.0, 10.0, 20.0], [5.0, 10.0, 10.0, 20.0]]])
        moved = ops.resize_boxes_into(boxes, (20, 10), torch.tensor([[4, 2, 9, 12]]))
        assert moved[0].tolist() == [[4.0, 2.0, 9.0, 12.0], [6.5, 7.0, 9.0, 12.0]]
