"""Skeleton layouts as data (cache/layouts.py): built-ins from JSON, user layout files, their
validation, and every consumer reading a layout that is not a built-in."""
from __future__ import annotations

import json
import pickle
import uuid

import numpy as np
import pytest
import torch

from posebridge.cache import layouts
from posebridge.cache.errors import UserError
from posebridge.cache.layouts import Skeleton, layout_from_dict, load_layout, skeleton

# The Python constants cache/schema.py held before layouts became data, copied here on purpose:
# the JSON built-ins must give exactly these, so no normalisation, bone or part pool changes.
OLD = {
    "blazepose33": dict(
        joint_names=(
            "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
            "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
            "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
            "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
            "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
            "right_heel", "left_foot_index", "right_foot_index"),
        parents=(0, 0, 1, 2, 0, 4, 5, 3, 6, 0, 0, 0, 0, 11, 12, 13, 14, 15, 16, 15, 16, 15, 16,
                 11, 12, 23, 24, 25, 26, 27, 28, 27, 28),
        parts=(tuple(range(0, 11)), (13, 14, 15, 16, 17, 18, 19, 20, 21, 22), (11, 12, 23, 24), tuple(range(25, 33))),
        centre=(23, 24), shoulders=(11, 12), hips=(23, 24)),
    "coco17": dict(
        joint_names=(
            "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
            "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
            "right_knee", "left_ankle", "right_ankle"),
        parents=(0, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
        parts=((0, 1, 2, 3, 4), (7, 8, 9, 10), (5, 6, 11, 12), (13, 14, 15, 16)),
        centre=(11, 12), shoulders=(5, 6), hips=(11, 12)),
    "ntu25": dict(
        joint_names=(
            "spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
            "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle",
            "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot", "spine_shoulder",
            "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb"),
        parents=(0, 0, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1, 7, 7, 11, 11),
        parts=((2, 3), (5, 6, 7, 9, 10, 11, 21, 22, 23, 24), (0, 1, 4, 8, 12, 16, 20), (13, 14, 15, 17, 18, 19)),
        centre=(0,), shoulders=(20,), hips=(0,)),
}

JHMDB_JOINTS = ["neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip", "left_hip", "right_elbow",
                "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist", "right_ankle", "left_ankle"]


def jhmdb_layout(name: str) -> dict:
    """A 15-joint 2D layout in JHMDB's order (puppet joints), written as a user would."""
    return {
        "name": name, "dims": 2, "joints": list(JHMDB_JOINTS),
        "bones": [["neck", "face"], ["neck", "belly"], ["neck", "right_shoulder"], ["neck", "left_shoulder"],
                  ["right_shoulder", "right_elbow"], ["right_elbow", "right_wrist"],
                  ["left_shoulder", "left_elbow"], ["left_elbow", "left_wrist"],
                  ["belly", "right_hip"], ["belly", "left_hip"], ["right_hip", "right_knee"],
                  ["right_knee", "right_ankle"], ["left_hip", "left_knee"], ["left_knee", "left_ankle"]],
        "parts": {"head": ["face"], "hands": ["right_elbow", "left_elbow", "right_wrist", "left_wrist"],
                  "torso": ["neck", "belly", "right_shoulder", "left_shoulder", "right_hip", "left_hip"],
                  "legs": ["right_knee", "left_knee", "right_ankle", "left_ankle"]},
        "center": ["right_hip", "left_hip"], "torso": ["neck", ["right_hip", "left_hip"]],
    }


def chain20_layout(name: str) -> dict:
    """A 20-joint 3D layout whose bones form a chain, one joint left out of the bones."""
    joints = [f"j{i}" for i in range(20)]
    return {
        "name": name, "dims": 3, "joints": joints,
        "bones": [[joints[i], joints[i + 1]] for i in range(18)],  # j19 is on no bone
        "parts": {"head": joints[:3], "hands": joints[3:9], "torso": joints[9:13], "legs": joints[13:]},
        "center": "j10", "torso": [["j3", "j4"], "j12"],
    }


def unique(prefix: str) -> str:
    """Layout names are registered process-wide: each test gets names of its own."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write(tmp_path, data: dict, filename: str = "my_layout.json"):
    path = tmp_path / filename
    path.write_text(json.dumps(data))
    return path


# --- built-ins --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(OLD))
def test_builtins_from_json_equal_the_old_constants(name):
    skel = skeleton(name)
    old = OLD[name]
    assert (skel.joint_names, skel.parents, skel.parts) == (old["joint_names"], old["parents"], old["parts"])
    assert (skel.centre, skel.shoulders, skel.hips) == (old["centre"], old["shoulders"], old["hips"])
    assert load_layout(name) is skel
    assert (layouts.BUILTIN_DIR / f"{name}.json").is_file()  # shipped as package data


def test_builtins_are_what_schema_exports():
    from posebridge.cache import schema

    assert schema.COCO17 is skeleton("coco17") and schema.skeleton is layouts.skeleton
    assert schema.BLAZEPOSE33.dims == 3 and schema.COCO17.dims == 2 and schema.NTU25.dims == 3


def test_builtin_dict_round_trips_and_fingerprint_is_stable():
    coco = skeleton("coco17")
    again = layout_from_dict(json.loads(json.dumps(coco.to_dict())))
    assert again == coco and again.fingerprint == coco.fingerprint
    assert coco.fingerprint != skeleton("ntu25").fingerprint and len(coco.fingerprint) == 64


@pytest.mark.parametrize("name", layouts.BUILTIN_NAMES)
def test_builtins_name_their_shoulders_as_the_across_axis(name):
    """Every built-in has shoulders; `across` (right end, left end) is what view alignment turns onto
    +x. It is in the file form (checkpoints carry it) but not in the fingerprint, so the layouts'
    keys are what they were before the field existed (tests/stages/train/test_view_align.py pins them)."""
    skel = skeleton(name)
    names = skel.joint_names
    assert skel.across == ((names.index("right_shoulder"),), (names.index("left_shoulder"),))
    assert skel.to_dict()["across"] == ["right_shoulder", "left_shoulder"]
    without = layout_from_dict({k: v for k, v in skel.to_dict().items() if k != "across"})
    assert without.across is None and "across" not in without.to_dict()
    assert without.fingerprint == skel.fingerprint and without != skel


def test_across_ends_may_be_joint_lists_and_round_trip(tmp_path):
    data = {**jhmdb_layout(unique("wide")), "across": [["right_shoulder", "right_hip"], ["left_shoulder", "left_hip"]]}
    skel = load_layout(write(tmp_path, data))
    index = {n: i for i, n in enumerate(JHMDB_JOINTS)}
    assert skel.across == ((index["right_shoulder"], index["right_hip"]), (index["left_shoulder"], index["left_hip"]))
    assert layout_from_dict(skel.to_dict()) == skel and skel.to_dict()["across"] == data["across"]


# CTR-GCN graph/ucla.py and AimCLR net/utils/graph.py layout 'nw-ucla' (1-based): the Kinect SDK v1 tree.
UCLA_EDGES_1BASED = [(1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10), (12, 11),
                     (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19)]
# ST-GCN net/utils/graph.py layout 'openpose' (0-based): hips hang from the shoulders.
OPENPOSE_EDGES = [(4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2), (5, 1),
                  (2, 1), (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)]


def _edges(skel: Skeleton) -> set[frozenset]:
    return {frozenset(bone) for bone in skel.bones}


def test_kinect_v1_is_the_sdk_order_and_graph():
    skel = skeleton("kinect_v1")
    assert skel.dims == 3 and skel.num_joints == 20
    assert _edges(skel) == {frozenset((a - 1, b - 1)) for a, b in UCLA_EDGES_1BASED}
    assert [skel.joint_names[i] for i in (0, 3, 6, 10, 14, 18)] == [
        "hip_center", "head", "left_wrist", "right_wrist", "left_ankle", "right_ankle"]
    assert set(skel.parents) <= set(range(20)) and skel.parents.count(0) == 4  # a tree from hip_center


def test_openpose18_is_st_gcns_graph():
    skel = skeleton("openpose18")
    assert skel.dims == 2 and skel.num_joints == 18
    assert _edges(skel) == {frozenset(e) for e in OPENPOSE_EDGES}
    assert skel.joint_names[:3] == ("nose", "neck", "right_shoulder") and skel.joint_names[17] == "left_ear"
    assert skel.joint_names[skel.root] == "neck"


# --- user layout files ------------------------------------------------------------------------

def test_user_layout_file_round_trips_and_registers(tmp_path):
    name = unique("jhmdb15")
    path = write(tmp_path, jhmdb_layout(name))
    skel = load_layout(path.name, base_dir=tmp_path)  # relative to base_dir
    assert isinstance(skel, Skeleton) and skel.name == name and skel.dims == 2 and skel.num_joints == 15
    assert skel.source == str(path)
    index = {n: i for i, n in enumerate(JHMDB_JOINTS)}
    assert skel.centre == (index["right_hip"], index["left_hip"])
    assert skel.shoulders == (index["neck"],) and skel.hips == (index["right_hip"], index["left_hip"])
    assert skel.parts[0] == (index["face"],)
    # BFS from the centre's first joint (right_hip): the tree reaches every joint
    assert skel.parents[index["right_hip"]] == index["right_hip"]
    assert skel.parents[index["belly"]] == index["right_hip"] and skel.parents[index["neck"]] == index["belly"]
    assert skel.parents[index["left_wrist"]] == index["left_elbow"]
    assert skeleton(name) is skel and load_layout(path) is skel  # registered; loading again is the same
    assert layout_from_dict(skel.to_dict()) == skel


def test_3d_layout_unreached_joint_is_its_own_parent(tmp_path):
    name = unique("chain20")
    skel = load_layout(write(tmp_path, chain20_layout(name), "chain.json"))
    assert skel.dims == 3 and skel.num_joints == 20 and skel.root == 10
    assert skel.parents[10] == 10 and skel.parents[11] == 10 and skel.parents[9] == 10 and skel.parents[0] == 1
    assert skel.parents[19] == 19  # on no bone: a zero bone
    assert skel.shoulders == (3, 4) and skel.hips == (12,)


def test_root_field_and_bone_order_do_not_change_the_tree():
    data = jhmdb_layout(unique("rooted"))
    data["root"] = "neck"
    skel = layout_from_dict(data)
    shuffled = layout_from_dict({**data, "bones": [list(reversed(b)) for b in reversed(data["bones"])]})
    assert skel.parents == shuffled.parents and skel.parents[0] == 0 and skel.parents[1] == 0


def test_same_name_other_content_is_an_error(tmp_path):
    name = unique("twice")
    load_layout(write(tmp_path, jhmdb_layout(name), "a.json"))
    other = jhmdb_layout(name)
    other["center"] = "belly"
    with pytest.raises(UserError, match="taken by another layout"):
        load_layout(write(tmp_path, other, "b.json"))
    with pytest.raises(UserError, match="taken by another layout"):
        load_layout(write(tmp_path, {**jhmdb_layout("x"), **chain20_layout("coco17")}, "c.json"))


def _bad(data: dict, **change) -> dict:
    out = json.loads(json.dumps(data))
    for key, value in change.items():
        if value is None:
            del out[key]
        else:
            out[key] = value
    return out


def _contradictions(name: str):
    base = jhmdb_layout(name)
    bones = json.loads(json.dumps(base["bones"]))
    bones[3] = ["neck", "left_wirst"]
    parts = json.loads(json.dumps(base["parts"]))
    parts["hands"] = ["left_elbow", "left_thumb"]
    return [
        (_bad(base, bones=bones), r"bones\[3\] names 'left_wirst', not a joint \(joints: neck, belly"),
        (_bad(base, parts=parts), r"parts\.hands\[1\] names 'left_thumb', not a joint"),
        (_bad(base, parts={k: v for k, v in base["parts"].items() if k != "legs"}), r"parts must have exactly the keys"),
        (_bad(base, center="pelvis"), r"center names 'pelvis', not a joint"),
        (_bad(base, center=["left_hip", "hip"]), r"center\[1\] names 'hip', not a joint"),
        (_bad(base, torso=["neck", ["left_hip", "hipp"]]), r"torso\[1\]\[1\] names 'hipp', not a joint"),
        (_bad(base, torso=["neck"]), r"torso is \['neck'\]; give two entries"),
        (_bad(base, joints=base["joints"] + ["neck"]), r"joints\[15\] repeats 'neck' \(first at joints\[0\]\)"),
        (_bad(base, dims=4), r"dims is 4; use 2 \(x, y\) or 3"),
        (_bad(base, bones=None), r"missing field 'bones'"),
        (_bad(base, centre="belly"), r"unknown field 'centre'"),
        (_bad(base, name=""), r"name is ''"),
        (_bad(base, across="right_shoulder"), r"across is 'right_shoulder'; give two entries, the body's right end "
                                              r"then its left end"),
        (_bad(base, across=["right_shoulder", "left_shoulder", "neck"]), r"across is \[.*\]; give two entries"),
        (_bad(base, across=["right_shoulder", ["left_shoulder", "left_shouldr"]]),
         r"across\[1\]\[1\] names 'left_shouldr', not a joint \(joints: neck, belly"),
        (_bad(base, across=[[], "left_shoulder"]), r"across\[0\] is an empty list; name at least one joint"),
        (_bad(base, across=["neck", ["neck"]]), r"across names the same joints at both ends"),
    ]


@pytest.mark.parametrize("case", range(17))
def test_each_contradiction_is_one_line_naming_file_and_field(tmp_path, case):
    data, pattern = _contradictions(unique("bad"))[case]
    path = write(tmp_path, data)
    with pytest.raises(UserError, match=pattern) as err:
        load_layout(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_broken_json_and_missing_file_are_one_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",')
    with pytest.raises(UserError, match="broken.json: not valid JSON"):
        load_layout(path)
    with pytest.raises(UserError, match="does not exist"):
        load_layout(tmp_path / "nope.json")
    with pytest.raises(UserError, match="unknown skeleton 'nope'"):
        load_layout("nope")


def test_data_joint_count_must_match_the_layout():
    skel = layout_from_dict(jhmdb_layout(unique("count")), "my_layout.json")
    with pytest.raises(UserError, match="x.pkl has 17 joints per skeleton, but my_layout.json declares 15"):
        layouts.check_joint_count(skel, 17, "x.pkl")


# --- PYSKL pickles of any layout --------------------------------------------------------------

def _pyskl(path, annotations, split=None):
    with open(path, "wb") as f:
        pickle.dump({"split": split or {"train": [a["frame_dir"] for a in annotations]}, "annotations": annotations}, f)
    return path


def _clip(name: str, t: int, v: int = 15, c: int = 2, persons: int = 1, seed: int = 0, score: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    ann = {"frame_dir": name, "total_frames": t, "img_shape": (240, 320), "label": 0,
           "keypoint": rng.uniform(20, 200, size=(persons, t, v, c)).astype(np.float32)}
    if score:
        ann["keypoint_score"] = np.full((persons, t, v), 0.9, np.float32)
    return ann


def test_load_pyskl_with_a_15_joint_layout_file(tmp_path):
    from posebridge.stages.train.data import load_pyskl, normalise_skeleton

    skel = load_layout(write(tmp_path, jhmdb_layout(unique("jhmdb15"))))
    path = _pyskl(tmp_path / "jhmdb.pkl", [_clip("a", 20), _clip("b", 33, seed=1)])
    ds = load_pyskl(path, num_frames=16, layout=skel)
    assert ds.keypoints.shape == (2, 1, 16, 15, 3) and ds.skeleton == skel.name
    assert ds.skeleton_layout == skel.to_dict()
    ann = _clip("a", 20)
    xyz = np.concatenate([ann["keypoint"][0], np.zeros((20, 15, 1), np.float32)], -1)
    np.testing.assert_allclose(ds.keypoints[0, 0, 0], normalise_skeleton(xyz, ann["keypoint_score"][0], skel)[0],
                               atol=1e-5)
    # the layout is part of the data's identity: another layout, other tensors
    chain = {**jhmdb_layout(unique("other15")), "center": "belly"}
    assert load_pyskl(path, 16, layout_from_dict(chain)).source_fingerprint != ds.source_fingerprint


def test_load_pyskl_20_joint_3d_and_without_layout(tmp_path):
    from posebridge.stages.train.data import load_pyskl

    path = _pyskl(tmp_path / "kinect20.pkl", [_clip("a", 12, v=20, c=3, score=False)])
    with pytest.raises(UserError, match="20 joints per skeleton.*layout file"):
        load_pyskl(path, 8)  # no built-in has 20 joints
    ds = load_pyskl(path, 8, layout=layout_from_dict(chain20_layout(unique("chain20"))))
    assert ds.keypoints.shape == (1, 1, 8, 20, 3) and torch.all(ds.confidence == 1)
    assert ds.keypoints[..., 2].abs().sum() > 0  # 3D layout: the third value is z


def test_a_pickle_that_records_its_layout_needs_no_layout(tmp_path):
    """`posebridge import` records kinect_v1 / openpose18, so 20 and 18 joints resolve without --layout."""
    from posebridge.cache.pyskl import write_pyskl
    from posebridge.stages.train.data import load_pyskl

    kinect = tmp_path / "kinect.pkl"
    write_pyskl(kinect, [_clip("a", 12, v=20, c=3, score=False)], {"train": ["a"]}, layout="kinect_v1")
    ds = load_pyskl(kinect, 8)
    assert ds.skeleton == "kinect_v1" and ds.keypoints.shape == (1, 1, 8, 20, 3)
    assert ds.keypoints[..., 2].abs().sum() > 0  # read as 3D
    openpose = tmp_path / "openpose.pkl"
    write_pyskl(openpose, [_clip("b", 12, v=18)], {"train": ["b"]}, layout="openpose18")
    assert load_pyskl(openpose, 8).skeleton == "openpose18"
    # a given layout may regroup parts or move the centre, never rename or reorder the joints
    regrouped = {**skeleton("kinect_v1").to_dict(), "name": unique("kinect_parts"), "center": "spine"}
    assert load_pyskl(kinect, 8, layout=layout_from_dict(regrouped)).skeleton == regrouped["name"]
    with pytest.raises(UserError, match="holds kinect_v1 keypoints, but .* lists other joints or another order"):
        load_pyskl(kinect, 8, layout=layout_from_dict(chain20_layout(unique("chain20"))))


def test_a_recorded_layout_must_be_known_and_fit(tmp_path):
    from posebridge.cache.pyskl import write_pyskl
    from posebridge.stages.train.data import load_pyskl

    with pytest.raises(UserError, match="has 17 joints per skeleton, but layout kinect_v1 declares 20"):
        write_pyskl(tmp_path / "x.pkl", [_clip("a", 4, v=17)], {}, layout="kinect_v1")
    assert not (tmp_path / "x.pkl").exists()
    path = tmp_path / "elsewhere.pkl"
    with open(path, "wb") as f:
        pickle.dump({"split": {}, "annotations": [_clip("a", 4, v=15)], "layout": "mpii15"}, f)
    with pytest.raises(UserError, match="says its keypoints follow layout 'mpii15', which is not a built-in"):
        load_pyskl(path, 8)
    skel = layout_from_dict(jhmdb_layout(unique("jhmdb15")))
    assert load_pyskl(path, 8, layout=skel).skeleton == skel.name  # given explicitly: used as it is


def test_layout_joint_count_mismatch_names_file_clip_and_layout(tmp_path):
    from posebridge.stages.train.data import load_pyskl

    skel = load_layout(write(tmp_path, jhmdb_layout(unique("jhmdb15"))))
    path = _pyskl(tmp_path / "coco.pkl", [_clip("clip_7", 10, v=17)])
    with pytest.raises(UserError) as err:
        load_pyskl(path, 8, layout=skel)
    message = str(err.value)
    assert "coco.pkl" in message and "clip_7" in message and "my_layout.json" in message and "\n" not in message


def test_2d_layout_reads_a_third_value_as_confidence(tmp_path):
    from posebridge.stages.train.data import load_pyskl

    ann = _clip("a", 10, c=3, score=False)
    ann["keypoint"][..., 2] = 0.25
    ds = load_pyskl(_pyskl(tmp_path / "xyc.pkl", [ann]), 8, layout=layout_from_dict(jhmdb_layout(unique("j"))))
    np.testing.assert_allclose(ds.confidence, 0.25)
    assert torch.all(ds.keypoints[..., 2] == 0)


def test_short_empty_and_nan_clips(tmp_path, capsys):
    from posebridge.stages.train.data import load_pyskl

    one, two = _clip("one_frame", 1), _clip("two_frames", 2, seed=3)
    no_frames = _clip("no_frames", 0)
    zeros = _clip("all_zero", 5)
    zeros["keypoint"][:] = 0
    nans = _clip("all_nan", 5)
    nans["keypoint"][:] = np.nan
    holes = _clip("nan_frames", 12, seed=4)
    holes["keypoint"][0, 3:6] = np.nan  # whole frames missing
    holes["keypoint"][0, 8, 2] = np.nan  # one joint missing
    holes["keypoint_score"][0, 9, 4] = np.nan  # one score missing
    path = _pyskl(tmp_path / "mixed.pkl", [one, no_frames, two, zeros, nans, holes])
    ds = load_pyskl(path, num_frames=16, layout=layout_from_dict(jhmdb_layout(unique("j"))))
    out = capsys.readouterr().out
    assert "skipped 3 empty clips of mixed.pkl: no_frames, all_zero, all_nan" in out
    assert ds.clip_ids == ["one_frame", "two_frames", "nan_frames"]
    assert torch.isfinite(ds.keypoints).all() and torch.isfinite(ds.confidence).all()
    assert torch.allclose(ds.keypoints[0, 0, 0], ds.keypoints[0, 0, -1])  # one frame, held
    assert ds.keypoints[0].abs().sum() > 0 and ds.keypoints[1].abs().sum() > 0
    # NaN joints are missing (confidence 0), not poison: the clip's other joints keep their scores
    holes_conf = ds.confidence[2, 0]
    assert holes_conf.min() == 0 and holes_conf.max() == pytest.approx(0.9)

    with pytest.raises(UserError, match="all 2 clips are empty"):
        load_pyskl(_pyskl(tmp_path / "empty.pkl", [no_frames, zeros]), 8, layout=layout_from_dict(jhmdb_layout("j")))


def test_train_cli_layout_needs_pyskl():
    from posebridge.pipeline.run import pyskl_layout

    with pytest.raises(UserError, match="--layout coco17 names the skeleton of a --pyskl pickle"):
        pyskl_layout("coco17", None)
    assert pyskl_layout(None, None) is None


# --- consumers --------------------------------------------------------------------------------

def test_small_gcn_and_shift_gcn_run_on_a_15_joint_layout():
    from posebridge.stages.train.encoders.shift_gcn import ShiftGCN
    from posebridge.stages.train.encoders.small_gcn import SmallGCN

    skel = layout_from_dict(jhmdb_layout(unique("j")))
    kp, conf = torch.randn(2, 16, 15, 3), torch.rand(2, 16, 15)
    assert SmallGCN(skel.parents, width=8, layers=2)(kp, conf).shape == (2, 8, 2, 15)  # T / 2 (pool) / 4
    assert ShiftGCN(num_joints=skel.num_joints, num_classes=3, width=8).features(kp).shape == (2, 32, 4, 15)


def _heads_args(layout: dict, **overrides):
    from posebridge.stages.train.heads import ModelArgs

    return ModelArgs(**{**dict(num_joints=15, cue_joints=0, feature_channels=0, heatmap_size=0, text_dim=16, dim=16,
                               joint_dim=8, layers=0, cues="none", motion_bone=False, skeleton="not_registered",
                               skeleton_layout=layout), **overrides})


def test_heads_pool_the_custom_parts_and_rebuild_from_the_recorded_dict():
    from posebridge.stages.train.heads import ModelArgs, PoseBridge, SkeletonEncoder

    data = jhmdb_layout(unique("unregistered"))  # never registered: the dict alone rebuilds it
    skel = layout_from_dict(data)
    model = PoseBridge(ModelArgs.from_dict(json.loads(json.dumps(_heads_args(skel.to_dict()).to_dict()))))
    pool = model.skeleton.part_pool
    assert pool.shape == (4, 15)
    for p, group in enumerate(skel.parts):
        assert pool[p].nonzero().flatten().tolist() == sorted(group)
    assert torch.equal(model.backbone.parents, torch.tensor(skel.parents))

    enc = SkeletonEncoder(15, 16, 8, layers=0, motion_bone=False, layout=skel.to_dict())
    kp, conf = torch.randn(2, 12, 15, 3), torch.rand(2, 12, 15)
    moved = kp.clone()
    moved[:, :, list(skel.parts[0])] += 5.0  # the head (face) only
    _, a, _ = enc(kp, conf)
    _, b, _ = enc(moved, conf)
    assert not torch.allclose(a[:, 0], b[:, 0]) and torch.allclose(a[:, 1:], b[:, 1:])


def test_heads_refuse_a_layout_of_another_joint_count():
    from posebridge.stages.train.heads import PoseBridge

    with pytest.raises(UserError, match="has 17 joints per skeleton, but .* declares 15"):
        PoseBridge(_heads_args(layout_from_dict(jhmdb_layout(unique("j"))).to_dict(), num_joints=17))


def test_model_args_keep_the_pyskl_layout(tmp_path):
    from posebridge.stages.train.config import TrainConfig
    from posebridge.stages.train.data import load_pyskl
    from posebridge.stages.train.loop import model_args

    skel = load_layout(write(tmp_path, jhmdb_layout(unique("jhmdb15"))))
    ds = load_pyskl(_pyskl(tmp_path / "j.pkl", [_clip("a", 8)]), 16, layout=skel)
    bank = type("Bank", (), {"name": torch.zeros(2, 16)})()  # model_args reads the text width only
    args = model_args(TrainConfig(split="x", cues="none", skeleton_encoder="gcn"), ds, bank)
    assert args.skeleton == skel.name and args.skeleton_layout == skel.to_dict() and args.num_joints == 15


def test_export_pyskl_picks_a_layouts_joints_by_name(tmp_path):
    from posebridge.cache.export import _export_joints
    from posebridge.cache.schema import BLAZEPOSE33, BLAZEPOSE_TO_COCO17

    store = type("Store", (), {"layout": type("L", (), {"joint_names": BLAZEPOSE33.joint_names,
                                                        "skeleton": "blazepose33"})()})()
    assert _export_joints(store, "coco17") == BLAZEPOSE_TO_COCO17
    upper = {"name": unique("upper"), "dims": 2, "joints": ["nose", "left_shoulder", "right_shoulder", "left_hip", "right_hip"],
             "bones": [["nose", "left_shoulder"], ["nose", "right_shoulder"]],
             "parts": {"head": ["nose"], "hands": ["left_shoulder"], "torso": ["right_shoulder"], "legs": ["left_hip"]},
             "center": ["left_hip", "right_hip"], "torso": [["left_shoulder", "right_shoulder"], ["left_hip", "right_hip"]]}
    assert _export_joints(store, str(write(tmp_path, upper, "upper.json"))) == (0, 11, 12, 23, 24)
    with pytest.raises(UserError, match="has no joint 'spine_base'"):
        _export_joints(store, "ntu25")


@pytest.mark.slow  # about a minute on two cores: one tiny training run and its re-evaluation
def test_train_on_a_custom_layout_pickle_and_evaluate_without_the_file(tmp_path):
    """--pyskl with a layout file trains; eval rebuilds the layout from the checkpoint, file gone."""
    from posebridge.stages.train.config import TrainConfig
    from posebridge.pipeline.run import evaluate_run, train_splits

    layout_file = write(tmp_path, jhmdb_layout(unique("jhmdb15")))
    # ntu60_55_5: A001 (0) and A023 (22) are seen, A011 (10) and A012 (11) unseen
    annotations, split = [], {"xsub_train": [], "xsub_val": []}
    for label, side, count in ((0, "xsub_train", 3), (22, "xsub_train", 3), (10, "xsub_val", 2), (11, "xsub_val", 2)):
        for i in range(count):
            ann = _clip(f"c{label}_{i}", 12 + i, seed=label * 10 + i)
            ann["label"] = label
            annotations.append(ann)
            split[side].append(ann["frame_dir"])
    pickle_path = _pyskl(tmp_path / "jhmdb.pkl", annotations, split)
    cfg = TrainConfig(split="ntu60_55_5", cues="none", epochs=1, batch_size=4, gzsl_calibration="none",
                      skeleton_encoder="gcn", num_frames=24)
    result = train_splits(["ntu60_55_5"], base=cfg, pyskl=pickle_path, runs_dir=tmp_path / "runs",
                          layout=str(layout_file))[0]
    run_dir = result.run_dirs[0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["samples"]["test_zsl"] == 4
    recorded = json.loads((run_dir / "fingerprints.json").read_text())["skeleton_layout"]
    assert recorded == load_layout(layout_file).fingerprint  # the run says which layout read its data
    layout_file.unlink()
    assert evaluate_run(run_dir, pyskl=pickle_path)["zsl"] == metrics["zsl"]
