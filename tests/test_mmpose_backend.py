"""The optional mmpose backend (runs in .venv-mmpose: `make test-mmpose`; skipped where mmpose is absent).

No pretrained weights can be fetched offline: the real model is built from the config shipped in
the mmpose wheel with RANDOM weights, saved as a checkpoint and loaded back through the backend's
real loading code. Keypoint positions are therefore meaningless; these tests check mechanics only
(loading, cropping geometry, decoding, cue shapes and ranges, fingerprint inputs, errors).
"""
from __future__ import annotations

import math

import pytest

pytest.importorskip("mmpose")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from posebridge.pipeline.config import BODY13, CueConfig, ExtractConfig  # noqa: E402
from posebridge.pipeline.errors import UserError  # noqa: E402
from posebridge.stages.extract.backends import blazepose_roi as geometry  # noqa: E402
from posebridge.stages.extract.backends import mmpose_backend as mb  # noqa: E402
from posebridge.stages.extract.backends import make_backend
from posebridge.stages.extract.backends.base import FrameCues  # noqa: E402
from posebridge.stages.extract.frames import RGBFrame  # noqa: E402
from posebridge.stages.extract.run import extractor_identity  # noqa: E402
from posebridge.stages.extract.video import iter_frames  # noqa: E402

CONFIG = ExtractConfig(backend="mmpose", cues=CueConfig(levels=("backbone",)))
HRNET_W32_CHANNELS = 32  # the HRNet-w32 backbone's single output: [32, 64, 48]


@pytest.fixture(scope="module")
def config_path():
    path = mb.resolve_config(mb.DEFAULT_CONFIG)
    assert path.is_file() and ".mim" in path.parts
    return path


@pytest.fixture(scope="module")
def reference(config_path):
    torch.manual_seed(0)
    return mb.build_architecture(config_path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, reference):
    path = tmp_path_factory.mktemp("ckpt") / "hrnet_w32_random.pth"
    torch.save(reference.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def backend(models_dir, checkpoint):
    return make_backend("mmpose", CONFIG, models_dir=models_dir, num_threads=1, checkpoint=checkpoint)


@pytest.fixture(scope="module")
def messi(backend, messi_jpg) -> FrameCues:
    rgb = cv2.cvtColor(cv2.imread(str(messi_jpg)), cv2.COLOR_BGR2RGB)
    return backend.process(RGBFrame(rgb))


def _check_cues(cues: FrameCues, person: bool = True):
    vc = len(BODY13)
    assert cues.keypoints.shape == (17, 5) and cues.keypoints.dtype == np.float32
    assert cues.features.shape == (vc, HRNET_W32_CHANNELS) and cues.features.dtype == np.float32
    assert cues.heatmaps.shape == (vc, 3, 3) and cues.heatmaps.dtype == np.float32
    for array in (cues.keypoints, cues.features, cues.heatmaps):
        assert np.isfinite(array).all()
    assert cues.heatmaps.min() >= 0 and cues.heatmaps.max() <= 1
    assert (cues.keypoints[:, 2] == 0).all()  # 2-D model: no depth
    assert ((cues.keypoints[:, 3:] >= 0) & (cues.keypoints[:, 3:] <= 1)).all()
    if person:
        assert 0 < cues.score <= 1
        assert cues.features.any()


def test_the_checkpoint_is_really_loaded(backend, reference):
    loaded, saved = backend.model.state_dict(), reference.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k].cpu(), saved[k]) for k in saved)
    assert not backend.model.training
    assert backend.model.cfg.model.test_cfg.flip_test is False
    assert backend.model.cfg.model.backbone.get("init_cfg") is None  # no pretrained URL left to fetch


def test_messi(backend, messi):
    _check_cues(messi)
    assert backend.joint_names == mb.COCO17_JOINTS and len(backend.joint_names) == 17
    assert backend.feature_channels() == HRNET_W32_CHANNELS
    assert (backend.input_w, backend.input_h) == (192, 256)


