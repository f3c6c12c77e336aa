"""Semi-supervised building blocks (MeanTeacher, PSMT, DualTeacher) on any student, and the
``mixkit semiseg`` trainers on tiny on-disk VOC / Cityscapes fixtures with DeepLabv3+-R50
and a plug-in net, mixed precision and channels-last."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from mixkit.methods.semiseg import (
    PSMT,
    DualTeacher,
    MeanTeacher,
    SemisegConfig,
    build_seg_mixer,
    build_trainer,
)
from mixkit.methods.semiseg.datasets import voc_palette
from mixkit.methods.semiseg.teacher_updates import ema_update
from mixkit.recipes import semiseg

K = 4


class TinySeg(nn.Module):
    """A plug-in segmentation net: conv-BN-ReLU then a 1x1 classifier (logits at input size)."""

    def __init__(self, num_classes: int = K, in_channels: int = 3, width: int = 6) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def tiny_seg(num_classes: int, in_channels: int = 3, **kw) -> nn.Module:
    """``test_semiseg_methods:tiny_seg`` plug-in constructor (seeded: same init every call)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinySeg(num_classes, in_channels)


PLUGIN = "test_semiseg_methods:tiny_seg"


def params(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def buffers(net: nn.Module) -> list[torch.Tensor]:
    return [b.detach().clone() for b in net.buffers()]


def same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def batch(seed: int, b: int = 4, hw: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, hw, hw, generator=g), torch.randint(0, K, (b, hw, hw), generator=g)


def sgd_step(student: nn.Module, loss: torch.Tensor) -> None:
    for p in student.parameters():
        p.grad = None
    loss.backward()
    with torch.no_grad():
        for p in student.parameters():
            if p.grad is not None:
                p.sub_(0.5 * p.grad)


# ----------------------------------------------------------------------------- blocks
def test_mean_teacher_pseudo_labels_threshold_and_ema():
    student = tiny_seg(K)
    m = MeanTeacher(student, ema=0.9, threshold=0.3, mixer="none")
    xu, _ = batch(0)
    keep = xu.clone()
    out = m.prepare(xu, generator=torch.Generator().manual_seed(1))
    assert torch.equal(xu, keep)  # caller data untouched
    with torch.no_grad():
        probs = torch.softmax(m.teacher.train()(xu), 1)  # batch-statistics BN, as teacher_bn
    conf, label = probs.max(1)
    assert torch.equal(out.targets[0], label)
    assert torch.equal(out.weights[0], (conf >= 0.3).float())
    assert float(out.stats["pass_rate"]) == pytest.approx(float((conf >= 0.3).float().mean()))
    loss, stats = m.loss([student(out.inputs[0])], out)
    ce = F.cross_entropy(student(xu), label, reduction="none")
    assert float(loss.detach()) == pytest.approx(
        float((ce * (conf >= 0.3)).sum() / ce.numel()), rel=1e-5
    )
    t0, s0 = params(m.teacher), params(student)
    sgd_step(student, loss)
    m.update(1)
    for t, a, b in zip(m.teacher.parameters(), t0, student.parameters(), strict=True):
        assert torch.allclose(t, 0.9 * a + 0.1 * b)
    assert not same(params(student), s0)
    assert m.state_dict()["step"] == 1


def test_same_seed_same_bytes_and_state_roundtrip():
    def run(seed: int) -> tuple[torch.Tensor, MeanTeacher]:
        m = MeanTeacher(tiny_seg(K), threshold=0.0, num_classes=K, mixer="classmix")
        loss, _ = m.unsup_loss(batch(3)[0], generator=torch.Generator().manual_seed(seed))
        return loss.detach(), m

    (a, m), (b, _), (c, _) = run(5), run(5), run(6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    other = MeanTeacher(TinySeg(), threshold=0.0)
    other.load_state_dict(m.state_dict())
    assert same(params(other.teacher), params(m.teacher))
    with pytest.raises(ValueError, match="state is for method 'mt', not 'dualteacher'"):
        DualTeacher(TinySeg(), num_classes=K).load_state_dict(m.state_dict())


def test_dual_teacher_shifts_recopy_and_frozen_idle_teacher():
    student = tiny_seg(K)
    m = DualTeacher(student, num_classes=K, threshold=0.0)
    assert isinstance(m.classmix.mixer, type(build_seg_mixer("classmix", num_classes=K).mixer))
    seen = []
    for epoch in range(3):
        m.start_epoch(epoch)
        active, idle = m.active, ("t2" if m.active == "t1" else "t1")
        frozen = params(m.teachers()[idle]) + buffers(m.teachers()[idle])
        for i in range(2):
            xu, _ = batch(10 * epoch + i)
            loss, stats = m.unsup_loss(xu, generator=torch.Generator().manual_seed(i))
            assert set(stats) == {"pass_rate", "loss_unsup", "loss_ic"}
            sgd_step(student, loss)
            m.update(i + 1)
            if i == 0:  # a = min(1 - 1/1, 0.99) = 0: the active teacher IS the student
                assert same(params(m.teachers()[active]), params(student))
        assert not same(params(m.teachers()[active]), params(student))  # a = 0.5 at i = 1
        assert same(frozen, params(m.teachers()[idle]) + buffers(m.teachers()[idle]))
        seen.append(active)
    assert seen == ["t1", "t2", "t1"]


def test_dual_teacher_loss_terms():
    student = tiny_seg(K)
    m = DualTeacher(student, num_classes=K, threshold=0.0, ic_weight=0.25)
    out = m.prepare(batch(1)[0], generator=torch.Generator().manual_seed(0))
    assert len(out.inputs) == 2 and out.scales == (1.0, 0.25)
    logits = [student(x) for x in out.inputs]
    total, stats = m.loss(logits, out)
    assert float(total) == pytest.approx(float(stats["loss_unsup"] + 0.25 * stats["loss_ic"]))
    # threshold 0: every pixel is confident, so the weights are 1 and the terms plain CE means
    ic = F.cross_entropy(logits[1], out.targets[1])
    assert float(stats["loss_ic"]) == pytest.approx(float(ic), rel=1e-5)


def test_psmt_warmup_then_on_duty_teacher_only():
    student = tiny_seg(K)
    m = PSMT(student, threshold=0.0, warmup_epochs=1, rampup_steps=4)
    m.begin_warmup(lambda t: torch.optim.SGD(t.parameters(), lr=0.1))
    assert m.active == "warmup" and set(m.teacher_optimizers) == {"t1", "t2"}
    assert all(p.requires_grad for p in m.t1.parameters())
    m.start_epoch(1)
    assert m.teacher_optimizers is None and not any(p.requires_grad for p in m.t1.parameters())
    ramps = []
    for epoch, duty in ((1, "t1"), (2, "t2"), (3, "t1")):
        m.start_epoch(epoch)
        assert m.active == duty
        off = "t2" if duty == "t1" else "t1"
        snap = params(m.teachers()[off]) + buffers(m.teachers()[off])
        out = m.prepare(batch(epoch)[0], generator=torch.Generator().manual_seed(epoch))
        ramps.append(out.scales[0])
        loss, _ = m.loss([student(out.inputs[0])], out)
        sgd_step(student, loss)
        before = params(m.teachers()[duty])
        m.update(epoch)
        assert same(snap, params(m.teachers()[off]) + buffers(m.teachers()[off]))
        for t, a, s in zip(m.teachers()[duty].parameters(), before, student.parameters(),
                           strict=True):  # fmt: skip
            assert torch.allclose(t, 0.996 * a + 0.004 * s)
    # cosine ramp-up over 4 semi steps: weight 1.5 * (1 - (cos(pi t / 4) + 1) / 2), t = 0, 1, 2
    expect = [1.5 * (1 - (np.cos(np.pi * t / 4) + 1) / 2) for t in range(3)]
    assert ramps == pytest.approx(expect)
    assert not m.joint and m.labeled_view(batch(0)[0]).shape == (4, 3, 12, 12)


def test_block_errors():
    with pytest.raises(TypeError, match="student must be an nn.Module"):
        MeanTeacher(lambda x: x)
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\]"):
        MeanTeacher(TinySeg(), threshold=1.5)
    with pytest.raises(ValueError, match="num_classes is required for the classmix mixer"):
        MeanTeacher(TinySeg(), mixer="classmix")
    with pytest.raises(ValueError, match="vat needs a student with encode"):
        PSMT(TinySeg(), vat=True)
    m = MeanTeacher(TinySeg())
    with pytest.raises(ValueError, match=r"x_u must be float \(B, C, H, W\) images"):
        m.prepare(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"valid must be \(2, 4, 4\) bool"):
        m.prepare(torch.rand(2, 3, 4, 4), valid=torch.ones(2, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="teacher_bn must be one of"):
        DualTeacher(TinySeg(), num_classes=K, teacher_bn="train")


def test_ema_update_copies_integer_buffers():
    s, t = TinySeg(), TinySeg()
    s.train()(torch.rand(2, 3, 5, 5))  # num_batches_tracked 1 on the student
    ema_update(t, s, 0.5, buffers=True)
    assert int(t.body[1].num_batches_tracked) == 1


# ----------------------------------------------------------------------------- on-disk data
VOC_TRAIN = [f"2007_{i:06d}" for i in range(1, 7)]
VOC_VAL = ["2009_000001", "2009_000002"]
CITY = {"train": [("aachen", f"aachen_{i:06d}_000019") for i in range(6)],
        "val": [("frankfurt", "frankfurt_000000_000294")]}  # fmt: skip


def _image(path: Path, h: int, w: int, seed: int, fmt: str) -> None:
    g = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(g.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, fmt)


def _ids(h: int, w: int, k: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    m = g.integers(0, k, size=(h // 8 + 1, w // 8 + 1)).repeat(8, 0).repeat(8, 1)[:h, :w]
    m = m.astype(np.uint8)
    m[:, 0] = 255
    return m


def make_voc(root: Path, h: int = 40, w: int = 48) -> Path:
    """VOC2012 layout (JPEGImages, palette SegmentationClass, ImageSets val.txt) and UniMatch
    lists ``splits/{labeled,unlabeled}.txt`` (2 labeled, 4 unlabeled)."""
    for n, i in enumerate(VOC_TRAIN + VOC_VAL):
        _image(root / "JPEGImages" / f"{i}.jpg", h, w, n, "JPEG")
        im = Image.fromarray(_ids(h, w, 21, n), mode="P")
        im.putpalette(voc_palette())
        (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        im.save(root / "SegmentationClass" / f"{i}.png")
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "val.txt").write_text("".join(f"{i}\n" for i in VOC_VAL))
    lines = [f"JPEGImages/{i}.jpg SegmentationClass/{i}.png\n" for i in VOC_TRAIN]
    (root / "splits").mkdir(exist_ok=True)
    (root / "splits" / "labeled.txt").write_text("".join(lines[:2]))
    (root / "splits" / "unlabeled.txt").write_text("".join(lines[2:]))
    return root


def make_city(root: Path, h: int = 36, w: int = 72) -> Path:
    """Cityscapes layout (leftImg8bit PNGs, gtFine *_labelTrainIds.png) and lists."""
    lines = []
    for split, rows in CITY.items():
        for n, (c, stem) in enumerate(rows):
            img = f"leftImg8bit/{split}/{c}/{stem}_leftImg8bit.png"
            mask = f"gtFine/{split}/{c}/{stem}_gtFine_labelTrainIds.png"
            _image(root / img, h, w, n + 50, "PNG")
            (root / mask).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_ids(h, w, 19, n + 50), mode="L").save(root / mask)
            lines.append((split, f"{img} {mask}\n"))
    train = [ln for s, ln in lines if s == "train"]
    (root / "splits").mkdir(exist_ok=True)
    (root / "splits" / "labeled.txt").write_text("".join(train[:2]))
    (root / "splits" / "unlabeled.txt").write_text("".join(train[2:]))
    (root / "splits" / "val.txt").write_text("".join(ln for s, ln in lines if s == "val"))
    return root


def disk_cfg(root: Path, out: Path, dataset: str = "voc", **kw) -> SemisegConfig:
    base = dict(
        dataset=dataset, data_root=str(root), labeled_list="splits/labeled.txt",
        unlabeled_list="splits/unlabeled.txt", crop_size=33, batch_size=2,
        unlabeled_batch_size=2, epochs=2, iters_per_epoch=1, psmt_warmup_epochs=1,
        model=PLUGIN, distance_images=2, distance_every=1, out=str(out),
        mt_threshold=0.0, psmt_threshold=0.0, dt_threshold=0.0,
    )  # fmt: skip
    if dataset == "cityscapes":
        base["val_list"] = "splits/val.txt"
    base.update(kw)
    return SemisegConfig(**base)


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return make_voc(tmp_path_factory.mktemp("data") / "VOC2012")


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    return make_city(tmp_path_factory.mktemp("data") / "cityscapes")


METHOD_NAMES = ["sup", "mt", "psmt", "dualteacher"]


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_cityscapes_fixture_every_method_with_a_plugin_net(city, tmp_path, method):
    s = semiseg.run(disk_cfg(city, tmp_path / method, "cityscapes", method=method))
    assert s["dataset"] == "cityscapes" and s["steps"] == 2 and 0 <= s["val_miou"] <= 1
    assert list(s["val_iou"])[:2] == ["road", "sidewalk"] and len(s["val_iou"]) == 19
    assert s["num_labeled"] == 2 and s["num_unlabeled"] == 4
    rows = (tmp_path / method / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "pass_rate" in rows[0]
    if method != "sup":
        assert set(s["teacher_miou"]) and (tmp_path / method / "plots" / "distance.png").is_file()


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_voc_fixture_every_method_with_deeplabv3plus_r50(voc, tmp_path, method):
    """Two steps of each trainer with DeepLabv3+-R50 (33x33 crops, 2 + 2 images), then the
    val mIoU over the whole fixture images (no checkpoint files: 40M parameters each)."""
    cfg = disk_cfg(voc, tmp_path, method=method, model="deeplabv3plus_resnet50", epochs=1,
                   iters_per_epoch=2, psmt_warmup_epochs=0, distance_images=0,
                   distance_every=100, optimizer="sgd", lr=0.001)  # fmt: skip
    ds = semiseg.load_data(cfg)
    _, lab, unl = semiseg.resolve_split(cfg, ds)
    tr = build_trainer(cfg, ds, lab, unl)
    before = params(tr.student)
    row = tr.train_epoch()
    assert tr.step == 2 and not same(before, params(tr.student))
    assert 0 <= row["val_miou"] <= 1 and len(row["val_iou"]) == 21
    for name in tr.teachers():
        assert 0 <= row[f"{name}_miou"] <= 1 and row[f"dist_{name}"] > 0
    if method != "sup":
        assert float(row["pass_rate"]) > 0  # threshold 0: every valid pixel counts


def test_bf16_and_channels_last_step_on_cpu(voc, tmp_path):
    cfg = disk_cfg(voc, tmp_path / "amp", method="dualteacher", amp="bf16", channels_last=True,
                   epochs=1)  # fmt: skip
    s = semiseg.run(cfg)
    assert s["steps"] == 1 and not np.isnan(s["val_miou"])
    ckpt = torch.load(tmp_path / "amp" / "checkpoints" / "last.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values() if v.is_floating_point())
    with pytest.raises(ValueError, match="amp must be one of"):
        disk_cfg(voc, tmp_path, amp="fp8")


def test_disk_config_errors(voc, tmp_path):
    with pytest.raises(ValueError, match="data_root is required for dataset 'voc'"):
        SemisegConfig(dataset="voc")
    with pytest.raises(ValueError, match="model must be one of"):
        SemisegConfig(model="unet")
    with pytest.raises(ValueError, match="num_classes must be >= 1 for dataset 'folder'"):
        SemisegConfig(dataset="folder", data_root=str(voc))
    with pytest.raises(ValueError, match="labeled_list is required"):
        semiseg.run(disk_cfg(voc, tmp_path / "x", labeled_list=""))
    with pytest.raises(ValueError, match="head_lr_mult=10.0 needs a model with a 'backbone'"):
        semiseg.run(disk_cfg(voc, tmp_path / "y", head_lr_mult=10.0))


def _box_shift_weights(confidence: str, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-image CutMix weights of the box-mix shift, per-image share of confident pixels
    of the teacher on the UNMIXED images)."""
    m = DualTeacher(tiny_seg(K), num_classes=K, threshold=threshold, cutmix_confidence=confidence)
    m.start_epoch(0)
    x_u = batch(3)[0]
    probs = torch.softmax(m.teacher_logits(m.t1, m.normalise(x_u)), 1)
    unmixed_share = (probs.max(1).values >= threshold).float().flatten(1).mean(1)
    out = m.prepare(x_u, generator=torch.Generator().manual_seed(0))
    return out.weights[0][:, 0, 0], unmixed_share


def test_dual_teacher_cutmix_weight_counts_the_unmixed_confidence():
    # official cut_mixer mixes images and labels, never the confidence map it weights with
    m = DualTeacher(tiny_seg(K), num_classes=K)
    probs = torch.softmax(m.teacher_logits(m.t1, batch(3)[0]), 1)
    threshold = float(probs.max(1).values.median())  # about half the pixels pass
    weights, unmixed = _box_shift_weights("unmixed", threshold)
    assert torch.allclose(weights, unmixed)
    mixed, _ = _box_shift_weights("mixed", threshold)
    assert not torch.allclose(mixed, unmixed)
    with pytest.raises(ValueError, match="cutmix_confidence must be one of"):
        DualTeacher(tiny_seg(K), num_classes=K, cutmix_confidence="both")


def test_dual_teacher_classmix_swaps_a_batch_of_two():
    # official compute_classmix: shuffle_index = [1, 0] when b == 2, else randperm
    m = DualTeacher(tiny_seg(K), num_classes=K)
    labels = batch(0, b=2)[1]
    perms = [m.classmix_pair.draw((2, 3, 12, 12), torch.Generator().manual_seed(s),
                                  label_maps=labels).perm.tolist() for s in range(20)]  # fmt: skip
    assert all(p == [1, 0] for p in perms)
    plain = [m.classmix.draw((2, 3, 12, 12), torch.Generator().manual_seed(s),
                             label_maps=labels).perm.tolist() for s in range(20)]  # fmt: skip
    assert [0, 1] in plain  # the random pairing alone leaves the pair unmixed at times


def _official_rand_bbox_1(n: int, size: int, seed: int) -> np.ndarray:
    """(n, 4) boxes x1, y1, x2, y2 of the official ``rand_bbox_1`` (Dual Teacher
    ``seg_core/augmentations.py``, PS-MT ``VocCode/train.py``), re-derived in numpy with one
    λ ~ Beta(4, 4) per sample: cut = int(S * sqrt(1 - λ)), c ~ randint(S // 8, S),
    box = clip(c -/+ cut // 2, 0, S)."""
    rng = np.random.default_rng(seed)
    cut = (size * np.sqrt(1.0 - rng.beta(4.0, 4.0, n))).astype(np.int64)
    cx, cy = rng.integers(size // 8, size, n), rng.integers(size // 8, size, n)
    lo = lambda c: np.clip(c - cut // 2, 0, size)  # noqa: E731
    hi = lambda c: np.clip(c + cut // 2, 0, size)  # noqa: E731
    return np.stack([lo(cx), lo(cy), hi(cx), hi(cy)], axis=1)


class TestRandBbox1BoxLaw:
    """The semi-supervised cutmix draws the official ``rand_bbox_1`` boxes by default; the
    uniform law (``cutmix_box="uniform"``) is told apart."""

    N, SIZE = 20_000, 48

    def _boxes(self, box: str) -> np.ndarray:
        from mixkit.methods.semiseg.mix import build_seg_mixer

        mixer = build_seg_mixer("cutmix", num_classes=3, per_sample_lam=True, box=box)
        mixer.mixer.pairing = "cycle"  # no self-pairs, so every sample carries its box
        p = mixer.mixer.draw((self.N, 3, self.SIZE, self.SIZE), torch.Generator().manual_seed(0))
        return p.boxes.numpy()

    def test_default_box_law_matches_a_rederivation(self):
        from scipy.stats import ks_2samp

        ours, official = self._boxes("official"), _official_rand_bbox_1(self.N, self.SIZE, 1)
        for col in range(4):  # each coordinate's distribution
            assert ks_2samp(ours[:, col], official[:, col]).pvalue > 1e-3, col
        area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
        assert abs(area(ours).mean() - area(official).mean()) < 0.01 * self.SIZE**2
        uniform = self._boxes("uniform")
        assert ks_2samp(uniform[:, 0], official[:, 0]).pvalue < 1e-6
        assert official[:, 0].mean() - uniform[:, 0].mean() > 1.0  # centres shifted right

    def test_box_law_is_a_config_option(self):
        from mixkit.methods.semiseg.config import SemisegConfig
        from mixkit.methods.semiseg.mix import RandBbox1CutMix, build_seg_mixer

        assert SemisegConfig().cutmix_box == "official"
        assert isinstance(build_seg_mixer("cutmix", num_classes=3).mixer, RandBbox1CutMix)
        with pytest.raises(ValueError, match="box must be 'official' or 'uniform'"):
            build_seg_mixer("cutmix", num_classes=3, box="centre")
        with pytest.raises(ValueError, match="cutmix_box"):
            SemisegConfig(cutmix_box="centre")
