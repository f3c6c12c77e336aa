"""The docs run: every snippet of the README and of every ``docs/*.md`` page is executed so
the docs never drift.

- ```python blocks are exec'd;
- ```bash lines (and untagged blocks made only of commands, e.g. the command line an
  experiment writes into its doc block): ``mixkit ...`` runs through ``mixkit.cli.main``
  with a small budget appended (``BUDGETS``, keyed by sub-command or ``experiment NAME``;
  later flags override earlier ones; a ``--protocol FILE`` is dropped first, since a
  protocol fixes the very settings the budget shrinks -- its parsing and refusals are
  tested in test_protocol.py), ``python examples/...`` runs the example, ``ls PATH``
  checks the file exists; install lines are checked textually against ``.ci/run`` (CI runs
  the README's test command verbatim);
- inline ``mixkit ...`` commands of the README prose run the same way;
- docs/api.md must equal ``scripts/gen_api_docs.py``'s output, every public tensor function
  of ops/augment/losses/data must document shapes and dtypes; every relative link resolves
  to a file inside the repository; no page points at notes outside it, and no text a user
  reads (docs, CLI help) cites tracker issue numbers of its own.
"""

from __future__ import annotations

import argparse
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
DOCS = sorted((ROOT / "docs").glob("*.md"))
RUN_DOCS = [README, *DOCS]
# What a user reads besides docs/: checked for links and wording too.
READ_DOCS = [*RUN_DOCS, ROOT / "CHANGELOG.md", ROOT / "BENCHMARKS.md"]

# Appended to each ``mixkit SUBCOMMAND`` of the docs: the same command at a tiny budget.
BUDGETS: dict[str, list[str]] = {
    "train": ["--dataset", "digits", "--epochs", "1", "--no-progress", "--grid-samples", "4"],
    "show": ["--dataset", "digits", "--grid-samples", "4"],
    "distill": ["--epochs", "1", "--train-subset", "128", "--no-progress"],
    "kd-audit": ["--epochs", "1", "--train-subset", "128", "--group", "64", "--no-progress"],
    "semiseg": (
        "--epochs 2 --iters-per-epoch 2 --n-train 64 --n-val 16 --batch-size 4 "
        "--unlabeled-batch-size 4 --distance-images 8 --distance-every 1 --no-progress "
        "--pretrain-steps 2"
    ).split(),
    "plot": [],
    "recipes": [],
    # replications: one seed, one dataset, a few epochs or steps; outputs go under the test's
    # working directory (``docs/``, ``BENCHMARKS.md`` and the run folders are relative paths)
    "experiment rm": "--datasets digits --methods cutmix,recursivemix --seeds 0 --epochs 1 "
    "--jobs 1".split(),
    "experiment kd": (
        "--dataset digits --teacher-epochs 1 --da identity,flip,cutmix --seeds 0 "
        "--train-subset 64 --student-epochs 1 --audit-epochs 1 --audit-subset 256 --jobs 1"
    ).split(),
    "experiment semiseg": (
        "--methods sup,mt --splits 1/4 --seeds 0 --mixes cutmix --epochs 1 --iters-per-epoch 2 "
        "--pretrain-steps 2 --probe-epochs 1 --jobs 1 --run-set n_train=64 --run-set n_val=16 "
        "--run-set batch_size=4 --run-set unlabeled_batch_size=4 --run-set distance_images=8"
    ).split(),
}
INSTALL = ("python3 -m venv", ". .venv/bin/activate", "pip install")


def fences(path: Path) -> list[tuple[str, int, str]]:
    """(language, line number, text) of every fenced block of ``path`` (language '' when
    untagged)."""
    text = path.read_text()
    out = []
    for m in re.finditer(r"^```([\w-]*)\n(.*?)^```[ \t]*$", text, re.S | re.M):
        out.append((m.group(1), text[: m.start()].count("\n") + 2, m.group(2)))
    return out


COMMAND = re.compile(r"(?:[A-Z_]+=\S*\s+)*(?:mixkit|python|ls)\s")


def _is_commands(block: str) -> bool:
    """An untagged block whose every line is a command (run as bash)."""
    cmds = bash_commands(block)
    return bool(cmds) and all(COMMAND.match(c + " ") for c in cmds)


def blocks(path: Path, lang: str) -> list[tuple[int, str]]:
    """(line number, text) of every fenced ```lang block of ``path``; for ``bash`` also the
    untagged blocks made only of commands."""
    return [
        (n, b)
        for tag, n, b in fences(path)
        if tag == lang or (lang == "bash" and tag == "" and _is_commands(b))
    ]


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


def budget_key(argv: list[str]) -> str:
    """``BUDGETS`` key of a ``mixkit`` argv: the sub-command, ``experiment NAME`` for the
    replications."""
    if argv[0] == "experiment" and len(argv) > 1:
        return f"experiment {argv[1]}"
    return argv[0]


