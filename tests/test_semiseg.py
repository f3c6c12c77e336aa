"""Semi-supervised segmentation: data and splits, mixers, mIoU, trainers' teacher
updates, checkpoint state and the ``mixkit semiseg`` command."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math

import pytest
import torch

from mixkit import augment, ops
from mixkit.augment import Kind
from mixkit.cli import main
from mixkit.methods.semiseg import (
    IGNORE,
    DualTeacherTrainer,
    MeanTeacherTrainer,
    PSMTTrainer,
    SemisegConfig,
    bn_mode,
    build_seg_dataset,
    build_seg_mixer,
    build_trainer,
    confusion_matrix,
    ema_update,
    ensure_split,
    iou_from_confusion,
    load_split,
    make_split,
    miou,
    write_split,
)
from mixkit.methods.semiseg.data import cached_seg_dataset
from mixkit.methods.semiseg.distance import param_distance, prediction_gap
from mixkit.methods.semiseg.net import SegNet
from mixkit.methods.semiseg.views import strong_colour, weak_view
from mixkit.train import load_checkpoint

TINY = {"n_train": 64, "n_val": 16, "size": 48, "max_digits": 3, "texture_p": 0.5, "seed": 0}


@pytest.fixture(scope="module")
def ds():
    return cached_seg_dataset(64, 16, 48, 3, 0.5, 0)


def tiny_cfg(tmp_path, **kw) -> SemisegConfig:
    base = dict(
        n_train=64, n_val=16, width=4, epochs=3, iters_per_epoch=3, batch_size=4,
        unlabeled_batch_size=4, split="1/4", distance_images=8, distance_every=1,
        out=str(tmp_path / "run"), psmt_warmup_epochs=1, pretrain_steps=0,
    )  # fmt: skip
    base.update(kw)
    return SemisegConfig(**base)


def trainer_for(tmp_path, ds, method, **kw):
    cfg = tiny_cfg(tmp_path, method=method, **kw)
    _, lab, unl = ensure_split(ds, cfg.split, cfg.protocol, 0, tmp_path / "splits")
    return build_trainer(cfg, ds, lab, unl)


def params_of(net):
    return [p.detach().clone() for p in net.parameters()]


def buffers_of(net):
    return [b.detach().clone() for b in net.buffers()]


def same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# ----------------------------------------------------------------------------- data
class TestData:
    def test_deterministic_from_seed(self, ds):
        again = build_seg_dataset(**TINY)
        assert torch.equal(again.train.images, ds.train.images)
        assert torch.equal(again.val.labels, ds.val.labels)
        assert again.fingerprint == ds.fingerprint
        other = build_seg_dataset(**{**TINY, "seed": 1})
        assert not torch.equal(other.train.images, ds.train.images)
        assert other.fingerprint != ds.fingerprint

    def test_labels_and_shapes(self, ds):
        assert ds.train.images.shape == (64, 3, 48, 48) and ds.train.images.dtype == torch.uint8
        values = set(torch.unique(ds.train.labels).tolist())
        assert values <= set(range(11)) | {IGNORE} and {0, IGNORE} <= values
        assert len(values - {0, IGNORE}) >= 5  # several digit classes occur
        # every labelled digit pixel belongs to one of the canvas's source digits' classes
        for i in range(8):
            used = ds.train.digits[i][ds.train.digits[i] >= 0]
            classes = {int(c) + 1 for c in ds.source_train_y[used]}
            present = set(torch.unique(ds.train.labels[i]).tolist()) - {0, IGNORE}
            assert present <= classes
        # the ignore band is exactly the one-pixel ring outside the strokes
        stroke = (ds.train.labels > 0) & (ds.train.labels != IGNORE)
        ring = torch.nn.functional.max_pool2d(stroke.float()[:, None], 3, 1, 1)[:, 0] > 0
        assert torch.equal(ds.train.labels == IGNORE, ring & ~stroke)

    def test_train_val_disjoint_at_digit_level(self, ds):
        def digests(pool, idx):
            idx = idx[idx >= 0].unique()
            return {hashlib.sha1(pool[i].numpy().tobytes()).hexdigest() for i in idx.tolist()}

        tr = digests(ds.source_train, ds.train.digits.flatten())
        va = digests(ds.source_val, ds.val.digits.flatten())
        assert len(tr) > 60 and len(va) > 15
        assert tr.isdisjoint(va)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="size must be an int >= 16"):
            build_seg_dataset(size=8)
        with pytest.raises(ValueError, match="texture_p must be in"):
            build_seg_dataset(texture_p=2.0)


class TestSplits:
    def test_random_fraction_and_partition(self, ds):
        rec = make_split(ds, "1/16", "random", seed=3)
        assert rec["num_labeled"] == 4  # round(64 / 16)
        assert sorted(rec["labeled"] + rec["unlabeled"]) == list(range(64))
        assert rec == make_split(ds, "1/16", "random", seed=3)
        assert rec["labeled"] != make_split(ds, "1/16", "random", seed=4)["labeled"]

    def test_high_quality_protocols(self, ds):
        hq = set(torch.nonzero(ds.train.hq).flatten().tolist())
        n_hq = len(hq)
        assert 5 < n_hq < 64
        rec = make_split(ds, "1/4", "hq", seed=0)
        assert set(rec["labeled"]) <= hq
        assert rec["num_labeled"] == math.floor(n_hq / 4 + 0.5)
        small = make_split(ds, "1/16", "hq_first", seed=0)  # 4 < n_hq: all from HQ
        assert set(small["labeled"]) <= hq and small["num_labeled"] == 4
        big = make_split(ds, "1/2", "hq_first", seed=0)  # 32 > n_hq: every HQ canvas first
        assert hq <= set(big["labeled"]) and big["num_labeled"] == 32
        rand = make_split(ds, "1/2", "random", seed=0)
        assert rand["num_hq_labeled"] < n_hq

    def test_files_roundtrip_and_checks(self, ds, tmp_path):
        path, lab, unl = ensure_split(ds, "1/8", "hq_first", 0, tmp_path)
        assert path.is_file() and path.name.startswith("hq_first_1-8_seed0_")
        rec = json.loads(path.read_text())
        assert lab.tolist() == rec["labeled"] and unl.tolist() == rec["unlabeled"]
        bad = dict(rec, fingerprint="0" * 64)
        write_split(bad, tmp_path / "bad.json")
        with pytest.raises(ValueError, match="was made for dataset"):
            load_split(tmp_path / "bad.json", ds)
        write_split(dict(rec, labeled=rec["labeled"][:-1]), tmp_path / "hole.json")
        with pytest.raises(ValueError, match="must partition"):
            load_split(tmp_path / "hole.json", ds)
        with pytest.raises(FileNotFoundError, match="split file not found"):
            load_split(tmp_path / "nope.json", ds)
        with pytest.raises(ValueError, match="split must be one of"):
            make_split(ds, "1/3", "random")
        with pytest.raises(ValueError, match="protocol must be one of"):
            make_split(ds, "1/4", "fine")


# ----------------------------------------------------------------------------- mixers
def _batch(b=6, h=20, w=24, k=5, seed=0):
    """Images whose every pixel encodes (sample, position) so any moved pixel is traceable;
    label maps with per-sample class sets; probability maps; validity masks."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)
    images = (
        (torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1) * 1000 + pos)
        .expand(b, 3, h, w)
        .clone()
    )
    labels = torch.randint(0, k, (b, h, w), generator=g)
    labels[:, 0, :3] = IGNORE
    probs = torch.rand(b, k, h, w, generator=g)
    valid = torch.rand(b, h, w, generator=g) > 0.2
    return images, labels, probs, valid


