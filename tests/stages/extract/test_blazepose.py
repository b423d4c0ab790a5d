"""The embedded BlazePose backend on real models and real media (offline)."""
from __future__ import annotations

import math
import shutil

import av
import cv2
import numpy as np
import pytest

from posebridge.stages.extract.config import BODY13, CueConfig, ExtractConfig
from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import file_sha256
from posebridge.stages.paths import models_root
from posebridge.stages.extract import tracking
from posebridge.stages.extract.backends import blazepose_roi as geometry
from posebridge.stages.extract.backends import blazepose_spec as spec
from posebridge.stages.extract.backends import make_backend
from posebridge.stages.extract.backends.base import FrameCues
from posebridge.stages.extract.backends.blazepose_detector import ssd_anchor_centers, weighted_nms
from posebridge.stages.extract.backends.blazepose_landmarks import refine_from_heatmap
from posebridge.stages.extract.backends.tflite_outputs import load_interpreter, output_index_by_name
from posebridge.stages.extract.frames import RGBFrame, YUV420Frame

ASSETS = models_root().parent
MESSI = ASSETS / "images" / "messi5.jpg"
CAM01 = ASSETS / "videos" / "demo" / "cam01.mp4"
# The footballer in messi5.jpg (548x342), found by eye: outstretched hand at x~65, hair at y~60,
# the planted foot at the bottom edge, the kicking foot at x~460.
MESSI_FIGURE_BOX = (55, 50, 470, 342)  # x0, y0, x1, y1 pixels
MAIN_BODY_JOINTS = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26)  # nose to knees: ankles are the hard part here


@pytest.fixture(scope="module")
def backend():
    return make_backend("embedded", ExtractConfig())  # max_persons = 2


@pytest.fixture(scope="module")
def single():
    return make_backend("embedded", ExtractConfig(max_persons=1))


@pytest.fixture(scope="module")
def messi_rgb() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(MESSI)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def messi(backend, messi_rgb) -> FrameCues:
    backend.reset()
    return backend.process(RGBFrame(messi_rgb))


def test_model_files_are_the_pinned_ones():
    assert file_sha256(models_root() / spec.LANDMARK_FILE) == spec.LANDMARK_SHA256
    assert file_sha256(models_root() / spec.DETECTOR_FILE) == spec.DETECTOR_SHA256


@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
@pytest.mark.parametrize("prune", [False, True], ids=["appended", "pruned"])
def test_every_pinned_tensor_name_is_exposed_and_matches_preserve_all(prune):
    path = models_root() / spec.LANDMARK_FILE
    read = [spec.LANDMARKS_TENSOR, spec.PRESENCE_TENSOR, spec.HEATMAP_TENSOR]
    exposed = load_interpreter(path, read + [level.tensor for level in spec.FEATURE_LEVELS.values()], prune=prune)
    reference = load_interpreter(path, preserve_all=True)
    outputs = output_index_by_name(exposed)
    tensors = {d["name"]: d["index"] for d in reference.get_tensor_details()}
    crop = np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32)
    for interpreter in (exposed, reference):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], crop)
        interpreter.invoke()
    for name, level in spec.FEATURE_LEVELS.items():
        value = exposed.get_tensor(outputs[level.tensor])
        assert value.shape == (1, level.size, level.size, level.channels), name
        np.testing.assert_allclose(value, reference.get_tensor(tensors[level.tensor]), atol=1e-4, err_msg=name)
    for name in read:
        np.testing.assert_allclose(exposed.get_tensor(outputs[name]), reference.get_tensor(tensors[name]), atol=1e-4)
    # Pruning keeps only what is read: the segmentation mask and world landmarks are gone.
    assert ("Identity_2" in outputs) == (not prune) and ("Identity_4" in outputs) == (not prune)


def test_pruning_removes_the_unread_branches_and_keeps_results_bit_identical():
    path = models_root() / spec.LANDMARK_FILE
    read = [spec.LANDMARKS_TENSOR, spec.PRESENCE_TENSOR, spec.HEATMAP_TENSOR, spec.FEATURE_LEVELS["fpn64"].tensor]
    full, pruned = (load_interpreter(path, read, prune=p, num_threads=1) for p in (False, True))
    assert len(pruned._get_ops_details()) < len(full._get_ops_details()) - 30
    crop = np.random.default_rng(1).random((1, 256, 256, 3), dtype=np.float32)
    for interpreter in (full, pruned):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], crop)
        interpreter.invoke()
    a, b = output_index_by_name(full), output_index_by_name(pruned)
    for name in read:
        np.testing.assert_array_equal(full.get_tensor(a[name]), pruned.get_tensor(b[name]), err_msg=name)


