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