def test_demo_video_frames(backend, demo_videos):
    cam01 = next(p for p in demo_videos if p.name == "cam01.mp4")
    before = dict(backend.stats)
    frames = list(iter_frames(cam01, stride=20, max_frames=3))
    results = [backend.process(frame) for frame in frames]
    assert len(results) == 3
    for cues in results:
        _check_cues(cues)
    assert backend.stats["frames"] - before["frames"] == 3
    assert backend.stats["landmark_calls"] - before["landmark_calls"] == 3
    # The same frame gives the same cues (no hidden state between frames).
    again = backend.process(frames[0])
    np.testing.assert_array_equal(again.keypoints, results[0].keypoints)
    np.testing.assert_array_equal(again.features, results[0].features)


def test_no_person_gives_zeros(backend):
    before = dict(backend.stats)
    cues = backend.process(RGBFrame(np.full((240, 320, 3), 90, np.uint8)))
    _check_cues(cues, person=False)
    assert cues.score == 0.0 and not cues.keypoints.any() and not cues.features.any()
    assert backend.stats["landmark_calls"] == before["landmark_calls"]
    assert backend.stats["frames_without_person"] - before["frames_without_person"] == 1


def test_crop_geometry_round_trips(backend):
    roi = geometry.Roi(center=(300.0, 200.0), side=400.0, rotation=math.radians(30))
    to_crop = backend._image_to_crop(roi)
    centre = geometry.apply(to_crop, np.array([[300.0, 200.0]]))[0]
    np.testing.assert_allclose(centre, [backend.input_w / 2, backend.input_h / 2])
    # The ROI's "up" direction (sin r, -cos r) points straight up in the crop; its side spans the height.
    up = np.array([[300 + 200 * math.sin(roi.rotation), 200 - 200 * math.cos(roi.rotation)]])
    np.testing.assert_allclose(geometry.apply(to_crop, up)[0], [backend.input_w / 2, 0], atol=1e-9)
    points = np.array([[10.0, 20.0], [95.5, 250.0]])
    back = geometry.apply(geometry.invert(to_crop), geometry.apply(to_crop, points))
    np.testing.assert_allclose(back, points)


