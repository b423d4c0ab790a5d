"""SYNTHETIC benchmark: procedurally generated clips in the cue cache's exact schema.

No labelled action videos can be had offline, so `make demo` trains and evaluates on this
dataset ("synthetic", split "synthetic_zsl"). It checks the mechanics of stage 2, not the science.
It is an ordinary data set: `posebridge synthetic` writes its cue store (what `posebridge extract`
does for videos), and the shipped split file stages/splits/data/split_files/synthetic_zsl.json
(= synthetic_split_file(), also written next to the store) says how to train on it.

A class is a combination of four attributes: body part x motion x tempo x context (an object
held in one hand). Part, motion and tempo shape the skeleton; the context exists ONLY in the
cue arrays (features and heatmap patches at the holding hand's wrist and elbow), never in the
skeleton, so a skeleton-only model cannot tell "... holding a cup" from "... holding a phone".
Unseen classes are new combinations of attribute values that all occur in seen classes, and
include pairs that differ only in context.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posebridge.cache.schema import BLAZEPOSE33, CacheLayout
from posebridge.cache.store import ClipArrays, ClipRecord, CueStore, store_dir
from posebridge.cache.writer import ShardWriter
from posebridge.cache.atomic import atomic_path
from posebridge.stages.extract.config import BLAZEPOSE_JOINTS, BODY13
from posebridge.cache.fingerprint import file_code_sha256, fingerprint
from posebridge.stages.splits.spec import Split
from posebridge.stages.splits.split_file import parse_split

# Bump when what the generator produces changes: the fingerprint, and so the store, changes with it.
GENERATOR_VERSION = 1
DATASET = "synthetic"
SPLIT_NAME = "synthetic_zsl"

PARTS = ("left arm", "right arm", "left leg")
MOTIONS = ("raise", "swing", "circle")
TEMPOS = ("slowly", "quickly")
CONTEXTS = ("holding a cup", "holding a phone")

# Unseen (part, motion, tempo, context) combinations: 9 of 36 classes (25%). The first eight are
# four context-only pairs; every (part, motion) pair among them is also seen at the other tempo.
UNSEEN = (
    ("left arm", "raise", "slowly", "holding a cup"), ("left arm", "raise", "slowly", "holding a phone"),
    ("right arm", "circle", "quickly", "holding a cup"), ("right arm", "circle", "quickly", "holding a phone"),
    ("left leg", "swing", "slowly", "holding a cup"), ("left leg", "swing", "slowly", "holding a phone"),
    ("right arm", "swing", "slowly", "holding a cup"), ("right arm", "swing", "slowly", "holding a phone"),
    ("left leg", "raise", "quickly", "holding a phone"),
)

FPS = 30.0
IMAGE_HEIGHT, IMAGE_WIDTH = 1080, 1920  # landscape, as NTU RGB+D
MIN_FRAMES, MAX_FRAMES = 48, 96
TRAIN_FRACTION = 0.7  # per class; the rest is the "test" subset
CLIPS_PER_CLASS = 30  # the demo's store: 36 classes x 30 = 1080 clips
SEED = 0
SHARD_CLIPS = 128  # clips per written part: few parts, as the whole set is written in one go
CYCLES_PER_SECOND = {"slowly": 0.5, "quickly": 1.5}

# Cue layout of the default extractor (ExtractConfig()): fpn64 + fpn16, 48 channels each.
LEVELS = ("fpn64", "fpn16")
FEATURE_CHANNELS = 96
HEATMAP_PATCH = 3
CUE_JOINTS = BODY13
_CUE_POS = {joint: i for i, joint in enumerate(CUE_JOINTS)}  # BlazePose joint -> cue position

# Cue signal strengths, in units of the per-channel background std (~1): modest on purpose, so
# the context has to be learned from the cue encoder rather than read off one channel.
CONTEXT_STRENGTH = 2.5
ELBOW_SHARE = 0.4  # the elbow sees part of the held object
# Heatmap blob at the holding wrist per context: (sigma in patch cells, dx, dy); others get (1.0, 0, 0).
CONTEXT_BLOB = {"holding a cup": (0.75, 0.25, 0.0), "holding a phone": (1.3, 0.0, -0.25)}

# Standing person facing the camera, in body units (about 1.0 from head top to heels), mid-hip at
# the origin, y down, z towards the camera negative. The person's left is on the image's right.
TEMPLATE = np.array([
    (0.0, -0.42, -0.06), (0.012, -0.44, -0.05), (0.022, -0.44, -0.05), (0.032, -0.44, -0.04),
    (-0.012, -0.44, -0.05), (-0.022, -0.44, -0.05), (-0.032, -0.44, -0.04), (0.05, -0.43, 0.0),
    (-0.05, -0.43, 0.0), (0.015, -0.40, -0.05), (-0.015, -0.40, -0.05), (0.10, -0.33, 0.0),
    (-0.10, -0.33, 0.0), (0.12, -0.18, 0.0), (-0.12, -0.18, 0.0), (0.13, -0.04, 0.0),
    (-0.13, -0.04, 0.0), (0.14, -0.01, 0.0), (-0.14, -0.01, 0.0), (0.13, 0.0, -0.01),
    (-0.13, 0.0, -0.01), (0.12, -0.01, -0.02), (-0.12, -0.01, -0.02), (0.06, 0.0, 0.0),
    (-0.06, 0.0, 0.0), (0.065, 0.25, 0.0), (-0.065, 0.25, 0.0), (0.065, 0.48, 0.0),
    (-0.065, 0.48, 0.0), (0.06, 0.50, 0.02), (-0.06, 0.50, 0.02), (0.08, 0.52, -0.05),
    (-0.08, 0.52, -0.05),
], dtype=np.float64)
assert len(TEMPLATE) == len(BLAZEPOSE_JOINTS)

# Kinematic chains (BlazePose indices): root, middle, end, and the points carried by the end.
_ARMS = {"left arm": (11, 13, 15, (17, 19, 21)), "right arm": (12, 14, 16, (18, 20, 22))}
_LEG = (23, 25, 27, (29, 31))  # the left leg
_SIDE = {"left arm": 1.0, "right arm": -1.0, "left leg": 1.0}  # +1: on the image's right
_HOLDING_HAND = {"left arm": "left", "right arm": "right", "left leg": "right"}
_HAND_JOINTS = {"left": (15, 13), "right": (16, 14)}  # wrist, elbow


@dataclass(frozen=True)
class SyntheticClass:
    part: str
    motion: str
    tempo: str
    context: str

    @property
    def name(self) -> str:
        return f"{self.motion} {self.part} {self.tempo} {self.context}"


def synthetic_classes() -> list[SyntheticClass]:
    """All 36 classes, in label order (part, motion, tempo, context nested in that order)."""
    return [SyntheticClass(*combo) for combo in itertools.product(PARTS, MOTIONS, TEMPOS, CONTEXTS)]


def synthetic_split_file() -> dict:
    """The "synthetic_zsl" split as a split file: 27 seen, 9 unseen classes (fixed, see UNSEEN),
    with each class's texts; sides are the store's meta["split"] values. The package ships this
    dict as stages/splits/data/split_files/synthetic_zsl.json (tests check that the two agree)
    and write_synthetic_store() writes it next to the store."""
    classes = synthetic_classes()
    return {
        "name": SPLIT_NAME, "dataset": DATASET, "skeleton": BLAZEPOSE33.name,
        "assumption": "SYNTHETIC benchmark: checks the mechanics of stage 2, not recognition of real actions",
        "get_data": "posebridge synthetic",
        "classes": [_class_entry(c) for c in classes],
        "train": "train", "test": "test",
        "unseen": [c.name for c in classes if (c.part, c.motion, c.tempo, c.context) in UNSEEN],
    }


def synthetic_split() -> Split:
    """The "synthetic_zsl" split, read through the split-file path like any other."""
    return parse_split(synthetic_split_file(), where=f"{__name__}.synthetic_split_file()", base_dir=Path("."),
                       source=f"{SPLIT_NAME}.json ({__name__}, generated)").split(0)


# --- texts ------------------------------------------------------------------------------------

_MOTION_PHRASES = {  # how the moving part moves, per motion
    "raise": "lifts up and comes back down",
    "swing": "swings from side to side",
    "circle": "moves in a circle",
}
_PHASES = {  # start / middle / end, per motion
    "raise": ("the {part} starts hanging down at rest", "the {part} is lifted up high",
              "the {part} is lowered back to rest"),
    "swing": ("the {part} starts still near the body", "the {part} swings out to one side and back across",
              "the {part} keeps swinging back and forth"),
    "circle": ("the {part} starts moving out from the body", "the {part} traces a full circle",
               "the {part} completes the circles and goes on turning"),
}


def _object(context: str) -> str:
    return context.removeprefix("holding ")


def _class_entry(c: SyntheticClass) -> dict:
    """A class's split-file entry: texts composed from the same attributes as the class."""
    hand = _HOLDING_HAND[c.part]
    thing = _object(c.context)
    moves = f"{_MOTION_PHRASES[c.motion]} {c.tempo}"
    holds = f"the {hand} hand holds {thing}"
    if c.part == "left leg":
        hands = f"{holds}; the other hand rests at the side"
        legs = f"the left leg {moves} while the right leg stands"
    else:
        hands = f"{holds}; the {c.part} carrying it {moves}"
        legs = "both legs stand still, feet on the ground"
    tempo = "slow, smooth" if c.tempo == "slowly" else "fast, brisk"
    return {
        "name": c.name,
        "descriptions": [f"a standing person {c.context}, whose {c.part} {moves}, with {tempo} repetitions."],
        "parts": {"head": "the head stays upright, facing forward", "hands": hands,
                  "torso": "the torso stays upright and still", "legs": legs},
        "temporal": dict(zip(("start", "middle", "end"),
                             (p.format(part=c.part) + f", {c.context}" for p in _PHASES[c.motion]))),
    }


