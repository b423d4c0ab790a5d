"""View alignment: 3D skeletons turned into their main actor's body frame before anything learns.

(The camera's view of the body; not a store's training view, which is view.py.)

The method family prepares 3D sequences this way: pyskl's PreNormalize3D and the NTU
pre-normalisation of 2s-AGCN / MS-G3D / Shift-GCN (data_gen/preprocess.py) put the body centre at
the origin, turn the first frame's hip -> spine bone onto one axis and its shoulders onto another.
Without it a cross-view test (NW-UCLA's third camera; joints in each camera's coordinates) sees
the same motion differently rotated.

The frame (right-handed; y up, as the 3D data sets and the loader keep it):

    +y  up:     torso bottom -> torso top (the layout's `torso`: second entry -> first)
    +x  across: the layout's `across`, left end -> right end (the family turns right shoulder minus
                left shoulder onto +x), made orthogonal to up (Gram-Schmidt)
    +z  x cross y: for a body facing a Kinect this is the camera's own frame, so a frontal clip
                hardly turns

Modes (TrainConfig.view_align, `--view-align`):

    none    the loader's output as it is (the default)
    first   the axes of the first frame where they are seen (PreNormalize3D, the NTU pre-normalisation)
    mean    each frame's unit axes averaged over the frames where they are seen, then made orthonormal:
            as good across views and much safer on noisy skeletons than one frame's axes
            (NW-UCLA / UTD-MHAD / MSR Action3D measurements of 2026-12)

Where it plugs in: after the loader (data.py, unchanged, so every loader key stays). The loader
centres each clip on its main actor's body centre and resamples it by linear blends of frames; a
rotation about that origin commutes with both, so turning the loader's output is turning the clip.
The axes are read from the loader's frames of the main actor (the first person seen), joints at
confidence >= MIN_CONFIDENCE only, and every person is turned with them (persons stay in one frame).
The unit stays the torso length, measured in 3D for a turned clip: its x, y projection, which the
loader's unit is, depends on the camera's tilt, the very thing alignment removes.

Applies to 3D skeletons only: a PYSKL pickle read with a 3D layout that names `across`, clips with
depth. 2D keypoints (z = 0), cue stores (BlazePose's z is the pose model's estimate) and feature
folders (computed already) are left as they are, and one line says so. A clip whose axes are never
seen, or are degenerate (zero length, parallel), keeps the loader's output, and is counted.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import file_code_sha256, fingerprint
from posebridge.cache.layouts import Skeleton, layout_from_dict, skeleton
from posebridge.stages.train.config import CHOICES, TrainConfig
from posebridge.stages.train.data import MIN_CONFIDENCE, CueDataset

VIEW_ALIGN_MODES = CHOICES["view_align"]  # none, first, mean
# Unit vectors (and their averages) shorter than this, or as close to parallel (sine of the angle),
# give no direction: a degenerate axis. Far above float rounding, far below any real body.
TOLERANCE = 1e-4
_BLOCK = 2048  # clips turned at a time: float64 scratch stays small at NTU scale


def check_mode(mode: str) -> str:
    if mode not in VIEW_ALIGN_MODES:
        raise UserError(f"--view-align '{mode}' is unknown; use one of {', '.join(VIEW_ALIGN_MODES)}")
    return mode


# --- axes and rotations (numpy, any leading shape) -----------------------------------------------

def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """v / |v| (0 where |v| <= TOLERANCE) and whether it has a direction."""
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    ok = length > TOLERANCE
    return np.where(ok, v / np.where(ok, length, 1.0), 0.0), ok[..., 0]


def _end(xyz: np.ndarray, ok: np.ndarray, joints: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `joints` [..., T, 3] (float64: only these few joints are widened) and whether all of
    them were trustworthy [..., T]."""
    return xyz[..., joints, :].astype(np.float64).mean(axis=-2), ok[..., joints].all(axis=-1)


