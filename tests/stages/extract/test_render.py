"""`posebridge render`: cached cues drawn on the real demo clip; outputs decode with PyAV."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import av
import numpy as np
import pytest

from posebridge.cache.errors import UserError
from posebridge.stages.extract.adhoc import adhoc_config
from posebridge.stages.extract.render import ClipCues, _colour, draw_frame, render, skeleton_parents

FRAMES = 6


def _decode(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture
def clip(tmp_path, demo_videos):
    out = tmp_path / "clip.mp4"
    shutil.copy(demo_videos[1], out)
    return out


def test_mp4_gif_and_still_from_one_extraction(clip, tmp_path, models_dir):
    cache = tmp_path / "cache"
    config = adhoc_config(max_frames=FRAMES)
    first = render(clip, tmp_path / "out.mp4", config=config, cache_dir=cache, models_dir=models_dir, size=320)
    assert first.extracted == 1 and first.frames == FRAMES and first.persons == 1
    frames = _decode(tmp_path / "out.mp4")
    assert len(frames) == FRAMES
    assert max(frames[0].shape[:2]) == 320 and all(s % 2 == 0 for s in frames[0].shape[:2])

    gif = render(clip, tmp_path / "out.gif", config=config, cache_dir=cache, models_dir=models_dir, size=200)
    assert gif.extracted == 0  # cues from the cache: no pose work
    assert len(_decode(tmp_path / "out.gif")) == FRAMES

    still = render(clip, tmp_path / "still.png", config=config, cache_dir=cache, models_dir=models_dir,
                   size=320, still_frame=2)
    assert still.frames == 1 and still.extracted == 0
    [png] = _decode(tmp_path / "still.png")
    # The still is frame 2 of the video, with the drawing: it matches the mp4's frame 2 up to the
    # H.264 loss (crf 23: a few levels per pixel on average).
    assert png.shape == frames[2].shape
    assert np.abs(png.astype(int) - frames[2]).mean() < 8


def test_draws_skeleton_ids_and_cue_strength():
    """On a black frame: a joint's circle takes the colour of its heatmap peak, its size grows with
    the feature norm, an empty person slot draws nothing."""
    parents = skeleton_parents("blazepose33")
    kp = np.zeros((1, 2, 33, 5), np.float32)
    kp[0, 0, :, 0] = np.linspace(0.2, 0.8, 33)  # a diagonal "skeleton" of person 0
    kp[0, 0, :, 1] = np.linspace(0.2, 0.8, 33)
    kp[0, 0, :, 3] = 1.0
    cue_joints = (0, 32)
    cues = ClipCues(keypoints=kp, score=np.array([[0.9, 0.0]], np.float32),
                    heatmap_peak=np.array([[[1.0, 0.0], [0.5, 0.5]]], np.float32),
                    feature_norm=np.array([[[1.0, 0.1], [1.0, 1.0]]], np.float32),
                    cue_joints=cue_joints, joint_names=tuple(f"j{i}" for i in range(33)), skeleton="blazepose33")
    image = draw_frame(np.zeros((400, 400, 3), np.uint8), cues, 0, norm_ref=1.0, parents=parents)
    # Joint 0 at (80, 80): full heatmap peak -> the top colour of the map; joint 32 at (320, 320): zero peak.
    assert tuple(image[80, 80]) == _colour(1.0)
    assert tuple(image[320, 320]) == _colour(0.0)

    def blob(y, x):  # pixels of the circle's colour around the joint
        patch = image[y - 20:y + 21, x - 20:x + 21].astype(int)
        return int((np.abs(patch - np.array(image[y, x], int)).sum(axis=-1) == 0).sum())

    assert blob(80, 80) > 2 * blob(320, 320)  # feature norm 1.0 vs 0.1
    empty = cues.keypoints.copy()
    empty[0, 0] = 0
    cues.keypoints = empty
    cues.score = np.zeros((1, 2), np.float32)
    blank = draw_frame(np.zeros((400, 400, 3), np.uint8), cues, 0, norm_ref=1.0, parents=parents)
    assert blank[:300].max() == 0  # nobody to draw above the legend


def test_bad_output_suffix_and_frame(clip, tmp_path, models_dir):
    with pytest.raises(UserError, match=r"\.mp4, \.gif or \.png"):
        render(clip, tmp_path / "out.avi", config=adhoc_config(max_frames=2), cache_dir=tmp_path, models_dir=models_dir)
    with pytest.raises(UserError, match="--frame 5"):
        render(clip, tmp_path / "x.png", config=adhoc_config(max_frames=2), cache_dir=tmp_path, models_dir=models_dir,
               still_frame=5)
    assert not (tmp_path / "x.png").exists()


def test_cli_writes_a_playable_file(clip, tmp_path):
    env = {**os.environ, "POSEBRIDGE_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-m", "posebridge.pipeline.cli", "render", str(clip), "--out",
                          str(tmp_path / "r.mp4"), "--max-frames", "3", "--size", "160"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "3 frame(s), 1 person(s)" in out.stdout
    assert len(_decode(tmp_path / "r.mp4")) == 3