# --- skeleton ---------------------------------------------------------------------------------

def _move_limb(points: np.ndarray, root: int, chain: tuple, angle: np.ndarray, bend: np.ndarray,
               depth: np.ndarray, shift: np.ndarray, side: float) -> None:
    """Move a two-segment limb hanging from `root` (in place, all frames at once).

    points: [T, V, 3]. angle: [T] abduction of the upper segment in the image plane (0 = rest,
    positive = away from the body; side is +1 for a limb on the image's right, -1 on its left);
    bend: [T] extra angle of the lower segment; depth: [T] z offset of the end (loops in depth);
    shift: [T, 3] displacement of the whole limb below the root (a knee raised towards the camera).
    """
    middle, end, carried = chain
    rest_upper = points[:, middle] - points[:, root]
    rest_lower = points[:, end] - points[:, middle]
    rest_carried = points[:, list(carried)] - points[:, end, None]

    def rot(v: np.ndarray, a: np.ndarray) -> np.ndarray:
        c, s = np.cos(-side * a), np.sin(-side * a)
        return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1], v[..., 2]], axis=-1)

    points[:, middle] = points[:, root] + rot(rest_upper, angle) + shift
    points[:, end] = points[:, middle] + rot(rest_lower, angle + bend)
    points[:, end, 2] += depth
    # Hand / foot points ride rigidly on the end joint.
    points[:, list(carried)] = points[:, end, None] + rot(rest_carried, (angle + bend)[:, None])


