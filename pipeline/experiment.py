"""One run folder: fit the heads with a checkpoint per epoch, calibrate GZSL, evaluate, report.

The checkpoint holds the config and the fingerprints of data and text bank, so `--resume`
continues a run exactly and refuses one made with other settings or data. The log gets one short
settings line; the full config is written to the run folder (config.json) before training starts.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch

from posebridge.cache.errors import UserError
from posebridge.cache.layouts import layout_from_dict
from posebridge.stages.splits.registry import Split
from posebridge.stages.eval.calibration import calibrate_gamma
from posebridge.stages.eval.evaluate import compute_metrics, training_reference
from posebridge.stages.eval.hubness import save_reference
from posebridge.stages.eval.report import write_config, write_run_report
from posebridge.stages.train.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from posebridge.stages.train.config import TrainConfig
from posebridge.stages.train.data import CueDataset, partition
from posebridge.stages.train.encoders import resolve_encoder
from posebridge.stages.train.encoders.frozen import encoder_record
from posebridge.stages.train.loop import (CPU_THREADS, FitState, check_compatible, class_text_tensors, fit,
                                          model_args, new_fit_state, resolve_device, to_device,
                                          with_encoder_features)
from posebridge.stages.train.presets import describe, sources as preset_sources
from posebridge.stages.train.text_bank import TextBank


def settings_line(cfg: TrainConfig, split: Split, device: torch.device, run_dir: Path) -> str:
    """The few settings that tell runs apart at a glance; everything else is in config.json."""
    extra = " ttr(transductive)" if cfg.ttr else ""
    classes = f" | classes: {split.class_list_source}" if split.class_list_source else ""
    view = f" | view-align {cfg.view_align}" if cfg.view_align != "none" else ""
    return (f"train {split.name}{classes} | {describe(cfg)} | text {cfg.text_encoder} | cues {cfg.cues}{view}"
            f" | seed {cfg.seed} | {cfg.epochs} epochs x batch {cfg.batch_size} | {cfg.optimizer} lr {cfg.lr:g}"
            f" {cfg.lr_schedule} | keep {cfg.selection} | zsl hubness {cfg.hubness} | calibration {cfg.gzsl_calibration}"
            f"{extra} | {device}"
            f" | config: {run_dir / 'config.json'}")


def split_record(split: Split) -> dict:
    """What a run keeps about its split beside its name (config.json, metrics.json): where the split
    and its class list come from, what is assumed, the text encoder its published numbers use. The
    tables read these (stages/eval/report.py split_notes)."""
    return {"split_source": split.source, "split_class_list": split.class_list_source,
            "split_assumption": split.assumption, "published_text_encoder": split.published_text_encoder}


def _fingerprints(ds: CueDataset, split: Split, bank: TextBank, cfg: TrainConfig) -> dict:
    # data_layout: what `posebridge predict` checks a new video's extractor against.
    return {"data": ds.source_fingerprint, "text_bank": bank.fingerprint, "text_encoder": cfg.text_encoder,
            "split": split.name, "split_source": split.source, "split_assumption": split.assumption,
            "data_layout": ds.layout, "feature_folder": ds.joint_features is not None,
            # which skeleton layout read the data (cache/layouts.py Skeleton.fingerprint); None: by joint count
            "skeleton_layout": _layout_fingerprint(ds)}


def _layout_fingerprint(ds: CueDataset) -> str | None:
    layout = getattr(ds, "skeleton_layout", None)
    return layout_from_dict(layout).fingerprint if layout else None


def _load_resume(path: Path, cfg: TrainConfig, fingerprints: dict) -> dict:
    ckpt = load_checkpoint(path)
    saved = TrainConfig.from_dict(ckpt["config"]).to_dict()
    for key, value in cfg.to_dict().items():
        if key not in ("device", "given") and saved.get(key) != value:
            raise UserError(f"{path} was made with {key}={saved.get(key)!r}, not {value!r}; "
                            f"drop --resume or use another run folder")
    for key in ("data", "text_bank", "split"):
        if ckpt["fingerprints"][key] != fingerprints[key]:
            raise UserError(f"{path} was trained on another {key} ({ckpt['fingerprints'][key][:16]}); "
                            f"drop --resume or use another run folder")
    return ckpt


def train(cfg: TrainConfig, dataset: CueDataset, split: Split, text_bank: TextBank, run_dir: Path,
          resume: bool = False, encoder_cache: Path | None = None) -> dict:
    """encoder_cache: where frozen encoder features are cached (default: the cue cache root)."""
    encoder = resolve_encoder(cfg.skeleton_encoder, len(dataset.labels))
    cfg = dataclasses.replace(cfg.validate(), skeleton_encoder=encoder)
    check_compatible(dataset, split, text_bank, cfg)
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    torch.set_num_threads(CPU_THREADS)
    if device.type == "cuda":  # CPU kernels used here are deterministic already (and the switch costs seconds)
        torch.use_deterministic_algorithms(True, warn_only=True)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # why each preset value, and where the split (and its class list) come from
    config = {**cfg.to_dict(), "preset_sources": preset_sources(cfg.preset), **split_record(split)}
    write_config(run_dir, config)
    print(settings_line(cfg, split, device, run_dir))

    parts = partition(dataset, split, cfg.val_fraction, cfg.seed)
    seen = np.array(split.seen)
    base = to_device(dataset, cfg.cues, device)
    data = with_encoder_features(cfg, base, parts["train"], seen, dataset.source_fingerprint, encoder_cache)
    texts = class_text_tensors(text_bank, device)
    args = model_args(cfg, dataset, text_bank)
    fingerprints = _fingerprints(dataset, split, text_bank, cfg)
    # the frozen encoder travels with the run, so `predict` can encode new clips without the cache
    encoder = encoder_record(data.encoder_folder) if data.encoder_folder is not None else None
    state = new_fit_state(cfg, args, device, cfg.seed)
    ckpt_path = run_dir / CHECKPOINT
    history: list[float] = []
    gamma_info: dict | None = None
    if resume and not ckpt_path.exists():
        print(f"no checkpoint in {run_dir} to resume from: starting at epoch 1")
    if resume and ckpt_path.exists():
        ckpt = _load_resume(ckpt_path, cfg, fingerprints)
        state.model.load_state_dict(ckpt["model"])
        state.optimizer.load_state_dict(ckpt["optimizer"])
        state.generator.set_state(ckpt["generator"])
        state.epoch, history, gamma_info = ckpt["epoch"], ckpt["losses"], ckpt.get("calibration")
        state.best, state.val_losses = ckpt.get("best"), list(ckpt.get("val_losses") or [])
        if state.scheduler is not None and ckpt.get("scheduler") is not None:
            state.scheduler.load_state_dict(ckpt["scheduler"])

    def checkpoint(s: FitState, loss: float | None, calibration: dict | None = None) -> None:
        if loss is not None:
            history.append(loss)
        save_checkpoint(ckpt_path, {
            "model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
            "generator": s.generator.get_state(), "epoch": s.epoch, "losses": history,
            "config": cfg.to_dict(), "model_args": args.to_dict(), "fingerprints": fingerprints,
            "calibration": calibration, "skeleton_encoder": encoder,
            "scheduler": s.scheduler.state_dict() if s.scheduler is not None else None,
            "best": s.best, "val_losses": s.val_losses,
        })

    def train_auxiliary(train_idx: np.ndarray, classes: np.ndarray):
        # A frozen encoder must not have seen the pseudo-unseen classes either (SynSE trains its
        # validation-split encoders the same way): its own pretraining, cached like the main one.
        aux_data = with_encoder_features(cfg, base, train_idx, classes, dataset.source_fingerprint, encoder_cache)
        aux = new_fit_state(cfg, args, device, cfg.seed + 1)
        fit(aux, cfg, aux_data, train_idx, classes, texts, cfg.calibration_epochs or cfg.epochs, desc="calibrate")
        return aux.model, aux_data

    # the validation side is seen classes only: the loss there steers the plateau schedule and picks the kept epoch
    fit(state, cfg, data, parts["train"], seen, texts, cfg.epochs, on_epoch=checkpoint, val_idx=parts["val"])
    state.select(cfg)  # --selection best_val_loss: the best epoch's weights from here on
    if gamma_info is None and parts.gzsl_unavailable:  # nothing to calibrate: no GZSL on these sides
        gamma_info = {"method": "none", "gamma": 0.0, "note": parts.gzsl_unavailable}
        checkpoint(state, None, gamma_info)
    if gamma_info is None:
        gamma_info = calibrate_gamma(cfg, data, parts, split, texts, train_auxiliary)
        checkpoint(state, None, gamma_info)
    reference = training_reference(state.model, cfg, data, parts)
    if reference is not None:  # `predict` ranks new clips with the same correction
        save_reference(run_dir, reference)
    metrics, details = compute_metrics(state.model, cfg, data, parts, split, texts, gamma_info["gamma"], reference)
    metrics.update({
        "split": split.name, "cues": cfg.cues, "transductive": cfg.ttr, "seed": cfg.seed, "epochs": state.epoch,
        "train_loss": history[-1] if history else math.nan, "calibration": gamma_info,
        "text_encoder": cfg.text_encoder, "preset": cfg.preset, **split_record(split),
        "selected_epoch": state.best["epoch"] if cfg.selection == "best_val_loss" and state.best else state.epoch,
        "val_loss": state.val_losses,
        "samples": {k: int(len(v)) for k, v in parts.items()}, "seconds": round(time.perf_counter() - started, 2),
    })
    write_run_report(run_dir, config, fingerprints, metrics, details)
    return metrics
