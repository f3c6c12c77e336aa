"""``mixkit.compat``: timm ``Mixup`` and torchvision v2 ``CutMix``/``MixUp`` adapters.

Semantics tests always run. The equivalence tests replay timm's / torchvision's own random
draws through the adapters and require identical outputs; they need the optional ``peers``
extra (``pip install -e ".[peers]"``) and are skipped with a visible reason otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import from_original, tagged_images

from mixkit.augment import Kind, MixParams
from mixkit.compat import CutMix, MixUp, TimmMixup

K = 10


def _labels(b: int) -> torch.Tensor:
    return torch.arange(b) % K


def _binomial_ok(hits: int, n: int, p: float) -> bool:
    return abs(hits - n * p) <= 4.5 * math.sqrt(n * p * (1 - p)) + 1


# --------------------------------------------------------------------------- TimmMixup
class TestTimmMixupSemantics:
    def test_label_smoothing_convention(self):
        # prob=0: no mixing, targets are timm's smoothed one-hot: off = s/K, on = 1 - s + s/K.
        m = TimmMixup(prob=0.0, label_smoothing=0.2, num_classes=K, generator=0)
        x = torch.rand(5, 3, 8, 8)
        y = torch.tensor([0, 3, 9, 3, 1])
        xm, t = m(x, y)
        assert torch.equal(xm, x)
        off, on = 0.2 / K, 1 - 0.2 + 0.2 / K
        expect = torch.full((5, K), off)
        expect[torch.arange(5), y] = on
        torch.testing.assert_close(t, expect)
        assert t.dtype == torch.float32 and t.shape == (5, K)

    def test_not_inplace_by_default_and_inplace_option(self):
        x = torch.rand(6, 3, 8, 8)
        keep = x.clone()
        m = TimmMixup(mixup_alpha=1.0, num_classes=K, generator=1)
        xm, _ = m(x, _labels(6))
        assert torch.equal(x, keep) and not torch.equal(xm, keep)
        mi = TimmMixup(mixup_alpha=1.0, num_classes=K, inplace=True, generator=1)
        xi, _ = mi(x, _labels(6))
        assert xi.data_ptr() == x.data_ptr()
        torch.testing.assert_close(x, xm)  # same seed, same result, now written into x

    @pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
    def test_odd_batch_pixels_match_labels(self, mode):
        # B=7 (timm asserts an even batch). With flip pairing the middle sample is its own
        # partner. Every sample: kept pixel fraction == weight of its own label.
        b = 7
        x = tagged_images(b, h=16, w=16)
        m = TimmMixup(
            mixup_alpha=0.0,
            cutmix_alpha=1.0,
            label_smoothing=0.0,
            num_classes=K,
            mode=mode,
            generator=3,
        )
        y = _labels(b)
        for _ in range(5):
            xm, t = m(x, y)
            p = m.last_params
            assert p.perm.tolist() == list(range(b - 1, -1, -1))
            kept = from_original(xm, x).double().mean((1, 2))
            mid = b // 2
            torch.testing.assert_close(
                kept[torch.arange(b) != mid], p.lam.double()[torch.arange(b) != mid]
            )
            own = t[torch.arange(b), y].double()
            partner = t[torch.arange(b), y[p.perm]].double()
            is_mid = torch.arange(b) == mid
            torch.testing.assert_close(own[~is_mid], p.lam.double()[~is_mid], atol=1e-6, rtol=0)
            torch.testing.assert_close(
                partner[~is_mid], 1 - p.lam.double()[~is_mid], atol=1e-6, rtol=0
            )
            assert torch.equal(xm[mid], x[mid])
            assert float(t[mid, y[mid]]) == pytest.approx(1.0)

    def test_pair_mode_mirrors_draws(self):
        m = TimmMixup(mixup_alpha=0.5, cutmix_alpha=1.0, mode="pair", num_classes=K, generator=4)
        x = tagged_images(8, h=16, w=16)
        for _ in range(4):
            xm, _ = m(x, _labels(8))
            p = m.last_params
            assert torch.equal(p.kind, p.kind.flip(0))
            assert torch.equal(p.lam, p.lam.flip(0))
            assert torch.equal(p.boxes, p.boxes.flip(0))
            for i in range(4):
                j = 7 - i
                if p.kind[i] == Kind.CROP:  # the same box, contents swapped
                    x1, y1, x2, y2 = p.boxes[i].tolist()
                    assert torch.equal(xm[i, :, y1:y2, x1:x2], x[j, :, y1:y2, x1:x2])
                    assert torch.equal(xm[j, :, y1:y2, x1:x2], x[i, :, y1:y2, x1:x2])

    def test_rates_prob_and_switch(self):
        m = TimmMixup(
            mixup_alpha=1.0,
            cutmix_alpha=1.0,
            prob=0.6,
            switch_prob=0.25,
            mode="elem",
            num_classes=K,
            generator=5,
        )
        p = m.draw((20000, 3, 16, 16))
        mixed = int(p.applied.sum())
        crop = int((p.kind == Kind.CROP).sum())
        assert _binomial_ok(mixed, 20000, 0.6)
        assert _binomial_ok(crop, mixed, 0.25)
        assert bool((p.lam[~p.applied] == 1).all())

    def test_batch_mode_one_draw(self):
        m = TimmMixup(mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=K, generator=6)
        for _ in range(10):
            p = m.draw((9, 3, 16, 16))
            assert len(set(p.kind.tolist())) == 1 and len(set(p.lam.tolist())) == 1
            assert (p.boxes == p.boxes[0]).all()

    def test_cutmix_minmax(self):
        m = TimmMixup(
            mixup_alpha=0.0, cutmix_minmax=(0.25, 0.5), mode="elem", num_classes=K, generator=7
        )
        assert m.cutmix_alpha == 1.0  # forced, as in timm
        p = m.draw((4000, 3, 20, 32))
        hs = p.boxes[:, 3] - p.boxes[:, 1]
        ws = p.boxes[:, 2] - p.boxes[:, 0]
        assert int(hs.min()) == 5 and int(hs.max()) == 10  # [int(20*.25), int(20*.5)], max incl.
        assert int(ws.min()) == 8 and int(ws.max()) == 16
        assert bool((p.boxes[:, :2] >= 0).all() and (p.boxes[:, 2] <= 32).all())
        assert bool((p.boxes[:, 3] <= 20).all())
        torch.testing.assert_close(p.lam.double(), 1 - (hs * ws).double() / 640, atol=1e-6, rtol=0)

    def test_correct_lam_false_keeps_box_inside(self):
        m = TimmMixup(
            mixup_alpha=0.0,
            cutmix_alpha=1.0,
            correct_lam=False,
            mode="elem",
            num_classes=K,
            generator=8,
        )
        p = m.draw((3000, 3, 16, 16))
        assert bool((p.boxes[:, :2] >= 0).all() and (p.boxes[:, 2:] <= 16).all())
        area = (p.boxes[:, 2] - p.boxes[:, 0]) * (p.boxes[:, 3] - p.boxes[:, 1])
        torch.testing.assert_close(p.lam.double(), 1 - area.double() / 256, atol=1e-6, rtol=0)
        # unclipped: mean pasted area is E[1-λ] = 1/2 for Beta(1, 1) up to side rounding
        assert float(1 - p.lam.mean()) == pytest.approx(0.5, abs=0.03)

    def test_mixup_enabled_false(self):
        m = TimmMixup(mixup_alpha=1.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=K)
        m.mixup_enabled = False
        x = torch.rand(4, 3, 8, 8)
        xm, t = m(x, _labels(4))
        assert torch.equal(xm, x) and torch.equal(t, torch.eye(K)[_labels(4)])

    def test_same_seed_same_bytes_and_replay(self):
        x, y = torch.rand(6, 3, 12, 12), _labels(6)
        a = TimmMixup(mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem", num_classes=K, generator=9)
        b = TimmMixup(mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem", num_classes=K, generator=9)
        xa, ta = a(x, y)
        xb, tb = b(x, y)
        assert torch.equal(xa, xb) and torch.equal(ta, tb)
        xr, tr = b(x, y, params=a.last_params)
        assert torch.equal(xr, xa) and torch.equal(tr, ta)

    def test_uint8_and_soft_and_multilabel_targets(self):
        x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
        m = TimmMixup(mixup_alpha=1.0, label_smoothing=0.1, num_classes=K, generator=10)
        xm, _ = m(x, _labels(4))
        assert xm.dtype == torch.uint8
        soft = torch.eye(K)[_labels(4)]
        _, t_soft = m(x, soft, params=m.last_params)
        _, t_int = m(x, _labels(4), params=m.last_params)
        torch.testing.assert_close(t_soft, t_int)
        ml = TimmMixup(prob=0.0, label_smoothing=0.2, num_classes=K, multi_label=True)
        dense = torch.zeros(4, K)
        dense[:, :2] = 1
        _, t = ml(x, dense)
        torch.testing.assert_close(t[:, 0], torch.full((4,), 0.9))  # 1*(1-s) + s/2
        torch.testing.assert_close(t[:, 5], torch.full((4,), 0.1))  # 0*(1-s) + s/2

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"mixup_alpha": 0.0, "cutmix_alpha": 0.0}, "one of mixup_alpha > 0"),
            ({"mixup_alpha": -1.0}, "mixup_alpha must be a number >= 0"),
            ({"mode": "half"}, "mode must be one of"),
            ({"mode": "pair", "pairing": "cycle"}, "pairing must be 'flip'"),
            ({"pairing": "zigzag"}, "pairing must be one of"),
            ({"prob": 1.5}, r"prob must be a number in \[0.0, 1.0\]"),
            ({"switch_prob": -0.1}, "switch_prob must be a number"),
            ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
            ({"num_classes": 0}, "num_classes must be an int >= 1"),
            ({"cutmix_minmax": (0.5,)}, r"cutmix_minmax must be \(min, max\)"),
            ({"cutmix_minmax": (0.8, 0.2)}, "cutmix_minmax must satisfy"),
            ({"generator": "seed"}, "generator must be a torch.Generator"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            TimmMixup(**kwargs)

    def test_bad_inputs(self):
        m = TimmMixup(num_classes=K)
        with pytest.raises(
            ValueError, match=r"x must be a non-empty tensor of shape \(B, C, H, W\)"
        ):
            m(torch.rand(3, 8, 8), _labels(3))
        with pytest.raises(ValueError, match="target must have batch size 4"):
            m(torch.rand(4, 3, 8, 8), _labels(3))
        with pytest.raises(ValueError, match=r"labels must be class ids in \[0, num_classes=10\)"):
            m(torch.rand(2, 3, 8, 8), torch.tensor([1, 12]))
        ml = TimmMixup(num_classes=K, multi_label=True)
        with pytest.raises(ValueError, match="multi_label target must be dense"):
            ml(torch.rand(2, 3, 8, 8), _labels(2))


# --------------------------------------------------------------------------- torchvision-style
class TestTorchvisionStyle:
    @pytest.mark.parametrize("cls", [CutMix, MixUp])
    def test_structures(self, cls):
        t = cls(num_classes=K, generator=0)
        x, y = torch.rand(5, 3, 8, 8), _labels(5)
        a = t(x, y)
        assert isinstance(a, tuple) and a[0].shape == x.shape and a[1].shape == (5, K)
        b = t((x, y), params=t.last_params)
        assert isinstance(b, tuple) and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        d = t({"image": x, "labels": y, "id": "batch-0"}, params=t.last_params)
        assert set(d) == {"image", "labels", "id"} and d["id"] == "batch-0"
        assert torch.equal(d["image"], a[0]) and torch.equal(d["labels"], a[1])
        g = cls(num_classes=K, labels_getter=lambda inp: inp["y"])
        out = g({"y": y, "x": x}, params=t.last_params)
        assert torch.equal(out["x"], a[0])

    @pytest.mark.parametrize("cls", [CutMix, MixUp])
    def test_rows_sum_to_one_two_classes_roll_pairing(self, cls):
        t = cls(num_classes=K, generator=1)
        x, y = tagged_images(6, h=16, w=16), _labels(6)
        xm, tm = t(x, y)
        p = t.last_params
        assert p.perm.tolist() == [5, 0, 1, 2, 3, 4]  # torchvision: batch.roll(1, 0)
        torch.testing.assert_close(tm.sum(1), torch.ones(6))
        assert bool(((tm > 0).sum(1) <= 2).all())
        torch.testing.assert_close(tm[torch.arange(6), y], p.lam, atol=1e-6, rtol=0)
        if cls is CutMix:
            kept = from_original(xm, x).float().mean((1, 2))
            torch.testing.assert_close(kept, p.lam, atol=1e-6, rtol=0)

    def test_probability_labels_and_elem_mode(self):
        t = CutMix(mode="elem", pairing="cycle", generator=2)  # num_classes None: 2-D labels
        soft = torch.softmax(torch.randn(7, K), 1)
        xm, tm = t(torch.rand(7, 3, 16, 16), soft)
        assert tm.shape == (7, K) and len(set(t.last_params.lam.tolist())) > 1
        torch.testing.assert_close(tm.sum(1), torch.ones(7))

    def test_uint8_mixup_rounds(self):
        t = MixUp(num_classes=K, generator=3)
        x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
        xm, _ = t(x, _labels(4))
        lam = float(t.last_params.lam[0])
        expect = (lam * x.double() + (1 - lam) * x.roll(1, 0).double()).round()
        assert xm.dtype == torch.uint8
        assert (xm.double() - expect).abs().max() <= 1

    def test_errors(self):
        t = CutMix(num_classes=K)
        with pytest.raises(ValueError, match="num_classes is required"):
            CutMix()(torch.rand(2, 3, 8, 8), _labels(2))
        with pytest.raises(ValueError, match="labels must be a tensor"):
            t(torch.rand(2, 3, 8, 8), [0, 1])
        with pytest.raises(ValueError, match=r"labels must be \(B,\) class ids"):
            t(torch.rand(2, 3, 8, 8), torch.zeros(2, K, 1))
        with pytest.raises(ValueError, match="B = 3"):
            t(torch.rand(2, 3, 8, 8), _labels(3))
        with pytest.raises(ValueError, match="could not find the labels"):
            t({"image": torch.rand(2, 3, 8, 8)})
        with pytest.raises(ValueError, match="labels_getter must be"):
            CutMix(labels_getter=3)
        pil = pytest.importorskip(
            "PIL.Image", reason="Pillow not installed: PIL rejection untested"
        )
        with pytest.raises(ValueError, match="does not take Image inputs"):
            t(pil.new("RGB", (8, 8)), _labels(1))


# --------------------------------------------------------------------------- equivalence: timm
def _timm():
    return pytest.importorskip(
        "timm.data.mixup",
        reason="timm not installed (pip install -e '.[peers]'): equivalence untested",
    )


def _timm_params(tm, mixup, b: int, h: int, w: int) -> MixParams:
    """Replay the numpy draws timm's ``Mixup.__call__`` makes (same order) as MixParams."""
    kind = torch.zeros(b, dtype=torch.long)
    lam = torch.ones(b, dtype=torch.float64)
    boxes = torch.zeros(b, 4, dtype=torch.long)

    def cut(lam_i):
        (yl, yh, xl, xh), lam_c = tm.cutmix_bbox_and_lam(
            (3, h, w), lam_i, ratio_minmax=mixup.cutmix_minmax, correct_lam=mixup.correct_lam
        )
        return [int(xl), int(yl), int(xh), int(yh)], float(lam_c)

    if mixup.mode == "batch":
        lam_b, use_cut = mixup._params_per_batch()
        if lam_b != 1.0:
            if use_cut:
                box, lam_b = cut(lam_b)
                boxes[:] = torch.tensor(box)
            kind[:] = int(Kind.CROP if use_cut else Kind.BLEND)
            lam[:] = lam_b
    else:
        n = b if mixup.mode == "elem" else b // 2
        lams, use_cut = mixup._params_per_elem(n)
        for i in range(n):
            if lams[i] != 1.0:
                kind[i] = int(Kind.CROP if use_cut[i] else Kind.BLEND)
                lam[i] = float(lams[i])
                if use_cut[i]:
                    box, lam[i] = cut(lams[i])
                    boxes[i] = torch.tensor(box)
        if mixup.mode == "pair":
            kind[n:], lam[n:], boxes[n:] = kind[:n].flip(0), lam[:n].flip(0), boxes[:n].flip(0)
    return MixParams(kind, lam.float(), torch.arange(b - 1, -1, -1), boxes, (h, w))


