"""Tests of the ``mixkit.models`` zoo: names, published parameter counts, the
features/head/feature_dim contract, torchvision-key ResNets and ``load_weights``, plug-in
models, ``as_feature_model``, RecursiveMix's feature-width inference and DeepLabv3+."""

from __future__ import annotations

import math
import pickle
import sys
import types

import pytest
import torch
from torch import nn

from mixkit import models
from mixkit.methods.recursivemix import RecursiveMix, RecursiveMixStep
from mixkit.models.vgg import VGG_CFGS

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGENET = {"resnet18", "resnet50", "resnet101"}
CIFAR_KD = [
    *[f"resnet{d}" for d in (8, 14, 20, 32, 44, 56, 110)],
    "resnet8x4",
    "resnet32x4",
    *["wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2"],
    *["vgg8", "vgg11", "vgg13", "vgg16", "vgg19"],
    *["mobilenetv2", "shufflenetv1", "shufflenetv2"],
]
SMALL_PYRAMID = {"depth": 11, "alpha": 24}  # one bottleneck block per stage


def _n_params(name: str, num_classes: int, **kw) -> int:
    with torch.device("meta"):  # no memory, no init cost
        m = models.build_model(name, num_classes, 3, **kw)
    return sum(p.numel() for p in m.parameters())


# ============================================================== names and sizes


def test_names_sorted_and_complete():
    got = models.names()
    assert got == sorted(got) == sorted(models.MODELS)
    required = {*CIFAR_KD, *IMAGENET, "pyramidnet", "smallcnn", "tinycnn", "preact_resnet18"}
    assert required <= set(got)
    assert models.seg_names() == sorted(
        ["deeplabv3plus_resnet50", "deeplabv3plus_resnet101", "segnet"]
    )


# Published CIFAR-100 sizes (RepDistiller / CRD-family KD papers), in millions.
PUBLISHED_CIFAR100 = {
    "resnet56": 0.86,
    "resnet20": 0.28,
    "resnet110": 1.74,
    "resnet32x4": 7.43,
    "resnet8x4": 1.23,
    "wrn_40_2": 2.26,
    "wrn_16_2": 0.70,
    "wrn_40_1": 0.57,
    "vgg13": 9.46,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_CIFAR100))
def test_published_cifar100_parameter_counts(name):
    assert round(_n_params(name, 100) / 1e6, 2) == PUBLISHED_CIFAR100[name]


def test_vgg8_parameter_count():
    # Hand count of RepDistiller's vgg8_bn (config S): 3x3 convs with bias + BN (2 per
    # channel) + Linear(512, 100). The papers quote 3.96M: 3.965M truncated, not rounded.
    expected, cin = 0, 3
    for block in VGG_CFGS["vgg8"]:
        for c in block:
            expected += cin * c * 9 + c + 2 * c
            cin = c
    expected += 512 * 100 + 100
    assert _n_params("vgg8", 100) == expected
    assert math.floor(expected / 1e4) / 100 == 3.96


def test_torchvision_resnet_sizes_and_keys():
    assert _n_params("resnet18", 1000) == 11_689_512
    assert _n_params("resnet50", 1000) == 25_557_032
    with torch.device("meta"):
        r18, r50 = models.build_model("resnet18", 1000), models.build_model("resnet50", 1000)
    # torchvision: resnet18 has 20 convs + 20 BNs (5 entries each) + fc (2) = 122 entries;
    # resnet50 has 53 convs + 53 BNs + fc = 320.
    assert len(r18.state_dict()) == 122 and len(r50.state_dict()) == 320
    sd = r50.state_dict()
    assert sd["conv1.weight"].shape == (64, 3, 7, 7) and sd["fc.weight"].shape == (1000, 2048)
    assert sd["layer2.0.downsample.0.weight"].shape == (512, 256, 1, 1)
    assert "layer4.2.bn3.num_batches_tracked" in sd
    # v1.5: the stride of a down-sampling bottleneck sits on its 3x3 conv
    assert r50.layer2[0].conv2.stride == (2, 2) and r50.layer2[0].conv1.stride == (1, 1)


