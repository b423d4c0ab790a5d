"""Exports of a real cue cache: PYSKL pickle and HDF5 round trips, no half-written files."""
from __future__ import annotations

import shutil
import pickle

import numpy as np
import pytest

from posebridge.cache.schema import BLAZEPOSE33, BLAZEPOSE_TO_COCO17, CacheLayout
from posebridge.cache.export import export_hdf5, export_pyskl, read_hdf5
from posebridge.cache.pyskl import read_pyskl
from posebridge.cache.store import ClipArrays, ClipRecord, CueStore
from posebridge.cache.writer import ShardWriter
from posebridge.cache.errors import UserError

M, V, VC, C, P = 2, 33, 2, 3, 3
LAYOUT = CacheLayout(skeleton="blazepose33", joint_names=BLAZEPOSE33.joint_names, cue_joints=(0, 15),
                     levels=("fpn64",), feature_channels=C, heatmap_patch=P, max_persons=M)
SIZES = {"s1/a.mp4": (480, 640, 12), "s1/b.mp4": (720, 1280, 1), "s2/c.mp4": (240, 320, 30)}
TWO_PEOPLE = "s2/c.mp4"  # the only clip whose second slot holds someone (frames 5..19)


@pytest.fixture
def store(tmp_path) -> CueStore:
    store = CueStore.create(tmp_path / "store", dataset="demo", fingerprint="f" * 64,
                            extractor={"backend": "embedded"}, layout=LAYOUT)
    rng = np.random.default_rng(0)
    with ShardWriter(store, shard_clips=2) as writer:
        for i, (clip_id, (h, w, t)) in enumerate(SIZES.items()):
            record = ClipRecord(clip_id=clip_id, content_id=f"c{i}", label=i, label_name=f"act{i}",
                                fps=30.0, height=h, width=w, meta={"camera": i})
            arrays = ClipArrays(keypoints=rng.random((t, M, V, 5), dtype=np.float32),
                                score=rng.uniform(0.5, 1, (t, M)).astype(np.float32),
                                features=rng.normal(size=(t, M, VC, C)).astype(np.float32),
                                heatmaps=rng.random((t, M, VC, P, P), dtype=np.float32))
            absent = np.ones(t, bool)
            if clip_id == TWO_PEOPLE:
                absent[5:20] = False
            for name in ("keypoints", "score", "features", "heatmaps"):
                getattr(arrays, name)[absent, 1] = 0
            writer.add(record, arrays)
    return store


@pytest.mark.parametrize("layout", ["coco17", "full"])
def test_pyskl_round_trip(store, tmp_path, layout):
    out = tmp_path / "out" / "demo.pkl"
    missing = export_pyskl(store, out, split={"train": ["s1/a.mp4", "s1/b.mp4", "gone.mp4"], "test": ["s2/c.mp4"]},
                           layout=layout)
    assert missing == {"train": ["gone.mp4"]}
    data = read_pyskl(out)
    assert data["split"] == {"train": ["s1/a.mp4", "s1/b.mp4"], "test": ["s2/c.mp4"]}
    assert [a["frame_dir"] for a in data["annotations"]] == sorted(SIZES)
    stored = {r.clip_id: (r, a) for r, a in store.iter_clips()}
    joints = list(BLAZEPOSE_TO_COCO17) if layout == "coco17" else list(range(V))
    for ann in data["annotations"]:
        h, w, t = SIZES[ann["frame_dir"]]
        record, arrays = stored[ann["frame_dir"]]
        m = 2 if ann["frame_dir"] == TWO_PEOPLE else 1  # slots never used are left out
        assert ann["total_frames"] == t and ann["img_shape"] == ann["original_shape"] == (h, w)
        assert ann["label"] == record.label
        assert ann["keypoint"].shape == (m, t, len(joints), 2) and ann["keypoint"].dtype == np.float32
        assert ann["keypoint_score"].shape == (m, t, len(joints)) and ann["keypoint_score"].dtype == np.float32
        kp = arrays.keypoints[:, :m][:, :, joints].transpose(1, 0, 2, 3)  # [m, t, V', 5]
        np.testing.assert_allclose(ann["keypoint"][..., 0], kp[..., 0] * w, rtol=1e-6)
        np.testing.assert_allclose(ann["keypoint"][..., 1], kp[..., 1] * h, rtol=1e-6)
        np.testing.assert_array_equal(ann["keypoint_score"], kp[..., 3])
    assert list(out.parent.iterdir()) == [out]  # no tmp file left

    export_pyskl(store, out)
    assert read_pyskl(out)["split"] == {"all": sorted(SIZES)}


def test_pyskl_export_has_what_pyskl_and_mmaction2_read(store, tmp_path):
    """The fields, types and shapes the peers' skeleton pipelines read (mmaction2 1.2 / pyskl
    PoseDataset -> PreNormalize2D (img_shape) -> UniformSampleFrames (total_frames) -> PoseDecode
    (keypoint[:, frames]) -> FormatGCNInput (keypoint + keypoint_score -> [M, T, V, 3])): the COCO
    graph's STGCN takes 3 channels x 17 joints = 51 inputs per person and frame."""
    out = tmp_path / "coco.pkl"
    export_pyskl(store, out)
    with open(out, "rb") as f:
        data = pickle.load(f)
    assert set(data) == {"split", "annotations"}
    for ann in data["annotations"]:
        assert set(ann) == {"frame_dir", "total_frames", "img_shape", "original_shape", "label", "keypoint",
                            "keypoint_score"}
        assert type(ann["frame_dir"]) is str and type(ann["total_frames"]) is int and type(ann["label"]) is int
        assert type(ann["img_shape"]) is tuple and all(type(v) is int for v in ann["img_shape"])
        kp, score = ann["keypoint"], ann["keypoint_score"]
        assert type(kp) is np.ndarray and kp.dtype == np.float32 and kp.ndim == 4
        assert kp.shape[1:] == (ann["total_frames"], 17, 2) and score.shape == kp.shape[:3]
        gcn_input = np.concatenate([kp, score[..., None]], axis=-1)  # FormatGCNInput
        assert gcn_input.shape[-2] * gcn_input.shape[-1] == 51


def test_pyskl_export_refuses_an_unknown_layout(store, tmp_path):
    with pytest.raises(UserError, match="--layout"):
        export_pyskl(store, tmp_path / "x.pkl", layout="ntu25")


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
    shutil.rmtree(part / "features" / "c")  # clips that cannot be read back
    (part / "features" / "zarr.json").write_text("{broken")
    with pytest.raises(Exception):
        export_hdf5(store, out)
    assert out.read_bytes() == b"previous export"
    assert list(tmp_path.glob(".demo.h5.tmp-*")) == []
