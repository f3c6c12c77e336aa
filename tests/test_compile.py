"""``mixkit.compile``: the compiled apply gives the same bytes as eager for every mixer, for
two batch and image sizes (one graph each, dynamic shapes), and really runs compiled."""

from __future__ import annotations

import pytest
import torch

import mixkit
from mixkit import augment
from mixkit.methods.semiseg import build_seg_mixer

K = 5
MIXERS = {
    "mixup": lambda: augment.MixUp(num_classes=K),
    "cutmix": lambda: augment.CutMix(num_classes=K, p=0.6),
    "resizemix": lambda: augment.ResizeMix(num_classes=K),
    "resizemix_bilinear": lambda: augment.ResizeMix(num_classes=K, interpolation="bilinear"),
    "cutout": lambda: augment.Cutout(length=6, value=(0.1, 0.2, 0.3), num_classes=K),
    "fmix": lambda: augment.FMix(num_classes=K),
    "classmix": lambda: augment.ClassMix(K),
    "multibox": lambda: augment.MultiBoxCutMix(num_classes=K),
    "mixup_cutmix": lambda: augment.MixUpCutMix(num_classes=K),
}


def _batch(b: int, h: int, w: int, dtype: torch.dtype, seed: int):
    g = torch.Generator().manual_seed(seed)
    images = (torch.rand(b, 3, h, w, generator=g) * 255).to(dtype)
    maps = torch.randint(0, K, (b, h, w), generator=g)
    return images, maps


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_compiled_apply_is_eager_bytes(name):
    eager, compiled = MIXERS[name](), mixkit.compile(MIXERS[name]())
    assert compiled._kernel is not eager._kernel
    torch._dynamo.reset()  # compile afresh (inductor's on-disk cache keeps this quick)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    calls = []
    with torch._dynamo.config.patch(error_on_recompile=False):
        for b, h, w, seed in ((6, 16, 20, 0), (9, 12, 17, 1)):
            images, maps = _batch(b, h, w, torch.float32, seed)
            params = eager.draw(images.shape, seed, label_maps=maps)
            want, got = eager.apply(params, images), compiled.apply(params, images)
            assert torch.equal(want.images, got.images)
            calls.append(params.kinds())
            if not eager.blends:  # class-id maps: the same kernel on (B, 1, H, W) integers
                want = eager.apply(params, masks=maps).masks
                assert torch.equal(want, compiled.apply(params, masks=maps).masks)
    compiled_now = torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs
    assert compiled_now >= 1, "the compiled kernel never ran compiled"


def test_compiled_segmentation_and_uint8():
    seg = build_seg_mixer("cutmix", num_classes=K)
    eager_seg = build_seg_mixer("cutmix", num_classes=K)
    mixkit.compile(seg.mixer)
    images, maps = _batch(6, 16, 20, torch.uint8, 3)
    params = eager_seg.draw(images.shape, torch.Generator().manual_seed(0))
    probs = torch.rand(6, K, 16, 20)
    valid = maps > 0
    want = eager_seg.apply(params, images, probs, maps, valid)
    got = seg.apply(params, images, probs, maps, valid)
    for a, b in zip(want[:4], got[:4], strict=True):
        assert torch.equal(a, b)


def test_compile_refuses_other_modules():
    with pytest.raises(ValueError, match="mixer must be a mixkit MixTransform"):
        mixkit.compile(torch.nn.Identity())