def _limb_motion(motion: str, phase: np.ndarray, amp: float, is_leg: bool) -> tuple[np.ndarray, ...]:
    """(abduction, bend, depth, shift [T, 3]) of the moving limb; `phase` is 2*pi*f*t + phi."""
    zero = np.zeros_like(phase)
    no_shift = np.zeros((len(phase), 3))
    if motion == "raise":
        lift = (1 - np.cos(phase)) / 2
        if is_leg:  # knee raise: the thigh turns towards the camera, the shin hangs below the knee
            flexion = 1.3 * amp * lift
            thigh = TEMPLATE[25, 1] - TEMPLATE[23, 1]
            shift = np.stack([zero, -thigh * (1 - np.cos(flexion)), -thigh * np.sin(flexion)], axis=1)
            return 0.05 * lift, zero, zero, shift
        return 2.4 * amp * lift, 0.3 * lift, zero, no_shift
    reach = 0.45 if is_leg else 1.0  # legs move less far than arms
    if motion == "swing":
        return reach * 0.9 * amp * np.sin(phase), 0.1 * np.sin(phase), zero, no_shift
    # circle: abduction and depth in quadrature, so the end traces a loop
    return reach * (0.9 + 0.6 * amp * np.sin(phase)), 0.2 * np.cos(phase), 0.15 * amp * np.cos(phase), no_shift


