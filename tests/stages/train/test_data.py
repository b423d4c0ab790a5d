"""Stage-2 data: resampling, normalisation, loading a real cue cache and PYSKL pickles, partitions."""
from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import file_sha256
from posebridge.stages.splits.registry import Split, get_split
from posebridge.stages.extract import synthetic
from posebridge.cache.schema import BLAZEPOSE33, COCO17
from posebridge.stages.train.data import (
    CueDataset, load_pyskl, load_store, normalise_persons, normalise_skeleton, partition, resample,
)

CLIPS_PER_CLASS = 20
NUM_FRAMES = 32


@pytest.fixture(scope="module")
def synthetic_ds(tmp_path_factory) -> CueDataset:
    # The same folder as tests/stages/extract/test_synthetic.py uses: the second module reuses the store.
    path = synthetic.write_synthetic_store(tmp_path_factory.getbasetemp() / "synthetic_cache", CLIPS_PER_CLASS)
    return load_store(path, num_frames=NUM_FRAMES)


# --- per-clip transforms ----------------------------------------------------------------------

def test_resample_stretches_and_subsamples_linearly():
    ramp = np.arange(5, dtype=np.float32)[:, None] * np.array([1.0, -2.0], np.float32)  # [5, 2]
    stretched = resample(ramp, 9)
    np.testing.assert_allclose(stretched[:, 0], np.linspace(0, 4, 9))
    np.testing.assert_allclose(stretched[:, 1], -2 * np.linspace(0, 4, 9))
    np.testing.assert_allclose(resample(np.arange(101, dtype=np.float32), 5), [0, 25, 50, 75, 100])
    np.testing.assert_array_equal(resample(np.full((1, 3), 7.0, np.float32), 4), np.full((4, 3), 7.0))
    assert resample(ramp, 9).dtype == np.float32


def _blazepose_frames(rng: np.random.Generator, t: int = 10) -> np.ndarray:
    """[T, 33, 3] pixels of a synthetic upright body: hips at y=500, shoulders 200 px above."""
    xyz = rng.normal(0, 30, size=(t, 33, 3)) + np.array([960.0, 400.0, 0.0])
    xyz[:, 23] = (900, 500, 0)
    xyz[:, 24] = (1020, 500, 0)
    xyz[:, 11] = (880, 300, 0)
    xyz[:, 12] = (1040, 300, 0)
    return xyz


def test_normalisation_centres_on_mid_hip_in_torso_units():
    rng = np.random.default_rng(0)
    xyz = _blazepose_frames(rng)
    conf = np.ones(xyz.shape[:2])
    out = normalise_skeleton(xyz, conf, BLAZEPOSE33)
    np.testing.assert_allclose(out[:, [23, 24]].mean(axis=1)[:, :2], 0, atol=1e-6)
    np.testing.assert_allclose(out[:, [11, 12]].mean(axis=1)[:, 1], -1.0, atol=1e-6)  # one torso up
    # Invariant to where the person stands and how large they appear.
    moved = normalise_skeleton(xyz * 2.5 + np.array([-300.0, 80.0, 10.0]), conf, BLAZEPOSE33)
    np.testing.assert_allclose(moved, out, atol=1e-5)


def test_low_confidence_joints_keep_coordinates_but_not_the_statistics():
    xyz = _blazepose_frames(np.random.default_rng(1))
    conf = np.ones(xyz.shape[:2])
    reference = normalise_skeleton(xyz, conf, BLAZEPOSE33)
    xyz[3, 23] = (5000, 5000, 0)  # a wild hip, flagged as invisible
    conf[3, 23] = 0.1
    out = normalise_skeleton(xyz, conf, BLAZEPOSE33)
    np.testing.assert_allclose(np.delete(out, 3, axis=0), np.delete(reference, 3, axis=0), atol=1e-5)
    assert out[3, 23, 0] > 10  # still where the model put it


def test_scale_falls_back_to_the_bounding_box_without_a_torso():
    xyz = _blazepose_frames(np.random.default_rng(2))
    conf = np.ones(xyz.shape[:2])
    conf[:, [11, 12]] = 0  # shoulders never seen
    out = normalise_skeleton(xyz, conf, BLAZEPOSE33)
    diagonals = [np.linalg.norm(f[c > 0, :2].max(0) - f[c > 0, :2].min(0)) for f, c in zip(out, conf)]
    assert np.median(diagonals) == pytest.approx(1.0, abs=1e-5)


