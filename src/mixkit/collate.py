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

Switching mixing off (timm's ``--mixup-off-epoch``): ``MixCollate(mixer, seed,
mixup_off_epoch=E)`` mixes epochs ``< E`` only (it reads the epoch of :meth:`set_epoch`), and
``collate.mixup_enabled = False`` turns it off at any time; both live in shared memory and
reach persistent workers. Off, a batch still goes through the mixer with identity params,
so the targets keep their (B, K) form (and label smoothing).

Mixing on the device instead (exact float MixUp, no uint8 rounding): keep the default
collate and mix after the transfer, ``x = to_float(x.to(device)); x, t = mixer(x, y)``; the
draw is made on the CPU generator, the pixel work runs on ``x``'s device.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mixkit.augment.params import MixParams

__all__ = ["MixCollate", "stack_samples", "stream_seed"]


def stream_seed(*key: int | str) -> int:
    """A 63-bit seed derived from a key tuple (BLAKE2b): nearby keys give unrelated streams,
    the same key the same seed on every platform."""
    text = ",".join(str(k) for k in key).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


LAYOUTS = ("auto", "CHW", "HWC")
_CHANNELS = (1, 3, 4)
_warned: set[tuple[int, ...]] = set()  # ambiguous shapes already reported in this process


def infer_layout(shape: tuple[int, ...]) -> str | None:
    """``"CHW"`` or ``"HWC"`` for a 3-d image shape: the end holding 1, 3 or 4 (grey, RGB,
    RGBA) is the channel dim; with neither, the smaller end (multi-band images). None when
    the shape does not tell (both or neither end fits equally, e.g. (3, 32, 3))."""
    first, last = shape[0], shape[-1]
    chw, hwc = first in _CHANNELS, last in _CHANNELS
    if chw != hwc:
        return "CHW" if chw else "HWC"
    if not chw and first != last:
        return "CHW" if first < last else "HWC"
    return None


def _image_tensor(img: Any, i: int, layout: str) -> Tensor:
    """One sample image as a (C, H, W) tensor. Tensors and numpy arrays may be (H, W),
    (C, H, W) or (H, W, C) (``layout``, or inferred); PIL images are (H, W[, C])."""
    if isinstance(img, Tensor):
        t = img.as_subclass(Tensor)
    elif isinstance(img, np.ndarray) or type(img).__module__.startswith("PIL"):
        a = np.asarray(img)
        if type(img).__module__.startswith("PIL") and a.ndim == 3:
            layout = "HWC"  # PIL is always (H, W[, C])
        a = np.ascontiguousarray(a)
        t = torch.from_numpy(a if a.flags.writeable else a.copy())  # PIL arrays are read-only
    else:
        raise ValueError(
            f"sample {i}: image must be a tensor, a numpy array or a PIL image, "
            f"got {type(img).__name__}"
        )
    if t.ndim == 2:
        t = t.unsqueeze(0)
    elif t.ndim == 3:
        chosen = infer_layout(tuple(t.shape)) if layout == "auto" else layout
        if chosen is None:
            chosen = "CHW"
            if tuple(t.shape) not in _warned:
                _warned.add(tuple(t.shape))
                warnings.warn(
                    f"image shape {tuple(t.shape)} could be CHW or HWC; assumed CHW (torch's "
                    "layout). Pass layout='CHW' or layout='HWC' to choose (and silence this)",
                    stacklevel=4,
                )
        if chosen == "HWC":
            t = t.permute(2, 0, 1).contiguous()
    else:
        raise ValueError(
            f"sample {i}: images must be (H, W), (C, H, W) or (H, W, C), got {tuple(t.shape)}"
        )
    if not (t.dtype == torch.uint8 or t.is_floating_point()):
        raise ValueError(f"sample {i}: images must be uint8 or float, got {t.dtype}")
    return t


