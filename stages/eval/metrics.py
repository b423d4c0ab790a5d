"""ZSL / GZSL metrics in plain numpy.

Conventions: `scores` is [N, K] (higher = more likely), `labels` [N] are column indices into it.
Accuracies are fractions in [0, 1]; the report turns them into percentages.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def zsl_topk(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy over the given classes. A k > 1 that is not below the number of classes is
    left out (a dash in tables): every sample would count as a hit (top-5 of 55/5's 5 classes)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    order = np.argsort(-scores, axis=1, kind="stable")
    out = {}
    for k in ks:
        if k > 1 and k >= scores.shape[1]:
            continue
        hit = (order[:, :k] == labels[:, None]).any(axis=1)
        out[f"top{k}"] = float(hit.mean()) if len(labels) else math.nan
    return out


def per_class_accuracy(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Recall of each class [num_classes]; NaN for a class with no samples."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    correct = np.bincount(labels[preds == labels], minlength=num_classes).astype(float)
    total = np.bincount(labels, minlength=num_classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / np.maximum(total, 1), np.nan)


def mean_class_accuracy(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Mean of per-class recall over the classes that have samples."""
    acc = per_class_accuracy(preds, labels, num_classes)
    return float(np.nanmean(acc)) if np.isfinite(acc).any() else math.nan


def confusion_matrix(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """[true, predicted] counts."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels), np.asarray(preds)), 1)
    return cm


def harmonic_mean(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2.0 * a * b / (a + b)


def gzsl_unavailable(labels: np.ndarray, seen_mask: np.ndarray) -> str | None:
    """Why GZSL cannot be scored on these test rows (labels are columns into seen_mask), or None:
    its S (and so H) needs seen-class test rows, its U unseen ones."""
    from_seen = seen_mask[labels] if len(labels) else np.zeros(0, bool)
    if not from_seen.any():
        return ("GZSL not available: the test side holds no seen-class rows (a feature folder's test file "
                "with unseen classes only and no seen-class val file from the test side)")
    if from_seen.all():
        return "GZSL not available: the test side holds no unseen-class rows"
    return None


def calibrated_predictions(scores: np.ndarray, seen_mask: np.ndarray, gamma: float) -> np.ndarray:
    """Calibrated stacking (Chao et al. 2016): subtract gamma from every seen-class score, then argmax.

    A sample goes to its best seen class only when that score minus gamma is strictly above its
    best unseen score: an exact tie goes to the unseen side (what choose_gamma assumes), not to
    whichever class happens to have the lower column index."""
    scores, seen_mask = np.asarray(scores), np.asarray(seen_mask, dtype=bool)
    if seen_mask.all() or not seen_mask.any():
        return np.argmax(scores, axis=1)
    seen_ids, unseen_ids = np.flatnonzero(seen_mask), np.flatnonzero(~seen_mask)
    best_seen, best_unseen = scores[:, seen_ids].argmax(axis=1), scores[:, unseen_ids].argmax(axis=1)
    rows = np.arange(len(scores))
    to_seen = scores[rows, seen_ids[best_seen]] - gamma > scores[rows, unseen_ids[best_unseen]]
    return np.where(to_seen, seen_ids[best_seen], unseen_ids[best_unseen])


def gzsl(scores: np.ndarray, labels: np.ndarray, seen_mask: np.ndarray, gamma: float = 0.0) -> dict[str, float]:
    """Seen accuracy, unseen accuracy and their harmonic mean over seen ∪ unseen classes. S and U
    are per-sample accuracies over the test samples of seen / unseen classes (as SynSE and PURLS
    report them), not means of per-class accuracy."""
    labels, seen_mask = np.asarray(labels), np.asarray(seen_mask, dtype=bool)
    correct = calibrated_predictions(scores, seen_mask, gamma) == labels
    from_seen = seen_mask[labels]
    seen = float(correct[from_seen].mean()) if from_seen.any() else math.nan
    unseen = float(correct[~from_seen].mean()) if (~from_seen).any() else math.nan
    h = harmonic_mean(seen, unseen) if not (math.isnan(seen) or math.isnan(unseen)) else math.nan
    return {"seen": seen, "unseen": unseen, "h": h, "gamma": float(gamma)}


def choose_gamma(val_scores: np.ndarray, val_labels: np.ndarray, seen_mask: np.ndarray) -> float:
    """The calibration gamma that maximises H on validation data (never on test data).

    A sample goes to a seen class exactly when gamma is below its margin (best seen score - best
    unseen score), and its prediction within each side does not depend on gamma. So one gamma
    between each pair of neighbouring margins (and one beyond each end) covers every distinct
    outcome, and sorting the margins once gives every candidate's accuracies by cumulative sums:
    O(N log N) instead of one full evaluation per candidate. Ties go to the gamma nearest zero.
    """
    scores, seen_mask = np.asarray(val_scores, dtype=float), np.asarray(seen_mask, dtype=bool)
    labels = np.asarray(val_labels)
    if not seen_mask.any() or seen_mask.all() or len(labels) == 0:
        return 0.0
    seen_ids, unseen_ids = np.flatnonzero(seen_mask), np.flatnonzero(~seen_mask)
    seen_part, unseen_part = scores[:, seen_ids], scores[:, unseen_ids]
    margin = seen_part.max(axis=1) - unseen_part.max(axis=1)
    right_as_seen = seen_ids[seen_part.argmax(axis=1)] == labels
    right_as_unseen = unseen_ids[unseen_part.argmax(axis=1)] == labels
    flips = np.unique(margin)
    candidates = np.concatenate([[0.0, flips[0] - 1.0], (flips[:-1] + flips[1:]) / 2.0, [flips[-1] + 1.0]])
    order = np.argsort(margin, kind="stable")
    to_seen_from = np.searchsorted(margin[order], candidates, side="right")  # sorted rows [k:] go to seen

    def accuracy(group: np.ndarray) -> np.ndarray:
        if not group.any():
            return np.full(len(candidates), np.nan)
        as_unseen = np.concatenate([[0], np.cumsum((right_as_unseen & group)[order])])
        as_seen = np.concatenate([[0], np.cumsum((right_as_seen & group)[order])])
        return (as_unseen[to_seen_from] + as_seen[-1] - as_seen[to_seen_from]) / group.sum()

    from_seen = seen_mask[labels]
    acc_s, acc_u = accuracy(from_seen), accuracy(~from_seen)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.where(acc_s + acc_u > 0, 2 * acc_s * acc_u / (acc_s + acc_u), 0.0)
    best_gamma, best_h = 0.0, -1.0
    for c in sorted(range(len(candidates)), key=lambda c: abs(candidates[c])):  # nearest zero first
        if not np.isnan(h[c]) and h[c] > best_h:
            best_gamma, best_h = float(candidates[c]), float(h[c])
    return best_gamma


def _flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    flat = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def aggregate(runs: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Mean ± sample std (ddof=1; 0 for a single run) of every numeric metric over runs (seeds).

    Nested dicts are flattened to dotted keys ("zsl.top1"); keys missing from some runs use those
    that have them.
    """
    flats = [_flatten(r) for r in runs]
    keys = sorted({k for f in flats for k in f})
    out = {}
    for key in keys:
        values = np.array([f[key] for f in flats if key in f and not math.isnan(f[key])])
        if len(values) == 0:
            out[key] = {"mean": math.nan, "std": math.nan, "n": 0}
            continue
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[key] = {"mean": float(values.mean()), "std": std, "n": len(values)}
    return out