def _without_protocol(tokens: list[str]) -> list[str]:
    """``tokens`` less ``--protocol FILE`` / ``--protocol=FILE`` and ``--new-protocol``."""
    out, skip = [], False
    for t in tokens:
        if skip:
            skip = False
        elif t == "--protocol":
            skip = True
        elif not (t.startswith("--protocol=") or t == "--new-protocol"):
            out.append(t)
    return out


def run_command(cmd: str) -> None:
    """Run one docs command (see the module docstring); fails on a non-zero exit."""
    tokens = shlex.split(cmd)
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):  # OMP_NUM_THREADS=1 mixkit ...
        tokens = tokens[1:]
    if tokens[0] == "mixkit":
        tokens = _without_protocol(tokens)
        sub = budget_key(tokens[1:])
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
        c for p in DOCS for _, b in blocks(p, "bash") for c in bash_commands(b)
    ]
    commands = _mixkit_commands(docs)
    keys = {budget_key(c) for c in commands}
    assert {"train", "show", "distill", "semiseg", "plot", "experiment rm"} <= keys
    parser = build_parser()
    for argv in commands:
        key = budget_key(argv)
        assert key in BUDGETS, f"docs run `mixkit {key}`: add a budget to BUDGETS"
        try:
            parser.parse_args(argv + BUDGETS[key])
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


BASH_DOCS = [p for p in DOCS if blocks(p, "bash")]


@pytest.mark.parametrize("path", BASH_DOCS, ids=lambda p: p.name)
def test_doc_bash_commands(in_tmp, path):
    # Each page's commands run in order in one folder (a later one may read an earlier run).
    for _, block in blocks(path, "bash"):
        for cmd in bash_commands(block):
            _run_shell_line(cmd)


KNOWN_LANGS = {"python", "bash", "text", "yaml", "json", "toml", "csv", "markdown"}


def test_every_fence_is_run_or_plain_text():
    # A snippet nobody runs would drift: blocks are python / bash (run above) or declared
    # text; an untagged block is run when it holds commands, else it is plain text.
    for doc in RUN_DOCS:
        for lang, line, block in fences(doc):
            assert lang in KNOWN_LANGS or lang == "", f"{doc.name}:{line}: unknown ```{lang}"
            if lang in ("text", ""):
                assert not any(COMMAND.match(c + " ") for c in bash_commands(block)) or (
                    lang == "" and _is_commands(block)
                ), f"{doc.name}:{line}: a command in a ```{lang} block is not run: use ```bash"
    assert any(n for p in DOCS for n, _ in blocks(p, "python")), "no python snippet found"


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


def _links(text: str) -> list[str]:
    """Targets of the markdown links and images of ``text`` (anchors dropped)."""
    return re.findall(r"\]\(\s*<?([^)#\s>]*)>?(?:#[^)]*)?\)", text)


def test_relative_links_resolve_inside_the_repository():
    root = ROOT.resolve()
    for doc in READ_DOCS:
        for target in _links(doc.read_text()):
            if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):  # anchor-only, URL
                continue
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(root), f"{doc.name} links outside the repo: {target}"
            assert resolved.exists(), f"{doc.name} links to missing {target}"
    assert _links("[a](../x.md#s) ![b](img/c.png) [c](https://e.org)") == [
        "../x.md", "img/c.png", "https://e.org"
    ]  # fmt: skip


def test_docs_do_not_point_at_notes_outside_the_repository():
    for doc in READ_DOCS:
        text = doc.read_text()
        for bad in ("REFERENCE.md", "shared/", "ANCHORS.md"):
            assert bad not in text, f"{doc.name} mentions {bad}: cite the official sources"


ISSUE = re.compile(r"\bissues?\s*#?\s*\d+", re.I)


def _help_texts(parser: argparse.ArgumentParser) -> list[str]:
    """The help of ``parser`` and of every sub-command below it."""
    out = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += _help_texts(sub)
    return out


def test_no_issue_numbers_in_what_users_read():
    assert (
        ISSUE.search("see issue 20")
        and ISSUE.search("Issue #3")
        and not ISSUE.search("torchvision #8191")
    )
    for doc in READ_DOCS:
        m = ISSUE.search(doc.read_text())
        assert m is None, f"{doc.name}: '{m.group(0)}' (say what, not which ticket)"
    helps = _help_texts(build_parser())
    assert len(helps) > 10  # every sub-command and experiment
    for text in helps:
        m = ISSUE.search(text)
        assert m is None, f"CLI help: '{m.group(0)}'"


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


def test_public_names_stay_few():
    # __all__ holds only what a user imports; internals stay importable but unlisted.
    import pkgutil

    names = set(mixkit.__all__)
    for info in pkgutil.walk_packages(mixkit.__path__, "mixkit."):
        names |= set(getattr(importlib.import_module(info.name), "__all__", ()) or ())
    assert 100 < len(names) <= 150, len(names)