@pytest.mark.parametrize("name", ["cutmix", "multibox", "fmix", "classmix"])
def test_mixed_masks_follow_image_paste_region_exactly(name):
    images, labels, probs, valid = _batch()
    mixer = build_seg_mixer(name, num_classes=5)
    params = mixer.draw(images.shape, torch.Generator().manual_seed(1), label_maps=labels)
    m = mixer.apply(params, images=images, probs=probs, labels=labels, valid=valid)
    b = images.shape[0]
    perm = params.perm
    partner_img = images[perm]
    from_partner = (m.images == partner_img).all(1) & (m.images != images).all(1)
    from_self = (m.images == images).all(1)
    assert bool((from_partner | from_self).all())  # every pixel is exactly one source's
    region = from_partner
    expect_lab = torch.where(region, labels[perm], labels)
    assert torch.equal(m.labels, expect_lab)
    assert torch.equal(m.probs, torch.where(region[:, None], probs[perm], probs))
    assert torch.equal(m.valid, torch.where(region, valid[perm], valid))
    # only class ids of the two sources (or 255) appear
    for i in range(b):
        src = set(labels[i].unique().tolist()) | set(labels[perm[i]].unique().tolist())
        assert set(m.labels[i].unique().tolist()) <= src | {IGNORE}
    # λ is the exact kept fraction; self-paired samples are untouched and marked NONE
    assert torch.allclose(params.lam.double(), 1 - region.flatten(1).double().mean(1), atol=1e-6)
    own = perm == torch.arange(b)
    assert bool((params.kind[own] == Kind.NONE).all()) and not bool(region[own].any())
    if name == "cutmix":  # the region is the drawn box
        from mixkit.ops import box_mask

        boxed = box_mask(params.boxes, 20, 24)[:, 0]
        assert torch.equal(region, boxed & ~own.view(-1, 1, 1))
    assert not torch.equal(m.images, images)  # something was mixed
    assert images[0, 0, 0, 0] == 0 and labels.shape == (b, 20, 24)  # inputs untouched


