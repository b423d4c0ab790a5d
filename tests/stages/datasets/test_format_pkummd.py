"""PKU-MMD phase 1 skeleton and label text files and split lists, written here in the release's layout."""
from __future__ import annotations

import numpy as np
import pytest

from posebridge.cache.errors import UserError
from posebridge.stages.datasets.skeleton_formats import pkummd
from posebridge.stages.datasets.skeleton_formats.importer import BadFile, read_files

FMT = pkummd.FORMAT


def frame_values(t: int, second: bool) -> np.ndarray:
    """The 150 values of 1-based frame t: person p, joint j, coordinate c hold 1000 p + t + 0.01 j + 0.001 c
    (person 2 all zero unless `second`), so every value says which line it came from."""
    p, j, c = np.meshgrid(np.arange(2), np.arange(25), np.arange(3), indexing="ij")
    v = 1000 * p + t + 0.01 * j + 0.001 * c
    if not second:
        v[1] = 0
    return v.reshape(-1)


def skeleton_text(num_frames: int, second_in: frozenset[int] = frozenset()) -> str:
    # the release starts each line with a space and writes 6 decimals
    return "".join(" " + " ".join(f"{x:.6f}" for x in frame_values(t, t in second_in)) + "\n"
                   for t in range(1, num_frames + 1))


@pytest.fixture
def pku(tmp_path):
    root = tmp_path / "PKUMMD"
    skel, label, split = root / "PKU_Skeleton_Renew", root / "Train_Label_PKU_final", root / "Split"
    for d in (skel, label, split):
        d.mkdir(parents=True)
    (skel / "0002-L.txt").write_text(skeleton_text(30, second_in=frozenset({10, 11, 12})))
    (label / "0002-L.txt").write_text("5,3,7,1\n12,9,15,2\n51,30,30,1\n")
    (skel / "0003-M.txt").write_text(skeleton_text(8))
    (label / "0003-M.txt").write_text("1,1,8,2\n")
    (split / "cross-subject.txt").write_text(  # the release's layout, trailing spaces and all
        "Training videos: \n0002-L, 0002-M, \nValidataion videos: \n0003-M, 0003-R\n")
    (split / "cross-view.txt").write_text("Training videos: \n0003-M, 0002-M\nValidataion videos: \n0002-L\n")
    return root


def read_all(src, **given):
    options = FMT.options(src, given)
    annotations, skipped = read_files(FMT, src, FMT.scan(src), options)
    return annotations, {name: why for name, why, _ in skipped}, options


def test_label_and_split_folders_are_found_from_the_root_or_the_skeleton_folder(pku):
    found = {"label_dir": pku / "Train_Label_PKU_final", "split_dir": pku / "Split"}
    assert FMT.options(pku, {}) == found
    assert FMT.options(pku / "PKU_Skeleton_Renew", {}) == found
    assert [p.relative_to(pku).as_posix() for p in FMT.scan(pku)] == [
        "PKU_Skeleton_Renew/0002-L.txt", "PKU_Skeleton_Renew/0003-M.txt"]  # label files are not skeletons
    assert FMT.scan(pku / "Train_Label_PKU_final") == []


def test_clips_are_cut_at_exact_inclusive_1_based_frames(pku):
    clips = FMT.read(pku / "PKU_Skeleton_Renew" / "0002-L.txt", label_dir=pku / "Train_Label_PKU_final")
    assert [a.frame_dir for a in clips] == ["0002-L_001", "0002-L_002", "0002-L_003"]
    assert [a.label for a in clips] == [4, 11, 50]
    first, second, last = clips
    # label 5,3,7: lines 3..7 inclusive, 5 frames holding the values of frames 3, 4, 5, 6, 7
    assert first.keypoint.shape == (1, 5, 25, 3) and first.keypoint.dtype == np.float32
    np.testing.assert_allclose(first.keypoint[0, :, 0, 0], [3, 4, 5, 6, 7])
    np.testing.assert_allclose(first.keypoint[0, 2, 7], [5.07, 5.071, 5.072], atol=1e-4)
    assert first.meta == {"video": "0002-L", "video_id": 2, "view": "L", "line": 1, "start": 3, "end": 7,
                          "confidence": 1}
    # label 12,9,15: the second person is there in frames 10..12 only: M = 2, zero where absent
    assert second.keypoint.shape == (2, 7, 25, 3)
    np.testing.assert_allclose(second.keypoint[0, :, 0, 0], range(9, 16))
    np.testing.assert_allclose(second.keypoint[1, 1:4, 0, 0], [1010, 1011, 1012])
    assert not second.keypoint[1, [0, 4, 5, 6]].any()
    # start == end == the last line: one frame
    assert last.keypoint.shape == (1, 1, 25, 3) and last.keypoint[0, 0, 0, 0] == 30
    assert FMT.classes[last.label] == "writing" and FMT.classes[0] == "bow" and len(FMT.classes) == 51


