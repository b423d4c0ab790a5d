"""The optional mmpose backend (runs in .venv-mmpose: `make test-mmpose`; skipped where mmpose is absent).

No pretrained weights can be fetched offline: the real models are built from the configs shipped
in the mmpose wheel (RTMPose-s, the paper's HPE, and HRNet-w32) with RANDOM weights, saved as
checkpoints and loaded back through the backend's real loading code. Keypoint positions are
therefore meaningless; these tests check mechanics only (loading, cropping geometry, decoding,
batching, cue shapes and ranges, fingerprint inputs, errors).
"""
from __future__ import annotations

import math
import threading

import pytest

pytest.importorskip("mmpose")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from posebridge.stages.extract.config import BODY13, CueConfig, ExtractConfig  # noqa: E402
from posebridge.cache.errors import UserError  # noqa: E402
from posebridge.cache.fingerprint import fingerprint  # noqa: E402
from posebridge.stages.extract.backends import blazepose_roi as geometry  # noqa: E402
from posebridge.stages.extract.backends import make_backend  # noqa: E402
from posebridge.stages.extract.backends import mmpose_backend as mb  # noqa: E402
from posebridge.stages.extract.backends import mmpose_model as mm  # noqa: E402
from posebridge.stages.extract.backends.base import FrameCues  # noqa: E402
from posebridge.stages.extract.frames import RGBFrame  # noqa: E402
from posebridge.stages.extract.run import extractor_identity  # noqa: E402
from posebridge.stages.extract.video import iter_frames  # noqa: E402

RTM_CONFIG = ExtractConfig(backend="mmpose", cues=CueConfig(levels=("stage2", "stage3", "stage4")))
RTM_CHANNELS = 128 + 256 + 512  # RTMPose-s CSPNeXt stages 2-4: [128, 32, 24], [256, 16, 12], [512, 8, 6]
HRNET_CONFIG = ExtractConfig(backend="mmpose", cues=CueConfig(levels=("backbone",)))
HRNET_W32_CHANNELS = 32  # the HRNet-w32 backbone's single output: [32, 64, 48]
THREADS = 1  # a shared CI machine: one torch thread (OpenMP spin-waits badly on busy cores)


def _random_model(name: str):
    torch.manual_seed(0)
    return mm.build_architecture(mm.resolve_config(name))


@pytest.fixture(scope="module")
def rtm_reference():
    return _random_model(mm.RTMPOSE_S_CONFIG)


