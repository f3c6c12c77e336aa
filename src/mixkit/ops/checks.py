"""Value checks that never read device memory back to the host.

On the CPU a failed check raises ``ValueError`` at once (reading a CPU tensor is free). On
any other device a value check either goes through ``torch._assert_async`` (the failure
surfaces as a device-side assertion at the next synchronisation) or is skipped; each check
says which. Shape and dtype checks are host metadata and always raise at once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NONFINITE = "{name} hold NaN or Inf values; pass check_finite=False to mix them"


def on_host(t: Tensor) -> bool:
    """Whether reading ``t``'s values costs no device synchronisation (a CPU tensor)."""
    return t.device.type == "cpu"


def require(ok: Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` if the bool tensor ``ok`` (any shape) is not all True.

    CPU: checked now. Other devices: ``torch._assert_async`` (no host read; a meta tensor
    is not checked at all)."""
    ok = ok.all()
    if on_host(ok):
        if not bool(ok):
            raise ValueError(message)
    else:
        torch._assert_async(ok, message)


def check_finite(t: Tensor, name: str) -> None:
    """ValueError if a float CPU tensor holds NaN or Inf. Skipped on other devices (a NaN
    there is not an error worth stopping the device for) and for non-float tensors.

    One vectorised sum decides: a sum of finite values is finite unless it overflows (NaN and
    Inf propagate), so only a non-finite sum pays the elementwise ``isfinite`` (whose CPU
    kernel is a slow scalar loop)."""
    if not (t.is_floating_point() and on_host(t)) or not t.numel():
        return
    acc = torch.float64 if t.dtype == torch.float64 else torch.float32
    if math.isfinite(float(t.sum(dtype=acc))):
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(NONFINITE.format(name=name))


CHANNEL_COUNTS = (1, 3, 4)  # grey, RGB, RGBA: what a channels-last last dim usually holds


def check_channels_first(
    shape: tuple[int, ...] | torch.Size,
    name: str = "images",
    *,
    channel_dim: int = 1,
    opt_out: str = "check_layout=False",
) -> None:
    """ValueError when a channels-first shape, e.g. images (B, C, H, W), looks channels-last:
    more than 4 channels at ``channel_dim`` while the last dim is 1, 3 or 4 (a (B, H, W, C)
    batch read as (B, C, H, W)). Reads the shape only, never the values; ``opt_out`` names
    the switch for real many-channel inputs in the message."""
    shape = tuple(shape)
    if len(shape) <= channel_dim + 1:
        return
    channels, last = shape[channel_dim], shape[-1]
    if channels > 4 and last in CHANNEL_COUNTS:
        order = list(range(len(shape)))
        order = order[:channel_dim] + [order[-1]] + order[channel_dim:-1]
        raise ValueError(
            f"{name} of shape {shape} look channels-last: {channels} channels at dim "
            f"{channel_dim} but a last dim of {last}; pass {name}.permute{tuple(order)} to get "
            f"channels first, or {opt_out} if they really have {channels} channels"
        )


def check_unit_interval(t: Tensor, message: str) -> None:
    """ValueError(message + the range found) unless the float tensor ``t`` lies in [0, 1]
    (NaN fails). CPU: checked now; other devices: ``torch._assert_async`` on one min/max
    reduction (no host read). Non-float and empty tensors pass."""
    if not t.is_floating_point() or not t.numel():
        return
    lo, hi = torch.aminmax(t)
    ok = (lo >= 0) & (hi <= 1)
    if on_host(ok):
        if not bool(ok):
            raise ValueError(f"{message}; got values in [{float(lo):.4g}, {float(hi):.4g}]")
    else:
        torch._assert_async(ok, message)