def make_skeleton(cls: SyntheticClass, num_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints [T, 33, 5] as the cache stores them, person score [T]) for one clip."""
    t = np.arange(num_frames) / FPS
    freq = CYCLES_PER_SECOND[cls.tempo] * rng.uniform(0.85, 1.15)
    phase = 2 * math.pi * freq * t + rng.uniform(0, 2 * math.pi)
    amp = rng.uniform(0.8, 1.1)

    body = np.repeat((TEMPLATE * rng.uniform(0.95, 1.05, size=3))[None], num_frames, axis=0)
    # Idle limbs hang with a little individual offset; the moving part then overrides its own chain.
    still = np.zeros(num_frames)
    for name, (root, *chain) in _ARMS.items():
        _move_limb(body, root, tuple(chain), still + rng.uniform(0.0, 0.15), still + rng.uniform(0.0, 0.2),
                   still, np.zeros((num_frames, 3)), side=_SIDE[name])
    root, *chain = _LEG if cls.part == "left leg" else _ARMS[cls.part]
    _move_limb(body, root, tuple(chain), *_limb_motion(cls.motion, phase, amp, is_leg=cls.part == "left leg"),
               side=_SIDE[cls.part])

    sway = 0.01 * np.sin(2 * math.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * math.pi))
    body[:, :, 0] += sway[:, None]
    body += rng.normal(0, 0.004, size=body.shape)

    pixels_per_unit = IMAGE_HEIGHT * rng.uniform(0.6, 0.8)
    centre_x = IMAGE_WIDTH * rng.uniform(0.35, 0.65)
    centre_y = IMAGE_HEIGHT * rng.uniform(0.5, 0.56)
    keypoints = np.empty((num_frames, len(TEMPLATE), 5), dtype=np.float32)
    keypoints[..., 0] = (centre_x + body[..., 0] * pixels_per_unit) / IMAGE_WIDTH
    keypoints[..., 1] = (centre_y + body[..., 1] * pixels_per_unit) / IMAGE_HEIGHT
    keypoints[..., 2] = body[..., 2] * pixels_per_unit / IMAGE_WIDTH  # BlazePose z: x's scale, hips ~0
    keypoints[..., 3] = rng.uniform(0.9, 1.0, size=keypoints.shape[:2])
    keypoints[..., 4] = rng.uniform(0.97, 1.0, size=keypoints.shape[:2])
    score = np.clip(rng.normal(0.95, 0.02, size=num_frames), 0, 1).astype(np.float32)
    return keypoints, score


# --- cues -------------------------------------------------------------------------------------

def _fixed_patterns() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-joint base appearance [Vc, C] and one unit-norm feature direction per context.

    Seeded by the generator version alone: the same in every clip and every store.
    """
    rng = np.random.default_rng([GENERATOR_VERSION, 7919])
    joint_base = rng.standard_normal((len(CUE_JOINTS), FEATURE_CHANNELS), dtype=np.float32)
    directions = rng.standard_normal((len(CONTEXTS), FEATURE_CHANNELS), dtype=np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return joint_base, dict(zip(CONTEXTS, directions))


_JOINT_BASE, _CONTEXT_DIRECTION = _fixed_patterns()


def _smooth_noise(num_frames: int, shape: tuple[int, ...], every: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance float32 noise [T, *shape] that varies smoothly: knots every `every` frames, linear between."""
    knots = rng.standard_normal((num_frames // every + 2, math.prod(shape)), dtype=np.float32)
    position = np.arange(num_frames) / every
    low = np.floor(position).astype(int)
    frac = position - low
    # Blending two knots shrinks the variance between them; dividing by the weights' norm keeps it 1.
    norm = np.sqrt((1 - frac) ** 2 + frac ** 2)
    w_low, w_high = ((1 - frac) / norm).astype(np.float32), (frac / norm).astype(np.float32)
    blended = knots[low] * w_low[:, None] + knots[low + 1] * w_high[:, None]
    return blended.reshape(num_frames, *shape)


def make_cues(cls: SyntheticClass, num_frames: int, visibility: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(features [T, 13, 96], heatmaps [T, 13, 3, 3]) float32; the context lives only here."""
    wrist, elbow = (_CUE_POS[j] for j in _HAND_JOINTS[_HOLDING_HAND[cls.part]])

    # Background: fixed joint appearance + per-clip offset (the person's look) + smooth change.
    look = _JOINT_BASE + 0.7 * rng.standard_normal(_JOINT_BASE.shape, dtype=np.float32)
    features = look[None] + 0.7 * _smooth_noise(num_frames, _JOINT_BASE.shape, 8, rng)
    # The object is not equally visible in every frame: the signal fades in and out a little.
    presence = np.clip(0.8 + 0.2 * _smooth_noise(num_frames, (), 12, rng), 0.4, 1.0)
    signal = CONTEXT_STRENGTH * presence[:, None] * _CONTEXT_DIRECTION[cls.context][None]
    features[:, wrist] += signal
    features[:, elbow] += ELBOW_SHARE * signal

    cells = np.arange(HEATMAP_PATCH) - (HEATMAP_PATCH - 1) / 2
    sigma = np.full((num_frames, len(CUE_JOINTS)), 1.0) * rng.uniform(0.9, 1.1)
    dx = rng.normal(0, 0.15, size=sigma.shape)
    dy = rng.normal(0, 0.15, size=sigma.shape)
    blob_sigma, blob_dx, blob_dy = CONTEXT_BLOB[cls.context]
    sigma[:, wrist] = blob_sigma * rng.uniform(0.9, 1.1)
    dx[:, wrist] += blob_dx
    dy[:, wrist] += blob_dy
    peak = rng.uniform(0.6, 0.9) * visibility[:, CUE_JOINTS]  # [T, Vc]
    u = cells[None, None, None, :] - dx[..., None, None]  # patch column offsets
    v = cells[None, None, :, None] - dy[..., None, None]  # patch row offsets
    heatmaps = peak[..., None, None] * np.exp(-(u ** 2 + v ** 2) / (2 * sigma[..., None, None] ** 2))
    heatmaps = np.clip(heatmaps + rng.normal(0, 0.03, size=heatmaps.shape), 0, 1)
    return features.astype(np.float32), heatmaps.astype(np.float32)


def generate_clip(label: int, index: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(keypoints, score, features, heatmaps) of clip `index` of class `label`.

    Each clip has its own random stream, so a clip does not depend on how many were generated.
    """
    cls = synthetic_classes()[label]
    rng = np.random.default_rng([seed, label, index])
    num_frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    keypoints, score = make_skeleton(cls, num_frames, rng)
    features, heatmaps = make_cues(cls, num_frames, keypoints[..., 3], rng)
    return keypoints, score, features, heatmaps


# --- store ------------------------------------------------------------------------------------

def generator_settings(clips_per_class: int, seed: int) -> dict:
    """Everything that changes the generated store, and so enters its fingerprint.

    The generator's constants (signal strengths, clip lengths, image size, ...) live in this file,
    so its code hash (cache.fingerprint.code_sha256) is part of the fingerprint: any code edit
    (not a docstring or comment) regenerates the store (a few seconds)
    rather than silently reusing one made by other code.
    """
    return {"generator_version": GENERATOR_VERSION, "dataset": DATASET, "clips_per_class": clips_per_class,
            "seed": seed, "train_fraction": TRAIN_FRACTION, "num_classes": len(synthetic_classes()),
            "layout": store_layout().to_attrs(), "source_sha256": file_code_sha256(__file__)}


def store_layout() -> CacheLayout:
    """The layout of the default extractor's stores, so the synthetic store reads like a real one,
    with one person slot (M = 1): every synthetic clip shows one person, and stage 2 then costs
    what it did before schema v2 (the M = 2 path is tested on real two-person clips instead)."""
    return CacheLayout(skeleton=BLAZEPOSE33.name, joint_names=BLAZEPOSE_JOINTS, cue_joints=CUE_JOINTS,
                       levels=LEVELS, feature_channels=FEATURE_CHANNELS, heatmap_patch=HEATMAP_PATCH,
                       feature_dtype="uint8", heatmap_kind="sigmoid", max_persons=1)


def write_synthetic_store(cache_root: Path, clips_per_class: int = CLIPS_PER_CLASS, seed: int = SEED) -> Path:
    """Write the SYNTHETIC dataset into the cue cache and return the store's path.

    Clips of each class are split TRAIN_FRACTION / rest into meta["split"] "train" / "test".
    Only clips the store lacks are generated: a second call with the same settings writes
    nothing, and an interrupted one is completed.
    """
    settings = generator_settings(clips_per_class, seed)
    fp = fingerprint(settings)
    path = store_dir(Path(cache_root), DATASET, fp)
    store = CueStore.create(path, dataset=DATASET, fingerprint=fp,
                            extractor={"backend": "synthetic", **settings}, layout=store_layout())
    done = {record.clip_id for record in store.clips()}
    num_train = round(TRAIN_FRACTION * clips_per_class)
    with ShardWriter(store, shard_clips=SHARD_CLIPS) as writer:
        for label, cls in enumerate(synthetic_classes()):
            for index in range(clips_per_class):
                clip_id = f"synthetic-{label:02d}-{index:04d}"
                if clip_id in done:
                    continue
                keypoints, score, features, heatmaps = generate_clip(label, index, seed)
                record = ClipRecord(
                    clip_id=clip_id, content_id=f"synthetic-{fp[:16]}-{label:02d}-{index:04d}", label=label,
                    label_name=cls.name, fps=FPS, height=IMAGE_HEIGHT, width=IMAGE_WIDTH,
                    meta={"split": "train" if index < num_train else "test", "synthetic": True,
                          "part": cls.part, "motion": cls.motion, "tempo": cls.tempo, "context": cls.context},
                    num_frames=len(keypoints))
                one_person = ClipArrays(keypoints=keypoints[:, None], score=score[:, None], features=features[:, None],
                                        heatmaps=heatmaps[:, None])  # [T, M=1, ...]
                writer.add(record, one_person)
    write_split_file(Path(path) / SPLIT_FILE)
    return path


SPLIT_FILE = "split.json"  # next to the store's data: `train --store <store> --split-file <store>/split.json`


def write_split_file(path: Path) -> Path:
    """The synthetic_zsl split file (what the package ships), so the store is an ordinary data set
    with its split file beside it."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(synthetic_split_file(), indent=1) + "\n")
    return path
