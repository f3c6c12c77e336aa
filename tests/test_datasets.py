"""Tests of ``mixkit.datasets`` and ``mixkit.loaders`` on tiny fixtures written in the real
on-disk formats (CIFAR python pickles, an ImageFolder tree of PNG and JPEG files)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from mixkit import data
from mixkit.datasets import CIFARDataset, ImageFolderDataset, TensorImageDataset, decode_image
from mixkit.loaders import (
    EpochSampler,
    LabeledSubset,
    build_loader,
    open_splits,
    set_loader_epoch,
    stratified_indices,
    train_subset,
)

# ============================================================== fixtures


def _batch(n: int, k: int, seed: int, key: bytes) -> dict:
    """One batch laid out as the official archives: bytes keys, (N, 3072) uint8 rows."""
    rng = np.random.default_rng(seed)
    d = {
        b"batch_label": b"fixture",
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        key: [int(v) for v in rng.integers(0, k, n)],
        b"filenames": [f"f{seed}_{i}.png".encode() for i in range(n)],
    }
    if key == b"fine_labels":
        d[b"coarse_labels"] = [v // 5 for v in d[key]]
    return d


def _dump(path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


@pytest.fixture
def cifar10(tmp_path):
    """tmp/cifar-10-batches-py/{data_batch_1..5 (4 each), test_batch (3)}."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {f"data_batch_{i}": _batch(4, 10, i, b"labels") for i in range(1, 6)}
    batches["test_batch"] = _batch(3, 10, 9, b"labels")
    for name, d in batches.items():
        _dump(folder / name, d)
    return tmp_path, batches


@pytest.fixture
def cifar100(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    batches = {
        "train": _batch(20, 100, 1, b"fine_labels"),
        "test": _batch(5, 100, 2, b"fine_labels"),
    }
    for name, d in batches.items():
        _dump(folder / name, d)
    return folder, batches


@pytest.fixture
def folder(tmp_path):
    """train/{ant,bee,cat} x 3 and val/{ant,bee,cat} x 2, PNG and JPEG, sizes vary."""
    rng = np.random.default_rng(0)
    pixels = {}
    for part, n in (("train", 3), ("val", 2)):
        for cls in ("cat", "ant", "bee"):  # sorted: ant=0, bee=1, cat=2
            d = tmp_path / part / cls
            d.mkdir(parents=True)
            for i in range(n):
                h, w = 10 + 3 * i, 14 + 5 * i
                # smooth ramps plus a little noise, so JPEG stays close to the pixels
                ramp = np.add.outer(np.arange(h) * 6, np.arange(w) * 4)[:, :, None]
                arr = ramp + np.array([0, 40, 80]) + rng.integers(0, 20, (h, w, 3))
                arr = arr.astype(np.uint8)
                ext = ".png" if i % 2 == 0 else ".JPG"
                Image.fromarray(arr).save(d / f"{i}{ext}", quality=95)
                pixels[(part, cls, i)] = arr
    (tmp_path / "train" / "ant" / "readme.txt").write_text("not an image")
    return tmp_path, pixels


# ============================================================== CIFAR


class TestCIFAR:
    def test_cifar10_parent_and_batches_folder(self, cifar10):
        root, batches = cifar10
        raw = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
        labels = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
        for r in (root, root / "cifar-10-batches-py"):
            ds = CIFARDataset(r, train=True)
            assert len(ds) == 20 and ds.num_classes == 10 and ds.targets == labels
            x, y = ds[13]
            assert x.dtype == torch.uint8 and x.shape == (3, 32, 32) and y == labels[13]
            # pixel (c, i, j) of image n is data[n, c*1024 + i*32 + j]
            assert int(x[1, 5, 7]) == int(raw[13, 1024 + 5 * 32 + 7])
            assert torch.equal(x, torch.from_numpy(raw[13]).view(3, 32, 32))
        test = CIFARDataset(root, train=False)
        assert len(test) == 3 and test.targets == batches["test_batch"][b"labels"]

    def test_cifar100_fine_labels_and_stats(self, cifar100):
        root, batches = cifar100
        ds = CIFARDataset(root, train=True, num_classes=100)
        assert len(ds) == 20 and ds.targets == batches["train"][b"fine_labels"]
        xf = torch.from_numpy(batches["train"][b"data"]).double().view(20, 3, 1024) / 255
        assert ds.mean == pytest.approx(xf.mean((0, 2)).tolist())
        assert ds.std == pytest.approx(xf.permute(1, 0, 2).reshape(3, -1).std(1).tolist())
        test = CIFARDataset(root.parent, train=False, num_classes=100)
        assert torch.equal(
            test[4][0], torch.from_numpy(batches["test"][b"data"][4]).view(3, 32, 32)
        )

    def test_errors_name_the_file(self, cifar10, tmp_path):
        root, _ = cifar10
        with pytest.raises(FileNotFoundError, match="does not exist"):
            CIFARDataset(tmp_path / "nope")
        with pytest.raises(
            FileNotFoundError, match=r"CIFAR-100 files missing: .*/test'\].*cifar-100-python/"
        ):
            CIFARDataset(root, train=False, num_classes=100)
        with pytest.raises(ValueError, match="num_classes must be 10 or 100"):
            CIFARDataset(root, num_classes=20)
        bad = root / "cifar-10-batches-py" / "data_batch_2"
        bad.write_bytes(b"\x80\x02}q\x00(X\x04\x00\x00\x00da")  # truncated pickle
        with pytest.raises(ValueError, match="data_batch_2 is corrupt or not a CIFAR pickle"):
            CIFARDataset(root)
        CIFARDataset(root, train=False)  # the test batch alone is still fine
        (root / "cifar-10-batches-py" / "data_batch_5").unlink()
        with pytest.raises(FileNotFoundError, match="data_batch_5"):
            CIFARDataset(root)
        _dump(
            root / "cifar-10-batches-py" / "test_batch",
            {b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]},
        )
        with pytest.raises(ValueError, match=r"test_batch: labels must lie in \[0, 10\)"):
            CIFARDataset(root, train=False)


