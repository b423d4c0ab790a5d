"""The cue cache: one zarr v3 store per (dataset, extractor fingerprint).

    <cache_root>/<dataset>/<fingerprint[:16]>/
      failures.jsonl            clips that produced nothing, and why (manifest.py)
      store.zarr/               root group attrs: schema_version, dataset, fingerprint, extractor,
                                layout, created_with
        parts/<part>/           one group per part, written once by one writer, then renamed in
          keypoints     [F, M, V, 5]     float16  (KEYPOINT_CHANNELS; x, y normalised to the image)
          score         [F, M]           float16  (pose presence per frame and person slot; 0 = empty)
          features      [F, M, Vc, C]    uint8 (per clip, per channel lo..hi) or float16
          heatmaps      [F, M, Vc, P, P] uint8 = round(p * 255)
          feature_range [n_clips, 2, C]  float32  (lo, hi) of each clip, over its present persons
          attrs.clips = [{clip_id, content_id, offset, length, label, label_name, fps, height,
                          width, meta}]; a clip is rows offset:offset+length of every [F, ...] array

Each array of a part is one zarr shard (the unit of writing: one writer, one assignment) made of
64-frame chunks (the unit of reading). A folder named `.tmp-*` is a part still being written, or
left by a killed writer; readers never look at it.

M = layout.max_persons person slots (schema v2, cache/schema.py), main actor first. A schema-1
store (no person axis) is read as M = 1: its arrays get the axis on read, its layout says so.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import zarr
from zarr.storage import LocalStore

from posebridge.cache import walk
from posebridge.cache.manifest import FailureLog
from posebridge.cache.schema import KEYPOINT_CHANNELS, READABLE_SCHEMAS, SCHEMA_VERSION, CacheLayout  # noqa: F401
from posebridge.cache.errors import UserError

STORE_NAME = "store.zarr"
PARTS = "parts"
TMP_PREFIX = ".tmp-"
# A tmp folder from another host cannot be checked for a live writer; no part takes this long.
_FOREIGN_TMP_MAX_AGE_S = 24 * 3600
_READ_RETRIES = 3  # a read retried after `cache compact` moved its part; a clip moves once per compaction


class _PartGone(Exception):
    """A part was removed (by `cache compact`) while it was being read."""


@dataclass
class ClipRecord:
    clip_id: str  # stable id (path relative to the videos root)
    content_id: str  # from cache.fingerprint.content_id
    label: int = -1  # -1 unknown
    label_name: str | None = None
    fps: float = 0.0
    height: int = 0
    width: int = 0
    meta: dict = field(default_factory=dict)  # subject, camera, setup, youtube_id, ... JSON-able
    num_frames: int = 0  # filled from the arrays on write


@dataclass
class ClipArrays:
    keypoints: np.ndarray  # [T, M, V, 5]
    score: np.ndarray  # [T, M]; 0 where a slot holds nobody
    features: np.ndarray  # [T, M, Vc, C] float32 on write and (dequantised) on read
    heatmaps: np.ndarray  # [T, M, Vc, P, P] float32 in [0, 1] on write and on read


@dataclass(frozen=True)
class PartEntry:
    """Where one clip lives: its part, its row in the part's clip table, its first frame."""

    record: ClipRecord
    part: str
    row: int
    offset: int


def store_dir(cache_root: str | os.PathLike, dataset: str, fingerprint: str) -> Path:
    if not dataset or dataset in (".", "..") or "/" in dataset or os.sep in dataset:
        raise UserError(f"dataset name {dataset!r} must be a plain folder name without '/', e.g. 'ntu60'")
    return Path(cache_root) / dataset / fingerprint[:16]


def list_stores(cache_root: str | os.PathLike, dataset: str | None = None) -> list[Path]:
    """Stores under the cache root (of one dataset), tolerating stores created or removed meanwhile."""
    datasets = [Path(cache_root) / dataset] if dataset else walk.subdirs(cache_root, hidden=False)
    return sorted(folder for d in datasets for folder in walk.subdirs(d, hidden=False)
                  if (folder / STORE_NAME / "zarr.json").is_file())


# --- encoding: what a clip looks like on disk ------------------------------------------------