def test_pyramidnet_200_size_and_depth_checks():
    # CutMix / RecursiveMix: PyramidNet-200 (alpha 240) has 26.8M parameters (CIFAR-100)
    assert round(_n_params("pyramidnet", 100) / 1e6, 1) == 26.8
    assert _n_params("pyramidnet", 10, depth=110, alpha=48, bottleneck=False) < 2e6
    with pytest.raises(ValueError, match="depth must be 9n\\+2"):
        models.build_model("pyramidnet", 10, depth=12)
    with pytest.raises(ValueError, match="depth must be 6n\\+2"):
        models.CifarResNet(depth=21)
    with pytest.raises(ValueError, match="depth must be 6n\\+4"):
        models.WideResNet(depth=15)


# ============================================================== contract


@pytest.mark.parametrize("name", models.names())
def test_every_model_forward_and_feature_contract(name):
    torch.manual_seed(0)
    kw = SMALL_PYRAMID if name == "pyramidnet" else {}
    m = models.build_model(name, num_classes=5, in_channels=3, **kw).eval()
    size = 64 if name in IMAGENET else 32
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        logits, f = m(x), m.features(x)
        again = m.head(f)
    assert isinstance(m.feature_dim, int)
    assert f.ndim == 4 and f.shape[:2] == (2, m.feature_dim)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    assert torch.equal(logits, again)


def test_in_channels_and_bad_arguments():
    m = models.build_model("wrn_16_1", 3, in_channels=1)
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="in_channels must be >= 1"):
        models.build_model("vgg8", 10, in_channels=0)
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        models.build_model("vgg8", 0)
    with pytest.raises(ValueError, match=r"model must be one of \[.*'wrn_40_2'.*timm:NAME"):
        models.build_model("wrn_99", 10)


# ============================================================== load_weights


