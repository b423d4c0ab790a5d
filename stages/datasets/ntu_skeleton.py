"""NTU RGB+D 60/120 `.skeleton` text files -> PYSKL annotations (3D, as pyskl's ntu*_3danno.pkl);
`posebridge import ntu` (skeleton_formats/ntu.py) writes them.

The text format (one file per clip, named SsssCcccPpppRrrrAaaa.skeleton): line 1 the frame count;
per frame the body count; per body one line of 10 values (bodyID, clippedEdges, hand states,
isRestricted, leanX, leanY, trackingState), the joint count (25), then 25 lines of 12 values
(x y z depthX depthY colorX colorY orientation W X Y Z trackingState). Only x y z (metres,
camera space) are kept.

Kinect hands out a bodyID per tracked body; a clip may list more IDs than bodies at any one time
(tracking restarts). Slots are kept per ID: the ID seen in the most frames gets slot 0 (the main
actor first, as pyskl orders persons), each further ID the first slot it never collides with.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from posebridge.stages.datasets.ntu import parse_ntu_name

NTU_JOINTS = 25
_BODY_VALUES = 10
_JOINT_VALUES = 12


class BadSkeletonFile(ValueError):
    """A file that is not a usable NTU skeleton file; str(err) says why, in a few words."""


def read_skeleton_file(path: Path) -> tuple[int, list[list[tuple[str, np.ndarray]]]]:
    """(declared frame count, per frame [(bodyID, xyz [25, 3] float32), ...]) or BadSkeletonFile."""
    try:
        lines = path.read_text(encoding="ascii", errors="replace").split("\n")
    except OSError as err:
        raise BadSkeletonFile(f"unreadable: {err.strerror}") from None
    lines = [line.strip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise BadSkeletonFile("empty")
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(lines):
            raise BadSkeletonFile(f"truncated at line {pos + 1}")
        pos += 1
        return lines[pos - 1]

    def count(what: str) -> int:
        text = take()
        try:
            value = int(text)
        except ValueError:
            raise BadSkeletonFile(f"line {pos}: expected the {what}, got {text[:30]!r}") from None
        if value < 0:
            raise BadSkeletonFile(f"line {pos}: negative {what}")
        return value

    num_frames = count("frame count")
    frames = []
    for _ in range(num_frames):
        bodies = []
        for _ in range(count("body count")):
            body = take().split()
            if len(body) != _BODY_VALUES:
                raise BadSkeletonFile(f"line {pos}: a body line has {len(body)} values, not {_BODY_VALUES}")
            joints = count("joint count")
            if joints != NTU_JOINTS:
                raise BadSkeletonFile(f"line {pos}: {joints} joints, not {NTU_JOINTS}")
            rows = [take().split() for _ in range(NTU_JOINTS)]
            if any(len(row) != _JOINT_VALUES for row in rows):
                raise BadSkeletonFile(f"near line {pos}: a joint line lacks some of its {_JOINT_VALUES} values")
            try:
                xyz = np.array([row[:3] for row in rows], dtype=np.float32)
            except ValueError:
                raise BadSkeletonFile(f"near line {pos}: a joint value is not a number") from None
            if not np.isfinite(xyz).all():
                raise BadSkeletonFile(f"near line {pos}: a joint value is not finite")
            bodies.append((body[0], xyz))
        frames.append(bodies)
    if pos != len(lines):
        raise BadSkeletonFile(f"{len(lines) - pos} lines after the {num_frames} declared frames")
    if not any(frames):
        raise BadSkeletonFile("no body in any frame")
    return num_frames, frames


def body_slots(frames: list[list[tuple[str, np.ndarray]]]) -> tuple[int, list[list[int]]]:
    """(M = most bodies in one frame, per frame the slot of each of its bodies)."""
    m = max(len(bodies) for bodies in frames)
    present: dict[str, set[int]] = {}
    for t, bodies in enumerate(frames):
        for body_id, _ in bodies:
            present.setdefault(body_id, set()).add(t)
    # Most frames first; ties keep first appearance (dicts keep insertion order, sorted is stable).
    order = sorted(present, key=lambda b: -len(present[b]))
    taken: list[set[int]] = [set() for _ in range(m)]
    preferred = {}
    for body_id in order:
        frames_of = present[body_id]
        slot = min(range(m), key=lambda s: (len(taken[s] & frames_of), s))
        preferred[body_id] = slot
        taken[slot] |= frames_of
    slots = []
    for bodies in frames:  # IDs that overlap in time: the first keeps its slot, the next takes a free one
        row: list[int | None] = []
        for body_id, _ in bodies:
            slot = preferred[body_id]
            row.append(None if slot in row else slot)
        free = iter(s for s in range(m) if s not in row)
        slots.append([slot if slot is not None else next(free) for slot in row])
    return m, slots


def skeleton_annotation(path: Path) -> dict:
    """The PYSKL annotation of one file: keypoint [M, T, 25, 3] float32, absent bodies zero."""
    meta = parse_ntu_name(path.name)
    if meta is None:
        raise BadSkeletonFile("not an NTU name SsssCcccPpppRrrrAaaa.skeleton")
    num_frames, frames = read_skeleton_file(path)
    m, slots = body_slots(frames)
    keypoint = np.zeros((m, num_frames, NTU_JOINTS, 3), np.float32)
    for t, (bodies, row) in enumerate(zip(frames, slots)):
        for (_, xyz), slot in zip(bodies, row):
            keypoint[slot, t] = xyz
    return {"frame_dir": path.name[: -len(".skeleton")], "label": meta["action"] - 1,
            "total_frames": num_frames, "keypoint": keypoint, "_meta": meta}


def import_ntu_skeletons(src: str | Path, out: str | Path):
    """`posebridge import ntu SRC --out OUT` (stages/datasets/skeleton_formats), under its old name."""
    # Imported here: the ntu format adapter imports this parser, so a module-level import would be a cycle.
    from posebridge.stages.datasets.skeleton_formats import import_release

    return import_release("ntu", src, out)
