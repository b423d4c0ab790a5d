"""Defaults live in one place: TrainConfig. Its concern-sized views (ModelArgs, LossWeights,
ShiftGCNSettings, RefinementSettings) mirror its fields with config_field, take its defaults and
copy a run's values by name; the keys and saved dicts they feed stay what they were."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from posebridge.stages.eval.refinement import RefinementSettings
from posebridge.stages.train.config import (
    OWN_FIELD, TrainConfig, config_default, config_field, config_links, view_of,
)
from posebridge.stages.train.encoders.frozen import ShiftGCNSettings, encoder_fingerprint
from posebridge.stages.train.heads import BEFORE_FIELD, ModelArgs
from posebridge.stages.train.losses import LossWeights

VIEWS = (ModelArgs, LossWeights, ShiftGCNSettings, RefinementSettings)
CONFIG_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def default_mismatches(view: type) -> list[str]:
    """The fields of `view` whose declared default is not TrainConfig's for the field it mirrors
    (linked by config_field, or of the same name as a TrainConfig field and not marked own_field)."""
    links = config_links(view)
    wrong = []
    for f in dataclasses.fields(view):
        source = links.get(f.name, f.name if f.name in CONFIG_FIELDS else None)
        if source is None or f.default is dataclasses.MISSING or OWN_FIELD in f.metadata:
            continue
        if f.name not in links or f.default != config_default(source):
            wrong.append(f"{view.__name__}.{f.name}")
    return wrong


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.__name__)
def test_no_view_declares_a_default_of_its_own_for_a_config_field(view):
    assert default_mismatches(view) == []
    assert config_links(view)  # every view mirrors some of the config


def test_the_check_catches_a_second_default():
    @dataclasses.dataclass(frozen=True)
    class Copied:  # a same-named field with its own (here equal) default: a second copy
        epochs: int = 30

    @dataclasses.dataclass(frozen=True)
    class Drifted:  # linked, but the default was then edited by hand
        width: int = dataclasses.field(default=999, metadata=config_field("shiftgcn_width").metadata)

    assert default_mismatches(Copied) == ["Copied.epochs"]
    assert default_mismatches(Drifted) == ["Drifted.width"]


def _non_defaults() -> TrainConfig:
    """A config whose every field a view mirrors differs from its default (same type)."""
    changed = {}
    for name in {source for view in VIEWS for source in config_links(view).values()}:
        value = config_default(name)
        changed[name] = (not value if isinstance(value, bool) else value + 1 if isinstance(value, (int, float))
                         else value + "-other")
    return TrainConfig(split="x", **changed)


@pytest.mark.parametrize("view", (LossWeights, ShiftGCNSettings, RefinementSettings), ids=lambda v: v.__name__)
def test_from_config_copies_every_linked_field(view):
    cfg = _non_defaults()
    built = view.from_config(cfg)
    for name, source in config_links(view).items():
        assert getattr(built, name) == getattr(cfg, source) != config_default(source), name


def test_model_args_take_the_config_and_what_the_data_decides():
    cfg = _non_defaults()
    data = dict(num_joints=25, cue_joints=5, feature_channels=3, heatmap_size=8, text_dim=16, cue_steps=4)
    args = ModelArgs.from_config(cfg, **data)
    assert args.cue_steps == 4 != cfg.cue_steps  # the data's value wins (a token folder's steps)
    assert all(getattr(args, n) == getattr(cfg, s) for n, s in config_links(ModelArgs).items() if n != "cue_steps")
    assert view_of(ModelArgs, cfg, **data) == args


def test_a_checkpoint_without_a_later_switch_rebuilds_as_it_was_trained():
    saved = ModelArgs(num_joints=25, cue_joints=5, feature_channels=3, heatmap_size=8, text_dim=16).to_dict()
    old = {k: v for k, v in saved.items() if k not in BEFORE_FIELD}
    assert ModelArgs.from_dict(old).to_dict() == {**saved, **BEFORE_FIELD}
    assert ModelArgs.from_dict(saved) == ModelArgs(**saved)


def test_the_default_encoder_key_is_what_it_was():
    """The cache key of today's default Shift-GCN settings (computed before the settings became a
    view of TrainConfig): a refactor that changed it would orphan every cached encoder."""
    today = ShiftGCNSettings(width=64, epochs=140, lr=0.1, weight_decay=1e-4, batch_size=64, steps=3,
                             weight_decay_recipe="single")
    args = ("data", 64, np.arange(4), np.array([1, 2]))
    assert encoder_fingerprint(*args, today) == "3d0d33c510cb8bc762fc13386ad9f690faef2e76021b9ee94ed8da34a7e07191"
    assert encoder_fingerprint(*args, ShiftGCNSettings(**{**dataclasses.asdict(today), "weight_decay_recipe": "reference"})) \
        == "4442a81b71d72807d4fc19b42c058d5e4d6c8e59c4f9f3d3ad907525f43a16fb"
    assert ShiftGCNSettings() == ShiftGCNSettings.from_config(TrainConfig(split="x"))
