"""Shared fixtures: the real assets fetched by `make setup` (models, demo videos, messi5.jpg)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "assets" / "models"
DEMO_VIDEOS = ROOT / "assets" / "videos" / "demo"
MESSI = ROOT / "assets" / "images" / "messi5.jpg"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _not_a_cluster_task(monkeypatch):
    """Tests run whole sets: pytest started inside torchrun or a SLURM array must not shard them."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)


def _need(path: Path) -> Path:
    if not path.exists():  # a missing asset is a setup error, not a reason to skip
        pytest.fail(f"{path} is missing; run `make setup` (make test does) first")
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    _need(MODELS / "pose_landmark_full.tflite")
    return MODELS


@pytest.fixture(scope="session")
def demo_videos() -> list[Path]:
    return sorted(_need(DEMO_VIDEOS).glob("*.mp4"))


@pytest.fixture(scope="session")
def messi_jpg() -> Path:
    return _need(MESSI)


@pytest.fixture
def video_dir(tmp_path, demo_videos) -> Path:
    """The four demo clips under NTU-style names (two subjects, two actions), as hard copies."""
    names = ["S001C001P001R001A001_rgb.mp4", "S001C002P002R001A001_rgb.mp4",
             "S001C001P001R001A023_rgb.mp4", "S001C002P002R001A023_rgb.mp4"]
    out = tmp_path / "videos"
    out.mkdir()
    for src, name in zip(demo_videos, names):
        shutil.copy(src, out / name)
    return out


def _load_bench_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def two_person_clip(tmp_path_factory, demo_videos) -> Path:
    """REAL footage, composed: demo clips cam01 | cam03 side by side (40 frames, 640 px high), so two
    people are in every frame, the left one always on the left (bench/two_person_clip.py)."""
    make = _load_bench_module("two_person_clip").write_side_by_side
    by_name = {p.name: p for p in demo_videos}
    out = tmp_path_factory.mktemp("two_person") / "videos" / "two_people.mp4"
    return make(_need(by_name["cam01.mp4"]), _need(by_name["cam03.mp4"]), out, frames=40, height=640)
