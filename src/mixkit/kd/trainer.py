"""KD trainer with a DA scheme for the distillation input x′ (``mixkit distill``), top to bottom:

teacher checkpoint (+ its run's config.yaml: model, dataset, split seed) -> the teacher's
train split [first ``train_subset``] -> per batch: x = base_aug(x_raw), x′ = scheme(x)
-> teacher (eval, frozen) on x and x′ -> student on x and x′ (two forward passes, as the
official code) -> ``kd_loss`` -> SGD + cosine LR -> per epoch: test CE/accuracy,
metrics.csv, checkpoints/last.pt; summary.json at the end.

Under ``torchrun`` it trains data-parallel (:mod:`mixkit.distributed`, the pattern of
``mixkit train``): ``batch_size`` is the global batch split over the ranks, every rank loads
the same frozen teacher, the student is wrapped in DistributedDataParallel with synchronised
BatchNorm, and only rank 0 writes the run folder.

Source: Good-DA-in-KD ``helper/loops.py::train_distill`` and ``distiller_zoo/KD.py``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from tqdm import tqdm

from mixkit import data, distributed, losses, models, resume
from mixkit.kd.config import KDConfig
from mixkit.kd.schemes import Identity, SchemeContext, build_scheme, teacher_logits_of_last
from mixkit.train import (
    MetricsWriter,
    atomic_save,
    build_optimizer,
    cosine_lr,
    evaluate,
    load_checkpoint,
    seed_everything,
    write_json,
)

__all__ = [
    "kd_loss",
    "resolve_run",
    "load_teacher",
    "load_student",
    "predict_logits",
    "index_batches",
    "base_augment",
    "run",
]


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    student_aug_logits: Tensor | None = None,
    teacher_aug_logits: Tensor | None = None,
    *,
    temperature: float = 4.0,
    ce_weight: float = 0.1,
    kd_weight: float = 0.9,
    kl_weight: float = 1.0,
    aug_kl_weight: float = 1.0,
) -> dict[str, Tensor]:
    """``ce_weight*CE(s(x), y) + kd_weight*(kl_weight*KL_T(x) + aug_kl_weight*KL_T(x′))``.

    KL_T is ``T² * KL(softmax(t/T) || softmax(s/T))`` summed over classes and averaged over
    the batch (official ``DistillKL``); x′ is supervised only by the teacher's logits on x′
    (``--t_output_as_target_for_input_mix``), never by labels. Logits: (B, K) and (B′, K);
    labels: (B,) int64. Returns ``loss`` plus the unweighted ``ce``, ``kl``, ``kl_aug``.
    """
    if (student_aug_logits is None) != (teacher_aug_logits is None):
        raise ValueError("student_aug_logits and teacher_aug_logits must be given together")
    ce = losses.soft_target_cross_entropy(student_logits, labels)
    kl = losses.kl_div_with_temperature(student_logits, teacher_logits.detach(), temperature)
    kl_aug = torch.zeros((), device=student_logits.device)
    if student_aug_logits is not None:
        kl_aug = losses.kl_div_with_temperature(
            student_aug_logits, teacher_aug_logits.detach(), temperature
        )
    loss = ce_weight * ce + kd_weight * (kl_weight * kl + aug_kl_weight * kl_aug)
    return {"loss": loss, "ce": ce, "kl": kl, "kl_aug": kl_aug}


def resolve_run(path: str | Path | None, what: str) -> tuple[Path, Path, dict[str, Any]]:
    """``(checkpoint, run_dir, run config)`` of a run folder or of ``RUN/checkpoints/*.pt``."""
    if path is None or str(path) == "":
        raise ValueError(f"{what} is required (a checkpoint of a mixkit run, or its folder)")
    p = Path(path)
    if p.is_dir():
        run_dir, ckpt = p, p / "checkpoints" / "last.pt"
    else:
        ckpt = p
        run_dir = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    if not ckpt.is_file():
        raise FileNotFoundError(f"{what} checkpoint not found: {ckpt}")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(
            f"{what} run config not found: {cfg_path} (expected the run folder of {ckpt})"
        )
    cfg = yaml.safe_load(cfg_path.read_text())
    if not isinstance(cfg, dict):
        raise ValueError(f"{what} run config {cfg_path} is not a mapping")
    return ckpt, run_dir, cfg


def _frozen(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_teacher(
    path: str | Path | None, device: str | torch.device = "cpu"
) -> tuple[models.Classifier, data.Dataset, dict[str, Any]]:
    """Teacher from a ``mixkit train`` checkpoint, in eval mode with frozen weights, and the
    dataset with the teacher's own split (its run's ``dataset``, ``data_root``, ``seed``)."""
    ckpt, _, tcfg = resolve_run(path, "teacher")
    for key in ("model", "dataset", "seed"):
        if key not in tcfg:
            raise ValueError(f"teacher run config lacks {key!r}: is it a `mixkit train` run?")
    ds = data.load_dataset(tcfg["dataset"], tcfg.get("data_root"), seed=int(tcfg["seed"]))
    model = models.build_model(tcfg["model"], ds.num_classes, ds.in_channels)
    model.load_state_dict(load_checkpoint(ckpt)["model"])
    return _frozen(model.to(device)), ds, tcfg


def load_student(
    path: str | Path | None, ds: data.Dataset, device: str | torch.device = "cpu"
) -> models.Classifier:
    """Student from a ``mixkit distill`` checkpoint (eval mode, frozen)."""
    ckpt, _, scfg = resolve_run(path, "student_ckpt")
    if "student" not in scfg:
        raise ValueError("student_ckpt run config lacks 'student': is it a `mixkit distill` run?")
    model = models.build_model(scfg["student"], ds.num_classes, ds.in_channels)
    model.load_state_dict(load_checkpoint(ckpt)["model"])
    return _frozen(model.to(device))


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: Tensor, ctx: SchemeContext, device: str | torch.device, chunk: int = 512
) -> Tensor:
    """Logits of pixel images x (N, C, H, W) in chunks, model in eval mode. (N, K) on CPU."""
    was = model.training
    model.eval()
    out = [model(ctx.normalize(x[i : i + chunk].to(device))).cpu() for i in range(0, len(x), chunk)]
    model.train(was)
    return torch.cat(out)


def index_batches(
    n: int,
    batch_size: int,
    generator: torch.Generator | None,
    shuffle: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[Tensor]:
    """Index batches of one pass, the same draw as ``data.iterate_batches`` (one randperm).
    With ``world_size > 1``: rank ``rank``'s shard of that permutation
    (``DistributedSampler`` semantics, :func:`mixkit.distributed.shard_order`) in batches of
    ``batch_size`` (the per-rank batch)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if world_size > 1:
        order = distributed.shard_order(n, rank, world_size, order)
    yield from order.split(batch_size)


def base_augment(x: Tensor, base_aug: str, pad: int, generator: torch.Generator | None) -> Tensor:
    """The loader's transform of x: per-sample crop (+ flip) or nothing."""
    if base_aug == "none":
        return x
    return data.random_crop_flip(x, pad, generator, per_sample=True, flip=base_aug == "crop_flip")


def subset(split: data.Split, n: int) -> data.Split:
    """The first ``n`` images of a split (the split is already shuffled); 0 = all."""
    if n == 0 or n >= len(split):
        return split
    return data.Split(split.x[:n], split.y[:n])


class _StudentPass(nn.Module):
    """The student on x and x′ in one call (two passes as the official code, or one over
    ``cat(x, x′)`` with ``joint``), so DistributedDataParallel sees both uses of a step."""

    def __init__(self, student: nn.Module, joint: bool) -> None:
        super().__init__()
        self.student, self.joint = student, joint

    def forward(self, x: Tensor, x_aug: Tensor) -> tuple[Tensor, Tensor]:
        if self.joint:
            s, s_aug = self.student(torch.cat([x, x_aug])).split([len(x), len(x_aug)])
            return s, s_aug
        return self.student(x), self.student(x_aug)


# Config keys that may change between a run and its resumption (the rest must match).
RESUME_IGNORES = frozenset({"resume", "checkpoint_every", "progress", "out", "device"})


def run(cfg: KDConfig) -> dict[str, Any]:
    """Distil a student and write the run folder ``cfg.out``. Returns the summary dict.

    Under ``torchrun`` (``WORLD_SIZE > 1``) this is data-parallel: ``cfg.batch_size`` is the
    global batch, split evenly over the ranks; see :mod:`mixkit.distributed`."""
    return distributed.launch(_run, cfg)


def _run(cfg: KDConfig, env: distributed.DistEnv) -> dict[str, Any]:
    out, main = Path(cfg.out), env.is_main
    distributed.check_global_batch(cfg.batch_size, env)
    device = env.device if env.distributed else torch.device(cfg.device)
    # Every rank loads the same checkpoint: identical frozen teachers (checked at the end).
    teacher, ds, tcfg = load_teacher(cfg.teacher, device)
    distributed.start_run_dir(out, cfg, env)
    seed_everything(cfg.seed)  # same student init on every rank
    student = models.build_model(cfg.student, ds.num_classes, ds.in_channels).to(device)
    # global-batch BN statistics across ranks (no-op on one rank)
    student = distributed.sync_batchnorm(student, env)
    if env.rank:  # per-rank global RNGs; rank 0 keeps the plain-run seeds
        seed_everything(distributed.rank_seed(cfg.seed, env.rank))
    scheme = build_scheme(cfg.da, **cfg.scheme_options())
    ctx = SchemeContext(ds.mean, ds.std, teacher, student, cfg.temperature)
    train = subset(ds.train, cfg.train_subset)

    # Generators: shuffle (one global permutation: same seed on every rank), x's loader
    # transform and the scheme draws (independent per-rank streams; rank 0 = plain run).
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)
    base_gen = torch.Generator().manual_seed(distributed.rank_seed(cfg.seed + 1, env.rank))
    scheme_gen = torch.Generator().manual_seed(distributed.rank_seed(cfg.seed + 2, env.rank))
    # Without a loader transform x is fixed, so the frozen teacher's logits on x are cached.
    cached = predict_logits(teacher, train.x, ctx, device) if cfg.base_aug == "none" else None

    optimizer = build_optimizer(student, cfg.lr, cfg.momentum, cfg.weight_decay)
    student_pass = distributed.wrap_ddp(_StudentPass(student, cfg.joint_forward), env)
    local_bs = cfg.batch_size // env.world_size
    n_local = len(distributed.shard_order(len(train), env.rank, env.world_size))
    steps_per_epoch = -(-n_local // local_bs)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    test_split = ds.test
    if env.distributed:  # each rank evaluates every world_size-th test image; sums reduced
        test_idx = torch.arange(len(ds.test))[env.rank :: env.world_size]
        test_split = data.Split(ds.test.x[test_idx], ds.test.y[test_idx])

    def test_batches():
        for xb, yb in data.iterate_batches(test_split, 512):
            yield ctx.normalize(xb), yb

    def test(model: nn.Module) -> dict[str, float]:
        local = evaluate(model, test_batches(), device)
        if not env.distributed:
            return local
        n = len(test_split)
        acc, loss, n_all = distributed.all_reduce_sum([local["acc"] * n, local["loss"] * n, n], env)
        return {"acc": acc / n_all, "loss": loss / n_all}

    teacher_test = test(teacher)
    # Resume (mixkit.resume): loader position (epoch, batch, shuffle state at the epoch
    # start), running sums, epoch rows, every RNG/generator state; same config required.
    ckpt_path = out / "checkpoints" / "last.pt"
    # Per rank: every RNG/generator state (the checkpoint's ``ranks`` list, rank 0 writes).
    generators = {"base": base_gen, "scheme": scheme_gen}
    start_epoch = start_batch = step = 0
    elapsed, history, partial = 0.0, [], None
    epoch_state = shuffle_gen.get_state()
    if cfg.resume:
        ckpt = load_checkpoint(ckpt_path)
        if "rng" not in ckpt or "config" not in ckpt:
            raise ValueError(f"checkpoint {ckpt_path} holds no resume state (older mixkit?)")
        resume.check_resume_config(ckpt["config"], dataclasses.asdict(cfg), RESUME_IGNORES)
        ranks = ckpt.get("ranks", [{"rng": ckpt["rng"]}])  # older 1-rank checkpoints
        if len(ranks) != env.world_size:
            raise ValueError(
                f"resume: checkpoint {ckpt_path} was written by {len(ranks)} ranks, "
                f"this run has {env.world_size}"
            )
        student.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        resume.restore_rng(ranks[env.rank]["rng"], generators)
        start_epoch, start_batch, step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
        epoch_state, history, elapsed = (
            ckpt["shuffle_state"],
            list(ckpt["metrics"]),
            ckpt["elapsed_s"],
        )
        partial = (dict(ckpt["sums"]), ckpt["seen"])
    if main:
        (out / "metrics.csv").unlink(missing_ok=True)  # rewritten: exactly the rows so far
        metrics = MetricsWriter(out / "metrics.csv")
        for row in history:
            metrics.write(row)

    def save(epochs_done: int, batch: int, shuffle_state: Tensor, sums: dict, seen: int) -> None:
        ranks = distributed.all_gather_object(  # collective: every rank calls it
            {"rng": resume.capture_rng(generators)}, env
        )
        if not main:
            return
        state = {
            "model": student.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epochs_done,
            "step": step,
            "batch": batch,
            "shuffle_state": shuffle_state,
            "sums": dict(sums),
            "seen": seen,
            "metrics": history,
            "rng": ranks[0]["rng"],
            "ranks": ranks,
            "config": dataclasses.asdict(cfg),
            "elapsed_s": time.time() - start,
        }
        atomic_save(state, ckpt_path)

    start = time.time() - elapsed
    result: dict[str, float] = {}
    if history:
        result = {"acc": history[-1]["test_acc"], "loss": history[-1]["test_loss"]}
    for epoch in range(start_epoch, cfg.epochs):
        student.train()
        first = start_batch if epoch == start_epoch else 0
        sums = {"loss": 0.0, "ce": 0.0, "kl": 0.0, "kl_aug": 0.0}
        seen = 0
        if first and partial is not None:  # replay the epoch's permutation, skip done batches
            shuffle_gen.set_state(epoch_state)
            sums, seen = partial
        else:
            epoch_state = shuffle_gen.get_state()
        batches = index_batches(
            len(train), local_bs, shuffle_gen, rank=env.rank, world_size=env.world_size
        )
        bar = tqdm(
            itertools.islice(batches, first, None),
            initial=first,
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not (cfg.progress and main),
            leave=False,
        )
        for b, idx in enumerate(bar, start=first):
            xb = base_augment(train.x.index_select(0, idx), cfg.base_aug, cfg.crop_pad, base_gen)
            xb, y = xb.to(device), train.y.index_select(0, idx).to(device)
            xa = scheme(xb, scheme_gen, ctx)  # pixel x′ (may need teacher/student)
            x, x_aug = ctx.normalize(xb), ctx.normalize(xa)
            with torch.no_grad():
                t = cached.index_select(0, idx).to(device) if cached is not None else teacher(x)
                t_aug = t if isinstance(scheme, Identity) else teacher_logits_of_last(scheme)
                t_aug = teacher(x_aug) if t_aug is None else t_aug
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(cfg.lr, step, total_steps, warmup)
            s, s_aug = student_pass(x, x_aug)
            parts = kd_loss(
                s,
                t,
                y,
                s_aug,
                t_aug,
                temperature=cfg.temperature,
                ce_weight=cfg.ce_weight,
                kd_weight=cfg.kd_weight,
                kl_weight=cfg.kl_weight,
                aug_kl_weight=cfg.aug_kl_weight,
            )
            optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            optimizer.step()
            step += 1
            *step_sums, n = distributed.all_reduce_sum(  # summed over ranks
                [float(parts[k].detach()) * len(idx) for k in sums] + [len(idx)], env
            )
            for k, v in zip(sums, step_sums, strict=True):
                sums[k] += v
            seen += int(n)
            bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                if b + 1 < steps_per_epoch:  # the epoch-end checkpoint follows otherwise
                    save(epoch, b + 1, epoch_state, sums, seen)
        last = epoch + 1 == cfg.epochs
        if last or (epoch + 1) % cfg.eval_every == 0:
            result = test(student)
        else:
            result = {"loss": float("nan"), "acc": float("nan")}
        row = {
            "epoch": epoch + 1,
            **{f"train_{k}": v / seen for k, v in sums.items()},
            "test_loss": result["loss"],
            "test_acc": result["acc"],
            "lr": optimizer.param_groups[0]["lr"],
            "time_s": round(time.time() - start, 3),
        }
        history.append(row)
        if main:
            metrics.write(row)
        if cfg.progress and main:
            print(
                f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.4f}  "
                f"test_loss {result['loss']:.4f}  test_acc {result['acc']:.4f}",
                flush=True,
            )
        save(epoch + 1, 0, shuffle_gen.get_state(), {}, 0)

    summary = {
        "test_acc": result.get("acc"),
        "test_loss": result.get("loss"),
        "teacher_test_acc": teacher_test["acc"],
        "teacher_test_loss": teacher_test["loss"],
        "da": scheme.name,
        "student": cfg.student,
        "teacher_model": tcfg["model"],
        "dataset": tcfg["dataset"],
        "train_size": len(train),
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "world_size": env.world_size,
        "train_time_s": round(time.time() - start, 2),
    }
    if env.distributed:  # every rank must end with the same bytes (SHA-256 per rank)
        summary["weights_sha256"] = distributed.check_same_across_ranks(student, env)
        summary["teacher_sha256"] = distributed.check_same_across_ranks(teacher, env, "teacher")
    if main:
        write_json(summary, out / "summary.json")
    return summary
