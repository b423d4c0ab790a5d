"""Whole-shard writing: each worker buffers `shard_clips` clips and writes them as one part.

A partial write into a zarr shard rewrites the whole shard (quadratic time, and lost updates when
two processes share one), so a part is written by one process in one assignment per array, into a
tmp folder that is renamed into place: a kill at any moment leaves a complete part or ignorable tmp.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import uuid
from types import TracebackType
from typing import Callable

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.storage import LocalStore

from posebridge.cache.errors import UserError

from posebridge.cache.schema import SCHEMA_VERSION, CacheLayout
from posebridge.cache.store import ClipArrays, ClipRecord, CueStore, dir_bytes, encode_clip, new_tmp_dir

# The unit of reading: at least 64 frames, and ~64 KiB, since zarr's per-chunk cost (~0.5 ms) would
# dominate tiny chunks (score: 2 bytes a frame). A 300-frame clip touches a few chunks per array.
MIN_CHUNK_FRAMES = 64
CHUNK_BYTES = 1 << 16
_COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")  # best size/speed in notes section 6
FRAME_ARRAYS = ("keypoints", "score", "features", "heatmaps")


class ShardWriter:
    """One per worker process; never share a writer (or a part) between processes."""

    def __init__(self, store: CueStore, shard_clips: int = 16, worker: int = 0,
                 on_written: Callable[[list[ClipRecord]], None] | None = None):
        if shard_clips < 1:
            raise ValueError("shard_clips must be >= 1")
        if store.schema_version != SCHEMA_VERSION:  # a store never mixes two schemas
            raise UserError(f"{store.path} is a schema-{store.schema_version} cue cache, read-only for this "
                            f"posebridge: extract into a new store (a new --cache-dir, or delete {store.path})")
        self.store = store
        self.shard_clips = shard_clips
        self.worker = worker
        self.on_written = on_written  # called with a part's clips once the part is in place
        self.bytes_written = 0  # bytes on disk of the parts written so far
        self._buffer: list[tuple[ClipRecord, dict[str, np.ndarray]]] = []

    def add(self, record: ClipRecord, arrays: ClipArrays) -> None:
        _check(record, arrays, self.store.layout)
        record = dataclasses.replace(record, num_frames=len(arrays.score))
        self._buffer.append((record, encode_clip(arrays, self.store.layout)))  # encoded: 4x less RAM
        if len(self._buffer) >= self.shard_clips:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        name = f"w{self.worker:03d}-{uuid.uuid4().hex[:12]}"  # unique across processes and hosts
        self.bytes_written += write_part(self.store, name, self._buffer, self.worker)
        written, self._buffer = [record for record, _ in self._buffer], []
        if self.on_written is not None:
            self.on_written(written)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.flush()  # also while an exception propagates: every buffered clip is complete


def _check(record: ClipRecord, arrays: ClipArrays, layout: CacheLayout) -> None:
    """Catch caller bugs at add() time, with the clip named, not later inside a zarr write."""
    t = len(arrays.score)
    if t == 0:
        raise ValueError(f"{record.clip_id}: zero-frame clips are never written; record them as failures")
    expected = {name: (t, *shape) for name, shape in layout.frame_shapes().items()}
    for name, shape in expected.items():
        got = np.shape(getattr(arrays, name))
        if got != shape:
            raise ValueError(f"{record.clip_id}: {name} has shape {got}, the store's layout needs {shape}")
    if not np.isfinite(arrays.features).all():
        raise ValueError(f"{record.clip_id}: features hold NaN or inf; they cannot be quantised")
    try:
        json.dumps(record.meta)
    except TypeError as err:
        raise ValueError(f"{record.clip_id}: meta is not JSON-able ({err})") from err


def _chunk_frames(frame_bytes: int) -> int:
    frames = MIN_CHUNK_FRAMES
    while frames * 2 * frame_bytes <= CHUNK_BYTES:
        frames *= 2
    return frames


def write_part(store: CueStore, name: str, clips: list[tuple[ClipRecord, dict[str, np.ndarray]]],
                worker: int, written_at: float | None = None, extra_attrs: dict | None = None) -> int:
    """Write one part (tmp folder, then rename in); written_at ranks it against other copies of its clips."""
    table, offset = [], 0
    for record, _ in clips:
        row = dataclasses.asdict(record)
        del row["num_frames"]
        table.append({**row, "offset": offset, "length": record.num_frames})
        offset += record.num_frames
    data = {k: np.concatenate([enc[k] for _, enc in clips]) for k in FRAME_ARRAYS}
    data["feature_range"] = np.stack([enc["feature_range"] for _, enc in clips])

    tmp = new_tmp_dir(store.parts_dir)
    try:
        group = zarr.create_group(store=LocalStore(tmp), zarr_format=3,
                                  attributes={"clips": table, "written_at": written_at or time.time(), "worker": worker,
                                              **(extra_attrs or {})})
        for key, array in data.items():
            n = len(array)
            chunk = min(_chunk_frames(array[0].nbytes), n) if key in FRAME_ARRAYS else n
            shard = -(-n // chunk) * chunk  # one shard covers the whole part
            group.create_array(key, data=array, chunks=(chunk, *array.shape[1:]),
                               shards=(shard, *array.shape[1:]), compressors=_COMPRESSOR)
        final = store.parts_dir / name
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dir_bytes(final)
