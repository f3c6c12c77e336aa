"""Tests of ``mixkit.device_aug``: batched crops, resizes and flips against per-sample
references (``F.interpolate`` of the sliced crop, torchvision's scalar crop rule)."""

from __future__ import annotations

import math
from collections import namedtuple

import pytest
import torch
import torch.nn.functional as F

from mixkit import data
from mixkit import device_aug as da

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _arange(b: int, c: int, h: int, w: int) -> torch.Tensor:
    return torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w)


# ============================================================== RRC parameters


def _reference_rrc(n, height, width, scale, ratio, seed, attempts=10):
    """torchvision's RandomResizedCrop.get_params loop, one sample at a time, fed with the
    uniforms rrc_params documents drawing (fractions, log ratios, offsets)."""
    g = _gen(seed)
    frac = torch.rand(n, attempts, dtype=torch.float64, generator=g).tolist()
    logr = torch.rand(n, attempts, dtype=torch.float64, generator=g).tolist()
    u = torch.rand(n, 2, dtype=torch.float64, generator=g).tolist()
    rows = []
    for i in range(n):
        for a in range(attempts):
            target = height * width * (scale[0] + (scale[1] - scale[0]) * frac[i][a])
            lr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * logr[i][a]
            w = int(round(math.sqrt(target * math.exp(lr))))
            h = int(round(math.sqrt(target / math.exp(lr))))
            if 0 < w <= width and 0 < h <= height:
                top = min(int(u[i][0] * (height - h + 1)), height - h)
                left = min(int(u[i][1] * (width - w + 1)), width - w)
                rows.append([top, left, h, w])
                break
        else:
            in_ratio = width / height
            if in_ratio < min(ratio):
                w, h = width, int(round(width / min(ratio)))
            elif in_ratio > max(ratio):
                h, w = height, int(round(height * max(ratio)))
            else:
                w, h = width, height
            rows.append([(height - h) // 2, (width - w) // 2, h, w])
    return torch.tensor(rows)


class TestRRCParams:
    @pytest.mark.parametrize(
        "hw, scale, ratio",  # the second: about half the samples need the fallback
        [((32, 32), (0.08, 1.0), (3 / 4, 4 / 3)), ((10, 40), (0.3, 1.0), (0.5, 2.0))],
    )
    def test_equals_scalar_reference(self, hw, scale, ratio):
        for seed in range(3):
            got = da.rrc_params(64, *hw, scale, ratio, _gen(seed))
            assert torch.equal(got, _reference_rrc(64, *hw, scale, ratio, seed))

    def test_fallback_by_hand(self):
        # scale > 1 never fits: centred crop with the aspect clamped into [3/4, 4/3]
        wide = da.rrc_params(3, 10, 20, (2.0, 3.0), generator=_gen(0))
        assert wide.tolist() == [[0, 3, 10, 13]] * 3  # w = round(10 * 4/3) = 13, left = 7 // 2
        tall = da.rrc_params(2, 20, 10, (2.0, 3.0), generator=_gen(0))
        assert tall.tolist() == [[3, 0, 13, 10]] * 2  # h = round(10 / (3/4)) = 13, top = 3
        assert da.rrc_params(1, 10, 12, (2.0, 3.0), generator=_gen(0)).tolist() == [[0, 0, 10, 12]]

    def test_bounds_and_ranges(self):
        b = da.rrc_params(4000, 64, 48, generator=_gen(1))
        top, left, h, w = b.unbind(1)
        assert bool(((top >= 0) & (left >= 0) & (top + h <= 64) & (left + w <= 48)).all())
        frac = (h * w).double() / (64 * 48)
        assert 0.06 < float(frac.min()) < 0.1 and float(frac.max()) <= 1.0
        ar = w.double() / h
        assert float(ar.min()) > 0.7 and float(ar.max()) < 1.4
        assert int(top.max()) > 40 and int(left.max()) > 30  # offsets reach the far side
        assert torch.equal(b, da.rrc_params(4000, 64, 48, generator=_gen(1)))
        assert not torch.equal(b, da.rrc_params(4000, 64, 48, generator=_gen(2)))

    def test_errors(self):
        with pytest.raises(ValueError, match="scale must be"):
            da.rrc_params(2, 8, 8, (0.5, 0.1))
        with pytest.raises(ValueError, match="ratio must be"):
            da.rrc_params(2, 8, 8, ratio=(0.0, 1.0))
        with pytest.raises(ValueError, match="height must be an int >= 1"):
            da.rrc_params(2, 0, 8)


# ============================================================== resized crop


class TestResizedCrop:
    @pytest.mark.parametrize("antialias", [True, False])
    @pytest.mark.parametrize("size", [(7, 9), (30, 26)])  # down- and up-scaling
    def test_equals_interpolate_of_each_crop(self, antialias, size):
        x = torch.rand(6, 3, 20, 24, generator=_gen(0)) * 255
        boxes = da.rrc_params(6, 20, 24, generator=_gen(4))
        out = da.resized_crop(x, boxes, size, antialias)
        for i, (t, l_, h, w) in enumerate(boxes.tolist()):
            crop = x[i : i + 1, :, t : t + h, l_ : l_ + w]
            ref = F.interpolate(
                crop, size=size, mode="bilinear", align_corners=False, antialias=antialias
            )
            assert torch.allclose(out[i], ref[0], atol=2e-3), i

    def test_same_size_crop_lands_at_the_offset(self):
        x = _arange(2, 2, 12, 15)
        boxes = torch.tensor([[3, 5, 6, 6], [0, 9, 6, 6]])
        out = da.resized_crop(x, boxes, 6)
        assert torch.equal(out[0], x[0, :, 3:9, 5:11]) and torch.equal(out[1], x[1, :, 0:6, 9:15])
        u8 = (x % 251).to(torch.uint8)
        assert torch.equal(da.resized_crop(u8, boxes, 6)[0], u8[0, :, 3:9, 5:11])

    def test_uint8_rounds_the_float_result(self):
        x = torch.randint(0, 256, (3, 3, 16, 16), generator=_gen(2), dtype=torch.uint8)
        boxes = da.rrc_params(3, 16, 16, generator=_gen(3))
        f = da.resized_crop(x.float(), boxes, 5)
        assert torch.equal(da.resized_crop(x, boxes, 5), f.round().clamp(0, 255).to(torch.uint8))

    def test_errors(self):
        x = torch.zeros(2, 1, 8, 8)
        with pytest.raises(ValueError, match=r"boxes must be \(2, 4\) integer"):
            da.resized_crop(x, torch.zeros(2, 4), 4)
        with pytest.raises(ValueError, match="boxes must lie inside the 8x8 images"):
            da.resized_crop(x, torch.tensor([[0, 0, 9, 4], [0, 0, 4, 4]]), 4)
        with pytest.raises(ValueError, match="size must be an int >= 1"):
            da.resized_crop(x, torch.tensor([[0, 0, 4, 4]] * 2), 0)
        with pytest.raises(ValueError, match=r"x must be \(B, C, H, W\)"):
            da.resized_crop(torch.zeros(8, 8), torch.zeros(1, 4, dtype=torch.long), 4)


class TestRandomResizedCropFlip:
    def test_params_flip_exact_and_determinism(self):
        x = torch.randint(0, 256, (16, 3, 24, 20), generator=_gen(0), dtype=torch.uint8)
        out, boxes, flips = da.random_resized_crop_flip(x, 8, _gen(5), return_params=True)
        assert out.shape == (16, 3, 8, 8) and out.dtype == torch.uint8
        assert torch.equal(boxes, da.rrc_params(16, 24, 20, generator=_gen(5)))
        assert 0 < int(flips.sum()) < 16
        plain = da.resized_crop(x, boxes, 8)
        assert torch.equal(out[flips], plain[flips].flip(-1))
        assert torch.equal(out[~flips], plain[~flips])
        again = da.random_resized_crop_flip(x, 8, _gen(5))
        assert torch.equal(again, out)
        assert not torch.equal(da.random_resized_crop_flip(x, 8, _gen(6)), out)
        _, _, none = da.random_resized_crop_flip(x, 8, _gen(5), flip=False, return_params=True)
        assert not bool(none.any())

    def test_hflip_exact(self):
        x = _arange(3, 2, 4, 5)
        out = da.hflip(x, torch.tensor([True, False, True]))
        assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])
        assert torch.equal(out[2, 0, 0], x[2, 0, 0].flip(0))
        with pytest.raises(ValueError, match=r"flags must be \(3,\) bool"):
            da.hflip(x, torch.ones(3))


