"""Pre-registered protocols: the protocol file parses, its settings drive the experiment
commands, and a protocol that differs from the recorded tables is refused unless
``--new-protocol`` (then the earlier section is kept)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixkit.cli import main
from mixkit.experiments import rm as rm_experiment
from mixkit.experiments.protocol import read_protocol, recorded_settings, section_text

DOCS = Path(__file__).resolve().parents[1] / "docs" / "replication.md"

PROTOCOL = """# P

```yaml
study: rm
datasets: digits
methods: baseline,cutmix
seeds: 0,1
epochs: 2
```

```yaml
# an example block without a study key is not a protocol
epochs: 99
```
"""


def _write(tmp_path: Path, text: str = PROTOCOL) -> Path:
    path = tmp_path / "protocol.md"
    path.write_text(text)
    return path


class TestReadProtocol:
    def test_reads_the_study_block(self, tmp_path):
        got = read_protocol(_write(tmp_path), "rm")
        assert got == {"datasets": "digits", "methods": "baseline,cutmix", "seeds": "0,1",
                       "epochs": 2}  # fmt: skip

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="protocol file not found"):
            read_protocol(tmp_path / "none.md", "rm")

    def test_missing_study(self, tmp_path):
        with pytest.raises(
            ValueError, match=r"no yaml block with 'study: kd' \(studies found: rm\)"
        ):
            read_protocol(_write(tmp_path), "kd")

    def test_study_written_twice(self, tmp_path):
        text = PROTOCOL + "\n```yaml\nstudy: rm\nepochs: 3\n```\n"
        with pytest.raises(ValueError, match="study 'rm' has two blocks"):
            read_protocol(_write(tmp_path, text), "rm")

    def test_bad_yaml_names_the_line(self, tmp_path):
        text = "# P\n\n```yaml\nstudy: rm\nseeds: [0, 1\n```\n"
        with pytest.raises(ValueError, match=r"protocol.md: the yaml block at line 3 is not valid"):
            read_protocol(_write(tmp_path, text), "rm")

    @pytest.mark.parametrize("study", ["rm", "kd", "semiseg"])
    def test_the_shipped_protocol_builds_each_config(self, study):
        from mixkit.experiments.kd import KDExperimentConfig
        from mixkit.experiments.semiseg import SemisegExperimentConfig

        cls = {"rm": rm_experiment.RMExperimentConfig, "kd": KDExperimentConfig,
               "semiseg": SemisegExperimentConfig}[study]  # fmt: skip
        cfg = cls(**read_protocol(DOCS, study))
        assert len(cfg.seeds.split(",")) >= 3  # at least three seeds in every study


def _fake_runs(monkeypatch) -> list[dict]:
    seen: list[dict] = []

    def train_one(cfg):
        seen.append(cfg)
        return {"test_acc": 0.9 + 0.01 * cfg["seed"]}

    monkeypatch.setattr(rm_experiment, "_train_one", train_one)
    return seen


def _argv(tmp_path: Path, protocol: Path, *extra: str) -> list[str]:
    return [
        *("experiment", "rm", "--protocol", str(protocol), "--jobs", "1"),
        *("--out", str(tmp_path / "runs"), "--write-docs", "--docs-dir", str(tmp_path / "d")),
        *("--benchmarks", str(tmp_path / "B.md"), *extra),
    ]


class TestProtocolRuns:
    def test_settings_come_from_the_protocol_and_are_recorded(self, tmp_path, monkeypatch):
        seen = _fake_runs(monkeypatch)
        assert main(_argv(tmp_path, _write(tmp_path))) == 0
        assert sorted({(c["dataset"], c["aug"], c["seed"], c["epochs"]) for c in seen}) == [
            ("digits", "cutmix", 0, 2), ("digits", "cutmix", 1, 2),
            ("digits", "none", 0, 2), ("digits", "none", 1, 2),
        ]  # fmt: skip
        saved = json.loads((tmp_path / "runs" / "results.json").read_text())["settings"]
        assert saved["seeds"] == "0,1" and saved["epochs"] == 2 and "jobs" not in saved
        section = section_text(tmp_path / "B.md", rm_experiment.SECTION)
        assert recorded_settings(section) == saved

    def test_a_flag_that_the_protocol_governs_is_an_error(self, tmp_path, monkeypatch, capsys):
        _fake_runs(monkeypatch)
        assert main(_argv(tmp_path, _write(tmp_path), "--epochs", "5")) != 0
        assert "--epochs also set while --protocol" in capsys.readouterr().err

    def test_unknown_setting_is_an_error(self, tmp_path, monkeypatch, capsys):
        _fake_runs(monkeypatch)
        path = _write(tmp_path, PROTOCOL.replace("epochs: 2", "epochz: 2"))
        assert main(_argv(tmp_path, path)) != 0
        assert "unknown setting 'epochz'" in capsys.readouterr().err

    @pytest.mark.parametrize("change", ["seeds: 0,1,2", "epochs: 3"])
    def test_refuses_a_protocol_that_differs_from_the_recorded_tables(
        self, tmp_path, monkeypatch, capsys, change
    ):
        seen = _fake_runs(monkeypatch)
        assert main(_argv(tmp_path, _write(tmp_path))) == 0
        key = change.split(":")[0]
        changed = _write(tmp_path, PROTOCOL.replace(
            {"seeds": "seeds: 0,1", "epochs": "epochs: 2"}[key], change))  # fmt: skip
        n = len(seen)
        assert main(_argv(tmp_path, changed)) != 0
        err = capsys.readouterr().err
        assert "differs from the tables recorded in" in err and f"{key}: recorded" in err
        assert "--new-protocol" in err and len(seen) == n  # nothing ran
        first = section_text(tmp_path / "B.md", rm_experiment.SECTION)
        assert main(_argv(tmp_path, changed, "--new-protocol")) == 0
        text = section_text(tmp_path / "B.md", rm_experiment.SECTION)
        new, old = text.split("### Superseded: the same study under the earlier settings")
        assert recorded_settings(new)[key] != recorded_settings(old)[key]
        assert first.strip() in old  # the first protocol's results are kept

    def test_same_protocol_runs_again(self, tmp_path, monkeypatch):
        _fake_runs(monkeypatch)
        path = _write(tmp_path)
        assert main(_argv(tmp_path, path)) == 0
        assert main(_argv(tmp_path, path)) == 0
        assert "Superseded" not in (tmp_path / "B.md").read_text()
