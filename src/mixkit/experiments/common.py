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


def machine() -> str:
    """The machine a report names: ``'2-core CPU, torch 2.13.0+cpu'``."""
    import os

    import torch

    return f"{os.cpu_count()}-core CPU, torch {torch.__version__}"


@dataclasses.dataclass
class ExperimentOutput:
    """Where a replication writes (fields shared by every ``mixkit experiment``)."""

    jobs: int = option(2, "runs in parallel worker processes (one torch thread each)", at_least=1)
    write_docs: bool = option(False, "also write the docs page, figure and BENCHMARKS section")
    docs_dir: str = option("docs", "docs folder --write-docs writes into")
    benchmarks: str = option("BENCHMARKS.md", "BENCHMARKS file --write-docs updates")
    force: bool = option(False, "rerun the runs already finished under OUT")
    protocol: str = option(
        "",
        "pre-registered protocol file (markdown, one yaml block per study) that sets "
        "every setting of the study",
    )
    new_protocol: bool = option(
        False,
        "run a protocol whose settings differ from the recorded tables (the recorded "
        "BENCHMARKS section is kept below the new one)",
    )

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


def add_study(
    sub: argparse._SubParsersAction,
    name: str,
    help_text: str,
    doc: str,
    config_cls: type,
    section: str,
    run: Callable[..., dict[str, Any]],
) -> argparse.ArgumentParser:
    """``mixkit experiment NAME``: its flags, and a handler that builds the config
    (:func:`experiment_config`), calls ``run(cfg, command=...)`` and prints the report."""

    def handler(args: argparse.Namespace) -> int:
        cfg = experiment_config(args, config_cls, name, section)
        res = run(cfg, command=experiment_command(name, args, config_cls))
        print(res["markdown"])
        return 0

    return add_experiment_parser(sub, name, help_text, doc, config_cls, handler)


def experiment_config(args: argparse.Namespace, cls: type, study: str, section: str) -> Any:
    """The config of ``mixkit experiment STUDY`` from its flags, or from ``--protocol``
    (checked against the settings recorded by an earlier run: :mod:`.protocol`)."""
    from mixkit.cli import config_from_args
    from mixkit.config import load_yaml, parse_overrides
    from mixkit.experiments.protocol import apply_protocol, check_recorded

    cfg = config_from_args(args, cls)
    given = {k for k, v in vars(args).items() if v is not None and k not in ("config", "set")}
    given |= {k.replace("-", "_") for k in parse_overrides(args.set)}
    if args.config:
        given |= {k.replace("-", "_") for k in load_yaml(args.config)}
    cfg = apply_protocol(cfg, study, given)
    check_recorded(cfg, section)
    return cfg


def write_section(cfg: ExperimentOutput, heading: str, body: str) -> None:
    """Replace the BENCHMARKS section ``heading`` with ``body`` and the run's settings line;
    with ``--new-protocol`` a recorded section of other settings is kept below the new one."""
    from mixkit.experiments.markdown import replace_section
    from mixkit.experiments.protocol import governed, recorded_settings, section_text, settings_line

    old = section_text(cfg.benchmarks, heading)
    saved = recorded_settings(old)
    text = body.rstrip() + "\n\n" + settings_line(cfg) + "\n"
    if cfg.new_protocol and saved is not None and saved != governed(cfg):
        old = old.split("\n### Superseded", 1)[0].strip()  # keep one earlier protocol
        text += "\n### Superseded: the same study under the earlier settings\n\n" + old + "\n"
    replace_section(cfg.benchmarks, heading, text)


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
    from mixkit.experiments.protocol import governed
    from mixkit.train import write_json

    (out / "results.md").write_text(markdown + "\n")
    write_json({**data, "settings": governed(cfg)}, out / "results.json")
    if not cfg.write_docs:
        return None
    docs = Path(cfg.docs_dir)
    docs.mkdir(parents=True, exist_ok=True)
    return docs