@pytest.fixture(scope="module")
def rtm_checkpoint(tmp_path_factory, rtm_reference):
    """Saved the way mmengine saves (and mmpose publishes) checkpoints: `meta` with numpy values, then
    `state_dict` with DataParallel's `module.` prefix, as the authors' posebridge_rtmpose-s.pth may be."""
    path = tmp_path_factory.mktemp("ckpt") / "rtmpose-s_random.pth"
    meta = {"dataset_meta": {"sigmas": np.linspace(0.025, 0.089, 17, dtype=np.float32), "num_keypoints": 17,
                             "flip_indices": [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]},
            "epoch": 420, "scale": np.float64(1.0), "mmengine_version": "0.10.7"}
    state = {"module." + k: v for k, v in rtm_reference.state_dict().items()}
    torch.save({"meta": meta, "state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def rtm(models_dir, rtm_checkpoint):
    return make_backend("mmpose", RTM_CONFIG, models_dir=models_dir, num_threads=THREADS, checkpoint=rtm_checkpoint,
                        model_config=mm.RTMPOSE_S_CONFIG, batch_size=4, prep_threads=2)  # parallel detectors


@pytest.fixture(scope="module")
def hrnet_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "hrnet_w32_random.pth"
    torch.save(_random_model(mm.HRNET_W32_CONFIG).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def messi_frame(messi_jpg) -> RGBFrame:
    return RGBFrame(cv2.cvtColor(cv2.imread(str(messi_jpg)), cv2.COLOR_BGR2RGB))


@pytest.fixture(scope="module")
def cam01_frames(demo_videos) -> list:
    cam01 = next(p for p in demo_videos if p.name == "cam01.mp4")
    return list(iter_frames(cam01, stride=10, max_frames=6))


def _check_cues(cues: FrameCues, channels: int, person: bool = True, m: int = 2):
    """Shapes and ranges of a frame's M slots; `person`: slot 0 (the best person's, for a new track) is filled."""
    vc = len(BODY13)
    assert cues.keypoints.shape == (m, 17, 5) and cues.keypoints.dtype == np.float32
    assert cues.score.shape == (m,) and cues.score.dtype == np.float32
    assert cues.features.shape == (m, vc, channels) and cues.features.dtype == np.float32
    assert cues.heatmaps.shape == (m, vc, 3, 3) and cues.heatmaps.dtype == np.float32
    for array in (cues.keypoints, cues.features, cues.heatmaps):
        assert np.isfinite(array).all()
    assert cues.heatmaps.min() >= 0 and cues.heatmaps.max() <= 1
    assert (cues.keypoints[..., 2] == 0).all()  # 2-D model: no depth
    assert ((cues.keypoints[..., 3:] >= 0) & (cues.keypoints[..., 3:] <= 1)).all()
    empty = cues.score == 0  # an empty slot is all zeros
    assert not cues.keypoints[empty].any() and not cues.features[empty].any() and not cues.heatmaps[empty].any()
    assert ((cues.score >= 0) & (cues.score <= 1)).all()
    if person:
        assert cues.score.max() > 0 and cues.features[cues.score > 0].any()


# --- RTMPose-s: the paper's HPE -------------------------------------------------------------------

def test_rtmpose_checkpoint_in_mmengine_format_is_really_loaded(rtm, rtm_reference):
    loaded, saved = rtm.model.state_dict(), rtm_reference.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k].cpu(), saved[k]) for k in saved)
    assert not rtm.model.training
    assert rtm.model.cfg.model.test_cfg.flip_test is False
    assert rtm.model.cfg.model.backbone.get("init_cfg") is None  # no pretrained URL left to fetch
    assert type(rtm.model.head).__name__ == "RTMCCHead" and type(rtm.model.backbone).__name__ == "CSPNeXt"


def test_the_default_config_is_rtmpose_s(rtm):
    assert mm.DEFAULT_CONFIG == mm.RTMPOSE_S_CONFIG
    assert rtm.model_files()["mmpose_config"] == mm.resolve_config(mm.DEFAULT_CONFIG)


def test_rtmpose_on_messi(rtm, messi_frame):
    rtm.reset()
    cues = rtm.process(messi_frame)
    _check_cues(cues, RTM_CHANNELS)
    assert rtm.joint_names == mb.COCO17_JOINTS and (rtm.input_w, rtm.input_h) == (192, 256)
    assert rtm.feature_channels() == RTM_CHANNELS
    # SimCC patches are probability masses of one separable distribution per joint: they sum to <= 1.
    assert rtm.heatmap_kind == "simcc_outer"
    assert (cues.heatmaps.sum(axis=(2, 3)) <= 1 + 1e-5).all()