def test_sides_come_from_the_official_lists(pku):
    annotations, skipped, options = read_all(pku)
    assert skipped == {} and len(annotations) == 4
    assert FMT.sides(annotations, **options) == {
        "xsub_train": ["0002-L_001", "0002-L_002", "0002-L_003"], "xsub_val": ["0003-M_001"],
        "xview_train": ["0003-M_001"], "xview_val": ["0002-L_001", "0002-L_002", "0002-L_003"]}
    assert pkummd.parse_split_file(pku / "Split" / "cross-subject.txt") == ({"0002-L", "0002-M"}, {"0003-M", "0003-R"})


def test_list_and_folder_mistakes_are_user_errors(pku, tmp_path):
    annotations, _, options = read_all(pku)
    lists = pku / "Split" / "cross-view.txt"
    for text, message in [("Training videos: \n0002-M\nValidataion videos: \n0003-M\n", "lists neither side for 1"),
                          ("Training videos: \n0002-L\nValidataion videos: \n0002-L, 0003-M\n", "on both sides"),
                          ("0002-L, 0003-M\n", "expected a 'Training videos:'"),
                          ("Training videos: \n0002-L\nValidataion videos: \n0003-Q\n", "'0003-Q' is not a video id")]:
        lists.write_text(text)
        with pytest.raises(UserError, match=message):
            FMT.sides(annotations, **options)
    lists.unlink()  # only cross-subject then
    assert set(FMT.sides(annotations, **options)) == {"xsub_train", "xsub_val"}
    lonely = tmp_path / "lonely"
    (lonely / "skeletons").mkdir(parents=True)
    with pytest.raises(UserError, match="no label folder .* give --label-dir DIR"):
        FMT.options(lonely / "skeletons", {})
    with pytest.raises(UserError, match="no Split folder .* give --split-dir DIR"):
        FMT.options(lonely / "skeletons", {"label_dir": pku / "Train_Label_PKU_final"})
    with pytest.raises(UserError, match="--split-dir .* holds neither cross-subject.txt nor cross-view.txt"):
        FMT.options(pku, {"split_dir": lonely})


def test_options_given_elsewhere(pku, tmp_path):
    moved = tmp_path / "labels elsewhere"
    (pku / "Train_Label_PKU_final").rename(moved)
    (pku / "Split").rename(tmp_path / "lists")
    annotations, skipped, options = read_all(pku / "PKU_Skeleton_Renew", label_dir=moved, split_dir=tmp_path / "lists")
    assert skipped == {} and len(annotations) == 4 and options["label_dir"] == moved


def test_bad_files_are_one_line_each_and_the_rest_is_read(pku):
    skel, label = pku / "PKU_Skeleton_Renew", pku / "Train_Label_PKU_final"
    (skel / "0004-L.txt").write_text("")
    (label / "0004-L.txt").write_text("1,1,2,1\n")
    (skel / "0005-L.txt").write_text(skeleton_text(10)[:-300])  # the last line stops short
    (label / "0005-L.txt").write_text("1,1,2,1\n")
    (skel / "0006-L.txt").write_text("2\n1\n72057594037931101 0 1 1 1 1 0 0.1 -0.2 2\n25\n")  # NTU .skeleton text
    (label / "0006-L.txt").write_text("1,1,2,1\n")
    (skel / "0007-L.txt").write_text(skeleton_text(10))
    (label / "0007-L.txt").write_text("1,1,2,1\n3,8,11,1\n")  # past the last frame: a cut skeleton file
    (skel / "0008-L.txt").write_text(skeleton_text(10))  # no label file
    (skel / "0009-L.txt").write_text(skeleton_text(10))
    (label / "0009-L.txt").write_text("52,1,2,1\n")
    (skel / "0010-L.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50))
    (label / "0010-L.txt").write_text("1,1,2,1\n")
    (skel / "0011-L.txt").write_text(skeleton_text(10))
    (label / "0011-L.txt").write_text("1,0,2,1\n")  # frame 0: 0-based labels would shift every clip
    annotations, why, _ = read_all(pku)
    assert len(annotations) == 4 and len(why) == 8
    assert why["PKU_Skeleton_Renew/0004-L.txt"] == "empty"
    assert why["PKU_Skeleton_Renew/0005-L.txt"] == "line 10 has 117 values, not 150 (truncated?)"
    assert why["PKU_Skeleton_Renew/0006-L.txt"] == "line 1 has 1 values, not 150"
    assert why["PKU_Skeleton_Renew/0007-L.txt"] == "label line 2: frames 8-11 are not within the video's 1-10"
    assert why["PKU_Skeleton_Renew/0008-L.txt"] == f"no label file 0008-L.txt in {label}"
    assert why["PKU_Skeleton_Renew/0009-L.txt"] == "label line 1: action 52 is outside 1-51"
    assert why["PKU_Skeleton_Renew/0010-L.txt"] == "not a text file (not ASCII)"
    assert why["PKU_Skeleton_Renew/0011-L.txt"] == "label line 1: frames 0-2 are not within the video's 1-10"
    with pytest.raises(BadFile, match="not a PKU-MMD skeleton file name"):
        FMT.read(pku / "Split" / "cross-view.txt", label_dir=label)
