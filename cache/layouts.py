"""Skeleton layouts as data: a JSON file declares a skeleton, the registry holds the known ones.

A layout file (docs/layouts.md has the full format and an example):

    {"name": "jhmdb15", "dims": 2,
     "joints": ["neck", "belly", "face", ...],            # in the data's joint order
     "bones": [["neck", "belly"], ...],                    # pairs of joint names
     "parts": {"head": [...], "hands": [...], "torso": [...], "legs": [...]},
     "center": "belly",                                    # or a list of joints, averaged
     "torso": ["neck", "belly"],                           # top, bottom; each a joint or a list
     "across": ["right_shoulder", "left_shoulder"],        # optional: right end, left end (view alignment)
     "root": "neck"}                                       # optional: the bone tree's root

Parents (the bone stream's tree) come from the bones by a breadth-first search from `root`, which
defaults to the (first) center joint; a joint the bones do not reach is its own parent (a zero bone).
The built-ins (blazepose33, coco17, ntu25, kinect_v1, openpose18) are files of this form next to
this module.

This module imports nothing of the project but the error type, so any stage can use it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from posebridge.cache.errors import UserError

PART_NAMES = ("head", "hands", "torso", "legs")  # the order of the part texts (stages/train/text.py)
BUILTIN_DIR = Path(__file__).with_name("layouts")
BUILTIN_NAMES = ("blazepose33", "coco17", "ntu25", "kinect_v1", "openpose18")
# The built-ins a PYSKL file that names no layout is read with, by its joint count (17, 25, 33): the
# conventions pyskl / mmaction2 files and our exports follow. Kinect v1's 20 joints are not among
# them: MSR Action3D has 20 joints in another order, so a count cannot tell which; `posebridge import`
# records "kinect_v1" / "openpose18" in the file instead (cache/pyskl.py).
BY_JOINT_COUNT = ("blazepose33", "coco17", "ntu25")
_REQUIRED = ("name", "dims", "joints", "bones", "parts", "center", "torso")
_OPTIONAL = ("across", "root", "description")


@dataclass(frozen=True)
class Skeleton:
    """One keypoint layout: names, tree, body parts and the joints normalisation needs."""

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]  # for the bone stream; the root is its own parent (a zero bone)
    parts: tuple[tuple[int, ...], ...]  # joints of head, hands, torso, legs (PART_NAMES order)
    centre: tuple[int, ...]  # averaged: the body centre (mid-hip)
    shoulders: tuple[int, ...]  # averaged: top of the torso
    hips: tuple[int, ...]  # averaged: bottom of the torso
    dims: int = 3  # coordinates per joint in the data: 2 (x, y) or 3 (x, y, z)
    bones: tuple[tuple[int, int], ...] = ()  # as declared; () = the parent edges
    root: int = 0  # where the bone tree starts
    # The across axis of the body (right end, left end; each averaged), which view alignment turns
    # onto +x (stages/train/view_align.py); None: the layout names none, its clips are never turned.
    across: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    source: str = field(default="", compare=False)  # the file it came from ("" = built in / a dict)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def __post_init__(self):
        v = len(self.joint_names)
        assert len(self.parents) == v and all(0 <= p < v for p in self.parents), self.name
        assert all(0 <= j < v for group in (*self.parts, self.centre, self.shoulders, self.hips, *(self.across or ()))
                   for j in group)

    def where(self) -> str:
        """How error messages name this layout: its file, else its name."""
        return self.source or f"layout {self.name}"

    def to_dict(self) -> dict:
        """The layout in its file form (JSON-ready); layout_from_dict(to_dict()) == self."""
        names = self.joint_names
        bones = self.bones or tuple((p, c) for c, p in enumerate(self.parents) if p != c)

        def joints(group: tuple[int, ...]):  # one joint as its name, several as a list
            return names[group[0]] if len(group) == 1 else [names[j] for j in group]

        out = {"name": self.name, "dims": self.dims, "joints": list(names),
               "bones": [[names[a], names[b]] for a, b in bones],
               "parts": {p: [names[j] for j in group] for p, group in zip(PART_NAMES, self.parts)},
               "center": joints(self.centre), "torso": [joints(self.shoulders), joints(self.hips)],
               "root": names[self.root]}
        if self.across is not None:
            out["across"] = [joints(end) for end in self.across]
        return out

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical file form: two layouts that read data the same way share it.
        `across` is left out: it changes nothing unless clips are view-aligned, and an aligned data
        set's fingerprint names the joints its axes came from (stages/train/view_align.py), so a
        layout that gains `across` keeps every key made without alignment."""
        form = {k: v for k, v in self.to_dict().items() if k != "across"}
        return hashlib.sha256(json.dumps(form, sort_keys=True).encode()).hexdigest()


