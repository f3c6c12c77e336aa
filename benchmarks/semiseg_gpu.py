"""Dual Teacher training speed on a generated VOC-layout dataset: steps/s and peak memory.

    python benchmarks/semiseg_gpu.py                          # CUDA: R101, 321x321, bf16, 50 steps
    python benchmarks/semiseg_gpu.py --device cpu --steps 2 --crop 65   # CPU smoke run

Builds a throw-away ``VOCdevkit/VOC2012`` fixture (random JPEGs and palette masks a bit larger
than the crop, UniMatch-format split lists) in a temporary folder, the ``mixkit semiseg``
Dual Teacher trainer on it (DeepLabv3+ ResNet-101, random init: no weights are downloaded),
runs ``--warmup`` untimed steps, then times ``--steps`` steps (``torch.cuda.synchronize``
around the timed loop on CUDA) and prints one JSON line: steps/s, images/s (labeled +
unlabeled), peak memory and the settings. Batch sizes default to Dual Teacher's per-GPU 4 + 4
(``tools/train.py``: ``batch_size = 4``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mixkit.methods.semiseg import SemisegConfig, build_trainer
from mixkit.methods.semiseg.datasets import voc_palette
from mixkit.recipes import semiseg


def make_voc(root: Path, n: int, h: int, w: int, seed: int = 0) -> None:
    """``n`` train + 2 val images of (h, w) with 21-class palette masks, and the lists."""
    rng = np.random.default_rng(seed)
    ids = [f"2007_{i:06d}" for i in range(n + 2)]
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "splits"):
        (root / d).mkdir(parents=True, exist_ok=True)
    pal = voc_palette()
    for i in ids:
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            root / "JPEGImages" / f"{i}.jpg"
        )
        coarse = rng.integers(0, 21, (h // 16 + 1, w // 16 + 1), dtype=np.uint8)
        mask = Image.fromarray(coarse.repeat(16, 0).repeat(16, 1)[:h, :w], mode="P")
        mask.putpalette(pal)
        mask.save(root / "SegmentationClass" / f"{i}.png")
    lines = [f"JPEGImages/{i}.jpg SegmentationClass/{i}.png\n" for i in ids[:n]]
    (root / "splits" / "labeled.txt").write_text("".join(lines[: n // 2]))
    (root / "splits" / "unlabeled.txt").write_text("".join(lines[n // 2 :]))
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text(f"{ids[-2]}\n{ids[-1]}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=50, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--crop", type=int, default=321, help="square training crop")
    p.add_argument("--batch", type=int, default=4, help="labeled = unlabeled images per step")
    p.add_argument("--model", default="deeplabv3plus_resnet101")
    p.add_argument("--amp", default="bf16", choices=("off", "fp16", "bf16"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--workers", type=int, default=4)
    return p.parse_args(argv)


def time_steps(args: argparse.Namespace, tmp: Path) -> dict:
    """Build the fixture and the trainer under ``tmp``; time the steps."""
    root = tmp / "VOC2012"
    side = int(args.crop * 1.25)
    make_voc(root, n=4 * args.batch, h=side, w=int(side * 1.2))
    cfg = SemisegConfig(
        method="dualteacher", dataset="voc", data_root=str(root),
        labeled_list="splits/labeled.txt", unlabeled_list="splits/unlabeled.txt",
        model=args.model, crop_size=args.crop, batch_size=args.batch,
        unlabeled_batch_size=args.batch, amp=args.amp, channels_last=args.channels_last,
        device=args.device, workers=args.workers, epochs=1,
        iters_per_epoch=args.warmup + args.steps, distance_images=0, distance_every=10**9,
        optimizer="adamw", lr=6e-5, head_lr_mult=10.0, out=str(tmp / "run"),
    )  # fmt: skip
    ds = semiseg.load_data(cfg)
    _, lab, unl = semiseg.resolve_split(cfg, ds)
    trainer = build_trainer(cfg, ds, lab, unl)
    trainer.student.train()
    trainer.on_epoch_start()
    cuda = trainer.device.type == "cuda"
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
        logs = trainer.train_step(i)
        trainer.step += 1
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    trainer.source.close()
    return {"seconds": seconds, "loss": float(logs["loss"]), "device": str(trainer.device)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        print("--steps must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available here: pass --device cpu", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        r = time_steps(args, Path(tmp))
    cuda = r["device"].startswith("cuda")
    seconds = r["seconds"]
    report = {
        "method": "dualteacher", "model": args.model, "device": r["device"],
        "gpu": torch.cuda.get_device_name() if cuda else None, "amp": args.amp,
        "channels_last": args.channels_last, "crop": args.crop,
        "batch": f"{args.batch}+{args.batch}", "steps": args.steps,
        "seconds": round(seconds, 3), "steps_per_s": round(args.steps / seconds, 3),
        "images_per_s": round(2 * args.batch * args.steps / seconds, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
        "last_loss": round(r["loss"], 4), "torch": torch.__version__,
    }  # fmt: skip
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
