"""GZSL calibration: the calibrated-stacking gamma, chosen on validation data, never on test data.

SynSE's validation idea: some seen classes stand in for the unseen ones ("pseudo-unseen"), an
auxiliary model is trained without them, and gamma is the value that maximises H between them and
the remaining seen classes on held-out validation samples. Gamma is in cosine units (the units of
stages/eval/scoring.py), which the auxiliary and the main model share; in logit units it would
depend on each model's learned logit scale, and a gamma found on one would be wrong on the other.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from posebridge.stages.splits.registry import Split
from posebridge.stages.eval import metrics as M
from posebridge.stages.eval.embedding import embed
from posebridge.stages.eval.scoring import class_columns, score
from posebridge.stages.train.api import ClassTextTensors, DeviceData, PoseBridge, TrainConfig

# (training sample indices, classes to train on) -> a trained auxiliary model and the data it reads
# (with the in-process frozen Shift-GCN, features of an encoder that never saw the held-out classes
# either; a feature folder has one encoder, trained on every seen class, pseudo-unseen ones
# included, so its pseudo-unseen validation features are easier than truly unseen ones and gamma
# may come out low: the record says so). Given by the caller, so evaluation does not depend on how
# training is run.
TrainAuxiliary = Callable[[np.ndarray, np.ndarray], tuple[PoseBridge, DeviceData]]


def pseudo_unseen_classes(split: Split, seed: int) -> np.ndarray:
    """Seen classes held out as stand-ins for the unseen ones: as many as the split has unseen
    (capped at half the seen classes so the auxiliary model keeps something to learn), by seed."""
    seen = np.array(split.seen)
    count = min(len(split.unseen), len(seen) // 2)
    return np.sort(np.random.default_rng(seed).choice(seen, size=count, replace=False))


def calibrate_gamma(cfg: TrainConfig, data: DeviceData, parts: dict, split: Split, texts: ClassTextTensors,
                    train_auxiliary: TrainAuxiliary) -> dict:
    """Train the auxiliary model without the pseudo-unseen classes, score the validation samples of
    all seen classes and take the gamma that maximises H. Touches only train and validation samples.
    Returns a record with "gamma" and how it was found."""
    if cfg.gzsl_calibration == "none":
        return {"method": "none", "gamma": 0.0}
    seen = np.array(split.seen)
    pseudo = pseudo_unseen_classes(split, cfg.seed)
    val_idx = parts["val"]
    val_pseudo = np.isin(data.labels[val_idx], pseudo)
    info = {"method": "pseudo_unseen", "pseudo_unseen": pseudo.tolist(), "val_samples": int(len(val_idx))}
    if len(pseudo) == 0 or not val_pseudo.any() or val_pseudo.all():
        return {**info, "gamma": 0.0, "note": "validation lacks pseudo-unseen or remaining seen samples; gamma = 0"}
    kept = np.setdiff1d(seen, pseudo)
    model, aux_data = train_auxiliary(parts["train"][np.isin(data.labels[parts["train"]], kept)], kept)
    val_scores = score(model, embed(model, aux_data, val_idx), texts, seen, cfg)
    gamma = M.choose_gamma(val_scores, class_columns(data.labels[val_idx], seen), ~np.isin(seen, pseudo))
    out = {**info, "gamma": gamma, "units": "cosine"}
    if np.isin(val_idx, parts["test_gzsl"]).any():  # a reference-layout feature folder: val is GZSL's seen half
        out["note"] = ("the validation rows are GZSL test rows (reference feature-folder layout): gamma was "
                       "chosen on test data; use --gzsl-calibration none for a clean number")
        print(f"calibration: {out['note']}")
    elif data.features_only:
        out["note"] = ("feature folder: its encoder saw the pseudo-unseen classes, so gamma may be too low; "
                       "compare with --gzsl-calibration none")
        print(f"calibration: {out['note']}")
    return out
