"""Builds the optional C kernels (``mixkit.ops._native``); everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and mixkit runs its
pure-torch paths (``mixkit.ops._fast.NATIVE`` is then False).
"""

import sys

from setuptools import Extension, setup

# -ffp-contract=off: the uint8 MixUp kernel must round each float32 product and sum like
# torch's separate ops (no fused multiply-add).
# -pthread: large batches are split between threads (POSIX threads; one thread on Windows).
posix = sys.platform != "win32"
flags = ["-O3", "-std=c99", "-fno-fast-math", "-ffp-contract=off", "-pthread"] if posix else []
setup(
    ext_modules=[
        Extension(
            "mixkit.ops._native",
            sources=["src/mixkit/ops/_native.c"],
            extra_compile_args=flags,
            extra_link_args=["-pthread"] if posix else [],
            optional=True,
        )
    ]
)
