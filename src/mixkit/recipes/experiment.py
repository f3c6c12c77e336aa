"""``mixkit experiment NAME``: replication runs (several methods x seeds at a fixed budget)
that write a mean ± std table and plots. The experiments live in :mod:`mixkit.experiments`;
each module in ``EXPERIMENT_MODULES`` defines ``add_experiment(subparsers)`` adding one
sub-command with ``set_defaults(func=handler)``."""

from __future__ import annotations

import argparse
import importlib

EXPERIMENT_MODULES: list[str] = [
    "mixkit.experiments.rm",
    "mixkit.experiments.kd",
    "mixkit.experiments.semiseg",
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="replication experiments (tables + plots)")
    exp = p.add_subparsers(dest="experiment", required=True)
    for module in EXPERIMENT_MODULES:
        importlib.import_module(module).add_experiment(exp)
