"""NW-UCLA all_sqe JSON files, written here in the release's format."""
from __future__ import annotations

import json

import numpy as np
import pytest

from posebridge.stages.datasets.skeleton_formats import nwucla
from posebridge.stages.datasets.skeleton_formats.importer import BadFile, read_files

FMT = nwucla.FORMAT


def skeletons(t: int, seed: int) -> list:
    return np.round(np.random.default_rng(seed).normal(size=(t, 20, 3)), 6).tolist()


def write_clip(folder, name, t=5, label=None, seed=0, **extra):
    action = int(name[1:3])
    data = {"file_name": name, "skeletons": skeletons(t, seed),
            "label": label if label is not None else nwucla.ACTIONS.index(action) + 1, **extra}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data))
    return path, data


def read_all(src):
    annotations, skipped = read_files(FMT, src, FMT.scan(src), {})
    return annotations, {name: why for name, why, _ in skipped}


@pytest.fixture
def ucla(tmp_path):
    d = tmp_path / "NW-UCLA" / "all_sqe"
    d.mkdir(parents=True)
    write_clip(d, "a01_s01_e00_v01", t=5, seed=1)
    write_clip(d, "a08_s02_e01_v02", t=3, seed=2)
    write_clip(d, "a12_s10_e04_v03", t=1, seed=3)
    (d / "notes.json").write_text("{}")  # not an NW-UCLA name: not scanned
    return d


def test_shapes_labels_view_and_values(ucla):
    files = FMT.scan(ucla.parent)
    assert [p.name for p in files] == ["a01_s01_e00_v01.json", "a08_s02_e01_v02.json", "a12_s10_e04_v03.json"]
    clips = {a.frame_dir: a for p in files for a in FMT.read(p)}
    one, eight, twelve = clips["a01_s01_e00_v01"], clips["a08_s02_e01_v02"], clips["a12_s10_e04_v03"]
    assert (one.label, eight.label, twelve.label) == (0, 6, 9)  # a08 -> class 6, a12 -> class 9 (no a07, a10)
    assert one.keypoint.shape == (1, 5, 20, 3) and one.keypoint.dtype == np.float32
    assert twelve.keypoint.shape == (1, 1, 20, 3) and one.keypoint_score is None
    np.testing.assert_allclose(one.keypoint[0], np.array(skeletons(5, 1)), atol=1e-6)
    assert eight.meta == {"action": 8, "subject": 2, "take": 1, "view": 2}
    assert eight.to_dict()["meta"]["view"] == 2  # the view is in the clip's record
    assert FMT.classes[eight.label] == "donning" and FMT.layout == "kinect_v1"


def test_cross_view_sides(ucla):
    annotations, skipped = read_all(ucla)
    assert skipped == {}
    assert FMT.sides(annotations) == {"xview_train": ["a01_s01_e00_v01", "a08_s02_e01_v02"],
                                      "xview_val": ["a12_s10_e04_v03"]}


def test_bad_files_are_one_line_each_and_the_rest_is_read(ucla):
    (ucla / "a02_s01_e00_v01.json").write_text("")
    text = (ucla / "a01_s01_e00_v01.json").read_text()
    (ucla / "a03_s01_e00_v01.json").write_text(text[: len(text) // 2])
    kinetics_like = {"data": [{"frame_index": 1, "skeleton": []}], "label": "x", "label_index": 0}
    (ucla / "a04_s01_e00_v01.json").write_text(json.dumps(kinetics_like))  # another format
    (ucla / "a05_s01_e00_v01.json").write_bytes(b"MATLAB 5.0 MAT-file\x00\xff\xfe")  # binary
    write_clip(ucla, "a11_s01_e00_v01", label=11)  # the action number, not class 9 of 1-10
    path, data = write_clip(ucla, "a09_s01_e00_v01")
    data["skeletons"][2] = data["skeletons"][2][:19]
    path.write_text(json.dumps(data))
    annotations, why = read_all(ucla)
    assert len(annotations) == 3 and len(why) == 6
    assert why["a02_s01_e00_v01.json"] == "empty"
    assert why["a03_s01_e00_v01.json"] == "truncated JSON (ends before the document closes)"
    assert why["a04_s01_e00_v01.json"] == 'not NW-UCLA JSON: no "skeletons" field'
    assert why["a05_s01_e00_v01.json"] == "not a text file (not UTF-8)"
    assert why["a11_s01_e00_v01.json"] == "label field 11 contradicts the name (a11 is class 9 of 1-10)"
    assert why["a09_s01_e00_v01.json"] == "frame 2 has 19 joints, not 20"


def test_name_and_value_checks(tmp_path):
    for name, message in [("a07_s01_e00_v01.json", "not an NW-UCLA action"), ("a01_s01_e00_v04.json", "view v04"),
                          ("clip.json", "not an NW-UCLA file name")]:
        (tmp_path / name).write_text(json.dumps({"skeletons": skeletons(2, 0)}))
        with pytest.raises(BadFile, match=message):
            FMT.read(tmp_path / name)
    path, data = write_clip(tmp_path, "a01_s01_e00_v01")
    data["skeletons"][0][0][1] = float("nan")
    path.write_text(json.dumps(data))
    with pytest.raises(BadFile, match="finite"):
        FMT.read(path)