def _seg_cut(**kwargs):
    return build_seg_mixer("cutmix", num_classes=3, **kwargs)


def test_cutmix_one_lambda_per_batch_unless_per_sample():
    assert _seg_cut().mixer.share_lam and not _seg_cut(per_sample_lam=True).mixer.share_lam
    # share_lam=True: the kept fraction of unclipped boxes is one value up to rounding.
    mixer = augment.CutMix(4.0, share_lam=True, correct_lam=False)
    p = mixer.draw((16, 1, 400, 400), torch.Generator().manual_seed(1))
    assert float(p.lam.max() - p.lam.min()) < 0.01
    per = augment.CutMix(4.0, share_lam=False, correct_lam=False)
    p = per.draw((16, 1, 400, 400), torch.Generator().manual_seed(1))
    assert len(set(p.lam.tolist())) >= 14  # λ per sample (two boxes may round alike)
    # Beta(4, 4): mean 1/2, variance 1/36
    many = per.draw((20000, 1, 400, 400), torch.Generator().manual_seed(1)).lam.double()
    assert abs(float(many.mean()) - 0.5) < 0.01 and abs(float(many.var()) - 1 / 36) < 0.003


@pytest.mark.parametrize("half", ["floor", "ceil"])
def test_classmix_mask_selects_exactly_the_chosen_classes(half):
    _, labels, _, _ = _batch(b=8, k=6, seed=3)
    labels[2] = torch.where((labels[2] > 2) & (labels[2] != IGNORE), 0, labels[2])  # fewer
    labels[5] = torch.where(labels[5] == IGNORE, IGNORE, 4)  # a single class
    mixer = augment.ClassMix(6, half=half, pairing="cycle")
    params = mixer.draw((8, 3, 20, 24), torch.Generator().manual_seed(2), label_maps=labels)
    chosen = mixer.last_classes
    for i in range(8):
        p = int(params.perm[i])
        present = set(labels[p].unique().tolist()) - {IGNORE}
        picked = set(torch.nonzero(chosen[i]).flatten().tolist())
        assert picked <= present
        n = len(present)
        assert len(picked) == (n // 2 if half == "floor" else (n + 1) // 2)
        expect = torch.isin(labels[p], torch.tensor(sorted(picked), dtype=torch.long))
        assert torch.equal(params.mask[i], expect)
    assert not bool(params.mask[:, 0, :3].any())  # ignore pixels are never a class


def test_select_half_classes_and_mixer_errors():
    maps = torch.tensor([[[0, 1], [2, 3]], [[1, 1], [1, 255]]])
    sel = ops.sample_classmix_classes(maps, 4, torch.Generator().manual_seed(0), half="floor")
    assert sel.sum(1).tolist() == [2, 0]  # floor(4/2), floor(1/2)
    sel = ops.sample_classmix_classes(maps, 4, torch.Generator().manual_seed(0), half="ceil")
    assert sel.sum(1).tolist() == [2, 1]
    with pytest.raises(ValueError, match="half must be one of"):
        ops.sample_classmix_classes(maps, 4, None, half="round")
    with pytest.raises(ValueError, match="mix must be one of"):
        build_seg_mixer("mosaic", num_classes=3)
    with pytest.raises(ValueError, match="label_maps .* are required"):
        build_seg_mixer("classmix", num_classes=3).draw((2, 3, 4, 4), None)
    with pytest.raises(ValueError, match="alpha must be a number > 0"):
        _seg_cut(alpha=0)
    cut = _seg_cut()
    params = cut.draw((2, 3, 4, 4), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="probs must be"):
        cut.apply(params, probs=torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="valid must be"):
        cut.apply(params, valid=torch.ones(2, 4, 4))
    a = cut.draw((4, 3, 9, 9), torch.Generator().manual_seed(5))
    b = cut.draw((4, 3, 9, 9), torch.Generator().manual_seed(5))
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.perm, b.perm)