# ============================================================== ImageFolder


class TestImageFolder:
    def test_classes_labels_and_png_exact(self, folder):
        root, pixels = folder
        ds = ImageFolderDataset(root, "train")
        assert ds.classes == ["ant", "bee", "cat"] and ds.num_classes == 3 and len(ds) == 9
        assert ds.targets == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        assert ds.samples[4] == (root / "train" / "bee" / "1.JPG", 1)
        x, y = ds[3]  # bee/0.png (sorted: 0.png, 1.JPG, 2.png)
        assert y == 1 and x.dtype == torch.uint8 and x.shape == (3, 10, 14)
        assert np.array_equal(x.permute(1, 2, 0).numpy(), pixels[("train", "bee", 0)])
        jpg, _ = ds[1]  # lossy: close to the written pixels, not equal
        err = (jpg.permute(1, 2, 0).double() - torch.from_numpy(pixels[("train", "ant", 1)])).abs()
        assert jpg.shape == (3, 13, 19) and 0 < float(err.mean()) < 10
        assert ImageFolderDataset(root, "eval").split_dir.name == "val"

    def test_load_size_fixes_the_shape(self, folder):
        root, _ = folder
        for fit in ("crop", "squash"):
            ds = ImageFolderDataset(root, "val", load_size=8, fit=fit)
            shapes = {tuple(ds[i][0].shape) for i in range(len(ds))}
            assert shapes == {(3, 8, 8)}

    def test_crop_fit_is_the_centre(self, tmp_path):
        """A 16x8 (WxH) image whose outer quarters are red/blue: the centre 8x8 is green."""
        arr = np.zeros((8, 16, 3), np.uint8)
        arr[:, :4, 0], arr[:, 4:12, 1], arr[:, 12:, 2] = 255, 255, 255
        Image.fromarray(arr).save(tmp_path / "a.png")
        out = decode_image(tmp_path / "a.png", 8, "crop")
        assert torch.equal(out, torch.from_numpy(arr[:, 4:12]).permute(2, 0, 1))
        # twice the size: shorter side 16 -> 8, longer 32 -> 16, then the same centre crop
        Image.fromarray(arr.repeat(2, 0).repeat(2, 1)).save(tmp_path / "b.png")
        big = decode_image(tmp_path / "b.png", 8, "crop")
        assert int(big[1, :, 1:-1].min()) == 255 and int(big[0, :, 1:-1].max()) == 0
        squash = decode_image(tmp_path / "a.png", 8, "squash")
        assert int(squash[0, :, 0].min()) > 200 and int(squash[2, :, -1].min()) > 200

    def test_grey_becomes_rgb_and_draft(self, tmp_path):
        Image.fromarray(np.full((9, 7), 77, np.uint8)).save(tmp_path / "g.png")
        out = decode_image(tmp_path / "g.png")
        assert out.shape == (3, 9, 7) and bool((out == 77).all())
        Image.fromarray(np.full((64, 48, 3), 9, np.uint8)).save(tmp_path / "j.jpg")
        assert decode_image(tmp_path / "j.jpg", 12, draft=True).shape == (3, 12, 12)

    def test_bad_inputs(self, folder, tmp_path):
        root, _ = folder
        with pytest.raises(FileNotFoundError, match="does not exist"):
            ImageFolderDataset(tmp_path / "nope")
        with pytest.raises(FileNotFoundError, match="lacks the test/ folder"):
            ImageFolderDataset(root, "test")
        with pytest.raises(ValueError, match="split must be"):
            ImageFolderDataset(root, "valid")
        with pytest.raises(ValueError, match="load_size must be an int >= 1"):
            ImageFolderDataset(root, load_size=0)
        (root / "val" / "dog").mkdir()
        with pytest.raises(ValueError, match=r"absent from train/: \['dog'\]"):
            ImageFolderDataset(root, "val")
        (root / "train" / "dog").mkdir()
        with pytest.raises(ValueError, match=r"class folder .*train/dog holds no image"):
            ImageFolderDataset(root, "train")
        bad = root / "train" / "dog" / "0.png"
        bad.write_bytes(b"\x89PNG not really")
        ds = ImageFolderDataset(root, "train")
        with pytest.raises(ValueError, match=r"cannot read image .*dog/0\.png"):
            ds[len(ds) - 1]
        with pytest.raises(FileNotFoundError, match="lacks the train/ folder"):
            ImageFolderDataset(root / "val")


