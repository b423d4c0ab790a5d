"""BlazePose person detector: letterboxed 224x224 input, SSD anchors, weighted NMS.

Parameters are those compiled into MediaPipe 0.10.21's PoseDetectionCpu graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import blazepose_roi as geometry
from .blazepose_spec import DETECTOR_BOXES_TENSOR, DETECTOR_INPUT_SIZE, DETECTOR_SCORES_TENSOR
from .tflite_outputs import load_interpreter, output_index_by_name

NMS_IOU_THRESHOLD = 0.3
_SCORE_CLIP = 100.0
_NUM_KEYPOINTS = 4  # hip centre, full-body scale point, shoulder centre, upper-body scale point


def ssd_anchor_centers(input_size: int = DETECTOR_INPUT_SIZE) -> np.ndarray:
    """[2254, 2] anchor centres, normalised to the input.

    Five layers with strides 8, 16, 32, 32, 32 and two anchors per cell each; layers sharing a
    stride are merged cell by cell (6 anchors per 32-stride cell). Every anchor is 1 x 1.
    """
    strides = (8, 16, 32, 32, 32)
    centers = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = sum(1 for s in strides[layer:] if s == stride)
        cells = -(-input_size // stride)
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centers.append(np.repeat(grid, 2 * same, axis=0))
        layer += same
    return np.concatenate(centers).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    score: float
    box: np.ndarray  # [4] x0, y0, x1, y1 of the face box, image pixels
    keypoints: np.ndarray  # [4, 2] image pixels


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
                 iou_threshold: float = NMS_IOU_THRESHOLD) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Best-first clusters of overlapping candidates, each averaged with score weights.

    A cluster keeps its best member's score; its box and keypoints are the score-weighted mean of
    every remaining candidate whose IoU with the best one exceeds the threshold.
    """
    remaining = np.argsort(-scores, kind="stable")
    clusters = []
    while remaining.size:
        in_cluster = _iou(boxes[remaining[0]], boxes[remaining]) > iou_threshold
        in_cluster[0] = True  # even a degenerate (zero-area) best box forms its own cluster
        members, remaining = remaining[in_cluster], remaining[~in_cluster]
        weights = scores[members] / scores[members].sum()
        clusters.append((float(scores[members[0]]), weights @ boxes[members],
                         np.tensordot(weights, keypoints[members], axes=1)))
    return clusters


class PoseDetector:
    def __init__(self, model_path: Path, min_score: float, num_threads: int = 2):
        self.min_score = min_score
        self._interpreter = load_interpreter(model_path, num_threads=num_threads)
        outputs = output_index_by_name(self._interpreter)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._boxes = outputs[DETECTOR_BOXES_TENSOR]
        self._scores = outputs[DETECTOR_SCORES_TENSOR]
        self._anchors = ssd_anchor_centers()

    def detect(self, frame) -> Detection | None:
        """The best person in the frame (after NMS), or None below the score threshold."""
        found = self.detect_all(frame, 1)
        return found[0] if found else None

    def detect_all(self, frame, max_people: int) -> list[Detection]:
        """Up to max_people people in the frame, best first (NMS clusters at or above the threshold)."""
        size = DETECTOR_INPUT_SIZE
        to_input = geometry.letterbox_to_input(frame.width, frame.height, size)
        # Grey padding: 128 is (almost) zero in the model's [-1, 1] range.
        rgb = frame.warp(geometry.cv2_matrix(to_input), size, border="constant", value=128)
        self._interpreter.set_tensor(self._input, (rgb[None].astype(np.float32) * (2 / 255) - 1))
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._scores)[0, :, 0]
        scores = 1 / (1 + np.exp(-np.clip(logits.astype(np.float64), -_SCORE_CLIP, _SCORE_CLIP)))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        raw = self._interpreter.get_tensor(self._boxes)[0, keep] / size
        anchors = self._anchors[keep]
        center, half = raw[:, 0:2] + anchors, raw[:, 2:4] / 2
        boxes = np.concatenate([center - half, center + half], axis=1) * size
        keypoints = (raw[:, 4:].reshape(-1, _NUM_KEYPOINTS, 2) + anchors[:, None]) * size
        to_image = geometry.invert(to_input)
        return [Detection(score, geometry.apply(to_image, box.reshape(2, 2)).ravel(), geometry.apply(to_image, points))
                for score, box, points in weighted_nms(scores[keep], boxes, keypoints)[:max_people]]
