"""Builds the optional C kernels (``mixkit.ops._native``); everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and mixkit runs its
pure-torch paths (``mixkit.ops._fast.NATIVE`` is then False).
"""

import sys

from setuptools import Extension, setup

flags = [] if sys.platform == "win32" else ["-O3", "-fno-fast-math", "-std=c99"]
setup(
    ext_modules=[
        Extension(
            "mixkit.ops._native",
            sources=["src/mixkit/ops/_native.c"],
            extra_compile_args=flags,
            optional=True,
        )
    ]
)
