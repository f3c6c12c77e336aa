"""What timm / torchvision users expect at the edges of the mixers: sample layouts in
``MixCollate``, a mixing switch that reaches persistent workers, the channels-last guard,
torchvision's labels lookup and tensor types, detection targets <-> ``BoxBatch``, explicit
signatures and reprs, and AutoAugment's pixel-range check."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import pydoc
import re
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import mixkit.collate as collate_mod
from mixkit import augment
from mixkit.augment import AUGMENTS, MixParams, MixTransform
from mixkit.collate import MixCollate, infer_layout, stack_samples
from mixkit.compat import CutMix, MixUp, TimmMixup, from_box_batch, to_box_batch
from mixkit.compat.torchvision import label_key
from mixkit.methods.kd.autoaugment import apply_op, autoaugment
from mixkit.ops.checks import check_unit_interval

K = 5


def _pixels(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _one_hot(y: torch.Tensor) -> torch.Tensor:
    return torch.eye(K)[y]


# =========================================================================== layouts
class TestSampleLayouts:
    def test_infer_layout(self):
        assert infer_layout((3, 32, 32)) == "CHW"  # timm ToNumpy, torchvision ToTensor
        assert infer_layout((32, 32, 3)) == "HWC"  # PIL / OpenCV / albumentations
        assert infer_layout((4, 9, 9)) == "CHW" and infer_layout((9, 9, 1)) == "HWC"
        assert infer_layout((13, 64, 64)) == "CHW"  # multi-band: the smaller end
        assert infer_layout((64, 64, 13)) == "HWC"
        assert infer_layout((3, 32, 3)) is None and infer_layout((8, 8, 8)) is None

    @pytest.mark.parametrize("kind", ["numpy", "tensor"])
    def test_chw_and_hwc_samples_stack_to_bchw(self, kind):
        chw = [_pixels(3, 32, 32, seed=i) for i in range(4)]
        expect = torch.from_numpy(np.stack(chw))  # (4, 3, 32, 32)
        as_input = (lambda a: a) if kind == "numpy" else torch.from_numpy
        collate = MixCollate(augment.CutMix(p=0.0, num_classes=K), 0)
        for samples in (chw, [a.transpose(1, 2, 0) for a in chw]):  # CHW, then HWC
            x, t = collate([(as_input(a), i) for i, a in enumerate(samples)])
            assert x.shape == (4, 3, 32, 32) and torch.equal(x, expect)
            assert torch.equal(t, _one_hot(torch.arange(4)))

    def test_pil_is_always_hwc(self):
        pil = pytest.importorskip("PIL.Image", reason="Pillow not installed: PIL untested")
        a = _pixels(4, 3, 3)  # H=4, W=3, RGB: ambiguous as a bare shape, not as PIL
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            x, _ = stack_samples([(pil.fromarray(a), 0)])
        assert torch.equal(x[0], torch.from_numpy(a).permute(2, 0, 1))

    def test_ambiguous_shape_warns_once_and_layout_chooses(self, monkeypatch):
        monkeypatch.setattr(collate_mod, "_warned", set())
        a = _pixels(3, 8, 3)
        with pytest.warns(UserWarning, match=r"\(3, 8, 3\) could be CHW or HWC; assumed CHW"):
            x, _ = stack_samples([(a, 0), (a, 1)])
        assert x.shape == (2, 3, 8, 3) and torch.equal(x[0], torch.from_numpy(a))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once per shape: silent now
            stack_samples([(a, 0)])
            hwc, _ = stack_samples([(a, 0)], layout="HWC")
            chw, _ = MixCollate(augment.MixUp(p=0.0, num_classes=K), 0, layout="CHW")([(a, 0)])
        assert torch.equal(hwc[0], torch.from_numpy(a).permute(2, 0, 1))
        assert torch.equal(chw[0], torch.from_numpy(a))

    def test_layout_errors(self):
        with pytest.raises(ValueError, match="layout must be one of"):
            stack_samples([(_pixels(3, 4, 4), 0)], layout="NCHW")
        with pytest.raises(ValueError, match="layout must be one of"):
            MixCollate(augment.MixUp(num_classes=K), 0, layout="chw")
        with pytest.raises(ValueError, match=r"must be \(H, W\), \(C, H, W\) or \(H, W, C\)"):
            stack_samples([(np.zeros((1, 3, 4, 4), np.uint8), 0)])


# =========================================================================== switch
N, BS = 16, 4  # 4 batches per epoch, 2 per worker


def _dataset() -> list[tuple[torch.Tensor, int]]:
    x = torch.from_numpy(_pixels(N, 3, 6, 6))
    return [(x[i], i % K) for i in range(N)]


def _loader(collate: MixCollate) -> DataLoader:
    return DataLoader(
        _dataset(), batch_size=BS, num_workers=2, persistent_workers=True, collate_fn=collate
    )


def _epoch(loader: DataLoader, collate: MixCollate, epoch: int) -> list:
    collate.set_epoch(epoch)
    return list(loader)


def _unmixed(batches) -> bool:
    """Every batch equals its unmixed stack (shuffle off: batch j is samples 4j..4j+3)."""
    data = _dataset()
    for j, (x, t, *_) in enumerate(batches):
        x0, y0 = stack_samples(data[j * BS : (j + 1) * BS])
        if not torch.equal(x, x0) or not torch.equal(t.argmax(1), y0):
            return False
    return True


class TestSwitchReachesPersistentWorkers:
    def test_mixup_enabled_false_and_back(self):
        collate = MixCollate(augment.MixUp(num_classes=K), 0, return_params=True)
        loader = _loader(collate)
        first = _epoch(loader, collate, 0)  # the workers start here and persist
        assert all(bool(p.applied.all()) for _, _, p in first) and not _unmixed(first)
        collate.mixup_enabled = False  # set in the main process, read by the workers
        off = _epoch(loader, collate, 1)
        assert _unmixed(off) and not any(bool(p.applied.any()) for _, _, p in off)
        assert all(torch.equal(t, _one_hot(t.argmax(1))) for _, t, _ in off)  # (B, K) form
        collate.mixup_enabled = True
        again = _epoch(loader, collate, 2)
        assert all(bool(p.applied.all()) for _, _, p in again)

    def test_mixup_off_epoch_like_timm(self):
        collate = MixCollate(augment.CutMix(num_classes=K), 0, mixup_off_epoch=2)
        loader = _loader(collate)
        mixed = [not _unmixed(_epoch(loader, collate, e)) for e in range(4)]
        assert mixed == [True, True, False, False]  # timm: epoch >= off stops mixing
        assert (
            MixCollate(augment.CutMix(num_classes=K), 0, mixup_off_epoch=0).mixup_off_epoch is None
        )

    def test_timm_attribute_reaches_the_workers(self):
        mixup_fn = TimmMixup(mixup_alpha=1.0, label_smoothing=0.1, num_classes=K)
        collate = MixCollate(mixup_fn, 0)
        loader = _loader(collate)
        assert not _unmixed(_epoch(loader, collate, 0))
        mixup_fn.mixup_enabled = False  # timm train.py's --mixup-off-epoch idiom
        off = _epoch(loader, collate, 1)
        assert _unmixed(off)
        for _, t in off:  # smoothing still applied: on = 1 - s + s/K, off = s/K
            assert torch.allclose(t.max(1).values, torch.full((BS,), 0.9 + 0.1 / K))

    def test_switch_needs_a_params_mixer(self):
        def plain(x, y, generator=None):
            return x, y

        with pytest.raises(ValueError, match="accepts params="):
            MixCollate(plain, 0, mixup_off_epoch=3)
        with pytest.raises(ValueError, match="accepts params="):
            MixCollate(plain, 0).mixup_enabled = False
        with pytest.raises(ValueError, match="mixup_off_epoch must be None or an int"):
            MixCollate(augment.MixUp(num_classes=K), 0, mixup_off_epoch=-1)
        c = MixCollate(augment.MixUp(num_classes=K), 0, mixup_off_epoch=3)
        c.mixup_enabled = False
        assert "mixup_off_epoch=3" in repr(c) and "mixup_enabled=False" in repr(c)


# =========================================================================== layout guard
REGISTERED = sorted(name for name, cls in AUGMENTS.items() if cls is not None)


def _build(name: str, **kwargs) -> MixTransform:
    cls = AUGMENTS[name]
    return cls(K, **kwargs) if name == "classmix" else cls(**kwargs)


class TestChannelsLastGuard:
    @pytest.mark.parametrize("name", REGISTERED)
    def test_every_mixer_refuses_channels_last_images(self, name):
        mixer = _build(name, num_classes=K) if name != "classmix" else _build(name)
        nhwc = torch.rand(2, 8, 8, 3)
        g = torch.Generator().manual_seed(0)
        state = g.get_state()
        with pytest.raises(ValueError, match=r"channels-last.*permute\(0, 3, 1, 2\)"):
            mixer(nhwc, torch.arange(2), generator=g)
        assert torch.equal(g.get_state(), state)  # refused before any draw
        with pytest.raises(ValueError, match="check_layout=False"):
            mixer.apply(MixParams.identity(2, (8, 3)), nhwc)

    def test_opt_out_and_what_is_never_guarded(self):
        many = torch.rand(2, 8, 6, 3)  # 8 real channels, 3 pixels wide
        out, t = augment.MixUp(num_classes=K, check_layout=False)(many, torch.arange(2))
        assert out.shape == many.shape and t.shape == (2, K)
        augment.CutMix(num_classes=K)(torch.rand(2, 8, 16, 16))  # many channels, wide: fine
        # probability maps with many classes and a tiny width go through unguarded
        probs = torch.softmax(torch.randn(2, 8, 6, 4), 1)
        _, _, mixed = augment.CutMix(num_classes=K)(torch.rand(2, 3, 6, 4), torch.arange(2), probs)
        assert mixed.shape == probs.shape

    def test_adapters(self):
        with pytest.raises(ValueError, match=r"x of shape .*permute\(0, 3, 1, 2\)"):
            TimmMixup(num_classes=K)(torch.rand(2, 8, 8, 3), torch.arange(2))
        TimmMixup(num_classes=K, check_layout=False)(torch.rand(2, 8, 8, 3), torch.arange(2))
        with pytest.raises(ValueError, match=r"permute\(0, 3, 1, 2\)"):
            CutMix(num_classes=K)(torch.rand(2, 8, 8, 3), torch.arange(2))
        video = _typed("Video", torch.rand(2, 4, 8, 8, 3))  # (B, T, H, W, C)
        with pytest.raises(ValueError, match=r"videos .*permute\(0, 1, 4, 2, 3\)"):
            MixUp(num_classes=K)(video, torch.arange(2))


# =========================================================================== torchvision
class _Unwrapping(torch.Tensor):
    """Like torchvision's tv_tensors: every op returns a plain tensor."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))


