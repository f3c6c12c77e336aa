"""mnistm5k (MNIST-M on MNIST-5k) and the photo-texture backgrounds of mixkit.derived."""

from __future__ import annotations

import hashlib

import pytest
import torch

from mixkit import data, loaders
from mixkit.derived import (
    PHOTO_NAMES,
    PHOTOS,
    TEST_FRAC,
    blend_mnistm,
    build_mnistm,
    compose_mnistm,
    digit_canvas,
    photo,
    photo_crops,
    save_grid,
    stratified_split,
    textured_backgrounds,
)


@pytest.fixture(scope="module")
def parts():
    return compose_mnistm(seed=0)


def _sha(*ts: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in ts:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def test_shapes_and_dtypes(parts):
    xa, ya, xb, yb = build_mnistm(seed=0)
    assert xa.shape == (4000, 3, 32, 32) and xb.shape == (1000, 3, 32, 32)
    assert xa.dtype == xb.dtype == torch.uint8
    assert ya.dtype == yb.dtype == torch.int64
    assert ya.shape == (4000,) and yb.shape == (1000,)
    assert set(ya.tolist()) == set(yb.tolist()) == set(range(10))
    assert parts.photo_train.shape == (4000,) and parts.corner_test.shape == (1000, 2)


def test_same_seed_same_bytes_other_seed_differs(parts):
    again = compose_mnistm(seed=0)
    other = compose_mnistm(seed=1)
    fields = ("x_train", "y_train", "x_test", "y_test")
    a = _sha(*(getattr(parts, f) for f in fields))
    assert a == _sha(*(getattr(again, f) for f in fields))
    assert a != _sha(*(getattr(other, f) for f in fields))


def test_train_and_test_crops_come_from_disjoint_photos(parts):
    tr, te = set(parts.photo_train.tolist()), set(parts.photo_test.tolist())
    assert tr.isdisjoint(te)
    assert {PHOTO_NAMES[i] for i in tr} <= set(PHOTOS["train"])
    assert {PHOTO_NAMES[i] for i in te} <= set(PHOTOS["test"])
    assert len(tr) == len(PHOTOS["train"]) and len(te) == len(PHOTOS["test"])  # all used


def test_source_digits_split_stratified_and_disjoint(parts):
    assert set(parts.digit_train.tolist()).isdisjoint(parts.digit_test.tolist())
    y_all = torch.cat([parts.y_train, parts.y_test])
    n_total = torch.bincount(y_all, minlength=10).double()
    expected = n_total * TEST_FRAC
    counts = torch.bincount(parts.y_test, minlength=10).double()
    assert ((counts - expected).abs() <= 1).all()
    assert ((torch.bincount(parts.y_train, minlength=10) - (n_total - expected)).abs() <= 1).all()
    x5k, y5k = data._mnist5k_arrays()
    assert torch.equal(parts.y_train, torch.from_numpy(y5k)[parts.digit_train])


def test_blend_rule_on_one_sample(parts):
    x5k, _ = data._mnist5k_arrays()
    i = 123
    digit = torch.from_numpy(x5k[int(parts.digit_train[i])]).long()  # (1, 28, 28)
    x0, y0 = parts.corner_train[i].tolist()
    patch = photo(PHOTO_NAMES[int(parts.photo_train[i])])[:, y0 : y0 + 32, x0 : x0 + 32].long()
    canvas = torch.zeros(1, 32, 32, dtype=torch.long)
    canvas[:, 2:30, 2:30] = digit  # 28 px digit centred on the 32 px canvas
    expected = (patch - canvas).abs()
    assert torch.equal(parts.x_train[i].long(), expected)
    out = parts.x_train[i].long()
    blank, ink = canvas[0] == 0, canvas[0] >= 250  # MNIST ink peaks just under 255
    assert torch.equal(out[:, blank], patch[:, blank])  # no ink: the photo as it is
    assert ink.any() and ((out[:, ink] - (255 - patch[:, ink])).abs() <= 5).all()  # inverted


def test_blend_and_canvas_helpers():
    d = torch.tensor([[[[0, 255], [100, 7]]]], dtype=torch.uint8)
    p = torch.tensor([[[[10, 10], [250, 3]]]] * 3, dtype=torch.uint8).view(1, 3, 2, 2)
    out = blend_mnistm(d, p)
    assert out.dtype == torch.uint8 and out[0, 0].tolist() == [[10, 245], [150, 4]]
    assert digit_canvas(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), 32).shape == (2, 1, 32, 32)
    assert digit_canvas(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), 16).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="uint8"):
        blend_mnistm(d.float(), p)
    with pytest.raises(ValueError, match="patches"):
        blend_mnistm(d, p[:, :1])