def encode_clip(arrays: ClipArrays, layout: CacheLayout) -> dict[str, np.ndarray]:
    """ClipArrays -> the stored arrays of one clip (feature_range as [2, C]).

    The range covers the present persons only (empty slots are zeros, restored as zeros on read),
    so an empty slot costs no quantisation precision."""
    features = np.asarray(arrays.features, dtype=np.float32)
    present = np.asarray(arrays.score) > 0  # [T, M]
    seen = features[present] if present.any() else np.zeros((1, *features.shape[2:]), np.float32)
    lo, hi = seen.min(axis=(0, 1)), seen.max(axis=(0, 1))
    if layout.feature_dtype == "float16":
        stored = features.astype(np.float16)
    else:
        span = hi - lo
        scale = np.divide(np.float32(255), span, out=np.zeros_like(span), where=span > 0)  # hi == lo -> 0
        stored = np.clip(np.rint((features - lo) * scale), 0, 255).astype(np.uint8)
        stored[~present] = 0
    heatmaps = np.rint(np.clip(np.asarray(arrays.heatmaps, dtype=np.float32), 0, 1) * 255).astype(np.uint8)
    return {
        "keypoints": np.asarray(arrays.keypoints).astype(np.float16),
        "score": np.asarray(arrays.score).astype(np.float16),
        "features": stored,
        "heatmaps": heatmaps,
        "feature_range": np.stack([lo, hi]).astype(np.float32),
    }


def decode_clip(stored: dict[str, np.ndarray], feature_range: np.ndarray, schema_version: int = SCHEMA_VERSION
                ) -> ClipArrays:
    if schema_version == 1:  # the one place a schema-1 clip becomes M = 1
        stored = {name: array[:, None] for name, array in stored.items()}
    features = stored["features"]
    if features.dtype == np.uint8:
        lo, hi = feature_range
        features = lo + features.astype(np.float32) * ((hi - lo) / np.float32(255))
        features[~(stored["score"] > 0)] = 0.0  # empty slots are zeros, as they were written
    return ClipArrays(
        keypoints=stored["keypoints"].astype(np.float32),
        score=stored["score"].astype(np.float32),
        features=features.astype(np.float32),
        heatmaps=stored["heatmaps"].astype(np.float32) / np.float32(255),
    )


# --- tmp folders: atomic creation of parts and of the store itself ----------------------------

def new_tmp_dir(parent: Path) -> Path:
    """A fresh `.tmp-<host>-<pid>-<uuid>` folder; the host and pid let others tell if it is stale."""
    path = parent / f"{TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    return path


def _tmp_is_stale(path: Path) -> bool:
    host, _, pid = path.name[len(TMP_PREFIX):].rpartition("-")[0].rpartition("-")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, owned by another user
            return False
        return False
    mtime = walk.mtime(path)
    return mtime is not None and time.time() - mtime > _FOREIGN_TMP_MAX_AGE_S


def tmp_dirs(parent: Path) -> list[Path]:
    """The `.tmp-*` folders under `parent` now (they come and go while others write)."""
    return walk.subdirs(parent, TMP_PREFIX)


def clean_stale_tmp(parent: Path) -> None:
    """Remove the temporary folders under `parent` that a dead writer left behind."""
    for entry in tmp_dirs(parent):
        if _tmp_is_stale(entry):
            shutil.rmtree(entry, ignore_errors=True)


dir_bytes = walk.dir_bytes  # bytes under a folder, tolerant of concurrent writers (cache/walk.py)


