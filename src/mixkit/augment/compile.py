"""Opt-in compilation of the apply kernel: ``mixkit.compile(mixer)``."""

from __future__ import annotations

import functools

import torch

from mixkit.augment.apply import Kernel, mix_tensors
from mixkit.augment.base import MixTransform

# One graph per combination of present kinds, dtype, fill and resize mode (each reused for
# every batch and image size): more than dynamo's default of 8 per function. Past the limit
# fail loudly rather than fall back to eager without saying so.
_LIMITS = {"recompile_limit": 64, "fail_on_recompile_limit_hit": True}


@functools.cache
def _compiled() -> Kernel:
    return torch.compile(mix_tensors, dynamic=True, fullgraph=True)


def compiled_kernel(*args, **kwargs):
    """``mix_tensors`` under ``torch.compile(dynamic=True, fullgraph=True)``."""
    with torch._dynamo.config.patch(**_LIMITS):
        return _compiled()(*args, **kwargs)


def compile(mixer: MixTransform) -> MixTransform:  # noqa: A001 - mirrors torch.compile
    """Run ``mixer``'s apply (images, masks) through the compiled kernel; returns ``mixer``
    itself. The draw stays eager on the CPU; the outputs are the same bytes as eager."""
    if not isinstance(mixer, MixTransform):
        raise ValueError(f"mixer must be a mixkit MixTransform, got {type(mixer).__name__}")
    mixer._kernel = compiled_kernel
    return mixer
