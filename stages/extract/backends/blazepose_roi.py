"""Rotated square regions of interest and the affine maps between an image and a model input.

All geometry is in continuous pixel coordinates (pixel i spans [i, i+1]), as MediaPipe's
normalised coordinates are; `cv2_matrix` converts a map to OpenCV's pixel-centre convention.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# MediaPipe's RectTransformation for pose: the box around the two alignment points is enlarged
# by 1.25 and made square on its long side.
ROI_SCALE = 1.25


@dataclass(frozen=True)
class Roi:
    center: tuple[float, float]  # image pixels
    side: float  # image pixels
    rotation: float  # radians; the crop's "up" points along image direction (sin r, -cos r)


def roi_from_alignment_points(center: np.ndarray, scale_point: np.ndarray) -> Roi:
    """The pose ROI: centred on the hip centre, rotated so that hip -> scale point points up.

    Both points in image pixels; side = 2 * |scale_point - center| * ROI_SCALE.
    """
    dx, dy = float(scale_point[0] - center[0]), float(scale_point[1] - center[1])
    rotation = math.pi / 2 - math.atan2(-dy, dx)
    rotation = (rotation + math.pi) % (2 * math.pi) - math.pi  # into [-pi, pi)
    side = 2.0 * math.hypot(dx, dy) * ROI_SCALE
    return Roi((float(center[0]), float(center[1])), side, rotation)


def rotation(angle: float) -> np.ndarray:
    """2x2 counter-clockwise rotation by `angle` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


_rotation = rotation  # the old private name


def image_to_crop(roi: Roi, size: int) -> np.ndarray:
    """2x3 map from image pixels to pixels of the size x size crop of `roi`."""
    linear = rotation(roi.rotation).T * (size / roi.side)
    offset = size / 2 - linear @ np.asarray(roi.center)
    return np.hstack([linear, offset[:, None]])


def letterbox_to_input(width: int, height: int, size: int) -> np.ndarray:
    """2x3 map from image pixels into a size x size input that keeps the aspect ratio (padded)."""
    scale = size / max(width, height)
    return np.array([[scale, 0.0, (size - scale * width) / 2],
                     [0.0, scale, (size - scale * height) / 2]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 map to [N, 2] points."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    # Closed form: np.linalg.inv goes through LAPACK, whose thread pool wakes up and costs ~1 ms
    # per call while the interpreter's threads are busy.
    (a, b), (c, d) = matrix[:, :2]
    linear = np.array([[d, -b], [-c, a]]) / (a * d - b * c)
    return np.hstack([linear, (-linear @ matrix[:, 2])[:, None]])


def cv2_matrix(matrix: np.ndarray) -> np.ndarray:
    """The same map for cv2.warpAffine, whose pixel i is centred on coordinate i (not i + 0.5)."""
    linear = matrix[:, :2]
    return np.hstack([linear, (matrix[:, 2] + linear @ np.array([0.5, 0.5]) - 0.5)[:, None]])
