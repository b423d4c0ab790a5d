"""Kinetics-skeleton (ST-GCN's release): per-video JSON and label JSON files, written here in its layout."""
from __future__ import annotations

import json

import numpy as np
import pytest

from posebridge.stages.datasets.skeleton_formats import kinetics_skeleton as ks
from posebridge.stages.datasets.skeleton_formats.importer import BadFile, read_files

FMT = ks.FORMAT


def person(tag: float, score: float, missing: tuple[int, ...] = ()) -> dict:
    """A skeleton whose joint j sits at (tag + 0.01 j, tag + 0.02 j) with `score` ((0, 0) and 0 where missing)."""
    pose, sc = [], []
    for j in range(18):
        if j in missing:
            pose += [0.0, 0.0]
            sc.append(0.0)
        else:
            pose += [round(tag + 0.01 * j, 3), round(tag + 0.02 * j, 3)]
            sc.append(score)
    return {"pose": pose, "score": sc}


def video(frames: dict[int, list[dict]], label="abseiling", label_index=0) -> dict:
    return {"data": [{"frame_index": f, "skeleton": people} for f, people in frames.items()],
            "label": label, "label_index": label_index}


def xy(tag):
    """person(tag)'s joints in pixels of the 340x256 frame (the file holds x / 340, y / 256)."""
    j = np.arange(18)
    return np.stack([(tag + 0.01 * j) * 340, (tag + 0.02 * j) * 256], 1)


def read_all(src):
    annotations, skipped = read_files(FMT, src, FMT.scan(src), {})
    return annotations, {name: why for name, why, _ in skipped}


@pytest.fixture
def kin(tmp_path):
    root = tmp_path / "kinetics-skeleton"
    train, val = root / "kinetics_train", root / "kinetics_val"
    train.mkdir(parents=True)
    val.mkdir()
    # frame 1: three people with summed scores 0.3, 0.9, 0.6 (x 18): the best two are B, then C
    # frame 2: one person; frame 3: nobody (absent from data); frame 4: A beats B
    frames = {1: [person(0.1, 0.3), person(0.2, 0.9), person(0.3, 0.6, missing=(16, 17))],
              2: [person(0.4, 0.5, missing=(3,))],
              4: [person(0.5, 0.8), person(0.6, 0.7)]}
    (train / "vidA.json").write_text(json.dumps(video(frames, "abseiling", 0)))
    (val / "vidB.json").write_text(json.dumps(video({1: [person(0.1, 0.5)], 2: [person(0.2, 0.5)]}, "zumba", 399)))
    (root / "kinetics_train_label.json").write_text(json.dumps(
        {"vidA": {"has_skeleton": True, "label": "abseiling", "label_index": 0}}))
    (root / "kinetics_val_label.json").write_text(json.dumps(
        {"vidB": {"has_skeleton": True, "label": "zumba", "label_index": 399}}))
    return root


def test_the_best_two_people_by_summed_score_per_frame(kin):
    (ann,) = FMT.read(kin / "kinetics_train" / "vidA.json")
    assert ann.frame_dir == "vidA" and ann.label == 0 and ann.img_shape == (256, 340)
    assert ann.keypoint.shape == (2, 4, 18, 2) and ann.keypoint_score.shape == (2, 4, 18)
    assert ann.keypoint.dtype == ann.keypoint_score.dtype == np.float32
    kp, sc = ann.keypoint, ann.keypoint_score
    # frame_index 1 -> t = 0: B first, C second, A (lowest sum) dropped
    np.testing.assert_allclose(kp[0, 0], xy(0.2), atol=1e-3)
    np.testing.assert_allclose(kp[1, 0, :16], xy(0.3)[:16], atol=1e-3)
    assert not kp[1, 0, 16:].any() and not sc[1, 0, 16:].any()  # undetected joints: (0, 0), score 0
    np.testing.assert_allclose(sc[:, 0, 0], [0.9, 0.6])
    # frame 2: one person, the second slot empty; its missing joint 3 is zero
    np.testing.assert_allclose(kp[0, 1, 4:], xy(0.4)[4:], atol=1e-3)
    assert not kp[0, 1, 3].any() and not kp[1, 1].any() and not sc[1, 1].any()
    # frame 3 is absent from data: zeros; frame 4: A (0.8) before B (0.7)
    assert not kp[:, 2].any() and not sc[:, 2].any()
    np.testing.assert_allclose(kp[:, 3], np.stack([xy(0.5), xy(0.6)]), atol=1e-3)
    assert ann.meta == {"video_id": "vidA", "side": "train", "label_name": "abseiling", "frame_index_base": 1}
    assert ann.to_dict()["img_shape"] == (256, 340)