def test_in_memory_imagefolder_reads_val(folder):
    root, _ = folder
    d = data.load_imagefolder(root)
    assert len(d.train) == 9 and len(d.test) == 6 and d.train.x.shape[1:] == (3, 10, 14)


# ============================================================== loaders


def _epochs(ds, seed, epochs=2, **kw):
    loader = build_loader(ds, 4, shuffle=True, seed=seed, **kw)
    out = []
    for _ in range(epochs):
        out.append([(x.clone(), y.clone()) for x, y in loader])
    return out


class TestLoader:
    def test_workers_persistent_two_epochs_deterministic(self, folder):
        root, _ = folder
        ds = ImageFolderDataset(root, "train", load_size=8)
        a = _epochs(ds, 3, num_workers=2, persistent_workers=True)
        b = _epochs(ds, 3, num_workers=2, persistent_workers=True)
        single = _epochs(ds, 3)  # the main process gives the same batches
        for ea, eb, es in zip(a, b, single, strict=True):
            assert [len(y) for _, y in ea] == [4, 4, 1]
            for (xa, ya), (xb, yb), (xs, ys) in zip(ea, eb, es, strict=True):
                assert (
                    xa.dtype == torch.uint8
                    and xa.shape[1:] == (3, 8, 8)
                    and ya.dtype == torch.int64
                )
                assert (
                    torch.equal(xa, xb)
                    and torch.equal(ya, yb)
                    and torch.equal(xa, xs)
                    and torch.equal(ya, ys)
                )
        orders = [torch.cat([y for _, y in e]) for e in a]
        assert sorted(orders[0].tolist()) == ds.targets  # a permutation of the labels
        idx = [[int(v) for v in EpochSampler(9, 3).indices(e)] for e in (0, 1)]
        assert idx[0] != idx[1] and sorted(idx[0]) == list(range(9))
        assert orders[1].tolist() == [ds.targets[i] for i in idx[1]]

    def test_seed_changes_order_and_epoch_resumes(self):
        ds = TensorImageDataset(
            torch.arange(30, dtype=torch.uint8).view(30, 1, 1, 1), torch.arange(30) % 3
        )
        first = torch.cat([x.flatten() for x, _ in build_loader(ds, 7, shuffle=True, seed=0)])
        other = torch.cat([x.flatten() for x, _ in build_loader(ds, 7, shuffle=True, seed=1)])
        assert sorted(first.tolist()) == list(range(30)) and not torch.equal(first, other)
        loader = build_loader(ds, 7, shuffle=True, seed=0)
        epochs = [torch.cat([x.flatten() for x, _ in loader]) for _ in range(3)]
        resumed = build_loader(ds, 7, shuffle=True, seed=0)
        set_loader_epoch(resumed, 2)
        assert torch.equal(torch.cat([x.flatten() for x, _ in resumed]), epochs[2])
        assert torch.equal(epochs[0], first)
        seq = torch.cat([x.flatten() for x, _ in build_loader(ds, 7)])
        assert seq.tolist() == list(range(30))

    def test_generator_path_and_shards(self):
        ds = TensorImageDataset(
            torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10)
        )

        def run(seed):
            loader = build_loader(
                ds, 3, shuffle=True, generator=torch.Generator().manual_seed(seed)
            )
            return torch.cat([y for _, y in loader]).tolist()

        assert run(5) == run(5) and sorted(run(5)) == list(range(10))
        shards = [EpochSampler(10, 0, num_replicas=3, rank=r).indices(0) for r in range(3)]
        assert [len(s) for s in shards] == [4, 4, 4]
        full = EpochSampler(10, 0).indices(0)
        padded = full + full[:2]  # wrapped to 12, a multiple of 3; rank r takes every 3rd from r
        assert shards == [padded[r::3] for r in range(3)] and sorted(full) == list(range(10))

    def test_collate_and_epoch_reach_mix_collate(self, folder):
        from mixkit.collate import MixCollate

        root, _ = folder
        mixed = ImageFolderDataset(root, "train")  # no load_size: the sizes differ
        with pytest.raises(ValueError, match=r"sample 1: .* one shape.*load_size="):
            next(iter(build_loader(mixed, 4)))
        ds = TensorImageDataset(torch.zeros(6, 3, 8, 8, dtype=torch.uint8), torch.arange(6) % 2)
        collate = MixCollate(lambda x, y, generator=None: (x, y), seed=0)
        loader = build_loader(ds, 3, shuffle=True, seed=0, collate_fn=collate)
        set_loader_epoch(loader, 2)
        assert collate.epoch == 2 and loader.sampler.epoch == 2

    def test_bad_arguments(self):
        ds = TensorImageDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4))
        with pytest.raises(ValueError, match="shuffle=True needs seed"):
            build_loader(ds, 2, shuffle=True)
        with pytest.raises(ValueError, match="not both"):
            build_loader(ds, 2, seed=0, generator=torch.Generator())
        with pytest.raises(ValueError, match="persistent_workers=True needs num_workers > 0"):
            build_loader(ds, 2, persistent_workers=True)
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            build_loader(ds, 0)
        with pytest.raises(TypeError, match="map-style Dataset"):
            build_loader(iter([1, 2]), 2)
        with pytest.raises(ValueError, match="rank must be < num_replicas"):
            EpochSampler(4, 0, num_replicas=2, rank=2)