class Image(_Unwrapping):
    pass


class Video(_Unwrapping):
    pass


class Mask(_Unwrapping):
    pass


class BoxFormat(enum.Enum):
    XYXY = "XYXY"
    XYWH = "XYWH"
    CXCYWH = "CXCYWH"
    XYWHR = "XYWHR"


class BoundingBoxes(_Unwrapping):
    pass


def _typed(name: str, t: torch.Tensor, **meta) -> torch.Tensor:
    cls = {"Image": Image, "Video": Video, "Mask": Mask, "BoundingBoxes": BoundingBoxes}[name]
    out = t.as_subclass(cls)
    out.__dict__.update(meta)
    return out


class TestTorchvisionInputs:
    def test_label_key_heuristic(self):
        assert label_key({"image": 0, "SOME_KEY_WITH_LaBeL": 1}) == "SOME_KEY_WITH_LaBeL"
        assert label_key({"label_names": 0, "LaBeLs": 1}) == "LaBeLs"  # exact 'labels' first
        assert label_key({"label_a": 0, "b_label": 1}) == "label_a"
        assert label_key({1: 0, "image": 1}) is None

    @pytest.mark.parametrize("cls", [CutMix, MixUp])
    def test_labels_found_where_torchvision_finds_them(self, cls):
        x, y = torch.rand(4, 3, 8, 8), torch.arange(4)
        t = cls(num_classes=K, generator=0)
        ref_x, ref_t = t(x, y)
        params = t.last_params
        xm, target = t(x, {"labels": y, "boxes_id": "kept"}, params=params)
        assert torch.equal(xm, ref_x) and torch.equal(target["labels"], ref_t)
        assert target["boxes_id"] == "kept"
        d = t({"img": x, "extra": torch.zeros(3), "SOME_KEY_WITH_LaBeL": y}, params=params)
        assert torch.equal(d["SOME_KEY_WITH_LaBeL"], ref_t) and torch.equal(d["img"], ref_x)
        assert torch.equal(d["extra"], torch.zeros(3))
        with pytest.raises(ValueError, match="could not find the labels"):
            t(x, {"targets": y})
        with pytest.raises(ValueError, match="could not find the labels"):
            t((x,))

    @pytest.mark.parametrize("cls", [CutMix, MixUp])
    def test_image_and_video_types_come_back(self, cls):
        t = cls(num_classes=K, generator=1)
        x, y = torch.rand(3, 3, 8, 8), torch.arange(3)
        plain_x, plain_t = t(x, y)
        params = t.last_params
        img, tt = t(_typed("Image", x), y, params=params)
        assert type(img) is Image and torch.equal(img.as_subclass(torch.Tensor), plain_x)
        assert torch.equal(tt, plain_t)
        # with an Image present plain tensors are not images (torchvision's rule)
        depth = torch.rand(3, 1, 8, 8)
        out = t({"image": _typed("Image", x), "depth": depth, "labels": y}, params=params)
        assert type(out["image"]) is Image and out["depth"] is depth
        # a video (B, T, C, H, W): every frame gets its sample's draw
        v = torch.rand(3, 2, 3, 8, 8)
        vid, _ = t(_typed("Video", v), y, params=t.draw((3, 6, 8, 8), generator=2))
        assert type(vid) is Video and vid.shape == v.shape
        frames = augment.apply_images(t.last_params, v.flatten(1, 2)).view_as(v)
        assert torch.equal(vid.as_subclass(torch.Tensor), frames)

    def test_mixers_keep_subclasses_and_metadata(self):
        x, y = torch.rand(4, 3, 8, 8), torch.arange(4)
        probs = torch.softmax(torch.randn(4, K, 8, 8), 1)
        m = augment.CutMix(num_classes=K, generator=3)
        out, _, maps = m(_typed("Image", x, source="cam0"), y, _typed("Mask", probs))
        assert type(out) is Image and out.source == "cam0" and type(maps) is Mask
        xt, _ = TimmMixup(num_classes=K, generator=0)(_typed("Image", x), y)
        assert type(xt) is Image

    def test_real_tv_tensors(self):
        tv = pytest.importorskip("torchvision.tv_tensors", reason="torchvision not installed")
        x, y = torch.rand(2, 3, 8, 8), torch.arange(2)
        img, _ = CutMix(num_classes=K)(tv.Image(x), y)
        vid, _ = MixUp(num_classes=K)(tv.Video(torch.rand(2, 2, 3, 8, 8)), y)
        assert type(img) is tv.Image and type(vid) is tv.Video


