"""Stage 1 end to end on real clips: resume after kill -9, failures, cache reuse, fingerprints."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from posebridge.cache.store import CueStore
from posebridge.stages.extract.config import CueConfig, ExtractConfig, RunSettings
from posebridge.cache.errors import UserError
from posebridge.stages.extract.run import extract

FAST = ExtractConfig(max_frames=12)  # a few frames per clip keeps the tests quick
ONE_PER_SHARD = RunSettings(shard_clips=1)


def _arrays(store_path: Path) -> dict:
    store = CueStore.open(store_path)
    return {rec.clip_id: (rec, arr) for rec, arr in store.iter_clips()}


def _assert_same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for clip_id in a:
        (ra, xa), (rb, xb) = a[clip_id], b[clip_id]
        assert (ra.content_id, ra.label, ra.num_frames, ra.meta) == (rb.content_id, rb.label, rb.num_frames, rb.meta)
        for field in ("keypoints", "score", "features", "heatmaps"):
            np.testing.assert_array_equal(getattr(xa, field), getattr(xb, field), err_msg=f"{clip_id} {field}")


def test_extract_labels_ntu_names_and_second_run_makes_no_model_calls(video_dir, models_dir, tmp_path):
    first = extract(video_dir, "ntu60", cache_dir=tmp_path / "cache", config=FAST, models_dir=models_dir,
                    progress=False)
    assert (first.done, first.failed, first.frames) == (4, 0, 48)
    assert first.model_calls >= 48
    clips = {r.clip_id: r for r in CueStore.open(first.store).clips()}
    assert clips["S001C001P001R001A023_rgb.mp4"].label == 22
    assert clips["S001C002P002R001A001_rgb.mp4"].meta["subject"] == 2
    again = extract(video_dir, "ntu60", cache_dir=tmp_path / "cache", config=FAST, models_dir=models_dir,
                    progress=False)
    assert (again.done, again.skipped, again.model_calls) == (0, 4, 0)
    assert again.store == first.store


def test_a_changed_setting_writes_a_new_store_and_never_mixes(video_dir, models_dir, tmp_path):
    a = extract(video_dir, "d", cache_dir=tmp_path, config=FAST, models_dir=models_dir, progress=False)
    other = ExtractConfig(max_frames=12, cues=CueConfig(heatmap_patch=5))
    b = extract(video_dir, "d", cache_dir=tmp_path, config=other, models_dir=models_dir, progress=False)
    assert a.store != b.store and b.done == 4
    assert CueStore.open(b.store).layout.heatmap_patch == 5
    # Not a cache of these settings: forcing it into the old store's path is refused.
    with pytest.raises(UserError, match="fingerprint"):
        CueStore.create(a.store, dataset="d", fingerprint="f" * 64, extractor={}, layout=CueStore.open(a.store).layout)


def test_corrupt_files_are_logged_and_the_rest_is_done(video_dir, models_dir, tmp_path):
    (video_dir / "S001C001P003R001A002_rgb.mp4").write_bytes(b"this is not a video")
    (video_dir / "S001C001P003R001A003_rgb.mp4").write_bytes(b"")
    summary = extract(video_dir, "ntu60", cache_dir=tmp_path, config=FAST, models_dir=models_dir, progress=False)
    assert (summary.done, summary.failed) == (4, 2)
    reasons = {f["clip_id"]: f["reason"] for f in summary.failures}
    assert "empty" in reasons["S001C001P003R001A003_rgb.mp4"]
    assert "cannot open" in reasons["S001C001P003R001A002_rgb.mp4"]
    assert any("failed" in line for line in summary.lines())
    # Fixing one file and deleting the other is enough: the next run extracts only the fixed one.
    shutil.copy(video_dir / "S001C001P001R001A001_rgb.mp4", video_dir / "S001C001P003R001A003_rgb.mp4")
    (video_dir / "S001C001P003R001A002_rgb.mp4").unlink()
    again = extract(video_dir, "ntu60", cache_dir=tmp_path, config=FAST, models_dir=models_dir, progress=False)
    assert (again.done, again.skipped, again.failed) == (1, 4, 0)


def test_kill_9_then_rerun_equals_an_uninterrupted_run(video_dir, models_dir, tmp_path):
    reference = extract(video_dir, "demo", cache_dir=tmp_path / "ref", config=ExtractConfig(max_frames=40),
                        run=ONE_PER_SHARD, models_dir=models_dir, progress=False)
    cmd = [sys.executable, "-m", "posebridge.pipeline.cli", "extract", "--videos", str(video_dir), "--dataset", "demo",
           "--cache-dir", str(tmp_path / "killed"), "--max-frames", "40", "--shard-clips", "1", "--workers", "1",
           "--models-dir", str(models_dir), "--no-progress"]
    parts = reference.store.relative_to(tmp_path / "ref") / "store.zarr" / "parts"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # kill as soon as one shard has landed
        found = tmp_path / "killed" / parts
        if found.exists() and any(p.is_dir() and not p.name.startswith(".") for p in found.iterdir()):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "extraction finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = CueStore.open(tmp_path / "killed" / reference.store.relative_to(tmp_path / "ref"))
    n_partial = len(partial.clips())
    assert 1 <= n_partial < 4
    resumed = extract(video_dir, "demo", cache_dir=tmp_path / "killed", config=ExtractConfig(max_frames=40),
                      run=ONE_PER_SHARD, models_dir=models_dir, progress=False)
    assert (resumed.skipped, resumed.done) == (n_partial, 4 - n_partial)
    _assert_same(_arrays(reference.store), _arrays(resumed.store))


def test_two_workers_equal_one(video_dir, models_dir, tmp_path):
    one = extract(video_dir, "demo", cache_dir=tmp_path / "a", config=FAST, run=RunSettings(workers=1, num_threads=1),
                  models_dir=models_dir, progress=False)
    two = extract(video_dir, "demo", cache_dir=tmp_path / "b", config=FAST, run=RunSettings(workers=2, num_threads=1),
                  models_dir=models_dir, progress=False)
    assert two.done == 4
    _assert_same(_arrays(one.store), _arrays(two.store))


def test_relabelled_clips_keep_their_arrays_without_a_pose_model_run(tmp_path, demo_videos, models_dir):
    """A class folder added: b's label number changes, its bytes do not. It is copied under the new
    labels (no pose model run for it), the new class is extracted, and numbering never mixes."""
    videos = tmp_path / "classes"
    for cls, src in (("a", demo_videos[0]), ("b", demo_videos[1])):
        (videos / cls).mkdir(parents=True)
        shutil.copy(src, videos / cls / "clip.mp4")
    first = extract(videos, "mine", cache_dir=tmp_path / "c", config=FAST, models_dir=models_dir, progress=False)
    assert {r.clip_id: r.label for r in CueStore.open(first.store).clips()} == {"a/clip.mp4": 0, "b/clip.mp4": 1}
    (videos / "aa").mkdir()  # a new class sorts between the old ones: b's label number changes
    shutil.copy(demo_videos[2], videos / "aa" / "clip.mp4")
    before = CueStore.open(first.store).read_clip("b/clip.mp4")
    again = extract(videos, "mine", cache_dir=tmp_path / "c", config=FAST, models_dir=models_dir, progress=False)
    assert (again.done, again.skipped, again.relabelled) == (1, 1, 1)
    assert any("1 relabelled" in line for line in again.lines())
    store = CueStore.open(again.store)
    labels = {r.clip_id: (r.label, r.label_name) for r in store.clips()}
    assert labels == {"a/clip.mp4": (0, "a"), "aa/clip.mp4": (1, "aa"), "b/clip.mp4": (2, "b")}
    after = store.read_clip("b/clip.mp4")
    for name in ("keypoints", "score", "features", "heatmaps"):
        assert np.array_equal(getattr(before, name), getattr(after, name)), name  # the same stored bytes
    assert again.coverage.complete
    third = extract(videos, "mine", cache_dir=tmp_path / "c", config=FAST, models_dir=models_dir, progress=False)
    assert (third.done, third.skipped, third.relabelled, third.model_calls) == (0, 3, 0, 0)


def test_a_cached_clip_whose_file_breaks_is_reported_failed(video_dir, models_dir, tmp_path):
    first = extract(video_dir, "ntu60", cache_dir=tmp_path, config=FAST, models_dir=models_dir, progress=False)
    assert first.failed == 0
    broken = video_dir / "S001C001P001R001A001_rgb.mp4"
    broken.write_bytes(broken.read_bytes()[:5000])  # re-encoded / truncated since it was cached
    again = extract(video_dir, "ntu60", cache_dir=tmp_path, config=FAST, models_dir=models_dir, progress=False)
    assert (again.done, again.skipped, again.failed) == (0, 3, 1)
    assert again.failures[0]["clip_id"] == broken.name
    assert CueStore.open(again.store).info()["n_failures"] == 1
    shutil.copy(video_dir / "S001C002P002R001A001_rgb.mp4", broken)  # fixed again: extracted, resolved
    fixed = extract(video_dir, "ntu60", cache_dir=tmp_path, config=FAST, models_dir=models_dir, progress=False)
    assert (fixed.done, fixed.failed) == (1, 0) and CueStore.open(fixed.store).info()["n_failures"] == 0


def test_layout_cue_joints_index_the_stores_own_skeleton(models_dir):
    """--joints are BlazePose indices; a COCO-17 backend's store holds them as COCO indices (by name)."""
    from posebridge.cache.schema import BLAZEPOSE33, COCO17
    from posebridge.stages.extract.backends import make_backend
    from posebridge.stages.extract.run import cache_layout

    embedded = make_backend("embedded", ExtractConfig(), models_dir=models_dir, num_threads=1)
    layout = cache_layout(ExtractConfig(), embedded)
    assert layout.skeleton == "blazepose33" and layout.cue_joints == CueConfig().joints and layout.max_persons == 2

    class Coco17Names:  # what stage 1 reads of a COCO-17 backend (the mmpose one) for the layout
        name, joint_names = "coco", COCO17.joint_names
        heatmap_kind = "simcc_outer"

        def feature_channels(self) -> int:
            return 8

    coco = cache_layout(ExtractConfig(), Coco17Names())
    assert coco.skeleton == "coco17"
    assert [COCO17.joint_names[j] for j in coco.cue_joints] == [BLAZEPOSE33.joint_names[j] for j in CueConfig().joints]
    with pytest.raises(UserError, match="no left_pinky"):
        cache_layout(ExtractConfig(cues=CueConfig(joints=(0, 17))), Coco17Names())
