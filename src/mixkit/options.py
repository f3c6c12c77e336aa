"""Config fields that carry their own command-line help and checks.

A config dataclass declares each field with :func:`option`::

    epochs: int = option(12, "training epochs", at_least=1)
    aug: str = option("none", "mixing augmentation", choices=lambda: sorted(AUGMENTS))

:func:`check_options` (called from ``__post_init__``) validates every field against its
choices and bounds, and ``mixkit.cli.add_config_flags`` builds one flag per field whose help
line is the field's text, its choices and its default, so the help cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

Choices = Iterable[Any] | Callable[[], Iterable[Any]]


def option(
    default: Any,
    help: str,
    *,
    choices: Choices | None = None,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    check: Callable[[Any], None] | None = None,
    metavar: str | None = None,
    listed: bool = False,
) -> Any:
    """A dataclass field with its help text and checks (``choices`` may be a callable,
    evaluated when checked, for registries that grow at run time; ``check(value)`` raises
    for values the bounds cannot express; ``listed``: the value is a comma-separated list
    of at least one item, each checked against ``choices``)."""
    meta = {
        "listed": listed,
        "help": help,
        "choices": choices,
        "bounds": (at_least, above, at_most, below),
        "check": check,
        "metavar": metavar,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError(f"option default must be immutable, got {type(default).__name__}")
    return dataclasses.field(default=default, metadata=meta)


def choices_of(f: dataclasses.Field) -> list[Any] | None:
    """The allowed values of field ``f`` (None: any value of its type)."""
    c = f.metadata.get("choices")
    if c is None:
        return None
    return list(c() if callable(c) else c)


def _requirement(f: dataclasses.Field) -> str | None:
    low, above, high, below = f.metadata.get("bounds", (None,) * 4)
    lower = (f"{low:g}", "[", ">=") if low is not None else None
    lower = (f"{above:g}", "(", ">") if above is not None else lower
    upper = (f"{high:g}", "]", "<=") if high is not None else None
    upper = (f"{below:g}", ")", "<") if below is not None else upper
    if lower and upper:
        text = f"in {lower[1]}{lower[0]}, {upper[0]}{upper[1]}"
    elif lower or upper:
        value, _, op = lower or upper
        text = f"{op} {value}"
    else:
        return None
    return f"an int {text}" if _base_type(f) == "int" else f"a number {text}"


def _base_type(f: dataclasses.Field) -> str:
    return str(f.type).replace("typing.", "")


def _breaks_bounds(value: Any, bounds: tuple) -> bool:
    low, above, high, below = bounds
    return (
        (low is not None and not value >= low)
        or (above is not None and not value > above)
        or (high is not None and not value <= high)
        or (below is not None and not value < below)
    )


def check_options(cfg: Any) -> None:
    """Raise ValueError naming the first field of the dataclass ``cfg`` whose value is not
    among its choices, breaks its bounds or fails its check."""
    for f in dataclasses.fields(cfg):
        if "help" not in f.metadata:
            continue
        value = getattr(cfg, f.name)
        allowed = choices_of(f)
        if f.metadata["listed"]:
            _check_list(f.name, value, allowed)
        elif allowed is not None and value not in allowed:
            raise ValueError(f"{f.name} must be one of {allowed}, got {value!r}")
        bounds = f.metadata["bounds"]
        if any(b is not None for b in bounds) and value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
            if _breaks_bounds(value, bounds):
                raise ValueError(f"{f.name} must be {_requirement(f)}, got {value!r}")
        if f.metadata["check"] is not None:
            f.metadata["check"](value)


def comma_list(value: Any) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [s.strip() for s in str(value).split(",") if s.strip()]


def _check_list(name: str, value: Any, allowed: list[Any] | None) -> None:
    listed = comma_list(value)
    if not listed:
        raise ValueError(f"{name} must list at least one comma-separated value, got {value!r}")
    bad = [x for x in listed if allowed is not None and x not in allowed]
    if bad:
        raise ValueError(f"{name} must list values from {allowed}, got {bad}")


def help_line(f: dataclasses.Field) -> str:
    """``"<text>; one of a, b; <requirement>; default X"`` for the field ``f``."""
    parts = [f.metadata.get("help", "").rstrip(".")]
    allowed = choices_of(f)
    if allowed is not None and (len(allowed) > 8 or f.metadata.get("listed")):
        word = "comma-separated from" if f.metadata.get("listed") else "one of"
        parts.append(f"{word} " + ", ".join(map(str, allowed)))
    req = _requirement(f)
    if req is not None:
        parts.append(req.replace("an int ", "").replace("a number ", ""))
    default = f.default
    if isinstance(default, tuple):
        default = " ".join(map(str, default))
    elif isinstance(default, bool):
        default = "on" if default else "off"
    elif default == "" or default is None:
        default = "none"
    parts.append(f"default {default}")
    return "; ".join(p for p in parts if p).replace("%", "%%")


def check_device(value: str) -> None:
    """Raise ValueError unless ``value`` names a device torch reports available here
    (``cpu``, ``cuda``/``cuda:N`` with CUDA, ``mps`` with MPS, ``meta``)."""
    import torch

    available = available_devices()
    name, _, index = str(value).partition(":")
    ok = name in available and (not index or (index.isdigit() and name != "cpu"))
    if ok and name == "cuda" and index and int(index) >= torch.cuda.device_count():
        ok = False
    if not ok:
        raise ValueError(f"device must be one of {available} (available here), got {value!r}")


def available_devices() -> list[str]:
    """The device types torch reports usable in this process."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out
