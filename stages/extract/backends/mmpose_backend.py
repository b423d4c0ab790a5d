"""The optional mmpose backend: a top-down mmpose model, batched (RTMPose, HRNet, SimpleBaseline, ...).

Per frame: our own BlazePose detector (blazepose_detector.py, no mmdet) finds the person and its
two alignment points give the rotated ROI (blazepose_roi.py); each person's ROI is cropped to the
model's input size (height = ROI side, width by the model's aspect ratio, person upright). Crops
of many frames go through the model in one forward pass (`process_stream`); keypoints are
decoded by the model's own codec and mapped back to image pixels; cues are sampled from the same
forward pass through cues.sample_at_joints: the head's output and backbone feature maps read by
forward hooks.

`process_stream` overlaps the work: worker threads decode-side detect and crop frames (each with
its own detector; LiteRT and OpenCV release the GIL) while the calling thread runs the model on
the previous batch. On CUDA the forward runs under fp16 autocast (recorded in settings(), so the
fingerprint tells fp16 and fp32 caches apart).

Layout differences from the embedded backend:
- joint_names are COCO-17; keypoints [17, 5] = x/W, y/H, 0 (no depth), score, score, where score
  is mmpose's keypoint score (heatmap peak, or SimCC's smaller of the two maxima) clipped to [0, 1];
  FrameCues.score is the detector's person score.
- Cue joints (ExtractConfig.cues.joints) stay BlazePose-33 indices everywhere in the project; here
  they are mapped to COCO-17 by BLAZEPOSE_TO_COCO (BODY13, the default, maps to 13 COCO joints).
- Levels are this model's modules (mmpose_model.level_modules): e.g. `--levels stage2,stage3,stage4`
  for RTMPose's CSPNeXt, `--levels backbone` for HRNet. Features are raw activations (the cache's
  uint8 per-clip, per-channel ranges absorb their scale).
- Heatmap cue ("heatmap_kind"): "simcc_outer" for SimCC heads (cues.SimCCHeatmaps: the outer
  product of the softmaxed x and y vectors, as probability mass per patch cell of SIMCC_CELL input
  pixels), "clipped" for heatmap heads (their Gaussians clipped to [0, 1]).
"""
from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from posebridge.cache.schema import BLAZEPOSE_TO_COCO17, COCO17
from posebridge.stages.extract.config import ExtractConfig
from posebridge.cache.errors import UserError

from .. import cues as cue_sampling
from .. import tracking
from . import blazepose_roi as geometry
from . import mmpose_model
from .base import FrameCues, PoseBackend
from .blazepose import pinned_model_files
from .blazepose_detector import NMS_IOU_THRESHOLD, Detection, PoseDetector
from .mmpose_model import (CFG_OPTIONS, DEFAULT_CONFIG, HeadKind, build_model, head_kind, level_modules,
                           resolve_config, resolved_config)

import torch  # noqa: E402  (after mmpose_model, which prepares the mmcv import)

COCO17_JOINTS = COCO17.joint_names  # the registry's table (cache/schema.py), not a copy
# BlazePose-33 index -> COCO-17 index, for every BlazePose joint that COCO has (the registry's map).
BLAZEPOSE_TO_COCO = {blazepose: coco for coco, blazepose in enumerate(BLAZEPOSE_TO_COCO17)}
CHECKPOINT_ENV = "POSEBRIDGE_MMPOSE_CHECKPOINT"
CONFIG_ENV = "POSEBRIDGE_MMPOSE_CONFIG"
# Side of a SimCC patch cell in input pixels: the cell of mmpose's heatmap heads (input / 4), so a
# P x P patch spans the same crop area for both head kinds.
SIMCC_CELL = 4.0
DEFAULT_BATCH = {"cuda": 64, "cpu": 8}  # person crops per forward pass


