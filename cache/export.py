"""Exports of a cue cache to formats other tools read: the PYSKL pickle and a plain HDF5 file.

Both are written to a tmp file next to the target and renamed over it, so a target is either the
old file or the complete new one.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
from pathlib import Path
from urllib.parse import quote

import h5py
import numpy as np

from posebridge.cache.store import KEYPOINT_CHANNELS, ClipArrays, ClipRecord, CueStore
from posebridge.pipeline.atomic import atomic_path
from posebridge.pipeline.errors import UserError

_X, _Y, _VISIBILITY = (KEYPOINT_CHANNELS.index(c) for c in ("x", "y", "visibility"))
_PYSKL_REQUIRED = ("frame_dir", "total_frames", "label", "keypoint")


# --- PYSKL -------------------------------------------------------------------------------------

def export_pyskl(store: CueStore, out_path: str | os.PathLike,
                 split: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Write the PYSKL 2D pickle (one person, keypoints in pixels, score = visibility).

    `split` defaults to {"all": every clip}. Ids the store lacks (failed clips) are left out of
    the split, as PYSKL expects every split id to have an annotation; they are returned by name.
    """
    records = store.clips()
    have = {r.clip_id for r in records}
    split = {"all": sorted(have)} if split is None else split
    missing = {name: [c for c in ids if c not in have] for name, ids in split.items()}
    annotations = [_pyskl_annotation(record, arrays) for record, arrays in store.iter_clips()]
    annotations.sort(key=lambda a: a["frame_dir"])
    data = {"split": {name: [c for c in ids if c in have] for name, ids in split.items()},
            "annotations": annotations}
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    return {name: ids for name, ids in missing.items() if ids}


def _pyskl_annotation(record: ClipRecord, arrays: ClipArrays) -> dict:
    kp = np.nan_to_num(arrays.keypoints)  # frames without a person carry no position
    xy = kp[..., [_X, _Y]] * np.array([record.width, record.height], dtype=np.float32)
    return {
        "frame_dir": record.clip_id,
        "total_frames": record.num_frames,
        "img_shape": (record.height, record.width),
        "original_shape": (record.height, record.width),
        "label": record.label,
        "keypoint": xy[None].astype(np.float32),
        "keypoint_score": kp[None, ..., _VISIBILITY].astype(np.float32),
    }


def read_pyskl(path: str | os.PathLike) -> dict:
    """Load a PYSKL pickle and check its structure (pickle runs code: load trusted files only)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
        raise UserError(f"{path} is not a readable PYSKL pickle ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("split"), dict) \
            or not isinstance(data.get("annotations"), list):
        raise UserError(f"{path} is not a PYSKL pickle: it needs a dict with 'split' (dict) and 'annotations' (list)")
    for i, ann in enumerate(data["annotations"]):
        _check_pyskl_annotation(path, i, ann)
    return data


def _check_pyskl_annotation(path: Path, i: int, ann: object) -> None:
    if not isinstance(ann, dict):
        raise UserError(f"{path}: annotation {i} is a {type(ann).__name__}, not a dict")
    lacking = [k for k in _PYSKL_REQUIRED if k not in ann]
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
