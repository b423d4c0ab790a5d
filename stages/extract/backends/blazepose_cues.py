"""The embedded backend's cues: the BlazePose landmark model's grid, levels and scales, sampled by
the generic stages/extract/cues.py `sample_at_joints`."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from posebridge.stages.extract.config import CueConfig

from ..cues import DenseHeatmaps, GridGeometry, sample_at_joints
from .blazepose_landmarks import sigmoid
from .blazepose_spec import FEATURE_LEVELS, LANDMARK_INPUT_SIZE

# The landmark model's maps tile its square crop; landmarks are continuous crop pixels.
LANDMARK_GRID = GridGeometry(LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE, cell_offset=0.5)


def feature_channels(levels: Sequence[str]) -> int:
    """C of the concatenated feature vector for these landmark-model levels."""
    return sum(FEATURE_LEVELS[name].channels for name in levels)


def sample_cues(landmarks_crop_px: np.ndarray, heatmap_logits: np.ndarray, levels: Mapping[str, np.ndarray],
                cfg: CueConfig) -> tuple[np.ndarray, np.ndarray]:
    """The embedded backend's cues through sample_at_joints.

    landmarks_crop_px: [39, >=2] landmark x, y in crop pixels; heatmap_logits: [64, 64, 39];
    levels: short level name -> [H, W, C] feature map of the same crop.
    Each level is divided by its pinned RMS (blazepose_spec.FEATURE_LEVELS), so all levels enter
    at unit scale however large their activations (backbone sums ~30x the FPN maps). A fixed
    scale keeps the features linear in the activations and comparable across frames and clips;
    a per-vector norm would blow up near-zero vectors into noise and erase "how strongly".
    """
    joints = np.asarray(cfg.joints)
    scaled = [(levels[name], 1 / FEATURE_LEVELS[name].rms) for name in cfg.levels]
    return sample_at_joints(landmarks_crop_px[joints, :2], scaled, DenseHeatmaps(heatmap_logits, sigmoid),
                            joints, LANDMARK_GRID, cfg)