@dataclass
class _Person:
    score: float  # detector score
    to_crop: np.ndarray  # 2x3: image pixels -> input crop pixels (continuous coordinates)
    box: np.ndarray  # [4] axis-aligned box of the ROI, image pixels


@dataclass
class _FramePlan:
    """One frame after detection and cropping, before the model."""

    width: int
    height: int
    persons: list[_Person]
    crops: list[np.ndarray]  # [H, W, 3] uint8 RGB per person
    detector_calls: int


@dataclass
class _PersonCues:
    """One person's pose and cues, before it is given a slot."""

    box: np.ndarray  # [4] the axis-aligned box of its ROI, image pixels: what tracking matches by
    keypoints: np.ndarray  # [V, 5]
    score: float
    features: np.ndarray  # [Vc, C]
    heatmaps: np.ndarray  # [Vc, P, P]


@dataclass
class _Batch:
    """Model outputs of a batch of crops, on the CPU (index = crop)."""

    head: tuple[np.ndarray, ...]  # SimCC: (x [N, K, Wx], y [N, K, Hy]); heatmap: ([N, K, h, w],)
    levels: list[np.ndarray]  # per level map, [N, H, W, C] (a level with several maps adds several)


class MMPoseBackend(PoseBackend):
    name = "mmpose"
    joint_names = COCO17_JOINTS

    def __init__(self, config: ExtractConfig, models_dir: Path, num_threads: int = 2,
                 checkpoint: str | os.PathLike | None = None, model_config: str | os.PathLike | None = None,
                 device: str | None = None, batch_size: int | None = None, prep_threads: int | None = None):
        self.config = config
        checkpoint = checkpoint or os.environ.get(CHECKPOINT_ENV)
        config_name = model_config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
        if not checkpoint:
            raise UserError(f"the mmpose backend needs a local checkpoint file: --mmpose-checkpoint PATH "
                            f"(or ${CHECKPOINT_ENV}=PATH) (weights for the config {config_name})")
        self._config_path = resolve_config(config_name)
        self._cue_joints = self._coco_cue_joints(config.cues.joints)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._cuda = self.device.startswith("cuda")
        if not self._cuda:
            torch.set_num_threads(max(1, num_threads))
        self.batch_size = batch_size or DEFAULT_BATCH["cuda" if self._cuda else "cpu"]
        # Detection + cropping threads: on CUDA this worker's share of the cores (num_threads, which
        # stage 1 sets to cores / workers) is free for them; on CPU those cores run the model.
        self.prep_threads = prep_threads or (max(1, min(4, num_threads)) if self._cuda else 1)
        self._min_score, self._num_threads = config.min_detection_score, num_threads
        self._detector_file = pinned_model_files(models_dir)["pose_detection"]
        self._detectors = threading.local()
        self.model = build_model(self._config_path, checkpoint, self.device)  # refuses URLs and missing files
        self._checkpoint = Path(str(checkpoint)).expanduser()
        self._head: HeadKind = head_kind(self.model.cfg, self._config_path)
        self.heatmap_kind = "simcc_outer" if self._head.kind == "simcc" else "clipped"

        self.input_w, self.input_h = (int(s) for s in self.model.head.decoder.input_size)
        # mmpose's codecs put pixel centres at integers, and cell i of a map on input pixel i * stride.
        self._grid = cue_sampling.GridGeometry(self.input_w, self.input_h, cell_offset=0.0)
        preprocessor = self.model.data_preprocessor
        # mmpose reads images as BGR; the preprocessor's channel conversion means the model sees RGB.
        self._rgb_input = bool(getattr(preprocessor, "_channel_conversion", False))
        self._mean = preprocessor.mean.detach().to(self.device).reshape(1, 3, 1, 1).float()
        self._std = preprocessor.std.detach().to(self.device).reshape(1, 3, 1, 1).float()

        self._captured: dict[str, object] = {}
        modules = level_modules(self.model)
        unknown = [lv for lv in config.cues.levels if lv not in modules]
        if unknown or not config.cues.levels:
            raise UserError(f"--levels {','.join(config.cues.levels) or '(empty)'}: the mmpose model "
                            f"{self._config_path.name} has levels {','.join(modules)} (RTMPose: "
                            f"--levels stage2,stage3,stage4; HRNet: --levels backbone)")
        for level in config.cues.levels:
            modules[level].register_forward_hook(self._capture(level))
        self._slots = tracking.SlotTable(config.max_persons)  # slot state: True while its person is seen
        self.stats = {"frames": 0, "detector_calls": 0, "landmark_calls": 0, "frames_without_person": 0,
                      "persons": 0, "forward_passes": 0}
        probe = self._infer([np.zeros((self.input_h, self.input_w, 3), np.uint8)])
        joints = probe.head[0].shape[1]
        if joints != len(COCO17_JOINTS):
            raise UserError(f"mmpose config {self._config_path.name} predicts {joints} keypoints; only COCO-17 "
                            f"models are supported")
        self._channels = sum(level.shape[3] for level in probe.levels)

    # --- what the backend states (fingerprint, layout) ---

    @staticmethod
    def _coco_cue_joints(joints) -> np.ndarray:
        bad = [j for j in joints if j not in BLAZEPOSE_TO_COCO]
        if bad:
            raise UserError(f"cue joints {bad} (BlazePose indices) have no COCO-17 counterpart in the mmpose "
                            f"backend; use --joints body13 or some of {sorted(BLAZEPOSE_TO_COCO)}")
        return np.array([BLAZEPOSE_TO_COCO[j] for j in joints], np.intp)

    def feature_channels(self) -> int:
        return self._channels

    def model_files(self) -> dict[str, Path]:
        return {"pose_detection": self._detector_file, "mmpose_checkpoint": self._checkpoint,
                "mmpose_config": self._config_path}

    def settings(self) -> dict:
        return {"config": resolved_config(self.model.cfg), "cfg_options": CFG_OPTIONS,
                "head": {"kind": self._head.kind, "simcc_split_ratio": self._head.simcc_split_ratio,
                         "softmax_beta": self._head.softmax_beta},
                "heatmap_kind": self.heatmap_kind, "simcc_cell": SIMCC_CELL,
                "precision": "fp16-autocast" if self._cuda else "fp32",
                "nms_iou": NMS_IOU_THRESHOLD, "roi_scale": geometry.ROI_SCALE,
                "tracking": {"match_iou": tracking.RESUME_IOU, "forget_after": tracking.FORGET_AFTER}}

    def runtime_packages(self) -> tuple[str, ...]:
        return mmpose_model.runtime_packages()

    def reset(self) -> None:
        self._slots.reset()  # the detector runs on every frame; only the slots carry over frames

    # --- per frame and batched ---

    def process(self, frame) -> FrameCues:
        """Pose and cues of one RGBFrame or YUV420Frame: one forward pass for this frame's persons."""
        return next(iter(self._run([self._plan(frame)])))

    def process_stream(self, frames: Iterable) -> Iterator[FrameCues]:
        """FrameCues of each frame, in order; crops of many frames share a forward pass.

        Detection and cropping of the next frames run on `prep_threads` threads while this thread
        runs the model. Closing the iterator early cancels what is queued and joins the threads.
        """
        pool = ThreadPoolExecutor(self.prep_threads, thread_name_prefix="mmpose-prep")
        ahead: deque = deque()
        source = iter(frames)
        depth = 2 * self.batch_size  # frames in flight: the next batch is prepared during this one

        def top_up() -> None:
            while len(ahead) < depth:
                frame = next(source, None)
                if frame is None:
                    return
                ahead.append(pool.submit(self._plan, frame))

        try:
            top_up()
            pending, crops = [], 0
            while ahead:
                plan = ahead.popleft().result()
                top_up()
                pending.append(plan)
                crops += len(plan.crops)
                if crops >= self.batch_size:
                    yield from self._run(pending)
                    pending, crops = [], 0
            if pending:
                yield from self._run(pending)
        finally:
            for future in ahead:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a frame generator we took over (its decode thread ends with it)

    def _detector(self) -> PoseDetector:
        """This thread's detector (a LiteRT interpreter serves one thread at a time)."""
        detector = getattr(self._detectors, "detector", None)
        if detector is None:
            threads = 1 if self.prep_threads > 1 else self._num_threads  # parallel detectors: one thread each
            detector = PoseDetector(self._detector_file, self._min_score, threads)
            self._detectors.detector = detector
        return detector

    def _persons(self, frame) -> list[Detection]:
        """The persons to run the model on: the detector's best max_persons, on every frame (so the
        frames of a stream can be detected in parallel; slots are assigned afterwards, in order)."""
        return self._detector().detect_all(frame, self.config.max_persons)

    def _plan(self, frame) -> _FramePlan:
        persons, crops = [], []
        side = max(self.input_w, self.input_h)  # frames warp to squares; the crop is its top-left part
        for detection in self._persons(frame):
            roi = geometry.roi_from_alignment_points(detection.keypoints[0], detection.keypoints[1])
            to_crop = self._image_to_crop(roi)
            crops.append(frame.warp(geometry.cv2_matrix(to_crop), side, border="replicate")[: self.input_h,
                                                                                             : self.input_w])
            (cx, cy), half = roi.center, roi.side / 2
            persons.append(_Person(float(detection.score), to_crop, np.array([cx - half, cy - half, cx + half,
                                                                                cy + half])))
        return _FramePlan(frame.width, frame.height, persons, crops, detector_calls=1)

    def _image_to_crop(self, roi: geometry.Roi) -> np.ndarray:
        """2x3 map from image pixels to the input crop: ROI side -> input height, person upright."""
        linear = geometry.rotation(roi.rotation).T * (self.input_h / roi.side)
        offset = np.array([self.input_w / 2, self.input_h / 2]) - linear @ np.asarray(roi.center)
        return np.hstack([linear, offset[:, None]])

    def _run(self, plans: list[_FramePlan]) -> list[FrameCues]:
        """One forward pass over every crop of these frames, then their FrameCues."""
        crops = [crop for plan in plans for crop in plan.crops]
        batch = self._infer(crops) if crops else None
        out, index = [], 0
        for plan in plans:
            self.stats["frames"] += 1
            self.stats["detector_calls"] += plan.detector_calls
            self.stats["landmark_calls"] += len(plan.crops)
            persons = [self._person_cues(plan, person, batch, index + i) for i, person in enumerate(plan.persons)]
            index += len(plan.persons)
            if not persons:
                self.stats["frames_without_person"] += 1
            self.stats["persons"] += len(persons)
            out.append(self._frame_cues(persons))
        return out

    def _capture(self, level: str):
        def hook(module, inputs, output):
            self._captured[level] = output
        return hook

    @torch.no_grad()
    def _infer(self, crops: list[np.ndarray]) -> _Batch:
        """The model on a batch of input-sized RGB crops; its head outputs and hooked levels, on the CPU."""
        x = torch.from_numpy(np.stack(crops) if self._rgb_input else np.stack(crops)[..., ::-1].copy())
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = (x - self._mean) / self._std
        self._captured.clear()
        with torch.autocast("cuda", dtype=torch.float16, enabled=self._cuda):
            head = self.model(x, None, mode="tensor")
        self.stats["forward_passes"] += 1
        head = (head,) if torch.is_tensor(head) else tuple(head)
        levels = []
        for name in self.config.cues.levels:
            output = self._captured[name]
            for t in ([output] if torch.is_tensor(output) else [t for t in output if torch.is_tensor(t)]):
                levels.append(t.permute(0, 2, 3, 1).float().cpu().numpy())
        return _Batch(tuple(h.float().cpu().numpy() for h in head), levels)

    def _person_cues(self, plan: _FramePlan, person: _Person, batch: _Batch, i: int) -> _PersonCues:
        """Keypoints (image-normalised) and cues of crop i of the batch."""
        head = tuple(h[i: i + 1] for h in batch.head)
        # The codec's keypoints are in input pixels, mmpose's convention (pixel centres at integers).
        keypoints_px, scores = self.model.head.decoder.decode(*head) if self._head.kind == "simcc" else \
            self.model.head.decoder.decode(head[0][0])
        kp_input, score = keypoints_px[0].astype(np.float64), np.clip(scores[0], 0.0, 1.0)
        image_xy = geometry.apply(geometry.invert(person.to_crop), kp_input + 0.5)
        keypoints = np.zeros((len(COCO17_JOINTS), 5), np.float32)
        keypoints[:, 0] = image_xy[:, 0] / plan.width
        keypoints[:, 1] = image_xy[:, 1] / plan.height
        keypoints[:, 3] = score
        keypoints[:, 4] = score
        levels = [(level[i], 1.0) for level in batch.levels]
        features, patches = cue_sampling.sample_at_joints(kp_input[self._cue_joints], levels, self._heatmaps(head),
                                                          self._cue_joints, self._grid, self.config.cues)
        return _PersonCues(person.box, keypoints, person.score, features, patches)

    def _heatmaps(self, head: tuple[np.ndarray, ...]):
        if self._head.kind == "simcc":
            x, y = (_softmax(v[0].astype(np.float64) * self._head.softmax_beta) for v in head)
            return cue_sampling.SimCCHeatmaps(x, y, self._head.simcc_split_ratio, SIMCC_CELL)
        # Heatmap heads regress Gaussians in [0, 1]: clip, no sigmoid.
        return cue_sampling.DenseHeatmaps(np.moveaxis(head[0][0], 0, -1), lambda v: np.clip(v, 0.0, 1.0))

    def _frame_cues(self, persons: list[_PersonCues]) -> FrameCues:
        """The persons of one frame in their M slots (called in frame order). A tracked slot keeps the
        person whose ROI box overlaps its last one most (IoU >= tracking.RESUME_IOU); the others take
        free slots (tracking.SlotTable.slot_for: a recently lost track resumes its old slot)."""
        out = self._no_person()
        tracked = self._slots.tracked()
        boxes = np.array([p.box for p in persons]).reshape(-1, 4)
        placed: dict[int, int] = {}  # person -> slot
        if tracked and persons:
            last = np.stack([self._slots.slots[s].last_box for s in tracked])
            for row, person in tracking.greedy_match(tracking.iou_matrix(last, boxes), tracking.RESUME_IOU):
                placed[person] = tracked[row]
        for slot in tracked:
            if slot not in placed.values():
                self._slots.lose(slot)
        for person in sorted(range(len(persons)), key=lambda k: -persons[k].score):  # best first
            if person not in placed:
                slot = self._slots.slot_for(boxes[person])
                if slot is None:
                    continue  # more people than slots
                placed[person] = slot
            self._slots.track(placed[person], True, boxes[person])
        self._slots.end_frame()
        for person, slot in placed.items():
            p = persons[person]
            out.keypoints[slot], out.score[slot], out.features[slot], out.heatmaps[slot] = (
                p.keypoints, p.score, p.features, p.heatmaps)
        return out

    def _no_person(self) -> FrameCues:
        m, cue = self.config.max_persons, self.config.cues
        return FrameCues(np.zeros((m, len(COCO17_JOINTS), 5), np.float32), np.zeros(m, np.float32),
                         np.zeros((m, len(cue.joints), self._channels), np.float32),
                         np.zeros((m, len(cue.joints), cue.heatmap_patch, cue.heatmap_patch), np.float32))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