def test_simcc_patch_is_the_mass_of_the_models_softmaxed_vectors(rtm, messi_frame):
    """Recompute one joint's centre patch cell from the raw SimCC logits, independently of cues.py."""
    plan = rtm._plan(messi_frame)
    batch = rtm._infer(plan.crops)
    cues = rtm._person_cues(plan, plan.persons[0], batch, 0)
    x, y = (v[0].astype(np.float64) for v in batch.head)  # [17, 384], [17, 512]
    keypoints_px, _ = rtm.model.head.decoder.decode(*batch.head)
    beta, split = rtm._head.softmax_beta, rtm._head.simcc_split_ratio
    assert beta == 10.0 and split == 2.0  # RTMPose-s: KLDiscretLoss(beta=10), SimCC split ratio 2
    row, joint = 5, int(mb.BLAZEPOSE_TO_COCO[BODY13[5]])  # a wrist
    px, py = keypoints_px[0, joint]
    probs_x = np.exp(beta * (x[joint] - x[joint].max()))
    probs_y = np.exp(beta * (y[joint] - y[joint].max()))
    probs_x, probs_y = probs_x / probs_x.sum(), probs_y / probs_y.sum()
    # Bins whose centre (b / split) lies inside the centre cell [p - 2, p + 2): the keypoint is a bin
    # centre, so the cell holds exactly 8 whole bins (from 4 below to 3 above the peak) plus two halves.
    bins = np.arange(len(probs_x))
    inside_x = probs_x[np.abs(bins / split - px) < mb.SIMCC_CELL / 2].sum() + 0.5 * (
        probs_x[np.isclose(np.abs(bins / split - px), mb.SIMCC_CELL / 2)].sum())
    bins = np.arange(len(probs_y))
    inside_y = probs_y[np.abs(bins / split - py) < mb.SIMCC_CELL / 2].sum() + 0.5 * (
        probs_y[np.isclose(np.abs(bins / split - py), mb.SIMCC_CELL / 2)].sum())
    assert cues.heatmaps[row, 1, 1] == pytest.approx(inside_x * inside_y, rel=1e-5, abs=1e-7)