# --- the synthetic store through load_store ----------------------------------------------------

def test_load_store_shapes_and_identity(synthetic_ds):
    n = CLIPS_PER_CLASS * len(synthetic.synthetic_classes())
    ds = synthetic_ds
    assert len(ds) == n
    # The synthetic store holds one person slot (M = 1): [N, M, T, ...]
    assert ds.keypoints.shape == (n, 1, NUM_FRAMES, 33, 3) and ds.keypoints.dtype == torch.float32
    assert ds.confidence.shape == (n, 1, NUM_FRAMES, 33)
    assert ds.features.shape == (n, 1, NUM_FRAMES, 13, 96) and ds.heatmaps.shape == (n, 1, NUM_FRAMES, 13, 9)
    assert ds.skeleton == "blazepose33"
    assert ds.labels.dtype == torch.int64 and set(ds.labels.tolist()) == set(range(36))
    assert ds.cue_joints == synthetic.CUE_JOINTS
    assert len(ds.clip_ids) == len(set(ds.clip_ids)) == n
    assert ds.meta[0]["split"] in ("train", "test")
    assert len(ds.source_fingerprint) == 64
    assert 0.89 <= float(ds.confidence.min()) and float(ds.confidence.max()) <= 1.0  # float16 on disk
    # Normalised: mid-hip near the origin, the torso about one unit long.
    kp = ds.keypoints[:, 0]
    mid_hip = kp[:, :, [23, 24]].mean(dim=(1, 2))
    assert mid_hip[:, :2].abs().max() < 0.1
    torso = (kp[:, :, [11, 12], :2].mean(2) - kp[:, :, [23, 24], :2].mean(2)).norm(dim=-1)
    assert torso.median().item() == pytest.approx(1.0, abs=0.05)


def test_subset_keeps_rows_aligned(synthetic_ds):
    idx = np.array([5, 0, 700])
    sub = synthetic_ds.subset(idx)
    assert len(sub) == 3 and sub.clip_ids == [synthetic_ds.clip_ids[i] for i in idx]
    assert torch.equal(sub.features[2], synthetic_ds.features[700])
    assert torch.equal(sub.labels, synthetic_ds.labels[torch.as_tensor(idx)])
    assert sub.meta[1] is synthetic_ds.meta[0] and sub.cue_joints == synthetic_ds.cue_joints
    mask = np.zeros(len(synthetic_ds), dtype=bool)
    mask[[3, 9]] = True
    assert synthetic_ds.subset(mask).clip_ids == [synthetic_ds.clip_ids[3], synthetic_ds.clip_ids[9]]


def test_partition_of_the_synthetic_split(synthetic_ds):
    split = synthetic.synthetic_split()
    parts = partition(synthetic_ds, split, val_fraction=0.1, seed=0)
    labels = synthetic_ds.labels.numpy()
    is_train = np.array([m["split"] == "train" for m in synthetic_ds.meta])
    per_class_train = round(synthetic.TRAIN_FRACTION * CLIPS_PER_CLASS)

    assert set(np.unique(labels[parts["train"]])) == set(split.seen)
    assert set(np.unique(labels[parts["test_zsl"]])) == set(split.unseen)
    assert set(np.unique(labels[parts["test_gzsl"]])) == set(range(36))
    assert is_train[parts["train"]].all() and is_train[parts["val"]].all()
    assert not is_train[parts["test_gzsl"]].any()
    assert np.intersect1d(parts["train"], parts["val"]).size == 0
    assert np.intersect1d(parts["train"], parts["test_gzsl"]).size == 0
    assert set(parts["test_zsl"]) <= set(parts["test_gzsl"])
    assert len(parts["train"]) + len(parts["val"]) == len(split.seen) * per_class_train
    assert len(parts["test_gzsl"]) == 36 * (CLIPS_PER_CLASS - per_class_train)
    # Stratified: every seen class gives round(0.1 * 14) = 1 sample to val.
    assert np.bincount(labels[parts["val"]], minlength=36)[list(split.seen)].tolist() == [1] * len(split.seen)
    for idx in parts.values():
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)

    again = partition(synthetic_ds, split, val_fraction=0.1, seed=0)
    other = partition(synthetic_ds, split, val_fraction=0.1, seed=1)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    assert not np.array_equal(parts["val"], other["val"])
    assert np.array_equal(parts["test_zsl"], other["test_zsl"])


