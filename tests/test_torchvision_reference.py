"""Reference equivalence with torchvision.transforms.v2 ``MixUp`` / ``CutMix`` on a fixed λ
and box.

torchvision v2 semantics (``torchvision/transforms/v2/_augment.py``, documented in the
class docstrings and the v2 gallery ``plot_cutmix_mixup.py``):

- pairing: sample i is mixed with ``batch.roll(1, 0)[i] = batch[i - 1]`` (mixkit pairing
  ``"roll"``); one λ and one box for the whole batch (mixkit ``mode="batch"``).
- MixUp: ``x.roll(1, 0).mul(1 - λ).add(x.mul(λ))``; labels ``one_hot(y)`` mixed the same way.
- CutMix: centre ``r_x ~ U{0..W-1}``, ``r_y ~ U{0..H-1}``; half sides
  ``int(0.5*sqrt(1-λ)*W)``, ``int(0.5*sqrt(1-λ)*H)``; the box is clipped to the image;
  ``x[..., y1:y2, x1:x2] = x.roll(1, 0)[..., y1:y2, x1:x2]``; labels mixed with
  ``λ = 1 - box_area / (H*W)``.

The expected tensors are written from that description below; mixkit is driven through its
params/apply API with the same λ, box and pairing. When torchvision is importable (optional
extra ``[peers]``) the same inputs also go through torchvision itself.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mixkit import ops
from mixkit.augment import CutMix, Kind, MixParams, MixUp

B, C, H, W, K = 5, 3, 12, 17, 6
LAM_MIXUP = 0.3
LAM_CUTMIX = 0.55
CENTRES = [(16, 2), (3, 11), (8, 6), (0, 0)]  # (r_x, r_y): clipped right/top, bottom, none, corner


def _batch(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (B, C, H, W), generator=g).to(dtype)
    if dtype.is_floating_point:
        x = x / 255
    return x, torch.randint(0, K, (B,), generator=g)


def tv_cutmix_box(lam: float, r_x: int, r_y: int) -> tuple[tuple[int, int, int, int], float]:
    """torchvision v2 ``CutMix.make_params`` for a given λ and centre, written by hand."""
    r = 0.5 * math.sqrt(1.0 - lam)
    r_w_half, r_h_half = int(r * W), int(r * H)
    x1, y1 = max(r_x - r_w_half, 0), max(r_y - r_h_half, 0)
    x2, y2 = min(r_x + r_w_half, W), min(r_y + r_h_half, H)
    return (x1, y1, x2, y2), 1.0 - (x2 - x1) * (y2 - y1) / (W * H)


def expected_mixup(x, y, lam):
    yh = F.one_hot(y, K).float()
    return x.roll(1, 0) * (1 - lam) + x * lam, yh.roll(1, 0) * (1 - lam) + yh * lam


def expected_cutmix(x, y, box, lam_adj):
    x1, y1, x2, y2 = box
    out = x.clone()
    out[..., y1:y2, x1:x2] = x.roll(1, 0)[..., y1:y2, x1:x2]
    yh = F.one_hot(y, K).float()
    return out, yh.roll(1, 0) * (1 - lam_adj) + yh * lam_adj


def mixkit_params(kind: Kind, lam: float, box=(0, 0, 0, 0)) -> MixParams:
    return MixParams(
        kind=torch.full((B,), int(kind)),
        lam=torch.full((B,), lam),
        perm=ops.sample_pairing(B, "roll", None),
        boxes=torch.tensor([box] * B),
        size=(H, W),
    )


# ====================================================================== by hand


class TestAgainstDocumentedSemantics:
    def test_roll_pairing_is_torchvision_pairing(self):
        x, _ = _batch()
        assert torch.equal(x[ops.sample_pairing(B, "roll", None)], x.roll(1, 0))

    def test_mixup(self):
        x, y = _batch()
        res = MixUp(num_classes=K).apply(mixkit_params(Kind.BLEND, LAM_MIXUP), x, y)
        ex, ey = expected_mixup(x, y, LAM_MIXUP)
        torch.testing.assert_close(res.images, ex, rtol=0, atol=1e-6)
        torch.testing.assert_close(res.labels, ey, rtol=0, atol=1e-6)

    @pytest.mark.parametrize("centre", CENTRES)
    @pytest.mark.parametrize("dtype", [torch.float32, torch.uint8], ids=str)
    def test_cutmix(self, centre, dtype):
        x, y = _batch(dtype)
        box, lam_adj = tv_cutmix_box(LAM_CUTMIX, *centre)
        res = CutMix(num_classes=K).apply(mixkit_params(Kind.CROP, lam_adj, box), x, y)
        ex, ey = expected_cutmix(x, y, box, lam_adj)
        assert torch.equal(res.images, ex)
        torch.testing.assert_close(res.labels, ey, rtol=0, atol=1e-6)
        # λ is the exact kept pixel fraction, as in torchvision's lam_adjusted
        kept = (res.images == x).all(1).flatten(1).double().mean(1)
        assert torch.allclose(kept, torch.full((B,), lam_adj, dtype=torch.float64), atol=1e-12)

    def test_mixkit_batch_draw_matches_the_reference_for_its_own_box(self):
        """mixkit's own draw (batch mode, roll pairing) applied == the torchvision formula
        with the λ and box it drew. Box size conventions differ: mixkit side
        round(W*sqrt(1-λ)), torchvision 2*int(0.5*sqrt(1-λ)*W)."""
        x, y = _batch()
        t = CutMix(num_classes=K, mode="batch", pairing="roll", generator=3)
        for _ in range(5):
            out, lab = t(x, y)
            p = t.last_params
            assert bool((p.boxes == p.boxes[0]).all()) and bool((p.lam == p.lam[0]).all())
            box = tuple(int(v) for v in p.boxes[0])
            lam_adj = 1 - (box[2] - box[0]) * (box[3] - box[1]) / (H * W)
            assert float(p.lam[0]) == pytest.approx(lam_adj, abs=1e-7)
            ex, ey = expected_cutmix(x, y, box, lam_adj)
            assert torch.equal(out, ex)
            torch.testing.assert_close(lab, ey, rtol=0, atol=1e-6)


# ====================================================================== torchvision itself


@pytest.fixture(scope="module")
def tv2():
    pytest.importorskip(
        "torchvision",
        reason="torchvision not installed: optional extra [peers] not installed",
    )
    from torchvision.transforms import v2

    return v2


def _run_tv(transform, make_params: dict, x, y):
    """Call the torchvision transform through its public forward with fixed params."""
    transform.make_params = lambda flat_inputs: dict(make_params)
    return transform(x, y)


class TestAgainstTorchvision:
    def test_mixup(self, tv2):
        x, y = _batch()
        tx, ty = _run_tv(tv2.MixUp(num_classes=K), {"lam": LAM_MIXUP}, x, y)
        res = MixUp(num_classes=K).apply(mixkit_params(Kind.BLEND, LAM_MIXUP), x, y)
        torch.testing.assert_close(res.images, tx, rtol=0, atol=1e-6)
        torch.testing.assert_close(res.labels, ty, rtol=0, atol=1e-6)

    @pytest.mark.parametrize("centre", CENTRES)
    @pytest.mark.parametrize("dtype", [torch.float32, torch.uint8], ids=str)
    def test_cutmix(self, tv2, centre, dtype):
        x, y = _batch(dtype)
        box, lam_adj = tv_cutmix_box(LAM_CUTMIX, *centre)
        tx, ty = _run_tv(tv2.CutMix(num_classes=K), {"box": box, "lam_adjusted": lam_adj}, x, y)
        res = CutMix(num_classes=K).apply(mixkit_params(Kind.CROP, lam_adj, box), x, y)
        assert torch.equal(res.images, tx)
        torch.testing.assert_close(res.labels, ty, rtol=0, atol=1e-6)

    def test_hand_written_box_matches_torchvision_make_params(self, tv2):
        """Our transcription of CutMix.make_params reproduces torchvision's own draw."""
        x, y = _batch()
        cm = tv2.CutMix(num_classes=K)
        for seed in range(20):
            torch.manual_seed(seed)
            params = cm.make_params([x])
            torch.manual_seed(seed)
            lam = float(cm._dist.sample(()))
            r_x = int(torch.randint(W, size=(1,)))
            r_y = int(torch.randint(H, size=(1,)))
            box, lam_adj = tv_cutmix_box(lam, r_x, r_y)
            assert params["box"] == box
            assert params["lam_adjusted"] == pytest.approx(lam_adj, abs=1e-12)