def test_ssd_anchors_follow_the_graph():
    anchors = ssd_anchor_centers()
    assert anchors.shape == (2254, 2)
    np.testing.assert_allclose(anchors[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[1], anchors[0])  # two anchors per cell
    np.testing.assert_allclose(anchors[1568], [0.5 / 14, 0.5 / 14])
    np.testing.assert_allclose(anchors[1960:1966], np.full((6, 2), 0.5 / 7))  # merged 32-stride layers


def test_weighted_nms_averages_overlaps_and_keeps_separate_people():
    scores = np.array([0.6, 0.9, 0.8])
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    keypoints = boxes.reshape(3, 2, 2)
    (best_score, best_box, best_points), (other_score, other_box, _) = weighted_nms(scores, boxes, keypoints)
    assert best_score == 0.9 and other_score == 0.8
    np.testing.assert_allclose(best_box, (0.6 * boxes[0] + 0.9 * boxes[1]) / 1.5)
    np.testing.assert_allclose(best_points, best_box.reshape(2, 2))
    np.testing.assert_allclose(other_box, boxes[2])


def test_roi_points_hip_to_scale_point_up():
    center, above = np.array([100.0, 200.0]), np.array([100.0, 120.0])
    roi = geometry.roi_from_alignment_points(center, above)
    assert roi.rotation == pytest.approx(0.0) and roi.side == pytest.approx(2 * 80 * 1.25)
    right = geometry.roi_from_alignment_points(center, np.array([180.0, 200.0]))
    assert right.rotation == pytest.approx(math.pi / 2)
    to_crop = geometry.image_to_crop(right, 256)
    np.testing.assert_allclose(geometry.apply(to_crop, np.array([center, [180.0, 200.0]])),
                               [[128, 128], [128, 128 - 256 / 2.5]], atol=1e-9)
    np.testing.assert_allclose(geometry.apply(geometry.invert(to_crop), geometry.apply(to_crop, center[None])),
                               center[None], atol=1e-9)


def test_refine_from_heatmap_moves_to_a_confident_peak_only():
    logits = np.full((64, 64, 2), -20.0, np.float32)
    logits[10, 20, 0] = 5.0  # joint 0: one confident cell near the landmark
    logits[10, 20, 1] = -0.5  # joint 1: peak below the 0.5 confidence bar
    xy = np.array([[(20 + 2.3) * 4, (10 - 1.6) * 4], [(20 + 2.3) * 4, (10 - 1.6) * 4]], np.float32)
    refined = refine_from_heatmap(xy, logits)
    np.testing.assert_allclose(refined[0], [(20 + 0.5) * 4, (10 + 0.5) * 4], atol=1e-3)
    np.testing.assert_array_equal(refined[1], xy[1])


def test_messi_pose_lands_on_the_footballer(messi, backend):
    assert messi.score[0] > 0.9  # slot 0: the detector's best candidate
    x0, y0, x1, y1 = MESSI_FIGURE_BOX
    xy = messi.keypoints[0, list(MAIN_BODY_JOINTS), :2] * [548, 342]
    inside = (xy[:, 0] > x0) & (xy[:, 0] < x1) & (xy[:, 1] > y0) & (xy[:, 1] < y1)
    assert inside.all(), xy[~inside]
    nose, hips = xy[0], xy[[7, 8]].mean(axis=0)
    assert nose[1] < hips[1] - 60  # upright: the head is well above the hips
    assert (messi.keypoints[0, list(MAIN_BODY_JOINTS), 3] > 0.8).all()


def test_cue_shapes_and_dtypes(messi, backend):
    assert messi.keypoints.shape == (2, 33, 5) and messi.keypoints.dtype == np.float32
    assert messi.score.shape == (2,) and messi.score.dtype == np.float32
    assert messi.features.shape == (2, len(BODY13), backend.feature_channels()) == (2, 13, 96)
    assert messi.features.dtype == np.float32 and np.isfinite(messi.features).all()
    assert messi.heatmaps.shape == (2, 13, 3, 3) and messi.heatmaps.dtype == np.float32
    assert 0 <= messi.heatmaps.min() and messi.heatmaps.max() <= 1
    assert messi.keypoints[..., 3:].min() >= 0 and messi.keypoints[..., 3:].max() <= 1
    assert set(backend.model_files()) == {"pose_detection", "pose_landmark_full"}


def test_heatmap_patch_peaks_at_its_centre_for_confident_joints(messi_rgb):
    wide = make_backend("embedded", ExtractConfig(cues=CueConfig(heatmap_patch=7)))
    cues = wide.process(RGBFrame(messi_rgb))
    confident = (cues.keypoints[0, list(BODY13), 3] > 0.9) & (cues.heatmaps[0].max(axis=(1, 2)) > 0.5)
    assert confident.sum() >= 6
    for patch in cues.heatmaps[0][confident]:
        row, col = np.unravel_index(patch.argmax(), patch.shape)
        assert max(abs(row - 3), abs(col - 3)) <= 1


def test_rgb_and_yuv_frames_give_close_keypoints(backend, messi, messi_rgb):
    backend.reset()
    yuv = backend.process(YUV420Frame.from_i420(cv2.cvtColor(messi_rgb, cv2.COLOR_RGB2YUV_I420)))
    distance = np.hypot(*(yuv.keypoints[0, list(BODY13), :2] - messi.keypoints[0, list(BODY13), :2]).T)
    assert np.median(distance) < 0.01 and distance.max() < 0.03
    assert abs(yuv.score[0] - messi.score[0]) < 0.05


def _run_video(backend, frames: int = 30):
    """(keypoints [T, M, 33, 5], score [T, M], detector calls, landmark calls) of cam01's first frames."""
    backend.reset()
    before = dict(backend.stats)
    keypoints, scores = [], []
    with av.open(str(CAM01)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == frames:
                break
            cues = backend.process(YUV420Frame.from_i420(frame.to_ndarray(format="yuv420p")))
            keypoints.append(cues.keypoints)
            scores.append(cues.score)
    return (np.array(keypoints), np.array(scores), backend.stats["detector_calls"] - before["detector_calls"],
            backend.stats["landmark_calls"] - before["landmark_calls"])


def test_tracking_on_video_runs_the_detector_once(single):
    keypoints, scores, detector_calls, landmark_calls = _run_video(single)
    assert detector_calls == 1 and landmark_calls == 30
    assert scores.min() > 0.5
    step = np.linalg.norm(np.diff(keypoints[:, 0, list(BODY13), :2], axis=0), axis=-1)  # [29, 13], image-normalised
    assert np.median(step) < 0.01 and step.max() < 0.06


def test_a_free_slot_costs_a_detector_call_every_few_frames_and_changes_nothing(single, backend):
    """Single-person footage with M = 2: the one person is followed exactly as with M = 1, the free
    slot stays empty, and the detector looks for a second person only every LOOK_EVERY + 1 frames."""
    one_kp, one_score, _, _ = _run_video(single, 40)
    two_kp, two_score, detector_calls, landmark_calls = _run_video(backend, 40)
    np.testing.assert_array_equal(two_kp[:, 0], one_kp[:, 0])
    np.testing.assert_array_equal(two_score[:, 0], one_score[:, 0])
    assert not two_kp[:, 1].any() and not two_score[:, 1].any()
    assert detector_calls == 1 + (40 - 1) // (tracking.LOOK_EVERY + 1) == 2
    assert landmark_calls <= 40 + 2 * detector_calls  # at most M tries per look at new candidates


def test_empty_frame_has_no_person(backend):
    backend.reset()
    before = dict(backend.stats)
    cues = backend.process(RGBFrame(np.full((240, 320, 3), 90, np.uint8)))
    assert not cues.score.any() and not cues.keypoints.any() and not cues.features.any()
    assert cues.features.shape == (2, 13, 96) and cues.heatmaps.shape == (2, 13, 3, 3)
    assert backend.stats["detector_calls"] - before["detector_calls"] == 1
    assert backend.stats["landmark_calls"] == before["landmark_calls"]


def test_unknown_backend_is_a_user_error():
    with pytest.raises(UserError, match="embedded"):
        make_backend("openpose", ExtractConfig())


def test_missing_models_say_make_models(tmp_path):
    with pytest.raises(UserError, match="make models"):
        make_backend("embedded", ExtractConfig(), models_dir=tmp_path / "nowhere")


def test_changed_model_file_is_refused(tmp_path):
    shutil.copy(models_root() / spec.DETECTOR_FILE, tmp_path / spec.DETECTOR_FILE)
    (tmp_path / spec.LANDMARK_FILE).write_bytes(b"not the pinned model")
    with pytest.raises(UserError, match="sha256"):
        make_backend("embedded", ExtractConfig(), models_dir=tmp_path)
