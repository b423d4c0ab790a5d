"""View alignment (stages/train/view_align.py): a 3D clip turned and moved by a known rigid motion
comes back to the same coordinates; `none` changes nothing and no key; what cannot be aligned
(no shoulders, degenerate axes, 2D data, stores, feature folders) is left as the loader made it and
said so; the setting reaches the loader from the command line and `eval` / `predict` reuse it."""
from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from posebridge.cache.errors import UserError
from posebridge.cache.fingerprint import file_sha256
from posebridge.cache.layouts import layout_from_dict, skeleton
from posebridge.stages.train.data import CueDataset, load_pyskl
from posebridge.stages.train.view_align import (aligned_fingerprint, align_views, body_rotation, check_mode, chosen,
                                                 frame_axes)

NTU = skeleton("ntu25")
J = {name: i for i, name in enumerate(NTU.joint_names)}
T = 24
TOL = 1e-4  # torso units: far above the float32 loader's rounding (up to ~3e-6 here, 3 m from the camera), far below the differences alignment removes (> 0.1)


def rot_x(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg: float) -> np.ndarray:  # about the vertical
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg: float) -> np.ndarray:  # about the camera's axis
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# A body in its own frame (metres; x to its right, y up): the NTU-25 joints of a standing person.
POSE = {"spine_base": (0, 0, 0), "spine_mid": (0, .25, 0), "neck": (0, .56, 0), "head": (0, .7, .02),
        "spine_shoulder": (0, .5, 0), "left_shoulder": (-.18, .48, 0), "right_shoulder": (.18, .48, 0),
        "left_elbow": (-.24, .24, .02), "left_wrist": (-.26, .02, .05), "left_hand": (-.26, -.05, .06),
        "left_hand_tip": (-.26, -.1, .07), "left_thumb": (-.23, -.05, .09),
        "right_elbow": (.24, .24, .02), "right_wrist": (.26, .02, .05), "right_hand": (.26, -.05, .06),
        "right_hand_tip": (.26, -.1, .07), "right_thumb": (.23, -.05, .09),
        "left_hip": (-.1, -.02, 0), "left_knee": (-.1, -.45, .02), "left_ankle": (-.1, -.85, 0),
        "left_foot": (-.1, -.88, -.1), "right_hip": (.1, -.02, 0), "right_knee": (.1, -.45, .02),
        "right_ankle": (.1, -.85, 0), "right_foot": (.1, -.88, -.1)}


def moving_body(seed: int = 0) -> np.ndarray:
    """[T, 25, 3]: the pose waving its right hand while leaning forward and turning a little, so that
    every frame's axes differ (first and mean give different frames)."""
    rng = np.random.default_rng(seed)
    pose = np.array([POSE[name] for name in NTU.joint_names], np.float64) + rng.normal(0, .005, (25, 3))
    frames = []
    for t in range(T):
        p = pose.copy()
        p[J["right_wrist"]] += (.1 * np.sin(t / 3), .3 * np.sin(t / 4) ** 2, 0)
        p[J["right_hand"]] += (.1 * np.sin(t / 3), .3 * np.sin(t / 4) ** 2, 0)
        upper = [J[n] for n in POSE if not n.endswith(("hip", "knee", "ankle", "foot")) and n != "spine_base"]
        p[upper] = p[upper] @ rot_x(-15 * t / T).T  # bend forward from the hips
        frames.append(p @ rot_y(20 * t / T).T)  # and turn
    return np.stack(frames)


def in_camera(body: np.ndarray, rotation: np.ndarray, shift) -> np.ndarray:
    return body @ rotation.T + np.asarray(shift, np.float64)


def move(persons: np.ndarray, rotation: np.ndarray, shift) -> np.ndarray:
    """A rigid motion of every tracked joint; untracked ones (all zero) stay untracked."""
    tracked = np.abs(persons).sum(axis=-1, keepdims=True) > 0
    return np.where(tracked, in_camera(persons, rotation, shift), 0.0)


def two_persons(body: np.ndarray) -> np.ndarray:
    """[2, T, 25, 3]: the main actor (seen longest: every frame) and a second person beside it,
    facing it, not tracked in the last frames."""
    other = in_camera(moving_body(seed=1), rot_y(150), (1.2, .05, .4))
    other[-3:] = 0
    return np.stack([body, other])


