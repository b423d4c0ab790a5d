"""NW-UCLA Multiview Action3D (Wang et al., CVPR 2014): the `all_sqe/*.json` skeleton files.

Each `aAA_sSS_eEE_vVV.json` (action AA, subject SS, take EE, view VV = 1..3) is the file CTR-GCN's
feeders/feeder_ucla.py reads:

    {"file_name": "a01_s01_e00_v01", "skeletons": [T][20][3], "label": int}

one person, Kinect v1 camera-space joints in metres (y up) in the Kinect SDK v1 order (layout
`kinect_v1`, as stored); T = 1..201 frames in the real set (two clips have a single frame).

Labels: the actions are a01-a06, a08, a09, a11, a12 (no a07, a10), classes 0..9 in that order.
The JSON `label` field is the 1-based class index, not the action number (a08 -> 7, a12 -> 10 in
all 1,484 real files), so the class comes from the file name and `label` must equal class + 1.

Sides: the usual cross-view protocol (CTR-GCN and most later work): views 1 and 2 train
(xview_train), view 3 tests (xview_val); the view is in each clip's meta. On the real set view 3
holds 464 clips, exactly CTR-GCN's val_label.pkl.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from posebridge.cache.pyskl import Annotation
from posebridge.stages.datasets.skeleton_formats.importer import BadFile, SkeletonFormat, group_sides, read_json

NUM_JOINTS = 20
ACTIONS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)  # action number of class 0..9
CLASSES = ("pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
           "stand up", "donning", "doffing", "throw", "carry")
XVIEW_TRAIN_VIEWS = frozenset({1, 2})
FILE_NAME = re.compile(r"^a(\d{2})_s(\d{2})_e(\d{2})_v(\d{2})\.json$")
NAME_PATTERN = "aAA_sSS_eEE_vVV.json (e.g. a01_s01_e00_v01.json)"


def parse_name(name: str) -> dict[str, int] | None:
    """{action, subject, take, view} (the file name's numbers), or None if not an NW-UCLA name."""
    match = FILE_NAME.match(name)
    if match is None:
        return None
    return dict(zip(("action", "subject", "take", "view"), map(int, match.groups())))


def scan(src: Path) -> list[Path]:
    """Every aAA_sSS_eEE_vVV.json under `src` (any depth), sorted."""
    return sorted(p for p in Path(src).rglob("*.json") if FILE_NAME.match(p.name) and p.is_file())


def read(path: Path) -> list[Annotation]:
    """The one clip of an NW-UCLA file, keypoint [1, T, 20, 3] float32; BadFile if unusable."""
    path = Path(path)
    meta = parse_name(path.name)
    if meta is None:
        raise BadFile(f"not an NW-UCLA file name {NAME_PATTERN}")
    if meta["action"] not in ACTIONS:
        raise BadFile(f"action a{meta['action']:02d} is not an NW-UCLA action (a01-a06, a08, a09, a11, a12)")
    if not 1 <= meta["view"] <= 3:
        raise BadFile(f"view v{meta['view']:02d} is not 1-3")
    data = read_json(path)
    if not isinstance(data, dict) or "skeletons" not in data:
        raise BadFile('not NW-UCLA JSON: no "skeletons" field', "move it out of the folder")
    label = ACTIONS.index(meta["action"])
    if "label" in data and data["label"] != label + 1:
        raise BadFile(f"label field {data['label']!r} contradicts the name (a{meta['action']:02d} is class "
                      f"{label + 1} of 1-10)")
    if "file_name" in data and data["file_name"] != path.stem:
        raise BadFile(f"file_name field {str(data['file_name'])[:40]!r} differs from the file's name")
    return [Annotation(path.stem, label, _frames(data["skeletons"])[None], meta=meta)]


def sides(annotations: list[Annotation]) -> dict[str, list[str]]:
    """Cross-view: views 1 + 2 train (xview_train), view 3 tests (xview_val)."""
    return group_sides(annotations, "xview", lambda meta: meta["view"] in XVIEW_TRAIN_VIEWS)


def _frames(skeletons) -> np.ndarray:
    """[T][20][3] numbers -> float32 [T, 20, 3]; any other shape or a non-finite value is BadFile."""
    if not isinstance(skeletons, list) or not skeletons:
        raise BadFile("no frames in skeletons")
    for t, frame in enumerate(skeletons):
        if not isinstance(frame, list) or len(frame) != NUM_JOINTS:
            got = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise BadFile(f"frame {t} has {got} joints, not {NUM_JOINTS}")
        for joint in frame:
            if (not isinstance(joint, list) or len(joint) != 3
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in joint)):
                raise BadFile(f"frame {t}: a joint is not 3 finite numbers")
    return np.asarray(skeletons, dtype=np.float32)


FORMAT = SkeletonFormat(
    name="nwucla", layout="kinect_v1",
    summary="NW-UCLA all_sqe/aAA_sSS_eEE_vVV.json files; sides xview (views 1 + 2 train, view 3 tests)",
    files="aAA_sSS_eEE_vVV.json files", folder="NW-UCLA's all_sqe folder (aAA_sSS_eEE_vVV.json files)",
    fix="copy it again from the release (all_sqe.zip)", classes=CLASSES,
    scan=scan, read=read, sides=sides)
