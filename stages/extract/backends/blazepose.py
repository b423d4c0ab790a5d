"""The embedded backend: MediaPipe's BlazePose (full) models run directly under LiteRT.

Per person, as MediaPipe's pose graph does: the detector finds a person, its hip-centre keypoints
give a rotated ROI, the landmark model runs on that ROI, and the landmarks' two aux points give
the next frame's ROI. Unlike MediaPipe, up to ExtractConfig.max_persons people are followed, each
in its own slot (tracking.py decides when the detector looks and which slot a person gets), and
when a tracked ROI loses its person the detector runs again on the same frame instead of the next.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from posebridge.stages.extract.config import BLAZEPOSE_JOINTS, ExtractConfig
from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import file_sha256

from .. import tracking
from . import blazepose_cues as cues
from . import blazepose_roi as geometry
from .base import FrameCues, PoseBackend
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
            from posebridge.stages.paths import models_search_text

            raise UserError(f"pose model {path} is missing. Model folders, by precedence (--models-dir or $POSEBRIDGE_MODELS when given, else the first that exists): {models_search_text(models_dir)}. "
                            f"Fill the per-user folder with `posebridge setup` (or `make models` in a clone), or "
                            f"point --models-dir / $POSEBRIDGE_MODELS at the folder holding {filename}")
        if file_sha256(path) != sha256:
            raise UserError(f"pose model {path} is not the pinned MediaPipe 0.10.21 file (sha256 differs); "
                            f"delete it and run `posebridge setup` (or `make models`)")
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


def _roi_box(roi: geometry.Roi) -> np.ndarray:
    """The ROI's axis-aligned square [x0, y0, x1, y1]: what tracking compares people by (a detection
    and the previous frame's landmarks give the same kind of ROI for one person)."""
    (cx, cy), half = roi.center, roi.side / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


