"""Exports of a real cue cache: PYSKL pickle and HDF5 round trips, no half-written files."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from posebridge.cache.export import export_hdf5, export_pyskl, read_hdf5, read_pyskl
from posebridge.cache.store import ClipArrays, ClipRecord, CueStore
from posebridge.cache.writer import ShardWriter
from posebridge.pipeline.errors import UserError

V, VC, C, P = 4, 2, 3, 3
LAYOUT = {"joint_names": ["a", "b", "c", "d"], "cue_joints": [0, 3], "levels": ["fpn64"],
          "feature_channels": C, "heatmap_patch": P, "feature_dtype": "uint8"}
SIZES = {"s1/a.mp4": (480, 640, 12), "s1/b.mp4": (720, 1280, 1), "s2/c.mp4": (240, 320, 30)}


@pytest.fixture
def store(tmp_path) -> CueStore:
    store = CueStore.create(tmp_path / "store", dataset="demo", fingerprint="f" * 64,
                            extractor={"backend": "embedded"}, layout=LAYOUT)
    rng = np.random.default_rng(0)
    with ShardWriter(store, shard_clips=2) as writer:
        for i, (clip_id, (h, w, t)) in enumerate(SIZES.items()):
            record = ClipRecord(clip_id=clip_id, content_id=f"c{i}", label=i, label_name=f"act{i}",
                                fps=30.0, height=h, width=w, meta={"camera": i})
            arrays = ClipArrays(keypoints=rng.random((t, V, 5), dtype=np.float32), score=rng.random(t, dtype=np.float32),
                                features=rng.normal(size=(t, VC, C)).astype(np.float32),
                                heatmaps=rng.random((t, VC, P, P), dtype=np.float32))
            writer.add(record, arrays)
    return store


def test_pyskl_round_trip(store, tmp_path):
    out = tmp_path / "out" / "demo.pkl"
    missing = export_pyskl(store, out, split={"train": ["s1/a.mp4", "s1/b.mp4", "gone.mp4"], "test": ["s2/c.mp4"]})
    assert missing == {"train": ["gone.mp4"]}
    data = read_pyskl(out)
    assert data["split"] == {"train": ["s1/a.mp4", "s1/b.mp4"], "test": ["s2/c.mp4"]}
    assert [a["frame_dir"] for a in data["annotations"]] == sorted(SIZES)
    stored = {r.clip_id: (r, a) for r, a in store.iter_clips()}
    for ann in data["annotations"]:
        h, w, t = SIZES[ann["frame_dir"]]
        record, arrays = stored[ann["frame_dir"]]
        assert ann["total_frames"] == t and ann["img_shape"] == ann["original_shape"] == (h, w)
        assert ann["label"] == record.label
        assert ann["keypoint"].shape == (1, t, V, 2) and ann["keypoint"].dtype == np.float32
        assert ann["keypoint_score"].shape == (1, t, V) and ann["keypoint_score"].dtype == np.float32
        np.testing.assert_allclose(ann["keypoint"][0, ..., 0], arrays.keypoints[..., 0] * w, rtol=1e-6)
        np.testing.assert_allclose(ann["keypoint"][0, ..., 1], arrays.keypoints[..., 1] * h, rtol=1e-6)
        np.testing.assert_array_equal(ann["keypoint_score"][0], arrays.keypoints[..., 3])
    assert list(out.parent.iterdir()) == [out]  # no tmp file left

    export_pyskl(store, out)
    assert read_pyskl(out)["split"] == {"all": sorted(SIZES)}


def test_read_pyskl_names_what_is_missing(tmp_path):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({"annotations": []}))
    with pytest.raises(UserError, match="split"):
        read_pyskl(path)
    path.write_bytes(pickle.dumps({"split": {}, "annotations": [{"frame_dir": "x", "total_frames": 2, "label": 0}]}))
    with pytest.raises(UserError, match=r"bad\.pkl: annotation 0 \(x\) lacks \['keypoint'\]"):
        read_pyskl(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="bad.pkl"):
        read_pyskl(path)


def test_hdf5_round_trip(store, tmp_path):
    out = tmp_path / "demo.h5"
    export_hdf5(store, out)
    attrs, clips = read_hdf5(out)
    assert attrs == store.attrs
    expected = sorted(store.iter_clips(), key=lambda c: c[0].clip_id)
    assert [r for r, _ in clips] == [r for r, _ in expected]
    for (_, got), (_, want) in zip(clips, expected):
        for name in ("keypoints", "score", "features", "heatmaps"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


def test_failed_export_keeps_the_old_file(store, tmp_path):
    out = tmp_path / "demo.h5"
    out.write_bytes(b"previous export")
    part = store.parts_dir / store.part_names()[0]
    (part / "features" / "c" / "0" / "0" / "0").unlink()  # a clip that cannot be read back
    (part / "features" / "zarr.json").write_text("{broken")
    with pytest.raises(Exception):
        export_hdf5(store, out)
    assert out.read_bytes() == b"previous export"
    assert list(tmp_path.glob(".demo.h5.tmp-*")) == []
