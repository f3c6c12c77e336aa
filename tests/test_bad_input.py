"""The bad-input matrix: every bad input gives one ValueError / FileNotFoundError
naming the argument and what was expected; the CLI turns it into a one-line message and a
non-zero exit (``--debug`` shows the traceback).

Decided behaviour for non-finite inputs: ``MixTransform.apply`` (hence ``forward``) raises
ValueError for float images or float masks holding NaN/Inf; ``check_finite=False`` mixes
them as given (NaN propagates like any arithmetic). Labels are always checked
(``ops.to_targets``) and detection boxes always (``apply_boxes``). The pure ``mixkit.ops``
functions do not scan pixels for NaN (no hidden cost), but check their index/box/λ arguments.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from mixkit import augment, ops
from mixkit.augment import BoxBatch, ClassMix, CutMix, Cutout, FMix, MixUp, MixUpCutMix, ResizeMix
from mixkit.cli import main
from mixkit.train import atomic_save

B, C, H, W = 4, 3, 8, 10
IMAGE_MIXERS = [
    pytest.param(lambda **k: MixUp(num_classes=5, **k), id="mixup"),
    pytest.param(lambda **k: CutMix(num_classes=5, **k), id="cutmix"),
    pytest.param(lambda **k: ResizeMix(num_classes=5, **k), id="resizemix"),
    pytest.param(lambda **k: Cutout(length=3, num_classes=5, **k), id="cutout"),
    pytest.param(lambda **k: FMix(num_classes=5, **k), id="fmix"),
    pytest.param(lambda **k: MixUpCutMix(num_classes=5, **k), id="mixup_cutmix"),
]


def _images(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(B, C, H, W, generator=torch.Generator().manual_seed(0)).to(dtype)


def _labels() -> torch.Tensor:
    return torch.tensor([0, 1, 2, 4])


# ----------------------------------------------------------------------------- images
class TestImages:
    @pytest.mark.parametrize("make", IMAGE_MIXERS)
    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
    @pytest.mark.parametrize("variant", ["new", "out", "inplace"])
    def test_non_finite_images_rejected(self, make, bad, variant):
        """Rejected on every path before anything is written, the images untouched,
        wherever the pixel lies (inside a box or not)."""
        for pos in [(1, 0, 2, 3), (0, 0, 0, 0), (3, 2, H - 1, W - 1), (2, 1, H // 2, W // 2)]:
            x = _images()
            x[pos] = bad
            before = x.clone()
            kw = {"out": torch.empty_like(x)} if variant == "out" else {}
            kw = {"inplace": True} if variant == "inplace" else kw
            with pytest.raises(ValueError, match="images hold NaN or Inf values; pass check_"):
                make(generator=0)(x, _labels(), **kw)
            assert torch.equal(x.nan_to_num(), before.nan_to_num())

    @pytest.mark.parametrize("make", IMAGE_MIXERS)
    def test_check_finite_false_mixes_them(self, make):
        x = _images()
        x[1, 0, 2, 3] = float("nan")
        out, targets = make(generator=0, check_finite=False)(x, _labels())
        assert out.shape == x.shape and torch.isfinite(targets).all()
        assert torch.isnan(x[1, 0, 2, 3])  # input untouched

    def test_non_finite_float_masks_rejected(self):
        probs = torch.rand(B, 5, H, W)
        probs[0, 0, 0, 0] = float("nan")
        with pytest.raises(ValueError, match="masks hold NaN or Inf"):
            CutMix(num_classes=5, generator=0)(_images(), _labels(), probs)

    def test_uint8_never_scanned(self):
        x = (_images() * 255).to(torch.uint8)
        assert CutMix(num_classes=5, generator=0)(x, _labels())[0].dtype == torch.uint8

    @pytest.mark.parametrize("make", IMAGE_MIXERS)
    def test_empty_batch(self, make):
        with pytest.raises(ValueError, match="images must hold at least one sample"):
            make(generator=0)(torch.rand(0, C, H, W), torch.zeros(0, dtype=torch.long))
        with pytest.raises(ValueError, match=r"batch_shape must have B, H, W >= 1"):
            make(generator=0).draw((0, C, H, W))

    @pytest.mark.parametrize("shape", [(C, H, W), (B, 1, C, H, W), (B,)])
    def test_wrong_rank(self, shape):
        with pytest.raises(ValueError, match=r"images must be a tensor of shape \(B, C, H, W\)"):
            CutMix(num_classes=5, generator=0)(torch.rand(*shape), _labels())

    @pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
    def test_wrong_image_dtype(self, dtype):
        with pytest.raises(ValueError, match="images must be a float or uint8 tensor"):
            CutMix(num_classes=5, generator=0)(torch.zeros(B, C, H, W, dtype=dtype), _labels())

    def test_not_a_tensor(self):
        with pytest.raises(ValueError, match="images must be a tensor"):
            CutMix(num_classes=5)(np.zeros((B, C, H, W), np.float32), _labels())


# ----------------------------------------------------------------------------- labels
class TestLabels:
    @pytest.mark.parametrize(
        "labels, message",
        [
            (torch.tensor([0.0, 1.0, 2.0, 3.0]), r"labels of shape \(B,\) must be integer"),
            (torch.tensor([True, False, True, True]), r"labels of shape \(B,\) must be integer"),
            (torch.zeros(B, 5, 1), r"labels must have shape \(B,\) or \(B, K\)"),
            (torch.tensor([0, 1, 2, 7]), "num_classes too small"),
            (torch.tensor([0, -1, 2, 3]), r"class ids in \[0, num_classes=5\)"),
            (torch.full((B, 6), 1 / 6), "K = num_classes = 5"),
            (torch.full((B, 5), 0.3), "rows must sum to 1"),
            (torch.full((B, 5), float("nan")), r"probabilities in \[0, 1\]"),
            (torch.tensor([0, 1, 2]), "labels must have batch size 4"),
        ],
    )
    def test_bad_labels(self, labels, message):
        with pytest.raises(ValueError, match=message):
            CutMix(num_classes=5, generator=0)(_images(), labels)

    def test_int_labels_need_num_classes(self):
        with pytest.raises(ValueError, match="num_classes is required"):
            CutMix(generator=0)(_images(), _labels())

    def test_labels_not_a_tensor(self):
        with pytest.raises(ValueError, match="labels must have batch size 4"):
            CutMix(num_classes=5, generator=0)(_images(), [0, 1, 2, 3])


# ----------------------------------------------------------------------------- masks
class TestMasks:
    @pytest.mark.parametrize(
        "masks, message",
        [
            (torch.rand(B, H, W), "masks must be an integer tensor"),
            (torch.zeros(B, H, W, dtype=torch.bool), "masks must be an integer tensor"),
            (torch.zeros(B, H, W, 1, 1, dtype=torch.long), "masks must be an integer tensor"),
            (torch.zeros(B + 1, H, W, dtype=torch.long), "masks must have batch size 4"),
            (torch.zeros(B, H, W + 1, dtype=torch.long), r"masks has batch 4 and size \(8, 11\)"),
        ],
    )
    def test_bad_masks(self, masks, message):
        with pytest.raises(ValueError, match=message):
            CutMix(num_classes=5, generator=0)(_images(), _labels(), masks)

    def test_mixup_refuses_integer_masks(self):
        with pytest.raises(ValueError, match=r"MixUp \(BLEND\) cannot mix integer class-id masks"):
            MixUp(num_classes=5, generator=0)(_images(), _labels(), torch.zeros(B, H, W).long())

    def test_classmix_non_integer_or_missing_maps(self):
        cm = ClassMix(num_classes=5, generator=0)
        with pytest.raises(ValueError, match="label_maps must be an integer tensor"):
            cm.draw((B, C, H, W), label_maps=torch.rand(B, H, W))
        with pytest.raises(ValueError, match="label_maps .* are required"):
            cm(_images())
        with pytest.raises(ValueError, match="num_classes is required"):
            ClassMix(num_classes=None)


# ----------------------------------------------------------------------------- boxes
def _box_batch(xyxy: list[float], valid: bool = True) -> BoxBatch:
    boxes = torch.tensor(xyxy, dtype=torch.float32).view(1, 1, 4).expand(B, 1, 4).clone()
    return BoxBatch(boxes, torch.zeros(B, 1, dtype=torch.long), torch.full((B, 1), valid))


class TestBoxes:
    @pytest.mark.parametrize(
        "xyxy",
        [
            [-1.0, 0.0, 3.0, 3.0],  # negative
            [0.0, -0.5, 3.0, 3.0],
            [0.0, 0.0, W + 1.0, 3.0],  # oversized
            [0.0, 0.0, 3.0, H + 0.5],
            [5.0, 0.0, 3.0, 3.0],  # flipped
            [float("nan"), 0.0, 3.0, 3.0],
        ],
    )
    def test_bad_detection_boxes(self, xyxy):
        with pytest.raises(ValueError, match=r"boxes.boxes must be xyxy pixels with 0 <= x1"):
            CutMix(num_classes=5, generator=0)(_images(), _labels(), boxes=_box_batch(xyxy))

    def test_invalid_slots_are_not_checked(self):
        out = CutMix(num_classes=5, generator=0)(
            _images(), _labels(), boxes=_box_batch([-5.0, -5.0, 99.0, 99.0], valid=False)
        )
        assert not out[2].valid[:, 0].any()

    def test_box_batch_shapes(self):
        bb = _box_batch([0.0, 0.0, 3.0, 3.0])
        with pytest.raises(ValueError, match=r"boxes.boxes must have shape \(4, N, 4\)"):
            CutMix(num_classes=5, generator=0)(
                _images(), _labels(), boxes=bb._replace(boxes=bb.boxes[:, :, :3])
            )
        with pytest.raises(ValueError, match="boxes.labels and boxes.valid"):
            CutMix(num_classes=5, generator=0)(
                _images(), _labels(), boxes=bb._replace(valid=bb.valid.long())
            )

    @pytest.mark.parametrize(
        "boxes, message",
        [
            ([[-1, 0, 3, 3]] * B, "negative or oversized box"),
            ([[0, 0, W + 1, 3]] * B, "negative or oversized box"),
            ([[0, 0, 3, H + 1]] * B, "negative or oversized box"),
            ([[4, 0, 3, 3]] * B, "negative or oversized box"),
            ([[0.0, 0.0, 3.0, 3.0]] * B, r"boxes must be an integer tensor of shape \(4, 4\)"),
            ([[0, 0, 3, 3]] * (B - 1), r"boxes must be an integer tensor of shape \(4, 4\)"),
        ],
    )
    @pytest.mark.parametrize("op", ["cutmix", "resizemix", "cutout"])
    def test_bad_region_boxes_in_ops(self, op, boxes, message):
        boxes = torch.tensor(boxes)
        args = (_images(), boxes) if op == "cutout" else (_images(), boxes, torch.arange(B))
        with pytest.raises(ValueError, match=message):
            getattr(ops, op)(*args)


class TestOpArguments:
    @pytest.mark.parametrize("perm", [[1, 2, 3, 4], [-1, 0, 1, 2]])
    def test_perm_out_of_range(self, perm):
        with pytest.raises(ValueError, match=r"perm must hold indices in \[0, 4\)"):
            ops.mixup(_images(), torch.full((B,), 0.5), torch.tensor(perm))

    def test_perm_wrong_shape(self):
        with pytest.raises(ValueError, match=r"perm must have shape \(4,\)"):
            ops.cutmix(_images(), torch.zeros(B, 4, dtype=torch.long), torch.arange(3))

    @pytest.mark.parametrize("lam", [1.5, -0.1, float("nan")])
    def test_lam_outside_unit_interval(self, lam):
        with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
            ops.mixup(_images(), torch.full((B,), lam), torch.arange(B))

    def test_mask_mix_mask(self):
        with pytest.raises(ValueError, match="mask must be a bool tensor of shape"):
            ops.mask_mix(_images(), torch.zeros(B, H, W, dtype=torch.long), torch.arange(B))


class TestMixParams:
    """A hand-built ``MixParams`` is checked once, when it is made: every field the apply
    step reads (the C kernels read B values of each) and λ in [0, 1]."""

    def _fields(self, **changes):
        fields = {
            "kind": torch.full((B,), int(augment.Kind.BLEND)),
            "lam": torch.full((B,), 0.5),
            "perm": torch.arange(B).roll(1),
            "boxes": torch.zeros(B, 4, dtype=torch.long),
            "size": (H, W),
        }
        fields.update(changes)
        return fields

    def test_good_fields_make_params_that_apply(self):
        params = augment.MixParams(**self._fields())
        x = _images()
        assert torch.equal(augment.apply_images(params, x), ops.mixup(x, params.lam, params.perm))

    @pytest.mark.parametrize(
        "changes, match",
        [
            ({"lam": torch.full((B,), float("nan"))}, r"lam must lie in \[0, 1\] \(no NaN\)"),
            ({"lam": torch.full((B,), 1.5)}, r"lam must lie in \[0, 1\]"),
            ({"lam": torch.full((B,), -0.1, dtype=torch.float64)}, r"lam must lie in \[0, 1\]"),
            ({"lam": torch.full((B - 1,), 0.5)}, r"lam must be a \(4,\) float tensor"),
            ({"lam": torch.ones(B, dtype=torch.long)}, r"lam must be a \(4,\) float tensor"),
            ({"kind": torch.full((B,), 9)}, r"kind must hold Kind values 0\.\.5"),
            ({"kind": torch.full((B,), -1)}, r"kind must hold Kind values 0\.\.5"),
            ({"kind": torch.ones(B)}, r"kind must be a \(B,\) integer tensor"),
            ({"kind": [1, 1, 1, 1]}, r"kind must be a \(B,\) integer tensor, got list"),
            ({"perm": torch.arange(B + 1)}, r"perm must be a \(4,\) integer tensor"),
            ({"boxes": torch.zeros(B, 3, dtype=torch.long)}, r"boxes must be a \(4, 4\) integer"),
            ({"boxes": torch.zeros(B, 4)}, r"boxes must be a \(4, 4\) integer tensor"),
            ({"size": (H, 0)}, r"size must be \(H, W\), two ints >= 1"),
            ({"size": (H,)}, r"size must be \(H, W\)"),
            ({"mask": torch.zeros(B, H, W)}, r"mask must be None or a bool tensor of shape"),
            ({"mask": torch.zeros(B, H, W + 1, dtype=torch.bool)}, r"shape \(4, 8, 10\)"),
        ],
    )
    def test_bad_field(self, changes, match):
        with pytest.raises(ValueError, match=match):
            augment.MixParams(**self._fields(**changes))

    def test_there_is_no_unchecked_constructor(self):
        """Every MixParams is checked when made: no ``drawn``-style bypass exists."""
        assert not hasattr(augment.MixParams, "drawn")
        with pytest.raises(ValueError, match=r"perm must hold indices in \[0, 4\)"):
            augment.MixParams(**self._fields(perm=torch.tensor([0, 1, 2, 4])))
        with pytest.raises(ValueError, match="kind must be a CPU tensor"):
            augment.MixParams(**self._fields(kind=torch.ones(B, dtype=torch.long, device="meta")))

    def test_replace_is_checked_too(self):
        params = augment.MixParams(**self._fields())
        with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
            params.replace(lam=torch.full((B,), 2.0))


# ----------------------------------------------------------------------------- hyper-parameters
class TestHyperParameters:
    @pytest.mark.parametrize("alpha", [0, -1.0, float("nan"), True, "1"])
    @pytest.mark.parametrize("cls", [MixUp, CutMix, FMix])
    def test_alpha(self, cls, alpha):
        with pytest.raises(ValueError, match="alpha must be a number > 0"):
            cls(alpha=alpha)

    def test_other_alphas(self):
        from mixkit.augment import RecursiveMix

        with pytest.raises(ValueError, match="mixup_alpha and cutmix_alpha must be >= 0"):
            MixUpCutMix(mixup_alpha=-1.0)
        with pytest.raises(ValueError, match="not both 0"):
            MixUpCutMix(mixup_alpha=0.0, cutmix_alpha=0.0)
        for alpha in (0.0, -0.5, 1.5):
            with pytest.raises(ValueError, match=r"alpha must be an area fraction in \(0, 1\]"):
                RecursiveMix(alpha)
        with pytest.raises(ValueError, match="decay_power must be a number > 0"):
            FMix(decay_power=0)

    @pytest.mark.parametrize("p", [-0.1, 1.0001, float("nan"), True, None])
    @pytest.mark.parametrize("make", IMAGE_MIXERS)
    def test_p(self, make, p):
        with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\]"):
            make(p=p)

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"mode": "pair"}, "mode must be one of"),
            ({"pairing": "shuffle"}, "pairing must be one of"),
            ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
            ({"num_classes": 0}, "num_classes must be an int >= 1"),
            ({"generator": "seed"}, "generator must be a torch.Generator, an int seed or None"),
            ({"min_visibility": 2.0}, r"min_visibility must be in \[0, 1\]"),
            ({"switch_prob": 1.5}, r"switch_prob must be in \[0, 1\]"),
        ],
    )
    def test_module_arguments(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            MixUpCutMix(**kwargs)

    def test_transform_specific(self):
        with pytest.raises(ValueError, match="length must be an int >= 1"):
            Cutout(length=0)
        with pytest.raises(ValueError, match="scope must satisfy 0 < low <= high <= 1"):
            ResizeMix(scope=(0.5, 0.1))
        with pytest.raises(ValueError, match="interpolation must be one of"):
            ResizeMix(interpolation="cubic")

    def test_registry_names_and_kwargs(self):
        with pytest.raises(ValueError, match=r"aug must be one of \['classmix', 'cutmix'"):
            augment.build_augment("cutmixx")
        with pytest.raises(ValueError, match=r"aug 'mixup' does not accept \['length'\]"):
            augment.build_augment("mixup", length=3)

    def test_params_for_another_shape(self):
        mixer = CutMix(num_classes=5, generator=0)
        params = mixer.draw((B, C, H, W))
        with pytest.raises(ValueError, match=r"images has batch 4 and size \(10, 8\)"):
            mixer.apply(params, torch.rand(B, C, W, H))


# ----------------------------------------------------------------------------- CLI
FAST = ["--dataset", "digits", "--epochs", "1", "--batch-size", "64", "--no-progress"]


def _cli(tmp_path, capsys, *args: str) -> str:
    """Run ``mixkit train`` in-process; assert exit 2 and a one-line stderr; return it."""
    code = main(["train", *FAST, "--grid-samples", "0", "--out", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("mixkit train: error: ")
    return err


def _write_cifar(root, corrupt: bytes | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        (root / name).write_bytes(pickle.dumps(d))
    if corrupt is not None:
        (root / "data_batch_3").write_bytes(corrupt)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class TestCLIErrors:
    @pytest.mark.parametrize(
        "args, message",
        [
            (["--aug", "cutmixx"], "aug must be one of"),
            (["--aug", "classmix"], "aug must be one of"),
            (["--alpha", "0"], "alpha must be a number > 0, got 0.0"),
            (["--alpha", "-1"], "alpha must be a number > 0"),
            (["--p", "1.5"], r"p must be a number in [0, 1], got 1.5"),
            (["--p", "-0.5"], "p must be a number in [0, 1]"),
            (["--checkpoint-every", "-1"], "checkpoint_every must be an int >= 0"),
            (["--set", "epochs=many"], "config key 'epochs' expects int"),
            (["--set", "bogus=1"], "unknown config key 'bogus'"),
            (["--model", "vgg"], "model must be one of"),
            (["--dataset", "svhn"], "dataset must be one of"),
        ],
    )
    def test_flags(self, tmp_path, capsys, args, message):
        assert message in _cli(tmp_path, capsys, *args)

    def test_yaml_unknown_aug_and_key(self, tmp_path, capsys):
        f = tmp_path / "r.yaml"
        f.write_text("aug: mixupp\n")
        assert "aug must be one of" in _cli(tmp_path, capsys, "--config", str(f))
        f.write_text("augs: mixup\n")
        assert "unknown config key 'augs'" in _cli(tmp_path, capsys, "--config", str(f))
        f.write_text("aug: [unclosed\n")
        assert "is not valid YAML" in _cli(tmp_path, capsys, "--config", str(f))

    def test_missing_data_dir(self, tmp_path, capsys):
        err = _cli(tmp_path, capsys, "--dataset", "cifar10", "--data-root", str(tmp_path / "no"))
        assert f"data_root {tmp_path / 'no'} does not exist" in err
        (tmp_path / "empty").mkdir()
        err = _cli(tmp_path, capsys, "--dataset", "cifar10", "--data-root", str(tmp_path / "empty"))
        assert "CIFAR-10 files missing" in err
        assert "data_root is required" in _cli(tmp_path, capsys, "--dataset", "cifar100")

    @pytest.mark.parametrize(
        "payload",
        [b"garbage, not a pickle", pickle.dumps({b"data": 1})[:-3], pickle.dumps([1, 2, 3])],
        ids=["garbage", "truncated", "not-a-dict"],
    )
    def test_corrupt_cifar_pickle(self, tmp_path, capsys, payload):
        root = tmp_path / "cifar"
        _write_cifar(root, corrupt=payload)
        err = _cli(tmp_path, capsys, "--dataset", "cifar10", "--data-root", str(root))
        assert "data_batch_3" in err and "CIFAR" in err

    def test_malicious_cifar_pickle_refused(self, tmp_path, capsys):
        marker = tmp_path / "pwned"
        root = tmp_path / "cifar"
        _write_cifar(root, corrupt=pickle.dumps({b"data": _Evil(str(marker))}))
        err = _cli(tmp_path, capsys, "--dataset", "cifar10", "--data-root", str(root))
        assert "refusing global" in err and not marker.exists()

    def _checkpoint(self, tmp_path) -> os.PathLike:
        path = tmp_path / "run" / "checkpoints" / "last.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def test_resume_missing_checkpoint(self, tmp_path, capsys):
        assert "checkpoint not found" in _cli(tmp_path, capsys, "--resume")

    def test_resume_truncated_checkpoint(self, tmp_path, capsys):
        path = self._checkpoint(tmp_path)
        atomic_save({"model": {"w": torch.arange(1000.0)}}, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        assert "is corrupt or not a mixkit checkpoint" in _cli(tmp_path, capsys, "--resume")
        path.write_bytes(b"")
        assert "is corrupt or not a mixkit checkpoint" in _cli(tmp_path, capsys, "--resume")

    def test_resume_checkpoint_without_resume_state(self, tmp_path, capsys):
        atomic_save({"model": {}, "epoch": 1}, self._checkpoint(tmp_path))
        assert "holds no resume state" in _cli(tmp_path, capsys, "--resume")

    def test_resume_malicious_checkpoint_refused(self, tmp_path, capsys):
        marker = tmp_path / "pwned"
        path = self._checkpoint(tmp_path)
        with path.open("wb") as f:
            pickle.dump({"model": _Evil(str(marker))}, f)
        assert "refused by weights_only loading" in _cli(tmp_path, capsys, "--resume")
        assert not marker.exists()
        torch.save({"model": _Evil(str(marker))}, path)  # torch zip format, same refusal
        err = _cli(tmp_path, capsys, "--resume")
        assert "refused by weights_only loading: Trying to load unsupported GLOBAL" in err
        assert "system" in err and not marker.exists()


@pytest.mark.parametrize("debug", [False, True])
def test_cli_subprocess_exit_code_and_debug(tmp_path, debug):
    """A real process: exit 2 and one stderr line; ``--debug`` shows the traceback."""
    args = [sys.executable, "-m", "mixkit", "train", "--p", "2", "--out", str(tmp_path)]
    res = subprocess.run(args + (["--debug"] if debug else []), capture_output=True, text=True)
    assert res.returncode != 0
    if debug:
        assert "Traceback" in res.stderr
        assert "ValueError: p must be a number in [0, 1]" in res.stderr
    else:
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert res.stderr.strip().splitlines() == [
            "mixkit train: error: p must be a number in [0, 1], got 2.0"
        ]