class BlazePoseBackend(PoseBackend):
    name = "embedded"
    skeleton = "blazepose33"
    joint_names = BLAZEPOSE_JOINTS
    heatmap_kind = "sigmoid"

    def __init__(self, config: ExtractConfig, models_dir: Path, num_threads: int = 2):
        _check_cue_config(config)
        self.config = config
        self._files = pinned_model_files(models_dir)
        self._detector = PoseDetector(self._files["pose_detection"], config.min_detection_score, num_threads)
        self._landmarks = LandmarkModel(self._files["pose_landmark_full"], config.cues.levels, num_threads)
        self._slots = tracking.SlotTable(config.max_persons)  # slot state: the person's next ROI
        self.stats = {"frames": 0, "detector_calls": 0, "landmark_calls": 0, "frames_without_person": 0,
                      "persons": 0}

    def feature_channels(self) -> int:
        return cues.feature_channels(self.config.cues.levels)

    def model_files(self) -> dict[str, Path]:
        return dict(self._files)

    def settings(self) -> dict:
        """Constants of this backend's code that shape its output (they enter the cache fingerprint)."""
        return {"nms_iou": NMS_IOU_THRESHOLD, "roi_scale": geometry.ROI_SCALE,
                "refine": [REFINE_KERNEL, REFINE_MIN_CONFIDENCE],
                "tracking": {"same_person_iou": tracking.SAME_PERSON_IOU, "resume_iou": tracking.RESUME_IOU,
                             "forget_after": tracking.FORGET_AFTER, "look_every": self._slots.look_every,
                             "look_after_loss": tracking.LOOK_AFTER_LOSS},
                "levels": {name: dataclasses.asdict(FEATURE_LEVELS[name]) for name in self.config.cues.levels}}

    def runtime_packages(self) -> tuple[str, ...]:
        return ("ai-edge-litert",)

    def reset(self) -> None:
        self._slots.reset()

    def process(self, frame) -> FrameCues:
        """Pose and cues of up to max_persons people in one RGBFrame or YUV420Frame; slot m of the
        result is track m (tracking.py), and each track's ROI is remembered for the next frame.

        Each tracked person costs one landmark call; the detector runs only when nobody is tracked,
        when a track was lost in this frame (then on this same frame, so a tracking slip costs a
        detector call rather than a frame without pose), and every LOOK_EVERY frames while a slot is free.
        """
        self.stats["frames"] += 1
        found: dict[int, tuple[LandmarkOutput, np.ndarray, geometry.Roi]] = {}
        lost = False
        for slot in self._slots.tracked():
            roi = self._slots.slots[slot].state
            result = self._run_landmarks(frame, roi)
            if result is None:
                self._slots.lose(slot)
                lost = True
            else:
                found[slot] = (*result, roi)
        next_rois = {slot: self._next_roi(out, to_image) for slot, (out, to_image, _) in found.items()}
        self._drop_duplicates(found, next_rois)
        if self._slots.should_look(lost):
            self._add_new_people(frame, found, next_rois)
        for slot in self._slots.tracked():
            if slot not in found:
                self._slots.lose(slot)
        for slot, roi in next_rois.items():
            self._slots.track(slot, roi, _roi_box(roi))
        self._slots.end_frame()
        if not found:
            self.stats["frames_without_person"] += 1
        self.stats["persons"] += len(found)
        out = self._no_person()
        for slot, (output, to_image, roi) in found.items():
            self._fill(out, slot, frame, output, to_image, roi.side)
        return out

    @staticmethod
    def _next_roi(output: LandmarkOutput, crop_to_image: np.ndarray) -> geometry.Roi:
        aux = geometry.apply(crop_to_image, output.landmarks[list(AUX_ROI_POINTS), :2])
        return geometry.roi_from_alignment_points(aux[0], aux[1])

    def _drop_duplicates(self, found: dict, next_rois: dict) -> None:
        """Two tracks that drifted onto one person: the less present one is dropped."""
        if len(found) < 2:
            return
        slots = sorted(found)
        boxes = np.stack([_roi_box(next_rois[s]) for s in slots])
        for i in tracking.duplicates(boxes, np.array([found[s][0].presence for s in slots])):
            del found[slots[i]], next_rois[slots[i]]
            self._slots.lose(slots[i])

    def _add_new_people(self, frame, found: dict, next_rois: dict) -> None:
        """Run the detector; each candidate that is nobody tracked and has a pose takes a free slot."""
        self.stats["detector_calls"] += 1
        # The best M candidates besides those tracked now (they are usually among the best).
        detections = self._detector.detect_all(frame, self.config.max_persons + len(next_rois))
        rois = [geometry.roi_from_alignment_points(d.keypoints[0], d.keypoints[1]) for d in detections]
        boxes = np.stack([_roi_box(r) for r in rois]) if rois else np.zeros((0, 4))

        def tracked_boxes() -> np.ndarray:
            return np.stack([_roi_box(r) for r in next_rois.values()]) if next_rois else np.zeros((0, 4))

        for k in self._slots.new_detections(boxes, tracked_boxes()):
            free = [s for s in self._slots.free() if s not in found]
            if not free:
                break
            result = self._run_landmarks(frame, rois[k])
            if result is None:
                continue
            roi = self._next_roi(*result)
            if len(next_rois) and tracking.iou_matrix(_roi_box(roi), tracked_boxes()).max() >= tracking.SAME_PERSON_IOU:
                continue  # its landmarks landed on someone already tracked
            slot = self._slots.slot_for(boxes[k])
            if slot is None or slot in found:
                slot = free[0]
            found[slot] = (*result, rois[k])
            next_rois[slot] = roi
            self._slots.track(slot, roi, _roi_box(roi))

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

    def _fill(self, out: FrameCues, slot: int, frame, output: LandmarkOutput, crop_to_image: np.ndarray,
              roi_side: float) -> None:
        lm = output.landmarks[: len(BLAZEPOSE_JOINTS)]
        image_xy = geometry.apply(crop_to_image, lm[:, :2])
        keypoints = out.keypoints[slot]
        keypoints[:, 0] = image_xy[:, 0] / frame.width
        keypoints[:, 1] = image_xy[:, 1] / frame.height
        keypoints[:, 2] = lm[:, 2] * (roi_side / LANDMARK_INPUT_SIZE) / frame.width  # z scales like x
        keypoints[:, 3:] = sigmoid(lm[:, 3:5])
        out.features[slot], out.heatmaps[slot] = cues.sample_cues(output.landmarks, output.heatmap_logits,
                                                                  output.levels, self.config.cues)
        out.score[slot] = output.presence

    def _no_person(self) -> FrameCues:
        cue, m = self.config.cues, self.config.max_persons
        return FrameCues(np.zeros((m, len(BLAZEPOSE_JOINTS), 5), np.float32), np.zeros(m, np.float32),
                         np.zeros((m, len(cue.joints), self.feature_channels()), np.float32),
                         np.zeros((m, len(cue.joints), cue.heatmap_patch, cue.heatmap_patch), np.float32))
