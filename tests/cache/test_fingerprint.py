"""Cache identity: what changes a fingerprint and what must not."""
import dataclasses
import shutil
from pathlib import Path

import pytest

from posebridge.stages.extract.config import CueConfig, ExtractConfig, RunSettings
from posebridge.cache.fingerprint import canonical_json, content_id, fingerprint


def test_canonical_json_ignores_key_order_and_int_float_spelling():
    assert canonical_json({"b": 1, "a": (1, 2.0)}) == canonical_json({"a": [1, 2], "b": 1.0})


def test_every_output_setting_changes_the_fingerprint():
    base = fingerprint(ExtractConfig().output_settings())
    changed = [
        ExtractConfig(stride=2),
        ExtractConfig(max_frames=100),
        ExtractConfig(min_detection_score=0.4),
        ExtractConfig(cues=CueConfig(levels=("fpn64",))),
        ExtractConfig(cues=CueConfig(window=5)),
        ExtractConfig(cues=CueConfig(heatmap_patch=5)),
        ExtractConfig(cues=CueConfig(feature_dtype="float16")),
        ExtractConfig(cues=CueConfig(joints=(0, 15, 16))),
    ]
    prints = {fingerprint(c.output_settings()) for c in changed}
    assert base not in prints and len(prints) == len(changed)


def test_run_settings_are_not_output_settings():
    out = ExtractConfig().output_settings()
    for f in dataclasses.fields(RunSettings):
        assert f.name not in out  # threads, workers, shard size, device never split a cache


def test_paths_are_refused():
    with pytest.raises(TypeError):
        fingerprint({"video": Path("/x")})


def test_content_id_follows_bytes_not_names(tmp_path):
    a = tmp_path / "a.mp4"
    a.write_bytes(b"x" * 5_000_000 + b"tail")
    b = tmp_path / "renamed.mp4"
    shutil.copy(a, b)
    assert content_id(a) == content_id(b)
    b.write_bytes(b"x" * 5_000_000 + b"TAIL")  # same size, different tail (beyond the sampled head)
    assert content_id(a) != content_id(b)
