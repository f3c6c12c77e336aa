"""Name -> mixer registry (OpenMixup-style), used by the CLI and YAML recipes."""

from __future__ import annotations

import inspect
from typing import Any

from mixkit.augment import transforms as t
from mixkit.augment.base import MixTransform

AUGMENTS: dict[str, type[MixTransform] | None] = {
    "none": None,
    "mixup": t.MixUp,
    "cutmix": t.CutMix,
    "multibox": t.MultiBoxCutMix,
    "resizemix": t.ResizeMix,
    "cutout": t.Cutout,
    "fmix": t.FMix,
    "classmix": t.ClassMix,
    "mixup_cutmix": t.MixUpCutMix,
}


def accepted_args(name: str) -> set[str]:
    """Constructor keyword names the mixer ``name`` accepts (its explicit signature, which
    repeats every ``MixTransform`` argument)."""
    cls = _lookup(name)
    if cls is None:
        return set()
    return set(inspect.signature(cls).parameters)


def _lookup(name: str) -> type[MixTransform] | None:
    if name not in AUGMENTS:
        raise ValueError(f"aug must be one of {sorted(AUGMENTS)}, got {name!r}")
    return AUGMENTS[name]


def build_augment(name: str, **kwargs: Any) -> MixTransform | None:
    """Build the mixer ``name`` (None for ``"none"``). Unknown keyword -> ValueError."""
    cls = _lookup(name)
    if cls is None:
        return None
    unknown = set(kwargs) - accepted_args(name)
    if unknown:
        raise ValueError(
            f"aug {name!r} does not accept {sorted(unknown)}; "
            f"it accepts {sorted(accepted_args(name))}"
        )
    return cls(**kwargs)
