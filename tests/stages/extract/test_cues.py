"""Pose-anchored cue sampling on synthetic maps whose right answers are known in closed form."""
from __future__ import annotations

import numpy as np
import pytest

from posebridge.stages.extract.config import CueConfig
from posebridge.stages.extract.backends.blazepose_spec import FEATURE_LEVELS
from posebridge.stages.extract.backends.blazepose_cues import feature_channels, sample_cues
from posebridge.stages.extract.cues import DenseHeatmaps, GridGeometry, SimCCHeatmaps, sample_at_joints

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


# --- the shared sampler with another backend's geometry (mmpose: 192x256 crop, cells on pixels i * stride) ---

MMPOSE_GRID = GridGeometry(192, 256, cell_offset=0.0)


def test_mmpose_geometry_samples_a_linear_map_at_the_joint():
    """A 64 x 48 map over a 192 x 256 crop: cell (i, j) sits on crop pixel (4 j, 4 i), so col = x / 4."""
    cfg = CueConfig(levels=("stage",), joints=(0, 1), window=3, window_radius=6.0, heatmap_patch=3)
    rng = np.random.default_rng(2)
    slopes = rng.normal(size=(8, 2))
    rows, cols = np.mgrid[0:64, 0:48].astype(np.float32)
    level = (cols[..., None] * slopes[:, 0] + rows[..., None] * slopes[:, 1]).astype(np.float32)
    xy = np.array([[70.2, 101.7], [120.0, 30.5]])
    heat = DenseHeatmaps(np.zeros((64, 48, 17), np.float32), lambda v: np.clip(v, 0, 1))
    features, patches = sample_at_joints(xy, [(level, 2.0)], heat, np.array([0, 5]), MMPOSE_GRID, cfg)
    expected = 2.0 * (xy[:, :1] / 4 * slopes[:, 0] + xy[:, 1:] / 4 * slopes[:, 1])
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
    assert patches.shape == (2, 3, 3) and not patches.any()


def test_mmpose_geometry_heatmap_patch_is_centred_on_the_cell_under_the_joint():
    cfg = CueConfig(levels=("stage",), joints=(0,), heatmap_patch=3)
    maps = np.zeros((64, 48, 17), np.float32)
    maps[25, 30, 7] = 0.8  # channel 7's peak at crop pixel (120, 100) in mmpose's convention
    maps[25, 31, 7] = 1.7  # clipped to 1 by the dense map's to_probability
    heat = DenseHeatmaps(maps, lambda v: np.clip(v, 0, 1))
    _, patches = sample_at_joints(np.array([[120.0, 100.0]]), [(np.zeros((8, 6, 4), np.float32), 1.0)], heat,
                                  np.array([7]), MMPOSE_GRID, cfg)
    np.testing.assert_allclose(patches[0], [[0, 0, 0], [0, 0.8, 1.0], [0, 0, 0]], atol=1e-7)


def _simcc(x: np.ndarray, y: np.ndarray) -> SimCCHeatmaps:
    return SimCCHeatmaps(x=x, y=y, split_ratio=2.0, cell=4.0)


def test_simcc_patch_of_a_point_mass_is_one_in_the_cell_holding_it():
    """Delta distributions: all mass in bin 200 (x = 100 px) and bin 300 (y = 150 px)."""
    cfg = CueConfig(levels=("stage",), joints=(0,), heatmap_patch=3)
    x, y = np.zeros((17, 384)), np.zeros((17, 512))
    x[3, 200], y[3, 300] = 1.0, 1.0
    level = [(np.zeros((8, 6, 4), np.float32), 1.0)]
    _, centred = sample_at_joints(np.array([[100.0, 150.0]]), level, _simcc(x, y), np.array([3]), MMPOSE_GRID, cfg)
    np.testing.assert_allclose(centred[0], [[0, 0, 0], [0, 1, 0], [0, 0, 0]], atol=1e-12)
    # Joint 4 px (one cell) left and 4 px below the mass: it lands in the right column, top row.
    _, shifted = sample_at_joints(np.array([[96.0, 154.0]]), level, _simcc(x, y), np.array([3]), MMPOSE_GRID, cfg)
    np.testing.assert_allclose(shifted[0], [[0, 0, 1], [0, 0, 0], [0, 0, 0]], atol=1e-12)


def test_simcc_patch_is_the_mass_of_the_outer_product_over_each_cell():
    """Uniform x (each 4 px cell holds 8 of 384 bins) times a point mass in y: only the y row is lit."""
    cfg = CueConfig(levels=("stage",), joints=(0,), heatmap_patch=5)
    x, y = np.full((17, 384), 1 / 384), np.zeros((17, 512))
    y[0, 101] = 1.0  # y = 50.5 px
    _, patches = sample_at_joints(np.array([[90.0, 50.5]]), [(np.zeros((8, 6, 4), np.float32), 1.0)],
                                  _simcc(x, y), np.array([0]), MMPOSE_GRID, cfg)
    expected = np.zeros((5, 5))
    expected[2] = 8 / 384
    np.testing.assert_allclose(patches[0], expected, rtol=1e-6, atol=1e-12)


def test_simcc_patch_covering_the_distribution_sums_to_one():
    """A Gaussian of 3 px (6 bins) around the joint: a 9 x 9 patch of 4 px cells holds all of it but
    the tails beyond 18 px = 6 sigma, i.e. less than 1e-8 of the mass on each axis."""
    cfg = CueConfig(levels=("stage",), joints=(0,), heatmap_patch=9)
    bins_x, bins_y = np.arange(384), np.arange(512)
    x = np.exp(-0.5 * ((bins_x - 2 * 80.3) / 6) ** 2)[None].repeat(17, 0)
    y = np.exp(-0.5 * ((bins_y - 2 * 120.9) / 6) ** 2)[None].repeat(17, 0)
    x, y = x / x.sum(1, keepdims=True), y / y.sum(1, keepdims=True)
    _, patches = sample_at_joints(np.array([[80.3, 120.9]]), [(np.zeros((8, 6, 4), np.float32), 1.0)],
                                  _simcc(x, y), np.array([0]), MMPOSE_GRID, cfg)
    assert patches.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.unravel_index(patches[0].argmax(), (9, 9)) == (4, 4)
    assert (patches >= 0).all() and patches.max() <= 1
