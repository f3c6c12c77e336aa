"""Matplotlib figures of mixkit runs (``mixkit plot RUN_DIR`` redraws them): training curves
(per epoch, or per global step with the epochs marked), grids of mixed samples with λ, the
top-2 labels and the pasted region outlined, and segmentation overlays with a class legend.

Every ``*_figure`` function returns the ``matplotlib.figure.Figure`` (to inspect or draw
on); ``save_figure(fig, path)`` writes one as a PNG, closes it and returns the path. The
other ``save_*`` functions draw and write in one call from a run's files, a dataset or a
mixer. The Agg backend is selected on import (no display needed)."""

import matplotlib

matplotlib.use("Agg")

from mixkit.plots.common import (  # noqa: E402
    OUTLINE_COLOURS,
    box_rectangle,
    label_text,
    mask_edges,
    save_figure,
    show_image,
)
from mixkit.plots.curves import (  # noqa: E402
    curve_x,
    read_metrics,
    save_training_curves,
    training_curves_figure,
)
from mixkit.plots.mixing import (  # noqa: E402
    draw_region,
    mix_grid_figure,
    recursive_boxes,
    save_mix_grid_for,
    save_recursive_mix_grid,
)
from mixkit.plots.segmentation import (  # noqa: E402
    class_colours,
    seg_mix_figure,
    seg_overlay_figure,
)

__all__ = [
    "mix_grid_figure",
    "read_metrics",
    "save_figure",
    "save_mix_grid_for",
    "save_recursive_mix_grid",
    "save_training_curves",
    "seg_mix_figure",
    "seg_overlay_figure",
    "training_curves_figure",
]
