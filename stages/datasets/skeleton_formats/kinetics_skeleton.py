"""Kinetics-skeleton (ST-GCN's release, Yan et al., AAAI 2018): one JSON file per video.

Release layout (kinetics-skeleton/):

    kinetics_train/<youtube id>.json, kinetics_val/<youtube id>.json     one file per video
    kinetics_train_label.json, kinetics_val_label.json                   {id: {has_skeleton, label, label_index}}

A video file is {"data": [frame, ...], "label": name, "label_index": 0..399}, each frame
{"frame_index": f, "skeleton": [{"pose": [x0, y0, ..., x17, y17], "score": [s0, ..., s17]}, ...]}:
the OpenPose COCO-18 joints (layout `openpose18`) of everyone OpenPose found in the video resized to
340x256 at 30 fps; x = pixel x / 340, y = pixel y / 256; an undetected joint is (0, 0) with score
0. frame_index is 1-based in the release; frames where nobody was found are absent.

What ST-GCN's feeder (feeder/feeder_kinetics.py) does, and what is kept of it:
- Persons: the first 5 listed per frame, ranked per frame by summed joint score, the best 2 kept
  (num_person_in 5, num_person_out 2; no tracking, so slot 0 is the best-scored person of each
  frame). Kept exactly, with a stable sort (equal sums keep the file's order). M = 2, or 1 when no
  frame has a second person.
- Coordinates: ST-GCN centres (x, y - 0.5) in the loader; here they stay uncentred and become
  pixels of the 340x256 frame (x * 340, y * 256), as PYSKL 2D data and the stage-2 loader expect
  (the 0..1 values divide x and y by different widths, which would squeeze every pose sideways once
  one torso length scales both); img_shape (256, 340). Score-0 joints are (0, 0), as ST-GCN makes them.
- Time: frame_index 1 -> t = 0 (a file with a frame_index 0 is taken as 0-based), T = the last
  frame; missing frames are zeros with score 0. No 300-frame window: the loader samples its own.
- Label: label_index (0-based); the file's label name is in meta. Sides: `train` / `val` from the
  folder (kinetics_train / kinetics_val), pyskl's K400 names. A video its folder's label file marks
  has_skeleton false (ST-GCN leaves those out), lists under another label_index, or does not list
  is a bad file.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from posebridge.cache.errors import UserError
from posebridge.cache.pyskl import Annotation
from posebridge.stages.datasets.skeleton_formats.importer import BadFile, SkeletonFormat, read_json

NUM_JOINTS = 18
NUM_PERSON_IN = 5
NUM_PERSON_OUT = 2
IMG_SHAPE = (256, 340)  # (height, width) of the resized videos OpenPose ran on
SIDE_OF_FOLDER = {"kinetics_train": "train", "kinetics_val": "val"}
MAX_FRAME_INDEX = 100_000  # far above any Kinetics clip; bounds the array a bad index would ask for
_NOTHING_TO_DO = "nothing to do"


def scan(src: Path) -> list[Path]:
    """Every per-video .json under `src` (any depth), sorted; *_label.json files are not videos."""
    return sorted(p for p in Path(src).rglob("*.json") if not p.name.endswith("_label.json") and p.is_file())


def read(path: Path) -> list[Annotation]:
    """The one clip of a video file: keypoint [M<=2, T, 18, 2] in pixels, keypoint_score [M, T, 18]."""
    path = Path(path)
    side = SIDE_OF_FOLDER.get(path.parent.name)
    if side is None:
        raise BadFile(f"not in {' or '.join(SIDE_OF_FOLDER)}/, so its side is unknown",
                      "keep the release's folder names")
    video = read_json(path)
    if not isinstance(video, dict) or not isinstance(video.get("data"), list):
        raise BadFile('not a Kinetics-skeleton video file: no "data" list', "move it out of the folder")
    label = video.get("label_index")
    if isinstance(label, bool) or not isinstance(label, int):
        raise BadFile('no integer "label_index"')
    if label < 0:
        raise BadFile(f"no label (label_index {label})", f"{_NOTHING_TO_DO}: an unlabelled video cannot train")
    _check_label_file(path, label)
    frames = _frames(video["data"])
    if not frames:
        raise BadFile("no frames in data", f"{_NOTHING_TO_DO}: OpenPose found nobody in the video")
    base = 0 if min(frames) == 0 else 1
    xy = np.zeros((max(frames) - base + 1, NUM_PERSON_IN, NUM_JOINTS, 2), np.float32)
    score = np.zeros(xy.shape[:3], np.float32)
    for frame_index, people in frames.items():
        for m, (pose, sc) in enumerate(people[:NUM_PERSON_IN]):  # ST-GCN looks at the first 5 only
            xy[frame_index - base, m] = pose
            score[frame_index - base, m] = sc
    xy *= np.array([IMG_SHAPE[1], IMG_SHAPE[0]], np.float32)  # 0..1 -> pixels of the 340x256 frame
    xy[score == 0] = 0  # ST-GCN zeroes score-0 joints (the release already has them at (0, 0))
    xy, score = best_persons(xy, score, NUM_PERSON_OUT)
    present = (score.sum(axis=2) > 0).sum(axis=1)  # persons with a scored joint, per frame
    if not present.any():
        raise BadFile("no skeleton in any frame", f"{_NOTHING_TO_DO}: OpenPose found nobody in the video")
    m = int(present.max())
    meta = {"video_id": path.stem, "side": side, "label_name": str(video.get("label", "")),
            "frame_index_base": base}
    return [Annotation(path.stem, label, np.ascontiguousarray(xy[:, :m].transpose(1, 0, 2, 3)),
                       np.ascontiguousarray(score[:, :m].transpose(1, 0, 2)), img_shape=IMG_SHAPE, meta=meta)]


def best_persons(xy: np.ndarray, score: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the `keep` persons of highest summed joint score, best first (ST-GCN's ranking; a
    stable sort, so equal sums keep the file's order). xy [T, P, V, 2], score [T, P, V]."""
    order = np.argsort(-score.sum(axis=2), axis=1, kind="stable")[:, :keep]  # [T, keep]
    return (np.take_along_axis(xy, order[:, :, None, None], axis=1),
            np.take_along_axis(score, order[:, :, None], axis=1))


