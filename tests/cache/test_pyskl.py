"""The one PYSKL module: the restricted reader, the atomic writer that refuses an existing file, and
the annotation record."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from posebridge.cache.atomic import atomic_new_path
from posebridge.cache.errors import UserError
from posebridge.cache.pyskl import Annotation, read_pyskl, write_pyskl


def kp(m=1, t=4, v=20, c=3):
    return np.zeros((m, t, v, c), np.float32)


# --- the record --------------------------------------------------------------------------------

def test_annotation_dict_has_pyskls_keys_and_2d_extras():
    ann = Annotation("S001", 3, kp()).to_dict()
    assert set(ann) == {"frame_dir", "label", "total_frames", "keypoint"} and ann["total_frames"] == 4
    two_d = Annotation("vid", 1, kp(c=2, v=18), np.ones((1, 4, 18), np.float32), img_shape=[256, 340]).to_dict()
    assert two_d["img_shape"] == two_d["original_shape"] == (256, 340)
    assert two_d["keypoint_score"].shape == (1, 4, 18)


@pytest.mark.parametrize("bad", [
    dict(keypoint=kp().astype(np.float64)), dict(keypoint=np.zeros((1, 4, 20), np.float32)),
    dict(keypoint=kp(m=0)), dict(keypoint=kp(c=4)), dict(keypoint_score=np.zeros((1, 4, 19), np.float32)),
    dict(keypoint=kp(c=2)), dict(label=-2), dict(label=True), dict(label="3")])
def test_annotation_refuses_what_pyskl_cannot_hold(bad):
    with pytest.raises((TypeError, ValueError)):
        Annotation(**{"frame_dir": "a", "label": 0, "keypoint": kp(), **bad})


# --- writing -----------------------------------------------------------------------------------

def test_write_then_read_round_trips(tmp_path):
    out = tmp_path / "sub" / "x.pkl"
    anns = [Annotation("b", 1, kp(t=3) + 1), Annotation("a", 0, kp(m=2))]
    write_pyskl(out, anns, {"xsub_train": ["a"], "xsub_val": ["b"]})
    data = read_pyskl(out)
    assert data["split"] == {"xsub_train": ["a"], "xsub_val": ["b"]}
    assert [(a["frame_dir"], a["label"], a["keypoint"].shape) for a in data["annotations"]] == [
        ("b", 1, (1, 3, 20, 3)), ("a", 0, (2, 4, 20, 3))]
    assert list(out.parent.iterdir()) == [out]  # no temporary file left


def test_write_refuses_an_existing_file_unless_told_to_replace(tmp_path):
    out = tmp_path / "x.pkl"
    out.write_bytes(b"keep me")
    with pytest.raises(UserError, match="already exists; give a new file name or delete it first"):
        write_pyskl(out, [Annotation("a", 0, kp())], {})
    assert out.read_bytes() == b"keep me"
    write_pyskl(out, [Annotation("a", 0, kp())], {}, replace=True)
    assert read_pyskl(out)["annotations"][0]["frame_dir"] == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pkl"]


def test_a_file_made_while_writing_is_not_overwritten(tmp_path):
    """Another process creating the target between the check and the publish wins; ours is dropped."""
    out = tmp_path / "x.pkl"
    with pytest.raises(FileExistsError):
        with atomic_new_path(out) as tmp:
            tmp.write_bytes(b"ours")
            out.write_bytes(b"theirs")
    assert out.read_bytes() == b"theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["x.pkl"]


def test_a_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "x.pkl"
    with pytest.raises(RuntimeError):
        with atomic_new_path(out) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_write_checks_ids_and_annotations(tmp_path):
    out = tmp_path / "x.pkl"
    with pytest.raises(UserError, match="split 'val' names 1 clips that are not annotations, e.g. 'gone'"):
        write_pyskl(out, [Annotation("a", 0, kp())], {"val": ["gone"]})
    with pytest.raises(UserError, match="1 frame_dirs name two clips, e.g. 'a'"):
        write_pyskl(out, [Annotation("a", 0, kp()), Annotation("a", 1, kp())], {})
    with pytest.raises(UserError, match=r"annotation 0 \(a\): 2D keypoints need 'img_shape'"):
        write_pyskl(out, [{"frame_dir": "a", "label": 0, "total_frames": 4, "keypoint": kp(c=2)}], {})
    assert not out.exists()


# --- reading -----------------------------------------------------------------------------------

class _RunsCode:
    """Unpickling this calls os.system, as any pickle may: the restricted reader must never get there."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_read_pyskl_refuses_a_pickle_that_carries_a_callable_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    ann = {"frame_dir": "x", "total_frames": 1, "img_shape": (4, 4), "label": 0,
           "keypoint": np.zeros((1, 1, 17, 2), np.float32), "payload": _RunsCode(marker)}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"split": {}, "annotations": [ann]}))
    with pytest.raises(UserError, match=r"posix\.system|os\.system"):
        read_pyskl(path)
    assert not marker.exists()
    with open(path, "rb") as f:  # the file does carry the call: plain pickle runs it
        pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_read_pyskl_admits_numpy_arrays_and_scalars_of_every_protocol(tmp_path, protocol):
    # mmcv's pickle handler (pyskl's and mmaction2's own files) writes protocol 2.
    ann = {"frame_dir": "x", "total_frames": 3, "img_shape": (4, 4), "label": np.int64(2),
           "keypoint": np.arange(3 * 17 * 2, dtype=np.float32).reshape(1, 3, 17, 2),
           "keypoint_score": np.ones((1, 3, 17), np.float16), "extra": {1, 2}}
    path = tmp_path / f"p{protocol}.pkl"
    path.write_bytes(pickle.dumps({"split": {"all": ["x"]}, "annotations": [ann]}, protocol=protocol))
    got = read_pyskl(path)["annotations"][0]
    np.testing.assert_array_equal(got["keypoint"], ann["keypoint"])
    assert got["keypoint_score"].dtype == np.float16 and got["label"] == 2 and got["extra"] == {1, 2}


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


