"""Crash-safe resume: capture and restore every random state of a run, and trim the logs
written after the checkpoint a run resumes from.

A run is resumable to the same bytes when the checkpoint holds, besides model/optimiser
state, (1) torch's global CPU (and CUDA) RNG, numpy's and python's RNG, (2) the state of
every ``torch.Generator`` the trainer and its augments draw from, and (3) the loader
position: the epoch, the number of batches already taken from it, and the shuffle
generator's state *at the start of that epoch*, so ``mixkit.data.iterate_batches(...,
start_batch=k)`` redraws the same permutation and skips the first ``k`` batches.

Everything is stored as tensors, lists, ints and strings only, so the checkpoint loads
with ``torch.load(weights_only=True)`` (``mixkit.train.load_checkpoint``).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mixkit import distributed
from mixkit.train import atomic_save


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.uint32).astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def _set_numpy_state(state: Mapping[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["name"], keys, int(state["pos"]), int(state["has_gauss"]), float(state["gauss"]))
    )


def capture_rng(generators: Mapping[str, torch.Generator | None] | None = None) -> dict[str, Any]:
    """Snapshot of torch (CPU and every CUDA device), numpy and python RNGs and of each
    named generator (None entries are skipped). Returns a ``weights_only``-safe dict."""
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state(),
        "python": [int(version), [int(v) for v in internal], gauss_next],
        "generators": {
            name: g.get_state() for name, g in (generators or {}).items() if g is not None
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(
    state: Mapping[str, Any], generators: Mapping[str, torch.Generator | None] | None = None
) -> None:
    """Inverse of :func:`capture_rng`. Every named generator must be in the snapshot
    (ValueError naming the missing ones: the checkpoint comes from a different setup)."""
    gens = {k: g for k, g in (generators or {}).items() if g is not None}
    saved = state.get("generators", {})
    missing = sorted(set(gens) - set(saved))
    if missing:
        raise ValueError(
            f"checkpoint RNG state lacks generators {missing} (has {sorted(saved)}): "
            "was it written by a different configuration?"
        )
    torch.set_rng_state(state["torch"].cpu())
    _set_numpy_state(state["numpy"])
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))
    for name, g in gens.items():
        g.set_state(saved[name].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = list(state["cuda"])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def module_generators(module: nn.Module | None, prefix: str = "") -> dict[str, torch.Generator]:
    """Every ``torch.Generator`` held as an attribute by ``module`` or its submodules, keyed
    by ``prefix + module path + attribute`` (e.g. ``mixer.generator``,
    ``mixer.transforms.0.generator``). A generator shared by several modules appears once,
    under its first name."""
    found: dict[str, torch.Generator] = {}
    if module is None:
        return found
    seen: set[int] = set()
    for path, sub in module.named_modules():
        for attr, value in vars(sub).items():
            if isinstance(value, torch.Generator) and id(value) not in seen:
                seen.add(id(value))
                found[f"{prefix}{path + '.' if path else ''}{attr}"] = value
    return found


def check_resume_config(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: set[str] | frozenset[str]
) -> None:
    """Raise ValueError listing every config key (outside ``ignore``) whose value differs
    between the checkpoint's run and this one: resuming must not silently change the run."""
    diff = {
        k: (saved.get(k), current.get(k))
        for k in sorted(set(saved) | set(current))
        if k not in ignore and _norm(saved.get(k)) != _norm(current.get(k))
    }
    if diff:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"resume: the config differs from the checkpoint's run ({detail})")


def restore_training(
    ckpt: Mapping[str, Any],
    path: str | Path,
    config: Mapping[str, Any],
    ignore: set[str] | frozenset[str],
    world_size: int,
    modules: tuple[nn.Module, torch.optim.Optimizer, Any],
) -> None:
    """Check that ``ckpt`` (read from ``path``) is a resume checkpoint of this run (same
    config outside ``ignore``, written by ``world_size`` ranks) and load its model,
    optimizer and grad-scaler states into ``modules``; ValueError naming the file if not.
    The per-rank states (``ckpt["ranks"][rank]``) are the caller's to restore."""
    ranks = ckpt.get("ranks")
    if "config" not in ckpt or not ranks or "sums" not in ranks[0]:
        raise ValueError(f"checkpoint {path} holds no resume state (older mixkit?)")
    check_resume_config(ckpt["config"], config, ignore)
    if len(ranks) != world_size:
        raise ValueError(
            f"resume: checkpoint {path} was written by {len(ranks)} ranks, this run has "
            f"{world_size}"
        )
    model, optimizer, scaler = modules
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])


def save_training(
    path: str | Path,
    env: distributed.DistEnv,
    mine: dict[str, Any],
    modules: tuple[nn.Module, torch.optim.Optimizer, Any],
    position: tuple[int, int, int, torch.Tensor],
    run: tuple[Mapping[str, Any], list[dict[str, Any]], float],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Write the resume checkpoint that :func:`restore_training` reads (collective: every
    rank passes ``mine``, its own RNG and loss-sum states, and they are gathered under
    ``"ranks"``); rank 0 writes ``path`` atomically and returns the dict, other ranks None.

    ``modules``: model, optimizer, grad scaler (their states); ``position``: epochs done,
    batches taken of the next epoch, optimiser step, shuffle-generator state at that
    epoch's start; ``run``: the config, the metric rows so far, the training seconds;
    ``extra``: more top-level entries (e.g. a RecursiveMix state) written beside them."""
    ranks = distributed.all_gather_object(mine, env)
    if not env.is_main:
        return None
    (model, optimizer, scaler), (config, history, elapsed_s) = modules, run
    epoch, batch, step, shuffle_state = position
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": epoch,
        "batch": batch,
        "step": step,
        "shuffle_state": shuffle_state,
        "metrics": history,
        "config": dict(config),
        "ranks": ranks,
        "elapsed_s": elapsed_s,
        **(extra or {}),
    }
    atomic_save(state, path)
    return state


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def truncate_csv(path: str | Path, column: str, last: float) -> int:
    """Keep the header and the rows of ``path`` whose ``column`` is <= ``last`` (rows logged
    after the checkpoint of a killed run). Returns the number of rows kept; a missing file
    is left missing (0)."""
    path = Path(path)
    if not path.is_file():
        return 0
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = [r for r in reader if r.get(column) not in (None, "") and float(r[column]) <= last]
    if not fields:
        return 0
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return len(rows)