# ============================================================== evaluation crops


class TestEvalCrops:
    def test_center_crop_offsets_round_half_even(self):
        x = _arange(1, 1, 9, 11)
        # (9 - 4) / 2 = 2.5 -> 2 and (11 - 4) / 2 = 3.5 -> 4, Python's round
        assert torch.equal(da.center_crop(x, 4), x[:, :, 2:6, 4:8])
        assert torch.equal(da.center_crop(x, (9, 11)), x)
        with pytest.raises(ValueError, match="must not exceed the image size"):
            da.center_crop(x, 10)

    def test_resize_center_crop(self):
        x = torch.rand(2, 3, 256, 320, generator=_gen(0))
        # 224 / 0.875 = 256 is already the shorter side: only the centre crop
        assert torch.equal(da.resize_center_crop(x, 224), x[:, :, 16:240, 48:272])
        y = torch.rand(2, 3, 40, 60, generator=_gen(1)) * 255
        # floor(32 / 0.875) = 36; long side int(36 * 60 / 40) = 54; crop offsets 2, 11
        ref = F.interpolate(y, (36, 54), mode="bilinear", align_corners=False, antialias=True)
        got = da.resize_center_crop(y, 32)
        assert got.shape == (2, 3, 32, 32) and torch.allclose(
            got, ref[:, :, 2:34, 11:43], atol=2e-3
        )
        with pytest.raises(ValueError, match=r"crop_frac must be in \(0, 1\]"):
            da.resize_center_crop(y, 32, 0.0)


