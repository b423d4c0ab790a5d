"""Splits as data: split files (parsing, every validation error, partitions, sides), the published
and synthetic splits through the same SplitSpec path, and `train --pyskl --split-file` end to end."""
from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from posebridge.cache.errors import UserError
from posebridge.stages.splits import registry
from posebridge.stages.splits.registry import SPLIT_NAMES, get_split, get_split_spec
from posebridge.stages.splits.spec import draw_partitions
from posebridge.stages.splits.split_file import read_split_file
from posebridge.stages.train.data import CueDataset, load_pyskl, partition
from posebridge.stages.train.text import class_texts

CLASSES = ["walk", "run", "jump", "sit", "wave", "clap"]


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def split_obj(**changes) -> dict:
    obj = {"name": "myset_4_2", "skeleton": "coco17",
           "classes": [{"name": "walk", "descriptions": ["a person walks forward", "steady steps"]}, *CLASSES[1:]],
           "train": "xsub_train", "test": "xsub_val", "unseen": ["jump", "clap"]}
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not None}


def write_pyskl(path: Path, clips_per_class: int = 3, classes: int = len(CLASSES)) -> Path:
    """A small COCO-17 2D PYSKL pickle: each class moves one wrist at its own speed; half the clips
    of each class in xsub_train, half in xsub_val."""
    rng = np.random.default_rng(0)
    annotations, train, val = [], [], []
    for label in range(classes):
        for i in range(2 * clips_per_class):
            t = 20
            keypoint = rng.normal(300, 5, size=(1, t, 17, 2)).astype(np.float32)
            keypoint[0, :, 5:7, 1] -= 60   # shoulders above hips
            keypoint[0, :, 9, 1] += 40 * np.sin(np.linspace(0, (label + 1) * np.pi, t))
            clip = f"S{label:02d}C{i:02d}"
            annotations.append({"frame_dir": clip, "total_frames": t, "img_shape": (480, 640), "label": label,
                                "keypoint": keypoint, "keypoint_score": np.full((1, t, 17), 0.9, np.float32)})
            (train if i < clips_per_class else val).append(clip)
    with open(path, "wb") as f:
        pickle.dump({"split": {"xsub_train": train, "xsub_val": val}, "annotations": annotations}, f)
    return path


# --- parsing ---------------------------------------------------------------------------------------

def test_a_split_file_reads_into_one_split_per_partition(tmp_path):
    spec = read_split_file(write_json(tmp_path / "s.json", split_obj()))
    (split,) = spec.splits()
    assert split.name == "myset_4_2" and split.class_names == tuple(CLASSES)
    assert split.unseen == (2, 5) and split.seen == (0, 1, 3, 4)
    assert split.protocol == "sides" and split.skeleton == "coco17" and str(tmp_path) in split.source
    assert split.train_side.values == ("xsub_train",) and split.test_side.values == ("xsub_val",)
    texts = class_texts(split)
    assert [t.name for t in texts] == CLASSES
    assert texts[0].description == "a person walks forward steady steps" and texts[1].description is None
    assert texts[0].templates[0] == "a person walk."


