"""Pose-anchored cue sampling on synthetic maps whose right answers are known in closed form."""
from __future__ import annotations

import numpy as np
import pytest

from posebridge.pipeline.config import CueConfig
from posebridge.stages.extract.backends.blazepose_spec import FEATURE_LEVELS
from posebridge.stages.extract.cues import feature_channels, sample_cues

LEVEL_SIZES = {"fpn64": 64, "fpn16": 16}


def _linear_level(size: int, channels: int, slopes: np.ndarray) -> np.ndarray:
    """level[row, col, c] = slopes[c, 0] * col + slopes[c, 1] * row + c."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    return (cols[..., None] * slopes[:, 0] + rows[..., None] * slopes[:, 1] + np.arange(channels)).astype(np.float32)


def _landmarks(points: dict[int, tuple[float, float]]) -> np.ndarray:
    landmarks = np.zeros((39, 5), np.float32)
    for joint, xy in points.items():
        landmarks[joint, :2] = xy
    return landmarks


def test_feature_channels_add_up_the_levels():
    assert feature_channels(("fpn64", "fpn16")) == 96
    assert feature_channels(tuple(FEATURE_LEVELS)) == 4 * 48 + 88 + 144


def test_window_mean_of_a_linear_map_is_its_value_at_the_joint():
    cfg = CueConfig(levels=("fpn64", "fpn16"), joints=(0, 11), window=3, window_radius=6.0, heatmap_patch=3)
    rng = np.random.default_rng(1)
    slopes = {name: rng.normal(size=(48, 2)) for name in cfg.levels}
    levels = {name: _linear_level(size, 48, slopes[name]) for name, size in LEVEL_SIZES.items()}
    points = {0: (100.3, 87.9), 11: (160.0, 140.5)}
    features, heatmaps = sample_cues(_landmarks(points), np.zeros((64, 64, 39), np.float32), levels, cfg)
    assert features.shape == (2, 96) and features.dtype == np.float32
    for row, joint in enumerate(cfg.joints):
        x, y = points[joint]
        offset = 0
        for name in cfg.levels:
            to_cells = LEVEL_SIZES[name] / 256
            col, cell_row = x * to_cells - 0.5, y * to_cells - 0.5  # cell centres sit at half cells
            expected = (slopes[name][:, 0] * col + slopes[name][:, 1] * cell_row + np.arange(48))
            expected /= FEATURE_LEVELS[name].rms
            np.testing.assert_allclose(features[row, offset:offset + 48], expected, rtol=1e-4, atol=1e-4)
            offset += 48
    np.testing.assert_allclose(heatmaps, 0.5)  # sigmoid(0)


def test_window_averages_over_its_radius():
    """A map that is 1 on a single cell: the window sees it only if the cell is within reach."""
    cfg = CueConfig(levels=("fpn64",), joints=(0, 1), window=3, window_radius=4.0)
    level = np.zeros((64, 64, 48), np.float32)
    level[20, 20] = 1.0  # cell centre at crop pixel (20.5 * 4) = 82
    near, far = (82.0 + 4.0, 82.0), (82.0 + 12.0, 82.0)  # one window point lands on the cell / none near it
    features, _ = sample_cues(_landmarks({0: near, 1: far}), np.zeros((64, 64, 39), np.float32),
                              {"fpn64": level}, cfg)
    np.testing.assert_allclose(features[0], 1 / 9 / FEATURE_LEVELS["fpn64"].rms, rtol=1e-5)
    np.testing.assert_allclose(features[1], 0.0)


def test_a_one_point_window_samples_at_the_joint():
    cfg = CueConfig(levels=("fpn64",), joints=(0,), window=1, window_radius=6.0)
    level = np.zeros((64, 64, 48), np.float32)
    level[20, 20] = 1.0
    features, _ = sample_cues(_landmarks({0: (82.0, 82.0)}), np.zeros((64, 64, 39), np.float32),
                              {"fpn64": level}, cfg)
    np.testing.assert_allclose(features[0], 1 / FEATURE_LEVELS["fpn64"].rms, rtol=1e-5)


def test_heatmap_patch_reads_the_joints_own_channel_centred_on_it():
    cfg = CueConfig(levels=("fpn64",), joints=(0, 15), heatmap_patch=5)
    logits = np.full((64, 64, 39), -30.0, np.float32)
    logits[30, 40, 15] = 4.0  # joint 15's peak, cell centre at crop pixel (162, 122)
    logits[30, 40, 0] = -4.0  # another channel at the same cell must not leak into joint 15
    logits[10, 10, 0] = 2.0  # joint 0's peak, at crop pixel (42, 42)
    levels = {"fpn64": np.zeros((64, 64, 48), np.float32)}
    _, heatmaps = sample_cues(_landmarks({0: (42.0, 42.0), 15: (162.0, 122.0)}), logits, levels, cfg)
    assert heatmaps.shape == (2, 5, 5) and heatmaps.dtype == np.float32
    np.testing.assert_allclose(heatmaps[0, 2, 2], 1 / (1 + np.exp(-2.0)), rtol=1e-6)
    np.testing.assert_allclose(heatmaps[1, 2, 2], 1 / (1 + np.exp(-4.0)), rtol=1e-6)
    for patch in heatmaps:
        assert np.unravel_index(patch.argmax(), patch.shape) == (2, 2)
        assert patch.sum() - patch[2, 2] < 1e-6  # one cell apart: neighbours are other cells


def test_heatmap_patch_interpolates_probabilities_between_cells():
    cfg = CueConfig(levels=("fpn64",), joints=(0,), heatmap_patch=1)
    logits = np.full((64, 64, 39), -30.0, np.float32)
    logits[10, 10, 0] = 30.0
    _, heatmaps = sample_cues(_landmarks({0: (42.0 + 2.0, 42.0)}), logits,
                              {"fpn64": np.zeros((64, 64, 48), np.float32)}, cfg)
    assert heatmaps[0, 0, 0] == pytest.approx(0.5, abs=1e-6)  # half-way to the next cell


@pytest.mark.parametrize("xy", [(-40.0, 300.0), (255.9, 0.0), (1e4, -1e4)])
def test_joints_off_the_crop_clamp_to_its_edge(xy):
    cfg = CueConfig(levels=("fpn64", "fpn16"), joints=(0,))
    levels = {name: np.ones((size, size, 48), np.float32) for name, size in LEVEL_SIZES.items()}
    features, heatmaps = sample_cues(_landmarks({0: xy}), np.zeros((64, 64, 39), np.float32), levels, cfg)
    expected = np.concatenate([np.full(48, 1 / FEATURE_LEVELS[n].rms) for n in cfg.levels])
    np.testing.assert_allclose(features[0], expected, rtol=1e-6)
    np.testing.assert_allclose(heatmaps, 0.5)
