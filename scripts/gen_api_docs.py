"""Generate docs/api.md from the docstrings of mixkit's public API.

    python scripts/gen_api_docs.py            # rewrite docs/api.md
    python scripts/gen_api_docs.py --check    # exit 1 if docs/api.md is stale

Every mixkit module or package with an ``__all__`` is documented (found by walking the
package, so new modules appear by themselves); every name in its ``__all__`` gets its
signature and docstring (classes also their public methods). Names a package re-exports from
its submodules are documented once, under the package. ``tests/test_docs.py`` runs
``--check`` so the reference never drifts, and
``missing_shape_docs()`` lists public tensor functions whose docstring names no shape/dtype.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "api.md"

# Order of the reference: these first (a module below one of them right after it), then
# every other public module by name. The modules themselves are discovered: every mixkit
# module or package with an ``__all__`` (private ``_names`` skipped), so a new one appears
# here without editing this script.
ORDER = (
    "mixkit",
    "mixkit.ops",
    "mixkit.augment",
    "mixkit.losses",
    "mixkit.data",
    "mixkit.models",
    "mixkit.compat",
    "mixkit.collate",
    "mixkit.train",
    "mixkit.plots",
    "mixkit.methods.recursivemix",
    "mixkit.methods.kd",
    "mixkit.methods.semiseg",
)
# Modules whose public functions must document tensor shapes and dtypes.
SHAPE_MODULES = ("mixkit.ops", "mixkit.augment", "mixkit.losses", "mixkit.data")
SHAPE_RE = re.compile(r"\(\s*(?:[BbNnKHC]\b|\.\.\.)[^)]*\)|\bshape\b")
DTYPE_RE = re.compile(r"\b(?:float\w*|u?int\w*|bool|uint8|int64|dtype)\b")


def _signature(obj: object) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"
    sig = re.sub(r"(: |-> )'([^']*)'", r"\1\2", sig)  # postponed annotations: drop quotes
    return re.sub(r" at 0x[0-9a-f]+", "", sig)


def _doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else "*(no docstring)*"


def _constant(obj: object) -> str:
    """``Constant: `repr` ``; a registry (a dict of functions) lists its names, since the
    repr of a function holds its memory address; a set is listed sorted."""
    if isinstance(obj, dict) and any(inspect.isfunction(v) for v in obj.values()):
        return f"Registry of functions: `{', '.join(map(str, obj))}`"
    if isinstance(obj, set | frozenset):  # sorted: a set's order changes between processes
        items = ", ".join(sorted(map(repr, obj)))
        return f"Constant: `{type(obj).__name__}({{{items}}})`"
    return f"Constant: `{obj!r}`"


def _public(module: object) -> list[str]:
    return list(getattr(module, "__all__", []))


def _sort_key(name: str) -> tuple[int, str]:
    """Position of the longest ORDER entry that is ``name`` or a package above it."""
    heads = [i for i, h in enumerate(ORDER) if name == h or name.startswith(h + ".")]
    best = max(heads, key=lambda i: len(ORDER[i]), default=None)
    return (len(ORDER), name) if best is None or best == 0 and name != "mixkit" else (best, name)


def discover() -> list[str]:
    """Every public mixkit module with an ``__all__``, in reference order."""
    import mixkit

    names = ["mixkit"] + [
        info.name
        for info in pkgutil.walk_packages(mixkit.__path__, "mixkit.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])
    ]
    found = [n for n in names if "__all__" in vars(importlib.import_module(n))]
    return sorted(found, key=_sort_key)


def _covered(name: str) -> list[str]:
    """Names of module ``name``'s ``__all__`` that its parent package re-exports (the same
    objects, in the parent's ``__all__``): documented under the parent."""
    if "." not in name:
        return []
    module = importlib.import_module(name)
    parent = importlib.import_module(name.rsplit(".", 1)[0])
    public = set(_public(parent))
    return [
        a for a in _public(module) if a in public and getattr(parent, a, None) is getattr(module, a)
    ]


def sections() -> list[tuple[str, list[str], list[str]]]:
    """``(module, names documented here, names documented under the parent)`` of every
    discovered module with at least one name of its own."""
    out = []
    for name in discover():
        covered = _covered(name)
        own = [a for a in _public(importlib.import_module(name)) if a not in covered]
        if own:
            out.append((name, own, covered))
    return out


