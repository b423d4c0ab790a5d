"""Dataset adapters: turn a videos folder into a sorted list of `ClipSpec`s for stage 1.

`--dataset NAME` names the cache's dataset and also picks the kind (`scan(kind=...)` overrides it):
1. NAME starting with "ntu60", "ntu120" or "kinetics" (any case; "ntu60_xsub" counts) selects
   that kind. "pkummd" is refused: PKU-MMD videos are untrimmed (many actions per video), and
   stage 1 extracts whole files; cut per-action clips into class folders instead.
2. Any other NAME (or none) looks at the folder: every media file named like NTU RGB+D ->
   "ntu120" if any sample lies outside NTU-60, else "ntu60"; otherwise every visible entry a
   folder -> "classfolders"; otherwise "folder".
"""
from __future__ import annotations

from pathlib import Path

from posebridge.stages.datasets.base import (ClipSpec, class_folders, require_media_files,
                                               require_videos_dir)
from posebridge.stages.datasets.folder import scan_classfolders, scan_folder
from posebridge.stages.datasets.kinetics import scan_kinetics
from posebridge.stages.datasets.ntu import (is_train_sample, ntu_benchmark_splits, ntu_variant_of,
                                              parse_ntu_name, scan_ntu)
from posebridge.cache.errors import UserError

DATASET_KINDS = ("folder", "classfolders", "ntu60", "ntu120", "kinetics")
_PREFIX_KINDS = ("ntu60", "ntu120", "kinetics")
_UNSUPPORTED_PREFIXES = {
    "pkummd": "PKU-MMD videos are untrimmed (many actions per video) and stage 1 extracts whole files; "
              "cut one clip per action into <class name>/ folders named exactly as PKU-MMD's classes, extract "
              "them under another dataset name, and train with --store <that store> (or from a PYSKL pickle)",
}

__all__ = ["ClipSpec", "DATASET_KINDS", "dataset_kind", "is_train_sample", "ntu_benchmark_splits",
           "parse_ntu_name", "scan"]


def dataset_kind(name: str | None, videos_dir: Path) -> str:
    """The adapter kind for a dataset name (rule in the module docstring)."""
    lowered = (name or "").lower()
    for prefix, reason in _UNSUPPORTED_PREFIXES.items():
        if lowered.startswith(prefix):
            raise UserError(f"dataset {name!r}: {reason}")
    for kind in _PREFIX_KINDS:
        if lowered.startswith(kind):
            return kind
    videos_dir = require_videos_dir(videos_dir)
    files = require_media_files(videos_dir)
    metas = [parse_ntu_name(p.name) for p in files]
    if all(metas):
        return ntu_variant_of(metas)
    if class_folders(videos_dir) is not None:
        return "classfolders"
    return "folder"


def scan(videos_dir: Path, dataset: str | None = None, annotations: Path | None = None,
         kind: str | None = None) -> list[ClipSpec]:
    """Clip specs sorted by clip_id; `kind` overrides what `dataset_kind` infers from the name."""
    if kind is not None and kind not in DATASET_KINDS:
        raise UserError(f"unknown dataset kind {kind!r}; choose one of {', '.join(DATASET_KINDS)}")
    videos_dir = require_videos_dir(videos_dir)
    kind = kind or dataset_kind(dataset, videos_dir)
    if annotations is not None and kind != "kinetics":
        raise UserError(f"--annotations {annotations} applies to Kinetics only, not to kind {kind!r}; "
                        f"drop it or use a dataset name starting with kinetics")
    if kind == "folder":
        specs = scan_folder(videos_dir)
    elif kind == "classfolders":
        specs = scan_classfolders(videos_dir)
    elif kind in ("ntu60", "ntu120"):
        specs = scan_ntu(videos_dir, kind)
    else:
        specs = scan_kinetics(videos_dir, annotations)
    return sorted(specs, key=lambda s: s.clip_id)
