"""Device behaviour of the mixers, proven on the CPU.

A tensor on ``device="meta"`` has a shape and a dtype but no values: reading one back to the
host (``.item()``, ``.tolist()``, ``.cpu()``, ``bool(t)``) raises. Every built-in mixer's
forward on meta images, class-id labels and masks therefore shows that a call never reads
device data on the host (the source of host-device syncs on CUDA), while the draw itself
runs on the CPU generator.
"""

from __future__ import annotations

import pytest
import torch

from mixkit import augment
from mixkit.methods.semiseg import build_seg_mixer

B, C, H, W, K = 6, 3, 16, 20, 5
META = torch.device("meta")

BUILTIN = {
    "mixup": lambda: augment.MixUp(num_classes=K),
    "cutmix": lambda: augment.CutMix(num_classes=K),
    "resizemix": lambda: augment.ResizeMix(num_classes=K),
    "resizemix_bilinear": lambda: augment.ResizeMix(num_classes=K, interpolation="bilinear"),
    "cutout": lambda: augment.Cutout(length=6, num_classes=K),
    "fmix": lambda: augment.FMix(num_classes=K),
    "classmix": lambda: augment.ClassMix(K),
    "multibox": lambda: augment.MultiBoxCutMix(num_classes=K),
    "mixup_cutmix": lambda: augment.MixUpCutMix(num_classes=K),
    "gated": lambda: augment.CutMix(num_classes=K, p=0.5),
}
TAKES_INT_MASKS = set(BUILTIN) - {"mixup", "mixup_cutmix"}


def _meta(*shape, dtype=torch.float32):
    return torch.empty(*shape, dtype=dtype, device=META)


@pytest.mark.parametrize("name", sorted(BUILTIN))
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_forward_on_meta_reads_nothing_back(name, dtype):
    mixer = BUILTIN[name]()
    mixer.generator = torch.Generator().manual_seed(0)
    images, labels = _meta(B, C, H, W, dtype=dtype), _meta(B, dtype=torch.long)
    masks = _meta(B, H, W, dtype=torch.long) if name in TAKES_INT_MASKS else None
    if name == "classmix":
        out, out_masks = mixer(images, masks=masks)
        targets = None
    elif masks is not None:
        out, targets, out_masks = mixer(images, labels, masks)
    else:
        out, targets = mixer(images, labels)
        out_masks = None
    assert out.device == META and out.shape == images.shape and out.dtype == dtype
    if targets is not None:
        assert targets.device == META and targets.shape == (B, K)
    if out_masks is not None:
        assert out_masks.device == META and out_masks.shape == (B, H, W)
    # soft probability maps too (mixed like images, Cutout leaves them)
    probs = _meta(B, K, H, W)
    res = mixer.apply(mixer.last_params, images, masks=probs)
    assert res.masks.device == META and res.masks.shape == probs.shape


def test_recursivemix_on_meta():
    mixer = augment.RecursiveMix(num_classes=K, generator=0)
    for _ in range(3):  # the first call stores the history, the next ones paste it
        out, targets = mixer(_meta(B, C, H, W), _meta(B, dtype=torch.long))
        assert out.device == META and out.shape == (B, C, H, W) and targets.shape == (B, K)
    assert mixer.has_history and bool(mixer.last_params.applied.any())


@pytest.mark.parametrize("name", ["cutmix", "classmix", "multibox", "fmix", "none"])
def test_segmentation_mixers_on_meta(name):
    seg = build_seg_mixer(name, num_classes=K)
    maps = _meta(B, H, W, dtype=torch.long)
    params = seg.draw((B, C, H, W), torch.Generator().manual_seed(0), label_maps=maps)
    res = seg.apply(
        params, images=_meta(B, C, H, W), probs=_meta(B, K, H, W), labels=maps,
        valid=_meta(B, H, W, dtype=torch.bool),
    )  # fmt: skip
    assert res.images.device == META and res.probs.shape == (B, K, H, W)
    assert res.labels.dtype == torch.long and res.valid.dtype == torch.bool
    assert res.valid.device == META


def test_a_host_read_would_fail_on_meta():
    """The proof above is only as good as meta's refusal to be read: check it."""
    t = _meta(3)
    for read in (lambda: t.tolist(), lambda: bool(t.sum()), lambda: t.sum().item()):
        with pytest.raises((RuntimeError, NotImplementedError)):
            read()


def test_params_are_drawn_on_the_cpu_and_the_kind_stays_there():
    mixer = augment.ClassMix(K, generator=0)
    maps = _meta(B, H, W, dtype=torch.long)
    params = mixer.draw((B, C, H, W), label_maps=maps)
    assert params.kind.device.type == "cpu" and params.perm.device.type == "cpu"
    assert params.mask.device == META and params.lam.device == META  # from the device maps
    moved = params.to(META)
    assert moved.kind.device.type == "cpu" and moved.boxes.device == META
