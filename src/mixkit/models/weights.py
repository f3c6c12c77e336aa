"""Load a local state_dict file into a model, with one clear error for what does not fit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel / torch.compile wrappers


class LoadResult(NamedTuple):
    missing: list[str]  # model keys the file did not provide (left at their init)
    unexpected: list[str]  # file keys the model has no place for (ignored)
    mismatched: list[str]  # keys in both whose shapes differ (left at their init)
    skipped: list[str]  # file keys dropped by ``skip``


def read_state_dict(path: str | Path | Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A state dict from a file (``torch.load(weights_only=True)``) or a mapping: unwraps a
    ``{"state_dict": ...}`` / ``{"model": ...}`` checkpoint and strips ``module.`` /
    ``_orig_mod.`` key prefixes."""
    if isinstance(path, Mapping):
        obj, where = path, "the given mapping"
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"weights file {str(p)!r} does not exist")
        obj, where = torch.load(p, map_location="cpu", weights_only=True), repr(str(p))
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(
            f"weights {where} must hold a state dict (str -> tensor), optionally under a "
            "'state_dict' or 'model' key"
        )
    out = {}
    for k, v in obj.items():
        while k.startswith(_PREFIXES):
            k = k.split(".", 1)[1]
        out[k] = v
    return out


def load_weights(
    model: nn.Module,
    path: str | Path | Mapping[str, Tensor],
    *,
    strict: bool = True,
    skip: Iterable[str] = (),
) -> LoadResult:
    """Copy the weights of ``path`` into ``model`` (in place) and report what did not fit.

    Args:
        path: a ``torch.save``-d state dict (or checkpoint wrapping one, see
            :func:`read_state_dict`), or the mapping itself. Loaded with ``weights_only=True``.
        strict: True: any missing, unexpected or shape-mismatched key raises one ValueError
            listing them all (nothing is copied). False: copy what matches by name and shape.
        skip: key prefixes dropped from the file first (e.g. ``("fc.",)`` for a new head);
            the model keys they cover are not reported as missing.
    Returns:
        :class:`LoadResult` (missing / unexpected / mismatched / skipped key lists).
    """
    state = read_state_dict(path)
    prefixes = tuple(skip)
    skipped = sorted(k for k in state if k.startswith(prefixes)) if prefixes else []
    state = {k: v for k, v in state.items() if not (prefixes and k.startswith(prefixes))}
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state and not (prefixes and k.startswith(prefixes)))
    unexpected = sorted(k for k in state if k not in own)
    mismatched = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if strict and (missing or unexpected or mismatched):
        where = "the given mapping" if isinstance(path, Mapping) else repr(str(path))
        parts = [f"weights {where} do not fit {type(model).__name__}:"]
        for name, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                parts.append(f"{len(keys)} {name} keys {_short(keys)}")
        if mismatched:
            shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched]
            parts.append(
                f"{len(mismatched)} shape-mismatched keys (file vs model) {_short(shapes)}"
            )
        parts.append("pass strict=False to load what fits, or skip=('fc.',) to drop a head")
        raise ValueError(" ".join(parts))
    bad = set(mismatched)
    model.load_state_dict(
        {k: v for k, v in state.items() if k in own and k not in bad}, strict=False
    )
    return LoadResult(missing, unexpected, mismatched, skipped)


def _short(keys: list[str], n: int = 8) -> str:
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return "[" + ", ".join(keys[:n]) + more + "]"
