"""The docs run: every README / guide snippet is executed so the docs never drift.

- ```python blocks are exec'd;
- ```bash lines: ``mixkit ...`` runs through ``mixkit.cli.main`` with a small budget appended
  (``BUDGETS``; later flags override earlier ones), ``python examples/...`` runs the example,
  ``ls PATH`` checks the file exists; install lines are checked textually against
  ``.ci/run`` (CI runs the README's test command verbatim);
- inline ``mixkit ...`` commands of the README prose run the same way;
- docs/api.md must equal ``scripts/gen_api_docs.py``'s output, every public tensor function
  of ops/augment/losses/data must document shapes and dtypes, relative links must resolve.
"""

from __future__ import annotations

import importlib.util
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest
import torch

import mixkit
from mixkit.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUN_DOCS = [README, ROOT / "docs" / "guide.md", ROOT / "docs" / "detection.md"]

# Appended to each ``mixkit SUBCOMMAND`` of the docs: the same command at a tiny budget.
BUDGETS: dict[str, list[str]] = {
    "train": ["--dataset", "digits", "--epochs", "1", "--no-progress", "--grid-samples", "4"],
    "show": ["--dataset", "digits", "--grid-samples", "4"],
    "distill": ["--epochs", "1", "--train-subset", "128", "--no-progress"],
    "kd-audit": ["--epochs", "1", "--train-subset", "128", "--no-progress"],
    "semiseg": (
        "--epochs 2 --iters-per-epoch 2 --n-train 64 --n-val 16 --batch-size 4 "
        "--unlabeled-batch-size 4 --distance-images 8 --distance-every 1 --no-progress"
    ).split(),
    "plot": [],
}
INSTALL = ("python3 -m venv", ". .venv/bin/activate", "pip install")


def blocks(path: Path, lang: str) -> list[tuple[int, str]]:
    """(line number, text) of every fenced ```lang block of ``path``."""
    text = path.read_text()
    out = []
    for m in re.finditer(rf"^```{lang}\n(.*?)^```", text, re.S | re.M):
        out.append((text[: m.start()].count("\n") + 2, m.group(1)))
    return out


def bash_commands(block: str) -> list[str]:
    """Commands of a bash block: continuation lines joined, comments and blanks dropped."""
    joined = block.replace("\\\n", " ")
    cmds = []
    for line in joined.splitlines():
        line = re.split(r"(?:^|\s)#", line, maxsplit=1)[0]
        if line.strip():
            cmds.append(" ".join(line.split()))
    return cmds


def _ci_segments() -> set[str]:
    text = (ROOT / ".ci" / "run").read_text()
    return {_normalise(s) for line in text.splitlines() for s in line.split("&&")}


def _normalise(segment: str) -> str:
    """An install step without quiet flags and extras: ``pip install -q -e ".[test]"`` and
    ``pip install -e .`` both become ``pip install -e .``."""
    try:
        tokens = [t for t in shlex.split(segment) if t != "-q"]
    except ValueError:  # a comment or shell line that is not a command list
        return segment.strip()
    return " ".join(re.sub(r"\[[a-z,]+\]$", "", t) for t in tokens)


def run_command(cmd: str) -> None:
    """Run one docs command (see the module docstring); fails on a non-zero exit."""
    tokens = shlex.split(cmd)
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):  # OMP_NUM_THREADS=1 mixkit ...
        tokens = tokens[1:]
    if tokens[0] == "mixkit":
        sub = tokens[1]
        if sub not in BUDGETS:
            pytest.fail(f"docs run `mixkit {sub}`: add a small budget for it to BUDGETS")
        rc = main(tokens[1:] + BUDGETS[sub])
        assert rc == 0, f"`{cmd}` exited {rc}"
    elif tokens[:2] == ["python", "-m"] and tokens[2] == "pytest":
        ci = (ROOT / ".ci" / "run").read_text()
        assert "python -m pytest -q" in ci, "the docs' test command is not what CI runs"
    elif tokens[0] == "python" and tokens[1].startswith("examples/"):
        argv = sys.argv
        try:
            sys.argv = [tokens[1], *tokens[2:]]
            with pytest.raises(SystemExit) as done:
                runpy.run_path(str(ROOT / tokens[1]), run_name="__main__")
            assert done.value.code == 0
        finally:
            sys.argv = argv
    elif tokens[0] == "ls":
        for p in tokens[1:]:
            assert Path(p).exists(), f"`{cmd}`: {p} was not written"
    else:
        pytest.fail(f"docs command not understood by tests/test_docs.py: {cmd}")