def annotation(clip: str, persons: np.ndarray, label: int = 0) -> dict:
    return {"frame_dir": clip, "label": label, "total_frames": persons.shape[1],
            "keypoint": np.asarray(persons, np.float32)}


def write_pickle(path: Path, annotations: list[dict], split: dict | None = None, **top) -> Path:
    with open(path, "wb") as f:
        pickle.dump({"split": split or {"train": [a["frame_dir"] for a in annotations]},
                     "annotations": annotations, **top}, f)
    return path


# --- the frame ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["first", "mean"])
def test_a_turned_and_moved_clip_comes_back_to_the_same_coordinates(tmp_path, mode, capsys):
    seen_by_a = two_persons(in_camera(moving_body(), rot_y(-25) @ rot_x(8), (.3, -.1, 3.0)))  # a Kinect's coordinates
    # another camera: 37 degrees about the vertical and 10 about its own axis; a third one tilted 10 about x
    seen_by_b = move(seen_by_a, rot_z(10) @ rot_y(37), (-1.4, .2, .8))
    seen_by_c = move(seen_by_a, rot_x(10) @ rot_y(-60), (0, .5, 1))
    data = load_pyskl(write_pickle(tmp_path / "d.pkl", [annotation("a", seen_by_a), annotation("b", seen_by_b),
                                                          annotation("c", seen_by_c)]), 16)
    aligned = align_views(data, mode, "d.pkl")
    assert capsys.readouterr().out == ""  # every clip was turned: nothing to report
    a, b, c = aligned.keypoints.numpy().astype(np.float64)
    assert np.abs(data.keypoints[0].numpy() - data.keypoints[1].numpy()).max() > 0.1  # they did differ
    np.testing.assert_allclose(b, a, atol=TOL)  # both persons, every frame
    np.testing.assert_allclose(c, a, atol=TOL)  # the tilted camera too
    assert torch.equal(aligned.confidence, data.confidence)


def test_after_first_the_first_frames_axes_are_the_frames_axes(tmp_path):
    clip = in_camera(moving_body(), rot_y(70) @ rot_z(-12), (.5, .1, 2.5))
    data = load_pyskl(write_pickle(tmp_path / "d.pkl", [annotation("a", clip[None])]), T)
    first = align_views(data, "first").keypoints.numpy()[0, 0].astype(np.float64)  # [T, V, 3]
    up = first[0, J["spine_shoulder"]] - first[0, J["spine_base"]]
    across = first[0, J["right_shoulder"]] - first[0, J["left_shoulder"]]
    assert abs(up[0]) < TOL and abs(up[2]) < TOL and up[1] > 0.5  # exactly +y
    assert abs(across[2]) < TOL and across[0] > 0.1  # in the x, y plane, pointing to +x
    # the unit: the median 3D torso length is 1 (the loader's x, y projection of it need not be)
    torso = np.linalg.norm(first[:, J["spine_shoulder"]] - first[:, J["spine_base"]], axis=-1)
    assert abs(np.median(torso) - 1) < TOL


def test_after_mean_the_clips_mean_axes_are_the_frames_axes(tmp_path):
    clip = in_camera(moving_body(), rot_y(-110), (0, 0, 3))
    data = load_pyskl(write_pickle(tmp_path / "d.pkl", [annotation("a", clip[None])]), T)
    mean = align_views(data, "mean").keypoints.numpy()[0, 0].astype(np.float64)
    up, across, seen = frame_axes(mean, np.ones(mean.shape[:2], bool), NTU)
    assert seen.all()
    up, across = up.mean(axis=0), across.mean(axis=0)
    assert abs(up[0]) < TOL and abs(up[2]) < TOL and up[1] > 0.9
    assert abs(across[2]) < TOL and across[0] > 0.5
    first = align_views(data, "first").keypoints.numpy()[0, 0]
    assert np.abs(first - mean).max() > 0.05  # the body turns during the clip: the two modes differ


