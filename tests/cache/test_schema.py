"""cache/schema.py: the skeleton registry, the typed layout, and reading schema-1 stores as M = 1."""
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from posebridge.cache import schema
from posebridge.cache.store import CueStore
from posebridge.cache.writer import ShardWriter
from posebridge.cache.errors import UserError

# A real schema-1 store: one demo clip (cam01.mp4, 6 frames) extracted by the code of commit c27fe0e
# (schema 1, before this change), and what that code's read_clip returned for it.
SCHEMA1 = Path(__file__).parent / "fixtures" / "schema1_store"


@pytest.mark.parametrize("skel", list(schema.SKELETONS.values()), ids=lambda s: s.name)
def test_every_skeleton_is_a_tree_with_four_disjoint_parts(skel):
    v = skel.num_joints
    root = [j for j, p in enumerate(skel.parents) if p == j]
    assert len(root) == 1  # one root; every other joint reaches it
    for j in range(v):
        seen = set()
        while skel.parents[j] != j:
            assert j not in seen
            seen.add(j)
            j = skel.parents[j]
    joints = [j for part in skel.parts for j in part]
    assert len(skel.parts) == 4 and len(joints) == len(set(joints))


def test_blazepose_to_coco_keeps_the_named_joints():
    assert [schema.BLAZEPOSE33.joint_names[i] for i in schema.BLAZEPOSE_TO_COCO17] == list(schema.COCO17.joint_names)
    assert schema.BLAZEPOSE_TO_COCO17 == (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


def test_lookups_by_name_count_and_joint_names():
    assert schema.skeleton("coco17") is schema.COCO17
    assert schema.skeleton_for_joints(25, "x") is schema.NTU25
    assert schema.skeleton_named_by(list(schema.BLAZEPOSE33.joint_names), "x") is schema.BLAZEPOSE33
    with pytest.raises(UserError, match="unknown skeleton"):
        schema.skeleton("mpii16")
    with pytest.raises(UserError, match="18 joints"):
        schema.skeleton_for_joints(18, "file.pkl")
    # built in by name, never by count: 20 joints are Kinect v1's or MSR Action3D's, in other orders
    assert schema.skeleton("kinect_v1").num_joints == 20 and schema.skeleton("openpose18").num_joints == 18
    with pytest.raises(UserError, match=r"20 joints.*kinect_v1 \(20\), openpose18 \(18\)"):
        schema.skeleton_for_joints(20, "file.pkl")
    with pytest.raises(UserError, match="match no registered skeleton"):
        schema.skeleton_named_by(["a", "b"], "store")


def _layout(**changes) -> schema.CacheLayout:
    base = dict(skeleton="blazepose33", joint_names=schema.BLAZEPOSE33.joint_names, cue_joints=schema.BODY13,
                levels=("fpn64", "fpn16"), feature_channels=96, heatmap_patch=3)
    return schema.CacheLayout(**{**base, **changes})


def test_layout_round_trips_through_attrs_and_refuses_what_it_cannot_trust():
    layout = _layout(max_persons=3, heatmap_kind="simcc_outer")
    assert schema.CacheLayout.from_attrs(layout.to_attrs()) == layout
    assert layout.frame_shapes() == {"keypoints": (3, 33, 5), "score": (3,), "features": (3, 13, 96),
                                     "heatmaps": (3, 13, 3, 3)}
    for bad, match in (({"joint_names": schema.COCO17.joint_names}, "do not match"),
                       ({"cue_joints": (40,)}, "cue joints"), ({"heatmap_kind": "softmax"}, "heatmap_kind"),
                       ({"feature_dtype": "int8"}, "feature_dtype"), ({"max_persons": 0}, "max_persons")):
        with pytest.raises(UserError, match=match):
            _layout(**bad)
    attrs = layout.to_attrs()
    del attrs["skeleton"]
    with pytest.raises(UserError, match="lacks"):
        schema.CacheLayout.from_attrs(attrs, source="s")


def test_a_schema1_store_is_read_as_one_person(tmp_path):
    path = tmp_path / "old"
    shutil.copytree(SCHEMA1, path)
    store = CueStore.open(path)
    assert store.schema_version == 1
    assert store.layout == dataclasses.replace(_layout(), max_persons=1)  # skeleton found by its joint names
    reference = np.load(SCHEMA1 / "read_by_schema1_code.npz")
    (record,) = store.clips()
    for arrays in (store.read_clip(record.clip_id), next(store.iter_clips())[1]):
        for name in ("keypoints", "score", "features", "heatmaps"):
            got, old = getattr(arrays, name), reference[name]
            assert got.shape == (old.shape[0], 1, *old.shape[1:]), name  # the person axis, M = 1
            np.testing.assert_array_equal(got[:, 0], old)  # nothing reinterpreted
    with pytest.raises(UserError, match="schema-1 cue cache"):
        ShardWriter(store)  # never mixed with schema-2 parts
