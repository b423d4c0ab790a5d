"""Pose-anchored cues: a pose model's feature maps and heatmaps sampled at and around each joint.

One sampling function, `sample_at_joints`, serves every backend: it takes the joints in the
model-input crop's pixels, the backend's maps, and a `GridGeometry` saying where the maps'
cells sit on that crop (the two backends differ in crop size and in their cell convention).
Everything is sampled from the same forward pass that produced the keypoints, vectorised over
joints and window points. This module knows no backend: each backend declares its own grid
geometry, levels and scales (e.g. backends/blazepose_cues.py) and calls `sample_at_joints`.

Heatmap cues come in these kinds (cache/schema.py HEATMAP_KINDS, recorded in the store's layout):
- "sigmoid" / "clipped": a dense [h, w, K] map (BlazePose's heatmap logits through a sigmoid;
  mmpose heatmap heads' Gaussians clipped to [0, 1]), bilinearly sampled one cell apart;
- "simcc_outer": a SimCC head's separable map, the outer product of its softmaxed x and y
  vectors, integrated over P x P square cells around the joint: each patch value is the
  probability mass the model puts on that cell (so it lies in [0, 1] and the patch sums to <= 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from posebridge.stages.extract.config import CueConfig

@dataclass(frozen=True)
class GridGeometry:
    """Where the cells of a backend's maps sit on its model-input crop.

    Cell (i, j) of an h x w map over a crop of `width` x `height` pixels is centred on crop point
    ((j + cell_offset) * width / w, (i + cell_offset) * height / h). cell_offset is 0.5 when cells
    are centred in their block of pixels and points are continuous (pixel k spans [k, k+1];
    BlazePose, TF resizing), and 0.0 in mmpose's codec convention (pixel centres at integers and
    cell i centred on input pixel i * stride; see mmpose/codecs/msra_heatmap.py).
    """

    width: float
    height: float
    cell_offset: float

    def to_cells(self, xy: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Crop points [..., 2] as (x, y) cell coordinates (cell centres at integers) of a [h, w, ...] map."""
        return (xy[..., 0] * (shape[1] / self.width) - self.cell_offset,
                xy[..., 1] * (shape[0] / self.height) - self.cell_offset)


@dataclass(frozen=True)
class DenseHeatmaps:
    """A [h, w, K] map per joint channel; `to_probability` maps sampled corner values into [0, 1]."""

    maps: np.ndarray
    to_probability: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SimCCHeatmaps:
    """A SimCC head's 1-D distributions: x [K, Wx] and y [K, Hy], each softmaxed (rows sum to 1).

    Bin b is centred on input pixel b / split_ratio (mmpose's convention, see
    mmpose/codecs/simcc_label.py); the patch cell is `cell` input pixels wide.
    """

    x: np.ndarray
    y: np.ndarray
    split_ratio: float
    cell: float


def _bilinear_corners(shape: tuple[int, ...], x: np.ndarray, y: np.ndarray):
    """Rows, cols and weights [4, *S] of the four grid cells around each point, edge-clamped.

    x, y are cell coordinates (cell centres at integers) of shape S on a grid of `shape` [H, W, ...].
    """
    h, w = shape[:2]
    x = np.clip(x, 0, w - 1)
    y = np.clip(y, 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.intp), w - 2)
    y0 = np.minimum(np.floor(y).astype(np.intp), h - 2)
    fx, fy = x - x0, y - y0
    rows = np.stack([y0, y0, y0 + 1, y0 + 1])
    cols = np.stack([x0, x0 + 1, x0, x0 + 1])
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    return rows, cols, weights


def _patch_offsets(patch: int) -> np.ndarray:
    return np.arange(patch) - (patch - 1) / 2


def _dense_patches(xy: np.ndarray, heatmaps: DenseHeatmaps, channels: np.ndarray, geometry: GridGeometry,
                   patch: int) -> np.ndarray:
    """The joint's own channel, P x P samples one map cell apart around the joint; probabilities
    (not logits) are interpolated, so a patch cell is a blend of probabilities."""
    cx, cy = geometry.to_cells(xy, heatmaps.maps.shape)
    steps = _patch_offsets(patch)
    px = cx[:, None, None] + steps[None, None, :]  # [Vc, 1, P]
    py = cy[:, None, None] + steps[None, :, None]  # [Vc, P, 1]
    rows, cols, weights = _bilinear_corners(heatmaps.maps.shape, *np.broadcast_arrays(px, py))
    corners = heatmaps.to_probability(heatmaps.maps[rows, cols, channels[:, None, None]])  # [4, Vc, P, P]
    return (weights * corners).sum(axis=0)