# ----------------------------------------------------------------------------- metrics
class TestMetrics:
    def test_matches_hand_computed_confusion_matrix(self):
        target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 0]])
        pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
        cm = confusion_matrix(pred, target, 4)
        # rows = truth, cols = prediction; the 255 pixel is skipped; class 3 never occurs
        expect = torch.tensor([[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
        assert torch.equal(cm, expect)
        iou = iou_from_confusion(cm)
        # IoU0 = 2/(3+3-2), IoU1 = 2/(2+3-2), IoU2 = 1/(2+1-1), class 3 absent -> NaN
        assert torch.allclose(iou[:3], torch.tensor([0.5, 2 / 3, 0.5], dtype=torch.float64))
        assert math.isnan(float(iou[3]))
        assert miou(cm) == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)

    def test_errors(self):
        with pytest.raises(ValueError, match="must match"):
            confusion_matrix(torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long), 2)
        with pytest.raises(ValueError, match="target ids must lie"):
            confusion_matrix(torch.zeros(2, dtype=torch.long), torch.tensor([0, 7]), 2)
        with pytest.raises(ValueError, match="integer class-id"):
            confusion_matrix(torch.zeros(2), torch.zeros(2, dtype=torch.long), 2)


# ----------------------------------------------------------------------------- views
def test_weak_view_moves_labels_with_images_and_marks_padding():
    images = torch.randint(0, 256, (4, 3, 12, 12), dtype=torch.uint8)
    labels = torch.randint(0, 5, (4, 12, 12), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    x, y, valid = weak_view(images, labels, 3, g)
    x2, y2, v2 = weak_view(images, None, 3, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2) and torch.equal(valid, v2) and bool((y2 == IGNORE).all())
    assert torch.equal(y == IGNORE, ~valid)  # the padded border is exactly the ignore area
    assert bool((~valid).any())
    for i in range(4):  # each output is a shifted copy: find the shift and check the labels
        hits = [
            (dy, dx)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
            if torch.equal(
                x[i][:, valid[i]],
                torch.roll(images[i], (dy, dx), (1, 2))[:, valid[i]],
            )
        ]
        dy, dx = hits[0]
        assert torch.equal(y[i][valid[i]], torch.roll(labels[i], (dy, dx), (0, 1))[valid[i]])


def test_strong_colour_is_seeded_and_pure():
    x = torch.rand(5, 3, 10, 10)
    keep = x.clone()
    a = strong_colour(x, torch.Generator().manual_seed(3))
    b = strong_colour(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(x, keep)
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.allclose(a, x)
    with pytest.raises(ValueError, match=r"images must be \(B, 3, H, W\) float"):
        strong_colour(torch.rand(2, 1, 4, 4), None)


# ----------------------------------------------------------------------------- teachers
def test_ema_update_and_bn_batch_mode():
    torch.manual_seed(0)
    s, t = SegNet(width=2), SegNet(width=2)
    t0 = params_of(t)
    ema_update(t, s, 0.75, buffers=False)
    for a, b0, c in zip(t.parameters(), t0, s.parameters(), strict=True):
        assert torch.allclose(a, 0.75 * b0 + 0.25 * c)
    ema_update(t, s, 0.0, buffers=False)
    assert same(params_of(t), params_of(s))  # α = 0 copies exactly
    buf = buffers_of(t)
    with bn_mode(t, "batch"):
        t(torch.randn(4, 3, 16, 16))
    assert same(buf, buffers_of(t)) and t.training
    assert param_distance(t, s) == 0.0
    gap = prediction_gap(t, s, torch.randn(3, 3, 16, 16))
    assert gap == {"disagree": 0.0, "kl": 0.0}


def test_dual_teacher_recopy_at_shift_start_and_frozen_inactive_teacher(tmp_path, ds):
    tr = trainer_for(tmp_path, ds, "dualteacher")
    assert isinstance(tr, DualTeacherTrainer)
    for _ in range(3):
        active = tr.active()
        inactive = "t2" if active == "t1" else "t1"
        frozen_p = params_of(tr.teachers()[inactive])
        frozen_b = buffers_of(tr.teachers()[inactive])
        tr.student.train()
        tr.on_epoch_start()
        before = params_of(tr.teachers()[active])
        tr.train_step(0)
        tr.step += 1
        # a = min(1 - 1/(0+1), 0.99) = 0: the active teacher IS the student after step 0
        assert same(params_of(tr.teachers()[active]), params_of(tr.student))
        assert not same(before, params_of(tr.student))
        for i in range(1, tr.cfg.iters_per_epoch):
            tr.train_step(i)
            tr.step += 1
        assert param_distance(tr.teachers()[active], tr.student) > 0
        assert same(frozen_p, params_of(tr.teachers()[inactive]))
        assert same(frozen_b, buffers_of(tr.teachers()[inactive]))
        tr.epoch += 1
    assert tr.epoch == 3 and tr.active() == "t2"


def test_psmt_updates_only_the_on_duty_teacher(tmp_path, ds):
    tr = trainer_for(tmp_path, ds, "psmt", epochs=4)
    assert isinstance(tr, PSMTTrainer)
    row = tr.train_epoch()  # warm-up: teachers trained by their own optimisers
    assert row["active"] == "warmup" and tr.block.teacher_optimizers is not None
    seen = []
    for _ in range(3):
        duty = tr.active()
        off = "t2" if duty == "t1" else "t1"
        snap = {k: (params_of(t), buffers_of(t)) for k, t in tr.teachers().items()}
        tr.train_epoch()
        assert tr.block.teacher_optimizers is None  # teachers are EMA-only after warm-up
        assert same(snap[off][0], params_of(tr.teachers()[off]))
        assert same(snap[off][1], buffers_of(tr.teachers()[off]))
        assert not same(snap[duty][0], params_of(tr.teachers()[duty]))
        seen.append(duty)
    assert seen == ["t1", "t2", "t1"]


def test_mean_teacher_is_an_ema_of_the_student(tmp_path, ds):
    tr = trainer_for(tmp_path, ds, "mt", mt_ema=0.9)
    assert isinstance(tr, MeanTeacherTrainer)
    assert same(params_of(tr.teacher), params_of(tr.student))
    t0 = params_of(tr.teacher)
    tr.train_step(0)
    for a, b0, s in zip(tr.teacher.parameters(), t0, tr.student.parameters(), strict=True):
        assert torch.allclose(a, 0.9 * b0 + 0.1 * s, atol=1e-7)


@pytest.mark.parametrize("method", ["psmt", "dualteacher"])
def test_state_dict_resume_reproduces_the_run(tmp_path, ds, method):
    kw = {"psmt_vat": True} if method == "psmt" else {}
    a = trainer_for(tmp_path, ds, method, **kw)
    a.train_epoch()
    state = a.state_dict()
    torch.save(state, tmp_path / "s.pt")
    a.train_epoch()
    b = trainer_for(tmp_path, ds, method, seed=123, **kw)  # different init, then restored
    b.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    b.train_epoch()
    assert same(params_of(a.student), params_of(b.student))
    for k in a.teachers():
        assert same(params_of(a.teachers()[k]), params_of(b.teachers()[k]))
    assert a.rows[-1]["val_miou"] == b.rows[-1]["val_miou"]
    with pytest.raises(ValueError, match="checkpoint is for method"):
        trainer_for(tmp_path, ds, "mt").load_state_dict(state)


# ----------------------------------------------------------------------------- CLI
FAST = [
    "--n-train", "64", "--n-val", "16", "--width", "4", "--epochs", "2",
    "--iters-per-epoch", "2", "--batch-size", "4", "--unlabeled-batch-size", "4",
    "--split", "1/4", "--distance-images", "8", "--distance-every", "1", "--pretrain-steps", "0",
]  # fmt: skip


@pytest.mark.parametrize(
    "method,mix",
    [("sup", "cutmix"), ("mt", "fmix"), ("psmt", "multibox"), ("dualteacher", "cutmix")],
)
def test_cli_end_to_end(tmp_path, method, mix, capsys):
    out = tmp_path / method
    args = ["semiseg", *FAST, "--method", method, "--mix", mix, "--out", str(out)]
    assert main([*args, "--log-every", "1"]) == 0
    printed = capsys.readouterr().out
    assert "val mIoU" in printed and "nan" not in printed  # teachers' mIoU only once measured
    assert ("pass " in printed) == (method != "sup") and "step 1/4" in printed
    assert ("t1_miou" in printed) == (method in ("psmt", "dualteacher"))
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    s = json.loads((out / "summary.json").read_text())
    assert s["method"] == method and s["steps"] == 4 and 0 <= s["val_miou"] <= 1
    assert set(s["val_iou"]) == {"background", *map(str, range(10))}
    split = json.loads(open(s["split_file"]).read())
    assert s["num_labeled"] == len(split["labeled"]) == 16
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["method"] == method
    assert (out / "plots" / "overlay.png").stat().st_size > 0
    assert (out / "config.yaml").is_file()
    if method != "sup":
        assert set(s["distance"]) and (out / "plots" / "distance.png").is_file()


def test_cli_resume_and_errors(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["semiseg", *FAST, "--method", "mt", "--out", out]) == 0
    assert (
        main(["semiseg", *FAST, "--method", "mt", "--out", out, "--epochs", "3", "--resume"]) == 0
    )
    assert "resumed from" in capsys.readouterr().out
    rows = list(csv.DictReader(open(f"{out}/metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    args = ["semiseg", *FAST, "--method", "mt", "--out", out, "--resume", "--lr", "0.1"]
    assert main([*args, "--epochs", "4"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert main(["semiseg", "--method", "fixmatch", "--out", out]) == 2
    assert "method must be one of" in capsys.readouterr().err
    fresh = str(tmp_path / "r2")
    assert main(["semiseg", *FAST, "--split-file", str(tmp_path / "x.json"), "--out", fresh]) == 2
    assert "split file not found" in capsys.readouterr().err
    # an existing run folder is never overwritten unless asked
    assert main(["semiseg", *FAST, "--method", "mt", "--out", out]) == 2
    assert "already holds a run: pass --resume" in capsys.readouterr().err
    assert [int(r["epoch"]) for r in csv.DictReader(open(f"{out}/metrics.csv"))] == [1, 2, 3]
    assert main(["semiseg", *FAST, "--method", "mt", "--out", out, "--overwrite"]) == 0
    assert [int(r["epoch"]) for r in csv.DictReader(open(f"{out}/metrics.csv"))] == [1, 2]


def test_default_run_folders_are_numbered(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["semiseg", *FAST, "--method", "sup", "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "-> runs/semiseg/exp\n" in printed and "-> runs/semiseg/exp2\n" in printed
    for name in ("exp", "exp2"):
        s = json.loads((tmp_path / "runs/semiseg" / name / "summary.json").read_text())
        assert s["out"] == f"runs/semiseg/{name}" and s["steps"] == 2


def test_config_validation():
    with pytest.raises(ValueError, match="mix must be one of"):
        SemisegConfig(mix="mixup")
    with pytest.raises(ValueError, match="psmt_warmup_epochs"):
        SemisegConfig(method="psmt", epochs=1, psmt_warmup_epochs=1)
    with pytest.raises(ValueError, match=r"mt_ema must be a number in \[0, 1\]"):
        SemisegConfig(mt_ema=1.5)
    assert dataclasses.asdict(SemisegConfig())["mix_alpha"] == 4.0


@pytest.mark.slow
def test_experiment_semiseg_tiny(tmp_path):
    """``mixkit experiment semiseg`` end to end: tables, both figures, the BENCHMARKS
    section; the data and budget line states the sizes the runs used."""
    import os

    bench = tmp_path / "BENCH.md"
    bench.write_text("# b\n\n## 5. Semi-supervised segmentation\n\nstale table\n")
    argv = ["experiment", "semiseg", "--methods", "sup,mt", "--splits", "1/4", "--seeds", "0",
            "--mixes", "cutmix", "--epochs", "2", "--iters-per-epoch", "2",
            "--pretrain-steps", "2", "--probe-epochs", "0", "--jobs", "1",
            "--out", str(tmp_path / "exp"), "--write-docs", "--docs-dir", str(tmp_path / "docs"),
            "--benchmarks", str(bench)]  # fmt: skip
    for kv in ("n_train=64", "n_val=16", "batch_size=4", "unlabeled_batch_size=2",
               "distance_images=8", "distance_every=1"):  # fmt: skip
        argv += ["--run-set", kv]
    assert main(argv) == 0
    text = bench.read_text()
    assert "stale table" not in text and "#### Main comparison" in text
    assert f"Machine: {os.cpu_count()}-core CPU" in text
    assert "4 labeled + 2 unlabeled canvases per step" in text
    assert "Data: 64 train / 16 val 48x48 canvases" in text
    assert "2 epochs x 2 iterations = 4 student steps" in text
    for png in ("semiseg_distance.png", "semiseg_val_curves.png"):
        assert (tmp_path / "docs" / png).stat().st_size > 1000
    # the labeled-loss table reads each run's last metrics.csv row
    res = json.loads((tmp_path / "exp" / "results.json").read_text())
    with (tmp_path / "exp" / "runs" / "mt_cutmix_1-4_s0" / "metrics.csv").open() as f:
        last = list(csv.DictReader(f))[-1]
    assert res["loss_sup"]["mt"]["1/4"] == [float(last["loss_sup"])]
    assert f"| mean teacher + CutMix | {float(last['loss_sup']):.3f} (" in text
