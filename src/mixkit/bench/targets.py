"""The speed targets of ``mixkit bench``, read off the measured cases: met / NOT met and by
how much. Every target gets a line, "not measured" when its cases were not run."""

from __future__ import annotations

from dataclasses import dataclass

from mixkit.bench.cases import Case
from mixkit.bench.peers import fastest_peer
from mixkit.bench.timing import ratio


@dataclass(frozen=True)
class Target:
    """``what`` of per-sample ``op`` at ``size`` must be at most ``limit``: ``what`` is
    "call" (eager whole call / fastest peer), "apply" or "compiled" (apply / clone)."""

    what: str
    op: str
    size: str
    limit: float

    def describe(self) -> str:
        if self.what == "call":
            return f"per-sample {self.op} at {self.size}: eager whole call / fastest peer"
        kind = "eager" if self.what == "apply" else "compiled"
        return f"per-sample {self.op} at {self.size}: {kind} apply / clone"


TARGETS = (
    *(
        Target("call", op, size, 1.0)
        for size in ("128x3x32x32", "64x3x224x224")
        for op in ("mixup", "cutmix")
    ),
    *(Target("apply", op, "64x3x224x224", 1.3) for op in ("mixup", "cutmix", "resizemix")),
    *(Target("compiled", op, "64x3x224x224", 1.1) for op in ("mixup", "cutmix", "resizemix")),
)


def _measure(by: dict, t: Target) -> tuple[float, str] | str:
    """(ratio, what it was compared with) or the reason it was not measured."""
    if t.what == "call":
        mk = by.get((t.size, t.op, "elem", "call", "mixkit"))
        if mk is None:
            return "not measured (size or op not run)"
        best = fastest_peer(by, t.size, t.op, "elem")
        if best is None:
            return "not measured (no peer ran)"
        return ratio(mk, best), f"{best.impl} {best.mode}"
    case = by.get((t.size, t.op, "elem", t.what, "mixkit"))
    clone = by.get((t.size, "clone", "-", "new", "torch"))
    if case is None or clone is None:
        return "not measured (size or op not run)"
    return ratio(case, clone), "clone"


def targets_summary(cases: list[Case]) -> list[str]:
    """The "Targets" heading line and one line per target."""
    by = {c.key: c for c in cases}
    out = ["Targets, read off the tables above:", ""]
    for t in TARGETS:
        got = _measure(by, t)
        if isinstance(got, str):
            out.append(f"- {t.describe()}: target <= {t.limit:g}: {got}")
            continue
        r, against = got
        gap = f"{abs(r - t.limit):.2f} ({100 * abs(r / t.limit - 1):.0f}%"
        verdict = f"met by {gap} under)" if r <= t.limit else f"NOT met by {gap} over)"
        who = f" ({against})" if t.what == "call" else ""
        out.append(f"- {t.describe()}{who}: {r:.2f} (target <= {t.limit:g}: {verdict})")
    return out
