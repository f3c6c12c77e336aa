"""Pre-registered protocols: the settings of a replication, written in a markdown file
(``docs/replication.md``) before the runs they govern, and checked against the tables a
previous run recorded.

A protocol file holds one fenced ``yaml`` block per study whose first key is ``study``::

    ```yaml
    study: rm
    datasets: mnistm5k,mnist5k
    seeds: 0,1,2
    epochs: 30
    ```

``mixkit experiment STUDY --protocol FILE`` takes every setting of the study from its block
(a flag that sets one of them too is an error: the file is the record). Every run writes its
settings into ``OUT/results.json`` and, with ``--write-docs``, into its BENCHMARKS.md section
(a ``Settings:`` line); a protocol whose settings differ from those recorded is refused unless
``--new-protocol`` is given, and then the earlier section is kept below the new one.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import yaml

# ExperimentOutput fields: where and how a study runs, not what it measures.
NOT_GOVERNED = frozenset(
    {"jobs", "write_docs", "docs_dir", "benchmarks", "force", "out", "protocol", "new_protocol"}
)
SETTINGS_PREFIX = "Settings: `"
_FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def read_protocol(path: str | Path, study: str) -> dict[str, Any]:
    """The settings of ``study`` in the protocol file ``path`` (its ``study`` key removed).

    Raises FileNotFoundError for a missing file and ValueError, naming the file, for a block
    that is not a YAML mapping, a study written twice or a study with no block."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"protocol file not found: {path}")
    text = path.read_text()
    found: dict[str, dict[str, Any]] = {}
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        try:
            block = yaml.safe_load(m.group(1))
        except yaml.YAMLError as e:
            raise ValueError(
                f"protocol file {path}: the yaml block at line {line} is not valid "
                f"YAML: {' '.join(str(e).split())}"
            ) from e
        if not isinstance(block, dict) or "study" not in block:
            continue  # an example or another kind of yaml block
        name = str(block.pop("study"))
        if name in found:
            raise ValueError(
                f"protocol file {path}: study {name!r} has two blocks (the second at line {line})"
            )
        found[name] = block
    if study not in found:
        have = ", ".join(sorted(found)) or "none"
        raise ValueError(
            f"protocol file {path} has no yaml block with 'study: {study}' (studies found: {have})"
        )
    return found[study]


def governed(cfg: Any) -> dict[str, Any]:
    """The settings of an experiment config a protocol records: every field but the output
    ones (``NOT_GOVERNED``), as JSON-able values."""
    return {
        f.name: _plain(getattr(cfg, f.name))
        for f in dataclasses.fields(cfg)
        if f.name not in NOT_GOVERNED
    }


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def apply_protocol(cfg: Any, study: str, given: set[str]) -> Any:
    """``cfg`` with the settings of ``study`` from ``cfg.protocol``; ``given`` holds the
    config keys the user set by flag, ``--set`` or ``--config`` (an error when the protocol
    governs them). Without ``cfg.protocol`` the config is returned unchanged."""
    if not cfg.protocol:
        return cfg
    settings = read_protocol(cfg.protocol, study)
    names = {f.name for f in dataclasses.fields(cfg)}
    for key in settings:
        if key not in names or key in NOT_GOVERNED:
            valid = sorted(names - NOT_GOVERNED)
            raise ValueError(
                f"protocol file {cfg.protocol}, study {study}: unknown setting "
                f"{key!r}; valid settings: {valid}"
            )
    clash = sorted(given & (names - NOT_GOVERNED))
    if clash:
        flags = ", ".join("--" + k.replace("_", "-") for k in clash)
        raise ValueError(
            f"{flags} also set while --protocol {cfg.protocol} governs every "
            "setting; drop the flag or edit the protocol"
        )
    return dataclasses.replace(cfg, **settings)


def settings_line(cfg: Any) -> str:
    """The line a report carries so that a later run can compare its settings."""
    return SETTINGS_PREFIX + json.dumps(governed(cfg), sort_keys=True) + "`"


def recorded_settings(text: str) -> dict[str, Any] | None:
    """The settings of the first ``Settings:`` line in ``text`` (None without one)."""
    for line in text.splitlines():
        if line.startswith(SETTINGS_PREFIX) and line.endswith("`"):
            return json.loads(line[len(SETTINGS_PREFIX) : -1])
    return None


def section_text(path: str | Path, heading: str) -> str:
    """The body of the ``## `` section ``heading`` of a markdown file ('' when absent)."""
    path = Path(path)
    if not path.is_file():
        return ""
    lines = path.read_text().splitlines()
    if heading not in lines:
        return ""
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end])


def check_recorded(cfg: Any, section: str) -> None:
    """Refuse (ValueError) a ``--protocol`` run whose settings differ from those recorded in
    ``OUT/results.json`` or, with ``--write-docs``, in the BENCHMARKS.md section, unless
    ``cfg.new_protocol``."""
    if not cfg.protocol or cfg.new_protocol:
        return
    wanted = governed(cfg)
    sources: list[tuple[str, dict[str, Any] | None]] = []
    results = Path(cfg.out) / "results.json"
    if results.is_file():
        sources.append((str(results), json.loads(results.read_text()).get("settings")))
    if cfg.write_docs and cfg.benchmarks:
        sources.append(
            (
                f"{cfg.benchmarks} '{section}'",
                recorded_settings(section_text(cfg.benchmarks, section)),
            )
        )
    for where, saved in sources:
        if saved is None:
            continue
        diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        if diff:
            shown = "; ".join(
                f"{k}: recorded {saved.get(k)!r}, protocol {wanted.get(k)!r}" for k in diff
            )
            raise ValueError(
                f"protocol {cfg.protocol} differs from the tables recorded in "
                f"{where} ({shown}); pass --new-protocol to run it anyway (the "
                "recorded section is kept as superseded)"
            )
