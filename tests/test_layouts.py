"""Skeleton layouts as data (pipeline/layouts.py): built-ins from JSON, user layout files, their
validation, and every consumer reading a layout that is not a built-in."""
from __future__ import annotations

import json
import pickle
import uuid

import numpy as np
import pytest
import torch

from posebridge.pipeline import layouts
from posebridge.pipeline.errors import UserError
from posebridge.pipeline.layouts import Skeleton, layout_from_dict, load_layout, skeleton

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
    ]


@pytest.mark.parametrize("case", range(12))
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
