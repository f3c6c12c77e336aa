"""``mixkit plot``, reading metrics, the training-curve PNGs and the optional TensorBoard
logging (the figures themselves: ``tests/test_figures.py``)."""

from __future__ import annotations

import csv
import json
import sys
import types
import warnings

import matplotlib.image as mpimg
import pytest
import torch
import yaml

from mixkit import plots
from mixkit.cli import main
from mixkit.config import TrainConfig
from mixkit.recipes import plot as plot_cmd
from mixkit.train import MetricsWriter


def _write_csv(path, rows):
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _train_run(folder, **cfg):
    folder.mkdir(parents=True)
    config = {**TrainConfig().__dict__, "dataset": "digits", "grid_samples": 4, **cfg}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    _write_csv(
        folder / "metrics.csv",
        [
            {"epoch": 1, "train_loss": 2.0, "test_loss": 1.8, "test_acc": 0.4, "lr": 0.1},
            {"epoch": 2, "train_loss": 1.5, "test_loss": 1.2, "test_acc": 0.6, "lr": 0.05},
        ],
    )
    _write_csv(
        folder / "steps.csv",
        [{"step": s, "epoch": 1 + (s - 1) // 4, "loss": 2.0 / s, "lr": 0.1} for s in range(1, 9)],
    )
    return folder


def _png_size(path):
    """(height, width) in pixels of a written PNG, after checking it is a sane figure."""
    assert path.stat().st_size > 3000, path
    h, w = mpimg.imread(path).shape[:2]
    assert 150 <= h <= 3000 and 300 <= w <= 4000, (path, h, w)
    return h, w


# --------------------------------------------------------------------------- figures
def test_read_metrics_keeps_numeric_columns(tmp_path):
    f = tmp_path / "metrics.csv"
    _write_csv(
        f, [{"epoch": 1, "active": "t1", "loss": 0.5}, {"epoch": 2, "active": "", "loss": ""}]
    )
    cols = plots.read_metrics(f)
    assert set(cols) == {"epoch", "loss"}
    assert (
        cols["epoch"] == [1.0, 2.0]
        and cols["loss"][0] == 0.5
        and cols["loss"][1] != cols["loss"][1]
    )
    with pytest.raises(FileNotFoundError, match="metrics file not found"):
        plots.read_metrics(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("epoch,loss\n")
    with pytest.raises(ValueError, match="holds no rows"):
        plots.read_metrics(tmp_path / "empty.csv")


def test_training_curves_png(tmp_path):
    out = plots.save_training_curves(
        {
            "epoch": [1, 2, 3],
            "train_loss": [2, 1, 0.5],
            "val_miou": [0.1, 0.2, 0.3],
            "dist_t1": [3, 2, 1],
        },
        tmp_path / "c.png",
    )
    assert out.stat().st_size > 5000
    with pytest.raises(ValueError, match="no numeric column"):
        plots.save_training_curves({"epoch": [1, 2]}, tmp_path / "x.png")


def test_mix_grid_has_no_tensor_imshow_warning(tmp_path):
    # matplotlib + numpy 2 warn when imshow gets a torch tensor; the grid passes numpy.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        fig = plots.mix_grid_figure(torch.rand(2, 3, 8, 8), torch.eye(3)[:2], torch.ones(2))
        plots.save_figure(fig, tmp_path / "g.png")
        plots.save_figure(
            plots.mix_grid_figure(torch.rand(2, 1, 8, 8), None, None), tmp_path / "h.png"
        )


# --------------------------------------------------------------------------- mixkit plot
def test_plot_train_run_regenerates_curves_and_grid(tmp_path, capsys):
    run = _train_run(tmp_path / "r", aug="cutmix")
    assert main(["plot", str(run)]) == 0
    for name in ("training_curves.png", "training_steps.png", "mixed_samples.png"):
        _png_size(run / "plots" / name)
    assert "wrote 3 PNG file(s)" in capsys.readouterr().out


def test_plot_semiseg_and_kd_audit_and_parent_folder(tmp_path, capsys):
    seg = tmp_path / "exp" / "dt"
    seg.mkdir(parents=True)
    (seg / "config.yaml").write_text(
        yaml.safe_dump({"method": "dualteacher", "split": "1/16", "iters_per_epoch": 2})
    )
    curve = [{"step": s, "t1": 1.0 / s, "t2": 2.0 / s} for s in range(1, 7)]
    (seg / "summary.json").write_text(json.dumps({"method": "dualteacher", "curve": curve}))
    _write_csv(seg / "metrics.csv", [{"epoch": 1, "loss": 1.0, "val_miou": 0.2, "active": "t1"}])
    audit = tmp_path / "exp" / "audit"
    audit.mkdir()
    rows = [
        {"scheme": s, "t_stddev": t, "test_loss_mean": loss, "test_loss_std": 0.01}
        for s, t, loss in (("identity", 0.006, 1.1), ("cutmix", 0.005, 1.0), ("cmp_t", 0.004, 0.9))
    ]
    corr = {k: {"r": 1.0, "p": 0.1} for k in ("pearson", "spearman", "kendall")}
    (audit / "audit.json").write_text(
        json.dumps(
            {"rows": rows, "correlation": corr, "teacher_model": "smallcnn", "dataset": "digits"}
        )
    )
    assert main(["plot", str(tmp_path / "exp")]) == 0  # a parent folder: every run inside
    out = capsys.readouterr().out
    assert (seg / "plots" / "distance.png").stat().st_size > 3000
    assert (seg / "plots" / "training_curves.png").is_file()
    assert "overlay.png, mix_example.png skipped: no checkpoint" in out
    assert (audit / "tstddev_vs_test_loss.png").stat().st_size > 3000


def test_plot_hook_replaces_builtin_steps(tmp_path, monkeypatch):
    seg = tmp_path / "dt"
    seg.mkdir()
    (seg / "config.yaml").write_text(yaml.safe_dump({"method": "mt", "split": "1/8"}))
    calls = []

    def hook(run_dir):
        calls.append(run_dir)
        return [run_dir / "plots" / "custom.png"]

    import mixkit.methods.semiseg as semiseg

    monkeypatch.setattr(semiseg, "plot_run", hook, raising=False)
    assert plot_cmd.plot_run(seg, log=lambda s: None) == [seg / "plots" / "custom.png"]
    assert calls == [seg]


def test_plot_errors(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert plot_cmd.detect_kind(tmp_path / "empty") is None


# --------------------------------------------------------------------------- TensorBoard
class _FakeWriter:
    instances: list[_FakeWriter] = []

    def __init__(self, log_dir, filename_suffix=""):
        self.log_dir, self.suffix, self.scalars, self.closed = log_dir, filename_suffix, [], False
        _FakeWriter.instances.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tensorboard(monkeypatch):
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = _FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    _FakeWriter.instances = []
    return _FakeWriter


def test_metrics_writer_logs_tensorboard_scalars(tmp_path, fake_tensorboard):
    w = MetricsWriter(tmp_path / "metrics.csv", tensorboard=True)
    w.write({"epoch": 1, "train_loss": 2.5, "active": "t1", "ok": True})
    w.write({"epoch": 2, "train_loss": 1.5, "active": "t2", "ok": False})
    (tb,) = fake_tensorboard.instances
    assert tb.log_dir == str(tmp_path / "tensorboard") and tb.suffix == ".metrics"
    assert tb.scalars == [("metrics/train_loss", 2.5, 1), ("metrics/train_loss", 1.5, 2)]
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 3  # the CSV is unchanged
    w.close()
    assert tb.closed


def test_tensorboard_env_switch_and_steps(tmp_path, fake_tensorboard, monkeypatch):
    monkeypatch.setenv("MIXKIT_TENSORBOARD", "1")
    w = MetricsWriter(tmp_path / "steps.csv")
    w.write({"step": 7, "epoch": 1, "loss": 0.3})
    assert fake_tensorboard.instances[0].scalars == [("steps/loss", 0.3, 7)]
    monkeypatch.setenv("MIXKIT_TENSORBOARD", "0")
    MetricsWriter(tmp_path / "other.csv").write({"epoch": 1, "loss": 0.1})
    assert len(fake_tensorboard.instances) == 1


def test_tensorboard_missing_warns_and_keeps_csv(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.warns(RuntimeWarning, match="optional 'tensorboard' package is not installed"):
        w = MetricsWriter(tmp_path / "metrics.csv", tensorboard=True)
    w.write({"epoch": 1, "loss": 0.1})
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,loss")