# =========================================================================== boxes
def _targets() -> list[dict[str, torch.Tensor]]:
    boxes = [
        [[0.0, 0.0, 4.0, 4.0], [2.0, 1.0, 8.0, 6.0]],
        [],
        [[1.0, 1.0, 3.0, 7.0], [0.0, 2.0, 8.0, 3.0], [4.0, 4.0, 8.0, 8.0]],
    ]
    labels = [[1, 2], [], [0, 4, 3]]
    return [
        {"boxes": torch.tensor(b).view(-1, 4), "labels": torch.tensor(y, dtype=torch.long)}
        for b, y in zip(boxes, labels, strict=True)
    ]


def _same_targets(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(u["boxes"].as_subclass(torch.Tensor), v["boxes"].as_subclass(torch.Tensor))
        and torch.equal(u["labels"], v["labels"])
        for u, v in zip(a, b, strict=True)
    )


class TestBoxBatchConversion:
    def test_round_trip_pads_and_unpads(self):
        targets = _targets()
        bb = to_box_batch(targets)
        assert bb.boxes.shape == (3, 3, 4) and bb.boxes.dtype == torch.float32
        assert bb.valid.tolist() == [[True, True, False], [False] * 3, [True] * 3]
        assert bb.labels.tolist() == [[1, 2, 0], [0, 0, 0], [0, 4, 3]]
        assert torch.equal(bb.boxes[0, 2], torch.zeros(4))
        assert _same_targets(from_box_batch(bb), targets)
        assert to_box_batch(targets, num_slots=5).boxes.shape == (3, 5, 4)
        boxes, labels = [t["boxes"] for t in targets], [t["labels"] for t in targets]
        assert torch.equal(to_box_batch(boxes, labels).boxes, bb.boxes)

    def test_formats(self):
        xywh = [{"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([7])}]
        bb = to_box_batch(xywh, box_format="xywh")
        assert bb.boxes[0].tolist() == [[1.0, 2.0, 4.0, 6.0]]  # x2 = x + w, y2 = y + h
        assert _same_targets(from_box_batch(bb, box_format="xywh"), xywh)
        assert from_box_batch(bb, box_format="cxcywh")[0]["boxes"].tolist() == [
            [2.5, 4.0, 3.0, 4.0]
        ]

    def test_bounding_boxes_keep_format_and_type(self):
        cxcywh = torch.tensor([[4.0, 4.0, 2.0, 4.0], [6.0, 2.0, 4.0, 2.0]])
        bbox = _typed("BoundingBoxes", cxcywh, format=BoxFormat.CXCYWH, canvas_size=(8, 8))
        targets = [{"boxes": bbox, "labels": torch.tensor([1, 3])}]
        bb = to_box_batch(targets)
        assert bb.boxes[0].tolist() == [[3.0, 2.0, 5.0, 6.0], [4.0, 1.0, 8.0, 3.0]]
        back = from_box_batch(bb, like=targets)
        assert type(back[0]["boxes"]) is BoundingBoxes
        assert back[0]["boxes"].format is BoxFormat.CXCYWH and back[0]["boxes"].canvas_size == (
            8,
            8,
        )
        assert _same_targets(back, targets)
        rotated = _typed("BoundingBoxes", torch.zeros(1, 4), format=BoxFormat.XYWHR)
        with pytest.raises(ValueError, match="box format 'xywhr' cannot be mixed"):
            to_box_batch([{"boxes": rotated, "labels": torch.tensor([0])}])

    def test_through_a_mixer(self):
        targets = _targets()
        images, labels = torch.rand(3, 3, 8, 8), torch.arange(3)
        m = augment.CutMix(p=0.0, num_classes=K)  # nothing mixed: own boxes come back
        _, _, bb = m(images, labels, boxes=to_box_batch(targets))
        assert bb.boxes.shape == (3, 6, 4) and _same_targets(from_box_batch(bb), targets)
        _, _, bb = augment.CutMix(num_classes=K, generator=0)(
            images, labels, boxes=to_box_batch(targets)
        )
        for t in from_box_batch(bb):
            assert t["boxes"].shape[0] == t["labels"].shape[0]
            assert bool(((t["boxes"] >= 0) & (t["boxes"] <= 8)).all())
            assert set(t["labels"].tolist()) <= {0, 1, 2, 3, 4}

    def test_errors(self):
        with pytest.raises(ValueError, match="non-empty list"):
            to_box_batch([])
        with pytest.raises(ValueError, match="'boxes' and 'labels'"):
            to_box_batch([{"bbox": torch.zeros(1, 4), "labels": torch.tensor([0])}])
        with pytest.raises(ValueError, match=r"labels must be \(2,\) integer class ids"):
            to_box_batch([{"boxes": torch.zeros(2, 4), "labels": torch.tensor([0])}])
        with pytest.raises(ValueError, match=r"boxes must be an \(N, 4\) tensor"):
            to_box_batch([{"boxes": torch.zeros(2, 5), "labels": torch.tensor([0, 1])}])
        with pytest.raises(ValueError, match="num_slots must be an int >= the most boxes"):
            to_box_batch(_targets(), num_slots=2)
        with pytest.raises(ValueError, match="labels are required"):
            to_box_batch([torch.zeros(1, 4)])
        with pytest.raises(ValueError, match="like must hold 3 targets"):
            from_box_batch(to_box_batch(_targets()), like=_targets()[:1])


# =========================================================================== signatures, repr
PUBLIC_MIXERS = [cls for cls in AUGMENTS.values() if cls is not None] + [
    augment.RandomChoice,
    augment.RecursiveMix,
]
BASE = {name: p.default for name, p in inspect.signature(MixTransform).parameters.items()}
# a valid non-default value per constructor argument, and how repr must show it
NON_DEFAULT = {
    "p": 0.5, "mode": "batch", "num_classes": 7, "label_smoothing": 0.1, "multilabel": True,
    "pairing": "flip", "ignore_index": 0, "min_visibility": 0.5, "generator": 3,
    "check_finite": False, "check_layout": False, "alpha": 0.4, "correct_lam": False,
    "share_lam": True, "num_boxes": 2, "scope": (0.2, 0.5), "interpolation": "bilinear",
    "length": 5, "value": 0.5, "decay_power": 2.0, "half": "floor", "mixup_alpha": 0.4,
    "cutmix_alpha": 0.5, "switch_prob": 0.3,
}  # fmt: skip


def _shown(name: str, value) -> str:
    if name == "generator":
        return f"generator=torch.Generator(seed={value})"
    return f"{name}={value!r}"


class TestSignaturesAndRepr:
    @pytest.mark.parametrize("cls", PUBLIC_MIXERS, ids=lambda c: c.__name__)
    def test_explicit_signature(self, cls):
        params = inspect.signature(cls).parameters
        assert "num_classes" in params
        assert all(p.kind != p.VAR_KEYWORD for p in params.values())
        if cls is not augment.RecursiveMix:  # its mode and pairing are fixed by the method
            for name, default in BASE.items():
                assert name in params, name
                if not (cls is augment.ClassMix and name == "num_classes"):  # required there
                    assert params[name].default == default, name
        text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
        assert re.search(r"__init__\(self.*\bnum_classes\b", text)

    def test_adapter_signatures(self):
        for cls in (CutMix, MixUp, TimmMixup):
            params = inspect.signature(cls).parameters
            assert {"num_classes", "check_layout"} <= set(params)
            assert all(p.kind != p.VAR_KEYWORD for p in params.values())

    @pytest.mark.parametrize("name", REGISTERED)
    def test_repr_shows_every_non_default_setting(self, name):
        params = inspect.signature(AUGMENTS[name]).parameters
        shown = _build(name).extra_repr()  # the module's own line (sub-modules aside)
        assert shown == ("num_classes=5" if name == "classmix" else "")  # defaults hidden
        for arg, param in params.items():
            if param.default is param.empty:
                continue
            assert arg in NON_DEFAULT, f"add a non-default value for {arg!r}"
            value = NON_DEFAULT[arg]
            assert value != param.default
            text = repr(_build(name, **{arg: value}))
            assert _shown(arg, value) in text, (arg, text)

    def test_examples_and_adapters(self):
        assert "alpha=0.4" in repr(augment.MixUp(alpha=0.4))
        assert "correct_lam=False" in repr(augment.CutMix(correct_lam=False))
        assert "prob=0.5" in repr(TimmMixup(prob=0.5)) and repr(TimmMixup()) == "TimmMixup()"
        assert "mode='elem'" in repr(CutMix(mode="elem")) and "alpha=0.3" in repr(MixUp(alpha=0.3))
        assert "per_sample=True" in repr(augment.RecursiveMix(per_sample=True))

    @pytest.mark.parametrize("cls", PUBLIC_MIXERS, ids=lambda c: c.__name__)
    def test_settings_are_inherited_fields(self, cls):
        # the shared settings are declared once, on MixTransform; a mixer stays a hashable
        # module with its own repr (dataclass eq=False, repr=False)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        redeclared = set(cls.__dict__.get("__annotations__", {})) & set(BASE)
        for name in redeclared:  # only to fix a setting (RecursiveMix) or require it (ClassMix)
            assert not fields[name].init or (cls, name) == (augment.ClassMix, "num_classes")
        if cls is augment.RandomChoice:
            mixer = cls([augment.MixUp(), augment.CutMix()])
        else:
            mixer = cls(K) if cls is augment.ClassMix else cls()
        assert cls.__hash__ is object.__hash__ and cls.__eq__ is object.__eq__
        assert mixer in {mixer} and mixer != cls.__new__(cls)
        assert cls.__repr__ is torch.nn.Module.__repr__
        assert list(mixer.named_modules())[0][1] is mixer

    @pytest.mark.parametrize(
        ("build", "flag"),
        [
            (lambda: augment.CutMix(1.0, 3), "correct_lam"),
            (lambda: augment.MultiBoxCutMix(1.0, True, 1), "share_lam"),
            (lambda: augment.FMix(1.0, 3.0, 1), "share_lam"),
            (lambda: augment.RecursiveMix(0.5, "nearest", 1), "per_sample"),
            (lambda: augment.MixUp(multilabel=1), "multilabel"),
            (lambda: augment.MixUpCutMix(check_layout="no"), "check_layout"),
        ],
    )
    def test_flags_must_be_bools(self, build, flag):
        with pytest.raises(ValueError, match=f"{flag} must be True or False, got"):
            build()

    def test_multibox_positional_order(self):
        mixer = augment.MultiBoxCutMix(0.5, False, True, 2)
        assert (mixer.alpha, mixer.correct_lam, mixer.share_lam, mixer.num_boxes) == (
            0.5, False, True, 2,
        )  # fmt: skip
        with pytest.raises(TypeError, match="missing 1 required positional argument"):
            augment.ClassMix()


# =========================================================================== autoaugment
class TestAutoAugmentPixelRange:
    def test_normalised_floats_are_refused(self):
        g = torch.Generator().manual_seed(0)
        pixels = torch.rand(2, 3, 8, 8, generator=g)
        assert autoaugment(pixels, g).shape == pixels.shape  # [0, 1] is fine
        autoaugment((pixels * 255).to(torch.uint8), g)
        normalised = (pixels - 0.5) / 0.25
        with pytest.raises(ValueError, match=r"unnormalised pixels in \[0, 1\].*normalise after"):
            autoaugment(normalised, g)
        with pytest.raises(ValueError, match=r"got values in \[0, 1\.001\]"):
            apply_op(
                torch.cat([torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 1.001)]), "Invert", 0
            )
        with pytest.raises(ValueError, match="unnormalised pixels"):
            autoaugment(torch.full((1, 3, 4, 4), float("nan")), g)

    def test_check_reads_no_device_values(self):
        check_unit_interval(torch.full((2, 3), 5.0, device="meta"), "never raised on the host")
        check_unit_interval(torch.arange(5), "integer tensors pass")
        with pytest.raises(ValueError, match="msg; got values in"):
            check_unit_interval(torch.tensor([-0.5, 0.5]), "msg")
