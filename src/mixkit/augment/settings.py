"""Constructor plumbing shared by the mixers: the base keyword arguments every mixer spells
out in its own signature (so ``help()`` and IDEs show them), and a ``repr`` that lists every
setting that differs from its default."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

# The keyword arguments of ``MixTransform.__init__``, in order; every subclass signature
# repeats them (explicitly, no ``**kwargs``) and forwards them with ``base_args(locals())``.
BASE_ARGS = (
    "p",
    "mode",
    "num_classes",
    "label_smoothing",
    "multilabel",
    "pairing",
    "ignore_index",
    "min_visibility",
    "generator",
    "check_finite",
    "check_layout",
)


def base_args(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The ``MixTransform`` keyword arguments found in ``scope`` (a constructor's
    ``locals()``), to forward to ``super().__init__``."""
    return {k: scope[k] for k in BASE_ARGS if k in scope}


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, tuple | list) and isinstance(default, tuple | list):
        return tuple(value) == tuple(default)
    if isinstance(value, torch.Generator) or isinstance(default, torch.Generator):
        return value is default
    try:
        return bool(value == default)
    except (TypeError, ValueError, RuntimeError):
        return False


def _show(value: Any) -> str:
    if isinstance(value, torch.Generator):
        return f"torch.Generator(seed={value.initial_seed()})"
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return repr(value)


def settings_repr(obj: Any, aliases: Mapping[str, str] | None = None) -> str:
    """``name=value, ...`` for every constructor argument of ``type(obj)`` whose current
    value (attribute ``aliases.get(name, name)``) differs from the signature's default;
    arguments without a default are always shown, sub-modules are left to ``nn.Module``'s
    own ``repr``. For ``extra_repr`` / ``__repr__``."""
    aliases = aliases or {}
    parts = []
    params = inspect.signature(type(obj).__init__).parameters
    for name, param in params.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        attr = aliases.get(name, name)
        if not hasattr(obj, attr):
            continue
        value = getattr(obj, attr)
        if isinstance(value, torch.nn.Module):
            continue
        if param.default is not param.empty and _same(value, param.default):
            continue
        parts.append(f"{name}={_show(value)}")
    return ", ".join(parts)