def test_cue_joints_map_body13_to_coco():
    coco = mb.MMPoseBackend._coco_cue_joints(BODY13)
    assert [mb.COCO17_JOINTS[i] for i in coco] == [
        "nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]


def test_model_files_cover_checkpoint_and_config(backend, checkpoint, config_path, reference, models_dir,
                                                 tmp_path):
    files = backend.model_files()
    assert files["mmpose_checkpoint"] == checkpoint and files["mmpose_config"] == config_path
    assert files["pose_detection"].is_file()
    identity = extractor_identity(CONFIG, backend)
    assert set(identity["models"]) == {"pose_detection", "mmpose_checkpoint", "mmpose_config"}
    assert identity["backend"] == "mmpose"
    # Other weights -> another fingerprint input.
    other_state = {k: v + 1 if v.is_floating_point() else v for k, v in reference.state_dict().items()}
    other = tmp_path / "other.pth"
    torch.save(other_state, other)
    other_backend = make_backend("mmpose", CONFIG, models_dir=models_dir, num_threads=1, checkpoint=other)
    other_identity = extractor_identity(CONFIG, other_backend)
    assert other_identity["models"]["mmpose_checkpoint"] != identity["models"]["mmpose_checkpoint"]
    assert other_identity["models"]["mmpose_config"] == identity["models"]["mmpose_config"]


def test_mmengine_checkpoint_with_numpy_meta_loads(reference, tmp_path):
    """mmpose's own checkpoints wrap the weights with a `meta` holding numpy arrays."""
    path = tmp_path / "mmengine_style.pth"
    meta = {"dataset_meta": {"sigmas": np.linspace(0.025, 0.089, 17, dtype=np.float32),
                             "num_keypoints": 17, "scale": np.float64(1.0)}}
    torch.save({"meta": meta, "state_dict": {"module." + k: v for k, v in reference.state_dict().items()}}, path)
    state = mb.load_state_dict_file(path)
    assert state.keys() == reference.state_dict().keys()


def _one_line_user_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_missing_checkpoint_is_a_one_line_user_error(models_dir, tmp_path):
    missing = tmp_path / "nowhere" / "hrnet.pth"
    with pytest.raises(UserError) as excinfo:
        make_backend("mmpose", CONFIG, models_dir=models_dir, checkpoint=missing)
    assert str(missing) in _one_line_user_error(excinfo) and "missing" in str(excinfo.value)


def test_no_checkpoint_and_url_checkpoint_are_user_errors(models_dir, monkeypatch):
    monkeypatch.delenv(mb.CHECKPOINT_ENV, raising=False)
    with pytest.raises(UserError, match=mb.CHECKPOINT_ENV) as excinfo:
        make_backend("mmpose", CONFIG, models_dir=models_dir)
    _one_line_user_error(excinfo)
    with pytest.raises(UserError, match="URL") as excinfo:
        make_backend("mmpose", CONFIG, models_dir=models_dir, checkpoint="https://example.org/hrnet.pth")
    _one_line_user_error(excinfo)


def test_checkpoint_from_the_environment(models_dir, checkpoint, monkeypatch):
    monkeypatch.setenv(mb.CHECKPOINT_ENV, str(checkpoint))
    from_env = make_backend("mmpose", CONFIG, models_dir=models_dir, num_threads=1)
    assert from_env.model_files()["mmpose_checkpoint"] == checkpoint


def test_checkpoint_that_does_not_fit_the_config(models_dir, reference, tmp_path):
    state = reference.state_dict()
    state.pop(next(k for k in state if k.startswith("head.")))
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match="does not fit") as excinfo:
        make_backend("mmpose", CONFIG, models_dir=models_dir, checkpoint=path)
    _one_line_user_error(excinfo)


def test_bad_levels_joints_and_config_are_user_errors(models_dir, checkpoint):
    with pytest.raises(UserError, match="--levels backbone") as excinfo:  # BlazePose's default levels
        make_backend("mmpose", ExtractConfig(backend="mmpose"), models_dir=models_dir, checkpoint=checkpoint)
    _one_line_user_error(excinfo)
    all_joints = CueConfig(levels=("backbone",), joints=tuple(range(33)))
    with pytest.raises(UserError, match="COCO-17") as excinfo:
        make_backend("mmpose", ExtractConfig(backend="mmpose", cues=all_joints), models_dir=models_dir,
                     checkpoint=checkpoint)
    _one_line_user_error(excinfo)
    with pytest.raises(UserError, match="config") as excinfo:
        make_backend("mmpose", CONFIG, models_dir=models_dir, checkpoint=checkpoint, model_config="no_such_model.py")
    _one_line_user_error(excinfo)


def test_cli_extracts_with_the_mmpose_backend_into_a_cache(models_dir, checkpoint, video_dir, tmp_path):
    """The CLI route: --backend mmpose --mmpose-checkpoint ... writes a store whose fingerprint covers the weights."""
    import subprocess
    import sys

    from posebridge.cache.store import CueStore, list_stores

    cmd = [sys.executable, "-m", "posebridge.pipeline.cli", "extract", "--videos", str(video_dir), "--dataset", "mm",
           "--backend", "mmpose", "--levels", "backbone", "--mmpose-checkpoint", str(checkpoint), "--device", "cpu",
           "--max-frames", "2", "--cache-dir", str(tmp_path), "--models-dir", str(models_dir), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    store = CueStore.open(list_stores(tmp_path, "mm")[0])
    assert len(store.clips()) == 4 and len(store.layout.joint_names) == 17
    assert "mmpose_checkpoint" in store.attrs["extractor"]["models"]
