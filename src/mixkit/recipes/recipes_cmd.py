"""``mixkit recipes``: the bundled paper recipes (``mixkit/recipes/*.yaml``), one line each:
name, the command that runs it, and the YAML's first-line description. Run one with
``mixkit train --recipe NAME --data-root DIR`` (``mixkit distill`` for ``kd_*``); values are
layered recipe < ``--config`` < ``--set`` < flags."""

from __future__ import annotations

import argparse

from mixkit.config import BUNDLED, recipe_command, recipe_names


def describe(name: str) -> str:
    """The first line of recipe ``name``'s YAML without its ``#`` (empty if not a comment)."""
    lines = (BUNDLED / f"{name}.yaml").read_text().splitlines()
    first = lines[0].strip() if lines else ""
    return first.lstrip("#").strip() if first.startswith("#") else ""


def listing() -> list[str]:
    """``NAME  mixkit COMMAND  description`` for every bundled recipe, aligned."""
    names = recipe_names()
    width = max((len(n) for n in names), default=0)
    return [f"{n:<{width}}  mixkit {recipe_command(n):<7}  {describe(n)}" for n in names]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipes", help="list the bundled paper recipes (run with --recipe NAME)")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    print("\n".join(listing()))
    return 0