def test_photo_crops_are_exact_photo_pixels():
    g = torch.Generator().manual_seed(3)
    crops, ids, xy = photo_crops(20, 24, g, "test")
    assert crops.shape == (20, 3, 24, 24) and crops.dtype == torch.uint8
    for i in (0, 7, 19):
        img = photo(PHOTO_NAMES[int(ids[i])])
        x0, y0 = xy[i].tolist()
        assert torch.equal(crops[i], img[:, y0 : y0 + 24, x0 : x0 + 24])


def test_textured_backgrounds_photo_everywhere_and_disjoint():
    g = torch.Generator().manual_seed(0)
    bg, ids = textured_backgrounds(64, 48, g, "train", return_ids=True)
    assert bg.shape == (64, 3, 48, 48) and bg.dtype == torch.float32
    assert {PHOTO_NAMES[i] for i in ids.tolist()} <= set(PHOTOS["train"])
    g = torch.Generator().manual_seed(0)
    crops, _, _ = photo_crops(64, 48, g, "train")  # zoom 1: the same draws, exact pixels
    assert torch.equal(bg, crops.float() / 255)
    zbg, zids = textured_backgrounds(
        64, 48, torch.Generator().manual_seed(1), "val", zoom=(2.0, 6.0), return_ids=True
    )
    assert {PHOTO_NAMES[i] for i in zids.tolist()} <= set(PHOTOS["test"])
    assert 0.0 <= float(zbg.min()) and float(zbg.max()) <= 1.0
    # textured everywhere: no flat canvas (every background varies across its pixels)
    assert (zbg.flatten(1).std(1) > 0.005).all()
    again = textured_backgrounds(64, 48, torch.Generator().manual_seed(1), "val", zoom=(2, 6))
    assert torch.equal(zbg, again)


def test_stratified_split_counts():
    y = torch.arange(3).repeat_interleave(torch.tensor([10, 7, 13]))
    tr, te = stratified_split(y, 0.2, torch.Generator().manual_seed(0))
    assert sorted(torch.cat([tr, te]).tolist()) == list(range(30))
    assert torch.bincount(y[te]).tolist() == [round(10 * 0.2), round(7 * 0.2), round(13 * 0.2)]


def test_registered_dataset_and_open_splits():
    assert "mnistm5k" in data.DATASETS
    ds = data.load_dataset("mnistm5k", seed=0)
    assert ds.name == "mnistm5k" and ds.num_classes == 10 and ds.in_channels == 3
    assert ds.image_size == (32, 32)
    xf = ds.train.x.float() / 255
    assert torch.allclose(torch.tensor(ds.mean), xf.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(torch.tensor(ds.std), xf.std((0, 2, 3)), atol=1e-5)
    disk = loaders.open_splits("mnistm5k", seed=0)
    assert len(disk.train) == 4000 and len(disk.test) == 1000 and disk.in_channels == 3


def test_bad_input():
    g = torch.Generator()
    with pytest.raises(ValueError, match="split must be"):
        photo_crops(2, 32, g, "holdout")
    with pytest.raises(ValueError, match="size must be"):
        photo_crops(2, 4, g)
    with pytest.raises(ValueError, match="n must be"):
        textured_backgrounds(-1, 32, g)
    with pytest.raises(TypeError, match="generator must be"):
        textured_backgrounds(2, 32, 0)
    with pytest.raises(ValueError, match="zoom must"):
        textured_backgrounds(2, 32, g, zoom=(0.5, 2.0))
    with pytest.raises(ValueError, match="seed must be"):
        compose_mnistm(seed=-1)
    with pytest.raises(ValueError, match="photo name"):
        photo("cat")


def test_save_grid(tmp_path, parts):
    path = tmp_path / "grid.png"
    save_grid(parts.x_test[:16], parts.y_test[:16], path, cols=4)
    assert path.stat().st_size > 1000
