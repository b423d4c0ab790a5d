"""The training view of a cue store: its resampled, normalised tensors, written once as .npy files.

Reading and resampling a whole cache costs minutes and its size in RAM at NTU scale (issue 9:
96 s and 12.2 GB before the first step, every run). The view is written the first time a store
is trained on, one row per clip in clip_id order, and reused by every later run with the same
clip set and loader settings; either changing gives a new view (the key below). Rows are read
on demand with positional reads (os.preadv), not mmap, so only the batches in use occupy memory
and the resident size stays flat however large the store is.

On disk: keypoints and confidence as the loader makes them (float32); cues stay uint8: features
as codes with their own per-clip, per-channel range (as the cache stores them; a resampled frame
is rounded to that grid, at most half a code step off), heatmaps as sigmoid x 255. Arrays are
stored by name with whatever shape the loader gives (clip_rows in data.py), so a new axis (the
person axis M of cache schema v2) needs no change here.

Layout: <store>/views/<key16>/{<name>.npy, features_range.npy, index.json}.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from posebridge.cache import walk
from posebridge.cache.schema import skeleton
from posebridge.cache.store import CueStore, clean_stale_tmp, new_tmp_dir
from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import file_code_sha256, fingerprint
from posebridge.stages.train import data as data_module
from posebridge.stages.train.data import CueDataset, clip_rows, clip_set, data_fingerprint, open_store

VIEW_VERSION = 2  # 2: the index's source_fingerprint covers the clip set (data_fingerprint)
VIEWS = "views"
INDEX = "index.json"
_FLOAT = "float"  # stored as the loader gives it
_RANGED = "ranged_uint8"  # per-row, per-last-axis [lo, hi] + uint8 codes
_UNIT = "unit_uint8"  # values in [0, 1] as x 255 codes


class _StoreChanged(Exception):
    """A clip of the store changed while its view was being written (an extract is running)."""


def view_key(store: CueStore, num_frames: int, records: list) -> dict:
    """Everything the view's content depends on: the store, its clip set (`records`, one snapshot
    of store.clips()), the loader settings and the code that makes the rows (its source hash, as
    the synthetic store does)."""
    return {"view_version": VIEW_VERSION, "store": store.fingerprint, "clip_set": clip_set(records),
            "num_frames": num_frames, "min_confidence": data_module.MIN_CONFIDENCE,
            "loader_sha256": data_module.loader_code_sha256(), "view_sha256": file_code_sha256(__file__)}


class MappedRows:
    """Rows of a .npy file, read on demand; indexing with row numbers gives a tensor, like a tensor would.

    `decode` turns the stored rows (numpy) and their row numbers into float32; the reader keeps the
    target device and dtype that `.to()` asks for, so the training loop treats it as a tensor."""

    def __init__(self, path: Path, decode=None, device: torch.device | None = None, dtype: torch.dtype | None = None):
        self.path = Path(path)
        array = np.load(self.path, mmap_mode="r")  # the header only: shape, dtype, data offset
        self.shape, self._dtype, self._offset = tuple(array.shape), array.dtype, array.offset
        del array
        self._row_shape = self.shape[1:]
        self._row_bytes = int(np.prod(self._row_shape, dtype=np.int64)) * self._dtype.itemsize
        self._decode = decode
        self.device = device or torch.device("cpu")
        self.dtype = dtype
        self._fd = os.open(self.path, os.O_RDONLY)

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def __len__(self) -> int:
        return self.shape[0]

    def to(self, device=None, dtype=None) -> MappedRows:
        """A reader of the same file with another target; it shares the open file (a duplicate
        descriptor), so it keeps working if the view is deleted meanwhile (a newer clip set)."""
        other = copy.copy(self)
        other._fd = os.dup(self._fd)
        other.device = torch.device(device) if device is not None else self.device
        other.dtype = dtype or self.dtype
        return other

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self._row_shape), self._dtype)
        for j, row in enumerate(rows.tolist()):
            if not 0 <= row < self.shape[0]:
                raise IndexError(f"row {row} is outside {self.path} ({self.shape[0]} rows)")
            view = memoryview(out[j]).cast("B")
            if os.preadv(self._fd, [view], self._offset + row * self._row_bytes) != self._row_bytes:
                raise UserError(f"{self.path} is truncated; delete {self.path.parent} and train again to rebuild it")
        return out

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, slice):  # a contiguous block (the frozen encoder reads the rows in blocks)
            rows = np.arange(*idx.indices(self.shape[0]), dtype=np.int64)
        else:
            rows = torch.as_tensor(idx).cpu().numpy().astype(np.int64).reshape(-1)
        values = self.read(rows)
        if self._decode is not None:
            values = self._decode(values, rows)
        tensor = torch.from_numpy(np.ascontiguousarray(values))
        return tensor.to(self.device, self.dtype) if self.dtype is not None else tensor.to(self.device)


def _encode(name: str, values: np.ndarray, coding: str) -> tuple[np.ndarray, np.ndarray | None]:
    if coding == _UNIT:
        return np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8), None
    if coding == _RANGED:
        axes = tuple(range(values.ndim - 1))
        lo, hi = values.min(axis=axes), values.max(axis=axes)
        span = hi - lo
        scale = np.divide(np.float32(255), span, out=np.zeros_like(span), where=span > 0)
        return np.clip(np.rint((values - lo) * scale), 0, 255).astype(np.uint8), np.stack([lo, hi]).astype(np.float32)
    return values, None


def _codings(store: CueStore) -> dict[str, str]:
    ranged = _RANGED if store.layout.feature_dtype == "uint8" else _FLOAT
    return {"keypoints": _FLOAT, "confidence": _FLOAT, "features": ranged, "heatmaps": _UNIT}


def _write_view(store: CueStore, num_frames: int, key: dict, dest: Path, records: list) -> None:
    """Write every row of the clips `records` (the snapshot the key was made from) with positional
    writes (no mmap: the writer's memory stays one clip)."""
    n = len(records)
    codings = _codings(store)
    files, ranges, labels = {}, {}, np.empty(n, np.int64)
    clip_ids, meta = [""] * n, [{}] * n
    try:
        for row, record, arrays in clip_rows(store, num_frames, [r.clip_id for r in records]):
            if record != records[row]:  # a newer copy landed since the snapshot: the key would lie
                raise _StoreChanged(record.clip_id)
            for name, values in arrays.items():
                codes, value_range = _encode(name, values, codings.get(name, _FLOAT))
                if name not in files:
                    header = np.lib.format.open_memmap(dest / f"{name}.npy", mode="w+", dtype=codes.dtype,
                                                       shape=(n, *codes.shape))
                    files[name] = (os.open(dest / f"{name}.npy", os.O_WRONLY), header.offset, codes.nbytes)
                    del header
                    if value_range is not None:
                        ranges[name] = np.zeros((n, *value_range.shape), np.float32)
                fd, offset, row_bytes = files[name]
                os.pwrite(fd, np.ascontiguousarray(codes).tobytes(), offset + row * row_bytes)
                if value_range is not None:
                    ranges[name][row] = value_range
            labels[row] = record.label
            clip_ids[row] = record.clip_id
            meta[row] = {**record.meta, "label_name": record.label_name}
    finally:
        for fd, _, _ in files.values():
            os.close(fd)
    for name, value_range in ranges.items():
        np.save(dest / f"{name}_range.npy", value_range)
    np.save(dest / "labels.npy", labels)
    index = {"key": key, "arrays": {name: codings.get(name, _FLOAT) for name in files},
             "clip_ids": clip_ids, "meta": meta, "cue_joints": list(store.layout.cue_joints),
             "skeleton": skeleton(store.layout.skeleton).name,
             "source_fingerprint": data_fingerprint(store, records, num_frames),
             "layout": store.layout.to_attrs()}  # a run records it: `predict` checks new clips against it
    (dest / INDEX).write_text(json.dumps(index))


def _decoder(coding: str, value_range: np.ndarray | None):
    if coding == _UNIT:
        return lambda codes, rows: codes.astype(np.float32) / np.float32(255)
    if coding == _RANGED:
        def decode(codes, rows):
            lo, hi = value_range[rows, 0], value_range[rows, 1]  # [b, C]
            shape = (len(rows),) + (1,) * (codes.ndim - 2) + (codes.shape[-1],)
            return lo.reshape(shape) + codes.astype(np.float32) * ((hi - lo) / np.float32(255)).reshape(shape)
        return decode
    return None


def open_view(folder: Path) -> CueDataset:
    index = json.loads((folder / INDEX).read_text())
    arrays = {}
    for name, coding in index["arrays"].items():
        value_range = np.load(folder / f"{name}_range.npy") if coding == _RANGED else None
        arrays[name] = MappedRows(folder / f"{name}.npy", _decoder(coding, value_range))
    return CueDataset(
        keypoints=arrays["keypoints"], confidence=arrays["confidence"], features=arrays.get("features"),
        heatmaps=arrays.get("heatmaps"), labels=torch.from_numpy(np.load(folder / "labels.npy")),
        clip_ids=index["clip_ids"], meta=index["meta"], cue_joints=tuple(index["cue_joints"]),
        source_fingerprint=index["source_fingerprint"], skeleton=index["skeleton"],
        skeleton_layout=skeleton(index["skeleton"]).to_dict(), layout=index.get("layout"))


def view_dir(store: CueStore, num_frames: int, records: list) -> tuple[Path, dict]:
    key = view_key(store, num_frames, records)
    return store.path / VIEWS / fingerprint(key)[:16], key


def load_view(path_or_store: str | Path | CueStore, num_frames: int = 64) -> CueDataset:
    """The store's training view: opened when it exists for this clip set and these settings, else
    written first (into a tmp folder renamed into place, so a crash leaves no half view). Views of
    an older clip set of the store are deleted: they can never be used again."""
    store = open_store(path_or_store)
    for attempt in range(3):  # clips may land while an extract runs: then the snapshot is taken again
        records = store.clips()  # one snapshot: the key, the row count and the rows all come from it
        folder, key = view_dir(store, num_frames, records)
        if (folder / INDEX).exists():
            try:
                return open_view(folder)
            except walk.VANISHED:  # pruned meanwhile by a process that saw a newer clip set
                continue
        try:
            _write_new_view(store, num_frames, key, folder, records)
            break
        except _StoreChanged as changed:
            if attempt == 2:
                raise UserError(f"clips of {store.path} kept changing while its training view was written "
                                f"(last: {changed}); an extract is writing to it: train when it is done") from None
    _prune_views(folder, key)
    return open_view(folder)


def _write_new_view(store: CueStore, num_frames: int, key: dict, folder: Path, records: list) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(folder.parent)
    tmp = new_tmp_dir(folder.parent)
    try:
        _write_view(store, num_frames, key, tmp, records)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / INDEX).exists():  # not just another process winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _prune_views(folder: Path, key: dict) -> None:
    """Views of an older clip set can never be used again; processes reading one keep their open
    files (MappedRows never reopens by path), so deleting it costs them nothing."""
    for other in walk.subdirs(folder.parent, hidden=False):  # other processes add and prune views meanwhile
        if other == folder:
            continue
        try:
            other_key = json.loads((other / INDEX).read_text())["key"]
        except (*walk.VANISHED, ValueError, KeyError):  # gone, or not a whole view (yet)
            continue
        if other_key.get("clip_set") != key["clip_set"]:
            shutil.rmtree(other, ignore_errors=True)