def frame_axes(xyz: np.ndarray, ok: np.ndarray, layout: Skeleton) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame of [..., T, V, 3]: the unit up and across axes [..., T, 3] and whether they are seen
    [..., T] (their joints trustworthy, neither of zero length, not parallel)."""
    top, top_ok = _end(xyz, ok, layout.shoulders)
    bottom, bottom_ok = _end(xyz, ok, layout.hips)
    right, right_ok = _end(xyz, ok, layout.across[0])
    left, left_ok = _end(xyz, ok, layout.across[1])
    up, up_ok = _unit(top - bottom)
    across, across_ok = _unit(right - left)
    not_parallel = np.linalg.norm(np.cross(up, across), axis=-1) > TOLERANCE
    return up, across, top_ok & bottom_ok & right_ok & left_ok & up_ok & across_ok & not_parallel


def clip_axes(up: np.ndarray, across: np.ndarray, seen: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The clip's up and across [..., 3] from its frames' [..., T, 3]: the first seen frame's, or
    their mean over the seen frames (zeros where no frame is seen)."""
    if mode == "first":
        first = np.argmax(seen, axis=-1)[..., None, None]  # 0 where none is seen: masked below
        pick = lambda v: np.take_along_axis(v, first, axis=-2)[..., 0, :] * seen.any(axis=-1)[..., None]  # noqa: E731
        return pick(up), pick(across)
    weight = seen[..., None] / np.maximum(seen.sum(axis=-1), 1)[..., None, None]
    return (up * weight).sum(axis=-2), (across * weight).sum(axis=-2)


