"""Dataset adapters on small folders built in tmp_path (file contents do not matter to a scan)."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from posebridge.stages.datasets import (DATASET_KINDS, dataset_kind, is_train_sample,
                                          ntu_benchmark_splits, parse_ntu_name, scan)
from posebridge.cache.errors import UserError


def _touch(root: Path, *relative: str) -> None:
    for rel in relative:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"synthetic, not a video")


def test_folder_lists_media_files_and_skips_hidden_and_non_media(tmp_path):
    _touch(tmp_path, "b.avi", "sub/a.MP4", "sub/still.png", ".hidden.mp4", ".cache/x.mp4", "notes.txt")
    specs = scan(tmp_path, "mydata")
    assert [s.clip_id for s in specs] == ["b.avi", "sub/a.MP4", "sub/still.png"]
    assert all(s.label == -1 and s.path == tmp_path / s.clip_id for s in specs)


def test_class_folders_label_by_sorted_folder_name(tmp_path):
    _touch(tmp_path, "walk/1.mp4", "run/2.mp4", "run/deep/3.mkv", "jump/4.webm")
    assert dataset_kind("mydata", tmp_path) == "classfolders"
    specs = scan(tmp_path, "mydata")
    assert [(s.clip_id, s.label, s.label_name) for s in specs] == [
        ("jump/4.webm", 0, "jump"), ("run/2.mp4", 1, "run"), ("run/deep/3.mkv", 1, "run"), ("walk/1.mp4", 2, "walk")]


NTU_FILES = ("S001C002P003R002A013_rgb.avi", "S001C001P001R001A001_rgb.avi", "S018C003P045R001A061_rgb.avi")


def test_ntu_names_give_labels_and_meta(tmp_path):
    _touch(tmp_path, *NTU_FILES)
    assert dataset_kind("my_videos", tmp_path) == "ntu120"  # auto-detected: every name matches
    specs = scan(tmp_path, "ntu120_all")
    assert [s.label for s in specs] == [0, 12, 60]
    assert specs[0].label_name == "drink water"
    assert specs[1].meta == {"setup": 1, "camera": 2, "subject": 3, "replication": 2, "action": 13}


def test_ntu60_rejects_actions_beyond_60(tmp_path):
    _touch(tmp_path, *NTU_FILES)
    with pytest.raises(UserError, match="S018C003P045R001A061_rgb.avi has action A061"):
        scan(tmp_path, "ntu60")


def test_a_foreign_name_in_an_ntu_dataset_is_an_error(tmp_path):
    _touch(tmp_path, NTU_FILES[0], "holiday.mp4")
    assert dataset_kind("mine", tmp_path) == "folder"
    with pytest.raises(UserError, match=r"holiday.mp4 is not an NTU RGB\+D file name; expected SsssCccc"):
        scan(tmp_path, "ntu60_xsub")


def test_ntu_benchmark_splits_follow_the_official_protocols():
    ids = ["S001C001P001R001A001_rgb.avi",  # train subject, val camera, odd setup
           "S002C002P003R001A002_rgb.avi",  # val subject, train camera, even setup
           "S020C003P045R002A100_rgb.avi"]  # NTU-120 train subject, train camera, even setup
    splits = ntu_benchmark_splits([{"clip_id": f"videos/{i}"} for i in ids])
    assert set(splits) == {"xsub_train", "xsub_val", "xset_train", "xset_val"}  # inferred ntu120
    assert splits["xsub_train"] == ["videos/" + ids[0], "videos/" + ids[2]]
    assert splits["xset_train"] == ["videos/" + ids[1], "videos/" + ids[2]]
    ntu60 = ntu_benchmark_splits([{"clip_id": i} for i in ids[:2]])
    assert ntu60 == {"xsub_train": [ids[0]], "xsub_val": [ids[1]], "xview_train": [ids[1]], "xview_val": [ids[0]]}


def test_is_train_sample_per_benchmark():
    meta = parse_ntu_name("S007C003P038R002A050_rgb.avi")
    assert is_train_sample(meta, "xsub") and is_train_sample(meta, "xview") and not is_train_sample(meta, "xset")
    assert not is_train_sample(parse_ntu_name("S007C001P040R002A050.mp4"), "xsub")
    with pytest.raises(UserError, match="unknown NTU benchmark"):
        is_train_sample(meta, "xsetup")


def test_kinetics_class_folders_with_downloader_spellings(tmp_path):
    _touch(tmp_path, "air_drumming/abcdefghijk_000010_000020.mp4", "abseiling/x.mp4",
           "passing_American_football_(in_game)/y.mp4")
    specs = scan(tmp_path, "kinetics400")
    assert [(s.label, s.label_name) for s in specs] == [
        (0, "abseiling"), (1, "air drumming"), (208, "passing American football (in game)")]
    assert specs[1].meta == {"youtube_id": "abcdefghijk", "time_start": 10, "time_end": 20}


def test_kinetics_folder_that_is_not_a_class(tmp_path):
    _touch(tmp_path, "abseiling/x.mp4", "cooking pasta badly/y.mp4")
    with pytest.raises(UserError, match="cooking pasta badly is not a Kinetics-400 class"):
        scan(tmp_path, "kinetics")


def _kinetics_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kinetics_val.csv"
    path.write_text(text)
    return path


def test_kinetics_csv_maps_rows_to_files_and_reports_missing(tmp_path, caplog):
    videos = tmp_path / "videos"
    _touch(videos, "val/--07WQ2iBlw_000001_000011.mp4", "val/-0NuDd7ozEM.mkv")
    csv_path = _kinetics_csv(tmp_path, "label,youtube_id,time_start,time_end,split\n"
                                       "javelin throw,--07WQ2iBlw,1,11,val\n"
                                       "zumba,-0NuDd7ozEM,40,50,val\n"
                                       "yoga,-0aaaaaaaaa,3,13,val\n")
    with caplog.at_level(logging.WARNING):
        specs = scan(videos, "kinetics400_val", annotations=csv_path)
    assert [(s.clip_id, s.label, s.meta["time_start"], s.meta["split"]) for s in specs] == [
        ("val/--07WQ2iBlw_000001_000011.mp4", 166, 1, "val"), ("val/-0NuDd7ozEM.mkv", 399, 40, "val")]
    assert "1 of 3 rows have no video" in caplog.text and "-0aaaaaaaaa_000003_000013" in caplog.text


def test_kinetics_csv_in_the_other_column_order(tmp_path):
    _touch(tmp_path / "v", "abcdefghijk_000005_000015.mp4")
    csv_path = _kinetics_csv(tmp_path, "youtube_id,time_start,time_end,label\nabcdefghijk,5,15,yoga\n")
    [spec] = scan(tmp_path / "v", "kinetics", annotations=csv_path)
    assert (spec.label_name, spec.meta["split"]) == ("yoga", None)


@pytest.mark.parametrize("text, where", [
    ("youtube_id,time_start,label\nabcdefghijk,5,yoga\n", ":1: header lacks time_end"),
    ("label,youtube_id,time_start,time_end\nyoga,abcdefghijk,5,15\nyoga,bbcdefghijk,five,15\n", ":3: could not convert"),
    ("label,youtube_id,time_start,time_end\nnot a class,abcdefghijk,5,15\n", ":2: label 'not a class'"),
])
def test_malformed_kinetics_csv_names_the_line_and_the_header(tmp_path, text, where):
    _touch(tmp_path / "v", "abcdefghijk_000005_000015.mp4")
    with pytest.raises(UserError) as caught:
        scan(tmp_path / "v", "kinetics", annotations=_kinetics_csv(tmp_path, text))
    assert where in str(caught.value) and "expected label,youtube_id,time_start,time_end" in str(caught.value)


def test_unknown_kind_is_one_line_listing_the_kinds(tmp_path):
    _touch(tmp_path, "a.mp4")
    with pytest.raises(UserError) as caught:
        scan(tmp_path, "mine", kind="ucf101")
    message = str(caught.value)
    assert "\n" not in message and all(kind in message for kind in DATASET_KINDS)


def test_missing_empty_and_unsupported_inputs(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        scan(tmp_path / "nope")
    _touch(tmp_path, "readme.txt")
    with pytest.raises(UserError, match="no video or image files"):
        scan(tmp_path)
    with pytest.raises(UserError, match="PKU-MMD videos are untrimmed"):
        scan(tmp_path, "pkummd_v1")
    _touch(tmp_path, "a.mp4")
    with pytest.raises(UserError, match="applies to Kinetics only"):
        scan(tmp_path, "mine", annotations=tmp_path / "readme.txt")
