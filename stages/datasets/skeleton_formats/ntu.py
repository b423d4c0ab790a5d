"""NTU RGB+D 60/120 `.skeleton` files as an import format; stages/datasets/ntu_skeleton.py parses them.

Sides: NTU-60 xsub_* and xview_*, NTU-120 xsub_* and xset_* (stages/datasets/ntu.py, pyskl's names).
"""
from __future__ import annotations

from pathlib import Path

from posebridge.cache.pyskl import Annotation
from posebridge.stages.datasets.ntu import ntu_benchmark_splits
from posebridge.stages.datasets.ntu_skeleton import BadSkeletonFile, skeleton_annotation
from posebridge.stages.datasets.skeleton_formats.importer import BadFile, SkeletonFormat

# NTU ships clips whose files hold no body, and lists them (its samples_with_missing_skeletons files).
_NO_BODY = "no body in any frame"


def scan(src: Path) -> list[Path]:
    """The .skeleton files directly in `src` (one release folder, as the converter always read it)."""
    return sorted(p for p in Path(src).glob("*.skeleton") if p.is_file())


def read(path: Path) -> list[Annotation]:
    try:
        ann = skeleton_annotation(path)
    except BadSkeletonFile as err:
        fix = ("nothing to do if NTU lists it among its samples with missing skeletons, else copy it again"
               if str(err) == _NO_BODY else None)
        raise BadFile(str(err), fix) from None
    return [Annotation(ann["frame_dir"], ann["label"], ann["keypoint"], meta=ann["_meta"])]


def sides(annotations: list[Annotation]) -> dict[str, list[str]]:
    return ntu_benchmark_splits({"clip_id": a.frame_dir, "meta": a.meta} for a in annotations)


FORMAT = SkeletonFormat(
    name="ntu", layout="ntu25",
    summary="NTU RGB+D 60/120 SsssCcccPpppRrrrAaaa.skeleton files; sides xsub + xview (60) or xsub + xset (120)",
    files=".skeleton files", folder="NTU RGB+D's folder of SsssCcccPpppRrrrAaaa.skeleton files (nturgb+d_skeletons)",
    fix="copy it again from the release, or move it out of the folder",
    scan=scan, read=read, sides=sides)
