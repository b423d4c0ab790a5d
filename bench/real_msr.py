"""MSR Action3D skeletons (aAA_sSS_eEE_skeleton3D.txt) -> PYSKL + layout + split.

Each file holds 20 lines `x y z c` per frame (metres, y up; c a tracking confidence). Only the 556
sequences of files_used_in_cvpr12_paper.txt are kept (the usual protocol; the others have broken
skeletons). Sides: cross-subject, subjects 1, 3, 5, 7, 9 train and 2, 4, 6, 8, 10 test. The
positions of joints with c = 0 are Kinect's inferred ones and are kept: PYSKL 3D files carry no
score, and the product reads 3D joints with confidence 1.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from posebridge.cache.errors import UserError
from real_common import RealSet, write_set

NAME = "msr_action3d"
TRAIN_SUBJECTS = frozenset({1, 3, 5, 7, 9})
FILE_NAME = re.compile(r"^a(\d\d)_s(\d\d)_e(\d\d)$")
# body_model.mat's order (1-based there): hip centre 7, head 20, left/right hip 5/6, wrists 10/11, ankles 16/17.
JOINTS = ["left_shoulder", "right_shoulder", "shoulder_centre", "spine", "left_hip", "right_hip", "hip_centre",
          "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand", "left_knee",
          "right_knee", "left_ankle", "right_ankle", "left_foot", "right_foot", "head"]
_BONES_1BASED = [[7, 4], [4, 3], [3, 20], [3, 1], [3, 2], [1, 8], [2, 9], [8, 10], [9, 11], [10, 12], [11, 13],
                 [7, 5], [7, 6], [5, 14], [6, 15], [14, 16], [15, 17], [16, 18], [17, 19]]
LAYOUT = {
    "name": "msr20", "dims": 3, "joints": JOINTS,
    "bones": [[JOINTS[a - 1], JOINTS[b - 1]] for a, b in _BONES_1BASED],
    "parts": {"head": ["head", "shoulder_centre"],
              "hands": ["left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand"],
              "torso": ["shoulder_centre", "spine", "hip_centre", "left_shoulder", "right_shoulder", "left_hip",
                        "right_hip"],
              "legs": ["left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot",
                       "right_foot"]},
    "center": "hip_centre",
    "torso": ["shoulder_centre", "hip_centre"],
    "across": ["right_shoulder", "left_shoulder"],  # lets --view-align turn these 3D clips
}
# Label 1..20 names (action_names.mat, as in the README) with our own short descriptions.
CLASSES = [
    ("high arm wave", "a person raises one arm high above the head and waves it from side to side"),
    ("horizontal arm wave", "a person holds one arm out in front at shoulder height and waves it left and right"),
    ("hammer", "a person swings one fist up and down as if hitting a nail with a hammer"),
    ("hand catch", "a person reaches out with one hand and closes it to catch something"),
    ("forward punch", "a person punches straight forward with one fist"),
    ("high throw", "a person raises one arm above the shoulder and throws an object forward"),
    ("draw X", "a person draws a large letter X in the air with one hand"),
    ("draw tick", "a person draws a tick mark in the air with one hand"),
    ("draw circle", "a person draws a large circle in the air with one hand"),
    ("hand clap", "a person claps both hands together in front of the chest"),
    ("two hand wave", "a person raises both arms above the head and waves them"),
    ("side boxing", "a person punches sideways with one fist, as in boxing"),
    ("bend", "a person bends the upper body forward and down, then straightens up"),
    ("forward kick", "a person kicks one leg straight forward"),
    ("side kick", "a person lifts one leg and kicks out to the side"),
    ("jogging", "a person jogs on the spot, knees lifting and arms swinging"),
    ("tennis swing", "a person swings one arm across the body like a tennis forehand"),
    ("tennis serve", "a person tosses a ball up and swings one arm overhead like a tennis serve"),
    ("golf swing", "a person swings both hands together from behind the shoulder down like a golf swing"),
    ("pickup and throw", "a person bends down to pick up an object and then throws it"),
]


def read_sequence(path: Path) -> np.ndarray:
    """[T, 20, 3] float32 of one skeleton file."""
    try:
        values = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not an MSR Action3D skeleton file ({err})") from None
    if values.shape[1] != 4 or len(values) % len(JOINTS) or not len(values):
        raise UserError(f"{path}: {values.shape} values; expected 20 lines of `x y z c` per frame")
    return values[:, :3].reshape(-1, len(JOINTS), 3)


def convert(data_dir: Path, work: Path, unseen: int = 5, count: int = 10, seed: int = 0) -> RealSet:
    root = Path(data_dir) / "msr_action3d"
    used = root / "files_used_in_cvpr12_paper.txt"
    if not used.is_file():
        raise UserError(f"{used} does not exist; --data must hold msr_action3d/ (skeletons/ and the CVPR'12 file list)")
    names = used.read_text().split()
    annotations, split = [], {"xsub_train": [], "xsub_test": []}
    for name in names:
        match = FILE_NAME.match(name)
        if match is None:
            raise UserError(f"{used}: {name!r} is not aAA_sSS_eEE")
        action, subject, _ = map(int, match.groups())
        if not 1 <= action <= len(CLASSES):
            raise UserError(f"{used}: {name} has action {action}, outside 1..{len(CLASSES)}")
        xyz = read_sequence(root / "skeletons" / f"{name}_skeleton3D.txt")
        annotations.append({"frame_dir": name, "label": action - 1, "total_frames": len(xyz), "keypoint": xyz[None]})
        split["xsub_train" if subject in TRAIN_SUBJECTS else "xsub_test"].append(name)
    classes = [{"name": n, "descriptions": [d]} for n, d in CLASSES]
    return write_set(Path(work), NAME, annotations, split, LAYOUT, classes, "xsub_train", "xsub_test",
                     unseen, count, seed)
