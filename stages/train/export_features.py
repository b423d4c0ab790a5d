"""Write a split's frozen Shift-GCN features as a SynSE / PURLS feature folder.

The inverse of feature_folder.py: train_feature.npy / val_feature.npy / test_feature.npy
[N, C, T', V] float32 with *_labels.npy [N] (the dataset's class ids), from the encoder a
`posebridge train --skeleton-encoder shiftgcn` run of the same split and settings pretrains (or
has cached already). The sides are the run's own partition: train = seen-class training rows,
val = the held-out seen-class rows, test = every test-side row of the split's seen and unseen
classes (the ZSL and GZSL test sets are both subsets of it). So the folder can be read back with
`posebridge train --features DIR`, or handed to the PURLS / DynaPURLS reference code.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from posebridge.pipeline.atomic import atomic_path
from posebridge.pipeline.errors import UserError
from posebridge.pipeline.splits.registry import Split
from posebridge.stages.train.config import TrainConfig
from posebridge.stages.train.data import CueDataset, partition

SIDE_PARTS = {"train": "train", "val": "val", "test": "test_gzsl"}


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:  # a folder never holds a half-written file
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def write_feature_folder(out: Path, features: np.ndarray, labels: np.ndarray, parts: dict[str, np.ndarray],
                         info: dict) -> dict[str, int]:
    """features [N, C, T', V] (any float), labels [N]; writes one file pair per side and info.json.
    Returns the rows written per side."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for side, part in SIDE_PARTS.items():
        rows = parts[part]
        _save(out / f"{side}_feature.npy", np.ascontiguousarray(features[rows], dtype=np.float32))
        _save(out / f"{side}_labels.npy", labels[rows].astype(np.int64))
        counts[side] = int(len(rows))
    with atomic_path(out / "info.json") as tmp:
        tmp.write_text(json.dumps({**info, "rows": counts, "shape": list(features.shape[1:])}, indent=2))
    return counts


def refuse_existing(out: Path) -> None:
    """Never overwrite a feature folder: someone's experiments may point at it."""
    if any(Path(out).glob("*_feature.npy")):
        raise UserError(f"{out} holds a feature folder already; give an empty or new --out")


def export_split_features(cfg: TrainConfig, dataset: CueDataset, split: Split, out: Path,
                          encoder_cache: Path | None) -> dict[str, int]:
    """Pretrain (or load) the split's frozen Shift-GCN exactly as a training run would, then write
    its features of the run's partition (seed cfg.seed) to `out`."""
    import torch

    from posebridge.stages.train.feature_folder import FeatureDataset
    from posebridge.stages.train.loop import resolve_device, to_device, with_encoder_features

    if isinstance(dataset, FeatureDataset):
        raise UserError("the data is a feature folder already; export from a cue cache or a PYSKL pickle")
    if cfg.skeleton_encoder != "shiftgcn":
        raise UserError(f"only the frozen Shift-GCN's features can be exported (got --skeleton-encoder "
                        f"{cfg.skeleton_encoder}); the small GCN is trained with the heads")
    refuse_existing(out)
    parts = partition(dataset, split, cfg.val_fraction, cfg.seed)
    device = resolve_device(cfg.device)
    torch.set_num_threads(2)
    data = with_encoder_features(cfg, to_device(dataset, "none", device), parts["train"], np.array(split.seen),
                                 dataset.source_fingerprint, encoder_cache)
    features = data.joint_features.float().cpu().numpy()
    info = {"split": split.name, "data": dataset.source_fingerprint, "encoder": "shiftgcn",
            "shiftgcn_width": cfg.shiftgcn_width, "shiftgcn_epochs": cfg.shiftgcn_epochs,
            "partition_seed": cfg.seed, "val_fraction": cfg.val_fraction, "num_frames": cfg.num_frames,
            "sides": {side: part for side, part in SIDE_PARTS.items()}}
    return write_feature_folder(out, features, dataset.labels.numpy(), parts, info)
