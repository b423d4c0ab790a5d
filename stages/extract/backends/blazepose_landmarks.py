"""BlazePose landmark model on a 256x256 ROI crop, with the feature maps the cues need as outputs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .blazepose_spec import (FEATURE_LEVELS, HEATMAP_TENSOR, LANDMARK_INPUT_SIZE, LANDMARKS_TENSOR,
                             NUM_LANDMARKS, PRESENCE_TENSOR)
from .tflite_outputs import load_interpreter, output_index_by_name

# MediaPipe's RefineLandmarksFromHeatmap settings for pose.
REFINE_KERNEL = 7
REFINE_MIN_CONFIDENCE = 0.5


@dataclass
class LandmarkOutput:
    landmarks: np.ndarray  # [39, 5] x, y in crop pixels, z (crop-pixel scale), visibility, presence logits
    presence: float  # pose presence probability
    heatmap_logits: np.ndarray  # [64, 64, 39]
    levels: dict[str, np.ndarray]  # short level name -> [H, W, C]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(logits, -80, 80)))  # clipped: heatmap logits reach -90


def refine_from_heatmap(xy: np.ndarray, heatmap_logits: np.ndarray, crop_size: int = LANDMARK_INPUT_SIZE,
                        kernel: int = REFINE_KERNEL, min_confidence: float = REFINE_MIN_CONFIDENCE) -> np.ndarray:
    """Landmark x, y moved to the confidence-weighted centre of its heatmap channel near it.

    Like MediaPipe's RefineLandmarksFromHeatmap: a kernel x kernel window of heatmap cells around
    the cell holding the landmark (clipped at the map's edge); applied only where the window's
    peak confidence reaches min_confidence and the landmark lies on the map.
    """
    rows, cols, channels = heatmap_logits.shape
    cell_col = np.floor(xy[:, 0] * cols / crop_size).astype(np.int64)
    cell_row = np.floor(xy[:, 1] * rows / crop_size).astype(np.int64)
    offsets = np.arange(kernel) - kernel // 2
    win_rows = cell_row[:, None] + offsets  # [N, k]
    win_cols = cell_col[:, None] + offsets
    inside = ((win_rows >= 0) & (win_rows < rows))[:, :, None] & ((win_cols >= 0) & (win_cols < cols))[:, None, :]
    channel = np.arange(len(xy))[:, None, None]
    confidence = sigmoid(heatmap_logits[np.clip(win_rows, 0, rows - 1)[:, :, None],
                                        np.clip(win_cols, 0, cols - 1)[:, None, :], channel])
    confidence = np.where(inside, confidence, 0.0)  # [N, k, k]
    total = confidence.sum(axis=(1, 2))
    on_map = (cell_col >= 0) & (cell_col < cols) & (cell_row >= 0) & (cell_row < rows)
    refine = on_map & (confidence.max(axis=(1, 2)) >= min_confidence) & (total > 0)
    safe_total = np.where(total > 0, total, 1.0)
    mean_col = (confidence.sum(axis=1) * win_cols).sum(axis=1) / safe_total
    mean_row = (confidence.sum(axis=2) * win_rows).sum(axis=1) / safe_total
    refined = np.stack([(mean_col + 0.5) * crop_size / cols, (mean_row + 0.5) * crop_size / rows], axis=1)
    return np.where(refine[:, None], refined, xy).astype(xy.dtype)


class LandmarkModel:
    def __init__(self, model_path: Path, levels: Iterable[str], num_threads: int = 2):
        self.level_names = tuple(levels)
        # Only what run() reads stays in the model: the segmentation and world-landmark branches are pruned.
        read = [LANDMARKS_TENSOR, PRESENCE_TENSOR, HEATMAP_TENSOR] + [FEATURE_LEVELS[n].tensor for n in self.level_names]
        self._interpreter = load_interpreter(model_path, read, prune=True, num_threads=num_threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._outputs = output_index_by_name(self._interpreter)

    def run(self, crop_rgb: np.ndarray) -> LandmarkOutput:
        """crop_rgb: [256, 256, 3] uint8 ROI crop."""
        self._interpreter.set_tensor(self._input, crop_rgb[None].astype(np.float32) * (1 / 255))
        self._interpreter.invoke()
        read = self._interpreter.get_tensor
        landmarks = read(self._outputs[LANDMARKS_TENSOR]).reshape(NUM_LANDMARKS, 5)
        heatmap = read(self._outputs[HEATMAP_TENSOR])[0]
        landmarks[:, :2] = refine_from_heatmap(landmarks[:, :2], heatmap)
        levels = {name: read(self._outputs[FEATURE_LEVELS[name].tensor])[0] for name in self.level_names}
        return LandmarkOutput(landmarks, float(read(self._outputs[PRESENCE_TENSOR]).ravel()[0]), heatmap, levels)