def body_rotation(up: np.ndarray, across: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation [..., 3, 3] whose rows are the body's axes (across, up, across x up), so that
    R @ up is +y and R @ across lies in the x, y plane with positive x; and whether it exists
    (neither axis degenerate)."""
    y, y_ok = _unit(up)
    x, x_ok = _unit(across - (across * y).sum(axis=-1, keepdims=True) * y)  # Gram-Schmidt
    return np.stack([x, y, np.cross(x, y)], axis=-2), y_ok & x_ok


def torso_length(xyz: np.ndarray, ok: np.ndarray, layout: Skeleton) -> np.ndarray:
    """Median 3D distance between the torso's ends over the frames where both are seen [...];
    1 where they never are (no rescaling)."""
    top, top_ok = _end(xyz, ok, layout.shoulders)
    bottom, bottom_ok = _end(xyz, ok, layout.hips)
    seen = top_ok & bottom_ok
    # the median of the seen frames' lengths: unseen ones sort last (inf), the middle of the rest is read
    lengths = np.sort(np.where(seen, np.linalg.norm(top - bottom, axis=-1), np.inf), axis=-1)
    count = seen.sum(axis=-1, keepdims=True)
    low, high = (np.take_along_axis(lengths, np.maximum(i, 0), axis=-1)[..., 0] for i in ((count - 1) // 2, count // 2))
    median = np.where(count[..., 0] > 0, (low + high) / 2, 1.0)
    return np.where(median > TOLERANCE, median, 1.0)


def align_clips(keypoints: np.ndarray, confidence: np.ndarray, layout: Skeleton, mode: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """Loader output [N, M, T, V, 3] (centred on the main actor, in torso units) and confidence
    [N, M, T, V] -> every clip with depth turned into its main actor's body frame, in 3D torso units
    (float32), and which clips were turned [N]. The others come back as they were."""
    out = np.array(keypoints, dtype=np.float32, copy=True)
    turned = np.zeros(len(out), dtype=bool)
    for start in range(0, len(out), _BLOCK):
        clips = out[start:start + _BLOCK]  # a view: turned in place
        ok = confidence[start:start + _BLOCK] >= MIN_CONFIDENCE  # [n, M, T, V]
        main = np.argmax(ok.any(axis=(2, 3)), axis=1)  # the first person seen (0 when none is)
        rows = np.arange(len(clips))
        actor, actor_ok = clips[rows, main], ok[rows, main]  # [n, T, V, 3], [n, T, V]
        rotation, exists = body_rotation(*clip_axes(*frame_axes(actor, actor_ok, layout), mode))
        turn = exists & (clips[..., 2] != 0).any(axis=(1, 2, 3))  # 2D keypoints (z = 0) are never turned
        # a rotation keeps lengths, so the 3D torso unit is measured before it
        to_body = (rotation[turn] / torso_length(actor[turn], actor_ok[turn], layout)[:, None, None]).astype(np.float32)
        points = clips[turn].reshape(len(to_body), -1, 3)  # one [M*T*V, 3] block per clip: a fast batched matmul
        clips[turn] = (points @ np.swapaxes(to_body, 1, 2)).reshape(-1, *clips.shape[1:])
        turned[start:start + _BLOCK] = turn
    return out, turned


# --- data sets ---------------------------------------------------------------------------------

def dataset_layout(ds: CueDataset) -> Skeleton | None:
    """The layout that read the data: the one it records, else the registered one by name."""
    if ds.skeleton_layout:
        return layout_from_dict(ds.skeleton_layout, f"layout {ds.skeleton_layout.get('name', '?')!r}")
    return skeleton(ds.skeleton) if ds.skeleton else None


def not_applicable(ds: CueDataset, layout: Skeleton | None) -> tuple[str, bool] | None:
    """Why view alignment leaves this data set as it is, and whether its owner can fix that (a 3D
    layout without `across`: one field); None when it applies."""
    if ds.joint_features is not None:
        return "a feature folder's features are computed already", False
    if ds.layout is not None or ds.features is not None:  # a store's training view (older ones record no layout)
        return "a cue store's z is the pose model's estimate, not a measured depth (3D skeletons only)", False
    if layout is None:
        return "the data names no skeleton layout", False
    if layout.dims != 3:
        return f"layout {layout.name} is 2D (3D skeletons only)", False
    if layout.across is None:
        return (f"layout {layout.name} names no `across` joints (docs/layouts.md), so its clips keep "
                f"the loader's normalisation"), True
    return None


def aligned_fingerprint(source: str, layout: Skeleton, mode: str) -> str:
    """The identity of the turned tensors: the data's, the mode, the joints the axes come from and
    this module's code (a docstring edit keeps it)."""
    return fingerprint({"data": source, "view_align": mode, "min_confidence": MIN_CONFIDENCE,
                        "up": [list(layout.shoulders), list(layout.hips)], "across": [list(e) for e in layout.across],
                        "code": file_code_sha256(__file__)})


def chosen(mode: str, given: list[str]) -> bool:
    """Whether a run's mode was chosen (on the command line, or by a preset) rather than the project's
    default left as it is: only a chosen mode's "does not apply" is worth a line, since the default
    is meant to pass over 2D data, stores and feature folders without a word."""
    return "view_align" in given or mode != TrainConfig.view_align


def align_views(ds: CueDataset, mode: str, source: str = "the data", echo: Callable[[str], None] = print,
                say_not_applicable: bool = True) -> CueDataset:
    """`ds` with every 3D clip turned into its body frame (a new data set; `ds` is not changed), or
    `ds` itself for mode none and where alignment does not apply. One line through `echo` (stdout,
    as the loader reports skipped clips) says where it does not apply (unless `say_not_applicable`
    is False: see `chosen`), or how many clips kept the loader's output."""
    if check_mode(mode) == "none":
        return ds
    layout = dataset_layout(ds)
    skipped = not_applicable(ds, layout)
    if skipped is not None:
        reason, fixable = skipped
        if say_not_applicable or fixable:  # a fixable reason is worth a line even under the default
            echo(f"view-align {mode} does not apply to {source}: {reason}")
        return ds
    keypoints, turned = align_clips(ds.keypoints.numpy(), ds.confidence.numpy(), layout, mode)
    if not turned.all():
        echo(_unturned_line(ds.clip_ids, turned, mode, source))
    return dataclasses.replace(ds, keypoints=torch.from_numpy(keypoints),
                               source_fingerprint=aligned_fingerprint(ds.source_fingerprint, layout, mode))


def _unturned_line(clip_ids: list[str], turned: np.ndarray, mode: str, source: str) -> str:
    names = [clip_ids[i] for i in np.flatnonzero(~turned)]
    shown = ", ".join(names[:10]) + (f" (and {len(names) - 10} more)" if len(names) > 10 else "")
    return (f"view-align {mode}: {len(names)} of {len(turned)} clips of {source} keep the loader's normalisation, "
            f"unturned (body axes never seen or degenerate, or no depth): {shown}")
