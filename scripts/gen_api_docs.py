"""Generate docs/api.md from the docstrings of mixkit's public API.

    python scripts/gen_api_docs.py            # rewrite docs/api.md
    python scripts/gen_api_docs.py --check    # exit 1 if docs/api.md is stale

Every name in a module's ``__all__`` gets its signature and docstring (classes also their
public methods). ``tests/test_docs.py`` runs ``--check`` so the reference never drifts, and
``missing_shape_docs()`` lists public tensor functions whose docstring names no shape/dtype.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "api.md"

MODULES = [
    ("mixkit.ops", "Pure batched tensor ops: pixels, labels, masks, boxes, sampling."),
    ("mixkit.augment", "Params/apply mixers: one draw for images, labels, masks and boxes."),
    ("mixkit.losses", "Losses for soft targets and distillation."),
    ("mixkit.data", "In-memory uint8 datasets, batching, crop/flip."),
    ("mixkit.compat", "timm / torchvision drop-in adapters."),
    ("mixkit.collate", "Mixing inside DataLoader workers."),
    ("mixkit.train", "Trainer utilities: seeding, schedules, metrics, checkpoints."),
    ("mixkit.methods.recursivemix", "RecursiveMix: augment, ROI consistency loss, training step."),
    ("mixkit.methods.kd", "Knowledge distillation with DA: schemes, KD loss, trainer, audit."),
    ("mixkit.methods.semiseg", "Semi-supervised segmentation: data, mixers, trainers, mIoU."),
]
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
    repr of a function holds its memory address."""
    if isinstance(obj, dict) and any(inspect.isfunction(v) for v in obj.values()):
        return f"Registry of functions: `{', '.join(map(str, obj))}`"
    return f"Constant: `{obj!r}`"


def _public(module: object) -> list[str]:
    return list(getattr(module, "__all__", []))


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
    for name, blurb in MODULES:
        lines.append(f"- [`{name}`](#{name.replace('.', '')}) — {blurb}")
    for name, blurb in MODULES:
        module = importlib.import_module(name)
        lines += ["", f"## {name}", "", blurb, ""]
        head = inspect.cleandoc(module.__doc__ or "").strip()
        if head:
            lines += [head, ""]
        for attr in _public(module):
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
