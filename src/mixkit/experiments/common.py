"""What the replication experiments :mod:`mixkit.experiments.kd` and
:mod:`mixkit.experiments.semiseg` share: their sub-command (flags from a config dataclass),
the command line a report quotes, and the ``results.md`` / ``results.json`` files."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mixkit.options import check_options, comma_list, option


def int_list(name: str) -> Callable[[Any], None]:
    """A check that ``value`` is a comma-separated list of at least one int."""

    def check(value: Any) -> None:
        items = comma_list(value)
        if not items or not all(s.lstrip("-").isdigit() for s in items):
            raise ValueError(f"{name} must be comma-separated ints, got {value!r}")

    return check


@dataclasses.dataclass
class ExperimentOutput:
    """Where a replication writes (fields shared by every ``mixkit experiment``)."""

    jobs: int = option(2, "runs in parallel worker processes (one torch thread each)", at_least=1)
    write_docs: bool = option(False, "also write the docs page, figure and BENCHMARKS section")
    docs_dir: str = option("docs", "docs folder --write-docs writes into")
    benchmarks: str = option("BENCHMARKS.md", "BENCHMARKS file --write-docs updates")
    force: bool = option(False, "rerun the runs already finished under OUT")

    def __post_init__(self) -> None:
        check_options(self)


def add_experiment_parser(
    sub: argparse._SubParsersAction,
    name: str,
    help_text: str,
    doc: str,
    config_cls: type,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """``mixkit experiment NAME``: one flag per field of ``config_cls`` plus the common flags;
    the first line of ``doc`` is its description."""
    from mixkit.cli import add_common_flags, add_config_flags, plain_description

    p = sub.add_parser(name, help=help_text, description=plain_description(doc))
    add_config_flags(p, config_cls)
    add_common_flags(p)
    p.set_defaults(func=handler)
    return p


def experiment_command(
    name: str, args: argparse.Namespace, config_cls: type, extra: Iterable[str] = ()
) -> str:
    """The command line that reruns ``mixkit experiment NAME`` with the flags given."""
    from mixkit.cli import given_flags

    flags = [*given_flags(args, config_cls), *extra]
    return f"OMP_NUM_THREADS=1 mixkit experiment {name} " + " ".join(flags)


def write_results(out: Path, markdown: str, data: Any, cfg: ExperimentOutput) -> Path | None:
    """``OUT/results.md`` (the report) and ``OUT/results.json`` (its numbers); returns the
    docs folder (created if missing) the experiment writes into with ``--write-docs``, else
    None."""
    from mixkit.train import write_json

    (out / "results.md").write_text(markdown + "\n")
    write_json(data, out / "results.json")
    if not cfg.write_docs:
        return None
    docs = Path(cfg.docs_dir)
    docs.mkdir(parents=True, exist_ok=True)
    return docs