def _created_with() -> dict:
    versions = {}
    for pkg in ("posebridge", "zarr", "numcodecs", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


class CueStore:
    """A cue cache on disk. Make one with `create` (for writing) or `open` (for reading)."""

    def __init__(self, path: Path, attrs: dict):
        self._path = path
        self._attrs = attrs
        self._index: dict[str, PartEntry] | None = None
        self._indexed_parts: list[str] = []
        self._part_tables: dict[str, tuple[tuple[float, str], list[PartEntry]]] = {}

    @classmethod
    def create(cls, path: str | os.PathLike, *, dataset: str, fingerprint: str, extractor: dict,
               layout: CacheLayout) -> CueStore:
        """Create the store, or open it if it exists with the same fingerprint (resume)."""
        path = Path(path)
        if not isinstance(layout, CacheLayout):
            raise TypeError(f"layout must be a cache.schema.CacheLayout, not {type(layout).__name__}")
        if not (path / STORE_NAME / "zarr.json").exists():
            attrs = {
                "schema_version": SCHEMA_VERSION,
                "dataset": dataset,
                "fingerprint": fingerprint,
                # JSON round trip: tuples become lists, so what we hold equals what a reader sees.
                "extractor": json.loads(json.dumps(extractor)),
                "layout": layout.to_attrs(),
                "created_with": _created_with(),
            }
            _create_root(path, attrs)
        store = cls.open(path)
        if store.fingerprint != fingerprint or store.attrs.get("dataset") != dataset:
            raise UserError(
                f"{path} already holds a cue cache of dataset {store.attrs.get('dataset')!r} with fingerprint "
                f"{store.fingerprint}, not {dataset!r} with {fingerprint}: use another --cache-dir or delete {path}"
            )
        clean_stale_tmp(path)
        clean_stale_tmp(store.parts_dir)
        return store

    @classmethod
    def open(cls, path: str | os.PathLike) -> CueStore:
        path = Path(path)
        root = path / STORE_NAME
        if not path.exists():
            raise UserError(f"cue cache {path} does not exist; check the path (stores live at "
                            f"<cache_root>/<dataset>/<fingerprint>; `posebridge cache info DATASET` finds one)")
        if not (root / "zarr.json").is_file():
            raise UserError(f"{path} is not a PoseBridge cue cache (no {STORE_NAME}/ inside): "
                            f"pass a folder made by stage 1, <cache_root>/<dataset>/<fingerprint>")
        try:
            attrs = zarr.open_group(LocalStore(root, read_only=True), mode="r").attrs.asdict()
        except (ValueError, TypeError, KeyError) as err:
            raise UserError(f"{root} is unreadable ({err}): delete {path} and extract again") from err
        version = attrs.get("schema_version")
        if version not in READABLE_SCHEMAS:
            raise UserError(f"{path} has cache schema version {version!r}; this posebridge reads versions "
                            f"{', '.join(map(str, READABLE_SCHEMAS))}: extract again into another --cache-dir "
                            f"or delete {path}")
        store = cls(path, attrs)
        store._layout = CacheLayout.from_attrs(attrs.get("layout", {}), version, source=str(path))
        return store

    @property
    def path(self) -> Path:
        return self._path

    @property
    def attrs(self) -> dict:
        return self._attrs

    @property
    def fingerprint(self) -> str:
        return self._attrs["fingerprint"]

    @property
    def schema_version(self) -> int:
        return self._attrs["schema_version"]

    @property
    def layout(self) -> CacheLayout:
        """The typed layout; a schema-1 store's says max_persons = 1."""
        return self._layout

    @property
    def parts_dir(self) -> Path:
        return self._path / STORE_NAME / PARTS

    def part_names(self) -> list[str]:
        """Complete parts only: tmp folders start with '.'."""
        return [p.name for p in walk.subdirs(self.parts_dir, hidden=False)]

    def clips(self) -> list[ClipRecord]:
        return [e.record for e in sorted(self.refresh().values(), key=lambda e: e.record.clip_id)]

    def read_clip(self, clip_id: str) -> ClipArrays:
        for _ in range(_READ_RETRIES):
            entry = self._entry(clip_id)
            try:
                stored, ranges = self._read_span(entry.part, entry.offset, entry.offset + entry.record.num_frames)
            except _PartGone:
                self._index = None  # compacted meanwhile: its clips now live in another part
                continue
            return decode_clip(stored, ranges[entry.row], self.schema_version)
        raise RuntimeError(f"{self._path}: clip {clip_id!r} kept moving between parts while being read")

    def _stored_by_part(self, entries: Iterable[PartEntry]):
        """Per part, in storage order: (its entries by offset, each entry's stored arrays with its
        `feature_range` row), the part's span read once; None instead of the arrays when the part
        was compacted away mid-read (its clips now live elsewhere)."""
        by_part: dict[str, list[PartEntry]] = defaultdict(list)
        for entry in entries:
            by_part[entry.part].append(entry)
        for part in sorted(by_part):
            chosen = sorted(by_part[part], key=lambda e: e.offset)
            start = chosen[0].offset
            stop = max(e.offset + e.record.num_frames for e in chosen)
            try:
                span, ranges = self._read_span(part, start, stop)
            except _PartGone:
                self._index = None
                yield chosen, None
                continue
            yield chosen, [{**{k: v[e.offset - start:e.offset - start + e.record.num_frames] for k, v in span.items()},
                            "feature_range": ranges[e.row]} for e in chosen]

    def iter_clips(self, clip_ids: Iterable[str] | None = None) -> Iterator[tuple[ClipRecord, ClipArrays]]:
        """Clips in storage order (part, then offset); each part's span is read once."""
        index = self.refresh()
        entries = list(index.values()) if clip_ids is None else [self._entry(c) for c in dict.fromkeys(clip_ids)]
        for chosen, stored in self._stored_by_part(entries):
            if stored is None:  # compacted meanwhile: read these clips from where they are now
                for e in chosen:
                    yield self._entry(e.record.clip_id).record, self.read_clip(e.record.clip_id)
                continue
            for e, arrays in zip(chosen, stored):
                ranges = arrays.pop("feature_range")
                yield e.record, decode_clip(arrays, ranges, self.schema_version)

    def stored_clips(self, clip_ids: Iterable[str]) -> Iterator[tuple[ClipRecord, dict[str, np.ndarray]]]:
        """The clips' bytes as stored (encoded frame arrays plus their `feature_range` row), to copy
        them into a new part unchanged (compaction, relabelling); a part compacted away mid-read is
        read again from where its clips are now."""
        for chosen, stored in self._stored_by_part([self._entry(c) for c in dict.fromkeys(clip_ids)]):
            if stored is None:
                yield from self.stored_clips(e.record.clip_id for e in chosen)
                continue
            yield from zip((e.record for e in chosen), stored)

    def _read_span(self, part: str, start: int, stop: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Rows start:stop of a part's frame arrays, and its feature ranges.

        zarr reads a missing shard file as fill values, so a part removed mid-read would give
        zeros, not an error. Compaction removes a part by renaming it away first; if the part is
        still in place after the read, every byte came from it (parts never change once renamed in).
        """
        try:
            group = self._open_part(part)
            span = {name: group[name][start:stop] for name in ("keypoints", "score", "features", "heatmaps")}
            ranges = group["feature_range"][:]
        except Exception:  # zarr says FileNotFoundError or KeyError, depending on what went first
            if not self._part_in_place(part):
                raise _PartGone(part) from None
            raise
        if not self._part_in_place(part):
            raise _PartGone(part)
        return span, ranges

    def _part_in_place(self, part: str) -> bool:
        return (self.parts_dir / part / "zarr.json").is_file()

    def info(self) -> dict:
        """Live clips and bytes apart from superseded copies, stale tmp folders and claims.

        Bytes of a part that holds live and superseded copies are split by frames (exact once
        `cache compact` has rewritten it)."""
        from posebridge.cache.claims import DEFAULT_LEASE_S, list_claims

        index, tables = self.snapshot()
        live_frames = superseded_frames = superseded_copies = 0
        superseded_bytes = 0.0
        for part, (_, entries) in tables.items():
            size = dir_bytes(self.parts_dir / part)
            frames = sum(e.record.num_frames for e in entries) or 1
            for e in entries:
                if index.get(e.record.clip_id) is e:
                    live_frames += e.record.num_frames
                else:
                    superseded_copies += 1
                    superseded_frames += e.record.num_frames
                    superseded_bytes += size * e.record.num_frames / frames
        tmp = [p for parent in (self._path, self.parts_dir) for p in tmp_dirs(parent)]
        total = dir_bytes(self._path / STORE_NAME)
        # Parts land and leave between these walks: a sum of snapshots, never below zero.
        live_bytes = max(0.0, total - superseded_bytes - sum(dir_bytes(p) for p in tmp if p.parent == self.parts_dir))
        claims = list_claims(self._path)
        stale_claims = sum(c.is_stale(DEFAULT_LEASE_S) for c in claims)
        n_live = len(index)
        return {
            "dataset": self._attrs["dataset"],
            "fingerprint": self.fingerprint,
            "n_clips": n_live,
            "n_frames": live_frames,
            "n_parts": len(self.part_names()),
            "bytes_on_disk": total,
            "bytes_live": round(live_bytes),
            "bytes_per_clip": live_bytes / n_live if n_live else 0.0,
            "bytes_per_300_frames": live_bytes / live_frames * 300 if live_frames else 0.0,
            "n_superseded_copies": superseded_copies,
            "superseded_frames": superseded_frames,
            "bytes_superseded": round(superseded_bytes),
            "n_tmp_folders": len(tmp),
            "n_claims_active": len(claims) - stale_claims,
            "n_claims_stale": stale_claims,
            "n_failures": len(FailureLog(self._path).failures()),
            "schema_version": self.schema_version,
            "layout": self.layout.to_attrs(),
        }

    def _open_part(self, part: str) -> zarr.Group:
        return zarr.open_group(LocalStore(self.parts_dir / part, read_only=True), mode="r")

    def _entry(self, clip_id: str) -> PartEntry:
        index = self._index if self._index is not None and clip_id in self._index else self.refresh()
        if clip_id not in index:
            raise KeyError(f"clip {clip_id!r} is not in the cue cache {self._path}")
        return index[clip_id]

    def lookup(self, clip_id: str) -> ClipRecord | None:
        """The clip's current record, re-reading only parts that appeared since the last look."""
        entry = self.refresh().get(clip_id)
        return entry.record if entry is not None else None

    def refresh(self) -> dict[str, PartEntry]:
        """Index every clip of the complete parts.

        A clip can sit in two parts (two runs raced, or its video changed and was extracted again):
        the most recently written part wins, ties broken by part name, so every reader agrees.
        Parts never change once renamed in, so each part's table is read once per CueStore.
        """
        names = self.part_names()
        if self._index is not None and names == self._indexed_parts:
            return self._index
        tables = {name: self._part_tables.get(name) or self._read_table(name) for name in names}
        self._part_tables = {name: table for name, table in tables.items() if table is not None}
        best: dict[str, tuple[tuple[float, str], PartEntry]] = {}
        for part, (rank, entries) in self._part_tables.items():
            for entry in entries:
                if entry.record.clip_id not in best or rank > best[entry.record.clip_id][0]:
                    best[entry.record.clip_id] = (rank, entry)
        self._index = {clip_id: entry for clip_id, (_, entry) in best.items()}
        self._indexed_parts = names
        return self._index

    def part_tables(self) -> dict[str, tuple[tuple[float, str], list[PartEntry]]]:
        """Every complete part's (rank, entries), superseded copies included (for info and compact)."""
        return self.snapshot()[1]

    def snapshot(self) -> tuple[dict[str, PartEntry], dict[str, tuple[tuple[float, str], list[PartEntry]]]]:
        """The index and every part's (rank, entries) from ONE listing of the parts. Whoever judges
        which copies are live must take both from here: an index from one listing and tables from a
        later one would call the copies of a part that landed in between "not live" (compact once
        deleted such a part, and with it the only copy of its clips)."""
        index = self.refresh()
        return index, dict(self._part_tables)

    def _read_table(self, part: str) -> tuple[tuple[float, str], list[PartEntry]] | None:
        try:
            attrs = self._open_part(part).attrs.asdict()
        except Exception:
            if not self._part_in_place(part):  # removed by `cache compact` since it was listed
                return None
            raise
        entries = []
        for row, clip in enumerate(attrs["clips"]):
            fields = {k: v for k, v in clip.items() if k not in ("offset", "length")}
            entries.append(PartEntry(ClipRecord(**fields, num_frames=clip["length"]), part, row, clip["offset"]))
        return (attrs["written_at"], part), entries


def _create_root(path: Path, attrs: dict) -> None:
    """Build the root group in a tmp folder and rename it in, so racing creators never see half a store."""
    path.mkdir(parents=True, exist_ok=True)
    allowed = (STORE_NAME, FailureLog.FILE_NAME, "content_ids.json", "claims")  # the store may appear now if another process won the race
    unexpected = [p.name for p in path.iterdir() if p.name not in allowed and not p.name.startswith(TMP_PREFIX)]
    if unexpected:
        raise UserError(f"{path} exists and is not a cue cache (it holds {unexpected[:3]}): "
                        f"use another --cache-dir or empty it")
    tmp = new_tmp_dir(path)
    try:
        root = zarr.create_group(store=LocalStore(tmp), zarr_format=3, attributes=attrs)
        root.create_group(PARTS)
        os.rename(tmp, path / STORE_NAME)
    except OSError:
        if not (path / STORE_NAME / "zarr.json").exists():  # not just a lost race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