# ============================================================== normalise, move, bundle


def test_to_float_values_and_no_mutation():
    x = torch.tensor([[[[0.0, 255.0]], [[51.0, 102.0]]]])
    before = x.clone()
    out = da.to_float(x, (0.5, 0.2), (0.5, 0.1))
    assert torch.allclose(out, torch.tensor([[[[-1.0, 1.0]], [[0.0, 2.0]]]]), atol=1e-6)
    assert torch.equal(x, before) and out.data_ptr() != x.data_ptr()
    assert data.to_float is da.to_float and data.random_crop_flip is da.random_crop_flip
    with pytest.raises(ValueError, match="mean must have 1 or 2 values"):
        da.to_float(x, (0.1, 0.2, 0.3), (1.0,))


def test_to_device_keeps_structure():
    Pair = namedtuple("Pair", "x y")
    batch = {"a": (torch.ones(2), [torch.zeros(1), 3]), "b": Pair(torch.ones(1), "s")}
    moved = da.to_device(batch, "meta")
    assert moved["a"][0].device.type == "meta" and moved["a"][1][0].device.type == "meta"
    assert moved["a"][1][1] == 3 and isinstance(moved["b"], Pair) and moved["b"].y == "s"
    assert moved["b"].x.is_meta and isinstance(moved["a"], tuple)
    cpu = da.to_device(batch, "cpu")
    assert torch.equal(cpu["a"][0], batch["a"][0])


def test_meta_device_runs_without_host_reads():
    x = torch.empty(4, 3, 32, 40, dtype=torch.uint8, device="meta")
    g = _gen(0)
    assert da.random_resized_crop_flip(x, 16, g).shape == (4, 3, 16, 16)
    assert da.random_crop_flip(x, 4, g).is_meta
    assert da.resize_center_crop(x, 24).shape == (4, 3, 24, 24)
    assert da.center_crop(x, 8).is_meta
    out = da.device_transform("imagenet", train=True, size=16, mean=(0.5,), std=(0.2,))(x, g)
    assert out.is_meta and out.dtype == torch.float32 and out.shape == (4, 3, 16, 16)


def test_device_transform_pipelines():
    x = torch.randint(0, 256, (5, 3, 12, 12), generator=_gen(0), dtype=torch.uint8)
    m, s = (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)
    cifar = da.device_transform("cifar", train=True, mean=m, std=s)(x, _gen(1))
    assert torch.equal(cifar, da.to_float(da.random_crop_flip(x, 4, _gen(1)), m, s))
    assert torch.equal(
        da.device_transform("cifar", train=False, mean=m, std=s)(x), da.to_float(x, m, s)
    )
    ev = da.device_transform("imagenet", train=False, size=8, mean=m, std=s)(x)
    assert torch.equal(ev, da.to_float(da.resize_center_crop(x, 8), m, s))
    tr = da.device_transform("imagenet", train=True, size=8, mean=m, std=s)(x, _gen(2))
    assert torch.equal(tr, da.to_float(da.random_resized_crop_flip(x, 8, _gen(2)), m, s))
    with pytest.raises(ValueError, match="kind must be"):
        da.device_transform("autoaugment", train=True, mean=m, std=s)
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        da.device_transform("imagenet", train=True, mean=m, std=s)
