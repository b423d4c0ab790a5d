"""Method presets (stages/train/presets.py): each resolves to the reference's values, explicit flags
win, and each switch does what the reference does (synthetic tensors: mechanics, not accuracy)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posebridge.cache.errors import UserError
from posebridge.stages.train.config import TrainConfig
from posebridge.stages.train.presets import PRESETS, describe, resolve, sources

# The reference's numbers, written out once more here so that a changed preset fails a test.
PURLS = {"text_encoder": "clip:openai/clip-vit-base-patch32", "proto_mix": 0.0, "text_adapter": False, "adaptive_parts": True, "symmetric_loss": True,
         "temperature": "direct", "loss_reduce": "sum", "w_global": 1.0, "w_part": 1.0, "w_temporal": 1.0,
         "projection": "shared_mlp", "score_part": 0.0, "score_temporal": 0.0, "optimizer": "adam",
         "weight_decay": 0.0, "lr": 1e-4, "epochs": 100, "batch_size": 256, "lr_schedule": "plateau",
         "warmup_epochs": 0, "grad_clip": 0.0, "selection": "best_val_loss", "feature_norm": "cell_l2",
         "shiftgcn_wd": "reference", "view_align": "first", "hubness": "none"}
DYNAPURLS = {**PURLS, "ttr": True, "gzsl_calibration": "none", "ttr_lr": 1e-2, "ttr_weight_decay": 1e-3,
             "ttr_memory": 16, "ttr_min_conf": 0.1, "ttr_steps": 1, "ttr_batch": 256, "ttr_order": "shuffled",
             "ttr_refine": "all", "ttr_schedule": "cosine", "ttr_logits": "cosine"}


@pytest.mark.parametrize("preset,expected", [("purls", PURLS), ("dynapurls", DYNAPURLS)])
def test_each_preset_setting_equals_the_reference_and_names_its_source(preset, expected):
    cfg = resolve(TrainConfig, preset, {}, split="ntu60_55_5").validate()
    src = sources(preset)
    for field, value in expected.items():
        assert getattr(cfg, field) == value, field
        repo = "Shift-GCN" if field in ("shiftgcn_wd", "view_align") else ("DynaPURLS" if field.startswith("ttr") or field in (
            "gzsl_calibration", "feature_norm") else "PURLS")
        assert repo in src[field], (field, src[field])
    assert cfg.preset == preset and cfg.given == []
    assert set(PRESETS[preset]) <= set(expected) | {"crop_min", "scale_jitter", "num_frames"}  # no unchecked setting
    # not the reference's: the frame count its documented numbers were measured at, said so
    assert cfg.num_frames == 64 and "not a reference choice" in src["num_frames"]


def test_posebridge_preset_is_the_dataclass_defaults():
    assert resolve(TrainConfig, "posebridge", {}, split="x") == TrainConfig(split="x")
    with pytest.raises(UserError, match="--preset 'nope' is unknown"):
        resolve(TrainConfig, "nope", {}, split="x")


def test_an_explicit_flag_wins_over_the_preset_and_the_settings_line_says_so():
    cfg = resolve(TrainConfig, "purls", {"lr": 1e-3, "epochs": None}, split="x")
    assert cfg.lr == 1e-3 and cfg.epochs == 100 and cfg.given == ["lr"]
    assert describe(cfg) == "preset purls (lr=0.001 given)"
    same = resolve(TrainConfig, "purls", {"lr": 1e-4}, split="x")  # given, but what the preset says anyway
    assert describe(same) == "preset purls"
    assert describe(resolve(TrainConfig, "posebridge", {"epochs": 5}, split="x")) == "preset posebridge (epochs=5 given)"


def test_cli_passes_only_the_flags_typed(monkeypatch):
    """typer defaults are None sentinels: the preset's values survive unless a flag is typed."""
    import posebridge.pipeline.run as run
    from posebridge.pipeline import cli

    seen = {}
    monkeypatch.setattr(run, "train_splits", lambda splits, base, **kw: seen.setdefault("base", base) and [])
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "--split", "synthetic", "--preset", "purls", "--lr", "0.001", "--text-encoder", "minilm"])
    assert done.value.code == 0
    base = seen["base"]
    assert base.preset == "purls" and base.lr == 1e-3 and base.epochs == 100 and base.optimizer == "adam"
    assert base.given == ["lr", "text_encoder"] and base.text_encoder == "minilm"


def test_run_folder_name_ignores_which_flags_were_typed():
    from posebridge.pipeline.run import run_name

    typed = resolve(TrainConfig, "purls", {"lr": 1e-4}, split="x")
    assert run_name(typed, "data") == run_name(resolve(TrainConfig, "purls", {}, split="x"), "data")


# --- temperature -------------------------------------------------------------------------------

