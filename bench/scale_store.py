"""An NTU-60-sized SYNTHETIC cue store for the stage-2 scale benchmark (`make bench-train ARGS="--scale ntu60"`).

56,880 clips (NTU-60's count) in the cache's real schema (BlazePose 33 keypoints, 13 cue joints x
96 uint8 feature channels, 3x3 heatmap patches), named and labelled like NTU files
(S001C001P001R001A001: setup, camera, subject, replication, action) so the ntu_xsub protocol and
the NTU-60 splits apply. The content only has to look like a cache, not teach anything: per class
a pose offset and a feature pattern, plus noise. Generated part by part (vectorised over all the
frames of a part) and written with the cache writer; kept under outputs/ and reused, never part
of `make test`. A few minutes and ~6.5 GB on disk (the uint8 features are noise and compress little).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from posebridge.cache.store import ClipArrays, ClipRecord, CueStore, dir_bytes, store_dir
from posebridge.cache.writer import ShardWriter
from posebridge.stages.extract.config import BLAZEPOSE_JOINTS
from posebridge.cache.fingerprint import fingerprint
from posebridge.stages.splits.data_files import NTU60_CLASSES, read_lines
from posebridge.stages.extract.synthetic import TEMPLATE, store_layout

GENERATOR_VERSION = 2  # 2: cache schema v2 ([F, M, ...] with M = 1, as the synthetic demo store)
SCALES = {"ntu60": 56_880}
PART_CLIPS = 256
MIN_FRAMES, MAX_FRAMES = 48, 96  # as the synthetic demo's clips
DATASET = "ntu60"


def _ntu_ids(n: int) -> list[dict]:
    """n distinct NTU-60 name fields: action fastest, then replication, subject, camera, setup."""
    ids = []
    for setup in range(1, 18):
        for camera in range(1, 4):
            for subject in range(1, 41):
                for replication in range(1, 3):
                    for action in range(1, 61):
                        ids.append({"setup": setup, "camera": camera, "subject": subject,
                                    "replication": replication, "action": action})
                        if len(ids) == n:
                            return ids
    raise ValueError(f"NTU-60 names run out before {n} clips")


def _part_arrays(rng: np.random.Generator, labels: np.ndarray, lengths: np.ndarray, class_pose: np.ndarray,
                 class_feature: np.ndarray, noise_bank: np.ndarray) -> tuple[np.ndarray, ...]:
    """Concatenated frames of one part: keypoints [F,33,5], score [F], features [F,13,96], heatmaps [F,13,3,3]."""
    frame_label = np.repeat(labels, lengths)
    frames = len(frame_label)
    t = np.concatenate([np.arange(n) for n in lengths]) / 30.0
    xy = 0.5 + 0.3 * (TEMPLATE[None, :, :2] + class_pose[frame_label])
    xy += 0.02 * np.sin(2 * np.pi * (0.5 + frame_label[:, None, None] / 60) * t[:, None, None])
    xy += rng.normal(0, 0.003, xy.shape)
    keypoints = np.empty((frames, len(BLAZEPOSE_JOINTS), 5), np.float32)
    keypoints[..., :2] = xy
    keypoints[..., 2] = 0.3 * TEMPLATE[None, :, 2]
    keypoints[..., 3:] = rng.uniform(0.9, 1.0, (frames, len(BLAZEPOSE_JOINTS), 2))
    score = rng.uniform(0.9, 1.0, frames).astype(np.float32)
    # Noise frames drawn from a fixed bank: drawing fresh normals for every frame is most of the time.
    features = class_feature[frame_label] + noise_bank[rng.integers(0, len(noise_bank), frames)]
    heatmaps = rng.uniform(0, 1, (frames, class_feature.shape[1], 3, 3)).astype(np.float32)
    return keypoints, score, features, heatmaps


def write_scale_store(root: Path, scale: str = "ntu60", seed: int = 0, log=print) -> Path:
    """The store of `scale`'s size under root, generated on first use (and completed if interrupted)."""
    n = SCALES[scale]
    settings = {"generator": "bench/scale_store.py", "version": GENERATOR_VERSION, "scale": scale, "clips": n,
                "seed": seed, "layout": store_layout().to_attrs()}
    fp = fingerprint(settings)
    store = CueStore.create(store_dir(root, DATASET, fp), dataset=DATASET, fingerprint=fp,
                            extractor={"backend": "synthetic-scale", **settings}, layout=store_layout())
    done = {r.clip_id for r in store.clips()}
    if len(done) == n:
        return store.path
    started = time.perf_counter()
    names = read_lines(NTU60_CLASSES)
    rng = np.random.default_rng([seed, 60])
    class_pose = rng.normal(0, 0.05, (60, len(BLAZEPOSE_JOINTS), 2))
    class_feature = rng.normal(0, 1.5, (60, 13, 96)).astype(np.float32)
    noise_bank = rng.standard_normal((8192, 13, 96), np.float32)
    ids = _ntu_ids(n)
    with ShardWriter(store, shard_clips=PART_CLIPS) as writer:
        for start in range(0, n, PART_CLIPS):
            chunk = [m for m in ids[start:start + PART_CLIPS]]
            clip_ids = ["S{setup:03d}C{camera:03d}P{subject:03d}R{replication:03d}A{action:03d}".format(**m) for m in chunk]
            if all(c in done for c in clip_ids):
                continue
            part_rng = np.random.default_rng([seed, start])
            labels = np.array([m["action"] - 1 for m in chunk])
            lengths = part_rng.integers(MIN_FRAMES, MAX_FRAMES + 1, len(chunk))
            keypoints, score, features, heatmaps = _part_arrays(part_rng, labels, lengths, class_pose, class_feature, noise_bank)
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            for i, (clip_id, meta) in enumerate(zip(clip_ids, chunk)):
                if clip_id in done:
                    continue
                rows = slice(offsets[i], offsets[i + 1])
                writer.add(ClipRecord(clip_id=clip_id, content_id=f"scale-{fp[:12]}-{clip_id}", label=int(labels[i]),
                                      label_name=names[labels[i]], fps=30.0, height=1080, width=1920, meta=meta),
                           ClipArrays(keypoints=keypoints[rows, None], score=score[rows, None],  # M = 1
                                      features=features[rows, None], heatmaps=heatmaps[rows, None]))
            if (start // PART_CLIPS) % 20 == 0:
                log(f"  generated {min(start + PART_CLIPS, n)}/{n} clips, {time.perf_counter() - started:.0f} s")
    log(f"generated {n} clips in {time.perf_counter() - started:.0f} s: {dir_bytes(store.path) / 1e9:.1f} GB on disk "
        f"at {store.path}")
    return store.path
