"""Pure-torch bilinear ROI-Align with the semantics of ``torchvision.ops.roi_align``.

torchvision is not part of the default install, so RecursiveMix's consistency head uses this.
The arithmetic follows torchvision's ``roi_align_kernel.cpp`` (Mask R-CNN ROI-Align, He et
al. 2017): for each output bin, ``g_h x g_w`` regularly spaced points are sampled with
bilinear interpolation and averaged. ``g = sampling_ratio`` if > 0, else adaptive per ROI
(``ceil(roi_size / output_size)``). ``aligned=True`` shifts the box by -0.5 pixel so that
box corners are pixel edges (Detectron2). It is vectorised over ROIs, bins and sampling points
(one gather), differentiable w.r.t. the input, and works on any device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mixkit.ops.checks import require


def boxes_to_rois(boxes: Tensor | list[Tensor]) -> Tensor:
    """Turn a (K, 5) ``[batch_index, x1, y1, x2, y2]`` tensor or a list of per-image (L_i, 4)
    xyxy tensors (torchvision's two formats) into (K, 5) float rois."""
    if isinstance(boxes, (list, tuple)):
        if not all(isinstance(b, Tensor) and b.ndim == 2 and b.shape[1] == 4 for b in boxes):
            raise ValueError("boxes given as a list must hold (L_i, 4) tensors, one per image")
        if len(boxes) == 0:
            return torch.zeros(0, 5)
        index = torch.cat(
            [
                torch.full((b.shape[0], 1), i, dtype=b.dtype, device=b.device)
                for i, b in enumerate(boxes)
            ]
        )
        return torch.cat([index, torch.cat(list(boxes))], 1).float()
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 5:
        got = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"boxes must be a (K, 5) tensor [batch_index, x1, y1, x2, y2], got {got}")
    return boxes


