"""The community's precomputed skeleton features (SynSE / PURLS layout) as a stage-2 dataset.

A folder per split (e.g. `shift_5_r/`) holds, for each of train / val / test,
`<side>_feature.npy` [N, C, T', V] float (Shift-GCN features before pooling; C = 256, T' = 3,
V = 25 in the files DynaPURLS reads) and `<side>_labels.npy` [N] holding the dataset's class ids.
Read as Alchemist0754/DynaPURLS data/ntu_60.py does (load_x, load_y, preprocess): samples whose
features are all zero (missing skeletons) are dropped, and each joint-time cell's C-vector is
L2-normalised. The features of one folder come from an encoder trained on one split's seen
classes, so a folder serves that split only.

Cue tokens may come in the same layout: `<side>_cue.npy` [N, S, D] float, row for row with the
side's features (the PoseBridge authors publish 16 x 512 per video). With all three files there,
`--cues all` trains the bridge on them (the skeleton tokens query the S tokens); without them the
folder trains with `--cues none` only. They are kept in float16.

The maps are kept channels-last [N, 1, T', V, C] (one "person": the features are pooled over
persons already) in float16 (after normalisation every value is in [-1, 1], where float16 keeps 3
decimal digits) in the dataset's `joint_features`; its `keypoints` are [N, 1, T', V, 0] (no
coordinates, only the shape) with confidence 1, so the batching and partition code run unchanged. The heads take them through the encoders' precomputed-features entry point
(stages/train/encoders/__init__.py): loop.to_device hands them over as the model's joint features
[N, C, T', V], the same layout the frozen Shift-GCN produces.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import file_sha256, fingerprint
from posebridge.stages.train.data import CueDataset

SIDES = ("train", "val", "test")
_CHUNK = 2048  # rows read and normalised at a time, so a 3 GB float32 file is never in memory whole


@dataclass
class FeatureDataset(CueDataset):
    """A CueDataset of precomputed joint x time features (`joint_features` [N, 1, T', V, C]), no keypoints."""

    skeleton_channels: int = 0
    cue_tokens: torch.Tensor | None = None  # [N, S, D] float16, from the folder's *_cue.npy, or None

    def subset(self, idx) -> "FeatureDataset":
        out = super().subset(idx)
        if self.cue_tokens is not None:
            rows = np.asarray(idx)
            out.cue_tokens = self.cue_tokens[np.flatnonzero(rows) if rows.dtype == bool else rows]
        return out


def _read_labels(path: Path, rows: int) -> np.ndarray:
    if not path.exists():
        raise UserError(f"{path} is missing; a feature folder needs {path.name} with [{rows}] class ids")
    labels = np.load(path, allow_pickle=False)
    if labels.ndim == 2 and labels.shape[0] == 2:  # (names or ids, labels) pairs, as load_y reads them
        labels = labels[1]
    if labels.ndim != 1 or len(labels) != rows or not np.issubdtype(labels.dtype, np.number):
        raise UserError(f"{path} has shape {labels.shape} ({labels.dtype}); expected [{rows}] integer class ids, "
                        f"one per row of its feature file")
    if not np.all(labels == np.round(labels)) or (labels < 0).any():
        raise UserError(f"{path} holds non-integer or negative labels; expected the dataset's class ids (0-based)")
    return labels.astype(np.int64)


def _open_npy(path: Path, expected: str) -> np.ndarray:
    """The file memory-mapped (its header checked, nothing read); never unpickles."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise UserError(f"{path} is not a plain .npy array ({err}); expected {expected}") from None


def _read_features(path: Path, shape: tuple[int, ...] | None) -> np.ndarray:
    if not path.exists():
        raise UserError(f"{path} is missing; a feature folder needs {path.name} of shape [N, C, T', V] float "
                        f"(e.g. [N, 256, 3, 25])")
    x = _open_npy(path, "[N, C, T', V] float")
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"{path} has shape {list(x.shape)} ({x.dtype}); expected [N, C, T', V] float "
                        f"(e.g. [N, 256, 3, 25])")
    return _same_row_shape(path, x, shape, "files of the folder", "encoder")


def _same_row_shape(path: Path, x: np.ndarray, shape: tuple[int, ...] | None, others: str, source: str) -> np.ndarray:
    """x, if its rows have the shape the sides read before had (None: the first side)."""
    if shape is not None and tuple(x.shape[1:]) != shape:
        raise UserError(f"{path} has shape {list(x.shape)}; the other {others} have [N, "
                        f"{', '.join(map(str, shape))}]: all sides must come from one {source}")
    return x


def _read_cue_tokens(folder: Path, side: str, rows: int, shape: tuple[int, ...] | None) -> np.ndarray:
    path = folder / f"{side}_cue.npy"
    if not path.exists():
        raise UserError(f"{path} is missing, but the folder has cue tokens for another side; give "
                        f"{', '.join(f'{s}_cue.npy' for s in SIDES)} all, each [N, S, D] float, or none")
    x = _open_npy(path, "[N, S, D] float cue tokens")
    if x.ndim != 3 or len(x) != rows or not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"{path} has shape {list(x.shape)} ({x.dtype}); expected [{rows}, S, D] float: one row of "
                        f"cue tokens per row of {side}_feature.npy (e.g. [{rows}, 16, 512])")
    return _same_row_shape(path, x, shape, "cue files", "cue extractor")


def _chunks(path: Path, x: np.ndarray, digest):
    """(first row, float32 tensor of the next _CHUNK rows) over a .npy file opened as memmap `x`;
    every byte of the file also goes into `digest` (a hashlib object), so the folder's fingerprint
    costs no second read. Rows are read with plain file reads into a fresh buffer, not through the
    mapping, whose touched pages would count as this process's memory until it is closed (a 4 GB
    file: 4 GB of RSS)."""
    row_shape, n = x.shape[1:], len(x)
    row_bytes = x.dtype.itemsize * int(np.prod(row_shape))
    plain = isinstance(x, np.memmap) and x.flags.c_contiguous
    with open(path, "rb", buffering=0) as handle:
        if not plain:  # Fortran order: hash the file as it is, then read through the mapping
            while block := handle.read(1 << 24):
                digest.update(block)
        else:
            digest.update(handle.read(x.offset))  # the .npy header
        for start in range(0, n, _CHUNK):
            rows = min(_CHUNK, n - start)
            if plain:
                buffer = np.empty((rows, *row_shape), x.dtype)
                handle.readinto(memoryview(buffer).cast("B"))  # rows follow each other: no seek
                digest.update(memoryview(buffer).cast("B"))
            else:
                buffer = np.ascontiguousarray(x[start:start + rows])
            yield start, torch.from_numpy(buffer).float()
        if plain:
            digest.update(handle.read())  # trailing bytes, if a writer left any


def load_feature_folder(folder: str | Path, num_classes: int | None = None) -> FeatureDataset:
    """Every side of a SynSE/PURLS feature folder as one dataset; meta["side"] says which file a row
    came from (train / val / test), and partition() follows it instead of the split's protocol."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"feature folder {folder} does not exist; give the folder that holds "
                        f"train_feature.npy, val_feature.npy, test_feature.npy and their *_labels.npy")
    shape, cue_shape, sides = None, None, {}
    with_cues = any((folder / f"{side}_cue.npy").exists() for side in SIDES)
    for side in SIDES:  # every file checked before anything is read in bulk
        x = _read_features(folder / f"{side}_feature.npy", shape)
        shape = tuple(x.shape[1:])
        y = _read_labels(folder / f"{side}_labels.npy", len(x))
        if num_classes is not None and len(y) and y.max() >= num_classes:
            raise UserError(f"{folder / f'{side}_labels.npy'} has class id {y.max()}, but the split has "
                            f"{num_classes} classes: is this the split's dataset (0-based ids)?")
        tokens = _read_cue_tokens(folder, side, len(x), cue_shape) if with_cues else None
        cue_shape = tuple(tokens.shape[1:]) if with_cues else None
        sides[side] = (x, y, tokens)
    total = sum(len(x) for x, _, _ in sides.values())
    c, t, v = shape
    # Filled in place, chunk by chunk: the only full-size array is the float16 result.
    maps = torch.empty((total, t, v, c), dtype=torch.float16)
    cues = torch.empty((total, *cue_shape), dtype=torch.float16) if with_cues else None
    labels, meta, ids, dropped, pos = [], [], [], {}, 0
    digests = {(side, kind): hashlib.sha256() for side in SIDES for kind in ("feature", "cue")}
    for side, (x, y, tokens) in sides.items():
        side_start = pos
        token_chunks = _chunks(folder / f"{side}_cue.npy", tokens, digests[side, "cue"]) if with_cues else None
        for start, chunk in _chunks(folder / f"{side}_feature.npy", x, digests[side, "feature"]):
            keep = chunk.flatten(1).ne(0).any(dim=1).nonzero().squeeze(1)  # all-zero rows: missing skeletons
            end = pos + len(keep)
            # each joint-step cell's C-vector to unit length (an all-zero cell stays zero)
            whole = len(keep) == len(chunk)  # the usual case: no row to drop, no copy to make
            maps[pos:end] = F.normalize(chunk if whole else chunk[keep], dim=1).permute(0, 2, 3, 1)
            if token_chunks is not None:
                tokens_chunk = next(token_chunks)[1]
                cues[pos:end] = tokens_chunk if whole else tokens_chunk[keep]
            rows = keep.numpy() + start
            labels.append(y[rows])
            meta += [{"side": side, "row": int(r)} for r in rows]
            ids += [f"{side}-{int(r):06d}" for r in rows]
            pos = end
        if token_chunks is not None:
            for _ in token_chunks:  # same row count: already done; this closes the file and ends the hash
                pass
        dropped[side] = int(len(x) - (pos - side_start))
    maps = maps[:pos]
    # sha256 of every file (the big ones hashed as they were read), as file_sha256 would give
    kinds = ("feature", "labels", "cue") if with_cues else ("feature", "labels")
    source = fingerprint({f"{side}_{kind}": digests[side, kind].hexdigest() if kind != "labels"
                          else file_sha256(folder / f"{side}_labels.npy") for side in SIDES for kind in kinds})
    if any(dropped.values()):
        print(f"feature folder {folder}: dropped all-zero rows (missing skeletons): "
              + ", ".join(f"{k} {n}" for k, n in dropped.items()))
    return FeatureDataset(
        keypoints=torch.zeros(pos, 1, t, v, 0), joint_features=maps.unsqueeze(1), confidence=torch.ones(pos, 1, t, v),
        features=None, heatmaps=None, labels=torch.from_numpy(np.concatenate(labels)), clip_ids=ids, meta=meta,
        cue_joints=(), source_fingerprint=source, skeleton_channels=c,
        cue_tokens=cues[:pos] if with_cues else None)
