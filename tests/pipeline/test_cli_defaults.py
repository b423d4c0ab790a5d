"""CLI defaults are read from the settings dataclasses, not retyped: `posebridge extract` with no
options builds exactly ExtractConfig() / RunSettings() (the train command's defaults come from its presets)."""
from __future__ import annotations

import dataclasses

import typer

from posebridge.pipeline import cli
from posebridge.stages.extract.config import CueConfig, ExtractConfig, RunSettings


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


def test_stage2_commands_leave_train_config_fields_unset():
    """An option that sets a TrainConfig field defaults to None (not given), so TrainConfig (or the
    preset) decides: a default changed there changes every command."""
    from posebridge.stages.train.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"split", "preset"}
    for command in ("train", "ablate", "export-features", "demo"):
        retyped = {n: v for n, v in _defaults(command).items() if n in fields and v is not None}
        assert retyped == {}, command
    assert _defaults("train")["preset"] == _defaults("export-features")["preset"] == TrainConfig.preset


def test_ablate_and_demo_configs_are_train_config_defaults(monkeypatch):
    import posebridge.pipeline.run as run
    from posebridge.pipeline.demo import demo_configs
    from posebridge.stages.train.config import TrainConfig

    seen = {}

    def ablate_cues(split, base, **kw):
        seen["base"] = base
        return cli.Path("."), "table"

    monkeypatch.setattr(run, "ablate_cues", ablate_cues)
    try:
        cli.main(["ablate", "--split", "synthetic_zsl"])
    except SystemExit as done:
        assert done.code == 0
    assert seen["base"] == TrainConfig(split="synthetic_zsl")
    with_cues, without = demo_configs()
    assert with_cues == TrainConfig(split="synthetic_zsl", cues="all")
    assert without == TrainConfig(split="synthetic_zsl", cues="none")
    assert demo_configs(3)[0].epochs == 3 and demo_configs(3)[0].given == ["epochs"]


def test_help_names_the_dataclass_default(monkeypatch):
    from posebridge.stages.train import config

    monkeypatch.setattr(config.TrainConfig.__dataclass_fields__["epochs"], "default", 7)
    assert cli.default_of("epochs") == "default 7"
    assert cli.default_of("epochs", "posebridge", "purls") == "posebridge 7, purls 100"
    assert cli.default_of("lr") == f"default {config.TrainConfig.lr:g}"
