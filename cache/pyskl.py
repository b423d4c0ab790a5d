"""The PYSKL pickle, read and written here only: the file pyskl and mmaction2 trade.

    {"split": {side name: [frame_dir, ...]},
     "annotations": [{"frame_dir": str, "total_frames": int, "label": int,
                      "keypoint": float32 [M, T, V, C],        # C = 2 (x, y pixels) or 3 (x, y, z)
                      "keypoint_score": float32 [M, T, V],     # optional
                      "img_shape": (H, W), "original_shape": (H, W),     # 2D data
                      "meta": {"view": 3, ...}}],              # optional: what the source says
     "layout": "kinect_v1"}                                    # optional, written by `posebridge import`

Reading admits only containers and numpy arrays (unpickling can run code), then checks the
structure. Writing goes through a temporary sibling, so the target appears whole or not at all;
an import refuses a target that exists (`replace=False`), an export replaces it (`replace=True`).

"layout" names the built-in layout the keypoints follow (cache/layouts/*.json). pyskl and mmaction2
read only "split" and "annotations"; the stage-2 loader reads it instead of guessing the layout from
the joint count, which cannot tell Kinect v1's 20 joints (NW-UCLA, UTD-MHAD) from MSR Action3D's
20 in another order.
"""
from __future__ import annotations

import _compat_pickle
import os
import pickle
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posebridge.cache.atomic import atomic_new_path, atomic_path
from posebridge.cache.errors import UserError
from posebridge.cache.layouts import check_joint_count, skeleton

REQUIRED = ("frame_dir", "total_frames", "label", "keypoint")
LAYOUT_KEY = "layout"


@dataclass
class Annotation:
    """One clip of a PYSKL file.

    keypoint:       float32 [M, T, V, C]: M persons, T frames, V joints, C = 3 (x, y, z) or 2 (x, y
                    pixels); an absent person or undetected joint is 0 (as pyskl pads).
    label:          0-based class index; -1 = unknown (as a cue store marks unlabelled clips).
    keypoint_score: float32 [M, T, V] or None (3D Kinect data has none).
    img_shape:      (height, width) the 2D pixels refer to; 2D data needs it (pyskl normalises by it).
    meta:           what the source says about the clip (view, subject, take, ...), plain values:
                    importers choose the sides from it, and it is written as the annotation's "meta"
                    (pyskl and mmaction2 pass unknown keys through), so other sides can be made later.
    """

    frame_dir: str
    label: int
    keypoint: np.ndarray
    keypoint_score: np.ndarray | None = None
    img_shape: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        kp = self.keypoint
        if not isinstance(kp, np.ndarray) or kp.dtype != np.float32 or kp.ndim != 4:
            raise TypeError(f"{self.frame_dir}: keypoint must be a float32 array [M, T, V, C]")
        if kp.shape[0] < 1 or kp.shape[2] < 1 or kp.shape[3] not in (2, 3):
            raise ValueError(f"{self.frame_dir}: keypoint shape {kp.shape} is not [M>=1, T, V>=1, C=2|3]")
        score = self.keypoint_score
        if score is not None and (not isinstance(score, np.ndarray) or score.dtype != np.float32
                                  or score.shape != kp.shape[:3]):
            raise ValueError(f"{self.frame_dir}: keypoint_score must be a float32 array {kp.shape[:3]}")
        if kp.shape[3] == 2 and self.img_shape is None:
            raise ValueError(f"{self.frame_dir}: 2D keypoints need img_shape (height, width)")
        if isinstance(self.label, bool) or not isinstance(self.label, (int, np.integer)) or self.label < -1:
            raise ValueError(f"{self.frame_dir}: label {self.label!r} is not a 0-based class index (or -1)")
        self.label = int(self.label)
        if self.img_shape is not None:
            self.img_shape = (int(self.img_shape[0]), int(self.img_shape[1]))

    @property
    def total_frames(self) -> int:
        return int(self.keypoint.shape[1])

    def to_dict(self) -> dict:
        """The annotation as the file holds it (pyskl's keys; score, image shape and meta when there are any)."""
        ann = {"frame_dir": self.frame_dir, "label": self.label, "total_frames": self.total_frames,
               "keypoint": self.keypoint}
        if self.keypoint_score is not None:
            ann["keypoint_score"] = self.keypoint_score
        if self.img_shape is not None:
            ann["img_shape"] = ann["original_shape"] = self.img_shape
        if self.meta:
            ann["meta"] = dict(self.meta)
        return ann


# --- writing -----------------------------------------------------------------------------------

