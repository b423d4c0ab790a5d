"""The embedded backend: MediaPipe's BlazePose (full) models run directly under LiteRT.

Per frame, as MediaPipe's pose graph does: the detector finds a person on the first frame (or
after the person is lost), its hip-centre keypoints give a rotated ROI, the landmark model runs
on that ROI, and the landmarks' two aux points give the next frame's ROI. One change: when a
tracked ROI loses the person, the detector runs again on the same frame instead of the next one,
so a tracking slip costs a detector call rather than a frame without pose.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from posebridge.pipeline.config import BLAZEPOSE_JOINTS, ExtractConfig
from posebridge.pipeline.errors import UserError
from posebridge.pipeline.fingerprint import file_sha256

from .. import cues
from . import blazepose_roi as geometry
from .base import FrameCues
from .blazepose_detector import NMS_IOU_THRESHOLD, PoseDetector
from .blazepose_landmarks import REFINE_KERNEL, REFINE_MIN_CONFIDENCE, LandmarkModel, LandmarkOutput, sigmoid
from .blazepose_spec import (AUX_ROI_POINTS, DETECTOR_FILE, DETECTOR_SHA256, FEATURE_LEVELS, LANDMARK_FILE,
                             LANDMARK_INPUT_SIZE, LANDMARK_SHA256)

_PINNED_MODELS = {"pose_detection": (DETECTOR_FILE, DETECTOR_SHA256),
                  "pose_landmark_full": (LANDMARK_FILE, LANDMARK_SHA256)}


def pinned_model_files(models_dir: Path) -> dict[str, Path]:
    """The two model files, checked to exist and to be the pinned versions."""
    files = {}
    for key, (filename, sha256) in _PINNED_MODELS.items():
        path = Path(models_dir) / filename
        if not path.is_file():
            raise UserError(f"pose model {path} is missing; run `make models` (or point --models-dir / "
                            f"$POSEBRIDGE_MODELS at the folder holding {filename})")
        if file_sha256(path) != sha256:
            raise UserError(f"pose model {path} is not the pinned MediaPipe 0.10.21 file (sha256 differs); "
                            f"delete it and run `make models`")
        files[key] = path
    return files


def _check_cue_config(config: ExtractConfig) -> None:
    """Refuse cue settings this model cannot serve, before any store is created for them."""
    unknown = [name for name in config.cues.levels if name not in FEATURE_LEVELS]
    if unknown or not config.cues.levels:
        raise UserError(f"--levels {','.join(config.cues.levels) or '(empty)'}: the embedded model has levels "
                        f"{', '.join(FEATURE_LEVELS)}")
    bad = [j for j in config.cues.joints if not 0 <= j < len(BLAZEPOSE_JOINTS)]
    if bad or not config.cues.joints:
        raise UserError(f"--joints {bad or '(empty)'}: BlazePose joints are 0..{len(BLAZEPOSE_JOINTS) - 1}")


class BlazePoseBackend:
    name = "embedded"
    joint_names = BLAZEPOSE_JOINTS

    def __init__(self, config: ExtractConfig, models_dir: Path, num_threads: int = 2):
        _check_cue_config(config)
        self.config = config
        self._files = pinned_model_files(models_dir)
        self._detector = PoseDetector(self._files["pose_detection"], config.min_detection_score, num_threads)
        self._landmarks = LandmarkModel(self._files["pose_landmark_full"], config.cues.levels, num_threads)
        self._roi: geometry.Roi | None = None
        self.stats = {"frames": 0, "detector_calls": 0, "landmark_calls": 0, "frames_without_person": 0}

    def feature_channels(self) -> int:
        return cues.feature_channels(self.config.cues.levels)

    def model_files(self) -> dict[str, Path]:
        return dict(self._files)

    def settings(self) -> dict:
        """Constants of this backend's code that shape its output (they enter the cache fingerprint)."""
        return {"nms_iou": NMS_IOU_THRESHOLD, "roi_scale": geometry.ROI_SCALE,
                "refine": [REFINE_KERNEL, REFINE_MIN_CONFIDENCE],
                "levels": {name: dataclasses.asdict(FEATURE_LEVELS[name]) for name in self.config.cues.levels}}

    def reset(self) -> None:
        self._roi = None

    def process(self, frame) -> FrameCues:
        """Pose and cues of one RGBFrame or YUV420Frame; remembers the ROI for the next frame."""
        self.stats["frames"] += 1
        tracked = self._roi is not None
        roi = self._roi if tracked else self._detect(frame)
        found = self._run_landmarks(frame, roi) if roi is not None else None
        if found is None and tracked:
            roi = self._detect(frame)
            found = self._run_landmarks(frame, roi) if roi is not None else None
        if found is None:
            self._roi = None
            self.stats["frames_without_person"] += 1
            return self._no_person()
        output, crop_to_image = found
        aux = geometry.apply(crop_to_image, output.landmarks[list(AUX_ROI_POINTS), :2])
        self._roi = geometry.roi_from_alignment_points(aux[0], aux[1])
        return self._frame_cues(frame, output, crop_to_image, roi.side)

    def _detect(self, frame) -> geometry.Roi | None:
        self.stats["detector_calls"] += 1
        detection = self._detector.detect(frame)
        if detection is None:
            return None
        return geometry.roi_from_alignment_points(detection.keypoints[0], detection.keypoints[1])

    def _run_landmarks(self, frame, roi: geometry.Roi) -> tuple[LandmarkOutput, np.ndarray] | None:
        """Landmark output and the crop -> image map, or None when the ROI holds no person."""
        size = LANDMARK_INPUT_SIZE
        to_crop = geometry.image_to_crop(roi, size)
        crop = frame.warp(geometry.cv2_matrix(to_crop), size, border="replicate")
        self.stats["landmark_calls"] += 1
        output = self._landmarks.run(crop)
        if output.presence < self.config.min_pose_presence:
            return None
        return output, geometry.invert(to_crop)

    def _frame_cues(self, frame, output: LandmarkOutput, crop_to_image: np.ndarray, roi_side: float) -> FrameCues:
        lm = output.landmarks[: len(BLAZEPOSE_JOINTS)]
        image_xy = geometry.apply(crop_to_image, lm[:, :2])
        keypoints = np.empty((len(lm), 5), np.float32)
        keypoints[:, 0] = image_xy[:, 0] / frame.width
        keypoints[:, 1] = image_xy[:, 1] / frame.height
        keypoints[:, 2] = lm[:, 2] * (roi_side / LANDMARK_INPUT_SIZE) / frame.width  # z scales like x
        keypoints[:, 3:] = sigmoid(lm[:, 3:5])
        features, heatmaps = cues.sample_cues(output.landmarks, output.heatmap_logits, output.levels,
                                              self.config.cues)
        return FrameCues(keypoints, output.presence, features, heatmaps)

    def _no_person(self) -> FrameCues:
        cue = self.config.cues
        return FrameCues(np.zeros((len(BLAZEPOSE_JOINTS), 5), np.float32), 0.0,
                         np.zeros((len(cue.joints), self.feature_channels()), np.float32),
                         np.zeros((len(cue.joints), cue.heatmap_patch, cue.heatmap_patch), np.float32))
