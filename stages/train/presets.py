"""Named method presets: every choice a reference implementation makes, in one place.

A preset is a dict of TrainConfig field overrides; each value carries its source, so the run's
settings line, config.json and docs/method-presets.md can say where a number comes from. Flags
given on the command line win over the preset, and the settings line names them
("preset purls (lr=0.001 given)").

Sources (read, not copied; file paths in the repositories named):
  PURLS      azzh1/PURLS configs/5r.yaml, model/purls.py (configure_optimizers, __init__),
             model/utils/losses.py (contrastive_loss), main.py (checkpoint on val-loss)
  DynaPURLS  Alchemist0754/DynaPURLS test.py (the TTR grid it runs), model/utils/test_time_utils.py
             (optimizer, scheduler, buffer, load_callbacks)
  Shift-GCN  kchengiva/Shift-GCN main.py (per-parameter weight decay), config/nturgbd-*/train_joint.yaml,
             data_gen/ntu_gendata.py + preprocess.py (the NTU skeletons it learns from are view-aligned)

What the presets do NOT copy (docs/method-presets.md): the references' test-time attention queries
are the ground-truth class's descriptions (a label leak), and DynaPURLS keeps the best test
accuracy over a grid; here queries are every candidate class's texts and nothing is chosen on test.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from posebridge.cache.errors import UserError


class Setting(NamedTuple):
    value: Any
    source: str  # where the value comes from, and why it is set


CLIP_B32 = "clip:openai/clip-vit-base-patch32"  # a cached hub id or a folder: local files only

_PURLS: dict[str, Setting] = {
    "text_encoder": Setting(CLIP_B32, "PURLS model/purls.py: clip.load('ViT-B/32'), 512-d text features"),
    "proto_mix": Setting(0.0, "PURLS model/purls.py loss(): a class is its CLIP-encoded GPT-3 global description "
                              "(class_emb[:, -1]); no name prompts"),
    "text_adapter": Setting(False, "PURLS: the text side is frozen CLIP features, no prototype adapter"),
    "adaptive_parts": Setting(True, "PURLS model/utils/attention.py: descriptions attend over joint x time features"),
    "symmetric_loss": Setting(True, "PURLS model/utils/losses.py contrastive_loss: skeleton->text + text->skeleton"),
    "temperature": Setting("direct", "PURLS model/purls.py: tmps = log(1/0.07) multiplies the cosines directly "
                                     "(losses.py: logits = tmp * sim), no exp, no cap"),
    "loss_reduce": Setting("sum", "PURLS model/purls.py loss(): loss += curr_loss over the 8 representations, "
                                  "weight 1 each (use_d False)"),
    "w_global": Setting(1.0, "PURLS: every representation's loss has weight 1"),
    "w_part": Setting(1.0, "PURLS: every representation's loss has weight 1"),
    "w_temporal": Setting(1.0, "PURLS: every representation's loss has weight 1"),
    "projection": Setting("shared_mlp", "PURLS model/purls.py skel_encoder: one MLP (BN, dropout .5, Linear, SiLU, "
                                        "BN, dropout .5, Linear, Tanh) for the 8 attended outputs"),
    "score_part": Setting(0.0, "PURLS losses.py accuracy(): classes scored by the global embedding only"),
    "score_temporal": Setting(0.0, "PURLS losses.py accuracy(): classes scored by the global embedding only"),
    "optimizer": Setting("adam", "PURLS model/purls.py configure_optimizers: optim.Adam, no weight decay"),
    "weight_decay": Setting(0.0, "PURLS: Adam without weight decay"),
    "lr": Setting(1e-4, "PURLS configs/5r.yaml: lr 1e-4"),
    "epochs": Setting(100, "PURLS configs/5r.yaml: num_epoch 100"),
    "batch_size": Setting(256, "PURLS / DynaPURLS main.py: --batch_size default 256"),
    "lr_schedule": Setting("plateau", "PURLS configure_optimizers: ReduceLROnPlateau(min, factor .1, patience 25, "
                                      "cooldown 3) on val-loss"),
    "warmup_epochs": Setting(0, "PURLS: no warmup"),
    "grad_clip": Setting(0.0, "PURLS: Lightning Trainer without gradient clipping"),
    "selection": Setting("best_val_loss", "PURLS main.py ModelCheckpoint(monitor='val-loss', mode='min'): the "
                                          "epoch with the lowest validation loss, seen classes only"),
    "feature_norm": Setting("cell_l2", "DynaPURLS data/ntu_60.py preprocess: each joint-step cell L2-normalised"),
    "shiftgcn_wd": Setting("reference", "Shift-GCN main.py: weight decay 1e-3 on linear weights, 0 on the shift "
                                        "masks, 1e-4 elsewhere"),
    "view_align": Setting("first", "Shift-GCN data_gen/ntu_gendata.py -> preprocess.py pre_normalization: the NTU "
                                   "skeletons whose Shift-GCN features SynSE / PURLS train on had the first frame's "
                                   "hip -> spine bone turned onto an axis and its shoulders onto another"),
    "num_frames": Setting(64, "not a reference choice (Shift-GCN's NTU clips are padded to 300 frames): the frame "
                              "count the presets' numbers in the docs were measured at, kept when the project's "
                              "own default became 32"),
    "hubness": Setting("none", "PURLS losses.py accuracy(): argmax of the cosines, no hubness correction"),
    "crop_min": Setting(1.0, "PURLS: fixed features, no augmentation"),
    "scale_jitter": Setting(0.0, "PURLS: fixed features, no augmentation"),
}

_DYNAPURLS: dict[str, Setting] = {
    **_PURLS,  # DynaPURLS trains PURLS unchanged, then refines at test time
    "ttr": Setting(True, "DynaPURLS test.py: dynamic refinement after the PURLS checkpoint is loaded"),
    "gzsl_calibration": Setting("none", "DynaPURLS test.py: ZSL only, no GZSL calibration"),
    "ttr_lr": Setting(1e-2, "DynaPURLS test.py: lr_range = [1e-2]"),
    "ttr_weight_decay": Setting(1e-3, "DynaPURLS test_time_utils.py setup_optimizer_and_scheduler: Adam wd 0.001"),
    "ttr_memory": Setting(16, "DynaPURLS test.py: buffer_size_range = [16]"),
    "ttr_min_conf": Setting(0.1, "DynaPURLS test.py: confidence_threshold_range = [0.1]"),
    "ttr_steps": Setting(1, "DynaPURLS test.py: step_range = [1]"),
    "ttr_batch": Setting(256, "DynaPURLS: the test loader's batch_size (main.py default 256)"),
    "ttr_order": Setting("shuffled", "DynaPURLS data/data_interface.py: the test loader shuffles"),
    "ttr_refine": Setting("all", "DynaPURLS test_time_utils.py: scale/shift on every text feature "
                                 "(num_classes x 8 x 512), not only the global one"),
    "ttr_schedule": Setting("cosine", "DynaPURLS setup_optimizer_and_scheduler: CosineAnnealingLR(T_max=steps, "
                                      "eta_min=0.1 lr), stepped after every Adam step"),
    "ttr_logits": Setting("cosine", "DynaPURLS compute_logits_and_predictions: softmax of raw cosines, no temperature"),
}

# The project's own defaults, named: TrainConfig's values, so that `--preset posebridge` says so.
PRESETS: dict[str, dict[str, Setting]] = {"posebridge": {}, "purls": _PURLS, "dynapurls": _DYNAPURLS}


def preset_overrides(name: str) -> dict[str, Setting]:
    if name not in PRESETS:
        raise UserError(f"--preset '{name}' is unknown; use one of {', '.join(PRESETS)}")
    return PRESETS[name]


def resolve(config_cls, preset: str, given: dict[str, Any], **fixed):
    """The config of `preset` with the explicitly `given` flags on top (None = not given; the
    names given are kept in config.given). The CLI passes every flag as None unless the user
    typed it, so defaults live in the dataclass and the preset, never retyped in the CLI."""
    overrides = preset_overrides(preset)
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = [k for k in list(overrides) + [k for k, v in given.items() if v is not None] if k not in known]
    if unknown:
        raise UserError(f"unknown setting(s) {', '.join(sorted(set(unknown)))} for {config_cls.__name__}")
    values = {k: s.value for k, s in overrides.items()}
    explicit = {k: v for k, v in given.items() if v is not None}
    values.update(explicit)
    return config_cls(preset=preset, given=sorted(explicit), **fixed, **values)


def preset_value(config_cls, preset: str, name: str) -> Any:
    """What `preset` sets `name` to: its override, else the dataclass default."""
    overrides = preset_overrides(preset)
    if name in overrides:
        return overrides[name].value
    field = {f.name: f for f in dataclasses.fields(config_cls)}[name]
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe(cfg) -> str:
    """'preset purls (lr=0.001 given)': the preset and the given flags that changed its values (the
    device is no method setting: the settings line names it anyway)."""
    changed = [f"{k}={_show(getattr(cfg, k))}" for k in cfg.given
               if k != "device" and preset_value(type(cfg), cfg.preset, k) != getattr(cfg, k)]
    return f"preset {cfg.preset}" + (f" ({', '.join(changed)} given)" if changed else "")


def sources(preset: str) -> dict[str, str]:
    """field -> source, for config.json."""
    return {k: s.source for k, s in preset_overrides(preset).items()}
