"""Stage 1 -> stage 2 on real clips: a cache of the demo videos under NTU names trains and evaluates
on the published ntu60_55_5 split (two seen classes from training subjects, two unseen classes from
a test subject). Tiny on purpose: it checks the plumbing, not accuracy."""
from __future__ import annotations

import json
import shutil

import pytest

from posebridge.stages.extract.config import ExtractConfig
from posebridge.cache.errors import UserError
from posebridge.stages.extract.run import extract
from posebridge.stages.train.config import TrainConfig
from posebridge.pipeline.run import evaluate_run, train_splits

# A001 / A023 are seen in ntu60_55_5; A011 (reading) and A012 (writing) are unseen.
# Subjects 1 and 2 are cross-subject training subjects, 3 is a test subject.
NAMES = ["S001C001P001R001A001_rgb.mp4", "S001C001P002R001A023_rgb.mp4",
         "S001C001P003R001A011_rgb.mp4", "S001C001P003R001A012_rgb.mp4"]


@pytest.fixture(scope="module")
def ntu_cache(tmp_path_factory, demo_videos, models_dir):
    root = tmp_path_factory.mktemp("ntu")
    videos = root / "videos"
    videos.mkdir()
    for src, name in zip(demo_videos, NAMES):
        shutil.copy(src, videos / name)
    summary = extract(videos, "ntu60", cache_dir=root / "cache", config=ExtractConfig(max_frames=30),
                      models_dir=models_dir, progress=False)
    assert summary.done == 4
    return root


def test_real_clips_train_and_evaluate_on_a_published_split(ntu_cache):
    # The encoder of a published split at its real size: a Shift-GCN pretrained on the seen classes (kept
    # tiny here; named, since `auto` gives four clips the small GCN)
    cfg = TrainConfig(split="ntu60_55_5", epochs=2, batch_size=4, gzsl_calibration="none", shiftgcn_width=8,
                      shiftgcn_epochs=2, skeleton_encoder="shiftgcn")
    result = train_splits(["ntu60_55_5"], base=cfg, cache_dir=ntu_cache / "cache", runs_dir=ntu_cache / "runs")[0]
    run_dir = result.run_dirs[0]
    assert json.loads((run_dir / "config.json").read_text())["skeleton_encoder"] == "shiftgcn"
    assert len(list((ntu_cache / "cache" / "encoders").glob("shiftgcn-*/features.npy"))) == 1
    for name in ("config.json", "fingerprints.json", "versions.json", "metrics.json", "results.md",
                 "confusion.png", "per_class.png", "checkpoint.pt"):
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["samples"]["train"] == 2 and metrics["samples"]["test_zsl"] == 2
    assert "| ntu60_55_5 |" in result.table
    again = evaluate_run(run_dir, cache_dir=ntu_cache / "cache")
    assert again["zsl"] == metrics["zsl"]


def test_cues_need_a_cache_not_a_pyskl_pickle(ntu_cache, tmp_path):
    with pytest.raises(UserError, match="--cues none"):
        train_splits(["ntu60_55_5"], base=TrainConfig(split="ntu60_55_5"), pyskl=tmp_path / "x.pkl",
                     runs_dir=tmp_path)


def test_missing_cache_names_the_extract_command(tmp_path):
    with pytest.raises(UserError, match=f"posebridge extract --videos .* --dataset ntu120 --cache-dir {tmp_path}"):
        train_splits(["ntu120_110_10"], base=TrainConfig(split="ntu120_110_10"), cache_dir=tmp_path, runs_dir=tmp_path)


def test_skeleton_only_training_from_a_pyskl_export(ntu_cache):
    """The PYSKL route: export the cache (with NTU's xsub lists), train on the pickle with --cues none."""
    from posebridge.cache.export import export_pyskl
    from posebridge.cache.store import CueStore, list_stores
    from posebridge.stages.datasets.ntu import ntu_benchmark_splits

    store = CueStore.open(list_stores(ntu_cache / "cache", "ntu60")[0])
    pickle_path = ntu_cache / "ntu60_blazepose.pkl"
    export_pyskl(store, pickle_path, split=ntu_benchmark_splits(store.clips()))
    cfg = TrainConfig(split="ntu60_55_5", cues="none", epochs=2, batch_size=4, gzsl_calibration="none",
                      skeleton_encoder="gcn")
    result = train_splits(["ntu60_55_5"], base=cfg, pyskl=pickle_path, runs_dir=ntu_cache / "runs-pyskl")[0]
    metrics = json.loads((result.run_dirs[0] / "metrics.json").read_text())
    assert metrics["cues"] == "none"
    assert metrics["samples"]["train"] == 2 and metrics["samples"]["test_zsl"] == 2


def test_cli_export_writes_pyskl_with_ntu_splits_and_hdf5(ntu_cache, tmp_path):
    import os
    import subprocess
    import sys

    from posebridge.cache.export import read_hdf5
    from posebridge.cache.pyskl import read_pyskl

    env = {**os.environ, "POSEBRIDGE_CACHE": str(ntu_cache / "cache")}
    for fmt, out, extra in (("pyskl", tmp_path / "x.pkl", []), ("pyskl", tmp_path / "full.pkl", ["--layout", "full"]),
                            ("hdf5", tmp_path / "x.h5", [])):
        done = subprocess.run([sys.executable, "-m", "posebridge.pipeline.cli", "export", "ntu60", "--format", fmt,
                               "--out", str(out), *extra], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
    data = read_pyskl(tmp_path / "x.pkl")
    assert set(data["split"]["xsub_train"]) == {NAMES[0], NAMES[1]}
    assert set(data["split"]["xsub_val"]) == {NAMES[2], NAMES[3]}
    assert data["annotations"][0]["keypoint"].shape == (1, 30, 17, 2)  # COCO-17; one person in the demo clips
    assert read_pyskl(tmp_path / "full.pkl")["annotations"][0]["keypoint"].shape == (1, 30, 33, 2)
    _, clips = read_hdf5(tmp_path / "x.h5")
    assert len(clips) == 4