# --- validation -------------------------------------------------------------------------------

def _fail(where: str, message: str) -> UserError:
    return UserError(f"{where}: {message}")


def _joint_list(names: tuple[str, ...]) -> str:
    return ", ".join(names)


def _index(value, field_name: str, index: dict[str, int], where: str) -> int:
    if not isinstance(value, str):
        raise _fail(where, f"{field_name} is {value!r}, not a joint name")
    if value not in index:
        raise _fail(where, f"{field_name} names {value!r}, not a joint (joints: {_joint_list(tuple(index))})")
    return index[value]


def _group(value, field_name: str, index: dict[str, int], where: str) -> tuple[int, ...]:
    """A joint name or a non-empty list of them (averaged)."""
    if isinstance(value, list):
        if not value:
            raise _fail(where, f"{field_name} is an empty list; name at least one joint")
        return tuple(_index(v, f"{field_name}[{i}]", index, where) for i, v in enumerate(value))
    return (_index(value, field_name, index, where),)


def _bfs_parents(num_joints: int, bones: tuple[tuple[int, int], ...], root: int) -> tuple[int, ...]:
    """Parent of each joint in the breadth-first tree from `root` (neighbours in joint order, so the
    tree does not depend on how the bones are listed); unreached joints are their own parents."""
    neighbours: list[set[int]] = [set() for _ in range(num_joints)]
    for a, b in bones:
        neighbours[a].add(b)
        neighbours[b].add(a)
    parents = list(range(num_joints))
    reached, queue = {root}, deque([root])
    while queue:
        joint = queue.popleft()
        for nxt in sorted(neighbours[joint]):
            if nxt not in reached:
                reached.add(nxt)
                parents[nxt] = joint
                queue.append(nxt)
    return tuple(parents)


