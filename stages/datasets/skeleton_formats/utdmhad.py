"""UTD-MHAD (Chen, Jafari, Kehtarnavaz, ICIP 2015): the `aA_sS_tT_skeleton.mat` skeleton files.

Each file (action A = 1..27, subject S = 1..8, trial T = 1..4) is MATLAB v5 with one variable
`d_skel` [20, 3, T]: one person, Kinect v1 camera-space joints in metres (y up), in the data set's
own joint order (its Skeleton_joint_order.txt):

    1 head, 2 shoulder_center, 3 spine, 4 hip_center, 5-8 left shoulder/elbow/wrist/hand,
    9-12 right shoulder/elbow/wrist/hand, 13-16 left hip/knee/ankle/foot, 17-20 right hip/knee/ankle/foot

That is the Kinect SDK v1 order with the first four joints reversed; they are reordered into the
SDK order (layout `kinect_v1`, shared with NW-UCLA). Checked on the 861 real files: after the
reorder the head is the top joint, head > shoulder_center > spine > hip_center in height in 99.8%
of frames, left_shoulder.x < right_shoulder.x in all (as in NW-UCLA), the joint labelled right_wrist
moves 23-61x more than the left one in the right-arm actions and ~1x in two-handed ones, and the
median bone lengths match NW-UCLA's within a few centimetres.

Labels: action A -> class A - 1. Sides: the usual cross-subject protocol, odd subjects train
(xsub_train), even subjects test (xsub_val). Reading .mat files needs scipy.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from posebridge.cache.pyskl import Annotation
from posebridge.stages.datasets.skeleton_formats.importer import BadFile, SkeletonFormat, group_sides, one_line

NUM_JOINTS = 20
CLASSES = ("swipe left", "swipe right", "wave", "clap", "throw", "arm cross", "basketball shoot", "draw x",
           "draw circle (clockwise)", "draw circle (counter clockwise)", "draw triangle", "bowling", "boxing",
           "baseball swing", "tennis swing", "arm curl", "tennis serve", "push", "knock", "catch",
           "pickup and throw", "jog", "walk", "sit to stand", "stand to sit", "lunge", "squat")
# kinect_v1 joint k is UTD-MHAD joint UTD_TO_KINECT_V1[k] (0-based): only head..hip_center are reversed.
UTD_TO_KINECT_V1 = (3, 2, 1, 0) + tuple(range(4, 20))
FILE_NAME = re.compile(r"^a(\d{1,2})_s(\d{1,2})_t(\d{1,2})_skeleton\.mat$")
NAME_PATTERN = "aA_sS_tT_skeleton.mat (e.g. a1_s1_t1_skeleton.mat)"
_V5_HEADER = b"MATLAB 5.0 MAT-file"
_HEADER_BYTES = 128


def parse_name(name: str) -> dict[str, int] | None:
    """{action, subject, take} or None if not a UTD-MHAD skeleton file name."""
    match = FILE_NAME.match(name)
    if match is None:
        return None
    return dict(zip(("action", "subject", "take"), map(int, match.groups())))


def scan(src: Path) -> list[Path]:
    """Every aA_sS_tT_skeleton.mat under `src` (any depth), sorted."""
    return sorted(p for p in Path(src).rglob("*.mat") if FILE_NAME.match(p.name) and p.is_file())


def read(path: Path) -> list[Annotation]:
    """The one clip of a UTD-MHAD file, keypoint [1, T, 20, 3] float32 in Kinect v1 order; BadFile if unusable."""
    path = Path(path)
    meta = parse_name(path.name)
    if meta is None:
        raise BadFile(f"not a UTD-MHAD skeleton file name {NAME_PATTERN}")
    if not 1 <= meta["action"] <= len(CLASSES):
        raise BadFile(f"action a{meta['action']} is outside 1-{len(CLASSES)}")
    d_skel = _load_d_skel(path)
    if d_skel.ndim != 3 or d_skel.shape[:2] != (NUM_JOINTS, 3) or d_skel.shape[2] < 1:
        raise BadFile(f"d_skel has shape {list(d_skel.shape)}, not [20, 3, T]")
    if not np.issubdtype(d_skel.dtype, np.number) or np.iscomplexobj(d_skel):
        raise BadFile(f"d_skel holds {d_skel.dtype}, not real numbers")
    if not np.isfinite(d_skel).all():
        raise BadFile("d_skel has a non-finite value")
    xyz = np.ascontiguousarray(d_skel.transpose(2, 0, 1)[:, UTD_TO_KINECT_V1], dtype=np.float32)
    return [Annotation(path.name[: -len("_skeleton.mat")], meta["action"] - 1, xyz[None], meta=meta)]


def sides(annotations: list[Annotation]) -> dict[str, list[str]]:
    """Cross-subject: odd subjects train (xsub_train), even subjects test (xsub_val)."""
    return group_sides(annotations, "xsub", lambda meta: meta["subject"] % 2 == 1)


def _load_d_skel(path: Path) -> np.ndarray:
    import scipy.io  # here, not at the top: only this format needs scipy

    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_BYTES)
    except OSError as err:
        raise BadFile(f"unreadable: {err.strerror}") from None
    if not head:
        raise BadFile("empty")
    if head.startswith(b"MATLAB 7.3 MAT-file"):
        raise BadFile("a MATLAB v7.3 (HDF5) file; UTD-MHAD files are MATLAB v5", "save it again with save -v7")
    if not head.startswith(_V5_HEADER):
        raise BadFile("not a MATLAB v5 .mat file (no 'MATLAB 5.0 MAT-file' header)", "move it out of the folder")
    if len(head) < _HEADER_BYTES:
        raise BadFile("truncated (shorter than the 128-byte MATLAB header)")
    try:
        content = scipy.io.loadmat(path, variable_names=["d_skel"])
    except OSError as err:  # scipy: "could not read bytes" when a data element runs past the end
        raise BadFile(f"truncated MATLAB file ({one_line(err)})") from None
    except Exception as err:  # noqa: BLE001 - scipy raises MatReadError, ValueError, IndexError, zlib.error, ...
        raise BadFile(f"corrupt MATLAB file ({type(err).__name__}: {one_line(err)})") from None
    if "d_skel" not in content:
        raise BadFile("no d_skel variable in the .mat file")
    return np.asarray(content["d_skel"])


FORMAT = SkeletonFormat(
    name="utdmhad", layout="kinect_v1",
    summary="UTD-MHAD aA_sS_tT_skeleton.mat files (reordered to the Kinect SDK order); sides xsub (odd subjects "
            "train, even test)",
    files="aA_sS_tT_skeleton.mat files", folder="UTD-MHAD's skeleton folder (aA_sS_tT_skeleton.mat files)",
    fix="copy it again from the release's skeleton download", classes=CLASSES,
    scan=scan, read=read, sides=sides)