def write_pyskl(out: str | os.PathLike, annotations: Iterable[Annotation | dict], split: dict[str, list[str]],
                layout: str | None = None, replace: bool = False) -> None:
    """Write a PYSKL pickle atomically: nothing is left at `out` or beside it if anything fails.

    Annotations are Annotation records or dicts as read_pyskl returns them; each is checked as
    read_pyskl checks it, every split id must be an annotation's frame_dir, and frame_dirs are
    unique. `layout` (a built-in layout name, whose joint count every clip must have) is recorded
    when given. replace=False refuses an existing `out` (UserError), also one another process
    creates while this one writes.
    """
    out = Path(out)
    rows = [a.to_dict() if isinstance(a, Annotation) else a for a in annotations]
    for i, ann in enumerate(rows):
        check_annotation(out, i, ann)
    counts = Counter(ann["frame_dir"] for ann in rows)
    twice = [frame_dir for frame_dir, n in counts.items() if n > 1]
    if twice:
        raise UserError(f"{out}: {len(twice)} frame_dirs name two clips, e.g. {twice[0]!r}; they must be unique")
    known = set(counts)
    for side, members in split.items():
        missing = [c for c in members if c not in known]
        if missing:
            raise UserError(f"{out}: split {side!r} names {len(missing)} clips that are not annotations, "
                            f"e.g. {missing[0]!r}")
    data: dict = {"split": split, "annotations": rows}
    if layout is not None:
        for i, ann in enumerate(rows):
            check_joint_count(skeleton(layout), np.shape(ann["keypoint"])[2], f"{out}: annotation {i}")
        data[LAYOUT_KEY] = layout
    try:
        with (atomic_path if replace else atomic_new_path)(out) as tmp, open(tmp, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    except FileExistsError:
        raise UserError(f"{out} already exists; give a new file name or delete it first") from None


# --- reading -----------------------------------------------------------------------------------

# What a PYSKL pickle may name: numpy's array / dtype / scalar reconstructors (numpy 1.x lives in
# numpy.core, 2.x in numpy._core), and the helpers the pickle protocols themselves use for plain
# containers and bytes. Everything else (os.system, eval, any class) is refused before it is looked up.
_PICKLE_ALLOWED = {
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
    *((f"{core}.multiarray", name) for core in ("numpy.core", "numpy._core") for name in ("_reconstruct", "scalar")),
    *((f"{core}.numeric", "_frombuffer") for core in ("numpy.core", "numpy._core")),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only _PICKLE_ALLOWED globals (Python docs, "Restricting Globals")."""

    def find_class(self, module: str, name: str):
        # Protocol-2 files name Python 2 modules (__builtin__.set): map them as the Unpickler would.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a PYSKL file never holds "
                                         f"(only containers and numpy arrays); refused without running it")
        return super().find_class(module, name)


def restricted_load(file, encoding: str = "ASCII"):
    """Unpickle `file` admitting only containers and numpy arrays, as read_pyskl does; for other
    research pickles (encoding="latin1" reads Python 2 pickles of numpy arrays)."""
    return _RestrictedUnpickler(file, encoding=encoding).load()


def read_pyskl(path: str | os.PathLike) -> dict:
    """Load a PYSKL pickle safely (only containers and numpy arrays are admitted) and check its structure."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"PYSKL pickle {path} does not exist; check the path (a .pkl from pyskl / mmaction2, "
                        f"`posebridge import` or `posebridge export --format pyskl`)")
    try:
        with open(path, "rb") as f:
            data = restricted_load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as err:
        raise UserError(f"{path} is not a readable PYSKL pickle ({err}); give a pickle written by pyskl, "
                        f"mmaction2, `posebridge import` or `posebridge export --format pyskl`") from err
    if not isinstance(data, dict) or not isinstance(data.get("split"), dict) \
            or not isinstance(data.get("annotations"), list):
        raise UserError(f"{path} is not a PYSKL pickle: it needs a dict with 'split' (dict) and 'annotations' (list)")
    if not isinstance(data.get(LAYOUT_KEY, ""), str):
        raise UserError(f"{path}: '{LAYOUT_KEY}' is {data[LAYOUT_KEY]!r}, not a layout name")
    for i, ann in enumerate(data["annotations"]):
        check_annotation(path, i, ann)
    return data


def check_annotation(path: Path, i: int, ann: object) -> None:
    """One annotation has what pyskl and our loader need: the REQUIRED keys, keypoint [M, total_frames,
    V, C], img_shape for 2D, keypoint_score [M, T, V] if present."""
    if not isinstance(ann, dict):
        raise UserError(f"{path}: annotation {i} is a {type(ann).__name__}, not a dict")
    lacking = [k for k in REQUIRED if k not in ann]
    if lacking:
        raise UserError(f"{path}: annotation {i} ({ann.get('frame_dir', '?')}) lacks {lacking}")
    where = f"{path}: annotation {i} ({ann['frame_dir']})"
    kp = np.asarray(ann["keypoint"])
    if kp.ndim != 4 or kp.shape[1] != ann["total_frames"]:
        raise UserError(f"{where}: keypoint has shape {kp.shape}, expected [M, total_frames={ann['total_frames']}, V, C]")
    if kp.shape[-1] == 2 and "img_shape" not in ann:
        raise UserError(f"{where}: 2D keypoints need 'img_shape'")
    if "keypoint_score" in ann and np.shape(ann["keypoint_score"]) != kp.shape[:3]:
        raise UserError(f"{where}: keypoint_score has shape {np.shape(ann['keypoint_score'])}, expected {kp.shape[:3]}")