def _reference_contrastive(skel, txt, tmp, target):
    """azzh1/PURLS model/utils/losses.py contrastive_loss, as a formula: CE(tmp * S) + CE(tmp * S^T)."""
    s = skel @ txt.T
    return F.cross_entropy(tmp * s, target) + F.cross_entropy(tmp * s.T, target)


@pytest.mark.parametrize("kind,start", [("direct", math.log(1 / 0.07)), ("exp", 1 / 0.07)])
def test_temperature_parametrisation_against_the_reference_formula(kind, start):
    from posebridge.stages.train.losses import symmetric_contrastive
    from tests.stages.train.test_heads import make_model

    model = make_model("none", symmetric_loss=True, temperature=kind)
    assert math.isclose(float(model.temperature(0).detach()), start, rel_tol=1e-6)  # direct: 2.66, exp: 14.3
    g = torch.Generator().manual_seed(0)
    skel, txt = (F.normalize(torch.randn(5, 8, generator=g), dim=-1) for _ in range(2))
    target = torch.arange(5)  # one sample per class: class negatives = instance negatives
    ours = symmetric_contrastive(skel @ txt.T, target, torch.ones(5, dtype=torch.bool), model.temperature(0))
    assert math.isclose(float(ours), float(_reference_contrastive(skel, txt, torch.tensor(start), target)), rel_tol=1e-5)
    with torch.no_grad():  # direct: no exp and no cap at 100 (the reference has neither)
        model.temperatures.fill_(150.0)
    model.clamp_temperatures()
    assert float(model.temperature(0)) == (150.0 if kind == "direct" else 100.0)


def test_sum_reduce_adds_the_eight_losses_with_weight_one():
    from posebridge.stages.train.heads import Similarity
    from posebridge.stages.train.losses import LossWeights, representation_losses, symmetric_contrastive

    g = torch.Generator().manual_seed(1)
    names = ["global"] + [f"part:{i}" for i in range(4)] + [f"phase:{i}" for i in range(3)]
    every = torch.ones(3, dtype=torch.bool)
    sims = [Similarity(n, torch.rand(4, 3, generator=g) * 2 - 1, every) for n in names]
    target = torch.tensor([0, 1, 2, 0])
    temps = [torch.tensor(2.66)] * 8
    total, _ = representation_losses(sims, target, temps, LossWeights(1.0, 1.0, 1.0, "sum"))
    by_hand = sum(float(symmetric_contrastive(s.sim, target, every, 2.66)) for s in sims)
    assert math.isclose(float(total), by_hand, rel_tol=1e-5)


# --- projection, optimiser, schedule, selection --------------------------------------------------

def test_frozen_text_prototypes_are_the_description_encodings():
    from tests.stages.train.test_heads import make_model

    g = torch.Generator().manual_seed(2)
    name, desc = torch.randn(3, 24, generator=g), torch.randn(3, 24, generator=g)
    model = make_model("none", proto_mix=0.0, text_adapter=False)
    with torch.no_grad():
        model.adapter.mlp[-1].weight.fill_(1.0)  # a trained adapter would move them; a frozen one must not
    assert torch.allclose(model.prototypes(name, desc), F.normalize(desc, dim=-1))


def test_shared_mlp_is_one_module_for_every_representation():
    from posebridge.stages.train.heads import SharedMLP
    from tests.stages.train.test_heads import inputs, make_model

    model = make_model("none", projection="shared_mlp")
    assert isinstance(model.global_proj, SharedMLP) and model.global_proj is model.part_proj is model.segment_proj
    visual = model(*inputs())
    assert visual.global_.shape[-1] == visual.parts.shape[-1]
    linear = make_model("none")
    assert linear.global_proj is not linear.part_proj


def _fit_setup(**cfg_fields):
    from posebridge.stages.train.heads import ClassTextTensors
    from posebridge.stages.train.loop import DeviceData, model_args, new_fit_state

    g = torch.Generator().manual_seed(0)
    n, c, t, v, d, k = 24, 8, 3, 17, 6, 3
    joint = torch.randn(n, c, t, v, generator=g)
    labels = np.arange(n) % k
    for i in range(n):  # separable classes, so the loss moves
        joint[i, labels[i]] += 2.0
    data = DeviceData(joint, torch.ones(n, 1, t, v), None, None, labels, joint_features=joint, features_only=True)
    texts = ClassTextTensors(F.normalize(torch.randn(k, d, generator=g), dim=-1), F.normalize(torch.randn(k, d, generator=g), dim=-1),
                             torch.randn(k, 4, d, generator=g), torch.ones(k, 4, dtype=torch.bool),
                             torch.randn(k, 3, d, generator=g), torch.ones(k, 3, dtype=torch.bool))
    cfg = TrainConfig(split="x", **{**dict(cues="none", dim=16, batch_size=8, crop_min=1.0, scale_jitter=0.0), **cfg_fields})

    class Fake:  # what model_args reads of a dataset
        keypoints = torch.zeros(n, 1, t, v, c)
        features = heatmaps = cue_tokens = joint_features = None
        cue_joints, skeleton, skeleton_channels = (), "", c

    from posebridge.stages.train import loop
    args = loop.ModelArgs(**{**model_args(cfg, Fake(), type("B", (), {"name": texts.name})()).to_dict(),
                             "skeleton_input": "features", "skeleton_channels": c})
    return cfg, data, texts, new_fit_state(cfg, args, torch.device("cpu"), 0)


