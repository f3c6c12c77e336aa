"""``mixkit.collate.MixCollate`` inside real DataLoaders: fresh draws every epoch (also with
persistent workers), distinct streams per worker, same seed -> same bytes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mixkit.augment import CutMix, MixUp
from mixkit.collate import MixCollate, stack_samples, stream_seed
from mixkit.compat import TimmMixup

K = 10
N, BS = 48, 8  # 6 batches per epoch: 3 per worker with num_workers=2


def _dataset() -> list[tuple[torch.Tensor, int]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (N, 3, 12, 12), dtype=torch.uint8, generator=g)
    return [(x[i], i % K) for i in range(N)]


def _epochs(collate, *, workers=2, persistent=True, epochs=3, set_epoch=True, loader_seed=0):
    """Per epoch, the list of (images, targets, params) batches (shuffle off: same inputs)."""
    loader = DataLoader(
        _dataset(),
        batch_size=BS,
        num_workers=workers,
        persistent_workers=persistent and workers > 0,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(loader_seed),
    )
    out = []
    for e in range(epochs):
        if set_epoch:
            collate.set_epoch(e)
        out.append([(x.clone(), t.clone(), p) for x, t, p in loader])
    return out


def _lams(epoch) -> torch.Tensor:
    return torch.stack([p.lam for _, _, p in epoch])  # (batches, B)


def _collate(seed=0, mixer=None):
    mixer = CutMix(alpha=1.0, num_classes=K) if mixer is None else mixer
    return MixCollate(mixer, seed, return_params=True)


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "fresh-workers"])
@pytest.mark.parametrize("set_epoch", [True, False], ids=["set_epoch", "no-set_epoch"])
def test_fresh_every_epoch_and_deterministic(persistent, set_epoch):
    a = _epochs(_collate(), persistent=persistent, set_epoch=set_epoch)
    b = _epochs(_collate(), persistent=persistent, set_epoch=set_epoch)
    for e in range(3):  # same seeds -> the same bytes, epoch by epoch
        assert torch.equal(_lams(a[e]), _lams(b[e]))
        for (xa, ta, _), (xb, tb, _) in zip(a[e], b[e], strict=True):
            assert torch.equal(xa, xb) and torch.equal(ta, tb)
    # the same input batches get new draws every epoch
    for e1, e2 in ((0, 1), (1, 2), (0, 2)):
        assert not torch.equal(_lams(a[e1]), _lams(a[e2]))
        assert not torch.equal(a[e1][0][0], a[e2][0][0])


def test_workers_draw_distinct_streams():
    (epoch,) = _epochs(_collate(), epochs=1)
    lams = _lams(epoch)
    # batches 0, 2, 4 come from worker 0 and 1, 3, 5 from worker 1 (round robin): the k-th
    # batch of each worker must differ (identical streams would repeat it exactly).
    for k in range(3):
        assert not torch.equal(lams[2 * k], lams[2 * k + 1])
    assert len({tuple(r.tolist()) for r in lams}) == len(lams)


def test_set_epoch_streams_do_not_depend_on_worker_lifetime_or_loader_rng():
    a = _epochs(_collate(), persistent=True, loader_seed=0)
    b = _epochs(_collate(), persistent=False, loader_seed=123)
    for e in range(3):
        assert torch.equal(_lams(a[e]), _lams(b[e]))
    # the main process is worker 0: num_workers=0 equals num_workers=1
    c = _epochs(_collate(), workers=0)
    d = _epochs(_collate(), workers=1)
    for e in range(3):
        assert torch.equal(_lams(c[e]), _lams(d[e]))


def test_different_seed_different_draws():
    a = _epochs(_collate(seed=0), epochs=1)
    b = _epochs(_collate(seed=1), epochs=1)
    assert not torch.equal(_lams(a[0]), _lams(b[0]))


class _NaiveCollate:
    """The pitfall: a generator seeded once in __init__ (like a fixed-seed v2.MixUp)."""

    def __init__(self) -> None:
        self.mixer = CutMix(alpha=1.0, num_classes=K)
        self.gen = torch.Generator().manual_seed(0)

    def __call__(self, batch):
        x, y = stack_samples(batch)
        x, t = self.mixer(x, y, generator=self.gen)
        return x, t, self.mixer.last_params


def test_naive_collate_repeats_each_epoch_which_mixcollate_avoids():
    # Non-persistent workers copy the collate_fn afresh each epoch: the naive generator
    # restarts and every epoch repeats epoch 0's draws. This is what the tests above rule out.
    naive = _epochs(_NaiveCollate(), persistent=False, set_epoch=False)
    assert torch.equal(_lams(naive[0]), _lams(naive[1]))
    ours = _epochs(_collate(), persistent=False, set_epoch=False)
    assert not torch.equal(_lams(ours[0]), _lams(ours[1]))


def test_outputs_uint8_soft_targets_and_adapters():
    (epoch,) = _epochs(_collate(mixer=MixUp(alpha=1.0, num_classes=K)), epochs=1, workers=0)
    x, t, p = epoch[0]
    assert x.dtype == torch.uint8 and x.shape == (BS, 3, 12, 12)
    assert t.dtype == torch.float32 and t.shape == (BS, K)
    torch.testing.assert_close(t.sum(1), torch.ones(BS))
    timm = TimmMixup(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=K, mode="elem")
    (epoch,) = _epochs(MixCollate(timm, 0, return_params=True), epochs=1, workers=2)
    assert all(t.shape == (BS, K) for _, t, _ in epoch)


def test_stack_samples_inputs():
    imgs, y = stack_samples([(np.zeros((5, 6, 3), np.uint8), 1), (np.ones((5, 6, 3), np.uint8), 2)])
    assert imgs.shape == (2, 3, 5, 6) and imgs.dtype == torch.uint8 and y.tolist() == [1, 2]
    gray, _ = stack_samples([(np.zeros((5, 6), np.uint8), torch.tensor(0))])
    assert gray.shape == (1, 1, 5, 6)
    _, soft = stack_samples([(torch.zeros(1, 2, 2), torch.tensor([0.5, 0.5]))])
    assert soft.shape == (1, 2) and soft.dtype == torch.float32
    with pytest.raises(ValueError, match="every image must share shape and dtype"):
        stack_samples([(torch.zeros(1, 2, 2), 0), (torch.zeros(1, 3, 2), 0)])
    with pytest.raises(ValueError, match="non-empty sequence"):
        stack_samples([])
    with pytest.raises(ValueError, match="must be an \\(image, label\\) pair"):
        stack_samples([torch.zeros(1, 2, 2)])
    with pytest.raises(ValueError, match="image must be a tensor"):
        stack_samples([("img.png", 0)])
    with pytest.raises(ValueError, match="images must be uint8 or float"):
        stack_samples([(torch.zeros(1, 2, 2, dtype=torch.int32), 0)])


def test_errors_and_seed_derivation():
    with pytest.raises(ValueError, match="mixer must be callable"):
        MixCollate("cutmix", 0)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        MixCollate(CutMix(num_classes=K), -1)
    c = MixCollate(CutMix(num_classes=K), 0)
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        c.set_epoch(-2)
    assert c.epoch is None
    c.set_epoch(3)
    assert c.epoch == 3
    assert stream_seed(0, "epoch", 1, 0, 0) == stream_seed(0, "epoch", 1, 0, 0)
    assert stream_seed(0, "epoch", 1, 0, 0) != stream_seed(0, "epoch", 1, 0, 1)
    assert 0 <= stream_seed(5) < 2**63
