"""Write a split's frozen Shift-GCN features as a SynSE / PURLS feature folder.

The inverse of feature_folder.py, in the layout the reference code reads (Alchemist0754/DynaPURLS
data/ntu_60.py; skelemoa/synse-zsl data_cnn60.py): `<side>_feature.npy` [N, C, T', V] float32
and `<side>_labels.npy` [N] (the dataset's class ids) for

    train   the seen classes of the protocol's training side
    val     the seen classes of the TEST side (the references select their checkpoint on it, and
            it is GZSL's seen half)
    test    the unseen classes of the test side (ZSL)

plus, when the test side holds seen classes, SynSE's GZSL pair `gtest.npy` / `g_label.npy` (the
whole test side: val + test). The features come from the encoder a `posebridge train
--skeleton-encoder shiftgcn` run of the same split and settings pretrains (or has cached already).
`posebridge train --features DIR` reads this layout and the older one (val = held-out training
rows, test = the whole test side), telling them apart by whether the test file holds seen classes.

When the data has cues, `<side>_cue.npy` [N, steps, Vc * (C + P*P)] float16 goes with them: per
clip, the per-joint cue features and heatmap patches averaged into `steps` temporal windows (16, as
the heads' cue tokens) and over the persons present, flattened per step. These are the raw cues the
heads' cue encoder learns from, fixed instead of learned, so `train --features DIR --cues all` can
use them (and other code can read them as 16 tokens per video, the authors' layout).
"""
from __future__ import annotations

import dataclasses

import json
from pathlib import Path

import numpy as np

from posebridge.cache.atomic import atomic_path
from posebridge.cache.errors import UserError
from posebridge.stages.splits.registry import Split
from posebridge.stages.train.config import TrainConfig
from posebridge.stages.train.data import CueDataset, partition

LAYOUT = "reference"  # info.json: val = seen test side, test = unseen test side (module docstring)
GZSL_FILES = ("gtest.npy", "g_label.npy")  # skelemoa/synse-zsl data_cnn60.py: GZSL features, labels


