"""Stage-2 data: a cue cache (or a PYSKL pickle) as in-memory tensors, and its ZSL partition.

Caches are small (~0.5 MB per clip), so a whole dataset is read once, clip by clip, into fixed
length tensors. Every clip is brought to the same frame:

- time: resampled to `num_frames` frames by uniform sampling with linear interpolation between
  the two nearest frames. Shorter clips are stretched, longer ones subsampled (no low-pass filter:
  fast motion in long clips may alias). Deterministic, no random crops.
- space: x, y in pixels (z on x's scale), centred on the clip's mean body centre (mid-hip) and
  divided by its median shoulder-to-hip distance, or the median bounding-box diagonal when the
  torso is never seen. Joints below MIN_CONFIDENCE keep their coordinates; only the statistics
  ignore them, and `confidence` tells the model how far to trust each joint.
- persons: M slots per clip (the store's max_persons; PYSKL files: up to PYSKL_MAX_PERSONS), main
  actor first. All persons of a clip share the main actor's centre and scale, so where they stand
  relative to each other survives; an absent person is all zeros with confidence 0.
"""
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from posebridge.cache.pyskl import LAYOUT_KEY, read_pyskl
from posebridge.cache.schema import KEYPOINT_CHANNELS, SKELETONS, Skeleton, skeleton, skeleton_for_joints
from posebridge.cache.store import ClipRecord, CueStore, decode_clip
from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import file_sha256, fingerprint
from posebridge.stages.splits.spec import Split
from posebridge.stages.train.sides import overlap_reason, split_sides

MIN_CONFIDENCE = 0.3  # below it a joint does not enter the centre / scale statistics
PYSKL_MAX_PERSONS = 2  # as pyskl's and mmaction2's GCN pipelines (FormatGCNInput num_person=2)
_X, _Y, _Z, _VISIBILITY = (KEYPOINT_CHANNELS.index(c) for c in ("x", "y", "z", "visibility"))


@dataclass
class CueDataset:
    keypoints: torch.Tensor  # [N, M, T, V, 3] float32, normalised x, y, z
    confidence: torch.Tensor  # [N, M, T, V] float32 (visibility; 1 for PYSKL 3D; 0 for an absent person)
    features: torch.Tensor | None  # [N, M, T, Vc, C] float16; None for skeleton-only sources
    heatmaps: torch.Tensor | None  # [N, M, T, Vc, P*P] float16
    labels: torch.Tensor  # [N] int64 dataset class index, -1 unknown
    clip_ids: list[str]
    meta: list[dict]
    cue_joints: tuple[int, ...]  # indices into V where the cues were sampled
    source_fingerprint: str  # data_fingerprint() of a store's clips, or the sha256 of a PYSKL file
    skeleton: str = ""  # registry name (cache/layouts.py); "" = found by the joint count
    # The layout's Skeleton.to_dict(): model args and checkpoints keep it, so a layout read from a
    # file is rebuilt in later processes (eval, predict) without the file. None = by `skeleton`.
    skeleton_layout: dict | None = None
    layout: dict | None = None  # the store's layout (joint names, cue joints, levels, ...); None for PYSKL
    # Precomputed joint x time skeleton features [N, 1, T', V, C] that take the keypoints' place (a
    # SynSE/PURLS feature folder, feature_folder.py; its `keypoints` then have no channels); None:
    # the keypoints are the skeleton the model encodes.
    joint_features: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx) -> CueDataset:
        """Rows `idx` (integer indices or a boolean mask), in that order."""
        idx = np.asarray(idx)
        idx = torch.from_numpy(np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64))
        rows = idx.tolist()
        return replace(
            self, keypoints=self.keypoints[idx], confidence=self.confidence[idx],
            features=None if self.features is None else self.features[idx],
            heatmaps=None if self.heatmaps is None else self.heatmaps[idx],
            labels=self.labels[idx], clip_ids=[self.clip_ids[i] for i in rows], meta=[self.meta[i] for i in rows],
            joint_features=None if self.joint_features is None else self.joint_features[idx])


