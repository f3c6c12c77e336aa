"""Tests of knowledge distillation with DA: KD loss, DA schemes, CutMixPick,
AutoAugment ops, T. stddev / covariance / correlations, and the CLI end to end."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics

import numpy as np
import pytest
import torch

from mixkit import augment, data, distributed, models
from mixkit.cli import main
from mixkit.methods.kd import DistillStep, audit, audit_stats, resolve_teacher
from mixkit.methods.kd.autoaugment import OPS, apply_op, autoaugment
from mixkit.methods.kd.checkpoints import resolve_run
from mixkit.methods.kd.config import AuditConfig, KDConfig
from mixkit.methods.kd.loss import kd_loss
from mixkit.methods.kd.schemes import (
    SCHEMES,
    CutMixPick,
    SchemeContext,
    build_scheme,
    entropy,
    pick_scores,
)
from mixkit.methods.kd.trainer import run


@pytest.fixture(scope="module")
def digits():
    return data.load_digits(0)


@pytest.fixture(scope="module")
def ctx(digits):
    torch.manual_seed(0)
    teacher = models.build_model("tinycnn", 10, 1).eval()
    student = models.build_model("tinycnn", 10, 1).eval()
    return SchemeContext(digits.mean, digits.std, teacher, student, 4.0)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- KD loss
def _softmax(v, t=1.0):
    e = [math.exp(a / t) for a in v]
    return [a / sum(e) for a in e]


def _kl_t2(s, t, temp):
    ps, pt = _softmax(s, temp), _softmax(t, temp)
    return temp**2 * sum(b * (math.log(b) - math.log(a)) for a, b in zip(ps, pt, strict=True))


class TestKDLoss:
    def test_hand_computed_value(self):
        s = [[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]
        t = [[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]]
        sa = [[0.0, 0.0, 1.0]]
        ta = [[2.0, -1.0, 0.0]]
        y = [0, 1]
        got = kd_loss(
            torch.tensor(s),
            torch.tensor(t),
            torch.tensor(y),
            torch.tensor(sa),
            torch.tensor(ta),
        )
        ce = statistics.fmean(-math.log(_softmax(r)[c]) for r, c in zip(s, y, strict=True))
        kl = statistics.fmean(_kl_t2(a, b, 4.0) for a, b in zip(s, t, strict=True))
        kl_aug = _kl_t2(sa[0], ta[0], 4.0)
        assert got["ce"].item() == pytest.approx(ce, rel=1e-5)
        assert got["kl"].item() == pytest.approx(kl, rel=1e-5)
        assert got["kl_aug"].item() == pytest.approx(kl_aug, rel=1e-5)
        assert got["loss"].item() == pytest.approx(0.1 * ce + 0.9 * (kl + kl_aug), rel=1e-5)

    def test_weights_are_configurable(self):
        s, t, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([1])
        a = kd_loss(s, t, y, s, t, temperature=2.0, ce_weight=1.0, kd_weight=0.5, aug_kl_weight=0)
        ce = -math.log(_softmax([1.0, 0.0])[1])
        assert a["loss"].item() == pytest.approx(ce + 0.5 * _kl_t2([1, 0], [0, 1], 2.0), rel=1e-5)

    def test_kl_zero_when_student_equals_teacher(self):
        logits = torch.randn(8, 10, generator=_gen(0))
        aug = torch.randn(5, 10, generator=_gen(1))
        y = torch.arange(8) % 10
        out = kd_loss(logits, logits, y, aug, aug)
        assert out["kl"].abs().item() < 1e-6 and out["kl_aug"].abs().item() < 1e-6
        assert out["loss"].item() == pytest.approx(0.1 * out["ce"].item(), rel=1e-5)

    def test_aug_logits_must_come_together(self):
        x = torch.zeros(2, 3)
        with pytest.raises(ValueError, match="must be given together"):
            kd_loss(x, x, torch.zeros(2, dtype=torch.long), x, None)


# ----------------------------------------------------------------------------- schemes
SCHEME_NAMES = sorted(SCHEMES)


class TestSchemes:
    @pytest.mark.parametrize("name", SCHEME_NAMES)
    def test_deterministic_under_seed_and_differs_across_seeds(self, name, digits, ctx):
        x = digits.train.x[:32]
        opts = {"pick_criterion": "teacher_entropy"}
        a = build_scheme(name, **opts)(x, _gen(3), ctx)
        b = build_scheme(name, **opts)(x, _gen(3), ctx)
        c = build_scheme(name, **opts)(x, _gen(4), ctx)
        assert a.dtype == torch.uint8 and a.shape == x.shape
        assert torch.equal(a, b)
        if name == "identity":
            assert torch.equal(a, x)
        else:
            assert not torch.equal(a, c)
        assert torch.equal(x, digits.train.x[:32])  # caller's tensor untouched

    @pytest.mark.parametrize("name", ["flip", "crop_flip", "cutout", "mixup", "cutmix"])
    def test_float_pixels_keep_dtype_and_range(self, name, digits, ctx):
        x = digits.train.x[:16].float() / 255
        out = build_scheme(name)(x, _gen(0), ctx)
        assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1

    @pytest.mark.parametrize("name", ["flip", "crop_flip"])
    def test_per_batch_uses_one_draw(self, name, digits):
        # B copies of one image: one draw per batch => identical outputs; per sample => not.
        x = digits.train.x[:1].expand(64, -1, -1, -1).contiguous()
        shared = build_scheme(name, per_batch=True)(x, _gen(0))
        per_sample = build_scheme(name)(x, _gen(0))
        assert (shared == shared[:1]).all()
        assert not (per_sample == per_sample[:1]).all()

    def test_per_batch_crop_is_one_offset(self, digits):
        x = digits.train.x[:8]
        out = build_scheme("crop_flip", per_batch=True, crop_pad=3)(x, _gen(5))
        # find the (dy, dx, flip) that maps image 0, and check it maps every image
        padded = torch.nn.functional.pad(x, (3, 3, 3, 3))
        h, w = x.shape[-2:]
        for dy in range(7):
            for dx in range(7):
                for fl in (False, True):
                    cand = padded[:, :, dy : dy + h, dx : dx + w]
                    cand = cand.flip(-1) if fl else cand
                    if torch.equal(cand[0], out[0]) and torch.equal(cand, out):
                        return
        pytest.fail("per_batch crop+flip is not a single offset/flip for the batch")

    def test_cutout_fills_dataset_mean(self, digits, ctx):
        x = torch.full((4, 1, 16, 16), 200, dtype=torch.uint8)
        out = build_scheme("cutout", cutout_length=4)(x, _gen(0), ctx)
        fill = round(digits.mean[0] * 255)
        changed = out != 200
        assert changed.any() and (out[changed] == fill).all()
        assert int(changed.sum(dim=(1, 2, 3)).max()) <= 16

    def test_errors(self, digits):
        with pytest.raises(ValueError, match="da must be one of"):
            build_scheme("rotate90")
        with pytest.raises(ValueError, match="unknown DA scheme options"):
            build_scheme("cutmix", alpha=2.0)
        with pytest.raises(ValueError, match="pool_factor must be an int >= 2"):
            CutMixPick(pool_factor=1)
        with pytest.raises(ValueError, match="pick_criterion must be one of"):
            CutMixPick(criterion="margin")
        with pytest.raises(ValueError, match="needs a teacher"):
            build_scheme("cutmix_pick_t")(digits.train.x[:4], _gen(0), None)
        with pytest.raises(ValueError, match=r"images must be a \(B, C, H, W\)"):
            build_scheme("flip")(digits.train.x[0], _gen(0))
        with pytest.raises(ValueError, match="crop_pad must be an int >= 0"):
            build_scheme("crop_flip", crop_pad=-1)


class TestCutMixPick:
    @pytest.mark.parametrize("criterion", ["teacher_entropy", "student_entropy", "kld"])
    def test_keeps_top_b_from_pool(self, criterion, digits, ctx):
        x = digits.train.x[:24]
        pick = CutMixPick(criterion=criterion, pool_factor=3)
        out = pick(x, _gen(0), ctx)
        assert out.shape == x.shape  # exactly B samples
        pool, scores, index = pick.last_pool, pick.last_scores, pick.last_index
        assert pool.shape[0] == 3 * 24 and index.unique().numel() == 24
        assert torch.equal(out, pool[index])  # all from the pool
        rest = torch.ones(72, dtype=torch.bool)
        rest[index] = False
        assert scores[index].min() >= scores[rest].max()
        torch.testing.assert_close(scores, pick_scores(ctx.normalize(pool), criterion, ctx))

    def test_mean_teacher_entropy_not_below_pool(self, digits, ctx):
        pick = CutMixPick("teacher_entropy")
        for seed in range(3):
            out = pick(digits.train.x[:32], _gen(seed), ctx)
            ent_pick = entropy(ctx.teacher(ctx.normalize(out))).mean()
            ent_pool = entropy(ctx.teacher(ctx.normalize(pick.last_pool))).mean()
            assert ent_pick >= ent_pool - 1e-6
            assert ent_pick > ent_pool  # strictly, unless all scores tie

    def test_reused_teacher_logits_match_a_fresh_forward(self, digits, ctx):
        pick = CutMixPick("teacher_entropy")
        out = pick(digits.train.x[:16], _gen(1), ctx)
        with torch.no_grad():
            fresh = ctx.teacher(ctx.normalize(out))
        torch.testing.assert_close(pick.last_teacher_logits, fresh, rtol=1e-4, atol=1e-5)
        assert CutMixPick("student_entropy")(digits.train.x[:8], _gen(1), ctx) is not None
        assert build_scheme("cutmix_pick_s").last_teacher_logits is None

    def test_pool_is_independent_cutmix_batches(self, digits, ctx):
        x = digits.train.x[:16]
        pick = CutMixPick("teacher_entropy", pool_factor=2)
        pick(x, _gen(7), ctx)
        g = _gen(7)
        cm = build_scheme("cutmix")
        expected = torch.cat([cm(x, g), cm(x, g)])
        assert torch.equal(pick.last_pool, expected)

    def test_entropy_values(self):
        logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
        torch.testing.assert_close(entropy(logits), torch.tensor([math.log(4), 0.0]))


# ----------------------------------------------------------------------------- AutoAugment
class TestAutoAugment:
    @pytest.mark.parametrize("op", sorted(OPS))
    @pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
    def test_ops_keep_dtype_and_range(self, op, dtype):
        g = _gen(0)
        x = torch.randint(0, 256, (4, 3, 12, 12), generator=g, dtype=torch.uint8)
        x = x if dtype == torch.uint8 else x.float() / 255
        for m in (0.9, -0.9) if op not in ("Posterize", "Solarize") else (4.0, 128.0):
            out = apply_op(x, op, m)
            assert out.dtype == dtype and out.shape == x.shape
            hi = 255 if dtype == torch.uint8 else 1.0
            assert out.min() >= 0 and out.max() <= hi

    def test_pixel_ops_values(self):
        x = torch.tensor([0, 10, 100, 127, 128, 200, 255], dtype=torch.uint8).view(1, 1, 1, 7)
        assert torch.equal(apply_op(x, "Invert", 0), 255 - x)
        sol = apply_op(x, "Solarize", 128.0)
        assert sol.flatten().tolist() == [0, 10, 100, 127, 127, 55, 0]
        post = apply_op(x, "Posterize", 4.0)
        assert post.flatten().tolist() == [v & 0xF0 for v in x.flatten().tolist()]
        auto = apply_op(x[..., 1:6], "AutoContrast", 0)  # 10..200 -> 0..255
        assert auto.flatten().tolist()[0] == 0 and auto.flatten().tolist()[-1] == 255
        assert torch.equal(apply_op(x, "Brightness", 0.0), x)

    def test_equalize_matches_pil_formula(self):
        vals = [0] * 10 + [50] * 20 + [100] * 30 + [200] * 4
        x = torch.tensor(vals, dtype=torch.uint8).view(1, 1, 8, 8)
        hist = np.bincount(np.array(vals), minlength=256)
        step = (hist.sum() - hist[200]) // 255  # PIL: (N - count of last value) // 255
        assert step == 0  # too few pixels: PIL returns the image unchanged
        assert torch.equal(apply_op(x, "Equalize", 0), x)
        big = torch.tensor(vals * 16, dtype=torch.uint8).view(1, 1, 32, 32)
        hist = np.bincount(np.array(vals * 16), minlength=256)
        step = (hist.sum() - hist[200]) // 255
        lut = np.concatenate([[0], (np.cumsum(hist) + step // 2) // step])[:256].clip(0, 255)
        expect = torch.from_numpy(lut[np.array(vals * 16)].astype(np.uint8)).view(1, 1, 32, 32)
        assert torch.equal(apply_op(big, "Equalize", 0), expect)

    def test_geometry(self):
        x = torch.arange(36, dtype=torch.uint8).view(1, 1, 6, 6)
        assert torch.equal(apply_op(x, "Rotate", 90.0), torch.rot90(x, 1, (2, 3)))
        tx = apply_op(x, "TranslateX", 2.0)
        assert torch.equal(tx[..., 2:], x[..., :-2]) and (tx[..., :2] == 0).all()
        ty = apply_op(x, "TranslateY", -1.0)
        assert torch.equal(ty[..., :-1, :], x[..., 1:, :]) and (ty[..., -1, :] == 0).all()
        sh = apply_op(x, "ShearX", 0.0)
        assert torch.equal(sh, x)

    def test_policy_per_sample_and_per_batch(self):
        x = torch.randint(0, 256, (1, 3, 10, 10), generator=_gen(1), dtype=torch.uint8)
        xs = x.expand(64, -1, -1, -1).contiguous()
        shared = autoaugment(xs, _gen(2), per_batch=True)
        assert (shared == shared[:1]).all()
        per = autoaugment(xs, _gen(2))
        assert len({bytes(p.flatten().numpy()) for p in per}) > 5

    def test_errors(self):
        with pytest.raises(ValueError, match="op must be one of"):
            apply_op(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), "Blur", 1.0)
        with pytest.raises(ValueError, match="policy must be one of"):
            autoaugment(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), policy="svhn")
        with pytest.raises(ValueError, match="uint8 or float"):
            autoaugment(torch.zeros(1, 1, 4, 4, dtype=torch.int32))


# ----------------------------------------------------------------------------- audit maths
class TestTStddev:
    def test_hand_built_sequence(self):
        # 7 vectors, K = 3, group 2 -> chunks (0,1) (2,3) (4,5); the 7th is dropped.
        p = torch.tensor(
            [
                [0.7, 0.2, 0.1],
                [0.1, 0.8, 0.1],
                [0.3, 0.3, 0.4],
                [0.5, 0.25, 0.25],
                [0.0, 0.0, 1.0],
                [0.2, 0.2, 0.6],
                [1.0, 0.0, 0.0],
            ],
            dtype=torch.float64,
        )
        means = [[(p[i, c] + p[i + 1, c]).item() / 2 for c in range(3)] for i in (0, 2, 4)]
        expect = statistics.fmean(statistics.stdev(m[c] for m in means) for c in range(3))
        assert audit_stats.t_stddev_of_stream(p, 2) == pytest.approx(expect, rel=1e-12)
        acc = audit_stats.ChunkMeans(2)  # chunks may span several add() calls
        for part in (p[:1], p[1:4], p[4:]):
            acc.add(part)
        assert audit_stats.t_stddev(acc.means) == pytest.approx(expect, rel=1e-12)
        assert acc.means.shape == (3, 3)

    def test_constant_stream_is_zero(self):
        p = torch.full((40, 4), 0.25)
        assert audit_stats.t_stddev_of_stream(p, 8) == 0.0

    def test_needs_two_groups(self):
        with pytest.raises(ValueError, match="G >= 2 groups"):
            audit_stats.t_stddev_of_stream(torch.full((5, 2), 0.5), 4)

    def test_ce_covariance_formula(self):
        q = torch.rand(6, 5, generator=_gen(0), dtype=torch.float64) + 0.5
        qn = (q / q.max(0, keepdim=True).values).numpy()
        cov = np.cov(qn, rowvar=False)
        expect = sum(cov[i, j] for i in range(5) for j in range(i)) / 25
        assert audit_stats.ce_covariance(q) == pytest.approx(expect, rel=1e-10)
        with pytest.raises(ValueError, match="R >= 2"):
            audit_stats.ce_covariance(q[:1])


class TestCorrelations:
    def test_known_values(self):
        x = [1.0, 2.0, 3.0, 4.0, 5.0]
        assert audit_stats.pearson(x, [2 * v + 1 for v in x]) == pytest.approx(1.0)
        assert audit_stats.spearman(x, [v**3 for v in x]) == pytest.approx(1.0)
        assert audit_stats.kendall(x, [5.0, 4.0, 3.0, 2.0, 1.0]) == pytest.approx(-1.0)
        # one discordant pair out of 10: tau = (9 - 1) / 10
        assert audit_stats.kendall(x, [1.0, 2.0, 3.0, 5.0, 4.0]) == pytest.approx(0.8)
        assert audit_stats.spearman(x, [1.0, 2.0, 3.0, 5.0, 4.0]) == pytest.approx(0.9)

    def test_matches_scipy(self):
        stats = pytest.importorskip("scipy.stats")
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=9), rng.normal(size=9)
        y[3] = y[5]  # a tie
        assert audit_stats.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
        assert audit_stats.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
        assert audit_stats.kendall(x, y) == pytest.approx(stats.kendalltau(x, y)[0])

    def test_permutation_p_values(self):
        x = [1.0, 2.0, 3.0, 4.0, 5.0]
        c = audit_stats.correlations(x, x)
        # exact: only the identity permutation (and its reverse, two-sided) reach |rho| = 1
        assert c["spearman"]["p"] == pytest.approx(2 / 120)
        assert c["kendall"]["r"] == pytest.approx(1.0)
        c9 = audit_stats.correlations(list(range(9)), list(range(9)), n_perm=2000)
        assert 0 < c9["spearman"]["p"] < 0.01
        with pytest.raises(ValueError, match="equal length >= 2"):
            audit_stats.correlations([1.0], [2.0])


# ----------------------------------------------------------------------------- CLI end to end
class TestCLI:
    def test_distill_and_audit_end_to_end(self, tmp_path, capsys):
        t = tmp_path / "teacher"
        common = ["--dataset", "digits", "--epochs", "2", "--no-progress", "--grid-samples", "0"]
        assert main(["train", *common, "--batch-size", "64", "--out", str(t)]) == 0
        students = tmp_path / "students"
        out = students / "cmp"
        argv = ["distill", "--teacher", str(t / "checkpoints" / "last.pt"), "--student", "tinycnn"]
        argv += ["--da", "cutmix_pick", "--epochs", "1", "--no-progress", "--out", str(out)]
        assert main(argv) == 0
        s = json.loads((out / "summary.json").read_text())
        assert s["da"] == "cutmix_pick_t" and s["test_loss"] > 0 and s["teacher_test_acc"] > 0.5
        assert (out / "checkpoints" / "last.pt").is_file()
        assert (out / "metrics.csv").read_text().startswith("epoch,train_loss")
        for da, loss in (("identity", 2.5), ("cutmix", 2.4)):  # stand-in runs for the scatter
            (students / da).mkdir()
            stand_in = {"da": da, "test_loss": loss, "teacher_digest": s["teacher_digest"]}
            (students / da / "summary.json").write_text(json.dumps(stand_in))
        a = tmp_path / "audit"
        argv = ["kd-audit", "--teacher", str(t), "--da", "identity,cutmix,cutmix_pick_t"]
        argv += ["--epochs", "1", "--group", "128", "--no-progress", "--out", str(a)]
        argv += ["--student-ckpt", str(out), "--students", str(students), "--base-aug", "none"]
        assert main(argv) == 0
        res = json.loads((a / "audit.json").read_text())
        rows = {r["scheme"]: r for r in res["rows"]}
        assert set(rows) == {"identity", "cutmix", "cutmix_pick_t"}
        assert all(r["t_stddev"] > 0 and r["groups"] >= 2 for r in rows.values())
        assert "ce_cov" in rows["cutmix"] and rows["cutmix"]["test_loss_mean"] == 2.4
        assert set(res["correlation"]) == {"pearson", "spearman", "kendall"}
        assert (a / "tstddev_vs_test_loss.png").stat().st_size > 1000
        assert "| scheme | T. stddev" in capsys.readouterr().out
        # a student of another teacher in the folder: refused, the run named
        (students / "other").mkdir()
        foreign = {"da": "mixup", "test_loss": 2.0, "teacher_digest": "0" * 64}
        (students / "other" / "summary.json").write_text(json.dumps(foreign))
        assert main([*argv, "--out", str(tmp_path / "audit2")]) == 2
        err = capsys.readouterr().err
        assert "1 run(s) distilled from another teacher" in err and "other" in err

    def test_trainer_options(self, tmp_path):
        t = tmp_path / "teacher"
        argv = ["train", "--dataset", "digits", "--epochs", "1", "--no-progress"]
        assert main([*argv, "--grid-samples", "0", "--out", str(t)]) == 0
        cfg = KDConfig(
            teacher=str(t),
            da="cutout",
            train_subset=128,
            epochs=2,
            eval_every=2,
            joint_forward=True,
            base_aug="crop",
            progress=False,
            out=str(tmp_path / "s"),
        )
        s = run(cfg)
        assert s["train_size"] == 128 and s["da"] == "cutout" and math.isfinite(s["test_loss"])
        rows = (tmp_path / "s" / "metrics.csv").read_text().splitlines()
        assert len(rows) == 3 and ",nan," in rows[1] and ",nan," not in rows[2]
        with pytest.raises(ValueError, match="already holds a run"):
            run(cfg)  # never into an existing run folder by accident
        again = run(dataclasses.replace(cfg, overwrite=True))  # same seed => same student
        assert again["test_loss"] == s["test_loss"]

    def test_errors_exit_2(self, tmp_path, capsys):
        assert main(["distill", "--teacher", str(tmp_path / "none.pt")]) == 2
        assert "teacher checkpoint not found" in capsys.readouterr().err
        assert main(["distill", "--da", "rotate", "--teacher", "x"]) == 2
        assert "da must be one of" in capsys.readouterr().err
        assert main(["kd-audit", "--teacher", "x", "--group", "1"]) == 2
        assert "group must be an int >= 2" in capsys.readouterr().err

    def test_config_and_run_resolution(self, tmp_path):
        with pytest.raises(ValueError, match="teacher is required"):
            resolve_run(None, "teacher")
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "last.pt").write_bytes(b"x")
        with pytest.raises(FileNotFoundError, match="run config not found"):
            resolve_run(tmp_path, "teacher")
        with pytest.raises(ValueError, match="base_aug must be one of"):
            KDConfig(base_aug="jitter")
        with pytest.raises(ValueError, match="da must list at least one"):
            AuditConfig(da=" , ")


# ----------------------------------------------------------------------------- any teacher
@pytest.fixture
def bare_teacher(tmp_path):
    """A smallcnn teacher saved as a bare state_dict file (no mixkit run folder beside it)."""
    torch.manual_seed(3)
    teacher = models.build_model("smallcnn", 10, 1)
    path = tmp_path / "weights" / "teacher.pth"
    path.parent.mkdir()
    torch.save({"epoch": 240, "model": teacher.state_dict()}, path)  # RepDistiller's layout
    return path, teacher


class TestAnyTeacher:
    def test_bare_state_dict_teacher_distils_one_epoch(self, tmp_path, bare_teacher):
        path, teacher = bare_teacher
        cfg = KDConfig(
            teacher=str(path), teacher_model="smallcnn", dataset="digits", da="cutmix_pick_t",
            train_subset=96, batch_size=32, epochs=1, progress=False, out=str(tmp_path / "kd"),
        )  # fmt: skip
        s = run(cfg)
        assert s["teacher_model"] == "smallcnn" and s["train_size"] == 96
        assert s["teacher_digest"] == distributed.state_digest(teacher)  # the file's weights
        assert math.isfinite(s["test_loss"]) and (tmp_path / "kd" / "checkpoints").is_dir()

    def test_bare_teacher_needs_teacher_model_and_dataset(self, tmp_path, bare_teacher, capsys):
        path, _ = bare_teacher
        assert main(["distill", "--teacher", str(path), "--out", str(tmp_path / "a")]) == 2
        assert "pass --teacher-model NAME" in capsys.readouterr().err
        argv = ["kd-audit", "--teacher", str(path), "--teacher-model", "smallcnn"]
        assert main([*argv, "--out", str(tmp_path / "b")]) == 2
        assert "pass --dataset" in capsys.readouterr().err
        assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

    def test_audit_with_a_bare_teacher(self, tmp_path, bare_teacher):
        path, _ = bare_teacher
        cfg = AuditConfig(
            teacher=str(path), teacher_model="smallcnn", dataset="digits", da="identity,cutmix",
            epochs=1, group=64, train_subset=128, progress=False, out=str(tmp_path / "audit"),
        )  # fmt: skip
        res = audit.run_audit(cfg)
        assert res["teacher_model"] == "smallcnn" and len(res["rows"]) == 2

    def test_run_teacher_conflicts_are_named(self, tmp_path):
        t = tmp_path / "teacher"
        (t / "checkpoints").mkdir(parents=True)
        torch.save({"model": models.build_model("tinycnn", 10, 1).state_dict()},
                   t / "checkpoints" / "last.pt")  # fmt: skip
        (t / "config.yaml").write_text("model: tinycnn\ndataset: digits\nseed: 0\n")
        spec = resolve_teacher(t / "checkpoints" / "last.pt", data_root="/moved")
        assert (spec.model, spec.dataset, spec.data_root, spec.run_dir) == (
            "tinycnn", "digits", "/moved", t,
        )  # fmt: skip
        with pytest.raises(ValueError, match="teacher_model 'smallcnn' differs from"):
            resolve_teacher(t, teacher_model="smallcnn")
        with pytest.raises(ValueError, match="dataset 'mnist5k' differs from"):
            resolve_teacher(t, dataset="mnist5k")


class TestDistillStep:
    def test_loss_is_kd_loss_of_the_models_outputs(self, digits):
        torch.manual_seed(0)
        teacher = models.build_model("tinycnn", 10, 1).train()  # switched to eval by the step
        student = models.build_model("tinycnn", 10, 1)
        step = DistillStep(teacher, "cutmix", mean=digits.mean, std=digits.std,
                           generator=_gen(4))  # fmt: skip
        x, y = digits.train.x[:16], digits.train.y[:16]
        out = step(student, x, y)
        assert not teacher.training and out.x_aug.dtype == torch.uint8
        assert not torch.equal(out.x_aug, x)
        ctx = SchemeContext(digits.mean, digits.std)
        xn, xa = ctx.normalize(x), ctx.normalize(out.x_aug)
        with torch.no_grad():
            t, t_aug = teacher(xn), teacher(xa)
        want = kd_loss(student(xn), t, y, student(xa), t_aug)
        for k in ("loss", "ce", "kl", "kl_aug"):
            assert torch.allclose(out.parts[k], want[k], atol=1e-6), k
        out.loss.backward()  # gradients reach the student only
        assert all(p.grad is not None for p in student.parameters())
        assert all(p.grad is None for p in teacher.parameters())

    def test_same_generator_seed_same_bytes(self, digits):
        torch.manual_seed(0)
        teacher, student = (models.build_model("tinycnn", 10, 1) for _ in range(2))
        x, y = digits.train.x[:16], digits.train.y[:16]
        outs = [
            DistillStep(teacher, "cutmix_pick_t", mean=digits.mean, std=digits.std,
                        generator=_gen(9))(student, x, y)
            for _ in range(2)
        ]  # fmt: skip
        assert torch.equal(outs[0].x_aug, outs[1].x_aug) and torch.equal(outs[0].loss, outs[1].loss)

    def test_errors(self, digits):
        teacher = models.build_model("tinycnn", 10, 1)
        with pytest.raises(TypeError, match="teacher must be an nn.Module"):
            DistillStep("resnet56", mean=digits.mean, std=digits.std)
        with pytest.raises(ValueError, match="da must be one of"):
            DistillStep(teacher, "rotate", mean=digits.mean, std=digits.std)
        with pytest.raises(TypeError, match="generator must be a torch.Generator"):
            DistillStep(teacher, mean=digits.mean, std=digits.std, generator=3)

    @pytest.mark.parametrize("da", ["crop_flip", "autoaugment", "cutmix", "cutmix_pick_s"])
    def test_trainer_steps_read_nothing_back(self, tmp_path, bare_teacher, da):
        """On a meta device any host read raises: distillation steps do none."""
        from mixkit.methods.kd import trainer

        path, _ = bare_teacher
        cfg = KDConfig(teacher=str(path), teacher_model="smallcnn", dataset="digits", da=da,
                       train_subset=64, batch_size=16, log_every=10**6, progress=False,
                       out=str(tmp_path / da))  # fmt: skip
        env = distributed.DistEnv(device=torch.device("meta"))
        job = trainer._Distillation(cfg, env)
        for batch in job.feed.epoch(0, job.local_bs, env, env.device, job.shuffle_gen):
            job.train_step(batch)
        assert job.step == 4 and job.sums.total.is_meta and job.sums.count == 64


@pytest.mark.slow
def test_experiment_kd_tiny(tmp_path):
    """``mixkit experiment kd`` end to end on digits (two worker processes)."""
    out = tmp_path / "exp"
    bench = tmp_path / "BENCH.md"
    stale = "# b\n\n## 4. Knowledge distillation: T. stddev audit\n\nstale table\n\n## 5. x\n"
    bench.write_text(stale)
    argv = ["experiment", "kd", "--dataset", "digits", "--teacher-epochs", "2", "--seeds", "0,1"]
    argv += ["--da", "identity,cutmix,cutmix_pick_t", "--student-epochs", "1", "--jobs", "2"]
    argv += ["--audit-epochs", "1", "--train-subset", "256", "--out", str(out), "--write-docs"]
    argv += ["--docs-dir", str(tmp_path / "docs"), "--benchmarks", str(bench)]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert {r["scheme"] for r in res["rows"]} == {"identity", "cutmix", "cutmix_pick_t"}
    text = bench.read_text()
    assert "stale table" not in text and "Spearman" in text and text.rstrip().endswith("## 5. x")
    assert "kd-experiment:start" in (tmp_path / "docs" / "kd.md").read_text()
    assert (tmp_path / "docs" / "kd_tstddev_scatter.png").is_file()


def _official_rand_bbox_pasted(n: int, size: int, seed: int) -> np.ndarray:
    """Pasted fractions 1 - λ of the official ``rand_bbox`` (Good-DA-in-KD
    ``helper/loops.py``, from clovaai/CutMix-PyTorch ``train.py``), re-derived in numpy:
    lam ~ Beta(1, 1), cut = int(side * sqrt(1 - lam)), c ~ randint(side),
    box = clip(c - cut // 2, c + cut // 2)."""
    rng = np.random.default_rng(seed)
    lam = rng.beta(1.0, 1.0, n)
    cut = (size * np.sqrt(1.0 - lam)).astype(np.int64)
    cx, cy = rng.integers(size, size=n), rng.integers(size, size=n)
    w = np.clip(cx + cut // 2, 0, size) - np.clip(cx - cut // 2, 0, size)
    h = np.clip(cy + cut // 2, 0, size) - np.clip(cy - cut // 2, 0, size)
    return w * h / size**2


class TestCutMixBoxLaw:
    """The KD cutmix scheme (per batch as officially, or per sample) draws the official box
    law; mixkit's CutMix (rounded, odd sides kept) pastes more and is told apart."""

    N, SIZE = 40_000, 32

    def _pasted(self, mixer) -> np.ndarray:
        params = mixer.draw((self.N, 3, self.SIZE, self.SIZE), torch.Generator().manual_seed(0))
        return (1 - params.lam.double()).numpy()

    def test_official_law_matches_a_rederivation(self):
        from scipy.stats import ks_2samp

        from mixkit.methods.kd.schemes import CutMixScheme, OfficialBoxCutMix

        assert CutMixScheme(1.0, per_batch=True)._mix.mode == "batch"
        ours = self._pasted(OfficialBoxCutMix(1.0))
        official = _official_rand_bbox_pasted(self.N, self.SIZE, seed=1)
        assert abs(ours.mean() - official.mean()) < 0.006  # 3.3 standard errors
        assert abs(official.mean() - 0.299) < 0.006  # the simulated official mean
        assert ks_2samp(ours, official).pvalue > 1e-3
        rounded = self._pasted(augment.CutMix(1.0))  # the law the scheme used before
        assert rounded.mean() - official.mean() > 0.012
        assert ks_2samp(rounded, official).pvalue < 1e-6


def _rows(stddevs, losses, stds):
    return [
        {"scheme": s, "t_stddev": t, "test_loss_mean": m, "test_loss_std": d}
        for s, t, m, d in zip(
            ("identity", "cutmix", "cutmix_pick_t"), stddevs, losses, stds, strict=True
        )
    ]


@pytest.mark.parametrize(
    ("stddevs", "losses", "stds", "rho", "want"),
    [
        ((3.0, 2.0, 1.0), (0.9, 0.8, 0.7), (0.01, 0.01, 0.01), 1.0, "**holds**"),
        ((3.0, 1.0, 2.0), (0.9, 0.8, 0.7), (0.01, 0.01, 0.01), 0.5, "**does NOT hold**"),
        ((3.0, 2.0, 1.0), (0.9, 0.8, 0.7), (0.5, 0.5, 0.5), 1.0,
         "**holds (not resolved at this budget)**"),
    ],
)  # fmt: skip
def test_kd_report_states_the_preregistered_decision(stddevs, losses, stds, rho, want):
    from mixkit.experiments.kd_report import claim_checks

    lines = claim_checks(_rows(stddevs, losses, stds), {"spearman": {"r": rho}})
    spread = f"spread of the mean student test loss 0.2000 vs mean seed std {stds[0]:.4f}"
    assert any(spread in line for line in lines)
    assert lines[-1].endswith(f"lowest): {want}.")
