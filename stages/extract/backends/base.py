"""What every pose backend hands to stage 1, and what it must state about itself.

This module imports no backend; `registry.make_backend` builds one by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import numpy as np


@dataclass
class FrameCues:
    """Up to M = ExtractConfig.max_persons people of one frame. Slot m is one track's identity, stable
    within a clip; an empty slot is all zeros with score 0 (schema v2, cache/schema.py)."""

    keypoints: np.ndarray  # [M, V, 5] float32: x/W, y/H, z/W, visibility, presence
    score: np.ndarray  # [M] float32: pose presence of each slot's person; 0.0 for an empty slot
    features: np.ndarray  # [M, Vc, C] float32: per cue joint, levels concatenated in CueConfig.levels order
    heatmaps: np.ndarray  # [M, Vc, P, P] float32 in [0, 1]: the joint's own heatmap channel around it


class PoseBackend(Protocol):
    """A pose model that turns decoded frames into FrameCues.

    A backend class subclasses this protocol to inherit `process_stream`'s per-frame default;
    a backend that batches overrides it. What a backend states about itself goes into the cache
    fingerprint (stages/extract/run.py's extractor_identity) and layout.
    """

    name: str
    joint_names: tuple[str, ...]  # exactly a skeleton of the registry (cache/schema.py)
    heatmap_kind: str  # how its heatmap patches were made: one of cache/schema.py HEATMAP_KINDS
    stats: dict  # counters, at least detector_calls and landmark_calls

    def feature_channels(self) -> int: ...

    def model_files(self) -> dict[str, Path]:
        """Files whose bytes decide the output (their sha256 enters the fingerprint)."""
        ...

    def settings(self) -> dict:
        """Constants of the backend's code and model config that shape its output (JSON-able)."""
        ...

    def runtime_packages(self) -> tuple[str, ...]:
        """Distributions whose versions can change the numbers this backend computes."""
        ...

    def reset(self) -> None:
        """Forget state between clips (tracks, ROIs)."""
        ...

    def process(self, frame) -> FrameCues: ...

    def process_stream(self, frames: Iterable) -> Iterator[FrameCues]:
        """FrameCues of each frame, in order. Default: one `process` call per frame."""
        for frame in frames:
            yield self.process(frame)
