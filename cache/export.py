"""Exports of a cue cache to formats other tools read: the PYSKL pickle and a plain HDF5 file.

Both are written to a tmp file next to the target and renamed over it, so a target is either the
old file or the complete new one. The PYSKL file itself is read and written by cache/pyskl.py.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from urllib.parse import quote

import h5py
import numpy as np

from posebridge.cache.schema import KEYPOINT_CHANNELS, load_layout
from posebridge.cache.store import ClipArrays, ClipRecord, CueStore
from posebridge.cache.atomic import atomic_path
from posebridge.cache.errors import UserError
from posebridge.cache.pyskl import Annotation, write_pyskl

_X, _Y, _VISIBILITY = (KEYPOINT_CHANNELS.index(c) for c in ("x", "y", "visibility"))
# Export layouts: "coco17" is what pyskl's and mmaction2's 2D skeleton models are built for
# (STGCN / ST-GCN++ with the COCO graph: 17 joints x (x, y, score)); "full" keeps every joint; any
# other layout (a name or a .json file, docs/layouts.md) whose joints the store has, by joint name.
PYSKL_LAYOUTS = ("coco17", "full")


# --- PYSKL -------------------------------------------------------------------------------------

def export_pyskl(store: CueStore, out_path: str | os.PathLike,
                 split: dict[str, list[str]] | None = None, layout: str = "coco17") -> dict[str, list[str]]:
    """Write the PYSKL 2D pickle, as pyskl's and mmaction2's PoseDataset read it.

    Per clip: frame_dir (str), total_frames (int), img_shape and original_shape ((H, W) ints),
    label (int), keypoint float32 [M, T, V, 2] in pixels, keypoint_score float32 [M, T, V]
    (visibility; 0 where the person is absent). M = the persons seen in the clip (at least 1),
    main actor first; V = 17 (COCO order) for layout "coco17", every joint of the store for "full",
    the layout's joints (picked by name) for another layout name or .json file.

    `split` defaults to {"all": every clip}. Ids the store lacks (failed clips) are left out of
    the split, as PYSKL expects every split id to have an annotation; they are returned by name.
    """
    joints = _export_joints(store, layout)
    records = store.clips()
    have = {r.clip_id for r in records}
    split = {"all": sorted(have)} if split is None else split
    missing = {name: [c for c in ids if c not in have] for name, ids in split.items()}
    annotations = [_pyskl_annotation(record, arrays, joints) for record, arrays in store.iter_clips()]
    annotations.sort(key=lambda a: a.frame_dir)
    write_pyskl(out_path, annotations, {name: [c for c in ids if c in have] for name, ids in split.items()},
                replace=True)
    return {name: ids for name, ids in missing.items() if ids}


def _export_joints(store: CueStore, layout: str) -> tuple[int, ...] | None:
    """Store joint indices to export, in the layout's joint order (None: all of them)."""
    if layout == "full":
        return None
    target = load_layout(layout)
    have = {name: j for j, name in enumerate(store.layout.joint_names)}
    missing = [name for name in target.joint_names if name not in have]
    if missing:
        raise UserError(f"--layout {layout}: the store's {store.layout.skeleton} skeleton has no joint "
                        f"{missing[0]!r}; export a layout whose joints it has ({', '.join(PYSKL_LAYOUTS)}) "
                        f"or --layout full")
    return tuple(have[name] for name in target.joint_names)


def _pyskl_annotation(record: ClipRecord, arrays: ClipArrays, joints: tuple[int, ...] | None) -> Annotation:
    kp = np.nan_to_num(arrays.keypoints).transpose(1, 0, 2, 3)  # [M, T, V, 5]; no person: no position
    seen = np.flatnonzero(np.asarray(arrays.score).max(axis=0) > 0)  # slots are main actor first
    kp = kp[seen if len(seen) else [0]]
    if joints is not None:
        kp = kp[:, :, list(joints)]
    xy = kp[..., [_X, _Y]] * np.array([record.width, record.height], dtype=np.float32)
    return Annotation(frame_dir=record.clip_id, label=int(record.label),
                      keypoint=np.ascontiguousarray(xy, dtype=np.float32),
                      keypoint_score=np.ascontiguousarray(kp[..., _VISIBILITY], dtype=np.float32),
                      img_shape=(int(record.height), int(record.width)))


# --- HDF5 --------------------------------------------------------------------------------------

def export_hdf5(store: CueStore, out_path: str | os.PathLike) -> None:
    """One group per clip under /clips (name = url-quoted clip_id), decoded float32 arrays.

    Root attr `store_attrs` and each clip's attr `record` are JSON, so any HDF5 reader can use it.
    """
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["store_attrs"] = json.dumps(store.attrs)
        clips = f.create_group("clips")
        for record, arrays in store.iter_clips():
            group = clips.create_group(quote(record.clip_id, safe=""))
            group.attrs["record"] = json.dumps(dataclasses.asdict(record))
            for name in ("keypoints", "score", "features", "heatmaps"):
                group.create_dataset(name, data=getattr(arrays, name), compression="gzip",
                                     compression_opts=4, shuffle=True)


def read_hdf5(path: str | os.PathLike) -> tuple[dict, list[tuple[ClipRecord, ClipArrays]]]:
    """(store attrs, clips sorted by clip_id) of a file written by export_hdf5."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = json.loads(f.attrs["store_attrs"])
            clips = []
            for group in f["clips"].values():
                arrays = ClipArrays(**{k: group[k][()] for k in ("keypoints", "score", "features", "heatmaps")})
                clips.append((ClipRecord(**json.loads(group.attrs["record"])), arrays))
    except (OSError, KeyError) as err:
        raise UserError(f"{path} is not a PoseBridge HDF5 export ({err})") from err
    return attrs, sorted(clips, key=lambda c: c[0].clip_id)