def reference_sides(parts: dict[str, np.ndarray], labels: np.ndarray, seen: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of each file from the run's partition: train = all seen training-side rows (the run's
    train + its held-out val), val = seen classes of the test side, test = unseen classes of the test
    side (test_zsl), gtest = the whole test side (test_gzsl)."""
    test_side = parts["test_gzsl"]
    return {"train": np.union1d(parts["train"], parts["val"]),
            "val": test_side[np.isin(labels[test_side], seen)],
            "test": parts["test_zsl"],
            "gtest": test_side}


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:  # a folder never holds a half-written file
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def cue_tokens(dataset: CueDataset, steps: int, chunk: int = 512) -> np.ndarray | None:
    """[N, steps, Vc * (C + P*P)] float16 pooled raw cues (module docstring), or None without cues."""
    import torch

    from posebridge.stages.train.heads import pool_steps
    from posebridge.stages.train.persons import present_persons, with_person_axis

    if dataset.features is None or dataset.heatmaps is None:
        return None
    out = None
    for start in range(0, len(dataset), chunk):
        rows = slice(start, start + chunk)
        _, conf, feat, hm = with_person_axis(None, dataset.confidence[rows], dataset.features[rows],
                                             dataset.heatmaps[rows])
        b, m = feat.shape[:2]
        cues = torch.cat([feat.float(), hm.float()], dim=-1).flatten(0, 1)  # [b*M, T, Vc, C + P*P]
        pooled = pool_steps(cues, steps).view(b, m, steps, -1)
        present = present_persons(conf, b, m).float().view(b, m, 1, 1)
        tokens = (pooled * present).sum(1) / present.sum(1)  # mean over the persons present
        if out is None:
            out = np.empty((len(dataset), steps, tokens.shape[-1]), np.float16)
        out[start:start + b] = tokens.numpy()
    return out


def write_feature_folder(out: Path, features: np.ndarray, labels: np.ndarray, sides: dict[str, np.ndarray],
                         info: dict, cues: np.ndarray | None = None) -> dict[str, int]:
    """features [N, C, T', V] (any float), labels [N], cues [N, S, D] or None, sides: rows of train /
    val / test (and gtest); writes one file pair (or triple) per side, SynSE's GZSL pair when the
    test side has seen rows (val not empty), and info.json. Returns the rows written per side."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for side in ("train", "val", "test"):
        rows = sides[side]
        _save(out / f"{side}_feature.npy", np.ascontiguousarray(features[rows], dtype=np.float32))
        _save(out / f"{side}_labels.npy", labels[rows].astype(np.int64))
        if cues is not None:
            _save(out / f"{side}_cue.npy", np.ascontiguousarray(cues[rows]))
        counts[side] = int(len(rows))
    if "gtest" in sides and len(sides["val"]):  # GZSL needs seen test rows; without them there is no pair
        rows = sides["gtest"]
        _save(out / GZSL_FILES[0], np.ascontiguousarray(features[rows], dtype=np.float32))
        _save(out / GZSL_FILES[1], labels[rows].astype(np.int64))
        counts["gtest"] = int(len(rows))
    with atomic_path(out / "info.json") as tmp:
        tmp.write_text(json.dumps({**info, "rows": counts, "shape": list(features.shape[1:]),
                                   "cue_shape": None if cues is None else list(cues.shape[1:])}, indent=2))
    return counts


def refuse_existing(out: Path) -> None:
    """Never overwrite a feature folder: someone's experiments may point at it."""
    if any(Path(out).glob("*_feature.npy")):
        raise UserError(f"{out} holds a feature folder already; give an empty or new --out")


def export_split_features(cfg: TrainConfig, dataset: CueDataset, split: Split, out: Path,
                          encoder_cache: Path | None, with_cues: bool = True) -> dict[str, int]:
    """Pretrain (or load) the split's frozen Shift-GCN exactly as a training run would, then write
    its features of the run's partition (seed cfg.seed) to `out`, with the pooled cue tokens
    (cfg.cue_steps per clip) when `with_cues` and the data has cues."""
    import torch

    from posebridge.stages.train.loop import CPU_THREADS, resolve_device, to_device, with_encoder_features

    if dataset.joint_features is not None:
        raise UserError("the data is a feature folder already; export from a cue cache or a PYSKL pickle")
    if cfg.skeleton_encoder != "shiftgcn":
        raise UserError(f"only the frozen Shift-GCN's features can be exported (got --skeleton-encoder "
                        f"{cfg.skeleton_encoder}); the small GCN is trained with the heads")
    refuse_existing(out)
    parts = partition(dataset, split, cfg.val_fraction, cfg.seed)
    device = resolve_device(cfg.device)
    torch.set_num_threads(CPU_THREADS)
    # The folder holds the encoder's features as they come, as the community's files do: readers
    # (train --features, DynaPURLS) normalise each cell themselves, whatever this run's feature_norm.
    raw = dataclasses.replace(cfg, feature_norm="none")
    data = with_encoder_features(raw, to_device(dataset, "none", device), parts["train"], np.array(split.seen),
                                 dataset.source_fingerprint, encoder_cache)
    features = data.joint_features.cpu().numpy()  # float16 as cached; each side becomes float32 when written
    info = {"split": split.name, "data": dataset.source_fingerprint, "encoder": "shiftgcn",
            "shiftgcn_width": cfg.shiftgcn_width, "shiftgcn_epochs": cfg.shiftgcn_epochs,
            "partition_seed": cfg.seed, "val_fraction": cfg.val_fraction, "num_frames": cfg.num_frames,
            "layout": LAYOUT,
            "sides": {"train": "seen classes, training side", "val": "seen classes, test side",
                      "test": "unseen classes, test side", "gtest": "whole test side (SynSE's GZSL files)"}}
    cues = cue_tokens(dataset, cfg.cue_steps) if with_cues else None
    if cues is not None:
        info["cue_tokens"] = (f"per-joint cue features + heatmap patches of the {len(dataset.cue_joints)} cue "
                              f"joints, {cfg.cue_steps} temporal windows, mean over present persons")
    labels = dataset.labels.numpy()
    return write_feature_folder(out, features, labels, reference_sides(parts, labels, np.array(split.seen)), info, cues)
