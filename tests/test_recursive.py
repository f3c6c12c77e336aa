"""RecursiveMix: augment, ROI-Align, consistency loss, recipe and experiment."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixkit import losses, models, ops
from mixkit.augment import MixTransform
from mixkit.config import TrainConfig
from mixkit.methods.recursivemix import (
    FeatureModel,
    RecursiveMix,
    RecursiveMixStep,
    RoIHead,
    recursive_mix_loss,
)
from mixkit.methods.recursivemix.roi_align import roi_align
from mixkit.plots import save_recursive_mix_grid
from mixkit.train import atomic_save, load_checkpoint


def _batch(b: int, c: int = 1, h: int = 20, w: int = 28, seed: int = 0, k: int = 10):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=g), torch.randint(0, k, (b,), generator=g)


def _model(c: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return models.build_model("smallcnn", 10, c)


# ---------------------------------------------------------------- the augment


@pytest.mark.parametrize("per_sample", [False, True])
def test_first_batch_of_epoch_is_unchanged_with_lambda_one(per_sample):
    rm = RecursiveMix(0.5, per_sample=per_sample, num_classes=10, generator=0)
    x, y = _batch(6)
    x_before = x.clone()
    out, t = rm(x, y)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    assert torch.equal(rm.last_params.lam, torch.ones(6))
    assert torch.equal(t, ops.one_hot(y, 10))
    # the next batch mixes, and after reset() (epoch start) the first batch is clean again
    x2, y2 = _batch(6, seed=1)
    out2, _ = rm(x2, y2)
    assert bool((rm.last_params.lam < 1).any()) and not torch.equal(out2, x2)
    rm.reset()
    out3, t3 = rm(x2, y2)
    assert torch.equal(out3, x2) and torch.equal(t3, ops.one_hot(y2, 10))
    assert torch.equal(rm.last_params.lam, torch.ones(6))
    assert torch.equal(x, x_before)  # caller's tensor untouched


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_fused_labels_sum_to_one(smoothing):
    rm = RecursiveMix(0.5, per_sample=True, num_classes=10, label_smoothing=smoothing, generator=3)
    mixed_steps = 0
    for step in range(8):
        x, y = _batch(16, seed=step)
        _, t = rm(x, y)
        torch.testing.assert_close(t.sum(1), torch.ones(16), rtol=0, atol=1e-6)
        assert bool((t >= 0).all())
        mixed_steps += int((rm.last_params.lam < 1).any())
    assert mixed_steps == 7


@pytest.mark.parametrize("per_sample", [False, True])
def test_label_weight_k_steps_back_is_product_of_one_minus_lambda(per_sample):
    """Batch j carries class j only; after 3 recursive steps the weight of class j is
    λ_j · Π_{s>j} (1-λ_s) (λ_0 := 1)."""
    rm = RecursiveMix(0.5, per_sample=per_sample, num_classes=10, generator=11)
    lams = []
    for j in range(4):
        x, _ = _batch(5, seed=j)
        _, t = rm(x, torch.full((5,), j))
        lams.append(rm.last_params.lam.double())
    assert torch.equal(lams[0], torch.ones(5)) and all(bool((lam < 1).all()) for lam in lams[1:])
    one = torch.ones(5, dtype=torch.float64)
    expected = [
        (1 - lams[1]) * (1 - lams[2]) * (1 - lams[3]),  # 3 steps back
        lams[1] * (1 - lams[2]) * (1 - lams[3]),  # 2 steps back
        lams[2] * (1 - lams[3]),  # 1 step back
        lams[3] * one,  # current batch
    ]
    for j in range(4):
        torch.testing.assert_close(t[:, j].double(), expected[j], rtol=0, atol=1e-6)
    assert float(t[:, 4:].abs().max()) == 0.0


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_pasted_region_is_nearest_resized_previous_batch(per_sample, dtype):
    rm = RecursiveMix(0.5, per_sample=per_sample, num_classes=10, generator=5)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(7, 3, 20, 28, generator=g) * 255).to(dtype) for _ in range(4)]
    y = torch.zeros(7, dtype=torch.long)
    checked = 0
    rm(batches[0], y)
    for x in batches[1:]:
        previous = rm.history_images.clone()
        out = rm(x)
        boxes = rm.last_params.boxes
        if not per_sample:
            assert bool((boxes == boxes[0]).all())
        for i in range(7):
            x1, y1, x2, y2 = boxes[i].tolist()
            inside = torch.zeros(20, 28, dtype=torch.bool)
            inside[y1:y2, x1:x2] = True
            assert torch.equal(out[i][:, ~inside], x[i][:, ~inside])
            if x2 > x1 and y2 > y1:
                resized = F.interpolate(
                    previous[i : i + 1].float(), size=(y2 - y1, x2 - x1), mode="nearest"
                )[0].to(dtype)
                assert torch.equal(out[i, :, y1:y2, x1:x2], resized)
                checked += 1
            area = (x2 - x1) * (y2 - y1) / (20 * 28)
            assert float(rm.last_params.lam[i]) == pytest.approx(1 - area, abs=1e-6)
        # the stored history is the MIXED batch
        assert torch.equal(rm.history_images, out)
    assert checked >= 3


def test_bilinear_option_matches_interpolate():
    rm = RecursiveMix(0.5, "bilinear", num_classes=10, generator=2)
    x0, y = _batch(4, c=2, h=24, w=24)
    rm(x0, y)
    for seed in range(1, 4):
        x, y = _batch(4, c=2, h=24, w=24, seed=seed)
        previous = rm.history_images.clone()
        out, _ = rm(x, y)
        x1, y1, x2, y2 = rm.last_params.boxes[0].tolist()
        if x2 > x1 and y2 > y1:
            expected = F.interpolate(
                previous, size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=False
            )
            torch.testing.assert_close(out[:, :, y1:y2, x1:x2], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("per_sample", [True, False])
def test_mean_pasted_area_at_alpha_half_on_32x32(per_sample):
    rm = RecursiveMix(0.5, per_sample=per_sample, num_classes=10, generator=0)
    rm(torch.zeros(1, 1, 32, 32))  # a history, so draws are live
    if per_sample:
        lam = rm.draw((40000, 1, 32, 32)).lam.double()
    else:
        lam = torch.cat([rm.draw((1, 1, 32, 32)).lam.double() for _ in range(4000)])
    area = 1 - lam
    assert abs(float(area.mean()) - 0.17) <= 0.01, float(area.mean())
    assert float(area.max()) <= 0.5 and float(area.min()) >= 0.0


def test_same_seed_same_bytes_and_generator_override():
    def run(seed):
        rm = RecursiveMix(0.5, per_sample=True, num_classes=10, generator=seed)
        outs = [rm(*_batch(6, seed=s)) for s in range(3)]
        return torch.cat([o[0].flatten() for o in outs]), rm.last_params.boxes

    a, boxes_a = run(7)
    b, boxes_b = run(7)
    c, boxes_c = run(8)
    assert torch.equal(a, b) and torch.equal(boxes_a, boxes_b)
    assert not torch.equal(boxes_a, boxes_c)
    rm = RecursiveMix(num_classes=10, generator=1)
    rm(torch.zeros(2, 1, 32, 32))
    p1 = rm.draw((2, 1, 32, 32), generator=123)
    p2 = rm.draw((2, 1, 32, 32), generator=torch.Generator().manual_seed(123))
    assert torch.equal(p1.boxes, p2.boxes)
    assert isinstance(rm, MixTransform)


def test_short_last_batch_and_batch_of_one():
    rm = RecursiveMix(0.5, num_classes=10, generator=4)
    x, y = _batch(8)
    rm(x, y)
    for b in (3, 1):
        previous = rm.history_images.clone()
        xs, ys = _batch(b, seed=b)
        out, t = rm(xs, ys)
        x1, y1, x2, y2 = rm.last_params.boxes[0].tolist()
        if x2 > x1 and y2 > y1:
            resized = F.interpolate(previous[:b], size=(y2 - y1, x2 - x1), mode="nearest")
            assert torch.equal(out[:, :, y1:y2, x1:x2], resized)
        assert out.shape == (b, 1, 20, 28) and t.shape == (b, 10)
    with pytest.raises(ValueError, match="larger than the stored history"):
        rm(*_batch(2))


def test_full_step_with_batch_of_one_and_short_last_batch():
    model = _model()
    step = RecursiveMixStep(RecursiveMix(num_classes=10, generator=0), model.feature_dim, 0.5)
    used_roi = 0
    for b in (8, 8, 5, 1):
        x, y = _batch(b, h=28, w=28, seed=b)
        out = step(model, x, y)
        assert out.logits.shape == (b, 10) and torch.isfinite(out.loss)
        model.zero_grad()
        step.zero_grad()
        out.loss.backward()
        if step.roi_head.fc.weight.grad is not None:
            used_roi += 1
    assert used_roi == 3  # every step but the first of the epoch


# ---------------------------------------------------------------- the loss


def test_omega_zero_gives_exactly_the_loss_without_the_term():
    model = _model().eval()  # deterministic forward for the recomputation below
    step = RecursiveMixStep(RecursiveMix(num_classes=10, generator=0), model.feature_dim, 0.0)
    for s in range(3):
        out = step(model, *_batch(6, h=28, w=28, seed=s))
        plain = losses.soft_target_cross_entropy(model(step.mixer.history_images), out.targets)
        assert torch.equal(out.loss, plain)
    assert bool((out.params.lam < 1).all())
    logits, roi = torch.randn(4, 10), torch.randn(4, 10)
    targets = torch.softmax(torch.randn(4, 10), 1)
    base = losses.soft_target_cross_entropy(logits, targets)
    lam = torch.full((4,), 0.6)
    assert torch.equal(recursive_mix_loss(logits, targets, roi, torch.randn(4, 10), lam, 0.0), base)
    assert not torch.equal(recursive_mix_loss(logits, targets, roi, roi, lam, 0.1), base)


def test_consistency_term_value_uses_previous_logits():
    model = _model().eval()
    step = RecursiveMixStep(RecursiveMix(num_classes=10, generator=1), model.feature_dim, 0.5)
    step(model, *_batch(6, h=28, w=28))
    previous_logits = step.mixer.history_logits.clone()
    out = step(model, *_batch(6, h=28, w=28, seed=1))
    xm = step.mixer.history_images
    features = model.features(xm)
    roi_logits = step.roi_head(features, out.params.boxes, (28, 28))
    lam = float(out.params.lam[0])
    soft_old = torch.softmax(previous_logits, 1)
    expected = (
        losses.soft_target_cross_entropy(model.head(features), out.targets)
        + 0.5 * (1 - lam) * (-(soft_old * torch.log_softmax(roi_logits, 1)).sum(1)).mean()
    )
    torch.testing.assert_close(out.loss, expected, rtol=1e-6, atol=1e-6)
    assert lam < 1
    # per-sample λ weights each sample's term
    per = recursive_mix_loss(
        torch.zeros(2, 3),
        torch.eye(3)[:2],
        torch.zeros(2, 3),
        torch.zeros(2, 3),
        torch.tensor([1.0, 0.5]),
        1.0,
    )
    ln3 = torch.log(torch.tensor(3.0))
    torch.testing.assert_close(per, ln3 + 0.5 * 0.5 * ln3)


def test_share_head_and_user_model_wrapper():
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    model = FeatureModel(backbone, head, 8)
    step = RecursiveMixStep(RecursiveMix(num_classes=10, generator=0), 8, 0.5, share_head=True)
    for s in range(2):
        out = step(model, *_batch(4, c=3, h=16, w=16, seed=s))
    out.loss.backward()
    assert step.roi_head.fc.weight.grad is None and head[2].weight.grad is not None
    with pytest.raises(ValueError, match="FeatureModel"):
        step(nn.Linear(3, 3), *_batch(4, c=3, h=16, w=16))


# Every zoo family; the deep ones at a small size (their structure, not their depth, matters).
SMALL = {"pyramidnet": {"depth": 11, "alpha": 24}}
HEAVY = {"resnet101", "resnet50", "resnet110", "vgg19", "vgg16", "resnet32x4"}


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", sorted(set(models.names()) - HEAVY))
def test_step_works_with_every_mixkit_model(name):
    torch.manual_seed(0)
    model = models.build_model(name, 10, 3, **SMALL.get(name, {}))
    step = RecursiveMixStep(RecursiveMix(num_classes=10, generator=0), model.feature_dim, 0.5)
    for s in range(2):
        out = step(model, *_batch(2, c=3, h=16, w=16, seed=s))
    out.loss.backward()
    assert out.params.lam[0] < 1 and step.roi_head.fc.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- checkpoint


def test_state_dict_round_trip_through_checkpoint(tmp_path):
    def make(seed):
        model = _model()
        return model, RecursiveMixStep(
            RecursiveMix(num_classes=10, generator=seed), model.feature_dim, 0.1
        )

    model_a, a = make(0)
    for s in range(3):
        a(model_a, *_batch(5, h=28, w=28, seed=s))
    atomic_save({"model": model_a.state_dict(), "rm": a.state_dict()}, tmp_path / "c.pt")
    ckpt = load_checkpoint(tmp_path / "c.pt")  # weights_only=True
    model_b, b = make(99)
    model_b.load_state_dict(ckpt["model"])
    b.load_state_dict(ckpt["rm"])
    assert torch.equal(b.mixer.history_images, a.mixer.history_images)
    assert torch.equal(b.mixer.history_logits, a.mixer.history_logits)
    x, y = _batch(5, h=28, w=28, seed=7)
    out_a, out_b = a(model_a, x, y), b(model_b, x, y)
    assert torch.equal(out_a.params.boxes, out_b.params.boxes)  # generator state restored
    assert torch.equal(a.mixer.history_images, b.mixer.history_images)
    assert torch.equal(out_a.loss, out_b.loss)
    empty = RecursiveMix(num_classes=10)
    empty.load_state_dict(RecursiveMix(num_classes=10).state_dict())
    assert not empty.has_history
    with pytest.raises(ValueError, match="RecursiveMix state"):
        empty.set_extra_state({"images": None})


# ---------------------------------------------------------------- errors


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="alpha must be an area fraction"):
        RecursiveMix(0.0)
    with pytest.raises(ValueError, match="alpha must be an area fraction"):
        RecursiveMix(1.5)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        RecursiveMix(interpolation="bicubic")
    rm = RecursiveMix(num_classes=10)
    with pytest.raises(ValueError, match="remember"):
        rm.remember(torch.zeros(2, 10))
    rm(*_batch(2))
    with pytest.raises(ValueError, match=r"logits must have shape \(2, K\)"):
        rm.remember(torch.zeros(3, 10))
    with pytest.raises(ValueError, match="call reset"):
        rm(*_batch(2, c=3))
    with pytest.raises(ValueError, match="images and labels only"):
        rm(*_batch(2), masks=torch.zeros(2, 20, 28, dtype=torch.long))
    with pytest.raises(ValueError, match="num_classes is required"):
        RecursiveMixStep(RecursiveMix(), 8)
    with pytest.raises(ValueError, match="omega must be a number >= 0"):
        RecursiveMixStep(RecursiveMix(num_classes=3), 8, omega=-1)
    with pytest.raises(ValueError, match="omega must be >= 0"):
        recursive_mix_loss(torch.zeros(1, 2), torch.zeros(1, 2), omega=-0.1)
    with pytest.raises(ValueError, match="boxes must have shape"):
        RoIHead(8, 3)(torch.zeros(2, 8, 4, 4), torch.zeros(3, 4), (16, 16))
    with pytest.raises(ValueError, match=r"rm_alpha must be a number in \(0, 1\]"):
        TrainConfig(rm_alpha=2.0)
    with pytest.raises(ValueError, match="rm_interpolation must be"):
        TrainConfig(rm_interpolation="area")


# ---------------------------------------------------------------- ROI-Align


def _ramp(h: int, w: int) -> torch.Tensor:
    """(1, 1, H, W) with value W*y + x: bilinear interpolation of it is exact."""
    return torch.arange(h * w, dtype=torch.float64).view(1, 1, h, w)


@pytest.mark.parametrize("size", [4, 40])  # 4x4: dense-matrix path; 40x40: gather path
def test_roi_align_hand_computed(size):
    f = _ramp(size, size)
    s = float(size)

    def one(box, **kw):
        return roi_align(f, torch.tensor([[0.0, *box]], dtype=torch.float64), **kw)

    # box [0,2]^2, 2x2 samples per bin at 0.5/1.5 -> mean value s*1 + 1
    assert float(one([0, 0, 2, 2], output_size=1, sampling_ratio=2)) == pytest.approx(s + 1)
    # adaptive grid ceil(2/1)=2 gives the same points
    assert float(one([0, 0, 2, 2], output_size=1, sampling_ratio=-1)) == pytest.approx(s + 1)
    # aligned: shift -0.5 -> points at 0 and 1, mean at 0.5
    assert float(one([0, 0, 2, 2], output_size=1, sampling_ratio=2, aligned=True)) == pytest.approx(
        0.5 * s + 0.5
    )
    # 2x2 bins, one point per bin at bin centres
    bins = one([0, 0, 2, 2], output_size=2, sampling_ratio=1)[0, 0]
    expected = torch.tensor([[0.5 * s + 0.5, 0.5 * s + 1.5], [1.5 * s + 0.5, 1.5 * s + 1.5]])
    torch.testing.assert_close(bins, expected.double())
    # spatial_scale halves the box
    assert float(
        one([0, 0, 4, 4], output_size=1, sampling_ratio=2, spatial_scale=0.5)
    ) == pytest.approx(s + 1)
    # a point beyond the last pixel is clamped to it; a point left of -1 contributes 0
    edge = one([s - 1.5, s - 1.5, s + 0.5, s + 0.5], output_size=1, sampling_ratio=1)
    assert float(edge) == pytest.approx(s * s - 1)
    assert float(one([-3, -3, -2.5, -2.5], output_size=1, sampling_ratio=1)) == 0.0
    # an empty aligned box gives 0 (no sampling points)
    assert float(one([1, 1, 1, 1], output_size=1, aligned=True)) == 0.0


def test_roi_align_batch_index_list_format_and_gradients():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    boxes = [
        torch.tensor([[0.3, 0.2, 4.1, 3.9]]),
        torch.zeros(0, 4),
        torch.tensor([[1.0, 1, 5, 4]]),
    ]
    boxes = [b.double() for b in boxes]
    rois = torch.tensor([[0, 0.3, 0.2, 4.1, 3.9], [2, 1, 1, 5, 4]], dtype=torch.float64)
    torch.testing.assert_close(
        roi_align(x, boxes, 2, 1.0, -1, True), roi_align(x, rois, (2, 2), 1.0, -1, True)
    )
    third = rois[1:2].clone()
    third[0, 0] = 0
    torch.testing.assert_close(roi_align(x, rois[1:2], 2), roi_align(x[2:], third, 2))
    xi = torch.randn(2, 2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    r = torch.tensor([[1, 0.3, 0.2, 4.1, 3.9], [0, 1.5, 0.5, 3.0, 4.5]], dtype=torch.float64)
    for ratio in (-1, 1):  # -1: 4x4 points x 4 >= 25 pixels, dense path; 1: gather path
        assert torch.autograd.gradcheck(lambda t, q=ratio: roi_align(t, r, 1, 1.0, q, True), (xi,))
    with pytest.raises(ValueError, match="input must be a float tensor"):
        roi_align(torch.zeros(2, 5, 5), rois, 1)
    with pytest.raises(ValueError, match="output_size must be"):
        roi_align(x, rois, 0)
    with pytest.raises(ValueError, match="batch indices must lie in"):
        roi_align(x, torch.tensor([[3.0, 0, 0, 1, 1]]), 1)
    with pytest.raises(ValueError, match="spatial_scale must be"):
        roi_align(x, rois, 1, spatial_scale=0.0)
    with pytest.raises(ValueError, match=r"boxes must be a \(K, 5\) tensor"):
        roi_align(x, torch.zeros(2, 4), 1)


def test_roi_align_matches_torchvision():
    tv = pytest.importorskip(
        "torchvision",
        reason="torchvision not installed (optional 'peers' extra); run in the peers venv",
    )
    g = torch.Generator().manual_seed(0)
    for trial in range(40):
        h, w = (int(v) for v in torch.randint(1, 12, (2,), generator=g))
        x = torch.randn(2, 3, h, w, generator=g, dtype=torch.float64, requires_grad=True)
        scale = (1.0, 0.25, 0.5)[trial % 3]
        pts = torch.rand(6, 4, generator=g, dtype=torch.float64) * 1.4 - 0.2
        pts = pts * torch.tensor([w, h, w, h], dtype=torch.float64) / scale
        x1, x2 = pts[:, 0].minimum(pts[:, 2]), pts[:, 0].maximum(pts[:, 2])
        y1, y2 = pts[:, 1].minimum(pts[:, 3]), pts[:, 1].maximum(pts[:, 3])
        idx = torch.randint(0, 2, (6,), generator=g).double()
        rois = torch.stack([idx, x1, y1, x2, y2], 1)
        for aligned in (False, True):
            for ratio in (-1, 1, 2):
                for out_size in ((1, 1), (2, 3)):
                    ours = roi_align(x, rois, out_size, scale, ratio, aligned)
                    ref = tv.ops.roi_align(x, rois, out_size, scale, ratio, aligned)
                    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
                    (ga,) = torch.autograd.grad(ours.sum(), x)
                    (gb,) = torch.autograd.grad(ref.sum(), x)
                    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)
    f = torch.randn(4, 8, 7, 7)
    rois = torch.tensor([[i, 3.0, 5, 21, 23] for i in range(4)])
    torch.testing.assert_close(
        roi_align(f, rois, 1, 0.25, -1, True),
        tv.ops.roi_align(f, rois, 1, 0.25, -1, True),
        rtol=1e-5,
        atol=1e-6,
    )


def test_roi_head_keeps_batch_of_one():
    head = RoIHead(4, 3)
    f = torch.ones(1, 4, 7, 7)
    out = head(f, torch.tensor([[0, 0, 28, 28]]), (28, 28))
    assert out.shape == (1, 3)
    torch.testing.assert_close(out[0], head.fc(torch.ones(4)))


# ---------------------------------------------------------------- recipe + CLI + experiment


def test_train_recipe_with_recursivemix(tmp_path):
    from mixkit.cli import build_parser, config_from_args
    from mixkit.recipes import classify

    args = build_parser().parse_args(
        [
            "train",
            "--aug",
            "recursivemix",
            "--rm-alpha",
            "0.4",
            "--rm-omega",
            "0.3",
            "--rm-interpolation",
            "bilinear",
            "--rm-per-sample",
        ]
    )
    cfg = config_from_args(args, TrainConfig)
    assert (cfg.rm_alpha, cfg.rm_omega, cfg.rm_interpolation, cfg.rm_per_sample) == (
        0.4,
        0.3,
        "bilinear",
        True,
    )
    mixer = classify.build_mixer(cfg, 10)
    assert isinstance(mixer, RecursiveMix)
    assert (mixer.alpha, mixer.interpolation, mixer.per_sample) == (0.4, "bilinear", True)
    cfg = TrainConfig(
        dataset="digits",
        aug="recursivemix",
        epochs=1,
        out=str(tmp_path / "run"),
        progress=False,
        grid_samples=4,
    )
    summary = classify.run(cfg)
    assert 0.0 <= summary["test_acc"] <= 1.0
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert "mixer._extra_state" in ckpt["recursivemix"]
    assert "roi_head.fc.weight" in ckpt["recursivemix"]
    assert (tmp_path / "run" / "plots" / "mixed_samples.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="recursivemix"):
        classify.build_mixer(TrainConfig(aug="recursive"), 10)


def test_grid_leaves_the_mixer_untouched(tmp_path):
    from mixkit import data

    ds = data.load_dataset("digits")
    rm = RecursiveMix(num_classes=10, generator=0)
    state = rm.generator.get_state()
    path = save_recursive_mix_grid(ds, rm, 4, tmp_path / "g.png", seed=1)
    assert path.stat().st_size > 1000
    assert not rm.has_history and torch.equal(rm.generator.get_state(), state)


def test_replace_section_touches_only_its_section(tmp_path):
    from mixkit.experiments.markdown import replace_section

    path = tmp_path / "B.md"
    path.write_text("# T\n\n## 1. A\n\nkeep A\n\n## 3. R\n\nold\n\n## 4. K\n\nkeep K\n")
    replace_section(path, "## 3. R", "new table")
    assert (
        path.read_text()
        == "# T\n\n## 1. A\n\nkeep A\n\n## 3. R\n\nnew table\n\n## 4. K\n\nkeep K\n"
    )
    replace_section(path, "## 9. Z", "z")
    assert path.read_text().endswith("## 9. Z\n\nz\n")


def _experiment_argv(tmp_path, bench, *methods):
    return [
        *("experiment", "rm", "--datasets", "digits", "--methods", ",".join(methods)),
        *("--seeds", "0,1", "--epochs", "1", "--jobs", "1", "--out", str(tmp_path / "runs")),
        *("--write-docs", "--docs-dir", str(tmp_path / "docs"), "--benchmarks", str(bench)),
    ]


def test_experiment_table_numbers_and_direction(tmp_path, monkeypatch):
    """The table is the mean ± sample std of the runs' test accuracies (runs faked here)."""
    from mixkit.cli import main
    from mixkit.experiments import rm as rm_experiment

    fake = {"none": [0.90, 0.92], "cutmix": [0.93, 0.95], "recursivemix": [0.91, 0.97]}

    def train_one(cfg):
        assert cfg["crop_flip"] is True and cfg["flip"] is False  # pad-crop, no flip
        return {"test_acc": fake[cfg["aug"]][cfg["seed"]]}

    monkeypatch.setattr(rm_experiment, "_train_one", train_one)
    bench = tmp_path / "BENCHMARKS.md"
    bench.write_text("# b\n\n## 3. RecursiveMix replication\n\nold\n\n## 4. KD\n\nK\n")
    argv = _experiment_argv(tmp_path, bench, "baseline", "cutmix", "recursivemix")
    assert main(argv) == 0
    table = (tmp_path / "docs" / "rm_replication.md").read_text()
    assert "| baseline | 91.00 ± 1.41 |" in table  # std of (90, 92) = sqrt(2)
    assert "| cutmix | 94.00 ± 1.41 |" in table
    assert "| recursivemix | 94.00 ± 4.24 |" in table
    assert "- digits: holds (recursivemix 94.00 vs cutmix 94.00 vs baseline 91.00)" in table
    assert "--seeds 0,1" in table and "90.0 / 92.0" in table
    assert (tmp_path / "docs" / "rm_replication.png").stat().st_size > 1000
    text = bench.read_text()
    assert "\nold\n" not in text and "| cutmix | 94.00 ± 1.41 |" in text
    assert 'Settings: `{"alpha": 1.0' in text and '"seeds": "0,1"' in text
    assert text.endswith("## 4. KD\n\nK\n")
    fake["recursivemix"] = [0.90, 0.90]
    assert main(argv) == 0
    assert "- digits: does NOT hold" in (tmp_path / "docs" / "rm_replication.md").read_text()


