"""``mixkit distill`` and ``mixkit kd-audit`` (Good-DA-in-KD).

    mixkit train --model smallcnn --out runs/teacher                # the teacher first
    mixkit distill --teacher runs/teacher/checkpoints/last.pt --student tinycnn \\
        --da cutmix_pick --pick-criterion teacher_entropy --out runs/kd_cmp
    mixkit kd-audit --teacher runs/teacher/checkpoints/last.pt --da identity,cutmix,cutmix_pick_t
    mixkit distill --teacher resnet56.pth --teacher-model resnet56 --dataset cifar100 \\
        --data-root DATA --student resnet20                          # any state_dict teacher
    mixkit distill --recipe kd_cifar100_resnet56_resnet20 --teacher resnet56.pth --data-root DATA

``torchrun --nproc_per_node 2 -m mixkit distill ...`` distils data-parallel (``--batch-size``
is the global batch). The trainer, schemes and audit live in ``mixkit.methods.kd``; this
module only wires the CLI.
"""

from __future__ import annotations

import argparse
import os

from mixkit.methods.kd.config import AuditConfig, KDConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    from mixkit.cli import add_common_flags, add_config_flags

    p = sub.add_parser("distill", help="knowledge distillation with a DA scheme for x′")
    add_config_flags(p, KDConfig)
    add_common_flags(p)
    p.set_defaults(func=_cmd_distill)

    a = sub.add_parser("kd-audit", help="T. stddev of DA schemes under a fixed teacher")
    add_config_flags(a, AuditConfig)
    add_common_flags(a)
    a.set_defaults(func=_cmd_audit)


def _cmd_distill(args: argparse.Namespace) -> int:
    from mixkit.cli import config_from_args
    from mixkit.methods.kd import trainer

    cfg = config_from_args(args, KDConfig)
    s = trainer.run(cfg)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    print(
        f"done: {s['da']} -> {s['student']}: test_acc {s['test_acc']:.4f}  "
        f"test_loss {s['test_loss']:.4f}  (teacher {s['teacher_test_acc']:.4f}; "
        f"{s['train_time_s']} s) -> {s['out']}"
    )
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mixkit.cli import config_from_args
    from mixkit.methods.kd import audit

    cfg = config_from_args(args, AuditConfig)
    res = audit.run_audit(cfg)
    print((Path(res["out"]) / "audit.md").read_text(), end="")
    print(
        f"wrote {res['out']}/audit.md, audit.json, audit.csv"
        + (f", {res['scatter']}" if "scatter" in res else "")
    )
    return 0
