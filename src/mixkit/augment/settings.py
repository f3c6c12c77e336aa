"""Constructor plumbing shared by the mixers: the checks of their settings (one ValueError
naming the argument) and a ``repr`` that lists every setting that differs from its
default."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch


def is_number(v: object) -> bool:
    """An int or a float, not a bool."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def is_weight(v: object) -> bool:
    """A finite number >= 0 (a choice weight, a Beta parameter where 0 switches off)."""
    return is_number(v) and 0 <= v < float("inf")


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """A finite number > 0 (Beta(inf, inf) draws would be NaN)."""
    if not is_number(alpha) or not 0 < alpha < float("inf"):
        raise ValueError(f"{name} must be a number > 0 (finite), got {alpha!r}")
    return float(alpha)


def check_fraction(value: float, name: str, *, open_high: bool = False) -> float:
    """A number in [0, 1] (or [0, 1) with ``open_high``); NaN and non-numbers rejected."""
    ok = is_number(value) and (0.0 <= value < 1.0 if open_high else 0.0 <= value <= 1.0)
    if not ok:
        interval = "[0, 1)" if open_high else "[0, 1]"
        raise ValueError(f"{name} must be in {interval} (a number), got {value!r}")
    return float(value)


def check_count(value: int, name: str) -> int:
    """An int >= 1 (a bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def check_flag(value: bool, name: str) -> bool:
    """A bool (an int such as a stray positional argument is refused, not read as truth)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


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