TIMM_CASES = [
    {"mixup_alpha": 0.8, "cutmix_alpha": 0.0, "mode": "batch"},
    {"mixup_alpha": 0.0, "cutmix_alpha": 1.0, "mode": "batch"},
    {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "mode": "batch", "prob": 0.7},
    {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "mode": "elem", "switch_prob": 0.5},
    {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "mode": "pair", "prob": 0.8},
    {"mixup_alpha": 0.0, "cutmix_minmax": (0.2, 0.8), "mode": "elem"},
    {"mixup_alpha": 0.5, "cutmix_alpha": 1.0, "mode": "elem", "label_smoothing": 0.0},
]


@pytest.mark.parametrize(
    "case", TIMM_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items())
)
def test_timm_same_draws_same_outputs(case):
    tm = _timm()
    kwargs = {"label_smoothing": 0.1, "num_classes": K, **case}
    timm_mix = tm.Mixup(**kwargs)
    ours = TimmMixup(**kwargs)
    b, h, w = 8, 20, 24
    for seed in range(6):
        x = torch.randn(b, 3, h, w)
        y = torch.randint(0, K, (b,))
        np.random.seed(seed)
        x_timm, t_timm = timm_mix(x.clone(), y)
        np.random.seed(seed)
        params = _timm_params(tm, timm_mix, b, h, w)
        x_ours, t_ours = ours(x, y, params=params)
        torch.testing.assert_close(x_ours, x_timm, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(t_ours, t_timm, atol=1e-6, rtol=1e-6)


def test_timm_multilabel_targets_match():
    tm = _timm()
    import inspect

    if "multi_label" not in inspect.signature(tm.Mixup).parameters:
        pytest.skip("this timm has no multi_label Mixup")
    kwargs = {"mixup_alpha": 1.0, "label_smoothing": 0.2, "num_classes": K, "multi_label": True}
    timm_mix, ours = tm.Mixup(**kwargs), TimmMixup(**kwargs)
    x, y = torch.rand(6, 3, 8, 8), (torch.rand(6, K) > 0.6).float()
    np.random.seed(0)
    _, t_timm = timm_mix(x.clone(), y)
    np.random.seed(0)
    params = _timm_params(tm, timm_mix, 6, 8, 8)
    torch.testing.assert_close(ours(x, y, params=params)[1], t_timm, atol=1e-6, rtol=1e-6)


def test_timm_lambda_distribution_matches():
    # Independent draws: per-sample mixing rate, CutMix share and mean λ agree with timm.
    tm = _timm()
    kwargs = {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "prob": 0.8, "switch_prob": 0.5}
    n, h, w = 20000, 224, 224
    timm_mix = tm.Mixup(mode="elem", num_classes=K, **kwargs)
    np.random.seed(0)
    lam_t, cut_t = timm_mix._params_per_elem(n)
    lam_t = lam_t.astype(np.float64)
    for i in np.flatnonzero(cut_t & (lam_t != 1)):  # timm's loop: one box per CutMix sample
        lam_t[i] = tm.cutmix_bbox_and_lam((3, h, w), lam_t[i])[1]
    p = TimmMixup(mode="elem", num_classes=K, generator=0, **kwargs).draw((n, 3, h, w))
    lam_o = p.lam.double().numpy()
    assert abs((lam_t != 1).mean() - (lam_o != 1).mean()) < 0.02
    assert abs(cut_t[lam_t != 1].mean() - (p.kind == Kind.CROP)[p.applied].float().mean()) < 0.02
    assert abs(lam_t.mean() - lam_o.mean()) < 0.01
    assert abs(np.median(lam_t) - np.median(lam_o)) < 0.02


# --------------------------------------------------------------------------- equivalence: tv v2
def _tv():
    return pytest.importorskip(
        "torchvision.transforms.v2",
        reason="torchvision not installed (pip install -e '.[peers]'): equivalence untested",
    )


@pytest.mark.parametrize("name", ["CutMix", "MixUp"])
def test_torchvision_same_draws_same_outputs(name):
    v2 = _tv()
    tv = getattr(v2, name)(alpha=1.0, num_classes=K)
    ours = (CutMix if name == "CutMix" else MixUp)(alpha=1.0, num_classes=K)
    b, h, w = 6, 20, 24
    for seed in range(6):
        x, y = torch.rand(b, 3, h, w), torch.randint(0, K, (b,))
        torch.manual_seed(seed)
        x_tv, t_tv = tv(x, y)
        torch.manual_seed(seed)
        made = tv.make_params([x])
        if name == "CutMix":
            x1, y1, x2, y2 = made["box"]
            kind, lam = Kind.CROP, made["lam_adjusted"]
            boxes = torch.tensor([[x1, y1, x2, y2]] * b)
        else:
            kind, lam, boxes = Kind.BLEND, made["lam"], torch.zeros(b, 4, dtype=torch.long)
        params = MixParams(
            torch.full((b,), int(kind)),
            torch.full((b,), lam),
            torch.arange(b).roll(1),
            boxes,
            (h, w),
        )
        x_ours, t_ours = ours(x, y, params=params)
        torch.testing.assert_close(x_ours, x_tv, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(t_ours, t_tv, atol=1e-6, rtol=1e-6)
        # torchvision's own structures give the same structures back
        d_tv = tv({"image": x, "labels": y})
        assert set(d_tv) == set(ours({"image": x, "labels": y}))


def test_torchvision_cutmix_lambda_distribution_matches():
    v2 = _tv()
    tv = v2.CutMix(alpha=1.0, num_classes=K)
    x = torch.zeros(1, 1, 64, 64)
    torch.manual_seed(0)
    lam_tv = np.array([tv.make_params([x])["lam_adjusted"] for _ in range(4000)])
    p = CutMix(alpha=1.0, num_classes=K, mode="elem", generator=0).draw((4000, 1, 64, 64))
    lam_o = p.lam.double().numpy()
    # torchvision's even-truncated sides paste slightly less on average (about 1/64 per side).
    assert abs(lam_tv.mean() - lam_o.mean()) < 0.03
    assert abs(np.median(lam_tv) - np.median(lam_o)) < 0.04
