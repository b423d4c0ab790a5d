"""What every pose backend hands to stage 1, and how a backend is chosen by name."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from posebridge.pipeline.config import ExtractConfig
from posebridge.pipeline.errors import UserError
from posebridge.pipeline.paths import models_root


@dataclass
class FrameCues:
    """Up to M = ExtractConfig.max_persons people of one frame. Slot m is one track's identity, stable
    within a clip; an empty slot is all zeros with score 0 (schema v2, cache/schema.py)."""

    keypoints: np.ndarray  # [M, V, 5] float32: x/W, y/H, z/W, visibility, presence
    score: np.ndarray  # [M] float32: pose presence of each slot's person; 0.0 for an empty slot
    features: np.ndarray  # [M, Vc, C] float32: per cue joint, levels concatenated in CueConfig.levels order
    heatmaps: np.ndarray  # [M, Vc, P, P] float32 in [0, 1]: the joint's own heatmap channel around it


class PoseBackend(Protocol):
    name: str
    joint_names: tuple[str, ...]  # exactly a skeleton of the registry (cache/schema.py)
    heatmap_kind: str  # cache/schema.py HEATMAP_KINDS
    stats: dict  # counters, at least detector_calls and landmark_calls

    def feature_channels(self) -> int: ...

    def model_files(self) -> dict[str, Path]: ...

    def reset(self) -> None: ...

    def process(self, frame) -> FrameCues: ...


KNOWN_BACKENDS = ("embedded", "mmpose")


def make_backend(name: str, config: ExtractConfig, models_dir: Path | None = None,
                 num_threads: int = 2, **options) -> PoseBackend:
    """The backend called `name`, reading its model files from models_dir (default: models_root()).

    options go to backends that take them (mmpose: checkpoint=, model_config=, device=).
    """
    if name == "embedded":
        from .blazepose import BlazePoseBackend  # imports the TFLite runtime only when needed

        return BlazePoseBackend(config, Path(models_dir) if models_dir else models_root(), num_threads)
    if name == "mmpose":  # optional: only where the `mmpose` extra is installed (.venv-mmpose)
        try:
            from .mmpose_backend import MMPoseBackend
        except ImportError as err:
            raise UserError(f"the mmpose backend needs the `mmpose` extra ({err.name or err} is not installed "
                            f"here): run `make test-mmpose` (builds .venv-mmpose) or "
                            f"`pip install -e '.[mmpose]'` in a separate venv") from None

        return MMPoseBackend(config, Path(models_dir) if models_dir else models_root(), num_threads, **options)
    raise UserError(f"unknown pose backend {name!r}; known backends: {', '.join(KNOWN_BACKENDS)}")