def _cut(text: str, stops: str, need_capital: bool) -> str | None:
    """``text`` up to its first character in ``stops`` outside parentheses that ends a clause
    (followed by a space, then a capital when ``need_capital``, or by the end); None if none.
    Abbreviations (``et al.``, ``e.g.``, ``i.e.``) do not end a sentence."""
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth or ch not in stops:
            continue
        rest = text[i + 1 :]
        if text[max(0, i - 3) : i + 1] in (" al.", "e.g.", "i.e."):
            continue
        if not rest or (rest[0] == " " and (not need_capital or rest[1:2].isupper())):
            return text[:i]
    return None


def _summary(module: object, limit: int = 140) -> str:
    """The first sentence of the module docstring on one line; a long one is cut before its
    first colon or semicolon outside parentheses."""
    para = inspect.cleandoc(module.__doc__ or "").split("\n\n", 1)[0]
    text = " ".join(para.split())
    text = _cut(text, ".", True) or text.rstrip(".")
    if len(text) > limit:
        text = _cut(text, ":;", False) or text
    return text + "."


def _own_methods(cls: type) -> list[tuple[str, object]]:
    """Documented public methods defined by ``cls`` or by its private mixkit bases."""
    members: dict[str, object] = {}
    for base in reversed(inspect.getmro(cls)):
        if base is cls or (base.__module__.startswith("mixkit") and base.__name__.startswith("_")):
            members.update(base.__dict__)
    out = []
    for name, member in members.items():
        if name.startswith("_") and name not in ("__call__",):
            continue
        fn = member.fget if isinstance(member, property) else member
        if isinstance(member, staticmethod | classmethod):
            fn = member.__func__
        if inspect.isfunction(fn) and fn.__doc__:
            out.append((name, member))
    return out


def render() -> str:
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `python scripts/gen_api_docs.py`; do not edit by hand",
        "(`tests/test_docs.py` fails when this file is stale). Shapes: B batch, C channels,",
        "H x W image size, K classes, N boxes per image.",
        "",
    ]
    found = sections()
    for name, _, _ in found:
        summary = _summary(importlib.import_module(name))
        lines.append(f"- [`{name}`](#{name.replace('.', '')}) — {summary}")
    for name, own, covered in found:
        module = importlib.import_module(name)
        lines += ["", f"## {name}", ""]
        head = inspect.cleandoc(module.__doc__ or "").strip()
        if head:
            lines += [head, ""]
        if covered:
            parent = name.rsplit(".", 1)[0]
            listed = ", ".join(f"`{a}`" for a in covered)
            lines += [f"Also here, documented under [`{parent}`](#{parent.replace('.', '')}): "
                      f"{listed}.", ""]  # fmt: skip
        for attr in own:
            obj = getattr(module, attr)
            if inspect.isclass(obj):
                lines += [f"### class `{name}.{attr}{_signature(obj)}`", "", _doc(obj), ""]
                for mname, member in _own_methods(obj):
                    fn = member.fget if isinstance(member, property) else member
                    if isinstance(member, staticmethod | classmethod):
                        fn = member.__func__
                    sig = "" if isinstance(member, property) else _signature(fn)
                    kind = "property " if isinstance(member, property) else ""
                    lines += [f"- {kind}`{attr}.{mname}{sig}`", ""]
                    lines += ["  " + ln if ln else "" for ln in _doc(fn).splitlines()] + [""]
            elif callable(obj):
                lines += [f"### `{name}.{attr}{_signature(obj)}`", "", _doc(obj), ""]
            else:
                lines += [f"### `{name}.{attr}`", "", _constant(obj), ""]
    return "\n".join(lines).rstrip() + "\n"


def missing_shape_docs() -> list[str]:
    """Public functions / methods of SHAPE_MODULES taking or returning tensors whose docstring
    names no shape or no dtype."""
    missing = []
    for name in SHAPE_MODULES:
        module = importlib.import_module(name)
        for attr in _public(module):
            obj = getattr(module, attr)
            targets = [(f"{name}.{attr}", obj)]
            if inspect.isclass(obj):
                targets = [(f"{name}.{attr}", obj)] + [
                    (f"{name}.{attr}.{m}", f.fget if isinstance(f, property) else f)
                    for m, f in _own_methods(obj)
                ]
            for qual, fn in targets:
                if not callable(fn) or not _mentions_tensor(fn):
                    continue
                doc = fn.__doc__ or ""
                if not (SHAPE_RE.search(doc) and DTYPE_RE.search(doc)):
                    missing.append(qual)
    return missing


def _mentions_tensor(fn: object) -> bool:
    try:
        src = str(inspect.signature(fn))
    except (TypeError, ValueError):
        return False
    return "Tensor" in src or "BoxBatch" in src or "MixParams" in src


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
