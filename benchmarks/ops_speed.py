"""Op-speed benchmark (issue 6): same as ``mixkit bench`` (see ``mixkit.bench``).

Side by side with timm / torchvision / kornia (the ``peers`` extra, installed in a separate
venv because it pulls a CUDA torch), stable allocator settings on this command only::

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \\
    MALLOC_TOP_PAD_=268435456 MALLOC_MMAP_MAX_=0 \\
    /work/peers-venv/bin/python benchmarks/ops_speed.py \\
    --threads 1 --write BENCHMARKS.md

Any ``mixkit bench`` flag works (``--sizes``, ``--ops``, ``--device cuda``, ``--no-peers``).
"""

from __future__ import annotations

import sys

from mixkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
