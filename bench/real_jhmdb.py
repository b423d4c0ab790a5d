"""JHMDB ground-truth 2D poses (split 1 of DD-Net's GT_{train,test}_1.pkl) -> PYSKL + layout + split.

Each pickle is a Python 2 pickle of {"pose": [array (T, 15, 2)], "label": [class name]}; it is read
with the project's restricted unpickler (containers and numpy arrays only). The coordinates are
JHMDB's `pos_world`: normalised image coordinates (y down), not pixels; PYSKL's img_shape is set to
JHMDB's frame size (240 x 320) only because 2D PYSKL files must carry one. Every joint is
annotated (puppet fits), so keypoint_score is 1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from posebridge.cache.pyskl import restricted_load
from posebridge.cache.errors import UserError
from real_common import RealSet, write_set

NAME = "jhmdb"
SPLIT = 1
JOINTS = ["neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip", "left_hip", "right_elbow",
          "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist", "right_ankle", "left_ankle"]
LAYOUT = {
    "name": "jhmdb15", "dims": 2, "joints": JOINTS,
    "bones": [["neck", "face"], ["neck", "belly"], ["neck", "right_shoulder"], ["neck", "left_shoulder"],
              ["right_shoulder", "right_elbow"], ["right_elbow", "right_wrist"], ["left_shoulder", "left_elbow"],
              ["left_elbow", "left_wrist"], ["belly", "right_hip"], ["belly", "left_hip"], ["right_hip", "right_knee"],
              ["right_knee", "right_ankle"], ["left_hip", "left_knee"], ["left_knee", "left_ankle"]],
    "parts": {"head": ["face", "neck"],
              "hands": ["right_shoulder", "left_shoulder", "right_elbow", "left_elbow", "right_wrist", "left_wrist"],
              "torso": ["neck", "belly", "right_shoulder", "left_shoulder", "right_hip", "left_hip"],
              "legs": ["right_hip", "left_hip", "right_knee", "left_knee", "right_ankle", "left_ankle"]},
    "center": ["right_hip", "left_hip"],
    "torso": ["neck", ["right_hip", "left_hip"]],
}
# The pickles' label strings -> class name (as a phrase) and descriptions; our own short wording.
CLASSES = {
    "catch": ("catch", ["a person catches a ball or object thrown towards them with both hands"]),
    "clap": ("clap", ["a person claps, bringing the palms together repeatedly in front of the chest"]),
    "golf": ("golf", ["a person swings a golf club from behind the shoulder down through the ball"]),
    "jump": ("jump", ["a person bends the knees and jumps off the ground with both feet"]),
    "pick": ("pick", ["a person bends down and picks something up from the ground"]),
    "pour": ("pour", ["a person tilts a bottle or jug with one hand to pour liquid into a cup"]),
    "pullup": ("pull up", ["a person hangs from a bar and pulls the body up with the arms"]),
    "push": ("push", ["a person leans forward and pushes a heavy object with both arms"]),
    "run": ("run", ["a person runs, legs moving fast and arms swinging"]),
    "sit": ("sit", ["a person bends the knees and hips and sits down on a chair"]),
    "stand": ("stand", ["a person rises from a seat to a standing position"]),
    "throw": ("throw", ["a person swings one arm forward from over the shoulder and throws an object"]),
    "walk": ("walk", ["a person walks forward with alternating steps and arms swinging gently"]),
    "wave": ("wave", ["a person raises one hand and waves it from side to side"]),
}


def read_gt(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} does not exist; --data must hold jhmdb/GT_train_{SPLIT}.pkl and GT_test_{SPLIT}.pkl")
    with open(path, "rb") as f:
        data = restricted_load(f, encoding="latin1")
    if not isinstance(data, dict) or set(data) < {"pose", "label"} or len(data["pose"]) != len(data["label"]):
        raise UserError(f"{path} is not a JHMDB GT pickle ({{'pose': [...], 'label': [...]}} of equal length)")
    return data


def convert(data_dir: Path, work: Path, unseen: int = 4, count: int = 10, seed: int = 0) -> RealSet:
    keys = list(CLASSES)
    classes = [{"name": CLASSES[k][0], "descriptions": CLASSES[k][1]} for k in keys]
    annotations, split = [], {}
    for side in ("train", "test"):
        data = read_gt(Path(data_dir) / "jhmdb" / f"GT_{side}_{SPLIT}.pkl")
        ids = []
        for i, (pose, label) in enumerate(zip(data["pose"], data["label"])):
            if label not in CLASSES:
                raise UserError(f"GT_{side}_{SPLIT}.pkl: unknown class {label!r}; expected one of {', '.join(keys)}")
            pose = np.asarray(pose, np.float32)
            if pose.ndim != 3 or pose.shape[1:] != (len(JOINTS), 2):
                raise UserError(f"GT_{side}_{SPLIT}.pkl: clip {i} has shape {pose.shape}, expected (T, 15, 2)")
            clip_id = f"{side}{SPLIT}_{i:03d}_{label}"
            annotations.append({"frame_dir": clip_id, "label": keys.index(label), "total_frames": len(pose),
                                "img_shape": (240, 320), "original_shape": (240, 320),
                                "keypoint": pose[None], "keypoint_score": np.ones(pose.shape[:2], np.float32)[None]})
            ids.append(clip_id)
        split[f"split{SPLIT}_{side}"] = ids
    return write_set(Path(work), NAME, annotations, split, LAYOUT, classes, f"split{SPLIT}_train",
                     f"split{SPLIT}_test", unseen, count, seed)