def test_adam_plateau_and_best_val_loss_selection():
    from posebridge.stages.train.loop import PLATEAU, fit

    cfg, data, texts, state = _fit_setup(optimizer="adam", weight_decay=0.0, lr_schedule="plateau",
                                         selection="best_val_loss", lr=1e-2, epochs=4)
    assert type(state.optimizer) is torch.optim.Adam
    assert PLATEAU == {"mode": "min", "factor": 0.1, "patience": 25, "cooldown": 3}  # PURLS configure_optimizers
    classes = np.arange(3)
    fit(state, cfg, data, np.arange(18), classes, texts, 4, val_idx=np.arange(18, 24))
    assert len(state.val_losses) == 4
    best = int(np.argmin(state.val_losses)) + 1
    assert state.best["epoch"] == best and state.best["val_loss"] == min(state.val_losses)
    assert state.optimizer.param_groups[0]["lr"] == 1e-2  # the scheduler owns the rate: no warmup, no cosine
    state.select(cfg)
    for key, value in state.best["model"].items():
        assert torch.equal(state.model.state_dict()[key].cpu(), value)
    with pytest.raises(UserError, match="validation rows must be of the training classes"):
        fit(state, cfg, data, np.arange(18), np.arange(2), texts, 5, val_idx=np.arange(18, 24))


def test_default_optimiser_is_adamw_with_cosine():
    _, _, _, state = _fit_setup()
    assert type(state.optimizer) is torch.optim.AdamW and state.scheduler is None


# --- frozen features and Shift-GCN pretraining -----------------------------------------------------

def test_cell_l2_normalises_each_joint_step_cell():
    from posebridge.stages.train.loop import normalise_cells

    x = torch.randn(4, 16, 3, 5).half()
    x[0, :, 1, 2] = 0
    out = normalise_cells(x)
    norms = out.float().norm(dim=1)
    assert out.dtype == torch.float16
    assert torch.allclose(norms[norms > 0], torch.ones_like(norms[norms > 0]), atol=2e-3)
    assert float(norms[0, 1, 2]) == 0.0  # an all-zero cell stays zero


def test_shiftgcn_reference_weight_decay_per_parameter():
    from posebridge.stages.train.encoders.frozen import ShiftGCNSettings, encoder_fingerprint, reference_weight_decay
    from posebridge.stages.train.encoders.shift_gcn import ShiftGCN

    decays = {n: reference_weight_decay(n) for n, _ in ShiftGCN(25, 5, 8).named_parameters()}
    assert decays["units.0.gcn.weight"] == 1e-3 and decays["units.0.gcn.mask"] == 0.0
    assert decays["units.0.gcn.bias"] == 1e-4 and decays["units.0.tcn.linear.weight"] == 1e-4
    assert decays["fc.weight"] == 1e-4
    # the default recipe leaves the cache key as it was; the reference one makes another encoder
    args = ("data", 64, np.arange(3), np.arange(2))
    assert encoder_fingerprint(*args, ShiftGCNSettings()) != encoder_fingerprint(
        *args, ShiftGCNSettings(weight_decay_recipe="reference"))


def test_a_last_batch_of_one_sample_is_skipped_with_the_shared_mlp():
    """PURLS's MLP has batch norm: an epoch whose last batch holds one sample must not crash."""
    from posebridge.stages.train.loop import fit

    cfg, data, texts, state = _fit_setup(projection="shared_mlp", batch_size=17, epochs=1)
    losses = fit(state, cfg, data, np.arange(18), np.arange(3), texts, 1)  # batches of 17 and 1
    assert len(losses) == 1 and math.isfinite(losses[0])


def test_prototype_and_frame_flags_reach_the_config(monkeypatch):
    """--proto-mix, --no-text-adapter and --num-frames are how the real-data validation tunes them."""
    import posebridge.pipeline.run as run
    from posebridge.pipeline import cli

    seen = {}
    monkeypatch.setattr(run, "train_splits", lambda splits, base, **kw: seen.setdefault("base", base) and [])
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "--split", "synthetic", "--proto-mix", "0.25", "--no-text-adapter", "--num-frames", "48",
                  "--shiftgcn-wd", "reference"])
    assert done.value.code == 0
    base = seen["base"]
    assert (base.proto_mix, base.text_adapter, base.num_frames, base.shiftgcn_wd) == (0.25, False, 48, "reference")
    assert base.given == ["num_frames", "proto_mix", "shiftgcn_wd", "text_adapter"]
