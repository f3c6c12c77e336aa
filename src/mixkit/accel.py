"""Device features shared by the trainers: mixed precision, channels_last, ``torch.compile``
and loss sums that stay on the device between host reads.

- :func:`autocast`: ``torch.autocast`` on the device's type in fp16 / bf16 (a no-op for
  ``"off"``); :func:`grad_scaler` is enabled for fp16 only (bf16 has fp32's range).
- :func:`memory_format` / :func:`to_memory_format`: ``torch.channels_last`` for the model
  and the batches.
- :func:`compile_model`: compile a model's forward in place (``nn.Module.compile``, so its
  ``state_dict`` keys do not change); with ``split=True`` its ``features`` / ``head`` too
  (RecursiveMix calls those).
- :class:`DeviceSums`: per-step loss values x batch size summed on the device; reading them
  is the only host sync, so a trainer syncs at its log steps and epoch ends only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mixkit import distributed

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
# Steps between host reads of the loss on an accelerator when log_every is 0 (auto).
ACCELERATOR_LOG_EVERY = 50


def _check_amp(amp: str) -> None:
    if amp not in ("off", *AMP_DTYPES):
        raise ValueError(f"amp must be one of ['off', 'fp16', 'bf16'], got {amp!r}")


def autocast(device: torch.device | str, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast(device.type, dtype)`` for ``amp`` in fp16 / bf16; a null context
    for ``"off"``."""
    _check_amp(amp)
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=AMP_DTYPES[amp])


def grad_scaler(device: torch.device | str, amp: str) -> torch.amp.GradScaler:
    """A ``GradScaler`` enabled for fp16 only; disabled, ``scale`` / ``step`` / ``update``
    are the plain backward and optimiser step."""
    _check_amp(amp)
    return torch.amp.GradScaler(torch.device(device).type, enabled=amp == "fp16")


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def to_memory_format(x: Tensor, channels_last: bool) -> Tensor:
    """A 4-D batch in channels_last layout when asked (same values, other strides)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def compile_model(model: nn.Module, split: bool = False) -> nn.Module:
    """Compile ``model``'s forward in place and return it; ``split``: also its ``features``
    and ``head`` methods (stored as instance attributes; parameters and state_dict keys are
    unchanged, so checkpoints load into an uncompiled model)."""
    model.compile()
    if split:
        for name in ("features", "head"):
            setattr(model, name, torch.compile(getattr(model, name)))
    return model


def log_interval(log_every: int, device: torch.device | str) -> int:
    """Steps between host reads: ``log_every``, or for 0 every step on the CPU (a read costs
    nothing there) and every :data:`ACCELERATOR_LOG_EVERY` steps on an accelerator."""
    if log_every:
        return int(log_every)
    return 1 if torch.device(device).type == "cpu" else ACCELERATOR_LOG_EVERY


class DeviceSums:
    """Running sums of named per-step values x batch size, kept on ``device``.

    ``add`` queues device ops only; :meth:`read` copies the sums to the host once (the
    sync) and, under torchrun, sums them over the ranks. float64 where the device has it
    (the same rounding as Python floats), else float32."""

    def __init__(self, keys: Sequence[str], device: torch.device | str) -> None:
        self.keys = tuple(keys)
        self.device = torch.device(device)
        self.dtype = torch.float32 if self.device.type == "mps" else torch.float64
        self.reset()

    def reset(self) -> None:
        self.total = torch.zeros(len(self.keys), dtype=self.dtype, device=self.device)
        self.count = 0

    def add(self, values: Sequence[Tensor], n: int) -> None:
        """Add ``value * n`` for each 0-d tensor of ``values`` (in ``keys`` order)."""
        step = torch.stack([v.detach().reshape(()) for v in values]).to(self.dtype)
        self.total += step * n
        self.count += int(n)

    def read(self, env: distributed.DistEnv | None = None) -> tuple[dict[str, float], int]:
        """``({key: sum}, count)`` over every rank (collective under torchrun)."""
        env = env or distributed.DistEnv()
        *sums, count = distributed.all_reduce_sum([*self.total.tolist(), self.count], env)
        return dict(zip(self.keys, sums, strict=True)), int(count)

    def state_dict(self) -> dict[str, Any]:
        """This rank's sums as Python numbers (a host read; for checkpoints)."""
        return {"total": self.total.tolist(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total = torch.tensor(state["total"], dtype=self.dtype, device=self.device)
        self.count = int(state["count"])