def stack_samples(batch: Sequence[Any], layout: str = "auto") -> tuple[Tensor, Tensor]:
    """Stack ``[(image, label), ...]`` into images (B, C, H, W) (uint8 or float, as given)
    and labels: (B,) int64 for int / 0-d labels, (B, K) float for (K,) soft labels.

    Images may be tensors or numpy arrays, (H, W), (C, H, W) (timm's ``ToNumpy``,
    torchvision's ``ToTensor``) or (H, W, C) (PIL, OpenCV, albumentations), or PIL images.
    ``layout``: ``"auto"`` infers it per shape (:func:`infer_layout`; an ambiguous shape such
    as (3, 32, 3) is taken as CHW with a warning, once per shape and process), ``"CHW"`` or
    ``"HWC"`` fixes it for tensors and arrays.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not isinstance(batch, Sequence) or len(batch) == 0:
        raise ValueError("batch must be a non-empty sequence of (image, label) samples")
    images, labels = [], []
    for i, sample in enumerate(batch):
        if not isinstance(sample, Sequence) or len(sample) < 2:
            raise ValueError(f"sample {i} must be an (image, label) pair, got {type(sample)}")
        images.append(_image_tensor(sample[0], i, layout))
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


def _takes_params(mixer: Callable[..., Any]) -> bool:
    """Whether ``mixer`` can be called with ``params=`` (unknown signatures: assume yes)."""
    try:
        sig = inspect.signature(mixer)
    except (TypeError, ValueError):
        return True
    kinds = {p.kind for p in sig.parameters.values()}
    return "params" in sig.parameters or inspect.Parameter.VAR_KEYWORD in kinds


class MixCollate:
    """``collate_fn`` that stacks and mixes each batch with a per-(epoch, worker) generator.

    Args:
        mixer: any callable ``mixer(images, labels, generator=g) -> (images, targets)``:
            every ``mixkit.augment`` module, ``mixkit.compat.TimmMixup`` / ``CutMix`` /
            ``MixUp``. Its own generator is not used.
        seed: base seed of all streams.
        rank: distributed rank (part of the stream key so ranks draw independently).
        return_params: also return the draw (``mixer.last_params``) as a third element.
        stack: the batching function (default :func:`stack_samples` with ``layout``).
        layout: image layout of the samples for the default ``stack``: ``"auto"``
            (inferred per shape, ambiguous ones taken as CHW with a warning), ``"CHW"`` or
            ``"HWC"``.
        mixup_off_epoch: mix only epochs ``< mixup_off_epoch`` (timm ``train.py``'s
            ``--mixup-off-epoch``: ``epoch >= off`` stops mixing, 0 never does), read from
            :meth:`set_epoch`; None or 0 never switches off.

    Attributes:
        mixup_enabled: set False (timm's name on ``FastCollateMixup``) to stop mixing from
            the next collated batch on, True to resume. Like the epoch it lives in shared
            memory, so it reaches workers that are already running (persistent ones too);
            batches the loader has already prefetched keep their state, so switch between
            epochs. Off, the batch goes through the mixer with identity params (``mixer``
            must accept ``params=``, as every mixkit mixer does), so the targets keep their
            (B, K) form and smoothing.

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
        stack: Callable[[Sequence[Any]], tuple[Tensor, Tensor]] | None = None,
        layout: str = "auto",
        mixup_off_epoch: int | None = None,
    ) -> None:
        if not callable(mixer):
            raise ValueError(
                f"mixer must be callable(images, labels, generator=...), got {mixer!r}"
            )
        for name, v in (("seed", seed), ("rank", rank)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        off = mixup_off_epoch
        if off is not None and (isinstance(off, bool) or not isinstance(off, int) or off < 0):
            raise ValueError(f"mixup_off_epoch must be None or an int >= 0, got {off!r}")
        self.mixer = mixer
        self.mixup_off_epoch = off or None
        if self.mixup_off_epoch is not None:
            self._check_switchable()
        self.seed = seed
        self.rank = rank
        self.return_params = bool(return_params)
        self.stack = stack
        self.layout = layout
        # [epoch (-1: never set), mixup_enabled (0/1)] in shared memory: visible to
        # already-running workers, which hold a copy of this object.
        self._shared = torch.tensor([-1, 1], dtype=torch.int64).share_memory_()
        self._key: tuple | None = None
        self._generator: torch.Generator | None = None

    @property
    def epoch(self) -> int | None:
        """The epoch last given to :meth:`set_epoch` (None if never called)."""
        e = int(self._shared[0])
        return None if e < 0 else e

    @property
    def mixup_enabled(self) -> bool:
        """The on/off switch (see the class docstring); ``mixup_off_epoch`` applies on top."""
        return bool(self._shared[1])

    @mixup_enabled.setter
    def mixup_enabled(self, value: bool) -> None:
        if not value:
            self._check_switchable()
        self._shared[1] = int(bool(value))

    @property
    def mixing(self) -> bool:
        """Whether a batch collated now is mixed: ``mixup_enabled`` and, with
        ``mixup_off_epoch``, an epoch before it (or :meth:`set_epoch` never called)."""
        off, e = self.mixup_off_epoch, self.epoch
        return self.mixup_enabled and not (off is not None and e is not None and e >= off)

    def _check_switchable(self) -> None:
        if not _takes_params(self.mixer):
            raise ValueError(
                "switching mixing off needs a mixer that accepts params= (identity params "
                f"keep the targets' form), got {self.mixer!r}"
            )

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
        if self.stack is None:
            images, labels = stack_samples(batch, self.layout)
        else:
            images, labels = self.stack(batch)
        if self.mixing:
            images, targets = self.mixer(images, labels, generator=self.generator())
        else:  # identity params: unchanged pixels, targets in the mixer's (B, K) form
            params = MixParams.identity(images.shape[0], tuple(images.shape[-2:]))
            images, targets = self.mixer(images, labels, params=params)
        if self.return_params:
            return images, targets, getattr(self.mixer, "last_params", None)
        return images, targets

    def __repr__(self) -> str:
        extra = "" if self.mixup_off_epoch is None else f", mixup_off_epoch={self.mixup_off_epoch}"
        if not self.mixup_enabled:
            extra += ", mixup_enabled=False"
        return f"MixCollate({self.mixer!r}, seed={self.seed}, rank={self.rank}{extra})"
