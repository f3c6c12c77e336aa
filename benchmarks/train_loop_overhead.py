"""Steps/s of ``mixkit train`` against a hand-written torch loop doing the same work.

Same data (``mixkit.data.load_dataset``), model (``mixkit.models.build_model``), batch,
optimiser (SGD + momentum + weight decay, cosine LR per step), mixer (``augment.CutMix``) and
a test evaluation after every epoch; the hand loop writes no logs, checkpoints or plots, so
the ratio is what the recipe's bookkeeping costs. Runs alternate (recipe, loop, recipe, ...)
so machine noise hits both; the median of the per-round ratios is reported.

    python benchmarks/train_loop_overhead.py                       # CPU, mnist5k smallcnn
    python benchmarks/train_loop_overhead.py --device cuda --amp bf16 --channels-last
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from mixkit import augment, data, models
from mixkit.config import TrainConfig
from mixkit.recipes import classify


def hand_loop(args: argparse.Namespace) -> tuple[int, float]:
    """The ~40-line loop a researcher writes; returns (optimiser steps, seconds)."""
    torch.manual_seed(args.seed)
    ds = data.load_dataset(args.dataset, seed=args.seed)
    dev = torch.device(args.device)
    model = models.build_model(args.model, ds.num_classes, ds.in_channels).to(dev)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    mixer = augment.CutMix(1.0, num_classes=ds.num_classes,
                           generator=torch.Generator().manual_seed(args.seed + 1))  # fmt: skip
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    autocast = (lambda: torch.autocast(dev.type, dtype)) if dtype else contextlib.nullcontext
    order_gen = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = math.ceil(len(ds.train) / args.batch_size)
    total, step = args.epochs * steps_per_epoch, 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for xb, yb in data.iterate_batches(ds.train, args.batch_size, True, order_gen):
            x = data.to_float(xb.to(dev, non_blocking=True), ds.mean, ds.std)
            x = x.contiguous(memory_format=fmt)
            x, target = mixer(x, yb.to(dev, non_blocking=True))
            for group in opt.param_groups:
                group["lr"] = 0.5 * args.lr * (1 + math.cos(math.pi * step / total))
            with autocast():
                loss = torch.sum(-target * F.log_softmax(model(x).float(), 1), 1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        model.eval()
        correct = 0
        with torch.no_grad(), autocast():
            for xb, yb in data.iterate_batches(ds.test, 512, shuffle=False):
                x = data.to_float(xb.to(dev), ds.mean, ds.std).contiguous(memory_format=fmt)
                correct += (model(x).argmax(1).cpu() == yb).sum().item()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return step, time.perf_counter() - start


def recipe_run(args: argparse.Namespace) -> tuple[int, float]:
    """``mixkit train`` with the same settings; returns (optimiser steps, seconds)."""
    settings = dict(dataset=args.dataset, model=args.model, aug="cutmix", epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                    progress=False, grid_samples=0)  # fmt: skip
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in ("amp", "channels_last"):  # GPU features, where this version has them
        value = getattr(args, key)
        if key in names:
            settings[key] = value
        elif value not in (None, False, "off"):
            raise SystemExit(f"this mixkit has no {key} option")
    with tempfile.TemporaryDirectory() as out:
        settings["out"] = out + "/run"
        if "overwrite" in names:
            settings["overwrite"] = True
        cfg = TrainConfig(**settings)
        start = time.perf_counter()
        classify.run(cfg)
        seconds = time.perf_counter() - start
    steps = args.epochs * math.ceil(len(data.load_dataset(args.dataset).train) / args.batch_size)
    return steps, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist5k", help="embedded dataset; default mnist5k")
    p.add_argument("--model", default="smallcnn", help="zoo model; default smallcnn")
    p.add_argument("--epochs", type=int, default=2, help="epochs per run; default 2")
    p.add_argument("--batch-size", type=int, default=128, help="batch size; default 128")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate; default 0.1")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; default 3")
    p.add_argument("--threads", type=int, default=2, help="torch threads; default 2")
    p.add_argument("--device", default="cpu", help="torch device; default cpu")
    p.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"), help="default off")
    p.add_argument("--channels-last", action="store_true", help="channels_last model + batches")
    p.add_argument("--seed", type=int, default=0, help="seed; default 0")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    recipe_run(args)  # warm-up: imports, data cache, allocator
    ratios, rows = [], []
    for r in range(args.rounds):
        s_rec, t_rec = recipe_run(args)
        s_loop, t_loop = hand_loop(args)
        ratios.append((s_rec / t_rec) / (s_loop / t_loop))
        rows.append(f"| {r + 1} | {s_rec / t_rec:.2f} | {s_loop / t_loop:.2f} | {ratios[-1]:.3f} |")
    print(f"{args.dataset} {args.model} batch {args.batch_size} {args.epochs} epochs, "
          f"device {args.device}, amp {args.amp}, channels_last {args.channels_last}, "
          f"{args.threads} threads, torch {torch.__version__}")  # fmt: skip
    print("| round | mixkit train steps/s | hand loop steps/s | ratio |\n|---|---|---|---|")
    print("\n".join(rows))
    print(f"median ratio (mixkit / hand loop): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