def test_batched_stream_matches_the_per_frame_loop(rtm, cam01_frames):
    """Same frames, batch 4 across frames vs one forward per frame: the same FrameCues up to the
    rounding of a batched forward pass; keypoints equal wherever the argmax is not a near-tie."""
    rtm.reset()
    before = dict(rtm.stats)
    batched = list(rtm.process_stream(iter(cam01_frames)))
    crops = rtm.stats["landmark_calls"] - before["landmark_calls"]
    assert crops >= len(cam01_frames)  # the dancer in every frame
    assert rtm.stats["forward_passes"] - before["forward_passes"] <= math.ceil(len(cam01_frames) / 4)
    rtm.reset()
    single = [rtm.process(frame) for frame in cam01_frames]
    assert len(batched) == len(single) == len(cam01_frames)
    for frame, a, b in zip(cam01_frames, batched, single):
        _check_cues(a, RTM_CHANNELS)
        np.testing.assert_array_equal(a.score, b.score)  # the detector's: same frame, same slots, same number
        np.testing.assert_allclose(a.features, b.features, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(a.heatmaps, b.heatmaps, atol=1e-3)
        plan = rtm._plan(frame)
        x, y = rtm._infer(plan.crops).head
        decided = ((_top2_gap(x) > 1e-3) & (_top2_gap(y) > 1e-3)).all(axis=0)  # [17]: in every crop
        np.testing.assert_array_equal(a.keypoints[:, decided], b.keypoints[:, decided])


def _top2_gap(logits: np.ndarray) -> np.ndarray:
    top2 = np.sort(logits, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def test_stream_keeps_frame_order_with_frames_without_a_person(rtm, cam01_frames):
    empty = RGBFrame(np.full((240, 320, 3), 90, np.uint8))
    frames = [empty, cam01_frames[0], empty, empty, cam01_frames[1], cam01_frames[2], empty]
    rtm.reset()
    before = dict(rtm.stats)
    out = list(rtm.process_stream(iter(frames)))
    assert [c.score.max() > 0 for c in out] == [f is not empty for f in frames]
    for c in out[::3]:
        assert not c.keypoints.any() and not c.features.any() and not c.heatmaps.any()
    assert rtm.stats["frames_without_person"] - before["frames_without_person"] == 4
    crops = rtm.stats["landmark_calls"] - before["landmark_calls"]
    assert crops == rtm.stats["persons"] - before["persons"] == sum(int((c.score > 0).sum()) for c in out) >= 3
    assert rtm.stats["frames"] - before["frames"] == len(frames)


def test_closing_the_stream_early_leaves_no_thread(rtm, cam01_frames):
    stream = rtm.process_stream(iter(cam01_frames * 3))
    next(stream)
    assert any(t.name.startswith("mmpose-prep") for t in threading.enumerate())
    stream.close()
    assert not any(t.name.startswith("mmpose-prep") for t in threading.enumerate())


def test_a_failing_source_surfaces_in_the_stream_and_leaves_no_thread(rtm, cam01_frames):
    def frames():
        yield from cam01_frames[:2]
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(rtm.process_stream(frames()))
    assert not any(t.name.startswith("mmpose-prep") for t in threading.enumerate())


def test_fingerprint_covers_versions_and_the_resolved_config(rtm):
    identity = extractor_identity(RTM_CONFIG, rtm)
    assert {"torch", "torchvision", "mmpose", "mmengine", "ai-edge-litert"} <= set(identity["runtime"])
    assert {"mmcv", "mmcv-lite"} & set(identity["runtime"])
    settings = identity["backend_settings"]
    assert settings["heatmap_kind"] == "simcc_outer" and settings["precision"] == "fp32"
    config = settings["config"]
    # Values that live only in RTMPose's _base_ file (default_runtime.py) are in the resolved config.
    assert config["default_scope"] == "mmpose" and "default_hooks" in config
    assert config["model"]["head"]["type"] == "RTMCCHead" and config["model"]["test_cfg"]["flip_test"] is False
    assert set(identity["models"]) == {"pose_detection", "mmpose_checkpoint", "mmpose_config"}


def test_a_change_in_a_base_file_changes_the_fingerprint_input(tmp_path):
    base = tmp_path / "base.py"
    top = tmp_path / "top.py"
    shipped = mm.resolve_config(mm.RTMPOSE_S_CONFIG)
    top.write_text(shipped.read_text().replace("../../../_base_/default_runtime.py", str(base)))
    base.write_text((shipped.parents[3] / "_base_" / "default_runtime.py").read_text())
    first = mm.resolved_config(mm.load_config(top))
    base.write_text(base.read_text() + "\nlog_level = 'DEBUG'\n")
    second = mm.resolved_config(mm.load_config(top))
    assert fingerprint(first) != fingerprint(second) and second["log_level"] == "DEBUG"


def test_bad_levels_name_the_models_levels(models_dir, rtm_checkpoint):
    with pytest.raises(UserError, match="stage2,stage3,stage4") as excinfo:  # BlazePose's default levels
        make_backend("mmpose", ExtractConfig(backend="mmpose"), models_dir=models_dir, checkpoint=rtm_checkpoint)
    _one_line_user_error(excinfo)


def test_rtmpose_m_loads_and_runs(models_dir, messi_frame, tmp_path):
    path = tmp_path / "rtmpose-m_random.pth"
    torch.save(_random_model(mm.RTMPOSE_M_CONFIG).state_dict(), path)
    config = ExtractConfig(backend="mmpose", cues=CueConfig(levels=("stage3", "stage4")))
    rtm_m = make_backend("mmpose", config, models_dir=models_dir, num_threads=THREADS, checkpoint=path,
                         model_config=mm.RTMPOSE_M_CONFIG)
    assert rtm_m.feature_channels() == 384 + 768  # CSPNeXt-m: widen factor 0.75
    _check_cues(rtm_m.process(messi_frame), 384 + 768)


def test_two_people_keep_their_slots(rtm, two_person_clip):
    """Real footage side by side (conftest.two_person_clip): both people are detected on every frame and
    each keeps its slot; the slot's box stays on its side of the frame (the halves meet at x = 0.5)."""
    frames = list(iter_frames(two_person_clip, max_frames=6))
    rtm.reset()
    sides = []
    for cues in rtm.process_stream(iter(frames)):
        _check_cues(cues, RTM_CHANNELS)
        assert (cues.score > 0).all()
        sides.append(None)
    rtm.reset()
    for frame in frames:
        rtm.process(frame)
        centres = [(s.last_box[0] + s.last_box[2]) / 2 / frame.width for s in rtm._slots.slots]
        sides.append([c < 0.5 for c in centres])
    sides = sides[len(frames):]
    assert sides[0] in ([True, False], [False, True]) and all(s == sides[0] for s in sides)


# --- HRNet-w32: a heatmap head --------------------------------------------------------------------

def test_hrnet_heatmap_model(models_dir, hrnet_checkpoint, messi_frame, cam01_frames):
    hrnet = make_backend("mmpose", HRNET_CONFIG, models_dir=models_dir, num_threads=THREADS,
                         checkpoint=hrnet_checkpoint, model_config=mm.HRNET_W32_CONFIG, batch_size=2)
    assert hrnet.heatmap_kind == "clipped" and hrnet.feature_channels() == HRNET_W32_CHANNELS
    _check_cues(hrnet.process(messi_frame), HRNET_W32_CHANNELS)
    frames = cam01_frames[:2]
    for a, b in zip(hrnet.process_stream(iter(frames)), [hrnet.process(f) for f in frames]):
        _check_cues(a, HRNET_W32_CHANNELS)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(a.heatmaps, b.heatmaps, atol=1e-4)


# --- geometry and errors (model-independent) ------------------------------------------------------

def test_no_person_gives_zeros(rtm):
    before = dict(rtm.stats)
    cues = rtm.process(RGBFrame(np.full((240, 320, 3), 90, np.uint8)))
    _check_cues(cues, RTM_CHANNELS, person=False)
    assert not cues.score.any() and not cues.keypoints.any() and not cues.features.any()
    assert rtm.stats["landmark_calls"] == before["landmark_calls"]
    assert rtm.stats["frames_without_person"] - before["frames_without_person"] == 1


def test_crop_geometry_round_trips(rtm):
    roi = geometry.Roi(center=(300.0, 200.0), side=400.0, rotation=math.radians(30))
    to_crop = rtm._image_to_crop(roi)
    centre = geometry.apply(to_crop, np.array([[300.0, 200.0]]))[0]
    np.testing.assert_allclose(centre, [rtm.input_w / 2, rtm.input_h / 2])
    # The ROI's "up" direction (sin r, -cos r) points straight up in the crop; its side spans the height.
    up = np.array([[300 + 200 * math.sin(roi.rotation), 200 - 200 * math.cos(roi.rotation)]])
    np.testing.assert_allclose(geometry.apply(to_crop, up)[0], [rtm.input_w / 2, 0], atol=1e-9)
    points = np.array([[10.0, 20.0], [95.5, 250.0]])
    back = geometry.apply(geometry.invert(to_crop), geometry.apply(to_crop, points))
    np.testing.assert_allclose(back, points)


def test_cue_joints_map_body13_to_coco():
    coco = mb.MMPoseBackend._coco_cue_joints(BODY13)
    assert [mb.COCO17_JOINTS[i] for i in coco] == [
        "nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]


def test_other_weights_change_the_checkpoint_hash(rtm, rtm_reference, models_dir, tmp_path):
    identity = extractor_identity(RTM_CONFIG, rtm)
    other_state = {k: v + 1 if v.is_floating_point() else v for k, v in rtm_reference.state_dict().items()}
    other = tmp_path / "other.pth"
    torch.save(other_state, other)
    other_backend = make_backend("mmpose", RTM_CONFIG, models_dir=models_dir, num_threads=THREADS, checkpoint=other)
    other_identity = extractor_identity(RTM_CONFIG, other_backend)
    assert other_identity["models"]["mmpose_checkpoint"] != identity["models"]["mmpose_checkpoint"]
    assert other_identity["models"]["mmpose_config"] == identity["models"]["mmpose_config"]


def test_a_checkpoint_that_runs_code_is_refused_without_running_it(tmp_path):
    import pickle

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {}, "meta": Evil()}, f)
    with pytest.raises(UserError, match="tensors \\+ numpy only") as excinfo:
        mm.load_state_dict_file(path)
    _one_line_user_error(excinfo)
    assert not marker.exists()


def _one_line_user_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_missing_checkpoint_is_a_one_line_user_error(models_dir, tmp_path):
    missing = tmp_path / "nowhere" / "rtmpose.pth"
    with pytest.raises(UserError) as excinfo:
        make_backend("mmpose", RTM_CONFIG, models_dir=models_dir, checkpoint=missing)
    assert str(missing) in _one_line_user_error(excinfo) and "missing" in str(excinfo.value)


def test_no_checkpoint_and_url_checkpoint_are_user_errors(models_dir, monkeypatch):
    monkeypatch.delenv(mb.CHECKPOINT_ENV, raising=False)
    with pytest.raises(UserError, match=mb.CHECKPOINT_ENV) as excinfo:
        make_backend("mmpose", RTM_CONFIG, models_dir=models_dir)
    _one_line_user_error(excinfo)
    with pytest.raises(UserError, match="URL") as excinfo:
        make_backend("mmpose", RTM_CONFIG, models_dir=models_dir, checkpoint="https://example.org/rtmpose.pth")
    _one_line_user_error(excinfo)


def test_checkpoint_from_the_environment(models_dir, rtm_checkpoint, monkeypatch):
    monkeypatch.setenv(mb.CHECKPOINT_ENV, str(rtm_checkpoint))
    from_env = make_backend("mmpose", RTM_CONFIG, models_dir=models_dir, num_threads=THREADS)
    assert from_env.model_files()["mmpose_checkpoint"] == rtm_checkpoint


def test_checkpoint_that_does_not_fit_the_config(models_dir, rtm_reference, hrnet_checkpoint, tmp_path):
    state = rtm_reference.state_dict()
    state.pop(next(k for k in state if k.startswith("head.")))
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match="does not fit") as excinfo:
        make_backend("mmpose", RTM_CONFIG, models_dir=models_dir, checkpoint=path)
    _one_line_user_error(excinfo)
    with pytest.raises(UserError, match="does not fit") as excinfo:  # HRNet weights, RTMPose config
        make_backend("mmpose", RTM_CONFIG, models_dir=models_dir, checkpoint=hrnet_checkpoint)
    _one_line_user_error(excinfo)