def test_only_the_first_five_listed_count_and_one_person_videos_have_m_1(tmp_path):
    val = tmp_path / "kinetics_val"  # no label file beside it: nothing to check the videos against
    val.mkdir()
    # as ST-GCN's feeder (num_person_in = 5): a 6th listed skeleton is ignored even if it scores best
    people = [person(0.1 * k, 0.1 * (k + 1)) for k in range(5)] + [person(0.9, 1.0)]
    (val / "six.json").write_text(json.dumps(video({1: people})))
    (ann,) = FMT.read(val / "six.json")
    np.testing.assert_allclose(ann.keypoint_score[:, 0, 0], [0.5, 0.4])
    (val / "one.json").write_text(json.dumps(video({1: [person(0.1, 0.5)], 3: [person(0.2, 0.5)]})))
    (ann,) = FMT.read(val / "one.json")
    assert ann.keypoint.shape == (1, 3, 18, 2) and ann.meta["side"] == "val"


def test_zero_based_frame_index_and_ties_keep_the_files_order(tmp_path):
    (tmp_path / "kinetics_train").mkdir()
    (tmp_path / "kinetics_train" / "z.json").write_text(
        json.dumps(video({0: [person(0.1, 0.5), person(0.2, 0.5)], 1: []})))
    (ann,) = FMT.read(tmp_path / "kinetics_train" / "z.json")
    assert ann.meta["frame_index_base"] == 0 and ann.keypoint.shape == (2, 2, 18, 2)
    np.testing.assert_allclose(ann.keypoint[:, 0, 0, 0], [34, 68], atol=1e-3)


def test_sides_from_the_folders_and_class_names_from_the_files(kin):
    annotations, skipped = read_all(kin)
    assert skipped == {}
    assert FMT.sides(annotations) == {"train": ["vidA"], "val": ["vidB"]}
    assert ks.class_names(annotations) == {0: "abseiling", 399: "zumba"}
    assert FMT.layout == "openpose18"


def test_bad_files_are_one_line_each_and_the_rest_is_read(kin):
    train = kin / "kinetics_train"
    labels = json.loads((kin / "kinetics_train_label.json").read_text())
    good = (train / "vidA.json").read_text()
    files = {"empty": "", "cut": good[:200],
             "ucla": json.dumps({"file_name": "a01_s01_e00_v01", "skeletons": [[[0, 0, 0]] * 20], "label": 1}),
             "noskel": json.dumps(video({1: []})), "zeros": json.dumps(video({1: [person(0.0, 0.0)]})),
             "flagged": good, "relabelled": good, "unlisted": good,
             "short": json.dumps(video({1: [{"pose": [0.1] * 30, "score": [1.0] * 18}]})),
             "unlabelled": json.dumps(video({1: [person(0.1, 0.5)]}, label="unknown", label_index=-1))}
    for name, text in files.items():
        (train / f"{name}.json").write_text(text)
        if name != "unlisted":
            labels[name] = {"has_skeleton": name != "flagged", "label": "abseiling",
                            "label_index": 5 if name == "relabelled" else 0}
    (kin / "kinetics_train_label.json").write_text(json.dumps(labels))
    (kin / "stray.json").write_text(good)  # outside kinetics_train/ and kinetics_val/
    annotations, why = read_all(kin)
    assert [a.frame_dir for a in annotations] == ["vidA", "vidB"] and len(why) == len(files) + 1
    assert why["kinetics_train/empty.json"] == "empty"
    assert why["kinetics_train/cut.json"] == "truncated JSON (ends before the document closes)"
    assert why["kinetics_train/ucla.json"] == 'not a Kinetics-skeleton video file: no "data" list'
    assert why["kinetics_train/noskel.json"] == why["kinetics_train/zeros.json"] == "no skeleton in any frame"
    assert why["kinetics_train/flagged.json"] == "kinetics_train_label.json marks it has_skeleton false"
    assert why["kinetics_train/relabelled.json"] == "label_index 0 contradicts kinetics_train_label.json (5)"
    assert why["kinetics_train/unlisted.json"] == "not listed in kinetics_train_label.json"
    assert why["kinetics_train/short.json"] == "frame_index 1: a skeleton is not pose [36] + score [18] numbers"
    assert why["kinetics_train/unlabelled.json"] == "no label (label_index -1)"
    assert why["stray.json"] == "not in kinetics_train or kinetics_val/, so its side is unknown"


def test_scan_skips_label_files_and_duplicate_frames_are_bad(kin):
    assert [p.name for p in FMT.scan(kin)] == ["vidA.json", "vidB.json"]
    (kin / "kinetics_val_label.json").unlink()
    (kin / "kinetics_val" / "d.json").write_text(json.dumps({"data": [{"frame_index": 1, "skeleton": []}] * 2,
                                                             "label": "x", "label_index": 1}))
    with pytest.raises(BadFile, match="frame_index 1 appears twice"):
        FMT.read(kin / "kinetics_val" / "d.json")