def test_load_weights_wrappers_prefixes_and_errors(tmp_path):
    torch.manual_seed(0)
    src = models.build_model("resnet8", 10)
    wrapped = {"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}
    torch.save(wrapped, tmp_path / "w.pt")
    dst = models.build_model("resnet8", 10)
    res = models.load_weights(dst, tmp_path / "w.pt")
    assert res == ([], [], [], [])
    want, got = src.state_dict(), dst.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)

    # a new head: strict fails naming the mismatched keys, skip=("fc.",) loads the body
    torch.save({"model": src.state_dict()}, tmp_path / "m.pt")
    other = models.build_model("resnet8", 100)
    with pytest.raises(ValueError, match=r"m\.pt.*2 shape-mismatched keys.*fc\.weight"):
        models.load_weights(other, tmp_path / "m.pt")
    fc_before = other.fc.weight.clone()
    res = models.load_weights(other, tmp_path / "m.pt", skip=("fc.",))
    assert res.skipped == ["fc.bias", "fc.weight"] and res.missing == []
    assert torch.equal(other.conv1.weight, src.conv1.weight)
    assert torch.equal(other.fc.weight, fc_before)
    res = models.load_weights(models.build_model("resnet8", 100), tmp_path / "m.pt", strict=False)
    assert res.mismatched == ["fc.bias", "fc.weight"]

    with pytest.raises(ValueError, match="missing keys.*unexpected keys"):
        models.load_weights(models.build_model("wrn_16_1", 10), tmp_path / "m.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        models.load_weights(dst, tmp_path / "nope.pt")
    torch.save({"a": types.SimpleNamespace(x=1)}, tmp_path / "obj.pt")
    with pytest.raises(pickle.UnpicklingError):  # weights_only=True refuses arbitrary objects
        models.load_weights(dst, tmp_path / "obj.pt")
    torch.save({"epoch": 3}, tmp_path / "notsd.pt")
    with pytest.raises(ValueError, match="must hold a state dict"):
        models.load_weights(dst, tmp_path / "notsd.pt")


# ============================================================== plug-ins


def test_plugin_callable_from_a_module(tmp_path, monkeypatch):
    (tmp_path / "zoo_plugin_mod.py").write_text(
        "import torch.nn as nn\n"
        "def make(num_classes, in_channels, width=4):\n"
        "    return nn.Sequential(nn.Conv2d(in_channels, width, 3), nn.AdaptiveAvgPool2d(1),\n"
        "                         nn.Flatten(), nn.Linear(width, num_classes))\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    m = models.build_model("zoo_plugin_mod:make", 7, 2, width=6)
    assert m[0].in_channels == 2 and m[0].out_channels == 6 and m[3].out_features == 7
    with pytest.raises(ValueError, match="cannot import module 'no_such_zoo_mod'"):
        models.build_model("no_such_zoo_mod:make", 7)
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        models.build_model("zoo_plugin_mod:missing", 7)
    with pytest.raises(TypeError, match="not callable"):
        models.build_model("zoo_plugin_mod:NOT_CALLABLE", 7)


def test_timm_and_torchvision_plugins(monkeypatch):
    for pkg in ("timm", "torchvision", "torchvision.models"):
        monkeypatch.setitem(sys.modules, pkg, None)  # as if not installed
    with pytest.raises(ImportError, match=r'needs timm: pip install "mixkit\[peers\]"'):
        models.build_model("timm:resnet18", 10)
    with pytest.raises(ImportError, match=r"needs torchvision.*mixkit\[peers\]"):
        models.build_model("torchvision:resnet18", 10)

    calls = []
    fake_timm = types.ModuleType("timm")
    fake_timm.create_model = lambda name, **kw: calls.append((name, kw)) or nn.Identity()
    fake_tv = types.ModuleType("torchvision.models")
    fake_tv.get_model = lambda name, **kw: calls.append((name, kw)) or nn.Identity()
    monkeypatch.setitem(sys.modules, "timm", fake_timm)
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.models", fake_tv)
    models.build_model("timm:resnet18", 10, 1, drop_rate=0.1)
    models.build_model("torchvision:resnet50", 10, 3, zero_init_residual=True)
    assert calls == [
        ("resnet18", {"pretrained": False, "num_classes": 10, "in_chans": 1, "drop_rate": 0.1}),
        ("resnet50", {"weights": None, "num_classes": 10, "zero_init_residual": True}),
    ]
    with pytest.raises(ValueError, match="3-channel images, got in_channels=1"):
        models.build_model("torchvision:resnet50", 10, 1)


class _TimmLike(nn.Module):
    """timm's layout: forward_features / forward_head / num_features."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.fc, self.num_features = nn.Conv2d(3, 6, 3, 2, 1), nn.Linear(6, 4), 6

    def forward_features(self, x):
        return self.body(x)

    def forward_head(self, f):
        return self.fc(f.mean((2, 3)))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


class _TorchvisionLike(nn.Module):
    """torchvision's ResNet layout (children conv1 ... fc), without features/head."""

    def __init__(self) -> None:
        super().__init__()
        for name, child in models.build_model("resnet18", 4).named_children():
            self.add_module(name, child)

    def forward(self, x):
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


@pytest.mark.parametrize("make", [_TimmLike, _TorchvisionLike], ids=["timm", "torchvision"])
def test_as_feature_model_adapts_and_trains_recursivemix(make):
    torch.manual_seed(0)
    raw = make().eval()
    m = models.as_feature_model(raw)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        f = m.features(x)
        assert torch.equal(m(x), raw(x)) and torch.equal(m.head(f), raw(x))
    assert f.shape[1] == m.feature_dim
    step = RecursiveMixStep(RecursiveMix(num_classes=4, generator=0), omega=0.5)
    for s in range(2):
        out = step(m.train(), torch.randn(2, 3, 32, 32), torch.tensor([0, s]))
    out.loss.backward()
    assert step.roi_head.fc.in_features == m.feature_dim
    assert step.roi_head.fc.weight.grad.abs().sum() > 0


def test_as_feature_model_passes_through_and_refuses():
    m = models.build_model("resnet8", 3)
    assert models.as_feature_model(m) is m
    with pytest.raises(TypeError, match="FeatureModel"):
        models.as_feature_model(nn.Linear(3, 3))


# ============================================================== RecursiveMix width


def test_recursivemix_width_inference_and_checks():
    torch.manual_seed(0)
    m = models.build_model("resnet8x4", 10)
    lazy = RecursiveMixStep(RecursiveMix(num_classes=10, generator=0), omega=0.5)
    eager = RecursiveMixStep.for_model(m, RecursiveMix(num_classes=10, generator=0), 0.5)
    assert isinstance(eager.roi_head.fc, nn.Linear) and eager.roi_head.fc.in_features == 256
    x, y = torch.randn(3, 3, 16, 16), torch.tensor([1, 2, 3])
    lazy(m, x, y)  # one call sizes the lazy head
    assert type(lazy.roi_head.fc) is nn.Linear and lazy.roi_head.fc.in_features == 256
    fresh = RecursiveMixStep(RecursiveMix(num_classes=10), omega=0.5)
    fresh.load_state_dict(lazy.state_dict())  # resume into a not-yet-sized step
    assert torch.equal(fresh.roi_head.fc.weight, lazy.roi_head.fc.weight)

    wrong = RecursiveMixStep(RecursiveMix(num_classes=10), 8, 0.5)
    with pytest.raises(ValueError, match="feature_dim=8 but model.features\\(x\\) has 256"):
        wrong(m, x, y)
    with pytest.raises(ValueError, match="feature_dim must be an int >= 1"):
        RecursiveMixStep(RecursiveMix(num_classes=10), 0)
    m.feature_dim = 12  # a model declaring the wrong width
    with pytest.raises(ValueError, match="feature_dim is 12 but its features"):
        lazy(m, x, y)
    with pytest.raises(ValueError, match="as_feature_model"):
        lazy(nn.Linear(3, 3), x, y)


# ============================================================== segmentation


@pytest.fixture(scope="module")
def deeplab50():
    torch.manual_seed(0)
    return models.build_seg_model("deeplabv3plus_resnet50", num_classes=4).eval()


def test_deeplab_forward_shapes_and_output_stride(deeplab50):
    net = deeplab50
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        out = net(x)
        f = net.encode(x)
        stages = net.backbone.stages(x)
    assert out.shape == (1, 4, 65, 65) and torch.isfinite(out).all()
    assert f.shape == (1, net.feature_dim, 17, 17) == (1, 304, 17, 17)
    assert [s.shape[-1] for s in stages] == [17, 9, 5, 5]  # strides 4, 8, 16, 16
    assert net.backbone.layer4[0].conv2.dilation == (1, 1)  # torchvision: previous dilation
    assert net.backbone.layer4[1].conv2.dilation == (2, 2)
    assert [c.dilation[0] for c in net.aspp.map_convs] == [1, 6, 12, 18]
    assert not hasattr(net.backbone, "fc")


def test_deeplab_loads_torchvision_style_backbone(tmp_path, deeplab50):
    torch.manual_seed(1)
    sd = models.build_model("resnet50", 1000).state_dict()
    torch.save(sd, tmp_path / "resnet50.pth")
    net = models.build_seg_model(
        "deeplabv3plus_resnet50", num_classes=4, backbone_weights=str(tmp_path / "resnet50.pth")
    )
    own = net.backbone.state_dict()
    assert set(own) == {k for k in sd if not k.startswith("fc.")}
    assert all(torch.equal(own[k], sd[k]) for k in own)
    torch.save(models.build_model("resnet18", 1000).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="r18.pth.*missing keys"):
        models.build_seg_model("deeplabv3plus_resnet50", 4, backbone_weights=tmp_path / "r18.pth")
    # resnet101's DeepLab differs from resnet50's only in the backbone's extra blocks
    with torch.device("meta"):
        n101 = sum(
            p.numel() for p in models.build_seg_model("deeplabv3plus_resnet101", 4).parameters()
        )
    n50 = sum(p.numel() for p in deeplab50.parameters())
    fc = 2048 * 1000 + 1000
    assert n101 - n50 == (_n_params("resnet101", 1000) - fc) - (_n_params("resnet50", 1000) - fc)


def test_seg_registry_segnet_plugins_and_errors(tmp_path, monkeypatch):
    net = models.build_seg_model("segnet", 3, in_channels=1, width=4)
    assert net(torch.randn(2, 1, 20, 20)).shape == (2, 3, 20, 20)
    (tmp_path / "zoo_seg_mod.py").write_text(
        "import torch.nn as nn\n"
        "def make(num_classes, in_channels):\n"
        "    return nn.Conv2d(in_channels, num_classes, 1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert models.build_seg_model("zoo_seg_mod:make", 5, 2).out_channels == 5
    with pytest.raises(ValueError, match="seg model must be one of .*deeplabv3plus_resnet50"):
        models.build_seg_model("deeplab", 3)
    with pytest.raises(ValueError, match="backbone_weights: segnet"):
        models.build_seg_model("segnet", 3, backbone_weights="x.pth")
    with pytest.raises(ValueError, match="output_stride must be 8 or 16"):
        models.build_seg_model("deeplabv3plus_resnet50", 3, output_stride=32)
