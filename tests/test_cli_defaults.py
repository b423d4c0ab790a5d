"""CLI defaults are read from the settings dataclasses, not retyped: `posebridge extract` with no
options builds exactly ExtractConfig() / RunSettings() (the train command's defaults come from its presets)."""
from __future__ import annotations

import dataclasses

import typer

from posebridge.pipeline import cli
from posebridge.pipeline.config import CueConfig, ExtractConfig, RunSettings


def _defaults(command: str) -> dict:
    group = typer.main.get_command(cli.app)
    return {p.name: p.default for p in group.commands[command].params}


def test_extract_defaults_are_the_dataclass_defaults():
    d = _defaults("extract")
    config = cli.build_extract_config(d["backend"], cli.DEFAULT_LEVELS[d["backend"]], d["joints"], d["stride"],
                                      d["max_frames"], d["window"], d["heatmap_patch"], d["feature_dtype"],
                                      d["max_persons"])
    assert config == ExtractConfig()
    assert config.cues == CueConfig()
    assert RunSettings(num_threads=d["threads"], workers=d["workers"], shard_clips=d["shard_clips"]) == RunSettings()


def test_predict_and_render_stage1_defaults_are_extract_config():
    for command in ("predict", "render"):
        d = _defaults(command)
        for name in ("backend", "stride", "max_frames"):
            if name in d:
                assert d[name] == getattr(ExtractConfig, name), (command, name)
    fields = {f.name for f in dataclasses.fields(ExtractConfig)}
    assert {"backend", "stride", "max_frames"} <= fields
