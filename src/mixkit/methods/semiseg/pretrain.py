"""An "ImageNet-pretrained backbone" analogue for the digit canvases.

Every official system starts from a backbone pretrained on other data (PS-MT: ImageNet
ResNet; Dual Teacher: ImageNet MiT; both with random decoders — PS-MT
``Model/Deeplabv3_plus``, Dual Teacher ``seg_core/model.py``). Here the analogue is a SegNet
trained, fully supervised, on canvases rendered from a DIFFERENT digit
source: scikit-learn's 1797 8x8 handwritten digits (UCI optdigits, upsampled to 28x28), drawn
with the same canvas generator. No MNIST image or label is used, so the semi-supervised
splits stay honest. Only the encoder weights are transferred (decoders start random).

The weights are a pure function of (width, canvas, steps, seed) and are cached on disk.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mixkit.methods.semiseg.data import IGNORE, NUM_CLASSES, SegSplit, _render
from mixkit.methods.semiseg.net import SegNet
from mixkit.methods.semiseg.views import normalise, weak_view
from mixkit.train import atomic_save, load_checkpoint

ENCODER_PREFIXES = ("stem.", "low.", "down.", "context.", "aspp.")


def sklearn_digit_canvases(n: int, size: int, seed: int) -> SegSplit:
    """``n`` canvases of scikit-learn digits (8x8, values 0..16 -> 28x28 uint8)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images).float().div(16).unsqueeze(1)
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = F.pad(x, (4, 4, 4, 4))  # MNIST-like 20x20 glyph in a 28x28 frame
    pool = (x * 255).round().clamp(0, 255).to(torch.uint8)
    y = torch.from_numpy(d.target).long()
    gen = torch.Generator().manual_seed(10_000 + seed)
    return _render(pool, y, n, size, 3, 0.5, (0.4, 0.62), gen)


def pretrain_encoder(
    width: int = 16, size: int = 48, steps: int = 600, seed: int = 0, batch: int = 16
) -> dict[str, torch.Tensor]:
    """Train a SegNet on sklearn-digit canvases; return its full state dict (CPU)."""
    canv = sklearn_digit_canvases(2000, size, seed)
    xf = canv.images.float() / 255
    mean = tuple(float(v) for v in xf.mean((0, 2, 3)))
    std = tuple(float(v) for v in xf.std((0, 2, 3)).clamp_min(1e-3))
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SegNet(NUM_CLASSES, 3, width)
    opt = torch.optim.AdamW(net.parameters(), lr=0.006, weight_decay=1e-4)
    net.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = 0.006 * (1 - step / steps) ** 0.9
        idx = torch.randint(0, len(canv), (batch,), generator=gen)
        xb, yb, _ = weak_view(canv.images[idx], canv.labels[idx], 4, gen)
        logits = net(normalise(xb.float() / 255, mean, std))
        loss = F.cross_entropy(logits, yb.long(), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _key(width: int, size: int, steps: int, seed: int) -> str:
    blob = json.dumps({"w": width, "s": size, "n": steps, "seed": seed, "v": 1})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@lru_cache(maxsize=4)
def cached_pretrained(
    width: int, size: int, steps: int, seed: int, folder: str
) -> dict[str, torch.Tensor]:
    """``pretrain_encoder`` cached as ``folder/segnet_w{width}_{key}.pt``."""
    path = (
        Path(folder)
        / f"segnet_w{width}_s{size}_n{steps}_seed{seed}_{_key(width, size, steps, seed)}.pt"
    )
    if path.is_file():
        return load_checkpoint(path)["model"]
    state = pretrain_encoder(width, size, steps, seed)
    atomic_save({"model": state, "source": "sklearn digits canvases"}, path)
    return state


def load_encoder(net: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copy the encoder entries of ``state`` into ``net``. Returns the number copied."""
    enc = {k: v for k, v in state.items() if k.startswith(ENCODER_PREFIXES)}
    own = net.state_dict()
    missing = [k for k in enc if k not in own or own[k].shape != enc[k].shape]
    if missing or not enc:
        raise ValueError(f"pretrained encoder does not fit this SegNet (mismatched: {missing[:3]})")
    net.load_state_dict(enc, strict=False)
    return len(enc)
