"""Tests of ``mixkit.models`` (shapes, features/head split) and ``mixkit.losses``
(hand-computed values)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mixkit import losses, models

pytestmark = pytest.mark.usefixtures("one_thread")

# ============================================================== models


# The first-release models, on 1- and 3-channel inputs; the whole zoo is in test_models_zoo.py.
LEGACY = ["preact_resnet18", "resnet20", "resnet8", "smallcnn", "tinycnn"]


@pytest.mark.parametrize("name", LEGACY)
class TestModels:
    @pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)], ids=["28x28x1", "32x32x3"])
    def test_logits_shape_and_feature_split(self, name, channels, size):
        torch.manual_seed(0)
        m = models.build_model(name, num_classes=7, in_channels=channels).eval()
        b = 1 if name == "preact_resnet18" else 3  # the big one is slow on a loaded 2-core CPU
        x = torch.randn(b, channels, size, size)
        with torch.no_grad():
            logits = m(x)
            f = m.features(x)
            again = m.head(f)
        assert logits.shape == (b, 7) and torch.isfinite(logits).all()
        assert f.ndim == 4 and f.shape[0] == b and f.shape[1] == m.feature_dim
        assert torch.equal(logits, again)


class TestTrainStep:
    @pytest.mark.parametrize("name", ["smallcnn", "resnet8"])
    def test_odd_batch_trains_one_step(self, name):
        torch.manual_seed(0)
        m = models.build_model(name, num_classes=3, in_channels=1)
        x, y = torch.randn(3, 1, 28, 28), torch.tensor([0, 1, 2])
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        grads = [p.grad for p in m.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(float(g.abs().sum()) > 0 for g in grads)


def test_build_model_errors():
    with pytest.raises(ValueError, match="model must be one of"):
        models.build_model("vgg99", 10)
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        models.build_model("smallcnn", 0)
    with pytest.raises(ValueError, match="depth must be 6n\\+2"):
        models.ResNet20(depth=21)
    assert set(LEGACY) <= set(models.MODELS)


def test_resnet20_depth_and_sizes():
    m = models.build_model("resnet20", 10, 3)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert sum(c.kernel_size == (3, 3) for c in convs) == 19  # 1 stem + 18 in 9 blocks (+fc)
    n_params = sum(p.numel() for p in m.parameters())
    assert 0.26e6 < n_params < 0.28e6  # He et al. 2016: ResNet-20 has 0.27M parameters
    p18 = sum(p.numel() for p in models.build_model("preact_resnet18", 10, 3).parameters())
    assert 11.0e6 < p18 < 11.3e6  # PreAct ResNet-18 for CIFAR: ~11.17M


# ============================================================== losses


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-6)


class TestSoftTargetCrossEntropy:
    def test_equals_cross_entropy_for_one_hot(self):
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(7, 5, generator=g)
        y = torch.randint(0, 5, (7,), generator=g)
        onehot = F.one_hot(y, 5).float()
        for red in ("mean", "sum", "none"):
            assert _close(
                losses.soft_target_cross_entropy(logits, onehot, red),
                F.cross_entropy(logits, y, reduction=red),
            )
        assert _close(losses.soft_target_cross_entropy(logits, y), F.cross_entropy(logits, y))

    def test_hand_computed(self):
        logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [1/4, 3/4]
        target = torch.tensor([[0.5, 0.5]])
        expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
        got = losses.soft_target_cross_entropy(logits, target)
        assert float(got) == pytest.approx(expected, rel=1e-6)
        assert float(losses.SoftTargetCrossEntropy()(logits, target)) == pytest.approx(expected)

    def test_errors(self):
        with pytest.raises(ValueError, match=r"logits must be \(B, K\)"):
            losses.soft_target_cross_entropy(torch.zeros(3), torch.zeros(3))
        with pytest.raises(ValueError, match="target must match logits shape"):
            losses.soft_target_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4))
        with pytest.raises(ValueError, match="reduction must be"):
            losses.soft_target_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 3), "avg")


class TestBinaryCrossEntropySoft:
    def test_hand_computed_soft_targets(self):
        logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
        target = torch.tensor([[0.3, 1.0], [0.0, 0.6]])

        def bce(z, t):
            s = 1 / (1 + math.exp(-z))
            return -(t * math.log(s) + (1 - t) * math.log(1 - s))

        rows = [
            sum(bce(z, t) for z, t in zip(lz, lt, strict=True))
            for lz, lt in zip(logits.tolist(), target.tolist(), strict=True)
        ]
        got = losses.binary_cross_entropy_soft(logits, target, "none")
        assert got.tolist() == pytest.approx(rows, rel=1e-5)
        assert float(losses.BinaryCrossEntropySoft()(logits, target)) == pytest.approx(
            sum(rows) / 2, rel=1e-5
        )

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match="target must match logits shape"):
            losses.binary_cross_entropy_soft(torch.zeros(2, 3), torch.zeros(2))


class TestKLWithTemperature:
    def test_hand_computed(self):
        s = torch.tensor([[0.0, 0.0]])
        t = torch.tensor([[0.0, 4.0 * math.log(3.0)]])  # softmax(t/4) = [1/4, 3/4]
        p = [0.25, 0.75]
        expected = 16 * sum(pi * math.log(pi / 0.5) for pi in p)  # T^2 KL(p || uniform)
        got = losses.kl_div_with_temperature(s, t, temperature=4.0)
        assert float(got) == pytest.approx(expected, rel=1e-5)
        ref = F.kl_div(
            F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1), reduction="batchmean", log_target=True
        )
        assert float(got) == pytest.approx(16 * float(ref), rel=1e-5)

    def test_zero_for_equal_logits_and_positive_otherwise(self):
        z = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
        assert float(losses.kl_div_with_temperature(z, z.clone(), 2.0)) == pytest.approx(
            0, abs=1e-6
        )
        assert float(losses.kl_div_with_temperature(z, z.flip(0), 2.0)) > 0.01

    def test_errors(self):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            losses.kl_div_with_temperature(torch.zeros(1, 2), torch.zeros(1, 2), 0.0)
        with pytest.raises(ValueError, match="teacher_logits must match"):
            losses.kl_div_with_temperature(torch.zeros(1, 2), torch.zeros(1, 3))