# --- protocols on small hand-made datasets (synthetic mechanics) ---------------------------------

def _tiny_ds(metas: list[dict], labels: list[int]) -> CueDataset:
    n = len(labels)
    return CueDataset(keypoints=torch.zeros(n, 1, 4, 25, 3), confidence=torch.ones(n, 1, 4, 25), features=None,
                      heatmaps=None, labels=torch.tensor(labels), clip_ids=[f"clip{i}" for i in range(n)],
                      meta=metas, cue_joints=(), source_fingerprint="0" * 64)


PUBLISHED = {"ntu_xsub": "ntu60_55_5", "pku_xsub": "pkummd_46_5", "kinetics": "kinetics400_360_40"}


def _split(protocol: str) -> Split:
    """Three tiny classes on the sides of a published protocol: its rules, as the registry's data
    writes them (stages/splits/data/datasets.json)."""
    published = get_split(PUBLISHED[protocol])
    assert published.protocol == protocol
    return dataclasses.replace(published, name="tiny", dataset="tiny", class_names=("a", "b", "c"), seen=(0, 1),
                               unseen=(2,), source="test", text_sources=(), data_classes=None)


def test_ntu_xsub_uses_subject_ids_then_pyskl_lists():
    # Subject 1 trains, subject 3 tests (NTU cross-subject); the last two only have PYSKL lists.
    metas = [{"subject": 1}, {"subject": 1}, {"subject": 3}, {"subject": 3},
             {"pyskl_split": ["xsub_train", "xview_val"]}, {"pyskl_split": ["xsub_val"]}]
    parts = partition(_tiny_ds(metas, [0, 2, 2, 1, 1, 2]), _split("ntu_xsub"), val_fraction=0.0)
    assert parts["train"].tolist() == [0, 4]
    assert parts["test_zsl"].tolist() == [2, 5] and parts["test_gzsl"].tolist() == [2, 3, 5]
    with pytest.raises(UserError, match="subject ids"):
        partition(_tiny_ds([{"subject": 1}, {}], [0, 2]), _split("ntu_xsub"))


def test_published_sides_also_read_a_feature_folders_files():
    # meta["side"] (train / val / test files): val rows are validation, never test rows by a side rule
    metas = [{"side": "train"}, {"side": "train"}, {"side": "val"}, {"side": "test"}, {"side": "test"}]
    for protocol in PUBLISHED:
        parts = partition(_tiny_ds(metas, [0, 1, 0, 2, 1]), _split(protocol), val_fraction=0.0)
        assert parts["train"].tolist() == [0, 1] and parts["val"].tolist() == [2], protocol
        assert parts["test_zsl"].tolist() == [3] and parts["test_gzsl"].tolist() == [3, 4], protocol


def test_the_ntu_protocols_subjects_are_the_ntu_importers():
    from posebridge.stages.datasets.ntu import NTU120_TRAIN_SUBJECTS

    rules = {r.kind: r for r in _split("ntu_xsub").train_side.values}
    tests = {r.kind: r for r in _split("ntu_xsub").test_side.values}
    assert set(rules["subjects"].values) == NTU120_TRAIN_SUBJECTS
    assert set(tests["subjects"].values) == set(range(1, 107)) - NTU120_TRAIN_SUBJECTS


def test_pku_xsub_reads_meta_split_or_pyskl_lists():
    metas = [{"split": "train"}, {"pyskl_split": ["xsub_val"]}]
    parts = partition(_tiny_ds(metas, [0, 2]), _split("pku_xsub"), val_fraction=0.0)
    assert parts["train"].tolist() == [0] and parts["test_zsl"].tolist() == [1]


def test_kinetics_falls_back_to_a_hash_split_with_a_warning():
    labels = [i % 3 for i in range(200)]
    official = partition(_tiny_ds([{"split": "train" if i < 100 else "validate"} for i in range(200)], labels),
                         _split("kinetics"), val_fraction=0.0)
    assert official["train"].max() < 100 <= official["test_zsl"].min()
    with pytest.warns(UserWarning, match="hash of the clip id"):
        guessed = partition(_tiny_ds([{} for _ in range(200)], labels), _split("kinetics"), val_fraction=0.0)
    pickle_sides = [{"pyskl_split": ["train" if i < 100 else "val"]} for i in range(200)]  # an imported pickle's
    assert np.array_equal(partition(_tiny_ds(pickle_sides, labels), _split("kinetics"), val_fraction=0.0)["train"],
                          official["train"])
    on_train = len(guessed["train"]) / sum(label in (0, 1) for label in labels)
    assert 0.65 < on_train < 0.95  # about 80/20
    with pytest.warns(UserWarning):
        assert np.array_equal(guessed["train"], partition(_tiny_ds([{} for _ in range(200)], labels),
                                                          _split("kinetics"), val_fraction=0.0)["train"])


