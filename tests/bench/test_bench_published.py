"""The published-benchmark bench (bench/bench_published.py): its published rows name shipped splits,
and its baseline features and map on small hand-made clips; the real data is never read."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from posebridge.stages.splits.registry import get_split

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_published  # noqa: E402
import real_baseline  # noqa: E402


def test_every_published_cell_is_a_shipped_split_with_the_rows_named():
    published = json.loads(bench_published.PUBLISHED.read_text())
    for name, values in published["cells"].items():
        split = get_split(name)
        assert split.dataset in bench_published.SETS
        assert set(values) == set(published["rows"])
    assert published["source"]


def test_flat_features_centre_on_the_first_frame_and_drop_empty_frames():
    rng = np.random.default_rng(0)
    clip = rng.normal(size=(1, 10, 20, 3)) + 5.0
    clip[0, 0] = 0.0  # an empty (all-zero) frame, as Kinect files have
    features = real_baseline.flat_features(clip, centre=(0,), frames=4).reshape(4, 20, 6)
    assert features.shape == (4, 20, 6)
    np.testing.assert_allclose(features[0, 0, :3], 0.0, atol=1e-6)  # the first kept frame's centre
    positions, velocity = features[..., :3], features[..., 3:]
    np.testing.assert_allclose(velocity[:-1], np.diff(positions, axis=0), atol=1e-5)
    np.testing.assert_allclose(velocity[-1], 0.0)


def test_the_global_map_carries_seen_motions_to_unseen_classes_with_matching_texts():
    """Seen classes 0, 1; unseen class 2 moves like 0 and is described like 0, unseen class 3 like 1:
    the map trained on the seen classes alone must send each unseen class to its own text."""
    rng = np.random.default_rng(0)
    means = rng.normal(size=(2, 30)) * 3
    y = np.repeat(np.arange(4), 40)
    x = (means[y % 2] + rng.normal(size=(len(y), 30))).astype(np.float32)
    seen_text = np.eye(2, 8, dtype=np.float32)
    text = np.concatenate([seen_text, seen_text + 0.1 * rng.normal(size=(2, 8)).astype(np.float32)])
    assert real_baseline.zsl_only(x, y, x, y, text, np.array([2, 3]), seed=0) > 0.95
    assert real_baseline.zsl_only(x, y, x, y, text, np.array([3]), seed=0) == 1.0  # one unseen class: always right


def test_the_turned_global_baseline_sees_a_turned_and_moved_body_as_the_same_clip():
    """The third baseline's input: a clip and the same clip turned 70 degrees about the vertical and
    moved come back as one clip, in the body's frame (what the family's pre-normalisation gives)."""
    from posebridge.cache.layouts import load_layout

    layout = load_layout("kinect_v1")
    rng = np.random.default_rng(1)
    clip = rng.normal(scale=0.3, size=(1, 6, 20, 3)) + np.array([0.0, 0.0, 3.0])
    clip[:, 0] = 0.0  # an empty first frame, as recordings have
    angle = np.deg2rad(70.0)
    turn = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    moved = np.where(np.abs(clip).sum(-1, keepdims=True) > 0, clip @ turn.T + np.array([1.0, -0.5, 2.0]), 0.0)
    a = bench_published.turned_to_body(clip, layout)
    b = bench_published.turned_to_body(moved, layout)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert np.abs(a[0, 0]).sum() == 0  # the empty frame stays empty


def test_closest_pairs_ranks_class_pairs_by_the_cosine_of_their_prototypes():
    prototypes = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    pairs = bench_published.closest_pairs(prototypes, ["a", "b", "c", "d"], k=2)
    assert [(a, b) for _, a, b in pairs] == [("a", "b"), ("b", "c")]
    assert pairs[0][0] > pairs[1][0] > 0 and pairs[0][0] <= 1.0