def test_body_rotation_is_a_proper_rotation_with_the_documented_axes():
    """Float64 rotations: the tolerance 1e-9 is far above rounding on any CPU (an axis near-parallel
    to up amplifies it) and far below any wrong axis."""
    rng = np.random.default_rng(3)
    up, across = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    rotation, exists = body_rotation(up, across)
    assert exists.all()
    np.testing.assert_allclose(rotation @ np.swapaxes(rotation, 1, 2), np.broadcast_to(np.eye(3), (50, 3, 3)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(rotation), 1, atol=1e-9)  # right-handed: no mirror
    turned_up = np.einsum("ndc,nc->nd", rotation, up / np.linalg.norm(up, axis=1, keepdims=True))
    np.testing.assert_allclose(turned_up, np.tile([0, 1, 0], (50, 1)), atol=1e-9)
    turned_across = np.einsum("ndc,nc->nd", rotation, across)
    assert (np.abs(turned_across[:, 2]) < 1e-9).all() and (turned_across[:, 0] > 0).all()
    _, exists = body_rotation(np.array([[0, 1, 0], [0, 0, 0], [0, 1, 0]]), np.array([[1, 0, 0], [1, 0, 0], [0, 2, 0]]))
    assert exists.tolist() == [True, False, False]  # zero-length up; across parallel to up


# --- none, and what is left as it is ---------------------------------------------------------

def test_none_is_the_loader_output_and_keeps_every_key(tmp_path):
    """The keys of runs and caches made before view alignment existed, computed at its branch's
    start (Python 3.11, the project's): `none` must find them all again."""
    from posebridge.cache.fingerprint import file_code_sha256
    from posebridge.pipeline.run import load_split_data, run_name
    from posebridge.stages.splits.split_file import read_split_file
    from posebridge.stages.train import data as data_module
    from posebridge.stages.train import view
    from posebridge.stages.train.config import TrainConfig

    assert data_module.loader_code_sha256() == "f156fe08ea09eea4a209b66fd95d3547ff0ffc4556cfd4cf96c271001639998f"
    assert file_code_sha256(view.__file__) == "0bf116767021117d8f70c3fcbfb9bee064c6189fec1cadb163bf5982a3fd2cbe"
    # the defaults of then (64 frames, no alignment, no hubness correction) name their runs as they did
    assert run_name(TrainConfig(split="x", num_frames=64, view_align="none", hubness="none"), "d") == "minilm-cues-all-bee2499c"
    assert run_name(TrainConfig(split="x", cues="none", preset="purls", view_align="none", num_frames=64,
                                hubness="none"), "d") \
        == "minilm-cues-none-f3373238"
    assert run_name(TrainConfig(split="x", num_frames=64), "d") != "minilm-cues-all-bee2499c"
    assert {s: skeleton(s).fingerprint[:16] for s in ("ntu25", "kinect_v1", "coco17", "blazepose33", "openpose18")} \
        == {"ntu25": "2c25ab889349a0d3", "kinect_v1": "918a4ee036d67c18", "coco17": "f76d7a6661986368",
            "blazepose33": "6e58e0ed805f8900", "openpose18": "68562fae8f51f59b"}

    path = write_pickle(tmp_path / "d.pkl", [annotation("a", in_camera(moving_body(), rot_y(40), (0, 0, 3))[None])],
                        split={"xsub_train": ["a"], "xsub_val": ["a"]})
    data = load_pyskl(path, 16)
    assert align_views(data, "none") is data
    split_file = tmp_path / "s.json"
    split_file.write_text(json.dumps({"name": "s", "classes": ["a", "b"], "train": "xsub_train", "test": "xsub_val",
                                      "unseen": ["b"]}))
    (split,) = read_split_file(split_file).splits()
    loaded = load_split_data(split, 16, None, None, path, {}, view_align="none")
    assert torch.equal(loaded.keypoints, data.keypoints) and loaded.source_fingerprint == file_sha256(path)
    turned = load_split_data(split, 16, None, None, path, {}, view_align="mean")
    assert turned.source_fingerprint == aligned_fingerprint(file_sha256(path), NTU, "mean")


def test_clips_without_usable_axes_keep_the_loader_output_and_are_counted(tmp_path, capsys):
    good = in_camera(moving_body(), rot_y(30), (0, 0, 3))
    no_shoulders = good.copy()
    no_shoulders[:, [J["left_shoulder"], J["right_shoulder"]]] = 0  # never tracked
    coincide = good.copy()
    coincide[:, J["left_shoulder"]] = coincide[:, J["right_shoulder"]]  # zero-length across axis
    parallel = good.copy()  # the shoulder line along the spine
    spine = good[:, J["spine_shoulder"]] - good[:, J["spine_base"]]
    parallel[:, J["right_shoulder"]] = good[:, J["spine_shoulder"]] + .2 * spine
    parallel[:, J["left_shoulder"]] = good[:, J["spine_shoulder"]] - .2 * spine
    no_torso = good.copy()
    no_torso[:, J["spine_base"]] = np.nan  # the torso's bottom never seen
    clips = {"good": good, "no_shoulders": no_shoulders, "coincide": coincide, "parallel": parallel,
             "no_torso": no_torso}
    data = load_pyskl(write_pickle(tmp_path / "d.pkl", [annotation(k, v[None]) for k, v in clips.items()]), 16)
    capsys.readouterr()
    for mode in ("first", "mean"):
        aligned = align_views(data, mode, "d.pkl")
        line = capsys.readouterr().out.strip()
        assert line == (f"view-align {mode}: 4 of 5 clips of d.pkl keep the loader's normalisation, unturned (body "
                        f"axes never seen or degenerate, or no depth): no_shoulders, coincide, parallel, no_torso")
        assert torch.equal(aligned.keypoints[1:], data.keypoints[1:])
        assert not torch.equal(aligned.keypoints[0], data.keypoints[0])


def test_2d_data_stores_and_feature_folders_are_left_as_they_are(tmp_path, capsys):
    rng = np.random.default_rng(0)
    coco = {"frame_dir": "c", "label": 0, "total_frames": 8, "keypoint": rng.uniform(100, 400, (1, 8, 17, 2)).astype(np.float32),
            "keypoint_score": np.ones((1, 8, 17), np.float32), "img_shape": (480, 640)}
    flat = load_pyskl(write_pickle(tmp_path / "coco.pkl", [coco]), 8)
    assert align_views(flat, "mean", "coco.pkl") is flat
    assert capsys.readouterr().out.strip() == "view-align mean does not apply to coco.pkl: layout coco17 is 2D (3D skeletons only)"
    # the default mode, left as it is, passes over 2D data without a word; a chosen one says so
    assert chosen("mean", []) is False and chosen("mean", ["view_align"]) and chosen("first", [])
    assert align_views(flat, "mean", "coco.pkl", say_not_applicable=False) is flat
    assert capsys.readouterr().out == ""

    # a 3D layout whose file has x, y only (z = 0): those clips are not turned, and are counted
    xy_only = {"frame_dir": "xy", "label": 0, "total_frames": T, "img_shape": (480, 640),
               "keypoint": in_camera(moving_body(), rot_y(30), (0, 0, 3))[None, :, :, :2].astype(np.float32)}
    mixed = load_pyskl(write_pickle(tmp_path / "m.pkl", [annotation("xyz", in_camera(moving_body(), rot_y(30), (0, 0, 3))[None]),
                                                          xy_only]), 16)
    aligned = align_views(mixed, "first", "m.pkl")
    assert "1 of 2 clips of m.pkl keep the loader's normalisation" in capsys.readouterr().out
    assert torch.equal(aligned.keypoints[1], mixed.keypoints[1]) and not torch.equal(aligned.keypoints[0], mixed.keypoints[0])

    store_like = dataclasses.replace(mixed, layout={"skeleton": "blazepose33"})
    assert align_views(store_like, "first", "the store") is store_like
    assert "a cue store's z is the pose model's estimate" in capsys.readouterr().out
    folder = dataclasses.replace(mixed, joint_features=torch.zeros(2, 1, 3, 25, 4))
    assert align_views(folder, "mean", "F") is folder
    assert "feature folder" in capsys.readouterr().out


def test_a_layout_without_across_keeps_the_loader_output_and_says_so(tmp_path, capsys):
    layout = layout_from_dict({k: v for k, v in NTU.to_dict().items() if k != "across"})
    assert layout.across is None and layout.fingerprint == NTU.fingerprint  # `across` is in no data key
    data = load_pyskl(write_pickle(tmp_path / "d.pkl", [annotation("a", in_camera(moving_body(), rot_y(30), (0, 0, 3))[None])]),
                      16, layout=layout)
    for mode in ("first", "mean"):
        assert align_views(data, mode, "d.pkl") is data
    assert align_views(data, "mean", "d.pkl", say_not_applicable=False) is data  # the default: said all the same
    out = capsys.readouterr().out.splitlines()
    assert out == [f"view-align {m} does not apply to d.pkl: layout ntu25 names no `across` joints "
                   f"(docs/layouts.md), so its clips keep the loader's normalisation" for m in ("first", "mean", "mean")]


def test_an_unknown_mode_is_a_one_line_error():
    from posebridge.stages.train.config import TrainConfig

    with pytest.raises(UserError, match=r"^--view-align 'sideways' is unknown; use one of none, first, mean$"):
        check_mode("sideways")
    with pytest.raises(UserError, match=r"^--view-align 'sideways' is unknown; use one of none, first, mean$"):
        TrainConfig(split="x", view_align="sideways").validate()


# --- the setting through the command line, eval and predict --------------------------------------

def write_3d_set(path: Path, clips_per_class: int = 4) -> Path:
    """Four classes of NTU-25 3D clips, each moving the right wrist its own way, every clip seen by a
    camera turned its own way; half of each class on xsub_train, half on xsub_val."""
    rng = np.random.default_rng(0)
    annotations, train, val = [], [], []
    for label in range(4):
        for i in range(2 * clips_per_class):
            body = moving_body(seed=10 * label + i)
            body[:, J["right_wrist"]] += np.sin(np.linspace(0, (label + 1) * np.pi, T))[:, None] * (.2, .1, 0)
            clip = f"S{label}C{i:02d}"
            camera = rot_y(rng.uniform(-90, 90)) @ rot_x(rng.uniform(-10, 10))
            annotations.append(annotation(clip, in_camera(body, camera, (0, 0, 3))[None], label))
            (train if i < clips_per_class else val).append(clip)
    return write_pickle(path, annotations, split={"xsub_train": train, "xsub_val": val})


def test_the_flag_reaches_the_loader_and_eval_rebuilds_the_same_inputs(tmp_path, capsys):
    from posebridge.pipeline.cli import main
    from posebridge.pipeline.run import evaluate_run

    data = write_3d_set(tmp_path / "ntu3d.pkl")
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"name": "three_d", "skeleton": "ntu25", "classes": ["a", "b", "c", "d"],
                                      "train": "xsub_train", "test": "xsub_val", "unseen": ["d"]}))
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as done:
        main(["train", "--pyskl", str(data), "--split-file", str(split_file), "--cues", "none", "--runs-dir", str(runs),
              "--cache-dir", str(tmp_path / "cache"), "--epochs", "1", "--batch-size", "8", "--num-frames", "24",
              "--skeleton-encoder", "gcn", "--gzsl-calibration", "none", "--device", "cpu", "--view-align", "mean"])
    out, err = capsys.readouterr()
    assert done.value.code == 0, err
    assert " | view-align mean | " in out and "keep the loader's normalisation" not in out  # every clip turned
    (run_dir,) = runs.glob("three_d/minilm-cues-none-*/seed-0")
    assert json.loads((run_dir / "config.json").read_text())["view_align"] == "mean"
    expected = aligned_fingerprint(file_sha256(data), NTU, "mean")
    assert json.loads((run_dir / "fingerprints.json").read_text())["data"] == expected

    again = evaluate_run(run_dir, pyskl=data, split_file=split_file, cache_dir=tmp_path / "cache")
    assert again["data_matches_training"]  # eval turned the clips as the run's config says
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert again["zsl"]["top1"] == pytest.approx(trained["zsl"]["top1"])


@pytest.mark.parametrize("command", ["train", "export-features"])
def test_help_names_the_flag_and_that_it_is_for_3d_skeletons(command, capsys):
    from posebridge.pipeline.cli import main

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert done.value.code == 0 and "--view-align" in text
    assert "3D skeletons only" in text and "posebridge mean, purls first" in text