def sides(annotations: list[Annotation]) -> dict[str, list[str]]:
    """{"train": ids from kinetics_train/, "val": ids from kinetics_val/} (pyskl's K400 names)."""
    out: dict[str, list[str]] = {side: [] for side in SIDE_OF_FOLDER.values()}
    for ann in annotations:
        out[ann.meta["side"]].append(ann.frame_dir)
    return {side: sorted(ids) for side, ids in out.items()}


def class_names(annotations: list[Annotation]) -> dict[int, str]:
    """label -> name as the files carry it; two names for one label is a UserError."""
    names: dict[int, str] = {}
    for ann in annotations:
        name = ann.meta.get("label_name", "")
        if names.setdefault(ann.label, name) != name:
            raise UserError(f"label {ann.label} is named both {names[ann.label]!r} and {name!r}")
    return names


def _frames(data: list) -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """{frame_index: [(pose [18, 2], score [18]), ...]} with every value checked."""
    frames: dict[int, list] = {}
    for i, frame in enumerate(data):
        if not isinstance(frame, dict) or not isinstance(frame.get("skeleton"), list):
            raise BadFile(f'data[{i}] is not a frame {{"frame_index", "skeleton"}}')
        f = frame.get("frame_index")
        if isinstance(f, bool) or not isinstance(f, int) or not 0 <= f <= MAX_FRAME_INDEX:
            raise BadFile(f"data[{i}]: frame_index {f!r} is not an integer in 0-{MAX_FRAME_INDEX}")
        if f in frames:
            raise BadFile(f"frame_index {f} appears twice")
        people = []
        for person in frame["skeleton"]:
            pose, sc = (person.get("pose"), person.get("score")) if isinstance(person, dict) else (None, None)
            if not (_numbers(pose, 2 * NUM_JOINTS) and _numbers(sc, NUM_JOINTS)):
                raise BadFile(f"frame_index {f}: a skeleton is not pose [36] + score [18] numbers")
            people.append((np.asarray(pose, np.float32).reshape(NUM_JOINTS, 2), np.asarray(sc, np.float32)))
        frames[f] = people
    return frames


def _numbers(values, n: int) -> bool:
    return (isinstance(values, list) and len(values) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values))


def _check_label_file(path: Path, label: int) -> None:
    """Against <folder>_label.json beside the folder, when it is there."""
    label_file = path.parent.parent / f"{path.parent.name}_label.json"
    if not label_file.is_file():
        return
    stat = label_file.stat()
    entry = _label_entries(label_file, stat.st_mtime_ns, stat.st_size).get(path.stem)
    if entry is None:
        raise BadFile(f"not listed in {label_file.name}")
    if entry.get("has_skeleton") is False:
        raise BadFile(f"{label_file.name} marks it has_skeleton false",
                      f"{_NOTHING_TO_DO}: ST-GCN leaves such videos out too")
    if entry.get("label_index", label) != label:
        raise BadFile(f"label_index {label} contradicts {label_file.name} ({entry.get('label_index')})")


@functools.lru_cache(maxsize=4)
def _label_entries(label_file: Path, _mtime_ns: int, _size: int) -> dict:
    """One label file's entries, read once per import (mtime and size key a changed file anew)."""
    try:
        entries = json.loads(label_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{label_file} is not a readable label file ({type(err).__name__}); copy it again from "
                        f"the release, or move it away to import without checking against it") from None
    if not isinstance(entries, dict):
        raise UserError(f"{label_file} is not a {{video id: {{has_skeleton, label, label_index}}}} object; copy "
                        f"it again from the release, or move it away")
    return entries


FORMAT = SkeletonFormat(
    name="kinetics-skeleton", layout="openpose18",
    summary="ST-GCN's Kinetics-skeleton kinetics_train/ and kinetics_val/ per-video .json files (OpenPose-18 "
            "pose + score), the best two people per frame by summed score as ST-GCN's feeder keeps them, in "
            "pixels of the 340x256 frame; sides train and val from the folders",
    files="per-video .json files", folder="ST-GCN's kinetics-skeleton folder (holding kinetics_train/ and "
                                          "kinetics_val/ of per-video .json files)",
    fix="copy it again from the release (kinetics-skeleton)", scan=scan, read=read, sides=sides)
