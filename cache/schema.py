"""The typed contract between the stages: the skeleton registry and the cache layout (schema v2).

Every producer (embedded and mmpose backends, the synthetic generator) and every consumer (stage-2
loader, heads, exports) looks skeletons up here by NAME, never by joint count, and reads a store's
layout through `CacheLayout.from_attrs`, which refuses a layout it cannot trust.

Schema 2 stores hold M person slots per frame: keypoints [F, M, V, 5], score [F, M], features
[F, M, Vc, C], heatmaps [F, M, Vc, P, P]. Schema 1 stores (no person axis) are read as M = 1.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from posebridge.cache.errors import UserError
from posebridge.cache.layouts import (  # noqa: F401 (re-exported)
    REGISTRY, Skeleton, builtin_layouts, layouts_by_joint_count, load_layout, skeleton)

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
KEYPOINT_CHANNELS = ("x", "y", "z", "visibility", "presence")
FEATURE_DTYPES = ("uint8", "float16")
# "sigmoid": a heatmap channel's per-cell sigmoid (BlazePose); "clipped": a heatmap head's regressed
# Gaussians clipped to [0, 1] (mmpose HRNet, SimpleBaseline); "simcc_outer": the outer product of a
# SimCC head's softmaxed x and y vectors, as probability mass per patch cell (mmpose RTMPose).
HEATMAP_KINDS = ("sigmoid", "clipped", "simcc_outer")


# Skeletons are data: cache/layouts/*.json, loaded and registered by cache/layouts.py
# (docs/layouts.md). Re-exported here for the callers that look them up through the schema.
BLAZEPOSE33 = skeleton("blazepose33")
COCO17 = skeleton("coco17")
NTU25 = skeleton("ntu25")
SKELETONS: dict[str, Skeleton] = REGISTRY  # the built-ins, plus layout files loaded in this process

# BlazePose-33 index of each COCO-17 joint (COCO order): the PYSKL export's default mapping.
BLAZEPOSE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
assert tuple(BLAZEPOSE33.joint_names[i] for i in BLAZEPOSE_TO_COCO17) == COCO17.joint_names

# Joints at which cues are sampled by default: the 13 body joints (nose, shoulders, elbows,
# wrists, hips, knees, ankles), BlazePose indices. Face and finger points add bytes but little context.
BODY13 = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


def skeleton_for_joints(num_joints: int, source: str) -> Skeleton:
    """The built-in skeleton with this many joints, for sources that carry no names (PYSKL pickles
    that name no layout follow one of these: COCO-17 2D, NTU-25 3D, or our BlazePose-33 export)."""
    found = [s for s in layouts_by_joint_count() if s.num_joints == num_joints]
    if not found:
        known = ", ".join(f"{s.num_joints} ({s.name})" for s in layouts_by_joint_count())
        others = ", ".join(f"{s.name} ({s.num_joints})" for s in builtin_layouts() if s not in layouts_by_joint_count())
        raise UserError(f"{source} has {num_joints} joints per skeleton; stage 2 knows {known} by count: "
                        f"give its layout, a built-in name ({others}) or a layout file (docs/layouts.md)")
    return found[0]


def skeleton_named_by(joint_names, source: str) -> Skeleton:
    """The registry's skeleton whose joint names are exactly these."""
    names = tuple(joint_names)
    for s in SKELETONS.values():
        if s.joint_names == names:
            return s
    raise UserError(f"{source}: its {len(names)} joint names match no registered skeleton "
                    f"({', '.join(SKELETONS)}); describe it in a layout file (docs/layouts.md)")


@dataclass(frozen=True)
class CacheLayout:
    """What every frame of a store holds; written to the root attrs `layout`, validated on open."""

    skeleton: str
    joint_names: tuple[str, ...]
    cue_joints: tuple[int, ...]  # indices into joint_names where cues are sampled
    levels: tuple[str, ...]
    feature_channels: int
    heatmap_patch: int
    feature_dtype: str = "uint8"
    heatmap_kind: str = "sigmoid"
    max_persons: int = 2

    def __post_init__(self):
        where = "cache layout"
        reg = skeleton(self.skeleton)
        if tuple(self.joint_names) != reg.joint_names:
            raise UserError(f"{where}: joint names do not match the registry's {self.skeleton}")
        bad = [j for j in self.cue_joints if not 0 <= j < len(self.joint_names)]
        if bad or not self.cue_joints:
            raise UserError(f"{where}: cue joints {bad or '(empty)'} are not joints 0..{len(self.joint_names) - 1}")
        if self.feature_dtype not in FEATURE_DTYPES:
            raise UserError(f"feature_dtype {self.feature_dtype!r} is not one of {FEATURE_DTYPES}")
        if self.heatmap_kind not in HEATMAP_KINDS:
            raise UserError(f"heatmap_kind {self.heatmap_kind!r} is not one of {HEATMAP_KINDS}")
        if self.max_persons < 1 or self.feature_channels < 0 or self.heatmap_patch < 1:
            raise UserError(f"{where}: max_persons, heatmap_patch must be >= 1 and feature_channels >= 0 "
                            f"(got {self.max_persons}, {self.heatmap_patch}, {self.feature_channels})")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def frame_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-frame shape of each stored array."""
        m, v, vc, p = self.max_persons, self.num_joints, len(self.cue_joints), self.heatmap_patch
        return {"keypoints": (m, v, len(KEYPOINT_CHANNELS)), "score": (m,),
                "features": (m, vc, self.feature_channels), "heatmaps": (m, vc, p, p)}

    def to_attrs(self) -> dict:
        """JSON-ready (tuples as lists), as a reader of the store's attrs sees it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_attrs(cls, attrs: dict, schema_version: int = SCHEMA_VERSION, source: str = "store") -> CacheLayout:
        """The layout of a store's root attrs. Schema 1 had no skeleton name, kind or person axis:
        its skeleton is found by its joint names, its heatmaps were sigmoid, and it holds one person."""
        attrs = dict(attrs)
        if schema_version == 1:
            attrs = {**attrs, "skeleton": skeleton_named_by(attrs.get("joint_names", ()), source).name,
                     "heatmap_kind": "sigmoid", "max_persons": 1}
        fields = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        missing = sorted(required - attrs.keys())
        if missing:
            raise UserError(f"{source}: its layout lacks {missing}; it was not written by this posebridge: "
                            f"extract again into another --cache-dir")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items() if k in fields}
        try:
            return cls(**values)
        except UserError as err:
            raise UserError(f"{source}: {err}") from None