def test_labels_outside_the_split_are_refused():
    with pytest.raises(UserError, match="3 classes"):
        partition(_tiny_ds([{"split": "train"}, {"split": "test"}], [0, 7]), _split("kinetics"))


# --- PYSKL pickles -------------------------------------------------------------------------------

def _write_pickle(path: Path, annotations: list[dict], split: dict) -> Path:
    with open(path, "wb") as f:
        pickle.dump({"split": split, "annotations": annotations}, f)
    return path


def test_load_pyskl_2d_puts_the_surest_person_first(tmp_path):
    rng = np.random.default_rng(0)
    annotations = []
    for i, t in enumerate((20, 45)):
        keypoint = rng.uniform(100, 400, size=(2, t, 17, 2)).astype(np.float32)
        score = np.stack([np.full((t, 17), 0.4), np.full((t, 17), 0.9)]).astype(np.float32)
        score[1, :, 0] = 0.2  # one weak joint of the main person
        annotations.append({"frame_dir": f"v{i}", "total_frames": t, "img_shape": (480, 640), "label": i,
                            "keypoint": keypoint, "keypoint_score": score})
    path = _write_pickle(tmp_path / "coco.pkl", annotations, {"train": ["v0"], "val": ["v1"]})
    ds = load_pyskl(path, num_frames=16)

    assert ds.keypoints.shape == (2, 2, 16, 17, 3) and ds.features is None and ds.heatmaps is None
    assert ds.skeleton == "coco17"
    assert ds.labels.tolist() == [0, 1] and ds.clip_ids == ["v0", "v1"]
    assert ds.meta[0]["pyskl_split"] == ["train"] and ds.meta[1]["pyskl_split"] == ["val"]
    assert torch.all(ds.keypoints[..., 2] == 0)  # 2D: z = 0
    np.testing.assert_allclose(ds.confidence[0, 0, :, 0], 0.2)
    np.testing.assert_allclose(ds.confidence[0, 0, :, 1], 0.9)
    np.testing.assert_allclose(ds.confidence[0, 1], 0.4)
    # Person 1 (score 0.9) is the main actor, slot 0; both persons are in its centre and torso units.
    xyz = np.concatenate([annotations[0]["keypoint"][[1, 0]], np.zeros((2, 20, 17, 1))], -1)
    expected = normalise_persons(xyz, annotations[0]["keypoint_score"][[1, 0]], COCO17)
    np.testing.assert_allclose(expected[0], normalise_skeleton(xyz[0], annotations[0]["keypoint_score"][1], COCO17))
    for m in (0, 1):
        np.testing.assert_allclose(ds.keypoints[0, m, 0], expected[m, 0], atol=1e-5)
        np.testing.assert_allclose(ds.keypoints[0, m, -1], expected[m, -1], atol=1e-5)
    assert ds.source_fingerprint == file_sha256(path)


def test_load_pyskl_3d_ntu_uses_coordinates_as_they_are(tmp_path):
    rng = np.random.default_rng(1)
    keypoint = np.zeros((2, 30, 25, 3), np.float32)  # PYSKL pads an absent second person with zeros
    keypoint[0] = rng.normal(0, 0.3, size=(30, 25, 3))
    keypoint[0, :, 0] = (0.1, 0.0, 3.0)  # spine base
    keypoint[0, :, 20] = (0.1, -0.5, 3.0)  # spine shoulder, 0.5 m above
    keypoint[1, :5] = rng.normal(0, 0.3, size=(5, 25, 3))
    ann = {"frame_dir": "S001C001P001R001A001", "total_frames": 30, "label": 0, "keypoint": keypoint}
    path = _write_pickle(tmp_path / "ntu.pkl", [ann], {"xsub_train": ["S001C001P001R001A001"], "xsub_val": []})
    ds = load_pyskl(path, num_frames=30)

    assert torch.all(ds.confidence[0, 0] == 1)  # 3D: present joints are trusted
    assert torch.all(ds.confidence[0, 1, :5] == 1) and torch.all(ds.confidence[0, 1, 5:] == 0)
    expected = (keypoint[0] - np.array([0.1, 0.0, 3.0])) / 0.5
    np.testing.assert_allclose(ds.keypoints[0, 0].numpy(), expected, atol=1e-5)
    assert ds.meta[0]["pyskl_split"] == ["xsub_train"]


