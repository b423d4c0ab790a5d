"""Run from anywhere: models, cache and runs are found from any working directory; `posebridge
setup` fills the per-user models folder from a folder or the MediaPipe wheel (sha256-checked)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from posebridge.stages import paths
from posebridge.cache.errors import UserError
from posebridge.stages.extract.backends.blazepose import pinned_model_files
from posebridge.stages.extract.setup_models import setup_models

ROOT = Path(__file__).resolve().parents[2]
POSEBRIDGE = str(Path(sys.executable).parent / "posebridge")
MP_WHEEL = ROOT / "assets" / "downloads" / "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"


def _clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSEBRIDGE_")}
    return {**env, **extra}


def test_in_a_clone_the_defaults_are_the_clones_whatever_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("POSEBRIDGE_MODELS", "POSEBRIDGE_CACHE", "POSEBRIDGE_RUNS"):
        monkeypatch.delenv(name, raising=False)
    assert paths.source_checkout() == ROOT
    assert paths.models_root() == ROOT / "assets" / "models"
    assert paths.cache_root() == ROOT / "outputs" / "cache" and paths.runs_root() == ROOT / "outputs" / "runs"
    monkeypatch.setenv("POSEBRIDGE_MODELS", str(tmp_path / "m"))
    assert paths.models_root() == tmp_path / "m" and paths.models_root(tmp_path / "o") == tmp_path / "o"


def test_outside_a_clone_models_come_from_the_per_user_folder_and_data_goes_under_the_cwd(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "source_checkout", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for name in ("POSEBRIDGE_MODELS", "POSEBRIDGE_CACHE", "POSEBRIDGE_RUNS"):
        monkeypatch.delenv(name, raising=False)
    assert paths.models_root() == tmp_path / "xdg" / "posebridge" / "models"
    assert paths.cache_root() == Path("outputs/cache") and paths.runs_root() == Path("outputs/runs")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.models_root() == tmp_path / "home" / ".cache" / "posebridge" / "models"


def test_the_missing_models_error_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("POSEBRIDGE_MODELS", raising=False)
    with pytest.raises(UserError) as err:
        pinned_model_files(tmp_path / "empty")
    text = str(err.value)
    for place in ("--models-dir (", "$POSEBRIDGE_MODELS (not set)", f"assets/models ({ROOT / 'assets' / 'models'})",
                  f"per-user folder ({tmp_path / 'xdg' / 'posebridge' / 'models'})", "posebridge setup"):
        assert place in text, text


def test_setup_copies_and_verifies_from_a_folder_or_the_wheel(tmp_path, models_dir):
    dest = setup_models(tmp_path / "a", models_dir, echo=lambda line: None)
    assert sorted(p.name for p in dest.iterdir()) == ["pose_detection.tflite", "pose_landmark_full.tflite"]
    assert pinned_model_files(dest)
    if not MP_WHEEL.is_file():
        pytest.fail(f"{MP_WHEEL} is missing; run `make setup` first")
    assert pinned_model_files(setup_models(tmp_path / "b", MP_WHEEL, echo=lambda line: None))
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("pose_detection.tflite", "pose_landmark_full.tflite"):
        (bad / name).write_bytes(b"not a model")
    with pytest.raises(UserError, match="sha256 differs"):
        setup_models(tmp_path / "c", bad, echo=lambda line: None)
    assert not (tmp_path / "c" / "pose_detection.tflite").exists()


def test_extract_from_another_directory_with_models_from_setup(tmp_path, demo_videos, models_dir):
    """A cwd outside the clone, no --models-dir, no $POSEBRIDGE_MODELS: the clone's models are found;
    with the clone's folder hidden (XDG per-user folder filled by `posebridge setup`), those are."""
    videos = tmp_path / "vids"
    videos.mkdir()
    shutil.copy(demo_videos[0], videos / demo_videos[0].name)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env(XDG_CACHE_HOME=str(tmp_path / "xdg"))
    out = subprocess.run([POSEBRIDGE, "extract", "--videos", str(videos), "--max-frames", "2", "--no-progress",
                          "--workers", "1", "--cache-dir", "cache"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert list((work / "cache" / "vids").glob("*/store.zarr"))
    setup = subprocess.run([POSEBRIDGE, "setup", "--from", str(models_dir)], cwd=work, env=env, capture_output=True,
                           text=True, timeout=120)
    assert setup.returncode == 0 and str(tmp_path / "xdg" / "posebridge" / "models") in setup.stdout, setup.stderr
