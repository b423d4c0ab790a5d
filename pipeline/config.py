"""Stage-1 configuration in one place.

Fields are split by whether they change the cached output. `ExtractConfig.output_settings()`
is what enters the cache fingerprint; `RunSettings` (threads, workers, shard size) never does.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

# Bump when the meaning or layout of what stage 1 writes changes: every old store then misses.
EXTRACT_STAGE_VERSION = 1

BLAZEPOSE_JOINTS = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)

# Joints at which cues are sampled by default: the 13 body joints (nose, shoulders, elbows,
# wrists, hips, knees, ankles). Face and finger points add bytes but little new context.
BODY13 = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


@dataclass(frozen=True)
class CueConfig:
    """Which pose-anchored cues to keep, and how (all of it changes the cache)."""

    # Feature-map levels of the landmark model, by short name (see backends/blazepose_spec.py).
    levels: tuple[str, ...] = ("fpn64", "fpn16")
    joints: tuple[int, ...] = BODY13
    window: int = 3  # k x k bilinear samples around each joint, averaged
    window_radius: float = 6.0  # half-width of that window, in pixels of the 256x256 crop
    heatmap_patch: int = 3  # P x P patch of the joint's own heatmap channel around the joint
    feature_dtype: str = "uint8"  # "uint8" (per-clip per-channel min/max scales) or "float16"


@dataclass(frozen=True)
class ExtractConfig:
    """Everything that changes what stage 1 writes for a clip."""

    backend: str = "embedded"
    cues: CueConfig = field(default_factory=CueConfig)
    stride: int = 1  # keep every k-th decoded frame
    max_frames: int | None = None  # stop after this many kept frames per clip
    min_detection_score: float = 0.5  # detector threshold (the value compiled into MediaPipe 0.10.21)
    min_pose_presence: float = 0.5  # below it the person is lost and the detector runs again

    def output_settings(self) -> dict:
        return {"stage_version": EXTRACT_STAGE_VERSION, **dataclasses.asdict(self)}


def available_cores() -> int:
    """The cores this process may run on: a SLURM or container CPU set, not the whole machine."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class RunSettings:
    """How stage 1 runs; never part of a fingerprint."""

    num_threads: int = 0  # interpreter threads per worker; 0 = cores / workers
    workers: int = 0  # extraction processes, each owning whole shards; 0 = one per core (<= clips)
    shard_clips: int = 16  # clips buffered per shard before one write

    def resolved(self, num_clips: int, cores: int | None = None) -> "RunSettings":
        """Concrete workers/threads. Measured on 2 cores: two single-threaded workers beat one
        two-threaded worker by ~25%, because each worker's decode thread then fills the gaps
        that the interpreter's own thread pool leaves. `cores`: this process's share of the
        machine (torchrun starts several commands per node)."""
        cores = cores or available_cores()
        workers = self.workers or max(1, min(cores, num_clips))
        threads = self.num_threads or max(1, cores // workers)
        return dataclasses.replace(self, workers=workers, num_threads=threads)
