"""Run folders that are never overwritten by accident.

Without ``out`` a run gets a new numbered folder under its command's root (``runs/train/exp``,
``runs/train/exp2``, ...), claimed with an atomic ``mkdir`` so concurrent runs never share
one. An ``out`` that already holds a run (any of :data:`RUN_FILES`) needs ``resume`` (continue
it) or ``overwrite`` (its run files are deleted first). Under torchrun rank 0 decides and
every rank receives the same folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mixkit import distributed

# What a mixkit trainer or audit writes into its run folder.
RUN_FILES = (
    "config.yaml", "metrics.csv", "steps.csv", "summary.json", "checkpoints", "plots",
    "tensorboard", "audit.json", "audit.md", "audit.csv", "tstddev_vs_test_loss.png",
)  # fmt: skip


def is_run_dir(path: Path) -> bool:
    """True when ``path`` holds any of the files a mixkit run writes."""
    return path.is_dir() and any((path / name).exists() for name in RUN_FILES)


def _claim_numbered(root: Path) -> Path:
    """Create and return the first free ``root/exp``, ``root/exp2``, ``root/exp3``, ..."""
    root.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        path = root / ("exp" if k == 1 else f"exp{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1


def _clear(path: Path) -> None:
    for name in RUN_FILES:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def _decide(out: str | None, root: str, resume: bool, overwrite: bool, flag: str) -> str:
    if out is None or str(out) == "":
        if resume:
            raise ValueError(f"resume needs {flag} RUN_FOLDER: the run to continue")
        return str(_claim_numbered(Path(root)))
    path = Path(out)
    if resume:
        if not (path / "checkpoints" / "last.pt").is_file():
            ckpt = path / "checkpoints" / "last.pt"
            raise FileNotFoundError(f"resume: checkpoint not found: {ckpt}")
        return str(path)
    if is_run_dir(path):
        if not overwrite:
            raise ValueError(
                f"run folder {path} already holds a run: pass --resume to continue it, "
                f"--overwrite to replace it, or another {flag}"
            )
        _clear(path)
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def resolve_run_dir(
    out: str | None,
    root: str,
    *,
    resume: bool = False,
    overwrite: bool = False,
    env: distributed.DistEnv | None = None,
    flag: str = "--out",
) -> Path:
    """The folder a run writes to (see the module docstring). ``root``: where numbered folders
    go (e.g. ``runs/train``); ``flag``: the option named in errors. The folder exists on
    return. Collective under torchrun: rank 0 decides (creates it, clears an overwritten
    one), every rank returns its answer."""
    env = env or distributed.DistEnv()
    decided: str | BaseException | None = None
    if env.is_main:
        try:
            decided = _decide(out, root, resume, overwrite, flag)
        except (ValueError, FileNotFoundError) as e:
            decided = e
    decided = distributed.all_gather_object(decided, env)[0]
    if isinstance(decided, BaseException):
        raise decided
    return Path(decided)