def _pair(output_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(output_size, int) and not isinstance(output_size, bool):
        output_size = (output_size, output_size)
    if (
        not isinstance(output_size, (tuple, list))
        or len(output_size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in output_size)
    ):
        raise ValueError(f"output_size must be an int >= 1 or a pair of them, got {output_size!r}")
    return int(output_size[0]), int(output_size[1])


def _check_input(input: Tensor, spatial_scale: float) -> None:
    if not isinstance(input, Tensor) or input.ndim != 4 or not input.is_floating_point():
        got = (input.dtype, tuple(input.shape)) if isinstance(input, Tensor) else type(input)
        raise ValueError(f"input must be a float tensor of shape (N, C, H, W), got {got}")
    if (
        not isinstance(spatial_scale, (int, float))
        or not math.isfinite(spatial_scale)
        or not spatial_scale > 0
    ):
        raise ValueError(f"spatial_scale must be a finite number > 0, got {spatial_scale!r}")


def _coords(start: Tensor, bins: int, bin_size: Tensor, grid: Tensor, gmax: int) -> Tensor:
    """(K, bins, gmax) sample coordinates along one axis."""
    p = torch.arange(bins, device=start.device, dtype=start.dtype)[None, :, None]
    i = torch.arange(gmax, device=start.device, dtype=start.dtype)[None, None, :]
    g = grid.clamp_min(1.0)[:, None, None]
    return (
        start[:, None, None] + p * bin_size[:, None, None] + (i + 0.5) * bin_size[:, None, None] / g
    )


def _bilinear_axis(v: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """torchvision ``bilinear_interpolate`` along one axis: low/high index, weights and
    whether the point is inside the padded range [-1, size]."""
    inside = (v >= -1.0) & (v <= size)
    v = v.clamp_min(0.0)
    low = v.floor().long()
    at_edge = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(at_edge, low, low + 1)
    v = torch.where(at_edge, low.to(v.dtype), v)
    frac = v - low.to(v.dtype)
    return low, high, 1.0 - frac, frac, inside


def _sample_weights(
    rois: Tensor,
    bins: tuple[int, int],
    size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """Flat pixel indices (K, PH, PW, GH, GW, 4) of the 4 bilinear corners of every sampling
    point, and their weights (same shape, ``dtype``) already divided by the point count of
    the bin; points outside the map or beyond a ROI's own grid weigh 0."""
    (ph, pw), (height, width) = bins, size
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:  # torchvision: force malformed ROIs to be 1x1
        roi_w = roi_w.clamp_min(1.0)
        roi_h = roi_h.clamp_min(1.0)
    bin_h = roi_h / ph
    bin_w = roi_w / pw
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, float(sampling_ratio))
        grid_w = torch.full_like(roi_w, float(sampling_ratio))
    else:
        grid_h = torch.ceil(roi_h / ph)
        grid_w = torch.ceil(roi_w / pw)
    # Largest grid over the ROIs; smaller ROIs mask their surplus points (one host sync).
    gh_max = max(int(grid_h.max().item()), 1) if sampling_ratio <= 0 else sampling_ratio
    gw_max = max(int(grid_w.max().item()), 1) if sampling_ratio <= 0 else sampling_ratio
    count = (grid_h * grid_w).clamp_min(1.0)  # (K,)
    ys = _coords(y1, ph, bin_h, grid_h, gh_max)[:, :, None, :, None]  # (K, PH, 1, GH, 1)
    xs = _coords(x1, pw, bin_w, grid_w, gw_max)[:, None, :, None, :]  # (K, 1, PW, 1, GW)
    valid_y = torch.arange(gh_max, device=rois.device)[None, :] < grid_h[:, None]  # (K, GH)
    valid_x = torch.arange(gw_max, device=rois.device)[None, :] < grid_w[:, None]  # (K, GW)
    y_lo, y_hi, wy_lo, wy_hi, in_y = _bilinear_axis(ys, height)
    x_lo, x_hi, wx_lo, wx_hi, in_x = _bilinear_axis(xs, width)
    keep = (in_y & in_x & valid_y[:, None, None, :, None] & valid_x[:, None, None, None, :]).to(
        rois.dtype
    )
    shape = (rois.shape[0], ph, pw, gh_max, gw_max)
    corners = [
        (y_lo, x_lo, wy_lo * wx_lo),
        (y_lo, x_hi, wy_lo * wx_hi),
        (y_hi, x_lo, wy_hi * wx_lo),
        (y_hi, x_hi, wy_hi * wx_hi),
    ]
    pixel = torch.stack([(yy * width + xx).expand(shape) for yy, xx, _ in corners], -1)
    weight = torch.stack([(w * keep).expand(shape) for _, _, w in corners], -1)
    return pixel, (weight / count[:, None, None, None, None, None]).to(dtype)


def _pool_dense(input: Tensor, batch_index: Tensor, pixel: Tensor, weight: Tensor) -> Tensor:
    """Small maps (RecursiveMix's 1x1 ROI on a 7x7 map): fold the sampling points into a
    dense (K, bins, H*W) weight matrix and use one batched matmul; cheaper forward and
    backward than gathering every point's channel vector."""
    k, ph, pw = pixel.shape[:3]
    _, c, height, width = input.shape
    points = pixel[0, 0, 0].numel()
    dense = torch.zeros(k, ph * pw, height * width, dtype=input.dtype, device=input.device)
    dense.scatter_add_(2, pixel.reshape(k, ph * pw, points), weight.reshape(k, ph * pw, points))
    feats = input.index_select(0, batch_index).reshape(k, c, height * width)
    return torch.bmm(feats, dense.transpose(1, 2)).view(k, c, ph, pw)


def _pool_gather(input: Tensor, batch_index: Tensor, pixel: Tensor, weight: Tensor) -> Tensor:
    """Large maps: one gather of channel vectors, (N*H*W, C)[index] -> (K, PH, PW, GH, GW,
    4, C), weighted and summed over the sampling points."""
    n, c, height, width = input.shape
    index = pixel + (batch_index * (height * width))[:, None, None, None, None, None]
    flat = input.permute(0, 2, 3, 1).reshape(n * height * width, c)
    values = flat.index_select(0, index.reshape(-1)).view(*index.shape, c)
    out = (values * weight[..., None]).sum(dim=(3, 4, 5))  # (K, PH, PW, C)
    return out.permute(0, 3, 1, 2).contiguous()


def roi_align(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """ROI-Align, same arguments and result as ``torchvision.ops.roi_align``.

    Args:
        input: (N, C, H, W) float feature map.
        boxes: (K, 5) ``[batch_index, x1, y1, x2, y2]`` in input-image coordinates, or a list
            of N (L_i, 4) xyxy tensors.
        output_size: (PH, PW) bins per ROI.
        spatial_scale: feature size / image size (boxes are multiplied by it).
        sampling_ratio: points per bin side; <= 0 means adaptive ``ceil(roi_size / bins)``.
        aligned: shift boxes by -0.5 feature pixel (pixel-edge corners); if False, ROIs are
            at least 1x1 (legacy Mask R-CNN behaviour).

    Returns:
        (K, C, PH, PW) tensor of ``input``'s dtype.
    """
    _check_input(input, spatial_scale)
    ph, pw = _pair(output_size)
    rois = boxes_to_rois(boxes).to(device=input.device)
    n, c, height, width = input.shape
    k = rois.shape[0]
    if k == 0:
        return input.new_zeros(0, c, ph, pw)
    # Index and coordinate arithmetic in float32 at least (torchvision computes in the
    # input's dtype; float64 inputs keep float64 so gradcheck is exact).
    ctype = torch.float64 if input.dtype == torch.float64 else torch.float32
    rois = rois.to(ctype)
    batch_index = rois[:, 0].long()
    # On the CPU a bad index raises at once; elsewhere an async device assertion (no sync).
    require(
        ((batch_index >= 0) & (batch_index < n)).all(), f"boxes batch indices must lie in [0, {n})"
    )
    pixel, weight = _sample_weights(
        rois, (ph, pw), (height, width), spatial_scale, sampling_ratio, aligned, input.dtype
    )
    if height * width <= pixel[0, 0, 0].numel():
        return _pool_dense(input, batch_index, pixel, weight)
    return _pool_gather(input, batch_index, pixel, weight)
