"""Mix inside DataLoader workers, seeded per worker and per epoch.

:class:`MixCollate` is a ``collate_fn``: it stacks the samples (uint8 images travel 4x
cheaper between processes than float32) and mixes the batch in the worker with a
``torch.Generator`` seeded from ``(seed, epoch, rank, worker id)``::

    collate = MixCollate(CutMix(alpha=1.0, num_classes=10), seed=0)
    loader = DataLoader(ds, batch_size=128, shuffle=True, num_workers=4,
                        persistent_workers=True, collate_fn=collate)
    for epoch in range(epochs):
        collate.set_epoch(epoch)          # before iterating, like DistributedSampler
        for images, targets in loader:    # uint8 (B, C, H, W), float32 (B, K)
            ...

Why: a mixer drawing from a generator seeded once (or the per-worker global RNG
re-seeded the same way each epoch) repeats the same λ/boxes every epoch — the known pitfall
with ``v2.MixUp`` inside a ``collate_fn`` (Lightning #20412). Here ``set_epoch`` writes the
epoch into shared memory, so it reaches persistent workers too, and each worker re-seeds
when it sees a new epoch. Without ``set_epoch`` the draws are still fresh every epoch: the
stream is then keyed by the DataLoader's per-iterator base seed (drawn from the loader's
``generator`` or torch's global RNG, so seed those for reproducibility) and a persistent
worker's generator simply continues.

Mixing on the device instead (exact float MixUp, no uint8 rounding): keep the default
collate and mix after the transfer, ``x = to_float(x.to(device)); x, t = mixer(x, y)``; the
draw is made on the CPU generator, the pixel work runs on ``x``'s device.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["MixCollate", "stack_samples", "stream_seed"]


def stream_seed(*key: int | str) -> int:
    """A 63-bit seed derived from a key tuple (BLAKE2b): nearby keys give unrelated streams,
    the same key the same seed on every platform."""
    text = ",".join(str(k) for k in key).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def _image_tensor(img: Any, i: int) -> Tensor:
    """One sample image as a (C, H, W) tensor: tensors as given; numpy / PIL (H, W[, C])."""
    if isinstance(img, Tensor):
        t = img
    elif isinstance(img, np.ndarray) or type(img).__module__.startswith("PIL"):
        a = np.asarray(img)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise ValueError(f"sample {i}: numpy/PIL images must be (H, W[, C]), got {a.shape}")
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
    else:
        raise ValueError(
            f"sample {i}: image must be a tensor (C, H, W), a numpy array or a PIL image, "
            f"got {type(img).__name__}"
        )
    if t.ndim != 3:
        raise ValueError(f"sample {i}: image tensors must be (C, H, W), got {tuple(t.shape)}")
    if not (t.dtype == torch.uint8 or t.is_floating_point()):
        raise ValueError(f"sample {i}: images must be uint8 or float, got {t.dtype}")
    return t


def stack_samples(batch: Sequence[Any]) -> tuple[Tensor, Tensor]:
    """Stack ``[(image, label), ...]`` into images (B, C, H, W) (uint8 or float, as given)
    and labels: (B,) int64 for int / 0-d labels, (B, K) float for (K,) soft labels.

    Images may be (C, H, W) tensors, or (H, W[, C]) numpy arrays / PIL images (moved to CHW).
    """
    if not isinstance(batch, Sequence) or len(batch) == 0:
        raise ValueError("batch must be a non-empty sequence of (image, label) samples")
    images, labels = [], []
    for i, sample in enumerate(batch):
        if not isinstance(sample, Sequence) or len(sample) < 2:
            raise ValueError(f"sample {i} must be an (image, label) pair, got {type(sample)}")
        images.append(_image_tensor(sample[0], i))
        labels.append(torch.as_tensor(sample[1]))
    first = images[0]
    for i, t in enumerate(images):
        if t.shape != first.shape or t.dtype != first.dtype:
            raise ValueError(
                f"sample {i}: every image must share shape and dtype, got {tuple(t.shape)} "
                f"{t.dtype} vs {tuple(first.shape)} {first.dtype} (resize/crop in the dataset)"
            )
    y = torch.stack(labels)
    if y.ndim == 1:
        if y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(f"labels must be integer class ids or (K,) soft rows, got {y.dtype}")
        y = y.long()
    elif y.ndim == 2:
        y = y.float()
    else:
        raise ValueError(f"labels must be ints or (K,) rows, got stacked {tuple(y.shape)}")
    return torch.stack(images), y


class MixCollate:
    """``collate_fn`` that stacks and mixes each batch with a per-(epoch, worker) generator.

    Args:
        mixer: any callable ``mixer(images, labels, generator=g) -> (images, targets)``:
            every ``mixkit.augment`` module, ``mixkit.compat.TimmMixup`` / ``CutMix`` /
            ``MixUp``. Its own generator is not used.
        seed: base seed of all streams.
        rank: distributed rank (part of the stream key so ranks draw independently).
        return_params: also return the draw (``mixer.last_params``) as a third element.
        stack: the batching function (default :func:`stack_samples`).

    The stream of worker ``w`` in epoch ``e`` is ``torch.Generator().manual_seed(
    stream_seed(seed, "epoch", e, rank, w))`` and advances over that worker's batches (the
    DataLoader hands batches to workers round-robin, so this is deterministic). The main
    process (``num_workers=0``) is worker 0.
    """

    def __init__(
        self,
        mixer: Callable[..., Any],
        seed: int,
        *,
        rank: int = 0,
        return_params: bool = False,
        stack: Callable[[Sequence[Any]], tuple[Tensor, Tensor]] = stack_samples,
    ) -> None:
        if not callable(mixer):
            raise ValueError(
                f"mixer must be callable(images, labels, generator=...), got {mixer!r}"
            )
        for name, v in (("seed", seed), ("rank", rank)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        self.mixer = mixer
        self.seed = seed
        self.rank = rank
        self.return_params = bool(return_params)
        self.stack = stack
        # [epoch (-1: never set)], in shared memory: visible to already-running workers.
        self._shared = torch.full((1,), -1, dtype=torch.int64).share_memory_()
        self._key: tuple | None = None
        self._generator: torch.Generator | None = None

    @property
    def epoch(self) -> int | None:
        """The epoch last given to :meth:`set_epoch` (None if never called)."""
        e = int(self._shared[0])
        return None if e < 0 else e

    def set_epoch(self, epoch: int) -> None:
        """Select the streams of ``epoch``; call it before iterating the loader each epoch."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self._shared[0] = epoch

    def stream_key(self, worker_id: int, base_seed: int | None = None) -> tuple:
        """The key of the current stream of ``worker_id`` (see the class docstring)."""
        e = self.epoch
        if e is not None:
            return (self.seed, "epoch", e, self.rank, worker_id)
        return (self.seed, "loader", base_seed, self.rank, worker_id)

    def generator(self) -> torch.Generator:
        """The generator for a batch collated now (in this worker, for the current epoch)."""
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.id
        # The loader's base seed changes with every iterator (each epoch unless workers persist).
        base = None if info is None else info.seed - info.id
        key = self.stream_key(worker, base) + (os.getpid(),)
        if key != self._key or self._generator is None:
            self._key = key
            self._generator = torch.Generator().manual_seed(stream_seed(*key[:-1]))
        return self._generator

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_key"], state["_generator"] = None, None  # workers start their own stream
        return state

    def __call__(self, batch: Sequence[Any]) -> tuple[Any, ...]:
        images, labels = self.stack(batch)
        images, targets = self.mixer(images, labels, generator=self.generator())
        if self.return_params:
            return images, targets, getattr(self.mixer, "last_params", None)
        return images, targets

    def __repr__(self) -> str:
        return f"MixCollate({self.mixer!r}, seed={self.seed}, rank={self.rank})"
