"""An NTU-60-sized SYNTHETIC feature folder in the SynSE / PURLS layout, for the features route's
scale benchmark (`make bench-train ARGS="--features-scale ntu60"`).

train / val / test_feature.npy [N, 256, 3, 25] float32 with *_labels.npy: 56,880 rows in all
(NTU-60's clip count; the test side holds all 60 classes, train and val the 55 seen ones of
ntu60_55_5), 4.4 GB on disk, as large as the files DynaPURLS reads for NTU-60. Per class a
direction in feature space plus noise: the content only has to be the right size and layout.
Written in chunks through np.lib.format.open_memmap (never whole in memory); kept under outputs/
and reused, never part of `make test`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from posebridge.stages.splits.registry import get_split

GENERATOR_VERSION = 1
ROWS = {"ntu60": {"train": 37_000, "val": 2_000, "test": 17_880}}
C, STEPS, V = 256, 3, 25
CHUNK = 2048


def write_scale_features(root: Path, scale: str) -> Path:
    """The folder for `scale` under root, written on first use (a `done` file marks it complete)."""
    folder = Path(root) / f"{scale}-v{GENERATOR_VERSION}"
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    split = get_split("ntu60_55_5")
    rng = np.random.default_rng(0)
    directions = rng.standard_normal((60, C)).astype(np.float32)
    for side, rows in ROWS[scale].items():
        classes = np.arange(60) if side == "test" else np.asarray(split.seen)
        labels = classes[np.arange(rows) % len(classes)]
        np.save(folder / f"{side}_labels.npy", labels.astype(np.int64))
        out = np.lib.format.open_memmap(folder / f"{side}_feature.npy", mode="w+", dtype=np.float32,
                                        shape=(rows, C, STEPS, V))
        for start in range(0, rows, CHUNK):
            y = labels[start:start + CHUNK]
            noise = rng.standard_normal((len(y), C, STEPS, V), dtype=np.float32)
            out[start:start + len(y)] = directions[y][:, :, None, None] + 2.0 * noise
        out.flush()
        del out
    (folder / "done").write_text("complete\n")
    return folder
