"""UTD-MHAD aA_sS_tT_skeleton.mat files, written here with scipy.io.savemat (MATLAB v5, as the release)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from posebridge.stages.datasets.skeleton_formats import utdmhad
from posebridge.stages.datasets.skeleton_formats.importer import BadFile, read_files

FMT = utdmhad.FORMAT


def d_skel(t: int) -> np.ndarray:
    """[20, 3, T]: joint j, coordinate c, frame f holds j + 0.1 c + 0.001 f, so every value says where it came from."""
    j, c, f = np.meshgrid(np.arange(20), np.arange(3), np.arange(t), indexing="ij")
    return j + 0.1 * c + 0.001 * f


def write(folder, name, array=None):
    path = folder / name
    scipy.io.savemat(path, {"d_skel": d_skel(4) if array is None else array})
    return path


def read_all(src):
    annotations, skipped = read_files(FMT, src, FMT.scan(src), {})
    return annotations, {name: why for name, why, _ in skipped}


@pytest.fixture
def utd(tmp_path):
    d = tmp_path / "Skeleton"
    d.mkdir()
    write(d, "a1_s1_t1_skeleton.mat", d_skel(6))
    write(d, "a27_s8_t4_skeleton.mat", d_skel(3))
    write(d, "a10_s3_t2_skeleton.mat")
    (d / "Skeleton_joint_order.txt").write_text("1 head\n")  # beside the files in the release: not scanned
    return d


def test_read_reorders_to_the_kinect_sdk_order(utd):
    (ann,) = FMT.read(utd / "a1_s1_t1_skeleton.mat")
    assert ann.frame_dir == "a1_s1_t1" and ann.label == 0 and ann.meta == {"action": 1, "subject": 1, "take": 1}
    assert ann.keypoint.shape == (1, 6, 20, 3) and ann.keypoint.dtype == np.float32
    utd_joint = np.rint(ann.keypoint[0, 0, :, 0]).astype(int)  # x of frame 0 = the UTD-MHAD joint index
    # kinect_v1 order: hip_center, spine, shoulder_center, head are UTD-MHAD's 4, 3, 2, 1 (1-based); the rest stay
    assert utd_joint.tolist() == [3, 2, 1, 0] + list(range(4, 20))
    np.testing.assert_allclose(ann.keypoint[0, 5, 7], [7.005, 7.105, 7.205], atol=1e-5)  # left hand, frame 5


def test_labels_and_cross_subject_sides(utd):
    annotations, skipped = read_all(utd)
    assert skipped == {}
    assert {a.frame_dir: a.label for a in annotations} == {"a1_s1_t1": 0, "a10_s3_t2": 9, "a27_s8_t4": 26}
    assert FMT.classes[26] == "squat" and FMT.layout == "kinect_v1"
    assert FMT.sides(annotations) == {"xsub_train": ["a10_s3_t2", "a1_s1_t1"], "xsub_val": ["a27_s8_t4"]}


def test_bad_files_are_one_line_each_and_the_rest_is_read(utd):
    good = (utd / "a1_s1_t1_skeleton.mat").read_bytes()
    (utd / "a2_s1_t1_skeleton.mat").write_bytes(b"")
    (utd / "a3_s1_t1_skeleton.mat").write_bytes(good[: len(good) - 40])  # cut in the data
    (utd / "a4_s1_t1_skeleton.mat").write_bytes(good[:90])  # cut in the header
    (utd / "a5_s1_t1_skeleton.mat").write_text('{"skeletons": []}')  # another format
    (utd / "a6_s1_t1_skeleton.mat").write_bytes(b"MATLAB 7.3 MAT-file, Platform: x" + bytes(200))
    write(utd, "a7_s1_t1_skeleton.mat", np.zeros((25, 3, 4)))
    scipy.io.savemat(utd / "a8_s1_t1_skeleton.mat", {"skel": d_skel(4)})
    (utd / "a9_s1_t1_skeleton.mat").write_bytes(good[:128] + bytes(64))  # garbage after the header
    annotations, why = read_all(utd)
    assert len(annotations) == 3 and len(why) == 8
    assert why["a2_s1_t1_skeleton.mat"] == "empty"
    assert why["a3_s1_t1_skeleton.mat"].startswith("truncated")
    assert why["a4_s1_t1_skeleton.mat"].startswith("truncated")
    assert why["a5_s1_t1_skeleton.mat"] == "not a MATLAB v5 .mat file (no 'MATLAB 5.0 MAT-file' header)"
    assert why["a6_s1_t1_skeleton.mat"] == "a MATLAB v7.3 (HDF5) file; UTD-MHAD files are MATLAB v5"
    assert why["a7_s1_t1_skeleton.mat"] == "d_skel has shape [25, 3, 4], not [20, 3, T]"
    assert why["a8_s1_t1_skeleton.mat"] == "no d_skel variable in the .mat file"
    assert why["a9_s1_t1_skeleton.mat"]  # corrupt: some one-line reason
    assert all("\n" not in w and len(w) <= 200 for w in why.values())


def test_name_and_value_checks(tmp_path):
    write(tmp_path, "a28_s1_t1_skeleton.mat")
    with pytest.raises(BadFile, match="outside 1-27"):
        FMT.read(tmp_path / "a28_s1_t1_skeleton.mat")
    bad = d_skel(2)
    bad[0, 0, 1] = np.inf
    write(tmp_path, "a1_s1_t2_skeleton.mat", bad)
    with pytest.raises(BadFile, match="non-finite"):
        FMT.read(tmp_path / "a1_s1_t2_skeleton.mat")
    write(tmp_path, "a1_s1_t1.mat")
    assert FMT.scan(tmp_path) == [tmp_path / "a1_s1_t2_skeleton.mat", tmp_path / "a28_s1_t1_skeleton.mat"]