def layout_from_dict(data, source: str = "") -> Skeleton:
    """A Skeleton from a layout's dict (a file's content, or Skeleton.to_dict() kept in a dataset or
    checkpoint), validated: every contradiction is a one-line UserError naming `source` and the field.
    Not registered: load_layout() does that."""
    where = source or "layout"
    if not isinstance(data, dict):
        raise _fail(where, f"a layout is a JSON object with {', '.join(_REQUIRED)}; got {type(data).__name__}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise _fail(where, f"missing field {missing[0]!r} (a layout needs {', '.join(_REQUIRED)})")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise _fail(where, f"unknown field {unknown[0]!r} (fields: {', '.join(_REQUIRED + _OPTIONAL)})")
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        raise _fail(where, f"name is {name!r}; give the layout a non-empty name")
    dims = data["dims"]
    if isinstance(dims, bool) or dims not in (2, 3):
        raise _fail(where, f"dims is {dims!r}; use 2 (x, y) or 3 (x, y, z)")

    joints = data["joints"]
    if not isinstance(joints, list) or not joints:
        raise _fail(where, "joints must be a non-empty list of joint names, in the data's order")
    index: dict[str, int] = {}
    for i, joint in enumerate(joints):
        if not isinstance(joint, str) or not joint:
            raise _fail(where, f"joints[{i}] is {joint!r}, not a joint name")
        if joint in index:
            raise _fail(where, f"joints[{i}] repeats {joint!r} (first at joints[{index[joint]}]); joint names must be unique")
        index[joint] = i
    names = tuple(joints)

    if not isinstance(data["bones"], list):
        raise _fail(where, "bones must be a list of [joint, joint] pairs")
    bones = []
    for i, bone in enumerate(data["bones"]):
        if not isinstance(bone, list) or len(bone) != 2:
            raise _fail(where, f"bones[{i}] is {bone!r}; a bone is a pair of joint names")
        a, b = (_index(j, f"bones[{i}]", index, where) for j in bone)
        if a == b:
            raise _fail(where, f"bones[{i}] joins {names[a]!r} to itself")
        bones.append((a, b))

    parts = data["parts"]
    if not isinstance(parts, dict) or set(parts) != set(PART_NAMES):
        got = sorted(parts) if isinstance(parts, dict) else type(parts).__name__
        raise _fail(where, f"parts must have exactly the keys {', '.join(PART_NAMES)} (got {got})")
    groups = []
    for part in PART_NAMES:
        joints_of = parts[part]
        if not isinstance(joints_of, list) or not joints_of:
            raise _fail(where, f"parts.{part} must be a non-empty list of joint names (its joints are pooled)")
        group = tuple(_index(j, f"parts.{part}[{i}]", index, where) for i, j in enumerate(joints_of))
        if len(set(group)) != len(group):
            raise _fail(where, f"parts.{part} names a joint twice")
        groups.append(group)

    centre = _group(data["center"], "center", index, where)
    torso = data["torso"]
    if not isinstance(torso, list) or len(torso) != 2:
        raise _fail(where, f"torso is {torso!r}; give two entries, top and bottom of the torso "
                           f"(each a joint or a list of joints, averaged)")
    shoulders, hips = (_group(t, f"torso[{i}]", index, where) for i, t in enumerate(torso))
    across = _across(data["across"], index, where) if "across" in data else None
    root = _index(data["root"], "root", index, where) if "root" in data else centre[0]
    return Skeleton(name=name, joint_names=names, parents=_bfs_parents(len(names), tuple(bones), root),
                    parts=tuple(groups), centre=centre, shoulders=shoulders, hips=hips, dims=int(dims),
                    bones=tuple(bones), root=root, across=across, source=source)


def _across(value, index: dict[str, int], where: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The optional `across` field: [right end, left end], each a joint or a list averaged."""
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(where, f"across is {value!r}; give two entries, the body's right end then its left end "
                           f"(e.g. [\"right_shoulder\", \"left_shoulder\"]; each a joint or a list of joints, averaged)")
    right, left = (_group(v, f"across[{i}]", index, where) for i, v in enumerate(value))
    if set(right) == set(left):
        raise _fail(where, f"across names the same joints at both ends ({value!r}); the across axis runs from "
                           f"the left end to the right end, so give two different ones")
    return right, left


# --- registry ---------------------------------------------------------------------------------

REGISTRY: dict[str, Skeleton] = {}


def register(skel: Skeleton) -> Skeleton:
    """Add a layout under its name; the registered one if that name holds the same layout already.
    The same name with other content is an error: a name must mean one layout in a process."""
    known = REGISTRY.get(skel.name)
    if known is None:
        REGISTRY[skel.name] = skel
        return skel
    if known != skel:
        raise UserError(f"{skel.where()}: layout name {skel.name!r} is taken by another layout "
                        f"({known.where()}); give this one another name")
    return known


def read_layout_file(path: Path) -> Skeleton:
    """A layout file, validated (not registered)."""
    if not path.is_file():
        raise UserError(f"layout file {path} does not exist; give a .json layout file or a known layout "
                        f"name ({', '.join(REGISTRY)})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot be read ({err})") from None
    return layout_from_dict(data, str(path))


def _is_file_spec(spec: str | Path) -> bool:
    text = str(spec)
    return isinstance(spec, Path) or text.endswith(".json") or "/" in text or "\\" in text


def load_layout(spec: str | Path, base_dir: Path | None = None) -> Skeleton:
    """A registered layout by name ("coco17"), or a .json layout file (a relative path is resolved
    against base_dir, default the working directory); a file's layout is registered under its name."""
    if isinstance(spec, Skeleton):
        return spec
    if not _is_file_spec(spec):
        return skeleton(str(spec))
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return register(read_layout_file(path))


def skeleton(name: str) -> Skeleton:
    """The registered layout of this name (a built-in, or a file load_layout() has read)."""
    if name not in REGISTRY:
        raise UserError(f"unknown skeleton {name!r}; known: {', '.join(REGISTRY)} (or give a layout .json file)")
    return REGISTRY[name]


def builtin_layouts() -> tuple[Skeleton, ...]:
    return tuple(REGISTRY[n] for n in BUILTIN_NAMES)


def layouts_by_joint_count() -> tuple[Skeleton, ...]:
    """The built-ins a joint count alone may pick (BY_JOINT_COUNT; one per count)."""
    return tuple(REGISTRY[n] for n in BY_JOINT_COUNT)


def check_joint_count(skel: Skeleton, num_joints: int, source: str) -> None:
    """The data's joint count V must be the layout's."""
    if num_joints != skel.num_joints:
        raise UserError(f"{source} has {num_joints} joints per skeleton, but {skel.where()} declares "
                        f"{skel.num_joints}; use the layout of this data")


for _name in BUILTIN_NAMES:  # shipped as package data (pyproject: posebridge.pipeline's layouts/*.json)
    register(dataclasses.replace(read_layout_file(BUILTIN_DIR / f"{_name}.json"), source=""))
