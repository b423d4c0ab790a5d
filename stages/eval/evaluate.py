"""Evaluate: ZSL / GZSL metrics of a model on a split's test side, from memory or from a run's checkpoint."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from posebridge.cache.errors import UserError
from posebridge.stages.splits.registry import Split
from posebridge.stages.eval import metrics as M
from posebridge.stages.eval.embedding import embed
from posebridge.stages.eval.hubness import REFERENCE_FILE, reference_rows, save_reference
from posebridge.stages.eval.scoring import class_columns, score
from posebridge.stages.train.api import (ClassTextTensors, CueDataset, DeviceData, PoseBridge, TextBank, TrainConfig,
                                         Visual, check_compatible, class_text_tensors, load_trained, partition,
                                         to_device, with_encoder_features)


def training_reference(model: PoseBridge, cfg: TrainConfig, data: DeviceData, parts: dict) -> Visual | None:
    """The embeddings of the training clips the ZSL hubness correction compares prototypes with
    (stages/eval/hubness.py); None with --hubness none."""
    if cfg.hubness == "none":
        return None
    return embed(model, data, reference_rows(parts["train"], cfg.seed))


def compute_metrics(model: PoseBridge, cfg: TrainConfig, data: DeviceData, parts: dict, split: Split,
                    texts: ClassTextTensors, gamma: float, reference: Visual | None = None) -> tuple[dict, dict]:
    """ZSL on the unseen test samples, GZSL (raw and calibrated) on all test samples, seen-val top-1.
    `reference` (training_reference): the ZSL scores get the hubness correction; GZSL's do not (its
    seen-vs-unseen bias has its own calibration, whose gamma was chosen on uncorrected scores).

    Returns (metrics for metrics.json, details for the plots)."""
    seen, unseen = np.array(split.seen), np.array(split.unseen)
    out: dict = {}
    # The ZSL samples are the unseen-class part of the GZSL samples: embed the test side once.
    gzsl_idx, zsl_idx = parts["test_gzsl"], parts["test_zsl"]
    test_visual = embed(model, data, gzsl_idx)
    rows = torch.as_tensor(np.searchsorted(gzsl_idx, zsl_idx))
    zsl_labels = class_columns(data.labels[zsl_idx], unseen)
    zsl_scores = score(model, test_visual.map(lambda t: t[rows]), texts, unseen, cfg,
                       refine=np.ones(len(unseen), bool), reference=reference)
    zsl_preds = zsl_scores.argmax(1) if len(zsl_idx) else np.zeros(0, np.int64)
    per_class = M.per_class_accuracy(zsl_preds, zsl_labels, len(unseen))
    out["zsl"] = {**M.zsl_topk(zsl_scores, zsl_labels), "mean_class_acc": M.mean_class_accuracy(zsl_preds, zsl_labels, len(unseen)),
                  "samples": int(len(zsl_idx))}
    both = np.array(sorted(set(seen.tolist()) | set(unseen.tolist())))
    seen_mask = np.isin(both, seen)
    gzsl_scores = score(model, test_visual, texts, both, cfg, refine=~seen_mask)
    gzsl_labels = class_columns(data.labels[gzsl_idx], both)
    # the sides share clips (a ZSL-only reading), or e.g. a feature folder's test side holds unseen
    # classes only: no GZSL, never NaN
    missing = getattr(parts, "gzsl_unavailable", None) or M.gzsl_unavailable(gzsl_labels, seen_mask)
    if missing:
        out["gzsl"] = {"available": False, "reason": missing, "samples": int(len(gzsl_idx))}
        out["gzsl_uncalibrated"] = {"available": False, "reason": missing}
    else:
        out["gzsl"] = {**M.gzsl(gzsl_scores, gzsl_labels, seen_mask, gamma), "samples": int(len(gzsl_idx))}
        out["gzsl_uncalibrated"] = M.gzsl(gzsl_scores, gzsl_labels, seen_mask, 0.0)
    if len(parts["val"]):
        val_scores = score(model, embed(model, data, parts["val"]), texts, seen, cfg)
        out["val_seen_top1"] = M.zsl_topk(val_scores, class_columns(data.labels[parts["val"]], seen), ks=(1,))["top1"]
    rows_both = texts.rows(both)
    details = {
        "unseen_names": [split.class_names[i] for i in unseen],
        "confusion": M.confusion_matrix(zsl_preds, zsl_labels, len(unseen)),
        "per_class": per_class,
        # For the report's embedding plot: test embeddings next to every class's text prototype.
        "embedding": {"points": test_visual.global_.cpu().numpy(), "labels": gzsl_labels,
                      "prototypes": model.prototypes(rows_both.name, rows_both.description).detach().float().cpu().numpy(),
                      "names": [split.class_names[i] for i in both], "seen": seen_mask},
    }
    out["zsl_per_class"] = {name: (None if math.isnan(a) else float(a)) for name, a in zip(details["unseen_names"], per_class)}
    return out, details


def evaluate(checkpoint: Path, dataset: CueDataset, split: Split, text_bank: TextBank,
             encoder_cache: Path | None = None) -> dict:
    """Score a trained run's checkpoint again (same partition, same calibration gamma).

    encoder_cache: where frozen encoder features are cached (default: the cue cache root)."""
    trained = load_trained(checkpoint)
    ckpt, cfg, model, device = trained.checkpoint, trained.config, trained.model, trained.device
    if ckpt["fingerprints"]["split"] != split.name:
        raise UserError(f"{checkpoint} was trained for split {ckpt['fingerprints']['split']}, not {split.name}")
    if ckpt["fingerprints"]["text_bank"] != text_bank.fingerprint:
        raise UserError(f"{checkpoint} was trained with another text bank; rebuild it with text encoder "
                        f"'{cfg.text_encoder}' for split {split.name}")
    check_compatible(dataset, split, text_bank, cfg)
    parts = partition(dataset, split, cfg.val_fraction, cfg.seed)
    data = with_encoder_features(cfg, to_device(dataset, cfg.cues, device), parts["train"], np.array(split.seen),
                                 dataset.source_fingerprint, encoder_cache)
    texts = class_text_tensors(text_bank, device)
    reference = training_reference(model, cfg, data, parts)
    if reference is not None and not (checkpoint.parent / REFERENCE_FILE).exists():  # for `predict`
        save_reference(checkpoint.parent, reference)
    metrics, _ = compute_metrics(model, cfg, data, parts, split, texts, ckpt["calibration"]["gamma"], reference)
    metrics.update({"split": split.name, "cues": cfg.cues, "transductive": cfg.ttr, "seed": cfg.seed, "epochs": ckpt["epoch"],
                    "data_matches_training": dataset.source_fingerprint == ckpt["fingerprints"]["data"]})
    return metrics