# --- per-clip transforms ----------------------------------------------------------------------

def resample(x: np.ndarray, num_frames: int) -> np.ndarray:
    """[T, ...] -> [num_frames, ...]: uniform positions from the first to the last frame, linear blend."""
    if len(x) == 1:
        return np.repeat(x, num_frames, axis=0)
    position = np.linspace(0, len(x) - 1, num_frames)
    low = np.minimum(np.floor(position).astype(np.int64), len(x) - 2)
    frac = (position - low).reshape(-1, *([1] * (x.ndim - 1))).astype(x.dtype)
    return x[low] * (1 - frac) + x[low + 1] * frac


def _mean_of(xyz: np.ndarray, ok: np.ndarray, joints: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame mean of `joints` [T, 3], and whether all of them were trustworthy [T]."""
    return xyz[:, joints].mean(axis=1), ok[:, joints].all(axis=1)


def normalise_skeleton(xyz: np.ndarray, confidence: np.ndarray, layout: Skeleton) -> np.ndarray:
    """[T, V, 3] pixel (or metric) coordinates -> centred on the clip's body centre, in torso units."""
    return normalise_persons(xyz[None], confidence[None], layout)[0]


def normalise_persons(xyz: np.ndarray, confidence: np.ndarray, layout: Skeleton) -> np.ndarray:
    """[M, T, V, 3] -> every person in the frame of the main actor (person 0): centred on its body
    centre, in its torso units. A person never seen stays all zeros."""
    ok = (confidence >= MIN_CONFIDENCE) & np.isfinite(xyz).all(axis=-1)  # [M, T, V]
    xyz = np.where(np.isfinite(xyz), xyz, 0.0)
    main = int(np.argmax(ok.any(axis=(1, 2)))) if ok.any() else 0  # person 0 unless it is never seen
    origin, scale = _origin_and_scale(xyz[main], ok[main], layout)
    out = ((xyz - origin) / scale).astype(np.float32)
    for m in range(len(out)):
        seen = ok[m].any(axis=1)
        if seen.any():
            out[m] = out[m][_nearest_present_frame(seen)]
        elif m != main or not xyz[m].any():
            # An empty slot stays empty (not moved to -origin); so does another person never seen
            # with confidence >= MIN_CONFIDENCE: no frame of theirs can be trusted or gap-filled.
            out[m] = 0.0
    return out


def absent_if_unseen(normalised: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """[M, T, V] confidence with 0 for every person normalise_persons emptied ([M, T, V, 3] all
    zero): an absent slot is all zeros, keypoints and confidence alike, so no encoder or pooling
    counts it."""
    emptied = ~normalised.reshape(len(normalised), -1).any(axis=1)
    return np.where(emptied[:, None, None], np.float32(0), confidence).astype(confidence.dtype)


def _origin_and_scale(xyz: np.ndarray, ok: np.ndarray, layout: Skeleton) -> tuple[np.ndarray, float]:
    """Body centre [3] and torso length of one person's [T, V, 3] clip."""
    centre, centre_ok = _mean_of(xyz, ok, layout.centre)
    if centre_ok.any():
        origin = centre[centre_ok].mean(axis=0)
    elif ok.any():  # hips never seen: the mean of the joints that were
        origin = xyz[ok].mean(axis=0)
    else:
        origin = np.zeros(3, dtype=xyz.dtype)

    top, top_ok = _mean_of(xyz, ok, layout.shoulders)
    bottom, bottom_ok = _mean_of(xyz, ok, layout.hips)
    torso_ok = top_ok & bottom_ok
    # 2D: BlazePose z is a noisy estimate, and all layouts are upright enough for x, y alone.
    scale = float(np.median(np.linalg.norm((top - bottom)[torso_ok, :2], axis=-1))) if torso_ok.any() else 0.0
    if scale <= 0:
        scale = _median_bbox_diagonal(xyz, ok)
    return origin, (scale if scale > 0 else 1.0)


def _nearest_present_frame(present: np.ndarray) -> np.ndarray:
    """Index of the nearest frame with a person, per frame. Frames without one (all-zero keypoints
    from the pose model) would otherwise sit at the image origin, far off in torso units, and turn
    into huge jumps in the motion stream; holding the nearest pose keeps them harmless (their
    confidence stays 0)."""
    frames = np.arange(len(present))
    found = np.flatnonzero(present)
    if len(found) in (0, len(present)):
        return frames
    after = np.clip(np.searchsorted(found, frames), 0, len(found) - 1)
    before = np.clip(after - 1, 0, len(found) - 1)
    prev, nxt = found[before], found[after]
    return np.where(np.abs(frames - prev) <= np.abs(nxt - frames), prev, nxt)


def _median_bbox_diagonal(xyz: np.ndarray, ok: np.ndarray) -> float:
    diagonals = []
    for frame, frame_ok in zip(xyz, ok):
        if frame_ok.sum() >= 2:
            points = frame[frame_ok, :2]
            diagonals.append(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
    return float(np.median(diagonals)) if diagonals else 0.0


# --- loaders ----------------------------------------------------------------------------------

def clip_rows(store: CueStore, num_frames: int,
              clip_ids: list[str] | None = None) -> Iterator[tuple[int, ClipRecord, dict[str, np.ndarray]]]:
    """(row, record, arrays) for every clip of a store (or only `clip_ids`), in storage order (each
    part read once).

    `row` is the clip's place in clip_id order (or in `clip_ids` order); `arrays` are the training
    tensors of one clip: keypoints [M, T, V, 3] and confidence [M, T, V] float32 (resampled,
    normalised), features [M, T, Vc, C] float32 (decoded) and heatmaps [M, T, Vc, P*P] float32 in
    [0, 1]. load_store() and the training view (view.py) both fill their rows from here, so they
    hold the same tensors."""
    layout = store.layout
    skel = skeleton(layout.skeleton)
    m, cue_joints = layout.max_persons, layout.cue_joints
    patch_cells = layout.heatmap_patch ** 2
    # Rows in clip_id order, not storage order: part names are random, and the same cache must give
    # the same batches (hence the same metrics) however its parts happened to be written.
    order = [r.clip_id for r in store.clips()] if clip_ids is None else list(dict.fromkeys(clip_ids))
    row_of = {clip_id: i for i, clip_id in enumerate(order)}
    for record, arrays in store.iter_clips(None if clip_ids is None else order):
        kp = arrays.keypoints.transpose(1, 0, 2, 3)  # [M, T, V, 5]
        t = kp.shape[1]
        # Normalised image coordinates -> pixels, so x and y share one unit (z is on x's scale).
        xyz = kp[..., [_X, _Y, _Z]] * np.array([record.width, record.height, record.width], np.float32)
        normalised = normalise_persons(xyz, kp[..., _VISIBILITY], skel)
        visibility = absent_if_unseen(normalised, kp[..., _VISIBILITY])
        yield row_of[record.clip_id], record, {
            "keypoints": resample(normalised.swapaxes(0, 1), num_frames).swapaxes(0, 1),
            "confidence": resample(visibility.swapaxes(0, 1), num_frames).swapaxes(0, 1),
            "features": resample(arrays.features, num_frames).swapaxes(0, 1),
            "heatmaps": resample(arrays.heatmaps.reshape(t, m, len(cue_joints), patch_cells), num_frames).swapaxes(0, 1),
        }


def clip_set(records: list[ClipRecord]) -> str:
    """Fingerprint of a list of clips: ids, contents, labels and meta, in that order."""
    return fingerprint([dataclasses.asdict(r) for r in records])


def loader_code_sha256() -> str:
    """The code that turns stored clips into training tensors: this module and the cache's decoder,
    as code (cache.fingerprint.code_sha256): a docstring or comment edit keeps every key."""
    from posebridge.cache.fingerprint import code_sha256, file_code_sha256

    return fingerprint({"data.py": file_code_sha256(__file__), "decode_clip": code_sha256(inspect.getsource(decode_clip))})


def data_fingerprint(store: CueStore, records: list[ClipRecord], num_frames: int) -> str:
    """The identity of a store's stage-2 tensors for these clips (in row order): the extractor, the
    clip set, the loader's settings and code. Runs, resume checks and the frozen-encoder cache are
    keyed by it, so a new, re-extracted or relabelled clip is other data, and so is a loader change."""
    return fingerprint({"store": store.fingerprint, "clip_set": clip_set(records), "num_frames": num_frames,
                        "min_confidence": MIN_CONFIDENCE, "loader_sha256": loader_code_sha256()})


def open_store(path_or_store: str | Path | CueStore) -> CueStore:
    store = path_or_store if isinstance(path_or_store, CueStore) else CueStore.open(path_or_store)
    if not store.clips():
        raise UserError(f"{store.path} holds no clips yet: run `posebridge extract` for it first")
    return store


def load_store(path_or_store: str | Path | CueStore, num_frames: int = 64,
               clip_ids: list[str] | None = None) -> CueDataset:
    """A whole cue cache as in-memory tensors, one row per clip in clip_id order, M = the store's
    max_persons; with `clip_ids`, only those clips, one row each in that order. Training reads a
    store through its training view instead (view.py), written once and reused."""
    store = open_store(path_or_store)
    wanted = None if clip_ids is None else list(dict.fromkeys(clip_ids))
    n = len(store.clips()) if wanted is None else len(wanted)
    layout = store.layout
    m, num_joints, cue_joints = layout.max_persons, layout.num_joints, layout.cue_joints
    patch_cells = layout.heatmap_patch ** 2

    keypoints = np.empty((n, m, num_frames, num_joints, 3), np.float32)
    confidence = np.empty((n, m, num_frames, num_joints), np.float32)
    # Cues stay float16 in memory (they come from uint8 codes; float16 keeps every code apart) so a
    # full NTU-scale cache fits in RAM; batches are cast to float32 after indexing.
    features = np.empty((n, m, num_frames, len(cue_joints), layout.feature_channels), np.float16)
    heatmaps = np.empty((n, m, num_frames, len(cue_joints), patch_cells), np.float16)
    labels, clip_ids, meta, records = np.empty(n, np.int64), [""] * n, [{}] * n, [None] * n
    for i, record, rows in clip_rows(store, num_frames, wanted):
        records[i] = record
        keypoints[i], confidence[i] = rows["keypoints"], rows["confidence"]
        features[i], heatmaps[i] = rows["features"], rows["heatmaps"]
        labels[i] = record.label
        clip_ids[i] = record.clip_id
        meta[i] = {**record.meta, "label_name": record.label_name}
    return CueDataset(
        keypoints=torch.from_numpy(keypoints), confidence=torch.from_numpy(confidence),
        features=torch.from_numpy(features), heatmaps=torch.from_numpy(heatmaps), labels=torch.from_numpy(labels),
        clip_ids=clip_ids, meta=meta, cue_joints=cue_joints,
        source_fingerprint=data_fingerprint(store, records, num_frames),
        skeleton=skeleton(layout.skeleton).name, skeleton_layout=skeleton(layout.skeleton).to_dict(),
        layout=layout.to_attrs())


def _persons_main_first(confidence: np.ndarray, scored: bool) -> np.ndarray:
    """Person order of one PYSKL annotation: highest summed score first (how long and how confidently
    each is seen, as stage 1 orders its slots); without scores (3D; confidence = 1 per non-zero
    joint), most frames present first (PYSKL pads absent people with zeros)."""
    if scored:
        total = confidence.reshape(len(confidence), -1).sum(axis=1)
    else:
        total = confidence.reshape(*confidence.shape[:2], -1).any(axis=-1).sum(axis=1)  # [M]
    return np.argsort(-total, kind="stable")


def load_pyskl(path: str | Path, num_frames: int = 64, layout: Skeleton | None = None) -> CueDataset:
    """A PYSKL pickle as a skeleton-only CueDataset (features and heatmaps None).

    `layout` (cache/layouts.py: a built-in or a layout file's) says which skeleton the keypoints
    follow; every clip's V must be its joint count. None: the layout the file records ("layout",
    written by `posebridge import`, e.g. kinect_v1), else the built-in with the file's joint count
    (COCO-17 2D as pyskl and mmaction2 publish, NTU-25 3D, or BlazePose-33 from `export --layout full`).
    A given layout must list the recorded layout's joints in its order (its parts may differ).

    Per clip `keypoint` [M, T, V, C]: C = 2 (x, y pixels; z = 0) with `keypoint_score` as confidence,
    or C = 3: x, y, z with confidence 1 where a joint is non-zero, except for a 2D layout (dims 2),
    where the third value is the confidence (x, y, score) unless keypoint_score is given. NaN
    coordinates or scores are missing joints (0, confidence 0). Clips with no frames or no finite,
    non-zero joint are skipped and counted on stdout; clips of 1 or 2 frames are stretched like any other.

    Up to PYSKL_MAX_PERSONS persons per clip, main actor first (M = the most any clip holds, within
    that cap; fewer are zero-padded). meta["pyskl_split"] lists the names of the pickle's split lists
    that hold the clip (e.g. ["xsub_train", "xview_val"]).
    """
    path = Path(path)
    data = read_pyskl(path)
    annotations = data["annotations"]
    if not annotations:
        raise UserError(f"{path} holds no annotations")
    splits_of: dict[str, list[str]] = {}
    for split_name, ids in data["split"].items():
        for clip_id in ids:
            splits_of.setdefault(clip_id, []).append(split_name)

    num_joints = np.shape(annotations[0]["keypoint"])[2]
    by_count = _builtin_for_joints(num_joints)
    named = layout if layout is not None else _recorded_layout(path, data)  # every clip must have its V
    if layout is not None:
        _check_recorded_layout(path, data, layout)
    skel = named if named is not None else by_count or skeleton_for_joints(num_joints, str(path))
    # Two passes: the first only finds the empty clips (a list of every clip's arrays would double
    # an NTU-size pickle in memory), the second fills the rows.
    empty = {i for i, ann in enumerate(annotations) if _pyskl_clip(path, ann, skel, named is not None) is None}
    if empty:
        names = [str(annotations[i]["frame_dir"]) for i in sorted(empty)]
        shown = ", ".join(names[:10]) + (f" (and {len(names) - 10} more)" if len(names) > 10 else "")
        print(f"skipped {len(names)} empty clips of {path.name}: {shown}")
    kept = [ann for i, ann in enumerate(annotations) if i not in empty]
    if not kept:
        raise UserError(f"{path}: all {len(annotations)} clips are empty (no frames, or every keypoint zero or "
                        f"NaN); check the file")

    n, v = len(kept), skel.num_joints
    m = max(1, min(PYSKL_MAX_PERSONS, max(np.shape(ann["keypoint"])[0] for ann in kept)))
    keypoints = np.zeros((n, m, num_frames, v, 3), np.float32)
    confidence = np.zeros((n, m, num_frames, v), np.float32)
    labels, clip_ids, meta = np.empty(n, np.int64), [], []
    for i, ann in enumerate(kept):
        xyz, conf, scored = _pyskl_clip(path, ann, skel, named is not None)
        persons = _persons_main_first(conf, scored)[:m]
        xyz, conf, k = xyz[persons], conf[persons], len(persons)
        normalised = normalise_persons(xyz, conf, skel)
        keypoints[i, :k] = resample(normalised.swapaxes(0, 1), num_frames).swapaxes(0, 1)
        confidence[i, :k] = resample(absent_if_unseen(normalised, conf).swapaxes(0, 1), num_frames).swapaxes(0, 1)
        labels[i] = _pyskl_label(path, ann)
        clip_ids.append(str(ann["frame_dir"]))
        meta.append({"pyskl_split": splits_of.get(ann["frame_dir"], []), "total_frames": int(ann["total_frames"])})
    source = file_sha256(path)
    if skel != by_count:  # another layout reads the same file into other tensors
        source = fingerprint({"file": source, "layout": skel.fingerprint})
    return CueDataset(
        keypoints=torch.from_numpy(keypoints), confidence=torch.from_numpy(confidence), features=None,
        heatmaps=None, labels=torch.from_numpy(labels), clip_ids=clip_ids, meta=meta, cue_joints=(),
        source_fingerprint=source, skeleton=skel.name, skeleton_layout=skel.to_dict())


def _recorded_layout(path: Path, data: dict) -> Skeleton | None:
    """The registered layout the file names (cache/pyskl.py LAYOUT_KEY, written by `posebridge import`)."""
    name = data.get(LAYOUT_KEY)
    if name is None:
        return None
    try:
        return skeleton(name)
    except UserError:
        raise UserError(f"{path} says its keypoints follow layout {name!r}, which is not a built-in here; "
                        f"give --layout with that layout's .json file (docs/layouts.md)") from None


def _check_recorded_layout(path: Path, data: dict, given: Skeleton) -> None:
    """A given layout may differ from the recorded one in its parts, centre or bones, never in which
    joint is which: that is a fact of the file."""
    name = data.get(LAYOUT_KEY)
    if name is None or name not in SKELETONS:  # a layout made elsewhere, given explicitly: nothing to compare
        return
    recorded = skeleton(name)
    if given.joint_names != recorded.joint_names:
        raise UserError(f"{path} holds {recorded.name} keypoints, but {given.where()} lists other joints or "
                        f"another order; use --layout {recorded.name} (or a layout with its joints, in its order)")


def _builtin_for_joints(num_joints: int) -> Skeleton | None:
    try:
        return skeleton_for_joints(num_joints, "")
    except UserError:
        return None


def _pyskl_clip(path: Path, ann: dict, skel: Skeleton, given: bool) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """One annotation's persons as (xyz [M, T, V, 3], confidence [M, T, V], whether it had scores)
    with missing joints at 0 and confidence 0; None for an empty clip."""
    clip = ann["frame_dir"]
    kp = np.asarray(ann["keypoint"], np.float32)
    if kp.shape[2] != skel.num_joints:
        if given:
            raise UserError(f"{path}: clip {clip} has {kp.shape[2]} joints per skeleton, but {skel.where()} "
                            f"declares {skel.num_joints}; give the layout this file was made with")
        raise UserError(f"{path}: {clip} has {kp.shape[2]} joints, the first clip {skel.num_joints}; "
                        f"one file must use one skeleton layout")
    if kp.shape[-1] not in (2, 3):
        raise UserError(f"{path}: {clip} has {kp.shape[-1]} values per joint; expected 2 (x, y) or 3")
    score = np.asarray(ann["keypoint_score"], np.float32) if "keypoint_score" in ann else None
    if kp.shape[-1] == 3 and skel.dims == 2:  # a 2D layout's third value is a confidence, not z
        score = kp[..., 2] if score is None else score
        kp = kp[..., :2]
    finite = np.isfinite(kp).all(axis=-1)  # [M, T, V]: a NaN coordinate is a missing joint
    kp = np.where(finite[..., None], kp, np.float32(0))
    present = finite & (np.abs(kp).sum(axis=-1) > 0)
    if kp.shape[0] == 0 or kp.shape[1] == 0 or not present.any():
        return None
    conf = present.astype(np.float32) if score is None else np.where(finite & np.isfinite(score), score, np.float32(0))
    xyz = np.concatenate([kp, np.zeros_like(kp[..., :1])], axis=-1) if kp.shape[-1] == 2 else kp
    return xyz, conf.astype(np.float32), score is not None


def _pyskl_label(path: Path, ann: dict) -> int:
    try:
        return int(ann["label"])
    except (TypeError, ValueError):
        raise UserError(f"{path}: clip {ann['frame_dir']} has label {ann['label']!r}, not a class index") from None


# --- partition ---------------------------------------------------------------------------------

def _stratified_val(train_pool: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """round(val_fraction * n) samples of each class (at least one stays in train), seeded per class."""
    chosen = []
    for label in np.unique(labels[train_pool]):
        members = train_pool[labels[train_pool] == label]
        count = min(int(round(val_fraction * len(members))), len(members) - 1)
        rng = np.random.default_rng([seed, int(label)])
        chosen.append(rng.permutation(members)[:count])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, np.int64)


def check_labels(ds: CueDataset, split: Split) -> None:
    """Every label must name one of the split's classes (label i = class_names[i])."""
    labels = ds.labels.numpy()
    if len(labels) and labels.max() >= len(split.class_names):
        raise UserError(f"{split.source}: the data has label {labels.max()}, but field 'classes' lists "
                        f"{len(split.class_names)} classes; list every class of the data (label i = classes[i]) "
                        f"or pick a split of the data's dataset")


class Partition(dict):
    """partition()'s index arrays by name, and why GZSL cannot be scored on them (None: it can)."""

    def __init__(self, parts: dict[str, np.ndarray], gzsl_unavailable: str | None = None):
        super().__init__(parts)
        self.gzsl_unavailable = gzsl_unavailable


def partition(ds: CueDataset, split: Split, val_fraction: float = 0.1, seed: int = 0) -> Partition:
    """Sorted index arrays into `ds`:

    train      seen classes, the split's training side, minus val
    val        held-out seen-class samples of the training side (stratified per class), or the
               source's own validation rows where it has them (meta["side"] == "val"; in the
               reference feature-folder layout these are the test side's seen classes, and count in
               test_gzsl as well)
    test_zsl   unseen classes, test side
    test_gzsl  seen and unseen classes, test side; when the sides share clips (a ZSL-only reading,
               e.g. every clip on both sides) the seen classes' test clips are training clips, so
               test_gzsl is test_zsl and `gzsl_unavailable` says why
    Samples with an unknown label (-1) are in none of them. Which clip is on which side is
    stages/train/sides.py's to say.
    """
    labels = ds.labels.numpy()
    check_labels(ds, split)
    is_train, is_test = split_sides(ds.meta, ds.clip_ids, split)
    seen, unseen = np.isin(labels, split.seen), np.isin(labels, split.unseen)
    given_val = np.array([m.get("side") == "val" for m in ds.meta], dtype=bool)
    # A feature folder in the reference layout (SynSE / PURLS / DynaPURLS): val = the seen classes of
    # the TEST side, test = its unseen classes; then val is GZSL's seen half too. Told from the older
    # PoseBridge layout (val = held-out training rows, test = the whole test side) by the test file
    # holding no seen class. Either way its val rows are validation, never test rows by a side rule.
    on_test_file = np.array([m.get("side") == "test" for m in ds.meta], dtype=bool)
    reference_layout = bool(given_val.any()) and not bool((on_test_file & seen).any())
    is_test = is_test & ~given_val
    if given_val.any():  # the source's own validation rows (a feature folder's val file)
        val = np.flatnonzero(given_val & seen)
        train_pool = np.flatnonzero(is_train & seen & ~given_val)
    else:  # validation only ever from the seen classes' training clips
        train_pool = np.flatnonzero(is_train & seen)
        val = _stratified_val(train_pool, labels, val_fraction, seed)
    test_side = is_test | (given_val if reference_layout else np.zeros_like(is_train))
    overlap = overlap_reason(is_train, is_test, ds.clip_ids, split)
    test_zsl = np.flatnonzero(is_test & unseen)
    parts = {
        "train": np.setdiff1d(train_pool, val),
        "val": val,
        "test_zsl": test_zsl,
        "test_gzsl": test_zsl if overlap else np.flatnonzero(test_side & (seen | unseen)),
    }
    for name in ("train", "test_zsl"):
        if len(parts[name]) == 0:
            raise UserError(f"split {split.name} leaves no {name} samples in this data "
                            f"({len(labels)} clips): the data lacks those classes or that side of the split")
    return Partition({name: idx.astype(np.int64) for name, idx in parts.items()}, overlap)
