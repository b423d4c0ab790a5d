"""Pose-anchored cues: landmark-model feature maps and heatmaps sampled around each joint.

Everything is sampled from the same forward pass that produced the landmarks, in the 256x256
crop's pixel coordinates, and vectorised over joints and window points.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from posebridge.pipeline.config import CueConfig

from .backends.blazepose_landmarks import sigmoid
from .backends.blazepose_spec import FEATURE_LEVELS, LANDMARK_INPUT_SIZE


def feature_channels(levels: Sequence[str]) -> int:
    """C of the concatenated feature vector for these levels."""
    return sum(FEATURE_LEVELS[name].channels for name in levels)


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


def sample_cues(landmarks_crop_px: np.ndarray, heatmap_logits: np.ndarray, levels: Mapping[str, np.ndarray],
                cfg: CueConfig) -> tuple[np.ndarray, np.ndarray]:
    """(features [Vc, C] float32, heatmaps [Vc, P, P] float32) for the joints in cfg.joints.

    landmarks_crop_px: [39, >=2] landmark x, y in crop pixels; heatmap_logits: [64, 64, 39];
    levels: short level name -> [H, W, C] feature map of the same crop.
    """
    joints = np.asarray(cfg.joints)
    xy = landmarks_crop_px[joints, :2].astype(np.float64)  # [Vc, 2]

    offsets = np.linspace(-cfg.window_radius, cfg.window_radius, cfg.window) if cfg.window > 1 else np.zeros(1)
    dx, dy = np.meshgrid(offsets, offsets, indexing="xy")
    window = xy[:, None, :] + np.stack([dx.ravel(), dy.ravel()], axis=1)  # [Vc, k*k, 2] crop pixels

    # Each level is divided by its pinned RMS (blazepose_spec.FEATURE_LEVELS), so all levels enter
    # at unit scale however large their activations (backbone sums ~30x the FPN maps). A fixed
    # scale keeps the features linear in the activations and comparable across frames and clips;
    # a per-vector norm would blow up near-zero vectors into noise and erase "how strongly".
    parts = []
    for name in cfg.levels:
        grid = levels[name]
        to_cells = grid.shape[0] / LANDMARK_INPUT_SIZE
        rows, cols, weights = _bilinear_corners(grid.shape, window[..., 0] * to_cells - 0.5,
                                                window[..., 1] * to_cells - 0.5)
        # One gather of all corners of all window points, then their weighted mean per joint.
        scale = 1 / (weights.shape[2] * FEATURE_LEVELS[name].rms)
        parts.append(np.einsum("qvk,qvkc->vc", (weights * scale).astype(grid.dtype), grid[rows, cols]))
    features = np.concatenate(parts, axis=1).astype(np.float32)

    # The joint's own heatmap channel, P x P samples one heatmap cell apart around the joint;
    # probabilities (not logits) are interpolated, so a patch cell is a blend of probabilities.
    to_cells = heatmap_logits.shape[0] / LANDMARK_INPUT_SIZE
    steps = np.arange(cfg.heatmap_patch) - (cfg.heatmap_patch - 1) / 2
    px = xy[:, 0, None, None] * to_cells - 0.5 + steps[None, None, :]  # [Vc, 1, P]
    py = xy[:, 1, None, None] * to_cells - 0.5 + steps[None, :, None]  # [Vc, P, 1]
    rows, cols, weights = _bilinear_corners(heatmap_logits.shape, *np.broadcast_arrays(px, py))
    corners = sigmoid(heatmap_logits[rows, cols, joints[:, None, None]])  # [4, Vc, P, P]
    heatmaps = (weights * corners).sum(axis=0)
    return features, heatmaps.astype(np.float32)
