"""CUDA check of every mixer: no host-device sync, CPU bytes, time vs a device copy.

    python benchmarks/cuda_check.py [--batch 64 --size 224 --rounds 20]

For each built-in mixer (eager, then compiled with ``mixkit.compile``):
1. the whole call ``mixer(images, labels[, masks])`` runs under
   ``torch.cuda.set_sync_debug_mode("error")``: any host-device synchronisation raises;
2. the CUDA outputs equal, byte for byte, the CPU outputs for the same params;
3. the apply is timed with CUDA events against ``out.copy_(images)`` (median of rounds).
Prints one table; exits 1 if a check fails. Needs a CUDA device.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

import mixkit
from mixkit import augment
from mixkit.methods.semiseg import build_seg_mixer

K = 10


def mixers() -> dict[str, object]:
    return {
        "mixup": lambda: augment.MixUp(num_classes=K),
        "cutmix": lambda: augment.CutMix(num_classes=K),
        "resizemix": lambda: augment.ResizeMix(num_classes=K),
        "resizemix_bilinear": lambda: augment.ResizeMix(num_classes=K, interpolation="bilinear"),
        "cutout": lambda: augment.Cutout(num_classes=K),
        "fmix": lambda: augment.FMix(num_classes=K),
        "classmix": lambda: augment.ClassMix(K),
        "multibox": lambda: augment.MultiBoxCutMix(num_classes=K),
        "mixup_cutmix": lambda: augment.MixUpCutMix(num_classes=K),
        "gated_cutmix": lambda: augment.CutMix(num_classes=K, p=0.5),
    }


def event_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def check_one(name: str, make, compiled: bool, args) -> tuple[bool, str]:
    dev = torch.device("cuda")
    gen = torch.Generator().manual_seed(0)
    b, s = args.batch, args.size
    cpu_x = torch.rand(b, 3, s, s, generator=gen)
    cpu_y = torch.randint(0, K, (b,), generator=gen)
    cpu_m = torch.randint(0, K, (b, s, s), generator=gen)
    x, y, m = cpu_x.to(dev), cpu_y.to(dev), cpu_m.to(dev)
    mixer = make()
    if compiled:
        mixkit.compile(mixer)
    masks_ok = not mixer.blends
    mixer.generator = torch.Generator().manual_seed(1)
    mixer(x, y, m) if masks_ok else mixer(x, y)  # warm-up (and compile)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        mixer.generator = torch.Generator().manual_seed(2)
        outs = mixer(x, y, m) if masks_ok else mixer(x, y)
        params = mixer.last_params
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    ref = make().apply(params, cpu_x, cpu_y, cpu_m if masks_ok else None)
    same = torch.equal(outs[0].cpu(), ref.images) and torch.equal(outs[1].cpu(), ref.labels)
    if masks_ok:
        same = same and torch.equal(outs[2].cpu(), ref.masks)
    out = torch.empty_like(x)
    apply_ms = event_ms(lambda: mixer.apply(params, x), args.rounds)
    copy_ms = event_ms(lambda: out.copy_(x), args.rounds)
    row = f"| {name} | {'compiled' if compiled else 'eager'} | {same} | {apply_ms:.3f} | "
    row += f"{copy_ms:.3f} | {apply_ms / copy_ms:.2f} |"
    return same, row


def check_segmentation(args) -> bool:
    dev = torch.device("cuda")
    seg = build_seg_mixer("cutmix", num_classes=K)
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev)
    probs = torch.rand(args.batch, K, args.size, args.size, device=dev)
    labels = probs.argmax(1)
    torch.cuda.set_sync_debug_mode("error")
    try:
        params = seg.draw(x.shape, torch.Generator().manual_seed(0), label_maps=labels)
        res = seg.apply(params, x, probs, labels, labels > 0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    ref = seg.apply(params, x.cpu(), probs.cpu(), labels.cpu(), labels.cpu() > 0)
    return all(torch.equal(a.cpu(), r) for a, r in zip(res[:4], ref[:4], strict=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64, help="batch size B (default 64)")
    p.add_argument("--size", type=int, default=224, help="image side H = W (default 224)")
    p.add_argument("--rounds", type=int, default=20, help="timed rounds per case (median)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing checked", file=sys.stderr)
        return 2
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"batch {args.batch}x3x{args.size}x{args.size} float32, sync debug mode 'error'\n")
    print("| mixer | path | CUDA bytes == CPU | apply ms | copy_ ms | apply x copy |")
    print("|---|---|---|---:|---:|---:|")
    ok = True
    for compiled in (False, True):
        for name, make in mixers().items():
            try:
                same, row = check_one(name, make, compiled, args)
            except RuntimeError as err:  # a sync under the debug mode, or a kernel failure
                same, row = False, f"| {name} | {'compiled' if compiled else 'eager'} | {err} |"
            ok &= same
            print(row, flush=True)
    seg_ok = check_segmentation(args)
    print(f"\nsegmentation CutMix (images, probs, labels, valid): CUDA bytes == CPU: {seg_ok}")
    return 0 if ok and seg_ok else 1


if __name__ == "__main__":
    sys.exit(main())