def _run_shell_line(cmd: str) -> None:
    ci = _ci_segments()
    for segment in cmd.split("&&"):
        segment = segment.strip()
        if segment.startswith(INSTALL):
            assert _normalise(segment) in ci, f"install step `{segment}` differs from .ci/run"
        else:
            run_command(segment)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    return tmp_path


# --------------------------------------------------------------------------- README
def test_readme_quick_start_matches_ci():
    (install, tests) = [c for _, b in blocks(README, "bash")[:2] for c in bash_commands(b)]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, "CI must run the README's test command verbatim"
    assert install.endswith("&& mixkit train")
    steps = [s.strip() for s in install.split("&&")[:-1]]
    assert all(_normalise(s) in _ci_segments() for s in steps)


def _readme_commands() -> list[str]:
    """Every README shell line (bash blocks, then `mixkit ...` spans of the prose)."""
    cmds = [c for _, b in blocks(README, "bash") for c in bash_commands(b) if "pytest" not in c]
    prose = re.sub(r"```.*?```", "", README.read_text(), flags=re.S)
    inline = re.findall(r"`(mixkit [^`]+)`", prose)
    assert inline, "the README prose names no `mixkit ...` command"
    return cmds + inline


def _mixkit_commands(cmds: list[str]) -> list[list[str]]:
    out = []
    for cmd in cmds:
        for segment in cmd.split("&&"):
            tokens = shlex.split(segment)
            while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
                tokens = tokens[1:]
            if tokens and tokens[0] == "mixkit":
                out.append(tokens[1:])
    return out


def test_docs_commands_parse_with_their_budgets():
    # Fast guard for the default suite: every documented `mixkit` command (and the budget
    # flags the slow test appends) is accepted by the current CLI parser.
    docs = _readme_commands() + [
        c for p in RUN_DOCS[1:] for _, b in blocks(p, "bash") for c in bash_commands(b)
    ]
    commands = _mixkit_commands(docs)
    assert {"train", "show", "distill", "semiseg", "plot"} <= {c[0] for c in commands}
    parser = build_parser()
    for argv in commands:
        assert argv[0] in BUDGETS, f"docs run `mixkit {argv[0]}`: add a budget to BUDGETS"
        try:
            parser.parse_args(argv + BUDGETS[argv[0]])
        except SystemExit:
            pytest.fail(f"the docs command `mixkit {' '.join(argv)}` no longer parses")


@pytest.mark.slow
def test_readme_bash_and_inline_commands(in_tmp):
    # Runs the whole README at small budgets (about 2 min on a loaded 2-core CPU): slow suite.
    for cmd in _readme_commands():
        _run_shell_line(cmd)
    # "open the PNGs": the commands above wrote them
    for png in (
        "runs/cutmix/plots/mixed_samples.png",
        "runs/kd/plots/training_curves.png",
        "runs/dt/plots/overlay.png",
        "runs/grid.png",
    ):
        assert (in_tmp / png).stat().st_size > 1000, png


PYTHON_BLOCKS = [(p, n, c) for p in RUN_DOCS for n, c in blocks(p, "python")]


@pytest.mark.parametrize(
    "path, line, code", PYTHON_BLOCKS, ids=[f"{p.name}:{n}" for p, n, _ in PYTHON_BLOCKS]
)
def test_python_snippets(in_tmp, path, line, code):
    exec(compile(code, f"{path.name}:{line}", "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize("path", RUN_DOCS[1:], ids=lambda p: p.name)
def test_guide_bash_commands(in_tmp, path):
    for _, block in blocks(path, "bash"):
        for cmd in bash_commands(block):
            _run_shell_line(cmd)


# --------------------------------------------------------------------------- reference docs
def _gen_api():
    spec = importlib.util.spec_from_file_location(
        "gen_api_docs", ROOT / "scripts" / "gen_api_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_current():
    gen = _gen_api()
    assert (ROOT / "docs" / "api.md").read_text() == gen.render(), (
        "docs/api.md is stale: run python scripts/gen_api_docs.py"
    )


def test_public_functions_document_shapes_and_dtypes():
    assert _gen_api().missing_shape_docs() == []


def test_relative_links_resolve():
    for doc in [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_version_everywhere(monkeypatch, capsys):
    # `python -m mixkit --version`, run in-process (tests/test_cli.py runs the subprocess)
    monkeypatch.setattr(sys, "argv", ["mixkit", "--version"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("mixkit", run_name="__main__")
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"mixkit {mixkit.__version__}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{mixkit.__version__}"' in pyproject
    top = re.search(r"^## \[?(\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert top and top.group(1) == mixkit.__version__, "CHANGELOG's newest entry != __version__"