@pytest.mark.slow
def test_experiment_command_trains_and_reuses_runs(tmp_path):
    from mixkit.cli import main

    bench = tmp_path / "BENCHMARKS.md"
    argv = _experiment_argv(tmp_path, bench, "baseline", "recursivemix")
    assert main(argv) == 0
    assert "| recursivemix |" in (tmp_path / "docs" / "rm_replication.md").read_text()
    assert (tmp_path / "runs" / "rm_baseline_curve.png").stat().st_size > 1000
    summary = tmp_path / "runs" / "digits" / "recursivemix" / "seed0" / "summary.json"
    mtime = summary.stat().st_mtime
    assert main(argv) == 0  # finished runs are reused, not retrained
    assert summary.stat().st_mtime == mtime


@pytest.mark.parametrize("per_sample", [True, False])
@pytest.mark.parametrize("p", [1.0, 0.5])
def test_draw_matches_the_torch_formula(per_sample, p):
    """The draw (numpy arithmetic on torch's random numbers) gives the bytes of the official
    rand_bbox written in torch: cut = floor(side * sqrt(U(0, alpha))) // 2 * 2, centre
    randint(side), clipped; the generator ends at the same position."""
    b, h, w, alpha = 7, 13, 9, 0.7
    rm = RecursiveMix(alpha, per_sample=per_sample, p=p, num_classes=10)
    rm(torch.zeros(b, 1, h, w))  # a history, so draws are live
    n = b if per_sample else 1
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        applied = torch.rand(n, dtype=torch.float64, generator=g) < p
        ratio = (alpha * torch.rand(n, dtype=torch.float64, generator=g)).sqrt()
        bh = torch.floor(ratio * h).long() // 2 * 2
        bw = torch.floor(ratio * w).long() // 2 * 2
        cy = torch.randint(0, h, (n,), generator=g)
        cx = torch.randint(0, w, (n,), generator=g)
        y1, x1 = cy - bh // 2, cx - bw // 2
        boxes = torch.stack([x1, y1, x1 + bw, y1 + bh], 1).clamp(min=0)
        boxes = torch.minimum(boxes, torch.tensor([w, h, w, h]))
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        lam = torch.where(applied, 1 - area.double() / (h * w), 1.0).float()
        g2 = torch.Generator().manual_seed(seed)
        got = rm.draw((b, 1, h, w), generator=g2)
        assert torch.equal(got.boxes, (boxes * applied.view(-1, 1)).expand(b, 4))
        assert got.lam.numpy().tobytes() == lam.expand(b).contiguous().numpy().tobytes()
        assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=g2))