def _cell_masses(probs: np.ndarray, centres: np.ndarray, split_ratio: float, cell: float) -> np.ndarray:
    """Mass of each row of `probs` [Vc, B] inside cells [c - cell/2, c + cell/2] for centres [Vc, P] (input px).

    The distribution is uniform within each bin (bin b spans input pixels (b -+ 0.5) / split_ratio),
    so the cumulative mass is piecewise linear and a cell's mass is a difference of two of its values.
    """
    bins = probs.shape[1]
    cumulative = np.concatenate([np.zeros((len(probs), 1)), np.cumsum(probs, axis=1, dtype=np.float64)], axis=1)
    grid = np.arange(bins + 1, dtype=np.float64)  # bin edges, in bins: edge k is where bin k starts
    masses = np.empty(centres.shape)
    for v in range(len(probs)):
        edges_hi = (centres[v] + cell / 2) * split_ratio + 0.5
        edges_lo = (centres[v] - cell / 2) * split_ratio + 0.5
        masses[v] = np.interp(edges_hi, grid, cumulative[v]) - np.interp(edges_lo, grid, cumulative[v])
    return np.clip(masses, 0.0, 1.0)


def _simcc_patches(xy: np.ndarray, heatmaps: SimCCHeatmaps, channels: np.ndarray, patch: int) -> np.ndarray:
    """P x P cells of `cell` input pixels around each joint; value = mass of x-cell times mass of y-cell,
    which is the mass of the outer-product map over that square (the map is separable)."""
    steps = _patch_offsets(patch) * heatmaps.cell
    mass_x = _cell_masses(heatmaps.x[channels], xy[:, 0, None] + steps, heatmaps.split_ratio, heatmaps.cell)
    mass_y = _cell_masses(heatmaps.y[channels], xy[:, 1, None] + steps, heatmaps.split_ratio, heatmaps.cell)
    return mass_y[:, :, None] * mass_x[:, None, :]  # [Vc, P(rows = y), P(cols = x)]


def sample_at_joints(xy: np.ndarray, levels: Sequence[tuple[np.ndarray, float]],
                     heatmaps: DenseHeatmaps | SimCCHeatmaps, channels: np.ndarray, geometry: GridGeometry,
                     cfg: CueConfig) -> tuple[np.ndarray, np.ndarray]:
    """(features [Vc, C] float32, heatmap patches [Vc, P, P] float32) at the cue joints.

    xy: [Vc, 2] cue joints in crop pixels (the convention of `geometry`); levels: ([H, W, C] map,
    scale) pairs in CueConfig.levels order, each map's window mean multiplied by its scale;
    channels: [Vc] the heatmap channel of each cue joint.
    """
    xy = np.asarray(xy, np.float64)
    channels = np.asarray(channels, np.intp)
    offsets = np.linspace(-cfg.window_radius, cfg.window_radius, cfg.window) if cfg.window > 1 else np.zeros(1)
    dx, dy = np.meshgrid(offsets, offsets, indexing="xy")
    window = xy[:, None, :] + np.stack([dx.ravel(), dy.ravel()], axis=1)  # [Vc, k*k, 2] crop pixels

    parts = []
    for grid, scale in levels:
        rows, cols, weights = _bilinear_corners(grid.shape, *geometry.to_cells(window, grid.shape))
        # One gather of all corners of all window points, then their weighted mean per joint.
        weights = weights * (scale / weights.shape[2])
        parts.append(np.einsum("qvk,qvkc->vc", weights.astype(grid.dtype), grid[rows, cols]))
    features = np.concatenate(parts, axis=1).astype(np.float32)

    if isinstance(heatmaps, SimCCHeatmaps):
        patches = _simcc_patches(xy, heatmaps, channels, cfg.heatmap_patch)
    else:
        patches = _dense_patches(xy, heatmaps, channels, geometry, cfg.heatmap_patch)
    return features, patches.astype(np.float32)