def _error(tmp_path, obj) -> str:
    path = tmp_path / "bad.json"
    if isinstance(obj, str):
        path.write_text(obj)
    else:
        write_json(path, obj)
    with pytest.raises(UserError) as err:
        read_split_file(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.mark.parametrize("changes, field, fix", [
    ({"unseen": ["jump", "fly"]}, "'unseen'", "not in 'classes'"),
    ({"unseen": None, "partitions": [["jump"], ["swim"]]}, "'partitions[1]'", "not in 'classes'"),
    ({"classes": ["walk", "run", "walk"]}, "'classes'", "more than once"),
    ({"unseen": None, "random_partitions": {"unseen": 6, "count": 2, "seed": 0}}, "'random_partitions.unseen'",
     "lower it"),
    ({"unseen": None, "random_partitions": {"unseen": 7, "count": 2}}, "'random_partitions.unseen'", "lower it"),
    ({"unseen": CLASSES}, "'unseen'", "leave at least one class seen"),
    ({"unseen": None}, "'unseen'", "exactly one of"),
    ({"partitions": [["jump"]]}, "'partitions'", "exactly one of"),
    ({"unseen": None, "partitions": [["jump"], ["jump"]]}, "'partitions'", "once"),
    ({"unseen": None, "random_partitions": {"unseen": 5, "count": 7}}, "'random_partitions.count'", "at most 6"),
    ({"train": None}, "'train'", "needs"),
    ({"test": {"subjects": ["a"]}}, "'test.subjects'", "integer"),
    ({"test": {"clips": "missing.txt"}}, "'test.clips'", "does not exist"),
    ({"name": "my set/1"}, "'name'", "letters"),
    ({"sides": "x"}, "'sides'", "use only"),
    ({"classes": [{"name": "walk", "text": "x"}, "run"]}, "'classes[0].text'", "use only"),
])
def test_every_validation_error_is_one_line_naming_file_and_field(tmp_path, changes, field, fix):
    message = _error(tmp_path, split_obj(**changes))
    assert f"field {field}" in message and fix in message


def test_invalid_json_names_the_file(tmp_path):
    assert "not valid JSON" in _error(tmp_path, "{nope")


# --- partitions ------------------------------------------------------------------------------------

def test_explicit_partitions_each_get_a_run_name(tmp_path):
    spec = read_split_file(write_json(tmp_path / "s.json", split_obj(
        unseen=None, partitions=[["jump", "clap"], ["walk", "sit"], ["run", "wave"]])))
    splits = spec.splits()
    assert [s.unseen for s in splits] == [(2, 5), (0, 3), (1, 4)]
    assert all(re.fullmatch(r"myset_4_2/p\d-[0-9a-f]{8}", s.name) for s in splits)
    assert [s.name.split("/")[1][:2] for s in splits] == ["p0", "p1", "p2"]
    assert len({s.name for s in splits}) == 3 and {s.family for s in splits} == {"myset_4_2"}


def test_random_partitions_are_reproducible_distinct_and_k_unseen(tmp_path):
    rule = {"unseen": 2, "count": 10, "seed": 7}
    first = read_split_file(write_json(tmp_path / "a.json", split_obj(unseen=None, random_partitions=rule)))
    again = read_split_file(write_json(tmp_path / "b.json", split_obj(unseen=None, random_partitions=rule)))
    other = read_split_file(write_json(tmp_path / "c.json", split_obj(unseen=None, random_partitions={**rule, "seed": 8})))
    assert first.partitions == again.partitions != other.partitions
    assert len(first.partitions) == 10 == len(set(first.partitions))
    assert all(len(p) == 2 and list(p) == sorted(p) for p in first.partitions)
    # the documented drawing: default_rng(seed), sorted choice without replacement, repeats drawn again
    rng, expected = np.random.default_rng(7), []
    while len(expected) < 10:
        draw = tuple(sorted(int(i) for i in rng.choice(6, size=2, replace=False)))
        if draw not in expected:
            expected.append(draw)
    assert list(first.partitions) == expected
    # every partition of 2 out of 4 exists exactly once when all are asked for
    assert sorted(draw_partitions(4, 2, 6, 0, "x")) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


# --- sides -----------------------------------------------------------------------------------------

def _tiny(metas: list[dict], labels: list[int]) -> CueDataset:
    n = len(labels)
    return CueDataset(keypoints=torch.zeros(n, 1, 4, 17, 3), confidence=torch.ones(n, 1, 4, 17), features=None,
                      heatmaps=None, labels=torch.tensor(labels), clip_ids=[f"clip{i}" for i in range(n)],
                      meta=metas, cue_joints=(), source_fingerprint="0" * 64, skeleton="coco17")


def _split(tmp_path, **changes):
    return read_split_file(write_json(tmp_path / "s.json", split_obj(**changes))).split(0)


def test_sides_by_pyskl_split_key(tmp_path):
    ds = load_pyskl(write_pyskl(tmp_path / "d.pkl", clips_per_class=2), num_frames=8)
    parts = partition(ds, _split(tmp_path), val_fraction=0.0)
    is_train = np.array(["xsub_train" in m["pyskl_split"] for m in ds.meta])
    labels = ds.labels.numpy()
    assert is_train[parts["train"]].all() and not is_train[parts["test_gzsl"]].any()
    assert set(labels[parts["train"]]) == {0, 1, 3, 4} and set(labels[parts["test_zsl"]]) == {2, 5}
    assert len(parts["test_gzsl"]) == 12


def test_sides_by_subject_rule(tmp_path):
    ds = _tiny([{"subject": s} for s in (1, 2, 3, 4, 1, 3)], [0, 1, 2, 3, 4, 5])
    parts = partition(ds, _split(tmp_path, train={"subjects": [1, 2]}, test={"subjects": [3, 4]}), val_fraction=0.0)
    assert parts["train"].tolist() == [0, 1, 4] and parts["test_gzsl"].tolist() == [2, 3, 5]
    assert parts["test_zsl"].tolist() == [2, 5]


def test_sides_by_clip_list_inline_and_from_a_file(tmp_path):
    ds = _tiny([{} for _ in range(6)], [0, 1, 2, 3, 4, 5])
    (tmp_path / "test_ids.txt").write_text("clip2\nclip3\n\nclip5\n")
    split = _split(tmp_path, train={"clips": ["clip0", "clip1", "clip4"]}, test={"clips": "test_ids.txt"})
    parts = partition(ds, split, val_fraction=0.0)
    assert parts["train"].tolist() == [0, 1, 4] and parts["test_gzsl"].tolist() == [2, 3, 5]


def test_sides_by_meta_split_values(tmp_path):
    ds = _tiny([{"split": "train"}, {"split": "train"}, {"split": "val"}, {"split": "val"}], [0, 1, 2, 5])
    parts = partition(ds, _split(tmp_path, train="train", test=["val"]), val_fraction=0.0)
    assert parts["train"].tolist() == [0, 1] and parts["test_zsl"].tolist() == [2, 3]


@pytest.mark.parametrize("changes, metas, labels, expected", [
    ({"test": "xsub_vall"}, [{"pyskl_split": ["xsub_train"]}, {"pyskl_split": ["xsub_val"]}], [0, 2],
     "field 'test' names side 'xsub_vall', which the data does not have (it has: xsub_train, xsub_val)"),
    ({"train": {"subjects": [1]}}, [{"split": "xsub_train"}, {"split": "xsub_val"}], [0, 2],
     "field 'train' selects subjects, but the data carries no subject ids"),
    ({"test": {"clips": ["nope"]}}, [{"split": "xsub_train"}, {"split": "xsub_val"}], [0, 2],
     "field 'test.clips' matches none"),
    ({}, [{"split": "xsub_train"}, {"split": "xsub_val"}], [0, 6],
     "the data has label 6, but field 'classes' lists 6 classes"),
])
def test_data_mismatches_are_one_line_naming_the_file_and_field(tmp_path, changes, metas, labels, expected):
    split = _split(tmp_path, **changes)
    with pytest.raises(UserError) as err:
        partition(_tiny(metas, labels), split)
    assert expected in str(err.value) and str(tmp_path / "s.json") in str(err.value) and "\n" not in str(err.value)


def test_sides_that_share_clips_give_zsl_and_say_why_there_is_no_gzsl(tmp_path):
    """The "_allclips" reading: every clip on both sides. Seen classes' clips train (validation held
    out of them), unseen classes' clips test; GZSL would score training clips, so it is not offered."""
    metas = [{"pyskl_split": ["xview_train" if i % 2 else "xview_val"]} for i in range(24)]
    labels = [i % 6 for i in range(24)]
    both = ["xview_train", "xview_val"]
    parts = partition(_tiny(metas, labels), _split(tmp_path, train=both, test=both), val_fraction=0.25)
    labels = np.array(labels)
    assert set(labels[parts["train"]]) | set(labels[parts["val"]]) == {0, 1, 3, 4}  # seen: jump, clap unseen
    assert not np.intersect1d(parts["train"], parts["val"]).size and len(parts["val"]) == 4
    assert set(labels[parts["test_zsl"]]) == {2, 5} and len(parts["test_zsl"]) == 8
    assert np.array_equal(parts["test_gzsl"], parts["test_zsl"])
    assert "GZSL not available" in parts.gzsl_unavailable and "share 24 clips" in parts.gzsl_unavailable
    assert "ZSL-only" in parts.gzsl_unavailable
    apart = partition(_tiny(metas, labels.tolist()), _split(tmp_path, train="xview_train", test="xview_val"))
    assert apart.gzsl_unavailable is None


# --- published and synthetic splits through the same path -----------------------------------------

# sha256[:16] of json [dataset, class_names, seen, unseen] per published split, as the registry gave
# them before splits became data (commit 955f638); kinetics200 with --guess-kinetics200 then, its
# default class list now (the same first 200 Kinetics-400 classes).
BEFORE = {
    "ntu60_55_5": "47f6c14cf9dee1ae", "ntu60_48_12": "bcd672efef92e29f", "ntu60_40_20": "15c5261f9d584c5e",
    "ntu60_30_30": "1ffe4049956c860d", "ntu120_110_10": "5bf5e8e6661f860e", "ntu120_96_24": "6f106ef65a5d8a37",
    "ntu120_80_40": "533b27d1d51abd06", "ntu120_60_60": "eac8600cbd5c5a93", "kinetics200_180_20": "0efbad7d9b17ed25",
    "kinetics200_160_40": "99d0e310fb61bfed", "kinetics200_140_60": "855919e12d06a418",
    "kinetics200_120_80": "a930bdef4c189cd6", "kinetics400_360_40": "0833c3c3cc817327",
    "kinetics400_320_80": "a5ed83c0f18b40a4", "kinetics400_300_100": "9ef7ea5e494e039d",
    "kinetics400_280_120": "0427173a11bd1262", "pkummd_46_5": "b95a912575009e0d", "pkummd_39_12": "db75180d2d2489cc",
    "ntu60_55_5_smie_split1": "6715a9b89fd8cdc1", "ntu60_55_5_smie_split2": "ec784cd2160b4028",
    "ntu60_55_5_smie_split3": "919f9feb63679d07", "ntu120_110_10_smie_split4": "16f316c8641345ae",
    "ntu120_110_10_smie_split5": "8678b8a0e4cb92d0", "ntu120_110_10_smie_split6": "5d283298b13503fa",
    "pkummd_46_5_smie_split8": "c652762699479971", "pkummd_46_5_smie_split9": "b7056818c0b7b57c",
    "pkummd_46_5_star_ablation3": "1a720f8b5a265de2", "synthetic_zsl": "669899f0f9a4ec3c",
    # added with the PURLS supplement's small sets (the all-clips twin of a cell shares its classes)
    "nwucla_8_2": "95d27c9e8b5204a5", "nwucla_8_2_allclips": "95d27c9e8b5204a5", "nwucla_5_5": "21b77388487336b1",
    "nwucla_5_5_allclips": "21b77388487336b1", "utdmhad_22_5": "7730a4a34b41eb26",
    "utdmhad_22_5_allclips": "7730a4a34b41eb26", "utdmhad_18_9": "f6ce37115698471e",
    "utdmhad_18_9_allclips": "f6ce37115698471e", "utdmhad_14_13": "d8902949803a8881",
    "utdmhad_14_13_allclips": "d8902949803a8881", "uwa3d_24_6": "d761e3e0afc38d8e", "uwa3d_20_10": "0cce18a932780d60",
    "uwa3d_15_15": "74d3e2f29d9c1f7c",
}


@pytest.mark.parametrize("name", SPLIT_NAMES)
def test_published_splits_resolve_as_before_through_a_split_spec(name):
    spec = get_split_spec(name)
    split = spec.split(0)
    assert spec.splits() == [split] and split.name == name == split.family
    blob = json.dumps([split.dataset, list(split.class_names), list(split.seen), list(split.unseen)])
    assert hashlib.sha256(blob.encode()).hexdigest()[:16] == BEFORE[name]
    assert split == get_split(name)


def test_synthetic_split_is_an_ordinary_split_file(tmp_path):
    from posebridge.stages.splits.data_files import data_path
    from posebridge.stages.extract import synthetic

    shipped = json.loads(data_path("split_files/synthetic_zsl.json").read_text())
    assert shipped == synthetic.synthetic_split_file()  # regenerate with synthetic.write_split_file()
    from_file = read_split_file(synthetic.write_split_file(tmp_path / "split.json")).split(0)
    registry = get_split("synthetic_zsl")
    assert (from_file.class_names, from_file.seen, from_file.unseen) == (
        registry.class_names, registry.seen, registry.unseen)
    texts = class_texts(registry)
    assert texts == class_texts(from_file) and all(t.parts and t.temporal and t.description for t in texts)


# --- end to end ------------------------------------------------------------------------------------

def test_train_split_file_from_the_command_line(tmp_path, capsys):
    from posebridge.pipeline.cli import main

    data = write_pyskl(tmp_path / "data.pkl", clips_per_class=2)
    split_file = write_json(tmp_path / "split.json", split_obj(
        unseen=None, partitions=[["jump", "clap"], ["walk", "sit"]]))
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as done:
        main(["train", "--pyskl", str(data), "--split-file", str(split_file), "--cues", "none", "--runs-dir",
              str(runs), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1", "--batch-size", "8",
              "--skeleton-encoder", "gcn", "--gzsl-calibration", "none", "--device", "cpu"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    metrics = sorted(runs.glob("myset_4_2/p*-*/minilm-cues-none-*/seed-0/metrics.json"))
    assert len(metrics) == 2 and {m.parts[-4][:2] for m in metrics} == {"p0", "p1"}
    row = re.search(r"^\| myset_4_2 \| none \| 2 x 1 \| (.+) \|$", out, re.M)
    assert row and row[1].count("±") == 4  # ZSL top-1 and GZSL S / U / H: the test side holds seen classes
    (summary,) = runs.glob("myset_4_2/summary-*.md")
    assert row[0] in summary.read_text()
    top1 = [json.loads(m.read_text())["zsl"]["top1"] for m in metrics]
    # the printed cell rounds to 0.1: compare within half a unit, not by string (a std computed another
    # way may differ in the last bit and round the other way)
    mean, std = (float(x) for x in row[1].split(" | ")[0].split(" ± "))
    assert abs(mean - 100 * np.mean(top1)) <= 0.05 + 1e-9 and abs(std - 100 * np.std(top1, ddof=1)) <= 0.05 + 1e-9


def test_train_split_file_api_returns_the_summary_numbers(tmp_path):
    from posebridge.stages.train.config import TrainConfig
    from posebridge.pipeline.run import evaluate_run, train_split_file

    data = write_pyskl(tmp_path / "data.pkl", clips_per_class=2)
    split_file = write_json(tmp_path / "split.json", split_obj())
    base = TrainConfig(split="myset_4_2", cues="none", epochs=1, batch_size=8, skeleton_encoder="gcn",
                       gzsl_calibration="none", device="cpu", dim=32, joint_dim=16)
    done = train_split_file(split_file, base=base, pyskl=data, runs_dir=tmp_path / "runs",
                            cache_dir=tmp_path / "cache")
    assert done.summary.partitions == 1 and done.summary.seeds == 1 and done.summary.zsl_top1.n == 1
    (result,) = done.results
    assert result.split == "myset_4_2" and result.run_dirs[0].parent.parent == tmp_path / "runs" / "myset_4_2"
    again = evaluate_run(result.run_dirs[0], pyskl=data, split_file=split_file, cache_dir=tmp_path / "cache")
    assert again["zsl"]["top1"] == pytest.approx(done.summary.zsl_top1.mean)


@pytest.mark.parametrize("args", [[], ["--split", "ntu60_55_5", "--split-file", "x.json"]])
def test_train_needs_exactly_one_of_split_and_split_file(args, capsys):
    from posebridge.pipeline.cli import main

    with pytest.raises(SystemExit) as done:
        main(["train", *args])
    assert done.value.code == 1 and "either --split NAME or --split-file FILE.json" in capsys.readouterr().err


def test_splits_command_shows_a_split_files_partitions(tmp_path, capsys):
    from posebridge.pipeline.cli import main

    path = write_json(tmp_path / "s.json", split_obj(unseen=None, random_partitions={"unseen": 2, "count": 3}))
    with pytest.raises(SystemExit) as done:
        main(["splits", "--split-file", str(path)])
    lines = capsys.readouterr().out.splitlines()
    assert done.value.code == 0 and len(lines) == 3
    assert all(re.match(r"myset_4_2/p\d-[0-9a-f]{8}: unseen \(2\): \d+ \w+; \d+ \w+$", line) for line in lines)


def test_sides_by_a_feature_folders_own_files(tmp_path):
    # load_feature_folder tags each row with the file it came from: meta["side"] train / val / test
    sides = ["train", "train", "val", "test", "test", "test"]
    ds = _tiny([{"side": s} for s in sides], [0, 1, 0, 2, 5, 3])
    parts = partition(ds, _split(tmp_path, train="train", test="test"))
    assert parts["train"].tolist() == [0, 1] and parts["val"].tolist() == [2]
    assert parts["test_zsl"].tolist() == [3, 4] and parts["test_gzsl"].tolist() == [3, 4, 5]


def test_skeleton_field_takes_a_layout_file_relative_to_the_split_file(tmp_path):
    import posebridge.cache.layouts as layouts
    from posebridge.stages.train.skeletons import check_split_skeleton, split_layout

    layout = json.loads((Path(layouts.__file__).parent / "layouts" / "coco17.json").read_text())
    layout["name"] = "my17"
    (tmp_path / "layouts").mkdir()
    write_json(tmp_path / "layouts" / "my17.json", layout)
    split = _split(tmp_path, skeleton="layouts/my17.json")
    assert split.skeleton == str(tmp_path / "layouts" / "my17.json")
    assert split_layout(split.skeleton, split.source).name == "my17"
    with pytest.raises(UserError, match=r"field 'skeleton' is .*my17.json', but the data's skeleton is 'coco17'"):
        check_split_skeleton(_tiny([{}], [0]), split)
    check_split_skeleton(_tiny([{}], [0]), _split(tmp_path, skeleton="coco17"))
    with pytest.raises(UserError, match="field 'skeleton'"):
        split_layout(_split(tmp_path, skeleton="coco18").skeleton, "s.json")


@pytest.mark.parametrize("name", registry.SHIPPED_SPLIT_FILES)
def test_a_shipped_split_file_is_named_as_its_file_and_reads_as_a_users(name, tmp_path):
    from posebridge.stages.splits.data_files import data_path

    path = data_path(f"{registry.SPLIT_FILES_DIR}/{name}.json")
    assert json.loads(path.read_text())["name"] == name
    copy = tmp_path / path.name
    copy.write_text(path.read_text())
    spec = read_split_file(copy)
    assert (spec.classes, spec.partitions, spec.get_data) == (
        get_split_spec(name).classes, get_split_spec(name).partitions, get_split_spec(name).get_data)