def test_unknown_skeleton_layout_is_a_user_error(tmp_path):
    ann = {"frame_dir": "x", "total_frames": 4, "img_shape": (10, 10), "label": 0,
           "keypoint": np.zeros((1, 4, 18, 2), np.float32)}
    with pytest.raises(UserError, match="18 joints"):
        load_pyskl(_write_pickle(tmp_path / "openpose.pkl", [ann], {}), num_frames=8)


def test_load_store_rows_follow_clip_ids_not_part_order(tmp_path):
    """Two stores with the same clips written in different part orders load identically."""
    from posebridge.cache.store import CueStore, store_dir
    from posebridge.cache.writer import ShardWriter
    from posebridge.stages.extract.synthetic import generate_clip, store_layout
    from posebridge.cache.store import ClipArrays, ClipRecord
    from posebridge.stages.train.data import load_store

    clips = []
    for label in range(3):
        kp, score, feat, hm = generate_clip(label, 0, 0)
        clips.append((ClipRecord(clip_id=f"c{label}", content_id=f"x{label}", label=label, width=640, height=480),
                      ClipArrays(keypoints=kp[:, None], score=score[:, None], features=feat[:, None],
                                 heatmaps=hm[:, None])))
    loaded = []
    # "a": one part per clip (parts named at random); "b": one part holding c2, c1, c0 in that order,
    # so its storage order is certainly not clip_id order.
    for name, order, per_part in (("a", clips, 1), ("b", clips[::-1], 3)):
        store = CueStore.create(store_dir(tmp_path, name, "f" * 64), dataset=name, fingerprint="f" * 64,
                                extractor={}, layout=store_layout())
        with ShardWriter(store, shard_clips=per_part) as writer:
            for record, arrays in order:
                writer.add(record, arrays)
        loaded.append(load_store(store, num_frames=24))
    a, b = loaded
    assert a.clip_ids == b.clip_ids == ["c0", "c1", "c2"]
    assert torch.equal(a.keypoints, b.keypoints) and torch.equal(a.features, b.features)
    assert a.labels.tolist() == [0, 1, 2]


def test_frames_without_a_person_hold_the_nearest_pose():

    rng = np.random.default_rng(0)
    xyz = rng.normal(500, 50, (6, 33, 3)).astype(np.float32)
    conf = np.ones((6, 33), np.float32)
    xyz[[0, 3]] = 0.0  # the pose model found nobody in frames 0 and 3: all-zero keypoints
    conf[[0, 3]] = 0.0
    out = normalise_skeleton(xyz, conf, BLAZEPOSE33)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[3], out[2])  # ties go to the earlier frame
    assert np.abs(out).max() < 10  # nothing thrown to the image origin


def test_a_second_person_never_seen_with_enough_confidence_is_absent():
    """Coordinates but no joint ever at MIN_CONFIDENCE: untrustworthy in every frame, so the slot is
    emptied (keypoints and confidence), instead of raw coordinates with jumps to the image origin."""
    from posebridge.stages.train.data import MIN_CONFIDENCE, absent_if_unseen

    rng = np.random.default_rng(0)
    xyz = rng.normal(500, 50, (2, 6, 33, 3)).astype(np.float32)
    conf = np.ones((2, 6, 33), np.float32)
    conf[1] = MIN_CONFIDENCE / 2  # the second person: seen, never trusted
    xyz[1, [2, 4]] = 0.0  # and missing in some frames
    out = normalise_persons(xyz, conf, BLAZEPOSE33)
    assert not out[1].any() and np.abs(out[0]).max() < 10
    kept = absent_if_unseen(out, conf)
    assert (kept[1] == 0).all() and np.array_equal(kept[0], conf[0])
    # the main actor is kept even when no one is ever trusted (the clip has nobody better)
    weak = np.full((1, 6, 33), MIN_CONFIDENCE / 2, np.float32)
    assert normalise_persons(xyz[:1], weak, BLAZEPOSE33).any()
