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
decimal digits) in the dataset's `keypoints` slot, with confidence 1: the batching and partition
code run unchanged. The heads take them through the encoders' precomputed-features entry point
(stages/train/encoders/__init__.py): loop.to_device hands them over as the model's joint features
[N, C, T', V], the same layout the frozen Shift-GCN produces.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from posebridge.pipeline.errors import UserError
from posebridge.pipeline.fingerprint import file_sha256, fingerprint
from posebridge.stages.train.data import CueDataset

SIDES = ("train", "val", "test")
_CHUNK = 4096  # rows normalised at a time, so a 3 GB float32 file is never copied whole


@dataclass
class FeatureDataset(CueDataset):
    """A CueDataset whose `keypoints` are precomputed joint x time features [N, 1, T', V, C]."""

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


def _read_features(path: Path, shape: tuple[int, ...] | None) -> np.ndarray:
    if not path.exists():
        raise UserError(f"{path} is missing; a feature folder needs {path.name} of shape [N, C, T', V] float "
                        f"(e.g. [N, 256, 3, 25])")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise UserError(f"{path} is not a plain .npy array ({err}); expected [N, C, T', V] float") from None
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"{path} has shape {list(x.shape)} ({x.dtype}); expected [N, C, T', V] float "
                        f"(e.g. [N, 256, 3, 25])")
    if shape is not None and tuple(x.shape[1:]) != shape:
        raise UserError(f"{path} has shape {list(x.shape)}; the other files of the folder have [N, "
                        f"{', '.join(map(str, shape))}]: all sides must come from one encoder")
    return x


def _read_cue_tokens(folder: Path, side: str, rows: int, shape: tuple[int, ...] | None) -> np.ndarray:
    path = folder / f"{side}_cue.npy"
    if not path.exists():
        raise UserError(f"{path} is missing, but the folder has cue tokens for another side; give "
                        f"{', '.join(f'{s}_cue.npy' for s in SIDES)} all, each [N, S, D] float, or none")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise UserError(f"{path} is not a plain .npy array ({err}); expected [N, S, D] float cue tokens") from None
    if x.ndim != 3 or len(x) != rows or not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"{path} has shape {list(x.shape)} ({x.dtype}); expected [{rows}, S, D] float: one row of "
                        f"cue tokens per row of {side}_feature.npy (e.g. [{rows}, 16, 512])")
    if shape is not None and tuple(x.shape[1:]) != shape:
        raise UserError(f"{path} has shape {list(x.shape)}; the other cue files have [N, "
                        f"{', '.join(map(str, shape))}]: all sides must come from one cue extractor")
    return x


def _normalised(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kept rows' features [n, T', V, C] float16 with unit-norm cells, kept row indices)."""
    n, c, t, v = x.shape
    nonzero = np.zeros(n, bool)
    for start in range(0, n, _CHUNK):
        nonzero[start:start + _CHUNK] = np.any(np.asarray(x[start:start + _CHUNK]).reshape(-1, c * t * v) != 0, axis=1)
    keep = np.flatnonzero(nonzero)
    out = np.empty((len(keep), t, v, c), np.float16)
    for start in range(0, len(keep), _CHUNK):
        rows = keep[start:start + _CHUNK]
        cells = np.asarray(x[rows], np.float32).transpose(0, 2, 3, 1)  # [b, T', V, C]
        norm = np.linalg.norm(cells, axis=-1, keepdims=True)
        out[start:start + len(rows)] = cells / np.where(norm > 0, norm, 1.0)  # an all-zero cell stays zero
    return out, keep


def load_feature_folder(folder: str | Path, num_classes: int | None = None) -> FeatureDataset:
    """Every side of a SynSE/PURLS feature folder as one dataset; meta["side"] says which file a row
    came from (train / val / test), and partition() follows it instead of the split's protocol."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"feature folder {folder} does not exist; give the folder that holds "
                        f"train_feature.npy, val_feature.npy, test_feature.npy and their *_labels.npy")
    maps, labels, meta, ids, dropped, cues = [], [], [], [], {}, []
    shape, cue_shape = None, None
    with_cues = any((folder / f"{side}_cue.npy").exists() for side in SIDES)
    for side in SIDES:
        x = _read_features(folder / f"{side}_feature.npy", shape)
        shape = tuple(x.shape[1:])
        y = _read_labels(folder / f"{side}_labels.npy", len(x))
        if num_classes is not None and len(y) and y.max() >= num_classes:
            raise UserError(f"{folder / f'{side}_labels.npy'} has class id {y.max()}, but the split has "
                            f"{num_classes} classes: is this the split's dataset (0-based ids)?")
        kept, rows = _normalised(x)
        if with_cues:
            tokens = _read_cue_tokens(folder, side, len(x), cue_shape)
            cue_shape = tuple(tokens.shape[1:])
            cues.append(np.asarray(tokens[rows], np.float16))  # the rows kept for the features
        maps.append(kept)
        labels.append(y[rows])
        meta += [{"side": side, "row": int(r)} for r in rows]
        ids += [f"{side}-{int(r):06d}" for r in rows]
        dropped[side] = int(len(x) - len(rows))
    features = np.concatenate(maps)
    t, v = features.shape[1:3]
    kinds = ("feature", "labels", "cue") if with_cues else ("feature", "labels")
    source = fingerprint({side: file_sha256(folder / f"{side}_{kind}.npy") for side in SIDES for kind in kinds})
    if any(dropped.values()):
        print(f"feature folder {folder}: dropped all-zero rows (missing skeletons): "
              + ", ".join(f"{k} {n}" for k, n in dropped.items()))
    return FeatureDataset(
        keypoints=torch.from_numpy(features).unsqueeze(1), confidence=torch.ones(len(features), 1, t, v),
        features=None, heatmaps=None, labels=torch.from_numpy(np.concatenate(labels)), clip_ids=ids, meta=meta,
        cue_joints=(), source_fingerprint=source, skeleton_channels=int(shape[0]),
        cue_tokens=torch.from_numpy(np.concatenate(cues)) if with_cues else None)
