"""Stage-1 configuration in one place.

Fields are split by whether they change the cached output. `ExtractConfig.output_settings()`
is what enters the cache fingerprint; `RunSettings` (threads, workers, shard size) never does.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from posebridge.cache.schema import BLAZEPOSE33, BODY13  # noqa: F401 (BODY13 re-exported)

# Bump when the meaning or layout of what stage 1 writes changes: every old store then misses.
EXTRACT_STAGE_VERSION = 2  # 2: schema v2, up to max_persons people per frame

# Topology lives in the skeleton registry (cache/schema.py); these names are kept for the callers.
BLAZEPOSE_JOINTS = BLAZEPOSE33.joint_names


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
    max_persons: int = 2  # person slots per frame (M); a slot keeps one track's identity over a clip

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