def test_bad_joints_and_config_are_user_errors(models_dir, rtm_checkpoint):
    all_joints = CueConfig(levels=("stage4",), joints=tuple(range(33)))
    with pytest.raises(UserError, match="COCO-17") as excinfo:
        make_backend("mmpose", ExtractConfig(backend="mmpose", cues=all_joints), models_dir=models_dir,
                     checkpoint=rtm_checkpoint)
    _one_line_user_error(excinfo)
    with pytest.raises(UserError, match="config") as excinfo:
        make_backend("mmpose", RTM_CONFIG, models_dir=models_dir, checkpoint=rtm_checkpoint,
                     model_config="no_such_model.py")
    _one_line_user_error(excinfo)


def test_cli_extracts_rtmpose_into_a_cache(models_dir, rtm_checkpoint, video_dir, tmp_path):
    """The CLI route: --backend mmpose --mmpose-checkpoint ... writes a store whose fingerprint covers the weights."""
    import subprocess
    import sys

    from posebridge.cache.store import CueStore, list_stores

    cmd = [sys.executable, "-m", "posebridge.pipeline.cli", "extract", "--videos", str(video_dir), "--dataset", "mm",
           "--backend", "mmpose", "--levels", "stage3,stage4", "--mmpose-checkpoint", str(rtm_checkpoint),
           "--device", "cpu", "--batch-size", "2", "--max-frames", "3", "--cache-dir", str(tmp_path),
           "--models-dir", str(models_dir), "--workers", "1", "--threads", "1", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    store = CueStore.open(list_stores(tmp_path, "mm")[0])
    assert len(store.clips()) == 4 and store.layout.skeleton == "coco17" and len(store.layout.joint_names) == 17
    assert store.layout.feature_channels == 256 + 512 and store.layout.heatmap_kind == "simcc_outer"
    # Cue joints index the store's own skeleton: BODY13 (BlazePose indices) as COCO-17 indices.
    assert store.layout.cue_joints == tuple(mb.BLAZEPOSE_TO_COCO[j] for j in BODY13)
    assert store.layout.max_persons == 2
    extractor = store.attrs["extractor"]
    assert "mmpose_checkpoint" in extractor["models"]
    assert extractor["backend_settings"]["heatmap_kind"] == "simcc_outer"