# ============================================================== subsets


class TestSubset:
    def test_proportional_counts_by_hand(self):
        labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
        assert torch.bincount(labels[stratified_indices(labels, 10, 0)]).tolist() == [5, 3, 2]
        # exact shares 3.5, 2.1, 1.4 -> floors 3, 2, 1 and the one left goes to class 0 (.5)
        assert torch.bincount(labels[stratified_indices(labels, 7, 0)]).tolist() == [4, 2, 1]
        # shares 0.5, 0.3, 0.2 -> floors 0; the one left goes to the largest remainder
        assert torch.bincount(labels[stratified_indices(labels, 1, 0)], minlength=3).tolist() == [
            1,
            0,
            0,
        ]

    def test_deterministic_sorted_and_seeded(self):
        labels = torch.arange(200) % 7
        a, b = stratified_indices(labels, 40, 3), stratified_indices(labels.tolist(), 40, 3)
        assert torch.equal(a, b) and torch.equal(a, a.sort().values) and len(set(a.tolist())) == 40
        assert not torch.equal(a, stratified_indices(labels, 40, 4))
        assert torch.equal(stratified_indices(labels, 200, 0), torch.arange(200))

    def test_split_dataset_and_labels(self, cifar10):
        split = data.Split(
            torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1), torch.arange(12) % 3
        )
        sub = train_subset(split, 6, seed=1)
        assert isinstance(sub, data.Split) and torch.bincount(sub.y).tolist() == [2, 2, 2]
        assert torch.equal(sub.y, sub.x.flatten().long() % 3)  # rows stay paired
        ds = CIFARDataset(cifar10[0])
        part = train_subset(ds, 10, seed=0)
        assert isinstance(part, LabeledSubset) and len(part) == 10 and part.num_classes == 10
        assert part.targets == [ds.targets[i] for i in part.indices] and part.mean == ds.mean
        assert torch.equal(part[0][0], ds[part.indices[0]][0])
        assert torch.equal(train_subset(ds.targets, 10, 0), torch.tensor(part.indices))

    def test_errors(self):
        with pytest.raises(ValueError, match=r"n must be an int in \[1, 3\]"):
            stratified_indices([0, 1, 1], 4)
        with pytest.raises(ValueError, match="1-D sequence of ints"):
            stratified_indices(torch.rand(5), 2)
        with pytest.raises(TypeError, match="no 'targets'"):
            train_subset(torch.utils.data.TensorDataset(torch.zeros(3)), 2)


# ============================================================== open_splits


def test_open_splits(cifar10, folder):
    emb = open_splits("digits", seed=0)
    mem = data.load_digits(seed=0)
    assert len(emb.train) == len(mem.train) and emb.mean == mem.mean and emb.in_channels == 1
    assert torch.equal(emb.test[5][0], mem.test.x[5]) and emb.test[5][1] == int(mem.test.y[5])
    c = open_splits("cifar10", cifar10[0])
    assert (len(c.train), len(c.test), c.num_classes) == (20, 3, 10) and c.mean == c.train.mean
    f = open_splits("imagefolder", folder[0], load_size=8, eval_load_size=6)
    assert f.train[0][0].shape == (3, 8, 8) and f.test[0][0].shape == (3, 6, 6)
    with pytest.raises(ValueError, match="load_size is required"):
        open_splits("imagefolder", folder[0])
    with pytest.raises(ValueError, match="data_root is required"):
        open_splits("cifar100")
    with pytest.raises(ValueError, match="dataset must be one of"):
        open_splits("imagenet", folder[0])
